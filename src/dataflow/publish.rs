//! Publishing weight records and decision events in a deterministic order.
//!
//! Everything goes to worker 0, waits until its tick is complete, and is handed to the
//! writer one tick at a time: records sorted by entity id, decision events by entity id
//! (an entity's own events keep the order its rules took them in). The operator holds a capability until a
//! tick is acknowledged by the writer's sinks, so a probe on its output tells what is out.

use std::collections::BTreeMap;
use std::time::Duration;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;

use banditflow_core::record::{EncodedDecision, EncodedRecord, Published};

/// How often the operator looks again for acknowledgements it is waiting for.
const ACK_POLL: Duration = Duration::from_millis(5);

/// Hands each complete tick's records, decision events (sorted by `entity_id`) and the
/// entities forgotten at its end to `write`, on worker 0, to keep.
/// `acked()` says below which tick everything handed over is acknowledged (`u64::MAX` for
/// a synchronous writer). The returned stream carries nothing; probe it to know what is out.
pub fn publish<'scope, W, A>(records: Stream<'scope, u64, Vec<Published>>, mut write: W, acked: A) -> Stream<'scope, u64, Vec<()>>
where
    W: FnMut(u64, Vec<EncodedRecord>, Vec<EncodedDecision>, Vec<String>) + 'static,
    A: Fn() -> u64 + 'static,
{
    let scope = records.scope();
    records.unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(Exchange::new(|_: &Published| 0), "Publish", move |capability, info| {
        let activator = scope.activator_for(info.address);
        let mut capability = Some(capability);
        let mut stash: BTreeMap<u64, (Vec<EncodedRecord>, Vec<EncodedDecision>, Vec<String>)> = BTreeMap::new();
        // The oldest tick handed to `write` and not yet acknowledged.
        let mut unacked: Option<u64> = None;
        move |(input, frontier), _output| {
            input.for_each(|_time, data| {
                for published in data.drain(..) {
                    let slot = stash.entry(published.tick()).or_default();
                    match published {
                        Published::Weights(record) => slot.0.push(record),
                        Published::Decision(decision) => slot.1.push(decision),
                        Published::Forgotten { entity_id, .. } => slot.2.push(entity_id),
                    }
                }
            });
            let next = frontier.frontier().iter().next().copied();
            while let Some(entry) = stash.first_entry() {
                if next.is_some_and(|f| *entry.key() >= f) {
                    break;
                }
                let (tick, (mut batch, mut decisions, mut forgotten)) = entry.remove_entry();
                forgotten.sort_unstable();
                batch.sort_by(|a, b| a.entity_id.cmp(&b.entity_id));
                // Stable: an entity's events come from one worker, in the order taken.
                decisions.sort_by(|a, b| a.entity_id.cmp(&b.entity_id));
                write(tick, batch, decisions, forgotten);
                unacked.get_or_insert(tick);
            }
            if unacked.is_some_and(|t| acked() > t) {
                unacked = None;
            }
            let hold = match (next, unacked) {
                (Some(f), Some(u)) => Some(f.min(u)),
                (f, u) => f.or(u),
            };
            match (hold, capability.as_mut()) {
                (Some(t), Some(cap)) => {
                    if t > *cap.time() {
                        cap.downgrade(&t);
                    }
                }
                _ => capability = None,
            }
            if unacked.is_some() {
                activator.activate_after(ACK_POLL);
            }
        }
    })
}
