//! The weight record's JSON, written field by field.
//!
//! Every record the worker publishes is encoded once, and at hundreds of thousands of records
//! a run the generic serializer's per-field work (escaping each key, a call per token) cost
//! more than the statistics it carries. The layout is fixed (`schemas/weights.schema.json`),
//! so the keys are written as they are and only the values are formatted, with the same
//! number formatting as `serde_json` (`itoa`, `zmij`); the output is byte for byte what
//! `serde_json::to_string` makes of the record (a test holds the two together).

use crate::decision::ArmState;
use crate::record::{ArmWeight, WeightRecord};
use crate::srm::SampleRatio;
use crate::statistics::{ChiSquare, VersusControl};

/// Appends `record` as one JSON object to `out`.
pub fn write_record(record: &WeightRecord, out: &mut String) {
    out.push_str("{\"entity_id\":");
    string(out, &record.entity_id);
    out.push_str(",\"version\":");
    integer(out, record.version);
    out.push_str(",\"as_of\":");
    integer(out, record.as_of);
    out.push_str(",\"computed_at\":");
    integer(out, record.computed_at);
    out.push_str(",\"status\":\"");
    out.push_str(record.status.as_str());
    out.push_str("\",\"arms\":[");
    for (i, arm) in record.arms.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_arm(arm, out);
    }
    out.push_str("],\"chi_square\":");
    chi_square(out, &record.chi_square);
    out.push_str(",\"srm\":");
    sample_ratio(out, &record.srm);
    out.push_str(",\"dataflow\":");
    string(out, &record.dataflow);
    out.push_str(",\"schema_version\":");
    integer(out, record.schema_version);
    out.push('}');
}

fn write_arm(arm: &ArmWeight, out: &mut String) {
    out.push_str("{\"arm_id\":");
    string(out, &arm.arm_id);
    out.push_str(",\"weight\":");
    float(out, arm.weight);
    out.push_str(",\"p_best\":");
    float(out, arm.p_best);
    out.push_str(",\"alpha\":");
    float(out, arm.alpha);
    out.push_str(",\"beta\":");
    float(out, arm.beta);
    out.push_str(",\"trials\":");
    integer(out, arm.trials);
    out.push_str(",\"successes\":");
    integer(out, arm.successes);
    out.push_str(",\"mean\":");
    float(out, arm.mean);
    out.push_str(",\"ci95\":");
    pair(out, arm.ci95);
    out.push_str(",\"expected_loss\":");
    float(out, arm.expected_loss);
    out.push_str(",\"vs_control\":");
    match &arm.vs_control {
        Some(v) => versus_control(out, v),
        None => out.push_str("null"),
    }
    out.push_str(",\"state\":\"");
    out.push_str(state(arm.state));
    out.push('"');
    if let Some(metadata) = &arm.metadata {
        out.push_str(",\"metadata\":");
        // Arbitrary JSON from the registry: the generic serializer, which cannot fail on a
        // `Value` (its map keys are strings).
        out.push_str(&metadata.to_string());
    }
    out.push('}');
}

fn versus_control(out: &mut String, v: &VersusControl) {
    out.push_str("{\"diff\":");
    float(out, v.diff);
    out.push_str(",\"ci95\":");
    pair(out, v.ci95);
    out.push_str(",\"p_value\":");
    float(out, v.p_value);
    out.push('}');
}

fn chi_square(out: &mut String, c: &ChiSquare) {
    out.push_str("{\"statistic\":");
    float(out, c.statistic);
    out.push_str(",\"dof\":");
    integer(out, c.dof);
    out.push_str(",\"p_value\":");
    float(out, c.p_value);
    out.push('}');
}

fn sample_ratio(out: &mut String, s: &SampleRatio) {
    out.push_str("{\"statistic\":");
    match s.statistic {
        Some(statistic) => float(out, statistic),
        None => out.push_str("null"),
    }
    out.push_str(",\"dof\":");
    integer(out, s.dof);
    out.push_str(",\"p_value\":");
    float(out, s.p_value);
    out.push_str(",\"flagged\":");
    out.push_str(if s.flagged { "true" } else { "false" });
    out.push_str(",\"matched\":");
    integer(out, s.matched);
    out.push_str(",\"unmatched\":");
    integer(out, s.unmatched);
    out.push('}');
}

/// An arm state as the record spells it (its serde name).
fn state(state: ArmState) -> &'static str {
    match state {
        ArmState::Exploring => "exploring",
        ArmState::Winner => "winner",
        ArmState::Stopped => "stopped",
    }
}

fn pair(out: &mut String, [low, high]: [f64; 2]) {
    out.push('[');
    float(out, low);
    out.push(',');
    float(out, high);
    out.push(']');
}

/// A float as `serde_json` writes it: shortest round-trip digits, `null` if not finite.
fn float(out: &mut String, value: f64) {
    if value.is_finite() {
        out.push_str(zmij::Buffer::new().format_finite(value));
    } else {
        out.push_str("null");
    }
}

fn integer(out: &mut String, value: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(value));
}

/// A JSON string. Ids are almost always plain; one that needs escaping goes through
/// `serde_json`, which escapes exactly as the rest of the project's JSON does.
fn string(out: &mut String, text: &str) {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(text);
        out.push('"');
    } else {
        out.push_str(&serde_json::Value::from(text).to_string());
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::policy::Status;

    /// Any float, weighted toward the awkward ones.
    fn any_float() -> impl Strategy<Value = f64> {
        prop_oneof![
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(0.0),
            Just(-0.0),
            Just(f64::MIN_POSITIVE / 3.0),
            Just(1e300),
            0.0..1.0f64,
            any::<f64>(),
        ]
    }

    /// Ids: plain, or with quotes, backslashes, control characters and non-ASCII text.
    fn any_id() -> impl Strategy<Value = String> {
        prop_oneof!["[a-z0-9-]{0,12}", "\\PC{0,8}", any::<String>(), Just("q\"u\\o\u{1}te\n\u{7f}é😀".to_string())]
    }

    fn any_arm() -> impl Strategy<Value = ArmWeight> {
        let numbers = (any_float(), any_float(), any_float(), any_float(), any::<u64>(), any::<u64>(), any_float(), [any_float(), any_float()], any_float());
        let control = proptest::option::of((any_float(), [any_float(), any_float()], any_float()).prop_map(|(diff, ci95, p_value)| VersusControl { diff, ci95, p_value }));
        let state = prop_oneof![Just(ArmState::Exploring), Just(ArmState::Winner), Just(ArmState::Stopped)];
        let metadata = proptest::option::of(prop_oneof![
            Just(serde_json::json!({"owner": "growth", "tags": ["a", "b\"c"], "n": 1.5, "nested": {"x": null}})),
            any_id().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
        ]);
        (any_id(), numbers, control, state, metadata).prop_map(|(arm_id, (weight, p_best, alpha, beta, trials, successes, mean, ci95, expected_loss), vs_control, state, metadata)| ArmWeight {
            arm_id,
            weight,
            p_best,
            alpha,
            beta,
            trials,
            successes,
            mean,
            ci95,
            expected_loss,
            vs_control,
            state,
            metadata,
        })
    }

    fn any_record() -> impl Strategy<Value = WeightRecord> {
        let head = (any_id(), any::<u64>(), any::<i64>(), any::<i64>(), prop_oneof![Just(Status::BurnIn), Just(Status::Adaptive), Just(Status::Winner)]);
        let chi = (any_float(), any::<u32>(), any_float()).prop_map(|(statistic, dof, p_value)| ChiSquare { statistic, dof, p_value });
        let srm = (proptest::option::of(any_float()), any::<u32>(), any_float(), any::<bool>(), any::<u64>(), any::<u64>())
            .prop_map(|(statistic, dof, p_value, flagged, matched, unmatched)| SampleRatio { statistic, dof, p_value, flagged, matched, unmatched });
        (head, proptest::collection::vec(any_arm(), 0..6), chi, srm, any_id(), any::<u32>()).prop_map(
            |((entity_id, version, as_of, computed_at, status), arms, chi_square, srm, dataflow, schema_version)| WeightRecord {
                entity_id,
                version,
                as_of,
                computed_at,
                status,
                arms,
                chi_square,
                srm,
                dataflow,
                schema_version,
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// The field-by-field encoder and the generic serializer agree byte for byte, and the
        /// JSON reads back as the record (up to the floats JSON cannot carry).
        #[test]
        fn writes_what_serde_json_writes(record in any_record()) {
            let mut json = String::new();
            write_record(&record, &mut json);
            prop_assert_eq!(&json, &serde_json::to_string(&record).unwrap());
            let value: serde_json::Value = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(value["entity_id"].as_str(), Some(record.entity_id.as_str()));
        }
    }
}
