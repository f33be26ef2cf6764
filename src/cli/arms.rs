//! `banditflow arms list | set | retire`: the arm registry topic of a job (`[kafka]
//! arms_topic`), for operators.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use banditflow::deployment::{Job, KafkaConfig};
use banditflow::kafka::registry::{self, Standing};
use serde_json::{json, Value};

/// Read or write the arm registry topic named in the job file.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Every arm's standing (its latest record), as a table or as JSON lines.
    List {
        /// The job file (TOML) with `[kafka] arms_topic`.
        #[arg(long)]
        dataflow: PathBuf,
        /// Only this entity's arms.
        #[arg(long)]
        entity: Option<String>,
        /// One registry record per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Declare an arm active from now on (a new model, or a retrained one), with its metadata.
    Set {
        /// The job file (TOML) with `[kafka] arms_topic`.
        #[arg(long)]
        dataflow: PathBuf,
        /// The entity.
        entity: String,
        /// The arm.
        arm: String,
        /// `metadata.model_version`.
        #[arg(long)]
        model_version: Option<String>,
        /// `metadata.trained_at`, RFC 3339 in UTC (`2026-11-30T12:00:00Z`).
        #[arg(long)]
        trained_at: Option<String>,
        /// `metadata.labels`, `KEY=VALUE`; repeat for more.
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// The arm's share of the declared split, in (0, 1]: its weight during burn-in and
        /// under `allocation = "static"`.
        #[arg(long)]
        initial_weight: Option<f64>,
    },
    /// Retire an arm from now on: it leaves the weight records and its later assignments do
    /// not count.
    Retire {
        /// The job file (TOML) with `[kafka] arms_topic`.
        #[arg(long)]
        dataflow: PathBuf,
        /// The entity.
        entity: String,
        /// The arm.
        arm: String,
    },
}

/// The job's Kafka settings and its registry topic.
fn registry_of(dataflow: &Path) -> anyhow::Result<(KafkaConfig, String)> {
    let job = Job::load(dataflow)?;
    let Some(kafka) = job.deployment.kafka else { bail!("{} has no [kafka] table", dataflow.display()) };
    let Some(topic) = kafka.arms_topic.clone() else { bail!("{} names no [kafka] arms_topic", dataflow.display()) };
    Ok((kafka, topic))
}

/// Runs an `arms` command.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::List { dataflow, entity, json } => {
            let (kafka, topic) = registry_of(&dataflow)?;
            let (standings, unreadable) = registry::standings(&kafka, &topic).with_context(|| format!("reading {topic}"))?;
            let shown: Vec<&Standing> = standings.values().filter(|s| entity.as_ref().is_none_or(|e| *e == s.entity_id)).collect();
            if json {
                for standing in &shown {
                    println!("{}", registry::record_of(standing));
                }
            } else {
                print_table(&shown);
            }
            if unreadable > 0 {
                eprintln!("arms: {unreadable} records on {topic} are not registry records and are not listed");
            }
        }
        Command::Set { dataflow, entity, arm, model_version, trained_at, labels, initial_weight } => {
            if let Some(w) = initial_weight {
                if banditflow_core::event::InitialWeight::new(w).is_none() {
                    bail!("--initial-weight {w} must be greater than 0 and at most 1");
                }
            }
            let (kafka, topic) = registry_of(&dataflow)?;
            let mut metadata = serde_json::Map::new();
            if let Some(version) = model_version {
                metadata.insert("model_version".into(), json!(version));
            }
            if let Some(at) = trained_at {
                if humantime::parse_rfc3339_weak(&at).is_err() {
                    bail!("--trained-at {at:?} is not an RFC 3339 time in UTC (such as 2026-11-30T12:00:00Z)");
                }
                metadata.insert("trained_at".into(), json!(at));
            }
            if !labels.is_empty() {
                let mut map = serde_json::Map::new();
                for label in &labels {
                    let Some((key, value)) = label.split_once('=') else { bail!("--label {label:?} is not KEY=VALUE") };
                    map.insert(key.to_owned(), json!(value));
                }
                metadata.insert("labels".into(), Value::Object(map));
            }
            let metadata = (!metadata.is_empty()).then_some(Value::Object(metadata));
            write(&kafka, &topic, Standing { entity_id: entity, arm_id: arm, state: "active".into(), ts: banditflow_core::time::now_ms(), metadata, initial_weight })?;
        }
        Command::Retire { dataflow, entity, arm } => {
            let (kafka, topic) = registry_of(&dataflow)?;
            write(&kafka, &topic, Standing { entity_id: entity, arm_id: arm, state: "retired".into(), ts: banditflow_core::time::now_ms(), metadata: None, initial_weight: None })?;
        }
    }
    Ok(())
}

/// Writes one record and says what it wrote.
fn write(kafka: &KafkaConfig, topic: &str, standing: Standing) -> anyhow::Result<()> {
    registry::write(kafka, topic, &standing)?;
    eprintln!("arms: {}/{} is {} from {} on {topic}", standing.entity_id, standing.arm_id, standing.state, banditflow::logs::rfc3339(standing.ts));
    Ok(())
}

/// The standings as an aligned table: entity, arm, state, since, initial weight, model
/// version, trained at, labels.
fn print_table(standings: &[&Standing]) {
    let rows: Vec<[String; 8]> = standings
        .iter()
        .map(|s| {
            let field = |name: &str| s.metadata.as_ref().and_then(|m| m.get(name)).and_then(Value::as_str).unwrap_or("").to_owned();
            let labels = s
                .metadata
                .as_ref()
                .and_then(|m| m.get("labels"))
                .and_then(Value::as_object)
                .map(|l| l.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect::<Vec<_>>().join(","))
                .unwrap_or_default();
            let initial = s.initial_weight.map(|w| w.to_string()).unwrap_or_default();
            [s.entity_id.clone(), s.arm_id.clone(), s.state.clone(), banditflow::logs::rfc3339(s.ts), initial, field("model_version"), field("trained_at"), labels]
        })
        .collect();
    let header = ["entity", "arm", "state", "since", "initial_weight", "model_version", "trained_at", "labels"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row.iter().zip(widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        println!("{}", cells.join("  ").trim_end());
    }
}
