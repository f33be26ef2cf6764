//! One repetition of a scenario: serving draws each unit's arm from the weights the dataflow
//! last published, the unit's outcome comes from the arm's true rate, and both go into the
//! same dataflow replay and the worker run ([`crate::dataflow::bandit`]), one tick at a time:
//! a tick's records are read back before the next tick's units are served.

use std::collections::BTreeMap;
use std::sync::Mutex;

use banditflow_core::config::Dataflow;
use banditflow_core::environment::{arm_name, draw_slot, stream, Environment, Purpose};
use banditflow_core::event::{arm_id_of, entity_id_of, Assignment, AssignmentKey, Catalog, Event, Name, NameId, Outcome, Registration};
use banditflow_core::regret::Curve;
use banditflow_core::scenario::Scenario;
use rand_chacha::ChaCha8Rng;

use super::logs::Logs;
use crate::dataflow::in_memory::{in_memory, InMemory};
use crate::dataflow::Arrival;

/// What one repetition measured.
#[derive(Clone, Debug)]
pub struct RepOutcome {
    /// Cumulative regret of the dataflow's weights, per entity averaged over entities.
    pub weights: Vec<f64>,
    /// The same for a uniform split.
    pub uniform: Vec<f64>,
    /// The same for an oracle that knows the true rates but, like the weights, only at each
    /// refresh: it serves the arm that was best at the last refresh.
    pub oracle: Vec<f64>,
    /// Arms (in records read) whose `ci95` held the arm's true rate, and arms checked.
    pub coverage: (u64, u64),
    /// Records read back.
    pub records: u64,
}

/// The serving side of one entity: its world, its own random stream, and what it last read.
struct Served {
    entity: NameId,
    name: String,
    world: Environment,
    serving: ChaCha8Rng,
    /// Per slot, the weight it is drawn with (fixed at each refresh).
    weights: Vec<f64>,
    /// The version of the record those weights came from (0: none yet).
    version: u64,
    /// The slot the oracle serves until the next refresh.
    oracle_slot: usize,
    curves: [Curve; 3],
}

/// Runs repetition `rep` of `scenario` with `job` (its tick already `refresh_every`) on
/// `workers` timely workers, sampling the regret curves after the steps `at`; writes the logs
/// when `logs` is given. Worker 0 serves and reads the records back (the publish operator
/// gathers them there); the others run their share of the dataflow.
pub fn run_rep(scenario: &Scenario, job: &Dataflow, rep: u32, at: &[u64], logs: Option<Logs>, workers: usize) -> Result<RepOutcome, String> {
    let scenario = scenario.clone();
    let job = job.clone();
    let at = at.to_vec();
    let logs = Mutex::new(logs);
    let guards = timely::execute(timely::Config::process(workers.max(1)), move |worker| {
        let InMemory { events: mut events_in, catalog: mut catalog_in, probe, read } = in_memory(worker, &job);
        if worker.index() != 0 {
            // Nothing to serve here: with its inputs closed, this worker's frontier is worker
            // 0's, and it computes its share of the entities and keys until the end.
            drop(events_in);
            drop(catalog_in);
            while worker.step() {}
            return None;
        }
        let mut logs = logs.lock().ok().and_then(|mut l| l.take());
        let mut entities: Vec<Served> = (0..scenario.entities)
            .map(|e| {
                let name = format!("entity-{e:03}");
                let world = Environment::new(&scenario, rep, e);
                let slots = world.slots().len();
                Served {
                    entity: entity_id_of(&name),
                    name,
                    world,
                    serving: stream(scenario.seed, rep, e, Purpose::Serving),
                    weights: vec![1.0; slots],
                    version: 0,
                    oracle_slot: 0,
                    curves: [Curve::new(&at), Curve::new(&at), Curve::new(&at)],
                }
            })
            .collect();
        // Every arm there is at the start, declared through the registry at ts 0.
        for served in &mut entities {
            catalog_in.send(Catalog::Name(Name { id: served.entity, text: served.name.clone() }));
            for arm in served.world.slots().to_vec() {
                register(&mut catalog_in, &mut logs, served, arm.number, true, 0);
            }
            served.oracle_slot = served.world.best_slot();
        }
        let refresh = scenario.refresh_every;
        let mut pending: BTreeMap<u64, Vec<(i64, String)>> = BTreeMap::new();
        let mut coverage = (0u64, 0u64);
        let mut records = 0u64;
        let last_tick = (scenario.steps - 1) / refresh;
        for tick in 0..=last_tick {
            let (first, end) = (tick * refresh, ((tick + 1) * refresh).min(scenario.steps));
            for step in first..end {
                for (e, served) in entities.iter_mut().enumerate() {
                    if let Some(churn) = served.world.advance() {
                        register(&mut catalog_in, &mut logs, served, churn.retired, false, step as i64);
                        register(&mut catalog_in, &mut logs, served, churn.added, true, step as i64);
                    }
                    let slot = draw_slot(&served.weights, &mut served.serving);
                    let arm = served.world.slots()[slot];
                    let best = served.world.best_rate();
                    served.curves[0].add(best - arm.rate);
                    served.curves[1].add(best - served.world.mean_rate());
                    served.curves[2].add(best - served.world.slots()[served.oracle_slot].rate);
                    let id = format!("e{e}-{step}");
                    let key = AssignmentKey::of(&id);
                    let name = arm_name(arm.number);
                    events_in.send(Arrival { event: Event::Assignment(Assignment { key, entity: served.entity, arm: arm_id_of(&name), ts: step as i64, weights_version: served.version }), raw: None });
                    if let Some(logs) = logs.as_mut() {
                        logs.assignment(&id, &served.name, &name, step as i64, served.version, propensity(&served.weights, slot));
                    }
                    if let Some(delay) = served.world.outcome(slot) {
                        let at = step + delay;
                        if at < scenario.steps {
                            pending.entry(at / refresh).or_default().push((at as i64, id));
                        }
                    }
                }
            }
            // Outcomes due in this tick go in with its events (they are at their own ts).
            for (ts, id) in pending.remove(&tick).unwrap_or_default() {
                events_in.send(Arrival { event: Event::Outcome(Outcome { key: AssignmentKey::of(&id), ts }), raw: None });
                if let Some(logs) = logs.as_mut() {
                    logs.outcome(&id, ts);
                }
            }
            events_in.advance_to(tick + 1);
            catalog_in.advance_to(tick + 1);
            while probe.less_than(&(tick + 1)) {
                worker.step();
            }
            // The tick's records: the weights of the next tick's units.
            for record in read.borrow_mut().drain(..) {
                records += 1;
                let Some(served) = entities.iter_mut().find(|s| s.name == record.entity_id) else { continue };
                let names: Vec<String> = served.world.slots().iter().map(|a| arm_name(a.number)).collect();
                for arm in &record.arms {
                    if let Some(live) = names.iter().position(|n| *n == arm.arm_id).map(|slot| served.world.slots()[slot]) {
                        coverage.1 += 1;
                        if arm.ci95[0] <= live.rate && live.rate <= arm.ci95[1] {
                            coverage.0 += 1;
                        }
                    }
                }
                served.weights = names.iter().map(|n| record.arms.iter().find(|w| w.arm_id == *n).map_or(0.0, |w| w.weight)).collect();
                served.version = record.version;
                if let Some(logs) = logs.as_mut() {
                    logs.record(&record);
                }
            }
            for served in &mut entities {
                served.oracle_slot = served.world.best_slot();
            }
        }
        drop(events_in);
        drop(catalog_in);
        while worker.step() {}
        if let Some(logs) = logs {
            if let Err(e) = logs.finish() {
                return Some(Err(e));
            }
        }
        let mean = |i: usize| -> Vec<f64> {
            let n = entities.len() as f64;
            (0..at.len()).map(|k| entities.iter().map(|s| s.curves[i].values.get(k).copied().unwrap_or(0.0)).sum::<f64>() / n).collect()
        };
        Some(Ok(RepOutcome { weights: mean(0), uniform: mean(1), oracle: mean(2), coverage, records }))
    })?;
    let mut outcome = None;
    for result in guards.join() {
        if let Some(rep) = result? {
            outcome = Some(rep);
        }
    }
    outcome.unwrap_or_else(|| Err("the dataflow ended without a result".into()))
}

/// The probability `draw_slot` gave `slot` under `weights`: its share of their sum, or 1/K
/// when they sum to nothing (it then draws uniformly).
fn propensity(weights: &[f64], slot: usize) -> f64 {
    let total: f64 = weights.iter().sum();
    if total.is_nan() || total <= 0.0 {
        1.0 / weights.len().max(1) as f64
    } else {
        weights.get(slot).copied().unwrap_or(0.0) / total
    }
}

/// Announces the arm's name (when it is new) and registers it (`active`) or retires it at `ts`.
fn register(catalog: &mut timely::dataflow::operators::vec::input::Handle<u64, Catalog>, logs: &mut Option<Logs>, served: &Served, number: u32, active: bool, ts: i64) {
    let name = arm_name(number);
    let arm = arm_id_of(&name);
    if active {
        catalog.send(Catalog::Name(Name { id: arm, text: name.clone() }));
    }
    catalog.send(Catalog::Registration(Registration { entity: served.entity, arm, active, ts, metadata: None, initial_weight: None }));
    if let Some(logs) = logs.as_mut() {
        logs.registration(&served.name, &name, active, ts);
    }
}
