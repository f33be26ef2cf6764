//! The Prometheus side of the endpoint: a registry with every metric, moved up to a
//! [`Snapshot`] at each scrape and rendered in the text format.

use std::sync::LazyLock;

use banditflow_core::time::now_ms;
use prometheus::{Encoder, Gauge, GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use super::snapshot::{Snapshot, PUBLISH_LATENCY, TICK_PROCESSING};

/// The Prometheus side: a registry and the metrics in it.
pub struct Exported {
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
    cap_used: IntGaugeVec,
    cap_limit: IntGaugeVec,
    allocated: IntGauge,
    rebuild: Gauge,
    checkpoints_written: IntCounterVec,
    rejected: IntCounterVec,
    checkpoint_failures: IntCounterVec,
    checkpoints_skipped: IntCounterVec,
    last_checkpoint: Gauge,
    partitions_added: IntGauge,
    arm_weight: GaugeVec,
    arm_p_best: GaugeVec,
    arm_trials: IntGaugeVec,
    srm_flagged: IntGaugeVec,
    srm_flags: IntCounterVec,
    decisions: IntCounterVec,
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
    /// A registry holding every metric, at zero.
    pub fn new() -> Result<Exported, prometheus::Error> {
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
        let cap_used = registered(&registry, IntGaugeVec::new(Opts::new("banditflow_cap_used", "What the dataflow holds against each cap of [limits]: entities (max_entities), the most arms of one entity (max_arms_per_entity), pending assignments (max_pending_assignments), the most outcomes held for one assignment (max_outcomes_per_assignment)."), &["cap"])?)?;
        let allocated = registered(&registry, IntGauge::new("banditflow_memory_allocated_bytes", "Bytes the process has allocated and not freed, as its allocator (jemalloc) counts them.")?)?;
        let cap_limit = registered(&registry, IntGaugeVec::new(Opts::new("banditflow_cap_limit", "Each cap of [limits], as configured."), &["cap"])?)?;
        let arms = registered(&registry, IntGauge::new("banditflow_arms", "Arms in the newest published records of all entities.")?)?;
        let arm_weight = registered(&registry, GaugeVec::new(Opts::new("banditflow_arm_weight", "Published weight of an arm of a watched entity ([metrics] entities)."), &["entity", "arm"])?)?;
        let arm_p_best = registered(&registry, GaugeVec::new(Opts::new("banditflow_arm_p_best", "Probability that the arm is best, for watched entities."), &["entity", "arm"])?)?;
        let arm_trials = registered(&registry, IntGaugeVec::new(Opts::new("banditflow_arm_trials", "Resolved trials of the arm in the window, for watched entities."), &["entity", "arm"])?)?;
        let srm_flagged = registered(&registry, IntGaugeVec::new(Opts::new("banditflow_srm_flagged", "1 if the newest record of a watched entity ([metrics] entities) has its sample-ratio check flagged."), &["entity"])?)?;
        let srm_flags = counter(&registry, "banditflow_srm_flags_total", "Times an entity's sample-ratio check became flagged (every entity).", &[])?;
        let decisions = counter(&registry, "banditflow_decisions_total", "Decision events published, by rule (winner, winner_cleared, stop, redeclared).", &["rule"])?;
        let rebuild = registered(&registry, Gauge::new("banditflow_rebuild_progress_ratio", "Start-up: share of the window's messages read (1 once caught up).")?)?;
        Ok(Exported {
            rebuild,
            rejected: counter(&registry, "banditflow_publish_rejected_total", "Weight records a sink refused for good (too large, invalid) and skipped, by sink.", &["sink"])?,
            checkpoints_written: counter(&registry, "banditflow_checkpoints_written_total", "Checkpoints written.", &[])?,
            checkpoint_failures: counter(&registry, "banditflow_checkpoint_write_failures_total", "Checkpoints that could not be written (directory unwritable, disk full).", &[])?,
            checkpoints_skipped: counter(&registry, "banditflow_checkpoints_skipped_total", "Checkpoints skipped at start-up because they did not read back whole.", &[])?,
            partitions_added: registered(&registry, IntGauge::new("banditflow_input_partitions_added", "1 once partitions were added to an input topic while the worker ran: it stops so that a restart reads them.")?)?,
            last_checkpoint: registered(&registry, Gauge::new("banditflow_last_checkpoint_timestamp_seconds", "Wall-clock time of the last checkpoint written (0: none).")?)?,
            entities,
            cap_used,
            cap_limit,
            allocated,
            arms,
            arm_weight,
            arm_p_best,
            arm_trials,
            srm_flagged,
            srm_flags,
            decisions,
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
    pub fn render(&self, snapshot: &Snapshot) -> Vec<u8> {
        let raise = |metric: &IntCounterVec, label: &str, value: u64| {
            let c = metric.with_label_values(&[label]);
            let current = c.get();
            if value > current {
                c.inc_by(value - current);
            }
        };
        let c = &snapshot.counters;
        for (metric, value) in [
            (&self.checkpoints_written, crate::checkpoint::WRITTEN.load(std::sync::atomic::Ordering::Relaxed)),
            (&self.checkpoint_failures, crate::checkpoint::WRITE_FAILURES.load(std::sync::atomic::Ordering::Relaxed)),
            (&self.checkpoints_skipped, crate::checkpoint::CORRUPT_SKIPPED.load(std::sync::atomic::Ordering::Relaxed)),
        ] {
            let counter = metric.with_label_values(&[] as &[&str]);
            if value > counter.get() {
                counter.inc_by(value - counter.get());
            }
        }
        self.partitions_added.set(crate::kafka::client::PARTITIONS_ADDED.load(std::sync::atomic::Ordering::Relaxed));
        raise(&self.rejected, "kafka", crate::kafka::sink::REJECTED.load(std::sync::atomic::Ordering::Relaxed));
        self.last_checkpoint.set(crate::checkpoint::LAST_WRITTEN_MS.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1000.0);
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
        for (entity, flagged) in &snapshot.published.srm_watched {
            self.srm_flagged.with_label_values(&[entity.as_str()]).set(i64::from(*flagged));
        }
        let flags = self.srm_flags.with_label_values(&[] as &[&str]);
        if snapshot.published.srm_flags > flags.get() {
            flags.inc_by(snapshot.published.srm_flags - flags.get());
        }
        for rule in ["winner", "winner_cleared", "stop", "redeclared"] {
            raise(&self.decisions, rule, snapshot.published.decisions.get(rule).copied().unwrap_or(0));
        }
        let caps = [
            ("max_entities", c.entities_held),
            ("max_arms_per_entity", c.most_arms_held),
            ("max_pending_assignments", c.pending_assignments),
            ("max_outcomes_per_assignment", c.most_outcomes_held),
        ];
        for ((cap, used), limit) in caps.into_iter().zip(snapshot.cap_limits) {
            self.cap_used.with_label_values(&[cap]).set(used.min(i64::MAX as u64) as i64);
            self.cap_limit.with_label_values(&[cap]).set(limit.min(i64::MAX as u64) as i64);
        }
        // The statistics are refreshed when the epoch advances.
        if tikv_jemalloc_ctl::epoch::advance().is_ok() {
            if let Ok(bytes) = tikv_jemalloc_ctl::stats::allocated::read() {
                self.allocated.set(bytes.min(i64::MAX as usize) as i64);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::snapshot::SinkState;

    #[test]
    fn counters_follow_the_snapshot_and_render_as_prometheus_text() {
        let exported = Exported::new().expect("registry");
        let mut snapshot = Snapshot { sinks: vec![SinkState { name: "redis", up: true, ..SinkState::default() }], ..Snapshot::default() };
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
