//! The weights serving used, read back from a weights file: each entity's records by version
//! and by time, so a row's propensity is the served arm's weight in the record that served it.

use std::collections::HashMap;
use std::io::BufRead;

use serde::Deserialize;

use super::rows::PropensitySource;

/// One weight record, as much of it as propensities need.
#[derive(Clone, Debug)]
struct Served {
    version: u64,
    as_of: i64,
    /// (arm, weight), sorted by arm.
    weights: Vec<(String, f64)>,
}

impl Served {
    fn weight(&self, arm: &str) -> Option<f64> {
        self.weights.binary_search_by(|(a, _)| a.as_str().cmp(arm)).ok().map(|i| self.weights[i].1)
    }
}

/// The fields of a weight record (`schemas/weights.schema.json`) propensities read: any
/// schema version has them.
#[derive(Deserialize)]
struct RecordLine {
    entity_id: String,
    version: u64,
    as_of: i64,
    arms: Vec<ArmLine>,
}

#[derive(Deserialize)]
struct ArmLine {
    arm_id: String,
    weight: f64,
}

/// Every entity's weight records, sorted by `as_of`.
#[derive(Debug, Default)]
pub struct WeightHistory {
    entities: HashMap<String, Vec<Served>>,
    /// Lines that were not weight records.
    pub unreadable: u64,
}

impl WeightHistory {
    /// Reads a weights file (JSON lines, as `replay` writes them or the weights topic holds
    /// them); lines that are not weight records are counted in `unreadable`.
    pub fn read(input: impl BufRead) -> std::io::Result<WeightHistory> {
        let mut history = WeightHistory::default();
        for line in input.lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<RecordLine>(&line) {
                Ok(record) => {
                    let mut weights: Vec<(String, f64)> = record.arms.into_iter().map(|a| (a.arm_id, a.weight)).collect();
                    weights.sort_by(|a, b| a.0.cmp(&b.0));
                    history.entities.entry(record.entity_id).or_default().push(Served { version: record.version, as_of: record.as_of, weights });
                }
                Err(_) => history.unreadable += 1,
            }
        }
        for records in history.entities.values_mut() {
            records.sort_by_key(|r| (r.as_of, r.version));
        }
        Ok(history)
    }

    /// The served arm's weight in the record named by `version`, else in the record in force
    /// at `ts` (the newest whose `as_of` is before it), with which it was.
    pub fn propensity(&self, entity: &str, arm: &str, ts: i64, version: Option<u64>) -> Option<(f64, PropensitySource)> {
        let records = self.entities.get(entity)?;
        if let Some(version) = version {
            let named = records.iter().rfind(|r| r.version == version).and_then(|r| r.weight(arm));
            if let Some(weight) = named {
                return Some((weight, PropensitySource::WeightsVersion));
            }
        }
        let before = records.partition_point(|r| r.as_of < ts);
        let in_force = before.checked_sub(1).map(|i| &records[i])?;
        in_force.weight(arm).map(|w| (w, PropensitySource::InForce))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(version: u64, as_of: i64, arms: &[(&str, f64)]) -> String {
        let arms: Vec<serde_json::Value> = arms.iter().map(|(a, w)| serde_json::json!({"arm_id": a, "weight": w})).collect();
        serde_json::json!({"entity_id": "e", "version": version, "as_of": as_of, "arms": arms}).to_string()
    }

    #[test]
    fn the_named_record_wins_then_the_one_in_force() {
        let lines = [record(99, 99, &[("a", 0.5), ("b", 0.5)]), record(199, 199, &[("a", 0.8), ("b", 0.2)]), "not json".to_owned()].join("\n");
        let history = WeightHistory::read(lines.as_bytes()).expect("read");
        assert_eq!(history.unreadable, 1);
        assert_eq!(history.propensity("e", "b", 250, Some(99)), Some((0.5, PropensitySource::WeightsVersion)));
        assert_eq!(history.propensity("e", "b", 250, None), Some((0.2, PropensitySource::InForce)));
        // A version no record has: the record in force at ts instead.
        assert_eq!(history.propensity("e", "b", 150, Some(7)), Some((0.5, PropensitySource::InForce)));
        // At as_of itself the record is not yet in force; before the first record none is.
        assert_eq!(history.propensity("e", "a", 199, None), Some((0.5, PropensitySource::InForce)));
        assert_eq!(history.propensity("e", "a", 99, None), None);
        assert_eq!(history.propensity("e", "c", 250, None), None);
        assert_eq!(history.propensity("other", "a", 250, None), None);
    }
}
