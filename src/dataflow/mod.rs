//! The bandit dataflow, the same for replay and the live worker: one operator per file, the
//! graph in [`bandit`].
//!
//! events → [`attribute`] → [`arm_counts`] → [`weigh`] → [`publish`], and what attribution
//! refuses → [`attribute::refusal_sink`] (on the worker that read it), joined to the records. Sources (in `file/` and
//! `kafka/`) hand their decoded records over through [`sources`] and [`admit`], which keeps
//! the caps on entities and arms and says when they are forgotten. [`in_memory`] feeds the
//! graph from memory (the simulator, `banditflow evaluate`).

use std::cell::RefCell;
use std::rc::Rc;

use banditflow_core::attribution::AttributionRules;
use banditflow_core::config::Dataflow;
use banditflow_core::counters::Counters;
use banditflow_core::event::Catalog;

pub use admit::{Arrival, Refuse};
use banditflow_core::record::Published;
use banditflow_core::time::Ticks;
use banditflow_core::weights::WeightRules;
use timely::dataflow::operators::core::Concat;
use timely::dataflow::Stream;


pub mod admit;
pub mod agreement;
pub mod arm_counts;
pub mod attribute;
pub mod frontier;
pub mod in_memory;
pub mod publish;
pub mod recovery;
pub mod sources;
pub mod weigh;

pub use arm_counts::arm_counts;
pub use attribute::attribute;
pub use publish::publish;
pub use recovery::Recovery;
pub use weigh::weigh;

/// Builds the dataflow of `job` over decoded `events` (at their ticks) and the `catalog`
/// (names, arm registry) their sources announced; returns the weight records and decision
/// events (serialized), each at its tick.
///
/// What attribution refuses on arrival goes to `refuse`, with its bytes when its source kept
/// them ([`admit::at_risk`]).
pub fn bandit<'scope>(
    events: Stream<'scope, u64, Vec<Arrival>>,
    catalog: Stream<'scope, u64, Vec<Catalog>>,
    job: &Dataflow,
    counters: Rc<RefCell<Counters>>,
    recovery: &Recovery,
    refuse: Refuse,
) -> Stream<'scope, u64, Vec<Published>> {
    let rules = AttributionRules {
        ticks: Ticks::new(job.tick_ms),
        attribution_ms: job.attribution_ms,
        window_ms: job.window_ms,
        max_outcomes_per_assignment: job.limits.max_outcomes_per_assignment,
        reset_on_reactivate: job.policy.reset_on_reactivate,
    };
    let (facts, refusals) = attribute(events, catalog.clone(), rules, counters, recovery.clone());
    let refused = attribute::refusal_sink(refusals, refuse);
    weigh(arm_counts(facts.clone()), facts, catalog, WeightRules::of(job), recovery.clone()).concat(refused)
}
