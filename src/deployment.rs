//! Where a live worker connects: the `[kafka]`, `[redis]`, `[metrics]` sections and `mode`
//! of a job file, with `BANDITFLOW_<SECTION>_<KEY>` environment variables overriding them so
//! that secrets stay out of files. A [`Job`] is the whole file: the dataflow (what to
//! compute, read by `banditflow_core::config`) and its deployment.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use banditflow_core::config::{self, ConfigError, Dataflow};
use serde::Deserialize;

/// A whole job file: what to compute and where a live worker connects.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    /// What to compute: tick, windows, prior, policy, declared arms.
    pub dataflow: Dataflow,
    /// `mode`, `[kafka]`, `[redis]`, `[metrics]`, environment overrides applied.
    pub deployment: Deployment,
}

impl Job {
    /// Parses and validates a job file's text (no environment overrides).
    pub fn from_toml_str(text: &str) -> Result<Job, ConfigError> {
        Job::from_toml_str_with_env(text, std::iter::empty())
    }

    /// As [`Job::from_toml_str`], with `BANDITFLOW_<SECTION>_<KEY>` variables among `vars`
    /// overriding the file's `mode`, `[kafka]`, `[redis]` and `[metrics]`.
    pub fn from_toml_str_with_env(text: &str, vars: impl IntoIterator<Item = (String, String)>) -> Result<Job, ConfigError> {
        let dataflow = Dataflow::from_toml_str(text)?;
        let mut deployment: RawDeployment = config::from_toml(text)?;
        deployment.refuse_secrets()?;
        deployment.override_from(vars)?;
        Ok(Job { dataflow, deployment: deployment.into_deployment()? })
    }

    /// Reads, parses and validates the job file at `path`, with the process's
    /// `BANDITFLOW_<SECTION>_<KEY>` environment variables applied. Errors name the file.
    pub fn load(path: &Path) -> Result<Job, ConfigError> {
        let text = config::read(path)?;
        Job::from_toml_str_with_env(&text, std::env::vars()).map_err(|error| config::in_file(path, error))
    }
}

/// Prefix of the environment variables that override job-file settings.
pub const ENV_PREFIX: &str = "BANDITFLOW_";
/// Where `/metrics` listens unless `[metrics] listen` says otherwise.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9898";
/// `/readyz` fails while the event-time lag is above this, unless `[metrics] ready_max_lag` says otherwise.
pub const DEFAULT_READY_MAX_LAG_MS: u64 = 5 * 60 * 1000;
/// Redis key prefix unless `[redis] prefix` says otherwise.
pub const DEFAULT_REDIS_PREFIX: &str = "banditflow";

/// `mode`: whether the worker publishes to what serving reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// `"production"` (default): the weights topic and `{prefix}:{entity_id}` keys.
    #[default]
    Production,
    /// `"shadow"`: only `<weights_topic>.shadow` and `{prefix}:shadow:{entity_id}` keys, so a
    /// new policy can run against production traffic without touching what serving reads.
    Shadow,
}

impl std::fmt::Display for Mode {
    /// As written in the job file: `production` or `shadow`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Production => "production",
            Mode::Shadow => "shadow",
        })
    }
}

/// `[kafka]`: the topics the live worker reads and writes. Its `Debug` shows secret
/// properties as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// `brokers` (required): bootstrap servers, `host:port[,host:port…]`.
    pub brokers: String,
    /// `assignments_topic` (required).
    pub assignments_topic: String,
    /// `outcomes_topic` (required).
    pub outcomes_topic: String,
    /// `arms_topic` (optional): the arm registry, one record per `entity_id/arm_id` key
    /// (`schemas/arm.schema.json`; compacted, so it holds each arm's latest record). Always
    /// read from its beginning, like replay's `--arms`.
    pub arms_topic: Option<String>,
    /// `weights_topic` (optional): where weight records are published, key `entity_id`.
    /// Without it the worker publishes to Redis only, and `[redis]` is required.
    pub weights_topic: Option<String>,
    /// `decisions_topic` (optional): where decision events are published, key `entity_id`
    /// (`schemas/decision.schema.json`).
    pub decisions_topic: Option<String>,
    /// `dead_letter_topic` (optional): where every input record the decoder refuses goes, its
    /// bytes and key unchanged, with `reason`, `source_topic`, `source_partition` and
    /// `source_offset` headers (and weight records the weights topic refuses for good).
    /// `<topic>.shadow` in shadow mode. Without it refused records are only counted.
    pub dead_letter_topic: Option<String>,
    /// `group_id` (required): the consumer group whose offsets track published ticks.
    pub group_id: String,
    /// `[kafka.properties]` (optional): passed to librdkafka as is (SASL, TLS, tuning).
    /// `BANDITFLOW_KAFKA_PROPERTIES_SASL_PASSWORD` sets `sasl.password`.
    pub properties: BTreeMap<String, String>,
}

/// `[redis]`: where weight records are stored for serving. Its `Debug` shows the URL's
/// password as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `url` (required): e.g. `redis://127.0.0.1:6379/0`.
    pub url: String,
    /// `prefix` (optional, default `banditflow`): keys are `{prefix}:{entity_id}`.
    pub prefix: String,
}

/// Whether a librdkafka property holds a secret (a password, a private key, a client secret):
/// never in the job file, never shown.
pub fn is_secret_property(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("password") || key.contains("secret") || key == "ssl.key.pem" || key == "sasl.oauthbearer.config"
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let properties: BTreeMap<&str, &str> = self.properties.iter().map(|(k, v)| (k.as_str(), if is_secret_property(k) { "***" } else { v.as_str() })).collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("assignments_topic", &self.assignments_topic)
            .field("outcomes_topic", &self.outcomes_topic)
            .field("arms_topic", &self.arms_topic)
            .field("weights_topic", &self.weights_topic)
            .field("decisions_topic", &self.decisions_topic)
            .field("dead_letter_topic", &self.dead_letter_topic)
            .field("group_id", &self.group_id)
            .field("properties", &properties)
            .finish()
    }
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig").field("url", &crate::logs::redact_url(&self.url)).field("prefix", &self.prefix).finish()
    }
}

/// The environment variable that sets `section.key` (`kafka.properties.sasl.password` →
/// `BANDITFLOW_KAFKA_PROPERTIES_SASL_PASSWORD`).
fn variable_of(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "_").to_ascii_uppercase())
}

/// `[checkpoint]`: where and how often the live worker saves what it needs to resume exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointConfig {
    /// `dir` (required): the directory checkpoints are written to (created if missing).
    pub dir: std::path::PathBuf,
    /// `interval` (optional, a duration, default `"1m"`): a checkpoint is taken at every tick
    /// whose start is a multiple of it (at least every tick).
    pub interval_ms: u64,
    /// `keep` (optional, default 3, at least 1): how many checkpoints to keep.
    pub keep: usize,
}

/// Default of [`CheckpointConfig::interval_ms`]: a minute.
pub const DEFAULT_CHECKPOINT_INTERVAL_MS: u64 = 60_000;
/// Default of [`CheckpointConfig::keep`].
pub const DEFAULT_CHECKPOINT_KEEP: usize = 3;

/// `[metrics]`: the HTTP endpoint SREs scrape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsConfig {
    /// `listen` (optional, default `127.0.0.1:9898`): address of `/metrics`, `/healthz`, `/readyz`.
    pub listen: SocketAddr,
    /// `entities` (optional): entities whose arms get their own series (weight, `p_best`,
    /// trials); opt-in so that the number of series stays bounded whatever the traffic.
    pub entities: Vec<String>,
    /// `ready_max_lag` (optional, a duration): `/readyz` fails while the event-time lag is
    /// above it. Default: five minutes.
    pub ready_max_lag_ms: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { listen: SocketAddr::from(([127, 0, 0, 1], 9898)), entities: Vec::new(), ready_max_lag_ms: DEFAULT_READY_MAX_LAG_MS }
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKafka {
    brokers: Option<String>,
    assignments_topic: Option<String>,
    outcomes_topic: Option<String>,
    arms_topic: Option<String>,
    weights_topic: Option<String>,
    decisions_topic: Option<String>,
    dead_letter_topic: Option<String>,
    group_id: Option<String>,
    #[serde(default)]
    properties: BTreeMap<String, String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedis {
    url: Option<String>,
    prefix: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheckpoint {
    dir: Option<String>,
    interval: Option<String>,
    keep: Option<usize>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<String>,
    #[serde(default)]
    entities: Vec<String>,
    ready_max_lag: Option<String>,
}

/// The deployment sections as read from the file, before overrides and checks. Other keys
/// are the dataflow's, checked by `banditflow_core::config` (which rejects unknown ones).
#[derive(Default, Deserialize)]
struct RawDeployment {
    mode: Option<String>,
    kafka: Option<RawKafka>,
    redis: Option<RawRedis>,
    metrics: Option<RawMetrics>,
    checkpoint: Option<RawCheckpoint>,
}

/// The deployment settings of a job file, overrides applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Deployment {
    /// `mode`.
    pub mode: Mode,
    /// `[kafka]`, if the file (or the environment) has it.
    pub kafka: Option<KafkaConfig>,
    /// `[redis]`, if the file (or the environment) has it.
    pub redis: Option<RedisConfig>,
    /// `[metrics]`.
    pub metrics: MetricsConfig,
    /// `[checkpoint]`, if the file (or the environment) has it.
    pub checkpoint: Option<CheckpointConfig>,
}

fn required(value: Option<String>, key: &'static str) -> Result<String, ConfigError> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ConfigError::MissingKey { key }),
    }
}

impl RawDeployment {
    /// Fails on a secret written in the job file itself: a secret Kafka property, or a Redis
    /// URL with a password. They come from the environment or a file it names.
    fn refuse_secrets(&self) -> Result<(), ConfigError> {
        if let Some(kafka) = &self.kafka {
            if let Some(key) = kafka.properties.keys().find(|k| is_secret_property(k)) {
                let key = format!("kafka.properties.{key}");
                return Err(ConfigError::SecretInFile { var: variable_of(&key), key });
            }
        }
        if let Some(url) = self.redis.as_ref().and_then(|r| r.url.as_deref()) {
            if crate::logs::redact_url(url) != url {
                return Err(ConfigError::SecretInFile { key: "redis.url".into(), var: variable_of("redis.url") });
            }
        }
        Ok(())
    }

    /// Applies `BANDITFLOW_<SECTION>_<KEY>` variables from `vars` for the sections `kafka`,
    /// `redis` and `metrics` (and `BANDITFLOW_MODE`); other variables are ignored. A variable
    /// `BANDITFLOW_<SECTION>_<KEY>_FILE` sets the same key to the content of the file it
    /// names (its final newline left out), for secrets kept in files.
    fn override_from(&mut self, vars: impl IntoIterator<Item = (String, String)>) -> Result<(), ConfigError> {
        for (name, value) in vars {
            let setting_file = name.strip_suffix("_FILE").filter(|n| {
                let rest = n.strip_prefix(ENV_PREFIX).unwrap_or_default().to_ascii_lowercase();
                rest == "mode" || ["kafka_", "redis_", "metrics_", "checkpoint_"].iter().any(|s| rest.starts_with(s))
            });
            let (name, value) = match setting_file {
                Some(setting) => match std::fs::read_to_string(&value) {
                    Ok(text) => (setting.to_owned(), text.strip_suffix('\n').map_or(text.as_str(), |t| t.strip_suffix('\r').unwrap_or(t)).to_owned()),
                    Err(error) => return Err(ConfigError::SecretFile { var: name.clone(), path: value, error }),
                },
                None => (name, value),
            };
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else { continue };
            let rest = rest.to_ascii_lowercase();
            if rest == "mode" {
                self.mode = Some(value);
                continue;
            }
            let unknown = || ConfigError::UnknownEnv { var: name.clone() };
            // Variables of other sections (BANDITFLOW_BIN, say) are not settings: skip them;
            // a misspelt key in a settings section is an error.
            let Some((section, key)) = rest.split_once('_') else { continue };
            match section {
                "kafka" => {
                    let kafka = self.kafka.get_or_insert_with(RawKafka::default);
                    if let Some(property) = key.strip_prefix("properties_") {
                        kafka.properties.insert(property.replace('_', "."), value);
                        continue;
                    }
                    let slot = match key {
                        "brokers" => &mut kafka.brokers,
                        "assignments_topic" => &mut kafka.assignments_topic,
                        "outcomes_topic" => &mut kafka.outcomes_topic,
                        "arms_topic" => &mut kafka.arms_topic,
                        "weights_topic" => &mut kafka.weights_topic,
                        "decisions_topic" => &mut kafka.decisions_topic,
                        "dead_letter_topic" => &mut kafka.dead_letter_topic,
                        "group_id" => &mut kafka.group_id,
                        _ => return Err(unknown()),
                    };
                    *slot = Some(value);
                }
                "redis" => {
                    let redis = self.redis.get_or_insert_with(RawRedis::default);
                    match key {
                        "url" => redis.url = Some(value),
                        "prefix" => redis.prefix = Some(value),
                        _ => return Err(unknown()),
                    }
                }
                "checkpoint" if key == "dir" => {
                    self.checkpoint.get_or_insert_with(RawCheckpoint::default).dir = Some(value);
                }
                "checkpoint" => return Err(unknown()),
                "metrics" if key == "listen" => {
                    self.metrics.get_or_insert_with(RawMetrics::default).listen = Some(value);
                }
                "metrics" => return Err(unknown()),
                _ => {}
            }
        }
        Ok(())
    }

    /// Checks the sections and turns them into settings.
    fn into_deployment(self) -> Result<Deployment, ConfigError> {
        let mode = match self.mode.as_deref() {
            None | Some("production") => Mode::Production,
            Some("shadow") => Mode::Shadow,
            Some(other) => return Err(ConfigError::BadMode { value: other.to_owned() }),
        };
        let kafka = self
            .kafka
            .map(|k| {
                Ok::<_, ConfigError>(KafkaConfig {
                    brokers: required(k.brokers, "kafka.brokers")?,
                    assignments_topic: required(k.assignments_topic, "kafka.assignments_topic")?,
                    outcomes_topic: required(k.outcomes_topic, "kafka.outcomes_topic")?,
                    arms_topic: k.arms_topic.filter(|t| !t.is_empty()),
                    weights_topic: k.weights_topic.filter(|t| !t.is_empty()),
                    decisions_topic: k.decisions_topic.filter(|t| !t.is_empty()),
                    dead_letter_topic: k.dead_letter_topic.filter(|t| !t.is_empty()),
                    group_id: required(k.group_id, "kafka.group_id")?,
                    properties: k.properties,
                })
            })
            .transpose()?;
        let redis = self
            .redis
            .map(|r| {
                Ok::<_, ConfigError>(RedisConfig {
                    url: required(r.url, "redis.url")?,
                    prefix: r.prefix.unwrap_or_else(|| DEFAULT_REDIS_PREFIX.to_owned()),
                })
            })
            .transpose()?;
        let raw = self.metrics.unwrap_or_default();
        let metrics = MetricsConfig {
            listen: match raw.listen {
                None => MetricsConfig::default().listen,
                Some(text) => text.parse().map_err(|_| ConfigError::BadAddress { key: "metrics.listen", value: text })?,
            },
            entities: raw.entities,
            ready_max_lag_ms: match raw.ready_max_lag {
                None => DEFAULT_READY_MAX_LAG_MS,
                Some(text) => match humantime::parse_duration(&text) {
                    Ok(d) => d.as_millis().min(u128::from(u64::MAX)) as u64,
                    Err(error) => return Err(ConfigError::BadDuration { key: "metrics.ready_max_lag", value: text, error }),
                },
            },
        };
        let checkpoint = self
            .checkpoint
            .map(|c| {
                let interval_ms = match c.interval {
                    None => DEFAULT_CHECKPOINT_INTERVAL_MS,
                    Some(text) => match humantime::parse_duration(&text) {
                        Ok(d) if d.as_millis() > 0 => d.as_millis().min(u128::from(u64::MAX)) as u64,
                        Ok(_) => return Err(ConfigError::NotPositive { key: "checkpoint.interval" }),
                        Err(error) => return Err(ConfigError::BadDuration { key: "checkpoint.interval", value: text, error }),
                    },
                };
                let keep = c.keep.unwrap_or(DEFAULT_CHECKPOINT_KEEP);
                if keep == 0 {
                    return Err(ConfigError::NotPositive { key: "checkpoint.keep" });
                }
                Ok(CheckpointConfig { dir: required(c.dir, "checkpoint.dir")?.into(), interval_ms, keep })
            })
            .transpose()?;
        Ok(Deployment { mode, kafka, redis, metrics, checkpoint })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "name = \"x\"\ntick = \"1m\"\nwindow = \"1h\"\nattribution = \"5m\"\nallowed_lateness = \"1m\"\n";

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn deployment_sections_load_with_defaults() {
        let text = format!(
            "{BASE}mode = \"shadow\"\n[kafka]\nbrokers = \"127.0.0.1:9092\"\nassignments_topic = \"a\"\noutcomes_topic = \"o\"\n\
             weights_topic = \"w\"\ngroup_id = \"g\"\n[kafka.properties]\n\"security.protocol\" = \"SASL_SSL\"\n\
             [redis]\nurl = \"redis://127.0.0.1:6379\"\n"
        );
        let job = Job::from_toml_str(&text).expect("valid");
        let d = job.deployment;
        assert_eq!(d.mode, Mode::Shadow);
        let kafka = d.kafka.expect("kafka");
        assert_eq!((kafka.brokers.as_str(), kafka.weights_topic.as_deref()), ("127.0.0.1:9092", Some("w")));
        assert_eq!(kafka.properties.get("security.protocol").map(String::as_str), Some("SASL_SSL"));
        assert_eq!(d.redis.expect("redis").prefix, DEFAULT_REDIS_PREFIX);
        assert_eq!(d.metrics.listen.to_string(), DEFAULT_METRICS_LISTEN);
    }

    #[test]
    fn environment_overrides_file_values_and_can_supply_secrets() {
        let text = format!("{BASE}[redis]\nurl = \"redis://file:6379\"\n");
        let vars = env(&[
            ("BANDITFLOW_REDIS_URL", "redis://env:6379"),
            ("BANDITFLOW_KAFKA_BROKERS", "b:9092"),
            ("BANDITFLOW_KAFKA_ASSIGNMENTS_TOPIC", "a"),
            ("BANDITFLOW_KAFKA_OUTCOMES_TOPIC", "o"),
            ("BANDITFLOW_KAFKA_WEIGHTS_TOPIC", "w"),
            ("BANDITFLOW_KAFKA_GROUP_ID", "g"),
            ("BANDITFLOW_KAFKA_PROPERTIES_SASL_PASSWORD", "s3cret"),
            ("BANDITFLOW_METRICS_LISTEN", "0.0.0.0:9100"),
            ("PATH", "/usr/bin"),
            ("BANDITFLOW_BIN", "target/release/banditflow"),
        ]);
        let job = Job::from_toml_str_with_env(&text, vars).expect("valid");
        let d = job.deployment;
        assert_eq!(d.redis.expect("redis").url, "redis://env:6379");
        assert_eq!(d.kafka.expect("kafka").properties.get("sasl.password").map(String::as_str), Some("s3cret"));
        assert_eq!(d.metrics.listen.port(), 9100);
    }

    #[test]
    fn checkpoint_section_loads_with_defaults_and_names_bad_keys() {
        let job = Job::from_toml_str(&format!("{BASE}[checkpoint]\ndir = \"/var/lib/bf\"\n")).expect("valid");
        assert_eq!(job.deployment.checkpoint, Some(CheckpointConfig { dir: "/var/lib/bf".into(), interval_ms: 60_000, keep: 3 }));
        let job = Job::from_toml_str(&format!("{BASE}[checkpoint]\ndir = \"d\"\ninterval = \"30s\"\nkeep = 5\n")).expect("valid");
        assert_eq!(job.deployment.checkpoint.map(|c| (c.interval_ms, c.keep)), Some((30_000, 5)));
        for (extra, key) in [("interval = \"soon\"\n", "`checkpoint.interval`"), ("keep = 0\n", "`checkpoint.keep`"), ("kep = 1\n", "checkpoint.kep")] {
            let err = Job::from_toml_str(&format!("{BASE}[checkpoint]\ndir = \"d\"\n{extra}")).expect_err(extra);
            assert!(err.to_string().contains(key), "{err}");
        }
        let err = Job::from_toml_str(&format!("{BASE}[checkpoint]\ninterval = \"1m\"\n")).expect_err("no dir");
        assert!(err.to_string().contains("`checkpoint.dir`"), "{err}");
        let job = Job::from_toml_str_with_env(BASE, env(&[("BANDITFLOW_CHECKPOINT_DIR", "/tmp/cp")])).expect("from the environment");
        assert_eq!(job.deployment.checkpoint.map(|c| c.dir), Some("/tmp/cp".into()));
    }

    #[test]
    fn incomplete_kafka_section_names_the_missing_key() {
        let text = format!("{BASE}[kafka]\nbrokers = \"b:9092\"\n");
        let err = Job::from_toml_str(&text).expect_err("incomplete");
        assert!(err.to_string().contains("`kafka.assignments_topic`"), "{err}");
    }

    #[test]
    fn unknown_override_variable_and_bad_values_are_named() {
        let err = Job::from_toml_str_with_env(BASE, env(&[("BANDITFLOW_KAFKA_BROKRS", "x")])).expect_err("unknown");
        assert!(err.to_string().contains("BANDITFLOW_KAFKA_BROKRS"), "{err}");
        let job = Job::from_toml_str(&format!("{BASE}[metrics]\nentities = [\"e\"]\nready_max_lag = \"90s\"\n")).expect("metrics keys");
        assert_eq!((job.deployment.metrics.entities, job.deployment.metrics.ready_max_lag_ms), (vec!["e".to_owned()], 90_000));
        let err = Job::from_toml_str(&format!("{BASE}[metrics]\nready_max_lag = \"soon\"\n")).expect_err("bad duration");
        assert!(err.to_string().contains("`metrics.ready_max_lag`"), "{err}");
        let err = Job::from_toml_str(&format!("{BASE}[metrics]\nlisten = \"nowhere\"\n")).expect_err("bad address");
        assert!(err.to_string().contains("`metrics.listen`"), "{err}");
        let err = Job::from_toml_str(&format!("{BASE}mode = \"canary\"\n")).expect_err("bad mode");
        assert!(err.to_string().contains("`mode`"), "{err}");
        let err = Job::from_toml_str(&format!("{BASE}[redis]\nurl = \"redis://x\"\nprefx = \"p\"\n")).expect_err("unknown key");
        assert!(err.to_string().contains("redis.prefx"), "{err}");
    }

    const KAFKA: &str = "[kafka]\nbrokers = \"b:1\"\nassignments_topic = \"a\"\noutcomes_topic = \"o\"\nweights_topic = \"w\"\ngroup_id = \"g\"\n";

    #[test]
    fn secrets_in_the_job_file_are_refused_with_the_variable_to_use() {
        let err = Job::from_toml_str(&format!("{BASE}{KAFKA}[kafka.properties]\n\"sasl.password\" = \"hunter2\"\n")).expect_err("a password in the file");
        let text = err.to_string();
        assert!(text.contains("kafka.properties.sasl.password") && text.contains("BANDITFLOW_KAFKA_PROPERTIES_SASL_PASSWORD") && !text.contains("hunter2"), "{text}");
        let err = Job::from_toml_str(&format!("{BASE}[redis]\nurl = \"redis://:hunter2@r:6379/0\"\n")).expect_err("a password in the URL");
        let text = err.to_string();
        assert!(text.contains("BANDITFLOW_REDIS_URL") && !text.contains("hunter2"), "{text}");
        // Without a password both are fine.
        Job::from_toml_str(&format!("{BASE}{KAFKA}[kafka.properties]\n\"sasl.username\" = \"u\"\n[redis]\nurl = \"rediss://r:6379/0\"\n")).expect("no secret");
    }

    #[test]
    fn a_file_variable_sets_its_setting_from_the_file_and_debug_never_shows_secrets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "hunter2\n").expect("write");
        let url = dir.path().join("url");
        std::fs::write(&url, "rediss://:hunter3@r:6380/1").expect("write");
        let vars = env(&[("BANDITFLOW_KAFKA_PROPERTIES_SASL_PASSWORD_FILE", secret.to_str().expect("utf-8")), ("BANDITFLOW_REDIS_URL_FILE", url.to_str().expect("utf-8"))]);
        let job = Job::from_toml_str_with_env(&format!("{BASE}{KAFKA}"), vars).expect("job");
        let kafka = job.deployment.kafka.as_ref().expect("kafka");
        assert_eq!(kafka.properties.get("sasl.password").map(String::as_str), Some("hunter2"), "the final newline left out");
        assert_eq!(job.deployment.redis.as_ref().map(|r| r.url.as_str()), Some("rediss://:hunter3@r:6380/1"));
        let shown = format!("{job:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("hunter3") && shown.contains("***"), "{shown}");
        let missing = env(&[("BANDITFLOW_REDIS_URL_FILE", "/nonexistent/secret")]);
        let err = Job::from_toml_str_with_env(BASE, missing).expect_err("no such file").to_string();
        assert!(err.contains("BANDITFLOW_REDIS_URL_FILE") && err.contains("/nonexistent/secret"), "{err}");
    }
}
