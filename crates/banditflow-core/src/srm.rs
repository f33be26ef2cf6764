//! The sample-ratio check of one entity: do the assignments in the window match the weights
//! that were in force when they were served?
//!
//! Every weight record the worker publishes is kept in a history (version → weights), in
//! version order. Records are published about one a tick, so a record's place in the history
//! is close to its tick's distance from the oldest one: a look-up starts there (a tree's
//! nodes, searched from the root for records a day old, missed the cache every time). An
//! assignment in the window is matched to a record: the one whose `version` it carries, or,
//! carrying none, the newest record of a tick before its own (the one in force at its
//! `ts`). Each matched assignment adds one to its arm's observed count and the record's
//! weights to every arm's expected count; Pearson's goodness of fit compares the two. An
//! assignment that names a version this worker never published (or no longer keeps), or was
//! served before any record, is unmatched: counted, left out of the test.
//!
//! Expected counts are kept in fixed point (2^-32 of an assignment), so adding and removing
//! in any order gives the same bits: the check is as deterministic as the weights.

use std::collections::VecDeque;

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
    /// Published records, by increasing version. A record no longer kept while an older one
    /// still is stays as a tombstone (no weights: nothing matches it) until the older ones
    /// have gone.
    pub history: VecDeque<(u64, InForce)>,
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
        match self.history.back_mut() {
            Some((newest, record)) if *newest == version => record.weights = weights,
            Some((newest, _)) if *newest > version => {
                // Not the usual order (versions only grow): keep the history sorted anyway.
                let at = self.history.partition_point(|(v, _)| *v < version);
                match self.history.get_mut(at) {
                    Some((v, record)) if *v == version => record.weights = weights,
                    _ => self.history.insert(at, (version, InForce { weights, refs: 0 })),
                }
            }
            _ => self.history.push_back((version, InForce { weights, refs: 0 })),
        }
    }

    /// The place of the newest record with a version below `bound`. The first guess is the
    /// distance in ticks from the oldest record (exact when every tick has a record); from
    /// there a galloping search (steps doubling) brackets the answer and a binary search ends.
    fn newest_below(&self, bound: u64, ticks: Ticks) -> Option<usize> {
        let front = self.history.front()?.0;
        if front >= bound {
            return None;
        }
        let below = |i: usize| self.history[i].0 < bound;
        let len = self.history.len();
        let distance = ticks.tick_of(i64::try_from(bound - 1).unwrap_or(i64::MAX)).saturating_sub(ticks.tick_of(i64::try_from(front).unwrap_or(i64::MAX)));
        let guess = usize::try_from(distance).unwrap_or(usize::MAX).min(len - 1);
        // Invariant: below(lo), and hi == len or !below(hi). below(0) holds (front < bound).
        let (mut lo, mut hi);
        if below(guess) {
            lo = guess;
            let mut step = 1;
            loop {
                let probe = lo.saturating_add(step);
                if probe >= len {
                    hi = len;
                    break;
                }
                if !below(probe) {
                    hi = probe;
                    break;
                }
                lo = probe;
                step *= 2;
            }
        } else {
            hi = guess;
            let mut step = 1;
            loop {
                let probe = hi.saturating_sub(step);
                if below(probe) {
                    lo = probe;
                    break;
                }
                hi = probe;
                step *= 2;
            }
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if below(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some(lo)
    }

    /// `count` assignments of `arm` served as `served` enter (count > 0) or leave the window.
    pub fn served(&mut self, arm: NameId, served: Served, count: i64, ticks: Ticks) {
        // The record it is matched to: the version it carries, or the newest of a tick before
        // its own. One look-up into the history either way (this runs per window change).
        let before = u64::try_from(ticks.start_of(served.tick)).unwrap_or(0);
        let at = if served.version != 0 {
            // A version from the future of its own `ts` was not in force at it.
            let newest_up_to = if served.version < before { self.newest_below(served.version + 1, ticks) } else { None };
            newest_up_to.filter(|i| self.history[*i].0 == served.version)
        } else {
            self.newest_below(before, ticks)
        };
        let record = at.and_then(|i| self.history.get_mut(i)).map(|(_, r)| r);
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
    pub fn prune(&mut self, horizon_ms: i64, ticks: Ticks) {
        let horizon = u64::try_from(horizon_ms).unwrap_or(0);
        let Some(newest_before) = self.newest_below(horizon, ticks) else { return };
        // Only the few records older than the horizon are looked at, not the whole history.
        for (_, record) in self.history.range_mut(..newest_before) {
            if record.refs == 0 {
                record.weights = Vec::new();
            }
        }
        while self.history.front().is_some_and(|(_, r)| r.refs == 0 && r.weights.is_empty()) {
            self.history.pop_front();
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
        assert!(counts.history.iter().all(|(_, r)| r.refs == 0));
    }

    #[test]
    fn pruning_keeps_referenced_records_and_the_one_in_force_at_the_horizon() {
        let mut counts = ServedCounts::default();
        for tick in 0..10u64 {
            counts.published(ticks().as_of(tick) as u64, [(1, 0.5), (2, 0.5)].into_iter());
        }
        counts.served(1, at(3), 1, ticks()); // refers to the record of tick 2
        counts.prune(ticks().start_of(7), ticks());
        let kept: Vec<u64> = counts.history.iter().filter(|(_, r)| !r.weights.is_empty()).map(|(v, _)| ticks().tick_of(*v as i64)).collect();
        assert_eq!(kept, vec![2, 6, 7, 8, 9]);
        assert!(!counts.test(0.001).flagged);
    }

    #[test]
    fn the_search_finds_what_a_scan_finds_with_records_at_every_tick_or_with_gaps() {
        for gap_every in [0u64, 2, 3, 7] {
            let mut counts = ServedCounts::default();
            for tick in 0..60u64 {
                for bound in 0..ticks().start_of(tick + 3) as u64 + 2 {
                    let scan = counts.history.iter().rposition(|(v, _)| *v < bound);
                    assert_eq!(counts.newest_below(bound, ticks()), scan, "gaps every {gap_every}, {tick} ticks, bound {bound}");
                }
                if gap_every == 0 || tick % gap_every != 0 {
                    counts.published(ticks().as_of(tick) as u64, [(1, 1.0)].into_iter());
                }
            }
        }
    }
}
