//! Publishing weight records in a deterministic order.
//!
//! All records go to worker 0, wait until their tick is complete, and are handed to the
//! writer one tick at a time, sorted by entity id. The operator holds a capability until a
//! tick is acknowledged by the writer's sinks, so a probe on its output tells what is out.

use std::collections::BTreeMap;
use std::time::Duration;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;

use banditflow_core::record::EncodedRecord;

/// How often the operator looks again for acknowledgements it is waiting for.
const ACK_POLL: Duration = Duration::from_millis(5);

/// Hands each complete tick's records (sorted by `entity_id`) to `write`, on worker 0.
/// `acked()` says below which tick everything handed over is acknowledged (`u64::MAX` for
/// a synchronous writer). The returned stream carries nothing; probe it to know what is out.
pub fn publish<'scope, W, A>(records: Stream<'scope, u64, Vec<EncodedRecord>>, mut write: W, acked: A) -> Stream<'scope, u64, Vec<()>>
where
    W: FnMut(u64, &[EncodedRecord]) + 'static,
    A: Fn() -> u64 + 'static,
{
    let scope = records.scope();
    records.unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(Exchange::new(|_: &EncodedRecord| 0), "Publish", move |capability, info| {
        let activator = scope.activator_for(info.address);
        let mut capability = Some(capability);
        let mut stash: BTreeMap<u64, Vec<EncodedRecord>> = BTreeMap::new();
        // The oldest tick handed to `write` and not yet acknowledged.
        let mut unacked: Option<u64> = None;
        move |(input, frontier), _output| {
            input.for_each(|_time, data| {
                for record in data.drain(..) {
                    stash.entry(record.tick).or_default().push(record);
                }
            });
            let next = frontier.frontier().iter().next().copied();
            while let Some(entry) = stash.first_entry() {
                if next.is_some_and(|f| *entry.key() >= f) {
                    break;
                }
                let (tick, mut batch) = entry.remove_entry();
                batch.sort_by(|a, b| a.entity_id.cmp(&b.entity_id));
                write(tick, &batch);
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
