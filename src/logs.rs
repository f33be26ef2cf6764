//! Log hygiene: what keeps the logs readable when something keeps failing.
//!
//! A client error repeated in a tight loop (librdkafka reports an unreachable broker many
//! times a second) is logged once, then at most once per [`REPEAT_WINDOW`] with how often it
//! repeated meanwhile. Times are written as RFC 3339, and secrets in URLs are redacted
//! wherever a URL is shown.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

/// How long a repeated message stays quiet before it is logged again, with its count.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(10);

/// What to do with one occurrence of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repeat {
    /// Log it: the first in its window. `suppressed` occurrences were dropped since it was
    /// last logged, over `over` (zero the first time).
    Log {
        /// Occurrences dropped since the last one logged.
        suppressed: u64,
        /// The time since the last one logged.
        over: Duration,
    },
    /// Drop it: it was logged less than a window ago.
    Quiet,
}

/// Counts of messages by key, each logged at most once per window.
#[derive(Debug)]
pub struct Repeats {
    window: Duration,
    seen: Mutex<HashMap<String, (Instant, u64)>>,
}

impl Repeats {
    /// Messages repeat quietly for `window`.
    pub fn new(window: Duration) -> Self {
        Repeats { window, seen: Mutex::new(HashMap::new()) }
    }

    /// One more occurrence of the message `key` at `now`.
    pub fn occur(&self, key: &str, now: Instant) -> Repeat {
        let Ok(mut seen) = self.seen.lock() else { return Repeat::Log { suppressed: 0, over: Duration::ZERO } };
        match seen.get_mut(key) {
            None => {
                seen.insert(key.to_owned(), (now, 0));
                Repeat::Log { suppressed: 0, over: Duration::ZERO }
            }
            Some((since, suppressed)) if now.duration_since(*since) >= self.window => {
                let logged = Repeat::Log { suppressed: *suppressed, over: now.duration_since(*since) };
                *since = now;
                *suppressed = 0;
                logged
            }
            Some((_, suppressed)) => {
                *suppressed += 1;
                Repeat::Quiet
            }
        }
    }
}

/// The process's repeated client messages (librdkafka's errors and log lines).
pub static CLIENT_REPEATS: LazyLock<Repeats> = LazyLock::new(|| Repeats::new(REPEAT_WINDOW));

/// `" (repeated 195 times in 10s)"` after a message logged again, or nothing.
pub fn repeated_suffix(suppressed: u64, over: Duration) -> String {
    if suppressed == 0 {
        String::new()
    } else {
        format!(" (repeated {suppressed} times in {}s)", over.as_secs())
    }
}

/// Milliseconds since the epoch as RFC 3339 (`2026-12-01T19:54:41.781Z`); `none` for a
/// time before the epoch (such as "nothing read yet").
pub fn rfc3339(ms: i64) -> String {
    if ms < 0 {
        return "none".to_owned();
    }
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms as u64)).to_string()
}

/// A URL with its password replaced by `***` (`redis://:***@host:6379/0`), for logs and
/// errors. Text that is not a URL with credentials comes back unchanged.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Some((credentials, host)) = authority.rsplit_once('@') else { return url.to_owned() };
    let user = credentials.split_once(':').map_or("", |(user, _)| user);
    let hidden = if credentials.contains(':') { format!("{user}:***") } else { "***".to_owned() };
    format!("{scheme}://{hidden}@{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_message_is_logged_once_per_window_with_its_count() {
        let repeats = Repeats::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(repeats.occur("down", t0), Repeat::Log { suppressed: 0, over: Duration::ZERO });
        for i in 1..=195 {
            assert_eq!(repeats.occur("down", t0 + Duration::from_millis(i * 50)), Repeat::Quiet);
        }
        assert_eq!(repeats.occur("other", t0 + Duration::from_secs(1)), Repeat::Log { suppressed: 0, over: Duration::ZERO });
        let again = repeats.occur("down", t0 + Duration::from_secs(10));
        assert_eq!(again, Repeat::Log { suppressed: 195, over: Duration::from_secs(10) });
        assert_eq!(repeated_suffix(195, Duration::from_secs(10)), " (repeated 195 times in 10s)");
        assert_eq!(repeats.occur("down", t0 + Duration::from_secs(11)), Repeat::Quiet);
    }

    #[test]
    fn passwords_in_urls_are_redacted() {
        assert_eq!(redact_url("redis://:s3cret@redis:6379/0"), "redis://:***@redis:6379/0");
        assert_eq!(redact_url("rediss://app:s3cret@host"), "rediss://app:***@host");
        assert_eq!(redact_url("redis://token@host:1/2"), "redis://***@host:1/2");
        assert_eq!(redact_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact_url("kafka-1:9092,kafka-2:9092"), "kafka-1:9092,kafka-2:9092");
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(1_767_225_600_000), "2026-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_767_225_600_123), "2026-01-01T00:00:00.123Z");
        assert_eq!(rfc3339(i64::MIN), "none");
    }
}
