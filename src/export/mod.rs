//! `banditflow export`: clean, traceable evaluation datasets, one per entity.
//!
//! Each resolved assignment becomes a row ([`rows::DatasetRow`]): its reward and the tick it
//! resolved in are decided by the same attribution state machine the dataflow runs
//! ([`banditflow_core::attribution`]), its propensity is what serving gave the served arm
//! ([`propensity`]), and every field of its line beyond the schema's is kept as context. Rows
//! are written per entity as Parquet ([`parquet`]) and JSON lines, with a [`manifest`].
//!
//! The inputs are read whole, then taken in event-time order as a replay of well-ordered
//! files takes them, so the answer does not depend on the order of the lines: an assignment is
//! a row once its attribution window has passed within the input (its resolution tick is at or
//! before the tick of the last event).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use banditflow_core::attribution::{Attribution, AttributionRules};
use banditflow_core::config::Dataflow;
use banditflow_core::counters::Counters;
use banditflow_core::event::{arm_id_of, entity_id_of, AssignmentKey};
use banditflow_core::time::{now_ms, Ticks};
use banditflow_core::wire::Decoder;
use rustc_hash::FxHashMap;

pub mod manifest;
pub mod parquet;
pub mod propensity;
pub mod rows;

use manifest::{EntityPart, Manifest, Source, MANIFEST};
use propensity::WeightHistory;
use rows::{DatasetRow, Logged};

/// The arm registry's copy in a dataset's folder, when it was exported with one: the
/// candidates of `banditflow evaluate` see the same arms come and go.
pub const ARMS_COPY: &str = "arms.jsonl";

/// What to export.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// The job file the traffic was served under.
    pub dataflow: PathBuf,
    /// Assignment records (JSON lines).
    pub assignments: PathBuf,
    /// Outcome records (JSON lines).
    pub outcomes: PathBuf,
    /// Arm registry records, if any: an assignment to an arm retired at its `ts` is no row,
    /// as it is no trial.
    pub arms: Option<PathBuf>,
    /// Weight records serving used, if any: the propensity of rows whose assignment did not
    /// log one.
    pub weights: Option<PathBuf>,
    /// The dataset's folder (created).
    pub out: PathBuf,
}

/// Why an export could not run.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The job file.
    #[error(transparent)]
    Job(#[from] banditflow_core::config::ConfigError),
    /// An input could not be read.
    #[error("cannot read {path}: {source}")]
    Input {
        /// Which.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The dataset could not be written.
    #[error("cannot write {path}: {message}")]
    Output {
        /// Which file.
        path: String,
        /// Why.
        message: String,
    },
}

fn input_error(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Input { path: path.display().to_string(), source }
}

fn output_error(path: &Path) -> impl FnOnce(String) -> ExportError + '_ {
    move |message| ExportError::Output { path: path.display().to_string(), message }
}

/// Lines read so far, for progress output.
pub type Progress = dyn Fn(&str, u64) + Sync;

/// Calls `each` with every non-blank line of `path`; `progress` hears of every millionth line.
/// Returns the file's [`Source`], hashed from the bytes as they were read.
fn each_line(path: &Path, what: &str, progress: &Progress, mut each: impl FnMut(&[u8])) -> Result<Source, ExportError> {
    let mut input = BufReader::with_capacity(1 << 20, File::open(path).map_err(input_error(path))?);
    let mut hash = manifest::Hashing::default();
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line).map_err(input_error(path))? == 0 {
            break;
        }
        hash.update(&line);
        number += 1;
        if number.is_multiple_of(1_000_000) {
            progress(what, number);
        }
        if !line.iter().all(u8::is_ascii_whitespace) {
            each(&line);
        }
    }
    progress(what, number);
    Ok(hash.finish(path))
}

/// One record of the input, in the order attribution takes them: by tick.
#[derive(Clone, Copy)]
enum Input {
    Registration(u32),
    Outcome(u32),
    Assignment(u32),
}

/// Reads the inputs, writes the dataset into `options.out` and returns its manifest.
pub fn export(options: &ExportOptions, progress: &Progress) -> Result<Manifest, ExportError> {
    let job: Dataflow = crate::deployment::Job::load(&options.dataflow)?.dataflow;
    let ticks = Ticks::new(job.tick_ms);
    let rules = AttributionRules {
        ticks,
        attribution_ms: job.attribution_ms,
        window_ms: job.window_ms,
        max_outcomes_per_assignment: job.limits.max_outcomes_per_assignment,
        reset_on_reactivate: job.policy.reset_on_reactivate,
    };
    let mut counters = Counters::default();
    let mut decoder = Decoder::new(job.outcome_kinds.as_deref(), job.limits.for_history());
    let now = now_ms();
    let mut names = Vec::new();
    // Lines refused, by input and reason; assignments' also count as left out.
    let mut refused: BTreeMap<String, u64> = BTreeMap::new();
    let mut left_out: BTreeMap<String, u64> = BTreeMap::new();
    let mut inputs = BTreeMap::new();
    let mut registrations = Vec::new();
    if let Some(arms) = &options.arms {
        let source = each_line(arms, "arm registry lines", progress, |line| match decoder.registration(line, now, &mut names) {
            Ok(r) => registrations.push(r),
            Err(reason) => *refused.entry(format!("arms: {reason}")).or_default() += 1,
        })?;
        inputs.insert("arms".to_owned(), source);
    }
    let mut outcomes = Vec::new();
    let source = each_line(&options.outcomes, "outcome lines", progress, |line| match decoder.outcome(line, now) {
        Ok(Some(o)) => outcomes.push(o),
        Ok(None) => {}
        Err(reason) => *refused.entry(format!("outcomes: {reason}")).or_default() += 1,
    })?;
    inputs.insert("outcomes".to_owned(), source);
    // Each assignment and its line; by key, the first copy's index in `first`, later ones in `copies`.
    let mut assignments = Vec::new();
    let mut logged: Vec<Option<Logged>> = Vec::new();
    let mut interned: rustc_hash::FxHashSet<std::sync::Arc<str>> = rustc_hash::FxHashSet::default();
    let mut first: FxHashMap<AssignmentKey, u32> = FxHashMap::default();
    let mut copies: FxHashMap<AssignmentKey, Vec<u32>> = FxHashMap::default();
    let source = each_line(&options.assignments, "assignment lines", progress, |line| match decoder.assignment(line, now, &mut names) {
        Ok(a) => {
            let Ok(mut parts) = serde_json::from_slice::<Logged>(line) else {
                *left_out.entry("invalid_field".into()).or_default() += 1;
                return;
            };
            // Every row of an entity, and of an arm, shares its name.
            parts.entity_id = intern(&mut interned, parts.entity_id);
            parts.arm_id = intern(&mut interned, parts.arm_id);
            let index = logged.len() as u32;
            logged.push(Some(parts));
            match first.entry(a.key) {
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(index);
                }
                std::collections::hash_map::Entry::Occupied(_) => copies.entry(a.key).or_default().push(index),
            }
            assignments.push(a);
        }
        Err(reason) => *left_out.entry(reason.to_string()).or_default() += 1,
    })?;
    inputs.insert("assignments".to_owned(), source);
    drop(interned);
    let history = match &options.weights {
        Some(path) => {
            let mut history = WeightHistory::default();
            let source = each_line(path, "weight records", progress, |line| history.add_line(line))?;
            inputs.insert("weights".to_owned(), source);
            history.sorted()
        }
        None => WeightHistory::default(),
    };
    // Everything in event-time order, as a replay of well-ordered files takes it: each tick's
    // records, then the tick settles. So an id used again after its first copy resolved is a
    // trial again, and attribution holds only what is pending.
    let mut order: Vec<(u64, Input)> = Vec::with_capacity(registrations.len() + outcomes.len() + assignments.len());
    order.extend(registrations.iter().enumerate().map(|(i, r)| (ticks.tick_of(r.ts), Input::Registration(i as u32))));
    order.extend(outcomes.iter().enumerate().map(|(i, o)| (ticks.tick_of(o.ts), Input::Outcome(i as u32))));
    order.extend(assignments.iter().enumerate().map(|(i, a)| (ticks.tick_of(a.ts), Input::Assignment(i as u32))));
    order.sort_by_key(|(tick, _)| *tick);
    // Registrations of a tick in event-time order, as the dataflow applies them.
    let max_tick = order.last().map(|(tick, _)| *tick);
    let mut state = Attribution::new(rules, 0);
    for name in names.drain(..) {
        state.name(name);
    }
    let mut rows: Vec<DatasetRow> = Vec::with_capacity(assignments.len());
    let (mut invalid_propensity, mut unmatched) = (0u64, 0u64);
    let mut on_resolved = |key: AssignmentKey, ts: i64, resolved: banditflow_core::attribution::Resolved| {
        let candidates = first.get(&key).copied().into_iter().chain(copies.get(&key).into_iter().flatten().copied());
        // The copy attribution kept: the first line at its ts, entity and arm not used yet.
        let held = candidates.filter(|i| assignments[*i as usize].ts == ts).find(|i| {
            logged[*i as usize].as_ref().is_some_and(|l| entity_id_of(&l.entity_id) == resolved.entity && arm_id_of(&l.arm_id) == resolved.arm)
        });
        let Some(l) = held.and_then(|i| logged[i as usize].take()) else {
            unmatched += 1;
            return;
        };
        let logged_propensity = l.propensity.filter(|p| *p > 0.0 && *p <= 1.0);
        if l.propensity.is_some() && logged_propensity.is_none() {
            invalid_propensity += 1;
        }
        let (propensity, propensity_source) = match (logged_propensity, l.propensity, l.fallback) {
            (Some(p), _, _) => (Some(p), Some(rows::PropensitySource::Assignment)),
            // A logged value outside (0, 1], or a fallback that did not log its propensity:
            // no record says what serving drew from.
            (None, Some(_), _) | (None, None, Some(true)) => (None, None),
            (None, None, _) => match history.propensity(&l.entity_id, &l.arm_id, ts, l.weights_version) {
                Some((p, source)) => (Some(p), Some(source)),
                None => (None, None),
            },
        };
        rows.push(DatasetRow {
            assignment_id: l.assignment_id,
            entity_id: l.entity_id,
            arm_id: l.arm_id,
            unit_id: l.unit_id,
            ts,
            resolved_at: ticks.as_of(resolved.enter),
            reward: u8::from(resolved.success),
            weights_version: l.weights_version,
            propensity,
            propensity_source,
            fallback: l.fallback,
            sticky: l.sticky,
            context: l.context,
        });
    };
    let mut i = 0;
    while i < order.len() {
        let tick = order[i].0;
        state.settle_each(tick, &mut counters, &mut on_resolved);
        let end = i + order[i..].partition_point(|(t, _)| *t == tick);
        let mut registered: Vec<&banditflow_core::event::Registration> = order[i..end]
            .iter()
            .filter_map(|(_, input)| match input {
                Input::Registration(r) => Some(&registrations[*r as usize]),
                _ => None,
            })
            .collect();
        registered.sort_by_key(|r| (r.ts, r.entity, r.arm, r.active));
        for r in registered {
            state.register(r);
        }
        for (_, input) in &order[i..end] {
            match input {
                Input::Registration(_) => {}
                Input::Outcome(o) => {
                    let _ = state.outcome(outcomes[*o as usize], &mut counters);
                }
                Input::Assignment(a) => {
                    let _ = state.assignment(assignments[*a as usize], tick, &mut counters);
                }
            }
        }
        i = end;
    }
    // Every tick up to the last event's is complete, as at the end of a replay.
    if let Some(last) = max_tick {
        state.settle_each(last + 1, &mut counters, &mut on_resolved);
    }
    drop((logged, first, copies, order));
    rows.sort_unstable_by(|a, b| (&a.entity_id, a.ts, &a.assignment_id).cmp(&(&b.entity_id, b.ts, &b.assignment_id)));
    for (why, n) in [
        ("unresolved", state.pending_assignments() as u64),
        ("retired_arm", counters.retired_arm),
        ("duplicate", counters.duplicate),
        ("conflict", counters.conflict),
        ("unmatched", unmatched),
    ] {
        if n > 0 {
            left_out.insert(why.into(), n);
        }
    }
    for (reason, n) in &counters.malformed {
        // The outcome cap refuses outcomes; the others are assignments attribution could not hold.
        if reason == "max_outcomes_per_assignment" {
            refused.insert(format!("outcomes: {reason}"), *n);
        } else {
            left_out.insert(reason.clone(), *n);
        }
    }
    let entities = write_parts(&options.out, &rows)?;
    let copy = options.out.join(ARMS_COPY);
    match &options.arms {
        Some(arms) => {
            std::fs::copy(arms, &copy).map_err(|e| output_error(&copy)(e.to_string()))?;
        }
        None if copy.exists() => std::fs::remove_file(&copy).map_err(|e| output_error(&copy)(e.to_string()))?,
        None => {}
    }
    let manifest = Manifest {
        tool: format!("banditflow {}", env!("CARGO_PKG_VERSION")),
        dataflow: job.name.clone(),
        tick_ms: job.tick_ms,
        attribution_ms: job.attribution_ms,
        job: Source::of(&options.dataflow).map_err(input_error(&options.dataflow))?,
        inputs,
        rows: rows.len() as u64,
        null_propensity: rows.iter().filter(|r| r.propensity.is_none()).count() as u64,
        invalid_propensity,
        time_range: rows.iter().map(|r| r.ts).min().zip(rows.iter().map(|r| r.ts).max()).map(|(a, b)| [a, b]),
        left_out,
        refused_lines: refused,
        unreadable_weight_lines: history.unreadable,
        entities,
    };
    let path = options.out.join(MANIFEST);
    let json = serde_json::to_string_pretty(&manifest).map_err(|e| output_error(&path)(e.to_string()))?;
    std::fs::write(&path, json + "\n").map_err(|e| output_error(&path)(e.to_string()))?;
    Ok(manifest)
}

/// The one shared copy of `name`.
fn intern(table: &mut rustc_hash::FxHashSet<std::sync::Arc<str>>, name: std::sync::Arc<str>) -> std::sync::Arc<str> {
    match table.get(&name) {
        Some(shared) => shared.clone(),
        None => {
            table.insert(name.clone());
            name
        }
    }
}

/// A file name for an entity id: bytes outside `[a-z0-9._-]` (upper case included, for file
/// systems that ignore case) as `%XX`; a name that would pass 200 bytes is cut and ends in
/// a hash of the whole id instead. Distinct ids get distinct names.
pub fn file_stem(entity: &str) -> String {
    let mut stem = String::with_capacity(entity.len());
    for b in entity.bytes() {
        if b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-') {
            stem.push(b as char);
        } else {
            stem.push_str(&format!("%{b:02X}"));
        }
    }
    if stem.len() > 200 {
        // Escapes are ASCII: any byte offset is a char boundary.
        stem.truncate(180);
        stem.push_str(&format!("~{:016x}", xxhash_rust::xxh3::xxh3_64(entity.as_bytes())));
    }
    stem
}

/// Writes each entity's rows (sorted by entity) under `out/entities/` as Parquet and JSON
/// lines.
fn write_parts(out: &Path, rows: &[DatasetRow]) -> Result<Vec<EntityPart>, ExportError> {
    let dir = out.join("entities");
    std::fs::create_dir_all(&dir).map_err(|e| output_error(&dir)(e.to_string()))?;
    // An earlier export's parts would read as part of this one.
    for entry in std::fs::read_dir(&dir).map_err(|e| output_error(&dir)(e.to_string()))?.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "parquet" || e == "jsonl") {
            std::fs::remove_file(&path).map_err(|e| output_error(&path)(e.to_string()))?;
        }
    }
    let mut parts = Vec::new();
    for group in rows.chunk_by(|a, b| a.entity_id == b.entity_id) {
        let entity = group[0].entity_id.to_string();
        let stem = file_stem(&entity);
        let (parquet, jsonl) = (format!("entities/{stem}.parquet"), format!("entities/{stem}.jsonl"));
        let path = out.join(&parquet);
        parquet::write(&path, group).map_err(|e| output_error(&path)(e.to_string()))?;
        let path = out.join(&jsonl);
        let written = File::create(&path).and_then(|file| {
            let mut w = BufWriter::with_capacity(1 << 20, file);
            for row in group {
                serde_json::to_writer(&mut w, row)?;
                w.write_all(b"\n")?;
            }
            w.flush()
        });
        written.map_err(|e| output_error(&path)(e.to_string()))?;
        let mut propensity_sources = BTreeMap::new();
        for row in group {
            if let Some(source) = row.propensity_source {
                *propensity_sources.entry(source.name().to_owned()).or_default() += 1;
            }
        }
        parts.push(EntityPart {
            entity_id: entity,
            rows: group.len() as u64,
            rewards: group.iter().filter(|r| r.reward == 1).count() as u64,
            null_propensity: group.iter().filter(|r| r.propensity.is_none()).count() as u64,
            propensity_sources,
            time_range: [group[0].ts, group[group.len() - 1].ts],
            parquet,
            jsonl,
        });
    }
    Ok(parts)
}
