//! The demo: a deterministic sample of traffic with known true conversion rates, replayed
//! through the default dataflow, ending with each entity's final weights as a table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use crate::config::{ConfigError, Dataflow};
use crate::generate::{generate_files, true_rate, GenerateError, TrafficSpec};
use crate::replay::{replay_records, Input, ReplayError, ReplayOptions, ReplaySummary};
use crate::weights::WeightRecord;

/// The job the demo runs: `dataflows/default.toml`, compiled in.
pub const DEFAULT_JOB: &str = include_str!("../dataflows/default.toml");

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The embedded job file is invalid (a build problem).
    #[error("embedded default job: {0}")]
    Job(#[from] ConfigError),
    /// The sample could not be generated.
    #[error("generating the sample: {0}")]
    Generate(#[from] GenerateError),
    /// The replay failed.
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// The scratch directory could not be made.
    #[error("creating {path}: {source}")]
    Scratch {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// What the demo computed: the sample it made and every weight record.
#[derive(Debug)]
pub struct DemoRun {
    /// The traffic that was generated.
    pub spec: TrafficSpec,
    /// The replay's counters.
    pub summary: ReplaySummary,
    /// All weight records, in publication order.
    pub records: Vec<WeightRecord>,
}

/// The demo's sample: 8 entities x 3 arms, 200,000 assignments over 12 hours.
pub fn sample_spec(dir: &std::path::Path) -> TrafficSpec {
    TrafficSpec {
        assignments_out: dir.join("assignments.jsonl"),
        outcomes_out: dir.join("outcomes.jsonl"),
        count: 200_000,
        entities: 8,
        arms: 3,
        rate: 0.05,
        duration_ms: 12 * 3_600_000,
        seed: 7,
        ..TrafficSpec::default()
    }
}

/// Generates the sample into a scratch directory and replays it with `workers` workers.
pub fn run(workers: usize) -> Result<DemoRun, DemoError> {
    let job = Dataflow::from_toml_str(DEFAULT_JOB)?;
    let dir = std::env::temp_dir().join(format!("banditflow-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|source| DemoError::Scratch { path: dir.clone(), source })?;
    let spec = sample_spec(&dir);
    generate_files(&spec)?;
    let options = ReplayOptions {
        workers,
        ..ReplayOptions::new(job, Input::File(spec.assignments_out.clone()), Input::File(spec.outcomes_out.clone()))
    };
    let result = replay_records(&options);
    let _ = std::fs::remove_dir_all(&dir);
    let (records, summary) = result?;
    Ok(DemoRun { spec, summary, records })
}

/// The index in a generated name such as `entity-007` or `arm-2`.
fn index_of(name: &str) -> Option<u32> {
    name.rsplit('-').next()?.parse().ok()
}

/// Each entity's last record as a table, with the generator's true rate beside each arm.
pub fn final_weights_table(run: &DemoRun) -> String {
    let mut last: BTreeMap<&str, &WeightRecord> = BTreeMap::new();
    for r in &run.records {
        last.insert(&r.entity_id, r);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:<6} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9}",
        "entity", "arm", "weight", "p_best", "trials", "successes", "observed", "true_rate"
    );
    for (entity, record) in last {
        for arm in &record.arms {
            let truth = match (index_of(entity), index_of(&arm.arm_id)) {
                (Some(e), Some(a)) => format!("{:.4}", true_rate(run.spec.seed, run.spec.rate, e, a)),
                _ => "?".to_owned(),
            };
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
