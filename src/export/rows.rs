//! A dataset row: one resolved assignment as `banditflow export` writes it and
//! `banditflow evaluate` reads it back, and an assignment line read into the schema's fields
//! and its free-form `context`.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize};
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
    /// The entity (shared by its rows).
    pub entity_id: Arc<str>,
    /// The served arm (shared by its rows).
    pub arm_id: Arc<str>,
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
    /// The assignment's `fallback`: serving used its fallback split, not a weight record.
    #[serde(default)]
    pub fallback: Option<bool>,
    /// The assignment's `sticky`: a sticky store kept the unit's earlier arm, so `propensity`
    /// is not the probability this unit had of it ([`crate::evaluate`] leaves such rows out).
    #[serde(default)]
    pub sticky: Option<bool>,
    /// Every field of the assignment beyond the schema's, as it was logged.
    pub context: Map<String, Value>,
}

/// The fields `schemas/assignment.schema.json` defines: everything else is context.
pub const SCHEMA_FIELDS: [&str; 9] = ["assignment_id", "entity_id", "arm_id", "unit_id", "ts", "weights_version", "propensity", "fallback", "sticky"];

/// What an assignment line gives a row beyond what attribution decides, read in one pass
/// over the line: the schema's fields by name, every other field into `context`.
#[derive(Clone, Debug, PartialEq)]
pub struct Logged {
    /// The assignment's id.
    pub assignment_id: String,
    /// The entity.
    pub entity_id: Arc<str>,
    /// The served arm.
    pub arm_id: Arc<str>,
    /// The unit, if named (a string).
    pub unit_id: Option<String>,
    /// `weights_version`, if it was a positive integer.
    pub weights_version: Option<u64>,
    /// `propensity`, if it was a number.
    pub propensity: Option<f64>,
    /// `fallback`, if it was a boolean.
    pub fallback: Option<bool>,
    /// `sticky`, if it was a boolean.
    pub sticky: Option<bool>,
    /// The other fields.
    pub context: Map<String, Value>,
}

/// A key of an assignment line: one of the schema's fields, or another (kept as context).
enum Key {
    Id,
    Entity,
    Arm,
    Unit,
    Version,
    Propensity,
    Fallback,
    Sticky,
    Schema,
    Other(String),
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = Key;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "assignment_id" => Key::Id,
                    "entity_id" => Key::Entity,
                    "arm_id" => Key::Arm,
                    "unit_id" => Key::Unit,
                    "weights_version" => Key::Version,
                    "propensity" => Key::Propensity,
                    "fallback" => Key::Fallback,
                    "sticky" => Key::Sticky,
                    "ts" => Key::Schema,
                    other => Key::Other(other.to_owned()),
                })
            }
        }
        deserializer.deserialize_str(Visit)
    }
}

impl<'de> Deserialize<'de> for Logged {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Logged, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Logged;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an assignment object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Logged, A::Error> {
                use serde::de::{Error, IgnoredAny};
                let (mut id, mut entity, mut arm, mut unit, mut version, mut propensity): (Option<String>, Option<String>, Option<String>, Option<String>, Option<u64>, Option<f64>) = (None, None, None, None, None, None);
                let (mut fallback, mut sticky) = (None, None);
                let mut context = Map::new();
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Id => id = Some(map.next_value()?),
                        Key::Entity => entity = Some(map.next_value()?),
                        Key::Arm => arm = Some(map.next_value()?),
                        // Optional fields of another type than the schema's are as if absent.
                        Key::Unit => unit = map.next_value::<Value>()?.as_str().map(str::to_owned),
                        Key::Version => version = map.next_value::<Value>()?.as_u64().filter(|v| *v != 0),
                        Key::Propensity => propensity = map.next_value::<Value>()?.as_f64(),
                        Key::Fallback => fallback = map.next_value::<Value>()?.as_bool(),
                        Key::Sticky => sticky = map.next_value::<Value>()?.as_bool(),
                        Key::Schema => {
                            map.next_value::<IgnoredAny>()?;
                        }
                        Key::Other(name) => {
                            context.insert(name, map.next_value()?);
                        }
                    }
                }
                Ok(Logged {
                    assignment_id: id.ok_or_else(|| A::Error::missing_field("assignment_id"))?,
                    entity_id: entity.ok_or_else(|| A::Error::missing_field("entity_id"))?.into(),
                    arm_id: arm.ok_or_else(|| A::Error::missing_field("arm_id"))?.into(),
                    unit_id: unit,
                    weights_version: version,
                    propensity,
                    fallback,
                    sticky,
                    context,
                })
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_beyond_the_schema_are_kept_as_context() {
        let line = r#"{"assignment_id":"a","entity_id":"e","arm_id":"x","unit_id":"u","ts":5,"weights_version":7,"propensity":0.25,"sticky":false,"country":"FR","scores":[1,2],"nested":{"k":null}}"#;
        let logged: Logged = serde_json::from_str(line).expect("an assignment");
        assert_eq!((logged.unit_id.as_deref(), logged.weights_version, logged.propensity), (Some("u"), Some(7), Some(0.25)));
        let keys: Vec<&str> = logged.context.keys().map(String::as_str).collect();
        assert_eq!(keys, ["country", "nested", "scores"]);
        assert_eq!(logged.context["nested"], serde_json::json!({"k": null}));
        assert!(serde_json::from_str::<Logged>(r#"{"entity_id":"e","arm_id":"x","ts":5}"#).is_err(), "no id");
        let odd: Logged = serde_json::from_str(r#"{"assignment_id":"a","entity_id":"e","arm_id":"x","unit_id":7,"weights_version":-1,"propensity":"high"}"#).expect("odd optional fields");
        assert_eq!((odd.unit_id, odd.weights_version, odd.propensity), (None, None, None));
    }
}
