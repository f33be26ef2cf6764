//! Posteriors and weights per entity, published at each complete tick where they change.
//!
//! Input: the window's arm counts per entity (only entities whose counts changed at a tick).
//! For each, the Beta posteriors, `p_best` and the policy (burn-in, floor, step limit) give
//! a [`WeightRecord`]. An entity still walking towards its target under `max_step` gets a
//! record at every following tick until it arrives, so ticks are processed one by one in
//! order however far the frontier jumps: the output does not depend on how time advanced.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::core::Concat;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::Stream;

use crate::config::{Dataflow, PolicyConfig, Prior};
use crate::event::{arm_id_of, entity_id_of, Catalog, Name, NameId, Registration};
use crate::policy::{limit_step, target_weights, Status};
use crate::posterior::{p_best, Beta};
use crate::time::{first_open_tick, now_ms, Ticks};
use crate::window::ArmCount;

/// The version of the weight record's layout (`schemas/weights.schema.json`).
pub const SCHEMA_VERSION: u32 = 1;

/// One arm of a weight record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArmWeight {
    /// The arm id.
    pub arm_id: String,
    /// Share of traffic serving should give this arm.
    pub weight: f64,
    /// Probability that this arm's rate is the largest.
    pub p_best: f64,
    /// Posterior alpha: prior alpha + successes.
    pub alpha: f64,
    /// Posterior beta: prior beta + failures.
    pub beta: f64,
    /// Resolved assignments in the window.
    pub trials: u64,
    /// Of those, successes.
    pub successes: u64,
    /// Metadata of the arm's registry record, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
}

/// What serving reads: an entity's arm weights as of the end of a complete tick.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightRecord {
    /// The entity id.
    pub entity_id: String,
    /// The tick index of `as_of`: strictly increasing per entity.
    pub version: u64,
    /// Last millisecond of the tick, ms since the epoch.
    pub as_of: i64,
    /// Wall-clock ms when computed (the only non-deterministic field).
    pub computed_at: i64,
    /// `burn_in` or `adaptive`.
    pub status: Status,
    /// Arms sorted by `arm_id`.
    pub arms: Vec<ArmWeight>,
    /// The dataflow (job) that wrote it.
    pub dataflow: String,
    /// Layout version, [`SCHEMA_VERSION`].
    pub schema_version: u32,
}

/// A weight record serialized where it was computed (so encoding runs on every worker),
/// with what the sink orders by.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodedRecord {
    /// The record's tick.
    pub version: u64,
    /// The record's entity.
    pub entity_id: String,
    /// The record as JSON.
    pub json: String,
    /// How many arms it lists.
    pub arms: usize,
}

impl EncodedRecord {
    /// Serializes `record`.
    pub fn of(record: &WeightRecord) -> Self {
        // Strings, integers, floats (serde_json writes non-finite ones as null) and JSON
        // values: serialization cannot fail.
        let json = serde_json::to_string(record).expect("a weight record always serializes");
        EncodedRecord { version: record.version, entity_id: record.entity_id.clone(), json, arms: record.arms.len() }
    }
}

/// What the weight stage needs from the job file.
#[derive(Clone, Debug)]
pub struct WeightRules {
    ticks: Ticks,
    prior: Prior,
    policy: PolicyConfig,
    dataflow: String,
    declared: HashMap<NameId, Vec<NameId>>,
    declared_names: Vec<Name>,
}

impl WeightRules {
    /// The weight rules of a job file, with its declared arms.
    pub fn of(job: &Dataflow) -> Self {
        let mut declared = HashMap::new();
        let mut declared_names = Vec::new();
        for decl in &job.arms {
            let entity = entity_id_of(&decl.entity_id);
            declared_names.push(Name { id: entity, text: decl.entity_id.clone() });
            let arms = decl
                .arm_ids
                .iter()
                .map(|arm| {
                    let id = arm_id_of(arm);
                    declared_names.push(Name { id, text: arm.clone() });
                    id
                })
                .collect();
            declared.insert(entity, arms);
        }
        WeightRules {
            ticks: Ticks::new(job.tick_ms),
            prior: job.prior.clone(),
            policy: job.policy.clone(),
            dataflow: job.name.clone(),
            declared,
            declared_names,
        }
    }
}


/// Weights of one entity and where the step limit is taking them.
struct EntityWeights {
    last: WeightRecord,
    target: Vec<f64>,
}

/// An arm's standing on the arm registry.
struct Registered {
    active: bool,
    metadata: Option<serde_json::Value>,
}

/// The policy state of one worker's entities.
struct Policy {
    rules: WeightRules,
    names: HashMap<NameId, String>,
    /// Window counts per entity, as last changed.
    counts: HashMap<NameId, Vec<ArmCount>>,
    /// Arm registry standing per entity and arm, as of the last processed tick.
    registry: HashMap<NameId, BTreeMap<NameId, Registered>>,
    entities: HashMap<NameId, EntityWeights>,
    /// Entities whose published weights have not reached their target yet.
    converging: BTreeSet<NameId>,
}

impl Policy {
    fn name(&self, id: NameId) -> String {
        self.names.get(&id).cloned().unwrap_or_else(|| format!("{id:016x}"))
    }

    /// Applies an arm registry change (at the tick it takes effect).
    fn register(&mut self, r: Registration) {
        let metadata = r.metadata.and_then(|m| serde_json::from_str(&m).ok());
        self.registry.entry(r.entity).or_default().insert(r.arm, Registered { active: r.active, metadata });
    }

    /// The record of `entity` at `tick` from its current window counts and registry.
    fn recompute(&mut self, entity: NameId, tick: u64) -> EncodedRecord {
        let empty = Vec::new();
        let counts = self.counts.get(&entity).unwrap_or(&empty);
        let registry = self.registry.get(&entity);
        let standing = |arm: &NameId| registry.and_then(|r| r.get(arm));
        // Arms in the window, declared in the job, or active on the registry; minus retired.
        let mut ids: Vec<(NameId, i64, i64)> = counts.clone();
        let declared = self.rules.declared.get(&entity).into_iter().flatten();
        let registered = registry.into_iter().flatten().filter(|(_, r)| r.active).map(|(arm, _)| arm);
        for arm in declared.chain(registered) {
            if !ids.iter().any(|(a, _, _)| a == arm) {
                ids.push((*arm, 0, 0));
            }
        }
        ids.retain(|(arm, _, _)| standing(arm).is_none_or(|r| r.active));
        let mut arms: Vec<(String, i64, i64, Option<serde_json::Value>)> = ids
            .iter()
            .map(|(arm, t, s)| (self.name(*arm), *t, *s, standing(arm).and_then(|r| r.metadata.clone())))
            .collect();
        arms.sort_by(|a, b| a.0.cmp(&b.0));
        let posteriors: Vec<Beta> = arms
            .iter()
            .map(|(_, t, s, _)| Beta { alpha: self.rules.prior.alpha + *s as f64, beta: self.rules.prior.beta + (*t - *s) as f64 })
            .collect();
        let p = p_best(&posteriors);
        let trials: Vec<u64> = arms.iter().map(|(_, t, _, _)| (*t).max(0) as u64).collect();
        let (target, status) = target_weights(&p, &trials, self.rules.policy.min_trials, self.rules.policy.floor);
        let previous = self.entities.get(&entity).map(|e| &e.last).filter(|last| {
            last.arms.len() == arms.len() && last.arms.iter().zip(&arms).all(|(a, (name, _, _, _))| &a.arm_id == name)
        });
        let weights = match (previous, self.rules.policy.max_step) {
            (Some(last), Some(max_step)) => {
                let before: Vec<f64> = last.arms.iter().map(|a| a.weight).collect();
                limit_step(&before, &target, max_step)
            }
            _ => target.clone(),
        };
        let record = WeightRecord {
            entity_id: self.name(entity),
            version: tick,
            as_of: self.rules.ticks.as_of(tick),
            computed_at: now_ms(),
            status,
            arms: arms
                .into_iter()
                .zip(&posteriors)
                .zip(p.iter().zip(&weights))
                .map(|(((arm_id, t, s, metadata), post), (p, w))| ArmWeight {
                    arm_id,
                    weight: *w,
                    p_best: *p,
                    alpha: post.alpha,
                    beta: post.beta,
                    trials: t.max(0) as u64,
                    successes: s.max(0) as u64,
                    metadata,
                })
                .collect(),
            dataflow: self.rules.dataflow.clone(),
            schema_version: SCHEMA_VERSION,
        };
        self.remember(entity, record, target)
    }

    /// One more step of the step limit for an entity whose counts did not change.
    fn step(&mut self, entity: NameId, tick: u64) -> Option<EncodedRecord> {
        let max_step = self.rules.policy.max_step?;
        let as_of = self.rules.ticks.as_of(tick);
        let EntityWeights { mut last, target } = self.entities.remove(&entity)?;
        let before: Vec<f64> = last.arms.iter().map(|a| a.weight).collect();
        for (arm, w) in last.arms.iter_mut().zip(limit_step(&before, &target, max_step)) {
            arm.weight = w;
        }
        last.version = tick;
        last.as_of = as_of;
        last.computed_at = now_ms();
        Some(self.remember(entity, last, target))
    }

    /// Keeps `last` as the entity's published record and returns it encoded.
    fn remember(&mut self, entity: NameId, last: WeightRecord, target: Vec<f64>) -> EncodedRecord {
        let arrived = last.arms.iter().zip(&target).all(|(a, t)| (a.weight - t).abs() <= 1e-12);
        if arrived {
            self.converging.remove(&entity);
        } else {
            self.converging.insert(entity);
        }
        let encoded = EncodedRecord::of(&last);
        self.entities.insert(entity, EntityWeights { last, target });
        encoded
    }
}

/// What can change an entity's weights at a tick.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum EntityChange {
    /// An update of the window's arm counts of `entity` at `tick`.
    Counted { entity: NameId, arms: Vec<ArmCount>, tick: u64, diff: isize },
    /// An arm registry change.
    Registered(Registration),
}

impl EntityChange {
    fn route(&self) -> u64 {
        match self {
            EntityChange::Counted { entity, .. } => *entity,
            EntityChange::Registered(r) => r.entity,
        }
    }
}

/// The weight operator: turns changed arm counts and arm registry changes into weight
/// records, tick by tick, serialized on the worker that computed them.
pub fn weigh<'scope>(
    counts: VecCollection<'scope, u64, (NameId, Vec<ArmCount>), isize>,
    catalog: Stream<'scope, u64, Vec<Catalog>>,
    rules: WeightRules,
) -> Stream<'scope, u64, Vec<EncodedRecord>> {
    let names = catalog.clone().flat_map(|c| if let Catalog::Name(n) = c { Some(n) } else { None }).broadcast();
    let registered = catalog.flat_map(|c| if let Catalog::Registration(r) = c { Some(EntityChange::Registered(r)) } else { None });
    let changes = counts.inner.map(|((entity, arms), tick, diff)| EntityChange::Counted { entity, arms, tick, diff }).concat(registered);
    // Counts and registry changes of an entity meet on the worker that owns the entity.
    changes.binary_frontier(names, Exchange::new(EntityChange::route), Pipeline, "Weights", move |capability, _info| {
        let mut capability = Some(capability);
        let mut policy = Policy {
            names: rules.declared_names.iter().map(|n| (n.id, n.text.clone())).collect(),
            rules,
            counts: HashMap::new(),
            registry: HashMap::new(),
            entities: HashMap::new(),
            converging: BTreeSet::new(),
        };
        // Per tick, per entity: its new counts (None: nothing left in the window).
        let mut changes: BTreeMap<u64, HashMap<NameId, Option<Vec<ArmCount>>>> = BTreeMap::new();
        // Registry changes by the tick they take effect: the tick holding their `ts`.
        let mut registrations: BTreeMap<u64, Vec<Registration>> = BTreeMap::new();
        let ticks = policy.rules.ticks;
        let mut next_tick = 0u64;
        move |(changes_in, changes_frontier), (names_in, names_frontier), output| {
            names_in.for_each(|_time, data| {
                for name in data.drain(..) {
                    policy.names.insert(name.id, name.text);
                }
            });
            changes_in.for_each(|time, data| {
                // A late registration takes effect at the tick it arrived in, never in the past.
                let arrived = time.least().copied().unwrap_or(0);
                for change in data.drain(..) {
                    match change {
                        EntityChange::Counted { entity, arms, tick, diff } => {
                            let slot = changes.entry(tick).or_default().entry(entity).or_insert(None);
                            if diff > 0 {
                                *slot = Some(arms);
                            }
                        }
                        EntityChange::Registered(r) => {
                            registrations.entry(ticks.tick_of(r.ts).max(arrived)).or_default().push(r)
                        }
                    }
                }
            });
            let Some(cap) = capability.as_mut() else { return };
            let frontier = first_open_tick(&[changes_frontier, names_frontier]);
            loop {
                let next_change = changes.first_key_value().map(|(t, _)| *t);
                let next_registration = registrations.first_key_value().map(|(t, _)| *t);
                let next_data = next_change.into_iter().chain(next_registration).min();
                let tick = if policy.converging.is_empty() {
                    match next_data {
                        Some(t) => t,
                        None => break,
                    }
                } else {
                    next_tick.max(*cap.time())
                };
                if frontier.is_some_and(|f| tick >= f) {
                    break;
                }
                let mut changed: BTreeSet<NameId> = BTreeSet::new();
                if next_change == Some(tick) {
                    for (entity, arms) in changes.pop_first().map(|(_, c)| c).unwrap_or_default() {
                        policy.counts.insert(entity, arms.unwrap_or_default());
                        changed.insert(entity);
                    }
                }
                if next_registration == Some(tick) {
                    let mut due = registrations.pop_first().map(|(_, r)| r).unwrap_or_default();
                    // Whatever order they arrived in, apply them in event-time order.
                    due.sort_by(|a, b| {
                        (a.ts, a.entity, a.arm, a.active, &a.metadata).cmp(&(b.ts, b.entity, b.arm, b.active, &b.metadata))
                    });
                    for r in due {
                        changed.insert(r.entity);
                        policy.register(r);
                    }
                }
                let mut records: Vec<EncodedRecord> = changed.iter().map(|entity| policy.recompute(*entity, tick)).collect();
                let walking: Vec<NameId> = policy.converging.iter().filter(|e| !changed.contains(e)).copied().collect();
                for entity in walking {
                    records.extend(policy.step(entity, tick));
                }
                if !records.is_empty() {
                    output.session(&cap.delayed(&tick)).give_iterator(records.into_iter());
                }
                next_tick = tick + 1;
            }
            match frontier {
                Some(f) => cap.downgrade(&f.max(*cap.time())),
                None => capability = None,
            }
        }
    })
}
