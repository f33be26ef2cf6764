#!/usr/bin/env bash
# End-to-end benchmark of the live worker through tansu and redis-server (benches/live.rs):
# backlog throughput and freshness under steady traffic. Prints a markdown block.
#
# Environment, with defaults:
#   BENCH_LIVE_BACKLOG=2000000   assignments of the backlog (outcomes come on top)
#   BENCH_LIVE_RATE=10000        events/s of steady traffic while probing freshness
#   BENCH_LIVE_SECONDS=60        how long freshness is probed
#   BENCH_WORKER_THREADS=2       worker threads
#   BANDITFLOW_KAFKA_PROPERTIES_*  passed on to the worker (e.g. ..._FETCH_WAIT_MAX_MS=10)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/services.sh
ensure_services
cargo build --release --quiet
cargo bench --quiet --bench live -- "${BENCH_LIVE_BACKLOG:-2000000}" "${BENCH_LIVE_RATE:-10000}" "${BENCH_LIVE_SECONDS:-60}"
