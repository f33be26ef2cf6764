//! The admission operator: between the sources and the rest of the dataflow, it keeps the
//! caps `max_entities` and `max_arms_per_entity` and decides when names are forgotten.
//!
//! Every worker runs the same [`Admission`] replica. A source lets a record through at once
//! when the replica already admits its (entity, arm) pair for the record's tick; any other
//! assignment, and every arm registry record, it holds with its raw bytes and where it came
//! from ([`Held`]). Every record of a pair is *sighted* (one sighting per pair and tick and
//! batch), and the sightings are broadcast. Once a tick is complete at every worker, each
//! replica decides it from the same sightings ([`Admission::decide`]), so every worker count
//! decides alike; each worker then lets its held records of admitted pairs through (the
//! pair's names first) and hands the others to the refusal sink with the cap's reason.
//! Worker 0 announces what was forgotten ([`Catalog::Forget`]).
//!
//! Ticks are decided where something was sighted and where the replica has something due,
//! never by how far the frontier happened to move: the same ticks on every worker.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;

use banditflow_core::admission::{Admission, AdmissionState, Caps, Refusal, Sighting};
use banditflow_core::config::Dataflow;
use banditflow_core::counters::Counters;
use banditflow_core::event::{arm_id_of, entity_id_of, Catalog, Event, Forgotten, NameId};
use banditflow_core::pending_cap::PendingCap;
use banditflow_core::sparse::shrink_set;
use banditflow_core::time::Ticks;
use banditflow_core::wire::{names_of, Decoded};
use rustc_hash::{FxHashMap, FxHashSet};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::Stream;

use super::frontier::first_open_tick;
use crate::checkpoint::Collector;

/// Where a held record came from, for the refusal sink.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Origin {
    /// A line of a replay input (1-based, blank lines counted).
    Line {
        /// The input as the user named it.
        input: Arc<str>,
        /// Its line number.
        line: u64,
    },
    /// A Kafka message.
    Message {
        /// The topic it was read from.
        topic: Arc<str>,
        /// Its partition.
        partition: i32,
        /// Its offset.
        offset: i64,
        /// Its key, unchanged.
        key: Option<Vec<u8>>,
    },
}

/// A record's bytes as read, and where from: kept while it waits for admission, or while
/// attribution may still refuse it ([`at_risk`]), so that a refusal goes to the dead-letter
/// output unchanged.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Held {
    /// The record as read.
    pub raw: Vec<u8>,
    /// Where it was read.
    pub origin: Origin,
    /// The worker that read it: its refusal is sent from there.
    pub worker: u32,
}

/// A decoded record from a source: let through at once, or held for admission (`waits`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sourced {
    /// The record.
    pub decoded: Decoded,
    /// Its bytes and origin: kept when it waits, or when attribution may refuse it.
    pub held: Option<Box<Held>>,
    /// Whether it waits for its tick's admission decision (then `held` is kept).
    pub waits: bool,
}

/// An event on its way to attribution, with its bytes when attribution may refuse it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Arrival {
    /// The assignment or outcome.
    pub event: Event,
    /// Its bytes and origin, for the dead-letter output; `None` when it cannot be refused.
    pub raw: Option<Box<Held>>,
}

/// Where a worker sends the records the dataflow refuses, with their reason: replay's
/// `--rejects` file or the live worker's dead-letter topic.
pub type Refuse = Rc<dyn Fn(&'static str, Held)>;

/// Whether attribution may refuse `decoded` arriving at `tick` (docs/semantics.md,
/// "Attribution"): every outcome may be past `max_outcomes_per_assignment` for its key, and
/// an assignment behind its source's time may be too old or too late. An assignment on time
/// never is: attribution has settled nothing past its own tick yet.
pub fn at_risk(decoded: &Decoded, tick: u64, ticks: Ticks) -> bool {
    match decoded {
        Decoded::Event(Event::Outcome(_)) => true,
        Decoded::Event(Event::Assignment(a)) => ticks.tick_of(a.ts) < tick,
        Decoded::Catalog(_) => false,
    }
}

/// One worker's admission replica, shared by its sources (which ask it what they may let
/// through) and its admission operator (which decides).
pub type Replica = Rc<RefCell<Admission>>;

/// How many ticks after its last sighting a pair can be forgotten: by then its assignments
/// have resolved and left the window (the attribution interval or the window, whichever is
/// longer, plus the lateness), with a tick to spare at each end.
pub fn forget_span(job: &Dataflow) -> u64 {
    let held_ms = job.window_ms.max(job.attribution_ms).saturating_add(job.allowed_lateness_ms);
    held_ms.div_ceil(job.tick_ms.max(1)).saturating_add(2)
}

/// A worker's replica for `job`: its caps, its span, and its declared arms admitted for good;
/// resumed from a checkpoint, what the checkpoint's replica held as well.
pub fn replica(job: &Dataflow, restored: Option<&AdmissionState>) -> Replica {
    let caps = Caps { max_entities: job.limits.max_entities, max_arms_per_entity: job.limits.max_arms_per_entity, require_declared_arms: job.limits.require_declared_arms };
    let declared: Vec<(NameId, Vec<NameId>)> = job.arms.iter().map(|d| (entity_id_of(&d.entity_id), d.arm_ids.iter().map(|a| arm_id_of(a)).collect())).collect();
    let admission = match restored {
        Some(state) => Admission::restore(caps, forget_span(job), &declared, state),
        None => Admission::new(caps, forget_span(job), &declared),
    };
    Rc::new(RefCell::new(admission))
}

/// What a source does with a decoded record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screened {
    /// Lets it through: its pair is admitted whatever the ticks before it decide.
    Pass,
    /// Holds it for the decision of its tick.
    Hold,
    /// Refuses it now: its tick's decision is sure to refuse it, for this reason.
    Refuse(Refusal),
}

/// A source's screen in front of admission. Besides letting admitted pairs through, it
/// refuses at once what its tick's decision is sure to refuse, so that a flood of new ids is
/// not held until its tick completes (which would make memory grow with the flood).
///
/// Sure only when nothing can be forgotten before the record's tick (else room could open):
/// - when the replica is full (no room for another entity, or another arm of a held
///   entity), nothing new is admitted before the tick either, so a new id is refused;
/// - [`Admission::decide`] admits a tick's new ids in id order while there is room, so a
///   new id with at least as many smaller new ids sighted here at the same tick as there is
///   room now is refused everywhere. "New" must be new at the tick itself: so this holds
///   when every tick before it is decided, or, with one worker, when the id is not among
///   those this source is holding for an earlier tick. Per tick it keeps only that many ids.
///
/// With a [`PendingCap`] it also keeps the source's share of `max_pending_assignments`: an
/// assignment past it is refused before anything else is looked at (so it is never sighted).
#[derive(Debug)]
pub struct Screen {
    /// The source's share of `max_pending_assignments`, and the rules that say when an
    /// assignment's attribution interval closes.
    pending: Option<(PendingCap, Ticks, u64)>,
    /// Every worker sees its own share of the sightings; one worker sees them all.
    alone: bool,
    /// Per tick: the smallest new entity ids seen, at most the room there was.
    entities: BTreeMap<u64, (usize, BTreeSet<NameId>)>,
    /// Per tick and held entity: the smallest new arm ids seen, at most its room.
    arms: BTreeMap<u64, FxHashMap<NameId, (usize, BTreeSet<NameId>)>>,
    /// With one worker: per undecided tick, the entities and pairs held for it (they may be
    /// admitted before a later tick, so they are not new there).
    held: BTreeMap<u64, (FxHashSet<NameId>, FxHashSet<(NameId, NameId)>)>,
}

/// Whether `id` is among the `room` smallest of `smallest` (kept at most `room` long), and
/// takes its place there if so.
fn among_smallest(room: usize, smallest: &mut BTreeSet<NameId>, id: NameId) -> bool {
    if smallest.contains(&id) {
        return true;
    }
    if smallest.len() < room {
        smallest.insert(id);
        return true;
    }
    match smallest.last().copied() {
        Some(largest) if id < largest => {
            smallest.remove(&largest);
            smallest.insert(id);
            true
        }
        _ => false,
    }
}

impl Screen {
    /// A screen for a source of one of `peers` workers.
    pub fn new(peers: usize) -> Self {
        Screen { pending: None, alone: peers <= 1, entities: BTreeMap::new(), arms: BTreeMap::new(), held: BTreeMap::new() }
    }

    /// The screen of a source of one of `peers` workers of `job`, keeping its share of
    /// `max_pending_assignments` too.
    pub fn of(job: &Dataflow, peers: usize) -> Self {
        let pending = PendingCap::new(job.limits.max_pending_assignments, peers);
        Screen { pending: Some((pending, Ticks::new(job.tick_ms), job.attribution_ms)), ..Screen::new(peers) }
    }

    /// The source's time has reached `tick`: assignments whose attribution interval closed
    /// before it no longer count against the pending cap.
    pub fn advance(&mut self, tick: u64) {
        if let Some((cap, ..)) = &mut self.pending {
            cap.advance(tick);
        }
    }

    /// What to do with `decoded`, at `tick`, given the worker's `replica`.
    pub fn screen(&mut self, replica: &Admission, decoded: &Decoded, tick: u64) -> Screened {
        let assignment_ts = match decoded {
            Decoded::Event(Event::Assignment(a)) => Some(a.ts),
            _ => None,
        };
        if let (Some(_), Some((cap, ..))) = (assignment_ts, &self.pending) {
            if !cap.fits() {
                return Screened::Refuse(Refusal::MaxPendingAssignments);
            }
        }
        let screened = self.screen_pair(replica, decoded, tick);
        if let (Some(ts), Some((cap, ticks, attribution_ms)), false) = (assignment_ts, &mut self.pending, matches!(screened, Screened::Refuse(_))) {
            // Resolved at the close of its interval, or at its tick if that is later.
            cap.count(ticks.settle_tick(ts, *attribution_ms).max(tick));
        }
        screened
    }

    /// [`Screen::screen`] as far as the pair caps go.
    fn screen_pair(&mut self, replica: &Admission, decoded: &Decoded, tick: u64) -> Screened {
        let Some(s) = sighting(decoded) else { return Screened::Pass };
        let decided = replica.decided();
        if self.entities.first_key_value().is_some_and(|(t, _)| *t < decided) {
            self.entities = self.entities.split_off(&decided);
        }
        if self.arms.first_key_value().is_some_and(|(t, _)| *t < decided) {
            self.arms = self.arms.split_off(&decided);
        }
        if self.held.first_key_value().is_some_and(|(t, _)| *t < decided) {
            self.held = self.held.split_off(&decided);
        }
        let screened = match decoded {
            // Rare, and each may change whether its pair is declared: always decided.
            Decoded::Catalog(_) => Screened::Hold,
            _ if replica.admits(s.entity, s.arm, tick) => Screened::Pass,
            _ => self.new_pair(replica, s.entity, s.arm, tick),
        };
        if screened == Screened::Hold && self.alone {
            let held = self.held.entry(tick).or_default();
            held.0.insert(s.entity);
            held.1.insert((s.entity, s.arm));
        }
        screened
    }

    /// The screen of an assignment whose pair is not surely admitted.
    fn new_pair(&mut self, replica: &Admission, entity: NameId, arm: NameId, tick: u64) -> Screened {
        let decided = replica.decided();
        // Something forgotten before the tick could make room: the decision will tell. (Beyond
        // a span from the ticks not decided yet, even an active pair retired in one of them.)
        if replica.next_due().is_some_and(|due| due < tick) || tick < decided || tick > decided.saturating_add(replica.span()) {
            return Screened::Hold;
        }
        let caps = replica.caps();
        // With undeclared arms refused, a smaller new id may not take the room it seems to:
        // only a full cap is sure.
        let ranked = !caps.require_declared_arms;
        match replica.arms_of(entity) {
            None => {
                let room = caps.max_entities.saturating_sub(replica.entities());
                if room == 0 {
                    return Screened::Refuse(Refusal::MaxEntities);
                }
                let new_here = decided == tick || (self.alone && !self.held.range(decided..tick).any(|(_, (entities, _))| entities.contains(&entity)));
                let (room, smallest) = self.entities.entry(tick).or_insert_with(|| (room, BTreeSet::new()));
                if ranked && !among_smallest(*room, smallest, entity) && new_here {
                    return Screened::Refuse(Refusal::MaxEntities);
                }
            }
            Some(_) if replica.holds(entity, arm) => {}
            Some(arms) => {
                let room = caps.max_arms_per_entity.saturating_sub(arms);
                if room == 0 {
                    return Screened::Refuse(Refusal::MaxArmsPerEntity);
                }
                let new_here = decided == tick || (self.alone && !self.held.range(decided..tick).any(|(_, (_, pairs))| pairs.contains(&(entity, arm))));
                let (room, smallest) = self.arms.entry(tick).or_default().entry(entity).or_insert_with(|| (room, BTreeSet::new()));
                if ranked && !among_smallest(*room, smallest, arm) && new_here {
                    return Screened::Refuse(Refusal::MaxArmsPerEntity);
                }
            }
        }
        Screened::Hold
    }
}

/// Splits admitted records into the event stream (with the bytes kept of those attribution
/// may refuse) and the catalog stream.
fn split_decoded<'scope>(decoded: Stream<'scope, u64, Vec<(Decoded, Option<Box<Held>>)>>) -> (Stream<'scope, u64, Vec<Arrival>>, Stream<'scope, u64, Vec<Catalog>>) {
    use timely::dataflow::operators::core::OkErr;
    decoded.ok_err(|(d, raw)| match d {
        Decoded::Event(event) => Ok(Arrival { event, raw }),
        Decoded::Catalog(c) => Err(c),
    })
}

/// The pair a record sights, if any.
fn sighting(decoded: &Decoded) -> Option<Sighting> {
    match decoded {
        Decoded::Event(Event::Assignment(a)) => Some(Sighting { entity: a.entity, arm: a.arm, registers: None }),
        Decoded::Catalog(Catalog::Registration(r)) => Some(Sighting { entity: r.entity, arm: r.arm, registers: Some((r.ts, r.active)) }),
        _ => None,
    }
}

/// The admission operator over a worker's `sourced` records; see the module documentation.
/// `refuse` receives each refused record with its reason (it is counted as malformed under
/// that reason here). Returns the admitted events and the catalog (names, registry changes,
/// what was forgotten).
pub fn admit<'scope>(
    sourced: Stream<'scope, u64, Vec<Sourced>>,
    replica: Replica,
    counters: Rc<RefCell<Counters>>,
    collector: Option<Arc<Collector>>,
    ticks: Ticks,
    refuse: Refuse,
) -> (Stream<'scope, u64, Vec<Arrival>>, Stream<'scope, u64, Vec<Catalog>>) {
    let worker = sourced.scope().index();
    // Every replica is the same; each worker hands its copy over, so that each process's
    // part of a checkpoint holds one.
    let sightings = sourced
        .clone()
        .unary(Pipeline, "Sightings", |_, _| {
            let mut seen = FxHashSet::default();
            move |input, output| {
                input.for_each(|time, data| {
                    seen.clear();
                    let mut session = output.session(&time);
                    for s in data.iter().filter_map(|s| sighting(&s.decoded)) {
                        if s.registers.is_some() || seen.insert((s.entity, s.arm)) {
                            session.give(s);
                        }
                    }
                });
            }
        })
        .broadcast();
    let decoded = sourced.binary_frontier(sightings, Pipeline, Pipeline, "Admission", move |capability, _info| {
        let mut capability = Some(capability);
        let mut held: BTreeMap<u64, Vec<(Decoded, Box<Held>)>> = BTreeMap::new();
        let mut sighted: BTreeMap<u64, Vec<Sighting>> = BTreeMap::new();
        // Names this worker has announced, so a pair's first held records name it once.
        let mut named: FxHashSet<NameId> = FxHashSet::default();
        // Every tick before this one is decided; and the last checkpoint tick handed over.
        let (mut done, mut last_checkpoint) = (replica.borrow().decided(), 0);
        move |(records, records_frontier), (sightings, sightings_frontier), output| {
            records.for_each(|time, data| {
                let tick = time.least().copied().unwrap_or(0);
                let mut session = output.session(&time);
                for record in data.drain(..) {
                    match record.held {
                        Some(h) if record.waits => held.entry(tick).or_default().push((record.decoded, h)),
                        raw => session.give((record.decoded, raw)),
                    }
                }
            });
            sightings.for_each(|time, data| sighted.entry(time.least().copied().unwrap_or(0)).or_default().append(data));
            let Some(cap) = capability.as_mut() else { return };
            let frontier = first_open_tick(&[records_frontier, sightings_frontier]);
            let mut replica = replica.borrow_mut();
            let mut counters = counters.borrow_mut();
            // A checkpoint takes the replica as it is once every tick before the checkpoint's is
            // decided: decide up to there first.
            let checkpoint = collector.as_ref().and_then(|c| c.due(last_checkpoint, frontier.unwrap_or(u64::MAX))).filter(|c| *c >= done);
            let mut changed = false;
            for (bound, take) in checkpoint.map(|c| (Some(c), true)).into_iter().chain([(frontier, false)]) {
            // With every input done, what was sighted is left to decide, and what falls due
            // before it.
            let due_until = bound.unwrap_or_else(|| [sighted.keys().next_back(), held.keys().next_back()].into_iter().flatten().max().map_or(0, |t| t + 1));
            loop {
                let due = replica.next_due().filter(|t| *t < due_until);
                let next = [sighted.keys().next().copied(), due, held.keys().next().copied()].into_iter().flatten().min();
                let Some(tick) = next.filter(|t| bound.is_none_or(|f| *t < f)) else { break };
                changed = true;
                let mut seen = sighted.remove(&tick).unwrap_or_default();
                let at = tick.max(replica.decided());
                let decided = replica.decide(at, &mut seen);
                let time = cap.delayed(&tick);
                let mut session = output.session(&time);
                for (decoded, h) in held.remove(&tick).unwrap_or_default() {
                    let pair = sighting(&decoded).map(|s| (s.entity, s.arm));
                    // `refused` is sorted by pair, one entry each.
                    let refusal = pair.and_then(|p| decided.refused.binary_search_by_key(&p, |(q, _)| *q).ok());
                    if let Some(why) = refusal.map(|i| decided.refused[i].1.reason()) {
                        counters.malformed(why);
                        refuse(why, *h);
                        continue;
                    }
                    if let Some((entity, arm)) = pair {
                        if !(named.contains(&entity) && named.contains(&arm)) {
                            for name in names_of(&h.raw).into_iter().flatten() {
                                if named.insert(name.id) {
                                    session.give((Decoded::Catalog(Catalog::Name(name)), None));
                                }
                            }
                        }
                    }
                    let raw = at_risk(&decoded, tick, ticks).then_some(h);
                    session.give((decoded, raw));
                }
                for id in decided.forgotten_entities.iter().chain(&decided.forgotten_arms) {
                    named.remove(id);
                }
                shrink_set(&mut named);
                if worker == 0 && !decided.forgotten_pairs.is_empty() {
                    session.give((Decoded::Catalog(Catalog::Forget(Forgotten {
                        entities: decided.forgotten_entities,
                        pairs: decided.forgotten_pairs,
                        arms: decided.forgotten_arms,
                    })), None));
                }
            }
            if let (true, Some(at), Some(collector)) = (take, bound, &collector) {
                let mut state = replica.snapshot();
                // Ticks with nothing to decide are decided all the same.
                state.decided = state.decided.max(at);
                collector.admission(at, state);
                last_checkpoint = at;
            }
            }
            done = done.max(frontier.unwrap_or(u64::MAX));
            if changed {
                counters.entities_held = replica.entities() as u64;
                counters.most_arms_held = replica.most_arms() as u64;
            }
            match frontier {
                Some(f) => cap.downgrade(&f.max(*cap.time())),
                None => capability = None,
            }
        }
    });
    split_decoded(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use banditflow_core::event::{Assignment, AssignmentKey};
    use proptest::prelude::*;

    fn assignment(entity: NameId, arm: NameId) -> Decoded {
        Decoded::Event(Event::Assignment(Assignment { key: AssignmentKey(entity, arm), entity, arm, ts: 0, weights_version: 0 }))
    }

    proptest! {
        /// What the screen refuses at once, the decision would have refused too, with the
        /// same reason; and leaving those records out changes no decision. Ticks are read
        /// ahead of the decisions by up to `lag` ticks, as a source does.
        #[test]
        fn the_screen_refuses_only_what_the_decision_refuses(
            ticks in proptest::collection::vec(proptest::collection::vec((0u64..30, 0u64..6), 0..40), 1..16),
            lag in 0usize..4,
            declared in any::<bool>(),
            strict in any::<bool>(),
        ) {
            // With `strict` (require_declared_arms), five declared entities fill the entity cap:
            // a new entity is refused for the cap, a new arm of one for being undeclared.
            let declared: Vec<(NameId, Vec<NameId>)> = match (strict, declared) {
                (true, _) => (0..5).map(|e| (e, vec![0])).collect(),
                (false, true) => vec![(0, vec![0])],
                (false, false) => Vec::new(),
            };
            let caps = Caps { max_entities: 5, max_arms_per_entity: 3, require_declared_arms: strict };
            let mut screened = Admission::new(caps, 3, &declared);
            let mut every = screened.clone();
            let mut screen = Screen::new(1);
            let mut kept: Vec<Vec<Sighting>> = vec![Vec::new(); ticks.len()];
            let mut refused_now: Vec<Vec<((NameId, NameId), Refusal)>> = vec![Vec::new(); ticks.len()];
            let mut decided = 0;
            for (tick, seen) in ticks.iter().enumerate() {
                // Decide what is `lag` ticks behind the one being read.
                while decided + lag < tick {
                    let d = screened.decide(decided as u64, &mut kept[decided].clone());
                    let all = every.decide(decided as u64, &mut ticks[decided].iter().map(|(e, a)| Sighting { entity: *e, arm: *a, registers: None }).collect());
                    prop_assert_eq!(&d.admitted, &all.admitted);
                    prop_assert_eq!(&d.forgotten_pairs, &all.forgotten_pairs);
                    for (pair, why) in &refused_now[decided] {
                        prop_assert!(all.refused.contains(&(*pair, *why)), "refused at once {:?} {:?}, decided {:?}", pair, why, all.refused);
                    }
                    decided += 1;
                }
                for (e, a) in seen {
                    match screen.screen(&screened, &assignment(*e, *a), tick as u64) {
                        Screened::Refuse(why) => refused_now[tick].push(((*e, *a), why)),
                        _ => kept[tick].push(Sighting { entity: *e, arm: *a, registers: None }),
                    }
                }
            }
            while decided < ticks.len() {
                let d = screened.decide(decided as u64, &mut kept[decided].clone());
                let all = every.decide(decided as u64, &mut ticks[decided].iter().map(|(e, a)| Sighting { entity: *e, arm: *a, registers: None }).collect());
                prop_assert_eq!(&d.admitted, &all.admitted);
                for (pair, why) in &refused_now[decided] {
                    prop_assert!(all.refused.contains(&(*pair, *why)), "end: refused at once {:?} {:?} at {}, decided {:?}", pair, why, decided, all);
                }
                decided += 1;
            }
        }
    }

    #[test]
    fn a_flood_past_a_full_cap_is_refused_as_it_is_read() {
        let caps = Caps { max_entities: 2, max_arms_per_entity: 2, require_declared_arms: false };
        let mut replica = Admission::new(caps, 100, &[]);
        replica.decide(0, &mut vec![Sighting { entity: 1, arm: 1, registers: None }, Sighting { entity: 2, arm: 1, registers: None }]);
        let mut screen = Screen::new(2);
        // Several workers, ticks not yet decided: a full cap still refuses for sure.
        assert_eq!(screen.screen(&replica, &assignment(9, 1), 5), Screened::Refuse(Refusal::MaxEntities));
        assert_eq!(screen.screen(&replica, &assignment(1, 1), 5), Screened::Pass);
        assert_eq!(screen.screen(&replica, &assignment(1, 2), 5), Screened::Hold, "room for one more arm");
        assert_eq!(screen.screen(&replica, &assignment(9, 1), 200), Screened::Hold, "something may be forgotten by then");
    }
}
