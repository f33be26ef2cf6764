//! Wire records in, fixed-size events out.
//!
//! Decoding borrows string fields from the input line, hashes the assignment id to 128
//! bits and entity/arm ids to 64 bits, and checks the limits of SEMANTICS.md ("Bad input").
//! Everything after this module is `Copy` and fixed-size; names travel separately.

use std::borrow::Cow;

use rustc_hash::FxHashSet;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_128, xxh3_64_with_seed};

/// Longest id (assignment, entity, arm) accepted, in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// Longest record accepted, in bytes.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// 128-bit hash of an `assignment_id`: the attribution join key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AssignmentKey(pub u64, pub u64);

impl AssignmentKey {
    /// The key of an assignment id.
    pub fn of(assignment_id: &str) -> Self {
        let h = xxh3_128(assignment_id.as_bytes());
        AssignmentKey((h >> 64) as u64, h as u64)
    }

    /// The hash timely's exchange routes the key by (its worker is this modulo the peers).
    pub fn route(&self) -> u64 {
        self.1
    }
}

/// 64-bit id of an entity or arm name; the names themselves travel as [`Name`] records.
pub type NameId = u64;

/// The id of an entity name.
pub fn entity_id_of(name: &str) -> NameId {
    xxh3_64_with_seed(name.as_bytes(), 0x656e_7469_7479)
}

/// The id of an arm name (arms are always used together with their entity).
pub fn arm_id_of(name: &str) -> NameId {
    xxh3_64_with_seed(name.as_bytes(), 0x0061_726d)
}

/// A name first seen by a source, sent once to every worker that prints records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Name {
    /// The hashed id.
    pub id: NameId,
    /// The entity or arm id as it appeared on the wire.
    pub text: String,
}

/// Serving chose `arm` of `entity` for the assignment `key` at event time `ts`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// Hash of the assignment id.
    pub key: AssignmentKey,
    /// Hash of the entity id.
    pub entity: NameId,
    /// Hash of the arm id.
    pub arm: NameId,
    /// Event time, ms since the epoch.
    pub ts: i64,
}

/// The assignment `key` converted at event time `ts` (with a counted kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Hash of the assignment id it rewards.
    pub key: AssignmentKey,
    /// Event time, ms since the epoch.
    pub ts: i64,
}

/// One decoded input record, as it travels to attribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// An assignment record.
    Assignment(Assignment),
    /// An outcome record.
    Outcome(Outcome),
}

impl Event {
    /// The attribution join key.
    pub fn key(&self) -> AssignmentKey {
        match self {
            Event::Assignment(a) => a.key,
            Event::Outcome(o) => o.key,
        }
    }

    /// Event time, ms since the epoch.
    pub fn ts(&self) -> i64 {
        match self {
            Event::Assignment(a) => a.ts,
            Event::Outcome(o) => o.ts,
        }
    }
}

/// An arm registry record: `arm` of `entity` may be served from `ts` on (`active`), or is
/// retired from `ts` on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// Hash of the entity id.
    pub entity: NameId,
    /// Hash of the arm id.
    pub arm: NameId,
    /// `active` (true) or `retired` (false).
    pub active: bool,
    /// Event time, ms since the epoch.
    pub ts: i64,
    /// The record's `metadata`, as JSON, passed through to the weight record.
    pub metadata: Option<String>,
}

/// What sources announce besides events, sent to every worker: names and arm registry
/// changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Catalog {
    /// A name first seen by a source.
    Name(Name),
    /// An arm registry record.
    Registration(Registration),
}

/// Why a record could not be applied; the reason is its counter label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Not valid JSON.
    #[error("invalid_json")]
    InvalidJson,
    /// A required field is missing or has the wrong type.
    #[error("invalid_field")]
    InvalidField,
    /// An id is empty or longer than [`MAX_ID_BYTES`].
    #[error("id_length")]
    IdLength,
    /// The record is longer than [`MAX_RECORD_BYTES`].
    #[error("record_too_large")]
    TooLarge,
    /// The event time is negative or too far ahead of wall-clock time.
    #[error("ts_out_of_range")]
    TsOutOfRange,
    /// An arm registry record whose `state` is neither `active` nor `retired`.
    #[error("invalid_state")]
    InvalidState,
}


#[derive(Deserialize)]
struct WireAssignment<'a> {
    #[serde(borrow)]
    assignment_id: Cow<'a, str>,
    #[serde(borrow)]
    entity_id: Cow<'a, str>,
    #[serde(borrow)]
    arm_id: Cow<'a, str>,
    ts: i64,
}

#[derive(Deserialize)]
struct WireOutcome<'a> {
    #[serde(borrow)]
    assignment_id: Cow<'a, str>,
    ts: i64,
    #[serde(borrow, default)]
    kind: Option<Kind<'a>>,
}

#[derive(Deserialize)]
struct WireRegistration<'a> {
    #[serde(borrow)]
    entity_id: Cow<'a, str>,
    #[serde(borrow)]
    arm_id: Cow<'a, str>,
    #[serde(borrow)]
    state: Cow<'a, str>,
    ts: i64,
    #[serde(default)]
    metadata: Option<serde_json::Value>,
}

/// An outcome kind, borrowed from the line (a bare `Option<Cow>` would always copy).
#[derive(Deserialize)]
struct Kind<'a>(#[serde(borrow)] Cow<'a, str>);

/// Decodes wire records of one source, remembering which names it has announced.
#[derive(Debug)]
pub struct Decoder {
    outcome_kinds: Option<FxHashSet<String>>,
    max_future_skew_ms: i64,
    announced: FxHashSet<NameId>,
}

fn classify(err: serde_json::Error) -> Malformed {
    match err.classify() {
        serde_json::error::Category::Data => Malformed::InvalidField,
        _ => Malformed::InvalidJson,
    }
}

fn check_id(id: &str) -> Result<(), Malformed> {
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        Err(Malformed::IdLength)
    } else {
        Ok(())
    }
}

impl Decoder {
    /// A decoder counting only `outcome_kinds` (all kinds when `None`) and rejecting event
    /// times more than `max_future_skew_ms` ahead of the wall clock passed to each call.
    pub fn new(outcome_kinds: Option<&[String]>, max_future_skew_ms: u64) -> Self {
        Decoder {
            outcome_kinds: outcome_kinds.map(|k| k.iter().cloned().collect()),
            max_future_skew_ms: max_future_skew_ms.min(i64::MAX as u64 / 2) as i64,
            announced: FxHashSet::default(),
        }
    }

    fn check_ts(&self, ts: i64, now_ms: i64) -> Result<(), Malformed> {
        if ts < 0 || ts > now_ms.saturating_add(self.max_future_skew_ms) {
            Err(Malformed::TsOutOfRange)
        } else {
            Ok(())
        }
    }

    fn announce(&mut self, id: NameId, text: &str, names: &mut Vec<Name>) {
        if self.announced.insert(id) {
            names.push(Name { id, text: text.to_owned() });
        }
    }

    /// Decodes one assignment line; names not seen before by this decoder go to `names`.
    pub fn assignment(&mut self, line: &[u8], now_ms: i64, names: &mut Vec<Name>) -> Result<Assignment, Malformed> {
        if line.len() > MAX_RECORD_BYTES {
            return Err(Malformed::TooLarge);
        }
        let wire: WireAssignment<'_> = serde_json::from_slice(line).map_err(classify)?;
        check_id(&wire.assignment_id)?;
        check_id(&wire.entity_id)?;
        check_id(&wire.arm_id)?;
        self.check_ts(wire.ts, now_ms)?;
        let entity = entity_id_of(&wire.entity_id);
        let arm = arm_id_of(&wire.arm_id);
        self.announce(entity, &wire.entity_id, names);
        self.announce(arm, &wire.arm_id, names);
        Ok(Assignment { key: AssignmentKey::of(&wire.assignment_id), entity, arm, ts: wire.ts })
    }

    /// Decodes one outcome line; `Ok(None)` for an outcome of a kind that does not count.
    pub fn outcome(&mut self, line: &[u8], now_ms: i64) -> Result<Option<Outcome>, Malformed> {
        if line.len() > MAX_RECORD_BYTES {
            return Err(Malformed::TooLarge);
        }
        let wire: WireOutcome<'_> = serde_json::from_slice(line).map_err(classify)?;
        check_id(&wire.assignment_id)?;
        self.check_ts(wire.ts, now_ms)?;
        if let Some(kinds) = &self.outcome_kinds {
            match &wire.kind {
                Some(Kind(kind)) if kinds.contains(kind.as_ref()) => {}
                _ => return Ok(None),
            }
        }
        Ok(Some(Outcome { key: AssignmentKey::of(&wire.assignment_id), ts: wire.ts }))
    }
}

impl Decoder {
    /// Decodes one arm registry line; names not seen before go to `names`.
    pub fn registration(&mut self, line: &[u8], now_ms: i64, names: &mut Vec<Name>) -> Result<Registration, Malformed> {
        if line.len() > MAX_RECORD_BYTES {
            return Err(Malformed::TooLarge);
        }
        let wire: WireRegistration<'_> = serde_json::from_slice(line).map_err(classify)?;
        check_id(&wire.entity_id)?;
        check_id(&wire.arm_id)?;
        self.check_ts(wire.ts, now_ms)?;
        let active = match wire.state.as_ref() {
            "active" => true,
            "retired" => false,
            _ => return Err(Malformed::InvalidState),
        };
        let entity = entity_id_of(&wire.entity_id);
        let arm = arm_id_of(&wire.arm_id);
        self.announce(entity, &wire.entity_id, names);
        self.announce(arm, &wire.arm_id, names);
        let metadata = wire.metadata.filter(|m| !m.is_null()).map(|m| m.to_string());
        Ok(Registration { entity, arm, active, ts: wire.ts, metadata })
    }
}

/// A decoded record on its way from a source to be split into events and the catalog.
pub(crate) enum Decoded {
    Event(Event),
    Catalog(Catalog),
}

/// Splits a source's output into the event stream and the catalog stream.
pub(crate) fn split_decoded<'scope>(
    decoded: timely::dataflow::Stream<'scope, u64, Vec<Decoded>>,
) -> (timely::dataflow::Stream<'scope, u64, Vec<Event>>, timely::dataflow::Stream<'scope, u64, Vec<Catalog>>) {
    use timely::dataflow::operators::core::OkErr;
    decoded.ok_err(|d| match d {
        Decoded::Event(e) => Ok(e),
        Decoded::Catalog(c) => Err(c),
    })
}

/// Hands a source's decoded records to the dataflow: the names first learnt in this batch at
/// `floor_tick`, then every record at its tick, one session per tick.
pub(crate) fn emit_decoded(
    batch: &mut Vec<(u64, Decoded)>,
    names: &mut Vec<Name>,
    floor_tick: u64,
    cap: &timely::dataflow::operators::Capability<u64>,
    output: &mut timely::dataflow::operators::generic::OutputBuilderSession<'_, u64, timely::container::CapacityContainerBuilder<Vec<Decoded>>>,
) {
    batch.extend(names.drain(..).map(|n| (floor_tick, Decoded::Catalog(Catalog::Name(n)))));
    batch.sort_by_key(|(t, _)| *t);
    let mut rest = batch.drain(..).peekable();
    while let Some((tick, first)) = rest.next() {
        let time = cap.delayed(&tick);
        let mut session = output.session(&time);
        session.give(first);
        while let Some((_, d)) = rest.next_if(|(t, _)| *t == tick) {
            session.give(d);
        }
    }
}

/// Which records a source line holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecordKind {
    Assignment,
    Outcome,
    Registration,
}

impl Decoder {
    /// Decodes a source line of `kind`, counting it as read and, when it cannot be applied,
    /// why not (`ignored_kind`, malformed by reason); returns the record with its `ts`.
    pub(crate) fn decode(&mut self, kind: RecordKind, line: &[u8], now_ms: i64, names: &mut Vec<Name>, counters: &mut crate::counters::Counters) -> Option<(i64, Decoded)> {
        let decoded = match kind {
            RecordKind::Assignment => {
                counters.assignments_read += 1;
                self.assignment(line, now_ms, names).map(|a| Some((a.ts, Decoded::Event(Event::Assignment(a)))))
            }
            RecordKind::Outcome => {
                counters.outcomes_read += 1;
                self.outcome(line, now_ms).map(|o| o.map(|o| (o.ts, Decoded::Event(Event::Outcome(o)))))
            }
            RecordKind::Registration => {
                counters.registrations_read += 1;
                self.registration(line, now_ms, names).map(|r| Some((r.ts, Decoded::Catalog(Catalog::Registration(r)))))
            }
        };
        match decoded {
            Ok(Some(record)) => Some(record),
            Ok(None) => {
                counters.ignored_kind += 1;
                None
            }
            Err(reason) => {
                counters.malformed(&reason.to_string());
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn assignment_decodes_and_announces_its_names_once() {
        let mut d = Decoder::new(None, 3_600_000);
        let mut names = Vec::new();
        let line = br#"{"assignment_id":"a1","entity_id":"e","arm_id":"x","unit_id":"u","ts":5,"extra":[1,2]}"#;
        let a = d.assignment(line, NOW, &mut names).expect("valid");
        assert_eq!(a.ts, 5);
        assert_eq!(a.key, AssignmentKey::of("a1"));
        assert_eq!(names.len(), 2);
        d.assignment(line, NOW, &mut names).expect("valid");
        assert_eq!(names.len(), 2);
    }

    #[test]
    fn escaped_strings_hash_like_their_unescaped_text() {
        let mut d = Decoder::new(None, 0);
        let mut names = Vec::new();
        let a = d.assignment(br#"{"assignment_id":"a\u0031","entity_id":"e","arm_id":"x","ts":5}"#, NOW, &mut names).expect("valid");
        assert_eq!(a.key, AssignmentKey::of("a1"));
    }

    #[test]
    fn bad_records_are_classified_by_reason() {
        let mut d = Decoder::new(None, 1000);
        let mut n = Vec::new();
        assert_eq!(d.assignment(b"{not json", NOW, &mut n), Err(Malformed::InvalidJson));
        assert_eq!(d.assignment(br#"{"entity_id":"e","arm_id":"x","ts":5}"#, NOW, &mut n), Err(Malformed::InvalidField));
        assert_eq!(d.assignment(br#"{"assignment_id":"a","entity_id":"e","arm_id":"x","ts":"5"}"#, NOW, &mut n), Err(Malformed::InvalidField));
        assert_eq!(d.assignment(br#"{"assignment_id":"","entity_id":"e","arm_id":"x","ts":5}"#, NOW, &mut n), Err(Malformed::IdLength));
        let long = format!(r#"{{"assignment_id":"a","entity_id":"{}","arm_id":"x","ts":5}}"#, "e".repeat(129));
        assert_eq!(d.assignment(long.as_bytes(), NOW, &mut n), Err(Malformed::IdLength));
        let future = format!(r#"{{"assignment_id":"a","entity_id":"e","arm_id":"x","ts":{}}}"#, NOW + 1001);
        assert_eq!(d.assignment(future.as_bytes(), NOW, &mut n), Err(Malformed::TsOutOfRange));
        assert_eq!(d.outcome(br#"{"assignment_id":"a","ts":-1}"#, NOW), Err(Malformed::TsOutOfRange));
        assert!(n.is_empty());
    }

    #[test]
    fn registration_decodes_state_and_passes_metadata_through() {
        let mut d = Decoder::new(None, 1000);
        let mut names = Vec::new();
        let r = d
            .registration(br#"{"entity_id":"e","arm_id":"m2","state":"retired","ts":7,"metadata":{"model":"v2"}}"#, NOW, &mut names)
            .expect("valid");
        assert_eq!((r.active, r.ts, r.metadata.as_deref()), (false, 7, Some(r#"{"model":"v2"}"#)));
        assert_eq!(
            d.registration(br#"{"entity_id":"e","arm_id":"m2","state":"paused","ts":7}"#, NOW, &mut names),
            Err(Malformed::InvalidState)
        );
    }

    #[test]
    fn outcome_of_an_uncounted_kind_is_ignored() {
        let kinds = vec!["click".to_string()];
        let mut d = Decoder::new(Some(&kinds), 1000);
        assert!(d.outcome(br#"{"assignment_id":"a","ts":1,"kind":"click"}"#, NOW).expect("valid").is_some());
        assert!(d.outcome(br#"{"assignment_id":"a","ts":1,"kind":"view"}"#, NOW).expect("valid").is_none());
        assert!(d.outcome(br#"{"assignment_id":"a","ts":1}"#, NOW).expect("valid").is_none());
        let mut all = Decoder::new(None, 1000);
        assert!(all.outcome(br#"{"assignment_id":"a","ts":1,"kind":"view"}"#, NOW).expect("valid").is_some());
    }
}
