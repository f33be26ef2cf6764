//! What a report reads: weight records and decision events as JSON lines (the formats of
//! `schemas/weights.schema.json` and `schemas/decision.schema.json`), decoded by the same
//! types as every other reader, grouped per entity, filtered by entity and time; and, when
//! given, the assignment log for the cumulative counts ([`super::served`]) and an offline
//! evaluation (`banditflow evaluate --format json`). A line that does
//! not decode is counted, not fatal.

use std::collections::BTreeMap;
use std::path::Path;

use banditflow_core::record::{DecisionEvent, WeightRecord};

use crate::evaluate::EvaluationRow;

use super::lines::{for_each_line, InputError};
use super::served::{self, Served, ServedTally};

/// Which records a report covers.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Only these entities (all when empty).
    pub entities: Vec<String>,
    /// Only records with `as_of` at or after this (ms since the epoch).
    pub from: Option<i64>,
    /// Only records with `as_of` at or before this.
    pub to: Option<i64>,
}

impl Selection {
    fn keeps(&self, entity: &str, as_of: i64) -> bool {
        (self.entities.is_empty() || self.entities.iter().any(|e| e == entity)) && self.from.is_none_or(|f| as_of >= f) && self.to.is_none_or(|t| as_of <= t)
    }
}

/// One entity's records and decisions, in `as_of` order.
#[derive(Clone, Debug, Default)]
pub struct EntityHistory {
    /// Its weight records.
    pub records: Vec<WeightRecord>,
    /// Its decision events.
    pub decisions: Vec<DecisionEvent>,
    /// Per arm, when its assignments were served, sorted (empty without an assignment log).
    pub served: BTreeMap<String, Vec<i64>>,
}

/// Everything a report shows.
#[derive(Clone, Debug, Default)]
pub struct ReportInput {
    /// Per entity, by `entity_id`.
    pub entities: BTreeMap<String, EntityHistory>,
    /// Lines read from the weights file.
    pub lines: u64,
    /// Of those, lines that were not a weight record (skipped).
    pub skipped: u64,
    /// Lines of the decisions file that were not a decision event (skipped).
    pub skipped_decisions: u64,
    /// The dataflows that wrote the records (usually one).
    pub dataflows: Vec<String>,
    /// What the assignment log held, when one was read.
    pub assignments: Option<ServedTally>,
    /// An offline evaluation to show beside the records, when one was read.
    pub evaluation: Option<Evaluation>,
}

impl ReportInput {
    /// Weight records kept, over all entities.
    pub fn records(&self) -> usize {
        self.entities.values().map(|e| e.records.len()).sum()
    }

    /// A report of records and decisions already in memory (the demo's run), grouped per
    /// entity and in `as_of` order.
    pub fn of(records: Vec<WeightRecord>, decisions: Vec<DecisionEvent>) -> ReportInput {
        let mut input = ReportInput { lines: records.len() as u64, ..ReportInput::default() };
        for record in records {
            input.keep(record);
        }
        for event in decisions {
            input.entities.entry(event.entity_id.clone()).or_default().decisions.push(event);
        }
        input.order();
        input
    }

    /// The same input with the assignments `served` per entity and arm (what the demo served),
    /// for the cumulative counts.
    pub fn with_served(mut self, served: Served, tally: ServedTally) -> ReportInput {
        for (entity, arms) in served {
            if let Some(history) = self.entities.get_mut(&entity) {
                history.served = arms;
            }
        }
        self.assignments = Some(tally);
        self
    }

    /// The same input with the offline evaluation in `path` (`banditflow evaluate --format
    /// json`), for the entities `selection` covers.
    pub fn with_evaluation(mut self, path: &Path, selection: &Selection) -> Result<ReportInput, InputError> {
        self.evaluation = Some(read_evaluation(path, |entity| selection.entities.is_empty() || selection.entities.iter().any(|e| e == entity))?);
        Ok(self)
    }

    fn keep(&mut self, record: WeightRecord) {
        if !self.dataflows.contains(&record.dataflow) {
            self.dataflows.push(record.dataflow.clone());
        }
        self.entities.entry(record.entity_id.clone()).or_default().records.push(record);
    }

    /// Records and decisions in `as_of` order; entities without records left out.
    fn order(&mut self) {
        for history in self.entities.values_mut() {
            // Stable: records of one as_of keep their order (there is one per entity).
            history.records.sort_by_key(|r| r.as_of);
            history.decisions.sort_by_key(|d| d.as_of);
        }
        // An entity named only by decisions, without records in the range, has nothing to show.
        self.entities.retain(|_, h| !h.records.is_empty());
    }

    /// The first and last `as_of` kept.
    pub fn range(&self) -> Option<(i64, i64)> {
        let all = self.entities.values().flat_map(|e| e.records.iter().map(|r| r.as_of));
        all.fold(None, |range, t| Some(range.map_or((t, t), |(a, b): (i64, i64)| (a.min(t), b.max(t)))))
    }
}

/// An evaluation as the report reads it.
#[derive(Clone, Debug, Default)]
pub struct Evaluation {
    /// Per entity, its rows in window-end order.
    pub entities: BTreeMap<String, Vec<EvaluationRow>>,
    /// Lines that were not evaluation rows (skipped).
    pub skipped: u64,
}

/// Reads an evaluation file (`banditflow evaluate --format json`), keeping the entities `keep` says.
pub fn read_evaluation(path: &Path, keep: impl Fn(&str) -> bool) -> Result<Evaluation, InputError> {
    let mut evaluation = Evaluation::default();
    for_each_line(path, |line| match serde_json::from_str::<EvaluationRow>(line) {
        Ok(row) if keep(&row.entity_id) => evaluation.entities.entry(row.entity_id.clone()).or_default().push(row),
        Ok(_) => {}
        Err(_) => evaluation.skipped += 1,
    })?;
    for rows in evaluation.entities.values_mut() {
        rows.sort_by(|a, b| (a.window_end, &a.candidate).cmp(&(b.window_end, &b.candidate)));
    }
    Ok(evaluation)
}

/// Reads the weights file and, if given, the decisions file and the assignment log, keeping
/// what `selection` covers.
pub fn read(weights: &Path, decisions: Option<&Path>, assignments: Option<&Path>, selection: &Selection) -> Result<ReportInput, InputError> {
    let mut input = ReportInput::default();
    for_each_line(weights, |line| {
        input.lines += 1;
        match serde_json::from_str::<WeightRecord>(line) {
            Ok(record) if selection.keeps(&record.entity_id, record.as_of) => input.keep(record),
            Ok(_) => {}
            Err(_) => input.skipped += 1,
        }
    })?;
    if let Some(path) = decisions {
        for_each_line(path, |line| match serde_json::from_str::<DecisionEvent>(line) {
            Ok(event) if selection.keeps(&event.entity_id, event.as_of) => input.entities.entry(event.entity_id.clone()).or_default().decisions.push(event),
            Ok(_) => {}
            Err(_) => input.skipped_decisions += 1,
        })?;
    }
    input.order();
    if let Some(path) = assignments {
        // Every assignment before the range counts too: the totals are since the log began.
        let (served, tally) = served::read(path, |entity| input.entities.contains_key(entity))?;
        input = input.with_served(served, tally);
    }
    Ok(input)
}
