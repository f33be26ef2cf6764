//! banditflow: experiment traffic in, multi-armed-bandit weights out, on timely and
//! differential dataflow.
//!
//! The semantics (decoding, attribution, window, posteriors, policy, the weight record, the
//! job file) live in `banditflow_core`; this crate runs them. Data flows one way:
//! a source (`file/` for replay, `kafka/` for the live worker) → the [`dataflow`] (attribute →
//! arm counts → weigh → publish) → sinks (`file/`, `kafka/`, `redis/`, through the live
//! [`publisher`]). [`replay`] and [`worker`] drive the dataflow; [`metrics`] is what SREs see;
//! [`deployment`] reads where a live worker connects.

pub mod checkpoint;
pub mod dataflow;
pub mod demo;
pub mod deployment;
pub mod evaluate;
pub mod export;
pub mod file;
pub mod kafka;
pub mod logs;
pub mod metrics;
pub mod publisher;
pub mod redis;
pub mod replay;
pub mod report;
pub mod serve;
pub mod simulate;
pub mod traffic;
pub mod worker;
