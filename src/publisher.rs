//! The live worker's publisher: the weights topic and Redis sinks, and the decisions topic,
//! each written by its own thread.
//!
//! The dataflow hands over each complete tick's records. A sink that keeps up writes every
//! record in order. While it is down (or its buffer is full) it keeps only the newest
//! unwritten record per entity, so the buffer is bounded by the number of entities, and
//! retries with backoff. Nothing at or below a version already out
//! is written: the Kafka sink remembers the newest version per entity (read back from the
//! topic at start-up), and Redis checks the stored version atomically in a script.
//!
//! Decision events are never compacted (each is an audit record): while the decisions sink
//! is down its buffer fills to capacity and then holds the dataflow back. Each event goes out
//! with a sequence number, `version * 4096 + n` for the `n`-th event of its entity at that
//! version, which plays the role of the version: read back at start-up, it tells a restart
//! which events are already out.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use banditflow_core::checkpoint::Checkpoint;
use banditflow_core::record::{EncodedDecision, EncodedRecord, WeightRecord};
use banditflow_core::weights::WeigherState;
use banditflow_core::time::now_ms;

use crate::deployment::{KafkaConfig, Mode, RedisConfig};
use crate::kafka::client::{self as kafka, KafkaClientError};
use crate::kafka::dead_letter::DeadLetters;
use crate::kafka::sink::{KafkaWriter, Positions};
use crate::metrics::{SinkState, PUBLISH_LATENCY};
use crate::redis::sink::RedisWriter;


/// First wait after a failed write; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between retries of a sink that is down.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Why a sink could not start or write.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Kafka refused.
    #[error(transparent)]
    Kafka(#[from] KafkaClientError),
    /// Redis refused or is unreachable.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// `[redis] url` is not a Redis URL.
    #[error("invalid `[redis] url` {url}: {error}")]
    RedisUrl {
        /// The URL, password redacted.
        url: String,
        /// What the Redis client said.
        error: redis::RedisError,
    },
    /// The sink's thread could not start.
    #[error("cannot start the {0} sink thread: {1}")]
    Thread(&'static str, std::io::Error),
}

/// Where a worker publishes, as `mode` decides.
#[derive(Clone, Debug)]
pub struct Targets {
    /// The Kafka cluster and the topic records go to.
    pub kafka: Option<(KafkaConfig, String)>,
    /// Redis and the key prefix (`{prefix}` or `{prefix}:shadow`).
    pub redis: Option<(RedisConfig, String)>,
    /// The Kafka cluster and the topic decision events go to.
    pub decisions: Option<(KafkaConfig, String)>,
}

impl Targets {
    /// The sinks of a job's deployment in `mode`.
    pub fn of(kafka: Option<&KafkaConfig>, redis: Option<&RedisConfig>, mode: Mode) -> Targets {
        Targets {
            kafka: kafka.and_then(|k| Some((k.clone(), kafka::weights_topic(k, mode)?))),
            redis: redis.map(|r| {
                let prefix = match mode {
                    Mode::Production => r.prefix.clone(),
                    Mode::Shadow => format!("{}:shadow", r.prefix),
                };
                (r.clone(), prefix)
            }),
            decisions: kafka.and_then(|k| Some((k.clone(), kafka::decisions_topic(k, mode)?))),
        }
    }
}

/// What one sink has and has not written.
#[derive(Debug, Default)]
struct Queue {
    /// Unwritten records in publication order (one per entity once compacted).
    pending: Vec<EncodedRecord>,
    /// Ticks below this have been handed over.
    submitted: u64,
    /// Ticks below this are written (or superseded by written records).
    acked: u64,
    /// Records written and retries, for the summary.
    written: u64,
    failures: u64,
    closing: bool,
    up: bool,
    /// Still reading back what is on its target before its first write.
    opening: bool,
    /// Wall-clock ms of the last successful write.
    last_write_ms: Option<i64>,
    /// When each tick not yet acknowledged was handed over.
    handed: std::collections::VecDeque<(u64, Instant)>,
    /// Every item is kept (decision events): never compacted.
    keeps_every: bool,
}

/// What a sink writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Carries {
    /// Weight records.
    Weights,
    /// Decision events.
    Decisions,
}

/// The largest number of decision events of one entity at one version that their sequence
/// numbers tell apart.
const EVENTS_PER_VERSION: u64 = 4096;

/// One sink thread's shared state.
#[derive(Debug)]
struct Shared {
    name: &'static str,
    carries: Carries,
    /// Where it writes, for logs: the topic and brokers, or the Redis URL (password redacted).
    target: String,
    queue: Mutex<Queue>,
    changed: Condvar,
}

impl Queue {
    /// Keeps only the newest pending record of each entity, in publication order.
    fn compact(&mut self) {
        if self.keeps_every {
            return;
        }
        let mut newest: HashMap<&str, u64> = HashMap::new();
        for r in &self.pending {
            let v = newest.entry(r.entity_id.as_str()).or_insert(r.version);
            *v = (*v).max(r.version);
        }
        let keep: Vec<bool> = self.pending.iter().map(|r| newest.get(r.entity_id.as_str()) == Some(&r.version)).collect();
        let mut keep = keep.into_iter();
        self.pending.retain(|_| keep.next().unwrap_or(false));
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Counts a sink reports at the end.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SinkSummary {
    /// The sink (`kafka` or `redis`).
    pub name: &'static str,
    /// Records written.
    pub written: u64,
    /// Failed write attempts.
    pub failures: u64,
    /// Records still unwritten when the worker stopped.
    pub unwritten: usize,
}

/// The running sinks of a worker.
pub struct Publisher {
    sinks: Vec<(Arc<Shared>, JoinHandle<()>)>,
    capacity: usize,
    /// Where the weights topic stood before each batch (when there is one).
    positions: Option<Arc<Mutex<Positions>>>,
    /// The newest version on the weights topic at start-up (its `as_of`).
    newest_version: Option<u64>,
    /// Where the decisions topic stood before each batch (when there is one).
    decision_positions: Option<Arc<Mutex<Positions>>>,
}

impl Publisher {
    /// Starts a thread per target; the Kafka sink first reads back what its topic already
    /// holds: all of it, or, resuming from `resume`, what came after the checkpoint (the
    /// versions before it are in the checkpoint). `capacity` bounds each sink's buffer
    /// (entities waiting to be written). Weight records the weights topic refuses for good
    /// go to `dead_letters`, if given. `newest_now`: resuming, read back before returning, so
    /// that [`Publisher::newest_version`] is known (the dataflow needs it when the job changed
    /// its allocation); if that read fails, the sink reads back on its own thread as usual.
    pub fn start(targets: &Targets, capacity: usize, resume: Option<&Checkpoint>, dead_letters: Option<Arc<DeadLetters>>, newest_now: bool) -> Result<Publisher, SinkError> {
        let mut sinks = Vec::new();
        let mut positions = None;
        let mut newest_version = None;
        if let Some((config, topic)) = &targets.kafka {
            let shared_positions: Arc<Mutex<Positions>> = Arc::default();
            positions = Some(shared_positions.clone());
            let target = format!("topic {topic} at {}", config.brokers);
            match resume {
                // Resuming, the read-back is short and nothing else waits for it: the sink
                // does it on its own thread while the sources catch up, and writes nothing
                // (and counts as not up) until it is done.
                Some(checkpoint) if newest_now => match open_kafka(config, topic, Some(&ResumeFrom::of(checkpoint)), shared_positions.clone(), dead_letters.clone(), true) {
                    Ok((writer, newest)) => {
                        newest_version = newest;
                        sinks.push(spawn("kafka", Carries::Weights, target, writer)?);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot read the weights topic back at start: the allocation switches at the checkpoint's tick");
                        let (config, topic, checkpoint, letters) = (config.clone(), topic.clone(), ResumeFrom::of(checkpoint), dead_letters);
                        let open = move || open_kafka(&config, &topic, Some(&checkpoint), shared_positions.clone(), letters.clone(), false).map(|(writer, _)| writer);
                        sinks.push(spawn_opening("kafka", Carries::Weights, target, open)?);
                    }
                },
                Some(checkpoint) => {
                    let (config, topic, checkpoint, letters) = (config.clone(), topic.clone(), ResumeFrom::of(checkpoint), dead_letters);
                    let open = move || open_kafka(&config, &topic, Some(&checkpoint), shared_positions.clone(), letters.clone(), false).map(|(writer, _)| writer);
                    sinks.push(spawn_opening("kafka", Carries::Weights, target, open)?);
                }
                None => {
                    let (writer, newest) = open_kafka(config, topic, None, shared_positions, dead_letters, false)?;
                    newest_version = newest;
                    sinks.push(spawn("kafka", Carries::Weights, target, writer)?);
                }
            }
        }
        let mut decision_positions = None;
        if let Some((config, topic)) = &targets.decisions {
            let shared_positions: Arc<Mutex<Positions>> = Arc::default();
            decision_positions = Some(shared_positions.clone());
            let target = format!("topic {topic} at {}", config.brokers);
            // Events before the checkpoint are all out; the read-back says which after it are.
            let resume = resume.map(|c| ResumeFrom { offsets: c.decisions_offsets.clone(), versions: Vec::new() });
            let (config, topic) = (config.clone(), topic.clone());
            let open = move || open_kafka(&config, &topic, resume.as_ref(), shared_positions.clone(), None, false).map(|(writer, _)| writer);
            sinks.push(spawn_opening("decisions", Carries::Decisions, target, open)?);
        }
        if let Some((config, prefix)) = &targets.redis {
            let writer = RedisWriter::open(&config.url, prefix.clone())
                .map_err(|error| SinkError::RedisUrl { url: crate::logs::redact_url(&config.url), error })?;
            sinks.push(spawn("redis", Carries::Weights, crate::logs::redact_url(&config.url), Writer::Redis(Box::new(writer)))?);
        }
        Ok(Publisher { sinks, capacity: capacity.max(1), positions, newest_version, decision_positions })
    }

    /// The newest version already on the weights topic when the publisher started: the
    /// `as_of` of the last tick a previous run published (`None`: nothing, or no topic).
    pub fn newest_version(&self) -> Option<u64> {
        self.newest_version
    }

    /// Per partition of the weights topic, an offset at or before the first record of any
    /// tick at or after `tick` (nothing without a weights topic).
    pub fn weights_offsets_before(&self, tick: u64) -> Vec<(i32, i64)> {
        self.positions.as_ref().and_then(|p| p.lock().ok().map(|p| p.before(tick))).unwrap_or_default()
    }

    /// The same for the decisions topic.
    pub fn decisions_offsets_before(&self, tick: u64) -> Vec<(i32, i64)> {
        self.decision_positions.as_ref().and_then(|p| p.lock().ok().map(|p| p.before(tick))).unwrap_or_default()
    }

    /// Hands over the records and decision events of `tick` (complete, sorted). Blocks while
    /// a sink's buffer is over capacity, which holds the dataflow back rather than dropping
    /// anything.
    pub fn submit(&self, tick: u64, records: &[EncodedRecord], decisions: &[EncodedDecision]) {
        let events = if self.sinks.iter().any(|(s, _)| s.carries == Carries::Decisions) { sequenced(decisions) } else { Vec::new() };
        for (shared, _) in &self.sinks {
            let records = match shared.carries {
                Carries::Weights => records,
                Carries::Decisions => &events[..],
            };
            let mut queue = shared.lock();
            if queue.pending.len() >= self.capacity {
                queue.compact();
            }
            while queue.pending.len() >= self.capacity && !queue.closing {
                queue = shared.changed.wait_timeout(queue, Duration::from_millis(100)).map_or_else(|p| p.into_inner().0, |(q, _)| q);
            }
            queue.pending.extend_from_slice(records);
            if !queue.up {
                queue.compact();
            }
            queue.submitted = queue.submitted.max(tick + 1);
            queue.handed.push_back((tick, Instant::now()));
            tracing::trace!(sink = shared.name, tick, records = records.len(), "submitted");
            shared.changed.notify_all();
        }
    }

    /// Ticks below this are written by every sink.
    pub fn acked(&self) -> u64 {
        self.sinks.iter().map(|(s, _)| s.lock().acked).min().unwrap_or(u64::MAX)
    }

    /// Each sink's counts and whether it is up, for the metrics endpoint.
    pub fn states(&self) -> Vec<SinkState> {
        self.sinks
            .iter()
            .map(|(s, _)| {
                let q = s.lock();
                SinkState { name: s.name, written: q.written, failures: q.failures, up: q.up && !q.opening, last_write_ms: q.last_write_ms }
            })
            .collect()
    }


    /// Waits up to `timeout` for the sinks to write what they hold, then stops them. A sink
    /// still inside a write at the deadline is left to the process's exit, so stopping stays
    /// bounded; what it held is reported as unwritten.
    pub fn close(self, timeout: Duration) -> Vec<SinkSummary> {
        let deadline = Instant::now() + timeout;
        for (shared, _) in &self.sinks {
            let mut queue = shared.lock();
            while !queue.pending.is_empty() && Instant::now() < deadline {
                queue = shared.changed.wait_timeout(queue, Duration::from_millis(50)).map_or_else(|p| p.into_inner().0, |(q, _)| q);
            }
        }
        for (shared, _) in &self.sinks {
            shared.lock().closing = true;
            shared.changed.notify_all();
        }
        let mut summaries = Vec::new();
        for (shared, thread) in self.sinks {
            while !thread.is_finished() && Instant::now() < deadline + Duration::from_millis(200) {
                std::thread::sleep(Duration::from_millis(5));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
            let queue = shared.lock();
            if !queue.pending.is_empty() {
                tracing::warn!(sink = shared.name, unwritten = queue.pending.len(), "stopping with records unwritten");
            }
            summaries.push(SinkSummary { name: shared.name, written: queue.written, failures: queue.failures, unwritten: queue.pending.len() });
        }
        summaries
    }
}

/// The versions a checkpointed weight state says were published, by entity name.
fn weigher_versions(state: &WeigherState) -> Vec<(String, u64)> {
    state.entities.iter().filter_map(|(_, json, _)| serde_json::from_str::<WeightRecord>(json).ok()).map(|r| (r.entity_id, r.version)).collect()
}

/// Decision events as the sinks carry them: each with its sequence number as its version.
fn sequenced(decisions: &[EncodedDecision]) -> Vec<EncodedRecord> {
    let mut out: Vec<EncodedRecord> = Vec::with_capacity(decisions.len());
    let mut n = 0;
    for (i, d) in decisions.iter().enumerate() {
        n = match i.checked_sub(1).map(|j| &decisions[j]) {
            Some(prev) if prev.entity_id == d.entity_id && prev.version == d.version => n + 1,
            _ => 0,
        };
        let version = d.version.saturating_mul(EVENTS_PER_VERSION).saturating_add(n.min(EVENTS_PER_VERSION - 1));
        out.push(EncodedRecord { tick: d.tick, version, entity_id: d.entity_id.clone(), json: d.json.clone(), arms: 0, srm_flagged: false });
    }
    out
}

fn spawn(name: &'static str, carries: Carries, target: String, mut writer: Writer) -> Result<(Arc<Shared>, JoinHandle<()>), SinkError> {
    let queue = Queue { up: true, keeps_every: carries == Carries::Decisions, ..Queue::default() };
    let shared = Arc::new(Shared { name, carries, target, queue: Mutex::new(queue), changed: Condvar::new() });
    let thread_shared = shared.clone();
    let thread = std::thread::Builder::new()
        .name(format!("sink-{name}"))
        .spawn(move || run_sink(&thread_shared, &mut writer))
        .map_err(|e| SinkError::Thread(name, e))?;
    Ok((shared, thread))
}

/// What the Kafka sink needs of a checkpoint: where to read the weights topic back from, and
/// the versions published up to it.
struct ResumeFrom {
    offsets: Vec<(i32, i64)>,
    versions: Vec<(String, u64)>,
}

impl ResumeFrom {
    fn of(checkpoint: &Checkpoint) -> ResumeFrom {
        ResumeFrom { offsets: checkpoint.weights_offsets.clone(), versions: checkpoint.weighers.iter().flat_map(weigher_versions).collect() }
    }
}

/// Reads back what the weights topic holds (from the checkpoint's offsets when resuming) and
/// opens the Kafka writer; returns it with the newest version found.
fn open_kafka(config: &KafkaConfig, topic: &str, resume: Option<&ResumeFrom>, positions: Arc<Mutex<Positions>>, dead_letters: Option<Arc<DeadLetters>>, settle: bool) -> Result<(Writer, Option<u64>), SinkError> {
    let read = read_back(config, topic, resume, settle)?;
    let newest = read.versions.values().max().copied();
    let writer = KafkaWriter::new(config, topic.to_owned(), read.versions, read.ends, positions, dead_letters)?;
    Ok((Writer::Kafka(Box::new(writer)), newest))
}

/// The newest version the weights topic of `targets` holds after `checkpoint`'s offsets, for
/// a process that publishes nothing itself (a cluster's other processes) but must know it
/// when the job changed its allocation. `None` without a weights topic or when it cannot be
/// read (the switch then comes at the checkpoint's tick).
pub fn newest_published(targets: &Targets, checkpoint: &Checkpoint) -> Option<u64> {
    let (config, topic) = targets.kafka.as_ref()?;
    match read_back(config, topic, Some(&ResumeFrom::of(checkpoint)), true) {
        Ok(read) => read.versions.values().max().copied(),
        Err(error) => {
            tracing::warn!(%error, "cannot read the weights topic back at start: the allocation switches at the checkpoint's tick");
            None
        }
    }
}

/// What the weights topic holds from `resume`'s offsets on (all of it without), with the
/// checkpoint's versions merged in.
fn read_back(config: &KafkaConfig, topic: &str, resume: Option<&ResumeFrom>, settle: bool) -> Result<kafka::ReadBack, SinkError> {
    let from = resume.map(|r| r.offsets.clone()).unwrap_or_default();
    let mut read = kafka::published_versions(config, topic, &from)?;
    // `settle`: the newest version must be the newest. A broker may report the end early
    // (tansu 0.6, under load): read on from where the read stopped until a read finds nothing.
    for _ in 0..if settle { 5 } else { 0 } {
        // On from where each partition was read to (or, read nothing, where it was to start).
        let mut at: BTreeMap<i32, i64> = from.iter().copied().collect();
        at.extend(read.ends.iter().map(|(p, o)| (*p, *o)));
        let ends: Vec<(i32, i64)> = at.into_iter().collect();
        let more = kafka::published_versions(config, topic, &ends)?;
        if more.versions.is_empty() {
            break;
        }
        for (entity, version) in more.versions {
            let newest = read.versions.entry(entity).or_insert(version);
            *newest = (*newest).max(version);
        }
        read.ends.extend(more.ends);
    }
    for (entity, version) in resume.iter().flat_map(|r| r.versions.iter().cloned()) {
        let newest = read.versions.entry(entity).or_insert(version);
        *newest = (*newest).max(version);
    }
    tracing::info!(topic = %topic, entities = read.versions.len(), from_checkpoint = resume.is_some(), "read back published versions");
    Ok(read)
}

/// [`spawn`] for a writer that `open` makes on the sink's thread first, retried with backoff
/// until it succeeds or the publisher closes; meanwhile the sink takes records but writes
/// none, and does not count as up.
fn spawn_opening(
    name: &'static str,
    carries: Carries,
    target: String,
    mut open: impl FnMut() -> Result<Writer, SinkError> + Send + 'static,
) -> Result<(Arc<Shared>, JoinHandle<()>), SinkError> {
    let queue = Queue { up: true, opening: true, keeps_every: carries == Carries::Decisions, ..Queue::default() };
    let shared = Arc::new(Shared { name, carries, target, queue: Mutex::new(queue), changed: Condvar::new() });
    let thread_shared = shared.clone();
    let thread = std::thread::Builder::new()
        .name(format!("sink-{name}"))
        .spawn(move || {
            let mut backoff = MIN_BACKOFF;
            let mut writer = loop {
                match open() {
                    Ok(writer) => break writer,
                    Err(error) => {
                        tracing::warn!(sink = name, target = %thread_shared.target, %error, retry_in_ms = backoff.as_millis() as u64, "cannot open the sink yet");
                        thread_shared.lock().failures += 1;
                    }
                }
                let queue = thread_shared.lock();
                if queue.closing {
                    return;
                }
                drop(thread_shared.changed.wait_timeout(queue, backoff));
                backoff = (backoff * 2).min(MAX_BACKOFF);
            };
            thread_shared.lock().opening = false;
            run_sink(&thread_shared, &mut writer);
        })
        .map_err(|e| SinkError::Thread(name, e))?;
    Ok((shared, thread))
}

/// The loop of a sink thread: take what is pending, write it, put back what failed.
fn run_sink(shared: &Shared, writer: &mut Writer) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let (batch, through) = {
            let mut queue = shared.lock();
            while queue.pending.is_empty() && !queue.closing {
                if queue.acked < queue.submitted {
                    queue.acked = queue.submitted;
                    observe_acknowledged(&mut queue, shared.name);
                }
                queue = shared.changed.wait_timeout(queue, Duration::from_millis(100)).map_or_else(|p| p.into_inner().0, |(q, _)| q);
            }
            if queue.closing && (queue.pending.is_empty() || !queue.up) {
                return;
            }
            let through = queue.submitted;
            (std::mem::take(&mut queue.pending), through)
        };
        let count = batch.len() as u64;
        let result = writer.write(batch);
        let mut queue = shared.lock();
        match result {
            Ok(()) => {
                queue.written += count;
                queue.last_write_ms = Some(now_ms());
                if !queue.up {
                    tracing::info!(sink = shared.name, target = %shared.target, "sink is up again");
                }
                queue.up = true;
                backoff = MIN_BACKOFF;
                if queue.pending.is_empty() {
                    queue.acked = queue.acked.max(through);
                }
                observe_acknowledged(&mut queue, shared.name);
                tracing::trace!(sink = shared.name, through, count, "written");
                shared.changed.notify_all();
            }
            Err((error, unwritten)) => {
                queue.failures += 1;
                queue.written += count - unwritten.len() as u64;
                if queue.up {
                    tracing::warn!(sink = shared.name, target = %shared.target, %error, "sink is down; retrying with backoff");
                }
                queue.up = false;
                // Put back what failed, ahead of what came since; keep the newest per entity.
                let newer = std::mem::replace(&mut queue.pending, unwritten);
                queue.pending.extend(newer);
                queue.compact();
                let closing = queue.closing;
                drop(queue);
                if closing {
                    return;
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Records the publish latency of every tick now acknowledged.
fn observe_acknowledged(queue: &mut Queue, sink: &'static str) {
    while queue.handed.front().is_some_and(|(t, _)| *t < queue.acked) {
        if let Some((_, at)) = queue.handed.pop_front() {
            PUBLISH_LATENCY.with_label_values(&[sink]).observe(at.elapsed().as_secs_f64());
        }
    }
}

/// A sink's write side.
enum Writer {
    Kafka(Box<KafkaWriter>),
    Redis(Box<RedisWriter>),
}

impl Writer {
    /// Writes `batch` (at most one record per entity); on failure returns the records that
    /// were not written.
    fn write(&mut self, batch: Vec<EncodedRecord>) -> Result<(), (SinkError, Vec<EncodedRecord>)> {
        match self {
            Writer::Kafka(w) => w.write(batch).map_err(|(e, unwritten)| (SinkError::Kafka(e), unwritten)),
            Writer::Redis(w) => w.write(batch).map_err(|(e, unwritten)| (SinkError::Redis(e), unwritten)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(entity: &str, version: u64) -> EncodedRecord {
        EncodedRecord { tick: version, version, entity_id: entity.to_owned(), json: format!("{{\"v\":{version}}}"), arms: 0, srm_flagged: false }
    }

    #[test]
    fn compacting_keeps_the_newest_record_of_each_entity_in_order() {
        let mut queue = Queue { pending: vec![record("a", 1), record("b", 1), record("a", 2), record("c", 3), record("b", 4)], ..Queue::default() };
        queue.compact();
        let kept: Vec<(&str, u64)> = queue.pending.iter().map(|r| (r.entity_id.as_str(), r.version)).collect();
        assert_eq!(kept, vec![("a", 2), ("c", 3), ("b", 4)]);
    }

    #[test]
    fn decision_events_are_never_compacted_and_number_their_entity_s_events_per_version() {
        let event = |entity: &str, version: u64| EncodedDecision { tick: 1, version, entity_id: entity.into(), rule: banditflow_core::decision::Rule::Stop, json: String::new() };
        let events = sequenced(&[event("a", 5), event("a", 5), event("b", 5), event("a", 7)]);
        let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
        assert_eq!(versions, vec![5 * 4096, 5 * 4096 + 1, 5 * 4096, 7 * 4096]);
        let mut queue = Queue { pending: events, keeps_every: true, ..Queue::default() };
        queue.compact();
        assert_eq!(queue.pending.len(), 4);
    }

    #[test]
    fn shadow_targets_never_name_production_keys_or_topics() {
        let kafka = KafkaConfig {
            brokers: "b:1".into(),
            assignments_topic: "a".into(),
            outcomes_topic: "o".into(),
            arms_topic: None,
            weights_topic: Some("w".into()),
            decisions_topic: Some("d".into()),
            dead_letter_topic: Some("dl".into()),
            group_id: "g".into(),
            properties: Default::default(),
        };
        let redis = RedisConfig { url: "redis://x".into(), prefix: "p".into() };
        let shadow = Targets::of(Some(&kafka), Some(&redis), Mode::Shadow);
        assert_eq!(shadow.kafka.map(|k| k.1).as_deref(), Some("w.shadow"));
        assert_eq!(shadow.redis.map(|r| r.1).as_deref(), Some("p:shadow"));
        assert_eq!(shadow.decisions.map(|d| d.1).as_deref(), Some("d.shadow"));
        assert_eq!(kafka::dead_letter_topic(&kafka, Mode::Shadow).as_deref(), Some("dl.shadow"));
        assert_eq!(kafka::dead_letter_topic(&kafka, Mode::Production).as_deref(), Some("dl"));
        let production = Targets::of(Some(&kafka), Some(&redis), Mode::Production);
        assert_eq!(production.kafka.map(|k| k.1).as_deref(), Some("w"));
        assert_eq!(production.redis.map(|r| r.1).as_deref(), Some("p"));
    }
}
