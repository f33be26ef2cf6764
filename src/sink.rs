//! Publishing weight records in a deterministic order.
//!
//! All records go to worker 0, wait until their tick is complete, and are handed to the
//! writer one tick at a time, sorted by entity id. The operator holds a capability until a
//! tick is written, so a probe on its output tells when everything up to a tick is out.

use std::collections::BTreeMap;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;

use crate::weights::EncodedRecord;

/// Hands each complete tick's records (sorted by `entity_id`) to `write`, on worker 0.
/// The returned stream carries nothing; probe it to know what has been written.
pub fn publish<'scope, W>(records: Stream<'scope, u64, Vec<EncodedRecord>>, mut write: W) -> Stream<'scope, u64, Vec<()>>
where
    W: FnMut(u64, &[EncodedRecord]) + 'static,
{
    records.unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(Exchange::new(|_: &EncodedRecord| 0), "Publish", move |capability, _info| {
        let mut capability = Some(capability);
        let mut stash: BTreeMap<u64, Vec<EncodedRecord>> = BTreeMap::new();
        move |(input, frontier), _output| {
            input.for_each(|_time, data| {
                for record in data.drain(..) {
                    stash.entry(record.version).or_default().push(record);
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
            }
            match (next, capability.as_mut()) {
                (Some(f), Some(cap)) => cap.downgrade(&f),
                _ => capability = None,
            }
        }
    })
}
