//! Reports people read (`banditflow report`): an entity's weights, posteriors and decisions
//! over time, from the weights stream and the decision events. [`input`] reads and groups
//! them; [`markdown`] prints the summary for terminals and pull requests.

pub mod input;
pub mod markdown;

pub use input::{read, ReportInput, Selection};
