//! The offline evaluation in the report (`banditflow report --evaluation FILE`, the JSON
//! lines of `banditflow evaluate --format json`): per entity a chart of each candidate's
//! doubly robust estimate and the logged policy's observed reward at each window end, with
//! their 95% intervals as bands, and a table of every estimator. ([`super::input`] reads it.)

use std::fmt::Write;

use banditflow_core::evaluation::Estimate;

use super::markdown::time;
use super::svg::{chart, escape, Frame, Series};
use crate::evaluate::EvaluationRow;

/// A series at each window end (both ends of the window when there is only one, so it draws
/// as a segment over it).
fn series_points(rows: &[&EvaluationRow], value: impl Fn(&EvaluationRow) -> Option<Estimate>, single: bool) -> Vec<(i64, f64, f64, f64)> {
    let mut points = Vec::new();
    for row in rows {
        if let Some(e) = value(row) {
            if single {
                points.push((row.window_start, e.estimate, e.ci95[0], e.ci95[1]));
            }
            points.push((row.window_end, e.estimate, e.ci95[0], e.ci95[1]));
        }
    }
    points
}

/// The evaluation part of an entity's section.
pub fn section(out: &mut String, rows: &[EvaluationRow]) {
    let mut candidates: Vec<&str> = rows.iter().map(|r| r.candidate.as_str()).collect();
    candidates.sort_unstable();
    candidates.dedup();
    let ends = {
        let mut ends: Vec<i64> = rows.iter().map(|r| r.window_end).collect();
        ends.dedup();
        ends
    };
    let single = ends.len() <= 1;
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else { return };
    let span = if single { (first.window_start, first.window_end) } else { (first.window_end, last.window_end) };
    // The logged policy is the same in every candidate's rows: drawn once, from the first's.
    let logged_rows: Vec<&EvaluationRow> = rows.iter().filter(|r| r.candidate == candidates[0]).collect();
    let mut named: Vec<(String, Vec<(i64, f64, f64, f64)>)> = vec![("logged".to_owned(), series_points(&logged_rows, |r| r.logged, single))];
    for candidate in &candidates {
        let mine: Vec<&EvaluationRow> = rows.iter().filter(|r| r.candidate == *candidate).collect();
        named.push(((*candidate).to_owned(), series_points(&mine, |r| r.dr, single)));
    }
    let high = named.iter().flat_map(|(_, p)| p.iter().map(|p| p.3)).filter(|v| v.is_finite()).fold(0.0, f64::max);
    // Intervals of few rows reach below 0: the axis follows them.
    let low = named.iter().flat_map(|(_, p)| p.iter().map(|p| p.2)).filter(|v| v.is_finite()).fold(0.0, f64::min);
    let series: Vec<Series<'_>> = named
        .iter()
        .map(|(name, points)| Series { name, points: points.iter().map(|(t, v, _, _)| (*t, *v)).collect(), band: Some(points.iter().map(|(t, _, lo, hi)| (*t, *lo, *hi)).collect()) })
        .collect();
    let frame = Frame { size: (900, 240), time: (span.0, span.1.max(span.0 + 1)), value: (if low < 0.0 { low * 1.05 } else { 0.0 }, if high > 0.0 { high * 1.05 } else { 1.0 }) };
    let _ = write!(
        out,
        "<h3>Offline evaluation: expected reward per window (doubly robust; logged: observed; bands: 95% intervals)</h3>{}",
        chart("evaluation", &frame, &series, &[])
    );
    out.push_str("<table class=\"evaluation\"><tr><th>window end</th><th>candidate</th><th>rows</th><th>logged</th><th>ips</th><th>snips</th><th>dr</th><th>ess</th><th>&gt; clip</th><th>warnings</th></tr>");
    let cell = |e: Option<Estimate>| e.map_or_else(|| "–".to_owned(), |e| format!("{:.4} [{:.4}, {:.4}]", e.estimate, e.ci95[0], e.ci95[1]));
    for row in rows {
        let flagged = if row.warnings.is_empty() { "" } else { " class=\"flagged\"" };
        let _ = write!(
            out,
            "<tr data-candidate=\"{}\" data-window-end=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}%</td><td{flagged}>{}</td></tr>",
            escape(&row.candidate),
            row.window_end,
            time(row.window_end),
            escape(&row.candidate),
            row.rows,
            row.logged_reward.map_or_else(|| "–".to_owned(), |v| format!("{v:.4}")),
            cell(row.ips),
            cell(row.snips),
            cell(row.dr),
            row.ess,
            100.0 * row.above_clip,
            escape(&row.warnings.join("; "))
        );
    }
    out.push_str("</table>");
}
