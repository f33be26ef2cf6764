//! Restart from a checkpoint against a rebuild from the topics, through tansu and Redis.
//!
//! A backlog of generated traffic (default 5,000,000 assignments over the last 9 minutes, so
//! the 10-minute window holds all of it) is produced to tansu. Then:
//! 1. the worker without checkpoints rebuilds from the topics: the time until `/readyz`
//!    answers 200 (caught up, lag within bounds, sinks up), and its throughput;
//! 2. the same with `[checkpoint] interval = "1m"`: the throughput cost of checkpointing;
//! 3. that worker is killed (SIGKILL) and started again: it resumes from its newest checkpoint;
//!    the time until `/readyz` answers 200 against the rebuild's;
//! 4. the checkpoint's size per pending assignment and per (entity, arm), and the time to
//!    encode and write it durably.
//!
//! Run by scripts/bench.sh; `cargo bench --bench recovery -- [assignments]`
//! (`BENCH_RECOVERY_ROUNDS`: runs of each, default 3; `BENCH_RECOVERY_LOGS=1`: print each
//! restart's log).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use banditflow::checkpoint::Store;
use banditflow::traffic::{generate, TrafficSpec};
use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

fn produce_backlog(brokers: &str, count: u64) -> usize {
    let start_ms = now_ms() - 9 * 60_000;
    let spec = TrafficSpec { count, entities: 100, arms: 5, rate: 0.05, start_ms, duration_ms: 9 * 60_000 - 5_000, attribution_ms: 5_000, seed: 5, ..TrafficSpec::default() };
    let (mut a, mut o) = (Vec::new(), Vec::new());
    generate(&spec, &mut a, &mut o).expect("generate");
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .set("batch.num.messages", "10000")
        .create()
        .expect("producer");
    let mut events = 0;
    for (topic, bytes) in [("assignments", &a), ("outcomes", &o)] {
        for line in std::str::from_utf8(bytes).expect("utf8").lines() {
            let key = line.split("\"assignment_id\":\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("");
            let ts: i64 = line.rsplit("\"ts\":").next().and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next()).and_then(|t| t.parse().ok()).unwrap_or(0);
            let mut record = BaseRecord::to(topic).key(key).payload(line).timestamp(ts);
            loop {
                match p.send(record) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        record = back;
                        p.poll(Duration::from_millis(2));
                    }
                }
            }
            p.poll(Duration::ZERO);
            events += 1;
        }
    }
    p.flush(Duration::from_secs(600)).expect("flush");
    events
}

/// Starts the worker and waits until `/readyz` answers 200; returns it and the seconds taken.
fn until_ready(binary: &Path, job: &Path, env: &[(&str, String)], log: &Path) -> (Worker, f64) {
    let started = Instant::now();
    let mut worker = Worker::start_with(binary, job, &["--workers", "2"], env, log);
    loop {
        worker.assert_running();
        if http_get(worker.metrics_port, "/readyz").is_some_and(|(status, _)| status == 200) {
            return (worker, started.elapsed().as_secs_f64());
        }
        assert!(started.elapsed() < Duration::from_secs(900), "never ready: {}", worker.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let count: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(5_000_000);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let Bench { binary, dir, broker, redis } = Bench::start();
    eprintln!("[recovery-bench] producing {count} assignments and their outcomes to tansu");
    let events = produce_backlog(&broker.brokers(), count);
    let base = std::fs::read_to_string(root.join("dataflows/live-bench.toml")).expect("job");
    let checkpoints = dir.path().join("checkpoints");
    let jobs = [("plain", base.clone()), ("checkpointed", format!("{base}\n[checkpoint]\ndir = \"{}\"\ninterval = \"1m\"\nkeep = 2\n", checkpoints.display()))];
    // Rebuilds alternate between the two jobs, `rounds` of each, in the order AB BA AB … (the
    // machine's noise is ±30% between single runs, and a run right after another finds
    // tansu warmer): the medians are compared.
    let rounds: usize = std::env::var("BENCH_RECOVERY_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(3).max(1);
    let mut ready: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut last = None;
    for round in 0..rounds {
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let (name, text) = &jobs[i];
            let run = round * 2 + i;
            let job = dir.path().join(format!("{name}.toml"));
            std::fs::write(&job, text).expect("job");
            // Each run publishes to its own weights topic and Redis prefix: nothing read back.
            let env = vec![
                ("BANDITFLOW_KAFKA_BROKERS", broker.brokers()),
                ("BANDITFLOW_REDIS_URL", redis.url()),
                ("BANDITFLOW_REDIS_PREFIX", format!("bench{run}")),
                ("BANDITFLOW_KAFKA_WEIGHTS_TOPIC", format!("weights{run}")),
                ("BANDITFLOW_KAFKA_GROUP_ID", format!("recovery-bench-{run}")),
            ];
            broker.create_topic(&format!("weights{run}"), 4);
            if i == 1 {
                let _ = std::fs::remove_dir_all(&checkpoints);
            }
            let (worker, secs) = until_ready(&binary, &job, &env, &dir.path().join(format!("{name}-{round}.log")));
            eprintln!("[recovery-bench] round {round} {name}: ready after {secs:.2}s ({:.0} events/s)", events as f64 / secs);
            ready[i].push(secs);
            if round + 1 == rounds && i == 1 {
                // The checkpointed run of the last round: its checkpoints are restarted from.
                last = Some((worker, job, env));
            }
        }
    }
    let (worker, job, env) = last.expect("the checkpointed run");
    // Once caught up, a checkpoint of the whole window follows within the interval.
    let store = Store::open(&checkpoints, 2, 0, 1).expect("store");
    let caught_up = std::time::SystemTime::now();
    let newer = || store.files().ok().and_then(|f| f.first().cloned()).and_then(|f| std::fs::metadata(f).ok()?.modified().ok()).is_some_and(|m| m > caught_up);
    let written = wait_until(Duration::from_secs(150), newer);
    assert!(written, "no checkpoint after catching up: {}", worker.log_text());
    worker.kill();
    // Restarts from that checkpoint, `rounds` times: each is killed once ready, and the next
    // resumes from the same checkpoint.
    let mut restarts = Vec::new();
    for round in 0..rounds {
        let (restarted, secs) = until_ready(&binary, &job, &env, &dir.path().join(format!("restarted-{round}.log")));
        assert!(restarted.log_text().contains("resuming from checkpoint"), "{}", restarted.log_text());
        eprintln!("[recovery-bench] restart {round}: ready after {secs:.2}s");
        // With WORKER_LOG=debug, what the start-up spent its time on.
        if std::env::var_os("BENCH_RECOVERY_LOGS").is_some() {
            eprintln!("{}", restarted.log_text());
        }
        restarts.push(secs);
        restarted.kill();
    }
    let (newest, _) = store.newest(|_| Ok(())).expect("read");
    let (path, checkpoint) = newest.expect("a checkpoint");
    let bytes = std::fs::metadata(&path).expect("size").len();
    let pending: usize = checkpoint.attribution.iter().map(|p| p.state.pending.len()).sum();
    let departures: usize = checkpoint.attribution.iter().map(|p| p.departures.len()).sum();
    let pairs: usize = checkpoint.weighers.iter().flat_map(|w| &w.counts).map(|(_, arms)| arms.len()).sum();
    // What each kind of entry costs: the encoded size with it against without it. No
    // assignment is pending once this backlog is caught up (it is older than the attribution
    // window), so pending ones are added: 100,000 with random keys and the window's pairs.
    let size = |c: &banditflow_core::checkpoint::Checkpoint| banditflow_core::checkpoint::encode(c).len() as f64;
    let mut without = checkpoint.clone();
    without.attribution.iter_mut().for_each(|p| p.departures.clear());
    let per_departure = (size(&checkpoint) - size(&without)) / departures.max(1) as f64;
    without.weighers.iter_mut().for_each(|w| w.counts.clear());
    let with_counts = {
        let mut c = without.clone();
        c.weighers = checkpoint.weighers.clone();
        c
    };
    let per_pair = (size(&with_counts) - size(&without)) / pairs.max(1) as f64;
    let mut with_pending = without.clone();
    let ids: Vec<(u64, u64)> = checkpoint.attribution.iter().flat_map(|p| p.departures.iter().map(|d| (d.1, d.2))).take(500).collect();
    let added = 100_000u64;
    if let (Some(part), false) = (with_pending.attribution.first_mut(), ids.is_empty()) {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for i in 0..added {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let (entity, arm) = ids[i as usize % ids.len()];
            part.state.pending.push((banditflow_core::event::AssignmentKey(state, state.rotate_left(17)), checkpoint.written_ms - (i % 5_000) as i64, entity, arm));
        }
    }
    let per_pending = (size(&with_pending) - size(&without)) / added as f64;
    let copy = Store::open(&dir.path().join("copy"), 1, 0, 1).expect("store");
    let writing = Instant::now();
    copy.write(&checkpoint).expect("write");
    let write_ms = writing.elapsed().as_secs_f64() * 1000.0;
    println!("### Recovery benchmark (`cargo bench --bench recovery -- {count}`)");
    println!();
    println!("{events} events ({count} assignments over 9 minutes, 100 entities x 5 arms) in tansu; job `dataflows/live-bench.toml` (window 10m, tick 1s), 2 worker threads.");
    println!();
    let median = |runs: &[f64]| {
        let mut sorted = runs.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    };
    let list = |runs: &[f64]| runs.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(", ");
    let (plain, checkpointed, restart) = (median(&ready[0]), median(&ready[1]), median(&restarts));
    println!("Medians of {rounds} runs each (the rebuilds alternate between the two jobs, AB BA AB …); every run listed.");
    println!();
    println!("| run | until /readyz 200, median | events/s | runs (s) |");
    println!("|---|---:|---:|---|");
    println!("| rebuild from the topics, no checkpoints | {plain:.2} s | {:.0} | {} |", events as f64 / plain, list(&ready[0]));
    println!("| rebuild from the topics, checkpoint every minute | {checkpointed:.2} s | {:.0} | {} |", events as f64 / checkpointed, list(&ready[1]));
    println!("| restart from the newest checkpoint after SIGKILL | {restart:.2} s | | {} |", list(&restarts));
    println!();
    println!("- Restart from a checkpoint vs rebuild: **{:.1}x** faster (target >= 10x).", plain / restart);
    println!("- Throughput cost of checkpointing every minute while catching up: {:+.1}% of the time (target <= 5%).", (checkpointed / plain - 1.0) * 100.0);
    println!("- In steady state one checkpoint a minute costs its encoding and durable write on the writer thread ({write_ms:.1} ms): {:.2}% of one core's minute.", write_ms / 600.0);
    println!(
        "- Checkpoint at tick {}: {bytes} bytes: {departures} scheduled departures ({per_departure:.1} bytes each), {pairs} (entity, arm) window counts ({per_pair:.1} bytes each), {pending} pending assignments (a pending assignment costs {per_pending:.1} bytes: 100,000 added to it); encoded and written durably in {write_ms:.1} ms.",
        checkpoint.tick
    );
}
