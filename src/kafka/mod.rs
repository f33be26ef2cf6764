//! The Kafka connector: client settings and start-up look-ups ([`client`]), the live source
//! with per-partition watermarks ([`source`], sharing [`control`] with the worker's driver),
//! the weights-topic sink ([`sink`]), the dead-letter topic ([`dead_letter`]) and the arm
//! registry topic for operators ([`registry`]).

pub mod client;
pub mod control;
pub mod dead_letter;
pub mod registry;
pub mod sink;
pub mod source;
