//! The bandit dataflow graph, the same for replay and the live worker:
//! events → attribution → window → weights.

use std::cell::RefCell;
use std::rc::Rc;

use timely::dataflow::Stream;

use crate::attribution::{attribute, AttributionRules};
use crate::config::Dataflow;
use crate::counters::Counters;
use crate::event::{Catalog, Event};
use crate::time::Ticks;
use crate::weights::{weigh, EncodedRecord, WeightRules};
use crate::window::arm_counts;

/// Builds the dataflow of `job` over decoded `events` (at their ticks) and the `catalog`
/// (names, arm registry) their sources announced; returns the weight records (serialized), each at its tick.
pub fn bandit<'scope>(
    events: Stream<'scope, u64, Vec<Event>>,
    catalog: Stream<'scope, u64, Vec<Catalog>>,
    job: &Dataflow,
    counters: Rc<RefCell<Counters>>,
) -> Stream<'scope, u64, Vec<EncodedRecord>> {
    let rules = AttributionRules {
        ticks: Ticks::new(job.tick_ms),
        attribution_ms: job.attribution_ms,
        window_ms: job.window_ms,
    };
    let updates = attribute(events, catalog.clone(), rules, counters);
    weigh(arm_counts(updates), catalog, WeightRules::of(job))
}
