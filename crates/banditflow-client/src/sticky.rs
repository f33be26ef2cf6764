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

/// A sticky store in Redis, shared by every serving process: a hash per entity,
/// `{prefix}:sticky:{entity_id}`, from unit id to arm id. Every `assign` then waits on a
/// round trip to Redis (two for a unit not seen before); when Redis cannot be reached, the
/// unit is assigned by the weights and nothing is remembered (logged).
#[cfg(feature = "redis")]
pub struct RedisSticky {
    client: redis::Client,
    connection: std::sync::Mutex<Option<redis::Connection>>,
    prefix: String,
}

#[cfg(feature = "redis")]
impl RedisSticky {
    /// A store under `prefix` at `client`'s Redis (connects on first use).
    #[must_use]
    pub fn new(client: redis::Client, prefix: &str) -> Self {
        RedisSticky { client, connection: std::sync::Mutex::new(None), prefix: prefix.to_owned() }
    }

    /// Runs `command` on the connection, connecting first if needed; a failure drops the
    /// connection so the next call connects again.
    fn with_connection<T>(&self, command: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>) -> Option<T> {
        let mut slot = self.connection.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            match self.client.get_connection_with_timeout(std::time::Duration::from_secs(1)) {
                Ok(c) => *slot = Some(c),
                Err(error) => {
                    tracing::warn!(%error, "sticky store: cannot reach Redis");
                    return None;
                }
            }
        }
        let result = slot.as_mut().map(command)?;
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                tracing::warn!(%error, "sticky store: Redis failed");
                *slot = None;
                None
            }
        }
    }

    fn key(&self, entity_id: &str) -> String {
        format!("{}:sticky:{entity_id}", self.prefix)
    }
}

#[cfg(feature = "redis")]
impl StickyStore for RedisSticky {
    fn arm(&self, entity_id: &str, unit_id: &str) -> Option<String> {
        let key = self.key(entity_id);
        self.with_connection(|c| redis::cmd("HGET").arg(&key).arg(unit_id).query::<Option<String>>(c)).flatten()
    }

    fn keep(&self, entity_id: &str, unit_id: &str, arm_id: &str) {
        let key = self.key(entity_id);
        let _ = self.with_connection(|c| redis::cmd("HSET").arg(&key).arg(unit_id).arg(arm_id).query::<i64>(c));
    }
}
