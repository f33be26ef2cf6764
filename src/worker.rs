//! The long-running worker (`banditflow run`): Kafka in, weight records out to the weights
//! topic and Redis, on one process or a timely cluster of several.
//!
//! It runs the same dataflow as replay. At start-up it rebuilds its window from the topics
//! themselves (each partition from `now - window - attribution - allowed_lateness`) and skips
//! records at or below versions already published. On a stop request it stops reading,
//! publishes the ticks whose data is complete, commits offsets and returns.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::dataflow::operators::Probe;

use banditflow_core::counters::Counters;
use banditflow_core::time::now_ms;

use banditflow_core::time::Ticks;

use crate::checkpoint::{self, Collector, Store};
use crate::dataflow::{bandit, publish, Recovery};
use crate::deployment::{Job, KafkaConfig};
use crate::kafka::client::{self as kafka, KafkaClientError};
use crate::kafka::control::{Control, Topic};
use crate::kafka::dead_letter::DeadLetters;
use crate::kafka::source::{kafka_source, SourceContext};
use crate::metrics::{self, MetricsError, Snapshot, WorkerReports};
use crate::publisher::{Publisher, SinkError, SinkSummary, Targets};

/// Entities a sink may hold unwritten before the dataflow waits for it.
pub const SINK_CAPACITY: usize = 1_000_000;

/// A timely cluster: this process is `process` of `processes`, at the addresses in `hostfile`
/// (one `host:port` per line, in process order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    /// Number of processes.
    pub processes: usize,
    /// This process's index.
    pub process: usize,
    /// Addresses of every process, one per line.
    pub hostfile: Option<PathBuf>,
}

/// A run of the worker.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The job, with its `[kafka]` (required) and `[redis]` sections.
    pub job: Job,
    /// Worker threads in this process.
    pub workers: usize,
    /// The cluster, if more than one process.
    pub cluster: Option<Cluster>,
    /// Set to stop the worker gracefully (SIGTERM/SIGINT handlers set it).
    pub stop: Arc<AtomicBool>,
    /// Where to serve `/metrics`, `/healthz` and `/readyz` (`None`: nowhere).
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// Why the worker could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The job file has no `[kafka]` section.
    #[error("the job has no [kafka] section: `run` needs brokers and topics")]
    NoKafka,
    /// The job publishes nowhere.
    #[error("the job publishes nowhere: set [kafka] weights_topic, [redis], or both")]
    NoSink,
    /// A cluster option is wrong.
    #[error("cluster: {0}")]
    Cluster(String),
    /// Kafka refused at start-up.
    #[error(transparent)]
    Kafka(#[from] KafkaClientError),
    /// A sink could not start.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// Timely could not start or a worker failed.
    #[error("dataflow failed: {0}")]
    Dataflow(String),
    /// The metrics endpoint could not start.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The worker stopped itself, for the reason given.
    #[error("{0}")]
    Stopped(String),
    /// Partitions were added to an input topic while the worker ran.
    #[error("partitions were added to the input topics while the worker ran ({0}); it stopped so that a restart reads them all (it resumes from its checkpoint, if any)")]
    PartitionsAdded(String),
    /// The checkpoint directory cannot be used.
    #[error("checkpoint directory {dir}: {error}")]
    Checkpoints {
        /// `[checkpoint] dir`.
        dir: String,
        /// What the file system said.
        error: std::io::Error,
    },
}

/// What a finished run did (in this process).
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// Counters summed over this process's workers.
    pub counters: Counters,
    /// The sinks of this process (process 0 only).
    pub sinks: Vec<SinkSummary>,
    /// Wall time of the run.
    pub elapsed: Duration,
}


/// How much merging an idle arrangement does per scheduling, in records: enough that the
/// window's traces are compacted once traffic stops, rather than holding the retracted
/// counts of forgotten entities until more traffic comes.
const IDLE_MERGE_EFFORT: isize = 10_000;

/// The timely configuration of `options`.
fn timely_config(options: &RunOptions) -> Result<timely::Config, WorkerError> {
    let mut config = cluster_config(options)?;
    differential_dataflow::configure(&mut config.worker, &differential_dataflow::Config::default().idle_merge_effort(Some(IDLE_MERGE_EFFORT)));
    Ok(config)
}

/// The communication of `options`: threads of one process, or a cluster.
fn cluster_config(options: &RunOptions) -> Result<timely::Config, WorkerError> {
    let threads = options.workers.max(1);
    let Some(cluster) = options.cluster.as_ref().filter(|c| c.processes > 1) else {
        return Ok(timely::Config::process(threads));
    };
    if cluster.process >= cluster.processes {
        return Err(WorkerError::Cluster(format!("--process {} is not below --processes {}", cluster.process, cluster.processes)));
    }
    let addresses: Vec<String> = match &cluster.hostfile {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| WorkerError::Cluster(format!("cannot read {}: {e}", path.display())))?;
            text.lines().map(str::trim).filter(|l| !l.is_empty()).take(cluster.processes).map(str::to_owned).collect()
        }
        None => (0..cluster.processes).map(|i| format!("localhost:{}", 2101 + i)).collect(),
    };
    if addresses.len() < cluster.processes {
        return Err(WorkerError::Cluster(format!("the hostfile has {} addresses for {} processes", addresses.len(), cluster.processes)));
    }
    Ok(timely::Config {
        communication: timely::CommunicationConfig::Cluster { threads, process: cluster.process, addresses, report: false, zerocopy: false },
        worker: timely::WorkerConfig::default(),
    })
}

/// What a program that embeds the worker (the demo) can see of it while it runs.
#[derive(Default)]
pub struct Watch {
    ready: AtomicBool,
    metrics_address: Mutex<Option<std::net::SocketAddr>>,
    snapshot: Mutex<Option<SnapshotFn>>,
}

/// How the worker's state is read at a scrape.
type SnapshotFn = Arc<dyn Fn() -> Snapshot + Send + Sync>;

impl Watch {
    /// Every local source has read to the end of its partitions once.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Where the metrics endpoint listens (the port the OS chose for port 0).
    pub fn metrics_address(&self) -> Option<std::net::SocketAddr> {
        self.metrics_address.lock().ok().and_then(|a| *a)
    }

    /// The worker's state as a scrape of `/metrics` would see it (`None` before it started).
    pub fn snapshot(&self) -> Option<Snapshot> {
        let snapshot = self.snapshot.lock().ok()?.clone()?;
        Some(snapshot())
    }
}

/// Runs the worker until `options.stop` is set; `watch` tells how it is doing meanwhile.
pub fn run(options: &RunOptions, watch: Arc<Watch>) -> Result<RunSummary, WorkerError> {
    let started = Instant::now();
    let Job { dataflow: job, deployment } = options.job.clone();
    let kafka = deployment.kafka.clone().ok_or(WorkerError::NoKafka)?;
    let config = timely_config(options)?;
    let process = options.cluster.as_ref().map_or(0, |c| c.process);
    let partitions = input_partitions(&kafka)?;
    let processes = options.cluster.as_ref().map_or(1, |c| c.processes.max(1));
    let local_workers = options.workers.max(1);
    let store = match deployment.checkpoint.as_ref() {
        Some(c) => Some(Store::open(&c.dir, c.keep, process, processes).map_err(|error| WorkerError::Checkpoints { dir: c.dir.display().to_string(), error })?),
        None => None,
    };
    let restored = match &store {
        Some(store) => resume_from(store, &job, &config, processes, local_workers)?.map(Arc::new),
        None => None,
    };
    let dead_letters = match kafka::dead_letter_topic(&kafka, deployment.mode) {
        Some(topic) => Some(Arc::new(DeadLetters::new(&kafka, topic)?)),
        None => None,
    };
    let publisher = if process == 0 {
        let targets = Targets::of(Some(&kafka), deployment.redis.as_ref(), deployment.mode);
        if targets.kafka.is_none() && targets.redis.is_none() {
            return Err(WorkerError::NoSink);
        }
        // Resumed under another allocation, the weights stage needs to know what was published.
        let switching = restored.as_deref().is_some_and(|c| switches_allocation(c, &job));
        Some(Arc::new(Publisher::start(&targets, SINK_CAPACITY, restored.as_deref(), dead_letters.clone(), switching)?))
    } else {
        None
    };
    let collector = match (&store, deployment.checkpoint.as_ref()) {
        (Some(_), Some(c)) => {
            let peers = local_workers * processes;
            let sources = (0..local_workers).filter(|w| !kafka::owned_by(&partitions, process * local_workers + w, peers).is_empty()).count();
            let every = (c.interval_ms / job.tick_ms.max(1)).max(1);
            Some(Collector::of_process(process, processes, local_workers, sources, every, restored.as_ref().map_or(0, |r| r.tick)))
        }
        _ => None,
    };
    // The first process learns what was published from its publisher's read-back; the others
    // read the weights topic themselves, needed only when the allocation changed.
    let newest = match (&publisher, restored.as_deref()) {
        (Some(p), _) => p.newest_version(),
        (None, Some(checkpoint)) if switches_allocation(checkpoint, &job) => crate::publisher::newest_published(&Targets::of(Some(&kafka), deployment.redis.as_ref(), deployment.mode), checkpoint),
        (None, _) => None,
    };
    let published_through = newest.map(|v| v.min(i64::MAX as u64) as i64);
    let recovery = Recovery { restored, collector: collector.clone(), published_through };
    let timing = checkpoint::timing(&job);
    let watched_topics = (kafka.clone(), partitions.clone());
    // A rebuild reads back far enough for the ticks after the last one published (or, the
    // first time, for now), and publishes no tick whose window it did not fully read.
    let lookback = (job.window_ms + job.attribution_ms + job.allowed_lateness_ms).min(i64::MAX as u64) as i64;
    // Resuming, the checkpoint's tick was published (partitions it does not know, added
    // since, are read from there back); otherwise what the weights topic holds.
    let checkpointed = recovery.restored.as_ref().map(|c| Ticks::new(job.tick_ms).as_of(c.tick.saturating_sub(1)));
    let last_published = checkpointed.or_else(|| publisher.as_ref().and_then(|p| p.newest_version()).map(|v| v.min(i64::MAX as u64) as i64));
    let rebuild_from_ms = last_published.map_or_else(now_ms, |v| v.min(now_ms())) - lookback;
    // Only a warning: it need not hold up the start (each look-up is a round trip).
    let retention_kafka = kafka.clone();
    let _ = std::thread::Builder::new().name("retention-check".into()).spawn(move || check_retention(&retention_kafka, lookback));
    let publish_from = if recovery.restored.is_some() { 0 } else { first_publishable(&kafka, &partitions, rebuild_from_ms, &job) };
    if publish_from > 0 {
        tracing::info!(
            read_from = %crate::logs::rfc3339(rebuild_from_ms),
            first_tick = %crate::logs::rfc3339(Ticks::new(job.tick_ms).as_of(publish_from)),
            "rebuilding: ticks whose window was not read in full are not published"
        );
    }
    tracing::info!(
        dataflow = %job.name,
        mode = %deployment.mode,
        workers = options.workers,
        process,
        partitions = partitions.len(),
        rebuild_from = %crate::logs::rfc3339(rebuild_from_ms),
        "worker starting"
    );
    let control = Arc::new(Control::new(options.stop.clone(), options.workers.max(1)));
    let failure: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    // What each local worker last reported: its counters and the published frontier.
    let reports = Arc::new(WorkerReports::default());
    let lag: kafka::ConsumerLag = Arc::default();
    let published_state: Arc<Mutex<metrics::PublishedState>> = Arc::default();
    let scrape: SnapshotFn = {
        let ready_max_lag_ms = deployment.metrics.ready_max_lag_ms.min(i64::MAX as u64) as i64;
        let (reports, control, publisher, tick_ms, lag, published) = (reports.clone(), control.clone(), publisher.clone(), job.tick_ms, lag.clone(), published_state.clone());
        let limits = job.limits;
        Arc::new(move || {
            let mut now = snapshot(&reports, &control, publisher.as_deref(), tick_ms);
            now.cap_limits = [limits.max_entities, limits.max_arms_per_entity, limits.max_pending_assignments, limits.max_outcomes_per_assignment].map(|cap| cap as u64);
            now.consumer_lag = lag.lock().map(|l| l.clone()).unwrap_or_default();
            now.published = published.lock().map(|p| p.clone()).unwrap_or_default();
            now.ready_max_lag_ms = Some(ready_max_lag_ms);
            now
        })
    };
    if let Ok(mut slot) = watch.snapshot.lock() {
        *slot = Some(scrape.clone());
    }
    let endpoint = match options.metrics_listen {
        Some(listen) => {
            let endpoint = metrics::serve(listen, move || scrape())?;
            tracing::info!(address = %endpoint.address, "metrics endpoint listening");
            if let Ok(mut slot) = watch.metrics_address.lock() {
                *slot = Some(endpoint.address);
            }
            Some(endpoint)
        }
        None => None,
    };
    let (worker_control, worker_publisher, worker_failure, worker_reports, worker_lag) = (control.clone(), publisher.clone(), failure.clone(), reports, lag);
    let worker_published = published_state;
    let checkpoint_letters = dead_letters.clone();
    let guards = timely::execute(config, move |worker| {
        let counters = Rc::new(RefCell::new(Counters::default()));
        let published = ProbeHandle::new();
        let ctx = SourceContext {
            job: job.clone(),
            kafka: kafka.clone(),
            partitions: partitions.clone(),
            rebuild_from_ms,
            published: published.clone(),
            control: worker_control.clone(),
            counters: counters.clone(),
            lag: worker_lag.clone(),
            resume: recovery.restored.clone(),
            collector: recovery.collector.clone(),
            dead_letters: dead_letters.clone(),
        };
        let sink = if worker.index() == 0 { worker_publisher.clone() } else { None };
        let acked = sink.clone();
        let written = counters.clone();
        let processing_control = worker_control.clone();
        let (state, watch) = (worker_published.clone(), deployment.metrics.entities.clone());
        let job = job.clone();
        let built = worker.dataflow::<u64, _, _>(|scope| {
            let (events, catalog, refuse) = kafka_source(scope, ctx)?;
            let records = bandit(events, catalog, &job, counters.clone(), &recovery, refuse);
            publish(
                records,
                move |tick, batch, decisions, forgotten| {
                    // A tick whose window the rebuild did not read in full goes out empty.
                    let (batch, decisions) = if tick < publish_from { (Vec::new(), Vec::new()) } else { (batch, decisions) };
                    written.borrow_mut().records_written += batch.len() as u64;
                    written.borrow_mut().decisions_written += decisions.len() as u64;
                    if let Some(sink) = &sink {
                        if let Some(at) = processing_control.completed_at(tick) {
                            metrics::TICK_PROCESSING.observe(at.elapsed().as_secs_f64());
                        }
                        if let Ok(mut state) = state.lock() {
                            for record in &batch {
                                state.observe(record, &watch);
                            }
                            for decision in &decisions {
                                state.decided(decision);
                            }
                            for entity in &forgotten {
                                state.forget(entity);
                            }
                        }
                        sink.submit(tick, &batch, &decisions);
                    }
                },
                move || acked.as_ref().map_or(u64::MAX, |p| p.acked()),
            )
            .probe_with(&published);
            Ok::<(), KafkaClientError>(())
        });
        if let Err(error) = built {
            tracing::error!(%error, "worker cannot start its source");
            if let Ok(mut slot) = worker_failure.lock() {
                slot.get_or_insert(error.to_string());
            }
            worker_control.stop.store(true, Ordering::Release);
        }
        let mut reported = Instant::now();
        while !worker_control.finished() {
            worker.step_or_park(Some(Duration::from_millis(20)));
            if reported.elapsed() >= WorkerReports::EVERY {
                reported = Instant::now();
                worker_reports.report(worker.index(), &counters.borrow(), published.with_frontier(|f| f.first().copied()));
            }
        }
        for id in worker.installed_dataflows() {
            worker.drop_dataflow(id);
        }
        let result = counters.borrow().clone();
        result
    })
    .map_err(WorkerError::Dataflow)?;
    let watcher = control;
    let writer = (collector, store, publisher.clone(), timing, watched_topics, failure.clone(), checkpoint_letters);
    let readiness = std::thread::spawn(move || {
        let (collector, store, publisher, timing, (kafka_config, started_with), failure, letters) = writer;
        let mut failing = false;
        let mut looked = Instant::now();
        while !watcher.finished() {
            // New partitions are not read by this run: stop, say so, and let a restart read them.
            if looked.elapsed() >= PARTITIONS_CHECK_EVERY {
                looked = Instant::now();
                if let Ok(now) = input_partitions(&kafka_config) {
                    if let Some(added) = added_partitions(&started_with, &now) {
                        kafka::PARTITIONS_ADDED.store(1, Ordering::Relaxed);
                        tracing::error!(added = %added, "partitions were added to the input topics; stopping so that a restart reads them");
                        if let Ok(mut slot) = failure.lock() {
                            slot.get_or_insert(WorkerError::PartitionsAdded(added).to_string());
                        }
                        watcher.stop.store(true, Ordering::Release);
                    }
                }
            }
            if !watch.ready() && watcher.caught_up() {
                watch.ready.store(true, Ordering::Release);
                tracing::info!("caught up");
                if let Some(collector) = &collector {
                    collector.activate();
                }
            }
            if let (Some(collector), Some(store)) = (&collector, &store) {
                let acked = publisher.as_ref().map_or(u64::MAX, |p| p.acked());
                if let Some(mut checkpoint) = collector.take_complete(acked, &timing, now_ms()) {
                    // Every record refused before the checkpoint's tick (by a source, admission
                    // or attribution, all of which have handed over their parts) is queued for
                    // the dead-letter topic by now; a resumed run reads past them, so they must
                    // be delivered first. If they are not, this checkpoint is not written: the
                    // next one tries again.
                    if let Some(letters) = &letters {
                        if !letters.drain(Duration::from_secs(5)) {
                            tracing::warn!(topic = letters.topic(), tick = checkpoint.tick, "checkpoint not written: refused records are not yet in the dead-letter topic");
                            checkpoint::WRITE_FAILURES.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    }
                    checkpoint.weights_offsets = publisher.as_ref().map(|p| p.weights_offsets_before(checkpoint.tick)).unwrap_or_default();
                    checkpoint.decisions_offsets = publisher.as_ref().map(|p| p.decisions_offsets_before(checkpoint.tick)).unwrap_or_default();
                    write_checkpoint(store, &checkpoint, &mut failing);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let mut counters = Counters::default();
    for result in guards.join() {
        counters.merge(&result.map_err(WorkerError::Dataflow)?);
    }
    let _ = readiness.join();
    drop(endpoint);
    let sinks = match publisher.and_then(|p| Arc::try_unwrap(p).ok()) {
        Some(publisher) => publisher.close(Duration::from_secs(1)),
        None => Vec::new(),
    };
    if let Some(error) = failure.lock().ok().and_then(|mut f| f.take()) {
        // A stop for added partitions says so as it is; anything else failed the dataflow.
        if kafka::PARTITIONS_ADDED.load(Ordering::Relaxed) == 1 {
            return Err(WorkerError::Stopped(error));
        }
        return Err(WorkerError::Dataflow(error));
    }
    tracing::info!(elapsed_s = started.elapsed().as_secs_f64(), "worker stopped");
    Ok(RunSummary { counters, sinks, elapsed: started.elapsed() })
}

/// The checkpoint this process resumes from, if any: the newest every process of the cluster
/// can resume from (a single process: its newest), written under the job's timing. Logs
/// the files skipped and why, and which checkpoint it resumes from or that it rebuilds.
fn resume_from(store: &Store, job: &banditflow_core::config::Dataflow, config: &timely::Config, processes: usize, local_workers: usize) -> Result<Option<banditflow_core::checkpoint::Checkpoint>, WorkerError> {
    let wanted = checkpoint::timing(job);
    let usable = |c: &banditflow_core::checkpoint::Checkpoint| if c.timing == wanted { Ok(()) } else { Err(format!("written under another timing ({:?}); the job now has {wanted:?}", c.timing)) };
    let (mut candidates, skipped) = store.candidates(usable, (local_workers * processes) as u32, processes == 1).map_err(|error| WorkerError::Checkpoints { dir: format!("{store:?}"), error })?;
    for s in &skipped {
        tracing::warn!(file = %s.path.display(), reason = %s.reason, "checkpoint skipped");
    }
    let tick = if processes > 1 {
        crate::dataflow::agreement::newest_common(config.clone(), candidates.keys().copied().collect()).map_err(WorkerError::Dataflow)?
    } else {
        candidates.keys().next_back().copied()
    };
    let Some(candidate) = tick.and_then(|t| candidates.remove(&t)) else {
        if !candidates.is_empty() || !skipped.is_empty() {
            tracing::warn!(processes, "no checkpoint that every process can resume from; rebuilding the window from the topics");
        }
        return Ok(None);
    };
    let c = candidate.checkpoint;
    let files: Vec<String> = candidate.files.iter().map(|f| f.display().to_string()).collect();
    tracing::info!(
        file = %files.join(", "),
        tick = c.tick,
        as_of = %crate::logs::rfc3339(Ticks::new(job.tick_ms).as_of(c.tick.saturating_sub(1))),
        written_by_workers = c.workers,
        written_by_processes = c.processes,
        "resuming from checkpoint"
    );
    Ok(Some(c))
}

/// Whether `checkpoint` was computed under another `allocation` than `job` runs (static to
/// adaptive or back): then the weights stage holds the old one through what was published.
fn switches_allocation(checkpoint: &banditflow_core::checkpoint::Checkpoint, job: &banditflow_core::config::Dataflow) -> bool {
    let static_now = job.policy.allocation == banditflow_core::config::Allocation::Static;
    checkpoint.weighers.iter().any(|w| w.static_allocation != static_now)
}

/// The first tick a rebuild from `read_from_ms` may publish: 0 when nothing before the read
/// start is missing from any input partition, else the first tick whose whole window is at
/// or after the time from which every partition's read is complete
/// ([`kafka::complete_from`]: the read start, or later where retention removed messages
/// after it).
fn first_publishable(
    kafka_config: &KafkaConfig,
    partitions: &[(Topic, i32)],
    read_from_ms: i64,
    job: &banditflow_core::config::Dataflow,
) -> u64 {
    let complete = kafka::consumer(kafka_config).and_then(|consumer| {
        let mut complete = None;
        for (topic, name) in [
            (Topic::Assignments, &kafka_config.assignments_topic),
            (Topic::Outcomes, &kafka_config.outcomes_topic),
        ] {
            let ids: Vec<i32> = partitions
                .iter()
                .filter(|(t, _)| *t == topic)
                .map(|(_, p)| *p)
                .collect();
            let from = kafka::complete_from(&consumer, name, &ids, read_from_ms, job.allowed_lateness_ms)?;
            if from > Some(read_from_ms) {
                tracing::warn!(
                    topic = %name,
                    read_from = %crate::logs::rfc3339(read_from_ms),
                    complete_from = from.map(crate::logs::rfc3339).unwrap_or_default(),
                    "messages after the rebuild's read start were removed from the topic (retention?)"
                );
            }
            complete = complete.max(from);
        }
        Ok(complete)
    });
    match complete {
        Ok(None) => 0,
        Ok(Some(from)) => {
            banditflow_core::time::first_covered_tick(Ticks::new(job.tick_ms), from, job.window_ms)
        }
        Err(error) => {
            tracing::warn!(%error, "cannot tell where the rebuild's read starts; publishing every tick");
            0
        }
    }
}

/// Warns when an input topic keeps its messages for less than a rebuild reads back
/// (`lookback_ms`: window, attribution and allowed lateness): a rebuild after a long stop
/// would find the oldest part of its window gone, and publish nothing until the window has
/// filled again.
fn check_retention(kafka_config: &KafkaConfig, lookback_ms: i64) {
    let topics = [kafka_config.assignments_topic.as_str(), kafka_config.outcomes_topic.as_str()];
    match kafka::retentions(kafka_config, &topics) {
        Ok(retentions) => {
            for (topic, retention) in topics.iter().zip(retentions) {
                match retention {
                    Some(retention) if retention < lookback_ms => {
                        tracing::warn!(
                            topic = %topic,
                            retention_s = retention as f64 / 1000.0,
                            needed_s = lookback_ms as f64 / 1000.0,
                            "the topic's retention is shorter than window + attribution + allowed_lateness: \
                             a rebuild without a checkpoint would lack the oldest part of the window"
                        );
                    }
                    Some(_) => {}
                    None => {
                        tracing::debug!(topic = %topic, "the brokers report no retention.ms for the topic");
                    }
                }
            }
        }
        Err(error) => {
            tracing::info!(%error, "cannot read the input topics' retention; not checked");
        }
    }
}

/// Writes a checkpoint; a failure (directory unwritable, disk full) is logged once until a
/// write succeeds again, counted, and the worker goes on: the next checkpoint retries.
fn write_checkpoint(store: &Store, checkpoint: &banditflow_core::checkpoint::Checkpoint, failing: &mut bool) {
    let started = Instant::now();
    match store.write(checkpoint) {
        Ok(path) => {
            checkpoint::WRITTEN.fetch_add(1, Ordering::Relaxed);
            checkpoint::LAST_WRITTEN_MS.store(now_ms(), Ordering::Relaxed);
            if *failing {
                tracing::info!(file = %path.display(), "checkpoints are written again");
                *failing = false;
            }
            tracing::debug!(file = %path.display(), tick = checkpoint.tick, elapsed_ms = started.elapsed().as_millis() as u64, "checkpoint written");
        }
        Err(error) => {
            checkpoint::WRITE_FAILURES.fetch_add(1, Ordering::Relaxed);
            if !*failing {
                tracing::warn!(%error, tick = checkpoint.tick, "cannot write a checkpoint; retrying at the next one");
                *failing = true;
            }
        }
    }
}

/// The state the metrics endpoint reports: the workers' last reports and the sinks.
fn snapshot(reports: &WorkerReports, control: &Control, publisher: Option<&Publisher>, tick_ms: u64) -> Snapshot {
    Snapshot {
        sinks: publisher.map(Publisher::states).unwrap_or_default(),
        caught_up: control.caught_up(),
        messages_read: control.messages_read.load(Ordering::Relaxed),
        ..reports.snapshot(tick_ms)
    }
}

/// How often the input topics' partitions are looked up again.
const PARTITIONS_CHECK_EVERY: Duration = Duration::from_secs(30);

/// The partitions in `now` that were not in `started_with`, in plain words (`None`: none).
fn added_partitions(started_with: &[(Topic, i32)], now: &[(Topic, i32)]) -> Option<String> {
    let added: Vec<(Topic, i32)> = now.iter().filter(|p| !started_with.contains(p)).copied().collect();
    (!added.is_empty()).then(|| crate::kafka::control::describe(&added))
}

/// Every partition of the input topics (the arm registry's too, when configured), in a fixed
/// order.
fn input_partitions(kafka_config: &KafkaConfig) -> Result<Vec<(Topic, i32)>, WorkerError> {
    let consumer = kafka::consumer(kafka_config)?;
    let mut all = Vec::new();
    let topics = [(Topic::Assignments, Some(&kafka_config.assignments_topic)), (Topic::Outcomes, Some(&kafka_config.outcomes_topic)), (Topic::Arms, kafka_config.arms_topic.as_ref())];
    for (topic, name) in topics.into_iter().filter_map(|(t, name)| Some((t, name?))) {
        all.extend(kafka::partitions(&consumer, name)?.into_iter().map(|p| (topic, p)));
    }
    kafka::close_in_background(consumer);
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_partitions_are_named_and_none_is_none() {
        let before = [(Topic::Assignments, 0), (Topic::Assignments, 1), (Topic::Outcomes, 0)];
        assert_eq!(added_partitions(&before, &before), None);
        let after = [(Topic::Assignments, 0), (Topic::Assignments, 1), (Topic::Assignments, 2), (Topic::Outcomes, 0), (Topic::Outcomes, 1)];
        assert_eq!(added_partitions(&before, &after).as_deref(), Some("assignments/2 outcomes/1"));
    }
}
