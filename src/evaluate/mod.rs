//! `banditflow evaluate`: what candidate job files would have done on an exported dataset.
//!
//! For each candidate, the weights it would have published ([`candidate::published`], the
//! same dataflow over the logged rows), then per entity and window the off-policy estimates of
//! its expected reward ([`banditflow_core::evaluation`]): each row weighted by the candidate's
//! probability of the served arm (its newest record before the row's `ts`; uniform over the
//! entity's arms before its first record) over the logged propensity, with each arm's mean
//! reward in the window as the doubly robust reward model.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use banditflow_core::evaluation::{arm_means, estimate, windows, Estimate, LoggedRow};
use banditflow_core::record::WeightRecord;
use serde::{Deserialize, Serialize};

pub mod candidate;
pub mod dataset;
pub mod table;

use dataset::{Dataset, EntityRows};

/// An effective sample size below this gets a warning: the normal intervals are unreliable.
pub const SMALL_ESS: f64 = 100.0;

/// The most windows one evaluation computes per entity and candidate.
pub const MAX_WINDOWS: u64 = 100_000;

/// What to evaluate.
#[derive(Clone, Debug)]
pub struct EvaluateOptions {
    /// The dataset's folder (`banditflow export --out`).
    pub dataset: PathBuf,
    /// Candidate job files.
    pub candidates: Vec<PathBuf>,
    /// The running window's length, ms (`None`: one window of every row).
    pub window_ms: Option<u64>,
    /// How far apart window ends are, ms (the window's length unless given).
    pub step_ms: Option<u64>,
    /// Weights above this are counted in `above_clip`.
    pub clip: f64,
    /// Where to write each candidate's weight records (`<candidate>.jsonl`), if anywhere.
    pub weights_out: Option<PathBuf>,
}

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    /// The dataset.
    #[error("dataset: {0}")]
    Dataset(String),
    /// The options do not make sense.
    #[error("{0}")]
    Options(String),
    /// A candidate job file.
    #[error(transparent)]
    Candidate(#[from] banditflow_core::config::ConfigError),
    /// A candidate's dataflow.
    #[error("candidate {candidate}: {message}")]
    Dataflow {
        /// Which.
        candidate: String,
        /// Why.
        message: String,
    },
    /// A candidate's records could not be written.
    #[error("cannot write {path}: {source}")]
    Output {
        /// Which file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// One (entity, candidate, window) of an evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvaluationRow {
    /// The entity.
    pub entity_id: String,
    /// The candidate (its file name without `.toml`).
    pub candidate: String,
    /// The window's first millisecond.
    pub window_start: i64,
    /// The millisecond after its last: rows with `window_start <= ts < window_end`.
    pub window_end: i64,
    /// Rows weighed (those with a positive logged propensity).
    pub rows: u64,
    /// Rows left out for an unknown propensity.
    pub no_propensity: u64,
    /// Rows left out for a logged propensity of 0 (the logging policy could not have served
    /// them: nothing can be said of them).
    pub zero_propensity: u64,
    /// Rows left out because a sticky store kept the unit's arm: their propensity is not the
    /// probability the unit had.
    #[serde(default)]
    pub sticky: u64,
    /// Rows served before the candidate's first record, scored as a uniform split.
    pub before_candidate: u64,
    /// The logged policy's observed mean reward.
    pub logged_reward: Option<f64>,
    /// The same with its interval.
    pub logged: Option<Estimate>,
    /// Inverse propensity scoring.
    pub ips: Option<Estimate>,
    /// Self-normalised IPS.
    pub snips: Option<Estimate>,
    /// Doubly robust.
    pub dr: Option<Estimate>,
    /// Effective sample size `(Σw)²/Σw²`.
    pub ess: f64,
    /// Share of rows with a weight above `clip`.
    pub above_clip: f64,
    /// The clip threshold.
    pub clip: f64,
    /// What to be careful of.
    pub warnings: Vec<String>,
}

/// A candidate's name: its file name without `.toml`.
pub fn candidate_name(path: &Path) -> String {
    path.file_stem().map_or_else(|| path.display().to_string(), |s| s.to_string_lossy().into_owned())
}

/// Progress: what is being done.
pub type Progress = dyn Fn(&str);

/// Runs every candidate over the dataset and scores it per entity and window.
pub fn evaluate(options: &EvaluateOptions, progress: &Progress) -> Result<Vec<EvaluationRow>, EvaluateError> {
    if !(options.clip.is_finite() && options.clip > 0.0) {
        return Err(EvaluateError::Options(format!("--clip must be a positive number, not {}", options.clip)));
    }
    let mut names: Vec<String> = options.candidates.iter().map(|p| candidate_name(p)).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(EvaluateError::Options(format!("two candidates are named `{}` (their file name): rename one", pair[0])));
    }
    progress(&format!("reading {}", options.dataset.display()));
    let dataset = Arc::new(Dataset::read(&options.dataset).map_err(EvaluateError::Dataset)?);
    if let (Some([first, last]), Some(window)) = (dataset.manifest.time_range, options.window_ms) {
        let step = options.step_ms.unwrap_or(window).max(1);
        let count = (last - first).max(0) as u64 / step + 1;
        if count > MAX_WINDOWS {
            return Err(EvaluateError::Options(format!("--window and --step give {count} windows over the dataset's range; at most {MAX_WINDOWS}: take a longer --step")));
        }
    }
    let rows: u64 = dataset.entities.iter().map(|e| e.rows.len() as u64).sum();
    let mut out = Vec::new();
    for path in &options.candidates {
        let name = candidate_name(path);
        let job = crate::deployment::Job::load(path)?.dataflow;
        progress(&format!("candidate {name}: its dataflow over {rows} rows"));
        let (records, refused) = candidate::published(&job, &dataset).map_err(|message| EvaluateError::Dataflow { candidate: name.clone(), message })?;
        if refused > 0 {
            progress(&format!("candidate {name}: {refused} lines of the dataset's arm registry refused (its arms may differ from the logged job's)"));
        }
        if let Some(dir) = &options.weights_out {
            write_records(dir, &name, &records)?;
        }
        progress(&format!("candidate {name}: {} records; scoring", records.len()));
        let mut by_entity: std::collections::HashMap<String, Vec<WeightRecord>> = std::collections::HashMap::new();
        for record in records {
            by_entity.entry(record.entity_id.clone()).or_default().push(record);
        }
        for entity in &dataset.entities {
            out.extend(score(entity, &name, by_entity.get(&entity.entity_id).map_or(&[], Vec::as_slice), options));
        }
    }
    Ok(out)
}

fn write_records(dir: &Path, name: &str, records: &[WeightRecord]) -> Result<(), EvaluateError> {
    let path = dir.join(format!("{name}.jsonl"));
    let error = |source| EvaluateError::Output { path: path.display().to_string(), source };
    std::fs::create_dir_all(dir).map_err(error)?;
    let mut text = String::new();
    for record in records {
        text.push_str(&serde_json::to_string(record).map_err(|e| error(e.into()))?);
        text.push('\n');
    }
    std::fs::write(&path, text).map_err(error)
}

/// The candidate's probabilities over `arms` from each of its records of an entity, by `as_of`.
fn timeline(records: &[WeightRecord], arms: &[&str]) -> Vec<(i64, Vec<f64>)> {
    let mut timeline: Vec<(i64, Vec<f64>)> = records
        .iter()
        .map(|r| (r.as_of, arms.iter().map(|a| r.arms.iter().find(|w| w.arm_id == *a).map_or(0.0, |w| w.weight)).collect()))
        .collect();
    timeline.sort_by_key(|(as_of, _)| *as_of);
    timeline
}

/// One entity's rows scored for one candidate (`records`: its records of the entity), a row
/// per window.
pub fn score(entity: &EntityRows, candidate: &str, records: &[WeightRecord], options: &EvaluateOptions) -> Vec<EvaluationRow> {
    let (Some(first), Some(last)) = (entity.rows.first(), entity.rows.last()) else { return Vec::new() };
    let mut arms: Vec<&str> = entity.rows.iter().map(|r| &*r.arm_id).collect();
    arms.extend(records.iter().flat_map(|r| r.arms.iter().map(|a| a.arm_id.as_str())));
    arms.sort_unstable();
    arms.dedup();
    let timeline = timeline(records, &arms);
    // Before the candidate's first record: a uniform split over the arms it first lists (what
    // serving's uniform fallback would serve), else over the entity's logged arms.
    let first_arms: Vec<usize> = records.iter().min_by_key(|r| r.as_of).map_or_else(Vec::new, |r| r.arms.iter().filter_map(|a| arms.binary_search(&a.arm_id.as_str()).ok()).collect());
    let uniform: Vec<f64> = if first_arms.is_empty() {
        let logged: std::collections::BTreeSet<&str> = entity.rows.iter().map(|r| &*r.arm_id).collect();
        arms.iter().map(|a| if logged.contains(a) { 1.0 / logged.len() as f64 } else { 0.0 }).collect()
    } else {
        (0..arms.len()).map(|i| if first_arms.contains(&i) { 1.0 / first_arms.len() as f64 } else { 0.0 }).collect()
    };
    // Per row: the served arm's index and the candidate's probabilities (None: before its first record).
    let served: Vec<(usize, Option<usize>)> = entity
        .rows
        .iter()
        .map(|r| {
            let arm = arms.binary_search(&&*r.arm_id).unwrap_or(0);
            (arm, timeline.partition_point(|(as_of, _)| *as_of < r.ts).checked_sub(1))
        })
        .collect();
    let mut out = Vec::new();
    for (start, end) in windows(first.ts, last.ts, options.window_ms, options.step_ms.or(options.window_ms).unwrap_or(1)) {
        let lo = entity.rows.partition_point(|r| r.ts < start);
        let hi = entity.rows.partition_point(|r| r.ts < end);
        let in_window = lo..hi;
        let weighable = |r: &crate::export::rows::DatasetRow| r.sticky != Some(true) && r.propensity.is_some_and(|p| p > 0.0);
        let usable: Vec<usize> = in_window.clone().filter(|i| weighable(&entity.rows[*i])).collect();
        let model = arm_means(usable.iter().map(|i| (served[*i].0, f64::from(entity.rows[*i].reward))), arms.len());
        let views: Vec<LoggedRow<'_>> = usable
            .iter()
            .map(|i| {
                let row = &entity.rows[*i];
                let (arm, record) = served[*i];
                LoggedRow { reward: f64::from(row.reward), arm, propensity: row.propensity.unwrap_or(1.0), candidate: record.map_or(&uniform, |k| &timeline[k].1), model: &model }
            })
            .collect();
        let estimates = estimate(&views, options.clip);
        let sticky = in_window.clone().filter(|i| entity.rows[*i].sticky == Some(true)).count() as u64;
        let no_propensity = in_window.clone().filter(|i| entity.rows[*i].sticky != Some(true) && entity.rows[*i].propensity.is_none()).count() as u64;
        let zero_propensity = (hi - lo) as u64 - usable.len() as u64 - no_propensity - sticky;
        let before_candidate = usable.iter().filter(|i| served[**i].1.is_none()).count() as u64;
        let mut warnings = Vec::new();
        match &estimates {
            None => warnings.push("no row with a logged propensity in this window: nothing to estimate".to_owned()),
            Some(e) if e.ess < SMALL_ESS => warnings.push(format!("small effective sample size ({:.1} of {} rows): the intervals are unreliable", e.ess, e.rows)),
            Some(_) => {}
        }
        if no_propensity > 0 {
            warnings.push(format!("{no_propensity} rows without a propensity left out"));
        }
        if zero_propensity > 0 {
            warnings.push(format!("{zero_propensity} rows with a logged propensity of 0 left out"));
        }
        if sticky > 0 {
            warnings.push(format!("{sticky} rows kept on their arm by a sticky store left out (their propensity is not the unit's)"));
        }
        out.push(EvaluationRow {
            entity_id: entity.entity_id.clone(),
            candidate: candidate.to_owned(),
            window_start: start,
            window_end: end,
            rows: usable.len() as u64,
            no_propensity,
            zero_propensity,
            sticky,
            before_candidate,
            logged_reward: estimates.map(|e| e.logged_reward),
            logged: estimates.map(|e| e.logged),
            ips: estimates.map(|e| e.ips),
            snips: estimates.map(|e| e.snips),
            dr: estimates.map(|e| e.dr),
            ess: estimates.map_or(0.0, |e| e.ess),
            above_clip: estimates.map_or(0.0, |e| e.above_clip),
            clip: options.clip,
            warnings,
        });
    }
    out
}
