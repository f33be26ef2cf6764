//! A dataset row: one resolved assignment as `banditflow export` writes it and
//! `banditflow evaluate` reads it back, and how its assignment line is split into the schema's
//! fields and its free-form `context`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where a row's propensity came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PropensitySource {
    /// The assignment's own `propensity` field (what serving logged).
    Assignment,
    /// The served arm's weight in the record named by the assignment's `weights_version`.
    WeightsVersion,
    /// The served arm's weight in the entity's newest record before the assignment's `ts`.
    InForce,
}

impl PropensitySource {
    /// The name written in the `propensity_source` column.
    pub fn name(self) -> &'static str {
        match self {
            PropensitySource::Assignment => "assignment",
            PropensitySource::WeightsVersion => "weights_version",
            PropensitySource::InForce => "in_force",
        }
    }
}

/// One resolved assignment of an evaluation dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetRow {
    /// The assignment's id.
    pub assignment_id: String,
    /// The entity.
    pub entity_id: String,
    /// The served arm.
    pub arm_id: String,
    /// The unit served, when the assignment named one.
    pub unit_id: Option<String>,
    /// Event time of the assignment, ms since the epoch.
    pub ts: i64,
    /// The last millisecond of the tick its reward was decided in (its attribution window had
    /// passed): from then on the posterior counts it.
    pub resolved_at: i64,
    /// 1 if an outcome fell in its attribution window, else 0.
    pub reward: u8,
    /// The `weights_version` the assignment carried, if any.
    pub weights_version: Option<u64>,
    /// The probability serving gave the served arm, if it could be found.
    pub propensity: Option<f64>,
    /// Where `propensity` came from (`None` with it).
    pub propensity_source: Option<PropensitySource>,
    /// Every field of the assignment beyond the schema's, as it was logged.
    pub context: Map<String, Value>,
}

/// The fields `schemas/assignment.schema.json` defines: everything else is context.
pub const SCHEMA_FIELDS: [&str; 9] = ["assignment_id", "entity_id", "arm_id", "unit_id", "ts", "weights_version", "propensity", "fallback", "sticky"];

/// What an assignment line gives a row beyond what attribution decides.
#[derive(Clone, Debug, PartialEq)]
pub struct Logged {
    /// The assignment's id.
    pub assignment_id: String,
    /// The entity.
    pub entity_id: String,
    /// The served arm.
    pub arm_id: String,
    /// The unit, if named (a string).
    pub unit_id: Option<String>,
    /// `weights_version`, if it was a non-negative integer.
    pub weights_version: Option<u64>,
    /// `propensity`, if it was a number.
    pub propensity: Option<f64>,
    /// The other fields.
    pub context: Map<String, Value>,
}

/// Splits a decoded assignment line (its object) into the schema's fields and its context;
/// `None` when it is not an object with string ids (the decoder refuses such lines first).
pub fn split_line(object: Map<String, Value>) -> Option<Logged> {
    let mut object = object;
    let text = |v: Option<Value>| match v {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    let assignment_id = text(object.remove("assignment_id"))?;
    let entity_id = text(object.remove("entity_id"))?;
    let arm_id = text(object.remove("arm_id"))?;
    let unit_id = text(object.remove("unit_id"));
    let weights_version = object.remove("weights_version").and_then(|v| v.as_u64()).filter(|v| *v != 0);
    let propensity = object.remove("propensity").and_then(|v| v.as_f64());
    for field in SCHEMA_FIELDS {
        object.remove(field);
    }
    Some(Logged { assignment_id, entity_id, arm_id, unit_id, weights_version, propensity, context: object })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_beyond_the_schema_are_kept_as_context() {
        let line = r#"{"assignment_id":"a","entity_id":"e","arm_id":"x","unit_id":"u","ts":5,"weights_version":7,"propensity":0.25,"sticky":false,"country":"FR","scores":[1,2],"nested":{"k":null}}"#;
        let Value::Object(object) = serde_json::from_str(line).expect("json") else { panic!("object") };
        let logged = split_line(object).expect("ids");
        assert_eq!((logged.unit_id.as_deref(), logged.weights_version, logged.propensity), (Some("u"), Some(7), Some(0.25)));
        let keys: Vec<&str> = logged.context.keys().map(String::as_str).collect();
        assert_eq!(keys, ["country", "nested", "scores"]);
        assert_eq!(logged.context["nested"], serde_json::json!({"k": null}));
    }
}
