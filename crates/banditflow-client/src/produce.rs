//! Publishing what serving did: assignments and outcomes to their topics in the schemas'
//! format (`schemas/assignment.schema.json`, `schemas/outcome.schema.json`), keyed by
//! `assignment_id` so an assignment and its outcomes share a partition, with the message
//! timestamp set to `ts`. A background thread of librdkafka's sends them; a call returns once
//! the message is queued. With the queue full (the brokers out of reach for a while) it waits
//! for room, or, made [`TrafficProducer::without_waiting`] (on a request path), fails at once.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use serde::Serialize;

use crate::assign::Assignment;

/// An outcome of an assignment (a conversion).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// The assignment it is an outcome of.
    pub assignment_id: String,
    /// When, ms since the epoch.
    pub ts: i64,
    /// Its kind (a job may count only some kinds), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// Why a message was not queued.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// The queue is full and the producer does not wait.
    #[error("cannot produce to {topic}: the queue is full (the brokers are out of reach?)")]
    QueueFull {
        /// The topic.
        topic: String,
    },
    /// librdkafka refused it.
    #[error("cannot produce to {topic}: {error}")]
    Kafka {
        /// The topic.
        topic: String,
        /// librdkafka's error.
        error: KafkaError,
    },
}

/// Produces assignments and outcomes.
pub struct TrafficProducer {
    producer: ThreadedProducer<DefaultProducerContext>,
    assignments_topic: String,
    outcomes_topic: String,
    /// Whether a full queue makes a call wait for room (else it fails at once).
    waits: bool,
}

impl TrafficProducer {
    /// A producer to the brokers at `brokers` (a `host:port` list), with librdkafka
    /// `properties` on top (security settings, say).
    pub fn new(brokers: &str, properties: &[(String, String)], assignments_topic: &str, outcomes_topic: &str) -> Result<Self, ProduceError> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", brokers).set("linger.ms", "5");
        for (key, value) in properties {
            config.set(key, value);
        }
        let producer = config
            .create()
            .map_err(|error| ProduceError::Kafka { topic: assignments_topic.to_owned(), error })?;
        Ok(TrafficProducer { producer, assignments_topic: assignments_topic.to_owned(), outcomes_topic: outcomes_topic.to_owned(), waits: true })
    }

    /// A call finding the queue full fails at once with [`ProduceError::QueueFull`] instead
    /// of waiting for room: for callers on a request path.
    #[must_use]
    pub fn without_waiting(mut self) -> Self {
        self.waits = false;
        self
    }

    /// Queues `assignment` for its topic.
    pub fn assignment(&self, assignment: &Assignment) -> Result<(), ProduceError> {
        let json = serde_json::to_string(assignment).unwrap_or_default();
        self.send(&self.assignments_topic, &assignment.assignment_id, &json, assignment.ts)
    }

    /// Queues `outcome` for its topic.
    pub fn outcome(&self, outcome: &Outcome) -> Result<(), ProduceError> {
        let json = serde_json::to_string(outcome).unwrap_or_default();
        self.send(&self.outcomes_topic, &outcome.assignment_id, &json, outcome.ts)
    }

    /// Waits up to `timeout` for every queued message to be delivered.
    pub fn flush(&self, timeout: Duration) -> Result<(), ProduceError> {
        let topics = format!("{} and {}", self.assignments_topic, self.outcomes_topic);
        self.producer.flush(timeout).map_err(|error| ProduceError::Kafka { topic: topics, error })
    }

    fn send(&self, topic: &str, key: &str, json: &str, ts: i64) -> Result<(), ProduceError> {
        let mut record = BaseRecord::to(topic).key(key).payload(json).timestamp(ts);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) if !self.waits => return Err(ProduceError::QueueFull { topic: topic.to_owned() }),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((error, _)) => return Err(ProduceError::Kafka { topic: topic.to_owned(), error }),
            }
        }
    }
}
