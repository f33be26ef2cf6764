//! banditflow: experiment traffic in, multi-armed-bandit weights out.
//!
//! Data flows one way: `event` (decode and key) → `attribution` (join outcomes to
//! assignments, decide rewards) → `window` (windowed counts per arm) → `weights`
//! (posteriors, `p_best`, policy) → a sink. `replay` drives that dataflow from files;
//! `worker` drives it from Kafka (`source`) and publishes to Kafka and Redis (`publisher`).

pub mod attribution;
pub mod config;
pub mod counters;
pub mod dataflow;
pub mod demo;
pub mod deployment;
pub mod event;
pub mod generate;
pub mod kafka;
pub mod metrics;
pub mod policy;
pub mod posterior;
pub mod publisher;
pub mod replay;
pub mod sink;
pub mod source;
pub mod time;
pub mod weights;
pub mod window;
pub mod worker;
