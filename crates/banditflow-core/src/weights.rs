//! Posteriors, statistics, decisions and weights per entity, tick by tick: the state the
//! weigh operator keeps.
//!
//! Input: the window's arm counts per entity (only entities whose counts changed at a tick),
//! the window's assignments by the record they were served under, and arm registry changes.
//! For each changed entity, the Beta posteriors, `p_best` and expected loss, the decision
//! rules and the policy (burn-in, floor, step limit) give a [`WeightRecord`] and any
//! [`DecisionEvent`]s. An entity still walking towards its target under `max_step`, or with a
//! decision streak running, gets a record at every following tick until it arrives, so ticks
//! are processed one by one in order however far the frontier jumps: the output does not
//! depend on how time advanced.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rustc_hash::FxHashMap;

use crate::attribution::Served;
use crate::config::{Allocation, Dataflow, DecisionConfig, OnWinner, PolicyConfig, Prior};
use crate::decision::{cap_stopped, shape, stopped_cap, ArmState, Change, Decisions, Standing};
use crate::event::{arm_id_of, entity_id_of, Forgotten, InitialWeight, Name, NameId, Registration};
use crate::policy::{carried_over, declared_split, limit_step, target_weights, BurnIn, Status};
use crate::posterior::{best_arm, Beta};
use crate::record::{
    ArmWeight, DecisionEvent, DecisionStatistics, EncodedDecision, EncodedRecord, Published, Thresholds, WeightRecord,
    DECISION_SCHEMA_VERSION, SCHEMA_VERSION,
};
use crate::sparse::shrink_map;
use crate::srm::ServedCounts;
use crate::statistics::{independence, mean, versus_control};
use crate::time::{now_ms, Ticks};
use crate::window::ArmCount;

/// What the weight stage needs from the job file.
#[derive(Clone, Debug)]
pub struct WeightRules {
    ticks: Ticks,
    window_ms: u64,
    prior: Prior,
    policy: PolicyConfig,
    decision: DecisionConfig,
    dataflow: String,
    declared: HashMap<NameId, Vec<NameId>>,
    declared_names: Vec<Name>,
    /// Per declared entity, its own control arm.
    controls: HashMap<NameId, String>,
    /// Per declared entity, its arms' initial weights from the job file.
    initial: HashMap<NameId, HashMap<NameId, f64>>,
}

impl WeightRules {
    /// The weight rules of a job file, with its declared arms.
    pub fn of(job: &Dataflow) -> Self {
        let mut declared = HashMap::new();
        let mut declared_names = Vec::new();
        let mut controls = HashMap::new();
        let mut initial = HashMap::new();
        for decl in &job.arms {
            let entity = entity_id_of(&decl.entity_id);
            if !decl.initial_weights.is_empty() {
                initial.insert(entity, decl.initial_weights.iter().map(|(arm, w)| (arm_id_of(arm), *w)).collect());
            }
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
            if let Some(control) = &decl.control {
                controls.insert(entity, control.clone());
            }
        }
        WeightRules {
            ticks: Ticks::new(job.tick_ms),
            window_ms: job.window_ms,
            prior: job.prior.clone(),
            policy: job.policy.clone(),
            decision: job.decision.clone(),
            dataflow: job.name.clone(),
            declared,
            declared_names,
            controls,
            initial,
        }
    }

    /// The thresholds as decision events carry them.
    fn thresholds(&self) -> Thresholds {
        let d = &self.decision;
        Thresholds {
            winner_p_best: d.winner_p_best,
            winner_max_loss: d.winner_max_loss,
            confirm_ticks: d.confirm_ticks,
            stop_p_best: d.stop_p_best,
            allow_stop: d.allow_stop,
            on_winner: match d.on_winner {
                OnWinner::KeepExploring => "keep_exploring".into(),
                OnWinner::Exploit => "exploit".into(),
            },
        }
    }

    /// The weight a stopped arm is held to.
    fn stopped_cap(&self) -> f64 {
        stopped_cap(&self.decision, self.policy.floor)
    }

    /// The record's `max_age_hint_ms`: five ticks. A live worker with traffic publishes some
    /// record most ticks; five without any say it has stalled (or all traffic stopped).
    fn max_age_hint_ms(&self) -> u64 {
        self.ticks.tick_ms().saturating_mul(MAX_AGE_TICKS)
    }
}

/// Ticks in a record's `max_age_hint_ms`.
const MAX_AGE_TICKS: u64 = 5;

/// Weights of one entity and where the step limit is taking them.
struct EntityWeights {
    last: WeightRecord,
    target: Vec<f64>,
}

/// An arm's standing on the arm registry.
struct Registered {
    active: bool,
    metadata: Option<serde_json::Value>,
    initial_weight: Option<InitialWeight>,
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
    /// Arm states and decision streaks per entity. (Name ids are hashes already: the maps
    /// looked up once or more per record use the cheap Fx hasher over them.)
    decisions: FxHashMap<NameId, Decisions>,
    /// Entities with a decision streak running: evaluated at every tick.
    deciding: BTreeSet<NameId>,
    /// State changes waiting for the entity's next record (re-declared arms).
    redeclared: FxHashMap<NameId, Vec<Change>>,
    /// The sample-ratio state per entity (also looked up per window change).
    served: FxHashMap<NameId, ServedCounts>,
    /// Entities restored under another `allocation` than their last record's: looked at
    /// again at the first tick after `hold_through`.
    switching: BTreeSet<NameId>,
    /// Until this `as_of`, every entity keeps `held_static`, the allocation the restored
    /// checkpoint's job ran under (the newest version already published when a restarted
    /// worker started).
    hold_through: i64,
    /// Whether the allocation held through `hold_through` is static.
    held_static: bool,
}

impl Policy {
    fn name(&self, id: NameId) -> String {
        self.names.get(&id).cloned().unwrap_or_else(|| format!("{id:016x}"))
    }

    /// Applies an arm registry change (at the tick it takes effect).
    fn register(&mut self, r: Registration) {
        let metadata = r.metadata.and_then(|m| serde_json::from_str(&m).ok());
        if r.active {
            if let Some(change) = self.decisions.get_mut(&r.entity).and_then(|d| d.redeclared(r.arm)) {
                self.redeclared.entry(r.entity).or_default().push(change);
            }
        }
        let standing = Registered { active: r.active, metadata, initial_weight: r.initial_weight };
        self.registry.entry(r.entity).or_default().insert(r.arm, standing);
    }

    /// The record of `entity` at `tick` from its current window counts and registry, with
    /// the decision events it brings.
    fn recompute(&mut self, entity: NameId, tick: u64, out: &mut Vec<Published>) {
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
        let mut arms: Vec<(NameId, String, u64, u64, Option<serde_json::Value>)> = ids
            .iter()
            .map(|(arm, t, s)| (*arm, self.name(*arm), (*t).max(0) as u64, (*s).max(0) as u64, standing(arm).and_then(|r| r.metadata.clone())))
            .collect();
        arms.sort_by(|a, b| a.1.cmp(&b.1));
        // An entity whose last arm left: one record saying so, then none until it has arms.
        let was_empty = self.entities.get(&entity).is_some_and(|e| e.last.arms.is_empty());
        if arms.is_empty() && (was_empty || !self.entities.contains_key(&entity)) {
            return;
        }
        let posteriors: Vec<Beta> = arms
            .iter()
            .map(|(_, _, t, s, _)| Beta { alpha: self.rules.prior.alpha + *s as f64, beta: self.rules.prior.beta + (*t - (*s).min(*t)) as f64 })
            .collect();
        let odds = best_arm(&posteriors);
        let trials: Vec<u64> = arms.iter().map(|a| a.2).collect();
        // The split the arms declared: an arm's registry record's initial weight, else the job file's.
        // (Most entities declare none: no list to build for them, once per record.)
        let job_initial = self.rules.initial.get(&entity);
        let any_initial = job_initial.is_some() || registry.is_some_and(|r| r.values().any(|x| x.initial_weight.is_some()));
        let split = any_initial
            .then(|| {
                let initial: Vec<Option<f64>> = arms
                    .iter()
                    .map(|a| standing(&a.0).and_then(|r| r.initial_weight).map(InitialWeight::get).or_else(|| job_initial.and_then(|w| w.get(&a.0).copied())))
                    .collect();
                declared_split(&initial)
            })
            .flatten();
        // An entity out of burn-in stays out when an arm joins: the arm has a burn-in of its own.
        let left = self.entities.get(&entity).is_some_and(|e| e.last.status != Status::BurnIn);
        let policy = &self.rules.policy;
        let burn_in = BurnIn { min_trials: policy.min_trials, new_arm_weight: policy.new_arm_weight, left, split: split.as_deref() };
        let (mut target, status) = target_weights(&odds.p_best, &trials, &burn_in, policy.floor);
        // A restarted job that changed its allocation keeps the old one for the ticks it had
        // published already, so that what it publishes next walks on from what it published.
        // Every entity holds, with a record or not: one first published after the checkpoint
        // (by a worker lagging its traffic) was published under the old allocation too.
        let fixed_now = policy.allocation == Allocation::Static;
        let holding = self.rules.ticks.as_of(tick) <= self.hold_through && self.held_static != fixed_now;
        let fixed = if holding { self.held_static } else { fixed_now };
        if holding && !arms.is_empty() {
            self.switching.insert(entity);
        }
        let short: Vec<bool> = trials.iter().map(|&t| status == Status::BurnIn || t < policy.min_trials).collect();

        // Decisions first: the states shape the weights.
        let arm_ids: Vec<NameId> = arms.iter().map(|a| a.0).collect();
        let decisions = self.decisions.entry(entity).or_default();
        decisions.retain(&arm_ids);
        let standings: Vec<Standing> = arms
            .iter()
            .enumerate()
            .map(|(i, a)| Standing { arm: a.0, p_best: odds.p_best[i], expected_loss: odds.expected_loss[i], burn_in: short[i] })
            .collect();
        let mut changes = self.redeclared.remove(&entity).unwrap_or_default();
        changes.extend(decisions.evaluate(&self.rules.decision, tick, &standings));
        let states: Vec<ArmState> = arm_ids.iter().map(|a| decisions.state(*a)).collect();
        let status = if arms.is_empty() {
            Status::Empty
        } else if fixed {
            Status::Static
        } else if decisions.has_winner() {
            Status::Winner
        } else {
            status
        };
        // After a change the others' rules see a new standing: look again at the next tick.
        if decisions.deciding() || !changes.is_empty() {
            self.deciding.insert(entity);
        } else {
            self.deciding.remove(&entity);
        }
        let weights = if fixed {
            // A static split is published as declared: decisions are reported, not applied,
            // and there is no step to limit (the operator set the split).
            target = split.unwrap_or_else(|| vec![1.0 / arms.len().max(1) as f64; arms.len()]);
            target.clone()
        } else {
            shape(&mut target, &states, &short, &self.rules.decision, self.rules.policy.floor);
            // The step limit walks from the last record's weights, carried over to the arms
            // of now (a new arm from 0, a retired arm's weight shared by the rest).
            let before = self.entities.get(&entity).and_then(|e| {
                let previous: Vec<(&str, f64)> = e.last.arms.iter().map(|a| (a.arm_id.as_str(), a.weight)).collect();
                let names: Vec<&str> = arms.iter().map(|a| a.1.as_str()).collect();
                carried_over(&previous, &names)
            });
            let mut weights = match (before, self.rules.policy.max_step) {
                (Some(before), Some(max_step)) => limit_step(&before, &target, max_step),
                _ => target.clone(),
            };
            // A stop takes effect at once, whatever the step limit.
            cap_stopped(&mut weights, &states, self.rules.stopped_cap());
            weights
        };

        let entity_name = self.name(entity);
        let control_name = self.rules.controls.get(&entity).or(self.rules.decision.control.as_ref());
        let control = control_name.and_then(|c| arms.iter().find(|a| &a.1 == c)).map(|a| (a.2, a.3));
        let is_control = |name: &str| control_name.is_some_and(|c| c == name);
        let chi_square = independence(arms.iter().map(|a| (a.2, a.3)));
        let srm = self.served.entry(entity).or_default().test(self.rules.decision.srm_alpha);
        let as_of = self.rules.ticks.as_of(tick);
        let version = as_of.max(0) as u64;
        let record = WeightRecord {
            entity_id: entity_name.clone(),
            version,
            as_of,
            computed_at: now_ms(),
            status,
            arms: arms
                .into_iter()
                .enumerate()
                .map(|(i, (_, arm_id, t, s, metadata))| {
                    let post = posteriors[i];
                    let vs_control = match control {
                        Some(c) if !is_control(&arm_id) => Some(versus_control((t, s), c)),
                        _ => None,
                    };
                    ArmWeight {
                        weight: weights[i],
                        p_best: odds.p_best[i],
                        alpha: post.alpha,
                        beta: post.beta,
                        trials: t,
                        successes: s,
                        mean: mean(post),
                        ci95: odds.ci95[i],
                        expected_loss: odds.expected_loss[i],
                        vs_control,
                        state: states[i],
                        metadata,
                        arm_id,
                    }
                })
                .collect(),
            chi_square,
            srm,
            max_age_hint_ms: self.rules.max_age_hint_ms(),
            dataflow: self.rules.dataflow.clone(),
            schema_version: SCHEMA_VERSION,
        };
        for change in changes {
            let Some(i) = arm_ids.iter().position(|a| *a == change.arm) else { continue };
            let arm = &record.arms[i];
            let event = DecisionEvent {
                entity_id: entity_name.clone(),
                arm_id: arm.arm_id.clone(),
                old_state: change.from,
                new_state: change.to,
                rule: change.rule,
                version,
                as_of,
                statistics: DecisionStatistics {
                    p_best: arm.p_best,
                    expected_loss: arm.expected_loss,
                    mean: arm.mean,
                    ci95: arm.ci95,
                    trials: arm.trials,
                    successes: arm.successes,
                },
                thresholds: self.rules.thresholds(),
                dataflow: self.rules.dataflow.clone(),
                schema_version: DECISION_SCHEMA_VERSION,
            };
            out.push(Published::Decision(EncodedDecision::of(&event, tick)));
        }
        out.push(Published::Weights(self.remember(entity, record, target, tick)));
    }

    /// One more step of the step limit for an entity whose counts did not change.
    fn step(&mut self, entity: NameId, tick: u64) -> Option<EncodedRecord> {
        let max_step = self.rules.policy.max_step?;
        let as_of = self.rules.ticks.as_of(tick);
        let EntityWeights { mut last, target } = self.entities.remove(&entity)?;
        let before: Vec<f64> = last.arms.iter().map(|a| a.weight).collect();
        let states: Vec<ArmState> = last.arms.iter().map(|a| a.state).collect();
        let mut weights = limit_step(&before, &target, max_step);
        cap_stopped(&mut weights, &states, self.rules.stopped_cap());
        for (arm, w) in last.arms.iter_mut().zip(weights) {
            arm.weight = w;
        }
        last.version = as_of.max(0) as u64;
        last.as_of = as_of;
        last.computed_at = now_ms();
        last.max_age_hint_ms = self.rules.max_age_hint_ms();
        if let Some(served) = self.served.get(&entity) {
            last.srm = served.test(self.rules.decision.srm_alpha);
        }
        Some(self.remember(entity, last, target, tick))
    }

    /// Keeps `last` as the entity's published record (and in the sample-ratio history) and
    /// returns it encoded.
    fn remember(&mut self, entity: NameId, last: WeightRecord, target: Vec<f64>, tick: u64) -> EncodedRecord {
        let arrived = last.arms.iter().zip(&target).all(|(a, t)| (a.weight - t).abs() <= 1e-12);
        if arrived {
            self.converging.remove(&entity);
        } else {
            self.converging.insert(entity);
        }
        let served = self.served.entry(entity).or_default();
        served.published(last.version, last.arms.iter().map(|a| (arm_id_of(&a.arm_id), a.weight)));
        // The earliest `ts` an assignment entering from the next tick on can have (older ones
        // are too old for the window), with a tick to spare.
        let horizon = self.rules.ticks.start_of(tick + 1) - self.rules.window_ms.min(i64::MAX as u64) as i64 - 2 * self.rules.ticks.tick_ms() as i64;
        served.prune(horizon, self.rules.ticks);
        let encoded = crate::record_json::encode(&last, tick);
        self.entities.insert(entity, EntityWeights { last, target });
        encoded
    }
}

/// The weight state of one worker in a portable form, for checkpoints: the state after
/// every tick before `next_tick` was computed. Changes waiting for later ticks are not in it:
/// a restored dataflow computes them again.
#[derive(Clone, Debug, Default, PartialEq, bincode::Encode, bincode::Decode)]
pub struct WeigherState {
    /// The first tick not yet computed.
    pub next_tick: u64,
    /// Entity and arm names.
    pub names: Vec<(NameId, String)>,
    /// Window counts per entity, as last changed.
    pub counts: Vec<(NameId, Vec<ArmCount>)>,
    /// Arm registry standing: per entity, (arm, active, metadata as JSON, initial weight).
    pub registry: Vec<(NameId, Vec<(NameId, bool, Option<String>, Option<f64>)>)>,
    /// Per entity: its last record (JSON) and the target the step limit walks to.
    pub entities: Vec<(NameId, String, Vec<f64>)>,
    /// Entities still walking toward their target.
    pub converging: Vec<NameId>,
    /// Arm states and decision streaks per entity.
    pub decisions: Vec<(NameId, Decisions)>,
    /// Entities with a decision streak running.
    pub deciding: Vec<NameId>,
    /// The sample-ratio state per entity: the published weights still needed (its counts
    /// are rebuilt from the restored window).
    pub served: Vec<(NameId, ServedCounts)>,
    /// Whether the records from `next_tick` on were computed under `allocation = "static"`
    /// (a job restarted under the other allocation holds this one through what it had
    /// published already).
    pub static_allocation: bool,
}

/// The weight state of one worker's entities, and the changes waiting for their tick.
pub struct Weigher {
    policy: Policy,
    /// Per tick, per entity: its new counts (`None`: nothing left in the window).
    changes: BTreeMap<u64, HashMap<NameId, Option<Vec<ArmCount>>>>,
    /// Registry changes by the tick they take effect.
    registrations: BTreeMap<u64, Vec<Registration>>,
    /// Assignments entering or leaving the window, by the record they were served under, per
    /// tick: (entity, arm, served, count).
    served: BTreeMap<u64, Vec<(NameId, NameId, Served, i64)>>,
    /// The first tick not yet computed.
    next_tick: u64,
    /// What admission forgot, by the tick it is forgotten after.
    forgets: BTreeMap<u64, Vec<Forgotten>>,
    /// Names by the tick they were announced at: applied in time order with `forgets`, so a
    /// name announced again after it was forgotten stays.
    names: BTreeMap<u64, Vec<Name>>,
}

impl Weigher {
    /// No entities yet; the job's declared names are known from the start.
    pub fn new(rules: WeightRules) -> Self {
        let held_static = rules.policy.allocation == Allocation::Static;
        let policy = Policy {
            held_static,
            names: rules.declared_names.iter().map(|n| (n.id, n.text.clone())).collect(),
            rules,
            counts: HashMap::new(),
            registry: HashMap::new(),
            entities: HashMap::new(),
            converging: BTreeSet::new(),
            decisions: FxHashMap::default(),
            deciding: BTreeSet::new(),
            redeclared: FxHashMap::default(),
            served: FxHashMap::default(),
            switching: BTreeSet::new(),
            hold_through: i64::MIN,
        };
        Weigher { policy, changes: BTreeMap::new(), registrations: BTreeMap::new(), served: BTreeMap::new(), next_tick: 0, forgets: BTreeMap::new(), names: BTreeMap::new() }
    }

    /// Learns a name (from the catalog) announced at `tick`; it is known from that tick on.
    pub fn name(&mut self, tick: u64, name: Name) {
        self.names.entry(tick).or_default().push(name);
    }

    /// Applies the names announced at or before `tick`.
    fn apply_names(&mut self, tick: u64) {
        while let Some(entry) = self.names.first_entry() {
            if *entry.key() > tick {
                break;
            }
            for name in entry.remove() {
                self.policy.names.insert(name.id, name.text);
            }
        }
    }

    /// What admission forgot at the end of `tick`: dropped once that tick is computed, each
    /// entity this weigher held announced as [`Published::Forgotten`].
    pub fn forget(&mut self, tick: u64, forgotten: Forgotten) {
        self.forgets.entry(tick).or_default().push(forgotten);
    }

    /// Entities with weight state here, and names known (for tests of forgetting).
    pub fn held(&self) -> (usize, usize) {
        (self.policy.entities.len(), self.policy.names.len())
    }

    fn apply_forgets(&mut self, tick: u64, records: &mut Vec<Published>) {
        let p = &mut self.policy;
        for forgotten in self.forgets.remove(&tick).unwrap_or_default() {
            for (entity, arm) in &forgotten.pairs {
                if let Some(standing) = p.registry.get_mut(entity) {
                    standing.remove(arm);
                }
            }
            for entity in &forgotten.entities {
                let held = p.entities.remove(entity).is_some();
                p.counts.remove(entity);
                p.registry.remove(entity);
                p.converging.remove(entity);
                p.decisions.remove(entity);
                p.deciding.remove(entity);
                p.redeclared.remove(entity);
                p.served.remove(entity);
                p.switching.remove(entity);
                if held {
                    records.push(Published::Forgotten { tick, entity_id: p.name(*entity) });
                }
            }
            for id in forgotten.entities.iter().chain(&forgotten.arms) {
                p.names.remove(id);
            }
        }
        shrink_map(&mut p.names);
        shrink_map(&mut p.counts);
        shrink_map(&mut p.registry);
        shrink_map(&mut p.entities);
        shrink_map(&mut p.decisions);
        shrink_map(&mut p.redeclared);
        shrink_map(&mut p.served);
    }

    /// The state as of now (call it once every tick before the checkpoint's is computed).
    pub fn snapshot(&self) -> WeigherState {
        let p = &self.policy;
        let mut state = WeigherState {
            next_tick: self.next_tick,
            names: p.names.iter().map(|(id, t)| (*id, t.clone())).collect(),
            counts: p.counts.iter().map(|(e, c)| (*e, c.clone())).collect(),
            registry: p
                .registry
                .iter()
                .map(|(e, arms)| {
                    let arms = arms.iter().map(|(a, r)| (*a, r.active, r.metadata.as_ref().map(serde_json::Value::to_string), r.initial_weight.map(InitialWeight::get)));
                    (*e, arms.collect())
                })
                .collect(),
            entities: p.entities.iter().map(|(e, w)| (*e, crate::record_json::encode(&w.last, 0).json, w.target.clone())).collect(),
            converging: p.converging.iter().copied().collect(),
            decisions: p.decisions.iter().map(|(e, d)| (*e, d.clone())).collect(),
            deciding: p.deciding.iter().copied().collect(),
            served: p.served.iter().map(|(e, s)| (*e, s.without_counts())).collect(),
            static_allocation: if p.rules.ticks.as_of(self.next_tick) <= p.hold_through { p.held_static } else { p.rules.policy.allocation == Allocation::Static },
        };
        state.names.sort_unstable();
        state.decisions.sort_by_key(|(e, _)| *e);
        state.served.sort_by_key(|(e, _)| *e);
        state.counts.sort_by_key(|(e, _)| *e);
        state.registry.sort_by_key(|(e, _)| *e);
        state.entities.sort_by_key(|(e, ..)| *e);
        state
    }

    /// State restored from checkpointed parts, keeping the entities `owns` says are this
    /// worker's (every name is kept).
    /// `at` is the checkpoint's tick: every tick before it was computed.
    pub fn restore<'a>(rules: WeightRules, parts: impl IntoIterator<Item = &'a WeigherState>, at: u64, owns: impl Fn(NameId) -> bool) -> Self {
        let mut weigher = Weigher::new(rules);
        weigher.next_tick = at;
        for part in parts {
            weigher.next_tick = weigher.next_tick.max(part.next_tick);
            let p = &mut weigher.policy;
            p.held_static = part.static_allocation;
            p.names.extend(part.names.iter().cloned());
            p.counts.extend(part.counts.iter().filter(|(e, _)| owns(*e)).cloned());
            for (entity, arms) in part.registry.iter().filter(|(e, _)| owns(*e)) {
                let standing = p.registry.entry(*entity).or_default();
                for (arm, active, metadata, initial_weight) in arms {
                    let metadata = metadata.as_deref().and_then(|m| serde_json::from_str(m).ok());
                    let initial_weight = initial_weight.and_then(InitialWeight::new);
                    standing.insert(*arm, Registered { active: *active, metadata, initial_weight });
                }
            }
            for (entity, json, target) in part.entities.iter().filter(|(e, ..)| owns(*e)) {
                if let Ok(last) = serde_json::from_str::<WeightRecord>(json) {
                    p.entities.insert(*entity, EntityWeights { last, target: target.clone() });
                }
            }
            p.converging.extend(part.converging.iter().copied().filter(|e| owns(*e)));
            p.decisions.extend(part.decisions.iter().filter(|(e, _)| owns(*e)).cloned());
            p.deciding.extend(part.deciding.iter().copied().filter(|e| owns(*e)));
            // The restored window hands every assignment in it over again at the first tick.
            p.served.extend(part.served.iter().filter(|(e, _)| owns(*e)).map(|(e, s)| (*e, s.without_counts())));
        }
        // A job that changed its allocation (static to adaptive or back) looks again at each
        // entity once the switch takes effect, not only once its counts change.
        let p = &mut weigher.policy;
        let fixed = p.rules.policy.allocation == Allocation::Static;
        let switched = p.entities.iter().filter(|(_, e)| !e.last.arms.is_empty() && (e.last.status == Status::Static) != fixed).map(|(id, _)| *id);
        let switched: Vec<NameId> = switched.collect();
        p.switching.extend(switched);
        weigher
    }

    /// A restarted worker whose weights topic already holds records up to `as_of`: an entity
    /// restored under another `allocation` keeps its old one through `as_of` (the records of
    /// those ticks were published under it and are not published again), and switches at the
    /// first tick after, walking from what was published.
    pub fn hold_allocation_through(&mut self, as_of: i64) {
        self.policy.hold_through = as_of;
    }



    /// An update of `entity`'s window counts at `tick`: `arms` enter with `diff > 0`, and the
    /// counts they replace leave with `diff < 0` (differential's form of a change).
    pub fn counted(&mut self, entity: NameId, arms: Vec<ArmCount>, tick: u64, diff: isize) {
        let slot = self.changes.entry(tick).or_default().entry(entity).or_insert(None);
        if diff > 0 {
            *slot = Some(arms);
        }
    }

    /// `count` assignments of `arm` served as `served` enter (count > 0) or leave `entity`'s
    /// window at `tick`.
    pub fn served(&mut self, entity: NameId, arm: NameId, served: Served, tick: u64, count: i64) {
        self.served.entry(tick).or_default().push((entity, arm, served, count));
    }

    /// An arm registry change that arrived at tick `arrived`: it takes effect at the tick
    /// holding its `ts`, or (late) at the tick it arrived in, never in the past.
    pub fn registered(&mut self, registration: Registration, arrived: u64) {
        let tick = self.policy.rules.ticks.tick_of(registration.ts).max(arrived);
        self.registrations.entry(tick).or_default().push(registration);
    }

    /// Computes, in order, every tick from `from` up to (not including) `frontier` (`None`:
    /// every tick with something to do) at which some entity's record changes, handing each
    /// tick's records and decision events to `emit`.
    pub fn advance(&mut self, from: u64, frontier: Option<u64>, mut emit: impl FnMut(u64, Vec<Published>)) {
        loop {
            let next_change = self.changes.first_key_value().map(|(t, _)| *t);
            let next_registration = self.registrations.first_key_value().map(|(t, _)| *t);
            let next_served = self.served.first_key_value().map(|(t, _)| *t);
            let next_forget = self.forgets.first_key_value().map(|(t, _)| *t);
            let next_data = next_change.into_iter().chain(next_registration).chain(next_served).chain(next_forget).min();
            let tick = if self.policy.converging.is_empty() && self.policy.deciding.is_empty() && self.policy.switching.is_empty() {
                match next_data {
                    Some(t) => t,
                    None => break,
                }
            } else {
                self.next_tick.max(from)
            };
            if frontier.is_some_and(|f| tick >= f) {
                break;
            }
            self.apply_names(tick);
            let mut changed: BTreeSet<NameId> = BTreeSet::new();
            if next_served == Some(tick) {
                let ticks = self.policy.rules.ticks;
                for (entity, arm, served, count) in self.served.pop_first().map(|(_, s)| s).unwrap_or_default() {
                    self.policy.served.entry(entity).or_default().served(arm, served, count, ticks);
                }
            }
            if next_change == Some(tick) {
                for (entity, arms) in self.changes.pop_first().map(|(_, c)| c).unwrap_or_default() {
                    let arms = arms.unwrap_or_default();
                    // A restored window reports every entity's counts at its first tick; those
                    // that only repeat the restored counts did not change. (Differential never
                    // reports an unchanged collection, so this holds in every other run too.)
                    if self.policy.counts.get(&entity) == Some(&arms) {
                        continue;
                    }
                    self.policy.counts.insert(entity, arms);
                    changed.insert(entity);
                }
            }
            if next_registration == Some(tick) {
                let mut due = self.registrations.pop_first().map(|(_, r)| r).unwrap_or_default();
                // Whatever order they arrived in, apply them in event-time order.
                due.sort_by(|a, b| (a.ts, a.entity, a.arm, a.active, &a.metadata, a.initial_weight).cmp(&(b.ts, b.entity, b.arm, b.active, &b.metadata, b.initial_weight)));
                for r in due {
                    changed.insert(r.entity);
                    self.policy.register(r);
                }
            }
            // Entities with a decision streak are evaluated again at every tick.
            changed.extend(self.policy.deciding.iter().copied());
            if self.policy.rules.ticks.as_of(tick) > self.policy.hold_through {
                changed.extend(std::mem::take(&mut self.policy.switching));
            }
            let mut records: Vec<Published> = Vec::new();
            for entity in &changed {
                self.policy.recompute(*entity, tick, &mut records);
            }
            let walking: Vec<NameId> = self.policy.converging.iter().filter(|e| !changed.contains(e)).copied().collect();
            for entity in walking {
                records.extend(self.policy.step(entity, tick).map(Published::Weights));
            }
            if next_forget == Some(tick) {
                self.apply_forgets(tick, &mut records);
            }
            if !records.is_empty() {
                emit(tick, records);
            }
            self.next_tick = tick + 1;
        }
        // Names of ticks with nothing computed yet, so a snapshot holds them.
        self.apply_names(frontier.map_or(u64::MAX, |f| f.saturating_sub(1)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> WeightRules {
        let job = Dataflow::from_toml_str(
            "name = \"t\"\ntick = \"1s\"\nwindow = \"60s\"\nattribution = \"5s\"\nallowed_lateness = \"0s\"\n[policy]\nmin_trials = 10\nfloor = 0.05\nmax_step = 0.05\n",
        )
        .expect("job");
        WeightRules::of(&job)
    }

    /// Feeds ticks `from..to` of a fixed history; returns the records (without `computed_at`).
    fn feed(w: &mut Weigher, from: u64, to: u64) -> Vec<String> {
        let mut out = Vec::new();
        for tick in from..to {
            for entity in [1u64, 2] {
                let arms = vec![(10, 20 + tick as i64 * 3, 2 + tick as i64), (11, 20 + tick as i64 * 2, 1 + (tick as i64 * entity as i64) % 3)];
                if tick % entity == 0 {
                    w.counted(entity, arms, tick, 1);
                }
            }
        }
        w.advance(from, Some(to), |_, records| out.extend(records.into_iter().map(|r| match r {
            Published::Weights(r) => r.json,
            Published::Decision(d) => d.json,
            Published::Forgotten { entity_id, .. } => entity_id,
        })));
        out.into_iter().map(|j| j.split(",\"computed_at\"").next().unwrap_or_default().to_owned() + &j[j.find(",\"status\"").unwrap_or(0)..]).collect()
    }

    #[test]
    fn a_forgotten_entity_leaves_nothing_behind_and_is_announced_once_its_tick_is_computed() {
        let job = Dataflow::from_toml_str("name = \"t\"\ntick = \"1s\"\nwindow = \"3s\"\nattribution = \"1s\"\nallowed_lateness = \"0s\"\n").expect("job");
        let mut w = Weigher::new(WeightRules::of(&job));
        let baseline = w.held();
        w.name(0, Name { id: 7, text: "e".into() });
        w.name(0, Name { id: 70, text: "a".into() });
        w.counted(7, vec![(70, 5, 1)], 1, 1);
        w.counted(7, vec![(70, 5, 1)], 4, -1);
        w.forget(6, Forgotten { entities: vec![7], pairs: vec![(7, 70)], arms: vec![70] });
        let mut out = Vec::new();
        w.advance(0, Some(6), |_, records| out.extend(records));
        assert!(out.iter().all(|r| !matches!(r, Published::Weights(r) if r.entity_id != "e")), "named from its announcement on");
        assert!(!out.iter().any(|r| matches!(r, Published::Forgotten { .. })), "not before its tick is computed");
        assert_eq!(w.held().0, 1);
        // Announced again (at tick 8) before the forgetting at 6 is applied: the name stays.
        w.name(8, Name { id: 7, text: "e".into() });
        w.name(8, Name { id: 70, text: "a".into() });
        w.advance(0, Some(7), |_, records| out.extend(records));
        assert_eq!(out.last(), Some(&Published::Forgotten { tick: 6, entity_id: "e".into() }));
        assert_eq!(w.held(), baseline, "entity state and names gone");
        // It comes back with a later version than any it had, under its name.
        let before = out.iter().filter_map(|r| if let Published::Weights(r) = r { Some(r.version) } else { None }).max().unwrap_or(0);
        w.counted(7, vec![(70, 2, 0)], 9, 1);
        out.clear();
        w.advance(0, Some(10), |_, records| out.extend(records));
        let back: Vec<_> = out.iter().filter_map(|r| if let Published::Weights(r) = r { Some(r) } else { None }).collect();
        assert!(back.iter().all(|r| r.entity_id == "e") && !back.is_empty());
        let after = back.iter().map(|r| r.version).max().unwrap_or(0);
        assert!(after > before, "{after} > {before}");
    }

    #[test]
    fn versions_are_as_of_so_they_keep_increasing_when_the_tick_changes() {
        let with_tick = |tick: &str| {
            let job = Dataflow::from_toml_str(&format!("name = \"t\"\ntick = \"{tick}\"\nwindow = \"60s\"\nattribution = \"5s\"\nallowed_lateness = \"0s\"\n")).expect("job");
            Weigher::new(WeightRules::of(&job))
        };
        let version = |w: &mut Weigher, tick: u64| {
            w.counted(1, vec![(10, 5, 1)], tick, 1);
            let mut out = Vec::new();
            w.advance(tick, Some(tick + 1), |_, records| {
                out.extend(records.into_iter().filter_map(|r| if let Published::Weights(r) = r { Some(r) } else { None }));
            });
            let record: WeightRecord = serde_json::from_str(&out[0].json).expect("record");
            assert_eq!((record.version as i64, out[0].version), (record.as_of, record.version));
            record.version
        };
        // 1 s ticks until tick 7 (time 7.999 s), then the job moves to 2 s ticks: the next
        // tick holding later times is 4 (8 s to 10 s), whose index is smaller, not its version.
        let before = version(&mut with_tick("1s"), 7);
        let after = version(&mut with_tick("2s"), 4);
        assert_eq!((before, after), (7_999, 9_999));
    }

    #[test]
    fn a_job_switched_from_static_to_adaptive_walks_from_the_split_within_max_step() {
        let rules_with = |allocation: &str| {
            let job = Dataflow::from_toml_str(&format!(
                "name = \"t\"\ntick = \"1s\"\nwindow = \"60s\"\nattribution = \"5s\"\nallowed_lateness = \"0s\"\n\
                 [policy]\nmin_trials = 10\nfloor = 0.05\nmax_step = 0.05\nallocation = \"{allocation}\"\n"
            ))
            .expect("job");
            WeightRules::of(&job)
        };
        let weights = |records: &[String]| -> Vec<(u64, String, Vec<f64>)> {
            records
                .iter()
                .filter_map(|r| serde_json::from_str::<serde_json::Value>(r).ok())
                .filter(|r| r["arms"].is_array())
                .map(|r| {
                    let w = r["arms"].as_array().into_iter().flatten().filter_map(|a| a["weight"].as_f64()).collect();
                    (r["version"].as_u64().unwrap_or_default(), r["status"].as_str().unwrap_or_default().to_owned(), w)
                })
                .collect()
        };
        let mut fixed = Weigher::new(rules_with("static"));
        for (id, text) in [(1, "e1"), (2, "e2"), (10, "a"), (11, "b")] {
            fixed.name(0, Name { id, text: text.into() });
        }
        for entity in [1, 2] {
            for (arm, w) in [(10, 0.1), (11, 0.9)] {
                fixed.registered(Registration { entity, arm, active: true, ts: 0, metadata: None, initial_weight: InitialWeight::new(w) }, 0);
            }
        }
        let published = weights(&feed(&mut fixed, 0, 8));
        assert!(published.len() >= 8, "{published:?}");
        for (_, status, w) in &published {
            assert_eq!((status.as_str(), w.len()), ("static", 2));
            assert!((w[0] - 0.1).abs() < 1e-12 && (w[1] - 0.9).abs() < 1e-12, "the split exactly: {w:?}");
        }
        // Restarted with allocation = "adaptive": every entity moves at the first tick, even
        // though its counts did not change, and walks within max_step from the split.
        let snapshot = fixed.snapshot();
        let mut adaptive = Weigher::restore(rules_with("adaptive"), [&snapshot], 8, |_| true);
        for (entity, arms) in &snapshot.counts {
            adaptive.counted(*entity, arms.clone(), 8, 1);
        }
        let mut out = Vec::new();
        adaptive.advance(8, Some(60), |_, records| out.extend(records.into_iter().filter_map(|r| if let Published::Weights(r) = r { Some(r.json) } else { None })));
        let walked = weights(&out);
        assert_eq!(walked.iter().filter(|(v, ..)| *v == 8_999).count(), 2, "both entities at the first tick: {walked:?}");
        for entity in ["e1", "e2"] {
            let mut previous = vec![0.1, 0.9];
            let mine: Vec<_> = out.iter().zip(&walked).filter(|(r, _)| r.contains(&format!("\"entity_id\":\"{entity}\""))).map(|(_, w)| w).collect();
            assert!(mine.len() >= 3, "{entity} ramps over several ticks: {mine:?}");
            for (_, status, w) in &mine {
                assert_ne!(status.as_str(), "static");
                let step = w.iter().zip(&previous).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
                assert!(step <= 0.05 + 1e-12, "{entity}: step {step} from {previous:?} to {w:?}");
                previous = w.clone();
            }
            assert!(previous[0] > 0.5, "{entity} arrives at its adaptive target, far from the split: {previous:?}");
        }
        assert!(adaptive.policy.converging.is_empty(), "every entity arrived");

        // Restarted where the weights topic holds records through tick 11 already: ticks 8 to
        // 11 stay static (their counts change: records, but the split), the walk starts at 12.
        // An entity first published after the checkpoint (e3, declared at tick 9: a worker
        // lagging its traffic published it static before it stopped) holds as well.
        assert!(snapshot.static_allocation);
        let mut held = Weigher::restore(rules_with("adaptive"), [&snapshot], 8, |_| true);
        held.hold_allocation_through(11_999);
        held.name(0, Name { id: 3, text: "e3".into() });
        for (arm, w) in [(10, 0.1), (11, 0.9)] {
            held.registered(Registration { entity: 3, arm, active: true, ts: 9_500, metadata: None, initial_weight: InitialWeight::new(w) }, 8);
        }
        for (entity, arms) in &snapshot.counts {
            held.counted(*entity, arms.clone(), 8, 1);
        }
        held.counted(3, vec![(10, 200, 40), (11, 200, 25)], 10, 1);
        let all = feed(&mut held, 8, 30);
        let e3: Vec<_> = weights(&all.iter().filter(|r| r.contains("\"entity_id\":\"e3\"")).cloned().collect::<Vec<_>>());
        assert!(e3.iter().any(|(v, ..)| *v == 9_999), "{e3:?}");
        let mut previous = vec![0.1, 0.9];
        for (version, status, w) in &e3 {
            if *version <= 11_999 {
                assert!(status == "static" && (w[0] - 0.1).abs() < 1e-12, "e3 holds the split through the hold: {e3:?}");
            } else {
                assert_ne!(status.as_str(), "static");
            }
            let step = w.iter().zip(&previous).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(step <= 0.05 + 1e-12, "e3: step {step} at {version}: {e3:?}");
            previous = w.clone();
        }
        assert!(e3.iter().any(|(v, ..)| *v == 12_999) && previous[0] > 0.5, "e3 switches after the hold and walks on: {e3:?}");
        let records = weights(&all.iter().filter(|r| !r.contains("\"entity_id\":\"e3\"")).cloned().collect::<Vec<_>>());
        let (static_part, walking): (Vec<_>, Vec<_>) = records.iter().partition(|(v, ..)| *v <= 11_999);
        assert!(!static_part.is_empty() && static_part.iter().all(|(_, status, w)| status == "static" && (w[0] - 0.1).abs() < 1e-12), "{static_part:?}");
        assert!(walking.iter().all(|(_, status, _)| status != "static") && walking.first().is_some_and(|(v, ..)| *v == 12_999), "{walking:?}");
        let first = &walking[0].2;
        assert!((first[0] - 0.1).abs() <= 0.05 + 1e-12 && first[0] > 0.1, "one step from the split: {first:?}");
    }

    #[test]
    fn a_restored_weigher_publishes_what_the_original_would_step_limit_included() {
        let mut original = Weigher::new(rules());
        for (id, text) in [(1, "e1"), (2, "e2"), (10, "a"), (11, "b")] {
            original.name(0, Name { id, text: text.into() });
        }
        let before = feed(&mut original, 0, 8);
        assert!(!before.is_empty());
        let snapshot = original.snapshot();
        assert!(!snapshot.converging.is_empty(), "the step limit is still walking: {snapshot:?}");
        let mut restored = Weigher::restore(rules(), [&snapshot], 8, |_| true);
        assert_eq!(restored.snapshot(), snapshot);
        // The restored window reports unchanged counts again at its first tick: no record.
        for (entity, arms) in &snapshot.counts {
            restored.counted(*entity, arms.clone(), 8, 1);
        }
        assert_eq!(feed(&mut restored, 8, 20), feed(&mut original, 8, 20));
        let split: Vec<Weigher> = [1u64, 2].iter().map(|&mine| Weigher::restore(rules(), [&snapshot], 8, move |e| e == mine)).collect();
        assert_eq!(split.iter().map(|w| w.snapshot().entities.len()).sum::<usize>(), snapshot.entities.len());
    }
}
