//! Replay: the bandit dataflow over JSON-lines files instead of Kafka.
//!
//! Each worker reads an interleaved share of fixed-size blocks of each file (a line belongs
//! to the block it starts in) and merges its files by event time. Watermarks come from
//! the files' own timestamps exactly as in the live worker: per file and worker, the largest
//! `ts` read minus `allowed_lateness`. At the end of input, the ticks up to the last event's
//! tick are completed and the run stops; time is not run past the data.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::Probe;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::{Scope, Stream};

use crate::config::Dataflow;
use crate::counters::Counters;
use crate::dataflow::bandit;
use crate::event::{emit_decoded, split_decoded, Catalog, Decoded, Decoder, Event, RecordKind};
use crate::metrics::WorkerReports;
use crate::sink::publish;
use crate::time::{now_ms, Ticks};
use crate::weights::WeightRecord;

/// Lines a source reads before it yields to the rest of the dataflow.
const LINES_PER_ACTIVATION: usize = 16 * 1024;
/// Default size of the blocks of the largest file that workers take turns reading.
pub const DEFAULT_BLOCK_BYTES: u64 = 1 << 20;

/// A replay input: a file, or standard input (`-`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A JSON-lines file.
    File(PathBuf),
    /// Standard input, read by worker 0 alone.
    Stdin,
}

impl Input {
    /// `-` is standard input, anything else a path.
    pub fn parse(arg: &str) -> Input {
        if arg == "-" {
            Input::Stdin
        } else {
            Input::File(PathBuf::from(arg))
        }
    }
}

/// Where replay writes its weight records.
#[derive(Clone, Debug)]
pub enum Output {
    /// JSON lines on standard output.
    Stdout,
    /// JSON lines to a file (created or truncated).
    File(PathBuf),
    /// Kept in memory, for tests and embedding.
    Memory(Arc<Mutex<Vec<WeightRecord>>>),
}

/// A replay run: the job and its inputs.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// The dataflow job.
    pub job: Dataflow,
    /// Assignment records.
    pub assignments: Input,
    /// Outcome records.
    pub outcomes: Input,
    /// Arm registry records, if any.
    pub arms: Option<Input>,
    /// Timely worker threads.
    pub workers: usize,
    /// Where the weight records go.
    pub output: Output,
    /// Block size of the largest input, in bytes ([`DEFAULT_BLOCK_BYTES`]); smaller blocks
    /// spread small inputs over more workers.
    pub block_bytes: u64,
    /// Where to serve `/metrics`, `/healthz` and `/readyz` while the replay runs.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl ReplayOptions {
    /// A replay of `job` over two files: one worker, no arm registry, default blocks,
    /// records to standard output.
    pub fn new(job: Dataflow, assignments: Input, outcomes: Input) -> Self {
        ReplayOptions { job, assignments, outcomes, arms: None, workers: 1, output: Output::Stdout, block_bytes: DEFAULT_BLOCK_BYTES, metrics_listen: None }
    }
}

/// Why a replay could not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// An input file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Input {
        /// The input.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The output could not be written.
    #[error("cannot write {path}: {source}")]
    Output {
        /// The output.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// More than one input is standard input.
    #[error("only one of --assignments, --outcomes and --arms can be `-` (standard input)")]
    TwoStdins,
    /// Timely could not start or a worker failed.
    #[error("dataflow failed: {0}")]
    Dataflow(String),
    /// The metrics endpoint could not start.
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
}

/// Live progress of a run, readable from another thread.
#[derive(Debug, Default)]
pub struct Progress {
    /// Lines read so far, both files.
    pub lines_read: AtomicU64,
    /// Weight records written so far.
    pub records_written: AtomicU64,
}

/// What a finished replay did.
#[derive(Clone, Debug)]
pub struct ReplaySummary {
    /// Counters summed over workers.
    pub counters: Counters,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// Agreement between workers on where the input ends.
#[derive(Debug)]
struct Horizon {
    max_ts: AtomicI64,
    finished: AtomicUsize,
    peers: usize,
}

impl Horizon {
    /// The first tick not to complete, once every worker has read all its input.
    fn end_tick(&self, ticks: Ticks) -> Option<u64> {
        if self.finished.load(Ordering::Acquire) < self.peers {
            return None;
        }
        let max = self.max_ts.load(Ordering::Acquire);
        Some(if max == i64::MIN { 0 } else { ticks.tick_of(max) + 1 })
    }
}

/// Lines of one input that belong to one worker.
enum Lines {
    /// Blocks `worker, worker + peers, …` of a file.
    Blocks { reader: BufReader<File>, len: u64, block: u64, next_block: u64, stride: u64, pos: u64, end: u64 },
    /// A whole stream (standard input on worker 0).
    Stream(Box<dyn BufRead>),
    /// Nothing (standard input on other workers).
    Empty,
}

impl Lines {
    fn open(input: &Input, blocks: u64, min_block: u64, worker: usize, peers: usize) -> io::Result<Lines> {
        match input {
            Input::Stdin if worker == 0 => Ok(Lines::Stream(Box::new(BufReader::new(io::stdin())))),
            Input::Stdin => Ok(Lines::Empty),
            Input::File(path) => {
                let file = File::open(path)?;
                let len = file.metadata()?.len();
                let block = len.div_ceil(blocks.max(1)).max(min_block);
                Ok(Lines::Blocks {
                    reader: BufReader::with_capacity(256 * 1024, file),
                    len,
                    block,
                    next_block: worker as u64,
                    stride: peers as u64,
                    pos: 0,
                    end: 0,
                })
            }
        }
    }

    /// Reads the next line into `buf` (without its newline); false at the end of this share.
    fn next(&mut self, buf: &mut Vec<u8>) -> io::Result<bool> {
        buf.clear();
        let read = match self {
            Lines::Empty => return Ok(false),
            Lines::Stream(reader) => reader.read_until(b'\n', buf)?,
            Lines::Blocks { reader, len, block, next_block, stride, pos, end } => loop {
                if *pos < *end {
                    let n = reader.read_until(b'\n', buf)?;
                    *pos += n as u64;
                    break n;
                }
                let start = *next_block * *block;
                if start >= *len {
                    return Ok(false);
                }
                *next_block += *stride;
                *end = (start + *block).min(*len);
                if start == 0 {
                    reader.seek(SeekFrom::Start(0))?;
                    *pos = 0;
                } else {
                    // The line that straddles `start` belongs to the previous block.
                    reader.seek(SeekFrom::Start(start - 1))?;
                    let skipped = reader.read_until(b'\n', buf)?;
                    buf.clear();
                    *pos = start - 1 + skipped as u64;
                }
            },
        };
        if read == 0 {
            return Ok(false);
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        Ok(true)
    }
}

/// One input file as a worker's source sees it.
struct Cursor {
    lines: Lines,
    records: RecordKind,
    name: String,
    /// Largest event time read (the watermark before lateness).
    max_ts: i64,
    /// Event time of the last line read: the merge reads the file that is behind.
    last_ts: i64,
    done: bool,
}

struct SourceContext {
    job: Dataflow,
    inputs: Vec<(RecordKind, Input)>,
    blocks: u64,
    min_block: u64,
    horizon: Arc<Horizon>,
    progress: Arc<Progress>,
    failure: Arc<Failure>,
    counters: Rc<RefCell<Counters>>,
}


/// The first error of a run, shared by its workers; once set, every worker stops.
#[derive(Debug, Default)]
struct Failure {
    error: Mutex<Option<ReplayError>>,
    failed: std::sync::atomic::AtomicBool,
}

impl Failure {
    fn fail(&self, error: ReplayError) {
        if let Ok(mut slot) = self.error.lock() {
            slot.get_or_insert(error);
        }
        self.failed.store(true, Ordering::Release);
    }

    fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    fn take(&self) -> Option<ReplayError> {
        self.error.lock().ok().and_then(|mut e| e.take())
    }
}

fn input_name(input: &Input) -> String {
    match input {
        Input::File(p) => p.display().to_string(),
        Input::Stdin => "-".to_owned(),
    }
}

/// The replay source of one worker: its share of both files, decoded, at their ticks.
fn replay_source<'scope>(scope: Scope<'scope, u64>, ctx: SourceContext) -> (Stream<'scope, u64, Vec<Event>>, Stream<'scope, u64, Vec<Catalog>>) {
    let (worker, peers) = (scope.index(), scope.peers());
    let decoded = source::<_, CapacityContainerBuilder<Vec<Decoded>>, _, _>(scope, "ReplaySource", move |capability, info| {
        let activator = scope.activator_for(info.address);
        let ticks = Ticks::new(ctx.job.tick_ms);
        let lateness = ctx.job.allowed_lateness_ms.min(i64::MAX as u64) as i64;
        let mut decoder = Decoder::new(ctx.job.outcome_kinds.as_deref(), ctx.job.max_future_skew_ms);
        let mut cursors = Vec::new();
        for (records, input) in &ctx.inputs {
            match Lines::open(input, ctx.blocks, ctx.min_block, worker, peers) {
                Ok(lines) => cursors.push(Cursor {
                    lines,
                    records: *records,
                    name: input_name(input),
                    max_ts: i64::MIN,
                    last_ts: i64::MIN,
                    done: false,
                }),
                Err(source) => ctx.failure.fail(ReplayError::Input { path: input_name(input), source }),
            }
        }
        if cursors.len() < ctx.inputs.len() {
            cursors.clear();
        }
        let mut capability = Some(capability);
        let mut reported = false;
        let mut buf = Vec::new();
        let mut names = Vec::new();
        let mut batch: Vec<(u64, Decoded)> = Vec::new();
        let mut local_max = i64::MIN;
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
                        ctx.failure.fail(ReplayError::Input { path: cursor.name.clone(), source });
                        cursor.done = true;
                        continue;
                    }
                }
                if buf.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                read += 1;
                if let Some((ts, record)) = decoder.decode(cursor.records, &buf, now, &mut names, &mut counters) {
                    cursor.max_ts = cursor.max_ts.max(ts);
                    cursor.last_ts = ts;
                    batch.push((ticks.tick_of(ts).max(floor_tick), record));
                }
            }
            drop(counters);
            ctx.progress.lines_read.fetch_add(read, Ordering::Relaxed);
            emit_decoded(&mut batch, &mut names, floor_tick, cap, output);
            for c in &cursors {
                local_max = local_max.max(c.max_ts);
            }
            if cursors.iter().all(|c| c.done) {
                ctx.horizon.max_ts.fetch_max(local_max, Ordering::AcqRel);
                ctx.horizon.finished.fetch_add(1, Ordering::AcqRel);
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
    split_decoded(decoded)
}

fn open_output(output: &Output) -> Result<Option<Box<dyn Write>>, ReplayError> {
    match output {
        Output::Stdout => Ok(Some(Box::new(BufWriter::new(io::stdout())))),
        Output::File(path) => File::create(path)
            .map(|f| Some(Box::new(BufWriter::new(f)) as Box<dyn Write>))
            .map_err(|source| ReplayError::Output { path: path.display().to_string(), source }),
        Output::Memory(_) => Ok(None),
    }
}

fn output_name(output: &Output) -> String {
    match output {
        Output::Stdout => "standard output".to_owned(),
        Output::File(p) => p.display().to_string(),
        Output::Memory(_) => "memory".to_owned(),
    }
}

fn file_len(input: &Input) -> Result<u64, ReplayError> {
    match input {
        Input::Stdin => Ok(0),
        Input::File(path) => std::fs::metadata(path)
            .map(|m| m.len())
            .map_err(|source| ReplayError::Input { path: path.display().to_string(), source }),
    }
}

/// Runs the dataflow of `options.job` over the input files; `progress` is updated as it goes.
pub fn replay(options: &ReplayOptions, progress: Arc<Progress>) -> Result<ReplaySummary, ReplayError> {
    let mut inputs = vec![(RecordKind::Assignment, options.assignments.clone()), (RecordKind::Outcome, options.outcomes.clone())];
    inputs.extend(options.arms.clone().map(|arms| (RecordKind::Registration, arms)));
    if inputs.iter().filter(|(_, i)| *i == Input::Stdin).count() > 1 {
        return Err(ReplayError::TwoStdins);
    }
    let started = Instant::now();
    let workers = options.workers.max(1);
    // Both files get the same number of blocks, so block i of each covers about the same time.
    let mut largest = 0;
    for (_, input) in &inputs {
        largest = largest.max(file_len(input)?);
    }
    let block_bytes = options.block_bytes.max(1);
    let blocks = (largest / block_bytes).max(1);
    let horizon = Arc::new(Horizon { max_ts: AtomicI64::new(i64::MIN), finished: AtomicUsize::new(0), peers: workers });
    let failure = Arc::new(Failure::default());
    let reports = Arc::new(WorkerReports::default());
    let endpoint = match options.metrics_listen {
        Some(listen) => {
            let (reports, horizon, tick_ms) = (reports.clone(), horizon.clone(), options.job.tick_ms);
            let endpoint = crate::metrics::serve(listen, move || {
                let mut snapshot = reports.snapshot(tick_ms);
                snapshot.caught_up = horizon.finished.load(Ordering::Acquire) >= horizon.peers;
                snapshot
            })?;
            tracing::info!(address = %endpoint.address, "metrics endpoint listening");
            Some(endpoint)
        }
        None => None,
    };
    let options = options.clone();
    let failure_in = failure.clone();
    let worker_reports = reports.clone();
    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let counters = Rc::new(RefCell::new(Counters::default()));
        let worker_counters = counters.clone();
        let ticks = Ticks::new(options.job.tick_ms);
        let mut writer = if worker.index() == 0 {
            match open_output(&options.output) {
                Ok(w) => w,
                Err(e) => {
                    failure_in.fail(e);
                    None
                }
            }
        } else {
            None
        };
        let memory = match &options.output {
            Output::Memory(records) => Some(records.clone()),
            _ => None,
        };
        let out_name = output_name(&options.output);
        let written = counters.clone();
        let progress_out = progress.clone();
        let failure_out = failure_in.clone();
        let ctx = SourceContext {
            job: options.job.clone(),
            inputs: inputs.clone(),
            blocks,
            min_block: block_bytes.min(64 * 1024),
            horizon: horizon.clone(),
            progress: progress.clone(),
            failure: failure_in.clone(),
            counters: counters.clone(),
        };
        let job = options.job.clone();
        let probe = worker.dataflow::<u64, _, _>(move |scope| {
            let (events, names) = replay_source(scope, ctx);
            let records = bandit(events, names, &job, counters.clone());
            let done = publish(records, move |_tick, batch| {
                written.borrow_mut().records_written += batch.len() as u64;
                progress_out.records_written.fetch_add(batch.len() as u64, Ordering::Relaxed);
                if let Some(records) = &memory {
                    if let Ok(mut records) = records.lock() {
                        records.extend(batch.iter().filter_map(|r| serde_json::from_str(&r.json).ok()));
                    }
                }
                if let (Some(w), false) = (writer.as_mut(), failure_out.failed()) {
                    let result = batch.iter().try_for_each(|r| {
                        w.write_all(r.json.as_bytes())?;
                        w.write_all(b"\n")
                    });
                    let result = result.and_then(|_| w.flush());
                    if let Err(source) = result {
                        failure_out.fail(ReplayError::Output { path: out_name.clone(), source });
                    }
                }
            }, || u64::MAX);
            done.probe().0
        });
        let mut reported = Instant::now();
        loop {
            if reported.elapsed() >= WorkerReports::EVERY {
                reported = Instant::now();
                worker_reports.report(worker.index(), &worker_counters.borrow(), probe.with_frontier(|f| f.first().copied()));
            }
            if let Some(end) = horizon.end_tick(ticks) {
                if !probe.less_than(&end) {
                    break;
                }
            }
            // Any worker's failure stops them all (a stopped worker holds the others' time).
            if failure_in.failed() {
                break;
            }
            worker.step();
        }
        for id in worker.installed_dataflows() {
            worker.drop_dataflow(id);
        }
        let result = worker_counters.borrow().clone();
        result
    })
    .map_err(ReplayError::Dataflow)?;
    let mut counters = Counters::default();
    for result in guards.join() {
        counters.merge(&result.map_err(ReplayError::Dataflow)?);
    }
    drop(endpoint);
    if let Some(error) = failure.take() {
        return Err(error);
    }
    Ok(ReplaySummary { counters, elapsed: started.elapsed() })
}

/// Runs a replay and returns its weight records (in publication order) instead of writing
/// them; `options.output` is ignored.
pub fn replay_records(options: &ReplayOptions) -> Result<(Vec<WeightRecord>, ReplaySummary), ReplayError> {
    let records = Arc::new(Mutex::new(Vec::new()));
    let options = ReplayOptions { output: Output::Memory(records.clone()), ..options.clone() };
    let summary = replay(&options, Arc::new(Progress::default()))?;
    let records = records.lock().map(|mut r| std::mem::take(&mut *r)).unwrap_or_default();
    Ok((records, summary))
}
