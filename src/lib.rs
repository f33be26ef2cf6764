//! banditflow: experiment traffic in, multi-armed-bandit weights out.
//!
//! Data flows one way: `event` (decode and key) → `attribution` (join outcomes to
//! assignments, decide rewards) → `window` (windowed counts per arm) → `weights`
//! (posteriors, `p_best`, policy) → a sink. `replay` drives that dataflow from files.
