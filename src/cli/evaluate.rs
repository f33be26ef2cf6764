//! `banditflow evaluate`: candidate job files scored on an exported dataset, as a table on
//! the terminal or JSON lines.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use banditflow::evaluate::{evaluate, table, EvaluateOptions};

/// How the evaluation is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns, warnings under their row.
    Table,
    /// One JSON object per (entity, candidate, window end).
    Json,
}

/// Score candidate job files on an exported dataset.
#[derive(clap::Args)]
pub struct Args {
    /// The dataset's folder (written by `banditflow export`).
    #[arg(long)]
    dataset: PathBuf,
    /// A candidate job file (TOML); give it once per candidate.
    #[arg(long = "candidate", required = true)]
    candidates: Vec<PathBuf>,
    /// A running window: its length (`7d`); every row in one window without it.
    #[arg(long, value_parser = humantime::parse_duration)]
    window: Option<Duration>,
    /// How far apart the window ends are (`1d`; the window's length by default).
    #[arg(long, value_parser = humantime::parse_duration, requires = "window")]
    step: Option<Duration>,
    /// Weights (candidate probability over logged propensity) above this are counted.
    #[arg(long, default_value_t = 10.0)]
    clip: f64,
    /// Where to write each candidate's weight records (`<candidate>.jsonl`).
    #[arg(long)]
    weights_out: Option<PathBuf>,
    /// Table or JSON lines.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Where to write it (standard output by default).
    #[arg(long)]
    out: Option<PathBuf>,
    /// No progress lines on standard error.
    #[arg(long)]
    quiet: bool,
}

/// Runs the evaluation and prints it.
pub fn run(args: Args) -> anyhow::Result<()> {
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
    let options = EvaluateOptions { dataset: args.dataset, candidates: args.candidates, window_ms: args.window.map(millis), step_ms: args.step.map(millis), clip: args.clip, weights_out: args.weights_out };
    let started = Instant::now();
    let quiet = args.quiet;
    let progress = move |what: &str| {
        if !quiet {
            eprintln!("evaluate: {what} ({:.1}s)", started.elapsed().as_secs_f64());
        }
    };
    let rows = evaluate(&options, &progress)?;
    let text = match args.format {
        Format::Table => table::render(&rows),
        Format::Json => {
            let mut text = String::new();
            for row in &rows {
                text.push_str(&serde_json::to_string(row).context("cannot encode a row")?);
                text.push('\n');
            }
            text
        }
    };
    match &args.out {
        Some(path) => std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?,
        None => std::io::stdout().lock().write_all(text.as_bytes()).context("cannot write the evaluation")?,
    }
    let weighed: u64 = rows.iter().map(|r| r.rows).sum();
    progress(&format!("done: {} rows of output, {weighed} row-windows weighed", rows.len()));
    Ok(())
}
