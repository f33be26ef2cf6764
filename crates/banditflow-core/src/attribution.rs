//! Attribution: outcomes joined to assignments by key, and each assignment's reward decided
//! once its attribution interval has passed.
//!
//! A keyed state machine (docs/semantics.md, "Attribution" and "Time"): an assignment is held
//! until `ts + attribution`, an outcome waiting for its assignment until the frontier passes
//! its `ts`. When a tick completes, every assignment resolving in it becomes one
//! [`Resolved`] fact. O(1) work per event and a few dozen bytes per pending assignment.

use std::collections::hash_map::Entry;
use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use crate::counters::Counters;
use crate::sparse::shrink_map;
use crate::event::{Assignment, AssignmentKey, Forgotten, Name, NameId, Outcome, Registration};
use crate::time::Ticks;

/// The timing rules attribution needs from a dataflow.
#[derive(Clone, Copy, Debug)]
pub struct AttributionRules {
    /// Tick arithmetic.
    pub ticks: Ticks,
    /// How long after an assignment an outcome still counts, ms.
    pub attribution_ms: u64,
    /// How far back the posterior looks, ms.
    pub window_ms: u64,
    /// `[limits] max_outcomes_per_assignment`: outcomes held at once for one key; one past
    /// it is refused.
    pub max_outcomes_per_assignment: usize,
    /// `[policy] on_reactivate = "reset"`: a reactivated arm's counts leave the window.
    pub reset_on_reactivate: bool,
}

/// Which weight record an assignment was served under, as far as the assignment tells: the
/// version it carried (0: none) and the tick of its `ts` (the record in force then is the
/// newest one of an earlier tick). The sample-ratio check matches it to a record by these.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize, bincode::Encode, bincode::Decode)]
pub struct Served {
    /// The `weights_version` the assignment carried, 0 if none.
    pub version: u64,
    /// The tick of the assignment's `ts`.
    pub tick: u64,
}

/// An assignment whose reward is decided: it counts in its arm's posterior from tick
/// `enter` up to (not including) tick `leave`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Resolved {
    /// Entity id.
    pub entity: NameId,
    /// Arm id.
    pub arm: NameId,
    /// First tick whose posterior counts it.
    pub enter: u64,
    /// First tick whose posterior no longer counts it.
    pub leave: u64,
    /// Whether an outcome fell in its attribution interval.
    pub success: bool,
    /// The weight record it was served under, as far as it tells.
    pub served: Served,
}

type KeyMap<V> = FxHashMap<AssignmentKey, V>;

/// Distinct (entity, arm) pairs one worker can hold; beyond it assignments are malformed.
pub const MAX_PAIRS: usize = 1 << PAIR_BITS;
const PAIR_BITS: u32 = 20;
const TS_BITS: u32 = 64 - PAIR_BITS;

/// A pending assignment packed in 8 bytes beside its 16-byte key: event time (44 bits of
/// ms, good until the year 2527) and the index of its (entity, arm) pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pending(u64);

impl Pending {
    fn new(ts: i64, pair: u32) -> Self {
        debug_assert!((0..1 << TS_BITS).contains(&ts));
        Pending(((ts as u64) << PAIR_BITS) | u64::from(pair))
    }
    fn ts(self) -> i64 {
        (self.0 >> PAIR_BITS) as i64
    }
    fn pair(self) -> u32 {
        (self.0 & ((1 << PAIR_BITS) - 1)) as u32
    }
}

/// The attribution state of one worker in a portable form, for checkpoints: no internal
/// indexes, so it can be restored on another worker count (each new worker keeps the keys it
/// owns).
#[derive(Clone, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct AttributionState {
    /// Every tick before this one is complete and settled.
    pub settled: u64,
    /// Pending assignments: (key, ts, entity, arm).
    pub pending: Vec<(AssignmentKey, i64, NameId, NameId)>,
    /// Copies tying on `ts` with another (entity, arm), by key.
    pub ties: Vec<(AssignmentKey, Vec<(NameId, NameId)>)>,
    /// Late assignments' resolution ticks, by key.
    pub delayed: Vec<(AssignmentKey, u64)>,
    /// The `weights_version` of pending assignments that carried one, by key.
    pub versions: Vec<(AssignmentKey, u64)>,
    /// Outcomes held, by key: their event times.
    pub outcomes: Vec<(AssignmentKey, Vec<i64>)>,
    /// Arm registry history per (entity, arm).
    pub registry: Vec<((NameId, NameId), Vec<(i64, bool)>)>,
    /// Entity and arm names.
    pub names: Vec<(NameId, String)>,
}

/// The attribution state of one worker's share of the keys.
pub struct Attribution {
    rules: AttributionRules,
    /// Every tick before this one is complete and settled.
    settled: u64,
    pending: KeyMap<Pending>,
    resolve_at: BTreeMap<u64, Vec<AssignmentKey>>,
    outcomes: KeyMap<Vec<i64>>,
    expire_at: BTreeMap<u64, Vec<AssignmentKey>>,
    pairs: Vec<(NameId, NameId)>,
    pair_index: FxHashMap<(NameId, NameId), u32>,
    /// How many pending assignments and ties use each pair; unused pairs are recycled.
    pair_refs: Vec<u32>,
    free_pairs: Vec<u32>,
    /// Arm registry history of the pairs it names: (ts, active), sorted.
    registry: FxHashMap<(NameId, NameId), Vec<(i64, bool)>>,
    /// Pending keys with copies that tie on `ts` but name another (entity, arm): the
    /// other pairs. Rare; settled by name at resolution, when every name has arrived.
    ties: KeyMap<Vec<u32>>,
    /// Entity and arm names, for breaking ties the way docs/semantics.md orders them.
    names: FxHashMap<NameId, String>,
    /// Late assignments whose resolution waits for the tick they arrived at (so it never
    /// precedes their names): the tick. Rare; on time, the tick follows from `ts`.
    delayed: KeyMap<u64>,
    /// The `weights_version` of pending assignments that carry one (most carry none, and
    /// then cost nothing here).
    versions: KeyMap<u64>,
    /// Outcomes held in `outcomes`, kept up to date so the gauge costs nothing to read.
    buffered: usize,
    /// `holding[n]`: keys holding `n` outcomes (n >= 1; at most the cap), so the most held for
    /// one key is known without a scan.
    holding: Vec<usize>,
}

/// Why attribution refused a record on arrival.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum Refused {
    /// Its `ts` is so old that the window has moved past it (`too_old`).
    #[error("too_old")]
    TooOld,
    /// An assignment whose attribution interval closed before it arrived (`too_late`).
    #[error("too_late")]
    TooLate,
    /// An outcome for a tick already settled, with no assignment pending for it
    /// (`late_outcome`).
    #[error("late_outcome")]
    LateOutcome,
    /// An outcome past `max_outcomes_per_assignment` for its key.
    #[error("max_outcomes_per_assignment")]
    MaxOutcomesPerAssignment,
}

impl Refused {
    /// Every refusal, for checking that the reject schema names them all.
    pub const ALL: [Refused; 4] = [Refused::TooOld, Refused::TooLate, Refused::LateOutcome, Refused::MaxOutcomesPerAssignment];

    /// The reason, as the dead-letter output and the counters say it.
    pub fn reason(self) -> &'static str {
        match self {
            Refused::TooOld => "too_old",
            Refused::TooLate => "too_late",
            Refused::LateOutcome => "late_outcome",
            Refused::MaxOutcomesPerAssignment => "max_outcomes_per_assignment",
        }
    }
}

impl Attribution {
    /// Empty state under `rules`; ticks before `start` count as complete.
    pub fn new(rules: AttributionRules, start: u64) -> Self {
        Attribution {
            rules,
            settled: start,
            pending: KeyMap::default(),
            resolve_at: BTreeMap::new(),
            outcomes: KeyMap::default(),
            expire_at: BTreeMap::new(),
            pairs: Vec::new(),
            pair_index: FxHashMap::default(),
            pair_refs: Vec::new(),
            free_pairs: Vec::new(),
            registry: FxHashMap::default(),
            ties: KeyMap::default(),
            names: FxHashMap::default(),
            delayed: KeyMap::default(),
            versions: KeyMap::default(),
            buffered: 0,
            holding: Vec::new(),
        }
    }

    /// A key's outcomes went from `before` to `after` held.
    fn holds(&mut self, before: usize, after: usize) {
        if before == after {
            return;
        }
        if before > 0 {
            self.holding[before] -= 1;
        }
        if after > 0 {
            if self.holding.len() <= after {
                self.holding.resize(after + 1, 0);
            }
            self.holding[after] += 1;
        }
        while self.holding.last() == Some(&0) {
            self.holding.pop();
        }
    }

    /// The most outcomes held for one key.
    pub fn most_outcomes_held(&self) -> usize {
        self.holding.len().saturating_sub(1)
    }

    /// The state as of now, portable (sorted, so the same state encodes the same bytes).
    pub fn snapshot(&self) -> AttributionState {
        let pair = |i: &u32| self.pairs[*i as usize];
        let mut state = AttributionState {
            settled: self.settled,
            pending: self.pending.iter().map(|(k, p)| {
                let (entity, arm) = pair(&p.pair());
                (*k, p.ts(), entity, arm)
            }).collect(),
            ties: self.ties.iter().map(|(k, others)| (*k, others.iter().map(pair).collect())).collect(),
            delayed: self.delayed.iter().map(|(k, t)| (*k, *t)).collect(),
            versions: self.versions.iter().map(|(k, v)| (*k, *v)).collect(),
            outcomes: self.outcomes.iter().map(|(k, times)| (*k, times.clone())).collect(),
            registry: self.registry.iter().map(|(pair, history)| (*pair, history.clone())).collect(),
            names: self.names.iter().map(|(id, text)| (*id, text.clone())).collect(),
        };
        state.pending.sort_unstable();
        state.ties.sort_unstable();
        state.delayed.sort_unstable();
        state.versions.sort_unstable();
        state.outcomes.sort_unstable();
        state.registry.sort_unstable();
        state.names.sort_unstable();
        state
    }

    /// State restored from checkpointed parts, keeping the keys `owns` says are this
    /// worker's (every registry change and name is kept: every worker sees them all).
    pub fn restore<'a>(rules: AttributionRules, parts: impl IntoIterator<Item = &'a AttributionState>, owns: impl Fn(&AssignmentKey) -> bool) -> Self {
        let parts: Vec<&AttributionState> = parts.into_iter().collect();
        let settled = parts.iter().map(|p| p.settled).max().unwrap_or(0);
        let mut state = Attribution::new(rules, settled);
        for part in &parts {
            for (id, text) in &part.names {
                state.names.insert(*id, text.clone());
            }
            for (pair, history) in &part.registry {
                let merged = state.registry.entry(*pair).or_default();
                for change in history {
                    if !merged.contains(change) {
                        merged.push(*change);
                    }
                }
                merged.sort_unstable();
            }
        }
        for part in &parts {
            for &(key, at) in part.delayed.iter().filter(|(k, _)| owns(k)) {
                state.delayed.insert(key, at);
            }
            for &(key, version) in part.versions.iter().filter(|(k, _)| owns(k)) {
                state.versions.insert(key, version);
            }
            for &(key, ts, entity, arm) in part.pending.iter().filter(|(k, ..)| owns(k)) {
                // Within the pair cap: the checkpoint was written under the same cap.
                let Some(pair) = state.intern(entity, arm) else { continue };
                state.acquire(pair);
                state.pending.insert(key, Pending::new(ts, pair));
                let at = state.delayed.get(&key).copied().unwrap_or_else(|| rules.ticks.settle_tick(ts, rules.attribution_ms));
                state.resolve_at.entry(at).or_default().push(key);
            }
            for (key, others) in part.ties.iter().filter(|(k, _)| owns(k)) {
                let mut indexes = Vec::new();
                for &(entity, arm) in others {
                    if let Some(pair) = state.intern(entity, arm) {
                        state.acquire(pair);
                        indexes.push(pair);
                    }
                }
                state.ties.insert(*key, indexes);
            }
            for (key, times) in part.outcomes.iter().filter(|(k, _)| owns(k)) {
                for ts in times {
                    state.expire_at.entry(rules.ticks.tick_of(*ts)).or_default().push(*key);
                }
                state.buffered += times.len();
                let held = state.outcomes.entry(*key).or_default();
                let before = held.len();
                held.extend(times.iter().copied());
                let after = held.len();
                state.holds(before, after);
            }
        }
        for keys in state.resolve_at.values_mut().chain(state.expire_at.values_mut()) {
            keys.sort_unstable();
            keys.dedup();
        }
        state
    }

    /// The rules it runs by.
    pub fn rules(&self) -> AttributionRules {
        self.rules
    }

    /// Every tick before this one is settled.
    pub fn settled(&self) -> u64 {
        self.settled
    }

    /// Assignments held until they resolve.
    pub fn pending_assignments(&self) -> usize {
        self.pending.len()
    }

    /// Outcomes held (waiting for an assignment, or for their assignment to resolve).
    pub fn buffered_outcomes(&self) -> usize {
        self.buffered
    }

    fn intern(&mut self, entity: NameId, arm: NameId) -> Option<u32> {
        if let Some(i) = self.pair_index.get(&(entity, arm)) {
            return Some(*i);
        }
        let i = match self.free_pairs.pop() {
            Some(i) => {
                self.pairs[i as usize] = (entity, arm);
                i
            }
            None if self.pairs.len() >= MAX_PAIRS => return None,
            None => {
                self.pairs.push((entity, arm));
                self.pair_refs.push(0);
                (self.pairs.len() - 1) as u32
            }
        };
        self.pair_index.insert((entity, arm), i);
        Some(i)
    }

    fn acquire(&mut self, pair: u32) {
        self.pair_refs[pair as usize] += 1;
    }

    fn release(&mut self, pair: u32) {
        self.pair_refs[pair as usize] -= 1;
        self.release_if_unused(pair);
    }

    /// Frees `pair` for reuse if nothing uses it (and it is not free already).
    fn release_if_unused(&mut self, pair: u32) {
        let names = self.pairs[pair as usize];
        if self.pair_refs[pair as usize] == 0 && self.pair_index.get(&names) == Some(&pair) {
            self.pair_index.remove(&names);
            self.free_pairs.push(pair);
        }
    }

    /// Distinct (entity, arm) pairs in use by pending assignments.
    pub fn pairs_in_use(&self) -> usize {
        self.pair_index.len()
    }

    /// Learns a name (from the catalog).
    pub fn name(&mut self, name: Name) {
        self.names.insert(name.id, name.text);
    }

    /// Forgets what admission forgot: names and the arm registry history of pairs. (A
    /// forgotten pair has nothing pending: admission forgets it only well after that.)
    pub fn forget(&mut self, forgotten: &Forgotten) {
        for id in forgotten.entities.iter().chain(&forgotten.arms) {
            self.names.remove(id);
        }
        for pair in &forgotten.pairs {
            self.registry.remove(pair);
        }
        shrink_map(&mut self.names);
        shrink_map(&mut self.registry);
        shrink_map(&mut self.pair_index);
    }

    /// Names held (for tests of forgetting).
    pub fn names_held(&self) -> usize {
        self.names.len()
    }

    /// Of several copies with the same `ts`, the pair with the smallest (entity_id, arm_id).
    fn first_by_name(&self, held: u32, others: &[u32]) -> u32 {
        let order = |pair: &u32| {
            let (entity, arm) = self.pairs[*pair as usize];
            let name = |id: NameId| self.names.get(&id).map(String::as_str);
            (name(entity), name(arm), entity, arm)
        };
        others.iter().copied().chain([held]).min_by(|a, b| order(a).cmp(&order(b))).unwrap_or(held)
    }

    /// Records an arm registry change; it decides whether assignments resolving after it
    /// still count.
    pub fn register(&mut self, r: &Registration) {
        let history = self.registry.entry((r.entity, r.arm)).or_default();
        history.push((r.ts, r.active));
        history.sort_unstable();
    }

    /// Whether `r` declares active again an arm that is retired just before it: a
    /// reactivation (a retrained model).
    pub fn reactivates(&self, r: &Registration) -> bool {
        r.active && self.registry.get(&(r.entity, r.arm)).and_then(|h| h.iter().rev().find(|(at, _)| *at <= r.ts)).is_some_and(|(_, active)| !active)
    }

    /// Whether the arm was retired at `ts` (its latest registry change at or before `ts`).
    fn retired(&self, entity: NameId, arm: NameId, ts: i64) -> bool {
        self.registry
            .get(&(entity, arm))
            .and_then(|h| h.iter().rev().find(|(at, _)| *at <= ts))
            .is_some_and(|(_, active)| !active)
    }

    /// Applies one assignment (docs/semantics.md: late, too_late, too_old, duplicates, conflicts)
    /// that arrived at tick `arrival`.
    ///
    /// Returns why it was refused, if it was (counted already); duplicates and conflicts are
    /// not refusals (docs/semantics.md), nor is the worker's table of pairs being full.
    pub fn assignment(&mut self, a: Assignment, arrival: u64, counters: &mut Counters) -> Option<Refused> {
        let rules = self.rules;
        if rules.ticks.settle_tick(a.ts, rules.window_ms) < self.settled {
            counters.too_old += 1;
            return Some(Refused::TooOld);
        }
        let resolves = rules.ticks.settle_tick(a.ts, rules.attribution_ms);
        if resolves < self.settled {
            counters.too_late += 1;
            return Some(Refused::TooLate);
        }
        if !(0..1 << TS_BITS).contains(&a.ts) {
            counters.malformed("ts_out_of_range");
            return None;
        }
        let late = rules.ticks.tick_of(a.ts) < self.settled;
        let Some(pair) = self.intern(a.entity, a.arm) else {
            counters.malformed("too_many_arms");
            return None;
        };
        let held = match self.pending.entry(a.key) {
            Entry::Vacant(slot) => {
                slot.insert(Pending::new(a.ts, pair));
                None
            }
            Entry::Occupied(slot) => Some(*slot.get()),
        };
        match held {
            None => {
                self.acquire(pair);
                if a.weights_version != 0 {
                    self.versions.insert(a.key, a.weights_version);
                }
                if late {
                    counters.late += 1;
                }
                counters.assignments_applied += 1;
                let at = self.resolution(a.key, resolves, arrival);
                self.resolve_at.entry(at).or_default().push(a.key);
            }
            Some(held) if self.pairs[held.pair() as usize] == (a.entity, a.arm) && held.ts() == a.ts => {
                counters.duplicate += 1;
            }
            Some(held) => {
                counters.conflict += 1;
                // The smallest (ts, entity_id, arm_id) wins whatever the arrival order; names
                // may not have arrived yet, so equal times are settled at resolution.
                if a.ts < held.ts() {
                    self.pending.insert(a.key, Pending::new(a.ts, pair));
                    // The copy that now holds the key says which record it was served under.
                    if a.weights_version != 0 {
                        self.versions.insert(a.key, a.weights_version);
                    } else if !self.versions.is_empty() {
                        self.versions.remove(&a.key);
                    }
                    self.acquire(pair);
                    self.release(held.pair());
                    let at = self.resolution(a.key, resolves, arrival);
                    self.resolve_at.entry(at).or_default().push(a.key);
                    for other in self.ties.remove(&a.key).unwrap_or_default() {
                        self.release(other);
                    }
                } else if a.ts == held.ts() {
                    let others = self.ties.entry(a.key).or_default();
                    if !others.contains(&pair) && pair != held.pair() {
                        others.push(pair);
                        self.acquire(pair);
                    }
                }
            }
        }
        self.release_if_unused(pair);
        None
    }

    /// The tick `key` resolves at: `resolves`, or its arrival tick if that is later.
    fn resolution(&mut self, key: AssignmentKey, resolves: u64, arrival: u64) -> u64 {
        if arrival > resolves {
            self.delayed.insert(key, arrival);
            arrival
        } else {
            if !self.delayed.is_empty() {
                self.delayed.remove(&key);
            }
            resolves
        }
    }

    /// Applies one outcome of a counted kind.
    ///
    /// Returns why it was refused, if it was (counted already).
    pub fn outcome(&mut self, o: Outcome, counters: &mut Counters) -> Option<Refused> {
        let rules = self.rules;
        if rules.ticks.settle_tick(o.ts, rules.window_ms) < self.settled {
            counters.too_old += 1;
            return Some(Refused::TooOld);
        }
        let tick = rules.ticks.tick_of(o.ts);
        let late = tick < self.settled;
        if !self.pending.contains_key(&o.key) && late {
            counters.late_outcome += 1;
            return Some(Refused::LateOutcome);
        }
        let held = self.outcomes.entry(o.key).or_default();
        // (The cap is at least 1, so a key refused here holds outcomes: no empty entry stays.)
        if held.len() >= rules.max_outcomes_per_assignment {
            let reason = Refused::MaxOutcomesPerAssignment;
            counters.malformed(reason.reason());
            return Some(reason);
        }
        if late {
            counters.late += 1;
        }
        held.push(o.ts);
        let after = held.len();
        self.holds(after - 1, after);
        self.buffered += 1;
        self.expire_at.entry(tick).or_default().push(o.key);
        None
    }

    /// Completes every tick before `frontier`: resolves the assignments due and drops the
    /// outcomes nobody claimed. Resolved facts are appended to `resolved`.
    pub fn settle(&mut self, frontier: u64, counters: &mut Counters, resolved: &mut Vec<Resolved>) {
        self.settle_each(frontier, counters, |_, _, fact| resolved.push(fact));
    }

    /// [`Attribution::settle`], handing each resolved fact to `each` with the key and `ts`
    /// of the assignment it came from (what `banditflow export` writes a row for).
    pub fn settle_each(&mut self, frontier: u64, counters: &mut Counters, mut each: impl FnMut(AssignmentKey, i64, Resolved)) {
        if frontier <= self.settled {
            return;
        }
        let rules = self.rules;
        while let Some(entry) = self.resolve_at.first_entry() {
            if *entry.key() >= frontier {
                break;
            }
            let (tick, keys) = entry.remove_entry();
            for key in keys {
                let Some(held) = self.pending.remove(&key) else { continue };
                // A conflict may have moved this key to another tick: this entry is stale.
                let due = if self.delayed.is_empty() { None } else { self.delayed.get(&key).copied() };
                if due.unwrap_or_else(|| rules.ticks.settle_tick(held.ts(), rules.attribution_ms)) != tick {
                    self.pending.insert(key, held);
                    continue;
                }
                if due.is_some() {
                    self.delayed.remove(&key);
                }
                let version = if self.versions.is_empty() { 0 } else { self.versions.remove(&key).unwrap_or(0) };
                let served = Served { version, tick: rules.ticks.tick_of(held.ts()) };
                let mut success = false;
                if let Some(times) = self.outcomes.get_mut(&key) {
                    let before = times.len();
                    let until = held.ts().saturating_add(rules.attribution_ms as i64);
                    // Outcomes of later ticks stay for their own expiry: whether they arrived
                    // before this resolution depends on timing, so they are not judged here.
                    times.retain(|ts| {
                        if rules.ticks.tick_of(*ts) > tick {
                            return true;
                        }
                        if held.ts() <= *ts && *ts <= until {
                            success = true;
                            counters.outcomes_applied += 1;
                        } else {
                            counters.outside_attribution += 1;
                        }
                        false
                    });
                    let after = times.len();
                    self.buffered -= before - after;
                    if after == 0 {
                        self.outcomes.remove(&key);
                    }
                    self.holds(before, after);
                }
                let tied = if self.ties.is_empty() { None } else { self.ties.remove(&key) };
                let pair = match &tied {
                    Some(others) => self.first_by_name(held.pair(), others),
                    None => held.pair(),
                };
                let (entity, arm) = self.pairs[pair as usize];
                for other in tied.into_iter().flatten().chain([held.pair()]) {
                    self.release(other);
                }
                // Judged at resolution, when every registry change up to it has arrived.
                if self.retired(entity, arm, held.ts()) {
                    counters.retired_arm += 1;
                    continue;
                }
                let leave = rules.ticks.settle_tick(held.ts(), rules.window_ms);
                each(key, held.ts(), Resolved { entity, arm, enter: tick, leave, success, served });
            }
        }
        while let Some(entry) = self.expire_at.first_entry() {
            if *entry.key() >= frontier {
                break;
            }
            let (tick, keys) = entry.remove_entry();
            for key in keys {
                if self.pending.contains_key(&key) {
                    continue;
                }
                if let Some(times) = self.outcomes.get_mut(&key) {
                    let before = times.len();
                    times.retain(|ts| rules.ticks.tick_of(*ts) > tick);
                    let after = times.len();
                    counters.unmatched_outcome += (before - after) as u64;
                    self.buffered -= before - after;
                    if after == 0 {
                        self.outcomes.remove(&key);
                    }
                    self.holds(before, after);
                }
            }
        }
        self.settled = frontier;
        // A burst of traffic leaves these tables at its peak once it has resolved.
        shrink_map(&mut self.pending);
        shrink_map(&mut self.outcomes);
        shrink_map(&mut self.versions);
        shrink_map(&mut self.delayed);
        shrink_map(&mut self.ties);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: u64 = 1_000;

    fn rules() -> AttributionRules {
        AttributionRules { ticks: Ticks::new(TICK), attribution_ms: 3_000, window_ms: 10_000, max_outcomes_per_assignment: 100, reset_on_reactivate: false }
    }

    fn assignment(id: &str, arm: u64, ts: i64) -> Assignment {
        Assignment { key: AssignmentKey::of(id), entity: 1, arm, ts, weights_version: 0 }
    }

    fn outcome(id: &str, ts: i64) -> Outcome {
        Outcome { key: AssignmentKey::of(id), ts }
    }

    #[test]
    fn outcome_at_the_inclusive_end_of_the_interval_is_a_success() {
        let mut s = Attribution::new(rules(), 0);
        let mut c = Counters::default();
        let mut out = Vec::new();
        s.assignment(assignment("a", 7, 1_500), 0, &mut c);
        s.outcome(outcome("a", 4_500), &mut c);
        s.settle(4, &mut c, &mut out);
        assert!(out.is_empty(), "resolution time 4_500 is in tick 4, not yet complete");
        s.settle(5, &mut c, &mut out);
        assert_eq!(out, vec![Resolved { entity: 1, arm: 7, enter: 4, leave: 11, success: true, served: out[0].served }]);
        assert_eq!(c.outcomes_applied, 1);
        assert_eq!(s.pending_assignments(), 0);
    }

    #[test]
    fn outcomes_past_the_cap_for_one_key_are_refused_and_the_most_held_is_known() {
        let mut s = Attribution::new(AttributionRules { max_outcomes_per_assignment: 2, ..rules() }, 0);
        let mut c = Counters::default();
        let mut out = Vec::new();
        assert_eq!(s.assignment(assignment("a", 7, 1_000), 0, &mut c), None);
        assert_eq!(s.outcome(outcome("a", 1_100), &mut c), None);
        assert_eq!(s.outcome(outcome("b", 1_100), &mut c), None);
        assert_eq!(s.most_outcomes_held(), 1);
        assert_eq!(s.outcome(outcome("a", 1_200), &mut c), None);
        assert_eq!(s.most_outcomes_held(), 2);
        assert_eq!(s.outcome(outcome("a", 1_300), &mut c), Some(Refused::MaxOutcomesPerAssignment));
        assert_eq!(c.malformed.get("max_outcomes_per_assignment"), Some(&1));
        // The refused one is not held; another key has room still.
        assert_eq!(s.buffered_outcomes(), 3);
        assert_eq!(s.outcome(outcome("b", 1_300), &mut c), None);
        // Once "a" resolves and "b" expires unclaimed, nothing is held.
        s.settle(10, &mut c, &mut out);
        assert!(out[0].success);
        assert_eq!((s.buffered_outcomes(), s.most_outcomes_held()), (0, 0));
        // With room again, "a"'s key takes outcomes (for a new copy of it).
        assert_eq!(s.outcome(outcome("a", 10_500), &mut c), None);
        assert_eq!(s.most_outcomes_held(), 1);
    }

    #[test]
    fn records_refused_on_arrival_say_why() {
        let mut s = Attribution::new(rules(), 0);
        let mut c = Counters::default();
        s.settle(20, &mut c, &mut Vec::new());
        // Window 10 s: a `ts` of 5 s left it at tick 15.
        assert_eq!(s.assignment(assignment("old", 7, 5_000), 20, &mut c), Some(Refused::TooOld));
        assert_eq!(s.outcome(outcome("old", 5_000), &mut c), Some(Refused::TooOld));
        // Attribution 3 s: at 15 s its interval closed at tick 18.
        assert_eq!(s.assignment(assignment("late", 7, 15_000), 20, &mut c), Some(Refused::TooLate));
        assert_eq!(s.outcome(outcome("nobody", 15_000), &mut c), Some(Refused::LateOutcome));
        assert_eq!((c.too_old, c.too_late, c.late_outcome), (2, 1, 1));
        // On time: taken.
        assert_eq!(s.assignment(assignment("now", 7, 20_000), 20, &mut c), None);
        assert_eq!(Refused::ALL.map(Refused::reason), ["too_old", "too_late", "late_outcome", "max_outcomes_per_assignment"]);
    }

    #[test]
    fn outcome_before_its_assignment_still_joins() {
        let mut s = Attribution::new(rules(), 0);
        let mut c = Counters::default();
        let mut out = Vec::new();
        s.outcome(outcome("a", 2_000), &mut c);
        s.assignment(assignment("a", 7, 2_000), 0, &mut c);
        s.settle(10, &mut c, &mut out);
        assert!(out[0].success);
        assert_eq!(c.unmatched_outcome, 0);
    }

    #[test]
    fn outcome_outside_the_interval_is_counted_not_applied() {
        let mut s = Attribution::new(rules(), 0);
        let mut c = Counters::default();
        let mut out = Vec::new();
        s.assignment(assignment("a", 7, 2_000), 0, &mut c);
        s.outcome(outcome("a", 1_999), &mut c);
        s.outcome(outcome("a", 5_001), &mut c);
        s.settle(10, &mut c, &mut out);
        assert!(!out[0].success);
        assert_eq!(c.outside_attribution, 2);
    }

    #[test]
    fn unclaimed_outcome_is_dropped_once_the_frontier_passes_it() {
        let mut s = Attribution::new(rules(), 0);
        let mut c = Counters::default();
        let mut out = Vec::new();
        s.outcome(outcome("a", 2_000), &mut c);
        s.settle(2, &mut c, &mut out);
        assert_eq!(s.buffered_outcomes(), 1);
        s.settle(3, &mut c, &mut out);
        assert_eq!(s.buffered_outcomes(), 0);
        assert_eq!(c.unmatched_outcome, 1);
        // The assignment now arrives late, still pending-able, but its outcome is gone.
        s.assignment(assignment("a", 7, 2_000), 0, &mut c);
        s.settle(10, &mut c, &mut out);
        assert_eq!((c.late, out[0].success), (1, false));
    }

    #[test]
    fn late_assignment_after_its_resolution_is_too_late_and_duplicates_count_once() {
        let mut s = Attribution::new(rules(), 0);
        let mut c = Counters::default();
        let mut out = Vec::new();
        s.assignment(assignment("a", 7, 1_000), 0, &mut c);
        s.assignment(assignment("a", 7, 1_000), 0, &mut c);
        s.settle(5, &mut c, &mut out);
        s.assignment(assignment("a", 7, 1_000), 0, &mut c);
        assert_eq!((out.len(), c.duplicate, c.too_late), (1, 1, 1));
    }

    #[test]
    fn conflicting_copies_resolve_to_the_smallest_whatever_the_order() {
        for order in [[0, 1], [1, 0]] {
            let copies = [assignment("a", 9, 2_000), assignment("a", 7, 1_000)];
            let mut s = Attribution::new(rules(), 0);
            let mut c = Counters::default();
            let mut out = Vec::new();
            for i in order {
                s.assignment(copies[i], 0, &mut c);
            }
            s.outcome(outcome("a", 4_500), &mut c);
            s.settle(20, &mut c, &mut out);
            assert_eq!(out, vec![Resolved { entity: 1, arm: 7, enter: 4, leave: 11, success: false, served: out[0].served }]);
            assert_eq!(c.conflict, 1);
        }
    }

    #[test]
    fn assignment_to_a_retired_arm_is_counted_not_applied() {
        let mut s = Attribution::new(rules(), 0);
        let mut c = Counters::default();
        let mut out = Vec::new();
        let retire = Registration { entity: 1, arm: 7, active: false, ts: 2_000, metadata: None, initial_weight: None };
        s.register(&retire);
        s.assignment(assignment("before", 7, 1_999), 0, &mut c);
        s.assignment(assignment("after", 7, 2_000), 0, &mut c);
        s.register(&Registration { active: true, ts: 3_000, ..retire });
        s.assignment(assignment("back", 7, 3_500), 0, &mut c);
        s.settle(20, &mut c, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(c.retired_arm, 1);
    }

    #[test]
    fn copies_at_the_same_time_resolve_to_the_smallest_names_whatever_the_order() {
        for order in [[0, 1], [1, 0]] {
            // Arm 9 is named "a", arm 7 "b": by name, arm 9 wins although its id is larger.
            let copies = [assignment("k", 9, 1_000), assignment("k", 7, 1_000)];
            let mut s = Attribution::new(rules(), 0);
            let mut c = Counters::default();
            let mut out = Vec::new();
            for i in order {
                s.assignment(copies[i], 0, &mut c);
            }
            for (id, text) in [(1, "e"), (9, "a"), (7, "b")] {
                s.name(Name { id, text: text.into() });
            }
            s.settle(20, &mut c, &mut out);
            assert_eq!(out.iter().map(|r| r.arm).collect::<Vec<_>>(), vec![9]);
        }
    }

    #[test]
    fn late_assignment_resolves_no_earlier_than_it_arrived() {
        let mut s = Attribution::new(rules(), 5);
        let mut c = Counters::default();
        let mut out = Vec::new();
        // ts 3_000 resolves naturally at tick 6; it arrived at tick 8 (late, still pending).
        s.assignment(assignment("a", 7, 3_000), 8, &mut c);
        s.settle(8, &mut c, &mut out);
        assert!(out.is_empty());
        s.settle(9, &mut c, &mut out);
        assert_eq!(out, vec![Resolved { entity: 1, arm: 7, enter: 8, leave: 13, success: false, served: out[0].served }]);
        assert_eq!((c.late, s.pending_assignments()), (1, 0));
    }

    #[test]
    fn pairs_are_recycled_once_nothing_pending_uses_them() {
        let mut s = Attribution::new(rules(), 0);
        let mut c = Counters::default();
        let mut out = Vec::new();
        for arm in 0..50 {
            s.assignment(assignment(&format!("x{arm}"), arm, 1_000), 0, &mut c);
        }
        s.assignment(assignment("x0", 99, 1_000), 0, &mut c); // a tie holds pair 99 too
        s.assignment(assignment("x1", 1, 1_000), 0, &mut c); // a duplicate holds nothing new
        assert_eq!(s.pairs_in_use(), 51);
        s.settle(20, &mut c, &mut out);
        assert_eq!((out.len(), s.pairs_in_use()), (50, 0));
        // Freed indexes are reused, and still name the right pair.
        s.assignment(assignment("y", 7, 30_000), 0, &mut c);
        s.settle(40, &mut c, &mut out);
        assert_eq!(out.last().map(|r| (r.entity, r.arm)), Some((1, 7)));
        assert!(s.pairs.len() <= 51);
    }

    #[test]
    fn the_buffered_gauge_counts_exactly_the_outcomes_held() {
        let mut s = Attribution::new(rules(), 0);
        let mut c = Counters::default();
        let mut out = Vec::new();
        let held = |s: &Attribution| s.outcomes.values().map(Vec::len).sum::<usize>();
        s.assignment(assignment("a", 7, 1_000), 0, &mut c);
        for (id, ts) in [("a", 2_000), ("a", 9_000), ("a", 500), ("b", 1_500), ("b", 1_600)] {
            s.outcome(outcome(id, ts), &mut c);
            assert_eq!(s.buffered_outcomes(), held(&s));
        }
        for frontier in [1, 2, 4, 5, 9, 10, 20] {
            s.settle(frontier, &mut c, &mut out);
            assert_eq!(s.buffered_outcomes(), held(&s), "after settling to {frontier}");
        }
        assert_eq!((s.buffered_outcomes(), c.outcomes_applied, c.outside_attribution, c.unmatched_outcome), (0, 1, 1, 3));
    }

    #[test]
    fn a_restored_snapshot_carries_on_exactly_like_the_original_on_any_worker_count() {
        let mut original = Attribution::new(rules(), 0);
        let (mut c, mut out) = (Counters::default(), Vec::new());
        let reg = Registration { entity: 1, arm: 5, active: false, ts: 1_500, metadata: None, initial_weight: None };
        original.register(&reg);
        original.name(Name { id: 7, text: "b".into() });
        original.name(Name { id: 9, text: "a".into() });
        for i in 0..40u64 {
            let ts = 1_000 + (i as i64 * 137) % 4_000;
            original.assignment(assignment(&format!("k{i}"), [5, 7, 9][(i % 3) as usize], ts), 0, &mut c);
            if i % 4 == 0 {
                original.outcome(outcome(&format!("k{i}"), ts + 1_000), &mut c);
            }
        }
        original.assignment(assignment("k1", 9, 1_137), 0, &mut c); // a tie on ts with another arm
        original.outcome(outcome("nobody", 4_200), &mut c);
        original.settle(4, &mut c, &mut out);
        let snapshot = original.snapshot();
        let mut restored = Attribution::restore(rules(), [&snapshot], |_| true);
        assert_eq!(restored.snapshot(), snapshot);
        let owners = |w: u64| move |k: &AssignmentKey| k.route() % 2 == w;
        let mut halves = [Attribution::restore(rules(), [&snapshot], owners(0)), Attribution::restore(rules(), [&snapshot], owners(1))];
        let later = |s: &mut Attribution, c: &mut Counters, out: &mut Vec<Resolved>| {
            for i in 40..60u64 {
                s.assignment(assignment(&format!("k{i}"), 7, 4_000 + i as i64 * 10), 4, c);
            }
            s.outcome(outcome("k4", 2_500), c);
            s.settle(30, c, out);
        };
        let (mut expected, mut got) = (Vec::new(), Vec::new());
        later(&mut original, &mut c, &mut expected);
        later(&mut restored, &mut Counters::default(), &mut got);
        expected.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, expected);
        // Split in two by key, fed only their own keys: together the same facts.
        let mut split = Vec::new();
        for (w, half) in halves.iter_mut().enumerate() {
            let mut c = Counters::default();
            for i in 40..60u64 {
                let a = assignment(&format!("k{i}"), 7, 4_000 + i as i64 * 10);
                if a.key.route() % 2 == w as u64 {
                    half.assignment(a, 4, &mut c);
                }
            }
            if AssignmentKey::of("k4").route() % 2 == w as u64 {
                half.outcome(outcome("k4", 2_500), &mut c);
            }
            half.settle(30, &mut c, &mut split);
        }
        split.sort_unstable();
        assert_eq!(split, expected);
    }

    #[test]
    fn record_older_than_the_window_is_too_old() {
        let mut s = Attribution::new(rules(), 20);
        let mut c = Counters::default();
        s.assignment(assignment("a", 7, 5_000), 0, &mut c);
        s.outcome(outcome("b", 5_000), &mut c);
        assert_eq!(c.too_old, 2);
    }
}
