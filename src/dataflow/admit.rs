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
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use banditflow_core::admission::{Admission, Caps, Sighting};
use banditflow_core::config::Dataflow;
use banditflow_core::counters::Counters;
use banditflow_core::event::{arm_id_of, entity_id_of, Catalog, Event, Forgotten, NameId};
use banditflow_core::wire::{names_of, Decoded};
use rustc_hash::{FxHashMap, FxHashSet};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::Stream;

use super::frontier::first_open_tick;

/// Where a held record came from, for the refusal sink.
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// A record waiting for admission: its bytes as read, and where from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// The record as read.
    pub raw: Vec<u8>,
    /// Where it was read.
    pub origin: Origin,
}

/// A decoded record from a source: let through at once (`held: None`), or held for
/// admission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sourced {
    /// The record.
    pub decoded: Decoded,
    /// Its bytes and origin, when it waits for admission.
    pub held: Option<Box<Held>>,
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

/// A worker's replica for `job`: its caps, its span, and its declared arms admitted for good.
pub fn replica(job: &Dataflow) -> Replica {
    let caps = Caps { max_entities: job.limits.max_entities, max_arms_per_entity: job.limits.max_arms_per_entity };
    let declared: Vec<(NameId, Vec<NameId>)> = job.arms.iter().map(|d| (entity_id_of(&d.entity_id), d.arm_ids.iter().map(|a| arm_id_of(a)).collect())).collect();
    Rc::new(RefCell::new(Admission::new(caps, forget_span(job), &declared)))
}

/// Whether a source must hold `decoded` for admission at `tick`, or may let it through.
pub fn must_hold(replica: &Admission, decoded: &Decoded, tick: u64) -> bool {
    match decoded {
        Decoded::Event(Event::Assignment(a)) => !replica.admits(a.entity, a.arm, tick),
        Decoded::Event(Event::Outcome(_)) => false,
        // Rare, and each may change whether its pair is declared: always decided.
        Decoded::Catalog(_) => true,
    }
}

/// Splits admitted records into the event stream and the catalog stream.
fn split_decoded<'scope>(decoded: Stream<'scope, u64, Vec<Decoded>>) -> (Stream<'scope, u64, Vec<Event>>, Stream<'scope, u64, Vec<Catalog>>) {
    use timely::dataflow::operators::core::OkErr;
    decoded.ok_err(|d| match d {
        Decoded::Event(e) => Ok(e),
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
    mut refuse: impl FnMut(&'static str, Held) + 'static,
) -> (Stream<'scope, u64, Vec<Event>>, Stream<'scope, u64, Vec<Catalog>>) {
    let worker = sourced.scope().index();
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
        move |(records, records_frontier), (sightings, sightings_frontier), output| {
            records.for_each(|time, data| {
                let tick = time.least().copied().unwrap_or(0);
                let mut session = output.session(&time);
                for record in data.drain(..) {
                    match record.held {
                        None => session.give(record.decoded),
                        Some(h) => held.entry(tick).or_default().push((record.decoded, h)),
                    }
                }
            });
            sightings.for_each(|time, data| sighted.entry(time.least().copied().unwrap_or(0)).or_default().append(data));
            let Some(cap) = capability.as_mut() else { return };
            let frontier = first_open_tick(&[records_frontier, sightings_frontier]);
            let mut replica = replica.borrow_mut();
            let mut counters = counters.borrow_mut();
            // With every input done, only what was sighted is left to decide.
            let due_until = frontier.unwrap_or(0);
            let mut changed = false;
            loop {
                let due = replica.next_due().filter(|t| *t < due_until);
                let next = [sighted.keys().next().copied(), due, held.keys().next().copied()].into_iter().flatten().min();
                let Some(tick) = next.filter(|t| frontier.is_none_or(|f| *t < f)) else { break };
                changed = true;
                let mut seen = sighted.remove(&tick).unwrap_or_default();
                let at = tick.max(replica.decided());
                let decided = replica.decide(at, &mut seen);
                let mut refusals: FxHashMap<(NameId, NameId), &'static str> = FxHashMap::default();
                for (pair, why) in &decided.refused {
                    refusals.insert(*pair, why.reason());
                }
                let time = cap.delayed(&tick);
                let mut session = output.session(&time);
                for (decoded, h) in held.remove(&tick).unwrap_or_default() {
                    let pair = sighting(&decoded).map(|s| (s.entity, s.arm));
                    if let Some(why) = pair.and_then(|p| refusals.get(&p)) {
                        counters.malformed(why);
                        refuse(why, *h);
                        continue;
                    }
                    if let Some((entity, arm)) = pair {
                        if !(named.contains(&entity) && named.contains(&arm)) {
                            for name in names_of(&h.raw).into_iter().flatten() {
                                if named.insert(name.id) {
                                    session.give(Decoded::Catalog(Catalog::Name(name)));
                                }
                            }
                        }
                    }
                    session.give(decoded);
                }
                for id in decided.forgotten_entities.iter().chain(&decided.forgotten_arms) {
                    named.remove(id);
                }
                if worker == 0 && !decided.forgotten_pairs.is_empty() {
                    session.give(Decoded::Catalog(Catalog::Forget(Forgotten {
                        entities: decided.forgotten_entities,
                        pairs: decided.forgotten_pairs,
                        arms: decided.forgotten_arms,
                    })));
                }
            }
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
