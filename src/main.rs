//! The `banditflow` command line: replay files, generate traffic, run the worker or the demo.
//! Each command lives in its own file under `src/cli/`.

use clap::{Parser, Subcommand};

mod cli;

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
    Replay(cli::replay::Args),
    /// Run the worker on an embedded Kafka cluster with a closed-loop traffic generator
    /// (known true rates) and print each entity's weights as they move. Nothing to install.
    Demo(cli::demo::Args),
    /// Write synthetic assignments and outcomes with known true conversion rates.
    Generate(cli::generate::Args),
    /// Run the long-running worker: Kafka in, weight records out to Kafka and Redis, until
    /// SIGTERM or SIGINT.
    Run(cli::run::Args),
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
        Command::Replay(args) => cli::replay::run(args),
        Command::Demo(args) => cli::demo::run(args),
        Command::Generate(args) => cli::generate::run(args),
        Command::Run(args) => cli::run::run(args),
    }
}
