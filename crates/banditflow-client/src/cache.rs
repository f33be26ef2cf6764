//! The weights cache: the newest weight record of each entity, in memory, where `assign`
//! reads it with no I/O. Followers (Redis, the weights topic) offer records to it; it keeps
//! a record only if its version is newer than the one it holds, so a replayed or reordered
//! older record never takes the place of a newer one.
//!
//! Reads are read-mostly: a shared read lock around the map, held for a hash lookup and an
//! `Arc` clone; a follower takes the write lock once per record it keeps.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use banditflow_core::record::WeightRecord;

use crate::bucket;

/// One entity's record as `assign` uses it, with its arms' ranges computed once.
#[derive(Debug)]
pub struct Cached {
    /// The record as published.
    pub record: WeightRecord,
    /// Each arm's range of `[0, 1)`, in the record's arm order ([`bucket::ranges`]).
    pub ranges: Vec<(f64, f64)>,
}

/// What [`WeightsCache::offer`] did with a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offered {
    /// The entity's first record, or newer than the one held: kept.
    Kept,
    /// Not newer than the version held (a replayed or reordered record): ignored.
    Older {
        /// The version the cache holds.
        held: u64,
    },
}

/// The newest record per entity. Shared between followers and `assign` (wrap it in an `Arc`).
#[derive(Debug, Default)]
pub struct WeightsCache {
    entries: RwLock<HashMap<String, Arc<Cached>>>,
    /// The newest `computed_at` of any record kept: when the pipeline last said something.
    heard_ms: AtomicI64,
    /// Records ignored as older than the one held.
    ignored: AtomicU64,
}

impl WeightsCache {
    /// An empty cache.
    #[must_use]
    pub fn new() -> Self {
        WeightsCache { heard_ms: AtomicI64::new(i64::MIN), ..WeightsCache::default() }
    }

    /// Keeps `record` if it is newer than the entity's record held (or the entity's first).
    pub fn offer(&self, record: WeightRecord) -> Offered {
        let computed_at = record.computed_at;
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = entries.get(&record.entity_id) {
            if held.record.version >= record.version {
                self.ignored.fetch_add(1, Ordering::Relaxed);
                return Offered::Older { held: held.record.version };
            }
        }
        let weights: Vec<f64> = record.arms.iter().map(|a| a.weight).collect();
        let cached = Arc::new(Cached { ranges: bucket::ranges(&weights), record });
        entries.insert(cached.record.entity_id.clone(), cached);
        drop(entries);
        self.heard_ms.fetch_max(computed_at, Ordering::Relaxed);
        Offered::Kept
    }

    /// The entity's newest record, if any.
    #[must_use]
    pub fn get(&self, entity_id: &str) -> Option<Arc<Cached>> {
        self.entries.read().unwrap_or_else(PoisonError::into_inner).get(entity_id).cloned()
    }

    /// The version of the entity's newest record, if any.
    #[must_use]
    pub fn version(&self, entity_id: &str) -> Option<u64> {
        self.get(entity_id).map(|c| c.record.version)
    }

    /// How old the entity's weights are at `now_ms`: the time since the pipeline last
    /// published anything (the newest `computed_at` of any record held), since a record is
    /// current until a newer one replaces it and a quiet entity gets none. `None` without
    /// a record for the entity.
    #[must_use]
    pub fn age_ms(&self, entity_id: &str, now_ms: i64) -> Option<i64> {
        self.get(entity_id).map(|_| self.pipeline_age_ms(now_ms))
    }

    /// How old the entity's own record is at `now_ms`: the time since it was computed (its
    /// `computed_at`). A quiet entity's record grows old while still current; serving
    /// decides by [`WeightsCache::age_ms`].
    #[must_use]
    pub fn record_age_ms(&self, entity_id: &str, now_ms: i64) -> Option<i64> {
        self.get(entity_id).map(|c| now_ms.saturating_sub(c.record.computed_at).max(0))
    }

    /// The time since the pipeline last published anything, at `now_ms` (`i64::MAX` before
    /// any record).
    #[must_use]
    pub fn pipeline_age_ms(&self, now_ms: i64) -> i64 {
        match self.heard_ms.load(Ordering::Relaxed) {
            i64::MIN => i64::MAX,
            heard => now_ms.saturating_sub(heard).max(0),
        }
    }

    /// The entities held, sorted.
    #[must_use]
    pub fn entities(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.entries.read().unwrap_or_else(PoisonError::into_inner).keys().cloned().collect();
        ids.sort_unstable();
        ids
    }

    /// How many entities it holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether it holds no entity.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records ignored so far because the cache held a version at least as new.
    #[must_use]
    pub fn ignored(&self) -> u64 {
        self.ignored.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use banditflow_core::decision::ArmState;
    use banditflow_core::policy::Status;
    use banditflow_core::record::ArmWeight;
    use banditflow_core::srm::SampleRatio;
    use banditflow_core::statistics::ChiSquare;

    /// A record of `entity` at `version` with these (arm, weight) pairs.
    pub(crate) fn record(entity: &str, version: u64, computed_at: i64, arms: &[(&str, f64)]) -> WeightRecord {
        WeightRecord {
            entity_id: entity.to_owned(),
            version,
            as_of: version as i64,
            computed_at,
            status: Status::Adaptive,
            arms: arms
                .iter()
                .map(|(id, weight)| ArmWeight {
                    arm_id: (*id).to_owned(),
                    weight: *weight,
                    p_best: *weight,
                    alpha: 1.0,
                    beta: 1.0,
                    trials: 0,
                    successes: 0,
                    mean: 0.5,
                    ci95: [0.0, 1.0],
                    expected_loss: 0.0,
                    vs_control: None,
                    state: ArmState::Exploring,
                    metadata: None,
                })
                .collect(),
            chi_square: ChiSquare { statistic: 0.0, dof: 0, p_value: 1.0 },
            srm: SampleRatio { statistic: Some(0.0), dof: 0, p_value: 1.0, flagged: false, matched: 0, unmatched: 0 },
            max_age_hint_ms: 5_000,
            dataflow: "t".into(),
            schema_version: banditflow_core::record::SCHEMA_VERSION,
        }
    }

    #[test]
    fn it_keeps_the_newest_version_and_ignores_older_ones() {
        let cache = WeightsCache::new();
        assert_eq!(cache.offer(record("e", 5, 100, &[("a", 0.5), ("b", 0.5)])), Offered::Kept);
        assert_eq!(cache.offer(record("e", 3, 200, &[("a", 1.0)])), Offered::Older { held: 5 });
        assert_eq!(cache.offer(record("e", 5, 300, &[("a", 1.0)])), Offered::Older { held: 5 }, "the same version again");
        assert_eq!(cache.version("e"), Some(5));
        assert_eq!(cache.ignored(), 2);
        assert_eq!(cache.offer(record("e", 9, 400, &[("a", 0.25), ("b", 0.75)])), Offered::Kept);
        let held = cache.get("e").expect("held");
        assert_eq!(held.ranges, vec![(0.0, 0.25), (0.25, 1.0)]);
        assert_eq!((cache.len(), cache.entities()), (1, vec!["e".to_owned()]));
    }

    #[test]
    fn age_is_the_pipelines_so_a_quiet_entity_stays_current() {
        let cache = WeightsCache::new();
        assert_eq!(cache.pipeline_age_ms(1_000), i64::MAX);
        cache.offer(record("quiet", 1, 1_000, &[("a", 1.0)]));
        cache.offer(record("busy", 1, 5_000, &[("a", 1.0)]));
        assert_eq!(cache.age_ms("quiet", 6_000), Some(1_000), "the pipeline spoke at 5 s");
        assert_eq!(cache.record_age_ms("quiet", 6_000), Some(5_000), "its own record is 5 s old");
        assert_eq!(cache.age_ms("missing", 6_000), None);
        // An older record (a replay) does not make the pipeline look alive.
        cache.offer(record("busy", 1, 9_000, &[("a", 1.0)]));
        assert_eq!(cache.pipeline_age_ms(6_000), 1_000);
    }
}
