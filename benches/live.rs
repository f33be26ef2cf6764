//! End-to-end benchmark of the live worker through a real broker (tansu) and Redis.
//!
//! 1. Throughput: a backlog of generated traffic is produced to tansu, then the worker (release
//!    binary, 2 threads) starts; the clock runs from its start until the record of the tick two
//!    seconds before the backlog's end is readable in Redis, so every event before it was
//!    consumed, attributed, weighed and published.
//! 2. Freshness: with the worker caught up, background traffic runs at a steady rate while probe
//!    entities get an assignment and, just before its attribution ends, an outcome; freshness is
//!    the time from producing that outcome to the record with the new success readable in Redis.
//!
//! Run by scripts/bench.sh; `cargo bench --bench live -- [backlog-assignments] [rate] [probe-seconds]`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use banditflow::traffic::{generate, TrafficSpec};
use common::*;
use rand::{Rng, SeedableRng};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

const ATTRIBUTION_MS: i64 = 5_000;
const PROBES: usize = 20;

fn producer(brokers: &str, linger_ms: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", linger_ms)
        .set("queue.buffering.max.messages", "1000000")
        .set("batch.num.messages", "10000")
        .create()
        .expect("producer")
}

fn send(producer: &BaseProducer, topic: &str, key: &str, line: &str, ts: i64) {
    let mut record = BaseRecord::to(topic).key(key).payload(line).timestamp(ts);
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((_, back)) => {
                record = back;
                producer.poll(Duration::from_millis(2));
            }
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The successes of a probe entity in Redis, and its record's `as_of`.
fn successes_in_redis(redis: &mut redis::Connection, entity: &str) -> Option<(u64, i64)> {
    let value: Option<String> = redis::cmd("GET").arg(format!("bench:{entity}")).query(redis).ok()?;
    let record: serde_json::Value = serde_json::from_str(&value?).ok()?;
    let successes = record["arms"].as_array()?.iter().map(|a| a["successes"].as_u64().unwrap_or(0)).sum::<u64>();
    Some((successes, record["as_of"].as_i64()?))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let backlog: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(2_000_000);
    let rate: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let probe_seconds: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(90);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let Bench { binary, dir, broker, redis } = Bench::start();
    let brokers = broker.brokers();

    // --- 1. Throughput over a backlog ------------------------------------------------------
    let start_ms = now_ms() - 7 * 60_000;
    let duration_ms = 6 * 60_000 + 30_000;
    let spec = TrafficSpec { count: backlog, entities: 100, arms: 5, rate: 0.05, start_ms, duration_ms, attribution_ms: ATTRIBUTION_MS as u64, seed: 3, ..TrafficSpec::default() };
    let (mut a, mut o) = (Vec::new(), Vec::new());
    generate(&spec, &mut a, &mut o).expect("generate");
    let text_a = String::from_utf8(a).expect("utf8");
    let text_o = String::from_utf8(o).expect("utf8");
    let assignments: Vec<&str> = text_a.lines().collect();
    let outcomes: Vec<&str> = text_o.lines().collect();
    let events = assignments.len() + outcomes.len();
    let end_ms = start_ms + duration_ms as i64;
    // Every entity's record changes at every tick of the backlog, so the backlog is through once
    // a record exists for the tick two seconds before its end.
    let last_tick = (end_ms - 2_000) / 1_000;
    eprintln!("[live-bench] producing {} assignments and {} outcomes to tansu", assignments.len(), outcomes.len());
    let produced_at = Instant::now();
    let p = producer(&brokers, "20");
    for (topic, lines) in [("assignments", &assignments), ("outcomes", &outcomes)] {
        for line in lines {
            // The key is the assignment id: cheap to find without parsing the line.
            let key = line.split("\"assignment_id\":\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("");
            let ts = line.rsplit("\"ts\":").next().and_then(|r| r.trim_end_matches(|c: char| !c.is_ascii_digit()).split(|c: char| !c.is_ascii_digit()).next()).and_then(|t| t.parse().ok()).unwrap_or(0);
            send(&p, topic, key, line, ts);
            p.poll(Duration::ZERO);
        }
    }
    p.flush(Duration::from_secs(300)).expect("flush");
    let produce_secs = produced_at.elapsed().as_secs_f64();
    eprintln!("[live-bench] produced in {produce_secs:.1}s ({:.0} events/s); starting the worker", events as f64 / produce_secs);

    // BENCH_IDLE_TIMEOUT / BENCH_LATENESS override the job's `idle_timeout` / `allowed_lateness`.
    let mut job_text = std::fs::read_to_string(root.join("dataflows/live-bench.toml")).expect("job file");
    let idle = std::env::var("BENCH_IDLE_TIMEOUT").unwrap_or_else(|_| "1s".into());
    let lateness = std::env::var("BENCH_LATENESS").unwrap_or_else(|_| "100ms".into());
    job_text = job_text.replace("idle_timeout = \"1s\"", &format!("idle_timeout = \"{idle}\"")).replace("allowed_lateness = \"100ms\"", &format!("allowed_lateness = \"{lateness}\""));
    let job = dir.path().join("live-bench.toml");
    std::fs::write(&job, job_text).expect("job file");
    let mut env = vec![("BANDITFLOW_KAFKA_BROKERS", brokers.clone()), ("BANDITFLOW_REDIS_URL", redis.url())];
    if let Ok(wait) = std::env::var("BENCH_FETCH_WAIT_MAX_MS") {
        env.push(("BANDITFLOW_KAFKA_PROPERTIES_FETCH_WAIT_MAX_MS", wait));
    }
    let threads = std::env::var("BENCH_WORKER_THREADS").unwrap_or_else(|_| "2".into());
    let started = Instant::now();
    let mut worker = Worker::start_with(&binary, &job, &["--workers", &threads], &env, &dir.path().join("worker.log"));
    let mut connection = redis.connection();
    let caught_up = wait_until_fast(Duration::from_secs(600), || {
        worker.assert_running();
        let value: Option<String> = redis::cmd("GET").arg("bench:entity-000").query(&mut connection).ok().flatten();
        value.and_then(|v| serde_json::from_str::<serde_json::Value>(&v).ok()).and_then(|v| v["as_of"].as_i64()).is_some_and(|as_of| as_of >= last_tick * 1_000 + 999)
    });
    assert!(caught_up, "the worker did not get through the backlog: {}", worker.log_text());
    let backlog_secs = started.elapsed().as_secs_f64();
    let throughput = events as f64 / backlog_secs;
    eprintln!("[live-bench] backlog of {events} events through in {backlog_secs:.2}s: {throughput:.0} events/s");

    // --- 2. Freshness under steady traffic ---------------------------------------------------
    // Traffic keeps flowing until every probe has finished: a probe in flight when traffic
    // stops would wait for idle partitions instead.
    let stop_traffic = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let background_sent = Arc::new(AtomicU64::new(0));
    let traffic = {
        let (brokers, stop, sent) = (brokers.clone(), stop_traffic.clone(), background_sent.clone());
        std::thread::spawn(move || background(&brokers, rate, &stop, &sent))
    };
    std::thread::sleep(Duration::from_secs(3));
    let freshness_started = Instant::now();
    let sent_before = background_sent.load(Ordering::Relaxed);
    let seen: Seen = Arc::default();
    let stop_watching = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (redis_url, seen, stop) = (redis.url(), seen.clone(), stop_watching.clone());
        std::thread::spawn(move || watch(&redis_url, &seen, &stop))
    };
    let probe_threads: Vec<_> = (0..PROBES)
        .map(|j| {
            let (brokers, seen, stop) = (brokers.clone(), seen.clone(), stop.clone());
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(j as u64 * 6_000 / PROBES as u64));
                probe(&brokers, j, &seen, &stop)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(probe_seconds));
    stop.store(true, Ordering::Release);
    let mut samples = Vec::new();
    let mut missed = 0;
    for t in probe_threads {
        let (s, m) = t.join().expect("probe");
        samples.extend(s);
        missed += m;
    }
    let steady_rate = (background_sent.load(Ordering::Relaxed) - sent_before) as f64 / freshness_started.elapsed().as_secs_f64();
    stop_traffic.store(true, Ordering::Release);
    traffic.join().expect("traffic");
    stop_watching.store(true, Ordering::Release);
    watcher.join().expect("watcher");
    worker.assert_running();
    if let Ok(keep) = std::env::var("BENCH_WORKER_LOG") {
        let _ = std::fs::copy(&worker.log, keep);
    }
    let (status, stop_secs) = worker.terminate();
    let mut freshness: Vec<f64> = samples.iter().map(|s| s.0).collect();
    let mut after_tick: Vec<f64> = samples.iter().map(|s| s.1).collect();
    freshness.sort_by(f64::total_cmp);
    after_tick.sort_by(f64::total_cmp);
    println!("## Live worker end to end (tansu + redis-server, {threads} worker threads)\n");
    println!("- backlog: {} assignments + {} outcomes = {events} events, 100 entities x 5 arms, produced to tansu in {produce_secs:.1}s ({:.0} events/s)", assignments.len(), outcomes.len(), events as f64 / produce_secs);
    println!("- **throughput: {throughput:.0} events/s** (worker start to the record of the backlog's last tick but two in Redis: {backlog_secs:.2}s)");
    println!("- steady traffic while probing: {steady_rate:.0} events/s offered (target rate {rate})");
    println!(
        "- **freshness at tick = 1s, allowed_lateness = {lateness}, idle_timeout = {idle}: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms** over {} probes ({missed} missed)",
        percentile(&freshness, 0.5),
        percentile(&freshness, 0.99),
        freshness.last().copied().unwrap_or(f64::NAN),
        freshness.len()
    );
    println!(
        "- of which after the end of the record's tick: p50 {:.0} ms, p99 {:.0} ms (the rest is waiting for the tick to end)",
        percentile(&after_tick, 0.5),
        percentile(&after_tick, 0.99)
    );
    println!("- SIGTERM to exit: {:.2}s, {status}", stop_secs.as_secs_f64());
}

fn wait_until_fast(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

/// Steady traffic at `rate` events/s with current timestamps (5% convert within 4 s).
fn background(brokers: &str, rate: u64, stop: &AtomicBool, sent: &AtomicU64) {
    let producer = producer(brokers, "5");
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut pending: std::collections::VecDeque<(i64, String)> = Default::default();
    let step = Duration::from_millis(10);
    let per_step = rate as f64 * step.as_secs_f64() / 1.05;
    let mut owed = 0.0;
    let mut next = Instant::now();
    let mut seq = 0u64;
    while !stop.load(Ordering::Acquire) {
        let now = now_ms();
        owed += per_step;
        while owed >= 1.0 {
            owed -= 1.0;
            seq += 1;
            let id = format!("bg-{seq}");
            let line = format!(r#"{{"assignment_id":"{id}","entity_id":"entity-{:03}","arm_id":"arm-{}","ts":{now}}}"#, rng.random_range(0..100), rng.random_range(0..5));
            send(&producer, "assignments", &id, &line, now);
            sent.fetch_add(1, Ordering::Relaxed);
            if rng.random_bool(0.05) {
                pending.push_back((now + rng.random_range(0..4_000), id));
            }
        }
        pending.make_contiguous().sort();
        while pending.front().is_some_and(|(due, _)| *due <= now) {
            let Some((due, id)) = pending.pop_front() else { break };
            send(&producer, "outcomes", &id, &format!(r#"{{"assignment_id":"{id}","ts":{due}}}"#), due);
            sent.fetch_add(1, Ordering::Relaxed);
        }
        producer.poll(Duration::ZERO);
        next += step;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let _ = producer.flush(Duration::from_secs(10));
}

/// What the watcher has seen of each probe entity: successes, `as_of`, and when it was seen.
type Seen = Arc<(Mutex<HashMap<String, (u64, i64, Instant)>>, Condvar)>;

/// Subscribes to `bench:updates` and reads each announced probe record at once, so the time a
/// record became readable is taken when Redis announces it, not when a poll happens to look.
fn watch(redis_url: &str, seen: &Seen, stop: &AtomicBool) {
    let client = redis::Client::open(redis_url).expect("client");
    let mut reader = client.get_connection().expect("redis");
    let mut subscriber = client.get_connection().expect("redis");
    let mut pubsub = subscriber.as_pubsub();
    pubsub.subscribe("bench:updates").expect("subscribe");
    pubsub.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
    while !stop.load(Ordering::Acquire) {
        let Ok(message) = pubsub.get_message() else { continue };
        let Ok(entity) = message.get_payload::<String>() else { continue };
        if !entity.starts_with("probe-") {
            continue;
        }
        let at = Instant::now();
        if let Some((successes, as_of)) = successes_in_redis(&mut reader, &entity) {
            let (map, changed) = &**seen;
            map.lock().expect("lock").insert(entity, (successes, as_of, at));
            changed.notify_all();
        }
    }
}

/// Probe entity `j`: an assignment, then an outcome 50 ms before its attribution ends; returns
/// the times (ms) from producing the outcome to the new success readable in Redis, and from the
/// end of the record's tick to then, and misses.
fn probe(brokers: &str, j: usize, seen: &Seen, stop: &AtomicBool) -> (Vec<(f64, f64)>, usize) {
    let producer = producer(brokers, "0");
    let entity = format!("probe-{j:02}");
    let (mut samples, mut missed, mut successes) = (Vec::new(), 0, 0u64);
    let mut k = 0;
    let mut rng = rand::rngs::StdRng::seed_from_u64(j as u64);
    while !stop.load(Ordering::Acquire) {
        // A random pause, so outcomes fall at random points of their tick.
        std::thread::sleep(Duration::from_millis(rng.random_range(0..1_000)));
        k += 1;
        let id = format!("{entity}-{k}");
        let ts = now_ms();
        send(&producer, "assignments", &id, &format!(r#"{{"assignment_id":"{id}","entity_id":"{entity}","arm_id":"a","ts":{ts}}}"#), ts);
        producer.flush(Duration::from_secs(5)).expect("flush");
        let outcome_ts = ts + ATTRIBUTION_MS - 50;
        std::thread::sleep(Duration::from_millis((outcome_ts - now_ms()).max(0) as u64));
        let produced = Instant::now();
        let produced_ms = now_ms();
        send(&producer, "outcomes", &id, &format!(r#"{{"assignment_id":"{id}","ts":{outcome_ts}}}"#), outcome_ts);
        producer.flush(Duration::from_secs(5)).expect("flush");
        let (map, changed) = &**seen;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut guard = map.lock().expect("lock");
        let found = loop {
            match guard.get(&entity) {
                Some(&(s, as_of, at)) if s > successes => break Some((s, as_of, at)),
                _ if Instant::now() >= deadline => break None,
                _ => guard = changed.wait_timeout(guard, Duration::from_millis(50)).expect("wait").0,
            }
        };
        drop(guard);
        match found {
            Some((s, as_of, at)) => {
                let freshness = at.duration_since(produced).as_secs_f64() * 1e3;
                let after_tick = produced_ms as f64 + freshness - (as_of + 1) as f64;
                samples.push((freshness, after_tick));
                if std::env::var("BENCH_DEBUG").is_ok() {
                    eprintln!("probe {entity} k {k}: resolution tick {} record tick {} freshness {freshness:.0} after tick {after_tick:.0}", (ts + ATTRIBUTION_MS) / 1000, as_of / 1000);
                }
                successes = s;
            }
            None => missed += 1,
        }
    }
    (samples, missed)
}

