//! Replay's summaries add up: every record read is in exactly one category of `by_result`,
//! in the JSON summary and in the one-line summary alike, on a constructed stream that has
//! every category; and a run that writes no record says why.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Event time 0 of the stream: 2023-11-14T22:13:20Z.
const T: i64 = 1_700_000_000_000;

/// Filler assignments between the jump and the late records.
const FILLERS: u64 = 100_000;

fn write(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).expect("write input");
}

fn assignment(id: &str, arm: &str, ms: i64) -> String {
    format!(r#"{{"assignment_id":"{id}","entity_id":"e","arm_id":"{arm}","ts":{}}}"#, T + ms)
}

fn outcome(id: &str, ms: i64, kind: &str) -> String {
    format!(r#"{{"assignment_id":"{id}","ts":{},"kind":"{kind}"}}"#, T + ms)
}

/// A stream with every category. Tick 1 s, attribution 5 s, window 60 s, lateness 2 s.
/// After a jump to 100 s, [`FILLERS`] filler assignments let the watermark pass 98 s before
/// the late records at the end of each file are read: too late, too old, a late outcome.
/// (Whether a late record finds its tick complete depends on how far progress has travelled
/// when it is read: the fillers give it several source activations to get there.)
fn stream(dir: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let job = dir.join("job.toml");
    std::fs::write(
        &job,
        "name = \"summary\"\ntick = \"1s\"\nwindow = \"60s\"\nattribution = \"5s\"\nallowed_lateness = \"2s\"\noutcome_kinds = [\"click\"]\n[policy]\nmin_trials = 0\n",
    )
    .expect("job");
    let mut a = vec![
        assignment("a1", "x", 1_000),  // applied, converts
        assignment("a1", "x", 1_000),  // duplicate
        assignment("a2", "y", 1_500),  // applied (the earlier copy wins)
        assignment("a2", "z", 1_800),  // conflict
        assignment("a3", "x", 2_000),  // applied; its only outcome is before it
        assignment("a4", "r", 2_500),  // retired arm
        "{not json".to_owned(),        // malformed invalid_json
        r#"{"assignment_id":"a5","entity_id":"e","arm_id":"x"}"#.to_owned(), // malformed invalid_field
        assignment("b", "x", 80_000),  // applied; resolves at 85 s
        assignment("jump", "x", 100_000),
    ];
    a.extend((0..FILLERS).map(|i| assignment(&format!("f{i}"), "x", 100_000))); // still pending
    a.push(assignment("late", "x", 90_000)); // too late: it resolved at 95 s
    a.push(assignment("old", "x", 3_000)); // too old: it left the window at 63 s
    let mut o = vec![
        outcome("a1", 2_000, "click"),    // applied
        outcome("a3", 1_900, "click"),    // outside attribution (before its assignment)
        outcome("a1", 2_100, "view"),     // ignored kind
        outcome("nobody", 3_000, "click"), // unmatched
        outcome("f1", 100_000, "click"),  // still buffered: f1 never resolves
    ];
    o.push(outcome("b", 81_000, "click")); // late outcome: b resolved at 85 s
    let arms = vec![r#"{"entity_id":"e","arm_id":"r","state":"retired","ts":1700000000000}"#.to_owned()];
    let (ap, op, rp) = (dir.join("a.jsonl"), dir.join("o.jsonl"), dir.join("arms.jsonl"));
    write(&ap, &a);
    write(&op, &o);
    write(&rp, &arms);
    (job, ap, op, rp)
}

fn replay(job: &Path, a: &Path, o: &Path, arms: Option<&Path>, workers: &str) -> (Value, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_banditflow"));
    command.args(["replay", "--quiet", "--workers", workers, "--out", "/dev/null", "--dataflow"]).arg(job).arg("--assignments").arg(a).arg("--outcomes").arg(o);
    if let Some(arms) = arms {
        command.arg("--arms").arg(arms);
    }
    let out = command.output().expect("replay runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let json = stderr.lines().find_map(|l| l.strip_prefix("summary: ")).unwrap_or_else(|| panic!("no summary: {stderr}"));
    (serde_json::from_str(json).expect("summary is JSON"), stderr)
}

/// The sum of every category, malformed ones by reason.
fn sum(by_result: &Value) -> u64 {
    by_result
        .as_object()
        .expect("by_result is an object")
        .values()
        .map(|v| match v {
            Value::Object(reasons) => reasons.values().map(|n| n.as_u64().expect("count")).sum(),
            n => n.as_u64().expect("count"),
        })
        .sum()
}

#[test]
fn every_record_is_in_exactly_one_category_and_they_add_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (job, a, o, arms) = stream(dir.path());
    for workers in ["1", "2"] {
        let (summary, stderr) = replay(&job, &a, &o, Some(&arms), workers);
        let events = summary["events_read"].as_u64().expect("events_read");
        assert_eq!(events, FILLERS + 12 + 6 + 1, "{summary}");
        let by = &summary["by_result"];
        assert_eq!(sum(by), events, "categories do not add up: {by}");
        // The one-line summary shows the same total and the same parts.
        let line = stderr.lines().find(|l| l.starts_with("replay done")).expect("one-line summary");
        let (head, parts) = line.split_once(" = ").expect("events = parts");
        assert!(head.contains(&format!("{events} events read")), "{line}");
        let parts = parts.split(';').next().unwrap_or_default();
        let line_sum: u64 = parts.split(" + ").map(|p| p.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()).expect("a count")).sum();
        assert_eq!(line_sum, events, "{line}");
        if workers == "1" {
            // One worker: the late records are read well after the watermark passed them.
            let expect = [
                ("duplicate", 1),
                ("conflict", 1),
                ("retired_arm", 1),
                ("too_late", 1),
                ("too_old", 1),
                ("outside_attribution", 1),
                ("ignored_kind", 1),
                ("unmatched_outcome", 1),
                ("late_outcome", 1),
                ("pending_at_end", FILLERS + 1),
                ("buffered_at_end", 1),
            ];
            for (category, n) in expect {
                assert_eq!(by[category], n, "{category} in {by}");
            }
            assert_eq!((by["malformed"]["invalid_json"].as_u64(), by["malformed"]["invalid_field"].as_u64()), (Some(1), Some(1)), "{by}");
            // a1, a2, a3 and b resolved; one outcome of a1; the registry record.
            assert_eq!(by["applied"], 4 + 1 + 1, "{by}");
            assert_eq!(summary["late"], 0, "{summary}");
        }
    }
}

#[test]
fn an_input_shorter_than_the_attribution_window_says_why_nothing_was_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let job = Path::new(env!("CARGO_MANIFEST_DIR")).join("dataflows/default.toml");
    let (a, o) = (dir.path().join("a.jsonl"), dir.path().join("o.jsonl"));
    write(&a, &(0..50).map(|i| assignment(&format!("a{i}"), "x", i * 100)).collect::<Vec<_>>());
    write(&o, &[outcome("a3", 400, "click")]);
    let (summary, stderr) = replay(&job, &a, &o, None, "1");
    assert_eq!(summary["records_written"], 0);
    assert_eq!(sum(&summary["by_result"]), 51, "{summary}");
    let why = stderr.lines().find_map(|l| l.strip_prefix("replay: no weight record was written: ")).unwrap_or_else(|| panic!("no explanation: {stderr}"));
    assert!(why.contains("attribution window (30m)") && why.contains("50 assignments were still pending") && why.contains("4s 900ms"), "{why}");
}
