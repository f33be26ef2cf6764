//! The GrowthBook SDK payload (`GET /api/features/{client_key}`): each entity is a feature
//! whose single experiment rule carries the arms as variations, the weights `assign` serves
//! by, the entity id as seed and `hashVersion: 2`. An unmodified GrowthBook SDK given this
//! payload and the unit id as its `id` attribute picks the arm `assign` picks.

use serde_json::{json, Map, Value};

use crate::assign::{Assigner, Split};

/// The attribute GrowthBook hashes: serving sets it to the unit id.
pub const HASH_ATTRIBUTE: &str = "id";

/// One entity's feature definition.
#[must_use]
pub fn feature(entity_id: &str, split: &Split) -> Value {
    // A point past the last range (weights summing a hair under 1) is "not in the
    // experiment" to GrowthBook, which then serves the default: the arm `assign` gives it.
    let default = split.arms.iter().zip(&split.weights).rev().find(|(_, w)| **w > 0.0).map_or_else(|| split.arms.first().cloned().unwrap_or_default(), |(a, _)| a.clone());
    let meta: Vec<Value> = split.arms.iter().map(|a| json!({ "key": a, "name": a })).collect();
    json!({
        "defaultValue": default,
        "rules": [{
            "key": entity_id,
            "seed": entity_id,
            "hashAttribute": HASH_ATTRIBUTE,
            "hashVersion": 2,
            "coverage": 1.0,
            "variations": split.arms,
            "weights": split.weights,
            "meta": meta,
        }],
    })
}

/// The SDK payload for `entities` as `assigner` serves them at `now` (an entity with no arm
/// to serve is left out).
#[must_use]
pub fn payload(assigner: &Assigner, entities: &[String], now: i64) -> Value {
    let mut features = Map::new();
    for entity in entities {
        if let Ok(split) = assigner.split(entity, now) {
            features.insert(entity.clone(), feature(entity, &split));
        }
    }
    json!({ "status": 200, "features": features })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feature_carries_the_split_and_the_hash_settings() {
        let split = Split { arms: vec!["a".into(), "b".into(), "c".into()], weights: vec![0.2, 0.8, 0.0], weights_version: Some(7), fallback: false };
        let f = feature("hero", &split);
        let rule = &f["rules"][0];
        assert_eq!((rule["seed"].as_str(), rule["hashVersion"].as_u64(), rule["hashAttribute"].as_str()), (Some("hero"), Some(2), Some("id")));
        assert_eq!(rule["variations"], json!(["a", "b", "c"]));
        assert_eq!(rule["weights"], json!([0.2, 0.8, 0.0]));
        assert_eq!(f["defaultValue"], "b", "the last arm with a weight");
    }
}
