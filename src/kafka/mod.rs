//! The Kafka connector: client settings and start-up look-ups ([`client`]), the live source
//! with per-partition watermarks ([`source`], sharing [`control`] with the worker's driver),
//! and the weights-topic sink ([`sink`]).

pub mod client;
pub mod control;
pub mod sink;
pub mod source;
