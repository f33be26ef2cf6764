//! `banditflow serve`: the serving client as a small HTTP service. It follows the weights
//! the job's worker publishes (Redis, or the weights topic), assigns units by them, produces
//! the assignments and outcomes to the job's input topics, and hands the same split to
//! GrowthBook SDKs as a features payload.

mod routes;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use banditflow_client::follow::{self, Progress};
use banditflow_client::produce::TrafficProducer;
use banditflow_client::{Assigner, Defaults, Fallback, WeightsCache};

use crate::deployment::Job;
use crate::publisher::Targets;

/// Where the cache is filled from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    /// The job's `[redis]` (the worker's Redis sink).
    Redis,
    /// The job's weights topic.
    Kafka,
}

/// What `serve` runs with.
pub struct ServeOptions {
    /// The job file: where the weights are, where assignments and outcomes go, the arms.
    pub job: Job,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Where to follow the weights from (`None`: Redis if the job has it, else the topic).
    pub source: Option<Source>,
    /// Weights older than this are not served (`None`: the records' `max_age_hint_ms`).
    pub max_age_ms: Option<i64>,
    /// Serve each entity's control arm on a fallback, not a uniform split.
    pub fallback_to_control: bool,
}

/// Why `serve` could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The job names neither a weights topic nor Redis.
    #[error("the job file has neither [redis] nor a weights topic in [kafka]: nothing to serve from")]
    NoSource,
    /// `--source` names what the job does not have.
    #[error("--source {0:?}: the job file has no {0:?} to follow")]
    Missing(Source),
    /// `--fallback control` without a control arm.
    #[error("--fallback control needs [decision] control in the job file (or a control in every [[arms]] entry)")]
    NoControl,
    /// The Redis URL does not parse.
    #[error("the Redis URL is not valid: {0}")]
    Redis(#[from] redis::RedisError),
    /// The producer could not be made.
    #[error(transparent)]
    Produce(#[from] banditflow_client::produce::ProduceError),
    /// Listening or the runtime failed.
    #[error("cannot serve on {listen}: {error}")]
    Io {
        /// The address.
        listen: SocketAddr,
        /// What failed.
        error: std::io::Error,
    },
}

/// What the handlers share.
pub(crate) struct Service {
    pub(crate) assigner: Assigner,
    pub(crate) producer: Option<TrafficProducer>,
    pub(crate) progress: Arc<Progress>,
    pub(crate) registry: prometheus::Registry,
    /// Declared entities (served even before their first record).
    pub(crate) declared: Vec<String>,
    pub(crate) produce_failures: prometheus::IntCounter,
}

/// The job's librdkafka properties (security settings, say), for the client's Kafka clients.
fn properties(kafka: &crate::deployment::KafkaConfig) -> Vec<(String, String)> {
    kafka.properties.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Serves until `stop` is set; the listening address is logged once bound.
pub fn serve(options: ServeOptions, stop: Arc<AtomicBool>) -> Result<(), ServeError> {
    let ServeOptions { job, listen, source, max_age_ms, fallback_to_control } = options;
    let targets = Targets::of(job.deployment.kafka.as_ref(), job.deployment.redis.as_ref(), job.deployment.mode);
    let source = match source {
        Some(s) => s,
        None if targets.redis.is_some() => Source::Redis,
        None if targets.kafka.is_some() => Source::Kafka,
        None => return Err(ServeError::NoSource),
    };
    let mut defaults = Defaults::of_job(&job.dataflow, max_age_ms);
    if fallback_to_control {
        let every_declared_has_one = !job.dataflow.arms.is_empty() && job.dataflow.arms.iter().all(|a| defaults.controls.contains_key(&a.entity_id));
        match job.dataflow.decision.control.clone() {
            Some(control) => defaults.fallback = Fallback::Control(control),
            None if every_declared_has_one => defaults.fallback = Fallback::Control(String::new()),
            None => return Err(ServeError::NoControl),
        }
    }
    let cache = Arc::new(WeightsCache::new());
    let producer = match &job.deployment.kafka {
        Some(k) => {
            // On the request path: a full queue fails the produce (counted), not the request.
            Some(TrafficProducer::new(&k.brokers, &properties(k), &k.assignments_topic, &k.outcomes_topic)?.without_waiting())
        }
        None => None,
    };
    let registry = prometheus::Registry::new();
    let assigner = Assigner::new(cache.clone(), defaults);
    let produce_failures = prometheus::IntCounter::new("banditflow_serving_produce_failures_total", "Assignments or outcomes that could not be queued for Kafka.").expect("a valid metric");
    let _ = assigner.metrics().register(&registry);
    let _ = registry.register(Box::new(produce_failures.clone()));
    let progress = Arc::new(Progress::default());
    let declared = job.dataflow.arms.iter().map(|a| a.entity_id.clone()).collect();
    let io = |error| ServeError::Io { listen, error };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(io)?;
    let follower: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> = match (source, &targets.redis, &targets.kafka) {
        (Source::Redis, Some((redis, prefix)), _) => Box::pin(follow::redis::follow(redis::Client::open(redis.url.as_str())?, prefix.clone(), cache, progress.clone())),
        (Source::Kafka, _, Some((kafka, topic))) => {
            Box::pin(follow::kafka::follow(kafka.brokers.clone(), properties(kafka), topic.clone(), cache, progress.clone()))
        }
        (s, ..) => return Err(ServeError::Missing(s)),
    };
    let service = Arc::new(Service { assigner, producer, progress, registry, declared, produce_failures });
    runtime.block_on(async move {
        tokio::spawn(follower);
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(io)?;
        let bound = listener.local_addr().map_err(io)?;
        tracing::info!(listen = %bound, source = ?source, "serving");
        let stopped = async move {
            while !stop.load(Ordering::Acquire) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        axum::serve(listener, routes::router(service.clone())).with_graceful_shutdown(stopped).await.map_err(io)?;
        if let Some(producer) = &service.producer {
            if let Err(error) = producer.flush(Duration::from_secs(10)) {
                tracing::warn!(%error, "assignments or outcomes may be lost: the producer did not flush");
            }
        }
        Ok(())
    })
}
