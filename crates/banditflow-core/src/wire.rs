//! Wire records in, events out: decoding and the limits a record must keep.
//!
//! Decoding borrows string fields from the input line (no allocation per record), checks the
//! [`Limits`] and the rules of `docs/semantics.md` ("Bad input"), and hands back fixed-size
//! [`event`]s; names
//! not seen before by a decoder are announced once. A record that cannot be applied gets a
//! [`Malformed`] reason, which is its counter label.
//!
//! [`event`]: crate::event

use std::borrow::Cow;

use rustc_hash::FxHashSet;
use serde::Deserialize;

use crate::counters::Counters;
use crate::event::{arm_id_of, entity_id_of, Assignment, AssignmentKey, Catalog, Event, InitialWeight, Name, NameId, Outcome, Registration};
use crate::limits::Limits;

/// Why a record could not be applied; the reason is its counter label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Not valid JSON (a truncated line, a byte-order mark, a raw control character in a
    /// string, `NaN`).
    #[error("invalid_json")]
    InvalidJson,
    /// Not UTF-8.
    #[error("invalid_utf8")]
    InvalidUtf8,
    /// JSON, but not an object.
    #[error("not_an_object")]
    NotAnObject,
    /// A field the record is read by appears twice.
    #[error("duplicate_key")]
    DuplicateKey,
    /// A number too large for a double (`1e400`).
    #[error("non_finite_number")]
    NonFinite,
    /// A required field is missing or has the wrong type.
    #[error("invalid_field")]
    InvalidField,
    /// An id is empty or longer than [`Limits::max_id_bytes`].
    #[error("id_length")]
    IdLength,
    /// An id holds a control character (written escaped, such as `\u0000`).
    #[error("invalid_id")]
    InvalidId,
    /// The record is longer than [`Limits::max_record_bytes`].
    #[error("record_too_large")]
    TooLarge,
    /// The event time is negative or more than [`Limits::max_future_skew_ms`] ahead of the
    /// wall clock.
    #[error("ts_out_of_range")]
    TsOutOfRange,
    /// The event time is more than [`Limits::max_age_ms`] behind the wall clock (live only).
    #[error("ts_too_old")]
    TsTooOld,
    /// An arm registry record whose `state` is neither `active` nor `retired`.
    #[error("invalid_state")]
    InvalidState,
}

impl Malformed {
    /// Every reason, in the order `schemas/reject.schema.json` lists them.
    pub const ALL: [Malformed; 12] = [
        Malformed::InvalidJson,
        Malformed::InvalidUtf8,
        Malformed::NotAnObject,
        Malformed::DuplicateKey,
        Malformed::NonFinite,
        Malformed::InvalidField,
        Malformed::IdLength,
        Malformed::InvalidId,
        Malformed::TooLarge,
        Malformed::TsOutOfRange,
        Malformed::TsTooOld,
        Malformed::InvalidState,
    ];
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
    #[serde(default)]
    initial_weight: Option<f64>,
}

/// An outcome kind, borrowed from the line (a bare `Option<Cow>` would always copy).
#[derive(Deserialize)]
struct Kind<'a>(#[serde(borrow)] Cow<'a, str>);

/// Decodes wire records of one source, remembering which names it has announced (unless
/// [`Decoder::without_names`]).
#[derive(Debug)]
pub struct Decoder {
    outcome_kinds: Option<FxHashSet<String>>,
    limits: Limits,
    announced: FxHashSet<NameId>,
    announces: bool,
}

/// The entity and arm ids of an assignment or arm registry line the decoder accepted.
#[derive(Deserialize)]
struct WireNames<'a> {
    #[serde(borrow)]
    entity_id: Cow<'a, str>,
    #[serde(borrow)]
    arm_id: Cow<'a, str>,
}

/// The entity and arm names of an assignment or arm registry `line` that decoded: for the
/// admission operator, which announces the names of a pair when it admits it.
pub fn names_of(line: &[u8]) -> Option<[Name; 2]> {
    let text = std::str::from_utf8(line).ok()?;
    let wire: WireNames<'_> = serde_json::from_str(text).ok()?;
    Some([
        Name { id: entity_id_of(&wire.entity_id), text: wire.entity_id.into_owned() },
        Name { id: arm_id_of(&wire.arm_id), text: wire.arm_id.into_owned() },
    ])
}

/// Why `line` did not decode: serde_json's error, refined by a look at the line.
fn classify(err: &serde_json::Error, line: &str) -> Malformed {
    use serde_json::error::Category;
    // serde_json says these in its messages only; they are part of its stable output.
    let message = err.to_string();
    match err.classify() {
        _ if !line.trim_start().starts_with('{') && serde_json::from_str::<serde::de::IgnoredAny>(line).is_ok() => Malformed::NotAnObject,
        Category::Data if message.starts_with("duplicate field") => Malformed::DuplicateKey,
        Category::Data | Category::Syntax if message.starts_with("number out of range") => Malformed::NonFinite,
        Category::Data => Malformed::InvalidField,
        _ => Malformed::InvalidJson,
    }
}

/// Parses `line` as `T` once it is known to be UTF-8 within the size limit.
fn parse<'a, T: Deserialize<'a>>(line: &'a [u8], limits: &Limits) -> Result<T, Malformed> {
    if line.len() > limits.max_record_bytes {
        return Err(Malformed::TooLarge);
    }
    // Checked once for the whole line (serde_json leaves the strings it skips unchecked);
    // parsing a `str` then skips serde_json's own check of the strings it reads.
    let text = std::str::from_utf8(line).map_err(|_| Malformed::InvalidUtf8)?;
    serde_json::from_str(text).map_err(|e| classify(&e, text))
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
    /// A decoder counting only `outcome_kinds` (all kinds when `None`) and refusing records
    /// beyond `limits`, times measured against the wall clock passed to each call.
    pub fn new(outcome_kinds: Option<&[String]>, limits: Limits) -> Self {
        Decoder { outcome_kinds: outcome_kinds.map(|k| k.iter().cloned().collect()), limits, announced: FxHashSet::default(), announces: true }
    }

    /// The same decoder announcing no names and remembering none: for the dataflow's sources,
    /// whose names admission announces (so a flood of ids grows no table here).
    #[must_use]
    pub fn without_names(self) -> Self {
        Decoder { announces: false, ..self }
    }

    fn check_id(&self, id: &str) -> Result<(), Malformed> {
        if id.is_empty() || id.len() > self.limits.max_id_bytes {
            Err(Malformed::IdLength)
        } else if id.chars().any(char::is_control) {
            Err(Malformed::InvalidId)
        } else {
            Ok(())
        }
    }

    fn check_ts(&self, ts: i64, now_ms: i64) -> Result<(), Malformed> {
        self.check_ts_aged(ts, now_ms, self.limits.max_age_ms)
    }

    /// [`Decoder::check_ts`] with `max_age` given (`None`: any age).
    fn check_ts_aged(&self, ts: i64, now_ms: i64, max_age_ms: Option<u64>) -> Result<(), Malformed> {
        let skew = self.limits.max_future_skew_ms.min(i64::MAX as u64 / 2) as i64;
        if ts < 0 || ts > now_ms.saturating_add(skew) {
            Err(Malformed::TsOutOfRange)
        } else if max_age_ms.is_some_and(|age| ts < now_ms.saturating_sub(age.min(i64::MAX as u64 / 2) as i64)) {
            Err(Malformed::TsTooOld)
        } else {
            Ok(())
        }
    }

    fn announce(&mut self, id: NameId, text: &str, names: &mut Vec<Name>) {
        if self.announces && self.announced.insert(id) {
            names.push(Name { id, text: text.to_owned() });
        }
    }

    /// Decodes one assignment line; names not seen before by this decoder go to `names`.
    pub fn assignment(&mut self, line: &[u8], now_ms: i64, names: &mut Vec<Name>) -> Result<Assignment, Malformed> {
        let wire: WireAssignment<'_> = parse(line, &self.limits)?;
        self.check_id(&wire.assignment_id)?;
        self.check_id(&wire.entity_id)?;
        self.check_id(&wire.arm_id)?;
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
        let wire: WireOutcome<'_> = parse(line, &self.limits)?;
        self.check_id(&wire.assignment_id)?;
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
        let wire: WireRegistration<'_> = parse(line, &self.limits)?;
        self.check_id(&wire.entity_id)?;
        self.check_id(&wire.arm_id)?;
        // The registry is a table, not a stream: an arm declared long ago still stands, so
        // `max_age` does not apply (the future bound does).
        self.check_ts_aged(wire.ts, now_ms, None)?;
        let active = match wire.state.as_ref() {
            "active" => true,
            "retired" => false,
            _ => return Err(Malformed::InvalidState),
        };
        // A share of the traffic: in (0, 1].
        let initial_weight = match wire.initial_weight {
            None => None,
            Some(w) => Some(InitialWeight::new(w).ok_or(Malformed::InvalidField)?),
        };
        let entity = entity_id_of(&wire.entity_id);
        let arm = arm_id_of(&wire.arm_id);
        self.announce(entity, &wire.entity_id, names);
        self.announce(arm, &wire.arm_id, names);
        let metadata = wire.metadata.filter(|m| !m.is_null()).map(|m| m.to_string());
        Ok(Registration { entity, arm, active, ts: wire.ts, metadata, initial_weight })
    }

    /// Decodes a source line of `kind`, counting it as read and, when it cannot be applied,
    /// why not (`ignored_kind`, malformed by reason); returns the record with its `ts`,
    /// `Ok(None)` for an outcome of a kind that does not count, or the reason it was refused.
    pub fn decode(&mut self, kind: RecordKind, line: &[u8], now_ms: i64, names: &mut Vec<Name>, counters: &mut Counters) -> Result<Option<(i64, Decoded)>, Malformed> {
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
        match &decoded {
            Ok(Some(_)) if kind == RecordKind::Registration => counters.registrations_applied += 1,
            Ok(Some(_)) => {}
            Ok(None) => counters.ignored_kind += 1,
            Err(reason) => counters.malformed(&reason.to_string()),
        }
        decoded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    /// The default limits with this future skew and no age bound.
    fn skew(max_future_skew_ms: u64) -> Limits {
        Limits { max_future_skew_ms, max_age_ms: None, ..Limits::default() }
    }

    #[test]
    fn assignment_decodes_and_announces_its_names_once() {
        let mut d = Decoder::new(None, skew(3_600_000));
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
        let mut d = Decoder::new(None, skew(0));
        let mut names = Vec::new();
        let a = d.assignment(br#"{"assignment_id":"a\u0031","entity_id":"e","arm_id":"x","ts":5}"#, NOW, &mut names).expect("valid");
        assert_eq!(a.key, AssignmentKey::of("a1"));
    }

    #[test]
    fn bad_records_are_classified_by_reason() {
        let mut d = Decoder::new(None, skew(1000));
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
        let mut d = Decoder::new(None, skew(1000));
        let mut names = Vec::new();
        let r = d
            .registration(br#"{"entity_id":"e","arm_id":"m2","state":"retired","ts":7,"metadata":{"model":"v2"}}"#, NOW, &mut names)
            .expect("valid");
        assert_eq!((r.active, r.ts, r.metadata.as_deref()), (false, 7, Some(r#"{"model":"v2"}"#)));
        assert_eq!(
            d.registration(br#"{"entity_id":"e","arm_id":"m2","state":"paused","ts":7}"#, NOW, &mut names),
            Err(Malformed::InvalidState)
        );
        let r = d.registration(br#"{"entity_id":"e","arm_id":"m3","state":"active","ts":7,"initial_weight":0.25}"#, NOW, &mut names).expect("valid");
        assert_eq!((r.initial_weight.map(InitialWeight::get), r.metadata), (Some(0.25), None));
        assert_eq!(r.initial_weight, InitialWeight::new(0.25));
        for bad in ["0", "-0.1", "1.5", "\"half\""] {
            let line = format!(r#"{{"entity_id":"e","arm_id":"m3","state":"active","ts":7,"initial_weight":{bad}}}"#);
            assert_eq!(d.registration(line.as_bytes(), NOW, &mut names), Err(Malformed::InvalidField), "{bad}");
        }
    }

    #[test]
    fn outcome_of_an_uncounted_kind_is_ignored() {
        let kinds = vec!["click".to_string()];
        let mut d = Decoder::new(Some(&kinds), skew(1000));
        assert!(d.outcome(br#"{"assignment_id":"a","ts":1,"kind":"click"}"#, NOW).expect("valid").is_some());
        assert!(d.outcome(br#"{"assignment_id":"a","ts":1,"kind":"view"}"#, NOW).expect("valid").is_none());
        assert!(d.outcome(br#"{"assignment_id":"a","ts":1}"#, NOW).expect("valid").is_none());
        let mut all = Decoder::new(None, skew(1000));
        assert!(all.outcome(br#"{"assignment_id":"a","ts":1,"kind":"view"}"#, NOW).expect("valid").is_some());
    }

    #[test]
    fn hostile_records_get_a_reason_each() {
        let mut d = Decoder::new(None, skew(1000));
        let mut n = Vec::new();
        let mut reason = |line: &[u8]| d.assignment(line, NOW, &mut n).err();
        assert_eq!(reason(b"{\"assignment_id\":\"a\xff\",\"entity_id\":\"e\",\"arm_id\":\"x\",\"ts\":5}"), Some(Malformed::InvalidUtf8));
        // Invalid UTF-8 in a field nobody reads is still not UTF-8.
        assert_eq!(reason(b"{\"assignment_id\":\"a\",\"entity_id\":\"e\",\"arm_id\":\"x\",\"ts\":5,\"note\":\"\xc3\x28\"}"), Some(Malformed::InvalidUtf8));
        assert_eq!(reason(br#"[1, 2]"#), Some(Malformed::NotAnObject));
        assert_eq!(reason(br#""a string""#), Some(Malformed::NotAnObject));
        assert_eq!(reason(br#"{"assignment_id":"a","entity_id":"e","arm_id":"x","ts":5,"ts":6}"#), Some(Malformed::DuplicateKey));
        assert_eq!(reason(br#"{"assignment_id":"a","entity_id":"e","arm_id":"x","ts":1e400}"#), Some(Malformed::NonFinite));
        assert_eq!(reason(br#"{"assignment_id":"a","entity_id":"e","arm_id":"x","ts":NaN}"#), Some(Malformed::InvalidJson));
        assert_eq!(reason(b"\xef\xbb\xbf{\"assignment_id\":\"a\",\"entity_id\":\"e\",\"arm_id\":\"x\",\"ts\":5}"), Some(Malformed::InvalidJson));
        assert_eq!(reason(br#"{"assignment_id":"a","entity_id":"e\u0000","arm_id":"x","ts":5}"#), Some(Malformed::InvalidId));
        assert_eq!(reason(b"{\"assignment_id\":\"a\",\"entity_id\":\"e\x01\",\"arm_id\":\"x\",\"ts\":5}"), Some(Malformed::InvalidJson));
        assert_eq!(reason(br#"{"assignment_id":"a","entity_id":"e","arm_id":"x","ts":5"#), Some(Malformed::InvalidJson));
        assert_eq!(reason(br#"{"assignment_id":"a","entity_id":"e","arm_id":"x","ts":5.5}"#), Some(Malformed::InvalidField));
        // An unknown field given twice is harmless: nothing reads it.
        assert_eq!(reason(br#"{"assignment_id":"a","entity_id":"e","arm_id":"x","ts":5,"u":1,"u":2}"#), None);
        let mut r = Decoder::new(None, skew(1000));
        let big = br#"{"entity_id":"e","arm_id":"x","state":"active","ts":5,"metadata":{"n":1e400}}"#;
        assert_eq!(r.registration(big, NOW, &mut n).err(), Some(Malformed::NonFinite));
    }

    #[test]
    fn limits_from_the_job_are_applied() {
        let limits = Limits { max_record_bytes: 80, max_id_bytes: 4, max_future_skew_ms: 10, max_age_ms: Some(1000), ..Limits::default() };
        let mut d = Decoder::new(None, limits);
        let mut n = Vec::new();
        let line = |id: &str, ts: i64| format!(r#"{{"assignment_id":"{id}","entity_id":"e","arm_id":"x","ts":{ts}}}"#);
        assert!(d.assignment(line("abcd", NOW).as_bytes(), NOW, &mut n).is_ok());
        assert_eq!(d.assignment(line("abcde", NOW).as_bytes(), NOW, &mut n), Err(Malformed::IdLength));
        assert_eq!(d.assignment(line("a", NOW + 11).as_bytes(), NOW, &mut n), Err(Malformed::TsOutOfRange));
        assert_eq!(d.assignment(line("a", NOW - 1001).as_bytes(), NOW, &mut n), Err(Malformed::TsTooOld));
        // An arm registry record of any age stands (but not one from the future).
        let registry = |ts: i64| format!(r#"{{"entity_id":"e","arm_id":"a","state":"active","ts":{ts}}}"#);
        assert!(d.registration(registry(NOW - 1_000_000).as_bytes(), NOW, &mut n).is_ok());
        assert_eq!(d.registration(registry(NOW + 11).as_bytes(), NOW, &mut n), Err(Malformed::TsOutOfRange));
        assert!(d.assignment(line("a", NOW - 1000).as_bytes(), NOW, &mut n).is_ok());
        let long = format!(r#"{{"assignment_id":"a","entity_id":"e","arm_id":"x","ts":{NOW},"pad":"{}"}}"#, "p".repeat(30));
        assert_eq!(d.assignment(long.as_bytes(), NOW, &mut n), Err(Malformed::TooLarge));
        let mut history = Decoder::new(None, limits.for_history());
        assert!(history.assignment(line("a", 5).as_bytes(), NOW, &mut n).is_ok());
    }
}
