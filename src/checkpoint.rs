//! Checkpoints of the live worker on disk, and the collector that puts one together.
//!
//! Every operator with state hands its part for a checkpoint tick to the process's
//! [`Collector`] once it has computed every tick before it; the sources hand over where each
//! partition resumes. Once every local worker's parts are in and the sinks have acknowledged
//! every tick before it, the driver writes the checkpoint through the [`Store`]: to a
//! temporary file, fsynced, renamed into place, the directory fsynced; the oldest beyond
//! `keep` are removed. At start-up the newest checkpoint that reads back whole is used; a
//! corrupt or truncated one is logged, counted and skipped for the one before it.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use banditflow_core::admission::AdmissionState;
use banditflow_core::checkpoint::{self, AttributionPart, Checkpoint, CheckpointError, JobTiming, PartitionPosition};
use banditflow_core::config::Dataflow;
use banditflow_core::weights::WeigherState;

/// Checkpoints skipped at start-up because they did not read back whole.
pub static CORRUPT_SKIPPED: AtomicU64 = AtomicU64::new(0);
/// Checkpoints that could not be written (directory unwritable, disk full).
pub static WRITE_FAILURES: AtomicU64 = AtomicU64::new(0);
/// Checkpoints written.
pub static WRITTEN: AtomicU64 = AtomicU64::new(0);
/// Wall-clock ms of the last checkpoint written (0: none yet).
pub static LAST_WRITTEN_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// The timing of a job, as a checkpoint records it.
pub fn timing(job: &Dataflow) -> JobTiming {
    JobTiming { tick_ms: job.tick_ms, window_ms: job.window_ms, attribution_ms: job.attribution_ms, allowed_lateness_ms: job.allowed_lateness_ms }
}

/// A directory of checkpoints. A single process writes `checkpoint-<tick>.bin`; process `p`
/// of a cluster of `n` writes `checkpoint-<tick>-process-<p>-of-<n>.bin` with its own
/// workers' parts. Each keeps the newest `keep` of its own files, so the processes of a
/// cluster may share the directory or each have its own.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
    keep: usize,
    process: usize,
    processes: usize,
}

/// A checkpoint file that could not be used, and why.
#[derive(Debug)]
pub struct Skipped {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

/// A checkpoint this process can resume from, and the files it came from.
#[derive(Debug)]
pub struct Candidate {
    /// The files read: one, or one per process of the cluster that wrote it.
    pub files: Vec<PathBuf>,
    /// The checkpoint (the parts of every file merged).
    pub checkpoint: Checkpoint,
}

/// The tick of a checkpoint file's name and, for a cluster's file, (process, processes).
fn parse_name(name: &str) -> Option<(u64, Option<(usize, usize)>)> {
    let stem = name.strip_prefix("checkpoint-")?.strip_suffix(".bin")?;
    match stem.split_once("-process-") {
        None => Some((stem.parse().ok()?, None)),
        Some((tick, role)) => {
            let (process, processes) = role.split_once("-of-")?;
            Some((tick.parse().ok()?, Some((process.parse().ok()?, processes.parse().ok()?))))
        }
    }
}

impl Store {
    /// Checkpoints of process `process` of `processes` in `dir` (created if missing), keeping
    /// its newest `keep`.
    pub fn open(dir: &Path, keep: usize, process: usize, processes: usize) -> io::Result<Store> {
        fs::create_dir_all(dir)?;
        Ok(Store { dir: dir.to_path_buf(), keep: keep.max(1), process, processes: processes.max(1) })
    }

    fn role(&self) -> Option<(usize, usize)> {
        (self.processes > 1).then_some((self.process, self.processes))
    }

    fn path_of(&self, tick: u64) -> PathBuf {
        match self.role() {
            None => self.dir.join(format!("checkpoint-{tick:020}.bin")),
            Some((p, n)) => self.dir.join(format!("checkpoint-{tick:020}-process-{p}-of-{n}.bin")),
        }
    }

    /// Every checkpoint file in the directory with what its name says, any order.
    fn all_files(&self) -> io::Result<Vec<(PathBuf, u64, Option<(usize, usize)>)>> {
        Ok(fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter_map(|p| {
                let (tick, role) = parse_name(p.file_name()?.to_str()?)?;
                Some((p, tick, role))
            })
            .collect())
    }

    /// This process's checkpoint files, newest first.
    pub fn files(&self) -> io::Result<Vec<PathBuf>> {
        let mine = self.role();
        let mut files: Vec<(u64, PathBuf)> = self.all_files()?.into_iter().filter(|(_, _, role)| *role == mine).map(|(p, t, _)| (t, p)).collect();
        files.sort();
        Ok(files.into_iter().rev().map(|(_, p)| p).collect())
    }

    /// Writes `checkpoint` durably and removes this process's oldest beyond `keep`; returns
    /// its path.
    pub fn write(&self, checkpoint: &Checkpoint) -> io::Result<PathBuf> {
        let bytes = checkpoint::encode(checkpoint);
        let path = self.path_of(checkpoint.tick);
        let temporary = self.dir.join(format!(".checkpoint-{:020}-{}.tmp", checkpoint.tick, self.process));
        {
            let mut file = File::create(&temporary)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
        }
        fs::rename(&temporary, &path)?;
        File::open(&self.dir)?.sync_all()?;
        for old in self.files()?.into_iter().skip(self.keep) {
            let _ = fs::remove_file(old);
        }
        Ok(path)
    }

    /// Reads one file: the checkpoint, or why it cannot be used (a corrupt one is also
    /// counted in [`CORRUPT_SKIPPED`]).
    fn read(path: &Path, usable: &impl Fn(&Checkpoint) -> Result<(), String>) -> Result<Checkpoint, String> {
        let checkpoint = fs::read(path).map_err(|e| e.to_string()).and_then(|bytes| checkpoint::decode(&bytes).map_err(|e: CheckpointError| e.to_string())).inspect_err(|_| {
            CORRUPT_SKIPPED.fetch_add(1, Ordering::Relaxed);
        })?;
        usable(&checkpoint)?;
        Ok(checkpoint)
    }

    /// The newest checkpoint a single process would resume from ([`Store::candidates`]
    /// newest first), with its first file and the files skipped on the way.
    pub fn newest(&self, usable: impl Fn(&Checkpoint) -> Result<(), String>) -> io::Result<(Option<(PathBuf, Checkpoint)>, Vec<Skipped>)> {
        let (mut found, skipped) = self.candidates(usable, 0, true)?;
        let newest = found.pop_last().and_then(|(_, c)| Some((c.files.into_iter().next()?, c.checkpoint)));
        Ok((newest, skipped))
    }

    /// Every tick this process can resume from, for a run of `workers` timely workers in
    /// all: a single process's checkpoint, or every part of a cluster's (both re-partition
    /// to any worker and process count), or else this process's own part when the cluster
    /// is laid out as it was (same processes, same workers: the same partitions and keys
    /// are its own). Files that do not read back whole, that `usable` refuses, or whose
    /// tick this process cannot resume from alone are returned as skipped, with the reason.
    /// With `newest_only` the ticks are read newest first, and only up to the first that is
    /// a candidate (a single process needs no other: each file read costs its decoding).
    pub fn candidates(&self, usable: impl Fn(&Checkpoint) -> Result<(), String>, workers: u32, newest_only: bool) -> io::Result<(BTreeMap<u64, Candidate>, Vec<Skipped>)> {
        let mut skipped = Vec::new();
        let mut names: BTreeMap<u64, Vec<(PathBuf, Option<(usize, usize)>)>> = BTreeMap::new();
        for (path, tick, role) in self.all_files()? {
            names.entry(tick).or_default().push((path, role));
        }
        let mut candidates = BTreeMap::new();
        for (tick, mut paths) in names.into_iter().rev() {
            if newest_only && !candidates.is_empty() {
                break;
            }
            paths.sort();
            let mut files = Vec::new();
            for (path, role) in paths {
                match Store::read(&path, &usable) {
                    Ok(checkpoint) => files.push((path, role, checkpoint)),
                    Err(reason) => skipped.push(Skipped { path, reason }),
                }
            }
            if let Some(at) = files.iter().position(|f| f.1.is_none()) {
                let (path, _, checkpoint) = files.swap_remove(at);
                candidates.insert(tick, Candidate { files: vec![path], checkpoint });
                continue;
            }
            let whole = files.iter().filter_map(|f| f.1.map(|(_, n)| n)).find(|&n| (0..n).all(|p| files.iter().any(|f| f.1 == Some((p, n)))));
            if let Some(n) = whole {
                let mut parts = Vec::new();
                for p in 0..n {
                    if let Some(at) = files.iter().position(|f| f.1 == Some((p, n))) {
                        parts.push(files.swap_remove(at));
                    }
                }
                let paths = parts.iter().map(|f| f.0.clone()).collect();
                match Checkpoint::merge(parts.into_iter().map(|f| f.2).collect()) {
                    Some(checkpoint) => {
                        candidates.insert(tick, Candidate { files: paths, checkpoint });
                    }
                    None => skipped.extend(paths.into_iter().map(|path| Skipped { path, reason: "the processes' parts do not belong together".to_owned() })),
                }
                continue;
            }
            let own = files.iter().position(|f| f.1 == self.role().or(Some((0, 1))) && f.2.workers == workers);
            match own {
                Some(at) => {
                    let (path, _, checkpoint) = files.swap_remove(at);
                    candidates.insert(tick, Candidate { files: vec![path], checkpoint });
                }
                None => skipped.extend(files.into_iter().map(|(path, _, c)| Skipped {
                    path,
                    reason: format!(
                        "one process's part of {} processes with {} workers; this run ({} processes, {workers} workers) needs every part, which is not in this directory",
                        c.processes, c.workers, self.processes
                    ),
                })),
            }
        }
        Ok((candidates, skipped))
    }
}

/// The parts of one checkpoint tick handed over so far.
#[derive(Debug, Default)]
struct Parts {
    attribution: BTreeMap<usize, AttributionPart>,
    weighers: BTreeMap<usize, WeigherState>,
    sources: BTreeMap<usize, Vec<PartitionPosition>>,
    admission: Option<AdmissionState>,
}

/// Gathers the parts of checkpoints from a process's workers.
#[derive(Debug)]
pub struct Collector {
    /// This process and how many there are.
    process: usize,
    processes: usize,
    workers: usize,
    /// Local workers that read partitions: the others hand over no positions.
    sources: usize,
    every_ticks: u64,
    /// Checkpoints at ticks at or below this are not taken again (the one resumed from).
    after: u64,
    /// Whether checkpoints are taken now: not while catching up on a backlog, where a
    /// snapshot every interval of the backlog's time would slow it down for nothing.
    active: std::sync::atomic::AtomicBool,
    parts: Mutex<BTreeMap<u64, Parts>>,
}

impl Collector {
    /// Checkpoints every `every_ticks` ticks from `workers` local workers, `sources` of which
    /// read partitions, after tick `after`.
    pub fn new(workers: usize, sources: usize, every_ticks: u64, after: u64) -> Arc<Collector> {
        Collector::of_process(0, 1, workers, sources, every_ticks, after)
    }

    /// As [`Collector::new`], for process `process` of a cluster of `processes`.
    pub fn of_process(process: usize, processes: usize, workers: usize, sources: usize, every_ticks: u64, after: u64) -> Arc<Collector> {
        Arc::new(Collector {
            process,
            processes: processes.max(1),
            workers,
            sources,
            every_ticks: every_ticks.max(1),
            after,
            active: std::sync::atomic::AtomicBool::new(false),
            parts: Mutex::default(),
        })
    }

    /// Starts taking checkpoints (once the sources have caught up).
    pub fn activate(&self) {
        self.active.store(true, Ordering::Release);
    }

    /// The checkpoint tick to take when time has advanced to `frontier` (every tick before
    /// it complete), if it is after `last`: the newest multiple of the interval below it.
    pub fn due(&self, last: u64, frontier: u64) -> Option<u64> {
        if frontier == 0 || frontier == u64::MAX || !self.active.load(Ordering::Acquire) {
            return None;
        }
        let tick = (frontier - 1) / self.every_ticks * self.every_ticks;
        (tick > last.max(self.after)).then_some(tick)
    }

    fn with(&self, tick: u64, f: impl FnOnce(&mut Parts)) {
        if let Ok(mut parts) = self.parts.lock() {
            f(parts.entry(tick).or_default());
            // A bounded backlog: ticks far behind the newest will never complete.
            while parts.len() > 16 {
                parts.pop_first();
            }
        }
    }

    /// Worker `worker`'s attribution at `tick`.
    pub fn attribution(&self, worker: usize, tick: u64, part: AttributionPart) {
        self.with(tick, |p| {
            p.attribution.insert(worker, part);
        });
    }

    /// Worker `worker`'s weight state at `tick`.
    pub fn weigher(&self, worker: usize, tick: u64, state: WeigherState) {
        self.with(tick, |p| {
            p.weighers.insert(worker, state);
        });
    }

    /// Admission's replica at `tick` (every worker's is the same; any one of this process's).
    pub fn admission(&self, tick: u64, state: AdmissionState) {
        self.with(tick, |p| {
            p.admission = Some(state);
        });
    }

    /// Where worker `worker`'s partitions resume at `tick`.
    pub fn source(&self, worker: usize, tick: u64, positions: Vec<PartitionPosition>) {
        self.with(tick, |p| {
            p.sources.insert(worker, positions);
        });
    }

    /// The newest checkpoint whose parts are all in and whose tick is at or below `acked`
    /// (every tick before it acknowledged by the sinks), taken out with everything older.
    pub fn take_complete(&self, acked: u64, timing: &JobTiming, written_ms: i64) -> Option<Checkpoint> {
        let mut parts = self.parts.lock().ok()?;
        let complete = |p: &Parts| p.attribution.len() == self.workers && p.weighers.len() == self.workers && p.sources.len() == self.sources && p.admission.is_some();
        let tick = *parts.iter().rev().find(|(t, p)| **t <= acked && complete(p))?.0;
        let mut older = parts.split_off(&(tick + 1));
        std::mem::swap(&mut older, &mut parts);
        let taken = older.remove(&tick)?;
        Some(Checkpoint {
            tick,
            timing: timing.clone(),
            workers: (self.workers * self.processes) as u32,
            process: self.process as u32,
            processes: self.processes as u32,
            attribution: taken.attribution.into_values().collect(),
            weighers: taken.weighers.into_values().collect(),
            admission: taken.admission,
            partitions: taken.sources.into_values().flatten().collect(),
            weights_offsets: Vec::new(),
            decisions_offsets: Vec::new(),
            written_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing() -> JobTiming {
        JobTiming { tick_ms: 1_000, window_ms: 60_000, attribution_ms: 5_000, allowed_lateness_ms: 0 }
    }

    fn complete(collector: &Collector, tick: u64, workers: usize) {
        collector.activate();
        for w in 0..workers {
            collector.attribution(w, tick, AttributionPart::default());
            collector.weigher(w, tick, WeigherState { next_tick: tick, ..WeigherState::default() });
            collector.source(w, tick, vec![PartitionPosition { topic: "a".into(), partition: w as i32, offset: tick as i64, max_ts: 0 }]);
        }
        collector.admission(tick, AdmissionState::default());
    }

    #[test]
    fn checkpoints_are_due_at_multiples_of_the_interval_after_the_last() {
        let collector = Collector::new(1, 1, 10, 0);
        assert_eq!(collector.due(0, 11), None, "not while catching up");
        collector.activate();
        assert_eq!(collector.due(0, 5), None);
        assert_eq!(collector.due(0, 11), Some(10));
        assert_eq!(collector.due(10, 15), None);
        assert_eq!(collector.due(10, 47), Some(40));
        let resumed = Collector::new(1, 1, 10, 40);
        resumed.activate();
        assert_eq!(resumed.due(0, 45), None);
    }

    #[test]
    fn a_checkpoint_is_taken_once_every_worker_handed_its_parts_and_the_sinks_caught_up() {
        let collector = Collector::new(2, 2, 10, 0);
        complete(&collector, 10, 1);
        assert!(collector.take_complete(100, &timing(), 0).is_none(), "one worker's parts missing");
        complete(&collector, 10, 2);
        complete(&collector, 20, 2);
        assert!(collector.take_complete(9, &timing(), 0).is_none(), "not acknowledged yet");
        let taken = collector.take_complete(15, &timing(), 0).expect("tick 10 is complete");
        assert_eq!((taken.tick, taken.workers, taken.partitions.len()), (10, 2, 2));
        assert_eq!(collector.take_complete(25, &timing(), 0).map(|c| c.tick), Some(20));
        assert!(collector.take_complete(25, &timing(), 0).is_none());
    }

    #[test]
    fn the_store_keeps_the_newest_and_skips_what_does_not_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("cp"), 2, 0, 1).expect("store");
        let collector = Collector::new(1, 1, 10, 0);
        for tick in [10, 20, 30] {
            complete(&collector, tick, 1);
            let checkpoint = collector.take_complete(tick, &timing(), 0).expect("complete");
            store.write(&checkpoint).expect("write");
        }
        let files = store.files().expect("files");
        assert_eq!(files.len(), 2, "keep = 2: {files:?}");
        let (newest, skipped) = store.newest(|_| Ok(())).expect("read");
        assert_eq!((newest.map(|(_, c)| c.tick), skipped.len()), (Some(30), 0));
        // Truncate the newest: the one before it is used, and the skip is counted.
        let before = CORRUPT_SKIPPED.load(Ordering::Relaxed);
        let bytes = fs::read(&files[0]).expect("read");
        fs::write(&files[0], &bytes[..bytes.len() / 2]).expect("truncate");
        let (newest, skipped) = store.newest(|_| Ok(())).expect("read");
        assert_eq!(newest.map(|(_, c)| c.tick), Some(20));
        assert!(skipped[0].reason.contains("truncated"), "{:?}", skipped);
        assert!(CORRUPT_SKIPPED.load(Ordering::Relaxed) > before);
        // A usable check that refuses it (another job's timing, say) skips it too.
        let (newest, skipped) = store.newest(|c| if c.tick == 20 { Err("timing differs".into()) } else { Ok(()) }).expect("read");
        assert!(newest.is_none() && skipped.len() == 2);
    }

    #[test]
    fn a_cluster_resumes_from_every_part_or_from_each_process_s_own_when_laid_out_as_before() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (shared, alone) = (dir.path().join("shared"), dir.path().join("alone"));
        for (process, at) in [(0, &shared), (1, &shared), (1, &alone)] {
            let store = Store::open(at, 3, process, 2).expect("store");
            let collector = Collector::of_process(process, 2, 2, 2, 10, 0);
            collector.activate();
            for w in [process * 2, process * 2 + 1] {
                collector.attribution(w, 10, AttributionPart::default());
                collector.weigher(w, 10, WeigherState::default());
                collector.source(w, 10, vec![PartitionPosition { topic: "a".into(), partition: w as i32, offset: 5, max_ts: 0 }]);
            }
            // Each process's part is incomplete without the replica.
            assert!(collector.take_complete(u64::MAX, &timing(), 0).is_none());
            collector.admission(10, AdmissionState { pairs: vec![(1, 2, 9, false)], decided: 10 });
            store.write(&collector.take_complete(u64::MAX, &timing(), 0).expect("complete")).expect("write");
        }
        // Every part in one directory: any layout resumes from the merged checkpoint.
        for (process, processes, workers) in [(0, 1, 1), (1, 3, 3), (0, 2, 4)] {
            let (found, skipped) = Store::open(&shared, 3, process, processes).expect("store").candidates(|_| Ok(()), workers, false).expect("read");
            let whole = &found[&10];
            assert_eq!((whole.files.len(), whole.checkpoint.attribution.len(), whole.checkpoint.partitions.len(), skipped.len()), (2, 4, 4, 0));
            assert_eq!(whole.checkpoint.admission.as_ref().map(|a| a.pairs.len()), Some(1), "the replica");
        }
        // Its own part alone: only as it was laid out (2 processes, 4 workers in all).
        let store = Store::open(&alone, 3, 1, 2).expect("store");
        let (found, _) = store.candidates(|_| Ok(()), 4, false).expect("read");
        assert_eq!(found[&10].checkpoint.partitions.len(), 2);
        let (found, skipped) = store.candidates(|_| Ok(()), 6, false).expect("read");
        assert!(found.is_empty() && skipped[0].reason.contains("needs every part"), "{skipped:?}");
        let (found, _) = Store::open(&alone, 3, 1, 3).expect("store").candidates(|_| Ok(()), 3, false).expect("read");
        assert!(found.is_empty(), "another process count");
        // Each process keeps its own newest files.
        assert_eq!(Store::open(&shared, 3, 0, 2).expect("store").files().expect("files").len(), 1);
    }
}
