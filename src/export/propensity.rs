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
    entities: HashMap<String, Records>,
    /// Lines that were not weight records.
    pub unreadable: u64,
}

/// One entity's records by `as_of`, and where each version is among them.
#[derive(Debug, Default)]
struct Records {
    by_time: Vec<Served>,
    by_version: HashMap<u64, usize>,
}

impl WeightHistory {
    /// Reads a weights file (JSON lines, as `replay` writes them or the weights topic holds
    /// them); lines that are not weight records are counted in `unreadable`.
    pub fn read(input: impl BufRead) -> std::io::Result<WeightHistory> {
        let mut history = WeightHistory::default();
        for line in input.split(b'\n') {
            history.add_line(&line?);
        }
        Ok(history.sorted())
    }

    /// One line of a weights file (blank lines are skipped); call [`WeightHistory::sorted`]
    /// after the last.
    pub fn add_line(&mut self, line: &[u8]) {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        match serde_json::from_slice::<RecordLine>(line) {
            Ok(record) => {
                let mut weights: Vec<(String, f64)> = record.arms.into_iter().map(|a| (a.arm_id, a.weight)).collect();
                weights.sort_by(|a, b| a.0.cmp(&b.0));
                self.entities.entry(record.entity_id).or_default().by_time.push(Served { version: record.version, as_of: record.as_of, weights });
            }
            Err(_) => self.unreadable += 1,
        }
    }

    /// The history ready for look-ups: each entity's records by time, their versions indexed.
    #[must_use]
    pub fn sorted(mut self) -> WeightHistory {
        for records in self.entities.values_mut() {
            records.by_time.sort_by_key(|r| (r.as_of, r.version));
            records.by_version = records.by_time.iter().enumerate().map(|(i, r)| (r.version, i)).collect();
        }
        self
    }

    /// The served arm's weight in the record named by `version` (none if that record does not
    /// list the arm or is not older than `ts`: serving cannot have used it); without such a
    /// record, in the record in force at `ts` (the newest whose `as_of` is before it).
    pub fn propensity(&self, entity: &str, arm: &str, ts: i64, version: Option<u64>) -> Option<(f64, PropensitySource)> {
        let records = self.entities.get(entity)?;
        if let Some(named) = version.and_then(|v| records.by_version.get(&v)).map(|i| &records.by_time[*i]) {
            return named.weight(arm).filter(|_| named.as_of < ts).map(|w| (w, PropensitySource::WeightsVersion));
        }
        let before = records.by_time.partition_point(|r| r.as_of < ts);
        let in_force = before.checked_sub(1).map(|i| &records.by_time[i])?;
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
        // A named record without the arm, or not older than the assignment: none.
        assert_eq!(history.propensity("e", "c", 250, Some(99)), None);
        assert_eq!(history.propensity("e", "b", 150, Some(199)), None);
        // At as_of itself the record is not yet in force; before the first record none is.
        assert_eq!(history.propensity("e", "a", 199, None), Some((0.5, PropensitySource::InForce)));
        assert_eq!(history.propensity("e", "a", 99, None), None);
        assert_eq!(history.propensity("e", "c", 250, None), None);
        assert_eq!(history.propensity("other", "a", 250, None), None);
    }
}
