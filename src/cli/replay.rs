//! `banditflow replay`: the dataflow over JSON-lines files, progress on standard error,
//! a summary at the end.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use banditflow::deployment::Job;
use banditflow::file::Input;
use banditflow::replay::{replay, DecisionOutput, Output, Progress, ReplayOptions, ReplaySummary};

/// Run a dataflow over JSON-lines files and write its weight records as JSON lines.
#[derive(clap::Args)]
pub struct Args {
    /// The dataflow job file (TOML).
    #[arg(long)]
    dataflow: PathBuf,
    /// Assignment records, one JSON object per line (`-` for standard input).
    #[arg(long)]
    assignments: String,
    /// Outcome records, one JSON object per line (`-` for standard input).
    #[arg(long)]
    outcomes: String,
    /// Arm registry records (`entity_id`, `arm_id`, `state`, `ts`), one per line.
    #[arg(long)]
    arms: Option<String>,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Where to write weight records (standard output by default).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where to write decision events (JSON lines; none written without it).
    #[arg(long)]
    decisions: Option<PathBuf>,
    /// Where to write the lines the decoder refused, with their reason, input and line
    /// number (JSON lines; without it they are only counted).
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// No progress lines on standard error (the final summary is still printed).
    #[arg(long)]
    quiet: bool,
    /// Serve `/metrics`, `/healthz` and `/readyz` here while the replay runs.
    #[arg(long)]
    metrics_listen: Option<std::net::SocketAddr>,
}

/// Runs the replay and prints its summary.
pub fn run(args: Args) -> anyhow::Result<()> {
    let job = Job::load(&args.dataflow)?;
    let options = ReplayOptions {
        arms: args.arms.as_deref().map(Input::parse),
        workers: args.workers,
        output: args.out.map_or(Output::Stdout, Output::File),
        decisions: args.decisions.map(DecisionOutput::File),
        metrics_listen: args.metrics_listen,
        rejects: args.rejects.clone(),
        ..ReplayOptions::new(job.dataflow, Input::parse(&args.assignments), Input::parse(&args.outcomes))
    };
    let summary = run_with_progress(&options, args.quiet)?;
    print_summary(&summary);
    if let Some(path) = &args.rejects {
        eprintln!("replay: {} refused lines written to {}", summary.rejected, path.display());
    }
    Ok(())
}

/// Runs a replay, printing a progress line to standard error every second.
fn run_with_progress(options: &ReplayOptions, quiet: bool) -> anyhow::Result<ReplaySummary> {
    let progress = Arc::new(Progress::default());
    let watcher = progress.clone();
    let done = Arc::new(AtomicBool::new(false));
    let done_in = done.clone();
    let reporter = std::thread::spawn(move || {
        let started = Instant::now();
        while !done_in.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            if quiet || started.elapsed().as_millis() % 1000 >= 100 {
                continue;
            }
            let lines = watcher.lines_read.load(Ordering::Relaxed);
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            eprintln!(
                "replay: {lines} lines read ({:.0}/s), {} records written",
                lines as f64 / secs,
                watcher.records_written.load(Ordering::Relaxed)
            );
        }
    });
    let result = replay(options, progress);
    done.store(true, Ordering::Relaxed);
    let _ = reporter.join();
    Ok(result?)
}

fn print_summary(summary: &ReplaySummary) {
    let c = &summary.counters;
    let events = c.events_read();
    let secs = summary.elapsed.as_secs_f64().max(1e-9);
    let parts: Vec<String> = c.by_result().parts().iter().map(|(name, n)| format!("{n} {name}")).collect();
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "replay done in {secs:.3}s: {events} events read ({:.0}/s) = {}; {} of them late; {} records written; {} decisions",
        events as f64 / secs,
        parts.join(" + "),
        c.late,
        c.records_written,
        c.decisions_written,
    );
    if let Some(why) = summary.why_no_records() {
        let _ = writeln!(err, "replay: no weight record was written: {why}");
    }
    let _ = writeln!(err, "summary: {}", summary.to_json());
}
