//! `banditflow run`: the long-running worker, until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::sync::Arc;

use banditflow::deployment::Job;
use banditflow::worker::{self, Cluster, RunOptions};

/// Run the long-running worker: Kafka in, weight records out to Kafka and Redis, until
/// SIGTERM or SIGINT.
#[derive(clap::Args)]
pub struct Args {
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
}

/// Runs the worker until a stop signal, then logs its summary.
pub fn run(args: Args) -> anyhow::Result<()> {
    let job = Job::load(&args.dataflow)?;
    let stop = super::stop_on_signals()?;
    let cluster = (args.processes > 1).then_some(Cluster { processes: args.processes, process: args.process, hostfile: args.hostfile });
    let metrics_listen = Some(job.deployment.metrics.listen);
    let options = RunOptions { job, workers: args.workers, cluster, stop, metrics_listen };
    let summary = worker::run(&options, Arc::default())?;
    let c = &summary.counters;
    let sinks: Vec<String> = summary.sinks.iter().map(|s| format!("{} {} written, {} failed writes, {} unwritten", s.name, s.written, s.failures, s.unwritten)).collect();
    tracing::info!(
        assignments_read = c.assignments_read,
        outcomes_read = c.outcomes_read,
        records = c.records_written,
        sinks = %sinks.join("; "),
        "summary"
    );
    Ok(())
}
