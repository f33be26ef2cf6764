//! Replay: the bandit dataflow over JSON-lines files instead of Kafka.
//!
//! The driver: it opens the inputs ([`crate::file`]), runs the same dataflow as the live
//! worker on `workers` timely threads, writes each complete tick's records, and stops once
//! the ticks up to the last event's tick are complete. Counters are summed over workers
//! after the dataflow has finished.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use banditflow_core::config::Dataflow;
use banditflow_core::counters::Counters;
use banditflow_core::record::{DecisionEvent, WeightRecord};
use banditflow_core::time::Ticks;
use banditflow_core::wire::RecordKind;
use timely::dataflow::operators::Probe;

use crate::dataflow::{bandit, publish};
use crate::file::rejects::Rejects;
use crate::file::sink::{Background, JsonLines};
use crate::file::source::{file_source, FileSource, Horizon};
use crate::file::{Failure, FileError};
pub use crate::file::Input;
use crate::metrics::WorkerReports;

/// Default size of the blocks of the largest file that workers take turns reading.
pub const DEFAULT_BLOCK_BYTES: u64 = 1 << 20;

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

/// Where replay writes its decision events.
#[derive(Clone, Debug)]
pub enum DecisionOutput {
    /// JSON lines to a file (created or truncated).
    File(PathBuf),
    /// Kept in memory, for tests and embedding.
    Memory(Arc<Mutex<Vec<DecisionEvent>>>),
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
    /// Where the decision events go, if anywhere (JSON lines).
    pub decisions: Option<DecisionOutput>,
    /// Block size of the largest input, in bytes ([`DEFAULT_BLOCK_BYTES`]); smaller blocks
    /// spread small inputs over more workers.
    pub block_bytes: u64,
    /// Where to serve `/metrics`, `/healthz` and `/readyz` while the replay runs.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Where the lines the decoder refused go (JSON lines), if anywhere.
    pub rejects: Option<PathBuf>,
}

impl ReplayOptions {
    /// A replay of `job` over two files: one worker, no arm registry, default blocks,
    /// records to standard output.
    pub fn new(job: Dataflow, assignments: Input, outcomes: Input) -> Self {
        ReplayOptions {
            job,
            assignments,
            outcomes,
            arms: None,
            workers: 1,
            output: Output::Stdout,
            decisions: None,
            block_bytes: DEFAULT_BLOCK_BYTES,
            metrics_listen: None,
            rejects: None,
        }
    }
}

/// Why a replay could not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// An input could not be read or the output written.
    #[error(transparent)]
    File(#[from] FileError),
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
    /// Lines read so far, every input.
    pub lines_read: Arc<AtomicU64>,
    /// Weight records written so far.
    pub records_written: AtomicU64,
}

/// What a finished replay did.
#[derive(Clone, Debug)]
pub struct ReplaySummary {
    /// Counters summed over workers, taken after the dataflow finished: its gauges say what
    /// was still pending or buffered at the end.
    pub counters: Counters,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// The smallest and largest `ts` of the records decoded (`None`: none).
    pub span: Option<(i64, i64)>,
    /// The job's attribution window, ms (for saying why nothing was written).
    pub attribution_ms: u64,
    /// Lines written to the rejects file.
    pub rejected: u64,
}

impl ReplaySummary {
    /// The summary as JSON: every counter, plus `events_read` and `by_result`, whose
    /// categories are exclusive and add up to `events_read`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut json = serde_json::to_value(&self.counters).unwrap_or_default();
        if let Some(object) = json.as_object_mut() {
            object.insert("events_read".into(), self.counters.events_read().into());
            object.insert("by_result".into(), serde_json::to_value(self.counters.by_result()).unwrap_or_default());
        }
        json
    }

    /// Why no weight record was written, when none was.
    pub fn why_no_records(&self) -> Option<String> {
        let c = &self.counters;
        if c.records_written > 0 {
            return None;
        }
        let by = c.by_result();
        let attribution = humantime::format_duration(Duration::from_millis(self.attribution_ms));
        Some(if c.events_read() == 0 {
            "the input holds no records".to_owned()
        } else if c.assignments_applied == 0 {
            "no assignment could be applied (see by_result in the summary)".to_owned()
        } else if by.pending_at_end > 0 && c.assignments_applied == by.pending_at_end {
            let span = self.span.map_or(0, |(first, last)| (last - first).max(0) as u64);
            format!(
                "no tick completed with a resolved assignment: an assignment becomes a trial only once its \
                 attribution window ({attribution}) has passed within the input, but the input's event times span \
                 only {}, and all {} assignments were still pending at its end. Give a longer input or a shorter \
                 `attribution`.",
                humantime::format_duration(Duration::from_millis(span)),
                by.pending_at_end
            )
        } else {
            "no resolved assignment counted (see by_result in the summary)".to_owned()
        })
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
        largest = largest.max(input.byte_len()?);
    }
    let block_bytes = options.block_bytes.max(1);
    let blocks = (largest / block_bytes).max(1);
    let horizon = Arc::new(Horizon::new(workers));
    let failure = Arc::new(Failure::default());
    let rejects = options.rejects.as_deref().map(Rejects::create).transpose()?.map(Arc::new);
    let rejects_out = rejects.clone();
    let reports = Arc::new(WorkerReports::default());
    let endpoint = match options.metrics_listen {
        Some(listen) => {
            let (reports, horizon, tick_ms) = (reports.clone(), horizon.clone(), options.job.tick_ms);
            let endpoint = crate::metrics::serve(listen, move || {
                let mut snapshot = reports.snapshot(tick_ms);
                snapshot.caught_up = horizon.all_finished();
                snapshot
            })?;
            tracing::info!(address = %endpoint.address, "metrics endpoint listening");
            Some(endpoint)
        }
        None => None,
    };
    let attribution_ms = options.job.attribution_ms;
    let finished = horizon.clone();
    let options = options.clone();
    let failure_in = failure.clone();
    let worker_reports = reports;
    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let counters = Rc::new(RefCell::new(Counters::default()));
        let worker_counters = counters.clone();
        let ticks = Ticks::new(options.job.tick_ms);
        let file = match &options.output {
            Output::Stdout => Some(None),
            Output::File(path) => Some(Some(path.as_path())),
            Output::Memory(_) => None,
        };
        let writer = match file.filter(|_| worker.index() == 0).map(JsonLines::create) {
            Some(Ok(w)) => Some(w),
            Some(Err(e)) => {
                failure_in.fail(e);
                None
            }
            None => None,
        };
        let memory = match &options.output {
            Output::Memory(records) => Some(records.clone()),
            _ => None,
        };
        let (decision_file, decision_memory) = match (&options.decisions, worker.index()) {
            (Some(DecisionOutput::File(path)), 0) => match JsonLines::create(Some(path)) {
                Ok(w) => (Some(w), None),
                Err(e) => {
                    failure_in.fail(e);
                    (None, None)
                }
            },
            (Some(DecisionOutput::Memory(events)), _) => (None, Some(events.clone())),
            _ => (None, None),
        };
        // Files are written on a thread of their own; it is joined when the dataflow is dropped.
        let background = match (writer.is_some() || decision_file.is_some(), failure_in.failed()) {
            (true, false) => match Background::spawn(writer, decision_file, failure_in.clone()) {
                Ok(b) => Some(b),
                Err(e) => {
                    failure_in.fail(e);
                    None
                }
            },
            _ => None,
        };
        let written = counters.clone();
        let progress_out = progress.clone();
        let ctx = FileSource {
            job: options.job.clone(),
            inputs: inputs.clone(),
            blocks,
            min_block: block_bytes.min(64 * 1024),
            horizon: horizon.clone(),
            lines_read: progress.lines_read.clone(),
            failure: failure_in.clone(),
            counters: counters.clone(),
            rejects: rejects_out.clone(),
        };
        let job = options.job.clone();
        let probe = worker.dataflow::<u64, _, _>(move |scope| {
            let (events, names, refuse) = file_source(scope, ctx);
            let records = bandit(events, names, &job, counters.clone(), &crate::dataflow::Recovery::default(), refuse);
            let done = publish(records, move |_tick, batch, decisions, _forgotten| {
                written.borrow_mut().records_written += batch.len() as u64;
                written.borrow_mut().decisions_written += decisions.len() as u64;
                progress_out.records_written.fetch_add(batch.len() as u64, Ordering::Relaxed);
                if let Some(events) = &decision_memory {
                    if let Ok(mut events) = events.lock() {
                        events.extend(decisions.iter().filter_map(|d| serde_json::from_str(&d.json).ok()));
                    }
                }
                if let Some(records) = &memory {
                    if let Ok(mut records) = records.lock() {
                        records.extend(batch.iter().filter_map(|r| serde_json::from_str(&r.json).ok()));
                    }
                }
                if let Some(background) = &background {
                    background.write(batch, decisions);
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
    let rejected = rejects.as_ref().map_or(0, |r| r.written());
    if let Some(Err(error)) = rejects.map(|r| r.flush()) {
        failure.fail(error);
    }
    if let Some(error) = failure.take() {
        return Err(error.into());
    }
    Ok(ReplaySummary { counters, elapsed: started.elapsed(), span: finished.span(), attribution_ms, rejected })
}

/// Runs a replay and returns its weight records and decision events (each in publication
/// order) instead of writing them; `options.output` and `options.decisions` are ignored.
pub fn replay_with_decisions(options: &ReplayOptions) -> Result<(Vec<WeightRecord>, Vec<DecisionEvent>, ReplaySummary), ReplayError> {
    let records = Arc::new(Mutex::new(Vec::new()));
    let decisions = Arc::new(Mutex::new(Vec::new()));
    let options = ReplayOptions { output: Output::Memory(records.clone()), decisions: Some(DecisionOutput::Memory(decisions.clone())), ..options.clone() };
    let summary = replay(&options, Arc::new(Progress::default()))?;
    let records = records.lock().map(|mut r| std::mem::take(&mut *r)).unwrap_or_default();
    let decisions = decisions.lock().map(|mut d| std::mem::take(&mut *d)).unwrap_or_default();
    Ok((records, decisions, summary))
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
