//! What every source (files, Kafka) does with the records it decoded: emit them at their
//! ticks for admission ([`super::admit`]), which splits them into the event stream and the
//! catalog stream.

use super::admit::Sourced;

/// Hands a source's decoded records to admission, every record at its tick, one session per
/// tick.
pub fn emit_decoded(
    batch: &mut Vec<(u64, Sourced)>,
    cap: &timely::dataflow::operators::Capability<u64>,
    output: &mut timely::dataflow::operators::generic::OutputBuilderSession<'_, u64, timely::container::CapacityContainerBuilder<Vec<Sourced>>>,
) {
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

