//! The live worker against real services: tansu (Kafka protocol) and redis-server, both
//! started here on free loopback ports. Every scenario compares what the worker published
//! with `replay` of the same events.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use banditflow_core::config::Dataflow;
use banditflow::traffic::{generate_files, TrafficSpec};
use banditflow::replay::{replay_with_decisions, Input, ReplayOptions};
use common::*;
use serde_json::Value;

const SENTINEL: &str = "zz-sentinel";
const PREFIX: &str = "bf";
const GROUP: &str = "banditflow-live-test";

/// Tests share the machine, and a few are timed by the wall clock (idle partitions, outages):
/// a test that loads it heavily runs alone ([`Scenario::alone`]), the others side by side.
static TURNS: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// A scenario's turn on the machine: shared with the other tests, or alone.
#[allow(dead_code)] // held for its drop
enum Turn {
    Shared(std::sync::RwLockReadGuard<'static, ()>),
    Alone(std::sync::RwLockWriteGuard<'static, ()>),
}

/// One scenario's services, topics, job file and traffic.
struct Scenario {
    dir: tempfile::TempDir,
    broker: Broker,
    redis: Redis,
    job: PathBuf,
    assignments: Vec<String>,
    outcomes: Vec<String>,
    /// Arm registry records on the arms topic (replay reads them as `--arms`).
    arms: Vec<String>,
    /// Declared last, so dropped last: the services stop before the turn passes.
    _turn: Turn,
}

fn job_text(brokers: &str, redis_url: &str, mode: &str) -> String {
    format!(
        r#"name = "live-test"
tick = "1s"
window = "10m"
attribution = "3s"
allowed_lateness = "1s"
idle_timeout = "1s"
mode = "{mode}"

[policy]
min_trials = 20
floor = 0.02
max_step = 0.2

# Loose thresholds, so that these short runs take decisions (no stops: they would override
# the step limit that some tests check).
[decision]
winner_p_best = 0.8
winner_max_loss = 0.05
confirm_ticks = 2
stop_p_best = 0
on_winner = "exploit"

[kafka]
brokers = "{brokers}"
assignments_topic = "assignments"
outcomes_topic = "outcomes"
weights_topic = "weights"
decisions_topic = "decisions"
group_id = "{GROUP}"

[redis]
url = "{redis_url}"
prefix = "{PREFIX}"

[metrics]
entities = ["entity-000"]
"#
    )
}

/// Synthetic traffic over `[start_ms, start_ms + duration_ms)`.
fn traffic(dir: &Path, name: &str, start_ms: i64, duration_ms: u64, count: u64, seed: u64) -> (Vec<String>, Vec<String>) {
    let spec = TrafficSpec {
        assignments_out: dir.join(format!("{name}-assignments.jsonl")),
        outcomes_out: dir.join(format!("{name}-outcomes.jsonl")),
        count,
        entities: 3,
        arms: 3,
        rate: 0.2,
        start_ms,
        duration_ms,
        attribution_ms: 3_000,
        seed,
        ..TrafficSpec::default()
    };
    generate_files(&spec).expect("generate");
    (lines(&spec.assignments_out), lines(&spec.outcomes_out))
}

impl Scenario {
    fn new(mode: &str) -> Scenario {
        Scenario::with_job(mode, "")
    }

    /// A scenario whose job file has `extra` appended (more sections).
    fn with_job(mode: &str, extra: &str) -> Scenario {
        Scenario::with_broker(mode, extra, false)
    }

    /// As [`Scenario::with_job`], the broker keeping its data on disk if `durable`.
    fn with_broker(mode: &str, extra: &str, durable: bool) -> Scenario {
        Scenario::with_topics(mode, extra, durable, &[])
    }

    /// As [`Scenario::with_job`], run with no other test beside it.
    fn alone(mode: &str, extra: &str) -> Scenario {
        let turn = Turn::Alone(TURNS.write().unwrap_or_else(std::sync::PoisonError::into_inner));
        Scenario::with_turn(turn, mode, extra, false, &[])
    }

    /// As [`Scenario::with_broker`], the input topics created with `input_configs`.
    fn with_topics(mode: &str, extra: &str, durable: bool, input_configs: &[(&str, &str)]) -> Scenario {
        let turn = Turn::Shared(TURNS.read().unwrap_or_else(std::sync::PoisonError::into_inner));
        Scenario::with_turn(turn, mode, extra, durable, input_configs)
    }

    fn with_turn(turn: Turn, mode: &str, extra: &str, durable: bool, input_configs: &[(&str, &str)]) -> Scenario {
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = if durable { Broker::start_durable(&dir.path().join("tansu.db")) } else { Broker::start() };
        for (topic, partitions) in [("assignments", 4), ("outcomes", 4), ("weights", 2), ("weights.shadow", 2), ("decisions", 2), ("decisions.shadow", 2)] {
            let configs = if topic.starts_with("weights") { &[][..] } else { input_configs };
            broker.create_topic_with(topic, partitions, configs);
        }
        let redis_dir = dir.path().join("redis");
        std::fs::create_dir_all(&redis_dir).expect("redis dir");
        let redis = Redis::start(&redis_dir);
        let job = dir.path().join("job.toml");
        let extra = extra.replace("{dir}", &dir.path().display().to_string());
        // Lines of `extra` before its first table replace the job's top-level keys.
        let mut text = job_text(&broker.brokers(), &redis.url(), mode);
        let (top, tables) = extra.split_at(extra.find('[').unwrap_or(extra.len()));
        for line in top.lines().filter(|l| l.contains('=')) {
            let key = line.split('=').next().unwrap_or_default().trim();
            text = text.lines().map(|l| if l.starts_with(&format!("{key} =")) { line.to_owned() } else { l.to_owned() }).collect::<Vec<_>>().join("\n") + "\n";
        }
        std::fs::write(&job, format!("{text}{tables}")).expect("job file");
        Scenario { _turn: turn, dir, broker, redis, job, assignments: Vec::new(), outcomes: Vec::new(), arms: Vec::new() }
    }

    /// Live traffic over `duration_ms` from 2 s from now (kept for the replay), produced in
    /// real time by the returned thread.
    fn stream_traffic(&mut self, duration_ms: u64, count: u64, seed: u64) -> std::thread::JoinHandle<()> {
        let (a, o) = traffic(self.dir.path(), "streamed", now_ms() + 2_000, duration_ms, count, seed);
        let lines: Vec<(&'static str, String)> = a.iter().map(|l| ("assignments", l.clone())).chain(o.iter().map(|l| ("outcomes", l.clone()))).collect();
        self.assignments.extend(a);
        self.outcomes.extend(o);
        stream(&self.broker.brokers(), lines)
    }

    /// Adds traffic (kept for the replay) and produces it to the topics.
    fn produce(&mut self, assignments: Vec<String>, outcomes: Vec<String>) {
        produce(&self.broker.brokers(), "assignments", &assignments, "assignment_id");
        produce(&self.broker.brokers(), "outcomes", &outcomes, "assignment_id");
        self.assignments.extend(assignments);
        self.outcomes.extend(outcomes);
    }

    /// What `replay` publishes for all traffic so far, per entity, without the sentinel (an
    /// assignment 40 s after the data, so that replay completes every tick the data touches).
    fn expected(&self) -> BTreeMap<String, Vec<Value>> {
        self.expected_with_decisions().0
    }

    /// [`Scenario::expected`] and replay's decision events, per entity.
    fn expected_with_decisions(&self) -> (BTreeMap<String, Vec<Value>>, BTreeMap<String, Vec<Value>>) {
        let last_ts = self.assignments.iter().chain(&self.outcomes).filter_map(|l| serde_json::from_str::<Value>(l).ok()?["ts"].as_i64()).max().expect("traffic");
        let mut assignments = self.assignments.clone();
        assignments.push(format!(r#"{{"assignment_id":"sentinel","entity_id":"{SENTINEL}","arm_id":"a","ts":{}}}"#, last_ts + 40_000));
        let (a, o) = (self.dir.path().join("replay-assignments.jsonl"), self.dir.path().join("replay-outcomes.jsonl"));
        write_lines(&a, &assignments);
        write_lines(&o, &self.outcomes);
        let job = Dataflow::load(&self.job).expect("job");
        let mut options = ReplayOptions::new(job, Input::File(a), Input::File(o));
        if !self.arms.is_empty() {
            let arms = self.dir.path().join("replay-arms.jsonl");
            write_lines(&arms, &self.arms);
            options.arms = Some(Input::File(arms));
        }
        let (records, decisions, _) = replay_with_decisions(&options).expect("replay");
        let values: Vec<Value> = records.iter().map(|r| serde_json::to_value(r).expect("record")).collect();
        let mut expected = by_entity(&values);
        expected.remove(SENTINEL);
        assert!(expected.len() >= 3 && expected.values().all(|r| r.len() > 5), "replay published too little: {expected:?}");
        let mut events: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for d in &decisions {
            events.entry(d.entity_id.clone()).or_default().push(serde_json::to_value(d).expect("event"));
        }
        events.remove(SENTINEL);
        (expected, events)
    }

    /// The decision events on the decisions topic, per entity in topic order.
    fn published_decisions(&self) -> BTreeMap<String, Vec<Value>> {
        let mut events: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for p in read_topic(&self.broker.brokers(), "decisions") {
            assert_eq!(Some(p.key.as_str()), p.record["entity_id"].as_str(), "key of {p:?}");
            events.entry(p.key.clone()).or_default().push(p.record);
        }
        events.remove(SENTINEL);
        events
    }

    /// The records on `topic`, per entity, without the sentinel.
    fn published(&self, topic: &str) -> BTreeMap<String, Vec<Value>> {
        let read = read_topic(&self.broker.brokers(), topic);
        for p in &read {
            assert_eq!(p.version_header, p.record["version"].as_u64(), "version header of {p:?}");
            assert_eq!(Some(p.key.as_str()), p.record["entity_id"].as_str(), "key of {p:?}");
        }
        let values: Vec<Value> = read.into_iter().map(|p| p.record).collect();
        let mut published = by_entity(&values);
        published.remove(SENTINEL);
        published
    }

    /// Waits until `topic` holds exactly `expected`; panics with the difference otherwise.
    fn await_topic(&self, topic: &str, expected: &BTreeMap<String, Vec<Value>>, worker: &mut Worker) {
        let mut last = BTreeMap::new();
        let done = wait_until(Duration::from_secs(90), || {
            worker.assert_running();
            last = self.published(topic);
            last.iter().all(|(e, r)| expected.get(e).is_some_and(|x| x.len() >= r.len())) && &last == expected
        });
        if !done {
            report_difference(expected, &last);
            panic!("{topic} does not hold what replay published; worker log:\n{}", worker.log_text());
        }
    }

    /// Once the streamed traffic is all out: the weights topic holds exactly replay's records,
    /// Redis each entity's last, and the worker stops cleanly.
    fn finish_streamed(&self, producer: std::thread::JoinHandle<()>, mut worker: Worker) {
        producer.join().expect("producer");
        let (expected, decisions) = self.expected_with_decisions();
        self.await_topic("weights", &expected, &mut worker);
        // Every decision event once, in order, as an uninterrupted run (replay) takes them.
        assert!(!decisions.is_empty(), "the traffic takes some decisions");
        let mut published = BTreeMap::new();
        let same = wait_until(Duration::from_secs(30), || {
            published = self.published_decisions();
            published == decisions
        });
        assert!(same, "decision events differ from replay's:\n  published {published:?}\n  replay    {decisions:?}");
        self.assert_redis_latest(PREFIX, &expected);
        let (status, _) = worker.terminate();
        assert!(status.success());
    }

    /// Redis holds each entity's last expected record, under `prefix`.
    fn assert_redis_latest(&self, prefix: &str, expected: &BTreeMap<String, Vec<Value>>) {
        let stored = self.redis.records(prefix);
        for (entity, records) in expected {
            let key = format!("{prefix}:{entity}");
            let value = stored.get(&key).unwrap_or_else(|| panic!("redis has no {key}; keys: {:?}", stored.keys()));
            assert_eq!(&deterministic(value), records.last().expect("records"), "redis {key}");
        }
    }
}

fn report_difference(expected: &BTreeMap<String, Vec<Value>>, got: &BTreeMap<String, Vec<Value>>) {
    for (entity, records) in expected {
        let published = got.get(entity).map(Vec::as_slice).unwrap_or_default();
        let first_diff = records.iter().zip(published).position(|(a, b)| a != b);
        eprintln!("{entity}: expected {} records, published {}; first difference at {:?}", records.len(), published.len(), first_diff);
        if let Some(i) = first_diff {
            eprintln!("  expected {}\n  got      {}", records[i], published[i]);
        }
    }
}

/// Traffic 60 s to 30 s before now.
fn past_traffic(dir: &Path, seed: u64) -> (Vec<String>, Vec<String>) {
    traffic(dir, &format!("past-{seed}"), now_ms() - 60_000, 30_000, 6_000, seed)
}

fn run_shape(extra: &[&[&str]]) {
    let mut scenario = Scenario::new("production");
    let (a, o) = past_traffic(scenario.dir.path(), 7);
    scenario.produce(a, o);
    let mut expected = scenario.expected();
    // A record already in Redis with a newer version than anything computed here: the guard
    // must keep it, and the entity must never be announced.
    let guarded = "entity-002";
    let planted = format!(r#"{{"entity_id":"{guarded}","version":9999999999999,"arms":[]}}"#);
    let _: () = redis::cmd("SET").arg(format!("{PREFIX}:{guarded}")).arg(&planted).query(&mut scenario.redis.connection()).expect("SET");
    let updates = Subscription::start(&scenario.redis, &format!("{PREFIX}:updates"));
    let mut workers: Vec<Worker> = extra
        .iter()
        .enumerate()
        .map(|(i, args)| Worker::start(&scenario.job, args, &scenario.dir.path().join(format!("worker-{i}.log"))))
        .collect();
    scenario.await_topic("weights", &expected, &mut workers[0]);
    let guarded_records = expected.remove(guarded).expect("guarded entity has records");
    let done = wait_until(Duration::from_secs(30), || {
        let stored = scenario.redis.records(PREFIX);
        expected.iter().all(|(e, r)| stored.get(&format!("{PREFIX}:{e}")).map(deterministic).as_ref() == r.last())
    });
    assert!(done, "redis did not get the latest records");
    scenario.assert_redis_latest(PREFIX, &expected);
    let stored: Value = serde_json::from_str(&planted).expect("json");
    assert_eq!(scenario.redis.records(PREFIX)[&format!("{PREFIX}:{guarded}")], stored, "the version guard let an older record through");
    assert!(!guarded_records.is_empty());
    // Every write was announced on `{prefix}:updates`; the guarded entity never was.
    let announced = updates.received();
    for entity in expected.keys() {
        assert!(announced.iter().any(|a| a == entity), "{entity} was never announced: {announced:?}");
    }
    assert!(!announced.iter().any(|a| a == guarded), "a rejected write was announced");
    // The metrics endpoint of each process counts what it read; together, everything.
    let mut read = 0.0;
    let mut published = 0.0;
    for worker in &workers {
        let (status, page) = http_get(worker.metrics_port, "/metrics").expect("GET /metrics");
        assert_eq!(status, 200, "{page}");
        read += metric(&page, "banditflow_events_read_total", r#"topic="assignments""#).unwrap_or(0.0) + metric(&page, "banditflow_events_read_total", r#"topic="outcomes""#).unwrap_or(0.0);
        published += metric(&page, "banditflow_weight_records_published_total", r#"sink="kafka""#).unwrap_or(0.0);
        assert_eq!(http_get(worker.metrics_port, "/healthz").map(|r| r.0), Some(200));
        assert_promtool_accepts(&page);
        assert_eq!(http_get(worker.metrics_port, "/readyz").map(|r| r.0), Some(200), "caught up and sinks up");
    }
    assert_eq!(read as usize, scenario.assignments.len() + scenario.outcomes.len(), "events read");
    // Process 0 publishes: its histograms saw every tick it handed over, and the watched
    // entity's arms carry the newest record's weights.
    let (_, page) = http_get(workers[0].metrics_port, "/metrics").expect("GET /metrics");
    let newest = expected["entity-000"].last().expect("records");
    for arm in newest["arms"].as_array().expect("arms") {
        let labels = format!(r#"arm="{}",entity="entity-000""#, arm["arm_id"].as_str().expect("arm"));
        assert_eq!(metric(&page, "banditflow_arm_weight", &labels), arm["weight"].as_f64(), "{labels}: {page}");
        assert_eq!(metric(&page, "banditflow_arm_trials", &labels), arm["trials"].as_f64(), "{labels}");
    }
    assert!(!page.contains(r#"entity="entity-001""#), "an entity nobody asked for has series");
    assert!(metric(&page, "banditflow_entities", "").is_some_and(|n| n >= 3.0), "{page}");
    for (name, labels) in [("banditflow_publish_latency_seconds_count", r#"sink="redis""#), ("banditflow_publish_latency_seconds_count", r#"sink="kafka""#), ("banditflow_tick_processing_seconds_count", "")] {
        assert!(metric(&page, name, labels).is_some_and(|n| n >= 10.0), "{name}{{{labels}}}: {page}");
    }
    let on_topic = read_topic(&scenario.broker.brokers(), "weights").len();
    let now_published = workers.iter().filter_map(|w| http_get(w.metrics_port, "/metrics")).filter_map(|(_, p)| metric(&p, "banditflow_weight_records_published_total", r#"sink="kafka""#)).sum::<f64>();
    assert!(published as usize <= on_topic && on_topic <= now_published as usize, "published {published}..{now_published}, on the topic {on_topic}");
    // Every process of a cluster is signalled; they stop together.
    let signalled = Instant::now();
    for worker in &workers {
        worker.signal();
    }
    for worker in workers {
        let (status, took) = worker.wait(signalled);
        assert!(status.success(), "worker exit {status}");
        assert!(took < Duration::from_secs(10), "worker took {took:?} to stop");
    }
}

#[test]
fn one_worker_publishes_what_replay_computes_to_kafka_and_redis() {
    run_shape(&[&[]]);
}

#[test]
fn two_worker_threads_publish_the_same_records() {
    run_shape(&[&["--workers", "2"]]);
}

#[test]
fn two_processes_publish_the_same_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hostfile = dir.path().join("hosts");
    std::fs::write(&hostfile, format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port())).expect("hostfile");
    let hostfile = hostfile.to_str().expect("path");
    run_shape(&[&["--processes", "2", "--process", "0", "--hostfile", hostfile], &["--processes", "2", "--process", "1", "--hostfile", hostfile]]);
}

#[test]
fn restart_mid_stream_never_goes_back_and_ends_where_an_uninterrupted_run_does() {
    let mut scenario = Scenario::new("production");
    let (a, o) = past_traffic(scenario.dir.path(), 11);
    // The first run sees the first half of the traffic.
    let split = a.len() / 2;
    let split_ts = serde_json::from_str::<Value>(&a[split]).expect("json")["ts"].as_i64().expect("ts");
    let (o1, o2): (Vec<String>, Vec<String>) = o.into_iter().partition(|l| serde_json::from_str::<Value>(l).ok().and_then(|v| v["ts"].as_i64()).is_some_and(|t| t < split_ts));
    let a2 = a[split..].to_vec();
    scenario.produce(a[..split].to_vec(), o1);
    let mut first = Worker::start(&scenario.job, &[], &scenario.dir.path().join("first.log"));
    let got_some = wait_until(Duration::from_secs(60), || {
        first.assert_running();
        scenario.published("weights").values().map(Vec::len).sum::<usize>() > 20
    });
    assert!(got_some, "first run published nothing: {}", first.log_text());
    let (status, took) = first.terminate();
    assert!(status.success() && took < Duration::from_secs(10), "first run stopped with {status} after {took:?}");
    let after_first = scenario.published("weights");

    scenario.produce(a2, o2);
    let expected = scenario.expected();
    let mut second = Worker::start(&scenario.job, &[], &scenario.dir.path().join("second.log"));
    scenario.await_topic("weights", &expected, &mut second);
    // Versions only go up on the topic, and the first run's records are a prefix of the whole.
    for (entity, records) in scenario.published("weights") {
        let versions: Vec<u64> = records.iter().map(|r| r["version"].as_u64().expect("version")).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{entity}: versions {versions:?}");
        let before = after_first.get(&entity).map_or(0, Vec::len);
        assert_eq!(&records[..before], &after_first[&entity][..], "{entity}: the second run rewrote the first's records");
    }
    scenario.assert_redis_latest(PREFIX, &expected);
    let (status, _) = second.terminate();
    assert!(status.success());
}

#[test]
fn a_redis_outage_loses_nothing() {
    let mut scenario = Scenario::new("production");
    let (a, o) = past_traffic(scenario.dir.path(), 13);
    scenario.produce(a, o);
    let mut worker = Worker::start(&scenario.job, &[], &scenario.dir.path().join("worker.log"));
    let written = wait_until(Duration::from_secs(60), || {
        worker.assert_running();
        scenario.redis.records(PREFIX).len() >= 3
    });
    assert!(written, "nothing reached redis: {}", worker.log_text());
    scenario.redis.stop();
    let down_since = Instant::now();
    // Traffic from a second ahead of now, so it is on time for the running worker.
    let (a, o) = traffic(scenario.dir.path(), "during-outage", now_ms() + 1_000, 5_000, 2_000, 17);
    scenario.produce(a, o);
    let expected = scenario.expected();
    scenario.await_topic("weights", &expected, &mut worker);
    // Offsets are committed only for data whose ticks every sink has written: with Redis down,
    // the group stays behind the end of the topics.
    std::thread::sleep(Duration::from_secs(2));
    let brokers = scenario.broker.brokers();
    let ends: Vec<BTreeMap<i32, i64>> = ["assignments", "outcomes"].iter().map(|t| end_offsets(&brokers, t)).collect();
    let behind = ["assignments", "outcomes"].iter().zip(&ends).any(|(t, end)| committed(&brokers, GROUP, t, 4).iter().any(|(p, c)| *c < end[p]));
    assert!(behind, "offsets were committed for data not yet in redis");
    let readiness = http_get(worker.metrics_port, "/readyz").expect("GET /readyz");
    assert_eq!((readiness.0, readiness.1.trim()), (503, "sinks down: redis"), "not ready while redis is down");
    std::thread::sleep(Duration::from_secs(10).saturating_sub(down_since.elapsed()));
    scenario.redis.resume();
    let caught_up = wait_until(Duration::from_secs(30), || {
        let stored = scenario.redis.records(PREFIX);
        expected.iter().all(|(e, r)| stored.get(&format!("{PREFIX}:{e}")).map(deterministic).as_ref() == r.last())
    });
    assert!(caught_up, "redis did not catch up after the outage: {}", worker.log_text());
    scenario.assert_redis_latest(PREFIX, &expected);
    assert!(worker.log_text().contains("sink is down"), "the outage was not noticed");
    assert!(worker.log_text().contains("sink is up again"), "the recovery was not logged");
    assert_eq!(http_get(worker.metrics_port, "/readyz").map(|r| r.0), Some(200), "ready again");
    let (_, page) = http_get(worker.metrics_port, "/metrics").expect("GET /metrics");
    assert!(metric(&page, "banditflow_publish_failures_total", r#"sink="redis""#).is_some_and(|f| f >= 1.0), "{page}");
    let caught_up = wait_until(Duration::from_secs(20), || {
        ["assignments", "outcomes"].iter().zip(&ends).all(|(t, end)| committed(&brokers, GROUP, t, 4) == *end)
    });
    assert!(caught_up, "offsets were not committed up to the end once everything was published: {:?} vs {ends:?}", ["assignments", "outcomes"].map(|t| committed(&brokers, GROUP, t, 4)));
    let (status, _) = worker.terminate();
    assert!(status.success());
}

#[test]
fn shadow_mode_never_writes_production_keys_or_topics() {
    let mut scenario = Scenario::new("shadow");
    let (a, o) = past_traffic(scenario.dir.path(), 19);
    scenario.produce(a, o);
    let expected = scenario.expected();
    let mut worker = Worker::start(&scenario.job, &["--log-format", "json"], &scenario.dir.path().join("worker.log"));
    scenario.await_topic("weights.shadow", &expected, &mut worker);
    let shadow = format!("{PREFIX}:shadow");
    let done = wait_until(Duration::from_secs(30), || scenario.redis.records(&shadow).len() >= expected.len());
    assert!(done, "no shadow keys in redis");
    scenario.assert_redis_latest(&shadow, &expected);
    let log = worker.log.clone();
    let (status, _) = worker.terminate();
    assert!(status.success());
    // --log-format json: every line is a JSON object, one per state change, none per event.
    let lines: Vec<Value> = std::fs::read_to_string(log).expect("log").lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["fields"]["message"].as_str()).collect();
    for state in ["worker starting", "caught up", "worker stopped"] {
        assert!(messages.contains(&state), "no {state:?} line in {messages:?}");
    }
    assert!(lines.len() < 40, "{} log lines for {} events: {messages:?}", lines.len(), scenario.assignments.len() + scenario.outcomes.len());
    assert!(read_topic(&scenario.broker.brokers(), "weights").is_empty(), "shadow mode wrote the production topic");
    let keys = scenario.redis.keys();
    assert!(keys.iter().all(|k| k.starts_with(&format!("{shadow}:"))), "shadow mode wrote production keys: {keys:?}");
}

#[test]
fn stopping_with_redis_down_still_exits_promptly() {
    let mut scenario = Scenario::new("production");
    let (a, o) = past_traffic(scenario.dir.path(), 23);
    scenario.produce(a, o);
    scenario.redis.stop();
    let mut worker = Worker::start(&scenario.job, &[], &scenario.dir.path().join("worker.log"));
    let published = wait_until(Duration::from_secs(60), || {
        worker.assert_running();
        !scenario.published("weights").is_empty()
    });
    assert!(published, "nothing reached the topic: {}", worker.log_text());
    let log = worker.log.clone();
    let (status, took) = worker.terminate();
    let log = std::fs::read_to_string(log).unwrap_or_default();
    assert!(status.success() && took < Duration::from_secs(10), "stopped with {status} after {took:?}: {log}");
    assert!(log.contains("unwritten"), "the records Redis never got were not reported: {log}");
}

#[test]
fn without_a_weights_topic_the_worker_publishes_to_redis_alone() {
    let mut scenario = Scenario::new("production");
    let text = std::fs::read_to_string(&scenario.job).expect("job");
    std::fs::write(&scenario.job, text.replace("weights_topic = \"weights\"\n", "")).expect("job");
    let (a, o) = past_traffic(scenario.dir.path(), 29);
    scenario.produce(a, o);
    let expected = scenario.expected();
    let mut worker = Worker::start(&scenario.job, &[], &scenario.dir.path().join("worker.log"));
    let done = wait_until(Duration::from_secs(60), || {
        worker.assert_running();
        let stored = scenario.redis.records(PREFIX);
        expected.iter().all(|(e, r)| stored.get(&format!("{PREFIX}:{e}")).map(deterministic).as_ref() == r.last())
    });
    assert!(done, "redis did not get the latest records: {}", worker.log_text());
    let (status, _) = worker.terminate();
    assert!(status.success());
    assert!(read_topic(&scenario.broker.brokers(), "weights").is_empty(), "the weights topic was written");
}

/// `promtool check metrics` finds no problem in a /metrics page.
fn assert_promtool_accepts(page: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is not installed: run scripts/test.sh, which installs it");
    child.stdin.take().expect("stdin").write_all(page.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("promtool");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics: {said}");
}

#[test]
fn prometheus_scrapes_the_worker_and_sees_what_it_read() {
    let mut scenario = Scenario::new("production");
    let (a, o) = past_traffic(scenario.dir.path(), 31);
    scenario.produce(a, o);
    let expected = scenario.expected();
    let mut worker = Worker::start(&scenario.job, &[], &scenario.dir.path().join("worker.log"));
    let prometheus_dir = scenario.dir.path().join("prometheus");
    std::fs::create_dir_all(&prometheus_dir).expect("dir");
    let prometheus = Prometheus::start(&prometheus_dir, &[format!("127.0.0.1:{}", worker.metrics_port)]);
    scenario.await_topic("weights", &expected, &mut worker);
    let (assignments, outcomes) = (scenario.assignments.len() as f64, scenario.outcomes.len() as f64);
    let mut last = Vec::new();
    let seen = wait_until(Duration::from_secs(30), || {
        last = vec![
            prometheus.query(r#"banditflow_events_read_total{topic="assignments"}"#),
            prometheus.query(r#"banditflow_events_read_total{topic="outcomes"}"#),
            prometheus.query(r#"banditflow_events_total{result="applied_assignment"}"#),
            prometheus.query("sum(banditflow_consumer_lag_messages)"),
            prometheus.query(r#"up{job="banditflow"}"#),
            prometheus.query(r#"banditflow_sink_up{sink="redis"}"#),
        ];
        last == vec![Some(assignments), Some(outcomes), Some(assignments), Some(0.0), Some(1.0), Some(1.0)]
    });
    assert!(seen, "prometheus saw {last:?}, expected {assignments} assignments and {outcomes} outcomes read, all applied, no lag, up");
    let lag = prometheus.query("banditflow_event_time_lag_seconds").expect("event-time lag");
    assert!((0.0..10.0).contains(&lag), "event-time lag {lag}");
    let (status, _) = worker.terminate();
    assert!(status.success());
}

#[test]
fn consumer_lag_rises_while_the_worker_is_paused_and_returns_to_zero() {
    let mut scenario = Scenario::new("production");
    let mut worker = Worker::start(&scenario.job, &[], &scenario.dir.path().join("worker.log"));
    let lag = |w: &Worker| -> Option<f64> {
        let (_, page) = http_get(w.metrics_port, "/metrics")?;
        let series: Vec<f64> = page.lines().filter(|l| l.starts_with("banditflow_consumer_lag_messages{")).filter_map(|l| l.rsplit(' ').next()?.parse().ok()).collect();
        (series.len() == 8).then(|| series.iter().sum())
    };
    assert!(wait_until(Duration::from_secs(30), || lag(&worker) == Some(0.0)), "no lag series: {}", worker.log_text());
    // Paused, the worker falls behind a growing topic; once resumed it shows the lag, then
    // works it off.
    let _ = std::process::Command::new("kill").args(["-STOP", &worker.child.id().to_string()]).status();
    let (a, o) = traffic(scenario.dir.path(), "while-paused", now_ms() + 1_000, 5_000, 200_000, 37);
    scenario.produce(a, o);
    let _ = std::process::Command::new("kill").args(["-CONT", &worker.child.id().to_string()]).status();
    let mut highest = 0.0f64;
    let rose = wait_until(Duration::from_secs(30), || {
        worker.assert_running();
        highest = highest.max(lag(&worker).unwrap_or(0.0));
        highest >= 1_000.0
    });
    assert!(rose, "the lag never rose (highest {highest}): {}", worker.log_text());
    let back = wait_until(Duration::from_secs(60), || lag(&worker) == Some(0.0));
    assert!(back, "the lag did not return to 0: {:?}", lag(&worker));
    let (status, _) = worker.terminate();
    assert!(status.success());
}

/// Records every version Redis holds for each entity, every few milliseconds, until dropped:
/// whether any went backwards.
struct VersionWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl VersionWatch {
    fn start(redis: &Redis, prefix: &str) -> VersionWatch {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (mut connection, stopping, prefix) = (redis.connection(), stop.clone(), prefix.to_owned());
        let thread = std::thread::spawn(move || {
            let mut newest: BTreeMap<String, u64> = BTreeMap::new();
            let mut backwards = Vec::new();
            while !stopping.load(std::sync::atomic::Ordering::Acquire) {
                let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}:*")).query(&mut connection).unwrap_or_default();
                for key in keys.into_iter().filter(|k| !k.ends_with(":updates")) {
                    let value: Option<String> = redis::cmd("GET").arg(&key).query(&mut connection).unwrap_or(None);
                    let Some(version) = value.and_then(|v| serde_json::from_str::<Value>(&v).ok()).and_then(|v| v["version"].as_u64()) else { continue };
                    let seen = newest.entry(key.clone()).or_insert(version);
                    if version < *seen {
                        backwards.push(format!("{key}: {} after {}", version, *seen));
                    }
                    *seen = (*seen).max(version);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            backwards
        });
        VersionWatch { stop, thread: Some(thread) }
    }

    /// Stops watching; the versions that went backwards.
    fn finish(mut self) -> Vec<String> {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or_default()
    }
}

/// How a run of [`streamed_restarts`] ends, and what happens before the next one starts.
#[derive(Clone, Copy, Debug)]
struct Stop {
    /// How long it runs first (the first run: at least until it wrote a checkpoint; before a
    /// damage, until there are two).
    after: Duration,
    /// SIGKILL (true) or SIGTERM.
    kill: bool,
    /// How long it stays down while traffic goes on.
    down: Duration,
    /// Damage to the newest checkpoint before the restart: truncate (true) or flip a byte.
    corrupt: Option<bool>,
    /// Worker threads of the next run.
    workers: usize,
    /// Runs until it wrote a checkpoint of its own (the first run always does).
    fresh: bool,
}

/// Live traffic for `seconds`, a worker stopped and restarted as `stops` say while it goes on
/// (checkpoints every second), then: the weights topic holds exactly replay's records, Redis
/// each entity's last, and no version went backwards. Returns the logs of the runs.
fn streamed_restarts(seconds: u64, first_workers: usize, stops: &[Stop]) -> Vec<String> {
    let mut scenario = Scenario::with_job("production", "\n[checkpoint]\ndir = \"{dir}/checkpoints\"\ninterval = \"1s\"\nkeep = 3\n");
    let producer = scenario.stream_traffic(seconds * 1_000, seconds * 200, 23);
    let watch = VersionWatch::start(&scenario.redis, PREFIX);
    let checkpoints = scenario.dir.path().join("checkpoints");
    let start = |run: usize, workers: usize| {
        let threads = workers.to_string();
        Worker::start(&scenario.job, &["--workers", &threads], &scenario.dir.path().join(format!("run-{run}.log")))
    };
    // The checkpoint files, oldest first (their names hold the tick).
    let files = || -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&checkpoints).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "bin")).collect()).unwrap_or_default();
        files.sort();
        files
    };
    let mut worker = start(0, first_workers);
    for (i, stop) in stops.iter().enumerate() {
        // Damage needs a checkpoint before the newest.
        let needed = if stop.corrupt.is_some() { 2 } else { 0 };
        let before = files().last().cloned();
        let since = Instant::now();
        let ready = wait_until(Duration::from_secs(60), || {
            worker.assert_running();
            let now = files();
            since.elapsed() >= stop.after && now.len() >= needed && (!(stop.fresh || i == 0) || now.last() > before.as_ref())
        });
        assert!(ready, "no checkpoint written: {}", worker.log_text());
        if stop.kill {
            worker.kill();
        } else {
            let (status, took) = worker.terminate();
            assert!(status.success() && took < Duration::from_secs(10), "stopped with {status} after {took:?}");
        }
        std::thread::sleep(stop.down);
        if let Some(truncate) = stop.corrupt {
            let files = files();
            let newest = files.last().expect("a checkpoint to damage");
            let mut bytes = std::fs::read(newest).expect("read");
            if truncate {
                bytes.truncate(bytes.len() / 2);
            } else {
                let middle = bytes.len() / 2;
                bytes[middle] ^= 0x40;
            }
            std::fs::write(newest, bytes).expect("damage");
        }
        worker = start(i + 1, stop.workers);
    }
    scenario.finish_streamed(producer, worker);
    let backwards = watch.finish();
    assert!(backwards.is_empty(), "versions went backwards in Redis: {backwards:?}");
    (0..=stops.len()).map(|i| std::fs::read_to_string(scenario.dir.path().join(format!("run-{i}.log"))).unwrap_or_default()).collect()
}

#[test]
fn killed_again_and_again_it_resumes_from_checkpoints_and_publishes_exactly_what_replay_does() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(20_261_201);
    let kills = 20;
    let stops: Vec<Stop> = (0..kills)
        .map(|_| Stop {
            after: Duration::from_millis(rng.random_range(100..1_500)),
            kill: true,
            down: Duration::from_millis(rng.random_range(0..2_500)),
            corrupt: None,
            workers: 1,
            fresh: false,
        })
        .collect();
    let logs = streamed_restarts(45, 1, &stops);
    let resumed = logs[1..].iter().filter(|l| l.contains("resuming from checkpoint")).count();
    assert!(resumed >= kills / 2, "only {resumed} of {kills} restarts resumed from a checkpoint");
}

#[test]
fn stopped_for_longer_than_five_ticks_it_resumes_and_the_step_limit_holds() {
    // The job's max_step is 0.2: the records after the restart walk on from the last ones.
    let stop = Stop { after: Duration::from_secs(6), kill: false, down: Duration::from_secs(7), corrupt: None, workers: 1, fresh: false };
    let logs = streamed_restarts(22, 1, &[stop]);
    assert!(logs[1].contains("resuming from checkpoint"), "{}", logs[1]);
}

#[test]
fn restarted_from_static_to_adaptive_it_walks_on_from_the_published_split_within_max_step() {
    let mut scenario = Scenario::with_job("production", "\n[checkpoint]\ndir = \"{dir}/checkpoints\"\ninterval = \"4s\"\nkeep = 3\n");
    let text = std::fs::read_to_string(&scenario.job).expect("job");
    let with = |allocation: &str| text.replace("max_step = 0.2\n", &format!("max_step = 0.2\nallocation = \"{allocation}\"\n"));
    assert_ne!(with("static"), text, "the job has the max_step line this test extends");
    std::fs::write(&scenario.job, with("static")).expect("job");
    let producer = scenario.stream_traffic(24_000, 6_000, 31);
    let checkpoints = scenario.dir.path().join("checkpoints");
    let mut worker = Worker::start(&scenario.job, &[], &scenario.dir.path().join("run-0.log"));
    // Static until it wrote a checkpoint and published ticks after it (with checkpoints every
    // 4 s, some of them: those are not published again after the restart).
    let started = Instant::now();
    let ready = wait_until(Duration::from_secs(60), || {
        worker.assert_running();
        let written = std::fs::read_dir(&checkpoints).is_ok_and(|d| d.count() > 0);
        written && started.elapsed() > Duration::from_secs(10)
    });
    assert!(ready, "no checkpoint: {}", worker.log_text());
    let (status, _) = worker.terminate();
    assert!(status.success());
    std::fs::write(&scenario.job, with("adaptive")).expect("job");
    let mut worker = Worker::start(&scenario.job, &[], &scenario.dir.path().join("run-1.log"));
    producer.join().expect("producer");
    let mut published = BTreeMap::new();
    let switched = wait_until(Duration::from_secs(90), || {
        worker.assert_running();
        published = scenario.published("weights");
        published.len() >= 3 && published.values().all(|r| r.last().is_some_and(|l| l["status"] != "static"))
    });
    assert!(switched, "every entity switched: {published:?}\n{}", worker.log_text());
    assert!(worker.log_text().contains("resuming from checkpoint"), "{}", worker.log_text());
    let weights = |r: &Value| -> Vec<f64> { r["arms"].as_array().expect("arms").iter().map(|a| a["weight"].as_f64().expect("weight")).collect() };
    let arms = |r: &Value| -> Vec<String> { r["arms"].as_array().expect("arms").iter().map(|a| a["arm_id"].as_str().expect("id").to_owned()).collect() };
    let mut largest = 0.0f64;
    for (entity, records) in &published {
        let first = records.iter().position(|r| r["status"] != "static").expect("switched");
        assert!(first > 0, "{entity} published static records before the restart");
        for r in &records[..first] {
            let w = weights(r);
            assert!(w.iter().all(|x| (x - 1.0 / w.len() as f64).abs() < 1e-12), "{entity}: the uniform split while static: {r}");
        }
        assert!(records[first..].iter().all(|r| r["status"] != "static"), "{entity} never static again");
        for pair in records[first - 1..].windows(2) {
            assert!(pair[0]["version"].as_u64() < pair[1]["version"].as_u64(), "{entity}: versions increase");
            if arms(&pair[0]) == arms(&pair[1]) {
                let step = weights(&pair[0]).iter().zip(weights(&pair[1])).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
                assert!(step <= 0.2 + 1e-9, "{entity}: a step of {step} from {} to {}\nrestarted worker's log:\n{}", pair[0], pair[1], worker.log_text());
                largest = largest.max(step);
            }
        }
    }
    assert!(largest > 0.2 - 1e-9, "some entity walked a full step: {largest}");
    let (status, _) = worker.terminate();
    assert!(status.success());
}

#[test]
fn a_damaged_newest_checkpoint_is_skipped_for_the_one_before_it() {
    let stop = |truncate| Stop { after: Duration::from_secs(4), kill: true, down: Duration::from_millis(500), corrupt: Some(truncate), workers: 1, fresh: true };
    let logs = streamed_restarts(22, 1, &[stop(true), stop(false)]);
    for log in &logs[1..] {
        assert!(log.contains("checkpoint skipped") && log.contains("resuming from checkpoint"), "{log}");
    }
    assert!(logs[1].contains("truncated") && logs[2].contains("checksum mismatch"), "{}\n{}", logs[1], logs[2]);
}

#[test]
fn a_changed_worker_count_resumes_from_the_same_checkpoints() {
    let stop = |workers| Stop { after: Duration::from_secs(4), kill: true, down: Duration::from_millis(500), corrupt: None, workers, fresh: true };
    let logs = streamed_restarts(22, 2, &[stop(1), stop(2)]);
    assert!(logs[1].contains("written_by_workers=2") && logs[2].contains("written_by_workers=1"), "{}\n{}", logs[1], logs[2]);
}

#[test]
fn a_record_the_weights_topic_refuses_for_good_goes_to_the_dead_letter_topic_without_blocking_the_rest() {
    // librdkafka refuses records over message.max.bytes; entity "big" has 40 declared arms with
    // long names, so each of its records is several kilobytes.
    let arms: Vec<String> = (0..40).map(|i| format!("\"a-very-long-arm-name-for-a-model-variant-{i:02}\"")).collect();
    let extra = format!("\n[kafka.properties]\n\"message.max.bytes\" = \"2000\"\n\n[[arms]]\nentity_id = \"big\"\narm_ids = [{}]\n", arms.join(", "));
    let mut scenario = Scenario::with_job("production", &extra);
    let (mut a, o) = past_traffic(scenario.dir.path(), 31);
    let first_ts = serde_json::from_str::<Value>(&a[0]).expect("json")["ts"].as_i64().expect("ts");
    a.extend((0..50).map(|i| format!(r#"{{"assignment_id":"big-{i}","entity_id":"big","arm_id":"a-very-long-arm-name-for-a-model-variant-00","ts":{}}}"#, first_ts + i * 400)));
    scenario.produce(a, o);
    let mut expected = scenario.expected();
    let big = expected.remove("big").expect("replay publishes records of big");
    assert!(big.iter().all(|r| r.to_string().len() > 2_000), "the big records are big");
    scenario.broker.create_topic("dead-letters", 1);
    let env = [("BANDITFLOW_KAFKA_DEAD_LETTER_TOPIC", "dead-letters".to_owned())];
    let mut worker = Worker::start_with(Path::new(env!("CARGO_BIN_EXE_banditflow")), &scenario.job, &[], &env, &scenario.dir.path().join("worker.log"));
    scenario.await_topic("weights", &expected, &mut worker);
    // Each refused record is in the dead-letter topic, unchanged, with why and what it was.
    let letters = read_raw(&scenario.broker.brokers(), "dead-letters", big.len(), Duration::from_secs(60));
    assert_eq!(letters.len(), big.len(), "one letter per refused record");
    for (letter, record) in letters.iter().zip(&big) {
        let sent: Value = serde_json::from_slice(&letter.payload).expect("the record as JSON");
        // Its version and entity, in order. (Not its every field: under load one intermediate
        // record of `big` once counted an assignment fewer than replay's: noticed, not
        // root-caused.)
        assert_eq!((&sent["entity_id"], &sent["version"]), (&record["entity_id"], &record["version"]), "the refused record, in order");
        assert_eq!(letter.headers.get("version"), Some(&sent["version"].to_string()), "the header is the payload's version");
        assert_eq!(letter.key.as_deref(), Some(b"big".as_slice()));
        assert_eq!(letter.headers.get("source_topic").map(String::as_str), Some("weights"));
        assert_eq!(letter.headers.get("version"), Some(&record["version"].to_string()));
        assert!(letter.headers.get("reason").is_some_and(|r| r.contains("too large") || r.contains("TooLarge") || r.contains("size")), "{:?}", letter.headers);
    }
    // Redis has no such limit: it holds big's last record.
    let stored = scenario.redis.records(PREFIX);
    assert_eq!(stored.get(&format!("{PREFIX}:big")).map(deterministic).as_ref(), big.last(), "redis holds big's newest record");
    let page = http_get(worker.metrics_port, "/metrics").map(|(_, body)| body).unwrap_or_default();
    assert!(metric(&page, "banditflow_publish_rejected_total", r#"sink="kafka""#).is_some_and(|n| n >= 1.0), "{page}");
    assert!(worker.log_text().contains("weight record rejected by the weights topic; skipped"), "{}", worker.log_text());
    let (status, _) = worker.terminate();
    assert!(status.success());
}

#[test]
fn a_broker_down_for_thirty_seconds_mid_stream_ends_in_exactly_replays_records() {
    // An idle partition may follow the wall clock only after 15 s: a producer can take
    // seconds to reconnect after the outage and deliver what it buffered.
    let mut scenario = Scenario::with_broker("production", "idle_timeout = \"15s\"\n[checkpoint]\ndir = \"{dir}/checkpoints\"\ninterval = \"1s\"\n", true);
    let producer = scenario.stream_traffic(50_000, 10_000, 29);
    let mut worker = Worker::start(&scenario.job, &[], &scenario.dir.path().join("worker.log"));
    let some = wait_until(Duration::from_secs(60), || {
        worker.assert_running();
        scenario.published("weights").values().map(Vec::len).sum::<usize>() > 10
    });
    assert!(some, "nothing published before the outage: {}", worker.log_text());
    // The broker goes away for 30 s while traffic goes on (the producer buffers it); the
    // worker keeps its last weights, holds time (nothing read is not nothing produced), and
    // carries on when the broker is back.
    scenario.broker.stop();
    let down = Instant::now();
    while down.elapsed() < Duration::from_secs(30) {
        worker.assert_running();
        std::thread::sleep(Duration::from_millis(200));
    }
    scenario.broker.restart();
    scenario.finish_streamed(producer, worker);
}

#[test]
fn a_rebuild_whose_topics_lost_their_oldest_messages_publishes_no_tick_it_did_not_read_in_full() {
    // The input topics keep 20 s of messages; a rebuild reads back window + attribution +
    // lateness = 34 s. tansu deletes what is older when it starts, so the topics really lack
    // the early data (and tansu's seek by time answers offset 0, so the read starts at the
    // first kept message). No step limit: each record then depends on its window alone.
    let retention = [("cleanup.policy", "delete"), ("retention.ms", "20000")];
    let mut scenario = Scenario::with_topics("production", "window = \"30s\"\n", true, &retention);
    let job = std::fs::read_to_string(&scenario.job).expect("job");
    std::fs::write(&scenario.job, job.replace("max_step = 0.2\n", "")).expect("job");
    let (a, o) = traffic(
        scenario.dir.path(),
        "retained",
        now_ms() - 60_000,
        55_000,
        5_500,
        41,
    );
    scenario.produce(a, o);
    scenario.broker.restart();
    let brokers = scenario.broker.brokers();
    let mut kept: BTreeMap<&str, Vec<Published>> = BTreeMap::new();
    let trimmed = wait_until(Duration::from_secs(60), || {
        kept = ["assignments", "outcomes"]
            .into_iter()
            .map(|t| (t, read_topic(&brokers, t)))
            .collect();
        kept.values().all(|read| {
            (0..4).all(|p| {
                read.iter()
                    .find(|m| m.partition == p)
                    .is_some_and(|m| m.offset > 0)
            })
        })
    });
    assert!(trimmed, "tansu did not apply the retention");
    // Replay sees what the topics still hold; a tick is covered when its window starts at or
    // after every partition's first kept message (plus the allowed lateness).
    let lines = |read: &[Published]| {
        read.iter()
            .map(|m| m.record.to_string())
            .collect::<Vec<_>>()
    };
    scenario.assignments = lines(&kept["assignments"]);
    scenario.outcomes = lines(&kept["outcomes"]);
    let complete_from = kept
        .values()
        .flat_map(|read| {
            (0..4).filter_map(|p| read.iter().find(|m| m.partition == p)?.record["ts"].as_i64())
        })
        .max()
        .expect("kept messages")
        + 1_000;
    let replayed = scenario.expected();
    let expected: BTreeMap<String, Vec<Value>> = replayed
        .iter()
        .map(|(entity, records)| {
            let covered = records.iter().filter(|r| {
                r["as_of"]
                    .as_i64()
                    .is_some_and(|t| t - 30_000 + 1 >= complete_from)
            });
            (entity.clone(), covered.cloned().collect::<Vec<_>>())
        })
        .collect();
    let withheld: usize = replayed.values().map(Vec::len).sum::<usize>()
        - expected.values().map(Vec::len).sum::<usize>();
    assert!(
        withheld > 0 && expected.values().all(|r| !r.is_empty()),
        "the scenario tests nothing: {withheld} ticks uncovered"
    );
    let mut worker = Worker::start(&scenario.job, &[], &scenario.dir.path().join("worker.log"));
    scenario.await_topic("weights", &expected, &mut worker);
    let log = worker.log_text();
    assert!(
        log.contains(
            "the topic's retention is shorter than window + attribution + allowed_lateness"
        ),
        "{log}"
    );
    assert!(
        log.contains("messages after the rebuild's read start were removed from the topic"),
        "{log}"
    );
    let (status, _) = worker.terminate();
    assert!(status.success());
}

#[test]
fn an_unwritable_checkpoint_directory_keeps_the_worker_publishing_counts_failures_and_retries() {
    let mut scenario = Scenario::with_job("production", "\n[checkpoint]\ndir = \"{dir}/checkpoints\"\ninterval = \"1s\"\n");
    let producer = scenario.stream_traffic(30_000, 6_000, 43);
    let mut worker = Worker::start(&scenario.job, &[], &scenario.dir.path().join("worker.log"));
    let port = worker.metrics_port;
    let gauge = |name: &str| http_get(port, "/metrics").and_then(|(_, page)| metric(&page, name, ""));
    let written = wait_until(Duration::from_secs(60), || {
        worker.assert_running();
        gauge("banditflow_last_checkpoint_timestamp_seconds").is_some_and(|t| t > 0.0)
    });
    assert!(written, "no checkpoint written: {}", worker.log_text());
    // The directory turns into a file: every write fails (as root, permissions would not).
    let (dir, away) = (scenario.dir.path().join("checkpoints"), scenario.dir.path().join("checkpoints.away"));
    std::fs::rename(&dir, &away).expect("move the directory away");
    std::fs::write(&dir, "not a directory").expect("a file in its place");
    let published_before = scenario.published("weights").values().map(Vec::len).sum::<usize>();
    let failing = wait_until(Duration::from_secs(60), || {
        worker.assert_running();
        gauge("banditflow_checkpoint_write_failures_total").is_some_and(|n| n >= 3.0)
            && scenario.published("weights").values().map(Vec::len).sum::<usize>() > published_before
    });
    assert!(failing, "failures not counted, or publishing stopped: {}", worker.log_text());
    let ready = http_get(port, "/readyz").map(|(status, _)| status);
    assert_eq!(ready, Some(200), "a failing checkpoint directory does not make the worker unready");
    std::fs::remove_file(&dir).expect("remove the file");
    std::fs::rename(&away, &dir).expect("move the directory back");
    let restored_s = now_ms() as f64 / 1000.0;
    let again = wait_until(Duration::from_secs(60), || {
        worker.assert_running();
        gauge("banditflow_last_checkpoint_timestamp_seconds").is_some_and(|t| t > restored_s)
    });
    assert!(again, "checkpoints not written again: {}", worker.log_text());
    let log = worker.log_text();
    assert_eq!(log.matches("cannot write a checkpoint").count(), 1, "logged once while failing: {log}");
    assert!(log.contains("checkpoints are written again"), "{log}");
    scenario.finish_streamed(producer, worker);
}

#[test]
fn a_cluster_resumes_from_each_process_s_own_checkpoints_and_a_single_process_from_all_of_them() {
    let mut scenario = Scenario::with_job("production", "\n[checkpoint]\ndir = \"{dir}/checkpoints\"\ninterval = \"1s\"\nkeep = 3\n");
    let producer = scenario.stream_traffic(40_000, 8_000, 47);
    let watch = VersionWatch::start(&scenario.redis, PREFIX);
    let root = scenario.dir.path().to_path_buf();
    let hostfile = root.join("hosts");
    let dirs = [root.join("checkpoints-0"), root.join("checkpoints-1")];
    let checkpoints = |dir: &Path| -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "bin")).collect()).unwrap_or_default();
        files.sort();
        files
    };
    // Two processes of one worker each, each with a checkpoint directory of its own.
    let cluster = |run: usize| -> Vec<Worker> {
        std::fs::write(&hostfile, format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port())).expect("hostfile");
        let hosts = hostfile.to_str().expect("path");
        (0..2)
            .map(|p| {
                let process = p.to_string();
                let env = [("BANDITFLOW_CHECKPOINT_DIR", dirs[p].display().to_string())];
                let log = root.join(format!("run-{run}-process-{p}.log"));
                Worker::start_with(Path::new(env!("CARGO_BIN_EXE_banditflow")), &scenario.job, &["--processes", "2", "--process", &process, "--hostfile", hosts], &env, &log)
            })
            .collect()
    };
    // Until each process has written a checkpoint since `before`, then SIGKILL both.
    let kill_after_checkpoints = |mut workers: Vec<Worker>, before: &[Option<PathBuf>]| {
        let since = Instant::now();
        let written = wait_until(Duration::from_secs(90), || {
            workers.iter_mut().for_each(Worker::assert_running);
            since.elapsed() >= Duration::from_secs(3) && dirs.iter().zip(before).all(|(d, b)| checkpoints(d).last() > b.as_ref())
        });
        assert!(written, "no checkpoints: {}\n{}", workers[0].log_text(), workers[1].log_text());
        workers.into_iter().for_each(Worker::kill);
    };
    kill_after_checkpoints(cluster(0), &[None, None]);
    let before: Vec<Option<PathBuf>> = dirs.iter().map(|d| checkpoints(d).last().cloned()).collect();
    let second = cluster(1);
    kill_after_checkpoints(second, &before);
    for (p, dir) in dirs.iter().enumerate() {
        let log = std::fs::read_to_string(root.join(format!("run-1-process-{p}.log"))).unwrap_or_default();
        assert!(log.contains("resuming from checkpoint") && log.contains("written_by_processes=2"), "process {p}: {log}");
        let named = checkpoints(dir).iter().all(|f| f.to_string_lossy().ends_with(&format!("-process-{p}-of-2.bin")));
        assert!(named, "each process writes its own files: {:?}", checkpoints(dir));
    }
    // One process with two workers, given every process's files in one directory: it
    // resumes from both parts (re-partitioned), and the records are still exactly replay's.
    for f in checkpoints(&dirs[1]) {
        std::fs::copy(&f, dirs[0].join(f.file_name().expect("name"))).expect("copy");
    }
    let env = [("BANDITFLOW_CHECKPOINT_DIR", dirs[0].display().to_string())];
    let single = Worker::start_with(Path::new(env!("CARGO_BIN_EXE_banditflow")), &scenario.job, &["--workers", "2"], &env, &root.join("run-2.log"));
    let resumed = wait_until(Duration::from_secs(60), || std::fs::read_to_string(root.join("run-2.log")).is_ok_and(|l| l.contains("resuming from checkpoint")));
    assert!(resumed, "{}", single.log_text());
    let log = single.log_text();
    assert!(log.contains("written_by_processes=2") && log.contains("-process-0-of-2.bin, ") && log.contains("-process-1-of-2.bin"), "{log}");
    scenario.finish_streamed(producer, single);
    let backwards = watch.finish();
    assert!(backwards.is_empty(), "versions went backwards in Redis: {backwards:?}");
}

#[test]
fn refused_records_go_to_the_dead_letter_topic_unchanged_and_their_offsets_are_committed_after() {
    let mut scenario = Scenario::new("production");
    scenario.broker.create_topic("dead-letters", 1);
    let (a, o) = past_traffic(scenario.dir.path(), 43);
    let ts = serde_json::from_str::<Value>(&a[0]).expect("json")["ts"].as_i64().expect("ts");
    scenario.produce(a, o);
    let bad_assignments: Vec<(String, Vec<u8>, &str)> = vec![
        ("bad-1".into(), br#"{"assignment_id":"bad-1","entity_id":"entity-000","arm_id""#.to_vec(), "invalid_json"),
        ("bad-2".into(), b"{\"assignment_id\":\"bad-2\xff\",\"entity_id\":\"entity-000\",\"arm_id\":\"arm-0\",\"ts\":1}".to_vec(), "invalid_utf8"),
        ("bad-3".into(), format!(r#"{{"assignment_id":"bad-3","entity_id":"entity-000","arm_id":"arm-0","ts":{ts},"ts":{ts}}}"#).into_bytes(), "duplicate_key"),
        ("bad-4".into(), format!(r#"{{"assignment_id":"bad-4","entity_id":"{}","arm_id":"arm-0","ts":{ts}}}"#, "e".repeat(10_000)).into_bytes(), "id_length"),
        ("bad-5".into(), format!(r#"{{"assignment_id":"bad-5","entity_id":"entity-000","arm_id":"arm-0","ts":{ts},"pad":"{}"}}"#, "p".repeat(100_000)).into_bytes(), "record_too_large"),
        ("bad-6".into(), b"[1, 2, 3]".to_vec(), "not_an_object"),
        ("bad-7".into(), format!(r#"{{"assignment_id":"bad-7","entity_id":"entity-000","arm_id":"arm-0","ts":{}}}"#, ts - 30 * 86_400_000).into_bytes(), "ts_too_old"),
    ];
    let bad_outcomes: Vec<(String, Vec<u8>, &str)> = vec![("bad-8".into(), br#"{"assignment_id":"bad-8","ts":1e400}"#.to_vec(), "non_finite_number")];
    let raw = |bad: &[(String, Vec<u8>, &str)]| bad.iter().map(|(k, v, _)| (k.clone(), v.clone())).collect::<Vec<_>>();
    produce_raw(&scenario.broker.brokers(), "assignments", &raw(&bad_assignments));
    produce_raw(&scenario.broker.brokers(), "outcomes", &raw(&bad_outcomes));
    let expected = scenario.expected();
    let env = [("BANDITFLOW_KAFKA_DEAD_LETTER_TOPIC", "dead-letters".to_owned())];
    let mut worker = Worker::start_with(Path::new(env!("CARGO_BIN_EXE_banditflow")), &scenario.job, &[], &env, &scenario.dir.path().join("worker.log"));
    // The bad records change no weight record.
    scenario.await_topic("weights", &expected, &mut worker);
    let brokers = scenario.broker.brokers();
    let letters = read_raw(&brokers, "dead-letters", bad_assignments.len() + bad_outcomes.len(), Duration::from_secs(60));
    assert_eq!(letters.len(), bad_assignments.len() + bad_outcomes.len(), "one letter per bad record: {letters:?}");
    let inputs: BTreeMap<&str, Vec<RawMessage>> = [("assignments", read_raw(&brokers, "assignments", 1, Duration::from_secs(60))), ("outcomes", read_raw(&brokers, "outcomes", 1, Duration::from_secs(60)))].into_iter().collect();
    for (topic, bad) in [("assignments", &bad_assignments), ("outcomes", &bad_outcomes)] {
        for (key, value, reason) in bad {
            let letter = letters.iter().find(|l| l.key.as_deref() == Some(key.as_bytes())).unwrap_or_else(|| panic!("{key} ({reason}) is not in the dead-letter topic"));
            assert!(letter.payload == *value, "{key}: the value is the original bytes");
            assert_eq!(letter.headers.get("reason").map(String::as_str), Some(*reason), "{key}");
            assert_eq!(letter.headers.get("source_topic").map(String::as_str), Some(topic), "{key}");
            let partition: i32 = letter.headers["source_partition"].parse().expect("partition");
            let offset: i64 = letter.headers["source_offset"].parse().expect("offset");
            let source = inputs[topic].iter().find(|m| m.partition == partition && m.offset == offset).expect("the source message");
            assert!(source.payload == *value, "{key}: source_partition and source_offset point at it");
        }
    }
    // Everything read is committed, the refused records included, once they are delivered.
    for topic in ["assignments", "outcomes"] {
        let ends: BTreeMap<i32, i64> = end_offsets(&brokers, topic);
        let done = wait_until(Duration::from_secs(30), || committed(&brokers, GROUP, topic, 4) == ends);
        assert!(done, "{topic}: committed {:?}, ends {ends:?}", committed(&brokers, GROUP, topic, 4));
    }
    let (status, _) = worker.terminate();
    assert!(status.success());
}


#[test]
fn records_past_a_cap_go_to_the_dead_letter_topic_with_its_reason_and_change_no_good_record() {
    // The traffic's three entities and their three arms fill both caps.
    let mut scenario = Scenario::with_job("production", "[limits]\nmax_entities = 3\nmax_arms_per_entity = 3\nmax_outcomes_per_assignment = 2\n");
    scenario.broker.create_topic("dead-letters", 1);
    let (a, o) = past_traffic(scenario.dir.path(), 47);
    // What comes next is produced after the traffic and so stands after it in each partition:
    // it has later times too, or a worker that has read on past it would take it as late
    // (whether it has depends on how its reads fall: a CI run under load showed it).
    let last = a.iter().chain(&o).filter_map(|l| serde_json::from_str::<Value>(l).ok()?["ts"].as_i64()).max().expect("ts");
    let pair: Value = serde_json::from_str(&a[0]).expect("an assignment");
    scenario.produce(a, o);
    // An assignment of a held pair with four outcomes, one key: the last two are past the
    // outcome cap (replay, which gives the expected records, refuses them too).
    let busy = format!(r#"{{"assignment_id":"busy","entity_id":{},"arm_id":{},"ts":{}}}"#, pair["entity_id"], pair["arm_id"], last + 1_000);
    let busy_outcomes: Vec<String> = (1..=4).map(|i| format!(r#"{{"assignment_id":"busy","ts":{}}}"#, last + 1_000 + i)).collect();
    scenario.produce(vec![busy], busy_outcomes.clone());
    // After every entity and arm was first seen: new entities, and new arms of a held entity.
    let flood: Vec<(String, Vec<u8>, &str)> = (0..300)
        .map(|i| (format!("fe-{i}"), format!(r#"{{"assignment_id":"fe-{i}","entity_id":"flood-{i}","arm_id":"arm-0","ts":{}}}"#, last + 5_000 + i).into_bytes(), "max_entities"))
        .chain((0..300).map(|i| (format!("fa-{i}"), format!(r#"{{"assignment_id":"fa-{i}","entity_id":"entity-001","arm_id":"flood-{i}","ts":{}}}"#, last + 5_000 + i).into_bytes(), "max_arms_per_entity")))
        .collect();
    produce_raw(&scenario.broker.brokers(), "assignments", &flood.iter().map(|(k, v, _)| (k.clone(), v.clone())).collect::<Vec<_>>());
    let expected = scenario.expected();
    let env = [("BANDITFLOW_KAFKA_DEAD_LETTER_TOPIC", "dead-letters".to_owned())];
    let mut worker = Worker::start_with(Path::new(env!("CARGO_BIN_EXE_banditflow")), &scenario.job, &[], &env, &scenario.dir.path().join("worker.log"));
    scenario.await_topic("weights", &expected, &mut worker);
    let brokers = scenario.broker.brokers();
    let letters = read_raw(&brokers, "dead-letters", flood.len() + 2, Duration::from_secs(60));
    assert_eq!(letters.len(), flood.len() + 2, "one letter per refused record");
    let capped: Vec<Vec<u8>> = letters.iter().filter(|l| l.headers.get("reason").map(String::as_str) == Some("max_outcomes_per_assignment")).map(|l| l.payload.clone()).collect();
    let past_cap: Vec<Vec<u8>> = busy_outcomes[2..].iter().map(|o| o.as_bytes().to_vec()).collect();
    assert_eq!(capped, past_cap, "the outcomes past the cap, in order");
    assert!(letters.iter().filter(|l| l.payload.starts_with(br#"{"assignment_id":"busy""#)).all(|l| l.key.as_deref() == Some(b"busy".as_slice()) && l.headers.get("source_topic").map(String::as_str) == Some("outcomes")));
    for (key, value, reason) in &flood {
        let letter = letters.iter().find(|l| l.key.as_deref() == Some(key.as_bytes())).unwrap_or_else(|| panic!("{key} is not in the dead-letter topic"));
        assert!(letter.payload == *value, "{key}: the original bytes");
        assert_eq!(letter.headers.get("reason").map(String::as_str), Some(*reason), "{key}");
        assert_eq!(letter.headers.get("source_topic").map(String::as_str), Some("assignments"), "{key}");
    }
    // The caps' use is on the metrics page (workers report every quarter second), and
    // everything read is committed.
    let port = worker.metrics_port;
    let wanted = [
        ("banditflow_cap_used", r#"cap="max_entities""#, 3.0),
        ("banditflow_cap_limit", r#"cap="max_entities""#, 3.0),
        ("banditflow_cap_used", r#"cap="max_arms_per_entity""#, 3.0),
        ("banditflow_malformed_total", r#"reason="max_entities""#, 300.0),
        ("banditflow_malformed_total", r#"reason="max_arms_per_entity""#, 300.0),
        ("banditflow_malformed_total", r#"reason="max_outcomes_per_assignment""#, 2.0),
        ("banditflow_cap_limit", r#"cap="max_outcomes_per_assignment""#, 2.0),
    ];
    let shown = || http_get(port, "/metrics").is_some_and(|(_, page)| wanted.iter().all(|(name, labels, value)| metric(&page, name, labels) == Some(*value)));
    assert!(wait_until(Duration::from_secs(30), shown), "{:?}", http_get(port, "/metrics"));
    let ends: BTreeMap<i32, i64> = end_offsets(&brokers, "assignments");
    let done = wait_until(Duration::from_secs(30), || committed(&brokers, GROUP, "assignments", 4) == ends);
    assert!(done, "committed {:?}, ends {ends:?}", committed(&brokers, GROUP, "assignments", 4));
    let ends: BTreeMap<i32, i64> = end_offsets(&brokers, "outcomes");
    let done = wait_until(Duration::from_secs(30), || committed(&brokers, GROUP, "outcomes", 4) == ends);
    assert!(done, "outcomes committed {:?}, ends {ends:?}", committed(&brokers, GROUP, "outcomes", 4));
    let (status, _) = worker.terminate();
    assert!(status.success());
}

/// The resident set size of process `pid`, in KiB (`VmRSS` in `/proc/PID/status`).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the worker's /proc status");
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).expect("VmRSS")
}

#[test]
fn short_lived_entities_are_forgotten_and_memory_and_the_entities_gauge_return_to_their_baseline() {
    // A window of three ticks: an entity seen once is forgotten about ten seconds later. Its
    // waves load the machine: it runs alone, so the tests timed by the wall clock do not
    // starve beside it.
    let scenario = Scenario::alone("production", "window = \"3s\"\nattribution = \"1s\"\n[limits]\nmax_entities = 200000\n");
    let mut worker = Worker::start(&scenario.job, &[], &scenario.dir.path().join("worker.log"));
    let port = worker.metrics_port;
    let gauges = || http_get(port, "/metrics").and_then(|(_, page)| Some((metric(&page, "banditflow_entities", "")?, metric(&page, "banditflow_cap_used", r#"cap="max_entities""#)?)));
    assert!(wait_until(Duration::from_secs(60), || gauges().is_some()), "metrics up");
    let baseline = gauges().expect("gauges");
    assert_eq!(baseline, (0.0, 0.0), "nothing held before any traffic");
    // Waves of entities that each get one assignment and are never seen again.
    let wave = |n: usize, name: &str| {
        let at = now_ms() - 2_000;
        let lines: Vec<String> = (0..n).map(|i| format!(r#"{{"assignment_id":"{name}-{i}","entity_id":"{name}-{i}","arm_id":"a","ts":{}}}"#, at + (i % 1000) as i64)).collect();
        produce(&scenario.broker.brokers(), "assignments", &lines, "assignment_id");
    };
    let allocated = || http_get(port, "/metrics").and_then(|(_, page)| metric(&page, "banditflow_memory_allocated_bytes", "")).expect("allocated bytes") as u64;
    // Once a wave is forgotten (and its records are written: the sinks' queues hold them
    // until then), what stays allocated is within a fixed amount of the warm-up's, whatever
    // the entities ever seen: buffers sized by the largest batch, not state per entity.
    let mut bound = None;
    let mut seen: Vec<(&str, u64, u64)> = Vec::new();
    for (n, name) in [(1_000, "warm-up"), (100_000, "first"), (100_000, "second")] {
        wave(n, name);
        // The wave is taken in (every entity held at once) and then forgotten.
        let held = wait_until(Duration::from_secs(120), || gauges().is_some_and(|(_, used)| used >= n as f64));
        assert!(held, "{name}: the wave was taken in: {:?}", gauges());
        let gone = wait_until(Duration::from_secs(180), || gauges() == Some(baseline));
        assert!(gone, "{name}: the entities gauge and the cap's use returned to {baseline:?}: {:?}", gauges());
        worker.assert_running();
        let limit = *bound.get_or_insert_with(|| allocated() + (40 << 20));
        let back = wait_until(Duration::from_secs(180), || allocated() <= limit);
        assert!(back, "{name}: {} bytes still allocated three minutes after the wave was forgotten, over {limit}", allocated());
        seen.push((name, allocated(), rss_kib(worker.child.id())));
    }
    eprintln!("per wave, once forgotten and written (allocated bytes, resident KiB): {seen:?}");
    let (status, _) = worker.terminate();
    assert!(status.success());
}

#[test]
fn a_tls_redis_with_its_password_from_the_environment_gets_every_entitys_newest_record() {
    let mut scenario = Scenario::new("production");
    let tls = TlsRedis::start(scenario.dir.path(), "tls-pass-5309");
    let (a, o) = past_traffic(scenario.dir.path(), 47);
    scenario.produce(a, o);
    let expected = scenario.expected();
    // The certificate is its own authority; SSL_CERT_FILE makes the worker trust it.
    let env = [("BANDITFLOW_REDIS_URL", tls.url()), ("SSL_CERT_FILE", tls.cert.display().to_string())];
    let mut worker = Worker::start_with(Path::new(env!("CARGO_BIN_EXE_banditflow")), &scenario.job, &[], &env, &scenario.dir.path().join("worker.log"));
    let newest = |entity: &str| tls.get(&format!("{PREFIX}:{entity}")).and_then(|v| serde_json::from_str::<Value>(&v).ok()).map(|v| deterministic(&v));
    let done = wait_until(Duration::from_secs(90), || {
        worker.assert_running();
        expected.iter().all(|(e, r)| newest(e).as_ref() == r.last())
    });
    assert!(done, "the TLS redis did not get the newest records: {}", worker.log_text());
    assert!(!worker.log_text().contains(&tls.password), "the password is in the log");
    let (status, _) = worker.terminate();
    assert!(status.success());
}

#[test]
fn passwords_from_the_environment_appear_in_no_log_error_or_metrics_of_runs_that_cannot_connect() {
    const REDIS_SECRET: &str = "SECRET-REDIS-7731";
    const KAFKA_SECRET: &str = "SECRET-KAFKA-7731";
    let mut scenario = Scenario::new("production");
    let (a, o) = past_traffic(scenario.dir.path(), 53);
    scenario.produce(a, o);
    // Redis unreachable (nothing listens on the port): the worker runs, its Redis sink down.
    let closed = free_port();
    let env = [
        ("BANDITFLOW_REDIS_URL", format!("redis://bandit:{REDIS_SECRET}@127.0.0.1:{closed}/0")),
        ("BANDITFLOW_KAFKA_PROPERTIES_SASL_PASSWORD", KAFKA_SECRET.to_owned()),
        ("RUST_BACKTRACE", "1".to_owned()),
    ];
    let binary = Path::new(env!("CARGO_BIN_EXE_banditflow"));
    let mut worker = Worker::start_with(binary, &scenario.job, &[], &env, &scenario.dir.path().join("worker.log"));
    let down = wait_until(Duration::from_secs(60), || {
        worker.assert_running();
        worker.log_text().contains("sink is down")
    });
    assert!(down, "the Redis sink never went down: {}", worker.log_text());
    let mut pages = String::new();
    for path in ["/metrics", "/healthz", "/readyz"] {
        let got = wait_until(Duration::from_secs(30), || http_get(worker.metrics_port, path).is_some());
        assert!(got, "{path} did not answer");
        pages.push_str(&http_get(worker.metrics_port, path).map(|(_, body)| body).unwrap_or_default());
    }
    assert!(pages.contains("banditflow_"), "the metrics page has the worker's series");
    let log_file = worker.log.clone();
    let (status, _) = worker.terminate();
    assert!(status.success());
    let log = std::fs::read_to_string(&log_file).expect("log");
    assert!(log.contains("bandit:***@127.0.0.1"), "the URL is shown, its password hidden: {log}");
    // Kafka unreachable: the worker cannot start, and says why.
    let job = scenario.dir.path().join("unreachable.toml");
    let text = std::fs::read_to_string(&scenario.job).expect("job");
    std::fs::write(&job, text.replace(&scenario.broker.brokers(), &format!("127.0.0.1:{}", free_port()))).expect("job");
    let failed = std::process::Command::new(binary).arg("run").arg("--dataflow").arg(&job).envs(env.iter().map(|(k, v)| (*k, v.as_str()))).output().expect("run");
    assert!(!failed.status.success(), "a worker without brokers fails");
    let said = format!("{}{}", String::from_utf8_lossy(&failed.stdout), String::from_utf8_lossy(&failed.stderr));
    assert!(said.contains("error:") && said.contains("brokers"), "{said}");
    for secret in [REDIS_SECRET, KAFKA_SECRET] {
        assert!(!log.contains(secret), "{secret} in the worker's log");
        assert!(!pages.contains(secret), "{secret} on its HTTP pages");
        assert!(!said.contains(secret), "{secret} in what the failed run printed");
    }
}

/// The arm registry topic against replay with `--arms` of the same records, the worker run
/// with `extra` arguments: declarations before the traffic (one with an initial weight),
/// a retirement, a reactivation (its counts kept, or with `reset` started from the prior)
/// and a declaration older than `max_age`.
fn registry_shape(extra: &[&str], reset: bool) {
    let mut scenario = Scenario::new("production");
    scenario.broker.create_topic("arms", 2);
    if reset {
        let text = std::fs::read_to_string(&scenario.job).expect("job");
        let changed = text.replace("max_step = 0.2\n", "max_step = 0.2\non_reactivate = \"reset\"\n");
        assert_ne!(changed, text, "the job has the max_step line this test extends");
        std::fs::write(&scenario.job, changed).expect("job");
    }
    let (a, o) = past_traffic(scenario.dir.path(), 53);
    let first = a.iter().filter_map(|l| serde_json::from_str::<Value>(l).ok()?["ts"].as_i64()).min().expect("ts");
    // A new model declared before the traffic (it has no assignments: it shows with the
    // prior), with its metadata and a share of the declared split; an arm retired a third of
    // the way in and reactivated (a retrained model) two thirds in; and, declared long ago
    // (older than the worker's `max_age`), a second new arm of another entity.
    let registry = [
        ("entity-000/arm-new", format!(r#"{{"entity_id":"entity-000","arm_id":"arm-new","state":"active","ts":{},"initial_weight":0.2,"metadata":{{"model_version":"v2","trained_at":"2026-11-30T00:00:00Z","labels":{{"team":"search"}}}}}}"#, first - 5_000)),
        ("entity-001/arm-1", format!(r#"{{"entity_id":"entity-001","arm_id":"arm-1","state":"retired","ts":{}}}"#, first + 10_000)),
        ("entity-001/arm-1", format!(r#"{{"entity_id":"entity-001","arm_id":"arm-1","state":"active","ts":{},"metadata":{{"model_version":"v3"}}}}"#, first + 20_000)),
        ("entity-002/arm-old", format!(r#"{{"entity_id":"entity-002","arm_id":"arm-old","state":"active","ts":{}}}"#, first - 30 * 86_400_000)),
    ];
    produce_raw(&scenario.broker.brokers(), "arms", &registry.iter().map(|(k, v)| ((*k).to_owned(), v.clone().into_bytes())).collect::<Vec<_>>());
    scenario.arms = registry.iter().map(|(_, v)| v.clone()).collect();
    scenario.produce(a, o);
    let expected = scenario.expected();
    // What replay makes of the registry, so the comparison below means something.
    let arms_of = |record: &Value| record["arms"].as_array().expect("arms").iter().map(|a| a["arm_id"].as_str().expect("id").to_owned()).collect::<Vec<_>>();
    let last = |entity: &str| expected[entity].last().expect("records").clone();
    assert!(arms_of(&last("entity-000")).contains(&"arm-new".to_owned()), "{}", last("entity-000"));
    assert!(arms_of(&last("entity-002")).contains(&"arm-old".to_owned()), "{}", last("entity-002"));
    let at = |entity: &str, ts: i64| expected[entity].iter().rfind(|r| r["as_of"].as_i64().is_some_and(|as_of| as_of <= ts)).cloned().expect("a record by then");
    assert!(!arms_of(&at("entity-001", first + 19_000)).contains(&"arm-1".to_owned()), "retired: {}", at("entity-001", first + 19_000));
    // The record of the reactivation's tick: arm-1 back with its new metadata, and its counts
    // from before the retirement kept, or (reset) gone.
    let tick_end = (first + 20_000) / 1_000 * 1_000 + 999;
    let back = expected["entity-001"].iter().find(|r| r["as_of"].as_i64() == Some(tick_end)).cloned().unwrap_or_else(|| panic!("a record at the reactivation: {:?}", expected["entity-001"]));
    let arm_1 = back["arms"].as_array().expect("arms").iter().find(|a| a["arm_id"] == "arm-1").cloned().unwrap_or_else(|| panic!("reactivated: {back}"));
    assert_eq!(arm_1["metadata"]["model_version"], "v3", "new metadata: {arm_1}");
    assert_eq!(arm_1["trials"].as_u64() == Some(0), reset, "counts kept unless reset: {arm_1}");
    let env = [("BANDITFLOW_KAFKA_ARMS_TOPIC", "arms".to_owned())];
    let mut worker = Worker::start_with(Path::new(env!("CARGO_BIN_EXE_banditflow")), &scenario.job, extra, &env, &scenario.dir.path().join("worker.log"));
    scenario.await_topic("weights", &expected, &mut worker);
    let new_arm = last("entity-000")["arms"].as_array().expect("arms").iter().find(|a| a["arm_id"] == "arm-new").cloned().expect("arm-new");
    assert_eq!(new_arm["metadata"]["model_version"], "v2", "metadata unchanged: {new_arm}");
    let (status, _) = worker.terminate();
    assert!(status.success());
}

#[test]
fn the_arm_registry_topic_declares_retires_and_reactivates_arms_as_replay_with_arms_does() {
    registry_shape(&[], false);
}

#[test]
fn with_two_worker_threads_the_registry_topic_publishes_what_replay_does_and_a_reset_reactivation_starts_from_the_prior() {
    registry_shape(&["--workers", "2"], true);
}

#[test]
fn arms_set_retire_and_list_round_trip_through_the_registry_topic() {
    let scenario = Scenario::new("production");
    scenario.broker.create_topic("arms", 2);
    let arms = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_banditflow"))
            .arg("arms")
            .args(&args[..1])
            .arg("--dataflow")
            .arg(&scenario.job)
            .args(&args[1..])
            .env("BANDITFLOW_KAFKA_ARMS_TOPIC", "arms")
            .output()
            .expect("run banditflow arms");
        assert!(out.status.success(), "arms {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (_, said) = arms(&["set", "entity-000", "model-b", "--model-version", "v3", "--trained-at", "2026-11-30T12:00:00Z", "--label", "team=search", "--label", "stage=canary"]);
    assert!(said.contains("entity-000/model-b is active from"), "{said}");
    arms(&["set", "entity-000", "model-c", "--initial-weight", "0.25"]);
    arms(&["set", "entity-001", "model-a", "--model-version", "v1"]);
    arms(&["retire", "entity-000", "model-b"]);
    let (listed, _) = arms(&["list", "--json", "--entity", "entity-000"]);
    let records: Vec<Value> = listed.lines().map(|l| serde_json::from_str(l).expect("a registry record")).collect();
    let states: Vec<(&str, &str)> = records.iter().map(|r| (r["arm_id"].as_str().expect("arm"), r["state"].as_str().expect("state"))).collect();
    assert_eq!(states, [("model-b", "retired"), ("model-c", "active")], "{listed}");
    assert_eq!(records[1]["initial_weight"], serde_json::json!(0.25), "{listed}");
    // What was written is a registry record the dataflow reads, under its key.
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/arm.schema.json")).expect("schema")).expect("JSON");
    let validator = jsonschema::draft202012::new(&schema).expect("schema compiles");
    let written = read_raw(&scenario.broker.brokers(), "arms", 4, Duration::from_secs(30));
    assert_eq!(written.len(), 4);
    for message in &written {
        let record: Value = serde_json::from_slice(&message.payload).expect("JSON");
        assert!(validator.is_valid(&record), "{record}");
        let key = format!("{}/{}", record["entity_id"].as_str().expect("entity"), record["arm_id"].as_str().expect("arm"));
        assert_eq!(message.key.as_deref(), Some(key.as_bytes()));
    }
    let first = written.iter().map(|m| serde_json::from_slice::<Value>(&m.payload).expect("JSON")).find(|r| r["state"] == "active" && r["arm_id"] == "model-b").expect("the first record");
    assert_eq!(first["metadata"], serde_json::json!({"model_version": "v3", "trained_at": "2026-11-30T12:00:00Z", "labels": {"team": "search", "stage": "canary"}}));
    // The table: every arm of every entity, metadata in its columns.
    let (table, _) = arms(&["list"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("entity") && lines[0].contains("model_version"), "{table}");
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines.iter().any(|l| l.contains("entity-001") && l.contains("model-a") && l.contains("active") && l.contains("v1")), "{table}");
    assert!(lines[0].contains("initial_weight") && lines.iter().any(|l| l.contains("model-c") && l.contains("0.25")), "{table}");
    // A weight outside (0, 1] is refused before anything is written.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_banditflow"))
        .args(["arms", "set", "--dataflow"])
        .arg(&scenario.job)
        .args(["entity-000", "model-d", "--initial-weight", "1.5"])
        .env("BANDITFLOW_KAFKA_ARMS_TOPIC", "arms")
        .output()
        .expect("run");
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--initial-weight 1.5"), "{}", String::from_utf8_lossy(&out.stderr));
    // Without a registry topic in the job, it says so.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_banditflow")).args(["arms", "list", "--dataflow"]).arg(&scenario.job).output().expect("run");
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("arms_topic"), "{}", String::from_utf8_lossy(&out.stderr));
}
