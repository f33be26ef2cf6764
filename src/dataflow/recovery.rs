//! What a live worker's operators resume from and where they hand their checkpoint parts.

use std::sync::Arc;

use banditflow_core::checkpoint::Checkpoint;

use crate::checkpoint::Collector;

/// How a live worker's dataflow resumes from a checkpoint and takes new ones (replay: neither).
#[derive(Clone, Debug, Default)]
pub struct Recovery {
    /// The checkpoint to resume from: the operators start from its state.
    pub restored: Option<Arc<Checkpoint>>,
    /// Where the operators hand their parts of new checkpoints.
    pub collector: Option<Arc<Collector>>,
    /// The newest `as_of` on the weights topic at start-up: records up to it were published
    /// and are not published again.
    pub published_through: Option<i64>,
}

