//! Deterministic bucketing: a unit's place in `[0, 1)` from (entity seed, unit id), mapped
//! through the cumulative weights in arm order. It is GrowthBook's hash version 2 and bucket
//! ranges, so a GrowthBook SDK given the same weights, seed and `hashVersion: 2` picks the
//! same arm for the same unit.

/// FNV-1a over 32 bits, one step per UTF-16 code unit, as GrowthBook's SDKs hash (the
/// JavaScript SDK's `charCodeAt` loop; for ASCII ids the same as per byte).
fn fnv1a32(parts: &[&str]) -> u32 {
    let mut hash: u32 = 0x811C_9DC5;
    for part in parts {
        if part.is_ascii() {
            for b in part.bytes() {
                hash = (hash ^ u32::from(b)).wrapping_mul(0x0100_0193);
            }
        } else {
            for unit in part.encode_utf16() {
                hash = (hash ^ u32::from(unit)).wrapping_mul(0x0100_0193);
            }
        }
    }
    hash
}

/// The unit's place in `[0, 1)` under `seed` (GrowthBook hash version 2: the FNV-1a of the
/// decimal FNV-1a of seed then unit, modulo 10,000, over 10,000).
#[must_use]
pub fn unit_point(seed: &str, unit_id: &str) -> f64 {
    let first = fnv1a32(&[seed, unit_id]);
    let mut digits = itoa::Buffer::new();
    let second = fnv1a32(&[digits.format(first)]);
    f64::from(second % 10_000) / 10_000.0
}

/// The ranges of `[0, 1)` the arms own, in arm order: arm k owns `[w_0 + … + w_{k-1},` that
/// plus `w_k)`, summed left to right as GrowthBook sums them (coverage 1).
#[must_use]
pub fn ranges(weights: &[f64]) -> Vec<(f64, f64)> {
    let mut cumulative = 0.0;
    weights
        .iter()
        .map(|w| {
            let start = cumulative;
            cumulative += w;
            (start, start + w)
        })
        .collect()
}

/// The arm whose range holds `point`, if any (a point past the last range's end, possible
/// only when the weights sum to less than 1, is in none).
#[must_use]
pub fn choose(point: f64, ranges: &[(f64, f64)]) -> Option<usize> {
    ranges.iter().position(|(start, end)| point >= *start && point < *end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a32_matches_the_published_test_vectors() {
        // The FNV-1a 32-bit reference values (the FNV authors' test suite).
        assert_eq!(fnv1a32(&[""]), 0x811c_9dc5);
        assert_eq!(fnv1a32(&["a"]), 0xe40c_292c);
        assert_eq!(fnv1a32(&["foobar"]), 0xbf9c_f968);
        assert_eq!(fnv1a32(&["foo", "bar"]), fnv1a32(&["foobar"]), "parts hash as one string");
        // Outside ASCII, per UTF-16 code unit: "é" is one unit (0xE9), "😀" two surrogates.
        let by_units = |units: &[u32]| units.iter().fold(0x811C_9DC5u32, |h, u| (h ^ u).wrapping_mul(0x0100_0193));
        assert_eq!(fnv1a32(&["é"]), by_units(&[0xE9]));
        assert_eq!(fnv1a32(&["a😀"]), by_units(&[0x61, 0xD83D, 0xDE00]));
        assert_eq!(fnv1a32(&["a", "😀"]), fnv1a32(&["a😀"]));
    }

    #[test]
    fn points_lie_in_the_unit_interval_on_a_grid_of_ten_thousand() {
        for unit in 0..2_000 {
            let p = unit_point("entity-1", &format!("user-{unit}"));
            assert!((0.0..1.0).contains(&p), "{p}");
            assert!(((p * 10_000.0).round() - p * 10_000.0).abs() < 1e-9, "{p}");
        }
        assert_ne!(unit_point("a", "user-1"), unit_point("b", "user-1"), "the seed moves a unit");
    }

    #[test]
    fn ranges_tile_the_interval_in_arm_order() {
        let r = ranges(&[0.2, 0.5, 0.3]);
        assert_eq!(r[0], (0.0, 0.2));
        assert_eq!(r[1].0, 0.2);
        assert!((r[2].1 - 1.0).abs() < 1e-12);
        assert_eq!(choose(0.0, &r), Some(0));
        assert_eq!(choose(0.2, &r), Some(1), "a range holds its start, not its end");
        assert_eq!(choose(0.9999, &r), Some(2));
        assert_eq!(choose(0.5, &ranges(&[0.25, 0.25])), None, "past the last range's end");
        assert_eq!(choose(0.3, &ranges(&[0.0, 1.0])), Some(1), "an arm of weight 0 owns nothing");
    }
}
