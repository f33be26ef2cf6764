//! Fixed-size events: what a decoded wire record becomes.
//!
//! An assignment id is hashed to 128 bits (the attribution join key), entity and arm ids to
//! 64 bits; the names themselves travel once, as [`Name`]s in the [`Catalog`]. Everything
//! here is `Copy` or small, so the dataflow moves no strings per event.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_128, xxh3_64_with_seed};

/// 128-bit hash of an `assignment_id`: the attribution join key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct AssignmentKey(pub u64, pub u64);

impl AssignmentKey {
    /// The key of an assignment id.
    pub fn of(assignment_id: &str) -> Self {
        let h = xxh3_128(assignment_id.as_bytes());
        AssignmentKey((h >> 64) as u64, h as u64)
    }

    /// The hash timely's exchange routes the key by (its worker is this modulo the peers).
    pub fn route(&self) -> u64 {
        self.1
    }
}

/// 64-bit id of an entity or arm name; the names themselves travel as [`Name`] records.
pub type NameId = u64;

/// The id of an entity name.
pub fn entity_id_of(name: &str) -> NameId {
    xxh3_64_with_seed(name.as_bytes(), 0x656e_7469_7479)
}

/// The id of an arm name (arms are always used together with their entity).
pub fn arm_id_of(name: &str) -> NameId {
    xxh3_64_with_seed(name.as_bytes(), 0x0061_726d)
}

/// A name first seen by a source, sent once to every worker that prints records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Name {
    /// The hashed id.
    pub id: NameId,
    /// The entity or arm id as it appeared on the wire.
    pub text: String,
}

/// Serving chose `arm` of `entity` for the assignment `key` at event time `ts`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// Hash of the assignment id.
    pub key: AssignmentKey,
    /// Hash of the entity id.
    pub entity: NameId,
    /// Hash of the arm id.
    pub arm: NameId,
    /// Event time, ms since the epoch.
    pub ts: i64,
    /// The `version` of the weight record serving used, 0 if the record did not say.
    pub weights_version: u64,
}

/// The assignment `key` converted at event time `ts` (with a counted kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Hash of the assignment id it rewards.
    pub key: AssignmentKey,
    /// Event time, ms since the epoch.
    pub ts: i64,
}

/// One decoded input record, as it travels to attribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// An assignment record.
    Assignment(Assignment),
    /// An outcome record.
    Outcome(Outcome),
}

impl Event {
    /// The attribution join key.
    pub fn key(&self) -> AssignmentKey {
        match self {
            Event::Assignment(a) => a.key,
            Event::Outcome(o) => o.key,
        }
    }

    /// Event time, ms since the epoch.
    pub fn ts(&self) -> i64 {
        match self {
            Event::Assignment(a) => a.ts,
            Event::Outcome(o) => o.ts,
        }
    }
}

/// An arm registry record: `arm` of `entity` may be served from `ts` on (`active`), or is
/// retired from `ts` on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// Hash of the entity id.
    pub entity: NameId,
    /// Hash of the arm id.
    pub arm: NameId,
    /// `active` (true) or `retired` (false).
    pub active: bool,
    /// Event time, ms since the epoch.
    pub ts: i64,
    /// The record's `metadata`, as JSON, passed through to the weight record.
    pub metadata: Option<String>,
    /// The record's `initial_weight`: the arm's share of the declared split.
    pub initial_weight: Option<InitialWeight>,
}

/// An arm's declared share of its entity's traffic, a number in `(0, 1]`, kept as its bits
/// so that registry records stay `Eq` and sort the same on every worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InitialWeight(u64);

impl InitialWeight {
    /// `weight` if it is in `(0, 1]`.
    #[must_use]
    pub fn new(weight: f64) -> Option<Self> {
        (weight > 0.0 && weight <= 1.0).then(|| InitialWeight(weight.to_bits()))
    }

    /// The weight.
    #[must_use]
    pub fn get(self) -> f64 {
        f64::from_bits(self.0)
    }
}

/// What admission forgot at the end of a tick: the dataflow holds nothing of these any more.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forgotten {
    /// Entities with no pair left.
    pub entities: Vec<NameId>,
    /// (entity, arm) pairs.
    pub pairs: Vec<(NameId, NameId)>,
    /// Arm ids no pair uses any more.
    pub arms: Vec<NameId>,
}

/// What sources announce besides events, sent to every worker: names, arm registry changes,
/// and what admission forgot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Catalog {
    /// A name first seen by a source.
    Name(Name),
    /// An arm registry record.
    Registration(Registration),
    /// Names and pairs forgotten at the end of the tick it is sent at: applied once that tick
    /// is complete.
    Forget(Forgotten),
}

