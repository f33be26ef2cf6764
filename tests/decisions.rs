//! Decision rules through the whole dataflow, on a constructed stream whose leader changes
//! half-way: arm `a` converts at 50% and `b` at 10%, then the other way round. `a` becomes the
//! winner, `b` is stopped; as the window slides `a`'s lead falls away and its win clears; the
//! arm registry re-declares `b`, which then wins. Every event fires exactly at the
//! `confirm_ticks`-th consecutive tick of its condition, a stopped arm never gets more than
//! its cap, and the output is the same for 1, 2 and 4 workers.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use banditflow::replay::{replay_with_decisions, Input, ReplayOptions};
use banditflow_core::config::Dataflow;
use banditflow_core::decision::{ArmState, Rule};
use banditflow_core::record::{DecisionEvent, WeightRecord};

const T0: i64 = 1_767_225_600_000;
const TICK: i64 = 1_000;
const CONFIRM: usize = 3;
const WINNER_P_BEST: f64 = 0.95;
const WINNER_MAX_LOSS: f64 = 0.001;
const STOP_P_BEST: f64 = 0.001;
const FLOOR: f64 = 0.05;

fn job(allow_stop: bool) -> Dataflow {
    Dataflow::from_toml_str(&format!(
        "name = \"decisions\"\ntick = \"1s\"\nwindow = \"20s\"\nattribution = \"1s\"\nallowed_lateness = \"0s\"\n\
         [policy]\nmin_trials = 20\nfloor = {FLOOR}\nmax_step = 0.2\n\
         [decision]\nwinner_p_best = {WINNER_P_BEST}\nwinner_max_loss = {WINNER_MAX_LOSS}\nconfirm_ticks = {CONFIRM}\n\
         stop_p_best = {STOP_P_BEST}\nallow_stop = {allow_stop}\non_winner = \"exploit\"\ncontrol = \"a\"\n"
    ))
    .expect("valid job")
}

fn write(path: &Path, lines: &[String]) {
    let mut f = std::fs::File::create(path).expect("create");
    for l in lines {
        writeln!(f, "{l}").expect("write");
    }
}

/// 80 seconds, 40 assignments per arm and second; the rates swap at 30 s; `b` is
/// re-declared at 50 s.
fn files(dir: &Path) -> (Input, Input, Input) {
    let (mut assignments, mut outcomes) = (Vec::new(), Vec::new());
    for second in 0..80i64 {
        for i in 0..40i64 {
            for (arm, good) in [("a", second < 30), ("b", second >= 30)] {
                let id = format!("{arm}-{second}-{i}");
                let ts = T0 + second * TICK + i * 20;
                assignments.push(format!(r#"{{"assignment_id":"{id}","entity_id":"e","arm_id":"{arm}","ts":{ts}}}"#));
                let converts = if good { i % 2 == 0 } else { i % 10 == 0 };
                if converts {
                    outcomes.push(format!(r#"{{"assignment_id":"{id}","ts":{}}}"#, ts + 200));
                }
            }
        }
    }
    let arms = vec![format!(r#"{{"entity_id":"e","arm_id":"b","state":"active","ts":{}}}"#, T0 + 50 * TICK)];
    let paths = ["a.jsonl", "o.jsonl", "arms.jsonl"].map(|f| dir.join(f));
    write(&paths[0], &assignments);
    write(&paths[1], &outcomes);
    write(&paths[2], &arms);
    let [a, o, r] = paths;
    (Input::File(a), Input::File(o), Input::File(r))
}

fn run(dir: &Path, workers: usize, allow_stop: bool) -> (Vec<WeightRecord>, Vec<DecisionEvent>) {
    let (a, o, arms) = files(dir);
    let options = ReplayOptions { workers, arms: Some(arms), block_bytes: 16_384, ..ReplayOptions::new(job(allow_stop), a, o) };
    let (records, decisions, summary) = replay_with_decisions(&options).expect("replay");
    assert_eq!(summary.counters.decisions_written, decisions.len() as u64);
    (records, decisions)
}

/// Whether `rule`'s condition holds for `arm` in `record`.
fn holds(rule: Rule, record: &WeightRecord, arm: &str) -> bool {
    let a = record.arms.iter().find(|x| x.arm_id == arm).expect("arm in record");
    let wins = a.p_best >= WINNER_P_BEST && a.expected_loss <= WINNER_MAX_LOSS;
    match rule {
        Rule::Winner => wins,
        Rule::WinnerCleared => !wins,
        Rule::Stop => a.p_best < STOP_P_BEST,
        Rule::Redeclared => true,
    }
}

fn state(record: &WeightRecord, arm: &str) -> ArmState {
    record.arms.iter().find(|x| x.arm_id == arm).map_or(ArmState::Exploring, |a| a.state)
}

#[test]
fn rules_fire_and_clear_at_the_confirm_ticks_th_consecutive_tick_and_a_stop_caps_the_arm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (records, decisions) = run(dir.path(), 1, true);
    let rules: Vec<(Rule, &str)> = decisions.iter().map(|d| (d.rule, d.arm_id.as_str())).collect();
    for expected in [(Rule::Winner, "a"), (Rule::Stop, "b"), (Rule::WinnerCleared, "a"), (Rule::Redeclared, "b"), (Rule::Winner, "b")] {
        assert!(rules.contains(&expected), "no {expected:?} in {rules:?}");
    }
    // While a streak runs the entity gets a record at every tick, so the streak is the
    // records at the event's version and the CONFIRM - 1 ticks before it.
    let at = |version: u64| records.iter().find(|r| r.version == version);
    let as_of_or_before = |version: u64| records.iter().rev().find(|r| r.version <= version);
    for event in &decisions {
        let record = at(event.version).expect("the event's record");
        assert_eq!(state(record, &event.arm_id), event.new_state, "the record carries the new state: {event:?}");
        assert_eq!(event.thresholds.confirm_ticks as usize, CONFIRM);
        let stat = record.arms.iter().find(|a| a.arm_id == event.arm_id).expect("arm");
        assert_eq!((event.statistics.p_best, event.statistics.trials), (stat.p_best, stat.trials));
        if event.rule == Rule::Redeclared {
            continue;
        }
        for back in 0..CONFIRM as u64 {
            let r = at(event.version - back * TICK as u64).unwrap_or_else(|| panic!("no record {back} ticks before {event:?}"));
            assert!(holds(event.rule, r, &event.arm_id), "{:?} does not hold {back} ticks before {event:?}", event.rule);
        }
        // ...and not at the tick before those (or the arm was in another state then).
        if let Some(before) = as_of_or_before(event.version - CONFIRM as u64 * TICK as u64) {
            // (A stop also waits while every other arm is stopped: the last one never is.)
            let others_stopped = before.arms.iter().filter(|x| x.arm_id != event.arm_id).all(|x| x.state == ArmState::Stopped);
            let guarded = event.rule == Rule::Stop && others_stopped;
            assert!(!holds(event.rule, before, &event.arm_id) || state(before, &event.arm_id) != event.old_state || guarded, "{event:?} fired late");
        }
    }
    // From its stop until it is re-declared, `b` gets nothing (allow_stop) however good it gets.
    let stop = decisions.iter().find(|d| d.rule == Rule::Stop).expect("stop").version;
    let redeclared = decisions.iter().find(|d| d.rule == Rule::Redeclared).expect("redeclared").version;
    let stopped: Vec<&WeightRecord> = records.iter().filter(|r| r.version >= stop && r.version < redeclared).collect();
    assert!(stopped.len() > 10, "b stays stopped for a while");
    assert!(stopped.iter().all(|r| r.arms[1].weight == 0.0 && r.arms[1].state == ArmState::Stopped), "a stopped arm gets its cap, 0");
    assert!(stopped.iter().any(|r| r.arms[1].p_best > 0.5), "b got better while stopped: the stop held anyway");
    // `exploit`: while a winner stands, the others get the floor (or their cap).
    for r in records.iter().filter(|r| r.arms.iter().any(|a| a.state == ArmState::Winner)) {
        for arm in r.arms.iter().filter(|a| a.state == ArmState::Exploring) {
            assert!(arm.weight <= FLOOR + 0.2 + 1e-12, "walking to the floor under the step limit: {r:?}");
        }
    }
}

#[test]
fn without_allow_stop_a_stopped_arm_keeps_exactly_the_floor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (records, decisions) = run(dir.path(), 1, false);
    let stop = decisions.iter().find(|d| d.rule == Rule::Stop).expect("stop").version;
    let redeclared = decisions.iter().find(|d| d.rule == Rule::Redeclared).expect("redeclared").version;
    for r in records.iter().filter(|r| r.version >= stop && r.version < redeclared) {
        assert!(r.arms[1].weight <= FLOOR + 1e-12, "{r:?}");
    }
}

#[test]
fn decisions_and_records_are_the_same_for_1_2_and_4_workers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let strip = |records: Vec<WeightRecord>| -> Vec<WeightRecord> { records.into_iter().map(|r| WeightRecord { computed_at: 0, ..r }).collect() };
    let (records, decisions) = run(dir.path(), 1, true);
    assert!(!decisions.is_empty());
    let one: BTreeMap<u64, WeightRecord> = strip(records).into_iter().map(|r| (r.version, r)).collect();
    for workers in [2, 4] {
        let (r, d) = run(dir.path(), workers, true);
        assert_eq!(d, decisions, "{workers} workers");
        let many: BTreeMap<u64, WeightRecord> = strip(r).into_iter().map(|r| (r.version, r)).collect();
        assert_eq!(many, one, "{workers} workers");
    }
}

fn validator(file: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas").join(file)).expect("schema");
    jsonschema::draft202012::new(&serde_json::from_str(&text).expect("JSON")).expect("the schema compiles")
}

#[test]
fn every_record_and_decision_event_validates_against_its_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (records, decisions) = run(dir.path(), 2, true);
    let (weights, events) = (validator("weights.schema.json"), validator("decision.schema.json"));
    for r in &records {
        let json = serde_json::to_value(r).expect("serializes");
        if let Err(e) = weights.validate(&json) {
            panic!("{e}: {json}");
        }
        // `a` is the control: it has no comparison, `b` has one.
        assert!(r.arms[0].vs_control.is_none() && r.arms[1].vs_control.is_some(), "{r:?}");
    }
    for d in &decisions {
        let json = serde_json::to_value(d).expect("serializes");
        if let Err(e) = events.validate(&json) {
            panic!("{e}: {json}");
        }
    }
}
