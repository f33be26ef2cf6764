//! What the Kafka sources of one process share with its driver: the stop request, how far
//! each source has got, and when each let time pass a tick (for the tick-processing
//! histogram).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Which input topic a partition belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Topic {
    /// The assignments topic.
    Assignments,
    /// The outcomes topic.
    Outcomes,
    /// The arm registry topic (`[kafka] arms_topic`).
    Arms,
}

impl Topic {
    /// Every input topic, in the order their partitions are listed.
    pub const ALL: [Topic; 3] = [Topic::Assignments, Topic::Outcomes, Topic::Arms];

    /// `assignments`, `outcomes` or `arms`, as logs and metrics name it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Topic::Assignments => "assignments",
            Topic::Outcomes => "outcomes",
            Topic::Arms => "arms",
        }
    }
}

/// Partitions in plain words: `assignments/1,3 outcomes/1,3` (`none` for none).
pub fn describe(partitions: &[(Topic, i32)]) -> String {
    let words: Vec<String> = Topic::ALL
        .into_iter()
        .filter_map(|topic| {
            let ids: Vec<String> = partitions.iter().filter(|(t, _)| *t == topic).map(|(_, p)| p.to_string()).collect();
            (!ids.is_empty()).then(|| format!("{}/{}", topic.as_str(), ids.join(",")))
        })
        .collect();
    if words.is_empty() {
        "none".to_owned()
    } else {
        words.join(" ")
    }
}

/// What the sources of one process share with its driver: the stop request, and how far
/// each source has got.
#[derive(Debug)]
pub struct Control {
    /// Set by SIGTERM/SIGINT (or the embedding program): stop reading, finish what is complete.
    pub stop: Arc<AtomicBool>,
    pub(super) sources: usize,
    /// Smallest tick a stopping source holds (`u64::MAX` until all have stopped).
    pub(super) held: AtomicU64,
    pub(super) stopped: AtomicUsize,
    pub(super) finished: AtomicUsize,
    pub(super) caught_up: AtomicUsize,
    /// Messages read by this process's sources.
    pub messages_read: AtomicU64,
    /// Per source (by worker index): when it let time advance to each tick, oldest first.
    released: Mutex<HashMap<usize, VecDeque<(u64, Instant)>>>,
}

impl Control {
    /// Control of `sources` local sources, stopped by `stop`.
    pub fn new(stop: Arc<AtomicBool>, sources: usize) -> Self {
        Control {
            stop,
            sources,
            held: AtomicU64::new(u64::MAX),
            stopped: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            caught_up: AtomicUsize::new(0),
            messages_read: AtomicU64::new(0),
            released: Mutex::default(),
        }
    }

    /// Source `worker` now holds time at `tick`: every tick below it is complete there.
    pub(super) fn release(&self, worker: usize, tick: u64) {
        if let Ok(mut released) = self.released.lock() {
            let history = released.entry(worker).or_default();
            history.push_back((tick, Instant::now()));
            // Ticks are published in order, and soon: a short history is enough.
            while history.len() > 4096 {
                history.pop_front();
            }
        }
    }

    /// When every local source had completed `tick` (`None` if one has not, or has no record
    /// of it). Forgets what is older.
    pub fn completed_at(&self, tick: u64) -> Option<Instant> {
        let mut released = self.released.lock().ok()?;
        let mut latest: Option<Instant> = None;
        for history in released.values_mut() {
            while history.len() > 1 && history.get(1).is_some_and(|(t, _)| *t <= tick) {
                history.pop_front();
            }
            let at = history.iter().find(|(t, _)| *t > tick).map(|(_, at)| *at)?;
            latest = Some(latest.map_or(at, |l| l.max(at)));
        }
        latest
    }

    /// Every local source has stopped, published what was complete and committed.
    pub fn finished(&self) -> bool {
        self.finished.load(Ordering::Acquire) >= self.sources
    }

    /// Every local source has read to the end of its partitions at least once.
    pub fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire) >= self.sources
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_described_in_plain_words() {
        let mine = [(Topic::Assignments, 1), (Topic::Outcomes, 1), (Topic::Assignments, 3), (Topic::Outcomes, 3)];
        assert_eq!(describe(&mine), "assignments/1,3 outcomes/1,3");
        assert_eq!(describe(&[(Topic::Outcomes, 0)]), "outcomes/0");
        assert_eq!(describe(&[]), "none");
    }
}
