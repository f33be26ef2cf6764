//! The attribution operator: assignments and outcomes meet by assignment key.
//!
//! Events are exchanged by the key's hash, so each worker runs the attribution state machine
//! ([`Attribution`]) over its share of the keys; every worker sees every arm registry change
//! and name. When a tick completes, the assignments resolving in it become window updates
//! at their entry tick, and [`Departures`] hands over their retractions once the tick they
//! leave the window is due.

use std::cell::RefCell;
use std::rc::Rc;

use banditflow_core::attribution::{Attribution, AttributionRules};
use banditflow_core::counters::Counters;
use banditflow_core::event::{Catalog, Event};
use banditflow_core::window::{Departures, WindowUpdate};
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::Stream;

use super::frontier::first_open_tick;

/// The attribution operator: exchanges events by assignment key, runs [`Attribution`] on
/// each worker's share (every worker sees every arm registry change), and emits window
/// updates at the ticks they take effect.
pub fn attribute<'scope>(
    events: Stream<'scope, u64, Vec<Event>>,
    catalog: Stream<'scope, u64, Vec<Catalog>>,
    rules: AttributionRules,
    counters: Rc<RefCell<Counters>>,
) -> Stream<'scope, u64, Vec<WindowUpdate>> {
    events.binary_frontier(
        catalog.broadcast(),
        Exchange::new(|e: &Event| e.key().route()),
        Pipeline,
        "Attribution",
        move |capability, _info| {
            let mut capability = Some(capability);
            let mut state = Attribution::new(rules, 0);
            let mut departures = Departures::default();
            let mut resolved = Vec::new();
            let mut updates: Vec<WindowUpdate> = Vec::new();
            move |(input, frontier), (registry, registry_frontier), output| {
                let mut counters = counters.borrow_mut();
                registry.for_each(|_time, data| {
                    for entry in data.drain(..) {
                        match entry {
                            Catalog::Registration(r) => state.register(&r),
                            Catalog::Name(n) => state.name(n),
                        }
                    }
                });
                input.for_each(|time, data| {
                    let arrival = time.least().copied().unwrap_or(0);
                    for event in data.drain(..) {
                        match event {
                            Event::Assignment(a) => state.assignment(a, arrival, &mut counters),
                            Event::Outcome(o) => state.outcome(o, &mut counters),
                        }
                    }
                });
                let next = first_open_tick(&[frontier, registry_frontier]);
                let Some(cap) = capability.as_mut() else { return };
                let frontier = next.unwrap_or(u64::MAX);
                state.settle(frontier, &mut counters, &mut resolved);
                // Gauges, exact after every activation: a run's final counters include what is
                // still held at the end.
                counters.pending_assignments = state.pending_assignments() as u64;
                counters.buffered_outcomes = state.buffered_outcomes() as u64;
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
        },
    )
}

