//! What happened to every input record: read, applied, or why not.
//!
//! Nothing is dropped silently. An assignment line ends in one of `malformed`, `too_old`,
//! `too_late`, `duplicate`, `conflict` or `assignments_applied` (of which `retired_arm` are
//! later dropped at resolution); an outcome line in one of `malformed`, `ignored_kind`,
//! `too_old`, `late_outcome`, `outcomes_applied`, `outside_attribution` or
//! `unmatched_outcome` (or is still held at the end). `late` counts, in addition, the
//! records behind the frontier that were still applied.

use std::collections::BTreeMap;

use serde::Serialize;

/// Counts of records by what became of them; summed over workers at the end of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Assignment lines read.
    pub assignments_read: u64,
    /// Outcome lines read.
    pub outcomes_read: u64,
    /// Assignments held pending until they resolve (first copy of an id).
    pub assignments_applied: u64,
    /// Outcomes that fell in their assignment's attribution interval.
    pub outcomes_applied: u64,
    /// Records behind the frontier that were still applied.
    pub late: u64,
    /// Late assignments whose resolution time had passed: not applied.
    pub too_late: u64,
    /// Late outcomes whose assignment was no longer pending: not applied.
    pub late_outcome: u64,
    /// Records older than anything the window could still use.
    pub too_old: u64,
    /// Assignment copies identical to a pending one.
    pub duplicate: u64,
    /// Assignment copies that disagree with a pending one (one of them wins).
    pub conflict: u64,
    /// Outcomes outside their assignment's attribution interval, up to its resolution tick.
    pub outside_attribution: u64,
    /// Outcomes no pending assignment claimed by the time the frontier passed them
    /// (including those after their assignment's resolution tick).
    pub unmatched_outcome: u64,
    /// Outcomes of a kind the dataflow does not count.
    pub ignored_kind: u64,
    /// Assignments to an arm retired on the arm registry: not applied.
    pub retired_arm: u64,
    /// Arm registry records read.
    pub registrations_read: u64,
    /// Records that could not be applied at all, by reason.
    pub malformed: BTreeMap<String, u64>,
    /// Weight records written.
    pub records_written: u64,
    /// Gauge, not a count: assignments held pending when last looked (at most a second ago).
    pub pending_assignments: u64,
    /// Gauge, not a count: outcomes held when last looked.
    pub buffered_outcomes: u64,
}

impl Counters {
    /// Counts one malformed record under `reason`.
    pub fn malformed(&mut self, reason: &str) {
        *self.malformed.entry(reason.to_owned()).or_insert(0) += 1;
    }

    /// Adds another worker's counts to these.
    pub fn merge(&mut self, other: &Counters) {
        self.assignments_read += other.assignments_read;
        self.outcomes_read += other.outcomes_read;
        self.assignments_applied += other.assignments_applied;
        self.outcomes_applied += other.outcomes_applied;
        self.late += other.late;
        self.too_late += other.too_late;
        self.late_outcome += other.late_outcome;
        self.too_old += other.too_old;
        self.duplicate += other.duplicate;
        self.conflict += other.conflict;
        self.outside_attribution += other.outside_attribution;
        self.unmatched_outcome += other.unmatched_outcome;
        self.ignored_kind += other.ignored_kind;
        self.retired_arm += other.retired_arm;
        self.registrations_read += other.registrations_read;
        for (reason, n) in &other.malformed {
            *self.malformed.entry(reason.clone()).or_insert(0) += n;
        }
        self.records_written += other.records_written;
        self.pending_assignments += other.pending_assignments;
        self.buffered_outcomes += other.buffered_outcomes;
    }

    /// All malformed records, whatever the reason.
    pub fn malformed_total(&self) -> u64 {
        self.malformed.values().sum()
    }
}
