#!/usr/bin/env bash
# The serving side: the client's `assign` under criterion (benches/serving.rs)
# against GrowthBook's Python SDK evaluating the same 10-arm split in the same run, and
# `banditflow serve` answering /assign under wrk on loopback against its own /readyz (the
# HTTP stack alone) in the same run. Prints a markdown block for BENCHMARKS.md.
#
# Usage: scripts/bench-serving.sh   (installs wrk, redis-server and python3-venv if missing)
# Environment: BENCH_DIR (default bench-data), BANDITFLOW_BIN (default target/release/banditflow),
#   BENCH_SERVING_SECONDS=15 (each wrk run), BENCH_SERVING_CONNECTIONS=64.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BENCH_DIR=${BENCH_DIR:-bench-data}
BIN=${BANDITFLOW_BIN:-target/release/banditflow}
SECONDS_EACH=${BENCH_SERVING_SECONDS:-15}
CONNECTIONS=${BENCH_SERVING_CONNECTIONS:-64}
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
OUT=$BENCH_DIR/serving
mkdir -p "$OUT"
log() { echo "[bench-serving] $*" >&2; }
sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    sudo_if_needed apt-get update -qq >&2
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
[[ -x $BIN ]] || cargo build --release --quiet

# --- assign: criterion --------------------------------------------------------------------
log "criterion: cargo bench --bench serving"
cargo bench --quiet --bench serving >"$OUT/criterion.log" 2>&1
estimate() { grep -E "^$1 +time:" "$OUT/criterion.log" | sed -E 's/.*\[([^ ]+ [^ ]+) ([^ ]+ [^ ]+) ([^ ]+ [^ ]+)\]/\2/'; }
in_ns() { awk '{ v = $1; u = $2; if (u == "ps") v /= 1000; else if (u == "µs" || u == "us") v *= 1000; else if (u == "ms") v *= 1e6; printf "%.1f", v }'; }
ASSIGN_10=$(estimate 'assign/10' | in_ns)
# Units that move when the weights move: the measurement in the client's tests/assign.rs.
log "churn: cargo test --release -p banditflow-client --test assign"
cargo test --quiet --release -p banditflow-client --test assign -- --nocapture a_weight_change >"$OUT/churn.log" 2>&1

# --- the peer: GrowthBook's Python SDK on the same split ------------------------------------
VENV=$BENCH_DIR/growthbook-venv
if [[ ! -x $VENV/bin/python ]]; then
    log "creating $VENV with growthbook==4.0.0"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check growthbook==4.0.0
fi
SDK_NS=$("$VENV/bin/python" - <<'PY'
import time
from growthbook import GrowthBook
k = 10
arms = [f"model-{i:02d}" for i in range(k)]
feature = {"defaultValue": arms[-1], "rules": [{"key": "entity-04242", "seed": "entity-04242", "hashAttribute": "id", "hashVersion": 2,
           "coverage": 1.0, "variations": arms, "weights": [1 / k] * k}]}
gb = GrowthBook(features={"entity-04242": feature})
units = [f"user-{u:08d}" for u in range(1024)]
n = 200_000
start = time.perf_counter()
for i in range(n):
    gb.set_attributes({"id": units[i & 1023]})
    gb.eval_feature("entity-04242")
print(f"{(time.perf_counter() - start) / n * 1e9:.1f}")
PY
)

# --- serve /assign under wrk ------------------------------------------------------------------
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$OUT/redis.log" 2>&1 &
REDIS_PID=$!
SERVE_PID=
TANSU_PID=
cleanup() {
    [[ -n $SERVE_PID ]] && kill "$SERVE_PID" 2>/dev/null
    [[ -n $TANSU_PID ]] && kill "$TANSU_PID" 2>/dev/null
    kill "$REDIS_PID" 2>/dev/null
    wait 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
# Picked once redis-server holds its port, so the two cannot be the same.
PORT=$(free_port)
log "writing 1,000 entities of 10 arms to redis on :$REDIS_PORT"
python3 - "$OUT/records.redis" <<'PY'
import json, sys, time
now = int(time.time() * 1000)
with open(sys.argv[1], "w") as f:
    for e in range(1000):
        arms = [{"arm_id": f"model-{i:02d}", "weight": 0.1, "p_best": 0.1, "alpha": 1.0, "beta": 1.0, "trials": 0, "successes": 0, "mean": 0.5,
                 "ci95": [0.0, 1.0], "expected_loss": 0.0, "vs_control": None, "state": "exploring"} for i in range(10)]
        record = {"entity_id": f"entity-{e:05d}", "version": 1000, "as_of": 1000, "computed_at": now, "status": "adaptive", "arms": arms,
                  "chi_square": {"statistic": 0.0, "dof": 9, "p_value": 1.0},
                  "srm": {"statistic": 0.0, "dof": 9, "p_value": 1.0, "flagged": False, "matched": 0, "unmatched": 0},
                  "max_age_hint_ms": 5000, "dataflow": "bench", "schema_version": 3}
        f.write("SET bench:entity-%05d '%s'\n" % (e, json.dumps(record)))
PY
redis-cli -p "$REDIS_PORT" <"$OUT/records.redis" >/dev/null
cat >"$OUT/job.toml" <<EOF
name = "bench-serving"
tick = "1s"
window = "10m"
attribution = "2s"
allowed_lateness = "1s"

[redis]
url = "redis://127.0.0.1:$REDIS_PORT/0"
prefix = "bench"
EOF
"$BIN" serve --dataflow "$OUT/job.toml" --listen "127.0.0.1:$PORT" --max-age 1h 2>"$OUT/serve.log" &
SERVE_PID=$!
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null || { log "serve never became ready (see $OUT/serve.log)"; exit 1; }
cat >"$OUT/assign.lua" <<'LUA'
-- Each request: a random entity of the 1,000 and a random unit.
math.randomseed(42)
request = function()
  return wrk.format("GET", string.format("/assign?entity=entity-%05d&unit=user-%d", math.random(0, 999), math.random(1, 10000000)))
end
LUA
rate() { awk '/^Requests\/sec:/ { print $2 }' "$1"; }
latency() { awk '/^ +Latency/ { print $2 }' "$1"; }
log "wrk: /readyz, then /assign (${SECONDS_EACH}s each, $CONNECTIONS connections, 2 threads)"
wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" "http://127.0.0.1:$PORT/readyz" >"$OUT/wrk-readyz.txt"
wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" -s "$OUT/assign.lua" "http://127.0.0.1:$PORT/" >"$OUT/wrk-assign.txt"
ASSIGNED=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^banditflow_serving_assignments_total / { print $2 }')
READY_RATE=$(rate "$OUT/wrk-readyz.txt")
ASSIGN_RATE=$(rate "$OUT/wrk-assign.txt")
kill "$SERVE_PID" 2>/dev/null; wait "$SERVE_PID" 2>/dev/null || true
SERVE_PID=

# --- the same with every assignment produced to tansu (when installed: scripts/services.sh) ---
PRODUCED_LINE=
if command -v tansu >/dev/null 2>&1; then
    KAFKA_PORT=$(free_port)
    tansu broker --listener-url "tcp://127.0.0.1:$KAFKA_PORT" --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" --storage-engine memory://tansu/ >"$OUT/tansu.log" 2>&1 &
    TANSU_PID=$!
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null && break; sleep 0.1; done
    for topic in assignments outcomes; do tansu topic create --broker "tcp://127.0.0.1:$KAFKA_PORT" --partitions 4 "$topic" >/dev/null; done
    printf '\n[kafka]\nbrokers = "127.0.0.1:%s"\nassignments_topic = "assignments"\noutcomes_topic = "outcomes"\ngroup_id = "bench-serving"\n' "$KAFKA_PORT" >>"$OUT/job.toml"
    "$BIN" serve --dataflow "$OUT/job.toml" --listen "127.0.0.1:$PORT" --max-age 1h 2>"$OUT/serve-kafka.log" &
    SERVE_PID=$!
    for _ in $(seq 200); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
    log "wrk: /assign producing to tansu (${SECONDS_EACH}s)"
    wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" -s "$OUT/assign.lua" "http://127.0.0.1:$PORT/" >"$OUT/wrk-assign-kafka.txt"
    FAILED=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^banditflow_serving_produce_failures_total / { print $2 }')
    KAFKA_RATE=$(rate "$OUT/wrk-assign-kafka.txt")
    PRODUCED_LINE="- The same \`/assign\` with every assignment produced to tansu 0.6 (its own process on the same 2 cores): $KAFKA_RATE requests/s (mean latency $(latency "$OUT/wrk-assign-kafka.txt")), $(awk -v a="$KAFKA_RATE" -v b="$ASSIGN_RATE" 'BEGIN { printf "%.2f", a / b }') of the rate without Kafka; ${FAILED:-0} produces failed (queue full)."
fi

echo "### Serving (scripts/bench-serving.sh)"
echo
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); $(date -u +%Y-%m-%d)."
echo
echo "- \`assign\` (criterion, \`cargo bench --bench serving\`) [low estimate high]:"
grep -E '^(assign/[0-9]+|cache_get(_under_writes)?) +time:' "$OUT/criterion.log" | sed -E 's/^([^ ]+) +time: +(.*)/  - `\1`: \2/'
echo "- Peer in the same run: GrowthBook's Python SDK 4.0.0 evaluating the same 10-arm split (set_attributes + eval_feature): $SDK_NS ns per call; \`assign/10\` $ASSIGN_10 ns: $(awk -v a="$ASSIGN_10" -v b="$SDK_NS" 'BEGIN { printf "%.0fx", b / a }') faster."
echo "- \`banditflow serve\` under wrk on loopback (2 threads, $CONNECTIONS connections, ${SECONDS_EACH}s; wrk and the service share the 2 cores; no Kafka configured, so nothing produced): \`/assign\` over 1,000 entities of 10 arms, random units: $ASSIGN_RATE requests/s (mean latency $(latency "$OUT/wrk-assign.txt")); \`/readyz\` (the HTTP stack alone) $READY_RATE requests/s: /assign at $(awk -v a="$ASSIGN_RATE" -v b="$READY_RATE" 'BEGIN { printf "%.2f", a / b }') of it. The service counted $ASSIGNED assignments."
if [[ -n $PRODUCED_LINE ]]; then echo "$PRODUCED_LINE"; fi
echo "- Units whose arm changes after a weight change (half of arm 0's weight, weights proportional to 1..K, moved to the last arm; 100,000 units; \`cargo test --release -p banditflow-client --test assign -- --nocapture\`), against the change's total variation d:"
grep -E '^K = ' "$OUT/churn.log" | sed 's/^/  - /'
