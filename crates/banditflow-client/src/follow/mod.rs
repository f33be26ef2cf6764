//! Followers: fill a [`WeightsCache`] from where the worker publishes, and keep following.
//! Each is an async loop on tokio that never returns on its own (it reconnects and loads
//! again after any failure); [`Following`] runs one on a thread of its own for callers that
//! are not async, and stops it when dropped.

#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "redis")]
pub mod redis;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::cache::{Offered, WeightsCache};

/// What a follower has done, shared with whoever watches it.
#[derive(Debug, Default)]
pub struct Progress {
    /// Whether the first full load (every key, or the topic to its end) is done.
    loaded: AtomicBool,
    /// Records kept by the cache.
    kept: AtomicU64,
    /// Records the cache ignored as older than what it held.
    older: AtomicU64,
    /// Records that did not parse (logged, skipped).
    unreadable: AtomicU64,
    /// Times the follower lost its source and connected again.
    reconnects: AtomicU64,
}

impl Progress {
    /// Whether the first full load is done.
    #[must_use]
    pub fn loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// Records kept, records ignored as older, records unreadable, reconnects.
    #[must_use]
    pub fn counts(&self) -> (u64, u64, u64, u64) {
        (self.kept.load(Ordering::Relaxed), self.older.load(Ordering::Relaxed), self.unreadable.load(Ordering::Relaxed), self.reconnects.load(Ordering::Relaxed))
    }

    pub(crate) fn set_loaded(&self) {
        self.loaded.store(true, Ordering::Release);
    }

    pub(crate) fn reconnected(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// Parses `payload` and offers it to `cache`, counting what happened.
    pub(crate) fn offer(&self, cache: &WeightsCache, payload: &[u8], source: &str) {
        self.offer_for(cache, payload, source, None);
    }

    /// [`Progress::offer`] of a record that must be `entity`'s (when given): another
    /// entity's is passed over (a key of another namespace that happens to parse).
    pub(crate) fn offer_for(&self, cache: &WeightsCache, payload: &[u8], source: &str, entity: Option<&str>) {
        match crate::record::parse_record(payload) {
            Ok(record) if entity.is_some_and(|e| e != record.entity_id) => {
                tracing::debug!(%source, entity_id = %record.entity_id, "passing over a record under another entity's key");
            }
            Ok(record) => {
                let counter = match cache.offer(record) {
                    Offered::Kept => &self.kept,
                    Offered::Older { .. } => &self.older,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::warn!(%source, %error, "skipping a weight record that does not parse");
                self.unreadable.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The wait before connecting again after the `n`-th failure in a row: 100 ms doubling to 5 s.
pub(crate) fn backoff(n: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << n.min(6))).min(Duration::from_secs(5))
}

/// A follower running on its own thread (a current-thread tokio runtime); dropped, it stops.
pub struct Following {
    progress: Arc<Progress>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Following {
    /// Runs the follower `follow` makes (given the progress to report to) until dropped.
    pub fn spawn<F, Fut>(name: &str, follow: F) -> std::io::Result<Following>
    where
        F: FnOnce(Arc<Progress>) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let progress = Arc::new(Progress::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = progress.clone();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let thread = std::thread::Builder::new().name(format!("follow-{name}")).spawn(move || {
            runtime.block_on(async move {
                tokio::select! {
                    () = follow(shared) => {}
                    _ = stopped => {}
                }
            });
        })?;
        Ok(Following { progress, stop: Some(stop), thread: Some(thread) })
    }

    /// What it has done so far.
    #[must_use]
    pub fn progress(&self) -> &Arc<Progress> {
        &self.progress
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
