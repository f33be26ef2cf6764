//! The attribution operator: assignments and outcomes meet by assignment key.
//!
//! Events are exchanged by the key's hash, so each worker runs the attribution state machine
//! ([`Attribution`]) over its share of the keys; every worker sees every arm registry change
//! and name. A record refused on arrival (too old, too late, past the outcome cap) goes to
//! the refusal sink of the worker that read it, when its source kept its bytes. When a tick
//! completes, the assignments resolving in it become window updates
//! at their entry tick, and [`Departures`] hands over their retractions once the tick they
//! leave the window is due.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use banditflow_core::attribution::{Attribution, AttributionRules, Refused, Resolved};
use banditflow_core::checkpoint::AttributionPart;
use banditflow_core::event::AssignmentKey;
use banditflow_core::counters::Counters;

use banditflow_core::event::{Catalog, Event, Forgotten, Name, Registration};
use banditflow_core::window::{Departures, WindowFact};
use banditflow_core::record::Published;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::{Operator, OutputBuilder};
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::Stream;

use super::admit::{Arrival, Held, Refuse};
use super::frontier::first_open_tick;
use super::recovery::Recovery;

/// A tick's catalog as attribution applies it: names, arm registry records, forgettings.
type Catalogued = (Vec<Name>, Vec<Registration>, Vec<Forgotten>);

/// Settles `state` to `to` with the names, registry records and forgettings of the ticks on the way applied
/// in time order: a tick's names before the tick is settled, what was forgotten at its end
/// after.
///
/// With `reset_on_reactivate`, an arm declared active again at `tick` has its facts still in
/// the window leave it at `tick` (those resolved before it: admitted to `departures` first).
fn settle_to(state: &mut Attribution, naming: &mut BTreeMap<u64, Catalogued>, to: u64, counters: &mut Counters, resolved: &mut Vec<Resolved>, departures: &mut Departures, updates: &mut Vec<WindowFact>) {
    while let Some(entry) = naming.first_entry().filter(|e| *e.key() < to) {
        let tick = *entry.key();
        let (names, mut registrations, forgotten) = entry.remove();
        state.settle(tick, counters, resolved);
        names.into_iter().for_each(|n| state.name(n));
        // In event-time order, whatever order they arrived in: whether a record reactivates
        // its arm depends on the records before it.
        registrations.sort_by_key(|r| (r.ts, r.entity, r.arm, r.active));
        for r in &registrations {
            if state.rules().reset_on_reactivate && state.reactivates(r) {
                departures.admit(resolved, updates);
                departures.leave_now(r.entity, r.arm, tick, updates);
            }
            state.register(r);
        }
        state.settle(tick + 1, counters, resolved);
        forgotten.iter().for_each(|f| state.forget(f));
    }
    state.settle(to, counters, resolved);
}

/// The attribution operator: exchanges events by assignment key, runs [`Attribution`] on
/// each worker's share (every worker sees every arm registry change), and emits window
/// updates at the ticks they take effect. Resumed from a checkpoint, each worker keeps the
/// keys it owns (whatever the worker count that wrote it) and starts the window from the
/// checkpoint's counts; with a collector, it hands over its state at every checkpoint tick.
pub fn attribute<'scope>(
    events: Stream<'scope, u64, Vec<Arrival>>,
    catalog: Stream<'scope, u64, Vec<Catalog>>,
    rules: AttributionRules,
    counters: Rc<RefCell<Counters>>,
    recovery: Recovery,
) -> (Stream<'scope, u64, Vec<WindowFact>>, Stream<'scope, u64, Vec<Refusal>>) {
    let scope = events.scope();
    let (worker, peers) = (scope.index(), scope.peers() as u64);
    let mut builder = OperatorBuilder::new("Attribution".to_owned(), scope);
    let mut input = builder.new_input(events, Exchange::new(|a: &Arrival| a.event.key().route()));
    let mut registry = builder.new_input(catalog.broadcast(), Pipeline);
    let (facts_out, facts) = builder.new_output::<Vec<WindowFact>>();
    let (refusals_out, refusals) = builder.new_output::<Vec<Refusal>>();
    let mut facts_out = OutputBuilder::<u64, CapacityContainerBuilder<Vec<WindowFact>>>::from(facts_out);
    let mut refusals_out = OutputBuilder::<u64, CapacityContainerBuilder<Vec<Refusal>>>::from(refusals_out);
    builder.build(move |mut capabilities| {
        // One capability per output, in the order they were made: facts, then refusals.
        // Refusals go out at their record's own time, so only the facts' one is kept.
        drop(capabilities.pop());
        let mut capability = capabilities.pop();
        let mut state = Attribution::new(rules, 0);
        let mut departures = Departures::default();
        let mut resolved = Vec::new();
        let mut updates: Vec<WindowFact> = Vec::new();
        let mut last_checkpoint = 0;
        if let Some(checkpoint) = &recovery.restored {
            let owns = |k: &AssignmentKey| k.route() % peers == worker as u64;
            state = Attribution::restore(rules, checkpoint.attribution.iter().map(|p| &p.state), owns);
            for part in &checkpoint.attribution {
                let mine: Vec<_> = part.departures.iter().filter(|d| d.1 % peers == worker as u64).copied().collect();
                departures.restore(&mine);
            }
            // The window starts where the checkpoint left it.
            updates.extend(departures.in_window().into_iter().map(|(fact, counts)| (fact, checkpoint.tick, counts)));
            last_checkpoint = checkpoint.tick;
        }
        let collector = recovery.collector;
        // Names, registry records and what admission forgot, by tick: applied in time order
        // once the tick is complete, so what is announced again after it was forgotten
        // stays.
        let mut naming: BTreeMap<u64, Catalogued> = BTreeMap::new();
        move |frontiers| {
            let (frontier, registry_frontier) = (&frontiers[0], &frontiers[1]);
            let mut output = facts_out.activate();
            let mut refused_out = refusals_out.activate();
            let mut counters = counters.borrow_mut();
            registry.for_each(|time, data| {
                for entry in data.drain(..) {
                    match entry {
                        Catalog::Name(n) => naming.entry(time.least().copied().unwrap_or(0)).or_default().0.push(n),
                        Catalog::Registration(r) => naming.entry(time.least().copied().unwrap_or(0)).or_default().1.push(r),
                        Catalog::Forget(f) => naming.entry(time.least().copied().unwrap_or(0)).or_default().2.push(f),
                    }
                }
            });
            input.for_each(|time, data| {
                let arrival = time.least().copied().unwrap_or(0);
                let mut refused_here = refused_out.session(&time);
                for Arrival { event, raw } in data.drain(..) {
                    let refused = match event {
                        Event::Assignment(a) => state.assignment(a, arrival, &mut counters),
                        Event::Outcome(o) => state.outcome(o, &mut counters),
                    };
                    // Counted either way; to the refusal sink when its bytes were kept.
                    if let (Some(why), Some(raw)) = (refused, raw) {
                        refused_here.give((why, raw));
                    }
                }
            });
            let next = first_open_tick(&[frontier, registry_frontier]);
            let Some(cap) = capability.as_mut() else { return };
            let frontier = next.unwrap_or(u64::MAX);
            if let Some(tick) = collector.as_ref().and_then(|c| c.due(last_checkpoint, frontier)).filter(|t| *t >= state.settled()) {
                // The state as of the checkpoint tick: settled exactly to it.
                settle_to(&mut state, &mut naming, tick, &mut counters, &mut resolved, &mut departures, &mut updates);
                departures.admit(&mut resolved, &mut updates);
                departures.due(tick, &mut updates);
                if let Some(collector) = &collector {
                    collector.attribution(worker, tick, AttributionPart { state: state.snapshot(), departures: departures.snapshot() });
                }
                last_checkpoint = tick;
            }
            settle_to(&mut state, &mut naming, frontier, &mut counters, &mut resolved, &mut departures, &mut updates);
            // Gauges, exact after every activation: a run's final counters include what is
            // still held at the end.
            counters.pending_assignments = state.pending_assignments() as u64;
            counters.buffered_outcomes = state.buffered_outcomes() as u64;
            counters.most_outcomes_held = state.most_outcomes_held() as u64;
            departures.admit(&mut resolved, &mut updates);
            departures.due(frontier, &mut updates);
            if !updates.is_empty() {
                updates.sort_unstable_by_key(|u| u.1);
                for run in updates.chunk_by(|a, b| a.1 == b.1) {
                    output.session(&cap.delayed(&run[0].1)).give_iterator(run.iter().copied());
                }
                updates.clear();
            }
            match next {
                Some(t) => cap.downgrade(&t),
                None => capability = None,
            }
        }
    });
    (facts, refusals)
}

/// A record attribution refused on arrival, with its bytes, for the worker that read it.
pub type Refusal = (Refused, Box<Held>);

/// Hands every refusal to `refuse` on the worker that read the record (whose process commits
/// its offset, and so must have sent its dead letter first). The returned stream carries
/// nothing; its frontier passes a tick only once that tick's refusals are handed over, so
/// joined to the records on their way to the sinks it holds back what waits for them (offset
/// commits, checkpoints).
pub fn refusal_sink<'scope>(refusals: Stream<'scope, u64, Vec<Refusal>>, refuse: Refuse) -> Stream<'scope, u64, Vec<Published>> {
    refusals.unary::<CapacityContainerBuilder<Vec<Published>>, _, _, _>(Exchange::new(|(_, held): &Refusal| held.worker as u64), "Refusals", move |_, _| {
        move |input, _output| {
            input.for_each(|_, data| {
                for (why, held) in data.drain(..) {
                    refuse(why.reason(), *held);
                }
            });
        }
    })
}

