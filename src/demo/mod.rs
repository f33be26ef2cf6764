//! The demo (`banditflow demo`): the live worker on an embedded Kafka cluster (librdkafka's
//! mock cluster), fed by a closed-loop traffic generator that serves as a serving process
//! would, with the serving client (`banditflow-client`): it reads the published weights into
//! the client's cache, assigns units by them and produces the assignments and conversions
//! with the client's producer, converting at known true rates. The arms are declared on the arm
//! registry topic, and during the run one is retired and a new one added ([`Registry`]). It
//! shows each entity's weights as they move ([`screen`]), and stops by itself after `duration`
//! unless told to run forever.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use banditflow_core::config::ConfigError;
use banditflow_core::record::WeightRecord;
use banditflow_core::time::now_ms;

use banditflow_client::produce::{Outcome, ProduceError, TrafficProducer};
use banditflow_client::{Assigner, Defaults, WeightsCache};

use crate::deployment::{Job, KafkaConfig};
use crate::kafka::registry::{self, Standing};
use crate::traffic::true_rate;
use crate::worker::{self, RunOptions, RunSummary, Watch, WorkerError};

pub mod screen;

/// The job the demo runs: `dataflows/demo.toml`, compiled in.
pub const DEMO_JOB: &str = include_str!("../../dataflows/demo.toml");
/// Mean true conversion rate of the demo's arms.
const RATE: f64 = 0.1;
/// Units the demo's traffic draws from (each entity serves units of this pool).
const DEMO_UNITS: u32 = 1_000_000;
/// Longest delay from an assignment to its conversion, in ms (within the 2 s attribution).
const MAX_CONVERSION_DELAY_MS: i64 = 1_500;

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The embedded job file is invalid (a build problem).
    #[error("embedded demo job: {0}")]
    Job(#[from] ConfigError),
    /// The embedded Kafka cluster or a client of it failed.
    #[error("embedded kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// The serving client's producer failed.
    #[error("embedded kafka: {0}")]
    Produce(#[from] ProduceError),
    /// The worker failed.
    #[error(transparent)]
    Worker(#[from] WorkerError),
    /// The metrics address is taken.
    #[error("cannot serve the demo's metrics on {listen}: the address is in use (another demo or worker?); pick another with --metrics-listen 127.0.0.1:0 (any free port) or a free port of your own")]
    MetricsPortTaken {
        /// The address asked for.
        listen: std::net::SocketAddr,
    },
    /// The traffic generator failed.
    #[error("traffic generator: {0}")]
    Generator(String),
    /// A registry record could not be written.
    #[error("arm registry: {0}")]
    Registry(#[from] registry::RegistryError),
}

/// How the demo runs.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Timely worker threads.
    pub workers: usize,
    /// How long to run; `None` runs until SIGINT/SIGTERM (`stop`).
    pub duration: Option<Duration>,
    /// Entities, each with `arms` arms.
    pub entities: u32,
    /// Arms per entity.
    pub arms: u32,
    /// Assignments per second, over all entities.
    pub assignments_per_s: u32,
    /// Seed of the true rates and the traffic.
    pub seed: u64,
    /// Show the weights every this often (`None`: only at the end).
    pub table_every: Option<Duration>,
    /// Redraw one screen in place (a terminal) instead of printing tables one after another.
    pub terminal: bool,
    /// Where log lines go, to say so on the screen.
    pub log_file: Option<std::path::PathBuf>,
    /// Stops the demo early (SIGINT/SIGTERM handlers set it).
    pub stop: Arc<AtomicBool>,
    /// Where the worker serves `/metrics`, `/healthz`, `/readyz` (`None`: nowhere).
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            workers: 2,
            duration: Some(Duration::from_secs(40)),
            entities: 4,
            arms: 3,
            assignments_per_s: 2_000,
            seed: 7,
            table_every: Some(Duration::from_secs(2)),
            terminal: false,
            log_file: None,
            stop: Arc::new(AtomicBool::new(false)),
            metrics_listen: None,
        }
    }
}

/// What the demo did.
#[derive(Debug)]
pub struct DemoReport {
    /// The newest weight record per entity, as the generator read it from the weights topic.
    pub latest: BTreeMap<String, WeightRecord>,
    /// Assignments and outcomes produced.
    pub assignments: u64,
    /// Outcomes produced.
    pub outcomes: u64,
    /// The worker's summary.
    pub worker: RunSummary,
    /// Where the worker's metrics were served.
    pub metrics_address: Option<std::net::SocketAddr>,
    /// Every weight record the generator read, in the order read.
    pub records: Vec<WeightRecord>,
    /// Conversions a uniform split of the same assignments would have produced, expected from
    /// the true rates.
    pub uniform_conversions: f64,
    /// Per entity and arm, when each assignment was served (for the report's cumulative counts).
    pub served: BTreeMap<String, BTreeMap<String, Vec<i64>>>,
    /// What the demo did on the arm registry, one line per change, in order.
    pub registry: Vec<String>,
}

/// The demo's arm registry story: every entity's arms declared at the start; entity-000's
/// worst arm (by true rate) retired a third of the way in, and a new model declared halfway.
pub struct Registry {
    kafka: KafkaConfig,
    topic: String,
    seed: u64,
    /// When to retire and when to add, since the traffic started.
    retire_at: Duration,
    add_at: Duration,
    retired: bool,
    added: bool,
    /// What was done, for the screen and the report.
    pub log: Vec<String>,
}

/// The entity whose arm set changes during the demo.
const CHANGING: &str = "entity-000";

impl Registry {
    /// Declares `arms` arms (model v1) for each of `entities` entities.
    fn declare(kafka: KafkaConfig, topic: String, options: &DemoOptions) -> Result<Self, DemoError> {
        let span = options.duration.unwrap_or(Duration::from_secs(45));
        let mut registry = Registry { kafka, topic, seed: options.seed, retire_at: span / 3, add_at: span / 2, retired: false, added: false, log: Vec::new() };
        let declared: Vec<Standing> = (0..options.entities.max(1))
            .flat_map(|e| (0..options.arms.max(1)).map(move |a| Registry::standing(&format!("entity-{e:03}"), &format!("arm-{a}"), true, Some("v1"))))
            .collect();
        registry::write_all(&registry.kafka, &registry.topic, &declared)?;
        registry.log.push(format!("t+0s  declared {} arms for each of {} entities on the registry", options.arms.max(1), options.entities.max(1)));
        Ok(registry)
    }

    /// A registry record of now, with the model version (and a label) as metadata.
    fn standing(entity: &str, arm: &str, active: bool, model_version: Option<&str>) -> Standing {
        let metadata = model_version.map(|v| serde_json::json!({ "model_version": v, "labels": { "source": "demo" } }));
        Standing { entity_id: entity.into(), arm_id: arm.into(), state: if active { "active" } else { "retired" }.into(), ts: now_ms(), metadata, initial_weight: None }
    }

    fn write(&self, entity: &str, arm: &str, active: bool, model_version: Option<&str>) -> Result<(), DemoError> {
        registry::write(&self.kafka, &self.topic, &Registry::standing(entity, arm, active, model_version))?;
        Ok(())
    }

    /// Makes the changes due by `elapsed`, with `arms` arms per entity; returns the lines
    /// describing them.
    fn advance(&mut self, elapsed: Duration, arms: u32) -> Result<Vec<String>, DemoError> {
        let mut done = Vec::new();
        let rate = |arm: u32| demo_true_rate(self.seed, CHANGING, &format!("arm-{arm}")).unwrap_or(0.0);
        if !self.retired && elapsed >= self.retire_at && arms > 1 {
            let worst = (0..arms).min_by(|a, b| rate(*a).total_cmp(&rate(*b))).unwrap_or(0);
            self.write(CHANGING, &format!("arm-{worst}"), false, None)?;
            done.push(format!("t+{}s  retired {CHANGING}/arm-{worst} (true rate {:.4}, the lowest): it leaves the table, its weight goes to the others", elapsed.as_secs(), rate(worst)));
            self.retired = true;
        }
        if !self.added && elapsed >= self.add_at {
            self.write(CHANGING, &format!("arm-{arms}"), true, Some("v2"))?;
            done.push(format!(
                "t+{}s  declared {CHANGING}/arm-{arms} (a new model, true rate {:.4}): it starts from the prior with its new-arm weight, ramping up within the step limit",
                elapsed.as_secs(),
                rate(arms)
            ));
            self.added = true;
        }
        self.log.extend(done.iter().cloned());
        Ok(done)
    }
}


/// The index in a name such as `entity-007` or `arm-2`.
fn index_of(name: &str) -> Option<u32> {
    name.rsplit('-').next()?.parse().ok()
}

/// The true conversion rate of a demo arm, by names.
pub fn demo_true_rate(seed: u64, entity: &str, arm: &str) -> Option<f64> {
    Some(true_rate(seed, RATE, index_of(entity)?, index_of(arm)?))
}

/// Runs the demo, writing its screens or tables to `out`.
pub fn run(options: &DemoOptions, out: &mut dyn Write) -> Result<DemoReport, DemoError> {
    if let Some(listen) = options.metrics_listen.filter(|l| l.port() != 0) {
        if let Err(error) = std::net::TcpListener::bind(listen) {
            if error.kind() == std::io::ErrorKind::AddrInUse {
                return Err(DemoError::MetricsPortTaken { listen });
            }
        }
    }
    let cluster = MockCluster::new(1)?;
    for (topic, partitions) in [("assignments", 4), ("outcomes", 4), ("weights", 1), ("arms", 1)] {
        cluster.create_topic(topic, partitions, 1)?;
    }
    let brokers = cluster.bootstrap_servers();
    let mut job = Job::from_toml_str(DEMO_JOB)?;
    let mut registry = None;
    if let Some(kafka) = job.deployment.kafka.as_mut() {
        kafka.brokers = brokers.clone();
        if let Some(topic) = kafka.arms_topic.clone() {
            registry = Some(Registry::declare(kafka.clone(), topic, options)?);
        }
    }
    let policy = job.dataflow.policy.clone();
    let stop_worker = Arc::new(AtomicBool::new(false));
    let run_options = RunOptions { job, workers: options.workers, cluster: None, stop: stop_worker.clone(), metrics_listen: options.metrics_listen };
    let watch = Arc::new(Watch::default());
    let worker_watch = watch.clone();
    let worker_thread = std::thread::spawn(move || worker::run(&run_options, worker_watch));
    // Traffic starts once the worker has its partitions: the mock cluster does not answer
    // offset-by-time queries, so a worker seeking after the first messages would miss them.
    let waiting = Instant::now();
    while !watch.ready() && !worker_thread.is_finished() && waiting.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }

    let latest: Arc<Mutex<BTreeMap<String, WeightRecord>>> = Arc::default();
    let produced = Arc::new(Produced::default());
    let stop_traffic = Arc::new(AtomicBool::new(false));
    let generator = {
        let (latest, produced, stop, brokers, options) = (latest.clone(), produced.clone(), stop_traffic.clone(), brokers, options.clone());
        std::thread::spawn(move || closed_loop(&brokers, &options, &latest, &produced, &stop))
    };

    if let (false, Some(address)) = (options.terminal, watch.metrics_address()) {
        let _ = writeln!(out, "demo: the worker's metrics are at http://{address}/metrics (also /healthz, /readyz)");
    }
    let legend = screen::legend(policy.min_trials, policy.floor, policy.max_step);
    let seed = options.seed;
    let truth = move |entity: &str, arm: &str| demo_true_rate(seed, entity, arm);
    if !options.terminal {
        let _ = writeln!(out, "What the columns mean:");
        for line in &legend {
            let _ = writeln!(out, "  {line}");
        }
    }
    let started = Instant::now();
    let mut last_table = Instant::now();
    let mut first = true;
    if let (false, Some(registry)) = (options.terminal, &registry) {
        for line in &registry.log {
            let _ = writeln!(out, "registry: {line}");
        }
    }
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let over = options.duration.is_some_and(|d| started.elapsed() >= d) || options.stop.load(Ordering::Acquire);
        if over || generator.is_finished() || worker_thread.is_finished() {
            break;
        }
        if let Some(registry) = registry.as_mut() {
            for line in registry.advance(started.elapsed(), options.arms)? {
                if !options.terminal {
                    let _ = writeln!(out, "registry: {line}");
                }
            }
        }
        let Some(every) = options.table_every else { continue };
        if last_table.elapsed() < every {
            continue;
        }
        last_table = Instant::now();
        let records = latest.lock().map(|l| l.clone()).unwrap_or_default();
        let snapshot = watch.snapshot();
        let frame = screen::Frame {
            elapsed: started.elapsed(),
            duration: options.duration,
            latest: &records,
            true_rate: &truth,
            produced: (produced.assignments.load(Ordering::Relaxed), produced.outcomes.load(Ordering::Relaxed)),
            ticks_published: produced.ticks.load(Ordering::Relaxed),
            snapshot: snapshot.as_ref(),
            metrics_url: watch.metrics_address().map(|a| format!("http://{a}/metrics")),
            log_file: options.log_file.clone(),
            registry: registry.as_ref().map_or(&[], |r| &r.log),
        };
        let text = if options.terminal { screen::redraw(&screen::screen(&frame, &legend), first) } else { screen::plain(&frame) };
        first = false;
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
    if options.terminal && !first {
        let _ = out.write_all(screen::RESTORE.as_bytes());
    }
    stop_traffic.store(true, Ordering::Release);
    let generated = generator.join().map_err(|_| DemoError::Generator("panicked".into()))?;
    stop_worker.store(true, Ordering::Release);
    let metrics_address = watch.metrics_address();
    let summary = worker_thread.join().map_err(|_| DemoError::Generator("worker panicked".into()))?.map_err(|error| match error {
        WorkerError::Metrics(crate::metrics::MetricsError::Listen { listen, .. }) => DemoError::MetricsPortTaken { listen },
        other => DemoError::Worker(other),
    })?;
    generated?;
    drop(cluster);
    let latest = latest.lock().map(|l| l.clone()).unwrap_or_default();
    Ok(DemoReport {
        latest,
        assignments: produced.assignments.load(Ordering::Relaxed),
        outcomes: produced.outcomes.load(Ordering::Relaxed),
        worker: summary,
        metrics_address,
        records: produced.records.lock().map(|mut r| std::mem::take(&mut *r)).unwrap_or_default(),
        uniform_conversions: produced.uniform.lock().map_or(0.0, |u| *u),
        served: produced.served.lock().map(|mut s| std::mem::take(&mut *s)).unwrap_or_default(),
        registry: registry.map(|r| r.log).unwrap_or_default(),
    })
}

/// What the traffic generator has produced and seen.
#[derive(Debug, Default)]
struct Produced {
    assignments: AtomicU64,
    outcomes: AtomicU64,
    /// Distinct versions (ticks) of the weight records read back.
    ticks: AtomicU64,
    /// Every record read back.
    records: Mutex<Vec<WeightRecord>>,
    /// Σ over assignments of the mean true rate of their entity's arms.
    uniform: Mutex<f64>,
    /// Per entity and arm, the times assignments were served (in order).
    served: Mutex<BTreeMap<String, BTreeMap<String, Vec<i64>>>>,
}

/// The traffic generator: reads the weights topic into the serving client's cache, assigns
/// random units by it (the client's fallback, uniform over the declared arms, before any
/// record), and converts at each arm's true rate after a short delay.
fn closed_loop(
    brokers: &str,
    options: &DemoOptions,
    latest: &Mutex<BTreeMap<String, WeightRecord>>,
    produced: &Produced,
    stop: &AtomicBool,
) -> Result<(), DemoError> {
    let mut newest_tick = 0;
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", brokers).set("linger.ms", "5").create()?;
    let weights: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "banditflow-demo-traffic")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset("weights", 0, Offset::Beginning)?;
    weights.assign(&assignment)?;
    drop(assignment);
    // The serving client, as a serving process runs it; the demo's own producer only sends
    // the broken lines.
    let mut defaults = Defaults::new(None);
    for e in 0..options.entities.max(1) {
        defaults.declared.insert(format!("entity-{e:03}"), (0..options.arms.max(1)).map(|a| format!("arm-{a}")).collect());
    }
    let assigner = Assigner::new(Arc::new(WeightsCache::new()), defaults);
    let traffic = TrafficProducer::new(brokers, &[], "assignments", "outcomes")?;
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut conversions: BinaryHeap<Reverse<(i64, String)>> = BinaryHeap::new();
    let mut sequence = 0u64;
    let step = Duration::from_millis(20);
    let per_step = f64::from(options.assignments_per_s) * step.as_secs_f64();
    let mut owed = 0.0;
    let mut next = Instant::now();
    while !stop.load(Ordering::Acquire) {
        while let Some(message) = weights.poll(Duration::ZERO) {
            let Ok(message) = message else { continue };
            if let Some(record) = message.payload().and_then(|p| serde_json::from_slice::<WeightRecord>(p).ok()) {
                // Records come tick by tick, in order.
                if record.version > newest_tick {
                    newest_tick = record.version;
                    produced.ticks.fetch_add(1, Ordering::Relaxed);
                }
                if let Ok(mut records) = produced.records.lock() {
                    records.push(record.clone());
                }
                assigner.cache().offer(record.clone());
                if let Ok(mut latest) = latest.lock() {
                    latest.insert(record.entity_id.clone(), record);
                }
            }
        }
        let now = now_ms();
        owed += per_step;
        let current = latest.lock().map(|l| l.clone()).unwrap_or_default();
        while owed >= 1.0 {
            owed -= 1.0;
            let entity = format!("entity-{:03}", rng.random_range(0..options.entities.max(1)));
            let unit = format!("unit-{}", rng.random_range(0..DEMO_UNITS));
            // An entity whose every arm is retired serves nothing.
            let Ok(assignment) = assigner.assign_at(&entity, &unit, now) else { continue };
            sequence += 1;
            let (id, arm) = (assignment.assignment_id.clone(), assignment.arm_id.clone());
            traffic.assignment(&assignment)?;
            produced.assignments.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut served) = produced.served.lock() {
                served.entry(entity.clone()).or_default().entry(arm.clone()).or_default().push(now);
            }
            // A uniform split over the arms the entity has now (the registry changes them).
            let rates: Vec<f64> = match current.get(&entity).filter(|r| !r.arms.is_empty()) {
                Some(record) => record.arms.iter().filter_map(|a| demo_true_rate(options.seed, &entity, &a.arm_id)).collect(),
                None => (0..options.arms.max(1)).filter_map(|a| demo_true_rate(options.seed, &entity, &format!("arm-{a}"))).collect(),
            };
            if let Ok(mut uniform) = produced.uniform.lock() {
                *uniform += rates.iter().sum::<f64>() / rates.len().max(1) as f64;
            }
            // One line in a thousand is broken, to show bad input counted by reason.
            if sequence.is_multiple_of(1_000) {
                send(&producer, "assignments", &id, r#"{"assignment_id":"broken","arm_id":"arm-0"}"#, now)?;
            }
            if demo_true_rate(options.seed, &entity, &arm).is_some_and(|rate| rng.random_bool(rate)) {
                conversions.push(Reverse((now + rng.random_range(0..MAX_CONVERSION_DELAY_MS), id)));
            }
        }
        while conversions.peek().is_some_and(|Reverse((due, _))| *due <= now) {
            let Some(Reverse((due, id))) = conversions.pop() else { break };
            traffic.outcome(&Outcome { assignment_id: id, ts: due, kind: Some("click".into()) })?;
            produced.outcomes.fetch_add(1, Ordering::Relaxed);
        }
        producer.poll(Duration::ZERO);
        next += step;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    producer.flush(Duration::from_secs(5))?;
    traffic.flush(Duration::from_secs(5))?;
    Ok(())
}

fn send(producer: &BaseProducer, topic: &str, key: &str, line: &str, ts: i64) -> Result<(), DemoError> {
    let mut record = BaseRecord::to(topic).key(key).payload(line).timestamp(ts);
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(5));
            }
            Err((error, _)) => return Err(error.into()),
        }
    }
}
