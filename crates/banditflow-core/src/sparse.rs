//! Giving memory back: a hash table keeps its largest capacity after its entries go, so the
//! tables that forgetting empties are shrunk once they are mostly empty. Without this, a
//! wave of short-lived entities would leave the worker holding the wave's peak for good.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash};

/// Below this capacity a table is left as it is: shrinking small tables gains nothing.
const SMALL: usize = 1024;

/// Whether a table of `len` entries and `capacity` is worth shrinking: over a quarter empty
/// three times over, and not small.
fn sparse(len: usize, capacity: usize) -> bool {
    capacity > SMALL && capacity > len.saturating_mul(4)
}

/// Shrinks `map` if it is mostly empty.
pub fn shrink_map<K: Eq + Hash, V, S: BuildHasher>(map: &mut HashMap<K, V, S>) {
    if sparse(map.len(), map.capacity()) {
        map.shrink_to_fit();
    }
}

/// Shrinks `set` if it is mostly empty.
pub fn shrink_set<K: Eq + Hash, S: BuildHasher>(set: &mut HashSet<K, S>) {
    if sparse(set.len(), set.capacity()) {
        set.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mostly_empty_table_shrinks_and_a_full_or_small_one_does_not() {
        let mut map: HashMap<u64, u64> = (0..100_000).map(|i| (i, i)).collect();
        let full = map.capacity();
        shrink_map(&mut map);
        assert_eq!(map.capacity(), full, "full: left alone");
        map.retain(|k, _| *k < 10);
        shrink_map(&mut map);
        assert!(map.capacity() < 100, "{}", map.capacity());
        let mut small: HashSet<u64> = (0..500).collect();
        small.retain(|k| *k < 2);
        let before = small.capacity();
        shrink_set(&mut small);
        assert_eq!(small.capacity(), before, "small: left alone");
    }
}
