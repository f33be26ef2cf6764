//! Reports people read (`banditflow report`): an entity's weights, posteriors and decisions
//! over time, from the weights stream and the decision events. [`input`] reads and groups
//! them; [`html`] draws the page ([`svg`] its charts); [`markdown`] prints the summary for
//! terminals and pull requests.

pub mod html;
pub mod input;
pub mod markdown;
pub mod svg;

pub use input::{read, ReportInput, Selection};
