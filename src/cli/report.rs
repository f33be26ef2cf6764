//! `banditflow report`: a summary of a weights file (and its decision events) per entity.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use banditflow::report::{html, markdown, read, Selection};

/// The report's format.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One self-contained HTML page (inline SVG, no script, no network) per input, to
    /// `--out` or standard output.
    Html,
    /// A markdown summary on standard output: the latest statistics and the decisions of
    /// every entity.
    Md,
}

/// Draw a weights file as an HTML page, or summarize it in markdown: per entity its weights,
/// posteriors and decisions over time.
#[derive(clap::Args)]
pub struct Args {
    /// Weight records, one JSON object per line (replay's `--out`, the weights topic).
    #[arg(long)]
    weights: PathBuf,
    /// Decision events, one JSON object per line (replay's `--decisions`).
    #[arg(long)]
    decisions: Option<PathBuf>,
    /// The assignment log the dataflow read (replay's `--assignments`), for the cumulative
    /// assignments per arm; without it the page says how to get them.
    #[arg(long)]
    assignments: Option<PathBuf>,
    /// An offline evaluation (`banditflow evaluate --format json`): per entity a chart of
    /// each candidate's estimate and the logged policy's reward per window, and a table.
    #[arg(long)]
    evaluation: Option<PathBuf>,
    /// Only this entity (repeatable; all by default).
    #[arg(long = "entity", value_name = "ID")]
    entities: Vec<String>,
    /// Only records with `as_of` at or after this (ms since the epoch).
    #[arg(long, value_name = "MS")]
    from: Option<i64>,
    /// Only records with `as_of` at or before this (ms since the epoch).
    #[arg(long, value_name = "MS")]
    to: Option<i64>,
    /// What to write.
    #[arg(long, value_enum, default_value = "html")]
    format: Format,
    /// Where to write the HTML page (standard output by default).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Reads the input and prints the report.
pub fn run(args: Args) -> anyhow::Result<()> {
    let selection = Selection { entities: args.entities, from: args.from, to: args.to };
    let mut input = read(&args.weights, args.decisions.as_deref(), args.assignments.as_deref(), &selection)?;
    if let Some(path) = &args.evaluation {
        input = input.with_evaluation(path, &selection)?;
    }
    match (args.format, &args.out) {
        (Format::Md, _) => write!(std::io::stdout().lock(), "{}", markdown::render(&input)).context("cannot write the report")?,
        (Format::Html, Some(path)) => {
            std::fs::write(path, html::render(&input)).with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("report: {} ({} records of {} entities)", path.display(), input.records(), input.entities.len());
        }
        (Format::Html, None) => write!(std::io::stdout().lock(), "{}", html::render(&input)).context("cannot write the report")?,
    }
    Ok(())
}
