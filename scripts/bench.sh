#!/usr/bin/env bash
# Benchmarks `banditflow replay` on generated traffic against DuckDB, cross-checks the two, and
# measures memory per pending assignment. Prints a markdown block for BENCHMARKS.md and writes
# it to $BENCH_DIR/results.md. Exits 1 if banditflow's counts disagree with DuckDB's.
#
# Usage (from anywhere; it works in the repo root): scripts/bench.sh
# Environment, with defaults:
#   BENCH_DIR=bench-data            data, venv, logs and results
#   BENCH_COUNT=2000000             assignments (distinct) of the main run
#   BENCH_ENTITIES=100 BENCH_ARMS=4 BENCH_RATE=0.05 BENCH_SEED=1
#   BENCH_DURATION_MS=86400000      span of the assignment times (24h)
#   BENCH_DISORDER_MS=30000         max displacement in file order (keep <= allowed_lateness)
#   BENCH_DUPLICATES=0.01           share of assignment lines written twice
#   BENCH_WORKERS="1 2"             worker counts to time
#   BENCH_PENDING_COUNT=1000000     assignments of the memory run (all pending at end of input)
#   BENCH_DATAFLOW=dataflows/bench.toml, and what it says, for DuckDB and the cross-check:
#   BENCH_TICK_MS=60000 BENCH_WINDOW_MS=86400000 BENCH_ATTRIBUTION_MS=1800000
#   BENCH_PRIOR_ALPHA=1 BENCH_PRIOR_BETA=1
#   BENCH_DUCKDB_VERSION=2.0.0      pinned in the venv
#   BENCH_SKIP_BUILD=1              use the existing binary
#   BANDITFLOW_BIN                  default ${CARGO_TARGET_DIR:-target}/release/banditflow
#   BENCH_LIVE=1                    also run scripts/bench-live.sh (its own variables apply)
#   BENCH_RECOVERY=1                also run the restart-vs-rebuild benchmark (benches/recovery.rs)
#   BENCH_RECOVERY_COUNT=5000000    assignments in its window
#   BENCH_BASE_REV                  also time replay of this earlier revision (built in a git
#                                   worktree) against this build, in turn on the same traffic
#   BENCH_BASE_PATCH                a patch applied to that revision's worktree first, e.g.
#                                   benches/without-statistics.patch with BENCH_BASE_REV=HEAD:
#                                   this revision with issue 11's statistics and decision rules
#                                   taken out, so the comparison prices them alone
#   BENCH_BASE_RUNS=5               pairs of that comparison
#   BENCH_SIMULATE=1                also time `banditflow simulate` on dataflows/scenarios/bench.toml
#                                   (1,000,000 steps x 20 reps of 10 arms, refresh every 100)
#   BENCH_REPORT=1                  also run scripts/bench-report.sh (the HTML report of 100
#                                   entities x 10,000 records, opened in headless Chromium)
#   BENCH_SERVING=1                 also run scripts/bench-serving.sh (assign against GrowthBook's
#                                   Python SDK; banditflow serve under wrk)
#   BENCH_EVALUATION=1              also run scripts/bench-evaluation.sh (export and evaluate on
#                                   10,000,000 assignments beside replay of the same traffic)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

BENCH_DIR=${BENCH_DIR:-bench-data}
COUNT=${BENCH_COUNT:-2000000}
ENTITIES=${BENCH_ENTITIES:-100}
ARMS=${BENCH_ARMS:-4}
RATE=${BENCH_RATE:-0.05}
SEED=${BENCH_SEED:-1}
DURATION_MS=${BENCH_DURATION_MS:-86400000}
DISORDER_MS=${BENCH_DISORDER_MS:-30000}
DUPLICATES=${BENCH_DUPLICATES:-0.01}
WORKERS=${BENCH_WORKERS:-1 2}
PENDING_COUNT=${BENCH_PENDING_COUNT:-1000000}
PENDING_SMALL=1000
PENDING_DURATION_MS=1200000 # 20 minutes: with 30m attribution nothing resolves before the end
DATAFLOW=${BENCH_DATAFLOW:-dataflows/bench.toml}
TICK_MS=${BENCH_TICK_MS:-60000}
WINDOW_MS=${BENCH_WINDOW_MS:-86400000}
ATTRIBUTION_MS=${BENCH_ATTRIBUTION_MS:-1800000}
PRIOR_ALPHA=${BENCH_PRIOR_ALPHA:-1}
PRIOR_BETA=${BENCH_PRIOR_BETA:-1}
DUCKDB_VERSION=${BENCH_DUCKDB_VERSION:-2.0.0}
BIN=${BANDITFLOW_BIN:-${CARGO_TARGET_DIR:-target}/release/banditflow}

mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
OUT=$BENCH_DIR/out
mkdir -p "$OUT"
VENV=$BENCH_DIR/venv
PY=$VENV/bin/python
DUCKDB_SCRIPT=$ROOT/scripts/duckdb_final_counts.py

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# Floating-point arithmetic: calc FORMAT EXPR (printf format, awk expression).
calc() { awk "BEGIN { printf \"$1\", $2 }" </dev/null; }
# A field of a one-line JSON object on stdin.
json_field() { "$PY" -c 'import json, sys; v = json.load(sys.stdin)[sys.argv[1]]; print("" if v is None else v)' "$1"; }
lines() { wc -l <"$1" | tr -d ' '; }

# --- 1. What the benchmark needs ------------------------------------------------------------
[[ -f $DATAFLOW ]] || die "no dataflow $DATAFLOW"
if [[ ! -x /usr/bin/time ]]; then
    log "installing GNU time"
    apt-get update -qq >/dev/null && apt-get install -y -qq time >/dev/null
fi
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "cargo build --release"
    cargo build --release --quiet
fi
[[ -x $BIN ]] || die "no binary at $BIN"
if [[ ! -x $PY ]]; then
    log "creating python venv at $VENV"
    if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
        apt-get update -qq >/dev/null && apt-get install -y -qq python3-venv >/dev/null
        rm -rf "$VENV"
        python3 -m venv "$VENV"
    fi
fi
if ! "$PY" -c 'import duckdb, sys; sys.exit(duckdb.__version__ != sys.argv[1])' "$DUCKDB_VERSION" 2>/dev/null; then
    log "pip install duckdb==$DUCKDB_VERSION"
    "$PY" -m pip install --quiet --disable-pip-version-check "duckdb==$DUCKDB_VERSION"
fi

# --- 2. Traffic ----------------------------------------------------------------------------
# generate DIR FLAGS...: writes DIR/{assignments,outcomes}.jsonl unless DIR holds files made
# with the same flags by the same generator source.
generate() {
    local dir=$1
    shift
    local params
    params="$* generator=$({ sha256sum src/traffic.rs 2>/dev/null || echo unknown; } | cut -c1-16)"
    if [[ -f $dir/params && -f $dir/assignments.jsonl && -f $dir/outcomes.jsonl ]] &&
        [[ $(cat "$dir/params") == "$params" ]]; then
        log "reusing traffic in $dir"
        return
    fi
    log "generating traffic into $dir: $*"
    mkdir -p "$dir"
    rm -f "$dir/params"
    if ! "$BIN" generate --assignments-out "$dir/assignments.jsonl" --outcomes-out "$dir/outcomes.jsonl" "$@" \
        >"$dir/summary.json" 2>"$dir/generate.log"; then
        tail -n 20 "$dir/generate.log" >&2
        die "banditflow generate failed"
    fi
    printf '%s\n' "$params" >"$dir/params"
}

MAIN=$BENCH_DIR/traffic
generate "$MAIN" --count "$COUNT" --entities "$ENTITIES" --arms "$ARMS" --rate "$RATE" --seed "$SEED" \
    --duration-ms "$DURATION_MS" --attribution-ms "$ATTRIBUTION_MS" --disorder-ms "$DISORDER_MS" \
    --duplicates "$DUPLICATES"
A_LINES=$(lines "$MAIN/assignments.jsonl")
O_LINES=$(lines "$MAIN/outcomes.jsonl")
EVENTS=$((A_LINES + O_LINES))

# --- Timing ----------------------------------------------------------------------------------
# timed NAME COMMAND...: runs COMMAND under /usr/bin/time -v (its stdout to $OUT/NAME.stdout,
# stderr to $OUT/NAME.log); sets WALL (seconds) and RSS_KB (peak resident set).
timed() {
    local name=$1
    shift
    if ! /usr/bin/time -v -o "$OUT/$name.time" "$@" >"$OUT/$name.stdout" 2>"$OUT/$name.log"; then
        log "$name failed: $*"
        tail -n 20 "$OUT/$name.log" >&2
        exit 1
    fi
    # "Elapsed (wall clock) time (h:mm:ss or m:ss): 0:02.31"
    WALL=$(awk '/Elapsed \(wall clock\)/ {
                n = split($NF, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.2f", s }' \
        "$OUT/$name.time")
    RSS_KB=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$OUT/$name.time")
}

replay() { # replay NAME DIR WORKERS
    timed "$1" "$BIN" replay --dataflow "$DATAFLOW" --assignments "$2/assignments.jsonl" \
        --outcomes "$2/outcomes.jsonl" --workers "$3" --out "$OUT/$1.weights.jsonl"
}

# --- 3. banditflow replay ------------------------------------------------------------------
declare -A BF_WALL BF_RSS
WEIGHT_FILES=()
for w in $WORKERS; do
    log "replay --workers $w ($EVENTS events)"
    replay "replay-w$w" "$MAIN" "$w"
    BF_WALL[$w]=$WALL
    BF_RSS[$w]=$RSS_KB
    WEIGHT_FILES+=(--weights "$OUT/replay-w$w.weights.jsonl")
done

# --- 4. DuckDB -----------------------------------------------------------------------------
log "duckdb: final-tick counts"
timed duckdb "$PY" "$DUCKDB_SCRIPT" counts --assignments "$MAIN/assignments.jsonl" \
    --outcomes "$MAIN/outcomes.jsonl" --tick-ms "$TICK_MS" --window-ms "$WINDOW_MS" \
    --attribution-ms "$ATTRIBUTION_MS" --out "$OUT/duckdb-counts.jsonl"
DUCK_JSON=$(cat "$OUT/duckdb.stdout")
DUCK_SECONDS=$(json_field seconds <<<"$DUCK_JSON")
DUCK_THREADS=$(json_field threads <<<"$DUCK_JSON")
DUCK_AS_OF=$(json_field as_of <<<"$DUCK_JSON")
DUCK_WALL=$WALL
DUCK_RSS=$RSS_KB

# --- 5. Cross-check --------------------------------------------------------------------------
log "cross-checking banditflow against duckdb"
set +e
"$PY" "$DUCKDB_SCRIPT" check --assignments "$MAIN/assignments.jsonl" --outcomes "$MAIN/outcomes.jsonl" \
    --tick-ms "$TICK_MS" --window-ms "$WINDOW_MS" --attribution-ms "$ATTRIBUTION_MS" \
    --prior-alpha "$PRIOR_ALPHA" --prior-beta "$PRIOR_BETA" "${WEIGHT_FILES[@]}" \
    >"$OUT/check.json" 2>"$OUT/check.log"
CHECK_STATUS=$?
set -e
if [[ $CHECK_STATUS -gt 1 || ! -s $OUT/check.json ]]; then
    tail -n 20 "$OUT/check.log" >&2
    die "the cross-check itself failed"
fi
MISMATCHES=$(json_field mismatches <"$OUT/check.json")
CHECK_DETAIL=$("$PY" - "$OUT/check.json" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
for f in report["files"]:
    print(f"- `{f['path'].rsplit('/', 1)[-1]}`: {f['records']} records, {f['entities']} entities, "
          f"last records checked at their own as_of: {f['last_record_mismatches']} mismatches; "
          f"records in force at as_of {f['checked_as_of']}: {f['in_force_mismatches']} mismatches; "
          f"record-invariant violations: {f['record_violations']}")
print(f"- determinism (same records for every worker count, computed_at aside): "
      f"{report['determinism_mismatches']} entities differ")
EOF
)
if [[ $MISMATCHES != 0 ]]; then
    log "MISMATCHES: $MISMATCHES (details in $OUT/check.log):"
    head -n 20 "$OUT/check.log" >&2
fi

# --- 6. Memory per pending assignment --------------------------------------------------------
generate "$BENCH_DIR/pending-big" --count "$PENDING_COUNT" --duration-ms "$PENDING_DURATION_MS" --rate 0 \
    --entities "$ENTITIES" --arms "$ARMS" --seed "$SEED"
generate "$BENCH_DIR/pending-small" --count "$PENDING_SMALL" --duration-ms "$PENDING_DURATION_MS" --rate 0 \
    --entities "$ENTITIES" --arms "$ARMS" --seed "$SEED"
log "replay of $PENDING_COUNT pending assignments"
replay pending-big "$BENCH_DIR/pending-big" 1
RSS_BIG=$RSS_KB
replay pending-small "$BENCH_DIR/pending-small" 1
RSS_SMALL=$RSS_KB
BYTES_PER_PENDING=$(calc %.1f "($RSS_BIG - $RSS_SMALL) * 1024 / ($PENDING_COUNT - $PENDING_SMALL)")

# --- 7. Results ------------------------------------------------------------------------------
mib() { calc %.1f "$1 / 1024"; }
eps() { calc %.0f "$EVENTS / $1"; }
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
REV=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $REV != unknown && -n $(git status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    REV="$REV (modified)"
fi
DUCK_EPS=$(eps "$DUCK_SECONDS")

# --- 8. criterion: one entity's weights for K arms ---------------------------------------------
CRITERION=""
if [[ ${BENCH_CRITERION:-1} == 1 ]]; then
    log "criterion: entity_weights (cargo bench --bench weights)"
    cargo bench --quiet --bench weights >"$OUT/criterion.log" 2>&1 || die "cargo bench failed (see $OUT/criterion.log)"
    CRITERION=$(grep -E '^entity_weights/[^ ]+ +time:' "$OUT/criterion.log" |
        sed -E 's/^entity_weights\/([^ ]+) +time: +\[(.*)\]/- K=\1: \2/')
fi

{
    echo "### Replay benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), rev $REV"
    echo
    echo "Machine: $(nproc) cores, $MEM, ${CPU:-unknown CPU}. Dataflow \`$DATAFLOW\`" \
        "(tick ${TICK_MS} ms, window ${WINDOW_MS} ms, attribution ${ATTRIBUTION_MS} ms)."
    echo "Traffic: $COUNT assignments over ${DURATION_MS} ms, $ENTITIES entities x $ARMS arms, rate $RATE," \
        "seed $SEED, disorder ${DISORDER_MS} ms, duplicates $DUPLICATES: $A_LINES assignment lines +" \
        "$O_LINES outcome lines = $EVENTS events."
    echo
    echo "| run | wall s | events/s | peak RSS MiB |"
    echo "|---|---:|---:|---:|"
    for w in $WORKERS; do
        echo "| banditflow replay, $w worker(s) | ${BF_WALL[$w]} | $(eps "${BF_WALL[$w]}") | $(mib "${BF_RSS[$w]}") |"
    done
    echo "| DuckDB $(json_field duckdb <<<"$DUCK_JSON"), final tick only, $DUCK_THREADS threads (load + query; process $DUCK_WALL s) | $DUCK_SECONDS | $DUCK_EPS | $(mib "$DUCK_RSS") |"
    echo
    for w in $WORKERS; do
        echo "- banditflow ($w worker(s)) / DuckDB events/s: $(calc %.2f "$DUCK_SECONDS / ${BF_WALL[$w]}")"
    done
    echo "- Memory per pending assignment: $BYTES_PER_PENDING bytes (peak RSS $(mib "$RSS_BIG") MiB with" \
        "$PENDING_COUNT pending vs $(mib "$RSS_SMALL") MiB with $PENDING_SMALL, 1 worker)"
    echo "- Cross-check against DuckDB (final as_of $DUCK_AS_OF): $MISMATCHES mismatches"
    echo "$CHECK_DETAIL"
    echo
    if [[ -n $CRITERION ]]; then
        echo
        echo "Time to compute one entity's weights (\`p_best\` + policy), criterion \`cargo bench --bench weights\` [low estimate high]:"
        echo
        echo "$CRITERION"
    fi
    echo
    echo "Reproduce: \`BENCH_COUNT=$COUNT BENCH_SEED=$SEED BENCH_DISORDER_MS=$DISORDER_MS BENCH_DUPLICATES=$DUPLICATES scripts/bench.sh\`"
} >"$BENCH_DIR/results.md"

# --- 9. The live worker end to end (tansu + redis-server) ------------------------------------
if [[ ${BENCH_LIVE:-1} == 1 ]]; then
    log "live worker end to end (scripts/bench-live.sh)"
    { echo; scripts/bench-live.sh 2>"$OUT/live.log"; } >>"$BENCH_DIR/results.md" || die "live benchmark failed (see $OUT/live.log)"
fi
# --- 10. Restart from a checkpoint vs rebuild (tansu + redis-server) ---------------------------
if [[ ${BENCH_RECOVERY:-1} == 1 ]]; then
    log "restart from a checkpoint vs rebuild (cargo bench --bench recovery)"
    source scripts/services.sh
    ensure_services
    { echo; cargo bench --quiet --bench recovery -- "${BENCH_RECOVERY_COUNT:-5000000}" 2>"$OUT/recovery.log"; } >>"$BENCH_DIR/results.md" ||
        die "recovery benchmark failed (see $OUT/recovery.log)"
fi
# --- 11. Before and after: this build against an earlier revision, same traffic, same run ---
if [[ -n ${BENCH_BASE_REV:-} ]]; then
    # By commit, so a moving name (HEAD) never reuses a stale worktree.
    BASE_COMMIT=$(git rev-parse --short "$BENCH_BASE_REV^{commit}") || die "no revision $BENCH_BASE_REV"
    BASE_NAME=$BASE_COMMIT${BENCH_BASE_PATCH:+-$(basename "$BENCH_BASE_PATCH" .patch)}
    BASE_DIR=$BENCH_DIR/base-$BASE_NAME
    BASE_BIN=$BENCH_DIR/base-target/release/banditflow
    if [[ ! -d $BASE_DIR ]]; then
        log "checking out $BENCH_BASE_REV into $BASE_DIR"
        git worktree add --force --detach "$BASE_DIR" "$BASE_COMMIT" >/dev/null
        if [[ -n ${BENCH_BASE_PATCH:-} ]]; then
            log "applying $BENCH_BASE_PATCH"
            git -C "$BASE_DIR" apply "$ROOT/$BENCH_BASE_PATCH" ||
                die "$BENCH_BASE_PATCH does not apply to $BENCH_BASE_REV (refresh it against that revision)"
        fi
    fi
    log "building $BENCH_BASE_REV (cargo build --release, target $BENCH_DIR/base-target)"
    (cd "$BASE_DIR" && CARGO_TARGET_DIR=$BENCH_DIR/base-target cargo build --release --quiet --bin banditflow) ||
        die "building $BENCH_BASE_REV failed"
    RUNS=${BENCH_BASE_RUNS:-5}
    declare -a AFTER_WALL BEFORE_WALL RATIOS
    for ((i = 1; i <= RUNS; i++)); do
        # In turn, so a drift of the machine's speed hits both; the ratio is taken pair by pair.
        log "before/after pair $i of $RUNS"
        BIN=$BASE_BIN replay before "$MAIN" 1
        BEFORE_WALL+=("$WALL")
        BEFORE_RSS=$RSS_KB
        replay after "$MAIN" 1
        AFTER_WALL+=("$WALL")
        AFTER_RSS=$RSS_KB
        RATIOS+=("$(calc %.3f "$WALL / ${BEFORE_WALL[-1]}")")
    done
    median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
    STATS=""
    if [[ -f $OUT/criterion.log ]]; then
        # Criterion puts a long name on a line of its own, its "time:" on the next.
        STATS=$(awk '/^record_statistics\// { name = $1; sub(/^record_statistics\//, "", name) }
                     name != "" && /time:/ { sub(/.*time: +\[/, ""); sub(/\].*/, ""); print "- " name ": " $0; name = "" }' \
            "$OUT/criterion.log")
    fi
    {
        echo
        echo "### Before and after: rev $REV against $BASE_NAME, same traffic, $RUNS pairs in turn"
        echo
        echo "| | wall s (median) | events/s | peak RSS MiB (last) |"
        echo "|---|---:|---:|---:|"
        echo "| before ($BASE_NAME) | $(median "${BEFORE_WALL[@]}") | $(eps "$(median "${BEFORE_WALL[@]}")") | $(mib "$BEFORE_RSS") |"
        echo "| after ($REV) | $(median "${AFTER_WALL[@]}") | $(eps "$(median "${AFTER_WALL[@]}")") | $(mib "$AFTER_RSS") |"
        echo
        echo "- after / before wall, pair by pair: ${RATIOS[*]}; median $(median "${RATIOS[@]}")"
        if [[ -n $STATS ]]; then
            echo "- One record's statistics at K arms, criterion \`cargo bench --bench weights\` (record_statistics) [low estimate high]:"
            echo
            echo "$STATS"
        fi
    } >>"$BENCH_DIR/results.md"
fi
# --- 12. The closed-loop simulator ------------------------------------------------------------
if [[ ${BENCH_SIMULATE:-1} == 1 ]]; then
    log "simulate dataflows/scenarios/bench.toml"
    timed simulate "$BIN" simulate --scenario dataflows/scenarios/bench.toml --out "$OUT/simulate.json"
    SIM_SUMMARY=$(grep -E '^simulate: [0-9]+ steps' "$OUT/simulate.log" || true)
    {
        echo
        echo "### The closed-loop simulator"
        echo
        echo "\`banditflow simulate --scenario dataflows/scenarios/bench.toml\` (1,000,000 steps x 20 reps of 10 arms, refresh every 100 steps, all cores): wall $WALL s, peak RSS $(mib "$RSS_KB") MiB. ${SIM_SUMMARY#simulate: }"
    } >>"$BENCH_DIR/results.md"
fi
# --- 13. The HTML report at scale ---------------------------------------------------------------
if [[ ${BENCH_REPORT:-1} == 1 ]]; then
    log "report: 100 entities x 10,000 records (scripts/bench-report.sh)"
    {
        echo
        echo "### The HTML report at scale (scripts/bench-report.sh)"
        echo
        BENCH_DIR=$BENCH_DIR BANDITFLOW_BIN=$BIN scripts/bench-report.sh 2>&1 | grep -E '^(report|page|chromium)' | sed 's/^/- /'
    } >>"$BENCH_DIR/results.md"
fi
# --- 14. Serving: assign and banditflow serve ----------------------------------------------------
if [[ ${BENCH_SERVING:-1} == 1 ]]; then
    log "serving (scripts/bench-serving.sh)"
    { echo; BENCH_DIR=$BENCH_DIR BANDITFLOW_BIN=$BIN scripts/bench-serving.sh 2>"$OUT/serving.log"; } >>"$BENCH_DIR/results.md" ||
        die "serving benchmark failed (see $OUT/serving.log)"
fi
# --- 15. Offline evaluation: export and evaluate on 10M assignments ----------------------------
if [[ ${BENCH_EVALUATION:-1} == 1 ]]; then
    log "offline evaluation (scripts/bench-evaluation.sh)"
    { echo; BENCH_DIR=$BENCH_DIR BANDITFLOW_BIN=$BIN scripts/bench-evaluation.sh 2>"$OUT/evaluation.log"; } >>"$BENCH_DIR/results.md" ||
        die "offline evaluation benchmark failed (see $OUT/evaluation.log)"
fi
cat "$BENCH_DIR/results.md"

[[ $MISMATCHES == 0 ]] || exit 1
