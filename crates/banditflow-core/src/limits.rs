//! The limits an input record must keep before it is decoded further (`[limits]` in the job
//! file): its size, its ids' lengths, how far its `ts` may be from the wall clock. Each has a
//! safe default; a record beyond one is malformed with that limit's own reason
//! ([`crate::wire::Malformed`]). The caps on what the dataflow holds at once are here too:
//! `max_entities` and `max_arms_per_entity` (admission applies them, [`crate::admission`]),
//! `max_pending_assignments` (the sources apply it, [`crate::pending_cap`]) and
//! `max_outcomes_per_assignment` (attribution applies it).

/// Default of [`Limits::max_record_bytes`]: 64 KiB.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 64 * 1024;
/// Default of [`Limits::max_id_bytes`]: 128 bytes, the schemas' bound.
pub const DEFAULT_MAX_ID_BYTES: usize = 128;
/// Default of [`Limits::max_future_skew_ms`]: 1 hour.
pub const DEFAULT_MAX_FUTURE_SKEW_MS: u64 = 3_600_000;
/// Default of [`Limits::max_age_ms`]: 7 days (raised to the window plus attribution and
/// lateness when those are longer, so no record that could still count is refused).
pub const DEFAULT_MAX_AGE_MS: u64 = 7 * 24 * 3_600_000;
/// Default of [`Limits::max_entities`]: 100,000 entities held at once.
pub const DEFAULT_MAX_ENTITIES: usize = 100_000;
/// Default of [`Limits::max_arms_per_entity`]: 256 arms held at once for one entity.
pub const DEFAULT_MAX_ARMS_PER_ENTITY: usize = 256;
/// Default of [`Limits::max_pending_assignments`]: 10,000,000 assignments waiting for their
/// attribution interval to close (about 1 GB at the ~100 bytes each costs).
pub const DEFAULT_MAX_PENDING_ASSIGNMENTS: usize = 10_000_000;
/// Default of [`Limits::max_outcomes_per_assignment`]: 100 outcomes held for one assignment
/// key.
pub const DEFAULT_MAX_OUTCOMES_PER_ASSIGNMENT: usize = 100;

/// What a record may be; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `max_record_bytes`: the longest record, in bytes (`record_too_large` beyond).
    pub max_record_bytes: usize,
    /// `max_id_bytes`: the longest assignment, entity or arm id, in bytes; ids are never
    /// empty (`id_length`).
    pub max_id_bytes: usize,
    /// `max_future_skew` (duration): how far a `ts` may be ahead of the wall clock
    /// (`ts_out_of_range` beyond, as is a negative `ts`). Milliseconds.
    pub max_future_skew_ms: u64,
    /// `max_age` (duration): how far a `ts` may be behind the wall clock in the live worker
    /// (`ts_too_old` beyond); replay reads history and does not apply it (`None`).
    /// Milliseconds.
    pub max_age_ms: Option<u64>,
    /// `max_entities`: entities the dataflow holds at once (a record of a new entity beyond
    /// it is refused, `max_entities`); see [`crate::admission`].
    pub max_entities: usize,
    /// `max_arms_per_entity`: arms one entity holds at once (a record of a new arm beyond it
    /// is refused, `max_arms_per_entity`).
    pub max_arms_per_entity: usize,
    /// `max_pending_assignments`: assignments held at once until their attribution interval
    /// closes, over all workers (an assignment beyond it is refused,
    /// `max_pending_assignments`); see [`crate::pending_cap`].
    pub max_pending_assignments: usize,
    /// `max_outcomes_per_assignment`: outcomes held at once for one assignment key (an
    /// outcome beyond it is refused, `max_outcomes_per_assignment`).
    pub max_outcomes_per_assignment: usize,
    /// `require_declared_arms` (default `false`): an assignment of an arm neither declared in
    /// `[[arms]]` nor active on the arm registry is refused (`undeclared_arm`), not applied.
    pub require_declared_arms: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            max_id_bytes: DEFAULT_MAX_ID_BYTES,
            max_future_skew_ms: DEFAULT_MAX_FUTURE_SKEW_MS,
            max_age_ms: Some(DEFAULT_MAX_AGE_MS),
            max_entities: DEFAULT_MAX_ENTITIES,
            max_arms_per_entity: DEFAULT_MAX_ARMS_PER_ENTITY,
            max_pending_assignments: DEFAULT_MAX_PENDING_ASSIGNMENTS,
            max_outcomes_per_assignment: DEFAULT_MAX_OUTCOMES_PER_ASSIGNMENT,
            require_declared_arms: false,
        }
    }
}

impl Limits {
    /// The same limits without the age bound: for reading history (replay, reports).
    #[must_use]
    pub fn for_history(self) -> Limits {
        Limits { max_age_ms: None, ..self }
    }

    /// Limits that accept any `ts` from the epoch on (a report looks back; there is no wall
    /// clock to be ahead of or behind).
    #[must_use]
    pub fn any_time(self) -> Limits {
        Limits { max_future_skew_ms: u64::MAX, max_age_ms: None, ..self }
    }
}
