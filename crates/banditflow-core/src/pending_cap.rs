//! The cap on pending assignments (`[limits] max_pending_assignments`), kept by the sources.
//!
//! Attribution holds an assignment from its arrival until its attribution interval closes;
//! that table is what a flood of assignments grows. The sources bound it where the record's
//! bytes are still at hand, so a refusal can go to the dead-letter output unchanged: each of
//! the `n` sources lets through at most `ceil(max / n)` assignments whose interval is still
//! open at the source's own time, and refuses the rest (`max_pending_assignments`). Copies
//! count one each (attribution may fold them into one), so attribution never holds more than
//! the cap (rounded up to a multiple of the sources).
//!
//! Which record is refused once a source's share is full depends on how the records are
//! spread over the workers; below the cap nothing does.

use std::collections::VecDeque;

/// One source's share of the cap and the assignments it counts against it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PendingCap {
    /// Assignments this source may count at once.
    share: usize,
    /// Assignments counted, by the tick their attribution interval closes at, in tick order
    /// (a deque: records come mostly in time order, so most land at its back).
    closing: VecDeque<(u64, usize)>,
    /// Their sum.
    counted: usize,
}

impl PendingCap {
    /// The share of one of `sources` sources of a cap of `max` (both at least 1).
    #[must_use]
    pub fn new(max: usize, sources: usize) -> Self {
        PendingCap { share: max.div_ceil(sources.max(1)).max(1), closing: VecDeque::new(), counted: 0 }
    }

    /// Stops counting the assignments whose interval closes before `tick`: the source's time
    /// has passed it, so attribution resolves them.
    pub fn advance(&mut self, tick: u64) {
        while let Some(&(closes, count)) = self.closing.front() {
            if closes >= tick {
                break;
            }
            self.counted -= count;
            self.closing.pop_front();
        }
    }

    /// Whether one more assignment fits in the share.
    #[must_use]
    pub fn fits(&self) -> bool {
        self.counted < self.share
    }

    /// Counts an assignment passed on, whose interval closes at tick `closes`.
    pub fn count(&mut self, closes: u64) {
        match self.closing.back_mut() {
            Some((last, count)) if *last == closes => *count += 1,
            Some((last, _)) if *last > closes => match self.closing.binary_search_by_key(&closes, |(t, _)| *t) {
                Ok(i) => self.closing[i].1 += 1,
                Err(i) => self.closing.insert(i, (closes, 1)),
            },
            _ => self.closing.push_back((closes, 1)),
        }
        self.counted += 1;
    }

    /// Assignments counted now.
    #[must_use]
    pub fn counted(&self) -> usize {
        self.counted
    }

    /// This source's share of the cap.
    #[must_use]
    pub fn share(&self) -> usize {
        self.share
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_fills_and_empties_as_the_intervals_close() {
        // A cap of 5 over 2 sources: 3 each.
        let mut cap = PendingCap::new(5, 2);
        assert_eq!(cap.share(), 3);
        // Out of order too: 10 after 12.
        for closes in [10, 12, 10] {
            assert!(cap.fits());
            cap.count(closes);
        }
        assert!(!cap.fits());
        // Time passes tick 10 (not yet 12): the two closing at 10 no longer count.
        cap.advance(10);
        assert!(!cap.fits(), "nothing closes before tick 10");
        cap.advance(11);
        assert_eq!(cap.counted(), 1);
        assert!(cap.fits());
        cap.advance(13);
        assert_eq!(cap.counted(), 0);
        // Ticks in any order are counted where they belong.
        for closes in [20, 25, 22, 20, 25, 21] {
            cap.count(closes);
        }
        cap.advance(22);
        assert_eq!(cap.counted(), 3, "22, 25, 25 are left");
        cap.advance(25);
        assert_eq!(cap.counted(), 2);
    }

    #[test]
    fn every_source_has_room_for_one() {
        assert_eq!(PendingCap::new(1, 4).share(), 1);
        assert_eq!(PendingCap::new(8, 4).share(), 2);
        assert_eq!(PendingCap::new(9, 4).share(), 3);
    }
}
