//! The same records in, the same weight records out (`computed_at` aside): whatever the
//! number of workers, and whatever the arrival order the lateness bound allows.

use std::path::Path;

use banditflow_core::config::Dataflow;
use banditflow::traffic::{generate_files, TrafficSpec};
use banditflow::replay::{replay_records, Input, ReplayOptions};
use banditflow_core::record::WeightRecord;

fn job() -> Dataflow {
    Dataflow::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("dataflows/default.toml")).expect("default job loads")
}

fn traffic(dir: &Path, name: &str, disorder_ms: u64) -> TrafficSpec {
    let spec = TrafficSpec {
        assignments_out: dir.join(format!("{name}-assignments.jsonl")),
        outcomes_out: dir.join(format!("{name}-outcomes.jsonl")),
        count: 30_000,
        entities: 6,
        arms: 3,
        rate: 0.08,
        duration_ms: 5 * 3_600_000,
        disorder_ms,
        duplicates: 0.02,
        seed: 11,
        ..TrafficSpec::default()
    };
    generate_files(&spec).expect("generate");
    spec
}

fn run(spec: &TrafficSpec, workers: usize) -> Vec<WeightRecord> {
    let options = ReplayOptions {
        workers,
        ..ReplayOptions::new(job(), Input::File(spec.assignments_out.clone()), Input::File(spec.outcomes_out.clone()))
    };
    let (mut records, summary) = replay_records(&options).expect("replay");
    assert_eq!(summary.counters.late + summary.counters.too_late, 0, "input is within the lateness bound");
    assert!(summary.counters.duplicate > 0, "the input has duplicates");
    for r in &mut records {
        r.computed_at = 0;
    }
    records
}

#[test]
fn output_is_identical_for_one_two_and_four_workers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = traffic(dir.path(), "sorted", 0);
    let one = run(&spec, 1);
    assert!(one.len() > 1_000, "enough records to compare: {}", one.len());
    assert!(one.iter().any(|r| r.status == banditflow_core::policy::Status::Adaptive), "some entity leaves burn-in");
    for workers in [2, 4] {
        assert!(run(&spec, workers) == one, "{workers} workers differ from 1");
    }
}

#[test]
fn output_is_identical_for_input_shuffled_within_the_lateness_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sorted = traffic(dir.path(), "sorted", 0);
    let shuffled = traffic(dir.path(), "shuffled", 90_000);
    let a = std::fs::read(&sorted.assignments_out).expect("read");
    let b = std::fs::read(&shuffled.assignments_out).expect("read");
    assert_ne!(a, b, "the shuffled file really is in another order");
    let expected = run(&sorted, 1);
    assert!(run(&shuffled, 1) == expected);
    assert!(run(&shuffled, 2) == expected);
}
