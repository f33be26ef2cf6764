//! `assign`: which arm a unit gets, from the cached weights, with no I/O on the way (unless
//! the caller chose a sticky store that does I/O). The unit's point in `[0, 1)` comes from a
//! hash of (entity seed, unit id) and falls in one arm's range of the cumulative weights, so
//! a unit gets the same arm while the weights do not change, and units spread in the
//! published proportions.
//!
//! When an entity's weights are missing or older than `max_age` (the pipeline stalled), the
//! configured fallback serves instead, and the assignment says so (`fallback: true`).

use std::collections::HashMap;
use std::sync::Arc;

use banditflow_core::config::Dataflow;
use banditflow_core::time::now_ms;
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use serde::Serialize;

use crate::bucket;
use crate::cache::{Cached, WeightsCache};
use crate::sticky::StickyStore;

/// The assignment serving publishes (`schemas/assignment.schema.json`) after serving `arm_id`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Assignment {
    /// Fresh for every call: the key outcomes join on.
    pub assignment_id: String,
    /// The entity served.
    pub entity_id: String,
    /// The arm served.
    pub arm_id: String,
    /// The unit served.
    pub unit_id: String,
    /// When, ms since the epoch.
    pub ts: i64,
    /// The version of the weight record used; absent on a fallback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weights_version: Option<u64>,
    /// The probability the weights gave the served arm (uniform's 1/K, or 1 for a control,
    /// on a fallback): the propensity offline evaluation weighs by.
    pub propensity: f64,
    /// Whether the fallback served, not the weights.
    pub fallback: bool,
    /// Whether a sticky store kept the unit's earlier arm.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sticky: bool,
}

/// The age past which weights are not used when neither the caller nor the record says.
pub const DEFAULT_MAX_AGE_MS: i64 = 30_000;

/// The arms and weights an entity is served by now ([`Assigner::split`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    /// Arm ids, in the record's order (the order the ranges are laid out in).
    pub arms: Vec<String>,
    /// Their weights.
    pub weights: Vec<f64>,
    /// The record's version; `None` on a fallback.
    pub weights_version: Option<u64>,
    /// Whether the fallback's split.
    pub fallback: bool,
}

/// What serves when an entity's weights are missing or too old.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// A split that is uniform over the entity's declared arms (else the arms of its last
    /// record), by the same hash.
    Uniform,
    /// The entity's control arm: its `[[arms]]` `control`, else this arm id (empty: none,
    /// and an entity without a control of its own gets the uniform split).
    Control(String),
}

/// The serving rules: how old weights may be, and what serves instead.
#[derive(Clone, Debug)]
pub struct Defaults {
    /// Weights older than this (the pipeline's age, [`WeightsCache::age_ms`]) are not used;
    /// `None`: the record's own `max_age_hint_ms` (or [`DEFAULT_MAX_AGE_MS`] without one).
    pub max_age_ms: Option<i64>,
    /// What serves instead.
    pub fallback: Fallback,
    /// Declared arms per entity (the job file's `[[arms]]`), for the uniform fallback.
    pub declared: HashMap<String, Vec<String>>,
    /// Control arm per entity (`[[arms]] control`, else `[decision] control`).
    pub controls: HashMap<String, String>,
}

impl Defaults {
    /// Uniform fallback after `max_age_ms` (`None`: the records' hint), no declared arms.
    #[must_use]
    pub fn new(max_age_ms: impl Into<Option<i64>>) -> Self {
        Defaults { max_age_ms: max_age_ms.into(), fallback: Fallback::Uniform, declared: HashMap::new(), controls: HashMap::new() }
    }

    /// The declared arms and controls of a job file, uniform fallback after `max_age_ms`
    /// (`None`: the records' hint).
    #[must_use]
    pub fn of_job(job: &Dataflow, max_age_ms: impl Into<Option<i64>>) -> Self {
        let max_age_ms = max_age_ms.into();
        let declared = job.arms.iter().map(|a| (a.entity_id.clone(), a.arm_ids.clone())).collect();
        let controls = job.arms.iter().filter_map(|a| a.control.clone().or_else(|| job.decision.control.clone()).map(|c| (a.entity_id.clone(), c))).collect();
        Defaults { max_age_ms, fallback: Fallback::Uniform, declared, controls }
    }
}

/// Why no arm could be served.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AssignError {
    /// No weights, and the fallback knows no arm of the entity.
    #[error("no weights for entity {0:?} and no declared arm to fall back on")]
    UnknownEntity(String),
    /// The entity's record lists no arm with a weight (its last arm was retired: status
    /// `empty`; or every arm was stopped).
    #[error("entity {0:?} has no arm to serve (its last arm was retired, or every arm has weight 0)")]
    NoArms(String),
    /// The unit id is empty: nothing to hash (GrowthBook leaves such a unit out too).
    #[error("the unit id is empty")]
    EmptyUnit,
}

/// Why serving fell back, for the metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reason {
    Missing,
    Stale,
}

/// Counters of what `assign` did, for Prometheus.
#[derive(Clone, Debug)]
pub struct ServingMetrics {
    assignments: IntCounter,
    fallbacks: IntCounterVec,
    missing: IntCounter,
    stale: IntCounter,
}

impl ServingMetrics {
    fn new() -> Self {
        let assignments = IntCounter::new("banditflow_serving_assignments_total", "Assignments served.").expect("a valid metric");
        let fallbacks = IntCounterVec::new(Opts::new("banditflow_serving_fallbacks_total", "Assignments the fallback served, by reason (missing: no weights; stale: older than max_age)."), &["reason"])
            .expect("a valid metric");
        let missing = fallbacks.with_label_values(&["missing"]);
        let stale = fallbacks.with_label_values(&["stale"]);
        ServingMetrics { assignments, fallbacks, missing, stale }
    }

    /// Registers the counters with `registry`.
    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.assignments.clone()))?;
        registry.register(Box::new(self.fallbacks.clone()))
    }

    /// Assignments served so far.
    #[must_use]
    pub fn assignments(&self) -> u64 {
        self.assignments.get()
    }

    /// Fallbacks so far: (weights missing, weights too old).
    #[must_use]
    pub fn fallbacks(&self) -> (u64, u64) {
        (self.missing.get(), self.stale.get())
    }
}

/// Assigns units by the cached weights.
pub struct Assigner {
    cache: Arc<WeightsCache>,
    defaults: Defaults,
    sticky: Option<Arc<dyn StickyStore>>,
    metrics: ServingMetrics,
}

impl Assigner {
    /// Assigns by `cache`'s weights under `defaults`.
    #[must_use]
    pub fn new(cache: Arc<WeightsCache>, defaults: Defaults) -> Self {
        Assigner { cache, defaults, sticky: None, metrics: ServingMetrics::new() }
    }

    /// A unit keeps the arm `store` remembers for it while that arm is live (in the record,
    /// with a weight above 0), whatever the weights say now.
    #[must_use]
    pub fn with_sticky(mut self, store: Arc<dyn StickyStore>) -> Self {
        self.sticky = Some(store);
        self
    }

    /// The cache it reads.
    #[must_use]
    pub fn cache(&self) -> &Arc<WeightsCache> {
        &self.cache
    }

    /// Its counters.
    #[must_use]
    pub fn metrics(&self) -> &ServingMetrics {
        &self.metrics
    }

    /// The arm `unit_id` gets of `entity_id` now, as the assignment record to publish.
    pub fn assign(&self, entity_id: &str, unit_id: &str) -> Result<Assignment, AssignError> {
        self.assign_at(entity_id, unit_id, now_ms())
    }

    /// [`Assigner::assign`] at a given time `now` (ms since the epoch).
    pub fn assign_at(&self, entity_id: &str, unit_id: &str, now: i64) -> Result<Assignment, AssignError> {
        if unit_id.is_empty() {
            return Err(AssignError::EmptyUnit);
        }
        let cached = self.cache.get(entity_id);
        let fresh = cached.as_ref().filter(|c| self.fresh(c, now));
        let (arm_id, weights_version, propensity, fallback, sticky) = match fresh {
            Some(c) => {
                if !c.record.arms.iter().any(|a| a.weight > 0.0) {
                    return Err(AssignError::NoArms(entity_id.to_owned()));
                }
                let kept = self.sticky.as_ref().and_then(|s| s.arm(entity_id, unit_id)).and_then(|arm| c.record.arms.iter().position(|a| a.arm_id == arm && a.weight > 0.0));
                let (index, sticky) = match kept {
                    Some(i) => (i, true),
                    None => {
                        let point = bucket::unit_point(entity_id, unit_id);
                        // Weights summing a hair under 1 leave the top of the interval to no
                        // range; it goes to the last arm with a weight.
                        let i = bucket::choose(point, &c.ranges).or_else(|| c.record.arms.iter().rposition(|a| a.weight > 0.0)).unwrap_or(0);
                        if let Some(store) = &self.sticky {
                            store.keep(entity_id, unit_id, &c.record.arms[i].arm_id);
                        }
                        (i, false)
                    }
                };
                let arm = &c.record.arms[index];
                (arm.arm_id.clone(), Some(c.record.version), arm.weight, false, sticky)
            }
            None => {
                let reason = if cached.is_some() { Reason::Stale } else { Reason::Missing };
                let (arm, propensity) = self.fall_back(entity_id, unit_id, cached.as_ref().map(|c| &c.record))?;
                match reason {
                    Reason::Missing => self.metrics.missing.inc(),
                    Reason::Stale => self.metrics.stale.inc(),
                }
                (arm, None, propensity, true, false)
            }
        };
        self.metrics.assignments.inc();
        Ok(Assignment {
            assignment_id: uuid::Uuid::new_v4().to_string(),
            entity_id: entity_id.to_owned(),
            arm_id,
            unit_id: unit_id.to_owned(),
            ts: now,
            weights_version,
            propensity,
            fallback,
            sticky,
        })
    }

    /// The split `assign` serves `entity_id` by at `now`: the record's arms and weights, or
    /// the fallback's (uniform over its arms, or all to the control). For whoever hands the
    /// split to another assigner (a GrowthBook SDK): the same arms, weights and seed give
    /// the same arm for a unit, sticky stores aside.
    pub fn split(&self, entity_id: &str, now: i64) -> Result<Split, AssignError> {
        let cached = self.cache.get(entity_id);
        if let Some(c) = cached.as_ref().filter(|c| self.fresh(c, now)) {
            if !c.record.arms.iter().any(|a| a.weight > 0.0) {
                return Err(AssignError::NoArms(entity_id.to_owned()));
            }
            let arms = c.record.arms.iter().map(|a| a.arm_id.clone()).collect();
            let weights = c.record.arms.iter().map(|a| a.weight).collect();
            return Ok(Split { arms, weights, weights_version: Some(c.record.version), fallback: false });
        }
        self.fallback_split(entity_id, cached.as_ref().map(|c| &c.record))
    }

    /// The fallback's split: all to the control, or uniform over the declared arms (else the
    /// stale record's).
    fn fallback_split(&self, entity_id: &str, stale: Option<&banditflow_core::record::WeightRecord>) -> Result<Split, AssignError> {
        if let Some(control) = self.control_of(entity_id, stale.is_some()) {
            return Ok(Split { arms: vec![control.to_owned()], weights: vec![1.0], weights_version: None, fallback: true });
        }
        let arms: Vec<String> = match self.defaults.declared.get(entity_id) {
            Some(declared) if !declared.is_empty() => declared.clone(),
            _ => stale.map(|r| r.arms.iter().map(|a| a.arm_id.clone()).collect()).unwrap_or_default(),
        };
        if arms.is_empty() {
            return Err(AssignError::UnknownEntity(entity_id.to_owned()));
        }
        let weights = vec![1.0 / arms.len() as f64; arms.len()];
        Ok(Split { arms, weights, weights_version: None, fallback: true })
    }

    /// The arm a control fallback serves `entity_id`: its own control, else the default
    /// (none when the fallback is uniform, or the default is empty: then uniform serves).
    /// Only for an entity it knows (declared, or held): any other id is unknown.
    fn control_of(&self, entity_id: &str, held: bool) -> Option<&str> {
        let Fallback::Control(default) = &self.defaults.fallback else { return None };
        if let Some(own) = self.defaults.controls.get(entity_id) {
            return Some(own);
        }
        let known = held || self.defaults.declared.contains_key(entity_id);
        Some(default.as_str()).filter(|d| known && !d.is_empty())
    }

    /// Whether `cached` may be served at `now`: the pipeline spoke within `max_age`.
    fn fresh(&self, cached: &Cached, now: i64) -> bool {
        let hint = i64::try_from(cached.record.max_age_hint_ms).ok().filter(|h| *h > 0).unwrap_or(DEFAULT_MAX_AGE_MS);
        self.cache.pipeline_age_ms(now) <= self.defaults.max_age_ms.unwrap_or(hint)
    }

    /// The fallback's arm and its propensity, by the same hash over the fallback's split.
    fn fall_back(&self, entity_id: &str, unit_id: &str, stale: Option<&banditflow_core::record::WeightRecord>) -> Result<(String, f64), AssignError> {
        let Split { mut arms, weights, .. } = self.fallback_split(entity_id, stale)?;
        let index = bucket::choose(bucket::unit_point(entity_id, unit_id), &bucket::ranges(&weights)).unwrap_or(arms.len() - 1);
        Ok((arms.swap_remove(index), weights[index]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::tests::record;
    use crate::sticky::MemorySticky;

    fn assigner(weights: &[(&str, f64)]) -> Assigner {
        let cache = Arc::new(WeightsCache::new());
        cache.offer(record("e", 10, 1_000, weights));
        Assigner::new(cache, Defaults::new(5_000))
    }

    #[test]
    fn the_same_unit_gets_the_same_arm_while_the_weights_stay() {
        let a = assigner(&[("a", 0.2), ("b", 0.3), ("c", 0.5)]);
        for unit in 0..500 {
            let unit = format!("u{unit}");
            let first = a.assign_at("e", &unit, 2_000).expect("served");
            let again = a.assign_at("e", &unit, 2_500).expect("served");
            assert_eq!(first.arm_id, again.arm_id);
            assert_ne!(first.assignment_id, again.assignment_id, "a fresh id per call");
            assert_eq!((first.weights_version, first.fallback), (Some(10), false));
            let weight = [("a", 0.2), ("b", 0.3), ("c", 0.5)].iter().find(|(id, _)| *id == first.arm_id).map(|(_, w)| *w);
            assert_eq!(Some(first.propensity), weight);
        }
    }

    #[test]
    fn missing_or_stale_weights_fall_back_and_say_so() {
        let cache = Arc::new(WeightsCache::new());
        let mut defaults = Defaults::new(5_000);
        defaults.declared.insert("declared".into(), vec!["x".into(), "y".into()]);
        let a = Assigner::new(cache.clone(), defaults.clone());
        assert_eq!(a.assign_at("nowhere", "u", 0), Err(AssignError::UnknownEntity("nowhere".into())));
        let missing = a.assign_at("declared", "u", 0).expect("uniform over the declared arms");
        assert!(missing.fallback && missing.weights_version.is_none() && (missing.propensity - 0.5).abs() < 1e-12);
        cache.offer(record("e", 10, 1_000, &[("a", 1.0), ("b", 0.0)]));
        assert!(!a.assign_at("e", "u", 6_000).expect("fresh").fallback, "5 s old: still in max_age");
        let stale = a.assign_at("e", "u", 6_001).expect("uniform over the record's arms");
        assert!(stale.fallback && (stale.propensity - 0.5).abs() < 1e-12);
        assert_eq!(a.metrics().fallbacks(), (1, 1));
        defaults.fallback = Fallback::Control("a".into());
        defaults.controls.insert("declared".into(), "y".into());
        let control = Assigner::new(cache, defaults);
        assert_eq!(control.assign_at("e", "u", 9_000).map(|s| (s.arm_id, s.propensity)), Ok(("a".into(), 1.0)));
        assert_eq!(control.assign_at("declared", "u", 9_000).map(|s| s.arm_id), Ok("y".into()), "the entity's own control");
    }

    #[test]
    fn an_entity_without_arms_serves_nothing() {
        let a = assigner(&[]);
        assert_eq!(a.assign_at("e", "u", 2_000), Err(AssignError::NoArms("e".into())));
        let stopped = assigner(&[("a", 0.0), ("b", 0.0)]);
        assert_eq!(stopped.assign_at("e", "u", 2_000), Err(AssignError::NoArms("e".into())), "no arm with a weight");
        assert_eq!(stopped.assign_at("e", "", 2_000), Err(AssignError::EmptyUnit));
    }

    #[test]
    fn a_control_fallback_serves_only_entities_it_knows() {
        let cache = Arc::new(WeightsCache::new());
        cache.offer(record("held", 1, 0, &[("a", 1.0)]));
        let mut defaults = Defaults::new(1);
        defaults.fallback = Fallback::Control("control".into());
        defaults.declared.insert("declared".into(), vec!["control".into(), "b".into()]);
        let a = Assigner::new(cache, defaults);
        assert_eq!(a.assign_at("held", "u", 10_000).map(|s| s.arm_id), Ok("control".into()), "stale");
        assert_eq!(a.assign_at("declared", "u", 10_000).map(|s| s.arm_id), Ok("control".into()), "missing, declared");
        assert_eq!(a.assign_at("typo", "u", 10_000), Err(AssignError::UnknownEntity("typo".into())));
        assert_eq!(a.split("typo", 10_000), Err(AssignError::UnknownEntity("typo".into())));
    }

    #[test]
    fn a_sticky_unit_keeps_its_arm_while_it_is_live() {
        let cache = Arc::new(WeightsCache::new());
        cache.offer(record("e", 1, 1_000, &[("a", 0.5), ("b", 0.5)]));
        let store = Arc::new(MemorySticky::default());
        let a = Assigner::new(cache.clone(), Defaults::new(i64::MAX)).with_sticky(store);
        let units: Vec<String> = (0..400).map(|u| format!("u{u}")).collect();
        let before: Vec<String> = units.iter().map(|u| a.assign_at("e", u, 2_000).expect("served").arm_id).collect();
        // The split moves a lot: without the store about a third of the units would move.
        cache.offer(record("e", 2, 2_000, &[("a", 0.1), ("b", 0.9)]));
        for (u, arm) in units.iter().zip(&before) {
            let now = a.assign_at("e", u, 3_000).expect("served");
            assert_eq!((&now.arm_id, now.sticky), (arm, true));
        }
        // Arm a stops (weight 0): its units move, b's stay.
        cache.offer(record("e", 3, 3_000, &[("a", 0.0), ("b", 1.0)]));
        for (u, arm) in units.iter().zip(&before) {
            let now = a.assign_at("e", u, 4_000).expect("served");
            assert_eq!(now.arm_id, "b");
            assert_eq!(now.sticky, arm == "b");
        }
    }
}
