//! Cost of one entity's weights at a tick: `p_best` over its arms' posteriors, then the
//! floor policy; and what the statistics of issue 11 add to a record (expected loss from the
//! same integration, credible intervals, the comparison with a control, chi-square, the
//! sample-ratio test). Realistic posteriors: ~5% conversion, a few thousand trials per arm,
//! arms within a couple of standard deviations of each other.
#![allow(missing_docs)] // criterion_group! and criterion_main! generate undocumented functions

use banditflow_core::policy::{target_weights, BurnIn};
use banditflow_core::posterior::{best_arm, p_best, Beta};
use banditflow_core::srm::ServedCounts;
use banditflow_core::statistics::{independence, mean, versus_control};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};

/// `k` arms near a 5% rate with 2000-5000 trials each, spread over about two standard
/// deviations; deterministic so runs compare.
fn entity(k: usize) -> (Vec<Beta>, Vec<u64>) {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15 ^ k as u64;
    let mut next = move || {
        // xorshift64*: a fixed pseudo-random stream without a dependency.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut arms = Vec::with_capacity(k);
    let mut trials = Vec::with_capacity(k);
    for _ in 0..k {
        let n = 2000.0 + 3000.0 * next();
        let rate = 0.05 * (1.0 + 0.15 * (next() - 0.5));
        let successes = (rate * n).round();
        arms.push(Beta { alpha: 1.0 + successes, beta: 1.0 + n - successes });
        trials.push(n as u64);
    }
    (arms, trials)
}

fn entity_weights(c: &mut Criterion) {
    let mut group = c.benchmark_group("entity_weights");
    for k in [2usize, 4, 10, 50] {
        let (arms, trials) = entity(k);
        group.bench_with_input(BenchmarkId::from_parameter(k), &(arms, trials), |b, (arms, trials)| {
            b.iter(|| {
                let p = p_best(black_box(arms));
                target_weights(&p, black_box(trials), &BurnIn::new(100), 0.01)
            });
        });
    }
    // The streaming job's typical entity: four close arms near 5%.
    let typical = [
        Beta { alpha: 61.0, beta: 1201.0 },
        Beta { alpha: 75.0, beta: 1180.0 },
        Beta { alpha: 70.0, beta: 1190.0 },
        Beta { alpha: 66.0, beta: 1195.0 },
    ];
    let typical_trials = [1260u64, 1253, 1258, 1259];
    group.bench_function("typical4", |b| {
        b.iter(|| {
            let p = p_best(black_box(&typical));
            target_weights(&p, black_box(&typical_trials), &BurnIn::new(100), 0.01)
        });
    });
    group.finish();
}

/// The statistics a record carries besides `p_best` and the weights, at K arms: p_best alone
/// against p_best with everything else.
fn record_statistics(c: &mut Criterion) {
    let mut group = c.benchmark_group("record_statistics");
    for k in [2usize, 10, 50] {
        let (arms, trials) = entity(k);
        let counts: Vec<(u64, u64)> = arms.iter().zip(&trials).map(|(a, t)| (*t, (a.alpha - 1.0) as u64)).collect();
        let mut served = ServedCounts::default();
        served.published(1, (0..k as u64).map(|arm| (arm, 1.0 / k as f64)));
        for (arm, (t, _)) in counts.iter().enumerate() {
            served.served(arm as u64, banditflow_core::attribution::Served { version: 1, tick: 1_000 }, *t as i64, banditflow_core::time::Ticks::new(1));
        }
        group.bench_with_input(BenchmarkId::new("p_best_only", k), &arms, |b, arms| b.iter(|| p_best(black_box(arms))));
        group.bench_with_input(BenchmarkId::new("all_statistics", k), &(arms.clone(), counts.clone()), |b, (arms, counts)| {
            b.iter(|| {
                // best_arm: p_best, the expected loss and the credible intervals together.
                let odds = best_arm(black_box(arms));
                let means: Vec<f64> = arms.iter().map(|a| mean(*a)).collect();
                let control = counts[0];
                let versus: Vec<_> = counts.iter().skip(1).map(|c| versus_control(*c, control)).collect();
                (odds, means, versus, independence(black_box(counts).iter().copied()), served.test(0.001))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, entity_weights, record_statistics);
criterion_main!(benches);
