//! Cumulative assignments per arm, from the assignment log the dataflow read
//! (`banditflow report --assignments FILE`).
//!
//! A weight record counts only the window's resolved trials, so the running total of what
//! each arm was served since the log began cannot be read back from the records: it comes
//! from the assignments themselves, decoded by the same [`Decoder`] as replay's. Each
//! assignment id counts once, as its copy with the smallest `ts` (between copies of one `ts`,
//! the smallest (`entity_id`, `arm_id`)), the copy attribution keeps.

use std::collections::BTreeMap;
use std::path::Path;

use banditflow_core::event::{AssignmentKey, Name, NameId};
use banditflow_core::limits::Limits;
use banditflow_core::wire::Decoder;
use std::collections::HashMap;

use super::lines::{for_each_line, InputError};

/// What reading the assignment log found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServedTally {
    /// Lines read.
    pub lines: u64,
    /// Lines that were not an assignment (skipped).
    pub skipped: u64,
    /// Further copies of an assignment id already read (counted once).
    pub copies: u64,
}

/// Per entity, per arm: the times its assignments were served, sorted.
pub type Served = BTreeMap<String, BTreeMap<String, Vec<i64>>>;

/// Reads the assignment log at `path`, keeping the entities `keep` accepts.
pub fn read(path: &Path, keep: impl Fn(&str) -> bool) -> Result<(Served, ServedTally), InputError> {
    let mut decoder = Decoder::new(None, Limits::default().any_time());
    let mut tally = ServedTally::default();
    let mut names: HashMap<NameId, String> = HashMap::new();
    let mut announced: Vec<Name> = Vec::new();
    let mut first: HashMap<AssignmentKey, (i64, NameId, NameId)> = HashMap::new();
    for_each_line(path, |line| {
        tally.lines += 1;
        let Ok(assignment) = decoder.assignment(line.as_bytes(), 0, &mut announced) else {
            tally.skipped += 1;
            return;
        };
        names.extend(announced.drain(..).map(|n| (n.id, n.text)));
        let copy = (assignment.ts, assignment.entity, assignment.arm);
        match first.entry(assignment.key) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(copy);
            }
            std::collections::hash_map::Entry::Occupied(mut kept) => {
                tally.copies += 1;
                let name = |(ts, entity, arm): (i64, NameId, NameId)| (ts, names.get(&entity).cloned(), names.get(&arm).cloned());
                if name(copy) < name(*kept.get()) {
                    kept.insert(copy);
                }
            }
        }
    })?;
    let mut served = Served::new();
    for (ts, entity, arm) in first.into_values() {
        let (Some(entity), Some(arm)) = (names.get(&entity), names.get(&arm)) else { continue };
        if keep(entity) {
            served.entry(entity.to_owned()).or_default().entry(arm.to_owned()).or_default().push(ts);
        }
    }
    for arms in served.values_mut() {
        for times in arms.values_mut() {
            times.sort_unstable();
        }
    }
    Ok((served, tally))
}

/// How many of `times` (sorted) are before `as_of`: served by the end of that tick.
pub fn before(times: &[i64], as_of: i64) -> u64 {
    times.partition_point(|&t| t < as_of) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_assignment_id_counts_once_as_its_earliest_copy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.jsonl");
        let lines = [
            r#"{"assignment_id":"u1","entity_id":"e","arm_id":"b","ts":200}"#,
            r#"{"assignment_id":"u1","entity_id":"e","arm_id":"a","ts":100}"#,
            r#"{"assignment_id":"u2","entity_id":"e","arm_id":"b","ts":150}"#,
            r#"{"assignment_id":"u2","entity_id":"e","arm_id":"a","ts":150}"#,
            r#"{"assignment_id":"u3","entity_id":"f","arm_id":"a","ts":50}"#,
            "not an assignment",
        ];
        std::fs::write(&path, lines.join("\n")).expect("write");
        let (served, tally) = read(&path, |_| true).expect("read");
        assert_eq!(tally, ServedTally { lines: 6, skipped: 1, copies: 2 });
        assert_eq!(served["e"]["a"], vec![100, 150]);
        assert!(!served["e"].contains_key("b"));
        assert_eq!(served["f"]["a"], vec![50]);
        assert_eq!(before(&served["e"]["a"], 150), 1);
        assert_eq!(before(&served["e"]["a"], 151), 2);
        let (only_f, _) = read(&path, |e| e == "f").expect("read");
        assert_eq!(only_f.keys().collect::<Vec<_>>(), ["f"]);
    }
}
