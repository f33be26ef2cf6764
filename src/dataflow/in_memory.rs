//! The dataflow fed from memory, its weight records read back: what the simulator and
//! `banditflow evaluate` run. The graph is [`super::bandit`], the one replay and the worker run.

use std::cell::RefCell;
use std::rc::Rc;

use banditflow_core::config::Dataflow;
use banditflow_core::counters::Counters;
use banditflow_core::event::Catalog;
use banditflow_core::record::WeightRecord;
use timely::dataflow::operators::vec::input::Handle;
use timely::dataflow::operators::vec::Input;
use timely::dataflow::operators::Probe;
use timely::dataflow::ProbeHandle;
use timely::worker::Worker;

use super::{bandit, publish, Arrival, Recovery};

/// A dataflow fed from memory.
pub struct InMemory {
    /// Assignments and outcomes, at their ticks.
    pub events: Handle<u64, Arrival>,
    /// Names and arm registry records, at their ticks.
    pub catalog: Handle<u64, Catalog>,
    /// Passes a tick once its records are read back.
    pub probe: ProbeHandle<u64>,
    /// The weight records read back so far (on worker 0, where publishing gathers them).
    pub read: Rc<RefCell<Vec<WeightRecord>>>,
}

/// Builds `job`'s dataflow on `worker`, fed by its two inputs. Nothing is refused: what is fed
/// is only what attribution takes.
pub fn in_memory(worker: &mut Worker, job: &Dataflow) -> InMemory {
    let read: Rc<RefCell<Vec<WeightRecord>>> = Rc::default();
    let sink = read.clone();
    let counters = Rc::new(RefCell::new(Counters::default()));
    let (events, catalog, probe) = worker.dataflow::<u64, _, _>(|scope| {
        let (events_in, events) = scope.new_input::<Arrival>();
        let (catalog_in, catalog) = scope.new_input::<Catalog>();
        let records = bandit(events, catalog, job, counters.clone(), &Recovery::default(), Rc::new(|_, _| {}));
        let done = publish(
            records,
            move |_tick, batch, _decisions, _forgotten| {
                // Records the dataflow itself encoded: they always read back.
                sink.borrow_mut().extend(batch.into_iter().filter_map(|r| serde_json::from_str(&r.json).ok()));
            },
            || u64::MAX,
        );
        (events_in, catalog_in, done.probe().0)
    });
    InMemory { events, catalog, probe, read }
}
