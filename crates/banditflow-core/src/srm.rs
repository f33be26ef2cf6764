//! The sample-ratio check of one entity: do the assignments in the window match the weights
//! that were in force when they were served?
//!
//! Every weight record the worker publishes is kept in a history (version → weights). An
//! assignment in the window is matched to a record: the one whose `version` it carries, or,
//! carrying none, the newest record of a tick before its own (the one in force at its
//! `ts`). Each matched assignment adds one to its arm's observed count and the record's
//! weights to every arm's expected count; Pearson's goodness of fit compares the two. An
//! assignment that names a version this worker never published (or no longer keeps), or was
//! served before any record, is unmatched: counted, left out of the test.
//!
//! Expected counts are kept in fixed point (2^-32 of an assignment), so adding and removing
//! in any order gives the same bits: the check is as deterministic as the weights.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::attribution::Served;
use crate::event::NameId;
use crate::statistics::goodness_of_fit;
use crate::time::Ticks;

/// One assignment's share in fixed point.
const ONE: f64 = (1u64 << 32) as f64;

/// The result of the check, as the weight record carries it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleRatio {
    /// Pearson's goodness-of-fit statistic of observed against expected assignments per arm;
    /// `null` when an arm whose weight was 0 was served (the mismatch is certain).
    pub statistic: Option<f64>,
    /// Degrees of freedom: the arms expected at all, minus one.
    pub dof: u32,
    /// Its p-value (1 with nothing to compare).
    pub p_value: f64,
    /// Whether `p_value < srm_alpha`.
    pub flagged: bool,
    /// Assignments in the window matched to a record.
    pub matched: u64,
    /// Assignments in the window that could not be matched (left out of the test).
    pub unmatched: u64,
}

/// A published record's weights and how many assignments in the window refer to it.
#[derive(Clone, Debug, Default, PartialEq, bincode::Encode, bincode::Decode)]
pub struct InForce {
    /// Per arm, its weight in fixed point.
    pub weights: Vec<(NameId, i64)>,
    /// Matched assignments in the window that refer to this record.
    pub refs: i64,
}

/// The sample-ratio state of one entity (it is checkpointed as it is).
#[derive(Clone, Debug, Default, PartialEq, bincode::Encode, bincode::Decode)]
pub struct ServedCounts {
    /// Published records by version.
    pub history: BTreeMap<u64, InForce>,
    /// Matched assignments in the window per arm, sorted by arm (a short list: a search of
    /// a few entries beats a map on this per-change path).
    pub observed: Vec<(NameId, i64)>,
    /// Expected assignments per arm, fixed point, sorted by arm.
    pub expected: Vec<(NameId, i128)>,
    /// Matched assignments in the window.
    pub matched: i64,
    /// Unmatched assignments in the window.
    pub unmatched: i64,
}

impl ServedCounts {
    /// Remembers a published record's weights.
    pub fn published(&mut self, version: u64, weights: impl Iterator<Item = (NameId, f64)>) {
        let weights = weights.map(|(arm, w)| (arm, (w.clamp(0.0, 1.0) * ONE).round() as i64)).collect();
        self.history.entry(version).or_default().weights = weights;
    }

    /// `count` assignments of `arm` served as `served` enter (count > 0) or leave the window.
    pub fn served(&mut self, arm: NameId, served: Served, count: i64, ticks: Ticks) {
        // The record it is matched to: the version it carries, or the newest of a tick before
        // its own. One look-up into the history either way (this runs per window change).
        let before = u64::try_from(ticks.start_of(served.tick)).unwrap_or(0);
        let record = if served.version != 0 {
            // A version from the future of its own `ts` was not in force at it.
            if served.version < before { self.history.get_mut(&served.version) } else { None }
        } else {
            self.history.range_mut(..before).next_back().map(|(_, r)| r)
        };
        // Not matched, or served an arm the record did not list: nothing to expect it from.
        let Some(record) = record.filter(|r| r.weights.iter().any(|(a, _)| *a == arm)) else {
            self.unmatched += count;
            return;
        };
        record.refs += count;
        for (a, w) in &record.weights {
            add(&mut self.expected, *a, i128::from(count) * i128::from(*w));
        }
        add(&mut self.observed, arm, count);
        self.matched += count;
    }

    /// Forgets the records no assignment in the window refers to that can no longer be in
    /// force for one that enters later: each has a newer record before `horizon_ms` (the
    /// earliest `ts` an assignment entering from now on can have).
    pub fn prune(&mut self, horizon_ms: i64) {
        let horizon = u64::try_from(horizon_ms).unwrap_or(0);
        let Some(newest_before) = self.history.range(..horizon).next_back().map(|(v, _)| *v) else { return };
        // Only the few records older than the horizon are looked at, not the whole history.
        let unused: Vec<u64> = self.history.range(..newest_before).filter(|(_, r)| r.refs == 0).map(|(v, _)| *v).collect();
        for v in unused {
            self.history.remove(&v);
        }
    }

    /// The published weights alone, every count zero: what a restored weigher starts from
    /// (a restored window hands it every assignment in the window again).
    #[must_use]
    pub fn without_counts(&self) -> ServedCounts {
        let history = self.history.iter().map(|(v, r)| (*v, InForce { weights: r.weights.clone(), refs: 0 })).collect();
        ServedCounts { history, ..ServedCounts::default() }
    }

    /// The check as of now, flagged below `alpha`.
    pub fn test(&self, alpha: f64) -> SampleRatio {
        // The two lists are sorted by arm: walk them together, no table built (this runs for
        // every record).
        let (mut observed, mut expected) = (self.observed.iter().peekable(), self.expected.iter().peekable());
        let categories = std::iter::from_fn(|| {
            let arm = match (observed.peek(), expected.peek()) {
                (Some((o, _)), Some((e, _))) => (*o).min(*e),
                (Some((o, _)), None) => *o,
                (None, Some((e, _))) => *e,
                (None, None) => return None,
            };
            let o = observed.next_if(|(a, _)| *a == arm).map_or(0, |(_, n)| *n);
            let e = expected.next_if(|(a, _)| *a == arm).map_or(0, |(_, n)| *n);
            Some((o as f64, e as f64 / ONE))
        });
        let test = goodness_of_fit(categories);
        SampleRatio {
            statistic: test.statistic.is_finite().then_some(test.statistic),
            dof: test.dof,
            p_value: test.p_value,
            flagged: test.p_value < alpha,
            matched: self.matched.max(0) as u64,
            unmatched: self.unmatched.max(0) as u64,
        }
    }
}

/// Adds `delta` to `arm`'s entry of a list sorted by arm, keeping only non-zero entries.
fn add<V: Copy + Default + PartialEq + std::ops::AddAssign>(list: &mut Vec<(NameId, V)>, arm: NameId, delta: V) {
    match list.binary_search_by_key(&arm, |(a, _)| *a) {
        Ok(i) => {
            list[i].1 += delta;
            if list[i].1 == V::default() {
                list.remove(i);
            }
        }
        Err(i) if delta != V::default() => list.insert(i, (arm, delta)),
        Err(_) => {}
    }
}

/// `arm`'s entry of a list sorted by arm, 0 if it has none.
#[cfg(test)]
fn get<V: Copy + Default>(list: &[(NameId, V)], arm: NameId) -> V {
    list.binary_search_by_key(&arm, |(a, _)| *a).map_or_else(|_| V::default(), |i| list[i].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticks() -> Ticks {
        Ticks::new(1_000)
    }

    fn at(tick: u64) -> Served {
        Served { version: 0, tick }
    }

    #[test]
    fn assignments_are_matched_to_the_record_in_force_or_the_version_they_carry() {
        let mut counts = ServedCounts::default();
        counts.published(999, [(1, 0.5), (2, 0.5)].into_iter());
        counts.published(1_999, [(1, 0.9), (2, 0.1)].into_iter());
        // Tick 0: before any record. Tick 1: the record of tick 0 (999). Tick 5: 1999.
        counts.served(1, at(0), 3, ticks());
        counts.served(1, at(1), 10, ticks());
        counts.served(2, at(5), 10, ticks());
        // Carrying 999 at tick 5 matches 999; carrying 1999 at tick 1 is from its future.
        counts.served(2, Served { version: 999, tick: 5 }, 4, ticks());
        counts.served(2, Served { version: 1_999, tick: 1 }, 2, ticks());
        counts.served(2, Served { version: 12_345, tick: 20 }, 1, ticks());
        assert_eq!((counts.matched, counts.unmatched), (24, 6));
        assert_eq!(counts.observed, vec![(1, 10), (2, 14)]);
        let expect = |a: NameId| get(&counts.expected, a) as f64 / ONE;
        assert!((expect(1) - (10.0 * 0.5 + 10.0 * 0.9 + 4.0 * 0.5)).abs() < 1e-6);
        assert!((expect(2) - (10.0 * 0.5 + 10.0 * 0.1 + 4.0 * 0.5)).abs() < 1e-6);
        // Leaving undoes entering exactly.
        for (arm, served, n) in [(1, at(0), 3), (1, at(1), 10), (2, at(5), 10), (2, Served { version: 999, tick: 5 }, 4), (2, Served { version: 1_999, tick: 1 }, 2), (2, Served { version: 12_345, tick: 20 }, 1)] {
            counts.served(arm, served, -n, ticks());
        }
        assert_eq!((counts.matched, counts.unmatched, counts.observed.len(), counts.expected.len()), (0, 0, 0, 0));
        assert!(counts.history.values().all(|r| r.refs == 0));
    }

    #[test]
    fn pruning_keeps_referenced_records_and_the_one_in_force_at_the_horizon() {
        let mut counts = ServedCounts::default();
        for tick in 0..10u64 {
            counts.published(ticks().as_of(tick) as u64, [(1, 0.5), (2, 0.5)].into_iter());
        }
        counts.served(1, at(3), 1, ticks()); // refers to the record of tick 2
        counts.prune(ticks().start_of(7));
        let kept: Vec<u64> = counts.history.keys().map(|v| ticks().tick_of(*v as i64)).collect();
        assert_eq!(kept, vec![2, 6, 7, 8, 9]);
        assert!(!counts.test(0.001).flagged);
    }
}
