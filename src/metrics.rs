//! What the worker tells Prometheus, and the HTTP endpoint that serves it: `/metrics`
//! (text format), `/healthz` (the process is alive) and `/readyz` (caught up, sinks up).
//!
//! Workers keep their counters to themselves; the endpoint asks for a [`Snapshot`] at each
//! scrape and moves the Prometheus counters up to it.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use std::sync::LazyLock;

use prometheus::{Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::counters::Counters;
use crate::time::now_ms;

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
}

impl PublishedState {
    /// Takes in a record about to be published; `watch` are the opted-in entities.
    pub fn observe(&mut self, record: &crate::weights::EncodedRecord, watch: &[String]) {
        self.arms.insert(record.entity_id.clone(), record.arms);
        if watch.iter().any(|w| *w == record.entity_id) {
            if let Ok(parsed) = serde_json::from_str::<crate::weights::WeightRecord>(&record.json) {
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
}


/// Whether the worker is ready at wall-clock `now_ms`: caught up, its event-time lag within
/// the threshold, every sink up. The error says why not.
pub fn readiness(snapshot: &Snapshot, now_ms: i64) -> Result<(), String> {
    if !snapshot.caught_up {
        return Err("not caught up".into());
    }
    if let (Some(max), Some(through)) = (snapshot.ready_max_lag_ms, snapshot.complete_through_ms) {
        if now_ms - through > max {
            return Err(format!("event-time lag {} ms over {max} ms", now_ms - through));
        }
    }
    let down: Vec<&str> = snapshot.sinks.iter().filter(|s| !s.up).map(|s| s.name).collect();
    if !down.is_empty() {
        return Err(format!("sinks down: {}", down.join(", ")));
    }
    Ok(())
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

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The listen address could not be bound.
    #[error("cannot listen on {listen}: {reason}")]
    Listen {
        /// The address.
        listen: SocketAddr,
        /// What the server said.
        reason: String,
    },
    /// A metric could not be registered (a programming error).
    #[error("metrics registry: {0}")]
    Registry(#[from] prometheus::Error),
}

/// The Prometheus side: a registry and the metrics in it.
struct Exported {
    registry: Registry,
    events_read: IntCounterVec,
    events: IntCounterVec,
    malformed: IntCounterVec,
    published: IntCounterVec,
    failures: IntCounterVec,
    sink_up: IntGaugeVec,
    event_time_lag: Gauge,
    caught_up: IntGauge,
    consumer_lag: IntGaugeVec,
    last_write: GaugeVec,
    pending: IntGauge,
    buffered: IntGauge,
    entities: IntGauge,
    arms: IntGauge,
    rebuild: Gauge,
    arm_weight: GaugeVec,
    arm_p_best: GaugeVec,
    arm_trials: IntGaugeVec,
}

/// `metric`, registered in `registry`.
fn registered<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: M) -> Result<M, prometheus::Error> {
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> Result<IntCounterVec, prometheus::Error> {
    registered(registry, IntCounterVec::new(Opts::new(name, help), labels)?)
}

impl Exported {
    fn new() -> Result<Exported, prometheus::Error> {
        let registry = Registry::new();
        let build = registered(&registry, IntGaugeVec::new(Opts::new("banditflow_build_info", "Build of the running worker (value 1)."), &["version"])?)?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let sink_up = registered(&registry, IntGaugeVec::new(Opts::new("banditflow_sink_up", "1 if the sink's last write succeeded."), &["sink"])?)?;
        let event_time_lag = registered(&registry, Gauge::new("banditflow_event_time_lag_seconds", "Wall clock minus the end of the last complete tick.")?)?;
        let caught_up = registered(&registry, IntGauge::new("banditflow_caught_up", "1 once every source has read its partitions to the end.")?)?;
        let consumer_lag = registered(&registry, IntGaugeVec::new(Opts::new("banditflow_consumer_lag_messages", "High watermark minus position, per input partition."), &["topic", "partition"])?)?;
        let last_write = registered(&registry, GaugeVec::new(Opts::new("banditflow_last_publish_timestamp_seconds", "Wall-clock time of the sink's last successful write."), &["sink"])?)?;
        let pending = registered(&registry, IntGauge::new("banditflow_pending_assignments", "Assignments held until their attribution window ends.")?)?;
        let buffered = registered(&registry, IntGauge::new("banditflow_buffered_outcomes", "Outcomes held for an assignment or its resolution.")?)?;
        let entities = registered(&registry, IntGauge::new("banditflow_entities", "Entities with a published weight record.")?)?;
        let arms = registered(&registry, IntGauge::new("banditflow_arms", "Arms in the newest published records of all entities.")?)?;
        let arm_weight = registered(&registry, GaugeVec::new(Opts::new("banditflow_arm_weight", "Published weight of an arm of a watched entity ([metrics] entities)."), &["entity", "arm"])?)?;
        let arm_p_best = registered(&registry, GaugeVec::new(Opts::new("banditflow_arm_p_best", "Probability that the arm is best, for watched entities."), &["entity", "arm"])?)?;
        let arm_trials = registered(&registry, IntGaugeVec::new(Opts::new("banditflow_arm_trials", "Resolved trials of the arm in the window, for watched entities."), &["entity", "arm"])?)?;
        let rebuild = registered(&registry, Gauge::new("banditflow_rebuild_progress_ratio", "Start-up: share of the window's messages read (1 once caught up).")?)?;
        Ok(Exported {
            rebuild,
            entities,
            arms,
            arm_weight,
            arm_p_best,
            arm_trials,
            consumer_lag,
            last_write,
            pending,
            buffered,
            events_read: counter(&registry, "banditflow_events_read_total", "Records read, by topic.", &["topic"])?,
            events: counter(&registry, "banditflow_events_total", "What became of the records read, by result.", &["result"])?,
            malformed: counter(&registry, "banditflow_malformed_total", "Records that could not be applied, by reason.", &["reason"])?,
            published: counter(&registry, "banditflow_weight_records_published_total", "Weight records written, by sink.", &["sink"])?,
            failures: counter(&registry, "banditflow_publish_failures_total", "Failed writes, by sink.", &["sink"])?,
            sink_up,
            event_time_lag,
            caught_up,
            registry,
        })
    }

    /// Moves every metric up to `snapshot` and renders the text format.
    fn render(&self, snapshot: &Snapshot) -> Vec<u8> {
        let raise = |metric: &IntCounterVec, label: &str, value: u64| {
            let c = metric.with_label_values(&[label]);
            let current = c.get();
            if value > current {
                c.inc_by(value - current);
            }
        };
        let c = &snapshot.counters;
        raise(&self.events_read, "assignments", c.assignments_read);
        raise(&self.events_read, "outcomes", c.outcomes_read);
        for (result, value) in [
            ("applied_assignment", c.assignments_applied),
            ("applied_outcome", c.outcomes_applied),
            ("late", c.late),
            ("too_late", c.too_late),
            ("late_outcome", c.late_outcome),
            ("too_old", c.too_old),
            ("duplicate", c.duplicate),
            ("conflict", c.conflict),
            ("outside_attribution", c.outside_attribution),
            ("unmatched_outcome", c.unmatched_outcome),
            ("ignored_kind", c.ignored_kind),
            ("retired_arm", c.retired_arm),
            ("malformed", c.malformed_total()),
        ] {
            raise(&self.events, result, value);
        }
        for (reason, value) in &c.malformed {
            raise(&self.malformed, reason, *value);
        }
        for sink in &snapshot.sinks {
            raise(&self.published, sink.name, sink.written);
            raise(&self.failures, sink.name, sink.failures);
            self.sink_up.with_label_values(&[sink.name]).set(i64::from(sink.up));
            if let Some(ms) = sink.last_write_ms {
                self.last_write.with_label_values(&[sink.name]).set(ms as f64 / 1000.0);
            }
        }
        for ((topic, partition), lag) in &snapshot.consumer_lag {
            self.consumer_lag.with_label_values(&[topic.as_str(), partition.to_string().as_str()]).set(*lag);
        }
        self.entities.set(snapshot.published.arms.len() as i64);
        self.arms.set(snapshot.published.arms.values().sum::<usize>() as i64);
        for (entity, arms) in &snapshot.published.watched {
            for (arm, weight, p_best, trials) in arms {
                self.arm_weight.with_label_values(&[entity.as_str(), arm.as_str()]).set(*weight);
                self.arm_p_best.with_label_values(&[entity.as_str(), arm.as_str()]).set(*p_best);
                self.arm_trials.with_label_values(&[entity.as_str(), arm.as_str()]).set((*trials).min(i64::MAX as u64) as i64);
            }
        }
        self.pending.set(c.pending_assignments.min(i64::MAX as u64) as i64);
        self.buffered.set(c.buffered_outcomes.min(i64::MAX as u64) as i64);
        if let Some(through) = snapshot.complete_through_ms {
            self.event_time_lag.set((now_ms() - through).max(0) as f64 / 1000.0);
        }
        self.caught_up.set(i64::from(snapshot.caught_up));
        let behind: i64 = snapshot.consumer_lag.values().sum();
        let read = snapshot.messages_read as f64;
        self.rebuild.set(if snapshot.caught_up { 1.0 } else if read + behind as f64 > 0.0 { read / (read + behind.max(0) as f64) } else { 0.0 });
        let mut out = Vec::new();
        LazyLock::force(&PUBLISH_LATENCY);
        LazyLock::force(&TICK_PROCESSING);
        let mut families = self.registry.gather();
        families.extend(prometheus::default_registry().gather());
        families.sort_by(|a, b| a.name().cmp(b.name()));
        if let Err(error) = TextEncoder::new().encode(&families, &mut out) {
            tracing::warn!(%error, "cannot encode metrics");
        }
        out
    }
}

/// The running endpoint; dropping it stops the server.
pub struct Endpoint {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// The address it listens on (the port is chosen by the OS if `listen` had port 0).
    pub address: SocketAddr,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listen`, asking `snapshot` at each request.
pub fn serve<S>(listen: SocketAddr, snapshot: S) -> Result<Endpoint, MetricsError>
where
    S: Fn() -> Snapshot + Send + 'static,
{
    let exported = Exported::new()?;
    let server = tiny_http::Server::http(listen).map_err(|e| MetricsError::Listen { listen, reason: e.to_string() })?;
    let address = server.server_addr().to_ip().unwrap_or(listen);
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let exported = Mutex::new(exported);
    let thread = std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            while !stopping.load(Ordering::Acquire) {
                let Ok(Some(request)) = server.recv_timeout(Duration::from_millis(100)) else { continue };
                let path = request.url().split('?').next().unwrap_or("").to_owned();
                let response = match path.as_str() {
                    "/metrics" => {
                        let body = exported.lock().map(|e| e.render(&snapshot())).unwrap_or_default();
                        let header = tiny_http::Header::from_bytes("Content-Type", "text/plain; version=0.0.4").ok();
                        let mut response = tiny_http::Response::from_data(body);
                        if let Some(header) = header {
                            response.add_header(header);
                        }
                        response
                    }
                    "/healthz" => tiny_http::Response::from_data(b"ok\n".to_vec()),
                    "/readyz" => match readiness(&snapshot(), now_ms()) {
                        Ok(()) => tiny_http::Response::from_data(b"ready\n".to_vec()),
                        Err(why) => tiny_http::Response::from_data(format!("{why}\n").into_bytes()).with_status_code(503),
                    },
                    _ => tiny_http::Response::from_data(b"not found\n".to_vec()).with_status_code(404),
                };
                let _ = request.respond(response);
            }
        })
        .map_err(|e| MetricsError::Listen { listen, reason: e.to_string() })?;
    Ok(Endpoint { stop, thread: Some(thread), address })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready() -> Snapshot {
        Snapshot {
            caught_up: true,
            complete_through_ms: Some(100_000),
            ready_max_lag_ms: Some(5_000),
            sinks: vec![SinkState { name: "redis", up: true, ..SinkState::default() }],
            ..Snapshot::default()
        }
    }

    #[test]
    fn ready_only_when_caught_up_within_the_lag_threshold_with_every_sink_up() {
        assert_eq!(readiness(&ready(), 105_000), Ok(()));
        assert_eq!(readiness(&Snapshot { caught_up: false, ..ready() }, 105_000), Err("not caught up".into()));
        assert_eq!(readiness(&ready(), 105_001), Err("event-time lag 5001 ms over 5000 ms".into()));
        let down = Snapshot { sinks: vec![SinkState { name: "redis", up: false, ..SinkState::default() }], ..ready() };
        assert_eq!(readiness(&down, 105_000), Err("sinks down: redis".into()));
    }

    #[test]
    fn counters_follow_the_snapshot_and_render_as_prometheus_text() {
        let exported = Exported::new().expect("registry");
        let mut snapshot = ready();
        snapshot.counters.assignments_read = 7;
        snapshot.counters.malformed("missing_field");
        let page = String::from_utf8(exported.render(&snapshot)).expect("utf8");
        assert!(page.contains("banditflow_events_read_total{topic=\"assignments\"} 7"), "{page}");
        assert!(page.contains("banditflow_malformed_total{reason=\"missing_field\"} 1"), "{page}");
        snapshot.counters.assignments_read = 9;
        let page = String::from_utf8(exported.render(&snapshot)).expect("utf8");
        assert!(page.contains("banditflow_events_read_total{topic=\"assignments\"} 9"), "{page}");
    }
}
