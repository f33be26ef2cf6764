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

use crate::attribution::{Resolved, Served};
use crate::event::NameId;

/// One change to the window: `((entity, arm), tick, (trials, successes))`.
pub type WindowUpdate = ((NameId, NameId), u64, (i64, i64));

/// One change to the window as it leaves attribution: `((entity, arm, served), tick,
/// (trials, successes))`. The posterior counts it by (entity, arm) ([`WindowUpdate`]), the
/// sample-ratio check by the record it was served under.
pub type WindowFact = ((NameId, NameId, Served), u64, (i64, i64));

/// An arm's counts in the window: `(arm, trials, successes)`.
pub type ArmCount = (NameId, i64, i64);

/// `(trials, successes)` per (entity, arm, served).
type FactCounts = FxHashMap<(NameId, NameId, Served), (i64, i64)>;

/// A scheduled departure as checkpointed: `(leave tick, entity, arm, served, trials,
/// successes)`, the counts negative (they are retractions).
pub type Departure = (u64, NameId, NameId, Served, i64, i64);

/// Resolved facts waiting to leave the window, added up per (leave tick, entity, arm, served).
#[derive(Debug, Default)]
pub struct Departures {
    by_tick: BTreeMap<u64, FactCounts>,
}

impl Departures {
    /// Turns resolved facts into window updates at their entry tick (added up per
    /// (entity, arm, served, tick)) and schedules their departure.
    pub fn admit(&mut self, resolved: &mut Vec<Resolved>, facts: &mut Vec<WindowFact>) {
        let mut entering: FxHashMap<(NameId, NameId, Served, u64), (i64, i64)> = FxHashMap::default();
        for r in resolved.drain(..) {
            if r.leave <= r.enter {
                continue; // never inside the window at the end of any tick
            }
            let success = i64::from(r.success);
            let e = entering.entry((r.entity, r.arm, r.served, r.enter)).or_insert((0, 0));
            *e = (e.0 + 1, e.1 + success);
            let l = self.by_tick.entry(r.leave).or_default().entry((r.entity, r.arm, r.served)).or_insert((0, 0));
            *l = (l.0 - 1, l.1 - success);
        }
        facts.extend(entering.into_iter().map(|((entity, arm, s, tick), diff)| ((entity, arm, s), tick, diff)));
    }

    /// Moves the departures of every tick before `frontier` into `facts`.
    pub fn due(&mut self, frontier: u64, facts: &mut Vec<WindowFact>) {
        while let Some(entry) = self.by_tick.first_entry() {
            if *entry.key() >= frontier {
                break;
            }
            let (tick, leaving) = entry.remove_entry();
            facts.extend(leaving.into_iter().map(|(fact, diff)| (fact, tick, diff)));
        }
    }

    /// Makes every fact of `(entity, arm)` still in the window leave it at `tick` instead of
    /// later (an arm reactivated with `on_reactivate = "reset"`).
    pub fn leave_now(&mut self, entity: NameId, arm: NameId, tick: u64, facts: &mut Vec<WindowFact>) {
        for (_, leaving) in self.by_tick.range_mut(tick.saturating_add(1)..) {
            leaving.retain(|fact, diff| {
                let of_pair = fact.0 == entity && fact.1 == arm;
                if of_pair {
                    facts.push((*fact, tick, *diff));
                }
                !of_pair
            });
        }
        self.by_tick.retain(|_, leaving| !leaving.is_empty());
    }

    /// The scheduled departures, sorted, for checkpoints.
    pub fn snapshot(&self) -> Vec<Departure> {
        let mut all: Vec<Departure> = self
            .by_tick
            .iter()
            .flat_map(|(tick, facts)| facts.iter().map(move |((e, a, s), (t, n))| (*tick, *e, *a, *s, *t, *n)))
            .collect();
        all.sort_unstable();
        all
    }

    /// Adds checkpointed departures (from [`Departures::snapshot`]) to these.
    pub fn restore(&mut self, departures: &[Departure]) {
        for &(tick, entity, arm, served, trials, successes) in departures {
            let slot = self.by_tick.entry(tick).or_default().entry((entity, arm, served)).or_insert((0, 0));
            *slot = (slot.0 + trials, slot.1 + successes);
        }
    }

    /// What is in the window now, per (entity, arm, served): every fact in it is due to
    /// leave, so this is the scheduled departures, negated. A restored dataflow starts its
    /// window (and its sample-ratio counts) from these.
    pub fn in_window(&self) -> Vec<((NameId, NameId, Served), (i64, i64))> {
        let mut counts: BTreeMap<(NameId, NameId, Served), (i64, i64)> = BTreeMap::new();
        for facts in self.by_tick.values() {
            for (fact, (t, s)) in facts {
                let c = counts.entry(*fact).or_insert((0, 0));
                *c = (c.0 - t, c.1 - s);
            }
        }
        counts.into_iter().filter(|(_, c)| *c != (0, 0)).collect()
    }

    /// Scheduled departures, one per (tick, entity, arm, served).
    pub fn len(&self) -> usize {
        self.by_tick.values().map(FactCounts::len).sum()
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
        Resolved { entity: 1, arm: 2, enter, leave, success, served: Served { version: 0, tick: 1 } }
    }

    #[test]
    fn a_pair_made_to_leave_now_leaves_once_and_others_stay() {
        let mut departures = Departures::default();
        let other = Resolved { arm: 3, ..fact(4, 11, true) };
        let mut resolved = vec![fact(4, 11, true), fact(5, 13, false), fact(2, 6, true), other];
        departures.admit(&mut resolved, &mut Vec::new());
        let mut facts = Vec::new();
        departures.leave_now(1, 2, 7, &mut facts);
        facts.sort();
        let plain = Served { version: 0, tick: 1 };
        // The two leaving after tick 7 leave at 7; the one leaving at 6 is left to `due`.
        assert_eq!(facts, vec![((1, 2, plain), 7, (-1, -1)), ((1, 2, plain), 7, (-1, 0))]);
        facts.clear();
        departures.due(u64::MAX, &mut facts);
        facts.sort();
        assert_eq!(facts, vec![((1, 2, plain), 6, (-1, -1)), ((1, 3, plain), 11, (-1, -1))], "nothing of the pair twice");
    }

    #[test]
    fn facts_enter_added_up_and_leave_only_when_their_tick_is_due() {
        let mut departures = Departures::default();
        let versioned = Resolved { served: Served { version: 999, tick: 1 }, ..fact(4, 11, true) };
        let mut resolved = vec![fact(4, 11, true), fact(4, 11, false), fact(4, 4, true), fact(5, 11, true), versioned];
        let mut facts = Vec::new();
        departures.admit(&mut resolved, &mut facts);
        facts.sort();
        let (plain, versioned) = (Served { version: 0, tick: 1 }, Served { version: 999, tick: 1 });
        assert_eq!(facts, vec![((1, 2, plain), 4, (2, 1)), ((1, 2, plain), 5, (1, 1)), ((1, 2, versioned), 4, (1, 1))]);
        assert_eq!(departures.len(), 2, "one per (leave tick, entity, arm, served)");
        facts.clear();
        departures.due(11, &mut facts);
        assert!(facts.is_empty(), "tick 11 is not complete before frontier 11");
        departures.due(12, &mut facts);
        facts.sort();
        assert_eq!(facts, vec![((1, 2, plain), 11, (-3, -2)), ((1, 2, versioned), 11, (-1, -1))]);
        assert!(departures.is_empty());
    }

    #[test]
    fn departures_round_trip_and_say_what_is_in_the_window() {
        let mut departures = Departures::default();
        let other = Resolved { entity: 1, arm: 3, enter: 5, leave: 12, success: true, served: Served { version: 7, tick: 2 } };
        let mut resolved = vec![fact(4, 11, true), fact(5, 12, false), other];
        departures.admit(&mut resolved, &mut Vec::new());
        let plain = Served { version: 0, tick: 1 };
        assert_eq!(departures.in_window(), vec![((1, 2, plain), (2, 1)), ((1, 3, Served { version: 7, tick: 2 }), (1, 1))]);
        let mut restored = Departures::default();
        restored.restore(&departures.snapshot());
        assert_eq!(restored.snapshot(), departures.snapshot());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        departures.due(12, &mut a);
        restored.due(12, &mut b);
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b);
    }
}
