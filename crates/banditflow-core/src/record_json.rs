//! The weight record's JSON, written field by field.
//!
//! Every record the worker publishes is encoded once, and at hundreds of thousands of records
//! a run the generic serializer's per-field work (escaping each key, a call per token) cost
//! more than the statistics it carries. The layout is fixed (`schemas/weights.schema.json`),
//! so the keys are written as they are and only the values are formatted, with the same
//! number formatting as `serde_json` (`itoa`, `zmij`); the output is byte for byte what
//! `serde_json::to_string` makes of the record (a test holds the two together).

use crate::record::{ArmWeight, EncodedRecord, WeightRecord};
use crate::srm::SampleRatio;
use crate::statistics::ChiSquare;

/// Serializes `record`, computed at `tick`, with what the sinks order by.
pub fn encode(record: &WeightRecord, tick: u64) -> EncodedRecord {
    // Sized for the usual record up front: growing the buffer step by step copied it several
    // times per record.
    let mut json = String::with_capacity(384 + 352 * record.arms.len());
    write_record(record, &mut json);
    EncodedRecord { tick, version: record.version, entity_id: record.entity_id.clone(), json, arms: record.arms.len(), srm_flagged: record.srm.flagged }
}

/// Appends `record` as one JSON object to `out`.
///
/// Each field is one call to a small helper; the float formatting is not inlined: inlined at
/// each of a record's ~36 floats, it made this function larger than the instruction cache,
/// which then missed it at every record.
pub fn write_record(record: &WeightRecord, out: &mut String) {
    string_field(out, "{\"entity_id\":", &record.entity_id);
    integer_field(out, ",\"version\":", record.version);
    integer_field(out, ",\"as_of\":", record.as_of);
    integer_field(out, ",\"computed_at\":", record.computed_at);
    text_field(out, ",\"status\":", record.status.as_str());
    out.push_str(",\"arms\":[");
    for (i, arm) in record.arms.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_arm(arm, out);
    }
    out.push(']');
    chi_square(out, &record.chi_square);
    sample_ratio(out, &record.srm);
    integer_field(out, ",\"max_age_hint_ms\":", record.max_age_hint_ms);
    string_field(out, ",\"dataflow\":", &record.dataflow);
    integer_field(out, ",\"schema_version\":", record.schema_version);
    out.push('}');
}

fn write_arm(arm: &ArmWeight, out: &mut String) {
    string_field(out, "{\"arm_id\":", &arm.arm_id);
    float_field(out, ",\"weight\":", arm.weight);
    float_field(out, ",\"p_best\":", arm.p_best);
    float_field(out, ",\"alpha\":", arm.alpha);
    float_field(out, ",\"beta\":", arm.beta);
    integer_field(out, ",\"trials\":", arm.trials);
    integer_field(out, ",\"successes\":", arm.successes);
    float_field(out, ",\"mean\":", arm.mean);
    pair_field(out, ",\"ci95\":", arm.ci95);
    float_field(out, ",\"expected_loss\":", arm.expected_loss);
    match &arm.vs_control {
        Some(v) => {
            float_field(out, ",\"vs_control\":{\"diff\":", v.diff);
            pair_field(out, ",\"ci95\":", v.ci95);
            float_field(out, ",\"p_value\":", v.p_value);
            out.push('}');
        }
        None => out.push_str(",\"vs_control\":null"),
    }
    text_field(out, ",\"state\":", arm.state.as_str());
    if let Some(metadata) = &arm.metadata {
        // Arbitrary JSON from the registry: the generic serializer, which cannot fail on a
        // `Value` (its map keys are strings).
        out.push_str(",\"metadata\":");
        out.push_str(&metadata.to_string());
    }
    out.push('}');
}

fn chi_square(out: &mut String, c: &ChiSquare) {
    float_field(out, ",\"chi_square\":{\"statistic\":", c.statistic);
    integer_field(out, ",\"dof\":", c.dof);
    float_field(out, ",\"p_value\":", c.p_value);
    out.push('}');
}

fn sample_ratio(out: &mut String, s: &SampleRatio) {
    match s.statistic {
        Some(statistic) => float_field(out, ",\"srm\":{\"statistic\":", statistic),
        None => out.push_str(",\"srm\":{\"statistic\":null"),
    }
    integer_field(out, ",\"dof\":", s.dof);
    float_field(out, ",\"p_value\":", s.p_value);
    out.push_str(if s.flagged { ",\"flagged\":true" } else { ",\"flagged\":false" });
    integer_field(out, ",\"matched\":", s.matched);
    integer_field(out, ",\"unmatched\":", s.unmatched);
    out.push('}');
}

/// `key` (the JSON before the value, comma and quotes included), then a float as
/// `serde_json` writes it: shortest round-trip digits, `null` if not finite.
#[inline(never)]
fn float_field(out: &mut String, key: &str, value: f64) {
    out.push_str(key);
    if value.is_finite() {
        out.push_str(zmij::Buffer::new().format_finite(value));
    } else {
        out.push_str("null");
    }
}

/// `key`, then `[low,high]`.
fn pair_field(out: &mut String, key: &str, [low, high]: [f64; 2]) {
    out.push_str(key);
    float_field(out, "[", low);
    float_field(out, ",", high);
    out.push(']');
}

/// `key`, then an integer.
fn integer_field(out: &mut String, key: &str, value: impl itoa::Integer) {
    out.push_str(key);
    out.push_str(itoa::Buffer::new().format(value));
}

/// `key`, then a string known to need no escaping.
fn text_field(out: &mut String, key: &str, text: &str) {
    out.push_str(key);
    out.push('"');
    out.push_str(text);
    out.push('"');
}

/// `key`, then a JSON string. Ids are almost always plain; one that needs escaping goes
/// through `serde_json`, which escapes exactly as the rest of the project's JSON does.
fn string_field(out: &mut String, key: &str, text: &str) {
    out.push_str(key);
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
    use crate::decision::ArmState;
    use crate::policy::Status;
    use crate::statistics::VersusControl;

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
        let head = (any_id(), any::<u64>(), any::<i64>(), any::<i64>(), prop_oneof![Just(Status::BurnIn), Just(Status::Adaptive), Just(Status::Winner), Just(Status::Empty)]);
        let chi = (any_float(), any::<u32>(), any_float()).prop_map(|(statistic, dof, p_value)| ChiSquare { statistic, dof, p_value });
        let srm = (proptest::option::of(any_float()), any::<u32>(), any_float(), any::<bool>(), any::<u64>(), any::<u64>())
            .prop_map(|(statistic, dof, p_value, flagged, matched, unmatched)| SampleRatio { statistic, dof, p_value, flagged, matched, unmatched });
        (head, proptest::collection::vec(any_arm(), 0..6), chi, srm, any_id(), any::<u32>(), any::<u64>()).prop_map(
            |((entity_id, version, as_of, computed_at, status), arms, chi_square, srm, dataflow, schema_version, max_age_hint_ms)| WeightRecord {
                entity_id,
                version,
                as_of,
                computed_at,
                status,
                arms,
                chi_square,
                srm,
                max_age_hint_ms,
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
