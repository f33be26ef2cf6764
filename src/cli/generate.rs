//! `banditflow generate`: synthetic traffic with known true rates, written to two files.

use std::path::PathBuf;

use banditflow::traffic::{self, generate_files, TrafficSpec};

/// Write synthetic assignments and outcomes with known conversion rates.
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct Args {
    /// Where to write the assignments (JSON lines).
    #[arg(long, value_name = "PATH", default_value = traffic::DEFAULT_ASSIGNMENTS_OUT)]
    pub assignments_out: PathBuf,

    /// Where to write the outcomes (JSON lines).
    #[arg(long, value_name = "PATH", default_value = traffic::DEFAULT_OUTCOMES_OUT)]
    pub outcomes_out: PathBuf,

    /// Number of distinct assignments; duplicate lines (`--duplicates`) come on top.
    #[arg(long, value_name = "N", default_value_t = traffic::DEFAULT_COUNT)]
    pub count: u64,

    /// Number of entities, named `entity-000`, `entity-001`, … (at least 1).
    #[arg(long, value_name = "N", default_value_t = traffic::DEFAULT_ENTITIES)]
    pub entities: u32,

    /// Number of arms per entity, named `arm-0`, `arm-1`, … (at least 1).
    #[arg(long, value_name = "N", default_value_t = traffic::DEFAULT_ARMS)]
    pub arms: u32,

    /// Mean conversion rate, in 0..=1: each (entity, arm) converts at this rate times a factor
    /// in 0.6..1.4 that the seed fixes.
    #[arg(long, value_name = "P", default_value_t = traffic::DEFAULT_RATE)]
    pub rate: f64,

    /// Start of the traffic, ms since the Unix epoch (default 2026-01-01T00:00:00Z).
    #[arg(long, value_name = "MS", default_value_t = traffic::DEFAULT_START_MS, allow_negative_numbers = true)]
    pub start_ms: i64,

    /// Length of the span the assignment times are spread over, in ms (at least 1).
    #[arg(long, value_name = "MS", default_value_t = traffic::DEFAULT_DURATION_MS)]
    pub duration_ms: u64,

    /// Attribution window in ms: outcome delays are exponential with mean a quarter of it, so
    /// a few percent of outcomes land after it (they are written all the same).
    #[arg(long, value_name = "MS", default_value_t = traffic::DEFAULT_ATTRIBUTION_MS)]
    pub attribution_ms: u64,

    /// Largest displacement of event times in file order, in ms: every line's `ts` is at most
    /// this far behind the largest `ts` written before it in the same file (0: sorted files).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub disorder_ms: u64,

    /// Share of assignments, in 0..=1, whose line is written twice (identical copies).
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub duplicates: f64,

    /// Seed of everything random.
    #[arg(long, value_name = "N", default_value_t = traffic::DEFAULT_SEED)]
    pub seed: u64,
}

impl From<Args> for TrafficSpec {
    fn from(a: Args) -> TrafficSpec {
        TrafficSpec { assignments_out: a.assignments_out, outcomes_out: a.outcomes_out, count: a.count, entities: a.entities, arms: a.arms, rate: a.rate, start_ms: a.start_ms, duration_ms: a.duration_ms, attribution_ms: a.attribution_ms, disorder_ms: a.disorder_ms, duplicates: a.duplicates, seed: a.seed }
    }
}

/// Writes the traffic and prints its summary as JSON.
pub fn run(args: Args) -> anyhow::Result<()> {
    let summary = generate_files(&args.into())?;
    println!("{}", summary.to_json());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_command_line() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            spec: Args,
        }
        let cli = <Cli as clap::Parser>::try_parse_from(["generate"]).expect("defaults parse");
        assert_eq!(TrafficSpec::from(cli.spec), TrafficSpec::default());
        let cli = <Cli as clap::Parser>::try_parse_from([
            "generate",
            "--count",
            "5",
            "--duration-ms",
            "1200000",
            "--start-ms",
            "-5",
            "--rate",
            "0",
        ])
        .expect("flags parse");
        assert_eq!(
            (cli.spec.count, cli.spec.duration_ms, cli.spec.start_ms),
            (5, 1_200_000, -5)
        );
    }

}
