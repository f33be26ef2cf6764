//! The sample-ratio check through the whole dataflow, closed loop: serving draws each arm by
//! the weights the dataflow itself published (replaying what came before, two ticks at a
//! time: a record of tick `t` depends only on assignments up to `t - attribution`), and
//! writes `weights_version` on half of its assignments (the rest are matched by their `ts`).
//! Honest serving is never flagged, though its weights move a lot; a naive test on the
//! window's totals against the newest weights flags it. Serving that ignores the weights
//! (uniform while they are skewed) is flagged. Fixed seeds, `srm_alpha` = 0.001.

use std::io::Write;
use std::path::Path;

use banditflow::replay::{replay_records, Input, ReplayOptions};
use banditflow_core::config::Dataflow;
use banditflow_core::record::WeightRecord;
use banditflow_core::statistics::goodness_of_fit;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const T0: i64 = 1_767_225_600_000;
const TICK: i64 = 1_000;
const TICKS: i64 = 50;
const PER_TICK: i64 = 150;
const WINDOW: i64 = 20_000;
const ALPHA: f64 = 0.001;

fn job() -> Dataflow {
    Dataflow::from_toml_str(&format!(
        "name = \"srm\"\ntick = \"1s\"\nwindow = \"20s\"\nattribution = \"2s\"\nallowed_lateness = \"0s\"\n\
         [policy]\nmin_trials = 200\nfloor = 0.05\nmax_step = 0.05\n[decision]\nsrm_alpha = {ALPHA}\nstop_p_best = 0\n"
    ))
    .expect("valid job")
}

#[derive(Clone, Copy, PartialEq)]
enum Serving {
    /// Draws by the weights in force, as serving should.
    Honest,
    /// Uniform, whatever the weights.
    Uniform,
}

struct Served {
    arm: usize,
    ts: i64,
    version: Option<u64>,
    converted: bool,
}

fn replay(dir: &Path, served: &[Served], until_ms: i64) -> Vec<WeightRecord> {
    let (ap, op) = (dir.join("a.jsonl"), dir.join("o.jsonl"));
    let mut a = std::fs::File::create(&ap).expect("create");
    let mut o = std::fs::File::create(&op).expect("create");
    for (i, s) in served.iter().enumerate() {
        let version = s.version.map_or(String::new(), |v| format!(r#","weights_version":{v}"#));
        writeln!(a, r#"{{"assignment_id":"x{i}","entity_id":"e","arm_id":"arm{}","ts":{}{version}}}"#, s.arm, s.ts).expect("write");
        if s.converted {
            writeln!(o, r#"{{"assignment_id":"x{i}","ts":{}}}"#, s.ts + 100).expect("write");
        }
    }
    // Time runs on to `until_ms` (an outcome nobody claims), so every tick before it is out.
    writeln!(o, r#"{{"assignment_id":"nobody","ts":{until_ms}}}"#).expect("write");
    drop((a, o));
    replay_records(&ReplayOptions::new(job(), Input::File(ap), Input::File(op))).expect("replay").0
}

/// The closed loop: returns the final replay's records.
fn closed_loop(dir: &Path, serving: Serving, seed: u64) -> Vec<WeightRecord> {
    let mut rng = StdRng::seed_from_u64(seed);
    let rates = [0.15, 0.1];
    let mut served: Vec<Served> = Vec::new();
    for chunk in 0..TICKS / 2 {
        let first = chunk * 2;
        // Records of every tick before this chunk's second tick.
        let records = replay(dir, &served, T0 + (first + 2) * TICK - 1);
        for tick in first..first + 2 {
            let start = T0 + tick * TICK;
            let in_force = records.iter().rev().find(|r| (r.version as i64) < start);
            for i in 0..PER_TICK {
                let ts = start + i * (TICK / PER_TICK);
                let weights: Vec<f64> = match (serving, in_force) {
                    (Serving::Honest, Some(r)) => r.arms.iter().map(|a| a.weight).collect(),
                    _ => vec![0.5, 0.5],
                };
                let arm = usize::from(rng.random::<f64>() >= weights[0]);
                let version = in_force.filter(|_| i % 2 == 0).map(|r| r.version);
                served.push(Served { arm, ts, version, converted: rng.random_bool(rates[arm]) });
            }
        }
    }
    replay(dir, &served, T0 + (TICKS + 2) * TICK)
}

/// The naive check: the window's assignments per arm against the newest weights alone.
fn naive_flags(record: &WeightRecord) -> bool {
    let observed: Vec<f64> = record.arms.iter().map(|a| a.trials as f64).collect();
    let total: f64 = observed.iter().sum();
    let expected: Vec<f64> = record.arms.iter().map(|a| a.weight * total).collect();
    goodness_of_fit(observed.into_iter().zip(expected)).p_value < ALPHA
}

#[test]
fn serving_that_follows_the_weights_passes_and_serving_that_ignores_them_is_flagged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let honest = closed_loop(dir.path(), Serving::Honest, 7);
    let full: Vec<&WeightRecord> = honest.iter().filter(|r| r.as_of - T0 >= WINDOW && r.srm.matched > 1_000).collect();
    assert!(full.len() > 10, "records with a full window: {}", full.len());
    let weights: Vec<f64> = honest.iter().map(|r| r.arms[0].weight).collect();
    let (low, high) = weights.iter().fold((1.0f64, 0.0f64), |(l, h), w| (l.min(*w), h.max(*w)));
    assert!(high > 0.8 && low <= 0.55, "the weights moved: {low}..{high}");
    for r in &honest {
        assert!(!r.srm.flagged, "honest serving flagged at {}: {:?}", r.as_of, r.srm);
        assert!(r.srm.unmatched <= 2 * PER_TICK as u64 * 2, "only assignments served before any record are unmatched: {:?}", r.srm);
    }
    assert!(honest.iter().any(|r| r.as_of - T0 >= WINDOW && naive_flags(r)), "a test on totals against the newest weights would flag honest serving");

    let uniform = closed_loop(dir.path(), Serving::Uniform, 7);
    let last = uniform.iter().rev().find(|r| r.as_of - T0 <= TICKS * TICK).expect("records");
    assert!(last.arms[0].weight > 0.8, "the weights are skewed: {last:?}");
    assert!(last.srm.flagged && last.srm.p_value < ALPHA, "uniform serving under skewed weights: {:?}", last.srm);
}
