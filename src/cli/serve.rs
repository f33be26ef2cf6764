//! `banditflow serve`: the serving client as an HTTP service, until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;

use banditflow::deployment::Job;
use banditflow::serve::{self, ServeOptions, Source};

/// Serve the job's weights over HTTP: `/assign`, `/outcome`, `/weights/{entity}`,
/// `/metrics`, and `/api/features/{key}` for GrowthBook SDKs.
#[derive(clap::Args)]
pub struct Args {
    /// The dataflow job file: its `[redis]` or weights topic, its input topics, its arms.
    #[arg(long)]
    dataflow: PathBuf,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where to follow the weights from (default: Redis if the job has it, else the topic).
    #[arg(long, value_enum)]
    source: Option<Source>,
    /// Weights older than this (the time since the pipeline last published) are not served
    /// (default: the records' max_age_hint_ms), e.g. "30s".
    #[arg(long, value_parser = humantime::parse_duration)]
    max_age: Option<std::time::Duration>,
    /// What serves when the weights are missing or too old.
    #[arg(long, value_enum, default_value_t = FallbackArg::Uniform)]
    fallback: FallbackArg,
}

/// `--fallback`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum FallbackArg {
    /// Uniform over the entity's declared arms (else the arms of its last record).
    Uniform,
    /// The entity's control arm (`[[arms]] control`, else `[decision] control`).
    Control,
}

/// Serves until a stop signal.
pub fn run(args: Args) -> anyhow::Result<()> {
    let job = Job::load(&args.dataflow)?;
    let stop = super::stop_on_signals()?;
    let max_age_ms = args.max_age.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let options = ServeOptions { job, listen: args.listen, source: args.source, max_age_ms, fallback_to_control: args.fallback == FallbackArg::Control };
    serve::serve(options, stop)?;
    Ok(())
}
