//! What the demo shows: on a terminal, one screen redrawn in place (plain ANSI cursor moves);
//! elsewhere (a file, a pipe, CI), plain tables printed one after the other.
//!
//! Both show, per entity, each arm's weight, `p_best`, trials, observed and true conversion
//! rate and the entity's status, with a legend that explains them once, and a footer with
//! what became of the events read, the lag, the ticks published and where the metrics are.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use banditflow_core::record::WeightRecord;
use banditflow_core::time::now_ms;

use crate::metrics::Snapshot;

/// Cells of a weight bar: a weight of 1 fills them all.
const BAR_CELLS: usize = 20;

/// What one screen shows.
pub struct Frame<'a> {
    /// Time since the traffic started.
    pub elapsed: Duration,
    /// How long the demo runs (`None`: until Ctrl-C).
    pub duration: Option<Duration>,
    /// The newest weight record per entity.
    pub latest: &'a BTreeMap<String, WeightRecord>,
    /// The true conversion rate of an arm, by entity and arm name.
    pub true_rate: &'a dyn Fn(&str, &str) -> Option<f64>,
    /// Assignments and outcomes produced.
    pub produced: (u64, u64),
    /// Distinct ticks whose records the generator has read.
    pub ticks_published: u64,
    /// The worker's state, as its metrics endpoint sees it.
    pub snapshot: Option<&'a Snapshot>,
    /// Where the metrics are served.
    pub metrics_url: Option<String>,
    /// Where log lines go.
    pub log_file: Option<PathBuf>,
    /// What the demo did on the arm registry so far, one line per change.
    pub registry: &'a [String],
}

/// The legend, one line per item: what each column and status means.
pub fn legend(min_trials: u64, floor: f64, max_step: Option<f64>) -> Vec<String> {
    let step = max_step.map_or_else(|| "no step limit".to_owned(), |s| format!("at most {:.0}% change per tick", s * 100.0));
    vec![
        "weight    the share of traffic serving gives the arm now (the bar); this is what the bandit publishes".to_owned(),
        "p_best    the probability that the arm's conversion rate is the highest, given what was seen".to_owned(),
        "trials    resolved assignments of the arm in the window; observed = their conversion rate".to_owned(),
        "true      the rate the demo's traffic really converts at (unknown to the bandit)".to_owned(),
        format!("status    burn_in: uniform until every arm has {min_trials} trials; adaptive: weights follow p_best (floor {:.0}%, {step}; a new arm gets 1/K until it has {min_trials})", floor * 100.0),
        "version   the end of the tick the record is computed as of (ms since 1970): serving keeps the newest".to_owned(),
    ]
}

fn bar(weight: f64) -> String {
    let filled = ((weight.clamp(0.0, 1.0) * BAR_CELLS as f64).round() as usize).min(BAR_CELLS);
    format!("{}{}", "█".repeat(filled), "·".repeat(BAR_CELLS - filled))
}

fn clock(ms: i64) -> String {
    let rfc = crate::logs::rfc3339(ms);
    rfc.get(11..19).unwrap_or(&rfc).to_owned()
}

/// The entities' blocks: a heading per entity, then a row per arm.
fn entities(frame: &Frame<'_>) -> Vec<String> {
    let mut lines = Vec::new();
    if frame.latest.is_empty() {
        lines.push("(no weights published yet: the first appear once a tick completes)".to_owned());
    }
    for (entity, record) in frame.latest {
        lines.push(format!("{entity}  {}  version {} (as of {})", record.status.as_str(), record.version, clock(record.as_of)));
        lines.push(format!("  {:<8} {:<width$}  {:>6}  {:>6}  {:>7}  {:>8}  {:>6}", "arm", "", "weight", "p_best", "trials", "observed", "true", width = BAR_CELLS));
        for arm in &record.arms {
            let observed = if arm.trials > 0 { format!("{:.4}", arm.successes as f64 / arm.trials as f64) } else { "-".to_owned() };
            let truth = (frame.true_rate)(entity, &arm.arm_id).map_or_else(|| "?".to_owned(), |r| format!("{r:.4}"));
            lines.push(format!(
                "  {:<8} {}  {:>6.4}  {:>6.4}  {:>7}  {:>8}  {:>6}",
                arm.arm_id,
                bar(arm.weight),
                arm.weight,
                arm.p_best,
                arm.trials,
                observed,
                truth
            ));
        }
    }
    lines
}

/// What became of the events read, the lag, ticks and where to look.
fn footer(frame: &Frame<'_>) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(snapshot) = frame.snapshot {
        let c = &snapshot.counters;
        let parts: Vec<String> = c.by_result().parts().iter().map(|(name, n)| format!("{n} {name}")).collect();
        lines.push(format!("events    {} read = {}", c.events_read(), parts.join(" + ")));
        let lag = snapshot.complete_through_ms.map_or_else(|| "-".to_owned(), |through| format!("{:.1} s", (now_ms() - through).max(0) as f64 / 1000.0));
        lines.push(format!(
            "worker    event-time lag {lag} · {} ticks published · {} weight records · {}",
            frame.ticks_published,
            c.records_written,
            if snapshot.caught_up { "caught up" } else { "catching up" }
        ));
    }
    let mut where_ = String::new();
    if let Some(url) = &frame.metrics_url {
        let _ = write!(where_, "metrics   {url}");
    }
    if let Some(file) = &frame.log_file {
        let _ = write!(where_, "{}logs in {}", if where_.is_empty() { "" } else { " · " }, file.display());
    }
    if !where_.is_empty() {
        lines.push(where_);
    }
    lines
}

/// The title line.
fn title(frame: &Frame<'_>) -> String {
    let time = match frame.duration {
        Some(d) => format!("t+{}s of {}s", frame.elapsed.as_secs(), d.as_secs()),
        None => format!("t+{}s, until Ctrl-C", frame.elapsed.as_secs()),
    };
    format!("banditflow demo · {time} · {} assignments and {} conversions produced", frame.produced.0, frame.produced.1)
}

/// The whole screen for a terminal, as lines without escape codes.
pub fn screen(frame: &Frame<'_>, legend: &[String]) -> Vec<String> {
    let mut lines = vec![title(frame), String::new()];
    lines.extend(legend.iter().cloned());
    lines.push(String::new());
    lines.extend(entities(frame));
    lines.push(String::new());
    lines.extend(frame.registry.iter().map(|l| format!("registry  {l}")));
    lines.extend(footer(frame));
    lines
}

/// Redraws the terminal with `lines`: cursor home, each line cleared to its end, and what is
/// left of an earlier, longer screen cleared.
pub fn redraw(lines: &[String], first: bool) -> String {
    let mut out = String::new();
    if first {
        out.push_str("\x1b[?25l\x1b[2J");
    }
    out.push_str("\x1b[H");
    for line in lines {
        out.push_str(line);
        out.push_str("\x1b[K\n");
    }
    out.push_str("\x1b[J");
    out
}

/// Shows the cursor again once the screen is done.
pub const RESTORE: &str = "\x1b[?25h";

/// The plain form of a frame, for a file or pipe: the title, the tables, the footer.
pub fn plain(frame: &Frame<'_>) -> String {
    let mut out = title(frame);
    out.push('\n');
    out.push_str(&weights_table(frame.latest, frame.true_rate));
    for line in footer(frame) {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Each entity's newest record as a table, with the true rate beside each arm.
pub fn weights_table(latest: &BTreeMap<String, WeightRecord>, true_rate: &dyn Fn(&str, &str) -> Option<f64>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{:<12} {:<6} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9}", "entity", "arm", "weight", "p_best", "trials", "successes", "observed", "true rate");
    if latest.is_empty() {
        let _ = writeln!(out, "(no weights published yet)");
    }
    for (entity, record) in latest {
        for arm in &record.arms {
            let truth = true_rate(entity, &arm.arm_id).map_or_else(|| "?".into(), |r| format!("{r:.4}"));
            let observed = if arm.trials > 0 { arm.successes as f64 / arm.trials as f64 } else { 0.0 };
            let _ = writeln!(
                out,
                "{:<12} {:<6} {:>8.4} {:>8.4} {:>8} {:>9} {:>9.4} {:>9}",
                entity, arm.arm_id, arm.weight, arm.p_best, arm.trials, arm.successes, observed, truth
            );
        }
        let _ = writeln!(out, "{:<12} status {} as of version {}", "", record.status.as_str(), record.version);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use banditflow_core::policy::Status;
    use banditflow_core::record::ArmWeight;

    fn record() -> WeightRecord {
        let arm = |id: &str, weight: f64| ArmWeight {
            arm_id: id.into(),
            weight,
            p_best: weight,
            alpha: 3.0,
            beta: 30.0,
            trials: 31,
            successes: 2,
            mean: 3.0 / 33.0,
            ci95: [0.02, 0.21],
            expected_loss: 0.01,
            vs_control: None,
            state: banditflow_core::decision::ArmState::Exploring,
            metadata: None,
        };
        WeightRecord {
            entity_id: "entity-000".into(),
            version: 7,
            as_of: 1_767_225_607_999,
            computed_at: 0,
            status: Status::Adaptive,
            arms: vec![arm("arm-0", 0.75), arm("arm-1", 0.25)],
            chi_square: banditflow_core::statistics::independence([(31, 2), (31, 2)]),
            srm: banditflow_core::srm::ServedCounts::default().test(0.001),
            max_age_hint_ms: 5_000,
            dataflow: "demo".into(),
            schema_version: banditflow_core::record::SCHEMA_VERSION,
        }
    }

    #[test]
    fn the_screen_holds_the_legend_every_arm_and_the_footer() {
        let latest = BTreeMap::from([("entity-000".to_owned(), record())]);
        let truth = |_: &str, arm: &str| (arm == "arm-0").then_some(0.12);
        let snapshot = Snapshot::default();
        let frame = Frame {
            elapsed: Duration::from_secs(12),
            duration: Some(Duration::from_secs(40)),
            latest: &latest,
            true_rate: &truth,
            produced: (100, 9),
            ticks_published: 3,
            snapshot: Some(&snapshot),
            metrics_url: Some("http://127.0.0.1:9898/metrics".into()),
            log_file: Some(PathBuf::from("/tmp/demo.log")),
            registry: &["t+13s  retired entity-000/arm-1".to_owned()],
        };
        let lines = screen(&frame, &legend(30, 0.02, Some(0.1)));
        let text = lines.join("\n");
        for part in ["t+12s of 40s", "p_best    the probability", "floor 2%, at most 10% change per tick", "entity-000  adaptive  version 7 (as of 00:00:07)", "arm-1", "0.1200", "?", "3 ticks published", "http://127.0.0.1:9898/metrics", "logs in /tmp/demo.log", "registry  t+13s  retired entity-000/arm-1"] {
            assert!(text.contains(part), "`{part}` missing from:\n{text}");
        }
        assert!(text.contains(&format!("{}{}", "█".repeat(15), "·".repeat(5))), "a weight of 0.75 fills 15 of 20 cells:\n{text}");
        assert!(!text.contains('\x1b'));
        let drawn = redraw(&lines, false);
        assert!(drawn.starts_with("\x1b[H") && drawn.ends_with("\x1b[J") && drawn.matches("\x1b[K\n").count() == lines.len());
        let plain = plain(&frame);
        assert!(plain.contains("true rate") && !plain.contains('\x1b') && plain.contains("arm-0"));
    }
}
