//! The dataflow job file: what to compute (which entities, which outcome kinds, which
//! windows) and how (tick, lateness, prior, policy). Loaded from TOML, validated once at the
//! boundary, so the dataflow itself can trust every number it is given.
//!
//! The field docs of [`Dataflow`] and its sections are the user documentation of each key:
//! its meaning, its default and its unit. `dataflows/default.toml` shows them all by example.
//! The same file also holds where a live worker connects (`mode`, `[kafka]`, `[redis]`,
//! `[metrics]`); this module only accepts those sections, and the `banditflow` crate's
//! `deployment` module reads them with [`from_toml`], so every error names its key the same
//! way: by the path serde reports (`serde_path_to_error`) and the line of the toml span.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, DeserializeOwned, Deserializer, IgnoredAny, Visitor};
use serde::Deserialize;

use crate::limits::{Limits, DEFAULT_MAX_AGE_MS};

/// Default of [`Dataflow::idle_timeout_ms`]: 30 seconds.
const DEFAULT_IDLE_TIMEOUT_MS: u64 = 30_000;
/// Default of [`PolicyConfig::min_trials`].
const DEFAULT_MIN_TRIALS: u64 = 100;
/// Longest id accepted, in bytes (SEMANTICS: ids are 1–128 bytes).
const MAX_ID_BYTES: usize = 128;

/// A dataflow job file: what to compute and how.
///
/// Every duration is written in the file as a string such as `"500ms"`, `"30s"`, `"1m"` or
/// `"24h"` and held here in whole milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataflow {
    /// `name` (required): the job's name, written into every weight record's `dataflow`
    /// field. Must not be empty.
    pub name: String,
    /// `tick` (required, duration, > 0): the dataflow's logical time step. Weights are
    /// computed as of the end of each complete tick, `floor(ts / tick)`. Milliseconds.
    pub tick_ms: u64,
    /// `window` (required, duration, longer than `attribution`): how far back resolved
    /// assignments count towards a posterior. As of `T`, assignments with
    /// `T - window < ts <= T - attribution` count. Milliseconds.
    pub window_ms: u64,
    /// `attribution` (required, duration, > 0): how long after an assignment an outcome
    /// still rewards it. An assignment is pending, and not yet a trial, until
    /// `ts + attribution`. Milliseconds.
    pub attribution_ms: u64,
    /// `allowed_lateness` (required, duration, may be `"0s"`): how far behind the largest
    /// `ts` a partition has delivered its watermark stays, i.e. how out of order records may
    /// arrive and still be on time. Milliseconds.
    pub allowed_lateness_ms: u64,
    /// `idle_timeout` (optional, duration, > 0, default `"30s"`): a partition with nothing
    /// new for this long stops holding time back. Milliseconds.
    pub idle_timeout_ms: u64,
    /// `[limits]` (optional table): what an input record may be (`max_record_bytes`,
    /// `max_id_bytes`, `max_future_skew`, `max_age`) and what the dataflow holds at once
    /// (`max_entities`, `max_arms_per_entity`, `max_pending_assignments`,
    /// `max_outcomes_per_assignment`); see [`Limits`]. `max_future_skew` may
    /// also be written at the top level, its older place, but not in both.
    pub limits: Limits,
    /// `outcome_kinds` (optional, array of strings): the outcome `kind`s that count as a
    /// success. Absent (`None`): every outcome counts, whatever its kind. If given, it must
    /// name at least one kind, and an outcome without a `kind` does not count.
    pub outcome_kinds: Option<Vec<String>>,
    /// `[prior]` (optional table): the Beta prior every arm starts from. Default 1, 1.
    pub prior: Prior,
    /// `[policy]` (optional table): how posteriors become weights.
    pub policy: PolicyConfig,
    /// `[[arms]]` (optional, repeated table): arms declared up front for an entity. A declared
    /// arm is in every weight record of its entity, with the prior until it has traffic.
    pub arms: Vec<ArmDeclaration>,
    /// `[decision]` (optional table): the control arm and the rules that declare a winner or
    /// stop an arm.
    pub decision: DecisionConfig,
}

/// Default of [`DecisionConfig::winner_p_best`].
const DEFAULT_WINNER_P_BEST: f64 = 0.95;
/// Default of [`DecisionConfig::winner_max_loss`].
const DEFAULT_WINNER_MAX_LOSS: f64 = 0.001;
/// Default of [`DecisionConfig::confirm_ticks`].
const DEFAULT_CONFIRM_TICKS: u32 = 3;
/// Default of [`DecisionConfig::stop_p_best`].
const DEFAULT_STOP_P_BEST: f64 = 0.001;
/// Default of [`DecisionConfig::srm_alpha`].
const DEFAULT_SRM_ALPHA: f64 = 0.001;

/// Whether weights follow the posteriors or a fixed split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allocation {
    /// `"adaptive"`: burn-in, then the posteriors shape the weights.
    Adaptive,
    /// `"static"`: every record publishes the declared split (the arms' initial weights,
    /// normalised; uniform without them), a classical A/B test that still gets every
    /// statistic, sample-ratio check and decision event.
    Static,
}

/// What the weights do once an entity has a winner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnWinner {
    /// `"keep_exploring"`: the policy is unchanged; the winner is only reported.
    KeepExploring,
    /// `"exploit"`: every other arm gets the floor (0 if stopped), the winner the rest.
    Exploit,
}

/// `[decision]`: the rules that turn statistics into decisions (docs/semantics.md,
/// "Decisions"). They are applied once an entity is out of burn-in.
#[derive(Clone, Debug, PartialEq)]
pub struct DecisionConfig {
    /// `control` (optional arm id): the arm every other is compared with (`vs_control`) in
    /// every entity that has it; an `[[arms]]` entry's own `control` takes precedence.
    pub control: Option<String>,
    /// `winner_p_best` (optional, in `(0, 1]`, default 0.95): an arm whose `p_best` is at
    /// least this...
    pub winner_p_best: f64,
    /// `winner_max_loss` (optional, >= 0, default 0.001): ...and whose expected loss is at
    /// most this, for `confirm_ticks` consecutive ticks, is the winner.
    pub winner_max_loss: f64,
    /// `confirm_ticks` (optional, integer >= 1, default 3): how many consecutive ticks a
    /// rule's condition (or, to clear a winner, its absence) must hold before the state
    /// changes.
    pub confirm_ticks: u32,
    /// `on_winner` (optional, `"keep_exploring"` or `"exploit"`, default `"keep_exploring"`).
    pub on_winner: OnWinner,
    /// `stop_p_best` (optional, in `[0, 1)`, default 0.001; 0 = never): an arm whose `p_best`
    /// stays below this for `confirm_ticks` consecutive ticks is stopped.
    pub stop_p_best: f64,
    /// `allow_stop` (optional, default false): a stopped arm's weight is 0 if true, else the
    /// policy's floor. Either way it never gets more again until it is re-declared.
    pub allow_stop: bool,
    /// `srm_alpha` (optional, in `(0, 1)`, default 0.001): the sample-ratio check is flagged
    /// when its p-value is below this.
    pub srm_alpha: f64,
}

impl Default for DecisionConfig {
    /// No control; a winner at `p_best >= 0.95` with expected loss `<= 0.001`, a stop at
    /// `p_best < 0.001`, both confirmed over 3 ticks; stopped arms keep the floor.
    fn default() -> Self {
        DecisionConfig {
            control: None,
            winner_p_best: DEFAULT_WINNER_P_BEST,
            winner_max_loss: DEFAULT_WINNER_MAX_LOSS,
            confirm_ticks: DEFAULT_CONFIRM_TICKS,
            on_winner: OnWinner::KeepExploring,
            stop_p_best: DEFAULT_STOP_P_BEST,
            allow_stop: false,
            srm_alpha: DEFAULT_SRM_ALPHA,
        }
    }
}

/// `[prior]`: the Beta prior of every arm's success rate, `Beta(alpha, beta)`.
///
/// The posterior is `Beta(alpha + successes, beta + failures)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Prior {
    /// `alpha` (optional, finite number > 0, default 1): pseudo-successes.
    pub alpha: f64,
    /// `beta` (optional, finite number > 0, default 1): pseudo-failures.
    pub beta: f64,
}

impl Default for Prior {
    /// The uniform prior, `Beta(1, 1)`.
    fn default() -> Self {
        Prior {
            alpha: 1.0,
            beta: 1.0,
        }
    }
}

/// `[policy]`: how `p_best` becomes published weights (burn-in, floor, step limit).
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyConfig {
    /// `min_trials` (optional, integer >= 0, default 100): a new entity's weights stay
    /// uniform (burn-in) until every arm has at least this many resolved trials in the
    /// window; later an arm short of them gets `new_arm_weight`.
    pub min_trials: u64,
    /// `floor` (optional, number in `[0, 1)`, default 0): the least weight any arm gets,
    /// `w = floor + (1 - K * floor) * p_best` for `K` arms. For an entity declared in
    /// `[[arms]]`, `floor * K` must stay below 1.
    pub floor: f64,
    /// `max_step` (optional, number in `(0, 1]`, default absent = no limit): the most any
    /// arm's weight may change from one published record to the next.
    pub max_step: Option<f64>,
    /// `new_arm_weight` (optional, number in `(0, 1)`, default absent = 1/K for K arms): the
    /// weight of an arm with fewer than `min_trials` trials in an entity that has left
    /// burn-in (a newly declared or newly seen arm), while the others follow their
    /// posteriors; never below `floor`.
    pub new_arm_weight: Option<f64>,
    /// `on_reactivate` (optional, `"keep"` or `"reset"`, default `"keep"`): when a retired arm
    /// is declared active again (a retrained model), whether its counts still in the window
    /// stay (`keep`) or leave it at once, so the arm starts again from the prior (`reset`).
    pub reset_on_reactivate: bool,
    /// `allocation` (optional, `"adaptive"` or `"static"`, default `"adaptive"`): whether
    /// weights follow the posteriors or stay at the declared split.
    pub allocation: Allocation,
}

impl Default for PolicyConfig {
    /// 100 trials of burn-in, no floor, no step limit, counts kept on reactivation.
    fn default() -> Self {
        PolicyConfig {
            min_trials: DEFAULT_MIN_TRIALS,
            floor: 0.0,
            max_step: None,
            new_arm_weight: None,
            reset_on_reactivate: false,
            allocation: Allocation::Adaptive,
        }
    }
}

/// `[[arms]]`: the arms an entity may serve, declared in the job file.
#[derive(Clone, Debug, PartialEq)]
pub struct ArmDeclaration {
    /// `entity_id` (required, 1–128 bytes): the experiment or placement. Declared at most
    /// once per file.
    pub entity_id: String,
    /// `arm_ids` (required, at least one, each 1–128 bytes, no duplicates): its arms.
    pub arm_ids: Vec<String>,
    /// `control` (optional, one of `arm_ids`): this entity's control arm, in place of
    /// `[decision] control`.
    pub control: Option<String>,
    /// `initial_weights` (optional, a table from some of `arm_ids` to numbers in `(0, 1]`):
    /// the declared split, used during burn-in and by `allocation = "static"`.
    pub initial_weights: BTreeMap<String, f64>,
}

/// Why a job file was rejected. Every message names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read dataflow file `{}`: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        error: std::io::Error,
    },
    /// The file was read but its content is not a valid job; `error` says why.
    #[error("dataflow file `{}`: {error}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with its content.
        error: Box<ConfigError>,
    },
    /// The text is not TOML.
    #[error("invalid TOML: {message}")]
    Syntax {
        /// The TOML parser's message, with line and column.
        message: String,
    },
    /// A key this version does not know (often a typo).
    /// A `BANDITFLOW_…` environment variable that names no setting.
    #[error("unknown setting in environment variable `{var}` (expected BANDITFLOW_<SECTION>_<KEY>, e.g. BANDITFLOW_KAFKA_BROKERS)")]
    UnknownEnv {
        /// The variable.
        var: String,
    },
    /// `mode` is neither `production` nor `shadow`.
    #[error("invalid `mode`: \"{value}\" (expected \"production\" or \"shadow\")")]
    BadMode {
        /// The value given.
        value: String,
    },
    /// A listen address that does not parse as `host:port`.
    #[error("invalid address for `{key}`: \"{value}\" (expected an IP and port such as 127.0.0.1:9898)")]
    BadAddress {
        /// The key.
        key: &'static str,
        /// The value given.
        value: String,
    },
    /// A key the job file format does not have (a typo, usually).
    #[error("unknown key `{key}` at line {line}")]
    UnknownKey {
        /// The key, prefixed by its table, e.g. `policy.flor`.
        key: String,
        /// 1-based line of the key.
        line: usize,
    },
    /// A required key is absent.
    #[error("missing required key `{key}`")]
    MissingKey {
        /// The key, prefixed by its table, e.g. `arms.arm_ids`.
        key: &'static str,
    },
    /// A value of the wrong type or out of its type's range (e.g. a negative `min_trials`).
    #[error("invalid value for `{key}` at line {line}: {message}")]
    BadValue {
        /// The key, prefixed by its table.
        key: String,
        /// 1-based line of the value.
        line: usize,
        /// What was found and what was expected.
        message: String,
    },
    /// A duration string humantime cannot parse.
    #[error("invalid duration for `{key}`: {error} (got \"{value}\"; write e.g. \"500ms\", \"30s\", \"1m\", \"24h\")")]
    BadDuration {
        /// The key.
        key: &'static str,
        /// The string as written.
        value: String,
        /// What the duration parser said.
        error: humantime::DurationError,
    },
    /// A duration with a part smaller than a millisecond.
    #[error(
        "invalid duration for `{key}`: must be a whole number of milliseconds (got \"{value}\")"
    )]
    FractionalMillis {
        /// The key.
        key: &'static str,
        /// The string as written.
        value: String,
    },
    /// A duration too long to hold in milliseconds.
    #[error("invalid duration for `{key}`: too long (got \"{value}\")")]
    DurationTooLong {
        /// The key.
        key: &'static str,
        /// The string as written.
        value: String,
    },
    /// A secret (a password, a key) written in the job file, where anyone who can read the
    /// file, or its history, can read it.
    #[error("`{key}` is a secret and may not be written in the job file: give it in the environment ({var}) or in a file whose path {var}_FILE names")]
    SecretInFile {
        /// The key, prefixed by its table.
        key: String,
        /// The environment variable that sets it.
        var: String,
    },
    /// A `…_FILE` variable names a file that cannot be read.
    #[error("cannot read the file that {var} names ({path}): {error}")]
    SecretFile {
        /// The variable.
        var: String,
        /// The path it gives.
        path: String,
        /// What the operating system said.
        error: std::io::Error,
    },
    /// A limit of zero, which would refuse every record.
    #[error("invalid value for `{key}`: must be greater than zero")]
    ZeroLimit {
        /// The key.
        key: &'static str,
    },
    /// One setting written in both of its places.
    #[error("`{key}` and `{other}` are the same setting: write one of them")]
    TwoPlaces {
        /// The first spelling.
        key: &'static str,
        /// The other.
        other: &'static str,
    },
    /// A duration that must be positive is zero.
    #[error("invalid `{key}`: must be greater than zero")]
    NotPositive {
        /// The key.
        key: &'static str,
    },
    /// `window <= attribution`: no resolved assignment could ever be in the window.
    #[error(
        "invalid `window`: must be longer than `attribution` ({} <= {})",
        short_duration(*window_ms),
        short_duration(*attribution_ms)
    )]
    WindowNotLongerThanAttribution {
        /// `window`, in milliseconds.
        window_ms: u64,
        /// `attribution`, in milliseconds.
        attribution_ms: u64,
    },
    /// `name` is empty.
    #[error("invalid `name`: must not be empty")]
    EmptyName,
    /// `outcome_kinds` is empty or holds an empty kind.
    #[error("invalid `outcome_kinds`: {reason}")]
    OutcomeKinds {
        /// What is wrong.
        reason: &'static str,
    },
    /// A prior parameter that is not a finite positive number.
    #[error("invalid `{key}`: must be a finite number greater than zero (got {value})")]
    Prior {
        /// `prior.alpha` or `prior.beta`.
        key: &'static str,
        /// The value given.
        value: f64,
    },
    /// `floor` outside `[0, 1)`.
    #[error("invalid `policy.floor`: must be at least 0 and below 1 (got {floor})")]
    FloorOutOfRange {
        /// The value given.
        floor: f64,
    },
    /// `floor * K >= 1` for an entity declared with `K` arms: its weights could never move
    /// from uniform.
    #[error("invalid `policy.floor`: {floor} × {arms} arms declared for entity `{entity_id}` is at least 1, so its weights could never leave uniform")]
    FloorTooHighForArms {
        /// The floor.
        floor: f64,
        /// The entity.
        entity_id: String,
        /// How many arms it declares.
        arms: usize,
    },
    /// `new_arm_weight` outside `(0, 1)`.
    #[error("invalid `policy.new_arm_weight`: must be greater than 0 and less than 1 (got {weight})")]
    NewArmWeightOutOfRange {
        /// The value given.
        weight: f64,
    },
    /// `max_step` outside `(0, 1]`.
    #[error("invalid `policy.max_step`: must be greater than 0 and at most 1 (got {max_step})")]
    MaxStepOutOfRange {
        /// The value given.
        max_step: f64,
    },
    /// An id that is empty or longer than 128 bytes.
    #[error("invalid `{key}`: \"{id}\" is {} bytes; ids must be 1 to 128 bytes", id.len())]
    IdLength {
        /// `arms.entity_id` or `arms.arm_ids`.
        key: &'static str,
        /// The id as written.
        id: String,
    },
    /// An `[[arms]]` entry with an empty `arm_ids`.
    #[error("invalid `arms.arm_ids` for entity `{entity_id}`: must name at least one arm")]
    NoArms {
        /// The entity.
        entity_id: String,
    },
    /// The same arm twice in one entity's `arm_ids`.
    #[error("invalid `arms.arm_ids` for entity `{entity_id}`: arm `{arm_id}` is listed twice")]
    DuplicateArm {
        /// The entity.
        entity_id: String,
        /// The repeated arm.
        arm_id: String,
    },
    /// An `[[arms]]` entry whose `control` is not one of its `arm_ids`.
    #[error("invalid `arms.control` for entity `{entity_id}`: `{arm_id}` is not one of its `arm_ids`")]
    UnknownControl {
        /// The entity.
        entity_id: String,
        /// The control named.
        arm_id: String,
    },
    /// A `[decision]` threshold out of its range.
    #[error("invalid `decision.{key}`: must be {range} (got {value})")]
    DecisionOutOfRange {
        /// The key, without its table.
        key: &'static str,
        /// The range allowed, in words.
        range: &'static str,
        /// The value given.
        value: f64,
    },
    /// `policy.on_reactivate` is not one of its words.
    #[error("invalid `policy.on_reactivate`: \"{value}\" (expected \"keep\" or \"reset\")")]
    BadOnReactivate {
        /// The value given.
        value: String,
    },
    /// `policy.allocation` is not one of its words.
    #[error("invalid `policy.allocation`: \"{value}\" (expected \"adaptive\" or \"static\")")]
    BadAllocation {
        /// The value given.
        value: String,
    },
    /// An `[[arms]]` initial weight for an arm not in its `arm_ids`, or outside `(0, 1]`.
    #[error("invalid `arms.initial_weights` for entity `{entity_id}`: arm `{arm_id}` {problem}")]
    BadInitialWeight {
        /// The entity.
        entity_id: String,
        /// The arm named.
        arm_id: String,
        /// What is wrong, in words.
        problem: String,
    },
    /// `decision.on_winner` is not one of its words.
    #[error("invalid `decision.on_winner`: \"{value}\" (expected \"keep_exploring\" or \"exploit\")")]
    BadOnWinner {
        /// The value given.
        value: String,
    },
    /// Two `[[arms]]` entries for one entity.
    #[error("invalid `arms.entity_id`: entity `{entity_id}` is declared twice")]
    DuplicateEntity {
        /// The repeated entity.
        entity_id: String,
    },
}

impl Dataflow {
    /// Parses and validates a job file's text.
    ///
    /// # Examples
    ///
    /// ```
    /// use banditflow_core::config::Dataflow;
    ///
    /// let job = Dataflow::from_toml_str(r#"
    ///     name = "demo"
    ///     tick = "1m"
    ///     window = "24h"
    ///     attribution = "30m"
    ///     allowed_lateness = "2m"
    /// "#).unwrap();
    /// assert_eq!(job.window_ms, 24 * 3_600_000);
    /// assert_eq!(job.policy.min_trials, 100);
    ///
    /// let err = Dataflow::from_toml_str(r#"
    ///     name = "demo"
    ///     tick = "1m"
    ///     window = "20m"
    ///     attribution = "30m"
    ///     allowed_lateness = "2m"
    /// "#).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "invalid `window`: must be longer than `attribution` (20m <= 30m)"
    /// );
    /// ```
    pub fn from_toml_str(text: &str) -> Result<Dataflow, ConfigError> {
        let raw: RawDataflow = from_toml(text)?;
        let dataflow = raw.into_dataflow()?;
        dataflow.validate()?;
        Ok(dataflow)
    }

    /// Reads, parses and validates the job file at `path`. Errors name the file.
    pub fn load(path: &Path) -> Result<Dataflow, ConfigError> {
        let text = read(path)?;
        Dataflow::from_toml_str(&text).map_err(|error| in_file(path, error))
    }

    /// Checks the rules that involve values rather than syntax, in the order of the file.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.name.is_empty() {
            return Err(ConfigError::EmptyName);
        }
        for (key, ms) in [
            ("tick", self.tick_ms),
            ("attribution", self.attribution_ms),
            ("idle_timeout", self.idle_timeout_ms),
        ] {
            if ms == 0 {
                return Err(ConfigError::NotPositive { key });
            }
        }
        if self.window_ms <= self.attribution_ms {
            return Err(ConfigError::WindowNotLongerThanAttribution {
                window_ms: self.window_ms,
                attribution_ms: self.attribution_ms,
            });
        }
        if let Some(kinds) = &self.outcome_kinds {
            if kinds.is_empty() {
                return Err(ConfigError::OutcomeKinds {
                    reason: "must name at least one kind (leave it out to count every kind)",
                });
            }
            if kinds.iter().any(String::is_empty) {
                return Err(ConfigError::OutcomeKinds {
                    reason: "a kind must not be empty",
                });
            }
        }
        self.prior.validate()?;
        self.policy.validate()?;
        self.decision.validate()?;
        let mut entities = HashSet::new();
        for declaration in &self.arms {
            declaration.validate()?;
            if !entities.insert(declaration.entity_id.as_str()) {
                return Err(ConfigError::DuplicateEntity {
                    entity_id: declaration.entity_id.clone(),
                });
            }
            let arms = declaration.arm_ids.len();
            if self.policy.floor * arms as f64 >= 1.0 {
                return Err(ConfigError::FloorTooHighForArms {
                    floor: self.policy.floor,
                    entity_id: declaration.entity_id.clone(),
                    arms,
                });
            }
        }
        Ok(())
    }
}

impl Prior {
    fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [("prior.alpha", self.alpha), ("prior.beta", self.beta)] {
            if !(value.is_finite() && value > 0.0) {
                return Err(ConfigError::Prior { key, value });
            }
        }
        Ok(())
    }
}

impl PolicyConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..1.0).contains(&self.floor) {
            return Err(ConfigError::FloorOutOfRange { floor: self.floor });
        }
        if let Some(max_step) = self.max_step {
            if !(max_step > 0.0 && max_step <= 1.0) {
                return Err(ConfigError::MaxStepOutOfRange { max_step });
            }
        }
        if let Some(weight) = self.new_arm_weight {
            if !(weight > 0.0 && weight < 1.0) {
                return Err(ConfigError::NewArmWeightOutOfRange { weight });
            }
        }
        Ok(())
    }
}

impl DecisionConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let checks: [(&'static str, f64, bool, &'static str); 5] = [
            ("winner_p_best", self.winner_p_best, self.winner_p_best > 0.0 && self.winner_p_best <= 1.0, "greater than 0 and at most 1"),
            ("winner_max_loss", self.winner_max_loss, self.winner_max_loss.is_finite() && self.winner_max_loss >= 0.0, "a finite number at least 0"),
            ("confirm_ticks", f64::from(self.confirm_ticks), self.confirm_ticks >= 1, "at least 1"),
            ("stop_p_best", self.stop_p_best, (0.0..1.0).contains(&self.stop_p_best), "at least 0 and below 1"),
            ("srm_alpha", self.srm_alpha, self.srm_alpha > 0.0 && self.srm_alpha < 1.0, "greater than 0 and below 1"),
        ];
        for (key, value, ok, range) in checks {
            if !ok {
                return Err(ConfigError::DecisionOutOfRange { key, range, value });
            }
        }
        if let Some(control) = &self.control {
            check_id("decision.control", control)?;
        }
        Ok(())
    }

    /// The control arm of `entity_id` under this job: its `[[arms]]` entry's, else
    /// `[decision] control`.
    #[must_use]
    pub fn control_of<'a>(&'a self, declarations: &'a [ArmDeclaration], entity_id: &str) -> Option<&'a str> {
        declarations
            .iter()
            .find(|d| d.entity_id == entity_id)
            .and_then(|d| d.control.as_deref())
            .or(self.control.as_deref())
    }
}

impl ArmDeclaration {
    fn validate(&self) -> Result<(), ConfigError> {
        for (arm_id, &weight) in &self.initial_weights {
            let problem = if !self.arm_ids.contains(arm_id) {
                "is not one of its `arm_ids`".to_owned()
            } else if !(weight > 0.0 && weight <= 1.0) {
                format!("has weight {weight}; must be greater than 0 and at most 1")
            } else {
                continue;
            };
            return Err(ConfigError::BadInitialWeight { entity_id: self.entity_id.clone(), arm_id: arm_id.clone(), problem });
        }
        if let Some(control) = &self.control {
            if !self.arm_ids.contains(control) {
                return Err(ConfigError::UnknownControl { entity_id: self.entity_id.clone(), arm_id: control.clone() });
            }
        }
        check_id("arms.entity_id", &self.entity_id)?;
        if self.arm_ids.is_empty() {
            return Err(ConfigError::NoArms {
                entity_id: self.entity_id.clone(),
            });
        }
        let mut seen = HashSet::new();
        for arm_id in &self.arm_ids {
            check_id("arms.arm_ids", arm_id)?;
            if !seen.insert(arm_id.as_str()) {
                return Err(ConfigError::DuplicateArm {
                    entity_id: self.entity_id.clone(),
                    arm_id: arm_id.clone(),
                });
            }
        }
        Ok(())
    }
}

fn check_id(key: &'static str, id: &str) -> Result<(), ConfigError> {
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return Err(ConfigError::IdLength {
            key,
            id: id.to_owned(),
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The file as written. Every key is optional here so that a missing one is reported by its
// full name (`arms.arm_ids`), and every table denies unknown keys. Adding a section is adding a
// field to `RawDataflow` (and its typed twin to `Dataflow`).

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDataflow {
    name: Option<String>,
    tick: Option<DurationText>,
    window: Option<DurationText>,
    attribution: Option<DurationText>,
    allowed_lateness: Option<DurationText>,
    idle_timeout: Option<DurationText>,
    max_future_skew: Option<DurationText>,
    outcome_kinds: Option<Vec<String>>,
    #[serde(default)]
    prior: RawPrior,
    #[serde(default)]
    policy: RawPolicy,
    #[serde(default)]
    arms: Vec<RawArmDeclaration>,
    #[serde(default)]
    decision: RawDecision,
    #[serde(default)]
    limits: RawLimits,
    // Read by the deployment settings of the `banditflow` crate; accepted here unread.
    #[serde(rename = "mode")]
    _mode: Option<IgnoredAny>,
    #[serde(rename = "kafka")]
    _kafka: Option<IgnoredAny>,
    #[serde(rename = "redis")]
    _redis: Option<IgnoredAny>,
    #[serde(rename = "metrics")]
    _metrics: Option<IgnoredAny>,
    #[serde(rename = "checkpoint")]
    _checkpoint: Option<IgnoredAny>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_record_bytes: Option<usize>,
    max_id_bytes: Option<usize>,
    max_future_skew: Option<DurationText>,
    max_age: Option<DurationText>,
    max_entities: Option<usize>,
    max_arms_per_entity: Option<usize>,
    max_pending_assignments: Option<usize>,
    max_outcomes_per_assignment: Option<usize>,
    require_declared_arms: Option<bool>,
}

impl RawLimits {
    /// The limits, `top_level_skew` being `max_future_skew` where it used to be written;
    /// `counting_ms` how far back a record can still count (the default age is at least that).
    fn into_limits(self, top_level_skew: Option<DurationText>, counting_ms: u64) -> Result<Limits, ConfigError> {
        let default = Limits::default();
        let positive = |value: Option<usize>, key: &'static str, default: usize| match value {
            Some(0) => Err(ConfigError::ZeroLimit { key }),
            Some(v) => Ok(v),
            None => Ok(default),
        };
        let skew = match (top_level_skew, self.max_future_skew) {
            (Some(_), Some(_)) => return Err(ConfigError::TwoPlaces { key: "max_future_skew", other: "limits.max_future_skew" }),
            (Some(text), None) => Some(text.millis("max_future_skew")?),
            (None, Some(text)) => Some(text.millis("limits.max_future_skew")?),
            (None, None) => None,
        };
        let max_age_ms = match optional_millis(self.max_age, "limits.max_age")? {
            Some(0) => return Err(ConfigError::ZeroLimit { key: "limits.max_age" }),
            Some(age) => age,
            None => DEFAULT_MAX_AGE_MS.max(counting_ms),
        };
        Ok(Limits {
            max_record_bytes: positive(self.max_record_bytes, "limits.max_record_bytes", default.max_record_bytes)?,
            max_id_bytes: positive(self.max_id_bytes, "limits.max_id_bytes", default.max_id_bytes)?,
            max_future_skew_ms: skew.unwrap_or(default.max_future_skew_ms),
            max_age_ms: Some(max_age_ms),
            max_entities: positive(self.max_entities, "limits.max_entities", default.max_entities)?,
            max_arms_per_entity: positive(self.max_arms_per_entity, "limits.max_arms_per_entity", default.max_arms_per_entity)?,
            max_pending_assignments: positive(self.max_pending_assignments, "limits.max_pending_assignments", default.max_pending_assignments)?,
            max_outcomes_per_assignment: positive(self.max_outcomes_per_assignment, "limits.max_outcomes_per_assignment", default.max_outcomes_per_assignment)?,
            require_declared_arms: self.require_declared_arms.unwrap_or(default.require_declared_arms),
        })
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrior {
    alpha: Option<f64>,
    beta: Option<f64>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    min_trials: Option<u64>,
    floor: Option<f64>,
    max_step: Option<f64>,
    new_arm_weight: Option<f64>,
    on_reactivate: Option<String>,
    allocation: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArmDeclaration {
    entity_id: Option<String>,
    arm_ids: Option<Vec<String>>,
    control: Option<String>,
    initial_weights: Option<BTreeMap<String, f64>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDecision {
    control: Option<String>,
    winner_p_best: Option<f64>,
    winner_max_loss: Option<f64>,
    confirm_ticks: Option<u32>,
    on_winner: Option<String>,
    stop_p_best: Option<f64>,
    allow_stop: Option<bool>,
    srm_alpha: Option<f64>,
}

impl RawDecision {
    fn into_decision(self) -> Result<DecisionConfig, ConfigError> {
        let default = DecisionConfig::default();
        let on_winner = match self.on_winner.as_deref() {
            None | Some("keep_exploring") => OnWinner::KeepExploring,
            Some("exploit") => OnWinner::Exploit,
            Some(other) => return Err(ConfigError::BadOnWinner { value: other.to_owned() }),
        };
        Ok(DecisionConfig {
            control: self.control,
            winner_p_best: self.winner_p_best.unwrap_or(default.winner_p_best),
            winner_max_loss: self.winner_max_loss.unwrap_or(default.winner_max_loss),
            confirm_ticks: self.confirm_ticks.unwrap_or(default.confirm_ticks),
            on_winner,
            stop_p_best: self.stop_p_best.unwrap_or(default.stop_p_best),
            allow_stop: self.allow_stop.unwrap_or(default.allow_stop),
            srm_alpha: self.srm_alpha.unwrap_or(default.srm_alpha),
        })
    }
}

impl RawDataflow {
    fn into_dataflow(self) -> Result<Dataflow, ConfigError> {
        // In the order errors are reported: the first missing or bad key is named.
        let name = required(self.name, "name")?;
        let tick_ms = required(self.tick, "tick")?.millis("tick")?;
        let window_ms = required(self.window, "window")?.millis("window")?;
        let attribution_ms = required(self.attribution, "attribution")?.millis("attribution")?;
        let allowed_lateness_ms = required(self.allowed_lateness, "allowed_lateness")?.millis("allowed_lateness")?;
        let idle_timeout_ms = optional_millis(self.idle_timeout, "idle_timeout")?.unwrap_or(DEFAULT_IDLE_TIMEOUT_MS);
        // How far back a record can still count: the default age bound is at least that.
        let counting_ms = window_ms.saturating_add(attribution_ms).saturating_add(allowed_lateness_ms);
        Ok(Dataflow {
            name,
            tick_ms,
            window_ms,
            attribution_ms,
            allowed_lateness_ms,
            idle_timeout_ms,
            limits: self.limits.into_limits(self.max_future_skew, counting_ms)?,
            outcome_kinds: self.outcome_kinds,
            prior: self.prior.into_prior(),
            policy: self.policy.into_policy()?,
            arms: self
                .arms
                .into_iter()
                .map(RawArmDeclaration::into_declaration)
                .collect::<Result<_, _>>()?,
            decision: self.decision.into_decision()?,
        })
    }
}

impl RawPrior {
    fn into_prior(self) -> Prior {
        let default = Prior::default();
        Prior {
            alpha: self.alpha.unwrap_or(default.alpha),
            beta: self.beta.unwrap_or(default.beta),
        }
    }
}

impl RawPolicy {
    fn into_policy(self) -> Result<PolicyConfig, ConfigError> {
        let default = PolicyConfig::default();
        let reset_on_reactivate = match self.on_reactivate.as_deref() {
            None => default.reset_on_reactivate,
            Some("keep") => false,
            Some("reset") => true,
            Some(other) => return Err(ConfigError::BadOnReactivate { value: other.to_owned() }),
        };
        let allocation = match self.allocation.as_deref() {
            None => default.allocation,
            Some("adaptive") => Allocation::Adaptive,
            Some("static") => Allocation::Static,
            Some(other) => return Err(ConfigError::BadAllocation { value: other.to_owned() }),
        };
        Ok(PolicyConfig {
            min_trials: self.min_trials.unwrap_or(default.min_trials),
            floor: self.floor.unwrap_or(default.floor),
            max_step: self.max_step.or(default.max_step),
            new_arm_weight: self.new_arm_weight.or(default.new_arm_weight),
            reset_on_reactivate,
            allocation,
        })
    }
}

impl RawArmDeclaration {
    fn into_declaration(self) -> Result<ArmDeclaration, ConfigError> {
        Ok(ArmDeclaration {
            entity_id: required(self.entity_id, "arms.entity_id")?,
            arm_ids: required(self.arm_ids, "arms.arm_ids")?,
            control: self.control,
            initial_weights: self.initial_weights.unwrap_or_default(),
        })
    }
}

fn required<T>(value: Option<T>, key: &'static str) -> Result<T, ConfigError> {
    value.ok_or(ConfigError::MissingKey { key })
}

fn optional_millis(
    value: Option<DurationText>,
    key: &'static str,
) -> Result<Option<u64>, ConfigError> {
    value.map(|text| text.millis(key)).transpose()
}

/// A duration as written in the file (`"30s"`), parsed once the key is known.
struct DurationText(String);

impl DurationText {
    fn millis(self, key: &'static str) -> Result<u64, ConfigError> {
        let duration: Duration =
            humantime::parse_duration(&self.0).map_err(|error| ConfigError::BadDuration {
                key,
                value: self.0.clone(),
                error,
            })?;
        if !duration.subsec_nanos().is_multiple_of(1_000_000) {
            return Err(ConfigError::FractionalMillis { key, value: self.0 });
        }
        u64::try_from(duration.as_millis())
            .map_err(|_| ConfigError::DurationTooLong { key, value: self.0 })
    }
}

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = DurationText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration string such as \"500ms\", \"30s\", \"1m\" or \"24h\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationText, E> {
                Ok(DurationText(v.to_owned()))
            }
        }
        deserializer.deserialize_str(DurationVisitor)
    }
}

// ---------------------------------------------------------------------------------------------
// Turning the TOML deserializer's errors into ones that name the key.

/// The text of the job file at `path`.
pub fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|error| ConfigError::Read { path: path.to_path_buf(), error })
}

/// `error`, said of the file at `path`.
pub fn in_file(path: &Path, error: ConfigError) -> ConfigError {
    ConfigError::InFile { path: path.to_path_buf(), error: Box::new(error) }
}

/// Deserializes `text` as TOML into `T`; an error names the full key at fault (as serde's
/// path to it, indexes of arrays of tables left out: `arms.arm_ids`) and its line.
pub fn from_toml<T: DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|error| toml_error(text, &error))
}

/// Maps a deserialization error to a [`ConfigError`]: unknown keys and bad values get the key
/// from the error's path, and the line from the span toml attached to it.
fn toml_error(text: &str, error: &serde_path_to_error::Error<toml::de::Error>) -> ConfigError {
    let inner = error.inner();
    let message = inner.message();
    let line = inner.span().filter(|s| s.start <= text.len()).map(|s| text[..s.start].matches('\n').count() + 1);
    let key = path_key(error.path());
    match (line, message.strip_prefix("unknown field `").and_then(|rest| rest.split_once('`'))) {
        // The path ends with the unknown key itself (serde_path_to_error records map keys
        // before they are identified); join it on if a deserializer ever stops short.
        (Some(line), Some((field, _))) => {
            let key = if key == field || key.ends_with(&format!(".{field}")) { key } else { join(&key, field) };
            ConfigError::UnknownKey { key, line }
        }
        (Some(line), None) if !key.is_empty() && (message.starts_with("invalid type") || message.starts_with("invalid value")) => {
            ConfigError::BadValue { key, line, message: message.to_owned() }
        }
        _ => ConfigError::Syntax { message: inner.to_string().trim_end().to_owned() },
    }
}

/// `policy.floor` for the path `policy.floor`, `arms.arm_ids` for `arms[0].arm_ids[2]`.
fn path_key(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let keys: Vec<&str> = path
        .iter()
        .filter_map(|segment| match segment {
            Segment::Map { key } | Segment::Enum { variant: key } => Some(key.as_str()),
            Segment::Seq { .. } | Segment::Unknown => None,
        })
        .collect();
    keys.join(".")
}

fn join(table: &str, key: &str) -> String {
    if table.is_empty() {
        key.to_owned()
    } else {
        format!("{table}.{key}")
    }
}

/// Milliseconds in the largest unit that divides them: `86400000` → `24h`.
fn short_duration(ms: u64) -> String {
    match ms {
        0 => "0s".to_owned(),
        ms if ms.is_multiple_of(3_600_000) => format!("{}h", ms / 3_600_000),
        ms if ms.is_multiple_of(60_000) => format!("{}m", ms / 60_000),
        ms if ms.is_multiple_of(1_000) => format!("{}s", ms / 1_000),
        ms => format!("{ms}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "t"
tick = "1m"
window = "24h"
attribution = "30m"
allowed_lateness = "2m"
"#;

    fn with(extra: &str) -> String {
        format!("{MINIMAL}{extra}")
    }

    fn error_of(text: &str) -> String {
        match Dataflow::from_toml_str(text) {
            Ok(dataflow) => panic!("expected an error, got {dataflow:?}"),
            Err(error) => error.to_string(),
        }
    }

    fn assert_error_names(text: &str, expected: &[&str]) {
        let message = error_of(text);
        for part in expected {
            assert!(
                message.contains(part),
                "error `{message}` should contain `{part}`"
            );
        }
    }

    fn arms(entity_id: &str, arm_ids: &[&str]) -> String {
        let ids: Vec<String> = arm_ids.iter().map(|a| format!("{a:?}")).collect();
        format!(
            "\n[[arms]]\nentity_id = {entity_id:?}\narm_ids = [{}]\n",
            ids.join(", ")
        )
    }

    #[test]
    fn valid_full_file_round_trips_to_expected_struct() {
        let text = r#"
name = "homepage"
tick = "500ms"
window = "7days"
attribution = "1h 30m"
allowed_lateness = "0s"
idle_timeout = "45s"
max_future_skew = "10m"
outcome_kinds = ["click", "purchase"]

[prior]
alpha = 2.5
beta = 7

[policy]
min_trials = 50
floor = 0.05
max_step = 0.2
allocation = "static"

[decision]
control = "x"
winner_p_best = 0.99
winner_max_loss = 0.0005
confirm_ticks = 5
on_winner = "exploit"
stop_p_best = 0
allow_stop = true
srm_alpha = 0.01

[[arms]]
entity_id = "hero"
arm_ids = ["a", "b", "c"]
control = "b"
initial_weights = { a = 0.5, b = 0.3 }

[[arms]]
entity_id = "footer"
arm_ids = ["x"]
"#;
        let expected = Dataflow {
            name: "homepage".into(),
            tick_ms: 500,
            window_ms: 7 * 86_400_000,
            attribution_ms: 5_400_000,
            allowed_lateness_ms: 0,
            idle_timeout_ms: 45_000,
            // The default age bound is raised to what can still count: window + attribution.
            limits: Limits { max_future_skew_ms: 600_000, max_age_ms: Some(7 * 86_400_000 + 5_400_000), ..Limits::default() },
            outcome_kinds: Some(vec!["click".into(), "purchase".into()]),
            prior: Prior {
                alpha: 2.5,
                beta: 7.0,
            },
            policy: PolicyConfig {
                min_trials: 50,
                floor: 0.05,
                max_step: Some(0.2),
                new_arm_weight: None,
                reset_on_reactivate: false,
                allocation: Allocation::Static,
            },
            arms: vec![
                ArmDeclaration {
                    entity_id: "hero".into(),
                    arm_ids: vec!["a".into(), "b".into(), "c".into()],
                    control: Some("b".into()),
                    initial_weights: [("a".to_owned(), 0.5), ("b".to_owned(), 0.3)].into_iter().collect(),
                },
                ArmDeclaration {
                    entity_id: "footer".into(),
                    arm_ids: vec!["x".into()],
                    control: None,
                    initial_weights: BTreeMap::new(),
                },
            ],
            decision: DecisionConfig {
                control: Some("x".into()),
                winner_p_best: 0.99,
                winner_max_loss: 0.0005,
                confirm_ticks: 5,
                on_winner: OnWinner::Exploit,
                stop_p_best: 0.0,
                allow_stop: true,
                srm_alpha: 0.01,
            },
        };
        let job = Dataflow::from_toml_str(text).unwrap();
        assert_eq!(job.decision.control_of(&job.arms, "hero"), Some("b"));
        assert_eq!(job.decision.control_of(&job.arms, "footer"), Some("x"));
        assert_eq!(Dataflow::from_toml_str(text).unwrap(), expected);
    }

    #[test]
    fn decision_thresholds_out_of_range_and_unknown_controls_are_refused() {
        for (section, message) in [
            ("[decision]\nwinner_p_best = 0\n", "invalid `decision.winner_p_best`: must be greater than 0 and at most 1 (got 0)"),
            ("[decision]\nconfirm_ticks = 0\n", "invalid `decision.confirm_ticks`: must be at least 1 (got 0)"),
            ("[decision]\nstop_p_best = 1\n", "invalid `decision.stop_p_best`: must be at least 0 and below 1 (got 1)"),
            ("[decision]\nsrm_alpha = 0\n", "invalid `decision.srm_alpha`: must be greater than 0 and below 1 (got 0)"),
            ("[decision]\nwinner_max_loss = -1\n", "invalid `decision.winner_max_loss`: must be a finite number at least 0 (got -1)"),
            ("[decision]\non_winner = \"greedy\"\n", "invalid `decision.on_winner`: \"greedy\" (expected \"keep_exploring\" or \"exploit\")"),
            ("[[arms]]\nentity_id = \"e\"\narm_ids = [\"a\"]\ncontrol = \"z\"\n", "invalid `arms.control` for entity `e`: `z` is not one of its `arm_ids`"),
            ("[policy]\nallocation = \"fixed\"\n", "invalid `policy.allocation`: \"fixed\" (expected \"adaptive\" or \"static\")"),
            ("[[arms]]\nentity_id = \"e\"\narm_ids = [\"a\"]\ninitial_weights = { z = 0.5 }\n", "invalid `arms.initial_weights` for entity `e`: arm `z` is not one of its `arm_ids`"),
            ("[[arms]]\nentity_id = \"e\"\narm_ids = [\"a\"]\ninitial_weights = { a = 0 }\n", "invalid `arms.initial_weights` for entity `e`: arm `a` has weight 0; must be greater than 0 and at most 1"),
            ("[[arms]]\nentity_id = \"e\"\narm_ids = [\"a\"]\ninitial_weights = { a = 1.5 }\n", "invalid `arms.initial_weights` for entity `e`: arm `a` has weight 1.5; must be greater than 0 and at most 1"),
        ] {
            let err = Dataflow::from_toml_str(&format!("{MINIMAL}{section}")).unwrap_err();
            assert_eq!(err.to_string(), message);
        }
        let job = Dataflow::from_toml_str(MINIMAL).unwrap();
        assert_eq!(job.decision, DecisionConfig::default());
        assert_eq!(job.decision.control_of(&job.arms, "any"), None);
    }

    #[test]
    fn defaults_apply_when_optional_keys_are_omitted() {
        let dataflow = Dataflow::from_toml_str(MINIMAL).unwrap();
        assert_eq!(dataflow.idle_timeout_ms, 30_000);
        assert_eq!(dataflow.limits, Limits::default());
        assert_eq!(dataflow.outcome_kinds, None);
        assert_eq!(
            dataflow.prior,
            Prior {
                alpha: 1.0,
                beta: 1.0
            }
        );
        assert_eq!(
            dataflow.policy,
            PolicyConfig {
                min_trials: 100,
                floor: 0.0,
                max_step: None,
                new_arm_weight: None,
                reset_on_reactivate: false,
                allocation: Allocation::Adaptive,
            }
        );
        assert!(dataflow.arms.is_empty());
    }

    #[test]
    fn partial_sections_keep_defaults_for_the_keys_left_out() {
        let dataflow =
            Dataflow::from_toml_str(&with("[prior]\nbeta = 3\n[policy]\nfloor = 0.1\n")).unwrap();
        assert_eq!(
            dataflow.prior,
            Prior {
                alpha: 1.0,
                beta: 3.0
            }
        );
        assert_eq!(dataflow.policy.min_trials, 100);
        assert_eq!(dataflow.policy.floor, 0.1);
        assert_eq!(dataflow.policy.max_step, None);
    }

    #[test]
    fn unknown_top_level_key_is_rejected_naming_it() {
        let text = MINIMAL.replace("window =", "windw =");
        assert_eq!(error_of(&text), "unknown key `windw` at line 4");
    }

    #[test]
    fn unknown_key_in_a_table_is_named_with_its_table() {
        assert_error_names(
            &with("[policy]\nflor = 0.1\n"),
            &["unknown key `policy.flor`"],
        );
        assert_error_names(&with("[prior]\nalfa = 2\n"), &["unknown key `prior.alfa`"]);
        let text = with("[[arms]]\nentity_id = \"e\"\narm_ids = [\"a\"]\narm = \"b\"\n");
        assert_error_names(&text, &["unknown key `arms.arm`"]);
    }

    #[test]
    fn unknown_key_in_an_inline_table_is_named_with_its_table() {
        assert_error_names(&with("policy = { flor = 0.1 }\n"), &["`policy.flor`"]);
    }

    #[test]
    fn dotted_and_quoted_keys_are_named_by_their_full_key() {
        assert_eq!(error_of(&with("policy.flor = 0.1\n")), "unknown key `policy.flor` at line 7");
        assert_eq!(error_of(&with("[policy]\n\"flor\" = 0.1\n")), "unknown key `policy.flor` at line 8");
        assert_eq!(error_of(&with("[\"prior\"]\nalfa = 2\n")), "unknown key `prior.alfa` at line 8");
        assert_eq!(error_of(&with("\"prior\".'alfa' = 2\n")), "unknown key `prior.alfa` at line 7");
        assert_error_names(&with("policy.floor = \"a\"\n"), &["invalid value for `policy.floor` at line 7"]);
        assert_error_names(&with("[policy]\n'min_trials' = -1\n"), &["invalid value for `policy.min_trials` at line 8"]);
        assert_error_names(&with("prior = { 'alpha' = \"x\" }\n"), &["invalid value for `prior.alpha` at line 7"]);
    }

    #[test]
    fn unknown_table_is_rejected_naming_it() {
        assert_error_names(
            &with("[kafak]\nbrokers = \"x\"\n"),
            &["unknown key `kafak`"],
        );
        let text = with("[policy]\nfloor = 0.1\n[metrcs]\nport = 1\n");
        assert_eq!(error_of(&text), "unknown key `metrcs` at line 9");
    }

    #[test]
    fn each_missing_required_key_is_named() {
        for key in ["name", "tick", "window", "attribution", "allowed_lateness"] {
            let text: String = MINIMAL
                .lines()
                .filter(|line| !line.starts_with(&format!("{key} =")))
                .map(|line| format!("{line}\n"))
                .collect();
            assert_eq!(error_of(&text), format!("missing required key `{key}`"));
        }
    }

    #[test]
    fn missing_arm_keys_are_named_with_their_table() {
        assert_eq!(
            error_of(&with("[[arms]]\nentity_id = \"e\"\n")),
            "missing required key `arms.arm_ids`"
        );
        assert_eq!(
            error_of(&with("[[arms]]\narm_ids = [\"a\"]\n")),
            "missing required key `arms.entity_id`"
        );
    }

    #[test]
    fn duration_given_as_a_number_names_the_key() {
        let text = MINIMAL.replace("tick = \"1m\"", "tick = 60000");
        assert_error_names(
            &text,
            &["invalid value for `tick` at line 3", "a duration string"],
        );
    }

    #[test]
    fn value_of_the_wrong_type_names_the_key() {
        assert_error_names(&with("[policy]\nfloor = \"a\"\n"), &["`policy.floor`"]);
        assert_error_names(
            &with("[policy]\nmin_trials = -1\n"),
            &["`policy.min_trials`"],
        );
        assert_error_names(&with("outcome_kinds = \"click\"\n"), &["`outcome_kinds`"]);
        assert_error_names(&with("name2 = 1\n"), &["`name2`"]);
    }

    #[test]
    fn wrong_type_inside_a_multiline_array_names_the_key() {
        let text = with("[[arms]]\nentity_id = \"e\"\narm_ids = [\n  \"a\",\n  3,\n]\n");
        assert_error_names(&text, &["invalid value for `arms.arm_ids` at line 11"]);
    }

    #[test]
    fn malformed_duration_names_the_key() {
        let text = MINIMAL.replace("\"24h\"", "\"24 hourz\"");
        assert_error_names(&text, &["invalid duration for `window`", "24 hourz"]);
        let text = with("idle_timeout = \"soon\"\n");
        assert_error_names(&text, &["invalid duration for `idle_timeout`"]);
    }

    #[test]
    fn sub_millisecond_duration_is_rejected_naming_the_key() {
        let text = MINIMAL.replace("\"2m\"", "\"1500us\"");
        assert_error_names(
            &text,
            &[
                "invalid duration for `allowed_lateness`",
                "whole number of milliseconds",
            ],
        );
    }

    #[test]
    fn zero_tick_is_rejected() {
        let text = MINIMAL.replace("tick = \"1m\"", "tick = \"0s\"");
        assert_eq!(error_of(&text), "invalid `tick`: must be greater than zero");
    }

    #[test]
    fn zero_attribution_is_rejected() {
        let text = MINIMAL.replace("\"30m\"", "\"0ms\"");
        assert_eq!(
            error_of(&text),
            "invalid `attribution`: must be greater than zero"
        );
    }

    #[test]
    fn zero_idle_timeout_is_rejected() {
        assert_eq!(
            error_of(&with("idle_timeout = \"0s\"\n")),
            "invalid `idle_timeout`: must be greater than zero"
        );
    }

    #[test]
    fn window_not_longer_than_attribution_is_rejected() {
        let text = MINIMAL.replace("\"24h\"", "\"30m\"");
        assert_eq!(
            error_of(&text),
            "invalid `window`: must be longer than `attribution` (30m <= 30m)"
        );
        let text = MINIMAL.replace("\"24h\"", "\"1500s\"");
        assert_eq!(
            error_of(&text),
            "invalid `window`: must be longer than `attribution` (25m <= 30m)"
        );
    }

    #[test]
    fn empty_name_is_rejected() {
        let text = MINIMAL.replace("name = \"t\"", "name = \"\"");
        assert_eq!(error_of(&text), "invalid `name`: must not be empty");
    }

    #[test]
    fn empty_outcome_kinds_is_rejected() {
        assert_error_names(&with("outcome_kinds = []\n"), &["invalid `outcome_kinds`"]);
        assert_error_names(
            &with("outcome_kinds = [\"\"]\n"),
            &["invalid `outcome_kinds`"],
        );
    }

    #[test]
    fn prior_must_be_positive_and_finite() {
        for (table, key) in [
            ("[prior]\nalpha = 0\n", "`prior.alpha`"),
            ("[prior]\nbeta = -1.5\n", "`prior.beta`"),
            ("[prior]\nalpha = inf\n", "`prior.alpha`"),
            ("[prior]\nbeta = nan\n", "`prior.beta`"),
        ] {
            assert_error_names(&with(table), &["invalid ", key]);
        }
    }

    #[test]
    fn floor_outside_zero_to_one_is_rejected() {
        for floor in ["1.0", "1.5", "-0.1", "nan"] {
            assert_error_names(
                &with(&format!("[policy]\nfloor = {floor}\n")),
                &["invalid `policy.floor`", "below 1"],
            );
        }
    }

    #[test]
    fn floor_too_high_for_declared_arms_names_floor_and_entity() {
        let text = with(&format!(
            "[policy]\nfloor = 0.25\n{}",
            arms("hero", &["a", "b", "c", "d"])
        ));
        assert_error_names(
            &text,
            &["invalid `policy.floor`", "entity `hero`", "4 arms"],
        );
    }

    #[test]
    fn floor_below_one_over_declared_arms_is_accepted() {
        let text = with(&format!(
            "[policy]\nfloor = 0.24\n{}",
            arms("hero", &["a", "b", "c", "d"])
        ));
        assert_eq!(Dataflow::from_toml_str(&text).unwrap().policy.floor, 0.24);
    }

    #[test]
    fn new_arm_weight_outside_zero_to_one_is_rejected() {
        for weight in ["0", "1", "-0.1", "1.5"] {
            assert_error_names(&with(&format!("[policy]\nnew_arm_weight = {weight}\n")), &["invalid `policy.new_arm_weight`"]);
        }
        let job = Dataflow::from_toml_str(&with("[policy]\nnew_arm_weight = 0.1\n")).expect("valid");
        assert_eq!(job.policy.new_arm_weight, Some(0.1));
    }

    #[test]
    fn max_step_outside_zero_to_one_is_rejected() {
        for step in ["0", "-0.1", "1.01", "nan"] {
            assert_error_names(
                &with(&format!("[policy]\nmax_step = {step}\n")),
                &["invalid `policy.max_step`"],
            );
        }
        let text = with("[policy]\nmax_step = 1\n");
        assert_eq!(
            Dataflow::from_toml_str(&text).unwrap().policy.max_step,
            Some(1.0)
        );
    }

    #[test]
    fn empty_arm_ids_is_rejected() {
        assert_eq!(
            error_of(&with(&arms("hero", &[]))),
            "invalid `arms.arm_ids` for entity `hero`: must name at least one arm"
        );
    }

    #[test]
    fn duplicate_arm_id_is_rejected() {
        assert_eq!(
            error_of(&with(&arms("hero", &["a", "b", "a"]))),
            "invalid `arms.arm_ids` for entity `hero`: arm `a` is listed twice"
        );
    }

    #[test]
    fn entity_declared_twice_is_rejected() {
        let text = with(&format!("{}{}", arms("hero", &["a"]), arms("hero", &["b"])));
        assert_eq!(
            error_of(&text),
            "invalid `arms.entity_id`: entity `hero` is declared twice"
        );
    }

    #[test]
    fn ids_must_be_1_to_128_bytes() {
        let long = "x".repeat(129);
        assert_error_names(
            &with(&arms("", &["a"])),
            &["invalid `arms.entity_id`", "0 bytes"],
        );
        assert_error_names(
            &with(&arms(&long, &["a"])),
            &["invalid `arms.entity_id`", "129 bytes"],
        );
        assert_error_names(
            &with(&arms("e", &[""])),
            &["invalid `arms.arm_ids`", "0 bytes"],
        );
        // 65 two-byte characters: 130 bytes, 65 characters.
        let wide = "é".repeat(65);
        assert_error_names(
            &with(&arms("e", &[&wide])),
            &["invalid `arms.arm_ids`", "130 bytes"],
        );
        let longest = "y".repeat(128);
        assert!(Dataflow::from_toml_str(&with(&arms(&longest, &[&longest]))).is_ok());
    }

    #[test]
    fn invalid_toml_is_reported_with_its_line() {
        assert_error_names(&with("[policy\n"), &["invalid TOML", "line 7"]);
        assert_error_names(
            &with("name = \"again\"\n"),
            &["invalid TOML", "duplicate key `name`"],
        );
    }

    #[test]
    fn load_reads_a_valid_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.toml");
        std::fs::write(&path, MINIMAL).unwrap();
        assert_eq!(Dataflow::load(&path).unwrap().name, "t");
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.toml");
        let message = Dataflow::load(&missing).unwrap_err().to_string();
        assert!(message.contains("missing.toml"), "{message}");

        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, MINIMAL.replace("\"1m\"", "\"0s\"")).unwrap();
        let message = Dataflow::load(&bad).unwrap_err().to_string();
        assert!(message.contains("bad.toml"), "{message}");
        assert!(message.contains("invalid `tick`"), "{message}");
    }

    #[test]
    fn config_error_can_cross_threads_and_be_wrapped() {
        fn assert_error<E: std::error::Error + Send + Sync + 'static>() {}
        assert_error::<ConfigError>();
    }

    #[test]
    fn durations_in_messages_use_the_largest_whole_unit() {
        assert_eq!(short_duration(86_400_000), "24h");
        assert_eq!(short_duration(1_800_000), "30m");
        assert_eq!(short_duration(90_000), "90s");
        assert_eq!(short_duration(1_500), "1500ms");
        assert_eq!(short_duration(0), "0s");
    }

    #[test]
    fn limits_are_read_from_their_table_and_checked() {
        let with = |table: &str| Dataflow::from_toml_str(&format!("{MINIMAL}\n{table}"));
        let limits = with("[limits]\nmax_record_bytes = 1000\nmax_id_bytes = 16\nmax_future_skew = \"5m\"\nmax_age = \"2d\"\nmax_entities = 9\nmax_arms_per_entity = 4\nmax_pending_assignments = 7\nmax_outcomes_per_assignment = 2\nrequire_declared_arms = true").unwrap().limits;
        assert_eq!(limits, Limits { max_record_bytes: 1000, max_id_bytes: 16, max_future_skew_ms: 300_000, max_age_ms: Some(2 * 86_400_000), max_entities: 9, max_arms_per_entity: 4, max_pending_assignments: 7, max_outcomes_per_assignment: 2, require_declared_arms: true });
        let zero = with("[limits]\nmax_id_bytes = 0").unwrap_err().to_string();
        assert!(zero.contains("limits.max_id_bytes") && zero.contains("greater than zero"), "{zero}");
        let typo = with("[limits]\nmax_ids = 3").unwrap_err().to_string();
        assert!(typo.contains("limits.max_ids"), "{typo}");
        let twice = Dataflow::from_toml_str(&format!("max_future_skew = \"1m\"\n{MINIMAL}\n[limits]\nmax_future_skew = \"2m\"")).unwrap_err().to_string();
        assert!(twice.contains("max_future_skew") && twice.contains("limits.max_future_skew"), "{twice}");
    }
}
