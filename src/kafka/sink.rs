//! The weights-topic sink: key `entity_id`, the JSON record as value, a `version` header.
//!
//! One request in flight keeps each entity's records in order when librdkafka retries, and
//! the writer remembers the newest version out per entity (read back from the topic at
//! start-up), so nothing at or below it is written again.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use banditflow_core::record::EncodedRecord;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::ClientContext;

use super::client::{log_client_error, log_client_line, producer_config, KafkaClientError, VERSION_HEADER};
use super::dead_letter::{DeadLetters, Letter};
use crate::deployment::KafkaConfig;

/// Delivery reports of the weights producer: which entities' records failed.
struct Deliveries {
    brokers: String,
    failed: Mutex<Vec<(String, u64, KafkaError)>>,
    /// Per partition, the offset after the newest record delivered.
    delivered: Mutex<HashMap<i32, i64>>,
}

impl ClientContext for Deliveries {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_client_line(&self.brokers, level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error(&self.brokers, &error, reason);
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<(String, u64)>;

    fn delivery(&self, result: &DeliveryResult<'_>, record: Self::DeliveryOpaque) {
        if let Ok(message) = result {
            if let Ok(mut delivered) = self.delivered.lock() {
                let next = delivered.entry(message.partition()).or_insert(0);
                *next = (*next).max(message.offset() + 1);
            }
        }
        if let Err((error, _)) = result {
            if let Ok(mut failed) = self.failed.lock() {
                let (entity, version) = *record;
                failed.push((entity, version, error.clone()));
            }
        }
    }
}

/// Writes records to the weights topic: key `entity_id`, JSON value, `version` header.
pub struct KafkaWriter {
    producer: BaseProducer<Deliveries>,
    topic: String,
    /// Newest version out per entity. Versions are `as_of`, so an entry below a batch's
    /// lowest version can never refuse a record again: such entries are pruned now and then,
    /// and a forgotten entity's entry goes with them.
    published: HashMap<String, u64>,
    /// Entries in `published` after the last pruning.
    kept: usize,
    /// Before each batch: its first tick, and per partition the offset after every record
    /// delivered so far (so no record of that tick or later is before it).
    positions: Arc<Mutex<Positions>>,
    /// Where records refused for good go.
    dead_letters: Option<Arc<DeadLetters>>,
}

/// Where the weights topic stood before each batch, for checkpoints: a restart reads the
/// topic back only from there.
#[derive(Debug, Default)]
pub struct Positions {
    /// What was on the topic at start-up.
    start: HashMap<i32, i64>,
    /// `(first tick of a batch, offsets before it)`, oldest first.
    before: std::collections::VecDeque<(u64, HashMap<i32, i64>)>,
}

impl Positions {
    /// Per partition, an offset at or before the first record of any tick at or after `tick`.
    pub fn before(&self, tick: u64) -> Vec<(i32, i64)> {
        let offsets = self.before.iter().rev().find(|(first, _)| *first <= tick).map_or(&self.start, |(_, o)| o);
        let mut offsets: Vec<(i32, i64)> = offsets.iter().map(|(p, o)| (*p, *o)).collect();
        offsets.sort_unstable();
        offsets
    }
}

impl KafkaWriter {
    /// A writer to `topic` that never writes a version at or below `published`'s for its
    /// entity; `ends` is where each partition of the topic ended when it was read back.
    /// `positions` is where it records where the topic stood before each batch; records the
    /// topic refuses for good go to `dead_letters`.
    pub fn new(
        config: &KafkaConfig,
        topic: String,
        published: HashMap<String, u64>,
        ends: HashMap<i32, i64>,
        positions: Arc<Mutex<Positions>>,
        dead_letters: Option<Arc<DeadLetters>>,
    ) -> Result<Self, KafkaClientError> {
        let producer = producer_config(config)
            .create_with_context(Deliveries { brokers: config.brokers.clone(), failed: Mutex::new(Vec::new()), delivered: Mutex::new(ends.clone()) })
            .map_err(|source| KafkaClientError::Client { what: "cannot create producer".into(), source })?;
        if let Ok(mut p) = positions.lock() {
            *p = Positions { start: ends, before: std::collections::VecDeque::new() };
        }
        Ok(KafkaWriter { producer, topic, kept: published.len(), published, positions, dead_letters })
    }

    /// Writes `batch` and waits for its delivery; on failure returns the records still to
    /// write (none at or below a version delivered since).
    pub fn write(&mut self, batch: Vec<EncodedRecord>) -> Result<(), (KafkaClientError, Vec<EncodedRecord>)> {
        if self.published.len() > (2 * self.kept).max(4096) {
            if let Some(lowest) = batch.iter().map(|r| r.version).min() {
                self.published.retain(|_, v| *v >= lowest);
                self.kept = self.published.len();
            }
        }
        if let (Some(first), Ok(delivered), Ok(mut positions)) = (batch.iter().map(|r| r.tick).min(), self.producer.context().delivered.lock(), self.positions.lock()) {
            positions.before.push_back((first, delivered.clone()));
            // Checkpoints are taken every minute or so: a few thousand batches reach back far.
            while positions.before.len() > 10_000 {
                positions.before.pop_front();
            }
        }
        let mut sent = Vec::with_capacity(batch.len());
        let mut unsent = Vec::new();
        let mut first_error = None;
        for record in batch {
            if self.published.get(&record.entity_id).is_some_and(|&v| v >= record.version) {
                continue;
            }
            let version = record.version.to_string();
            let headers = OwnedHeaders::new().insert(Header { key: VERSION_HEADER, value: Some(version.as_str()) });
            let message = BaseRecord::with_opaque_to(&self.topic, Box::new((record.entity_id.clone(), record.version)))
                .key(record.entity_id.as_str())
                .payload(record.json.as_str())
                .headers(headers);
            let mut message = message;
            let queued = loop {
                match self.producer.send(message) {
                    Ok(()) => break true,
                    Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), back)) => {
                        message = back;
                        self.producer.poll(Duration::from_millis(10));
                    }
                    Err((error, _)) if refused_for_good(&error) => {
                        self.reject(&record, &error);
                        break false;
                    }
                    Err((error, _)) => {
                        first_error.get_or_insert(error.to_string());
                        unsent.push(record.clone());
                        break false;
                    }
                }
            };
            if queued {
                sent.push(record);
            }
        }
        let flushed = flush(&self.producer, Duration::from_secs(30));
        let failed: Vec<(String, u64, KafkaError)> = self.producer.context().failed.lock().map(|mut f| std::mem::take(&mut *f)).unwrap_or_default();
        if let Err(error) = &flushed {
            first_error.get_or_insert(error.to_string());
        }
        let failed_versions: HashSet<(&str, u64)> = failed.iter().filter(|(_, _, e)| !refused_for_good(e)).map(|(e, v, _)| (e.as_str(), *v)).collect();
        let refused: HashSet<(&str, u64)> = failed.iter().filter(|(_, _, e)| refused_for_good(e)).map(|(e, v, _)| (e.as_str(), *v)).collect();
        if let Some((_, _, error)) = failed.iter().find(|(_, _, e)| !refused_for_good(e)) {
            first_error.get_or_insert(error.to_string());
        }
        let flush_failed = flushed.is_err();
        let mut delivered_or_failed = Vec::new();
        for record in sent {
            if let Some((_, _, error)) = failed.iter().find(|(e, v, _)| refused.contains(&(e.as_str(), *v)) && *e == record.entity_id && *v == record.version) {
                self.reject(&record, error);
            } else if flush_failed || failed_versions.contains(&(record.entity_id.as_str(), record.version)) {
                delivered_or_failed.push(record);
            } else {
                let newest = self.published.entry(record.entity_id.clone()).or_insert(record.version);
                *newest = (*newest).max(record.version);
            }
        }
        // A failed record behind one of its entity's delivered records is never retried.
        unsent.extend(delivered_or_failed.into_iter().filter(|r| self.published.get(&r.entity_id).is_none_or(|&v| v < r.version)));
        match first_error {
            None => Ok(()),
            Some(error) => {
                let n = unsent.len();
                Err((KafkaClientError::Undelivered { count: n, reason: error }, unsent))
            }
        }
    }
}

/// Records the broker (or librdkafka) refused for good, by sink: retrying them would block
/// the sink forever.
pub static REJECTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Whether `error` refuses a record for good (too large, invalid), not for now.
fn refused_for_good(error: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as Code;
    matches!(
        error.rdkafka_error_code(),
        Some(Code::MessageSizeTooLarge | Code::InvalidMessage | Code::InvalidMessageSize | Code::InvalidRecord | Code::MessageBatchTooLarge)
    )
}

impl KafkaWriter {
    /// Logs and counts a record refused for good, and sends it to the dead-letter topic if
    /// there is one; it is not retried.
    fn reject(&self, record: &EncodedRecord, error: &KafkaError) {
        REJECTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(entity = %record.entity_id, version = record.version, bytes = record.json.len(), reason = %error, "weight record rejected by the weights topic; skipped");
        if let Some(letters) = &self.dead_letters {
            letters.send(Letter {
                reason: error.to_string(),
                source_topic: self.topic.clone(),
                source: None,
                key: Some(record.entity_id.as_bytes().to_vec()),
                payload: record.json.as_bytes().to_vec(),
                extra: vec![("entity_id", record.entity_id.clone()), ("version", record.version.to_string())],
            });
            letters.poll();
        }
    }
}

/// Waits until every record handed to `producer` is acknowledged or failed. rdkafka's own
/// `flush` sleeps in steps of 100 ms, which would be most of the weights topic's latency.
fn flush(producer: &BaseProducer<Deliveries>, timeout: Duration) -> Result<(), KafkaError> {
    let deadline = Instant::now() + timeout;
    while producer.in_flight_count() > 0 {
        if Instant::now() >= deadline {
            return Err(KafkaError::Flush(rdkafka::types::RDKafkaErrorCode::RequestTimedOut));
        }
        producer.poll(Duration::from_millis(1));
    }
    Ok(())
}

