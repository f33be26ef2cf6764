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

    /// The tick whose last millisecond is the first at or after `ts + delay`: when a fact
    /// about an event at `ts` becomes true (resolution) or stops being true (leaving the window).
    pub fn settle_tick(&self, ts: i64, delay_ms: u64) -> u64 {
        self.tick_of(ts.saturating_add(delay_ms.min(i64::MAX as u64) as i64))
    }
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
    fn resolution_at_the_boundary_waits_for_the_tick_holding_it() {
        // An assignment at 30_000 with attribution 30_000 may still convert at 60_000,
        // which is in tick 1: it resolves at tick 1, not 0.
        let t = Ticks::new(60_000);
        assert_eq!(t.settle_tick(30_000, 30_000), 1);
        assert_eq!(t.settle_tick(29_999, 30_000), 0);
    }
}
