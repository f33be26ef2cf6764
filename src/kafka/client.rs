//! Kafka clients of the live worker: how they are configured, which partitions each timely
//! worker owns, where a rebuild starts, and what was already published.
//!
//! Every `TopicPartitionList` here is dropped before the client it was used with: a live one
//! makes the client's drop hang.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::deployment::{KafkaConfig, Mode};
use crate::logs::{repeated_suffix, Repeat, CLIENT_REPEATS};

/// How long metadata and offset requests may take before start-up fails.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a read-back waits after the last message before it trusts end-of-partition:
/// tansu 0.6 reports it early, with the rest of the same fetch still to come. Two of the
/// consumers' fetch waits (`fetch.wait.max.ms` = 50): an empty fetch has come back since.
const END_QUIET: Duration = Duration::from_millis(100);
/// Name of the header that carries a weight record's version.
pub const VERSION_HEADER: &str = "version";

/// Why talking to Kafka failed.
#[derive(Debug, thiserror::Error)]
pub enum KafkaClientError {
    /// librdkafka refused a client or a request.
    #[error("kafka {what}: {source}")]
    Client {
        /// What was being done.
        what: String,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// The brokers did not answer a metadata request.
    #[error(
        "cannot read the metadata of topic `{topic}` from the Kafka brokers {brokers} ({error}); check that they are \
         running and reachable from this host, `[kafka] brokers` (or BANDITFLOW_KAFKA_BROKERS), and the security \
         settings in `[kafka.properties]`"
    )]
    Unreachable {
        /// The bootstrap servers tried.
        brokers: String,
        /// The topic asked about.
        topic: String,
        /// librdkafka's error.
        error: KafkaError,
    },
    /// A topic the job needs does not exist (or has no partitions).
    #[error("kafka topic {0:?} does not exist or has no partitions")]
    MissingTopic(String),
    /// Some records were not delivered to the weights topic.
    #[error("{count} records not delivered: {reason}")]
    Undelivered {
        /// How many.
        count: usize,
        /// The first error librdkafka reported.
        reason: String,
    },
}

fn client_error(what: impl Into<String>) -> impl FnOnce(KafkaError) -> KafkaClientError {
    let what = what.into();
    move |source| KafkaClientError::Client { what, source }
}

/// The topic weight records go to in `mode`, if the job publishes to Kafka.
pub fn weights_topic(kafka: &KafkaConfig, mode: Mode) -> Option<String> {
    let topic = kafka.weights_topic.as_ref()?;
    Some(match mode {
        Mode::Production => topic.clone(),
        Mode::Shadow => format!("{topic}.shadow"),
    })
}

/// The topic decision events go to in `mode`, if the job has one (`.shadow` in shadow mode).
pub fn decisions_topic(kafka: &KafkaConfig, mode: Mode) -> Option<String> {
    let topic = kafka.decisions_topic.as_ref()?;
    Some(match mode {
        Mode::Production => topic.clone(),
        Mode::Shadow => format!("{topic}.shadow"),
    })
}

/// The topic refused records go to in `mode`, if the job has one (`.shadow` in shadow mode).
pub fn dead_letter_topic(kafka: &KafkaConfig, mode: Mode) -> Option<String> {
    let topic = kafka.dead_letter_topic.as_ref()?;
    Some(match mode {
        Mode::Production => topic.clone(),
        Mode::Shadow => format!("{topic}.shadow"),
    })
}

/// Applies the job's `[kafka.properties]` as they are, over our defaults.
fn with_properties(mut config: ClientConfig, kafka: &KafkaConfig) -> ClientConfig {
    for (key, value) in &kafka.properties {
        config.set(key, value);
    }
    config
}

/// Consumer lag in messages (high watermark minus position) per `(topic, partition)`, as
/// librdkafka's statistics last reported it.
pub type ConsumerLag = Arc<Mutex<BTreeMap<(String, i32), i64>>>;

/// Wall-clock ms when a consumer's statistics last showed a broker connection up (0: no
/// statistics yet). A partition counts as idle only while its brokers are known to be up:
/// during an outage "nothing new" means "nothing read", not "nothing produced".
pub static BROKERS_UP_AT: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// Whether the brokers were last seen up within three statistics intervals of `now_ms` (or
/// no statistics were ever received, so nothing says otherwise).
pub fn brokers_seem_up(now_ms: i64) -> bool {
    let at = BROKERS_UP_AT.load(std::sync::atomic::Ordering::Relaxed);
    at == 0 || now_ms - at <= 3_000
}

/// The latest wall-clock time the brokers are known to have been up at: `now_ms` when no
/// statistics were ever received, their last report while they seem up, `None` once they do
/// not. An idle partition's watermark follows the wall clock no further than this: in the
/// seconds between an outage and its first missed report, "nothing new" may already mean
/// "nothing read".
pub fn brokers_up_until(now_ms: i64) -> Option<i64> {
    let at = BROKERS_UP_AT.load(std::sync::atomic::Ordering::Relaxed);
    if at == 0 {
        Some(now_ms)
    } else {
        brokers_seem_up(now_ms).then_some(at.min(now_ms))
    }
}

/// 1 once partitions were added to an input topic while the worker ran (it then stops).
pub static PARTITIONS_ADDED: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// How often librdkafka reports statistics to a consumer that tracks lag.
const STATISTICS_INTERVAL_MS: &str = "1000";

/// Logs a librdkafka error report: once, then at most once per repeat window with how often
/// it came meanwhile (an unreachable broker is reported many times a second).
/// End-of-partition is an event we poll for, not an error.
pub fn log_client_error(brokers: &str, error: &KafkaError, reason: &str) {
    if matches!(error, KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)) {
        return;
    }
    if let Repeat::Log { suppressed, over } = CLIENT_REPEATS.occur(&error.to_string(), std::time::Instant::now()) {
        tracing::warn!(brokers, %error, reason, "kafka client error{}", repeated_suffix(suppressed, over));
    }
}

/// Passes a librdkafka log line on to `tracing`, repeats limited like errors.
pub fn log_client_line(brokers: &str, level: RDKafkaLogLevel, facility: &str, message: &str) {
    if let Repeat::Log { suppressed, over } = CLIENT_REPEATS.occur(&format!("{level:?}/{facility}"), std::time::Instant::now()) {
        let suffix = repeated_suffix(suppressed, over);
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::error!(brokers, facility, "librdkafka: {message}{suffix}");
            }
            RDKafkaLogLevel::Warning => tracing::warn!(brokers, facility, "librdkafka: {message}{suffix}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => tracing::info!(brokers, facility, "librdkafka: {message}{suffix}"),
            RDKafkaLogLevel::Debug => tracing::debug!(brokers, facility, "librdkafka: {message}{suffix}"),
        }
    }
}

/// Client callbacks of our consumers: errors and log lines go through the repeat limit;
/// statistics feed the lag.
pub struct ConsumerCallbacks {
    brokers: String,
    lag: Option<ConsumerLag>,
}

impl ClientContext for ConsumerCallbacks {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_client_line(&self.brokers, level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error(&self.brokers, &error, reason);
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        if statistics.brokers.values().any(|b| b.state == "UP" && b.nodeid >= 0) {
            BROKERS_UP_AT.store(banditflow_core::time::now_ms(), std::sync::atomic::Ordering::Relaxed);
        }
        let Some(lag) = &self.lag else { return };
        let Ok(mut lag) = lag.lock() else { return };
        for (name, topic) in &statistics.topics {
            for (&id, partition) in &topic.partitions {
                // -1 is the internal "unassigned" partition; offsets are -1001 until known.
                // Before the first message the position is the next offset to fetch.
                let position = if partition.app_offset >= 0 { partition.app_offset } else { partition.next_offset };
                if id >= 0 && partition.hi_offset >= 0 && position >= 0 {
                    lag.insert((name.clone(), id), (partition.hi_offset - position).max(0));
                }
            }
        }
    }
}

impl ConsumerContext for ConsumerCallbacks {}

/// A consumer of ours.
pub type KafkaConsumer = BaseConsumer<ConsumerCallbacks>;

/// Drops a client on a thread of its own: librdkafka's close takes about 100 ms, which a
/// start-up need not wait for. (Every `TopicPartitionList` of it must be gone already.)
pub fn close_in_background<C: Send + 'static>(client: C) {
    if let Err(error) = std::thread::Builder::new().name("kafka-close".into()).spawn(move || drop(client)) {
        tracing::debug!(%error, "cannot close a Kafka client in the background; it is closed when the process ends");
    }
}

/// A consumer for manually assigned partitions, in the job's consumer group (for commits
/// only: partitions are split among timely workers, not by the group protocol).
pub fn consumer(kafka: &KafkaConfig) -> Result<KafkaConsumer, KafkaClientError> {
    consumer_with_lag(kafka, None)
}

/// [`consumer`], reporting its partitions' lag into `lag`.
pub fn consumer_with_lag(kafka: &KafkaConfig, lag: Option<ConsumerLag>) -> Result<KafkaConsumer, KafkaClientError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.brokers)
        .set("group.id", &kafka.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "50");
    if lag.is_some() {
        config.set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
    }
    with_properties(config, kafka).create_with_context(ConsumerCallbacks { brokers: kafka.brokers.clone(), lag }).map_err(client_error("cannot create consumer"))
}

/// A producer with the job's settings; `linger.ms` is short because records are few and
/// freshness matters, and one request in flight keeps each entity's records in order even
/// when librdkafka retries.
pub fn producer_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.brokers)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "10000")
        .set("max.in.flight.requests.per.connection", "1");
    with_properties(config, kafka)
}

/// The partitions of `topic`, sorted.
pub fn partitions(consumer: &KafkaConsumer, topic: &str) -> Result<Vec<i32>, KafkaClientError> {
    let metadata = consumer.fetch_metadata(Some(topic), REQUEST_TIMEOUT).map_err(|error| KafkaClientError::Unreachable {
        brokers: consumer.context().brokers.clone(),
        topic: topic.to_owned(),
        error,
    })?;
    let mut partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    partitions.sort_unstable();
    if partitions.is_empty() {
        return Err(KafkaClientError::MissingTopic(topic.to_owned()));
    }
    Ok(partitions)
}

/// Which of `all` (every partition of every input topic, in a fixed order) timely worker
/// `worker` of `peers` reads: every `peers`-th, so each topic's partitions spread evenly.
pub fn owned_by<T: Clone>(all: &[T], worker: usize, peers: usize) -> Vec<T> {
    all.iter().skip(worker).step_by(peers.max(1)).cloned().collect()
}

/// The offset of the first message at or after `ts_ms` in each of `partitions` of `topic`
/// (the end where there is none), for rebuilding the window from the topic itself.
pub fn offsets_at(consumer: &KafkaConsumer, topic: &str, partitions: &[i32], ts_ms: i64) -> Result<Vec<(i32, Offset)>, KafkaClientError> {
    let mut query = TopicPartitionList::new();
    for &p in partitions {
        query.add_partition_offset(topic, p, Offset::Offset(ts_ms.max(0))).map_err(client_error("offset query"))?;
    }
    let found = consumer.offsets_for_times(query, REQUEST_TIMEOUT).map_err(client_error(format!("offsets for times of {topic}")))?;
    let offsets = found
        .elements()
        .iter()
        .map(|e| {
            let offset = match e.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                _ => Offset::End,
            };
            (e.partition(), offset)
        })
        .collect();
    drop(found);
    Ok(offsets)
}

/// What is already on the weights topic: the newest version per entity, and per partition
/// the offset after the last message read.
#[derive(Debug, Default)]
pub struct ReadBack {
    /// The newest version per entity.
    pub versions: HashMap<String, u64>,
    /// Per partition, the offset after the last message read (or where reading started).
    pub ends: HashMap<i32, i64>,
}

/// From which event time on a rebuild that reads `partitions` of `topic` from `read_from_ms`
/// sees every message: `None` when nothing was ever removed from them (each still starts at
/// offset 0 and none was sought past its start: everything is read, as on a broker that
/// cannot seek by time and answers offset 0, such as tansu 0.6); `read_from_ms` when a
/// partition holds messages before it (the seek skipped them); and, for a partition whose
/// oldest messages were removed (retention) and whose read starts at its first kept one,
/// the first kept message's timestamp plus `lateness_ms` (what was removed came before it,
/// at most `lateness_ms` out of order), never earlier than `read_from_ms`. The latest over
/// the partitions.
pub fn complete_from(
    consumer: &KafkaConsumer,
    topic: &str,
    partitions: &[i32],
    read_from_ms: i64,
    lateness_ms: u64,
) -> Result<Option<i64>, KafkaClientError> {
    let mut complete: Option<i64> = None;
    for (p, offset) in offsets_at(consumer, topic, partitions, read_from_ms)? {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, REQUEST_TIMEOUT)
            .map_err(client_error(format!("watermarks of {topic}/{p}")))?;
        let from = match offset {
            Offset::Offset(o) if o > low => Some(read_from_ms),
            _ if low == 0 => None,
            // Everything that was there is gone: what is removed is older than now.
            _ if high <= low => Some(read_from_ms.max(banditflow_core::time::now_ms())),
            _ => {
                let kept = first_timestamp(consumer, topic, p, low)?;
                Some(read_from_ms.max(kept.saturating_add(lateness_ms.min(i64::MAX as u64) as i64)))
            }
        };
        complete = complete.max(from);
    }
    Ok(complete)
}

/// The timestamp of the message at `offset` of `topic`/`partition` (or the first after it).
fn first_timestamp(
    consumer: &KafkaConsumer,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<i64, KafkaClientError> {
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, Offset::Offset(offset))
        .map_err(client_error("assignment"))?;
    consumer
        .assign(&assignment)
        .map_err(client_error(format!("assign {topic}/{partition}")))?;
    drop(assignment);
    let asked = Instant::now();
    let found = loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                break message
                    .timestamp()
                    .to_millis()
                    .unwrap_or_else(banditflow_core::time::now_ms)
            }
            // End-of-partition (early on tansu) or a passing error: ask on until the deadline.
            Some(Err(_)) | None if asked.elapsed() < REQUEST_TIMEOUT => {}
            Some(Err(source)) => {
                return Err(KafkaClientError::Client {
                    what: format!("first kept message of {topic}/{partition}"),
                    source,
                })
            }
            None => {
                return Err(KafkaClientError::Client {
                    what: format!("first kept message of {topic}/{partition}"),
                    source: KafkaError::NoMessageReceived,
                })
            }
        }
    };
    consumer
        .unassign()
        .map_err(client_error(format!("unassign {topic}/{partition}")))?;
    Ok(found)
}

/// The `retention.ms` of each of `topics` as the brokers report it, in one request: `None`
/// for a topic they report none for, or unlimited (-1).
pub fn retentions(kafka: &KafkaConfig, topics: &[&str]) -> Result<Vec<Option<i64>>, KafkaClientError> {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &kafka.brokers);
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = with_properties(config, kafka).create().map_err(client_error("cannot create admin client"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| KafkaClientError::Client { what: "admin requests".to_owned(), source: KafkaError::AdminOpCreation(e.to_string()) })?;
    let options = AdminOptions::new().request_timeout(Some(REQUEST_TIMEOUT));
    let resources: Vec<ResourceSpecifier<'_>> = topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
    let described = runtime.block_on(admin.describe_configs(&resources, &options)).map_err(client_error(format!("describe the configuration of {}", topics.join(", "))))?;
    // One result per resource, in the order asked.
    Ok(described
        .into_iter()
        .map(|resource| {
            resource.ok().and_then(|r| r.get("retention.ms").and_then(|e| e.value.as_deref()).and_then(|v| v.parse::<i64>().ok())).filter(|ms| *ms >= 0)
        })
        .collect())
}

/// The newest version published per entity on `topic` (the `version` header, or the
/// record's `version` field), read to its end: from the start, or from the offsets in
/// `from` for the partitions it names. No deadline: a large topic is read to its end with a
/// progress line every 10 s, while a topic that stops answering fails after
/// [`REQUEST_TIMEOUT`] with no message.
pub fn published_versions(kafka: &KafkaConfig, topic: &str, from: &[(i32, i64)]) -> Result<ReadBack, KafkaClientError> {
    let mut versions: HashMap<String, u64> = HashMap::new();
    let ends = read_to_end(kafka, topic, from, "reading the weights topic back", |message| {
        let Some(entity) = message.key().and_then(|k| std::str::from_utf8(k).ok()) else { return };
        let header = message.headers().and_then(|h| {
            h.iter().find(|h| h.key == VERSION_HEADER).and_then(|h| h.value).and_then(|v| std::str::from_utf8(v).ok()).and_then(|v| v.parse().ok())
        });
        let version = header.or_else(|| {
            message.payload().and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok()).and_then(|v| v.get("version").and_then(|v| v.as_u64()))
        });
        if let Some(version) = version {
            let newest = versions.entry(entity.to_owned()).or_insert(version);
            *newest = (*newest).max(version);
        }
    })?;
    Ok(ReadBack { versions, ends })
}

/// Reads every partition of `topic` to its end, from the start or from the offsets in `from`
/// for the partitions it names, handing each message to `each`; returns, per partition, the
/// offset after the last message read (or where reading started). No deadline: a large topic
/// is read to its end with a progress line (`doing`) every 10 s, while a topic that stops
/// answering fails after [`REQUEST_TIMEOUT`] with no message.
pub fn read_to_end(kafka: &KafkaConfig, topic: &str, from: &[(i32, i64)], doing: &str, mut each: impl FnMut(&rdkafka::message::BorrowedMessage<'_>)) -> Result<HashMap<i32, i64>, KafkaClientError> {
    let consumer = consumer(kafka)?;
    let parts = partitions(&consumer, topic)?;
    let mut assignment = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for &p in &parts {
        let start = from.iter().find(|(q, _)| *q == p).map(|(_, o)| *o).filter(|o| *o >= 0);
        if let Some(o) = start {
            ends.insert(p, o);
        }
        assignment.add_partition_offset(topic, p, start.map_or(Offset::Beginning, Offset::Offset)).map_err(client_error("assignment"))?;
    }
    consumer.assign(&assignment).map_err(client_error(format!("assign {topic}")))?;
    drop(assignment);
    let mut at_end = std::collections::HashSet::new();
    let mut last_message = Instant::now();
    let (mut messages, mut reported, started) = (0u64, Instant::now(), Instant::now());
    let mut all_at_end: Option<Duration> = None;
    // Some brokers (tansu 0.6) report end-of-partition early, inside the last batch: the end
    // is where every partition reported it and nothing came for a moment.
    while at_end.len() < parts.len() || last_message.elapsed() < END_QUIET {
        if last_message.elapsed() > REQUEST_TIMEOUT && at_end.len() < parts.len() {
            return Err(KafkaClientError::Client { what: format!("reading {topic}"), source: KafkaError::NoMessageReceived });
        }
        if reported.elapsed() >= Duration::from_secs(10) {
            reported = Instant::now();
            tracing::info!(topic, messages, "{doing}");
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
                if at_end.len() == parts.len() {
                    all_at_end.get_or_insert(started.elapsed());
                }
            }
            Some(Err(source)) => return Err(KafkaClientError::Client { what: format!("reading {topic}"), source }),
            Some(Ok(message)) => {
                at_end.remove(&message.partition());
                last_message = Instant::now();
                messages += 1;
                ends.insert(message.partition(), message.offset() + 1);
                each(&message);
            }
        }
    }
    close_in_background(consumer);
    tracing::debug!(topic, messages, first_all_at_end_ms = all_at_end.map(|d| d.as_millis() as u64), elapsed_ms = started.elapsed().as_millis() as u64, "topic read to its end");
    Ok(ends)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_partitions_are_disjoint_and_cover_all() {
        let all: Vec<(u8, i32)> = (0..4).map(|p| (0, p)).chain((0..3).map(|p| (1, p))).collect();
        for peers in 1..=9 {
            let mut seen: Vec<(u8, i32)> = (0..peers).flat_map(|w| owned_by(&all, w, peers)).collect();
            seen.sort_unstable();
            let mut expected = all.clone();
            expected.sort_unstable();
            assert_eq!(seen, expected, "peers {peers}");
        }
        assert_eq!(owned_by(&all, 1, 2), vec![(0, 1), (0, 3), (1, 1)]);
    }

    #[test]
    fn librdkafka_is_built_with_tls_and_sasl_without_gssapi() {
        // librdkafka refuses at creation a protocol or mechanism it was built without.
        for (protocol, mechanism) in [("SSL", None), ("SASL_SSL", Some("SCRAM-SHA-512")), ("SASL_SSL", Some("PLAIN")), ("SASL_PLAINTEXT", Some("SCRAM-SHA-256"))] {
            let mut config = ClientConfig::new();
            config.set("bootstrap.servers", "127.0.0.1:1").set("security.protocol", protocol);
            if let Some(mechanism) = mechanism {
                config.set("sasl.mechanisms", mechanism).set("sasl.username", "u").set("sasl.password", "p");
            }
            let created: Result<rdkafka::producer::BaseProducer, _> = config.create();
            assert!(created.is_ok(), "{protocol} {mechanism:?}: {:?}", created.err());
        }
        let mut gssapi = ClientConfig::new();
        gssapi.set("bootstrap.servers", "127.0.0.1:1").set("security.protocol", "SASL_PLAINTEXT").set("sasl.mechanisms", "GSSAPI");
        assert!(gssapi.create::<rdkafka::producer::BaseProducer>().is_err(), "GSSAPI is not built in");
    }
}
