//! The weigh operator: changed arm counts, the window's assignments by the record they were
//! served under, and arm registry changes in; weight records and decision events out.
//!
//! Counts, served assignments and registry changes of an entity meet on the worker that owns
//! the entity; names are broadcast. Each worker keeps a [`Weigher`] for its entities and, as the frontier
//! advances, hands it every complete tick in order. Records are serialized where they were
//! computed, so encoding runs on every worker.

use banditflow_core::attribution::Served;
use banditflow_core::event::{Catalog, NameId, Registration};
use banditflow_core::record::Published;
use banditflow_core::weights::{WeightRules, Weigher};
use banditflow_core::window::{ArmCount, WindowFact};
use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::core::Concat;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::{Broadcast, Filter, Map};
use timely::dataflow::Stream;

use super::frontier::first_open_tick;
use super::recovery::Recovery;

/// What can change an entity's weights at a tick.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum EntityChange {
    /// An update of the window's arm counts of `entity` at `tick`.
    Counted { entity: NameId, arms: Vec<ArmCount>, tick: u64, diff: isize },
    /// Assignments of `arm` served as `served` entering (count > 0) or leaving the window.
    Served { entity: NameId, arm: NameId, served: Served, tick: u64, count: i64 },
    /// An arm registry change.
    Registered(Registration),
}

impl EntityChange {
    fn route(&self) -> u64 {
        match self {
            EntityChange::Counted { entity, .. } | EntityChange::Served { entity, .. } => *entity,
            EntityChange::Registered(r) => r.entity,
        }
    }
}

/// Turns changed arm counts, served assignments and arm registry changes into weight records
/// and decision events, tick by tick.
/// Resumed from a checkpoint, each worker keeps the entities it owns; with a collector, it
/// hands over its state at every checkpoint tick.
pub fn weigh<'scope>(
    counts: VecCollection<'scope, u64, (NameId, Vec<ArmCount>), isize>,
    facts: Stream<'scope, u64, Vec<WindowFact>>,
    catalog: Stream<'scope, u64, Vec<Catalog>>,
    rules: WeightRules,
    recovery: Recovery,
) -> Stream<'scope, u64, Vec<Published>> {
    let (worker, peers) = (counts.inner.scope().index(), counts.inner.scope().peers() as u64);
    // Names and what admission forgot reach every worker.
    let names = catalog.clone().filter(|c| !matches!(c, Catalog::Registration(_))).broadcast();
    let registered = catalog.flat_map(|c| if let Catalog::Registration(r) = c { Some(EntityChange::Registered(r)) } else { None });
    let served = facts.map(|((entity, arm, served), tick, (count, _))| EntityChange::Served { entity, arm, served, tick, count });
    let changes = counts
        .inner
        .map(|((entity, arms), tick, diff)| EntityChange::Counted { entity, arms, tick, diff })
        .concat(registered)
        .concat(served);
    changes.binary_frontier(names, Exchange::new(EntityChange::route), Pipeline, "Weights", move |capability, _info| {
        let mut capability = Some(capability);
        let (mut weigher, mut last_checkpoint) = match &recovery.restored {
            Some(checkpoint) => (Weigher::restore(rules, &checkpoint.weighers, checkpoint.tick, |e| e % peers == worker as u64), checkpoint.tick),
            None => (Weigher::new(rules), 0),
        };
        if let (Some(_), Some(through)) = (&recovery.restored, recovery.published_through) {
            weigher.hold_allocation_through(through);
        }
        let collector = recovery.collector;
        move |(changes_in, changes_frontier), (names_in, names_frontier), output| {
            names_in.for_each(|time, data| {
                for entry in data.drain(..) {
                    match entry {
                        Catalog::Name(name) => weigher.name(time.least().copied().unwrap_or(0), name),
                        Catalog::Forget(forgotten) => weigher.forget(time.least().copied().unwrap_or(0), forgotten),
                        Catalog::Registration(_) => {}
                    }
                }
            });
            changes_in.for_each(|time, data| {
                let arrived = time.least().copied().unwrap_or(0);
                for change in data.drain(..) {
                    match change {
                        EntityChange::Counted { entity, arms, tick, diff } => weigher.counted(entity, arms, tick, diff),
                        EntityChange::Served { entity, arm, served, tick, count } => weigher.served(entity, arm, served, tick, count),
                        EntityChange::Registered(r) => weigher.registered(r, arrived),
                    }
                }
            });
            let Some(cap) = capability.as_mut() else { return };
            let frontier = first_open_tick(&[changes_frontier, names_frontier]);
            if let Some(collector) = &collector {
                if let Some(tick) = collector.due(last_checkpoint, frontier.unwrap_or(u64::MAX)) {
                    // The state once every tick before the checkpoint's is computed.
                    weigher.advance(*cap.time(), Some(tick), |tick, records| {
                        output.session(&cap.delayed(&tick)).give_iterator(records.into_iter());
                    });
                    collector.weigher(worker, tick, weigher.snapshot());
                    last_checkpoint = tick;
                }
            }
            weigher.advance(*cap.time(), frontier, |tick, records| {
                output.session(&cap.delayed(&tick)).give_iterator(records.into_iter());
            });
            match frontier {
                Some(f) => cap.downgrade(&f.max(*cap.time())),
                None => capability = None,
            }
        }
    })
}
