//! The Redis connector: where serving reads the weights ([`sink`]).

pub mod sink;
