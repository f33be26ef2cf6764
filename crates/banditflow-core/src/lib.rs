//! banditflow's semantics, with no dataflow, no I/O clients and no command line: what a wire
//! record is and when it is refused, event time and ticks, the attribution state machine, the
//! window's arrivals and departures, Beta posteriors and `p_best`, the weight policy, the
//! per-entity weight state, the weight record, and the job file.
//!
//! Data flows one way through these modules: [`wire`] decodes into [`event`]s, [`attribution`]
//! turns them into resolved facts, [`window`] schedules when each fact enters and leaves,
//! [`weights`] (with [`posterior`] and [`policy`]) turns an entity's counts into a
//! [`record::WeightRecord`]. The dataflow crate (`banditflow`) wires these into timely
//! operators; `docs/semantics.md` says what every number means.

pub mod admission;
pub mod attribution;
pub mod checkpoint;
pub mod config;
pub mod counters;
pub mod decision;
pub mod environment;
pub mod evaluation;
pub mod event;
pub mod limits;
pub mod pending_cap;
pub mod policy;
pub mod posterior;
pub mod record;
pub mod record_json;
pub mod regret;
pub mod scenario;
pub mod sparse;
pub mod srm;
pub mod statistics;
pub mod time;
pub mod weights;
pub mod window;
pub mod wire;
