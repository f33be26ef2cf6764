//! The weight record: what serving reads (`schemas/weights.schema.json`); the decision event
//! (`schemas/decision.schema.json`); and their encoded forms as they travel from the worker
//! that computed them to the sinks.

use serde::{Deserialize, Serialize};

use crate::decision::{ArmState, Rule};
use crate::policy::Status;
use crate::srm::SampleRatio;
use crate::statistics::{ChiSquare, VersusControl};

/// The version of the weight record's layout (`schemas/weights.schema.json`).
pub const SCHEMA_VERSION: u32 = 3;
/// The version of the decision event's layout (`schemas/decision.schema.json`).
pub const DECISION_SCHEMA_VERSION: u32 = 1;

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
    /// Posterior mean, `alpha / (alpha + beta)`.
    pub mean: f64,
    /// The equal-tailed 95% credible interval of the posterior, `[low, high]`.
    pub ci95: [f64; 2],
    /// `E[max_j p_j - p_k]` under the posteriors: the rate lost by choosing this arm.
    pub expected_loss: f64,
    /// This arm's observed rate against the control's; `null` for the control itself and
    /// when the entity has no control.
    pub vs_control: Option<VersusControl>,
    /// `exploring`, `winner` or `stopped`.
    pub state: ArmState,
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
    /// `burn_in`, `adaptive` or `winner`.
    pub status: Status,
    /// Arms sorted by `arm_id`.
    pub arms: Vec<ArmWeight>,
    /// Pearson's test of the window's success/failure table over the arms.
    pub chi_square: ChiSquare,
    /// The sample-ratio check of the window's assignments against the weights in force.
    pub srm: SampleRatio,
    /// How long serving may keep using weights after the pipeline last published anything
    /// (a few ticks): older than that, the pipeline has likely stalled and serving falls
    /// back. 0 in records of schema version 2, which had none.
    #[serde(default)]
    pub max_age_hint_ms: u64,
    /// The dataflow (job) that wrote it.
    pub dataflow: String,
    /// Layout version, [`SCHEMA_VERSION`].
    pub schema_version: u32,
}

/// A weight record serialized where it was computed (so encoding runs on every worker),
/// with what the sink orders by; [`crate::record_json::encode`] makes it.
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
    /// Whether its sample-ratio check is flagged (for the metrics, without parsing).
    pub srm_flagged: bool,
}

/// The statistics behind a decision: the arm's as of the tick it was taken.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecisionStatistics {
    /// `p_best` of the arm.
    pub p_best: f64,
    /// Its expected loss.
    pub expected_loss: f64,
    /// Its posterior mean.
    pub mean: f64,
    /// Its 95% credible interval.
    pub ci95: [f64; 2],
    /// Resolved assignments in the window.
    pub trials: u64,
    /// Of those, successes.
    pub successes: u64,
}

/// The rules' thresholds when a decision was taken.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// `winner_p_best`.
    pub winner_p_best: f64,
    /// `winner_max_loss`.
    pub winner_max_loss: f64,
    /// `confirm_ticks`.
    pub confirm_ticks: u32,
    /// `stop_p_best`.
    pub stop_p_best: f64,
    /// `allow_stop`.
    pub allow_stop: bool,
    /// `on_winner`: `keep_exploring` or `exploit`.
    pub on_winner: String,
}

/// An arm's state change, as an auditable event (`schemas/decision.schema.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecisionEvent {
    /// The entity.
    pub entity_id: String,
    /// The arm whose state changed.
    pub arm_id: String,
    /// Its state before.
    pub old_state: ArmState,
    /// Its state after.
    pub new_state: ArmState,
    /// The rule that changed it.
    pub rule: Rule,
    /// The `version` of the weight record it came with.
    pub version: u64,
    /// That record's `as_of`.
    pub as_of: i64,
    /// The arm's statistics at that tick.
    pub statistics: DecisionStatistics,
    /// The rules' thresholds.
    pub thresholds: Thresholds,
    /// The dataflow (job) that took it.
    pub dataflow: String,
    /// Layout version, [`DECISION_SCHEMA_VERSION`].
    pub schema_version: u32,
}

/// A decision event serialized where it was taken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodedDecision {
    /// The tick it was taken at.
    pub tick: u64,
    /// The version of the record it came with.
    pub version: u64,
    /// The event's entity.
    pub entity_id: String,
    /// The rule that took it (for the metrics).
    pub rule: Rule,
    /// The event as JSON.
    pub json: String,
}

impl EncodedDecision {
    /// Serializes `event`, taken at `tick`.
    pub fn of(event: &DecisionEvent, tick: u64) -> Self {
        // Strings, integers, booleans and floats: serialization cannot fail.
        let json = serde_json::to_string(event).expect("a decision event always serializes");
        EncodedDecision { tick, version: event.version, entity_id: event.entity_id.clone(), rule: event.rule, json }
    }
}

/// What the weight stage hands to publishing: a weight record or a decision event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Published {
    /// A weight record.
    Weights(EncodedRecord),
    /// A decision event.
    Decision(EncodedDecision),
    /// The entity was forgotten at the end of `tick`: nothing of it is left in the dataflow,
    /// and the sinks and metrics may forget it too (its records stay where they were written).
    Forgotten {
        /// The tick it was forgotten at.
        tick: u64,
        /// Its `entity_id`.
        entity_id: String,
    },
}

impl Published {
    /// The tick it was computed at.
    pub fn tick(&self) -> u64 {
        match self {
            Published::Weights(r) => r.tick,
            Published::Decision(d) => d.tick,
            Published::Forgotten { tick, .. } => *tick,
        }
    }
}
