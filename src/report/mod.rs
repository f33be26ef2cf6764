//! Reports people read (`banditflow report`): an entity's weights, posteriors and decisions
//! over time, from the weights stream and the decision events. [`input`] reads and groups
//! them ([`lines`] the files line by line, [`served`] the cumulative counts from the
//! assignment log, [`evaluation`] an offline evaluation); [`html`] draws the page ([`svg`] its charts); [`markdown`] prints the
//! summary for terminals and pull requests.

pub mod evaluation;
pub mod html;
pub mod input;
pub mod lines;
pub mod markdown;
pub mod served;
pub mod svg;

pub use input::{read, ReportInput, Selection};
