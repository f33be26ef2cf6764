//! The serving client against a live worker: tansu and redis-server on loopback, the worker
//! publishing to both, and the client's caches following each while the client's own
//! `assign` and producer make the traffic (a closed loop, as a serving process runs it).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use banditflow_client::follow::{self, Following};
use banditflow_client::produce::{Outcome, TrafficProducer};
use banditflow_client::{Assigner, Defaults, WeightsCache};
use common::*;

const PREFIX: &str = "serving";
const ENTITIES: [&str; 2] = ["hero", "ranker"];
const ARMS: [&str; 3] = ["a", "b", "c"];

fn job(brokers: &str, redis_url: &str) -> String {
    let mut text = format!(
        r#"name = "serving-test"
tick = "1s"
window = "10m"
attribution = "2s"
allowed_lateness = "1s"
idle_timeout = "1s"
mode = "production"

[policy]
min_trials = 5
floor = 0.05
max_step = 0.2

[kafka]
brokers = "{brokers}"
assignments_topic = "assignments"
outcomes_topic = "outcomes"
weights_topic = "weights"
group_id = "serving-test"

[redis]
url = "{redis_url}"
prefix = "{PREFIX}"
"#
    );
    for entity in ENTITIES {
        text.push_str(&format!("\n[[arms]]\nentity_id = \"{entity}\"\narm_ids = [\"a\", \"b\", \"c\"]\n"));
    }
    text
}

/// Waits up to `secs` for `condition`, polling; panics with `what` and the worker's log.
fn wait_for(secs: u64, what: &str, log: &std::path::Path, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !condition() {
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}; worker log:\n{}", std::fs::read_to_string(log).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Serves units of every entity by `assigner` and produces the assignments and their
/// outcomes (arm c converts at 40%, the others at 10%), until `stop`.
fn closed_loop(assigner: Arc<Assigner>, producer: TrafficProducer, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut served = 0u64;
        while !stop.load(Ordering::Acquire) {
            for entity in ENTITIES {
                served += 1;
                let unit = format!("unit-{served}");
                let Ok(assignment) = assigner.assign(entity, &unit) else { continue };
                producer.assignment(&assignment).expect("produce an assignment");
                // A deterministic conversion: arm c for 4 units in 10, the others 1 in 10.
                let converts = if assignment.arm_id == "c" { served % 10 < 4 } else { served.is_multiple_of(10) };
                if converts {
                    producer.outcome(&Outcome { assignment_id: assignment.assignment_id.clone(), ts: assignment.ts + 100, kind: None }).expect("produce an outcome");
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        producer.flush(Duration::from_secs(10)).expect("flush");
        served
    })
}

#[test]
fn the_client_follows_a_live_worker_through_redis_and_tansu_ignores_older_versions_survives_a_redis_restart_and_falls_back_once_it_stops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start();
    for (topic, partitions) in [("assignments", 2), ("outcomes", 2), ("weights", 2)] {
        broker.create_topic(topic, partitions);
    }
    let redis_dir = dir.path().join("redis");
    std::fs::create_dir_all(&redis_dir).expect("redis dir");
    let mut redis = Redis::start(&redis_dir);
    let job_path = dir.path().join("job.toml");
    std::fs::write(&job_path, job(&broker.brokers(), &redis.url())).expect("job file");
    let log = dir.path().join("worker.log");
    let worker = Worker::start(&job_path, &[], &log);

    // The caches and their followers.
    let via_redis = Arc::new(WeightsCache::new());
    let via_kafka = Arc::new(WeightsCache::new());
    let redis_client = redis::Client::open(redis.url()).expect("redis client");
    let (cache, prefix) = (via_redis.clone(), PREFIX.to_owned());
    let redis_follower = Following::spawn("redis", move |progress| follow::redis::follow(redis_client, prefix, cache, progress)).expect("follow redis");
    let (cache, brokers) = (via_kafka.clone(), broker.brokers());
    let kafka_follower = Following::spawn("kafka", move |progress| follow::kafka::follow(brokers, Vec::new(), "weights".into(), cache, progress)).expect("follow the topic");

    // Traffic served by the client itself, from the topic's cache (uniform over the declared
    // arms until the first records arrive: marked as fallbacks).
    let job_file = banditflow_core::config::Dataflow::load(&job_path).expect("job");
    let assigner = Arc::new(Assigner::new(via_kafka.clone(), Defaults::of_job(&job_file, 60_000)));
    let producer = TrafficProducer::new(&broker.brokers(), &[], "assignments", "outcomes").expect("producer");
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = closed_loop(assigner.clone(), producer, stop.clone());

    // Both caches catch up with what Redis holds, entity by entity.
    let redis_versions = |redis: &Redis| -> Vec<(String, u64)> {
        redis.records(PREFIX).into_iter().filter_map(|(key, v)| Some((key.strip_prefix(&format!("{PREFIX}:"))?.to_owned(), v["version"].as_u64()?))).collect()
    };
    wait_for(180, "records of every entity in Redis", &log, || redis_versions(&redis).len() == ENTITIES.len());
    let snapshot = redis_versions(&redis);
    wait_for(120, "both caches to reach Redis's versions", &log, || {
        snapshot.iter().all(|(e, v)| via_redis.version(e).is_some_and(|c| c >= *v) && via_kafka.version(e).is_some_and(|c| c >= *v))
    });
    assert!(redis_follower.progress().loaded() && kafka_follower.progress().loaded());
    let record = via_redis.get("hero").expect("hero's record");
    assert_eq!(record.record.max_age_hint_ms, 5_000, "five ticks of 1 s");
    let served = assigner.assign("hero", "someone").expect("served");
    assert!(!served.fallback && served.weights_version.is_some_and(|v| v >= snapshot[0].1.min(snapshot[1].1)), "{served:?}");

    // An older record, replayed into both: ignored.
    let hero = via_kafka.get("hero").expect("hero");
    let mut old = hero.record.clone();
    old.version = 1;
    old.arms.iter_mut().for_each(|a| a.weight = if a.arm_id == "a" { 1.0 } else { 0.0 });
    let old_json = serde_json::to_string(&old).expect("json");
    let (older_redis, older_kafka) = (redis_follower.progress().counts().1, kafka_follower.progress().counts().1);
    produce_raw(&broker.brokers(), "weights", &[("hero".to_owned(), old_json.clone().into_bytes())]);
    let mut connection = redis.connection();
    let _: () = redis::cmd("SET").arg(format!("{PREFIX}:hero")).arg(&old_json).query(&mut connection).expect("SET");
    let _: () = redis::cmd("PUBLISH").arg(format!("{PREFIX}:updates")).arg("hero").query(&mut connection).expect("PUBLISH");
    wait_for(60, "both followers to meet the older record", &log, || redis_follower.progress().counts().1 > older_redis && kafka_follower.progress().counts().1 > older_kafka);
    assert!(via_kafka.version("hero") >= Some(hero.record.version) && via_redis.version("hero") > Some(1), "the older version never replaces a newer one");

    // Redis restarts: the follower connects again, loads, and follows on.
    let before_restart: Vec<(String, u64)> = ENTITIES.iter().map(|e| ((*e).to_owned(), via_redis.version(e).unwrap_or(0))).collect();
    redis.stop();
    redis.resume();
    wait_for(120, "the Redis follower to reconnect and see newer versions", &log, || {
        redis_follower.progress().counts().3 >= 1 && before_restart.iter().all(|(e, v)| via_redis.version(e).is_some_and(|c| c > *v))
    });

    // The worker stops: once the pipeline has said nothing for longer than max_age (the
    // records' hint), assign falls back and says so.
    let (kept_before, ..) = kafka_follower.progress().counts();
    assert!(kept_before > 0);
    stop.store(true, Ordering::Release);
    let served_total = traffic.join().expect("traffic thread");
    assert!(served_total > 0);
    let (status, _) = worker.terminate();
    assert!(status.success(), "worker: {status:?}");
    let hint = i64::try_from(record.record.max_age_hint_ms).expect("hint");
    let watching = Assigner::new(via_redis.clone(), Defaults::of_job(&job_file, None));
    wait_for(60, "assign to fall back after max_age", &log, || watching.assign("hero", "unit-x").is_ok_and(|a| a.fallback));
    let fallback = watching.assign("ranker", "unit-y").expect("fallback");
    assert!(fallback.fallback && fallback.weights_version.is_none() && (fallback.propensity - 1.0 / ARMS.len() as f64).abs() < 1e-12, "{fallback:?}");
    assert!(watching.metrics().fallbacks().1 >= 2, "counted as stale");
    assert!(via_redis.age_ms("hero", banditflow_core::time::now_ms()).is_some_and(|age| age > hint));
}

/// A weight record of `hero` at `version` with these weights for arms a, b, c.
fn hero(version: u64, weights: [f64; 3]) -> banditflow_client::WeightRecord {
    let arms: Vec<serde_json::Value> = ARMS
        .iter()
        .zip(weights)
        .map(|(id, w)| serde_json::json!({"arm_id": id, "weight": w, "p_best": w, "alpha": 1.0, "beta": 1.0, "trials": 0, "successes": 0,
            "mean": 0.5, "ci95": [0.0, 1.0], "expected_loss": 0.0, "vs_control": null, "state": "exploring"}))
        .collect();
    serde_json::from_value(serde_json::json!({"entity_id": "hero", "version": version, "as_of": version, "computed_at": 0, "status": "adaptive", "arms": arms,
        "chi_square": {"statistic": 0.0, "dof": 0, "p_value": 1.0},
        "srm": {"statistic": 0.0, "dof": 0, "p_value": 1.0, "flagged": false, "matched": 0, "unmatched": 0},
        "max_age_hint_ms": 5_000, "dataflow": "t", "schema_version": banditflow_client::SCHEMA_VERSION}))
    .expect("a weight record")
}

#[test]
fn a_redis_sticky_store_keeps_units_on_their_arm_across_serving_processes_and_serving_goes_on_without_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut redis = Redis::start(dir.path());
    let cache = Arc::new(WeightsCache::new());
    cache.offer(hero(1, [0.2, 0.3, 0.5]));
    let store = |redis: &Redis| Arc::new(banditflow_client::RedisSticky::new(redis::Client::open(redis.url()).expect("client"), PREFIX));
    let first = Assigner::new(cache.clone(), Defaults::new(i64::MAX)).with_sticky(store(&redis));
    let units: Vec<String> = (0..300).map(|u| format!("u{u}")).collect();
    let before: Vec<String> = units.iter().map(|u| first.assign("hero", u).expect("served").arm_id).collect();
    assert!(before.iter().any(|a| a == "a") && before.iter().any(|a| a == "c"));
    // The weights move a lot; another serving process, with its own connection, keeps
    // every unit on its arm.
    cache.offer(hero(2, [0.6, 0.1, 0.3]));
    let second = Assigner::new(cache.clone(), Defaults::new(i64::MAX)).with_sticky(store(&redis));
    for (u, arm) in units.iter().zip(&before) {
        let served = second.assign("hero", u).expect("served");
        assert_eq!((&served.arm_id, served.sticky), (arm, true), "{u}");
    }
    // Arm c stops: its units move (and are remembered on their new arm), the others stay.
    cache.offer(hero(3, [0.5, 0.5, 0.0]));
    let moved: Vec<String> = units.iter().map(|u| second.assign("hero", u).expect("served").arm_id).collect();
    for ((u, was), now) in units.iter().zip(&before).zip(&moved) {
        assert!(if was == "c" { now != "c" } else { now == was }, "{u}: {was} then {now}");
    }
    let again: Vec<String> = units.iter().map(|u| first.assign("hero", u).expect("served").arm_id).collect();
    assert_eq!(again, moved, "the moved units stick to their new arm");
    // Redis down: serving goes on by the weights, nothing sticky.
    redis.stop();
    let plain = Assigner::new(cache, Defaults::new(i64::MAX));
    for u in units.iter().take(20) {
        let served = second.assign("hero", u).expect("served without Redis");
        assert!(!served.sticky);
        assert_eq!(served.arm_id, plain.assign("hero", u).expect("served").arm_id);
    }
}

/// POST `body` (JSON) to 127.0.0.1:`port` `path`: the status code and the body.
fn http_post(port: u16, path: &str, body: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()))
}

#[test]
fn serve_answers_from_redis_and_produces_what_it_assigns_and_the_outcomes_it_is_told() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start();
    for (topic, partitions) in [("assignments", 2), ("outcomes", 2), ("weights", 1)] {
        broker.create_topic(topic, partitions);
    }
    let redis_dir = dir.path().join("redis");
    std::fs::create_dir_all(&redis_dir).expect("redis dir");
    let redis = Redis::start(&redis_dir);
    let mut record = hero(7_000, [0.2, 0.3, 0.5]);
    record.computed_at = now_ms();
    let mut connection = redis.connection();
    let _: () = redis::cmd("SET").arg(format!("{PREFIX}:hero")).arg(serde_json::to_string(&record).expect("json")).query(&mut connection).expect("SET");
    let job_path = dir.path().join("job.toml");
    std::fs::write(&job_path, job(&broker.brokers(), &redis.url())).expect("job file");
    let port = free_port();
    let log = dir.path().join("serve.log");
    let mut serve = std::process::Command::new(env!("CARGO_BIN_EXE_banditflow"))
        .args(["serve", "--dataflow"])
        .arg(&job_path)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--max-age", "1h"])
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start serve");
    wait_for(60, "serve to be ready", &log, || http_get(port, "/readyz").is_some_and(|(s, _)| s == 200));

    let (status, body) = http_get(port, "/weights/hero").expect("GET /weights/hero");
    assert_eq!(status, 200);
    let served_record: banditflow_client::WeightRecord = serde_json::from_str(&body).expect("a weight record");
    assert_eq!(served_record, record);
    assert_eq!(http_get(port, "/weights/nowhere").map(|(s, _)| s), Some(404));
    assert_eq!(http_get(port, "/assign?entity=nowhere&unit=u").map(|(s, _)| s), Some(404), "no weights and not declared");

    // Assignments as the library makes them, each produced with its id as key and its ts as
    // the message time.
    let cache = Arc::new(WeightsCache::new());
    cache.offer(record);
    let library = Assigner::new(cache, Defaults::new(i64::MAX));
    let mut answers = Vec::new();
    for u in 0..20 {
        let (status, body) = http_get(port, &format!("/assign?entity=hero&unit=u{u}")).expect("GET /assign");
        assert_eq!(status, 200, "{body}");
        let served: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(served["arm_id"].as_str(), Some(library.assign("hero", &format!("u{u}")).expect("served").arm_id.as_str()));
        assert_eq!((served["weights_version"].as_u64(), served["fallback"].as_bool()), (Some(7_000), Some(false)));
        answers.push(served);
    }
    // One declared entity without weights: the uniform fallback, said so.
    let (status, body) = http_get(port, "/assign?entity=ranker&unit=u1").expect("GET /assign");
    let fallback: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!((status, fallback["fallback"].as_bool()), (200, Some(true)), "{body}");
    answers.push(fallback);
    let first = answers[0]["assignment_id"].as_str().expect("an id").to_owned();
    let (status, body) = http_post(port, "/outcome", &format!(r#"{{"assignment_id":"{first}","kind":"click"}}"#)).expect("POST /outcome");
    assert_eq!(status, 202, "{body}");
    assert!(http_post(port, "/outcome", "not json").is_some_and(|(s, _)| (400..500).contains(&s)));

    let produced = read_raw(&broker.brokers(), "assignments", answers.len(), Duration::from_secs(60));
    assert_eq!(produced.len(), answers.len());
    for answer in &answers {
        let id = answer["assignment_id"].as_str().expect("id");
        let message = produced.iter().find(|m| m.key.as_deref() == Some(id.as_bytes())).unwrap_or_else(|| panic!("{id} not produced"));
        assert_eq!(&serde_json::from_slice::<serde_json::Value>(&message.payload).expect("JSON"), answer);
        assert_eq!(message.timestamp, answer["ts"].as_i64());
    }
    let outcomes = read_raw(&broker.brokers(), "outcomes", 1, Duration::from_secs(60));
    assert_eq!(outcomes.len(), 1);
    let outcome: serde_json::Value = serde_json::from_slice(&outcomes[0].payload).expect("JSON");
    assert_eq!((outcome["assignment_id"].as_str(), outcome["kind"].as_str()), (Some(first.as_str()), Some("click")));
    assert!(outcome["ts"].as_i64().is_some());

    let (_, page) = http_get(port, "/metrics").expect("GET /metrics");
    assert_eq!(metric(&page, "banditflow_serving_assignments_total", ""), Some(answers.len() as f64), "{page}");
    assert_eq!(metric(&page, "banditflow_serving_fallbacks_total", "reason=\"missing\""), Some(1.0), "{page}");
    assert_eq!(metric(&page, "banditflow_serving_loaded", ""), Some(1.0));
    assert_eq!(metric(&page, "banditflow_serving_cache_entities", ""), Some(1.0));
    let _ = serve.kill();
    let _ = serve.wait();
}

#[test]
fn the_redis_follower_passes_over_keys_that_are_not_this_prefixes_weight_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start(dir.path());
    let mut connection = redis.connection();
    let set = |connection: &mut redis::Connection, key: &str, value: &str| {
        let _: () = redis::cmd("SET").arg(key).arg(value).query(connection).expect("SET");
    };
    let json = |version: u64| serde_json::to_string(&hero(version, [0.2, 0.3, 0.5])).expect("json");
    set(&mut connection, &format!("{PREFIX}:hero"), &json(5));
    // A shadow worker's record of the same entity, newer: not this prefix's.
    set(&mut connection, &format!("{PREFIX}:shadow:hero"), &json(9));
    set(&mut connection, &format!("{PREFIX}:junk"), "not a record");
    // A sticky store's hash under the same prefix.
    let _: () = redis::cmd("HSET").arg(format!("{PREFIX}:sticky:hero")).arg("u1").arg("a").query(&mut connection).expect("HSET");

    let cache = Arc::new(WeightsCache::new());
    let (c, client) = (cache.clone(), redis::Client::open(redis.url()).expect("client"));
    let following = Following::spawn("redis", move |p| follow::redis::follow(client, PREFIX.to_owned(), c, p)).expect("follow");
    let log = dir.path().join("none.log");
    wait_for(30, "the first load", &log, || following.progress().loaded());
    assert_eq!(cache.version("hero"), Some(5), "the shadow record is not this prefix's");
    let (kept, older, unreadable, reconnects) = following.progress().counts();
    assert_eq!((kept, older, unreadable, reconnects), (1, 0, 1, 0), "the hash is passed over, the junk counted, no reconnect");
    // Updates are followed after it.
    set(&mut connection, &format!("{PREFIX}:hero"), &json(6));
    let _: () = redis::cmd("PUBLISH").arg(format!("{PREFIX}:updates")).arg("hero").query(&mut connection).expect("PUBLISH");
    wait_for(30, "the update", &log, || cache.version("hero") == Some(6));
}
