//! `banditflow demo`: the worker on an embedded Kafka cluster with closed-loop traffic.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use banditflow::demo::{self, DemoOptions};

/// Run the worker on an embedded Kafka cluster with a closed-loop traffic generator
/// (known true rates) and print each entity's weights as they move. Nothing to install.
#[derive(clap::Args)]
pub struct Args {
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
}

/// Runs the demo and prints the final weights; log lines go to `log_file` meanwhile.
pub fn run(args: Args, log_file: Option<&Path>) -> anyhow::Result<()> {
    let stop = super::stop_on_signals()?;
    let terminal = std::io::stdout().is_terminal();
    let options = DemoOptions {
        workers: args.workers,
        duration: (!args.forever).then_some(args.duration),
        assignments_per_s: args.rate,
        seed: args.seed,
        stop,
        metrics_listen: Some(args.metrics_listen),
        terminal,
        log_file: log_file.map(Path::to_path_buf),
        ..Default::default()
    };
    println!(
        "demo: an embedded Kafka cluster, {} entities x {} arms, {} assignments/s served by the published weights; {}",
        options.entities,
        options.arms,
        options.assignments_per_s,
        if args.forever { "until Ctrl-C".to_owned() } else { format!("for {}", humantime::format_duration(args.duration)) }
    );
    if let Some(file) = log_file {
        println!("demo: log lines go to {}", file.display());
    }
    let mut stdout = std::io::stdout();
    let report = demo::run(&options, &mut stdout)?;
    let c = &report.worker.counters;
    let seed = args.seed;
    println!(
        "demo done: {} assignments and {} outcomes produced; the worker read {} and {}, published {} weight records\nfinal weights:\n{}",
        report.assignments,
        report.outcomes,
        c.assignments_read,
        c.outcomes_read,
        c.records_written,
        demo::screen::weights_table(&report.latest, &|entity, arm| demo::demo_true_rate(seed, entity, arm))
    );
    for line in &report.registry {
        println!("demo: registry {line}");
    }
    if let Some(address) = report.metrics_address {
        println!("demo: the worker's metrics were at http://{address}/metrics");
    }
    let gained = report.outcomes as f64 - report.uniform_conversions;
    let share = if report.uniform_conversions > 0.0 { 100.0 * gained / report.uniform_conversions } else { 0.0 };
    println!(
        "demo: the weights produced {} conversions where a uniform split of the same traffic would have produced {:.0} (expected from the true rates): {gained:+.0} ({share:+.1}%)",
        report.outcomes, report.uniform_conversions
    );
    let page = std::env::temp_dir().join("banditflow-demo-report.html");
    let tally = banditflow::report::served::ServedTally { lines: report.assignments, ..Default::default() };
    let input = banditflow::report::ReportInput::of(report.records, Vec::new()).with_served(report.served, tally);
    std::fs::write(&page, banditflow::report::html::render(&input)).with_context(|| format!("cannot write {}", page.display()))?;
    println!("demo: report of this run: {}", page.display());
    Ok(())
}
