//! The arm counts operator: the window's updates as a differential collection, reduced per
//! entity to the counts of its arms.
//!
//! The accumulation of the updates at tick `t` is exactly what the posterior as of `t`
//! counts; only entities whose counts changed at a tick produce output there.

use banditflow_core::event::NameId;
use banditflow_core::window::{ArmCount, WindowFact};
use differential_dataflow::collection::AsCollection;
use differential_dataflow::VecCollection;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::Stream;

/// The arm counts of every entity with something in the window, sorted by arm id.
pub fn arm_counts<'scope>(
    facts: Stream<'scope, u64, Vec<WindowFact>>,
) -> VecCollection<'scope, u64, (NameId, Vec<ArmCount>), isize> {
    facts
        .map(|((entity, arm, _served), tick, diff)| ((entity, arm), tick, diff))
        .as_collection()
        .reduce_named("ArmCounts", |_entity, arms: &[(&NameId, (i64, i64))], output| {
            let counts: Vec<ArmCount> = arms.iter().map(|(arm, (t, s))| (**arm, *t, *s)).collect();
            output.push((counts, 1));
        })
}

