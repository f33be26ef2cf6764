//! Hostile input through replay: bad lines mixed into a valid stream change no weight record,
//! and every one of them is in the rejects file with its reason, input, line and bytes; a
//! flood of made-up entity or arm ids past the caps is refused, changes no good entity's
//! records and leaves peak memory (from `/proc`) within a stated bound.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_banditflow"))
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn run(command: &mut Command) -> String {
    let out = command.output().expect("run banditflow");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A valid stream of 20,000 assignments (2 entities, 3 arms, 4 hours) and its outcomes.
fn generated(dir: &Path, seed: u64) -> (PathBuf, PathBuf) {
    generated_count(dir, seed, 20_000)
}

/// [`generated`] with `count` assignments.
fn generated_count(dir: &Path, seed: u64, count: u64) -> (PathBuf, PathBuf) {
    let (a, o) = (dir.join("a.jsonl"), dir.join("o.jsonl"));
    run(bin()
        .args(["generate", "--count", &count.to_string(), "--entities", "2", "--arms", "3", "--duration-ms", "14400000", "--rate", "0.1", "--seed", &seed.to_string()])
        .arg("--assignments-out")
        .arg(&a)
        .arg("--outcomes-out")
        .arg(&o));
    (a, o)
}

/// The weight records of a replay's output, `computed_at` left out.
fn records_in(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out)
        .expect("weights")
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).expect("a record");
            v.as_object_mut().expect("object").remove("computed_at");
            v
        })
        .collect()
}

/// The bad lines of an assignment stream, each with the reason it must be refused for.
fn bad_assignments() -> Vec<(Vec<u8>, &'static str)> {
    let ts = 1_767_225_700_000_i64;
    let line = |id: &str, entity: &str, ts: &str| format!(r#"{{"assignment_id":"{id}","entity_id":"{entity}","arm_id":"arm-0","ts":{ts}}}"#).into_bytes();
    vec![
        (br#"{"assignment_id":"t1","entity_id":"entity-000","arm_id":"ar"#.to_vec(), "invalid_json"),
        (br#"{"assignment_id":"t2","entity_id":"entity-000","arm_id":"arm-0","ts":"soon"}"#.to_vec(), "invalid_field"),
        (br#"{"assignment_id":7,"entity_id":"entity-000","arm_id":"arm-0","ts":1767225700000}"#.to_vec(), "invalid_field"),
        (line("t3", "entity-000", "1e400"), "non_finite_number"),
        (line("t4", "entity-000", "NaN"), "invalid_json"),
        (format!(r#"{{"assignment_id":"big","entity_id":"entity-000","arm_id":"arm-0","ts":{ts},"pad":"{}"}}"#, "p".repeat(10 << 20)).into_bytes(), "record_too_large"),
        (line("", "entity-000", &ts.to_string()), "id_length"),
        (line("t5", &"e".repeat(10_000), &ts.to_string()), "id_length"),
        (line("t6", "entity-000", "99999999999999"), "ts_out_of_range"),
        (line("t7", "entity-000", "-5"), "ts_out_of_range"),
        (b"{\"assignment_id\":\"t8\xff\xfe\",\"entity_id\":\"entity-000\",\"arm_id\":\"arm-0\",\"ts\":1767225700000}".to_vec(), "invalid_utf8"),
        (format!(r#"{{"assignment_id":"t9","entity_id":"entity-000","entity_id":"entity-001","arm_id":"arm-0","ts":{ts}}}"#).into_bytes(), "duplicate_key"),
        (b"[\"t10\", \"entity-000\", \"arm-0\"]".to_vec(), "not_an_object"),
        (b"42".to_vec(), "not_an_object"),
        ([b"\xef\xbb\xbf".as_slice(), &line("t11", "entity-000", &ts.to_string())].concat(), "invalid_json"),
        (line("t12", r"entity-\u0007", &ts.to_string()), "invalid_id"),
        (line("t13", "entity-\t", &ts.to_string()), "invalid_json"),
    ]
}

/// The bad lines of an outcome stream.
fn bad_outcomes() -> Vec<(Vec<u8>, &'static str)> {
    vec![
        (br#"{"assignment_id":"x","ts":1767225700000,"ts":1767225700001}"#.to_vec(), "duplicate_key"),
        (br#"{"assignment_id":"x"}"#.to_vec(), "invalid_field"),
        (b"\x00\x01\x02".to_vec(), "invalid_json"),
        (b"{\"assignment_id\":\"\xc3\x28\",\"ts\":1767225700000}".to_vec(), "invalid_utf8"),
    ]
}

/// `valid` with `bad` put in at spread-out places; the 1-based line of each bad one.
fn mix(valid: &Path, bad: &[(Vec<u8>, &'static str)], out: &Path) -> BTreeMap<u64, (Vec<u8>, &'static str)> {
    let text = std::fs::read(valid).expect("valid input");
    let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    let every = (lines.len() / (bad.len() + 1)).max(1);
    let (mut mixed, mut placed, mut next) = (Vec::new(), BTreeMap::new(), bad.iter());
    let mut number = 0u64;
    for (i, line) in lines.iter().enumerate() {
        if i % every == every / 2 {
            if let Some((bytes, reason)) = next.next() {
                number += 1;
                mixed.extend_from_slice(bytes);
                mixed.push(b'\n');
                placed.insert(number, (bytes.clone(), *reason));
            }
        }
        number += 1;
        mixed.extend_from_slice(line);
        mixed.push(b'\n');
    }
    assert!(next.next().is_none(), "every bad line placed");
    std::fs::write(out, mixed).expect("write mixed input");
    placed
}

/// The weight records of a replay, `computed_at` left out.
fn replay(dir: &Path, assignments: &Path, outcomes: &Path, workers: usize, rejects: Option<&Path>) -> (Vec<Value>, String) {
    let out = dir.join(format!("w-{workers}-{}.jsonl", rejects.is_some()));
    let mut command = bin();
    command.args(["replay", "--quiet", "--dataflow"]).arg(repo("dataflows/default.toml"));
    command.arg("--assignments").arg(assignments).arg("--outcomes").arg(outcomes).arg("--workers").arg(workers.to_string()).arg("--out").arg(&out);
    if let Some(path) = rejects {
        command.arg("--rejects").arg(path);
    }
    let stderr = run(&mut command);
    (records_in(&out), stderr)
}

#[test]
fn bad_lines_change_no_record_and_each_is_in_the_rejects_file_with_its_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, o) = generated(dir.path(), 11);
    let (bad_a, bad_o) = (dir.path().join("bad-a.jsonl"), dir.path().join("bad-o.jsonl"));
    let placed_a = mix(&a, &bad_assignments(), &bad_a);
    let placed_o = mix(&o, &bad_outcomes(), &bad_o);
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(repo("schemas/reject.schema.json")).expect("schema")).expect("JSON");
    let validator = jsonschema::draft202012::new(&schema).expect("schema compiles");

    let (clean, _) = replay(dir.path(), &a, &o, 1, None);
    assert!(clean.len() > 100, "the valid stream alone gives records");
    for workers in [1, 2] {
        let rejects = dir.path().join(format!("rejects-{workers}.jsonl"));
        let (records, stderr) = replay(dir.path(), &bad_a, &bad_o, workers, Some(&rejects));
        assert!(records == clean, "{workers} workers: the bad lines changed the weight records");
        let expected = placed_a.len() + placed_o.len();
        assert!(stderr.contains(&format!("{expected} refused lines written to")), "{stderr}");
        let mut found: BTreeMap<(String, u64), (Vec<u8>, String)> = BTreeMap::new();
        for line in std::fs::read_to_string(&rejects).expect("rejects").lines() {
            let reject: Value = serde_json::from_str(line).expect("a reject is JSON");
            assert!(validator.is_valid(&reject), "against schemas/reject.schema.json: {line:.300}");
            let raw = match (reject["raw"].as_str(), reject["raw_base64"].as_str()) {
                (Some(text), None) => text.as_bytes().to_vec(),
                (None, Some(b64)) => base64::engine::general_purpose::STANDARD.decode(b64).expect("base64"),
                other => panic!("raw or raw_base64: {other:?}"),
            };
            let key = (reject["input"].as_str().expect("input").to_owned(), reject["line"].as_u64().expect("line"));
            assert!(found.insert(key, (raw, reject["reason"].as_str().expect("reason").to_owned())).is_none(), "each line once");
        }
        assert_eq!(found.len(), expected, "{workers} workers: every bad line and nothing else");
        for (input, placed) in [(&bad_a, &placed_a), (&bad_o, &placed_o)] {
            for (line, (bytes, reason)) in placed {
                let (raw, got) = found.get(&(input.display().to_string(), *line)).unwrap_or_else(|| panic!("{} line {line} ({reason}) missing", input.display()));
                assert_eq!(got, reason, "{} line {line}", input.display());
                assert!(raw == bytes, "{} line {line}: the original bytes", input.display());
            }
        }
    }
}

/// Runs `command` to the end, polling its peak resident set size (`VmHWM` in
/// `/proc/PID/status`) while it runs; returns its standard error and the largest peak seen,
/// in KiB.
fn run_measured(command: &mut Command) -> (String, u64) {
    let stderr_path = tempfile::NamedTempFile::new().expect("stderr file");
    let mut child = command.stderr(stderr_path.reopen().expect("stderr")).spawn().expect("run banditflow");
    let mut peak = 0u64;
    let status = loop {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", child.id())) {
            let hwm = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
            peak = peak.max(hwm.unwrap_or(0));
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let stderr = std::fs::read_to_string(stderr_path.path()).unwrap_or_default();
    assert!(status.success(), "{stderr}");
    (stderr, peak)
}

/// The valid stream `valid` with `flood` (lines by `ts`, in order) merged in by `ts`.
fn flood(valid: &Path, out: &Path, flood: impl Iterator<Item = (i64, String)>) {
    use std::io::Write;
    let text = std::fs::read_to_string(valid).expect("valid input");
    let mut writer = std::io::BufWriter::new(std::fs::File::create(out).expect("flood file"));
    let mut flood = flood.peekable();
    for valid_line in text.lines() {
        let at = serde_json::from_str::<Value>(valid_line).expect("valid JSON")["ts"].as_i64().expect("ts");
        while let Some((_, line)) = flood.next_if(|(t, _)| *t <= at) {
            writeln!(writer, "{line}").expect("write");
        }
        writeln!(writer, "{valid_line}").expect("write");
    }
    for (_, line) in flood {
        writeln!(writer, "{line}").expect("write");
    }
}

/// The bound the flood tests hold peak memory to, in KiB: what a replay of the valid stream
/// alone needs, plus this. The flood's records are refused as they are read (holding them
/// until their tick is decided took 445 MiB for this flood), and admission keeps at most
/// the caps' worth of ids.
const FLOOD_PEAK_ALLOWANCE_KIB: u64 = 64 * 1024;

#[test]
fn a_flood_of_new_entity_or_arm_ids_past_the_caps_is_refused_bounded_and_changes_no_good_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, o) = generated(dir.path(), 12);
    let job = dir.path().join("capped.toml");
    let default = std::fs::read_to_string(repo("dataflows/default.toml")).expect("default job");
    std::fs::write(&job, format!("{default}\n[limits]\nmax_entities = 100\nmax_arms_per_entity = 8\n")).expect("job");
    let first_ts = std::fs::read_to_string(&a).expect("a").lines().next().and_then(|l| serde_json::from_str::<Value>(l).ok()).and_then(|v| v["ts"].as_i64()).expect("ts");
    let replay_capped = |assignments: &Path, rejects: &Path| {
        let out = dir.path().join("w.jsonl");
        let mut command = bin();
        command.args(["replay", "--quiet", "--dataflow"]).arg(&job).arg("--assignments").arg(assignments).arg("--outcomes").arg(&o).arg("--out").arg(&out).arg("--rejects").arg(rejects);
        let (stderr, peak) = run_measured(&mut command);
        (records_in(&out), stderr, peak)
    };
    let good = |records: &[Value]| records.iter().filter(|r| r["entity_id"].as_str().is_some_and(|e| e.starts_with("entity-"))).cloned().collect::<Vec<_>>();
    let (clean, _, clean_peak) = replay_capped(&a, &dir.path().join("none.jsonl"));
    assert!(clean.len() > 100 && good(&clean).len() == clean.len());
    const FLOOD: usize = 1_000_000;
    // Half an hour in: both good entities are held by then.
    let at = first_ts + 30 * 60_000;
    // `FLOOD` assignments of distinct ids within one minute of event time (one tick).
    let at_tick = |i: usize| at + (i as i64 * 60_000) / FLOOD as i64;
    let entities = (0..FLOOD).map(|i| (at_tick(i), format!(r#"{{"assignment_id":"f{i}","entity_id":"flood-{i}","arm_id":"arm-0","ts":{}}}"#, at_tick(i))));
    // The arms flood an entity that was there before (with one arm of its own).
    let seed = (at - 10 * 60_000, format!(r#"{{"assignment_id":"seed","entity_id":"flood","arm_id":"seed","ts":{}}}"#, at - 10 * 60_000));
    let arms = std::iter::once(seed).chain((0..FLOOD).map(|i| (at_tick(i), format!(r#"{{"assignment_id":"f{i}","entity_id":"flood","arm_id":"arm-{i}","ts":{}}}"#, at_tick(i)))));
    let floods: [(&str, Box<dyn Iterator<Item = (i64, String)>>, &str, usize); 2] = [
        ("entities", Box::new(entities), "max_entities", 100 - 2),
        ("arms", Box::new(arms), "max_arms_per_entity", 8 - 1),
    ];
    for (what, lines, reason, admitted) in floods {
        let flooded = dir.path().join(format!("flood-{what}.jsonl"));
        flood(&a, &flooded, lines);
        let rejects = dir.path().join(format!("rejects-{what}.jsonl"));
        let (records, stderr, peak) = replay_capped(&flooded, &rejects);
        eprintln!("flood of {what}: peak RSS {} MiB (valid stream alone {} MiB)", peak / 1024, clean_peak / 1024);
        let kept = good(&records);
        if let Some(i) = (0..kept.len().max(clean.len())).find(|i| kept.get(*i) != clean.get(*i)) {
            panic!("flood of {what}: the good entities' records changed ({} records, {} alone); first at {i}:\n{:.1500}\n{:.1500}", kept.len(), clean.len(), kept.get(i).map(Value::to_string).unwrap_or_default(), clean.get(i).map(Value::to_string).unwrap_or_default());
        }
        // Every flood record is in the rejects file but those of the pairs admitted while
        // there was room; nothing else is.
        let mut refused = 0usize;
        let mut ids = std::collections::HashSet::new();
        for l in std::fs::read_to_string(&rejects).expect("rejects").lines() {
            let reject: Value = serde_json::from_str(l).expect("a reject");
            assert_eq!(reject["reason"], reason, "{l}");
            let raw: Value = serde_json::from_str(reject["raw"].as_str().expect("raw")).expect("the flood line");
            assert!(ids.insert(raw["assignment_id"].as_str().expect("id").to_owned()), "each once: {l}");
            refused += 1;
        }
        assert_eq!(refused, FLOOD - admitted, "flood of {what}: refused lines");
        assert!(stderr.contains(&format!("{refused} refused lines written to")), "{stderr}");
        assert!(peak < clean_peak + FLOOD_PEAK_ALLOWANCE_KIB, "flood of {what}: peak RSS {peak} KiB over the bound {} KiB", clean_peak + FLOOD_PEAK_ALLOWANCE_KIB);
    }
}

/// The rejects of a replay: (reason, raw line) each.
fn rejects_in(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .expect("rejects")
        .lines()
        .map(|l| {
            let reject: Value = serde_json::from_str(l).expect("a reject");
            (reject["reason"].as_str().expect("reason").to_owned(), reject["raw"].as_str().expect("raw").to_owned())
        })
        .collect()
}

/// Replays with the default job plus `limits`, and `--rejects`; returns the stderr.
fn replay_limited(dir: &Path, limits: &str, assignments: &Path, outcomes: &Path, workers: usize, rejects: &Path) -> String {
    let job = dir.join("limited.toml");
    let default = std::fs::read_to_string(repo("dataflows/default.toml")).expect("default job");
    std::fs::write(&job, format!("{default}\n[limits]\n{limits}\n")).expect("job");
    let mut command = bin();
    command.args(["replay", "--quiet", "--dataflow"]).arg(&job).arg("--assignments").arg(assignments).arg("--outcomes").arg(outcomes);
    command.arg("--workers").arg(workers.to_string()).arg("--out").arg(dir.join("w.jsonl")).arg("--rejects").arg(rejects);
    run(&mut command)
}

#[test]
fn records_attribution_refuses_and_records_past_the_outcome_cap_are_in_the_rejects_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Long enough that the source reads it in several activations (16,384 lines each), so
    // attribution has settled hours past the start by the time the last lines are read.
    let (a, o) = generated_count(dir.path(), 13, 100_000);
    let first_ts = std::fs::read_to_string(&a).expect("a").lines().next().and_then(|l| serde_json::from_str::<Value>(l).ok()).and_then(|v| v["ts"].as_i64()).expect("ts");
    // Assignments a minute into the stream, read at its end (four hours on): their
    // attribution interval closed long before, so they are too late.
    let late: Vec<String> = (0..5).map(|i| format!(r#"{{"assignment_id":"late-{i}","entity_id":"entity-000","arm_id":"arm-0","ts":{}}}"#, first_ts + 60_000 + i)).collect();
    // And an assignment with six outcomes a second apart, two hours in: with at most four
    // held per assignment, two are refused.
    let at = first_ts + 2 * 3_600_000;
    let with_late = dir.path().join("late-a.jsonl");
    flood(&a, &with_late, std::iter::once((at, format!(r#"{{"assignment_id":"busy","entity_id":"entity-001","arm_id":"arm-1","ts":{at}}}"#))));
    let mut text = std::fs::read_to_string(&with_late).expect("a");
    text.extend(late.iter().map(|l| format!("{l}\n")));
    std::fs::write(&with_late, text).expect("write");
    let busy: Vec<String> = (1..=6).map(|i| format!(r#"{{"assignment_id":"busy","ts":{}}}"#, at + i * 1_000)).collect();
    let with_busy = dir.path().join("busy-o.jsonl");
    flood(&o, &with_busy, busy.iter().enumerate().map(|(i, l)| (at + (i as i64 + 1) * 1_000, l.clone())));
    for workers in [1, 2] {
        let rejects = dir.path().join(format!("rejects-{workers}.jsonl"));
        let stderr = replay_limited(dir.path(), "max_outcomes_per_assignment = 4", &with_late, &with_busy, workers, &rejects);
        let found = rejects_in(&rejects);
        let too_late: Vec<&String> = found.iter().filter(|(r, _)| r == "too_late").map(|(_, raw)| raw).collect();
        if workers == 1 {
            assert_eq!(too_late, late.iter().collect::<Vec<_>>(), "the late assignments, unchanged and in order");
        } else {
            // With two, the other worker may still hold time at the start when they are read:
            // then they are late but on time for attribution, and counted.
            assert!(too_late.iter().all(|raw| late.contains(raw)), "{too_late:?}");
        }
        let capped: Vec<&String> = found.iter().filter(|(r, _)| r == "max_outcomes_per_assignment").map(|(_, raw)| raw).collect();
        assert_eq!(capped.len(), 2, "{workers} workers: {found:?}");
        assert!(capped.iter().all(|raw| busy.contains(raw)), "{workers} workers: {capped:?}");
        assert_eq!(found.len(), too_late.len() + 2, "{workers} workers, nothing else: {found:?}");
        assert!(stderr.contains(&format!("{} refused lines written to", found.len())), "{stderr}");
    }
}

#[test]
fn assignments_past_the_pending_cap_are_refused_and_in_the_rejects_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, o) = generated(dir.path(), 14);
    let lines: std::collections::HashSet<String> = std::fs::read_to_string(&a).expect("a").lines().map(str::to_owned).collect();
    // About 2,500 assignments are pending at a time (30 minutes of attribution at ~83 a
    // minute): a cap of 1,000 refuses many.
    for workers in [1, 2] {
        let rejects = dir.path().join(format!("rejects-{workers}.jsonl"));
        let stderr = replay_limited(dir.path(), "max_pending_assignments = 1000", &a, &o, workers, &rejects);
        let found = rejects_in(&rejects);
        assert!(found.len() > 1_000, "{workers} workers: {} refused", found.len());
        let mut seen = std::collections::HashSet::new();
        for (reason, raw) in &found {
            assert_eq!(reason, "max_pending_assignments");
            assert!(lines.contains(raw), "an input line, unchanged: {raw}");
            assert!(seen.insert(raw.clone()), "each once: {raw}");
        }
        assert!(stderr.contains(&format!("{} refused lines written to", found.len())), "{stderr}");
        // Under the cap, nothing is refused.
        let under = dir.path().join(format!("under-{workers}.jsonl"));
        replay_limited(dir.path(), "max_pending_assignments = 100000", &a, &o, workers, &under);
        assert!(rejects_in(&under).is_empty());
    }
}
