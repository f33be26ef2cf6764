//! The `banditflow` command line: replay files, generate traffic, run the worker or the demo.
//! Each command lives in its own file under `src/cli/`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

/// jemalloc, whose background threads hand memory freed by forgotten entities back to the
/// system (glibc's allocator keeps a long-running worker's peak), and which allocates the
/// dataflow's many small records quickly.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Streaming multi-armed-bandit weights from experiment traffic.
#[derive(Parser)]
#[command(name = "banditflow", version, about)]
struct Cli {
    /// Log lines as text or as JSON objects (one per line, for log shippers).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, help_heading = "Global options")]
    log_format: LogFormat,
    /// Write log lines to this file instead of standard error (`demo` writes them to
    /// `banditflow-demo.log` in the temporary directory unless told otherwise).
    #[arg(long, global = true, value_name = "PATH", help_heading = "Global options")]
    log_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// How log lines are written.
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
    Replay(cli::replay::Args),
    /// Run the worker on an embedded Kafka cluster with a closed-loop traffic generator
    /// (known conversion rates) and show each entity's weights as they move. Nothing to install.
    Demo(cli::demo::Args),
    /// Write synthetic assignments and outcomes with known conversion rates.
    Generate(cli::generate::Args),
    /// Run the long-running worker: Kafka in, weight records out to Kafka and Redis, until
    /// SIGTERM or SIGINT.
    Run(cli::run::Args),
    /// Run the dataflow in a closed loop against simulated arms whose true rates are known,
    /// and report the regret of its weights against a uniform split and an oracle.
    Simulate(cli::simulate::Args),
    /// Read or write the arm registry topic of a job: list every arm's standing, declare an
    /// arm (with its model version, training time and labels), retire one.
    Arms(cli::arms::Args),
    /// Draw a weights file (and its decision events) as one HTML page, or summarize it in
    /// markdown: per entity its weights, posteriors and decisions over time.
    Report(cli::report::Args),
    /// Write one evaluation dataset per entity from logged traffic: a row per resolved
    /// assignment with its reward, propensity and context (Parquet and JSON lines, a manifest).
    Export(cli::export::Args),
    /// Score candidate job files on an exported dataset: the weights each would have
    /// published, and their expected reward by IPS, self-normalised IPS and doubly robust
    /// estimators, per entity and window.
    Evaluate(cli::evaluate::Args),
    /// Serve the job's weights over HTTP: assign units by them (produced to the assignments
    /// topic), take outcomes, and hand GrowthBook SDKs a features payload of the same split.
    Serve(cli::serve::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_file = match (&cli.log_file, &cli.command) {
        (Some(path), _) => Some(path.clone()),
        (None, Command::Demo(_)) => Some(std::env::temp_dir().join("banditflow-demo.log")),
        (None, _) => None,
    };
    if let Err(error) = init_logs(cli.log_format, log_file.as_deref()) {
        eprintln!("error: {error}");
        return ExitCode::FAILURE;
    }
    if let Err(error) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(%error, "cannot start the allocator's background threads: memory freed is returned to the system later");
    }
    let format = cli.log_format;
    let result = match cli.command {
        Command::Replay(args) => cli::replay::run(args),
        Command::Arms(args) => cli::arms::run(args),
        Command::Demo(args) => cli::demo::run(args, log_file.as_deref()),
        Command::Generate(args) => cli::generate::run(args),
        Command::Run(args) => cli::run::run(args),
        Command::Simulate(args) => cli::simulate::run(args),
        Command::Report(args) => cli::report::run(args),
        Command::Serve(args) => cli::serve::run(args),
        Command::Export(args) => cli::export::run(args),
        Command::Evaluate(args) => cli::evaluate::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // In the log file, or as the last JSON line; a text log on standard error would
            // only say it twice.
            if log_file.is_some() || format == LogFormat::Json {
                tracing::error!("{}", cli::error_chain(&error).join(": "));
            }
            if log_file.is_some() || format == LogFormat::Text {
                eprintln!("{}", cli::error_report(&error));
            }
            ExitCode::FAILURE
        }
    }
}

/// Logs to standard error (colours only on a terminal, and never with `NO_COLOR` set) or to
/// `file` (no colours).
fn init_logs(format: LogFormat, file: Option<&std::path::Path>) -> std::io::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match (file, format) {
        (Some(path), LogFormat::Text) => logs.with_ansi(false).with_writer(std::sync::Mutex::new(std::fs::File::create(path)?)).init(),
        (Some(path), LogFormat::Json) => logs.json().with_writer(std::sync::Mutex::new(std::fs::File::create(path)?)).init(),
        (None, LogFormat::Text) => logs.with_ansi(std::io::stderr().is_terminal() && !no_color).with_writer(std::io::stderr).init(),
        (None, LogFormat::Json) => logs.json().with_writer(std::io::stderr).init(),
    }
    Ok(())
}
