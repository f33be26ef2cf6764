//! The report as markdown, for terminals and pull-request comments: a header, then per
//! entity its latest statistics and its decisions.

use std::fmt::Write;
use std::time::{Duration, UNIX_EPOCH};

use banditflow_core::record::WeightRecord;
use banditflow_core::srm::SampleRatio;

use super::input::ReportInput;

/// `as_of` as an RFC 3339 time (milliseconds, UTC).
pub fn time(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(at).to_string()
}

fn number(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        "–".into()
    }
}

fn p_value(v: f64) -> String {
    if !v.is_finite() {
        "–".into()
    } else if v == 0.0 {
        "0".into()
    } else if v < 1e-4 {
        format!("{v:.1e}")
    } else {
        format!("{v:.4}")
    }
}

/// The markdown summary of `input`.
pub fn render(input: &ReportInput) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# banditflow report\n");
    let dataflows = if input.dataflows.is_empty() { "–".to_owned() } else { input.dataflows.join(", ") };
    let range = input.range().map_or_else(|| "–".to_owned(), |(a, b)| format!("{} to {}", time(a), time(b)));
    let _ = writeln!(out, "- dataflow: {dataflows}");
    let _ = writeln!(out, "- as_of: {range}");
    let _ = writeln!(out, "- {} records of {} entities ({} lines read)", input.records(), input.entities.len(), input.lines);
    if input.skipped > 0 || input.skipped_decisions > 0 {
        let _ = writeln!(out, "- skipped: {} malformed weight lines, {} malformed decision lines", input.skipped, input.skipped_decisions);
    }
    if let Some(log) = &input.assignments {
        let _ = writeln!(out, "- assignment log: {} lines, {} skipped as malformed, {} further copies of an assignment id counted once", log.lines, log.skipped, log.copies);
    }
    for (entity, history) in &input.entities {
        let Some(last) = history.records.last() else { continue };
        let _ = writeln!(out, "\n## {entity}\n");
        let _ = writeln!(out, "{} records; latest as_of {} (version {}), status `{}`.\n", history.records.len(), time(last.as_of), last.version, last.status.as_str());
        latest(&mut out, last);
        if !history.served.is_empty() {
            let totals: Vec<String> = history.served.iter().map(|(arm, times)| format!("{arm} {}", super::served::before(times, last.as_of))).collect();
            let _ = writeln!(out, "\nAssignments served before the latest as_of: {}.", totals.join(", "));
        }
        if history.decisions.is_empty() {
            let _ = writeln!(out, "\nNo decisions.");
        } else {
            let _ = writeln!(out, "\n| as_of | arm | from | to | rule | p_best | expected loss |");
            let _ = writeln!(out, "|---|---|---|---|---|---:|---:|");
            for d in &history.decisions {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    time(d.as_of),
                    d.arm_id,
                    d.old_state.as_str(),
                    d.new_state.as_str(),
                    d.rule.as_str(),
                    number(d.statistics.p_best),
                    number(d.statistics.expected_loss)
                );
            }
        }
    }
    out
}

/// The latest record's table and its two tests.
fn latest(out: &mut String, record: &WeightRecord) {
    let _ = writeln!(out, "| arm | weight | p_best | mean | ci95 | expected loss | vs control (diff, p) | state | trials | successes |");
    let _ = writeln!(out, "|---|---:|---:|---:|---|---:|---|---|---:|---:|");
    for arm in &record.arms {
        let versus = arm.vs_control.map_or_else(|| "–".to_owned(), |v| format!("{:+.4}, {}", v.diff, p_value(v.p_value)));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | [{}, {}] | {} | {versus} | {} | {} | {} |",
            arm.arm_id,
            number(arm.weight),
            number(arm.p_best),
            number(arm.mean),
            number(arm.ci95[0]),
            number(arm.ci95[1]),
            number(arm.expected_loss),
            arm.state.as_str(),
            arm.trials,
            arm.successes
        );
    }
    let SampleRatio { p_value: srm_p, flagged, .. } = record.srm;
    let _ = writeln!(
        out,
        "\nChi-square (dof {}): p = {}; sample-ratio check: p = {}{}.",
        record.chi_square.dof,
        p_value(record.chi_square.p_value),
        p_value(srm_p),
        if flagged { ", **flagged**" } else { "" }
    );
}
