//! The sliding event-time window: resolved facts in, window updates out.
//!
//! Each resolved fact is added at the tick it resolves and retracted at the tick it leaves
//! the window, so the accumulation of the updates at tick `t` is exactly what the posterior
//! as of `t` counts (`docs/semantics.md`). Retractions wait in [`Departures`] until their
//! tick is current: handed to differential early, they would sit in its batcher and be
//! merged again at every tick. The dataflow's arm counts operator turns the updates into
//! each entity's arm counts.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use crate::attribution::Resolved;
use crate::event::NameId;

/// One change to the window: `((entity, arm), tick, (trials, successes))`.
pub type WindowUpdate = ((NameId, NameId), u64, (i64, i64));

/// An arm's counts in the window: `(arm, trials, successes)`.
pub type ArmCount = (NameId, i64, i64);

/// `(trials, successes)` per (entity, arm).
type PairCounts = FxHashMap<(NameId, NameId), (i64, i64)>;

/// Resolved facts waiting to leave the window, added up per (leave tick, entity, arm).
#[derive(Debug, Default)]
pub struct Departures {
    by_tick: BTreeMap<u64, PairCounts>,
}

impl Departures {
    /// Turns resolved facts into window updates at their entry tick (added up per
    /// (entity, arm, tick)) and schedules their departure.
    pub fn admit(&mut self, resolved: &mut Vec<Resolved>, updates: &mut Vec<WindowUpdate>) {
        let mut entering: FxHashMap<(NameId, NameId, u64), (i64, i64)> = FxHashMap::default();
        for r in resolved.drain(..) {
            if r.leave <= r.enter {
                continue; // never inside the window at the end of any tick
            }
            let success = i64::from(r.success);
            let e = entering.entry((r.entity, r.arm, r.enter)).or_insert((0, 0));
            *e = (e.0 + 1, e.1 + success);
            let l = self.by_tick.entry(r.leave).or_default().entry((r.entity, r.arm)).or_insert((0, 0));
            *l = (l.0 - 1, l.1 - success);
        }
        updates.extend(entering.into_iter().map(|((entity, arm, tick), diff)| ((entity, arm), tick, diff)));
    }

    /// Moves the departures of every tick before `frontier` into `updates`.
    pub fn due(&mut self, frontier: u64, updates: &mut Vec<WindowUpdate>) {
        while let Some(entry) = self.by_tick.first_entry() {
            if *entry.key() >= frontier {
                break;
            }
            let (tick, leaving) = entry.remove_entry();
            updates.extend(leaving.into_iter().map(|(pair, diff)| (pair, tick, diff)));
        }
    }

    /// The scheduled departures as `(leave tick, entity, arm, trials, successes)`, sorted
    /// (the counts are negative: they are retractions), for checkpoints.
    pub fn snapshot(&self) -> Vec<(u64, NameId, NameId, i64, i64)> {
        let mut all: Vec<_> = self.by_tick.iter().flat_map(|(tick, pairs)| pairs.iter().map(move |((e, a), (t, s))| (*tick, *e, *a, *t, *s))).collect();
        all.sort_unstable();
        all
    }

    /// Adds checkpointed departures (from [`Departures::snapshot`]) to these.
    pub fn restore(&mut self, departures: &[(u64, NameId, NameId, i64, i64)]) {
        for &(tick, entity, arm, trials, successes) in departures {
            let slot = self.by_tick.entry(tick).or_default().entry((entity, arm)).or_insert((0, 0));
            *slot = (slot.0 + trials, slot.1 + successes);
        }
    }

    /// What is in the window now, per (entity, arm): every fact in it is due to leave, so
    /// this is the scheduled departures, negated. A restored dataflow starts its window
    /// from these counts.
    pub fn in_window(&self) -> Vec<((NameId, NameId), (i64, i64))> {
        let mut counts: BTreeMap<(NameId, NameId), (i64, i64)> = BTreeMap::new();
        for pairs in self.by_tick.values() {
            for (pair, (t, s)) in pairs {
                let c = counts.entry(*pair).or_insert((0, 0));
                *c = (c.0 - t, c.1 - s);
            }
        }
        counts.into_iter().filter(|(_, c)| *c != (0, 0)).collect()
    }

    /// Scheduled departures, one per (tick, entity, arm).
    pub fn len(&self) -> usize {
        self.by_tick.values().map(PairCounts::len).sum()
    }

    /// Whether nothing is scheduled to leave.
    pub fn is_empty(&self) -> bool {
        self.by_tick.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(enter: u64, leave: u64, success: bool) -> Resolved {
        Resolved { entity: 1, arm: 2, enter, leave, success }
    }

    #[test]
    fn facts_enter_added_up_and_leave_only_when_their_tick_is_due() {
        let mut departures = Departures::default();
        let mut resolved = vec![fact(4, 11, true), fact(4, 11, false), fact(4, 4, true), fact(5, 11, true)];
        let mut updates = Vec::new();
        departures.admit(&mut resolved, &mut updates);
        updates.sort();
        assert_eq!(updates, vec![((1, 2), 4, (2, 1)), ((1, 2), 5, (1, 1))]);
        assert_eq!(departures.len(), 1);
        updates.clear();
        departures.due(11, &mut updates);
        assert!(updates.is_empty(), "tick 11 is not complete before frontier 11");
        departures.due(12, &mut updates);
        assert_eq!(updates, vec![((1, 2), 11, (-3, -2))]);
        assert!(departures.is_empty());
    }

    #[test]
    fn departures_round_trip_and_say_what_is_in_the_window() {
        let mut departures = Departures::default();
        let mut resolved = vec![fact(4, 11, true), fact(5, 12, false), Resolved { entity: 1, arm: 3, enter: 5, leave: 12, success: true }];
        departures.admit(&mut resolved, &mut Vec::new());
        assert_eq!(departures.in_window(), vec![((1, 2), (2, 1)), ((1, 3), (1, 1))]);
        let mut restored = Departures::default();
        restored.restore(&departures.snapshot());
        assert_eq!(restored.snapshot(), departures.snapshot());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        departures.due(12, &mut a);
        restored.due(12, &mut b);
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b);
        assert!(restored.in_window().iter().all(|(pair, _)| *pair == (1, 2) || *pair == (1, 3)));
    }
}
