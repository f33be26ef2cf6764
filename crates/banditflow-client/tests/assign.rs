//! `assign` over many units: shares follow the weights (a chi-square goodness-of-fit test),
//! a unit keeps its arm while the weights stay, and after a weight change the share of units
//! that move is at least the change's total variation (cumulative ranges move more when
//! middle ranges shift), while a sticky store keeps every unit whose arm is still live.

use std::sync::Arc;

use banditflow_client::{Assigner, Defaults, MemorySticky, WeightRecord, WeightsCache};
use banditflow_core::statistics::goodness_of_fit;

const UNITS: usize = 100_000;

fn record(version: u64, weights: &[f64]) -> WeightRecord {
    let arms: Vec<serde_json::Value> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| {
            serde_json::json!({"arm_id": format!("arm-{i:02}"), "weight": w, "p_best": w, "alpha": 1.0, "beta": 1.0, "trials": 0, "successes": 0,
                "mean": 0.5, "ci95": [0.0, 1.0], "expected_loss": 0.0, "vs_control": null, "state": "exploring"})
        })
        .collect();
    let json = serde_json::json!({"entity_id": "checkout-ranker", "version": version, "as_of": version, "computed_at": 0, "status": "adaptive", "arms": arms,
        "chi_square": {"statistic": 0.0, "dof": 0, "p_value": 1.0},
        "srm": {"statistic": 0.0, "dof": 0, "p_value": 1.0, "flagged": false, "matched": 0, "unmatched": 0},
        "dataflow": "t", "schema_version": banditflow_client::SCHEMA_VERSION});
    serde_json::from_value(json).expect("a weight record")
}

/// Each unit's arm index under `assigner` (units `user-0` …).
fn arms_of(assigner: &Assigner, units: usize) -> Vec<usize> {
    (0..units)
        .map(|u| {
            let served = assigner.assign_at("checkout-ranker", &format!("user-{u}"), 0).expect("served");
            served.arm_id.trim_start_matches("arm-").parse().expect("an arm index")
        })
        .collect()
}

fn total_variation(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() / 2.0
}

/// Uneven weights for `k` arms: proportional to 1, 2, …, k.
fn uneven(k: usize) -> Vec<f64> {
    let total = (k * (k + 1) / 2) as f64;
    (1..=k).map(|i| i as f64 / total).collect()
}

#[test]
fn over_100000_units_the_shares_match_the_weights() {
    for k in [2, 3, 10] {
        let weights = uneven(k);
        let cache = Arc::new(WeightsCache::new());
        cache.offer(record(1, &weights));
        let assigner = Assigner::new(cache, Defaults::new(i64::MAX));
        let mut counts = vec![0u64; k];
        for arm in arms_of(&assigner, UNITS) {
            counts[arm] += 1;
        }
        let test = goodness_of_fit(counts.iter().zip(&weights).map(|(c, w)| (*c as f64, w * UNITS as f64)));
        assert!(test.p_value > 0.01, "K = {k}: counts {counts:?} against weights {weights:?}: {test:?}");
        assert_eq!(test.dof as usize, k - 1);
    }
}

#[test]
fn a_weight_change_moves_at_least_its_total_variation_and_sticky_units_stay() {
    for k in [2, 3, 10] {
        let before = uneven(k);
        // Move weight from the first arm to the last: every range in between shifts.
        let mut after = before.clone();
        let moved_weight = before[0] / 2.0;
        after[0] -= moved_weight;
        after[k - 1] += moved_weight;
        let d = total_variation(&before, &after);

        let cache = Arc::new(WeightsCache::new());
        cache.offer(record(1, &before));
        let plain = Assigner::new(cache.clone(), Defaults::new(i64::MAX));
        let sticky = Assigner::new(cache.clone(), Defaults::new(i64::MAX)).with_sticky(Arc::new(MemorySticky::default()));
        let first = arms_of(&plain, UNITS);
        assert_eq!(arms_of(&plain, UNITS), first, "K = {k}: the same arms while the weights stay");
        assert_eq!(arms_of(&sticky, UNITS), first, "K = {k}: sticky agrees before any change");
        cache.offer(record(2, &after));
        let second = arms_of(&plain, UNITS);
        let changed = first.iter().zip(&second).filter(|(a, b)| a != b).count() as f64 / UNITS as f64;
        // At least d must move (each arm's share changes by that much in total), give or take
        // sampling noise of 100,000 points on a grid of 10,000.
        assert!(changed >= d - 0.01, "K = {k}: {changed} moved, total variation {d}");
        if k > 2 {
            assert!(changed > d + 0.01, "K = {k}: the middle ranges shift too: {changed} moved, total variation {d}");
        }
        let kept = arms_of(&sticky, UNITS);
        assert_eq!(kept, first, "K = {k}: every arm is live, every sticky unit keeps its arm");
        println!("K = {k:2}: total variation {d:.4}, units moved {changed:.4} (ratio {:.2}), sticky 0", changed / d);
    }
}
