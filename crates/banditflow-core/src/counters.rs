//! What happened to every input record: read, applied, or why not.
//!
//! Nothing is dropped silently. An assignment line ends in one of `malformed`, `too_old`,
//! `too_late`, `duplicate`, `conflict` or `assignments_applied` (of which `retired_arm` are
//! later dropped at resolution); an outcome line in one of `malformed`, `ignored_kind`,
//! `too_old`, `late_outcome`, `outcomes_applied`, `outside_attribution` or
//! `unmatched_outcome` (or is still held at the end). `late` counts, in addition, the
//! records behind the frontier that were still applied. [`ByResult`] puts every record in
//! exactly one category, so a run's categories add up to the records it read.

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
    /// Arm registry records taken in (decoded and valid).
    pub registrations_applied: u64,
    /// Records that could not be applied at all, by reason.
    pub malformed: BTreeMap<String, u64>,
    /// Weight records written.
    pub records_written: u64,
    /// Decision events written.
    pub decisions_written: u64,
    /// Gauge, not a count: assignments held pending when last looked (at most a second ago).
    pub pending_assignments: u64,
    /// Gauge, not a count: outcomes held when last looked.
    pub buffered_outcomes: u64,
    /// Gauge: entities admission holds. Every worker's replica holds the same, so workers'
    /// values merge by the largest, not the sum.
    pub entities_held: u64,
    /// Gauge: the most arms one entity holds (merged as `entities_held`).
    pub most_arms_held: u64,
    /// Gauge: the most outcomes held for one assignment key on this worker (workers merge by
    /// the largest).
    pub most_outcomes_held: u64,
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
        self.registrations_applied += other.registrations_applied;
        for (reason, n) in &other.malformed {
            *self.malformed.entry(reason.clone()).or_insert(0) += n;
        }
        self.records_written += other.records_written;
        self.decisions_written += other.decisions_written;
        self.pending_assignments += other.pending_assignments;
        self.buffered_outcomes += other.buffered_outcomes;
        self.entities_held = self.entities_held.max(other.entities_held);
        self.most_arms_held = self.most_arms_held.max(other.most_arms_held);
        self.most_outcomes_held = self.most_outcomes_held.max(other.most_outcomes_held);
    }

    /// All malformed records, whatever the reason.
    pub fn malformed_total(&self) -> u64 {
        self.malformed.values().sum()
    }

    /// Records read: assignments, outcomes and arm registry records.
    pub fn events_read(&self) -> u64 {
        self.assignments_read + self.outcomes_read + self.registrations_read
    }

    /// What became of every record read, each in exactly one category, taken from counters
    /// whose gauges (`pending_assignments`, `buffered_outcomes`) are exact: those of a run
    /// that has finished.
    pub fn by_result(&self) -> ByResult {
        // An assignment taken in is applied once it resolves, unless its arm was retired;
        // until then it is pending.
        let assignments = self.assignments_applied.saturating_sub(self.retired_arm + self.pending_assignments);
        ByResult {
            applied: assignments + self.outcomes_applied + self.registrations_applied,
            too_late: self.too_late,
            late_outcome: self.late_outcome,
            too_old: self.too_old,
            duplicate: self.duplicate,
            conflict: self.conflict,
            outside_attribution: self.outside_attribution,
            unmatched_outcome: self.unmatched_outcome,
            ignored_kind: self.ignored_kind,
            retired_arm: self.retired_arm,
            malformed: self.malformed.clone(),
            pending_at_end: self.pending_assignments,
            buffered_at_end: self.buffered_outcomes,
        }
    }
}

/// What became of the records of a run, in exclusive categories: every record read is in
/// exactly one, so they add up to [`Counters::events_read`]. (`late` is not among them: a
/// late record may still be applied.)
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ByResult {
    /// Resolved assignments that count as trials, outcomes judged inside their attribution
    /// interval, and arm registry records taken in.
    pub applied: u64,
    /// Late assignments whose resolution time had passed.
    pub too_late: u64,
    /// Late outcomes whose assignment was no longer pending.
    pub late_outcome: u64,
    /// Records older than anything the window could still use.
    pub too_old: u64,
    /// Copies of a pending assignment.
    pub duplicate: u64,
    /// Disagreeing copies of a pending assignment (the one kept is among `applied`).
    pub conflict: u64,
    /// Outcomes outside their assignment's attribution interval.
    pub outside_attribution: u64,
    /// Outcomes no assignment claimed.
    pub unmatched_outcome: u64,
    /// Outcomes of a kind the dataflow does not count.
    pub ignored_kind: u64,
    /// Assignments to an arm retired on the arm registry.
    pub retired_arm: u64,
    /// Records that could not be applied at all, by reason.
    pub malformed: BTreeMap<String, u64>,
    /// Assignments still pending (not yet resolved) when the run ended.
    pub pending_at_end: u64,
    /// Outcomes still waiting for an assignment or its resolution when the run ended.
    pub buffered_at_end: u64,
}

impl ByResult {
    /// The records in every category: equal to the records read.
    pub fn total(&self) -> u64 {
        self.applied
            + self.too_late
            + self.late_outcome
            + self.too_old
            + self.duplicate
            + self.conflict
            + self.outside_attribution
            + self.unmatched_outcome
            + self.ignored_kind
            + self.retired_arm
            + self.malformed.values().sum::<u64>()
            + self.pending_at_end
            + self.buffered_at_end
    }

    /// The non-empty categories in a fixed order, malformed ones by reason (`malformed
    /// invalid_json`), for a one-line summary.
    pub fn parts(&self) -> Vec<(String, u64)> {
        let mut parts: Vec<(String, u64)> = [
            ("applied", self.applied),
            ("too_late", self.too_late),
            ("late_outcome", self.late_outcome),
            ("too_old", self.too_old),
            ("duplicate", self.duplicate),
            ("conflict", self.conflict),
            ("outside_attribution", self.outside_attribution),
            ("unmatched_outcome", self.unmatched_outcome),
            ("ignored_kind", self.ignored_kind),
            ("retired_arm", self.retired_arm),
        ]
        .into_iter()
        .map(|(name, n)| (name.to_owned(), n))
        .collect();
        parts.extend(self.malformed.iter().map(|(reason, n)| (format!("malformed {reason}"), *n)));
        parts.push(("still pending".to_owned(), self.pending_at_end));
        parts.push(("still buffered".to_owned(), self.buffered_at_end));
        parts.retain(|(name, n)| *n > 0 || name == "applied");
        parts
    }
}
