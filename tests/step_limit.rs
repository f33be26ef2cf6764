//! The step limit through the whole dataflow: published weights walk towards their target
//! by at most `max_step` per arm and tick, one record per tick until they arrive. The jobs turn
//! the stop rule off: a stop caps an arm at once, whatever the step limit (tests/decisions.rs).

use std::collections::BTreeMap;

use banditflow_core::config::Dataflow;
use banditflow::traffic::{generate_files, TrafficSpec};
use banditflow::replay::{replay_records, Input, ReplayOptions};
use banditflow_core::record::WeightRecord;

const MAX_STEP: f64 = 0.05;
const FLOOR: f64 = 0.02;

fn run(workers: usize, dir: &std::path::Path) -> Vec<WeightRecord> {
    run_with(workers, dir, None)
}

/// [`run`], with an arm registry file if given.
fn run_with(workers: usize, dir: &std::path::Path, arms: Option<&std::path::Path>) -> Vec<WeightRecord> {
    let spec = TrafficSpec {
        assignments_out: dir.join("a.jsonl"),
        outcomes_out: dir.join("o.jsonl"),
        count: 20_000,
        entities: 3,
        arms: 3,
        rate: 0.2,
        duration_ms: 3 * 3_600_000,
        seed: 5,
        ..TrafficSpec::default()
    };
    generate_files(&spec).expect("generate");
    let job = Dataflow::from_toml_str(&format!(
        "name = \"step\"\ntick = \"5m\"\nwindow = \"2h\"\nattribution = \"30m\"\nallowed_lateness = \"1m\"\n\
         [policy]\nmin_trials = 200\nfloor = {FLOOR}\nmax_step = {MAX_STEP}\n\
         [decision]\nstop_p_best = 0\n"
    ))
    .expect("valid job");
    let options = ReplayOptions {
        workers,
        arms: arms.map(|a| Input::File(a.to_path_buf())),
        ..ReplayOptions::new(job, Input::File(spec.assignments_out.clone()), Input::File(spec.outcomes_out))
    };
    replay_records(&options).expect("replay").0
}

fn target(r: &WeightRecord) -> Vec<f64> {
    let k = r.arms.len() as f64;
    r.arms.iter().map(|a| FLOOR + (1.0 - k * FLOOR) * a.p_best).collect()
}

#[test]
fn weights_walk_to_their_target_by_at_most_max_step_per_tick() {
    let dir = tempfile::tempdir().expect("tempdir");
    let records = run(2, dir.path());
    let mut by_entity: BTreeMap<&str, Vec<&WeightRecord>> = BTreeMap::new();
    for r in &records {
        by_entity.entry(&r.entity_id).or_default().push(r);
    }
    let mut binding_steps = 0;
    for (entity, rs) in by_entity {
        for pair in rs.windows(2) {
            let (before, after) = (pair[0], pair[1]);
            let same_arms = before.arms.iter().map(|a| &a.arm_id).eq(after.arms.iter().map(|a| &a.arm_id));
            if !same_arms || before.status != after.status {
                continue;
            }
            let step = before.arms.iter().zip(&after.arms).map(|(a, b)| (a.weight - b.weight).abs()).fold(0.0, f64::max);
            assert!(step <= MAX_STEP + 1e-12, "{entity} moved {step} between versions {} and {}", before.version, after.version);
            if (step - MAX_STEP).abs() < 1e-12 {
                binding_steps += 1;
            }
            // Until the weights reach their target, the next tick has a record.
            let away = before.arms.iter().zip(target(before)).any(|(a, t)| (a.weight - t).abs() > 1e-9);
            if before.status == banditflow_core::policy::Status::Adaptive && away {
                // Versions are `as_of`: the next tick's is one tick (5 minutes) later.
                assert_eq!(after.version, before.version + 300_000, "{entity} stopped walking at {}", before.version);
            }
        }
        for r in rs {
            let sum: f64 = r.arms.iter().map(|a| a.weight).sum();
            assert!((sum - 1.0).abs() < 1e-9);
            assert!(r.arms.iter().all(|a| a.weight >= FLOOR - 1e-12));
        }
    }
    assert!(binding_steps > 0, "the step limit was never binding: the test data is too tame");
}

#[test]
fn the_step_limit_holds_when_arms_are_declared_and_retired() {
    // The traffic's arms, then a new arm declared an hour in (for an entity out of burn-in by
    // then) and an arm retired at ninety minutes.
    let dir = tempfile::tempdir().expect("tempdir");
    let first = run(1, dir.path());
    let t0 = first.iter().map(|r| r.as_of).min().expect("records");
    let arms = dir.path().join("arms.jsonl");
    std::fs::write(
        &arms,
        format!(
            "{{\"entity_id\":\"entity-000\",\"arm_id\":\"arm-new\",\"state\":\"active\",\"ts\":{}}}\n\
             {{\"entity_id\":\"entity-001\",\"arm_id\":\"arm-1\",\"state\":\"retired\",\"ts\":{}}}\n",
            t0 + 3_600_000,
            t0 + 5_400_000
        ),
    )
    .expect("registry");
    let records = run_with(2, dir.path(), Some(&arms));
    let mut by_entity: BTreeMap<&str, Vec<&WeightRecord>> = BTreeMap::new();
    for r in &records {
        by_entity.entry(&r.entity_id).or_default().push(r);
    }
    let mut changes = 0;
    for (entity, rs) in &by_entity {
        for pair in rs.windows(2) {
            let (before, after) = (pair[0], pair[1]);
            if before.arms.iter().map(|a| &a.arm_id).eq(after.arms.iter().map(|a| &a.arm_id)) {
                continue;
            }
            // (The entity stays out of burn-in: the new arm walks up to its new-arm weight.)
            changes += 1;
            // From the last weights carried over (a new arm at 0, a retired arm's weight
            // shared by the others), every arm moves at most `max_step`.
            let previous: Vec<(&str, f64)> = before.arms.iter().map(|a| (a.arm_id.as_str(), a.weight)).collect();
            let names: Vec<&str> = after.arms.iter().map(|a| a.arm_id.as_str()).collect();
            let carried = banditflow_core::policy::carried_over(&previous, &names).expect("an arm is kept");
            for (a, c) in after.arms.iter().zip(&carried) {
                assert!((a.weight - c).abs() <= MAX_STEP + 1e-12, "{entity} {} jumped from {c} to {} at {}", a.arm_id, a.weight, after.version);
            }
            let sum: f64 = after.arms.iter().map(|a| a.weight).sum();
            assert!((sum - 1.0).abs() < 1e-9);
        }
    }
    assert_eq!(changes, 2, "one declaration and one retirement, each a change of arms");
    // The new arm ramps up from nothing, a step at a time.
    let new_arm: Vec<f64> = by_entity["entity-000"].iter().filter_map(|r| r.arms.iter().find(|a| a.arm_id == "arm-new").map(|a| a.weight)).collect();
    assert!(new_arm[0] <= MAX_STEP + 1e-12 && new_arm.len() > 1, "{new_arm:?}");
    let declared = by_entity["entity-000"].iter().find(|r| r.arms.iter().any(|a| a.arm_id == "arm-new")).expect("declared");
    assert_eq!(declared.status.as_str(), "adaptive", "a new arm does not send the entity back to burn-in: {declared:?}");
}

#[test]
fn step_limited_output_is_the_same_for_one_and_three_workers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let strip = |mut rs: Vec<WeightRecord>| {
        rs.iter_mut().for_each(|r| r.computed_at = 0);
        rs
    };
    assert!(strip(run(1, dir.path())) == strip(run(3, dir.path())));
}

#[test]
fn without_new_counts_the_weights_keep_walking_one_record_per_tick() {
    use std::io::Write;
    const T0: i64 = 1_767_225_600_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut a = std::fs::File::create(dir.path().join("a.jsonl")).expect("create");
    let mut o = std::fs::File::create(dir.path().join("o.jsonl")).expect("create");
    // A few trials per arm (burn-in: uniform), then many where arm b clearly wins.
    let batches = [(0i64, 5usize), (300_000, 400)];
    for (offset, n) in batches {
        for i in 0..n {
            for (arm, every) in [("a", 20), ("b", 3)] {
                let id = format!("{arm}-{offset}-{i}");
                writeln!(a, r#"{{"assignment_id":"{id}","entity_id":"e","arm_id":"{arm}","ts":{}}}"#, T0 + offset).expect("write");
                if i % every == 0 {
                    writeln!(o, r#"{{"assignment_id":"{id}","ts":{}}}"#, T0 + offset + 1_000).expect("write");
                }
            }
        }
    }
    // Time runs on (an outcome nobody claims) so the walk has ticks to happen in.
    writeln!(o, r#"{{"assignment_id":"nobody","ts":{}}}"#, T0 + 3_600_000).expect("write");
    drop((a, o));
    let job = Dataflow::from_toml_str(&format!(
        "name = \"walk\"\ntick = \"1m\"\nwindow = \"24h\"\nattribution = \"10m\"\nallowed_lateness = \"1m\"\n\
         [policy]\nmin_trials = 10\nfloor = {FLOOR}\nmax_step = {MAX_STEP}\n\
         [decision]\nstop_p_best = 0\n"
    ))
    .expect("valid job");
    let options = ReplayOptions {
        workers: 2,
        ..ReplayOptions::new(job, Input::File(dir.path().join("a.jsonl")), Input::File(dir.path().join("o.jsonl")))
    };
    let (records, _) = replay_records(&options).expect("replay");
    let b: Vec<f64> = records.iter().map(|r| r.arms[1].weight).collect();
    // Uniform in burn-in, then +max_step per tick on consecutive versions, then the target.
    assert_eq!(b[0], 0.5);
    let walk: Vec<u64> = records.iter().skip(1).map(|r| r.version).collect();
    assert!(walk.windows(2).all(|w| w[1] == w[0] + 60_000), "one record per (1-minute) tick: {walk:?}");
    for w in b.windows(2) {
        assert!(w[1] - w[0] <= MAX_STEP + 1e-12);
    }
    let last = records.last().expect("records");
    let t = target(last);
    assert!(last.arms.iter().zip(&t).all(|(a, t)| (a.weight - t).abs() < 1e-12), "arrives at the target");
    assert!(records.len() >= 9, "0.5 -> ~0.98 takes nine or more steps of 0.05: {}", records.len());
}
