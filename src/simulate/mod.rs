//! The closed-loop simulator: runs the real dataflow against environments whose truth is
//! known ([`banditflow_core::scenario`], [`banditflow_core::environment`]) and reports the
//! regret of its weights against a uniform split and an oracle.
//!
//! Repetitions are independent and run in parallel on `threads` threads; each is a function
//! of (scenario, seed, rep) alone, whatever the number of timely workers it runs on, and the
//! report lists them in rep order, so the report is the same bytes for any number of threads
//! or workers.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use banditflow_core::config::Dataflow;
use banditflow_core::regret::{mean_and_se, sample_steps};
use banditflow_core::scenario::{Scenario, ScenarioError};
use serde::Serialize;

pub mod closed_loop;
pub mod logs;
pub mod plot;

use closed_loop::{run_rep, RepOutcome};
use logs::Logs;

/// Points on each regret curve (log-spaced from step 1 to the last).
pub const CURVE_POINTS: usize = 61;

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// The scenario file.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// The job file it names.
    #[error("the scenario's dataflow: {0}")]
    Dataflow(#[from] banditflow_core::config::ConfigError),
    /// A repetition failed (its logs could not be written, or the dataflow stopped).
    #[error("repetition {rep}: {message}")]
    Rep {
        /// Which.
        rep: u32,
        /// Why.
        message: String,
    },
}

/// How to run a scenario.
#[derive(Clone, Debug)]
pub struct SimulateOptions {
    /// Repetitions (the scenario's `reps` unless given).
    pub reps: Option<u32>,
    /// Seed (the scenario's `seed` unless given).
    pub seed: Option<u64>,
    /// Threads the repetitions share.
    pub threads: usize,
    /// Timely workers per repetition (1 unless given).
    pub workers: usize,
    /// Where to write each repetition's logs (`rep-NNN/`), if anywhere.
    pub log_dir: Option<PathBuf>,
}

/// One policy's regret over the repetitions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PolicyRegret {
    /// Mean cumulative regret at each sampled step.
    pub regret_mean: Vec<f64>,
    /// Its standard error.
    pub regret_se: Vec<f64>,
    /// The cumulative regret after the last step, one value per repetition.
    pub final_regret: Vec<f64>,
}

/// What `banditflow simulate` reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// Units served per entity.
    pub total_steps: u64,
    /// Repetitions.
    pub reps: u32,
    /// Seed.
    pub seed: u64,
    /// Steps between refreshes (the dataflow's tick).
    pub refresh_every: u64,
    /// Entities per repetition (regret is per entity, averaged over them).
    pub entities: u32,
    /// Arms live at any time.
    pub arms: u32,
    /// The steps after which the curves are sampled (log-spaced, the last step last).
    pub steps: Vec<u64>,
    /// The dataflow's weights.
    pub weights: PolicyRegret,
    /// A uniform split of the live arms.
    pub uniform: PolicyRegret,
    /// The best arm as of each refresh, knowing the true rates.
    pub oracle: PolicyRegret,
    /// Of the arms in the records read back, how many had the arm's true rate inside `ci95`.
    pub ci95_coverage: Coverage,
    /// Weight records read back, over all repetitions.
    pub records: u64,
}

/// How often the published credible intervals held the truth.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Coverage {
    /// Arms whose interval held the true rate.
    pub covered: u64,
    /// Arms checked (every arm of every record read).
    pub checked: u64,
    /// `covered / checked` (0 with nothing checked).
    pub share: f64,
}

/// The scenario at `path` with the job it names, the job's tick set to `refresh_every` (one
/// step is one millisecond of event time).
pub fn load(path: &Path, refresh_every: Option<u64>) -> Result<(Scenario, Dataflow), SimulateError> {
    let mut scenario = Scenario::load(path)?;
    if let Some(refresh) = refresh_every {
        scenario.refresh_every = refresh.max(1);
    }
    // A job file as the worker reads it (its [kafka] and the like are simply not used).
    let mut job = crate::deployment::Job::load(&scenario.dataflow)?.dataflow;
    job.tick_ms = scenario.refresh_every;
    Ok((scenario, job))
}

/// Runs every repetition of `scenario` and summarizes them; `progress` hears of each
/// repetition as it ends (how many are done).
pub fn simulate(scenario: &Scenario, job: &Dataflow, options: &SimulateOptions, progress: impl Fn(u32, u32) + Sync) -> Result<Report, SimulateError> {
    let mut scenario = scenario.clone();
    scenario.reps = options.reps.unwrap_or(scenario.reps).max(1);
    scenario.seed = options.seed.unwrap_or(scenario.seed);
    let at = sample_steps(scenario.steps, CURVE_POINTS);
    let reps = scenario.reps;
    let next = AtomicU32::new(0);
    let done = AtomicU32::new(0);
    let results: Mutex<Vec<Option<Result<RepOutcome, String>>>> = Mutex::new(vec![None; reps as usize]);
    std::thread::scope(|scope| {
        for _ in 0..options.threads.clamp(1, reps as usize) {
            scope.spawn(|| loop {
                let rep = next.fetch_add(1, Ordering::Relaxed);
                if rep >= reps {
                    break;
                }
                let logs = match &options.log_dir {
                    Some(dir) => Logs::create(&dir.join(format!("rep-{rep:03}"))).map(Some),
                    None => Ok(None),
                };
                let outcome = logs.and_then(|logs| run_rep(&scenario, job, rep, &at, logs, options.workers));
                if let Ok(mut results) = results.lock() {
                    results[rep as usize] = Some(outcome);
                }
                progress(done.fetch_add(1, Ordering::Relaxed) + 1, reps);
            });
        }
    });
    let results = results.into_inner().unwrap_or_default();
    let mut outcomes = Vec::with_capacity(results.len());
    for (rep, result) in results.into_iter().enumerate() {
        match result {
            Some(Ok(outcome)) => outcomes.push(outcome),
            Some(Err(message)) => return Err(SimulateError::Rep { rep: rep as u32, message }),
            None => return Err(SimulateError::Rep { rep: rep as u32, message: "did not run".into() }),
        }
    }
    let policy = |curve: fn(&RepOutcome) -> &Vec<f64>| {
        let curves: Vec<&[f64]> = outcomes.iter().map(|o| curve(o).as_slice()).collect();
        let (regret_mean, regret_se) = mean_and_se(&curves);
        PolicyRegret { regret_mean, regret_se, final_regret: curves.iter().map(|c| c.last().copied().unwrap_or(0.0)).collect() }
    };
    let (covered, checked) = outcomes.iter().fold((0, 0), |(c, n), o| (c + o.coverage.0, n + o.coverage.1));
    Ok(Report {
        scenario: scenario.name.clone(),
        total_steps: scenario.steps,
        reps,
        seed: scenario.seed,
        refresh_every: scenario.refresh_every,
        entities: scenario.entities,
        arms: scenario.arms,
        steps: at,
        weights: policy(|o| &o.weights),
        uniform: policy(|o| &o.uniform),
        oracle: policy(|o| &o.oracle),
        ci95_coverage: Coverage { covered, checked, share: if checked > 0 { covered as f64 / checked as f64 } else { 0.0 } },
        records: outcomes.iter().map(|o| o.records).sum(),
    })
}

/// One point of a sweep over `refresh_every`: the final regret of each policy.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepPoint {
    /// Steps between refreshes.
    pub refresh_every: u64,
    /// Mean final regret of the weights and its standard error.
    pub weights: [f64; 2],
    /// The same for the uniform split.
    pub uniform: [f64; 2],
    /// The same for the oracle at each refresh.
    pub oracle: [f64; 2],
}

/// A scenario run at several refresh intervals, everything else (seeds included) equal.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sweep {
    /// The scenario's name.
    pub scenario: String,
    /// Units served per entity.
    pub total_steps: u64,
    /// Repetitions per point.
    pub reps: u32,
    /// The points, by increasing `refresh_every`.
    pub points: Vec<SweepPoint>,
}

/// Runs `scenario` once per refresh interval in `refreshes` (sorted, each at least 1).
pub fn sweep(path: &Path, refreshes: &[u64], options: &SimulateOptions, progress: impl Fn(u64) + Sync) -> Result<Sweep, SimulateError> {
    let mut refreshes: Vec<u64> = refreshes.iter().map(|r| (*r).max(1)).collect();
    refreshes.sort_unstable();
    refreshes.dedup();
    let mut points = Vec::with_capacity(refreshes.len());
    let mut head = None;
    for refresh in refreshes {
        let (scenario, job) = load(path, Some(refresh))?;
        let report = simulate(&scenario, &job, options, |_, _| {})?;
        // The final regrets as one-point curves: the same mean and standard error as the curves'.
        let final_of = |p: &PolicyRegret| {
            let finals: Vec<&[f64]> = p.final_regret.iter().map(std::slice::from_ref).collect();
            let (mean, se) = mean_and_se(&finals);
            [mean.first().copied().unwrap_or(0.0), se.first().copied().unwrap_or(0.0)]
        };
        points.push(SweepPoint { refresh_every: refresh, weights: final_of(&report.weights), uniform: final_of(&report.uniform), oracle: final_of(&report.oracle) });
        head.get_or_insert((report.scenario.clone(), report.total_steps, report.reps));
        progress(refresh);
    }
    let (scenario, total_steps, reps) = head.unwrap_or_default();
    Ok(Sweep { scenario, total_steps, reps, points })
}
