//! The closed-loop simulator (`banditflow simulate`): its weights earn their keep, it is
//! deterministic, its weights are the dataflow's (replay over its logs gives the same
//! records), its credible intervals are calibrated, and a slower refresh costs regret.

use std::path::{Path, PathBuf};

use banditflow::file::Input;
use banditflow::replay::{replay_records, ReplayOptions};
use banditflow::simulate::{load, simulate, Report, SimulateOptions};
use banditflow_core::record::WeightRecord;
use banditflow_core::scenario::Scenario;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A scenario file in `dir` running `dataflows/simulate.toml`.
fn scenario(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let job = root().join("dataflows/simulate.toml");
    let text = format!("name = \"{name}\"\ndataflow = \"{}\"\n{body}", job.display());
    std::fs::write(&path, text).expect("write scenario");
    path
}

fn run(path: &Path, options: SimulateOptions) -> Report {
    run_refreshed(path, None, options)
}

/// [`run`] with the scenario's `refresh_every` replaced.
fn run_refreshed(path: &Path, refresh_every: Option<u64>, options: SimulateOptions) -> Report {
    let (scenario, job) = load(path, refresh_every).expect("scenario loads");
    simulate(&scenario, &job, &options, |_, _| {}).expect("simulation runs")
}

fn options(threads: usize) -> SimulateOptions {
    SimulateOptions { reps: None, seed: None, threads, workers: 1, log_dir: None }
}

fn last(values: &[f64]) -> f64 {
    values.last().copied().unwrap_or(f64::NAN)
}

/// The regret at the sampled step nearest `step`.
fn at(report: &Report, values: &[f64], step: u64) -> f64 {
    let i = report.steps.iter().position(|s| *s >= step).unwrap_or(report.steps.len() - 1);
    values[i]
}

const STATIONARY: &str = "steps = 60000\nreps = 4\nseed = 11\nrefresh_every = 100\n[arms]\ncount = 6\nrate = { beta = [2.0, 18.0] }\n[delay]\nkind = \"fixed\"\nsteps = 3\n";

#[test]
fn the_weights_lose_far_less_than_a_uniform_split_and_ever_more_slowly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let churning = "steps = 60000\nreps = 8\nseed = 5\nrefresh_every = 100\n[arms]\ncount = 5\nrate = { beta = [2.0, 18.0] }\n[churn]\nprobability = 0.0001\n[delay]\nkind = \"exponential\"\nsteps = 4\n";
    for (name, body) in [("stationary", STATIONARY), ("churning", churning)] {
        let report = run(&scenario(dir.path(), name, body), options(2));
        let (weights, uniform) = (&report.weights.regret_mean, &report.uniform.regret_mean);
        // Far below the uniform split at the end: every repetition, not only on average.
        for (w, u) in report.weights.final_regret.iter().zip(&report.uniform.final_regret) {
            assert!(*w < 0.3 * u, "{name}: weights {w} against uniform {u}");
        }
        // Sublinear: from a tenth of the run to its end the uniform split's regret grows
        // about tenfold (it is linear); the weights' grows far less.
        let growth = |curve: &[f64]| last(curve) / at(&report, curve, report.total_steps / 10);
        assert!(growth(uniform) > 8.0, "{name}: uniform grew {}", growth(uniform));
        assert!(growth(weights) < 0.7 * growth(uniform), "{name}: weights grew {} against uniform {}", growth(weights), growth(uniform));
        assert!(report.records > 0 && report.weights.final_regret.len() == report.reps as usize);
    }
}

#[test]
fn the_same_seed_gives_the_same_bytes_on_any_number_of_threads_and_another_seed_other_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = scenario(dir.path(), "det", &STATIONARY.replace("steps = 60000", "steps = 20000"));
    let json = |threads: usize, workers: usize, seed: Option<u64>| serde_json::to_string(&run(&path, SimulateOptions { seed, workers, ..options(threads) })).expect("json");
    let one = json(1, 1, None);
    assert_eq!(one, json(2, 1, None), "1 and 2 threads");
    assert_eq!(one, json(1, 2, None), "1 and 2 timely workers per repetition");
    assert_eq!(one, json(2, 1, None), "run again");
    assert_ne!(one, json(1, 1, Some(12)), "another seed");
}

/// A record without its wall-clock time.
fn without_computed_at(record: &WeightRecord) -> WeightRecord {
    WeightRecord { computed_at: 0, ..record.clone() }
}

#[test]
fn the_simulators_weights_are_what_replay_computes_from_its_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let body = "steps = 30000\nreps = 1\nseed = 3\nrefresh_every = 250\n[arms]\ncount = 4\nrate = { beta = [2.0, 18.0] }\n[churn]\nprobability = 0.0003\n[delay]\nkind = \"exponential\"\nsteps = 6\n";
    let path = scenario(dir.path(), "logged", body);
    let logs = dir.path().join("logs");
    let report = run(&path, SimulateOptions { log_dir: Some(logs.clone()), ..options(1) });
    let rep = logs.join("rep-000");
    let read: Vec<WeightRecord> = std::fs::read_to_string(rep.join("weights.jsonl"))
        .expect("weights log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("record"))
        .collect();
    assert_eq!(read.len() as u64, report.records);
    let assignments = std::fs::read_to_string(rep.join("assignments.jsonl")).expect("assignments log");
    assert!(assignments.lines().skip(1000).take(10).all(|l| l.contains("\"weights_version\":")), "served under published weights");
    let arms = std::fs::read_to_string(rep.join("arms.jsonl")).expect("arms log");
    assert!(arms.contains("\"retired\""), "churn went through the arm registry");

    let (scenario, job) = load(&path, None).expect("scenario");
    assert_eq!(scenario.refresh_every, job.tick_ms);
    let options = ReplayOptions {
        arms: Some(Input::parse(&rep.join("arms.jsonl").display().to_string())),
        ..ReplayOptions::new(job, Input::parse(&rep.join("assignments.jsonl").display().to_string()), Input::parse(&rep.join("outcomes.jsonl").display().to_string()))
    };
    let (replayed, _) = replay_records(&options).expect("replay");
    let replayed: Vec<WeightRecord> = replayed.iter().map(without_computed_at).collect();
    let read: Vec<WeightRecord> = read.iter().map(without_computed_at).collect();
    // Replay stops at the last event's tick; the simulator read every tick up to its last step.
    assert!(!replayed.is_empty() && replayed.len() <= read.len());
    assert_eq!(replayed[..], read[..replayed.len()]);
}

#[test]
fn credible_intervals_cover_the_truth_95_percent_of_the_time_under_adaptive_allocation() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Rates from the job's own prior (Beta(1, 1)); the window holds the whole run, so each
    // published posterior is the exact one given everything seen.
    let body = "steps = 4000\nreps = 20\nseed = 2\nrefresh_every = 100\nentities = 25\n[arms]\ncount = 4\nrate = { beta = [1.0, 1.0] }\n";
    let report = run(&scenario(dir.path(), "calibration", body), options(2));
    let c = report.ci95_coverage;
    assert!(c.checked > 50_000, "{c:?}");
    assert!((c.share - 0.95).abs() <= 0.01, "coverage {} over {} arm-ticks", c.share, c.checked);
}

#[test]
fn a_slower_refresh_costs_regret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = scenario(dir.path(), "refresh", &STATIONARY.replace("reps = 4", "reps = 6"));
    let regret = |refresh: u64| last(&run_refreshed(&path, Some(refresh), options(2)).weights.regret_mean);
    let (fast, slow) = (regret(100), regret(1000));
    assert!(slow > fast, "refresh 1000: {slow}, refresh 100: {fast}");
}

#[test]
fn every_bundled_scenario_loads_with_its_job() {
    let mut seen = 0;
    for entry in std::fs::read_dir(root().join("dataflows/scenarios")).expect("scenarios folder") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
            load(&path, None).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(scenario.steps > 0);
            seen += 1;
        }
    }
    assert!(seen >= 3, "{seen} scenarios");
}
