//! Cost of `assign` at 2, 10 and 50 arms (the cache lookup, the hash, the range, the fresh
//! assignment id and record), of the cache lookup alone with 10,000 entities held, and of
//! lookups while a follower keeps writing (the read-mostly lock under a writer).
#![allow(missing_docs)] // criterion_group! and criterion_main! generate undocumented functions

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use banditflow_client::{Assigner, Defaults, WeightRecord, WeightsCache};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};

fn record(entity: &str, version: u64, k: usize) -> WeightRecord {
    let arms: Vec<serde_json::Value> = (0..k)
        .map(|i| {
            serde_json::json!({"arm_id": format!("model-{i:02}"), "weight": 1.0 / k as f64, "p_best": 1.0 / k as f64, "alpha": 1.0, "beta": 1.0,
                "trials": 0, "successes": 0, "mean": 0.5, "ci95": [0.0, 1.0], "expected_loss": 0.0, "vs_control": null, "state": "exploring"})
        })
        .collect();
    serde_json::from_value(serde_json::json!({"entity_id": entity, "version": version, "as_of": version, "computed_at": 0, "status": "adaptive", "arms": arms,
        "chi_square": {"statistic": 0.0, "dof": 0, "p_value": 1.0},
        "srm": {"statistic": 0.0, "dof": 0, "p_value": 1.0, "flagged": false, "matched": 0, "unmatched": 0},
        "max_age_hint_ms": 5_000, "dataflow": "bench", "schema_version": banditflow_client::SCHEMA_VERSION}))
    .expect("a weight record")
}

/// A cache of 10,000 entities of `k` arms.
fn cache(k: usize) -> Arc<WeightsCache> {
    let cache = Arc::new(WeightsCache::new());
    for e in 0..10_000 {
        cache.offer(record(&format!("entity-{e:05}"), 1, k));
    }
    cache
}

fn assign(c: &mut Criterion) {
    let mut group = c.benchmark_group("assign");
    for k in [2usize, 10, 50] {
        let assigner = Assigner::new(cache(k), Defaults::new(i64::MAX));
        let units: Vec<String> = (0..1024).map(|u| format!("user-{u:08}")).collect();
        let mut i = 0usize;
        group.bench_with_input(BenchmarkId::from_parameter(k), &k, |b, _| {
            b.iter(|| {
                i = (i + 1) & 1023;
                black_box(assigner.assign_at("entity-04242", &units[i], 1_000).expect("served"))
            });
        });
    }
    group.finish();
}

fn lookup(c: &mut Criterion) {
    let cache = cache(10);
    c.bench_function("cache_get", |b| b.iter(|| black_box(cache.get(black_box("entity-04242")))));
    // The same lookups while another thread offers a newer record of some entity nonstop.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (cache, stop) = (cache.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut version = 2;
            while !stop.load(Ordering::Relaxed) {
                cache.offer(record(&format!("entity-{:05}", version % 10_000), version, 10));
                version += 1;
            }
        })
    };
    c.bench_function("cache_get_under_writes", |b| b.iter(|| black_box(cache.get(black_box("entity-04242")))));
    stop.store(true, Ordering::Relaxed);
    let _ = writer.join();
}

criterion_group!(benches, assign, lookup);
criterion_main!(benches);
