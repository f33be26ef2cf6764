//! Synthetic experiment traffic: JSON-lines files of assignments and outcomes whose true
//! conversion rates are known ([`true_rate`]), for benchmarks, soak runs and end-to-end tests.
//!
//! Everything written is a function of the [`TrafficSpec`], its seed included: the same spec
//! gives the same bytes. `banditflow generate` writes it to files.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Default of [`TrafficSpec::assignments_out`].
pub const DEFAULT_ASSIGNMENTS_OUT: &str = "assignments.jsonl";
/// Default of [`TrafficSpec::outcomes_out`].
pub const DEFAULT_OUTCOMES_OUT: &str = "outcomes.jsonl";
/// Default of [`TrafficSpec::count`].
pub const DEFAULT_COUNT: u64 = 100_000;
/// Default of [`TrafficSpec::entities`].
pub const DEFAULT_ENTITIES: u32 = 100;
/// Default of [`TrafficSpec::arms`].
pub const DEFAULT_ARMS: u32 = 4;
/// Default of [`TrafficSpec::rate`].
pub const DEFAULT_RATE: f64 = 0.05;
/// Default of [`TrafficSpec::start_ms`]: 2026-01-01T00:00:00Z.
pub const DEFAULT_START_MS: i64 = 1_767_225_600_000;
/// Default of [`TrafficSpec::duration_ms`]: 24 hours.
pub const DEFAULT_DURATION_MS: u64 = 86_400_000;
/// Default of [`TrafficSpec::attribution_ms`]: 30 minutes.
pub const DEFAULT_ATTRIBUTION_MS: u64 = 1_800_000;
/// Default of [`TrafficSpec::seed`].
pub const DEFAULT_SEED: u64 = 1;

/// Share of converting assignments that get a second outcome (a duplicate conversion).
const SECOND_OUTCOME_SHARE: f64 = 0.1;
/// The outcome delay is exponential with mean `attribution / DELAY_MEAN_DIVISOR`, so about
/// `e^-4` ≈ 1.8% of outcomes land after the attribution window.
const DELAY_MEAN_DIVISOR: f64 = 4.0;
/// The `kind` of every outcome written.
const OUTCOME_KIND: &str = "click";
/// Largest duration, attribution or disorder accepted: about 100 years, so that no timestamp
/// arithmetic can overflow.
const MAX_SPAN_MS: u64 = 1 << 42;
/// Largest |start| accepted, for the same reason.
const MAX_START_MS: i64 = 1 << 52;
/// Bytes gathered before they are handed to the writer.
const CHUNK: usize = 1 << 16;

/// What traffic to generate (`banditflow generate` takes the same as flags).
///
/// Assignment times are uniform over `[start_ms, start_ms + duration_ms)`; entities and arms
/// are served uniformly; an assignment of `(entity, arm)` converts with probability
/// [`true_rate`]`(seed, rate, entity, arm)`.
#[derive(Clone, Debug, PartialEq)]
pub struct TrafficSpec {
    /// Where to write the assignments (JSON lines).
    pub assignments_out: PathBuf,

    /// Where to write the outcomes (JSON lines).
    pub outcomes_out: PathBuf,

    /// Number of distinct assignments; duplicate lines (`--duplicates`) come on top.
    pub count: u64,

    /// Number of entities, named `entity-000`, `entity-001`, … (at least 1).
    pub entities: u32,

    /// Number of arms per entity, named `arm-0`, `arm-1`, … (at least 1).
    pub arms: u32,

    /// Mean true conversion rate, in 0..=1; each (entity, arm) gets `rate` times a factor in
    /// 0.6..1.4 (see `true_rate`).
    pub rate: f64,

    /// Start of the traffic, ms since the Unix epoch (default 2026-01-01T00:00:00Z).
    pub start_ms: i64,

    /// Length of the span the assignment times are spread over, in ms (at least 1).
    pub duration_ms: u64,

    /// Attribution window in ms: outcome delays are exponential with mean a quarter of it, so
    /// a few percent of outcomes land after it (they are written all the same).
    pub attribution_ms: u64,

    /// Largest displacement of event times in file order, in ms: every line's `ts` is at most
    /// this far behind the largest `ts` written before it in the same file (0: sorted files).
    pub disorder_ms: u64,

    /// Share of assignments, in 0..=1, whose line is written twice (identical copies).
    pub duplicates: f64,

    /// Seed of everything random.
    pub seed: u64,
}

impl Default for TrafficSpec {
    /// The command line's defaults.
    fn default() -> Self {
        Self {
            assignments_out: PathBuf::from(DEFAULT_ASSIGNMENTS_OUT),
            outcomes_out: PathBuf::from(DEFAULT_OUTCOMES_OUT),
            count: DEFAULT_COUNT,
            entities: DEFAULT_ENTITIES,
            arms: DEFAULT_ARMS,
            rate: DEFAULT_RATE,
            start_ms: DEFAULT_START_MS,
            duration_ms: DEFAULT_DURATION_MS,
            attribution_ms: DEFAULT_ATTRIBUTION_MS,
            disorder_ms: 0,
            duplicates: 0.0,
            seed: DEFAULT_SEED,
        }
    }
}

impl TrafficSpec {
    /// Checks that the spec describes traffic this generator can write.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.entities == 0 {
            return Err(SpecError::NoEntities);
        }
        if self.arms == 0 {
            return Err(SpecError::NoArms);
        }
        if !(0.0..=1.0).contains(&self.rate) {
            return Err(SpecError::Share {
                flag: "--rate",
                value: self.rate,
            });
        }
        if !(0.0..=1.0).contains(&self.duplicates) {
            return Err(SpecError::Share {
                flag: "--duplicates",
                value: self.duplicates,
            });
        }
        if self.count > u64::from(u32::MAX) {
            return Err(SpecError::TooManyAssignments {
                count: self.count,
                max: u32::MAX,
            });
        }
        if self.duration_ms == 0 {
            return Err(SpecError::EmptyDuration);
        }
        for (flag, value) in [
            ("--duration-ms", self.duration_ms),
            ("--attribution-ms", self.attribution_ms),
            ("--disorder-ms", self.disorder_ms),
        ] {
            if value > MAX_SPAN_MS {
                return Err(SpecError::SpanTooLong {
                    flag,
                    value,
                    max: MAX_SPAN_MS,
                });
            }
        }
        if !(-MAX_START_MS..=MAX_START_MS).contains(&self.start_ms) {
            return Err(SpecError::StartOutOfRange {
                value: self.start_ms,
                max: MAX_START_MS,
            });
        }
        Ok(())
    }
}

/// A [`TrafficSpec`] this generator cannot write.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    /// `--entities 0`.
    #[error("--entities must be at least 1")]
    NoEntities,
    /// `--arms 0`.
    #[error("--arms must be at least 1")]
    NoArms,
    /// A probability outside 0..=1 (or NaN).
    #[error("{flag} must be within 0..=1, got {value}")]
    Share {
        /// The flag at fault.
        flag: &'static str,
        /// Its value.
        value: f64,
    },
    /// More assignments than the generator can index.
    #[error("--count {count} is more than the generator holds (at most {max})")]
    TooManyAssignments {
        /// The requested count.
        count: u64,
        /// The largest count accepted.
        max: u32,
    },
    /// `--duration-ms 0`.
    #[error("--duration-ms must be at least 1")]
    EmptyDuration,
    /// A span so long that timestamps could overflow.
    #[error("{flag} {value} is longer than the {max} ms accepted")]
    SpanTooLong {
        /// The flag at fault.
        flag: &'static str,
        /// Its value.
        value: u64,
        /// The largest value accepted.
        max: u64,
    },
    /// A start so far from the epoch that timestamps could overflow.
    #[error("--start-ms {value} is outside ±{max}")]
    StartOutOfRange {
        /// The requested start.
        value: i64,
        /// The largest |start| accepted.
        max: i64,
    },
}

/// Why [`generate_files`] failed.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The spec is invalid.
    #[error("invalid traffic spec: {0}")]
    Spec(#[from] SpecError),
    /// An output file could not be created.
    #[error("cannot create {}: {source}", path.display())]
    Create {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Writing an output file failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// What [`generate`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrafficSummary {
    /// Assignment lines written, duplicate copies included.
    pub assignments: u64,
    /// Outcome lines written.
    pub outcomes: u64,
    /// Smallest `ts` in either file (`start_ms` if nothing was written).
    pub first_ts: i64,
    /// Largest `ts` in either file (`start_ms` if nothing was written).
    pub last_ts: i64,
}

impl TrafficSummary {
    /// The summary as a JSON object (what `banditflow generate` prints).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "assignments": self.assignments,
            "outcomes": self.outcomes,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
        })
    }
}

/// Writes the traffic `spec` describes: assignments to `assignments`, outcomes to `outcomes`,
/// one JSON object per line. The writers are not buffered here: pass `BufWriter`s.
///
/// An invalid spec is an [`io::ErrorKind::InvalidInput`] error wrapping a [`SpecError`].
pub fn generate(
    spec: &TrafficSpec,
    assignments: &mut dyn Write,
    outcomes: &mut dyn Write,
) -> io::Result<TrafficSummary> {
    spec.validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let traffic = Traffic::plan(spec);
    traffic.write_assignments(spec, assignments)?;
    traffic.write_outcomes(outcomes)?;
    Ok(traffic.summary(spec))
}

/// Writes the traffic `spec` describes to `spec.assignments_out` and `spec.outcomes_out`
/// (created or truncated), as [`generate`] does.
pub fn generate_files(spec: &TrafficSpec) -> Result<TrafficSummary, GenerateError> {
    spec.validate()?;
    let mut assignments = create(&spec.assignments_out)?;
    let mut outcomes = create(&spec.outcomes_out)?;
    let traffic = Traffic::plan(spec);
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| GenerateError::Write { path, source }
    };
    traffic
        .write_assignments(spec, &mut assignments)
        .and_then(|()| assignments.flush())
        .map_err(write_error(&spec.assignments_out))?;
    traffic
        .write_outcomes(&mut outcomes)
        .and_then(|()| outcomes.flush())
        .map_err(write_error(&spec.outcomes_out))?;
    Ok(traffic.summary(spec))
}

fn create(path: &Path) -> Result<BufWriter<File>, GenerateError> {
    File::create(path)
        .map(|file| BufWriter::with_capacity(1 << 20, file))
        .map_err(|source| GenerateError::Create {
            path: path.to_path_buf(),
            source,
        })
}

/// The true conversion rate of (`entity`, `arm`) for `seed`: `rate` times a factor in
/// 0.6..1.4 that depends only on (`seed`, `entity`, `arm`), capped at 1. It is the
/// probability that an assignment gets at least one outcome; the attributed success rate is
/// slightly lower (about 1.7% of conversions land only after the attribution window).
pub fn true_rate(seed: u64, rate: f64, entity: u32, arm: u32) -> f64 {
    let h = mix64(
        mix64(mix64(seed ^ 0x7472_7565_5f72_6174) ^ u64::from(entity)) ^ (u64::from(arm) << 32),
    );
    let unit = (h >> 11) as f64 / (1u64 << 53) as f64;
    (rate * (0.6 + 0.8 * unit)).clamp(0.0, 1.0)
}

/// SplitMix64's finaliser: a bijection on `u64` that scatters its input's bits.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The id of the `index`-th assignment (in time order): random-looking, unique per index.
fn assignment_id(seed: u64, index: u32) -> u128 {
    // `mix64` is a bijection, so `low` (and the id) differ for different indices.
    let low = mix64(u64::from(index) ^ mix64(seed ^ 0x6964_735f_6c6f_7721));
    let high = mix64(low ^ mix64(seed ^ 0x6964_735f_6869_6768));
    (u128::from(high) << 64) | u128::from(low)
}

/// An independent random stream for one aspect of the traffic, so that changing, say,
/// `--disorder-ms` reorders lines without changing what they say.
fn stream(seed: u64, aspect: u64) -> StdRng {
    StdRng::seed_from_u64(mix64(seed ^ mix64(aspect)))
}

/// One assignment, before it is written.
#[derive(Clone, Copy)]
struct Assignment {
    ts: i64,
    entity: u32,
    arm: u32,
    unit: u32,
}

/// One outcome line: its time and the index of its assignment.
#[derive(Clone, Copy)]
struct Outcome {
    ts: i64,
    assignment: u32,
}

/// The whole traffic, in memory, in file order.
struct Traffic {
    seed: u64,
    /// Sorted by `ts`; the index is what the id is derived from.
    assignments: Vec<Assignment>,
    /// Indices into `assignments`, one per line, in file order (duplicates repeated).
    assignment_lines: Vec<u32>,
    /// In file order.
    outcomes: Vec<Outcome>,
}

impl Traffic {
    /// Draws the traffic of a valid `spec`.
    fn plan(spec: &TrafficSpec) -> Traffic {
        let count = spec.count as usize;
        let mut times = stream(spec.seed, 1);
        let mut serving = stream(spec.seed, 2);
        let mut conversions = stream(spec.seed, 3);
        let mut copies = stream(spec.seed, 4);
        let mut jitter = stream(spec.seed, 5);

        let mut ts: Vec<i64> = (0..count)
            .map(|_| spec.start_ms + times.random_range(0..spec.duration_ms) as i64)
            .collect();
        ts.sort_unstable();

        let delay_mean = spec.attribution_ms as f64 / DELAY_MEAN_DIVISOR;
        let delay = move |rng: &mut StdRng| {
            let u: f64 = rng.random();
            // 1 - u is in (0, 1]: the logarithm is finite and not positive.
            (-(1.0 - u).ln() * delay_mean) as i64
        };

        let mut assignments = Vec::with_capacity(count);
        let mut outcomes = Vec::with_capacity((count as f64 * spec.rate * 1.2) as usize + 16);
        let mut doubled = Vec::new();
        for (index, &ts) in ts.iter().enumerate() {
            let index = index as u32;
            let entity = serving.random_range(0..spec.entities);
            let arm = serving.random_range(0..spec.arms);
            let unit: u32 = serving.random();
            assignments.push(Assignment {
                ts,
                entity,
                arm,
                unit,
            });
            if conversions.random::<f64>() < true_rate(spec.seed, spec.rate, entity, arm) {
                outcomes.push(Outcome {
                    ts: ts + delay(&mut conversions),
                    assignment: index,
                });
                if conversions.random::<f64>() < SECOND_OUTCOME_SHARE {
                    outcomes.push(Outcome {
                        ts: ts + delay(&mut conversions),
                        assignment: index,
                    });
                }
            }
            if spec.duplicates > 0.0 && copies.random::<f64>() < spec.duplicates {
                doubled.push(index);
            }
        }

        let assignment_lines = if spec.disorder_ms == 0 {
            let mut lines = Vec::with_capacity(count + doubled.len());
            let mut doubled = doubled.iter().peekable();
            for index in 0..count as u32 {
                lines.push(index);
                if doubled.next_if_eq(&&index).is_some() {
                    lines.push(index);
                }
            }
            lines
        } else {
            let once = (0..count as u32).map(|index| (assignments[index as usize].ts, index));
            let twice = doubled
                .iter()
                .map(|&index| (assignments[index as usize].ts, index));
            let mut keyed: Vec<(i64, u32)> = once
                .chain(twice)
                .map(|(ts, index)| (ts + jitter.random_range(0..=spec.disorder_ms) as i64, index))
                .collect();
            keyed.sort_unstable();
            keyed.into_iter().map(|(_, index)| index).collect()
        };

        if spec.disorder_ms == 0 {
            outcomes.sort_unstable_by_key(|o| (o.ts, o.assignment));
        } else {
            let mut keyed: Vec<(i64, i64, u32)> = outcomes
                .iter()
                .map(|o| {
                    (
                        o.ts + jitter.random_range(0..=spec.disorder_ms) as i64,
                        o.ts,
                        o.assignment,
                    )
                })
                .collect();
            keyed.sort_unstable();
            outcomes = keyed
                .into_iter()
                .map(|(_, ts, assignment)| Outcome { ts, assignment })
                .collect();
        }

        Traffic {
            seed: spec.seed,
            assignments,
            assignment_lines,
            outcomes,
        }
    }

    fn write_assignments(&self, spec: &TrafficSpec, out: &mut dyn Write) -> io::Result<()> {
        let entity_width = name_width(spec.entities, 3);
        let arm_width = name_width(spec.arms, 1);
        let mut buf = Vec::with_capacity(CHUNK + 512);
        for &index in &self.assignment_lines {
            let a = &self.assignments[index as usize];
            buf.extend_from_slice(b"{\"assignment_id\":\"");
            push_hex(&mut buf, assignment_id(self.seed, index), 32);
            buf.extend_from_slice(b"\",\"entity_id\":\"entity-");
            push_padded(&mut buf, a.entity, entity_width);
            buf.extend_from_slice(b"\",\"arm_id\":\"arm-");
            push_padded(&mut buf, a.arm, arm_width);
            buf.extend_from_slice(b"\",\"unit_id\":\"u-");
            push_hex(&mut buf, u128::from(a.unit), 8);
            buf.extend_from_slice(b"\",\"ts\":");
            push_decimal(&mut buf, a.ts);
            buf.extend_from_slice(b"}\n");
            if buf.len() >= CHUNK {
                out.write_all(&buf)?;
                buf.clear();
            }
        }
        out.write_all(&buf)
    }

    fn write_outcomes(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut buf = Vec::with_capacity(CHUNK + 512);
        for o in &self.outcomes {
            buf.extend_from_slice(b"{\"assignment_id\":\"");
            push_hex(&mut buf, assignment_id(self.seed, o.assignment), 32);
            buf.extend_from_slice(b"\",\"ts\":");
            push_decimal(&mut buf, o.ts);
            buf.extend_from_slice(b",\"kind\":\"");
            buf.extend_from_slice(OUTCOME_KIND.as_bytes());
            buf.extend_from_slice(b"\"}\n");
            if buf.len() >= CHUNK {
                out.write_all(&buf)?;
                buf.clear();
            }
        }
        out.write_all(&buf)
    }

    fn summary(&self, spec: &TrafficSpec) -> TrafficSummary {
        // Assignments are sorted by time and every outcome is at or after its assignment.
        let first_ts = self.assignments.first().map_or(spec.start_ms, |a| a.ts);
        let last_assignment = self.assignments.last().map_or(spec.start_ms, |a| a.ts);
        let last_ts = self
            .outcomes
            .iter()
            .map(|o| o.ts)
            .fold(last_assignment, i64::max);
        TrafficSummary {
            assignments: self.assignment_lines.len() as u64,
            outcomes: self.outcomes.len() as u64,
            first_ts,
            last_ts,
        }
    }
}

/// How many digits the numbers in `count` names get: at least `min_width`, and as many as the
/// largest has, so that names sort like their numbers.
fn name_width(count: u32, min_width: usize) -> usize {
    let mut width = 1;
    let mut largest = count.saturating_sub(1);
    while largest >= 10 {
        largest /= 10;
        width += 1;
    }
    width.max(min_width)
}

/// Appends `value` in decimal, zero-padded to `width` digits.
fn push_padded(buf: &mut Vec<u8>, value: u32, width: usize) {
    let start = buf.len();
    push_decimal(buf, i64::from(value));
    let digits = buf.len() - start;
    if digits < width {
        buf.splice(start..start, std::iter::repeat_n(b'0', width - digits));
    }
}

/// Appends the low `digits` hex digits of `value`, lowercase.
fn push_hex(buf: &mut Vec<u8>, value: u128, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..digits).rev() {
        buf.push(HEX[((value >> (4 * shift)) & 0xf) as usize]);
    }
}

/// Appends `value` in decimal.
fn push_decimal(buf: &mut Vec<u8>, value: i64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = value.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if value < 0 {
        buf.push(b'-');
    }
    buf.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    /// Generates `spec` into memory: (assignment lines, outcome lines, summary).
    fn run(spec: &TrafficSpec) -> (Vec<u8>, Vec<u8>, TrafficSummary) {
        let (mut assignments, mut outcomes) = (Vec::new(), Vec::new());
        let summary =
            generate(spec, &mut assignments, &mut outcomes).expect("generate into memory");
        (assignments, outcomes, summary)
    }

    fn records(bytes: &[u8]) -> Vec<serde_json::Value> {
        let text = std::str::from_utf8(bytes).expect("utf-8");
        text.lines()
            .map(|line| serde_json::from_str(line).expect("a JSON object per line"))
            .collect()
    }

    fn str_field<'a>(record: &'a serde_json::Value, field: &str) -> &'a str {
        record[field]
            .as_str()
            .unwrap_or_else(|| panic!("string field {field} in {record}"))
    }

    fn ts(record: &serde_json::Value) -> i64 {
        record["ts"]
            .as_i64()
            .unwrap_or_else(|| panic!("integer ts in {record}"))
    }

    fn small() -> TrafficSpec {
        TrafficSpec {
            count: 20_000,
            entities: 7,
            arms: 3,
            rate: 0.2,
            ..TrafficSpec::default()
        }
    }

    #[test]
    fn same_seed_gives_identical_bytes() {
        let spec = TrafficSpec {
            disorder_ms: 60_000,
            duplicates: 0.02,
            ..small()
        };
        assert_eq!(run(&spec), run(&spec));
        let other = TrafficSpec {
            seed: 2,
            ..spec.clone()
        };
        assert_ne!(run(&spec).0, run(&other).0);
    }

    #[test]
    fn records_have_the_wire_format() {
        let (assignments, outcomes, _) = run(&TrafficSpec {
            count: 2_000,
            ..small()
        });
        let first = std::str::from_utf8(&assignments)
            .expect("utf-8")
            .lines()
            .next()
            .expect("a line");
        let record: serde_json::Value = serde_json::from_str(first).expect("JSON");
        assert_eq!(record.as_object().map(|o| o.len()), Some(5), "{first}");
        assert!(
            str_field(&record, "entity_id").starts_with("entity-00"),
            "{first}"
        );
        assert!(str_field(&record, "arm_id").starts_with("arm-"), "{first}");
        assert!(str_field(&record, "unit_id").starts_with("u-"), "{first}");
        let outcome = &records(&outcomes)[0];
        assert_eq!(str_field(outcome, "kind"), "click");
        assert_eq!(outcome.as_object().map(|o| o.len()), Some(3), "{outcome}");
    }

    #[test]
    fn assignment_ids_are_unique() {
        let (assignments, _, summary) = run(&TrafficSpec {
            count: 50_000,
            ..small()
        });
        let records = records(&assignments);
        assert_eq!(records.len() as u64, summary.assignments);
        let ids: HashSet<&str> = records
            .iter()
            .map(|r| str_field(r, "assignment_id"))
            .collect();
        assert_eq!(ids.len(), records.len());
        assert!(ids
            .iter()
            .all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())));
    }

    #[test]
    fn every_outcome_names_a_written_assignment() {
        let spec = TrafficSpec {
            disorder_ms: 120_000,
            duplicates: 0.05,
            ..small()
        };
        let (assignments, outcomes, summary) = run(&spec);
        let assignments: HashMap<String, i64> = records(&assignments)
            .iter()
            .map(|r| (str_field(r, "assignment_id").to_owned(), ts(r)))
            .collect();
        let outcomes = records(&outcomes);
        assert_eq!(outcomes.len() as u64, summary.outcomes);
        assert!(outcomes.len() > 1_000, "{} outcomes", outcomes.len());
        for outcome in &outcomes {
            let assigned = assignments.get(str_field(outcome, "assignment_id"));
            assert!(assigned.is_some_and(|&a| a <= ts(outcome)), "{outcome}");
        }
    }

    #[test]
    fn observed_conversion_per_arm_matches_true_rate() {
        let spec = TrafficSpec {
            count: 200_000,
            entities: 2,
            arms: 4,
            rate: 0.1,
            seed: 9,
            ..small()
        };
        let (assignments, outcomes, _) = run(&spec);
        let mut cell_of: HashMap<String, (u32, u32, i64)> = HashMap::new();
        for record in records(&assignments) {
            let entity = str_field(&record, "entity_id")
                .trim_start_matches("entity-")
                .parse()
                .expect("n");
            let arm = str_field(&record, "arm_id")
                .trim_start_matches("arm-")
                .parse()
                .expect("n");
            cell_of.insert(
                str_field(&record, "assignment_id").to_owned(),
                (entity, arm, ts(&record)),
            );
        }
        let mut trials: HashMap<(u32, u32), u64> = HashMap::new();
        for &(entity, arm, _) in cell_of.values() {
            *trials.entry((entity, arm)).or_default() += 1;
        }
        // Converted: any outcome. Attributed: an outcome within the attribution window.
        let mut converted: HashMap<String, bool> = HashMap::new();
        for outcome in records(&outcomes) {
            let id = str_field(&outcome, "assignment_id");
            let (_, _, assigned) = cell_of[id];
            let within = ts(&outcome) <= assigned + spec.attribution_ms as i64;
            *converted.entry(id.to_owned()).or_default() |= within;
        }
        let mut conversions: HashMap<(u32, u32), u64> = HashMap::new();
        for id in converted.keys() {
            let (entity, arm, _) = cell_of[id];
            *conversions.entry((entity, arm)).or_default() += 1;
        }
        assert_eq!(trials.len(), 8);
        for (&(entity, arm), &n) in &trials {
            let p = true_rate(spec.seed, spec.rate, entity, arm);
            let observed = conversions.get(&(entity, arm)).copied().unwrap_or(0) as f64 / n as f64;
            let sigma = (p * (1.0 - p) / n as f64).sqrt();
            assert!(
                (observed - p).abs() <= 5.0 * sigma,
                "({entity}, {arm}): {observed} vs {p} over {n}"
            );
        }
        let attributed = converted.values().filter(|&&within| within).count() as f64;
        let share = attributed / converted.len() as f64;
        assert!((0.97..0.995).contains(&share), "attributed share {share}");
    }

    /// The largest amount by which a line's `ts` is behind an earlier line's.
    fn worst_displacement(records: &[serde_json::Value]) -> i64 {
        let mut largest = i64::MIN;
        let mut worst = 0;
        for record in records {
            largest = largest.max(ts(record));
            worst = worst.max(largest - ts(record));
        }
        worst
    }

    #[test]
    fn disorder_stays_within_bound() {
        let spec = TrafficSpec {
            disorder_ms: 90_000,
            duplicates: 0.01,
            ..small()
        };
        let (assignments, outcomes, _) = run(&spec);
        for records in [records(&assignments), records(&outcomes)] {
            let worst = worst_displacement(&records);
            assert!(worst <= 90_000, "displaced by {worst} ms");
            assert!(worst > 60_000, "hardly disordered: {worst} ms");
        }
    }

    #[test]
    fn without_disorder_files_are_sorted() {
        let (assignments, outcomes, _) = run(&TrafficSpec {
            duplicates: 0.01,
            ..small()
        });
        assert_eq!(worst_displacement(&records(&assignments)), 0);
        assert_eq!(worst_displacement(&records(&outcomes)), 0);
    }

    #[test]
    fn disorder_reorders_but_does_not_change_the_traffic() {
        let sorted = TrafficSpec {
            duplicates: 0.03,
            ..small()
        };
        let shuffled = TrafficSpec {
            disorder_ms: 30_000,
            ..sorted.clone()
        };
        let lines = |bytes: Vec<u8>| {
            let mut lines: Vec<String> = String::from_utf8(bytes)
                .expect("utf-8")
                .lines()
                .map(str::to_owned)
                .collect();
            lines.sort();
            lines
        };
        let (a1, o1, s1) = run(&sorted);
        let (a2, o2, s2) = run(&shuffled);
        assert_ne!(a1, a2);
        assert_eq!(lines(a1), lines(a2));
        assert_eq!(lines(o1), lines(o2));
        assert_eq!(s1, s2);
    }

    #[test]
    fn duplicates_repeat_about_the_requested_share_of_lines() {
        let spec = TrafficSpec {
            duplicates: 0.05,
            disorder_ms: 10_000,
            ..small()
        };
        let (assignments, _, summary) = run(&spec);
        let mut copies: HashMap<&str, u32> = HashMap::new();
        let text = std::str::from_utf8(&assignments).expect("utf-8");
        for line in text.lines() {
            *copies.entry(line).or_default() += 1;
        }
        assert_eq!(copies.len() as u64, spec.count);
        assert!(copies.values().all(|&n| n <= 2));
        let doubled = summary.assignments - spec.count;
        assert!(
            (800..1_200).contains(&doubled),
            "{doubled} of {} doubled",
            spec.count
        );
    }

    #[test]
    fn summary_spans_all_timestamps() {
        let spec = TrafficSpec {
            disorder_ms: 5_000,
            ..small()
        };
        let (assignments, outcomes, summary) = run(&spec);
        let assignments = records(&assignments);
        let all: Vec<i64> = assignments
            .iter()
            .chain(records(&outcomes).iter())
            .map(ts)
            .collect();
        assert_eq!(all.iter().min().copied(), Some(summary.first_ts));
        assert_eq!(all.iter().max().copied(), Some(summary.last_ts));
        let end = spec.start_ms + spec.duration_ms as i64;
        assert!(assignments
            .iter()
            .map(ts)
            .all(|t| (spec.start_ms..end).contains(&t)));
    }

    #[test]
    fn no_assignments_writes_empty_files() {
        let spec = TrafficSpec {
            count: 0,
            ..small()
        };
        let (assignments, outcomes, summary) = run(&spec);
        assert!(assignments.is_empty() && outcomes.is_empty());
        assert_eq!(
            (summary.first_ts, summary.last_ts),
            (spec.start_ms, spec.start_ms)
        );
    }

    #[test]
    fn true_rate_is_deterministic_and_spread_around_rate() {
        let rates: Vec<f64> = (0..100).map(|e| true_rate(3, 0.05, e, e % 4)).collect();
        assert!(rates.iter().all(|&r| (0.03..0.07).contains(&r)));
        let mean = rates.iter().sum::<f64>() / rates.len() as f64;
        assert!((mean - 0.05).abs() < 0.005, "mean {mean}");
        assert_eq!(true_rate(3, 0.05, 7, 2), true_rate(3, 0.05, 7, 2));
        assert_ne!(true_rate(3, 0.05, 7, 2), true_rate(4, 0.05, 7, 2));
        assert!(
            (0..100).all(|e| (0.6..=1.0).contains(&true_rate(3, 1.0, e, 0))),
            "capped at 1"
        );
    }

    #[test]
    fn invalid_spec_is_rejected() {
        let mut sink = Vec::new();
        let mut other = Vec::new();
        for spec in [
            TrafficSpec {
                entities: 0,
                ..small()
            },
            TrafficSpec { arms: 0, ..small() },
            TrafficSpec {
                rate: 1.5,
                ..small()
            },
            TrafficSpec {
                duplicates: f64::NAN,
                ..small()
            },
            TrafficSpec {
                duration_ms: 0,
                ..small()
            },
        ] {
            let err = generate(&spec, &mut sink, &mut other).expect_err("invalid");
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{spec:?}");
        }
        assert!(sink.is_empty() && other.is_empty());
    }

    #[test]
    fn decimal_and_hex_formatting() {
        let mut buf = Vec::new();
        for v in [0, 7, -7, 1_767_225_600_000, i64::MIN, i64::MAX] {
            buf.clear();
            push_decimal(&mut buf, v);
            assert_eq!(buf, v.to_string().into_bytes());
        }
        buf.clear();
        push_hex(&mut buf, 0xabc, 8);
        assert_eq!(buf, b"00000abc");
        let padded = |value, count, min_width| {
            let mut buf = Vec::new();
            push_padded(&mut buf, value, name_width(count, min_width));
            String::from_utf8(buf).expect("ascii")
        };
        assert_eq!(padded(3, 12, 1), "03");
        assert_eq!(padded(3, 4, 1), "3");
        assert_eq!(padded(7, 100, 3), "007");
        assert_eq!(padded(7, 1001, 3), "0007");
        assert_eq!(padded(1234, 1, 3), "1234");
    }
}
