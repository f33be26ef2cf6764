//! The sliding event-time window: resolved facts in, per-entity arm counts out.
//!
//! Attribution emits each batch of facts twice — added at the tick they resolve, retracted
//! at the tick they leave the window — so the window is a differential collection whose
//! accumulation at tick `t` is exactly what SEMANTICS.md's posterior at `as_of(t)` counts.
//! A `reduce` per entity turns it into the entity's arm counts, and only entities whose
//! counts changed produce output at a tick.

use differential_dataflow::collection::AsCollection;
use differential_dataflow::VecCollection;
use timely::dataflow::Stream;

use crate::event::NameId;

/// One change to the window: `((entity, arm), tick, (trials, successes))`.
pub type WindowUpdate = ((NameId, NameId), u64, (i64, i64));

/// An arm's counts in the window: `(arm, trials, successes)`.
pub type ArmCount = (NameId, i64, i64);

/// The arm counts of every entity with something in the window, sorted by arm id.
pub fn arm_counts<'scope>(
    updates: Stream<'scope, u64, Vec<WindowUpdate>>,
) -> VecCollection<'scope, u64, (NameId, Vec<ArmCount>), isize> {
    updates
        .as_collection()
        .reduce_named("ArmCounts", |_entity, arms: &[(&NameId, (i64, i64))], output| {
            let counts: Vec<ArmCount> = arms.iter().map(|(arm, (t, s))| (**arm, *t, *s)).collect();
            output.push((counts, 1));
        })
}
