//! `banditflow report`: the markdown summary of a known replay matches its golden file, and
//! malformed lines are counted, not fatal.
//!
//! After a deliberate change of the summary, `BANDITFLOW_BLESS=1 cargo test --test report`
//! rewrites `tests/data/report_golden.md` (review the diff).

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_banditflow"))
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn run(command: &mut Command) -> String {
    let out = command.output().expect("run banditflow");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// A replay of fixed traffic: its weights and decision files (the assignments are `a.jsonl`).
fn known_replay(dir: &Path) -> (PathBuf, PathBuf) {
    let (a, o, w, d) = (dir.join("a.jsonl"), dir.join("o.jsonl"), dir.join("w.jsonl"), dir.join("d.jsonl"));
    run(bin()
        .args(["generate", "--count", "30000", "--entities", "3", "--arms", "3", "--duration-ms", "21600000", "--rate", "0.1", "--seed", "7"])
        .arg("--assignments-out")
        .arg(&a)
        .arg("--outcomes-out")
        .arg(&o));
    run(bin()
        .args(["replay", "--quiet", "--dataflow"])
        .arg(repo("dataflows/default.toml"))
        .arg("--assignments")
        .arg(&a)
        .arg("--outcomes")
        .arg(&o)
        .arg("--out")
        .arg(&w)
        .arg("--decisions")
        .arg(&d));
    (w, d)
}

#[test]
fn the_markdown_summary_of_a_known_replay_matches_its_golden_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (weights, decisions) = known_replay(dir.path());
    let summary = run(bin().args(["report", "--format", "md", "--weights"]).arg(&weights).arg("--decisions").arg(&decisions));
    let golden = repo("tests/data/report_golden.md");
    if std::env::var_os("BANDITFLOW_BLESS").is_some() {
        std::fs::write(&golden, &summary).expect("bless");
    }
    let expected = std::fs::read_to_string(&golden).expect("golden file (BANDITFLOW_BLESS=1 writes it)");
    assert_eq!(summary, expected, "the summary moved: review, then BANDITFLOW_BLESS=1 cargo test --test report");
    for entity in ["entity-000", "entity-001", "entity-002"] {
        assert!(summary.contains(&format!("## {entity}")), "{entity}");
    }
    // One entity, a time range: the rest is left out.
    let one = run(bin().args(["report", "--format", "md", "--entity", "entity-001", "--to", "1767240000000", "--weights"]).arg(&weights));
    assert!(one.contains("## entity-001") && !one.contains("## entity-000") && !one.contains("## entity-002"), "{one}");
}

#[test]
fn malformed_lines_are_counted_and_the_report_still_comes_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (weights, _) = known_replay(dir.path());
    let mut text = std::fs::read(&weights).expect("weights");
    text.extend_from_slice(b"not json\n{\"entity_id\": \"half a record\"}\n\xff\xfe broken bytes\n\n");
    let damaged = dir.path().join("damaged.jsonl");
    std::fs::write(&damaged, text).expect("write");
    let summary = run(bin().args(["report", "--format", "md", "--weights"]).arg(&damaged));
    assert!(summary.contains("skipped: 3 malformed weight lines"), "{summary}");
    assert!(summary.contains("## entity-000"));
    let page = dir.path().join("damaged.html");
    let out = bin().args(["report", "--weights"]).arg(&damaged).arg("--out").arg(&page).output().expect("run report");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(&page).expect("page");
    assert!(html.contains("Skipped: 3 malformed weight lines") && html.contains("<section id=\"entity-000\""), "the page says what was skipped");
}

/// Headless Chromium as the tests start it: no sandbox, no GPU, no network, an empty profile.
fn chromium(dir: &Path) -> Command {
    let mut command = Command::new("chromium");
    command.args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run", "--enable-logging=stderr", "--v=0"]);
    command.arg(format!("--user-data-dir={}", dir.join("profile").display()));
    command
}

/// The values of `attribute` on the elements of `html` whose opening tag contains `marker`.
fn attributes<'a>(html: &'a str, marker: &str, attribute: &str) -> Vec<&'a str> {
    html.split('<')
        .filter(|tag| tag.contains(marker))
        .filter_map(|tag| {
            let start = tag.find(&format!("{attribute}=\""))? + attribute.len() + 2;
            tag[start..].split('"').next()
        })
        .collect()
}

/// Per arm of `entity`, the distinct assignment ids of the log at `path` served before
/// `as_of`, each at its earliest copy: counted from the raw JSON, not by the report's decoder.
fn served_before(path: &Path, entity: &str, as_of: i64) -> std::collections::BTreeMap<String, u64> {
    let mut earliest: std::collections::HashMap<String, (i64, String, String)> = std::collections::HashMap::new();
    for line in std::fs::read_to_string(path).expect("assignments").lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("an assignment");
        let field = |k: &str| v[k].as_str().expect(k).to_owned();
        let copy = (v["ts"].as_i64().expect("ts"), field("entity_id"), field("arm_id"));
        let kept = earliest.entry(field("assignment_id")).or_insert_with(|| copy.clone());
        if copy < *kept {
            *kept = copy;
        }
    }
    let mut counts = std::collections::BTreeMap::new();
    for (ts, e, arm) in earliest.into_values() {
        if e == entity && ts < as_of {
            *counts.entry(arm).or_insert(0) += 1;
        }
    }
    counts
}

#[test]
fn the_html_report_opens_in_chromium_with_every_entitys_charts_and_the_last_weights() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (weights, decisions) = known_replay(dir.path());
    let page = dir.path().join("report.html");
    let assignments = dir.path().join("a.jsonl");
    let out = bin().args(["report", "--weights"]).arg(&weights).arg("--decisions").arg(&decisions).arg("--assignments").arg(&assignments).arg("--out").arg(&page).output().expect("run report");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let url = format!("file://{}", page.display());
    let dumped = chromium(dir.path()).arg("--dump-dom").arg(&url).output().expect("chromium (scripts/test.sh installs it)");
    assert!(dumped.status.success(), "{}", String::from_utf8_lossy(&dumped.stderr));
    let stderr = String::from_utf8_lossy(&dumped.stderr);
    assert!(!stderr.contains("CONSOLE"), "console messages: {stderr}");
    let dom = String::from_utf8(dumped.stdout).expect("UTF-8 DOM");
    let records: Vec<banditflow_core::record::WeightRecord> =
        std::fs::read_to_string(&weights).expect("weights").lines().map(|l| serde_json::from_str(l).expect("record")).collect();
    for entity in ["entity-000", "entity-001", "entity-002"] {
        let section = dom.split(&format!("<section id=\"{entity}\"")).nth(1).and_then(|s| s.split("</section>").next()).unwrap_or_else(|| panic!("{entity} has no section"));
        for kind in ["weights", "posterior", "served", "trials", "observed"] {
            assert!(section.contains(&format!("data-chart=\"{kind}\"")), "{entity}: no {kind} chart");
        }
        // The plotted final weights are the last record's.
        let last = records.iter().filter(|r| r.entity_id == entity).max_by_key(|r| r.as_of).expect("a record");
        let weights_chart = section.split("data-chart=\"weights\"").nth(1).and_then(|s| s.split("</svg>").next()).expect("weights chart");
        let drawn: Vec<(&str, f64)> = attributes(weights_chart, "class=\"series\"", "data-series")
            .into_iter()
            .zip(attributes(weights_chart, "class=\"series\"", "data-last").into_iter().map(|v| v.parse::<f64>().expect("number")))
            .collect();
        assert_eq!(drawn.len(), last.arms.len(), "{entity}");
        for arm in &last.arms {
            assert!(drawn.iter().any(|(name, w)| *name == arm.arm_id && *w == arm.weight), "{entity} {}: drawn {drawn:?}", arm.arm_id);
        }
        // The plotted cumulative assignments are those of the log served before the last as_of.
        let served_chart = section.split("data-chart=\"served\"").nth(1).and_then(|s| s.split("</svg>").next()).expect("served chart");
        let drawn: Vec<(&str, f64)> = attributes(served_chart, "class=\"series\"", "data-series")
            .into_iter()
            .zip(attributes(served_chart, "class=\"series\"", "data-last").into_iter().map(|v| v.parse::<f64>().expect("number")))
            .collect();
        let expected = served_before(&assignments, entity, last.as_of);
        assert!(!expected.is_empty());
        assert_eq!(drawn.len(), expected.len(), "{entity}: drawn {drawn:?}, expected {expected:?}");
        for (arm, count) in &expected {
            assert!(drawn.iter().any(|(name, n)| name == arm && *n == *count as f64), "{entity} {arm}: drawn {drawn:?}, expected {count}");
        }
    }
    assert!(dom.contains("Assignment log: 30"), "the header counts the assignment log");
    // Without the log the page says how to get the cumulative counts.
    let bare = run(bin().args(["report", "--weights"]).arg(&weights));
    assert!(bare.contains("data-missing=\"served\"") && !bare.contains("data-chart=\"served\""));
    let screenshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/report-screenshot.png");
    let shot = chromium(dir.path()).arg(format!("--screenshot={}", screenshot.display())).arg("--window-size=1000,1400").arg(&url).output().expect("chromium");
    assert!(shot.status.success() && screenshot.exists(), "{}", String::from_utf8_lossy(&shot.stderr));
}

#[test]
fn the_html_report_draws_an_offline_evaluation_per_entity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (weights, _) = known_replay(dir.path());
    let d = |name: &str| dir.path().join(name);
    // Propensities from the records in force (the generated log names none).
    run(bin().args(["export", "--quiet", "--dataflow"]).arg(repo("dataflows/default.toml")).arg("--assignments").arg(d("a.jsonl")).arg("--outcomes").arg(d("o.jsonl")).arg("--weights").arg(&weights).arg("--out").arg(d("dataset")));
    let explore = std::fs::read_to_string(repo("dataflows/default.toml")).expect("job").replace("floor = 0.02", "floor = 0.2");
    assert!(explore.contains("floor = 0.2"));
    std::fs::write(d("explore.toml"), explore).expect("candidate");
    run(bin().args(["evaluate", "--quiet", "--window", "2h", "--step", "1h", "--format", "json", "--dataset"]).arg(d("dataset")).arg("--candidate").arg(repo("dataflows/default.toml")).arg("--candidate").arg(d("explore.toml")).arg("--out").arg(d("evaluation.jsonl")));
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(d("evaluation.jsonl")).expect("evaluation").lines().map(|l| serde_json::from_str(l).expect("a row")).collect();
    let page = d("report.html");
    run(bin().args(["report", "--weights"]).arg(&weights).arg("--evaluation").arg(d("evaluation.jsonl")).arg("--out").arg(&page));
    let dumped = chromium(dir.path()).arg("--dump-dom").arg(format!("file://{}", page.display())).output().expect("chromium (scripts/test.sh installs it)");
    assert!(dumped.status.success(), "{}", String::from_utf8_lossy(&dumped.stderr));
    let dom = String::from_utf8(dumped.stdout).expect("UTF-8 DOM");
    let sections: Vec<&str> = dom.split("<section").skip(1).collect();
    assert_eq!(sections.len(), 3);
    for section in sections {
        let entity = attributes(section, "data-entity", "data-entity")[0];
        let mine: Vec<&serde_json::Value> = rows.iter().filter(|r| r["entity_id"] == entity).collect();
        assert!(mine.len() >= 2 * 5, "{entity}: two candidates, a row per window end");
        let chart = section.split("data-chart=\"evaluation\"").nth(1).expect("an evaluation chart").split("</svg>").next().expect("svg");
        let series = attributes(chart, "class=\"series\"", "data-series");
        assert_eq!(series, ["logged", "default", "explore"], "{entity}");
        let last = attributes(chart, "class=\"series\"", "data-last");
        for (name, drawn) in series.iter().zip(&last) {
            let row = mine.iter().rev().find(|r| r["candidate"] == *name || *name == "logged").expect("a row");
            let expected = if *name == "logged" { &row["logged"]["estimate"] } else { &row["dr"]["estimate"] };
            assert_eq!(drawn.parse::<f64>().ok(), expected.as_f64(), "{entity} {name}: the last window's estimate");
        }
        assert_eq!(attributes(section, "data-candidate", "data-window-end").len(), mine.len(), "{entity}: a table row per evaluation row");
    }
}
