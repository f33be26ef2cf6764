//! The weight record as serving reads it round-trips through `schemas/weights.schema.json`:
//! what the client would write validates, what validates parses back to the same record, and
//! what the schema refuses the client refuses too.

use std::path::Path;

use banditflow_client::{parse_record, ArmState, ArmWeight, ChiSquare, SampleRatio, Status, VersusControl, WeightRecord, SCHEMA_VERSION};
use serde_json::{json, Value};

fn validator() -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/weights.schema.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
    jsonschema::draft202012::new(&schema).expect("the schema compiles")
}

fn record() -> WeightRecord {
    let arm = |id: &str, weight: f64, p_best: f64, trials: u64, successes: u64| ArmWeight {
        arm_id: id.to_owned(),
        weight,
        p_best,
        alpha: 1.0 + successes as f64,
        beta: 1.0 + (trials - successes) as f64,
        trials,
        successes,
        mean: (1.0 + successes as f64) / (2.0 + trials as f64),
        ci95: [0.06, 0.08],
        expected_loss: 0.001,
        vs_control: Some(VersusControl { diff: 0.004, ci95: [-0.007, 0.015], p_value: 0.48 }),
        state: ArmState::Exploring,
        metadata: None,
    };
    WeightRecord {
        entity_id: "homepage-hero".to_owned(),
        version: 29_000_123,
        as_of: 1_740_007_379_999,
        computed_at: 1_740_007_380_250,
        status: Status::Adaptive,
        arms: vec![
            ArmWeight { metadata: Some(json!({"model": "v7", "trained_at": "2026-11-30"})), ..arm("model-a", 0.62, 0.71, 4_210, 301) },
            ArmWeight { vs_control: None, ..arm("model-b", 0.38, 0.29, 3_990, 270) },
        ],
        chi_square: ChiSquare { statistic: 0.5, dof: 1, p_value: 0.48 },
        srm: SampleRatio { statistic: Some(1.2), dof: 1, p_value: 0.27, flagged: false, matched: 8_000, unmatched: 200 },
        max_age_hint_ms: 5_000,
        dataflow: "default".to_owned(),
        schema_version: SCHEMA_VERSION,
    }
}

#[test]
fn a_record_round_trips_through_the_schema() {
    let validator = validator();
    let original = record();
    let json = serde_json::to_value(&original).expect("serializes");
    if let Err(error) = validator.validate(&json) {
        panic!("the schema refuses the client's record: {error}\n{json:#}");
    }
    let parsed = parse_record(json.to_string().as_bytes()).expect("parses back");
    assert_eq!(parsed, original);
}

#[test]
fn a_record_the_schema_refuses_does_not_parse() {
    let validator = validator();
    let mut json = serde_json::to_value(record()).expect("serializes");
    json.as_object_mut().expect("object").remove("version");
    assert!(validator.validate(&json).is_err(), "the schema requires `version`");
    assert!(parse_record(json.to_string().as_bytes()).is_err(), "the client requires `version`");
    let mut json = serde_json::to_value(record()).expect("serializes");
    json["status"] = json!("paused");
    assert!(validator.validate(&json).is_err());
    assert!(parse_record(json.to_string().as_bytes()).is_err());
    let mut json = serde_json::to_value(record()).expect("serializes");
    json["arms"][0]["state"] = json!("paused");
    assert!(validator.validate(&json).is_err(), "states are exploring, winner, stopped");
    assert!(parse_record(json.to_string().as_bytes()).is_err());
    let mut json = serde_json::to_value(record()).expect("serializes");
    json["srm"]["statistic"] = Value::Null;
    assert!(validator.validate(&json).is_ok(), "a certain mismatch has no finite statistic");
    assert!(parse_record(json.to_string().as_bytes()).is_ok());
}
