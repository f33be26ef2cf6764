//! The live worker's source: each timely worker reads its own partitions of the assignments
//! and outcomes topics, decodes them, and advances time by per-partition watermarks.
//!
//! A partition's watermark is the largest `ts` it has delivered minus `allowed_lateness`.
//! A partition that is at its end and has had nothing new for `idle_timeout` follows the wall
//! clock instead (minus `allowed_lateness`), so a quiet partition cannot freeze the weights; one
//! that is merely slow to fetch still holds time back. Offsets are committed to the consumer
//! group only for data whose ticks the sinks have acknowledged, and no further than a refused
//! record still on its way to the dead-letter topic.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::dataflow::{Scope, Stream};

use banditflow_core::checkpoint::{Checkpoint, PartitionPosition};
use banditflow_core::config::Dataflow;
use banditflow_core::counters::Counters;
use banditflow_core::event::Catalog;
use banditflow_core::time::{now_ms, Ticks};
use banditflow_core::wire::{Decoder, RecordKind};

use super::client::{self as kafka, KafkaConsumer};
use super::control::{describe, Control, Topic};
use super::dead_letter::{DeadLetters, Letter};
use crate::checkpoint::Collector;
use crate::dataflow::admit::{self, at_risk, Arrival, Held, Origin, Refuse, Screen, Screened, Sourced};
use crate::dataflow::sources::emit_decoded;
use crate::deployment::KafkaConfig;

/// Messages a source takes per activation before it yields to the rest of the dataflow.
const MESSAGES_PER_ACTIVATION: usize = 8 * 1024;
/// How soon a source with nothing to read looks again.
const POLL_AGAIN: Duration = Duration::from_millis(2);
/// How often offsets are committed.
const COMMIT_EVERY: Duration = Duration::from_secs(1);
/// How long a stopping source waits for its complete ticks to be published.
pub const STOP_GRACE: Duration = Duration::from_secs(7);

/// What a worker's source needs.
pub struct SourceContext {
    /// The job.
    pub job: Dataflow,
    /// Where to read.
    pub kafka: KafkaConfig,
    /// Every partition of both topics, in a fixed order; the worker takes its share.
    pub partitions: Vec<(Topic, i32)>,
    /// Event time the window is rebuilt from.
    pub rebuild_from_ms: i64,
    /// Probe on the publisher: ticks below its frontier are out.
    pub published: ProbeHandle<u64>,
    /// Shared with the driver.
    pub control: Arc<Control>,
    /// This worker's counters.
    pub counters: Rc<RefCell<Counters>>,
    /// Where the consumers report their lag.
    pub lag: kafka::ConsumerLag,
    /// The checkpoint to resume from: its partitions' offsets, watermarks and tick.
    pub resume: Option<Arc<Checkpoint>>,
    /// Where to hand the partitions' resume offsets at every checkpoint tick.
    pub collector: Option<Arc<Collector>>,
    /// Where refused records go (`[kafka] dead_letter_topic`), shared by the workers.
    pub dead_letters: Option<Arc<DeadLetters>>,
}

/// Why a source could not start.
pub type SourceError = kafka::KafkaClientError;

/// One partition as its source sees it.
struct Partition {
    topic: Topic,
    id: i32,
    /// Largest event time delivered.
    max_ts: i64,
    last_message: Instant,
    at_end: bool,
    /// Whether it has been at its end at least once since the start: "caught up" once all have.
    reached_end: bool,
    /// `(tick, offset)`: every message before `offset` has a tick at or below `tick`.
    checkpoints: VecDeque<(u64, i64)>,
    /// The offset below which every message's tick is published (-1: none yet).
    ready: i64,
    committed: i64,
    /// Where `checkpoints` starts: the offset read from (if known), or the last commit.
    base: Option<i64>,
}

impl Partition {
    /// The watermark in event-time ms, `i64::MIN` while it holds time at the start. Idle
    /// (at its end, nothing new for `idle`) it follows the wall clock, but only while the
    /// brokers are known to be up, and only up to when they last were (`up_until`): an outage
    /// must hold time, not release it.
    fn watermark(&self, now_ms: i64, lateness: i64, idle: Duration, up_until: Option<i64>) -> i64 {
        match up_until {
            Some(up) if self.at_end && self.last_message.elapsed() >= idle => self.max_ts.max(up.min(now_ms)).saturating_sub(lateness),
            _ if self.max_ts == i64::MIN => i64::MIN,
            _ => self.max_ts.saturating_sub(lateness),
        }
    }

    fn checkpoint(&mut self, tick: u64, offset: i64) {
        self.base.get_or_insert(offset);
        match self.checkpoints.back_mut() {
            Some(last) if last.0 >= tick => last.1 = offset + 1,
            _ => self.checkpoints.push_back((tick, offset + 1)),
        }
    }

    /// The offset up to which every message's tick is below `published`, and no further than
    /// `ceiling` (the oldest record still on its way to the dead-letter topic); `None` if
    /// that is not past the last commit.
    fn committable(&mut self, published: u64, ceiling: Option<i64>) -> Option<i64> {
        while let Some(&(tick, next)) = self.checkpoints.front() {
            if tick >= published {
                break;
            }
            self.ready = next;
            self.base = Some(next);
            self.checkpoints.pop_front();
        }
        let offset = ceiling.map_or(self.ready, |c| self.ready.min(c));
        (offset > self.committed).then_some(offset)
    }

    /// Where to resume for a checkpoint at `tick`: every message before it was emitted at a
    /// tick before `tick` (-1: unknown, nothing read and the start offset not known).
    fn resume_offset(&self, tick: u64) -> i64 {
        let mut offset = self.base;
        for &(t, next) in &self.checkpoints {
            if t >= tick {
                break;
            }
            offset = Some(next);
        }
        offset.unwrap_or(-1)
    }
}


/// The offset each of `ids` of `topic` resumes at in `checkpoint` (`None`: not in it).
fn resumed<'a>(checkpoint: Option<&'a Checkpoint>, topic: &str, id: i32) -> Option<&'a PartitionPosition> {
    checkpoint?.partitions.iter().find(|p| p.topic == topic && p.partition == id && p.offset >= 0)
}

/// A consumer for the worker's partitions of one topic, each from its checkpointed offset or
/// else from the first message at or after `from_ms`. One consumer per topic, because
/// end-of-partition events name no topic. Returns where each partition starts, if known.
fn consumer_for(
    kafka: &KafkaConfig,
    topic: Topic,
    mine: &[(Topic, i32)],
    from_ms: i64,
    lag: &kafka::ConsumerLag,
    resume: Option<&Checkpoint>,
) -> Result<Option<(Topic, KafkaConsumer, Vec<(i32, Option<i64>, bool)>)>, SourceError> {
    let ids: Vec<i32> = mine.iter().filter(|(t, _)| *t == topic).map(|(_, p)| *p).collect();
    if ids.is_empty() {
        return Ok(None);
    }
    let name = topic_name(kafka, topic);
    let consumer = kafka::consumer_with_lag(kafka, Some(lag.clone()))?;
    let by_time: Vec<i32> = ids.iter().copied().filter(|&p| resumed(resume, name, p).is_none()).collect();
    let mut offsets: Vec<(i32, Offset)> = ids.iter().filter_map(|&p| resumed(resume, name, p).map(|r| (p, Offset::Offset(r.offset)))).collect();
    if topic == Topic::Arms {
        // The registry is a table: every arm's latest record counts, however old.
        offsets.extend(by_time.iter().map(|&p| (p, Offset::Beginning)));
    } else if !by_time.is_empty() {
        match kafka::offsets_at(&consumer, name, &by_time, from_ms) {
            Ok(found) => offsets.extend(found),
            Err(error) => {
                tracing::warn!(topic = %name, %error, "cannot seek by time; reading from the beginning");
                offsets.extend(by_time.iter().map(|&p| (p, Offset::Beginning)));
            }
        }
    }
    // A partition that starts at its end (a restart with nothing new) may never report
    // end-of-partition (no fetch returns anything): it is at its end from the start.
    let starts: Vec<(i32, Option<i64>, bool)> = offsets
        .iter()
        .map(|(p, o)| {
            let start = if let Offset::Offset(o) = o { Some(*o) } else { None };
            let high = consumer.fetch_watermarks(name, *p, kafka::REQUEST_TIMEOUT).map(|(_, high)| high).ok();
            let at_end = matches!(o, Offset::End) || start.zip(high).is_some_and(|(s, h)| s >= h);
            (*p, start, at_end)
        })
        .collect();
    let mut assignment = TopicPartitionList::new();
    for (p, offset) in offsets {
        assignment.add_partition_offset(name, p, offset).map_err(|source| kafka::KafkaClientError::Client { what: "assignment".into(), source })?;
    }
    let result = consumer.assign(&assignment).map_err(|source| kafka::KafkaClientError::Client { what: format!("assign {name}"), source });
    drop(assignment);
    result.map(|()| Some((topic, consumer, starts)))
}

fn topic_name(kafka: &KafkaConfig, topic: Topic) -> &str {
    match topic {
        Topic::Assignments => &kafka.assignments_topic,
        Topic::Outcomes => &kafka.outcomes_topic,
        // Only asked for when it is configured: its partitions are listed only then.
        Topic::Arms => kafka.arms_topic.as_deref().unwrap_or_default(),
    }
}

/// The live source of one worker: its partitions, decoded, at their ticks.
pub fn kafka_source<'scope>(scope: Scope<'scope, u64>, ctx: SourceContext) -> Result<(Stream<'scope, u64, Vec<Arrival>>, Stream<'scope, u64, Vec<Catalog>>, Refuse), SourceError> {
    let mine = kafka::owned_by(&ctx.partitions, scope.index(), scope.peers());
    let mut consumers = Vec::new();
    let mut starts: Vec<(Topic, i32, Option<i64>, bool)> = Vec::new();
    for topic in Topic::ALL {
        if let Some((topic, consumer, from)) = consumer_for(&ctx.kafka, topic, &mine, ctx.rebuild_from_ms, &ctx.lag, ctx.resume.as_deref())? {
            starts.extend(from.into_iter().map(|(p, o, at_end)| (topic, p, o, at_end)));
            consumers.push((topic, consumer));
        }
    }
    tracing::info!(worker = scope.index(), partitions = %describe(&mine), "source assigned");
    let replica = admit::replica(&ctx.job, ctx.resume.as_deref().and_then(|c| c.admission.as_ref()));
    let source_replica = replica.clone();
    let (counters, letters, collector) = (ctx.counters.clone(), ctx.dead_letters.clone(), ctx.collector.clone());
    let assignments_topic: Arc<str> = Arc::from(ctx.kafka.assignments_topic.as_str());
    let tick_ms = ctx.job.tick_ms;
    let sourced = source::<_, CapacityContainerBuilder<Vec<Sourced>>, _, _>(scope, "KafkaSource", move |capability, info| {
        let activator = scope.activator_for(info.address);
        let ticks = Ticks::new(ctx.job.tick_ms);
        let lateness = ctx.job.allowed_lateness_ms.min(i64::MAX as u64) as i64;
        let idle = Duration::from_millis(ctx.job.idle_timeout_ms);
        let mut decoder = Decoder::new(ctx.job.outcome_kinds.as_deref(), ctx.job.limits).without_names();
        let mut screen = Screen::of(&ctx.job, scope.peers());
        let topic_names: [Arc<str>; 3] = Topic::ALL.map(|t| Arc::from(topic_name(&ctx.kafka, t)));
        let started = Instant::now();
        let resume = ctx.resume.clone();
        let mut partitions: Vec<Partition> = mine
            .iter()
            .map(|&(topic, id)| {
                let name = topic_name(&ctx.kafka, topic);
                let max_ts = resumed(resume.as_deref(), name, id).map_or(i64::MIN, |r| r.max_ts);
                let start = starts.iter().find(|(t, p, ..)| *t == topic && *p == id);
                let (base, at_end) = (start.and_then(|(_, _, o, _)| *o), start.is_some_and(|(.., at_end)| *at_end));
                Partition { topic, id, max_ts, last_message: started, at_end, reached_end: at_end, checkpoints: VecDeque::new(), ready: -1, committed: -1, base }
            })
            .collect();
        let mut capability = if consumers.is_empty() { None } else { Some(capability) };
        // Resumed: every tick before the checkpoint's is out already.
        let mut last_checkpoint = 0;
        if let (Some(cap), Some(checkpoint)) = (capability.as_mut(), resume.as_deref()) {
            cap.downgrade(&checkpoint.tick);
            last_checkpoint = checkpoint.tick;
        }
        let worker_index = scope.index();
        let mut names = Vec::new();
        let mut batch: Vec<(u64, Sourced)> = Vec::new();
        let mut last_commit = Instant::now();
        let mut stopping: Option<Instant> = None;
        let mut finished = false;
        let mut caught_up = false;
        let mut last_error: Option<Instant> = None;
        // Whether the brokers seemed up at the last activation.
        let mut brokers_were_up = true;
        move |output| {
            if finished {
                return;
            }
            let control = &ctx.control;
            if stopping.is_none() && control.stop.load(Ordering::Acquire) {
                stopping = Some(Instant::now());
                let held = capability.as_ref().map_or(u64::MAX, |c| *c.time());
                control.held.fetch_min(held, Ordering::AcqRel);
                control.stopped.fetch_add(1, Ordering::AcqRel);
                if !caught_up {
                    caught_up = true;
                    control.caught_up.fetch_add(1, Ordering::AcqRel);
                }
            }
            if let Some(since) = stopping {
                let all_stopped = control.stopped.load(Ordering::Acquire) >= control.sources;
                let held = control.held.load(Ordering::Acquire);
                let out = all_stopped && !ctx.published.less_than(&held);
                if out || since.elapsed() > STOP_GRACE {
                    if let Some(letters) = &ctx.dead_letters {
                        if !letters.drain(Duration::from_secs(5)) {
                            tracing::warn!(topic = letters.topic(), "stopping with dead letters undelivered; their offsets stay uncommitted");
                        }
                    }
                    for (topic, consumer) in &consumers {
                        commit(consumer, *topic, &ctx.kafka, &mut partitions, &ctx.published, ctx.dead_letters.as_deref(), CommitMode::Sync);
                    }
                    // The clients are dropped here, with no partition list alive.
                    consumers.clear();
                    finished = true;
                    control.finished.fetch_add(1, Ordering::AcqRel);
                    if !out {
                        tracing::warn!(held, "stopped before every complete tick was published");
                    }
                } else {
                    activator.activate_after(Duration::from_millis(5));
                }
                return;
            }
            let Some(cap) = capability.as_mut() else {
                if !caught_up {
                    caught_up = true;
                    control.caught_up.fetch_add(1, Ordering::AcqRel);
                }
                return;
            };
            let now = now_ms();
            let floor_tick = *cap.time();
            screen.advance(floor_tick);
            let mut counters = ctx.counters.borrow_mut();
            let mut read = 0u64;
            for (topic, consumer) in &consumers {
                let topic = *topic;
                for _ in 0..MESSAGES_PER_ACTIVATION / 2 {
                    let message = match consumer.poll(Duration::ZERO) {
                        None => break,
                        Some(Err(KafkaError::PartitionEOF(p))) => {
                            if let Some(part) = partitions.iter_mut().find(|x| x.topic == topic && x.id == p) {
                                tracing::debug!(topic = topic.as_str(), partition = p, max_ts = %crate::logs::rfc3339(part.max_ts), "partition at end");
                                part.at_end = true;
                                part.reached_end = true;
                            }
                            continue;
                        }
                        Some(Err(error)) => {
                            if last_error.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                                tracing::warn!(%error, "kafka consumer error");
                                last_error = Some(Instant::now());
                            }
                            break;
                        }
                        Some(Ok(message)) => message,
                    };
                    read += 1;
                    let Some(part) = partitions.iter_mut().find(|x| x.topic == topic && x.id == message.partition()) else { continue };
                    part.at_end = false;
                    part.last_message = Instant::now();
                    let payload = message.payload().unwrap_or_default();
                    let kind = match topic {
                        Topic::Assignments => RecordKind::Assignment,
                        Topic::Outcomes => RecordKind::Outcome,
                        Topic::Arms => RecordKind::Registration,
                    };
                    // Why the record is refused, if it is (the decoder, or a cap for sure).
                    let mut refused: Option<String> = None;
                    let tick = match decoder.decode(kind, payload, now, &mut names, &mut counters) {
                        Ok(Some((ts, decoded))) => {
                            part.max_ts = part.max_ts.max(ts);
                            let tick = ticks.tick_of(ts).max(floor_tick);
                            let waits = match screen.screen(&source_replica.borrow(), &decoded, tick) {
                                Screened::Pass => Some(false),
                                Screened::Hold => Some(true),
                                Screened::Refuse(why) => {
                                    counters.malformed(why.reason());
                                    refused = Some(why.reason().to_owned());
                                    None
                                }
                            };
                            if let Some(waits) = waits {
                                // Bytes are kept for attribution only when a refusal has
                                // somewhere to go.
                                let held = (waits || (ctx.dead_letters.is_some() && at_risk(&decoded, tick, ticks))).then(|| {
                                    let topic = topic_names[topic as usize].clone();
                                    let origin = Origin::Message { topic, partition: message.partition(), offset: message.offset(), key: message.key().map(<[u8]>::to_vec) };
                                    Box::new(Held { raw: payload.to_vec(), origin, worker: worker_index as u32 })
                                });
                                batch.push((tick, Sourced { decoded, held, waits }));
                            }
                            tick
                        }
                        Ok(None) => floor_tick,
                        Err(reason) => {
                            refused = Some(reason.to_string());
                            floor_tick
                        }
                    };
                    if let (Some(reason), Some(letters)) = (refused.take(), &ctx.dead_letters) {
                        letters.send(Letter {
                            reason,
                            source_topic: topic_name(&ctx.kafka, topic).to_owned(),
                            source: Some((message.partition(), message.offset())),
                            key: message.key().map(<[u8]>::to_vec),
                            payload: payload.to_vec(),
                            extra: Vec::new(),
                        });
                    }
                    part.checkpoint(tick, message.offset());
                }
            }
            drop(counters);
            if let Some(letters) = &ctx.dead_letters {
                letters.poll();
            }
            control.messages_read.fetch_add(read, Ordering::Relaxed);
            emit_decoded(&mut batch, cap, output);
            let up = kafka::brokers_up_until(now);
            if back_from_an_outage(&mut partitions, up.is_some(), &mut brokers_were_up) {
                tracing::info!("brokers seem up again; idle partitions wait idle_timeout before following the wall clock");
            }
            let slowest = partitions.iter().min_by_key(|p| p.watermark(now, lateness, idle, up));
            let watermark = slowest.map_or(i64::MIN, |p| p.watermark(now, lateness, idle, up));
            if watermark > 0 {
                let tick = ticks.tick_of(watermark);
                if tick > *cap.time() {
                    if let Some(collector) = &ctx.collector {
                        if let Some(at) = collector.due(last_checkpoint, tick) {
                            // (A checkpoint resumes past every record read: its writer waits
                            // for the refused ones to be in the dead-letter topic.)
                            let positions = partitions
                                .iter()
                                .map(|p| PartitionPosition { topic: topic_name(&ctx.kafka, p.topic).to_owned(), partition: p.id, offset: p.resume_offset(at), max_ts: p.max_ts })
                                .collect();
                            collector.source(worker_index, at, positions);
                            last_checkpoint = at;
                        }
                    }
                    tracing::trace!(tick, slowest = %slowest.map(|p| format!("{}/{}", p.topic.as_str(), p.id)).unwrap_or_default(), "watermark");
                    cap.downgrade(&tick);
                    control.release(worker_index, tick);
                }
            }
            // Caught up once every partition has been read to its end once (with traffic going
            // on, they need not all be at their end at the same moment).
            if !caught_up && partitions.iter().all(|p| p.reached_end) {
                caught_up = true;
                control.caught_up.fetch_add(1, Ordering::AcqRel);
            }
            if last_commit.elapsed() >= COMMIT_EVERY {
                for (topic, consumer) in &consumers {
                    commit(consumer, *topic, &ctx.kafka, &mut partitions, &ctx.published, ctx.dead_letters.as_deref(), CommitMode::Async);
                }
                last_commit = Instant::now();
            }
            if read > 0 {
                activator.activate();
            } else {
                activator.activate_after(POLL_AGAIN);
            }
        }
    });
    let refuse: Refuse = Rc::new(move |reason, held: Held| {
        let Some(letters) = &letters else { return };
        let (source_topic, source, key) = match held.origin {
            Origin::Message { topic, partition, offset, key } => (topic, Some((partition, offset)), key),
            Origin::Line { .. } => (assignments_topic.clone(), None, None),
        };
        letters.send(Letter { reason: reason.to_owned(), source_topic: source_topic.to_string(), source, key, payload: held.raw, extra: Vec::new() });
    });
    let (events, catalog) = admit::admit(sourced, replica, counters, collector, Ticks::new(tick_ms), refuse.clone());
    Ok((events, catalog, refuse))
}

/// Notes whether the brokers seem up; when they are back from an outage, restarts every
/// partition's idle clock and says so. Nothing was read while they were away, so no
/// partition has been idle: a producer that buffered through the outage gets `idle_timeout`
/// to deliver before an idle partition's watermark follows the wall clock again.
fn back_from_an_outage(partitions: &mut [Partition], up: bool, were_up: &mut bool) -> bool {
    let back = up && !*were_up;
    if back {
        let now = Instant::now();
        for part in partitions {
            part.last_message = now;
        }
    }
    *were_up = up;
    back
}

/// Commits, per partition, the offset below which every message's tick is published and
/// every refused message is in the dead-letter topic.
fn commit(consumer: &KafkaConsumer, topic: Topic, kafka: &KafkaConfig, partitions: &mut [Partition], published: &ProbeHandle<u64>, letters: Option<&DeadLetters>, mode: CommitMode) {
    let published = published.with_frontier(|f| f.first().copied()).unwrap_or(u64::MAX);
    let name = topic_name(kafka, topic);
    let mut offsets = TopicPartitionList::new();
    for part in partitions.iter_mut().filter(|p| p.topic == topic) {
        let ceiling = letters.and_then(|l| l.oldest_in_flight(name, part.id));
        if let Some(offset) = part.committable(published, ceiling) {
            if offsets.add_partition_offset(name, part.id, Offset::Offset(offset)).is_ok() {
                part.committed = offset;
            }
        }
    }
    if offsets.count() > 0 {
        if let Err(error) = consumer.commit(&offsets, mode) {
            tracing::warn!(%error, "offset commit failed");
        }
    }
    drop(offsets);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition() -> Partition {
        Partition { topic: Topic::Assignments, id: 0, max_ts: i64::MIN, last_message: Instant::now(), at_end: false, reached_end: false, checkpoints: VecDeque::new(), ready: -1, committed: -1, base: None }
    }

    #[test]
    fn watermark_is_the_largest_ts_minus_lateness_and_holds_time_until_data_arrives() {
        let idle = Duration::from_secs(30);
        let mut p = partition();
        assert_eq!(p.watermark(1_000_000, 500, idle, Some(1_000_000)), i64::MIN);
        p.max_ts = 10_000;
        assert_eq!(p.watermark(1_000_000, 500, idle, Some(1_000_000)), 9_500);
        // At its end but not yet idle for `idle_timeout`: still the data's watermark.
        p.at_end = true;
        assert_eq!(p.watermark(1_000_000, 500, idle, Some(1_000_000)), 9_500);
    }

    #[test]
    fn brokers_back_from_an_outage_restart_the_idle_clocks() {
        let idle = Duration::from_millis(200);
        let mut partitions = vec![partition()];
        partitions[0].max_ts = 10_000;
        partitions[0].at_end = true;
        partitions[0].last_message = Instant::now() - Duration::from_secs(60);
        let mut were_up = true;
        // Still up: nothing changes, the partition is idle and follows the clock.
        assert!(!back_from_an_outage(&mut partitions, true, &mut were_up));
        assert_eq!(partitions[0].watermark(1_000_000, 500, idle, Some(1_000_000)), 999_500);
        // Down, then up again: idle no longer, until `idle` has passed since.
        assert!(!back_from_an_outage(&mut partitions, false, &mut were_up));
        assert!(back_from_an_outage(&mut partitions, true, &mut were_up));
        assert_eq!(partitions[0].watermark(1_000_000, 500, idle, Some(1_000_000)), 9_500);
        assert!(!back_from_an_outage(&mut partitions, true, &mut were_up));
        while partitions[0].last_message.elapsed() < idle {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(partitions[0].watermark(1_000_000, 500, idle, Some(1_000_000)), 999_500);
    }

    #[test]
    fn an_idle_partition_at_its_end_follows_the_wall_clock() {
        let mut p = partition();
        p.max_ts = 10_000;
        p.at_end = true;
        p.last_message = Instant::now() - Duration::from_millis(50);
        assert_eq!(p.watermark(1_000_000, 500, Duration::from_millis(10), Some(1_000_000)), 999_500);
        // Unless the brokers are not known to be up: then nothing new means nothing read.
        assert_eq!(p.watermark(1_000_000, 500, Duration::from_millis(10), None), 9_500);
        // Never behind its own data, even with a clock behind it.
        assert_eq!(p.watermark(5_000, 500, Duration::from_millis(10), Some(5_000)), 9_500);
        // Seen up last at 700 s (an outage not yet noticed): no further than that.
        assert_eq!(p.watermark(1_000_000, 500, Duration::from_millis(10), Some(700_000)), 699_500);
        // A partition with unread data is slow, not idle.
        p.at_end = false;
        assert_eq!(p.watermark(1_000_000, 500, Duration::from_millis(10), Some(1_000_000)), 9_500);
    }

    #[test]
    fn offsets_are_committable_only_below_the_published_tick() {
        let mut p = partition();
        for (tick, offset) in [(5, 0), (5, 1), (6, 2), (5, 3), (7, 4), (8, 5)] {
            p.checkpoint(tick, offset);
        }
        // Offsets 0..=1 have tick 5; 2..=3 at most 6 (3 is late, tick 5); 4 has 7; 5 has 8.
        assert_eq!(p.committable(5, None), None);
        assert_eq!(p.committable(6, None), Some(2));
        p.committed = 2;
        assert_eq!(p.committable(6, None), None);
        assert_eq!(p.committable(8, None), Some(5));
        p.committed = 5;
        assert_eq!(p.committable(u64::MAX, None), Some(6));
    }

    #[test]
    fn a_checkpoint_resumes_where_every_earlier_message_had_an_earlier_tick() {
        let mut p = Partition { base: Some(100), ..partition() };
        assert_eq!(p.resume_offset(5), 100, "nothing read: where reading started");
        for (tick, offset) in [(5, 100), (5, 101), (7, 102), (6, 103), (9, 104)] {
            p.checkpoint(tick, offset);
        }
        // 100 and 101 are at tick 5; 102 is at 7, so resuming for 6 or 7 starts at 102 (103,
        // at tick 6, is read again: a copy the dataflow recognises).
        assert_eq!(p.resume_offset(5), 100);
        assert_eq!(p.resume_offset(6), 102);
        assert_eq!(p.resume_offset(8), 104);
        assert_eq!(p.resume_offset(10), 105);
        assert_eq!(p.committable(8, None), Some(104));
        assert_eq!(p.resume_offset(8), 104, "the same after a commit");
        assert_eq!(partition().resume_offset(3), -1, "unknown start, nothing read");
    }

    #[test]
    fn a_record_on_its_way_to_the_dead_letter_topic_holds_the_commit_below_it() {
        let mut p = partition();
        p.checkpoint(5, 1);
        p.checkpoint(6, 4);
        p.checkpoint(7, 9);
        // Offset 3 was refused and is not yet in the dead-letter topic.
        assert_eq!(p.committable(8, Some(3)), Some(3));
        p.committed = 3;
        assert_eq!(p.committable(8, Some(3)), None, "still in flight");
        assert_eq!(p.committable(8, None), Some(10), "delivered: the commit catches up without new messages");
    }
}
