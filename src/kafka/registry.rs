//! The arm registry topic for operators (`banditflow arms …`): read every arm's standing, and
//! declare or retire an arm by writing its record.
//!
//! The topic is a table keyed `entity_id/arm_id` (compacted): an arm's standing is its record
//! with the latest `ts` (of equal ones, the last written), as the dataflow takes it.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::Value;

use super::client::{self, KafkaClientError};
use crate::deployment::KafkaConfig;

/// One arm's standing on the registry: its latest record.
#[derive(Clone, Debug, PartialEq)]
pub struct Standing {
    /// The entity.
    pub entity_id: String,
    /// The arm.
    pub arm_id: String,
    /// `active` or `retired`.
    pub state: String,
    /// When the record says it took effect, ms since the epoch.
    pub ts: i64,
    /// Its metadata, as written.
    pub metadata: Option<Value>,
    /// Its share of the declared split, in `(0, 1]`.
    pub initial_weight: Option<f64>,
}

/// Why the registry could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The brokers could not be reached or refused.
    #[error(transparent)]
    Kafka(#[from] KafkaClientError),
    /// A record could not be written.
    #[error("cannot write to {topic}: {error}")]
    Write {
        /// The registry topic.
        topic: String,
        /// What the producer said.
        error: rdkafka::error::KafkaError,
    },
}

/// The registry key of an arm.
pub fn key_of(entity_id: &str, arm_id: &str) -> String {
    format!("{entity_id}/{arm_id}")
}

/// Every arm's standing on `topic`, by (entity, arm). Records that do not read as registry
/// records are skipped (and counted in the second value): the dataflow refuses them too.
pub fn standings(kafka: &KafkaConfig, topic: &str) -> Result<(BTreeMap<(String, String), Standing>, u64), RegistryError> {
    let mut standing: BTreeMap<(String, String), Standing> = BTreeMap::new();
    let mut unreadable = 0u64;
    client::read_to_end(kafka, topic, &[], "reading the arm registry", |message| {
        match message.payload().and_then(|p| serde_json::from_slice::<Value>(p).ok()).and_then(|v| standing_of(&v)) {
            Some(read) => {
                let key = (read.entity_id.clone(), read.arm_id.clone());
                if standing.get(&key).is_none_or(|s| s.ts <= read.ts) {
                    standing.insert(key, read);
                }
            }
            None => unreadable += 1,
        }
    })?;
    Ok((standing, unreadable))
}

/// A registry record's fields, if it has them.
fn standing_of(record: &Value) -> Option<Standing> {
    let state = record["state"].as_str().filter(|s| matches!(*s, "active" | "retired"))?;
    Some(Standing {
        entity_id: record["entity_id"].as_str()?.to_owned(),
        arm_id: record["arm_id"].as_str()?.to_owned(),
        state: state.to_owned(),
        ts: record["ts"].as_i64()?,
        metadata: record.get("metadata").filter(|m| !m.is_null()).cloned(),
        initial_weight: record.get("initial_weight").and_then(Value::as_f64),
    })
}

/// The registry record of `standing` (`schemas/arm.schema.json`).
pub fn record_of(standing: &Standing) -> Value {
    let mut record = serde_json::json!({
        "entity_id": standing.entity_id,
        "arm_id": standing.arm_id,
        "state": standing.state,
        "ts": standing.ts,
    });
    if let Some(metadata) = &standing.metadata {
        record["metadata"] = metadata.clone();
    }
    if let Some(weight) = standing.initial_weight {
        record["initial_weight"] = serde_json::json!(weight);
    }
    record
}

/// Writes `standing` to `topic` under its key (message timestamp: its `ts`) and waits until
/// the brokers have it.
pub fn write(kafka: &KafkaConfig, topic: &str, standing: &Standing) -> Result<(), RegistryError> {
    write_all(kafka, topic, std::slice::from_ref(standing))
}

/// Writes `standings`, in order, like [`write`], with one producer.
pub fn write_all(kafka: &KafkaConfig, topic: &str, standings: &[Standing]) -> Result<(), RegistryError> {
    let failed = |error| RegistryError::Write { topic: topic.to_owned(), error };
    let producer: BaseProducer = client::producer_config(kafka).create().map_err(failed)?;
    for standing in standings {
        let key = key_of(&standing.entity_id, &standing.arm_id);
        let payload = record_of(standing).to_string();
        producer.send(BaseRecord::to(topic).key(&key).payload(&payload).timestamp(standing.ts)).map_err(|(error, _)| failed(error))?;
    }
    producer.flush(Duration::from_secs(30)).map_err(failed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standing_reads_back_from_its_record() {
        let standing = Standing {
            entity_id: "hero".into(),
            arm_id: "model-b".into(),
            state: "active".into(),
            ts: 1_767_225_600_000,
            metadata: Some(serde_json::json!({"model_version": "v2", "labels": {"team": "search"}})),
            initial_weight: Some(0.25),
        };
        assert_eq!(standing_of(&record_of(&standing)), Some(standing.clone()));
        let retired = Standing { state: "retired".into(), metadata: None, initial_weight: None, ..standing };
        assert_eq!(record_of(&retired).get("metadata"), None);
        assert_eq!(record_of(&retired).get("initial_weight"), None);
        assert_eq!(standing_of(&serde_json::json!({"entity_id": "e", "arm_id": "a", "state": "paused", "ts": 1})), None);
        assert_eq!(key_of("hero", "model-b"), "hero/model-b");
    }
}
