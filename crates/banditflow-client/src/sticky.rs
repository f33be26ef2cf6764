//! Sticky assignment: a per-unit memory of the arm each unit was served, so that a unit
//! keeps its arm while that arm is live even when the weights move (cumulative ranges move
//! units of the middle arms whenever an earlier arm's weight changes). The price: the
//! traffic split follows the weights only for units not seen before.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

/// Where sticky assignments are remembered. `assign` calls it on every request, so an
/// implementation doing I/O puts that I/O on the request path.
pub trait StickyStore: Send + Sync {
    /// The arm `unit_id` was last given of `entity_id`, if remembered.
    fn arm(&self, entity_id: &str, unit_id: &str) -> Option<String>;
    /// Remembers that `unit_id` was given `arm_id` of `entity_id`.
    fn keep(&self, entity_id: &str, unit_id: &str, arm_id: &str);
}

/// A sticky store in this process's memory (lost with it; one per serving process).
#[derive(Debug, Default)]
pub struct MemorySticky {
    arms: RwLock<HashMap<String, HashMap<String, String>>>,
}

impl StickyStore for MemorySticky {
    fn arm(&self, entity_id: &str, unit_id: &str) -> Option<String> {
        self.arms.read().unwrap_or_else(PoisonError::into_inner).get(entity_id).and_then(|units| units.get(unit_id)).cloned()
    }

    fn keep(&self, entity_id: &str, unit_id: &str, arm_id: &str) {
        let mut arms = self.arms.write().unwrap_or_else(PoisonError::into_inner);
        arms.entry(entity_id.to_owned()).or_default().insert(unit_id.to_owned(), arm_id.to_owned());
    }
}
