//! The dead-letter topic (`[kafka] dead_letter_topic`): every input record the decoder
//! refused, its value and key unchanged, with headers `reason`, `source_topic`,
//! `source_partition` and `source_offset`; and weight records the weights topic refused for
//! good (headers `reason`, `source_topic`, `entity_id`, `version`).
//!
//! A refused input record is *in flight* from when it is handed over until the broker has
//! acknowledged it; a failed delivery is sent again. The sources commit a partition's offset
//! no further than its oldest record in flight, so a crash cannot lose a record from both
//! the input (committed past) and the dead-letter topic (never delivered).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use super::client::{log_client_error, log_client_line, producer_config, KafkaClientError};
use crate::deployment::KafkaConfig;

/// A record for the dead-letter topic.
#[derive(Clone, Debug)]
pub struct Letter {
    /// Why it was refused (a malformed reason, or the broker's error for a weight record).
    pub reason: String,
    /// The topic it was read from (or meant for).
    pub source_topic: String,
    /// Where it was read from: partition and offset (`None` for a weight record).
    pub source: Option<(i32, i64)>,
    /// Its key, unchanged.
    pub key: Option<Vec<u8>>,
    /// Its value, unchanged.
    pub payload: Vec<u8>,
    /// Headers besides the four above (a weight record's entity and version).
    pub extra: Vec<(&'static str, String)>,
}

/// Delivery reports: what is in flight, and letters to send again.
struct Deliveries {
    brokers: String,
    /// Per (source topic, partition): offsets in flight, with how many letters each.
    in_flight: Mutex<HashMap<(String, i32), BTreeMap<i64, u32>>>,
    /// Letters whose delivery failed, to be sent again.
    again: Mutex<Vec<Letter>>,
    delivered: AtomicU64,
}

impl ClientContext for Deliveries {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_client_line(&self.brokers, level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error(&self.brokers, &error, reason);
    }
}

impl Deliveries {
    fn settle(&self, letter: &Letter) {
        let Some((partition, offset)) = letter.source else { return };
        let mut in_flight = self.in_flight.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(offsets) = in_flight.get_mut(&(letter.source_topic.clone(), partition)) {
            if let Some(n) = offsets.get_mut(&offset) {
                *n -= 1;
                if *n == 0 {
                    offsets.remove(&offset);
                }
            }
        }
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<Letter>;

    fn delivery(&self, result: &DeliveryResult<'_>, letter: Self::DeliveryOpaque) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                self.settle(&letter);
            }
            Err((error, _)) => {
                tracing::warn!(%error, source_topic = %letter.source_topic, "dead letter not delivered; sending it again");
                self.again.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(*letter);
            }
        }
    }
}

/// The largest letter the producer takes, bytes.
const LARGEST_LETTER: usize = 16 << 20;

/// Letters delivered to the dead-letter topic, over the process (for `/metrics`).
pub static DELIVERED: AtomicU64 = AtomicU64::new(0);

/// The dead-letter topic's producer, shared by the workers' sources and the weights sink.
pub struct DeadLetters {
    producer: BaseProducer<Deliveries>,
    topic: String,
}

impl DeadLetters {
    /// A producer to `topic` of the cluster `config` names.
    pub fn new(config: &KafkaConfig, topic: String) -> Result<Self, KafkaClientError> {
        let deliveries = Deliveries { brokers: config.brokers.clone(), in_flight: Mutex::new(HashMap::new()), again: Mutex::new(Vec::new()), delivered: AtomicU64::new(0) };
        let mut settings = producer_config(config);
        // Letters are as large as the largest input record or weight record, whatever limit
        // the job set for its other producers (`message.max.bytes` refusing a weight record
        // is one reason it is here); the topic's own limit still applies.
        settings.set("message.max.bytes", LARGEST_LETTER.to_string());
        let producer = settings
            .create_with_context(deliveries)
            .map_err(|source| KafkaClientError::Client { what: "cannot create the dead-letter producer".into(), source })?;
        Ok(DeadLetters { producer, topic })
    }

    /// The topic letters go to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Hands `letter` to the producer; it is in flight until the broker acknowledges it.
    pub fn send(&self, letter: Letter) {
        if let Some((partition, offset)) = letter.source {
            let mut in_flight = self.producer.context().in_flight.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            *in_flight.entry((letter.source_topic.clone(), partition)).or_default().entry(offset).or_insert(0) += 1;
        }
        self.produce(letter);
    }

    fn produce(&self, letter: Letter) {
        let (partition, offset) = letter.source.map_or((String::new(), String::new()), |(p, o)| (p.to_string(), o.to_string()));
        let mut headers = OwnedHeaders::new()
            .insert(Header { key: "reason", value: Some(letter.reason.as_str()) })
            .insert(Header { key: "source_topic", value: Some(letter.source_topic.as_str()) });
        if letter.source.is_some() {
            headers = headers.insert(Header { key: "source_partition", value: Some(partition.as_str()) }).insert(Header { key: "source_offset", value: Some(offset.as_str()) });
        }
        for (key, value) in &letter.extra {
            headers = headers.insert(Header { key, value: Some(value.as_str()) });
        }
        let payload = letter.payload.clone();
        let key = letter.key.clone();
        let mut record = BaseRecord::with_opaque_to(&self.topic, Box::new(letter)).payload(&payload).headers(headers);
        if let Some(key) = &key {
            record = record.key(key);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((error, back)) => {
                    // Not even queued (too large for the producer, say): it cannot be delivered,
                    // and holding its offset would stop commits for good.
                    tracing::error!(%error, topic = %self.topic, bytes = payload.len(), "record refused by the dead-letter topic; it is counted but not kept");
                    self.producer.context().settle(&back.delivery_opaque);
                    return;
                }
            }
        }
    }

    /// Serves delivery reports and sends failed letters again.
    pub fn poll(&self) {
        self.producer.poll(Duration::ZERO);
        let again = std::mem::take(&mut *self.producer.context().again.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        for letter in again {
            self.produce(letter);
        }
        DELIVERED.store(self.producer.context().delivered.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// The oldest offset of `topic`'s `partition` still in flight.
    pub fn oldest_in_flight(&self, topic: &str, partition: i32) -> Option<i64> {
        let in_flight = self.producer.context().in_flight.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        in_flight.get(&(topic.to_owned(), partition)).and_then(|offsets| offsets.keys().next().copied())
    }

    /// Waits up to `timeout` for every letter to be delivered; whether they all were.
    pub fn drain(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            self.poll();
            let empty = self.producer.in_flight_count() == 0 && self.producer.context().again.lock().map_or(true, |a| a.is_empty());
            if empty {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            self.producer.poll(Duration::from_millis(1));
        }
    }
}
