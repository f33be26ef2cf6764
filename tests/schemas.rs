//! The JSON Schemas in `schemas/` compile (as draft 2020-12, checked against the meta-schema),
//! accept the records docs/semantics.md describes, and reject the malformed ones.

use std::path::Path;

use jsonschema::Validator;
use serde_json::{json, Value};

fn schema(file: &str) -> Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let schema: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    assert_eq!(
        schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
        "{file} declares draft 2020-12"
    );
    assert_eq!(
        schema["$id"],
        format!("https://banditflow.dev/schemas/{file}"),
        "{file} has its $id"
    );
    jsonschema::draft202012::new(&schema).unwrap_or_else(|e| panic!("{file} does not compile: {e}"))
}

fn assert_accepts(validator: &Validator, record: &Value) {
    if let Err(error) = validator.validate(record) {
        panic!("{record} should be valid: {error}");
    }
}

fn assert_rejects(validator: &Validator, record: &Value) {
    assert!(!validator.is_valid(record), "{record} should be invalid");
}

fn without(record: &Value, field: &str) -> Value {
    let mut record = record.clone();
    record
        .as_object_mut()
        .expect("sample records are objects")
        .remove(field);
    record
}

fn with(record: &Value, field: &str, value: Value) -> Value {
    let mut record = record.clone();
    record[field] = value;
    record
}

fn assignment() -> Value {
    json!({
        "assignment_id": "7f9c2ba4-e88f-4e2b-9a8f-1c3b2d4e5f60",
        "entity_id": "homepage-hero",
        "arm_id": "spring-sale",
        "ts": 1_700_000_000_000_u64
    })
}

fn outcome() -> Value {
    json!({
        "assignment_id": "7f9c2ba4-e88f-4e2b-9a8f-1c3b2d4e5f60",
        "ts": 1_700_000_060_000_u64,
        "kind": "click"
    })
}

fn weight_record() -> Value {
    let arm = |id: &str, weight: f64, p_best: f64, alpha: f64, beta: f64, trials: u64, successes: u64, vs_control: Value| {
        json!({"arm_id": id, "weight": weight, "p_best": p_best, "alpha": alpha, "beta": beta, "trials": trials,
               "successes": successes, "mean": alpha / (alpha + beta), "ci95": [0.018, 0.052], "expected_loss": 0.004,
               "vs_control": vs_control, "state": "exploring"})
    };
    json!({
        "entity_id": "homepage-hero",
        "version": 28_333_334,
        "as_of": 1_700_000_040_000_u64,
        "computed_at": 1_700_000_041_234_u64,
        "status": "adaptive",
        "arms": [
            arm("free-shipping", 0.3, 0.25, 13.0, 389.0, 400, 12, Value::Null),
            arm("spring-sale", 0.7, 0.75, 21.0, 381.0, 400, 20, json!({"diff": 0.02, "ci95": [-0.006, 0.047], "p_value": 0.15}))
        ],
        "chi_square": {"statistic": 2.1, "dof": 1, "p_value": 0.15},
        "srm": {"statistic": 0.4, "dof": 1, "p_value": 0.53, "flagged": false, "matched": 800, "unmatched": 0},
        "max_age_hint_ms": 5_000,
        "dataflow": "homepage-hero",
        "schema_version": 3
    })
}

fn decision_event() -> Value {
    json!({
        "entity_id": "homepage-hero", "arm_id": "spring-sale", "old_state": "exploring", "new_state": "winner",
        "rule": "winner", "version": 28_333_334, "as_of": 28_333_334,
        "statistics": {"p_best": 0.97, "expected_loss": 0.0004, "mean": 0.052, "ci95": [0.033, 0.076], "trials": 400, "successes": 20},
        "thresholds": {"winner_p_best": 0.95, "winner_max_loss": 0.001, "confirm_ticks": 3, "stop_p_best": 0.001,
                       "allow_stop": false, "on_winner": "keep_exploring"},
        "dataflow": "homepage-hero", "schema_version": 1
    })
}

#[test]
fn decision_schema_accepts_an_event_and_rejects_unknown_rules_states_and_fields() {
    let validator = schema("decision.schema.json");
    assert_accepts(&validator, &decision_event());
    assert_rejects(&validator, &with(&decision_event(), "rule", json!("promote")));
    assert_rejects(&validator, &with(&decision_event(), "new_state", json!("paused")));
    assert_rejects(&validator, &with(&decision_event(), "note", json!("hi")));
    assert_rejects(&validator, &without(&decision_event(), "thresholds"));
}

#[test]
fn assignment_schema_accepts_minimal_and_full_records() {
    let validator = schema("assignment.schema.json");
    assert_accepts(&validator, &assignment());
    let full = with(&assignment(), "unit_id", json!("user-42"));
    let full = with(&full, "weights_version", json!(28_333_333));
    assert_accepts(&validator, &full);
}

#[test]
fn assignment_schema_ignores_unknown_fields() {
    let validator = schema("assignment.schema.json");
    assert_accepts(&validator, &with(&assignment(), "page", json!("/home")));
}

#[test]
fn assignment_schema_rejects_missing_required_fields() {
    let validator = schema("assignment.schema.json");
    for field in ["assignment_id", "entity_id", "arm_id", "ts"] {
        assert_rejects(&validator, &without(&assignment(), field));
    }
}

#[test]
fn assignment_schema_rejects_mistyped_fields() {
    let validator = schema("assignment.schema.json");
    assert_rejects(
        &validator,
        &with(&assignment(), "ts", json!("1700000000000")),
    );
    assert_rejects(&validator, &with(&assignment(), "ts", json!(1.5)));
    assert_rejects(&validator, &with(&assignment(), "arm_id", json!(3)));
    assert_rejects(
        &validator,
        &with(&assignment(), "weights_version", json!("7")),
    );
}

#[test]
fn assignment_schema_bounds_id_length() {
    let validator = schema("assignment.schema.json");
    assert_rejects(&validator, &with(&assignment(), "entity_id", json!("")));
    assert_rejects(
        &validator,
        &with(&assignment(), "arm_id", json!("a".repeat(129))),
    );
    assert_accepts(
        &validator,
        &with(&assignment(), "arm_id", json!("a".repeat(128))),
    );
}

#[test]
fn outcome_schema_accepts_records_with_and_without_kind() {
    let validator = schema("outcome.schema.json");
    assert_accepts(&validator, &outcome());
    assert_accepts(&validator, &without(&outcome(), "kind"));
    assert_accepts(&validator, &with(&outcome(), "value_cents", json!(1999)));
}

#[test]
fn outcome_schema_rejects_missing_or_mistyped_fields() {
    let validator = schema("outcome.schema.json");
    assert_rejects(&validator, &without(&outcome(), "assignment_id"));
    assert_rejects(&validator, &without(&outcome(), "ts"));
    assert_rejects(&validator, &with(&outcome(), "ts", json!("yesterday")));
    assert_rejects(&validator, &with(&outcome(), "kind", json!(1)));
    assert_rejects(&validator, &with(&outcome(), "assignment_id", json!("")));
}

#[test]
fn weight_schema_accepts_adaptive_and_burn_in_records() {
    let validator = schema("weights.schema.json");
    assert_accepts(&validator, &weight_record());
    let burn_in = with(&weight_record(), "status", json!("burn_in"));
    assert_accepts(&validator, &burn_in);
    assert_accepts(&validator, &with(&weight_record(), "status", json!("winner")));
}

#[test]
fn weight_schema_rejects_unknown_status() {
    let validator = schema("weights.schema.json");
    assert_rejects(
        &validator,
        &with(&weight_record(), "status", json!("converged")),
    );
}

#[test]
fn weight_schema_rejects_extra_fields() {
    let validator = schema("weights.schema.json");
    assert_rejects(&validator, &with(&weight_record(), "note", json!("hi")));
    let mut record = weight_record();
    record["arms"][0]["color"] = json!("red");
    assert_rejects(&validator, &record);
}

#[test]
fn weight_schema_rejects_missing_fields() {
    let validator = schema("weights.schema.json");
    for field in [
        "entity_id",
        "version",
        "as_of",
        "computed_at",
        "status",
        "arms",
        "dataflow",
        "schema_version",
    ] {
        assert_rejects(&validator, &without(&weight_record(), field));
    }
    let mut record = weight_record();
    if let Some(arm) = record["arms"][0].as_object_mut() {
        arm.remove("p_best");
    }
    assert_rejects(&validator, &record);
}

#[test]
fn weight_schema_rejects_out_of_range_numbers() {
    let validator = schema("weights.schema.json");
    assert_rejects(&validator, &with(&weight_record(), "version", json!(-1)));
    assert_rejects(
        &validator,
        &with(&weight_record(), "schema_version", json!(1)),
    );
    assert_rejects(
        &validator,
        &with(&weight_record(), "as_of", json!("1700000040000")),
    );
    for (field, value) in [
        ("weight", json!(1.5)),
        ("weight", json!(-0.1)),
        ("p_best", json!(1.01)),
        ("alpha", json!(0)),
        ("beta", json!(-1.0)),
        ("trials", json!(-1)),
        ("successes", json!(2.5)),
        ("arm_id", json!("")),
        ("mean", json!(1.2)),
        ("ci95", json!([0.1])),
        ("expected_loss", json!(-0.01)),
        ("state", json!("paused")),
    ] {
        let mut record = weight_record();
        record["arms"][1][field] = value.clone();
        assert!(
            !validator.is_valid(&record),
            "arm field {field} = {value} should be invalid"
        );
    }
}

#[test]
fn arm_registry_schema_accepts_active_and_retired_records_with_metadata() {
    let validator = schema("arm.schema.json");
    assert_accepts(&validator, &json!({"entity_id": "e", "arm_id": "m", "state": "active", "ts": 1, "metadata": {"model": "v2"}}));
    assert_accepts(&validator, &json!({"entity_id": "e", "arm_id": "m", "state": "retired", "ts": 1, "note": "ignored"}));
    assert_rejects(&validator, &json!({"entity_id": "e", "arm_id": "m", "state": "paused", "ts": 1}));
    assert_rejects(&validator, &json!({"entity_id": "e", "arm_id": "m", "ts": 1}));
    // The documented metadata fields, and what they must be.
    let with = |metadata: Value| json!({"entity_id": "e", "arm_id": "m", "state": "active", "ts": 1, "metadata": metadata});
    assert_accepts(&validator, &with(json!({"model_version": "v7", "trained_at": "2026-11-30T12:00:00Z", "labels": {"team": "search"}, "other": 1})));
    assert_accepts(&validator, &with(json!("a note")));
    assert_rejects(&validator, &with(json!({"model_version": 7})));
    assert_rejects(&validator, &with(json!({"labels": {"team": 1}})));
}

#[test]
fn reject_schema_takes_raw_or_base64_and_known_reasons_only() {
    let rejects = schema("reject.schema.json");
    let base = json!({"reason": "invalid_json", "input": "a.jsonl", "line": 3, "raw": "{\"a\":"});
    assert!(rejects.is_valid(&base));
    assert!(rejects.is_valid(&json!({"reason": "invalid_utf8", "input": "a.jsonl", "line": 1, "raw_base64": "/w=="})));
    assert!(!rejects.is_valid(&json!({"reason": "invalid_utf8", "input": "a.jsonl", "line": 1, "raw": "x", "raw_base64": "/w=="})), "both");
    assert!(!rejects.is_valid(&json!({"reason": "invalid_json", "input": "a.jsonl", "line": 1})), "neither");
    assert!(!rejects.is_valid(&json!({"reason": "made_up", "input": "a.jsonl", "line": 1, "raw": "x"})), "unknown reason");
    assert!(!rejects.is_valid(&json!({"reason": "invalid_json", "input": "a.jsonl", "line": 0, "raw": "x"})), "lines count from 1");
    // The reasons it allows are exactly the decoder's, the caps' and attribution's.
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/reject.schema.json")).expect("schema");
    let listed: Value = serde_json::from_str::<Value>(&text).expect("JSON")["properties"]["reason"]["enum"].clone();
    let mut reasons: Vec<String> = banditflow_core::wire::Malformed::ALL.iter().map(ToString::to_string).collect();
    reasons.extend(banditflow_core::admission::Refusal::ALL.iter().map(|r| r.reason().to_owned()));
    reasons.extend(banditflow_core::attribution::Refused::ALL.iter().map(|r| r.reason().to_owned()));
    assert_eq!(listed, json!(reasons));
}
