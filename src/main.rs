//! The `banditflow` command line: replay files, generate traffic, run the demo.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use banditflow::config::Dataflow;
use banditflow::replay::{replay, Input, Output, Progress, ReplayOptions, ReplaySummary};
use banditflow::worker::{self, Cluster, RunOptions};

/// Streaming multi-armed-bandit weights from experiment traffic.
#[derive(Parser)]
#[command(name = "banditflow", version, about)]
struct Cli {
    /// Log lines as text or as JSON objects (one per line, for log shippers).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How log lines are written to standard error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run a dataflow over JSON-lines files and write its weight records as JSON lines.
    Replay {
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
        /// No progress lines on standard error (the final summary is still printed).
        #[arg(long)]
        quiet: bool,
        /// Serve `/metrics`, `/healthz` and `/readyz` here while the replay runs.
        #[arg(long)]
        metrics_listen: Option<std::net::SocketAddr>,
    },
    /// Run the worker on an embedded Kafka cluster with a closed-loop traffic generator
    /// (known true rates) and print each entity's weights as they move. Nothing to install.
    Demo {
        /// Worker threads.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// How long to run (e.g. `40s`, `2m`).
        #[arg(long, default_value = "40s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Run until SIGINT/SIGTERM instead.
        #[arg(long)]
        forever: bool,
        /// Assignments per second over all entities.
        #[arg(long, default_value_t = 2_000)]
        rate: u32,
        /// Seed of the true rates and the traffic.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Where the worker serves `/metrics`, `/healthz` and `/readyz` (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:9898")]
        metrics_listen: std::net::SocketAddr,
    },
    /// Write synthetic assignments and outcomes with known true conversion rates.
    Generate(banditflow::generate::TrafficSpec),
    /// Run the long-running worker: Kafka in, weight records out to Kafka and Redis, until
    /// SIGTERM or SIGINT.
    Run {
        /// The dataflow job file (TOML) with `[kafka]` and optionally `[redis]`.
        #[arg(long)]
        dataflow: PathBuf,
        /// Worker threads in this process.
        #[arg(long, short = 'w', default_value_t = 1)]
        workers: usize,
        /// Processes in the timely cluster.
        #[arg(long, short = 'n', default_value_t = 1)]
        processes: usize,
        /// This process's index in the cluster.
        #[arg(long, short = 'p', default_value_t = 0)]
        process: usize,
        /// File with one `host:port` per process, in process order (default localhost:2101…).
        #[arg(long, short = 'H')]
        hostfile: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    match cli.command {
        Command::Replay { dataflow, assignments, outcomes, arms, workers, out, quiet, metrics_listen } => {
            let job = Dataflow::load(&dataflow)?;
            let options = ReplayOptions {
                arms: arms.as_deref().map(Input::parse),
                workers,
                output: out.map(Output::File).unwrap_or(Output::Stdout),
                metrics_listen,
                ..ReplayOptions::new(job, Input::parse(&assignments), Input::parse(&outcomes))
            };
            let summary = run_with_progress(&options, quiet)?;
            print_summary(&summary);
            Ok(())
        }
        Command::Demo { workers, duration, forever, rate, seed, metrics_listen } => {
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
                signal_hook::flag::register(signal, stop.clone())?;
            }
            let options = banditflow::demo::DemoOptions {
                workers,
                duration: (!forever).then_some(duration),
                assignments_per_s: rate,
                seed,
                stop,
                metrics_listen: Some(metrics_listen),
                ..Default::default()
            };
            eprintln!(
                "demo: embedded Kafka cluster, {} entities x {} arms, {} assignments/s assigned by the published weights; {}",
                options.entities,
                options.arms,
                options.assignments_per_s,
                if forever { "until Ctrl-C".to_owned() } else { format!("for {}", humantime::format_duration(duration)) }
            );
            eprintln!("demo: the worker's metrics are at http://{metrics_listen}/metrics (also /healthz, /readyz)");
            let mut stdout = std::io::stdout();
            let report = banditflow::demo::run(&options, &mut stdout)?;
            let c = &report.worker.counters;
            println!(
                "demo done: {} assignments and {} outcomes produced; the worker read {} and {}, published {} weight records\nfinal weights:\n{}",
                report.assignments,
                report.outcomes,
                c.assignments_read,
                c.outcomes_read,
                c.records_written,
                banditflow::demo::weights_table(&report.latest, seed)
            );
            Ok(())
        }
        Command::Run { dataflow, workers, processes, process, hostfile } => {
            let job = Dataflow::load(&dataflow)?;
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
                signal_hook::flag::register(signal, stop.clone())?;
            }
            let cluster = (processes > 1).then_some(Cluster { processes, process, hostfile });
            let metrics_listen = Some(job.deployment.metrics.listen);
            let options = RunOptions { job, workers, cluster, stop, metrics_listen };
            let summary = worker::run(&options, Arc::new(std::sync::atomic::AtomicBool::new(false)))?;
            let c = &summary.counters;
            tracing::info!(
                assignments_read = c.assignments_read,
                outcomes_read = c.outcomes_read,
                records = c.records_written,
                sinks = ?summary.sinks,
                "summary"
            );
            Ok(())
        }
        Command::Generate(spec) => {
            let summary = banditflow::generate::generate_files(&spec)?;
            println!("{}", summary.to_json());
            Ok(())
        }
    }
}

/// Runs a replay, printing a progress line to standard error every second.
fn run_with_progress(options: &ReplayOptions, quiet: bool) -> anyhow::Result<ReplaySummary> {
    let progress = Arc::new(Progress::default());
    let watcher = progress.clone();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
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
    let events = c.assignments_read + c.outcomes_read;
    let secs = summary.elapsed.as_secs_f64().max(1e-9);
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "replay done in {:.3}s: {events} events read ({:.0}/s), {} applied, {} late, {} too_old, {} malformed, {} records written",
        secs,
        events as f64 / secs,
        c.assignments_applied + c.outcomes_applied,
        c.late,
        c.too_old,
        c.malformed_total(),
        c.records_written,
    );
    if let Ok(json) = serde_json::to_string(c) {
        let _ = writeln!(err, "summary: {json}");
    }
}
