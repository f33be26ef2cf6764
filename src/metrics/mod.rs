//! What SREs see: the metrics endpoint of the worker, the demo and replay.
//!
//! [`snapshot`] is what the process reports at a scrape, [`exporter`] turns it into
//! Prometheus metrics, [`endpoint`] serves them over HTTP with the health and readiness
//! checks.

pub mod endpoint;
pub mod exporter;
pub mod snapshot;

pub use endpoint::{readiness, serve, Endpoint, MetricsError};
pub use snapshot::{PublishedState, SinkState, Snapshot, WorkerReports, PUBLISH_LATENCY, TICK_PROCESSING};
