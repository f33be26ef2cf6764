//! The file source: JSON-lines inputs as the dataflow's events.
//!
//! Each worker reads its share of every input ([`Lines`]) and merges the files by event time
//! (it reads the file that is behind). Watermarks come from the files' own timestamps exactly
//! as in the live worker: per file and worker, the largest `ts` read minus
//! `allowed_lateness`; a finished file no longer holds time back. At the end of the input the
//! workers agree on the last tick ([`Horizon`]) and hold time there: ticks up to the last
//! event's tick complete, and time is not run past the data.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use banditflow_core::config::Dataflow;
use banditflow_core::counters::Counters;
use banditflow_core::event::Catalog;
use banditflow_core::time::{now_ms, Ticks};
use banditflow_core::wire::{Decoder, RecordKind};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{Scope, Stream};

use super::blocks::Lines;
use super::rejects::Rejects;
use super::{Failure, FileError, Input};
use crate::dataflow::admit::{self, at_risk, Arrival, Held, Origin, Refuse, Screen, Screened, Sourced};
use crate::dataflow::sources::emit_decoded;

/// Lines a source reads before it yields to the rest of the dataflow.
const LINES_PER_ACTIVATION: usize = 16 * 1024;

/// Agreement between workers on where the input ends.
#[derive(Debug)]
pub struct Horizon {
    min_ts: AtomicI64,
    max_ts: AtomicI64,
    finished: AtomicUsize,
    peers: usize,
}

impl Horizon {
    /// No worker of `peers` has finished yet.
    pub fn new(peers: usize) -> Self {
        Horizon { min_ts: AtomicI64::new(i64::MAX), max_ts: AtomicI64::new(i64::MIN), finished: AtomicUsize::new(0), peers }
    }

    /// One more worker has read all its input; its event times spanned `min_ts..=max_ts`.
    pub fn finish(&self, min_ts: i64, max_ts: i64) {
        self.min_ts.fetch_min(min_ts, Ordering::AcqRel);
        self.max_ts.fetch_max(max_ts, Ordering::AcqRel);
        self.finished.fetch_add(1, Ordering::AcqRel);
    }

    /// The smallest and largest event time of the records applied so far (`None`: none).
    pub fn span(&self) -> Option<(i64, i64)> {
        let (min, max) = (self.min_ts.load(Ordering::Acquire), self.max_ts.load(Ordering::Acquire));
        (min <= max).then_some((min, max))
    }

    /// Every worker has read all its input.
    pub fn all_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire) >= self.peers
    }

    /// The first tick not to complete, once every worker has read all its input.
    pub fn end_tick(&self, ticks: Ticks) -> Option<u64> {
        if self.finished.load(Ordering::Acquire) < self.peers {
            return None;
        }
        let max = self.max_ts.load(Ordering::Acquire);
        Some(if max == i64::MIN { 0 } else { ticks.tick_of(max) + 1 })
    }
}


/// What one worker's file source needs.
pub struct FileSource {
    /// The job (tick, lateness, outcome kinds, future skew).
    pub job: Dataflow,
    /// The inputs and which records each holds.
    pub inputs: Vec<(RecordKind, Input)>,
    /// How many blocks each file is cut into.
    pub blocks: u64,
    /// The smallest block, in bytes.
    pub min_block: u64,
    /// Shared by the workers: where the input ends.
    pub horizon: Arc<Horizon>,
    /// Lines read, over every worker (for progress output).
    pub lines_read: Arc<AtomicU64>,
    /// The first error of any worker.
    pub failure: Arc<Failure>,
    /// This worker's counters.
    pub counters: Rc<RefCell<Counters>>,
    /// Where refused lines go (`--rejects`), shared by the workers.
    pub rejects: Option<Arc<Rejects>>,
}

/// One input file as a worker's source sees it.
struct Cursor {
    lines: Lines,
    records: RecordKind,
    /// Its index among the inputs.
    input: usize,
    name: String,
    /// Largest event time read (the watermark before lateness).
    max_ts: i64,
    /// Event time of the last line read: the merge reads the file that is behind.
    last_ts: i64,
    done: bool,
}

/// The file source of one worker: its share of every input, decoded, at their ticks.
pub fn file_source<'scope>(scope: Scope<'scope, u64>, ctx: FileSource) -> (Stream<'scope, u64, Vec<Arrival>>, Stream<'scope, u64, Vec<Catalog>>, Refuse) {
    let (worker, peers) = (scope.index(), scope.peers());
    let replica = admit::replica(&ctx.job, None);
    let source_replica = replica.clone();
    let (counters, rejects, failure) = (ctx.counters.clone(), ctx.rejects.clone(), ctx.failure.clone());
    let tick_ms = ctx.job.tick_ms;
    let sourced = source::<_, CapacityContainerBuilder<Vec<Sourced>>, _, _>(scope, "FileSource", move |capability, info| {
        let activator = scope.activator_for(info.address);
        let ticks = Ticks::new(ctx.job.tick_ms);
        let lateness = ctx.job.allowed_lateness_ms.min(i64::MAX as u64) as i64;
        let mut decoder = Decoder::new(ctx.job.outcome_kinds.as_deref(), ctx.job.limits.for_history()).without_names();
        let mut screen = Screen::of(&ctx.job, scope.peers());
        let keeps = ctx.rejects.is_some();
        let input_names: Vec<Arc<str>> = ctx.inputs.iter().map(|(_, input)| Arc::from(input.name())).collect();
        let mut cursors = Vec::new();
        for (index, (records, input)) in ctx.inputs.iter().enumerate() {
            // Line numbers are counted when a refused line may have to say where it was.
            match Lines::open(input, ctx.blocks, ctx.min_block, worker, peers, ctx.rejects.is_some()) {
                Ok(lines) => cursors.push(Cursor {
                    lines,
                    input: index,
                    records: *records,
                    name: input.name(),
                    max_ts: i64::MIN,
                    last_ts: i64::MIN,
                    done: false,
                }),
                Err(source) => ctx.failure.fail(FileError::Input { path: input.name(), source }),
            }
        }
        if cursors.len() < ctx.inputs.len() {
            cursors.clear();
        }
        let mut capability = Some(capability);
        let mut reported = false;
        let mut buf = Vec::new();
        let mut names = Vec::new();
        let mut batch: Vec<(u64, Sourced)> = Vec::new();
        let mut local_max = i64::MIN;
        let mut local_min = i64::MAX;
        move |output| {
            let Some(cap) = capability.as_mut() else { return };
            if reported {
                // All input read here; wait for the other workers, then hold time at the end.
                if let Some(end) = ctx.horizon.end_tick(ticks) {
                    if end == 0 {
                        capability = None;
                    } else {
                        cap.downgrade(&end.max(*cap.time()));
                    }
                    // Stop polling: the driver drops the dataflow once `end` is complete.
                    reported = false;
                    cursors.clear();
                    local_max = i64::MAX;
                } else if local_max != i64::MAX {
                    activator.activate_after(Duration::from_millis(1));
                }
                return;
            }
            if local_max == i64::MAX {
                return; // finished and holding the end tick
            }
            let now = now_ms();
            let floor_tick = *cap.time();
            screen.advance(floor_tick);
            let mut counters = ctx.counters.borrow_mut();
            let mut read = 0u64;
            for _ in 0..LINES_PER_ACTIVATION {
                let Some(cursor) = cursors.iter_mut().filter(|c| !c.done).min_by_key(|c| c.last_ts) else { break };
                match cursor.lines.next(&mut buf) {
                    Ok(true) => {}
                    Ok(false) => {
                        cursor.done = true;
                        continue;
                    }
                    Err(source) => {
                        ctx.failure.fail(FileError::Input { path: cursor.name.clone(), source });
                        cursor.done = true;
                        continue;
                    }
                }
                if buf.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                read += 1;
                match decoder.decode(cursor.records, &buf, now, &mut names, &mut counters) {
                    Ok(Some((ts, decoded))) => {
                        cursor.max_ts = cursor.max_ts.max(ts);
                        local_min = local_min.min(ts);
                        cursor.last_ts = ts;
                        let tick = ticks.tick_of(ts).max(floor_tick);
                        let waits = match screen.screen(&source_replica.borrow(), &decoded, tick) {
                            Screened::Pass => false,
                            Screened::Hold => true,
                            Screened::Refuse(why) => {
                                counters.malformed(why.reason());
                                if let Some(rejects) = &ctx.rejects {
                                    if let Err(error) = rejects.write(why.reason(), &cursor.name, cursor.lines.line(), &buf) {
                                        ctx.failure.fail(error);
                                    }
                                }
                                continue;
                            }
                        };
                        // Bytes are kept for attribution only when a refusal has somewhere to go.
                        let held = (waits || (keeps && at_risk(&decoded, tick, ticks))).then(|| Box::new(Held { raw: buf.clone(), origin: Origin::Line { input: input_names[cursor.input].clone(), line: cursor.lines.line() }, worker: worker as u32 }));
                        batch.push((tick, Sourced { decoded, held, waits }));
                    }
                    Ok(None) => {}
                    Err(reason) => {
                        if let Some(rejects) = &ctx.rejects {
                            if let Err(error) = rejects.write(&reason.to_string(), &cursor.name, cursor.lines.line(), &buf) {
                                ctx.failure.fail(error);
                            }
                        }
                    }
                }
            }
            drop(counters);
            ctx.lines_read.fetch_add(read, Ordering::Relaxed);
            emit_decoded(&mut batch, cap, output);
            for c in &cursors {
                local_max = local_max.max(c.max_ts);
            }
            if cursors.iter().all(|c| c.done) {
                ctx.horizon.finish(local_min, local_max);
                reported = true;
                activator.activate();
                return;
            }
            // Unfinished files hold time at their watermark; finished ones do not.
            let watermark = cursors.iter().filter(|c| !c.done).map(|c| c.max_ts.saturating_sub(lateness)).min().unwrap_or(i64::MIN);
            if watermark > 0 {
                let tick = ticks.tick_of(watermark);
                if tick > *cap.time() {
                    cap.downgrade(&tick);
                }
            }
            activator.activate();
        }
    });
    let refuse: Refuse = Rc::new(move |reason, held: Held| {
        let (Some(rejects), Origin::Line { input, line }) = (&rejects, &held.origin) else { return };
        if let Err(error) = rejects.write(reason, input, *line, &held.raw) {
            failure.fail(error);
        }
    });
    let (events, catalog) = admit::admit(sourced, replica, counters, None, Ticks::new(tick_ms), refuse.clone());
    (events, catalog, refuse)
}

