//! `banditflow simulate`: a scenario's repetitions through the real dataflow, the regret
//! report as JSON (standard output or `--out`), an SVG plot with `--plot`, progress on
//! standard error.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use banditflow::simulate::{load, plot, simulate, sweep, SimulateOptions};

/// Run the dataflow in a closed loop against simulated arms and report regret.
#[derive(clap::Args)]
pub struct Args {
    /// The scenario (TOML; see the README's "Simulate").
    #[arg(long)]
    scenario: PathBuf,
    /// Repetitions (the scenario's `reps` by default).
    #[arg(long)]
    reps: Option<u32>,
    /// Seed (the scenario's `seed` by default).
    #[arg(long)]
    seed: Option<u64>,
    /// Steps between weight refreshes (the scenario's `refresh_every` by default).
    #[arg(long)]
    refresh_every: Option<u64>,
    /// Threads the repetitions share (all cores by default); the report does not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// Timely worker threads per repetition (1 by default); the report does not depend on it.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Where to write the report (standard output by default).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where to draw the regret curves (SVG).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Where to write each repetition's assignments, outcomes, arm registry and weight
    /// records (`rep-000/…`), in the formats `banditflow replay` reads.
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// Instead of one report, run the scenario at each of these refresh intervals (steps,
    /// comma-separated) and report the final regret of each; `--plot` then draws regret
    /// against the interval.
    #[arg(long, value_delimiter = ',', value_name = "STEPS,...")]
    refresh_sweep: Option<Vec<u64>>,
    /// No progress lines on standard error.
    #[arg(long)]
    quiet: bool,
}

/// Writes `json` to `out`, or standard output.
fn write_json(json: String, out: Option<&PathBuf>) -> anyhow::Result<()> {
    match out {
        Some(path) => std::fs::write(path, json + "\n").with_context(|| format!("cannot write {}", path.display())),
        None => writeln!(std::io::stdout().lock(), "{json}").context("cannot write the report"),
    }
}

/// Runs the simulation and writes its report.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (scenario, job) = load(&args.scenario, args.refresh_every)?;
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let options = SimulateOptions { reps: args.reps, seed: args.seed, threads, workers: args.workers, log_dir: args.log_dir };
    let started = Instant::now();
    let quiet = args.quiet;
    if let Some(refreshes) = &args.refresh_sweep {
        let result = sweep(&args.scenario, refreshes, &options, |refresh| {
            if !quiet {
                eprintln!("simulate: refresh every {refresh} steps done ({:.1} s)", started.elapsed().as_secs_f64());
            }
        })?;
        write_json(serde_json::to_string_pretty(&result).context("cannot encode the sweep")?, args.out.as_ref())?;
        if let Some(path) = &args.plot {
            plot::write_sweep_svg(&result, path)?;
        }
        return Ok(());
    }
    let report = simulate(&scenario, &job, &options, |done, reps| {
        if !quiet {
            eprintln!("simulate: {done} of {reps} repetitions done ({:.1} s)", started.elapsed().as_secs_f64());
        }
    })?;
    write_json(serde_json::to_string_pretty(&report).context("cannot encode the report")?, args.out.as_ref())?;
    if let Some(path) = &args.plot {
        plot::write_svg(&report, path)?;
    }
    if !quiet {
        let last = |p: &banditflow::simulate::PolicyRegret| p.regret_mean.last().copied().unwrap_or(0.0);
        eprintln!(
            "simulate: {} steps x {} reps in {:.1} s; final regret per entity: weights {:.1}, uniform {:.1}, oracle {:.1}; ci95 coverage {:.3}",
            report.total_steps,
            report.reps,
            started.elapsed().as_secs_f64(),
            last(&report.weights),
            last(&report.uniform),
            last(&report.oracle),
            report.ci95_coverage.share
        );
    }
    Ok(())
}
