//! The weight record: what serving reads (`schemas/weights.schema.json`), and its encoded
//! form as it travels from the worker that computed it to the sinks.

use serde::{Deserialize, Serialize};

use crate::policy::Status;

/// The version of the weight record's layout (`schemas/weights.schema.json`).
pub const SCHEMA_VERSION: u32 = 1;

/// One arm of a weight record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArmWeight {
    /// The arm id.
    pub arm_id: String,
    /// Share of traffic serving should give this arm.
    pub weight: f64,
    /// Probability that this arm's rate is the largest.
    pub p_best: f64,
    /// Posterior alpha: prior alpha + successes.
    pub alpha: f64,
    /// Posterior beta: prior beta + failures.
    pub beta: f64,
    /// Resolved assignments in the window.
    pub trials: u64,
    /// Of those, successes.
    pub successes: u64,
    /// Metadata of the arm's registry record, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
}

/// What serving reads: an entity's arm weights as of the end of a complete tick.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightRecord {
    /// The entity id.
    pub entity_id: String,
    /// `as_of` itself: strictly increasing per entity, also across a change of `tick` (a tick
    /// index would halve when the tick doubles, and every new record would look older).
    pub version: u64,
    /// Last millisecond of the tick, ms since the epoch.
    pub as_of: i64,
    /// Wall-clock ms when computed (the only non-deterministic field).
    pub computed_at: i64,
    /// `burn_in` or `adaptive`.
    pub status: Status,
    /// Arms sorted by `arm_id`.
    pub arms: Vec<ArmWeight>,
    /// The dataflow (job) that wrote it.
    pub dataflow: String,
    /// Layout version, [`SCHEMA_VERSION`].
    pub schema_version: u32,
}

/// A weight record serialized where it was computed (so encoding runs on every worker),
/// with what the sink orders by.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodedRecord {
    /// The tick it was computed at (what the dataflow orders by).
    pub tick: u64,
    /// The record's version (what sinks compare).
    pub version: u64,
    /// The record's entity.
    pub entity_id: String,
    /// The record as JSON.
    pub json: String,
    /// How many arms it lists.
    pub arms: usize,
}

impl EncodedRecord {
    /// Serializes `record`, computed at `tick`.
    pub fn of(record: &WeightRecord, tick: u64) -> Self {
        // Strings, integers, floats (serde_json writes non-finite ones as null) and JSON
        // values: serialization cannot fail.
        let json = serde_json::to_string(record).expect("a weight record always serializes");
        EncodedRecord { tick, version: record.version, entity_id: record.entity_id.clone(), json, arms: record.arms.len() }
    }
}

