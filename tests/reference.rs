//! The dataflow against a brute-force reference: plain maps, the whole posterior and every
//! arm's decision state recomputed at every tick straight from docs/semantics.md, on random
//! streams with duplicates, conflicts, outcomes before their assignments and outside their
//! interval, uncounted kinds, malformed lines and out-of-order input within the lateness
//! bound, and an arm registry that declares, retires and reactivates arms (its counts kept or
//! reset). The decision thresholds are loose, so states change often in these small streams.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use banditflow_core::config::Dataflow;
use banditflow::replay::{replay_records, Input, ReplayOptions};
use banditflow_core::decision::ArmState;
use banditflow_core::posterior::{best_arm, Beta};
use banditflow_core::record::WeightRecord;
use statrs::distribution::ContinuousCDF;
use statrs::statistics::Distribution;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const T0: i64 = 1_767_225_600_000;
const TICK: i64 = 1_000;
const ATTRIBUTION: i64 = 3_000;
const WINDOW: i64 = 10_000;
const LATENESS: i64 = 2_000;

fn job(reset: bool) -> Dataflow {
    let on_reactivate = if reset { "reset" } else { "keep" };
    Dataflow::from_toml_str(&format!(
        r#"
name = "reference"
tick = "1s"
window = "10s"
attribution = "3s"
allowed_lateness = "2s"
outcome_kinds = ["click"]
[prior]
alpha = 1.0
beta = 2.0
[policy]
min_trials = 2
floor = 0.05
on_reactivate = "{on_reactivate}"
[decision]
winner_p_best = 0.6
winner_max_loss = 0.05
confirm_ticks = 2
stop_p_best = 0.15
"#
    ))
    .expect("valid job")
}

#[derive(Clone, Debug)]
struct A {
    id: String,
    entity: String,
    arm: String,
    ts: i64,
}

#[derive(Clone, Debug)]
struct O {
    id: String,
    ts: i64,
    kind: &'static str,
}

/// An arm registry record.
#[derive(Clone, Debug)]
struct R {
    entity: String,
    arm: String,
    active: bool,
    ts: i64,
}

/// A random registry: per entity up to five records of arms arm0 to arm3 (arm3 never gets
/// traffic), active or retired, at most one per (entity, arm, ts).
fn registry(seed: u64) -> Vec<R> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xa435);
    let mut records: Vec<R> = Vec::new();
    for e in 0..2 {
        for _ in 0..rng.random_range(0..6) {
            let at = rng.random_range(0..30_000);
            let ts = T0 + if rng.random_bool(0.3) { at / TICK * TICK } else { at };
            let record = R { entity: format!("e{e}"), arm: format!("arm{}", rng.random_range(0..4)), active: rng.random_bool(0.5), ts };
            if !records.iter().any(|r| (&r.entity, &r.arm, r.ts) == (&record.entity, &record.arm, record.ts)) {
                records.push(record);
            }
        }
    }
    records
}

/// Drops the assignment copies of an arm retired at their `ts` for more than 10 s. Admission
/// forgets a retired pair `span` (here 14) ticks after its last sighting, with its registry
/// history, and a pair seen again after that is admitted as new (docs/semantics.md, "Caps and
/// forgetting"); the reference does not model forgetting, so its streams stay clear of it.
fn clear_of_forgetting(a: Vec<A>, r: &[R]) -> Vec<A> {
    a.into_iter()
        .filter(|x| {
            let latest = r.iter().filter(|y| y.entity == x.entity && y.arm == x.arm && y.ts <= x.ts).max_by_key(|y| (y.ts, y.active));
            latest.is_none_or(|y| y.active || x.ts <= y.ts + 10_000)
        })
        .collect()
}

/// A random stream: assignment copies within `ATTRIBUTION` of each other (so every copy
/// arrives while an earlier one is pending), outcomes around their assignments.
fn stream(seed: u64) -> (Vec<A>, Vec<O>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let ids = rng.random_range(1..60);
    let span = rng.random_range(1_000..40_000);
    let mut assignments = Vec::new();
    let mut outcomes = Vec::new();
    for i in 0..ids {
        let id = format!("a{i}");
        // Often on a tick boundary, where off-by-one errors live.
        let base = T0 + if rng.random_bool(0.3) { rng.random_range(0..span) / TICK * TICK } else { rng.random_range(0..span) };
        let entity = format!("e{}", rng.random_range(0..2));
        let arm = format!("arm{}", rng.random_range(0..3));
        let copies = if rng.random_bool(0.8) { 1 } else { rng.random_range(2..4) };
        for c in 0..copies {
            let (entity, arm) = if c > 0 && rng.random_bool(0.5) {
                (format!("e{}", rng.random_range(0..2)), format!("arm{}", rng.random_range(0..3)))
            } else {
                (entity.clone(), arm.clone())
            };
            let ts = if c == 0 || rng.random_bool(0.5) { base } else { base + rng.random_range(0..=ATTRIBUTION) };
            assignments.push(A { id: id.clone(), entity, arm, ts });
        }
        for _ in 0..rng.random_range(0..3) {
            let offsets = [-1, 0, 1, ATTRIBUTION - 1, ATTRIBUTION, ATTRIBUTION + 1];
            let ts = base + if rng.random_bool(0.4) { offsets[rng.random_range(0..offsets.len())] } else { rng.random_range(-2_000..6_000) };
            let kind = if rng.random_bool(0.85) { "click" } else { "view" };
            outcomes.push(O { id: id.clone(), ts, kind });
        }
    }
    for i in 0..rng.random_range(0..5) {
        outcomes.push(O { id: format!("nobody{i}"), ts: T0 + rng.random_range(0..span), kind: "click" });
    }
    (assignments, outcomes)
}

/// File order: sorted by `ts + jitter`, jitter below the lateness bound, so every record is
/// within `allowed_lateness` of the largest time before it.
fn shuffle_within_lateness<T>(rng: &mut StdRng, items: Vec<T>, ts: impl Fn(&T) -> i64) -> Vec<T> {
    let mut keyed: Vec<(i64, T)> = items.into_iter().map(|x| (ts(&x) + rng.random_range(0..LATENESS), x)).collect();
    keyed.sort_by_key(|(k, _)| *k);
    keyed.into_iter().map(|(_, x)| x).collect()
}

fn write_files(dir: &std::path::Path, seed: u64, a: &[A], o: &[O], r: &[R]) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let a = shuffle_within_lateness(&mut rng, a.to_vec(), |x| x.ts);
    let o = shuffle_within_lateness(&mut rng, o.to_vec(), |x| x.ts);
    let r = shuffle_within_lateness(&mut rng, r.to_vec(), |x| x.ts);
    let ap = dir.join("assignments.jsonl");
    let op = dir.join("outcomes.jsonl");
    let rp = dir.join("arms.jsonl");
    let mut rf = std::fs::File::create(&rp).expect("create");
    for x in &r {
        let state = if x.active { "active" } else { "retired" };
        writeln!(rf, r#"{{"entity_id":"{}","arm_id":"{}","state":"{state}","ts":{}}}"#, x.entity, x.arm, x.ts).expect("write");
    }
    let mut af = std::fs::File::create(&ap).expect("create");
    for (i, x) in a.iter().enumerate() {
        if i % 17 == 3 {
            writeln!(af, "{{\"assignment_id\": 12}}").expect("write");
        }
        writeln!(af, r#"{{"assignment_id":"{}","entity_id":"{}","arm_id":"{}","unit_id":"u","ts":{}}}"#, x.id, x.entity, x.arm, x.ts)
            .expect("write");
    }
    let mut of = std::fs::File::create(&op).expect("create");
    for (i, x) in o.iter().enumerate() {
        if i % 11 == 5 {
            writeln!(of, "not json at all").expect("write");
        }
        writeln!(of, r#"{{"assignment_id":"{}","ts":{},"kind":"{}"}}"#, x.id, x.ts, x.kind).expect("write");
    }
    (ap, op, rp)
}

type Counts = BTreeMap<String, (u64, u64)>;

/// What the reference expects of a record: its status, and per arm (trials, successes, state).
type Expected = (&'static str, BTreeMap<String, (u64, u64, &'static str)>);

/// One arm's decision state in the reference: its state, and the state a running streak
/// leads to with the tick it started.
#[derive(Clone, Debug)]
struct Track {
    state: &'static str,
    toward: Option<(&'static str, i64)>,
}

/// The decision rules of docs/semantics.md at one tick, over arms in record order with their
/// (trials, p_best, expected loss), for an entity that has `left` burn-in or not; returns the
/// record's status (before a winner) and whether a streak runs or a state changed.
fn decide(tracks: &mut BTreeMap<String, Track>, tick: i64, arms: &[(String, u64, f64, f64)], left: bool) -> (&'static str, bool) {
    let (wp, wl, confirm, sp, min_trials) = (0.6, 0.05, 2, 0.15, 2);
    tracks.retain(|arm, _| arms.iter().any(|a| &a.0 == arm));
    // Burn-in: the entity's while it has not left it (or no arm has its trials), else each
    // short arm's own.
    let short = arms.iter().filter(|a| a.1 < min_trials).count();
    let entity_burn_in = short > 0 && (!left || short == arms.len());
    let status = if arms.is_empty() { "empty" } else if entity_burn_in { "burn_in" } else { "adaptive" };
    let state = |tracks: &BTreeMap<String, Track>, arm: &str| tracks.get(arm).map_or("exploring", |t| t.state);
    let has_winner = arms.iter().any(|a| state(tracks, &a.0) == "winner");
    let open = arms.iter().filter(|a| state(tracks, &a.0) != "stopped").count();
    // The leader: largest p_best, first by arm id among equals.
    let mut top: Option<&(String, u64, f64, f64)> = None;
    for a in arms {
        if top.is_none_or(|t| a.2 > t.2) {
            top = Some(a);
        }
    }
    let mut busy = false;
    for (arm, trials, p, loss) in arms {
        let burn_in = entity_burn_in || *trials < min_trials;
        let wins = *p >= wp && *loss <= wl;
        let track = tracks.entry(arm.clone()).or_insert(Track { state: "exploring", toward: None });
        let goal = match track.state {
            "stopped" => None,
            "winner" => (burn_in || !wins).then_some("exploring"),
            _ if burn_in => None,
            _ if !has_winner && arms.len() > 1 && top.is_some_and(|t| &t.0 == arm) && wins => Some("winner"),
            _ if *p < sp && open > 1 => Some("stopped"),
            _ => None,
        };
        track.toward = match (goal, track.toward) {
            (None, _) => None,
            (Some(g), Some((to, since))) if to == g => Some((g, since)),
            (Some(g), _) => Some((g, tick)),
        };
        if let Some((to, since)) = track.toward {
            if tick - since + 1 >= confirm {
                track.state = to;
                track.toward = None;
                busy = true;
            }
        }
        busy |= track.toward.is_some();
    }
    (status, busy)
}

/// docs/semantics.md, recomputed from scratch at every tick: the expected (entity, version) →
/// per-arm (trials, successes, state), for every tick at which an entity's counts changed, a
/// registry record of it took effect, or a decision streak ran (or a state changed) at its
/// previous record.
fn reference(a: &[A], o: &[O], r: &[R], reset: bool) -> BTreeMap<(String, u64), Expected> {
    let job = job(reset);
    // Registry records in the order they apply: by ts, a retirement before an activation.
    let mut registry: Vec<&R> = r.iter().collect();
    registry.sort_by_key(|x| (x.ts, x.active));
    // Whether the arm is retired at `ts`: its latest record at or before `ts` says so.
    let retired_at = |entity: &str, arm: &str, ts: i64| {
        registry.iter().rev().find(|x| x.entity == entity && x.arm == arm && x.ts <= ts).is_some_and(|x| !x.active)
    };
    // Reactivations (an activation right after a retirement of the same arm), by tick.
    let reactivations: Vec<(&str, &str, i64)> = registry
        .iter()
        .enumerate()
        .filter(|(i, x)| x.active && registry[..*i].iter().rev().find(|y| y.entity == x.entity && y.arm == x.arm).is_some_and(|y| !y.active))
        .map(|(_, x)| (x.entity.as_str(), x.arm.as_str(), x.ts.div_euclid(TICK)))
        .collect();
    let mut winners: HashMap<&str, &A> = HashMap::new();
    for x in a {
        let key = |y: &A| (y.ts, y.entity.clone(), y.arm.clone());
        winners.entry(&x.id).and_modify(|w| if key(x) < key(w) { *w = x }).or_insert(x);
    }
    let counted: Vec<&O> = o.iter().filter(|x| x.kind == "click").collect();
    let success = |w: &A| counted.iter().any(|x| x.id == w.id && w.ts <= x.ts && x.ts <= w.ts + ATTRIBUTION);
    let last_tick = a.iter().map(|x| x.ts).chain(counted.iter().map(|x| x.ts)).chain(r.iter().map(|x| x.ts)).max().expect("data") / TICK;
    let first_tick = T0 / TICK;
    let entities: Vec<String> = (0..2).map(|e| format!("e{e}")).collect();
    let mut previous: HashMap<String, Counts> = HashMap::new();
    let mut tracks: HashMap<String, BTreeMap<String, Track>> = HashMap::new();
    let mut again: HashMap<String, bool> = HashMap::new();
    // Per entity, whether its last record was out of burn-in, and whether it had arms.
    let mut left: HashMap<String, bool> = HashMap::new();
    let mut had_arms: HashMap<String, bool> = HashMap::new();
    // Per entity and arm, its registry standing as of the tick.
    let mut standing: HashMap<(String, String), bool> = HashMap::new();
    let mut expected = BTreeMap::new();
    for tick in first_tick..=last_tick {
        let as_of = (tick + 1) * TICK - 1;
        for entity in &entities {
            let entity_tracks = tracks.entry(entity.clone()).or_default();
            let mut touched = false;
            let mut redeclared = false;
            for x in registry.iter().filter(|x| &x.entity == entity && x.ts.div_euclid(TICK) == tick) {
                touched = true;
                // A stopped arm declared active again explores from now on.
                if let Some(track) = entity_tracks.get_mut(&x.arm).filter(|t| x.active && t.state == "stopped") {
                    *track = Track { state: "exploring", toward: None };
                    redeclared = true;
                }
                standing.insert((entity.clone(), x.arm.clone()), x.active);
            }
            // The window: resolved assignments not retired at their ts, and (with reset) not
            // resolved before a later reactivation of their arm.
            let mut counts = Counts::new();
            for w in winners.values().filter(|w| &w.entity == entity) {
                let entered = (w.ts + ATTRIBUTION).div_euclid(TICK);
                let reset_away = reset && reactivations.iter().any(|(e, arm, at)| *e == w.entity && *arm == w.arm && entered < *at && *at <= tick);
                if as_of - WINDOW < w.ts && w.ts <= as_of - ATTRIBUTION && !retired_at(&w.entity, &w.arm, w.ts) && !reset_away {
                    let c = counts.entry(w.arm.clone()).or_insert((0, 0));
                    c.0 += 1;
                    c.1 += u64::from(success(w));
                }
            }
            let before = previous.get(entity).cloned().unwrap_or_default();
            if counts != before || touched || again.get(entity).copied().unwrap_or(false) {
                // The record's arms: those in the window or active on the registry, minus the
                // retired, in name order.
                let mut shown = counts.clone();
                for ((e, arm), active) in &standing {
                    if e == entity && *active {
                        shown.entry(arm.clone()).or_insert((0, 0));
                    }
                }
                shown.retain(|arm, _| standing.get(&(entity.clone(), arm.clone())).is_none_or(|active| *active));
                let posteriors: Vec<Beta> = shown
                    .values()
                    .map(|(t, s)| Beta { alpha: job.prior.alpha + *s as f64, beta: job.prior.beta + (*t - *s) as f64 })
                    .collect();
                let odds = best_arm(&posteriors);
                let arms: Vec<(String, u64, f64, f64)> =
                    shown.iter().enumerate().map(|(i, (arm, (t, _)))| (arm.clone(), *t, odds.p_best[i], odds.expected_loss[i])).collect();
                let (status, busy) = decide(entity_tracks, tick, &arms, left.get(entity).copied().unwrap_or(false));
                again.insert(entity.clone(), busy || redeclared);
                let states: BTreeMap<_, _> = shown.iter().map(|(arm, (t, s))| (arm.clone(), (*t, *s, entity_tracks[arm].state))).collect();
                let status = if states.values().any(|s| s.2 == "winner") { "winner" } else { status };
                // No arms: one record saying so after a record with arms, else none.
                if !shown.is_empty() || had_arms.get(entity).copied().unwrap_or(false) {
                    left.insert(entity.clone(), status != "burn_in");
                    had_arms.insert(entity.clone(), !shown.is_empty());
                    expected.insert((entity.clone(), as_of as u64), (status, states));
                }
            }
            previous.insert(entity.clone(), counts);
        }
    }
    expected
}

fn run(ap: &std::path::Path, op: &std::path::Path, rp: &std::path::Path, reset: bool, workers: usize) -> Vec<WeightRecord> {
    // Small blocks, so that every worker reads a share of these small files.
    let options = ReplayOptions {
        workers,
        block_bytes: 2_048,
        arms: Some(Input::File(rp.to_owned())),
        ..ReplayOptions::new(job(reset), Input::File(ap.to_owned()), Input::File(op.to_owned()))
    };
    let (records, summary) = replay_records(&options).expect("replay runs");
    assert_eq!(summary.counters.late + summary.counters.too_late + summary.counters.too_old, 0, "{:?}", summary.counters);
    records
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn dataflow_agrees_with_brute_force_reference_at_every_tick(seed in any::<u64>(), workers in 1usize..=3, reset in any::<bool>()) {
        let (a, o) = stream(seed);
        let arms = registry(seed);
        let a = clear_of_forgetting(a, &arms);
        let dir = tempfile::tempdir().expect("tempdir");
        let (ap, op, rp) = write_files(dir.path(), seed, &a, &o, &arms);
        let records = run(&ap, &op, &rp, reset, workers);
        let expected = reference(&a, &o, &arms, reset);
        let mut got = BTreeMap::new();
        for r in &records {
            let job = job(reset);
            let mut counts = BTreeMap::new();
            for arm in &r.arms {
                prop_assert_eq!(arm.alpha, job.prior.alpha + arm.successes as f64);
                prop_assert_eq!(arm.beta, job.prior.beta + (arm.trials - arm.successes) as f64);
                let posterior = statrs::distribution::Beta::new(arm.alpha, arm.beta).expect("a posterior");
                prop_assert!((arm.mean - posterior.mean().expect("a mean")).abs() < 1e-12);
                prop_assert!((arm.ci95[0] - posterior.inverse_cdf(0.025)).abs() < 3e-7, "{:?}", arm);
                prop_assert!((arm.ci95[1] - posterior.inverse_cdf(0.975)).abs() < 3e-7, "{:?}", arm);
                let state = match arm.state {
                    ArmState::Exploring => "exploring",
                    ArmState::Winner => "winner",
                    ArmState::Stopped => "stopped",
                };
                counts.insert(arm.arm_id.clone(), (arm.trials, arm.successes, state));
            }
            if r.arms.iter().any(|a| a.state == ArmState::Stopped) {
                prop_assert!(r.arms.iter().filter(|a| a.state == ArmState::Stopped).all(|a| a.weight <= job.policy.floor + 1e-12), "{:?}", r);
            }
            prop_assert!(got.insert((r.entity_id.clone(), r.version), (r.status.as_str(), counts)).is_none(), "one record per entity and tick");
        }
        prop_assert_eq!(got, expected);
    }
}
