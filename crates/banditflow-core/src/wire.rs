//! Wire records in, events out: decoding and the limits a record must keep.
//!
//! Decoding borrows string fields from the input line (no allocation per record), checks the
//! limits of `docs/semantics.md` ("Bad input"), and hands back fixed-size [`event`]s; names
//! not seen before by a decoder are announced once. A record that cannot be applied gets a
//! [`Malformed`] reason, which is its counter label.
//!
//! [`event`]: crate::event

use std::borrow::Cow;

use rustc_hash::FxHashSet;
use serde::Deserialize;

use crate::counters::Counters;
use crate::event::{arm_id_of, entity_id_of, Assignment, AssignmentKey, Catalog, Event, Name, NameId, Outcome, Registration};

/// Longest id (assignment, entity, arm) accepted, in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// Longest record accepted, in bytes.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

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
    #[serde(default)]
    weights_version: Option<WeightsVersion>,
}

/// `weights_version` as serving wrote it: a version, or anything else (not read: the
/// assignment still counts, it only cannot be matched to a record by version).
#[derive(Deserialize)]
#[serde(untagged)]
enum WeightsVersion {
    Version(u64),
    Other(serde::de::IgnoredAny),
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

/// A decoded record on its way from a source to be split into events and the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// An assignment or outcome.
    Event(Event),
    /// A name or an arm registry record.
    Catalog(Catalog),
}

/// Which records a source line holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// An assignment (`schemas/assignment.schema.json`).
    Assignment,
    /// An outcome (`schemas/outcome.schema.json`).
    Outcome,
    /// An arm registry record (`schemas/arm.schema.json`).
    Registration,
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
        let weights_version = match wire.weights_version {
            Some(WeightsVersion::Version(v)) => v,
            Some(WeightsVersion::Other(_)) | None => 0,
        };
        Ok(Assignment { key: AssignmentKey::of(&wire.assignment_id), entity, arm, ts: wire.ts, weights_version })
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

    /// Decodes a source line of `kind`, counting it as read and, when it cannot be applied,
    /// why not (`ignored_kind`, malformed by reason); returns the record with its `ts`.
    pub fn decode(&mut self, kind: RecordKind, line: &[u8], now_ms: i64, names: &mut Vec<Name>, counters: &mut Counters) -> Option<(i64, Decoded)> {
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
            Ok(Some(record)) => {
                if kind == RecordKind::Registration {
                    counters.registrations_applied += 1;
                }
                Some(record)
            }
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
