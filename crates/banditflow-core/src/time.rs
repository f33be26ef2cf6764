//! Event time and ticks: the dataflow's logical clock.
//!
//! Tick `t` covers event times `[t * tick_ms, (t + 1) * tick_ms)`; weights are computed
//! as of its last millisecond, so an inclusive bound such as `ts + attribution` is settled
//! once that tick is complete.

/// Wall-clock time in ms since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The tick length of a dataflow, and the arithmetic between event times and ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticks {
    tick_ms: u64,
}

impl Ticks {
    /// Ticks of `tick_ms` milliseconds (at least 1).
    pub fn new(tick_ms: u64) -> Self {
        Ticks { tick_ms: tick_ms.max(1) }
    }

    /// The tick holding event time `ts` (ms since the epoch); times before the epoch map to tick 0.
    pub fn tick_of(&self, ts: i64) -> u64 {
        if ts <= 0 {
            0
        } else {
            ts as u64 / self.tick_ms
        }
    }

    /// The last millisecond of tick `tick`: the `as_of` of weights computed at that tick.
    pub fn as_of(&self, tick: u64) -> i64 {
        (tick.saturating_add(1).saturating_mul(self.tick_ms) - 1).min(i64::MAX as u64) as i64
    }

    /// The first millisecond of tick `tick`.
    pub fn start_of(&self, tick: u64) -> i64 {
        tick.saturating_mul(self.tick_ms).min(i64::MAX as u64) as i64
    }

    /// The tick length, ms.
    pub fn tick_ms(&self) -> u64 {
        self.tick_ms
    }

    /// The tick whose last millisecond is the first at or after `ts + delay`: when a fact
    /// about an event at `ts` becomes true (resolution) or stops being true (leaving the window).
    pub fn settle_tick(&self, ts: i64, delay_ms: u64) -> u64 {
        self.tick_of(ts.saturating_add(delay_ms.min(i64::MAX as u64) as i64))
    }
}

/// The first tick whose window a rebuild that read every message with `ts >= read_from_ms`
/// has fully seen: tick `t` counts the assignments with `as_of(t) - window < ts`, so it is
/// covered once `as_of(t) - window + 1 >= read_from_ms`. Ticks before it would be computed
/// from a window missing its oldest part, and are not published.
pub fn first_covered_tick(ticks: Ticks, read_from_ms: i64, window_ms: u64) -> u64 {
    let window = window_ms.min(i64::MAX as u64) as i64;
    ticks.tick_of(read_from_ms.saturating_add(window).saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_of_is_the_last_millisecond_of_the_tick() {
        let t = Ticks::new(60_000);
        assert_eq!(t.tick_of(59_999), 0);
        assert_eq!(t.tick_of(60_000), 1);
        assert_eq!(t.as_of(0), 59_999);
        assert_eq!(t.tick_of(t.as_of(7)), 7);
    }

    #[test]
    fn a_tick_is_covered_exactly_when_its_whole_window_was_read() {
        for tick_ms in [1, 7, 1_000] {
            let t = Ticks::new(tick_ms);
            for window in [1u64, 5, 60, 1_000] {
                for read_from in 0..3_000i64 {
                    let first = first_covered_tick(t, read_from, window);
                    // Brute force: the window of tick k starts at as_of(k) - window + 1.
                    let covered = |k: u64| t.as_of(k) - window as i64 + 1 >= read_from;
                    assert!(covered(first), "tick {first} for read_from {read_from}, window {window}, tick {tick_ms}");
                    assert!(first == 0 || !covered(first - 1), "tick {} is covered too (read_from {read_from}, window {window}, tick {tick_ms})", first - 1);
                }
            }
        }
    }

    #[test]
    fn resolution_at_the_boundary_waits_for_the_tick_holding_it() {
        // An assignment at 30_000 with attribution 30_000 may still convert at 60_000,
        // which is in tick 1: it resolves at tick 1, not 0.
        let t = Ticks::new(60_000);
        assert_eq!(t.settle_tick(30_000, 30_000), 1);
        assert_eq!(t.settle_tick(29_999, 30_000), 0);
    }
}
