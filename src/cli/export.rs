//! `banditflow export`: one evaluation dataset per entity from logged traffic, progress on
//! standard error, a summary at the end.

use std::path::PathBuf;
use std::time::Instant;

use banditflow::export::{export, ExportOptions};

/// Write one evaluation dataset per entity: a row per resolved assignment with its reward,
/// propensity and context, as Parquet and JSON lines, with a manifest.
#[derive(clap::Args)]
pub struct Args {
    /// The job file the traffic was served under (its tick, attribution and limits decide
    /// each row's reward).
    #[arg(long)]
    dataflow: PathBuf,
    /// Assignment records, one JSON object per line.
    #[arg(long)]
    assignments: PathBuf,
    /// Outcome records, one JSON object per line.
    #[arg(long)]
    outcomes: PathBuf,
    /// Arm registry records, one per line.
    #[arg(long)]
    arms: Option<PathBuf>,
    /// Weight records serving used (JSON lines, as `replay` writes them): the propensity of
    /// assignments that did not log their own.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// The dataset's folder (created; its files are replaced).
    #[arg(long)]
    out: PathBuf,
    /// No progress lines on standard error.
    #[arg(long)]
    quiet: bool,
}

/// Runs the export and prints what it wrote.
pub fn run(args: Args) -> anyhow::Result<()> {
    let options = ExportOptions { dataflow: args.dataflow, assignments: args.assignments, outcomes: args.outcomes, arms: args.arms, weights: args.weights, out: args.out };
    let started = Instant::now();
    let quiet = args.quiet;
    let progress = move |what: &str, n: u64| {
        if !quiet {
            eprintln!("export: {n} {what} read ({:.1}s)", started.elapsed().as_secs_f64());
        }
    };
    let manifest = export(&options, &progress)?;
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    eprintln!(
        "export done in {secs:.3}s: {} rows ({:.0}/s) over {} entities in {}; {} without a propensity; left out: {}",
        manifest.rows,
        manifest.rows as f64 / secs,
        manifest.entities.len(),
        options.out.display(),
        manifest.null_propensity,
        if manifest.left_out.is_empty() { "nothing".to_owned() } else { manifest.left_out.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", ") },
    );
    Ok(())
}
