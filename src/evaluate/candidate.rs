//! What a candidate job would have published on the logged traffic: the dataset's rows fed
//! through the same dataflow as replay and the worker ([`crate::dataflow::bandit`]), each
//! assignment at its `ts` and, when it converted, an outcome at the same `ts` (so its reward is
//! the logged one whatever the candidate's `attribution`).

use std::collections::BTreeSet;
use std::sync::Arc;

use banditflow_core::config::Dataflow;
use banditflow_core::event::{arm_id_of, entity_id_of, Assignment, AssignmentKey, Catalog, Event, Name, Outcome};
use banditflow_core::limits::Limits;
use banditflow_core::record::WeightRecord;
use banditflow_core::time::Ticks;
use banditflow_core::wire::Decoder;

use super::dataset::Dataset;
use crate::dataflow::in_memory::{in_memory, InMemory};
use crate::dataflow::Arrival;

/// Events sent between waits for the dataflow to catch up.
const EVENTS_PER_STEP: usize = 100_000;

/// The weight records `job` publishes over `dataset`, in the order it wrote them, up to the
/// tick of the last row (as a replay stops there), and how many lines of the dataset's arm
/// registry were refused.
///
/// Admission does not run here: the candidate's caps on entities and arms, forgetting and
/// `require_declared_arms` do not apply, since the dataset holds only what the logged job kept.
pub fn published(job: &Dataflow, dataset: &Arc<Dataset>) -> Result<(Vec<WeightRecord>, u64), String> {
    let ticks = Ticks::new(job.tick_ms);
    // Every event by tick; names first.
    let mut events: Vec<(u64, Event)> = Vec::new();
    let mut arms: BTreeSet<&str> = BTreeSet::new();
    for entity in &dataset.entities {
        for row in &entity.rows {
            arms.insert(&row.arm_id);
            let key = AssignmentKey::of(&row.assignment_id);
            let tick = ticks.tick_of(row.ts);
            events.push((tick, Event::Assignment(Assignment { key, entity: entity_id_of(&entity.entity_id), arm: arm_id_of(&row.arm_id), ts: row.ts, weights_version: 0 })));
            if row.reward == 1 {
                events.push((tick, Event::Outcome(Outcome { key, ts: row.ts })));
            }
        }
    }
    events.sort_by_key(|(tick, _)| *tick);
    // A replay's last complete tick is the last event's.
    let last = ticks.as_of(events.last().map_or(0, |(tick, _)| *tick));
    // Entity and arm ids hash differently: each name under its own.
    let mut names: Vec<Name> = dataset.entities.iter().map(|e| Name { id: entity_id_of(&e.entity_id), text: e.entity_id.clone() }).collect();
    names.extend(arms.into_iter().map(|text| Name { id: arm_id_of(text), text: text.to_owned() }));
    let mut registrations = Vec::new();
    let mut refused = 0u64;
    if let Some(path) = &dataset.arms {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        // The registry as export read it: any time is fine, there is no clock to be ahead of.
        let mut decoder = Decoder::new(None, Limits::default().any_time());
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match decoder.registration(line.as_bytes(), 0, &mut names) {
                Ok(r) => registrations.push((ticks.tick_of(r.ts), r)),
                Err(_) => refused += 1,
            }
        }
    }
    registrations.sort_by_key(|(tick, r)| (*tick, r.ts));
    let job = job.clone();
    let read = timely::execute_directly(move |worker| {
        let InMemory { events: mut events_in, catalog: mut catalog_in, probe, read } = in_memory(worker, &job);
        for name in names {
            catalog_in.send(Catalog::Name(name));
        }
        let mut registrations = registrations.into_iter().peekable();
        let mut sent = 0usize;
        for (tick, event) in events {
            if tick > *events_in.time() {
                while let Some((at, r)) = registrations.next_if(|(t, _)| *t < tick) {
                    let at = at.max(*catalog_in.time());
                    catalog_in.advance_to(at);
                    catalog_in.send(Catalog::Registration(r));
                }
                events_in.advance_to(tick);
                catalog_in.advance_to(tick);
                if sent >= EVENTS_PER_STEP {
                    sent = 0;
                    while probe.less_than(&tick) {
                        worker.step();
                    }
                }
            }
            events_in.send(Arrival { event, raw: None });
            sent += 1;
        }
        for (at, r) in registrations {
            let at = at.max(*catalog_in.time());
            catalog_in.advance_to(at);
            catalog_in.send(Catalog::Registration(r));
        }
        drop(events_in);
        drop(catalog_in);
        while worker.step() {}
        read.take()
    });
    Ok((read.into_iter().filter(|r| r.as_of <= last).collect(), refused))
}
