//! What every source (files, Kafka) does with the records it decoded: emit them at their
//! ticks, names first, and split them into the event stream and the catalog stream.

use banditflow_core::event::{Catalog, Event, Name};
use banditflow_core::wire::Decoded;
use timely::dataflow::Stream;

/// Splits a source's output into the event stream and the catalog stream.
pub fn split_decoded<'scope>(
    decoded: Stream<'scope, u64, Vec<Decoded>>,
) -> (Stream<'scope, u64, Vec<Event>>, Stream<'scope, u64, Vec<Catalog>>) {
    use timely::dataflow::operators::core::OkErr;
    decoded.ok_err(|d| match d {
        Decoded::Event(e) => Ok(e),
        Decoded::Catalog(c) => Err(c),
    })
}

/// Hands a source's decoded records to the dataflow: the names first learnt in this batch at
/// `floor_tick`, then every record at its tick, one session per tick.
pub fn emit_decoded(
    batch: &mut Vec<(u64, Decoded)>,
    names: &mut Vec<Name>,
    floor_tick: u64,
    cap: &timely::dataflow::operators::Capability<u64>,
    output: &mut timely::dataflow::operators::generic::OutputBuilderSession<'_, u64, timely::container::CapacityContainerBuilder<Vec<Decoded>>>,
) {
    batch.extend(names.drain(..).map(|n| (floor_tick, Decoded::Catalog(Catalog::Name(n)))));
    batch.sort_by_key(|(t, _)| *t);
    let mut rest = batch.drain(..).peekable();
    while let Some((tick, first)) = rest.next() {
        let time = cap.delayed(&tick);
        let mut session = output.session(&time);
        session.give(first);
        while let Some((_, d)) = rest.next_if(|(t, _)| *t == tick) {
            session.give(d);
        }
    }
}

