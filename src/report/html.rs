//! The report as one self-contained HTML page: inline SVG charts and tables, no script, no
//! network. Per entity: weights over time with the decisions marked, the posterior mean with
//! its 95% band, the cumulative assignments (from the assignment log) and the window's trials
//! and observed rate per arm, the latest statistics,
//! the decisions; an index first when there are several entities.

use std::collections::BTreeMap;
use std::fmt::Write;

use banditflow_core::record::WeightRecord;

use super::input::{EntityHistory, ReportInput};
use super::markdown::time;
use super::svg::{chart, escape, Frame, Series};

/// Chart size, pixels.
const CHART: (u32, u32) = (900, 240);

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}h1{margin:0 0 8px}\
section{margin:32px 0;border-top:1px solid #ccc}table{border-collapse:collapse;margin:8px 0}\
td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}\
.chart{display:block;margin:6px 0}.flagged{color:#b00;font-weight:bold}.note{color:#666}";

/// The page for `input`.
pub fn render(input: &ReportInput) -> String {
    let mut out = String::new();
    let _ = write!(out, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>banditflow report</title><style>{STYLE}</style></head><body>");
    let dataflows = if input.dataflows.is_empty() { "–".to_owned() } else { input.dataflows.join(", ") };
    let range = input.range().map_or_else(|| "–".to_owned(), |(a, b)| format!("{} to {}", time(a), time(b)));
    let _ = write!(
        out,
        "<h1>banditflow report</h1><p id=\"summary\">Dataflow <b>{}</b>; as_of {}; <span id=\"records\">{}</span> records of {} entities ({} lines read).</p>",
        escape(&dataflows),
        escape(&range),
        input.records(),
        input.entities.len(),
        input.lines
    );
    if input.skipped > 0 || input.skipped_decisions > 0 {
        let _ = write!(out, "<p id=\"skipped\" class=\"flagged\">Skipped: {} malformed weight lines, {} malformed decision lines.</p>", input.skipped, input.skipped_decisions);
    }
    if let Some(log) = &input.assignments {
        let _ = write!(out, "<p id=\"assignments\" class=\"{}\">Assignment log: {} lines, {} skipped as malformed, {} further copies of an assignment id counted once.</p>", if log.skipped > 0 { "flagged" } else { "note" }, log.lines, log.skipped, log.copies);
    }
    let _ = write!(out, "<p class=\"note\">Series with more points than a chart has pixel columns are downsampled: each 4-pixel slice of the time axis keeps its first, lowest, highest and last point.</p>");
    let evaluated = input.evaluation.as_ref().map(|e| &e.entities);
    if let Some(evaluation) = &input.evaluation {
        let _ = write!(out, "<p id=\"evaluation\" class=\"{}\">Offline evaluation: {} entities{}.</p>", if evaluation.skipped > 0 { "flagged" } else { "note" }, evaluation.entities.len(), if evaluation.skipped > 0 { format!(", {} malformed lines skipped", evaluation.skipped) } else { String::new() });
    }
    // Entities with records, then any only the evaluation names.
    let mut names: Vec<&String> = input.entities.keys().collect();
    names.extend(evaluated.into_iter().flat_map(|e| e.keys()).filter(|e| !input.entities.contains_key(*e)));
    if names.len() > 1 {
        out.push_str("<nav><b>Entities:</b> ");
        for entity in &names {
            let _ = write!(out, "<a href=\"#{0}\">{0}</a> ", escape(entity));
        }
        out.push_str("</nav>");
    }
    for entity in names {
        let rows = evaluated.and_then(|e| e.get(entity)).map(Vec::as_slice);
        match input.entities.get(entity) {
            Some(history) => entity_section(&mut out, entity, history, rows),
            None => {
                let _ = write!(out, "<section id=\"{0}\" data-entity=\"{0}\"><h2>{0}</h2><p class=\"note\">No weight records of this entity in the weights file.</p>", escape(entity));
                super::evaluation::section(&mut out, rows.unwrap_or_default());
                out.push_str("</section>");
            }
        }
    }
    out.push_str("</body></html>\n");
    out
}

/// Per arm, in order of first appearance: a value over time from each record listing it.
fn per_arm(records: &[WeightRecord], value: impl Fn(&banditflow_core::record::ArmWeight) -> (f64, f64, f64)) -> Vec<(String, Vec<(i64, f64, f64, f64)>)> {
    let mut order: Vec<String> = Vec::new();
    let mut series: BTreeMap<String, Vec<(i64, f64, f64, f64)>> = BTreeMap::new();
    for record in records {
        for arm in &record.arms {
            if !series.contains_key(&arm.arm_id) {
                order.push(arm.arm_id.clone());
            }
            let (v, lo, hi) = value(arm);
            series.entry(arm.arm_id.clone()).or_default().push((record.as_of, v, lo, hi));
        }
    }
    order.into_iter().map(|arm| (arm.clone(), series.remove(&arm).unwrap_or_default())).collect()
}

fn entity_section(out: &mut String, entity: &str, history: &EntityHistory, evaluation: Option<&[crate::evaluate::EvaluationRow]>) {
    let Some(last) = history.records.last() else { return };
    let first = history.records.first().map_or(last.as_of, |r| r.as_of);
    let span = (first, last.as_of.max(first + 1));
    let _ = write!(
        out,
        "<section id=\"{0}\" data-entity=\"{0}\"><h2>{0}</h2><p>{1} records, {2} to {3}; status <b>{4}</b>.</p>",
        escape(entity),
        history.records.len(),
        time(first),
        time(last.as_of),
        last.status.as_str()
    );
    let marks: Vec<(i64, String)> = history.decisions.iter().map(|d| (d.as_of, format!("{}: {} → {} ({})", d.arm_id, d.old_state.as_str(), d.new_state.as_str(), d.rule.as_str()))).collect();
    let draw = |name: &str, title: &str, rows: Vec<(String, Vec<(i64, f64, f64, f64)>)>, band: bool, value: (f64, f64), marks: &[(i64, String)]| {
        let series: Vec<Series<'_>> = rows
            .iter()
            .map(|(arm, points)| Series {
                name: arm,
                points: points.iter().map(|(t, v, _, _)| (*t, *v)).collect(),
                band: band.then(|| points.iter().map(|(t, _, lo, hi)| (*t, *lo, *hi)).collect()),
            })
            .collect();
        let frame = Frame { size: CHART, time: span, value };
        format!("<h3>{title}</h3>{}", chart(name, &frame, &series, marks))
    };
    out.push_str(&draw("weights", "Weights (dashed: decisions)", per_arm(&history.records, |a| (a.weight, 0.0, 0.0)), false, (0.0, 1.0), &marks));
    out.push_str(&draw("posterior", "Posterior mean and 95% credible interval", per_arm(&history.records, |a| (a.mean, a.ci95[0], a.ci95[1])), true, (0.0, top(&history.records, |a| a.ci95[1])), &[]));
    if history.served.is_empty() {
        let _ = write!(out, "<h3>Assignments served so far</h3><p class=\"note\" data-missing=\"served\">Not drawn: pass the assignment log the dataflow read (<code>--assignments FILE</code>) for the cumulative assignments per arm.</p>");
    } else {
        let served = cumulative(history);
        let high = top_of(served.iter().flat_map(|(_, points)| points.iter().map(|p| p.1)));
        out.push_str(&draw("served", "Assignments served so far (cumulative, from the assignment log)", served, false, (0.0, high), &[]));
    }
    out.push_str(&draw("trials", "Resolved trials in the window", per_arm(&history.records, |a| (a.trials as f64, 0.0, 0.0)), false, (0.0, top(&history.records, |a| a.trials as f64)), &[]));
    let rate = |a: &banditflow_core::record::ArmWeight| if a.trials > 0 { a.successes as f64 / a.trials as f64 } else { 0.0 };
    out.push_str(&draw("observed", "Observed rate in the window (successes / trials)", per_arm(&history.records, |a| (rate(a), 0.0, 0.0)), false, (0.0, top(&history.records, rate)), &[]));
    latest_table(out, last);
    decisions_table(out, history);
    if let Some(rows) = evaluation {
        super::evaluation::section(out, rows);
    }
    out.push_str("</section>");
}

/// Per arm of the assignment log, at each record's `as_of`: the assignments served before it;
/// arms in the order (and so the colours) of the other charts, then any the records never list.
fn cumulative(history: &EntityHistory) -> Vec<(String, Vec<(i64, f64, f64, f64)>)> {
    let mut order: Vec<&String> = Vec::new();
    for arm in history.records.iter().flat_map(|r| r.arms.iter().map(|a| &a.arm_id)) {
        if history.served.contains_key(arm) && !order.contains(&arm) {
            order.push(arm);
        }
    }
    let unlisted: Vec<&String> = history.served.keys().filter(|arm| !order.contains(arm)).collect();
    order.extend(unlisted);
    let series = |times: &[i64]| history.records.iter().map(|r| (r.as_of, super::served::before(times, r.as_of) as f64, 0.0, 0.0)).collect();
    order.into_iter().map(|arm| (arm.clone(), series(&history.served[arm]))).collect()
}

/// The largest value of `of` over every arm of every record, or 1, for a chart's top.
fn top(records: &[WeightRecord], of: impl Fn(&banditflow_core::record::ArmWeight) -> f64) -> f64 {
    top_of(records.iter().flat_map(|r| r.arms.iter().map(&of)))
}

/// The largest finite one of `values` plus 5%, or 1 if none is above 0, for a chart's top.
fn top_of(values: impl Iterator<Item = f64>) -> f64 {
    let top = values.filter(|v| v.is_finite()).fold(0.0, f64::max);
    if top > 0.0 {
        top * 1.05
    } else {
        1.0
    }
}

fn latest_table(out: &mut String, record: &WeightRecord) {
    out.push_str("<h3>Latest statistics</h3><table class=\"latest\"><tr><th>arm</th><th>weight</th><th>p_best</th><th>mean</th><th>ci95</th><th>expected loss</th><th>vs control: diff</th><th>p-value</th><th>state</th><th>trials</th><th>successes</th></tr>");
    for arm in &record.arms {
        let (diff, p) = arm.vs_control.map_or_else(|| ("–".to_owned(), "–".to_owned()), |v| (format!("{:+.4}", v.diff), format!("{:.4}", v.p_value)));
        let _ = write!(
            out,
            "<tr data-arm=\"{}\" data-weight=\"{}\"><td>{}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>[{:.4}, {:.4}]</td><td>{:.4}</td><td>{diff}</td><td>{p}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&arm.arm_id),
            arm.weight,
            escape(&arm.arm_id),
            arm.weight,
            arm.p_best,
            arm.mean,
            arm.ci95[0],
            arm.ci95[1],
            arm.expected_loss,
            arm.state.as_str(),
            arm.trials,
            arm.successes
        );
    }
    let srm_class = if record.srm.flagged { " class=\"flagged\"" } else { "" };
    let _ = write!(
        out,
        "</table><p>Chi-square (dof {}): p = {:.4}; <span{srm_class}>sample-ratio check: p = {:.4}{}</span>.</p>",
        record.chi_square.dof,
        record.chi_square.p_value,
        record.srm.p_value,
        if record.srm.flagged { ", flagged" } else { "" }
    );
}

fn decisions_table(out: &mut String, history: &EntityHistory) {
    out.push_str("<h3>Decisions</h3>");
    if history.decisions.is_empty() {
        out.push_str("<p>None.</p>");
        return;
    }
    out.push_str("<table class=\"decisions\"><tr><th>as_of</th><th>arm</th><th>from</th><th>to</th><th>rule</th><th>p_best</th><th>expected loss</th></tr>");
    for d in &history.decisions {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.4}</td><td>{:.4}</td></tr>",
            time(d.as_of),
            escape(&d.arm_id),
            d.old_state.as_str(),
            d.new_state.as_str(),
            d.rule.as_str(),
            d.statistics.p_best,
            d.statistics.expected_loss
        );
    }
    out.push_str("</table>");
}
