//! What the worker tells the metrics endpoint: a [`Snapshot`] of its state at one scrape,
//! put together from the workers' reports ([`WorkerReports`]), the sinks' states and what the
//! published records say; and the two histograms the worker observes directly.

use std::collections::{BTreeMap, HashMap};
use std::sync::{LazyLock, Mutex};

use banditflow_core::counters::Counters;
use banditflow_core::record::{EncodedDecision, EncodedRecord, WeightRecord};
use prometheus::{Histogram, HistogramOpts, HistogramVec};

/// Seconds from a tick's completion (its records handed to the sinks) to a sink's
/// acknowledgement, by sink.
pub static PUBLISH_LATENCY: LazyLock<HistogramVec> = LazyLock::new(|| {
    let opts = HistogramOpts::new("banditflow_publish_latency_seconds", "From a tick's records reaching the sinks to the sink's acknowledgement.")
        .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]);
    let histogram = HistogramVec::new(opts, &["sink"]).unwrap_or_else(|e| panic!("publish latency histogram: {e}"));
    let _ = prometheus::default_registry().register(Box::new(histogram.clone()));
    histogram
});

/// Seconds from the local sources completing a tick to its records reaching the sinks:
/// attribution, window, posteriors and policy for that tick.
pub static TICK_PROCESSING: LazyLock<Histogram> = LazyLock::new(|| {
    let opts = HistogramOpts::new("banditflow_tick_processing_seconds", "From the sources completing a tick to its weight records reaching the sinks.")
        .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]);
    let histogram = Histogram::with_opts(opts).unwrap_or_else(|e| panic!("tick processing histogram: {e}"));
    let _ = prometheus::default_registry().register(Box::new(histogram.clone()));
    histogram
});

/// One sink as the endpoint reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SinkState {
    /// `kafka` or `redis`.
    pub name: &'static str,
    /// Records written so far.
    pub written: u64,
    /// Failed writes so far.
    pub failures: u64,
    /// Whether its last write succeeded.
    pub up: bool,
    /// Wall-clock ms of its last successful write.
    pub last_write_ms: Option<i64>,
}

/// What the published records say, for the metrics: arms per entity, and the arms of the
/// entities chosen in `[metrics] entities`.
#[derive(Clone, Debug, Default)]
pub struct PublishedState {
    /// Arms in the newest record of each entity published so far.
    pub arms: HashMap<String, usize>,
    /// `(weight, p_best, trials)` per arm of each watched entity's newest record.
    pub watched: BTreeMap<String, Vec<(String, f64, f64, u64)>>,
    /// Whether each watched entity's newest record has its sample-ratio check flagged.
    pub srm_watched: BTreeMap<String, bool>,
    /// Entities (all) whose newest record is flagged.
    pub srm_flagged: std::collections::HashSet<String>,
    /// Times an entity's check became flagged.
    pub srm_flags: u64,
    /// Decision events published, by rule.
    pub decisions: BTreeMap<&'static str, u64>,
}

impl PublishedState {
    /// Takes in a decision event about to be published.
    pub fn decided(&mut self, decision: &EncodedDecision) {
        *self.decisions.entry(decision.rule.as_str()).or_insert(0) += 1;
    }

    /// Forgets an entity the dataflow forgot (its watched arms too, should it be watched).
    pub fn forget(&mut self, entity: &str) {
        self.arms.remove(entity);
        self.srm_flagged.remove(entity);
        self.watched.remove(entity);
        self.srm_watched.remove(entity);
        banditflow_core::sparse::shrink_map(&mut self.arms);
        banditflow_core::sparse::shrink_set(&mut self.srm_flagged);
    }

    /// Takes in a record about to be published; `watch` are the opted-in entities.
    pub fn observe(&mut self, record: &EncodedRecord, watch: &[String]) {
        self.arms.insert(record.entity_id.clone(), record.arms);
        if record.srm_flagged {
            if self.srm_flagged.insert(record.entity_id.clone()) {
                self.srm_flags += 1;
            }
        } else if !self.srm_flagged.is_empty() {
            self.srm_flagged.remove(&record.entity_id);
        }
        if watch.contains(&record.entity_id) {
            self.srm_watched.insert(record.entity_id.clone(), record.srm_flagged);
            if let Ok(parsed) = serde_json::from_str::<WeightRecord>(&record.json) {
                let arms = parsed.arms.iter().map(|a| (a.arm_id.clone(), a.weight, a.p_best, a.trials)).collect();
                self.watched.insert(record.entity_id.clone(), arms);
            }
        }
    }
}

/// The worker's state at one scrape.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Counters summed over this process's workers.
    pub counters: Counters,
    /// The sinks of this process.
    pub sinks: Vec<SinkState>,
    /// End of the last complete tick, ms since the epoch (`None` before the first).
    pub complete_through_ms: Option<i64>,
    /// Every source has read to the end of its partitions once.
    pub caught_up: bool,
    /// Consumer lag in messages per `(topic, partition)` read by this process.
    pub consumer_lag: BTreeMap<(String, i32), i64>,
    /// What the records published by this process say.
    pub published: PublishedState,
    /// Messages read since start-up (for the rebuild progress).
    pub messages_read: u64,
    /// Largest event-time lag, in ms, at which the worker still counts as ready.
    pub ready_max_lag_ms: Option<i64>,
    /// The caps `[max_entities, max_arms_per_entity, max_pending_assignments,
    /// max_outcomes_per_assignment]` (0: not known).
    pub cap_limits: [u64; 4],
}


/// What each timely worker of a process last told the endpoint: its counters and the
/// published frontier it sees. Workers keep their counters to themselves and report them here
/// every [`WorkerReports::EVERY`].
#[derive(Debug, Default)]
pub struct WorkerReports {
    reports: Mutex<HashMap<usize, (Counters, Option<u64>)>>,
}

impl WorkerReports {
    /// How often a worker reports.
    pub const EVERY: std::time::Duration = std::time::Duration::from_millis(250);

    /// Worker `worker` has these counters and sees the published frontier at `frontier`
    /// (`None`: empty, everything published).
    pub fn report(&self, worker: usize, counters: &Counters, frontier: Option<u64>) {
        if let Ok(mut reports) = self.reports.lock() {
            reports.insert(worker, (counters.clone(), frontier));
        }
    }

    /// A snapshot holding the workers' counters summed and the end of the last tick every
    /// worker has published (ticks of `tick_ms`); the rest is left at its default.
    pub fn snapshot(&self, tick_ms: u64) -> Snapshot {
        let mut snapshot = Snapshot::default();
        if let Ok(reports) = self.reports.lock() {
            for (counters, _) in reports.values() {
                snapshot.counters.merge(counters);
            }
            let frontier = reports.values().filter_map(|(_, f)| *f).min();
            snapshot.complete_through_ms = frontier.filter(|&f| f > 0 && f < u64::MAX).map(|f| f.saturating_mul(tick_ms).min(i64::MAX as u64) as i64);
        }
        snapshot
    }
}

