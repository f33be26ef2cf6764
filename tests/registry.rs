//! The arm registry input: active arms enter the weight record before any traffic, retired
//! arms leave it, and assignments to a retired arm are counted, not applied.

use std::io::Write;
use std::path::Path;

use banditflow_core::config::Dataflow;
use banditflow::replay::{replay_records, Input, ReplayOptions, ReplaySummary};
use banditflow_core::record::WeightRecord;

const T0: i64 = 1_767_225_600_000;

fn job() -> Dataflow {
    Dataflow::from_toml_str(
        "name = \"registry\"\ntick = \"1s\"\nwindow = \"20s\"\nattribution = \"2s\"\nallowed_lateness = \"1s\"\n\
         [policy]\nmin_trials = 1\nfloor = 0.1\n",
    )
    .expect("valid job")
}

fn write(path: &Path, lines: &[String]) {
    let mut f = std::fs::File::create(path).expect("create");
    for l in lines {
        writeln!(f, "{l}").expect("write");
    }
}

/// `n` assignments of entity "e", every 500 ms from `T0`, to arms "a" and "b" in turn, and an
/// outcome 100 ms after every `converting`-th.
fn alternating(n: i64, converting: i64) -> (Vec<String>, Vec<String>) {
    let mut assignments = Vec::new();
    let mut outcomes = Vec::new();
    for i in 0..n {
        let arm = if i % 2 == 0 { "a" } else { "b" };
        let ts = T0 + i * 500;
        assignments.push(format!(r#"{{"assignment_id":"x{i}","entity_id":"e","arm_id":"{arm}","ts":{ts}}}"#));
        if i % converting == 0 {
            outcomes.push(format!(r#"{{"assignment_id":"x{i}","ts":{}}}"#, ts + 100));
        }
    }
    (assignments, outcomes)
}

fn run(dir: &Path, workers: usize) -> (Vec<WeightRecord>, ReplaySummary) {
    let (assignments, outcomes) = alternating(30, 3);
    let arms = vec![
        format!(r#"{{"entity_id":"e","arm_id":"c","state":"active","ts":{},"metadata":{{"model":"c-v1"}}}}"#, T0 + 5_000),
        format!(r#"{{"entity_id":"e","arm_id":"b","state":"retired","ts":{}}}"#, T0 + 8_000),
        format!(r#"{{"entity_id":"quiet","arm_id":"only","state":"active","ts":{}}}"#, T0 + 3_000),
    ];
    write(&dir.join("a.jsonl"), &assignments);
    write(&dir.join("o.jsonl"), &outcomes);
    write(&dir.join("r.jsonl"), &arms);
    let options = ReplayOptions {
        arms: Some(Input::File(dir.join("r.jsonl"))),
        workers,
        ..ReplayOptions::new(job(), Input::File(dir.join("a.jsonl")), Input::File(dir.join("o.jsonl")))
    };
    let (mut records, summary) = replay_records(&options).expect("replay");
    for r in &mut records {
        r.computed_at = 0;
    }
    (records, summary)
}

fn arm_ids(r: &WeightRecord) -> Vec<&str> {
    r.arms.iter().map(|a| a.arm_id.as_str()).collect()
}

#[test]
fn registry_adds_and_retires_arms_at_the_tick_holding_their_ts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (records, summary) = run(dir.path(), 1);
    // The version of the record of the tick holding `T0 + ms`: that tick's last millisecond.
    let tick = |ms: i64| ((T0 + ms) / 1_000 * 1_000 + 999) as u64;

    // An entity with no traffic gets a record as soon as an arm is registered.
    let quiet: Vec<&WeightRecord> = records.iter().filter(|r| r.entity_id == "quiet").collect();
    assert_eq!(quiet.len(), 1);
    assert_eq!((quiet[0].version, arm_ids(quiet[0])), (tick(3_000), vec!["only"]));
    assert_eq!(quiet[0].arms[0].weight, 1.0);

    // The new arm enters at its tick with the prior, no trials, at least the floor.
    let e: Vec<&WeightRecord> = records.iter().filter(|r| r.entity_id == "e").collect();
    let entered = e.iter().find(|r| r.version == tick(5_000)).expect("a record at the registration tick");
    assert_eq!(arm_ids(entered), vec!["a", "b", "c"]);
    let c = &entered.arms[2];
    assert_eq!((c.trials, c.alpha, c.beta), (0, 1.0, 1.0));
    // e is out of burn-in: c gets the new-arm weight, 1/K, at once (no step limit here).
    assert!((c.weight - 1.0 / 3.0).abs() < 1e-12, "{entered:?}");
    assert_eq!(entered.status.as_str(), "adaptive");
    assert_eq!(c.metadata, Some(serde_json::json!({"model": "c-v1"})));
    assert!(e.iter().filter(|r| r.version < tick(5_000)).all(|r| !arm_ids(r).contains(&"c")));

    // The retired arm leaves at its tick, with traffic still in the window.
    let retired = e.iter().find(|r| r.version == tick(8_000)).expect("a record at the retirement tick");
    assert_eq!(arm_ids(retired), vec!["a", "c"]);
    assert!(e.iter().filter(|r| r.version >= tick(8_000)).all(|r| !arm_ids(r).contains(&"b")));

    // Assignments to b from its retirement on are judged when they resolve: ts 8_500 ..
    // 12_500 resolve by the last tick (14); 13_500 and 14_500 are still pending at the end.
    assert_eq!(summary.counters.retired_arm, 5);
    assert_eq!(summary.counters.registrations_read, 3);
}

#[test]
fn registry_output_is_the_same_for_any_number_of_workers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (one, _) = run(dir.path(), 1);
    let (three, _) = run(dir.path(), 3);
    assert!(one == three);
}

#[test]
fn late_registration_takes_effect_when_it_arrives_instead_of_rewriting_the_past() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Enough lines that the source yields (and time advances) several times before the
    // late registration is read.
    let assignments: Vec<String> = (0..40_000i64)
        .map(|i| format!(r#"{{"assignment_id":"y{i}","entity_id":"e","arm_id":"a","ts":{}}}"#, T0 + i / 2))
        .collect();
    // The last line is 18 s behind the one before it: far past the 1 s lateness bound.
    let arms = vec![
        format!(r#"{{"entity_id":"other","arm_id":"z","state":"active","ts":{}}}"#, T0 + 19_000),
        format!(r#"{{"entity_id":"e","arm_id":"late","state":"active","ts":{}}}"#, T0 + 1_000),
    ];
    write(&dir.path().join("a.jsonl"), &assignments);
    write(&dir.path().join("o.jsonl"), &[]);
    write(&dir.path().join("r.jsonl"), &arms);
    let options = ReplayOptions {
        arms: Some(Input::File(dir.path().join("r.jsonl"))),
        ..ReplayOptions::new(job(), Input::File(dir.path().join("a.jsonl")), Input::File(dir.path().join("o.jsonl")))
    };
    let (records, _) = replay_records(&options).expect("replay survives a late registration");
    let e: Vec<&WeightRecord> = records.iter().filter(|r| r.entity_id == "e").collect();
    let first_with_late = e.iter().find(|r| arm_ids(r).contains(&"late")).expect("the late arm enters");
    assert!(first_with_late.version > ((T0 + 1_000) / 1_000 * 1_000 + 999) as u64, "not back-dated to its ts");
    let mut versions: Vec<u64> = e.iter().map(|r| r.version).collect();
    versions.dedup();
    assert_eq!(versions.len(), e.len(), "versions strictly increase");
}

#[test]
fn with_require_declared_arms_assignments_of_undeclared_arms_are_refused_into_the_rejects_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    // "a" is declared in the job, "b" on the registry from 5 s on, "z" never.
    let mut assignments = Vec::new();
    for i in 0..40i64 {
        let arm = ["a", "b", "z", "b"][i as usize % 4];
        assignments.push(format!(r#"{{"assignment_id":"x{i}","entity_id":"e","arm_id":"{arm}","ts":{}}}"#, T0 + i * 250));
    }
    write(&dir.path().join("a.jsonl"), &assignments);
    write(&dir.path().join("o.jsonl"), &[]);
    write(&dir.path().join("r.jsonl"), &[format!(r#"{{"entity_id":"e","arm_id":"b","state":"active","ts":{}}}"#, T0 + 5_000)]);
    let job = Dataflow::from_toml_str(
        "name = \"declared\"\ntick = \"1s\"\nwindow = \"20s\"\nattribution = \"2s\"\nallowed_lateness = \"1s\"\n\
         [policy]\nmin_trials = 1\nfloor = 0.1\n[limits]\nrequire_declared_arms = true\n[[arms]]\nentity_id = \"e\"\narm_ids = [\"a\"]\n",
    )
    .expect("valid job");
    for workers in [1, 2] {
        let rejects = dir.path().join(format!("rejects-{workers}.jsonl"));
        let options = ReplayOptions {
            arms: Some(Input::File(dir.path().join("r.jsonl"))),
            workers,
            rejects: Some(rejects.clone()),
            ..ReplayOptions::new(job.clone(), Input::File(dir.path().join("a.jsonl")), Input::File(dir.path().join("o.jsonl")))
        };
        let (records, summary) = replay_records(&options).expect("replay");
        // Refused: every "z", and the "b"s before b's declaration (ts below 5 s: i < 20).
        let refused: Vec<String> = assignments.iter().enumerate().filter(|(i, _)| i % 4 == 2 || (i % 2 == 1 && *i < 20)).map(|(_, l)| l.clone()).collect();
        let mut found: Vec<String> = std::fs::read_to_string(&rejects)
            .expect("rejects")
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("JSON");
                assert_eq!(v["reason"], "undeclared_arm", "{l}");
                v["raw"].as_str().expect("raw").to_owned()
            })
            .collect();
        found.sort();
        let mut expected = refused.clone();
        expected.sort();
        assert_eq!(found, expected, "{workers} workers");
        assert_eq!(summary.counters.malformed.get("undeclared_arm"), Some(&(refused.len() as u64)));
        assert!(records.iter().all(|r| !arm_ids(r).contains(&"z")), "z never enters a record");
        let last = records.last().expect("records");
        assert_eq!(arm_ids(last), ["a", "b"]);
    }
}

#[test]
fn an_entity_whose_last_arm_leaves_says_so_once_and_then_waits_for_arms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut assignments = Vec::new();
    for i in 0..20i64 {
        let arm = if i % 2 == 0 { "a" } else { "b" };
        assignments.push(format!(r#"{{"assignment_id":"x{i}","entity_id":"e","arm_id":"{arm}","ts":{}}}"#, T0 + i * 500));
    }
    // Past the data, a sentinel entity keeps time going to 30 s.
    assignments.push(format!(r#"{{"assignment_id":"s","entity_id":"sentinel","arm_id":"a","ts":{}}}"#, T0 + 30_000));
    write(&dir.path().join("a.jsonl"), &assignments);
    write(&dir.path().join("o.jsonl"), &[]);
    let registry = [
        format!(r#"{{"entity_id":"e","arm_id":"a","state":"retired","ts":{}}}"#, T0 + 12_000),
        format!(r#"{{"entity_id":"e","arm_id":"b","state":"retired","ts":{}}}"#, T0 + 12_000),
        format!(r#"{{"entity_id":"e","arm_id":"c","state":"active","ts":{}}}"#, T0 + 16_000),
    ];
    write(&dir.path().join("r.jsonl"), &registry);
    for workers in [1, 2] {
        let options = ReplayOptions {
            arms: Some(Input::File(dir.path().join("r.jsonl"))),
            workers,
            ..ReplayOptions::new(job(), Input::File(dir.path().join("a.jsonl")), Input::File(dir.path().join("o.jsonl")))
        };
        let (records, _) = replay_records(&options).expect("replay");
        let e: Vec<&WeightRecord> = records.iter().filter(|r| r.entity_id == "e").collect();
        let empty: Vec<&&WeightRecord> = e.iter().filter(|r| r.status == banditflow_core::policy::Status::Empty).collect();
        assert_eq!(empty.len(), 1, "{workers} workers: one empty record");
        assert!(empty[0].arms.is_empty());
        assert_eq!(empty[0].as_of, T0 + 12_999, "at the tick of the retirements");
        // Nothing between it and the declaration of c; then c, alone.
        let after: Vec<&&WeightRecord> = e.iter().filter(|r| r.as_of > empty[0].as_of).collect();
        assert_eq!(after.first().map(|r| r.as_of), Some(T0 + 16_999), "{workers} workers");
        assert!(after.iter().all(|r| arm_ids(r) == ["c"]));
        assert!(e.iter().filter(|r| r.as_of < empty[0].as_of).all(|r| !r.arms.is_empty()));
    }
}

#[test]
fn a_reactivated_arm_keeps_its_counts_or_starts_from_the_prior_as_on_reactivate_says() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut assignments, outcomes) = alternating(16, 1);
    // Past the data, a sentinel entity keeps time going.
    assignments.push(format!(r#"{{"assignment_id":"s","entity_id":"sentinel","arm_id":"a","ts":{}}}"#, T0 + 20_000));
    write(&dir.path().join("a.jsonl"), &assignments);
    write(&dir.path().join("o.jsonl"), &outcomes);
    // b is retired at 10 s and, retrained, declared active again at 14 s: its 8 trials are
    // still in the 20 s window then.
    let registry = [
        format!(r#"{{"entity_id":"e","arm_id":"b","state":"retired","ts":{}}}"#, T0 + 10_000),
        format!(r#"{{"entity_id":"e","arm_id":"b","state":"active","ts":{},"metadata":{{"model_version":"v2"}}}}"#, T0 + 14_000),
    ];
    write(&dir.path().join("r.jsonl"), &registry);
    let b_at_reactivation = |on_reactivate: &str, workers: usize| {
        let job = Dataflow::from_toml_str(&format!(
            "name = \"reactivate\"\ntick = \"1s\"\nwindow = \"20s\"\nattribution = \"2s\"\nallowed_lateness = \"1s\"\n\
             [policy]\nmin_trials = 1\nfloor = 0.1\non_reactivate = \"{on_reactivate}\"\n"
        ))
        .expect("valid job");
        let options = ReplayOptions {
            arms: Some(Input::File(dir.path().join("r.jsonl"))),
            workers,
            ..ReplayOptions::new(job, Input::File(dir.path().join("a.jsonl")), Input::File(dir.path().join("o.jsonl")))
        };
        let (records, _) = replay_records(&options).expect("replay");
        let record = records.iter().find(|r| r.entity_id == "e" && r.as_of == T0 + 14_999).expect("a record at the reactivation").clone();
        let b = record.arms.iter().find(|a| a.arm_id == "b").expect("b is back").clone();
        let a = record.arms.iter().find(|a| a.arm_id == "a").expect("a").clone();
        (a.trials, b.trials, b.alpha, b.beta)
    };
    for workers in [1, 2] {
        let (a_kept, b_kept, ..) = b_at_reactivation("keep", workers);
        assert_eq!((a_kept, b_kept), (8, 8), "keep: b's trials stay ({workers} workers)");
        let (a_reset, b_reset, alpha, beta) = b_at_reactivation("reset", workers);
        assert_eq!((a_reset, b_reset), (8, 0), "reset: b starts again, a is untouched ({workers} workers)");
        assert_eq!((alpha, beta), (1.0, 1.0), "from the prior");
    }
    let bad = Dataflow::from_toml_str("name = \"x\"\ntick = \"1s\"\nwindow = \"20s\"\nattribution = \"2s\"\nallowed_lateness = \"1s\"\n[policy]\non_reactivate = \"forget\"\n");
    assert!(bad.is_err_and(|e| e.to_string().contains("on_reactivate")));
}

#[test]
fn a_new_arm_gets_its_new_arm_weight_and_does_not_send_an_adaptive_entity_back_to_burn_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    // a converts every time, b never: well out of burn-in (3 trials each) by 8 s.
    let (mut assignments, outcomes) = alternating(40, 2);
    // c, declared at 8 s, is served from 12 s on: 2 trials by 15 s, 3 by 16 s (each resolves
    // 2 s after its ts, and every outcome is a's).
    for (i, ts) in [12_000, 13_000, 14_000, 15_000].iter().enumerate() {
        assignments.push(format!(r#"{{"assignment_id":"c{i}","entity_id":"e","arm_id":"c","ts":{}}}"#, T0 + ts));
    }
    assignments.sort_by_key(|line| serde_json::from_str::<serde_json::Value>(line).expect("json")["ts"].as_i64());
    write(&dir.path().join("a.jsonl"), &assignments);
    write(&dir.path().join("o.jsonl"), &outcomes);
    write(&dir.path().join("r.jsonl"), &[format!(r#"{{"entity_id":"e","arm_id":"c","state":"active","ts":{}}}"#, T0 + 8_000)]);
    let run = |policy: &str, workers: usize| {
        let job = Dataflow::from_toml_str(&format!(
            "name = \"new-arm\"\ntick = \"1s\"\nwindow = \"60s\"\nattribution = \"2s\"\nallowed_lateness = \"1s\"\n\
             [policy]\nmin_trials = 3\n{policy}\n[decision]\nstop_p_best = 0\n"
        ))
        .expect("valid job");
        let options = ReplayOptions {
            arms: Some(Input::File(dir.path().join("r.jsonl"))),
            workers,
            ..ReplayOptions::new(job, Input::File(dir.path().join("a.jsonl")), Input::File(dir.path().join("o.jsonl")))
        };
        let (mut records, _) = replay_records(&options).expect("replay");
        for r in &mut records {
            r.computed_at = 0;
        }
        records.retain(|r| r.entity_id == "e");
        records
    };
    let weight = |r: &WeightRecord, arm: &str| r.arms.iter().find(|a| a.arm_id == arm).map(|a| a.weight);
    for (policy, new_arm, floor) in [("floor = 0.02", 1.0 / 3.0, 0.02), ("floor = 0.02\nnew_arm_weight = 0.05", 0.05, 0.02), ("floor = 0.1\nnew_arm_weight = 0.05", 0.1, 0.1)] {
        let records = run(policy, 1);
        assert_eq!(records, run(policy, 2), "{policy}: the same for 1 and 2 workers");
        let before = records.iter().rfind(|r| r.as_of < T0 + 8_000).expect("a record before c");
        assert_ne!(before.status.as_str(), "burn_in", "{policy}: out of burn-in before c: {before:?}");
        let with_c: Vec<&WeightRecord> = records.iter().filter(|r| weight(r, "c").is_some()).collect();
        assert_eq!(with_c[0].as_of, T0 + 8_999, "{policy}: c enters at its tick");
        let short: Vec<&&WeightRecord> = with_c.iter().filter(|r| r.arms[2].trials < 3).collect();
        assert!(short.len() >= 5 && short.iter().any(|r| r.arms[2].trials == 2), "{policy}: c short of min_trials for a while: {short:?}");
        for r in short {
            let c = &r.arms[2];
            // Not back in burn-in: c has its new-arm weight, a and b share the rest by their
            // p_best (a may stay the winner: with on_winner = "keep_exploring" that changes no
            // weight).
            assert_ne!(r.status.as_str(), "burn_in", "{policy}: {r:?}");
            assert!((c.weight - new_arm).abs() < 1e-12, "{policy}: c has {} at {}", c.weight, r.as_of);
            let (a, b) = (&r.arms[0], &r.arms[1]);
            let rest = 1.0 - new_arm;
            let spare = rest - 2.0 * floor;
            let total = a.p_best + b.p_best;
            assert!((a.weight - (floor + spare * a.p_best / total)).abs() < 1e-12, "{policy}: {r:?}");
            assert!((b.weight - (floor + spare * b.p_best / total)).abs() < 1e-12, "{policy}: {r:?}");
            assert!(a.weight > 0.5 && b.weight < 0.2, "a leads: {r:?}");
        }
        // Once c has its trials it follows its posterior like the others (no successes: the floor).
        let settled = with_c.iter().find(|r| r.arms[2].trials >= 3).expect("c reaches min_trials");
        assert!((weight(settled, "c").expect("c") - (floor + (1.0 - 3.0 * floor) * settled.arms[2].p_best)).abs() < 1e-12, "{policy}: {settled:?}");
    }
}

/// Replays `alternating(40, 2)` (a always converts, b never) for entity "e" under `job_tail`
/// (appended to a 1 s tick, 60 s window job) with the registry `arms`; the records of "e".
fn replay_e(dir: &Path, job_tail: &str, arms: &[String], workers: usize) -> Vec<WeightRecord> {
    let (assignments, outcomes) = alternating(40, 2);
    write(&dir.join("a.jsonl"), &assignments);
    write(&dir.join("o.jsonl"), &outcomes);
    write(&dir.join("r.jsonl"), arms);
    let job = Dataflow::from_toml_str(&format!(
        "name = \"split\"\ntick = \"1s\"\nwindow = \"60s\"\nattribution = \"2s\"\nallowed_lateness = \"1s\"\n{job_tail}"
    ))
    .expect("valid job");
    let options = ReplayOptions {
        arms: Some(Input::File(dir.join("r.jsonl"))),
        workers,
        ..ReplayOptions::new(job, Input::File(dir.join("a.jsonl")), Input::File(dir.join("o.jsonl")))
    };
    let (mut records, _) = replay_records(&options).expect("replay");
    for r in &mut records {
        r.computed_at = 0;
    }
    records.retain(|r| r.entity_id == "e");
    records
}

#[test]
fn static_allocation_publishes_exactly_the_declared_split_at_every_tick_and_still_decides() {
    let dir = tempfile::tempdir().expect("tempdir");
    // a and b declared in the job file (0.6 : 0.2); c joins at 5 s with 0.25 from the
    // registry; b's registry record at 10 s overrides its weight with 0.1; b retires at 15 s.
    let arms = [
        format!(r#"{{"entity_id":"e","arm_id":"c","state":"active","ts":{},"initial_weight":0.25}}"#, T0 + 5_000),
        format!(r#"{{"entity_id":"e","arm_id":"b","state":"active","ts":{},"initial_weight":0.1}}"#, T0 + 10_000),
        format!(r#"{{"entity_id":"e","arm_id":"b","state":"retired","ts":{}}}"#, T0 + 15_000),
    ];
    let tail = "[policy]\nallocation = \"static\"\nmin_trials = 3\nfloor = 0.05\nmax_step = 0.05\n\
                [[arms]]\nentity_id = \"e\"\narm_ids = [\"a\", \"b\"]\ninitial_weights = { a = 0.6, b = 0.2 }\n";
    let records = replay_e(dir.path(), tail, &arms, 1);
    assert_eq!(records, replay_e(dir.path(), tail, &arms, 2), "the same for 1 and 2 workers");
    assert!(records.len() >= 15, "a record at least every time the counts change: {}", records.len());
    let mut stopped = false;
    for r in &records {
        let at = r.as_of - T0;
        let expected: Vec<(&str, f64)> = if at < 5_000 {
            vec![("a", 0.6), ("b", 0.2)]
        } else if at < 10_000 {
            vec![("a", 0.6), ("b", 0.2), ("c", 0.25)]
        } else if at < 15_000 {
            vec![("a", 0.6), ("b", 0.1), ("c", 0.25)]
        } else {
            vec![("a", 0.6), ("c", 0.25)]
        };
        let total: f64 = expected.iter().map(|(_, w)| w).sum();
        assert_eq!(arm_ids(r), expected.iter().map(|(a, _)| *a).collect::<Vec<_>>(), "{r:?}");
        assert_eq!(r.status.as_str(), "static", "{r:?}");
        for (arm, (_, w)) in r.arms.iter().zip(&expected) {
            // Exactly the declared split, normalised: no floor, no step limit, no decision.
            assert!((arm.weight - w / total).abs() < 1e-12, "{} has {} at {at}, declared {w} of {total}", arm.arm_id, arm.weight);
        }
        // Every statistic is still there, and the rules still decide.
        assert!(r.arms.iter().all(|a| a.ci95[0] <= a.mean && a.mean <= a.ci95[1]), "{r:?}");
        if r.arms.iter().all(|a| a.trials > 0) {
            assert!(r.chi_square.dof as usize == r.arms.len() - 1 && r.chi_square.p_value < 1.0, "{r:?}");
        }
        stopped |= r.arms.iter().any(|a| a.arm_id == "b" && a.state.as_str() == "stopped");
    }
    assert!(stopped, "b (never converting) is stopped by the rules, its weight untouched");
}

#[test]
fn an_adaptive_entity_starts_from_its_declared_split_and_a_new_arm_from_its_share() {
    let dir = tempfile::tempdir().expect("tempdir");
    let arms = [
        format!(r#"{{"entity_id":"e","arm_id":"a","state":"active","ts":{},"initial_weight":0.7}}"#, T0),
        format!(r#"{{"entity_id":"e","arm_id":"b","state":"active","ts":{},"initial_weight":0.3}}"#, T0),
        // c declares no weight: it shares what a and b leave (nothing), so counts as 1/3.
        format!(r#"{{"entity_id":"e","arm_id":"c","state":"active","ts":{}}}"#, T0 + 12_000),
    ];
    let tail = "[policy]\nmin_trials = 3\nfloor = 0.05\n[decision]\nstop_p_best = 0\n";
    let records = replay_e(dir.path(), tail, &arms, 1);
    assert_eq!(records, replay_e(dir.path(), tail, &arms, 2), "the same for 1 and 2 workers");
    let burn_in: Vec<&WeightRecord> = records.iter().filter(|r| r.status.as_str() == "burn_in").collect();
    assert!(!burn_in.is_empty() && burn_in.iter().all(|r| r.as_of < T0 + 12_000), "{records:?}");
    for r in &burn_in {
        // The declared split, floored like p_best: 0.05 + 0.9 * share.
        assert!((r.arms[0].weight - (0.05 + 0.9 * 0.7)).abs() < 1e-12 && (r.arms[1].weight - (0.05 + 0.9 * 0.3)).abs() < 1e-12, "{r:?}");
    }
    let with_c = records.iter().find(|r| r.arms.len() == 3).expect("c joins");
    assert_eq!(with_c.as_of, T0 + 12_999, "{with_c:?}");
    assert_ne!(with_c.status.as_str(), "burn_in", "not back to burn-in: {with_c:?}");
    let split_c = (1.0 / 3.0) / (1.0 + 1.0 / 3.0);
    assert!((with_c.arms[2].weight - split_c).abs() < 1e-12, "c gets its share of the split: {with_c:?}");
}
