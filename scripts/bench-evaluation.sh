#!/usr/bin/env bash
# Offline evaluation at scale: 10,000,000 logged assignments (`banditflow generate`: 100
# entities x 4 arms over 7 days), replayed once for the weight records serving used; then
# `banditflow export` (propensities from the records in force) and `banditflow evaluate` (two
# candidates, a 2-day window stepped daily), each timed beside `banditflow replay` of the same
# traffic in the same run: the peer is the same inputs through the dataflow once. Prints a
# markdown section for BENCHMARKS.md.
#
# Usage: scripts/bench-evaluation.sh
# Environment: BENCH_DIR (default bench-data), BANDITFLOW_BIN (default target/release/banditflow),
#   BENCH_EVALUATION_COUNT (default 10000000).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BENCH_DIR=${BENCH_DIR:-bench-data}
BIN=${BANDITFLOW_BIN:-target/release/banditflow}
COUNT=${BENCH_EVALUATION_COUNT:-10000000}
DIR=$BENCH_DIR/evaluation
mkdir -p "$DIR"
[[ -x $BIN ]] || cargo build --release --quiet
log() { echo "[bench-evaluation] $*" >&2; }
JOB=dataflows/default.toml
# timed NAME CMD...: runs CMD, sets WALL (s) and RSS (MiB) from /usr/bin/time.
timed() {
    local name=$1
    shift
    /usr/bin/time -f "%e %M" -o "$DIR/$name.time" "$@" >"$DIR/$name.out" 2>"$DIR/$name.log" || {
        tail -n 20 "$DIR/$name.log" >&2
        exit 1
    }
    read -r WALL RSS_KB <"$DIR/$name.time"
    RSS=$((RSS_KB / 1024))
}
if [[ ! -s $DIR/assignments.jsonl || $(wc -l <"$DIR/assignments.jsonl") != "$COUNT" ]]; then
    log "generating $COUNT assignments"
    "$BIN" generate --count "$COUNT" --entities 100 --arms 4 --rate 0.05 --seed 3 --duration-ms 604800000 \
        --assignments-out "$DIR/assignments.jsonl" --outcomes-out "$DIR/outcomes.jsonl" >/dev/null
fi
OUTCOMES=$(wc -l <"$DIR/outcomes.jsonl")
sed 's/floor = 0.02/floor = 0.2/' "$JOB" >"$DIR/explore.toml"
grep -q 'floor = 0.2' "$DIR/explore.toml"
log "replay (the peer, and the weights serving used)"
timed replay "$BIN" replay --quiet --dataflow "$JOB" --assignments "$DIR/assignments.jsonl" --outcomes "$DIR/outcomes.jsonl" --out "$DIR/weights.jsonl"
REPLAY_WALL=$WALL REPLAY_RSS=$RSS
log "export"
timed export "$BIN" export --quiet --dataflow "$JOB" --assignments "$DIR/assignments.jsonl" --outcomes "$DIR/outcomes.jsonl" --weights "$DIR/weights.jsonl" --out "$DIR/dataset"
EXPORT_WALL=$WALL EXPORT_RSS=$RSS
ROWS=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['rows'])" "$DIR/dataset/manifest.json")
log "evaluate (two candidates)"
timed evaluate "$BIN" evaluate --quiet --dataset "$DIR/dataset" --candidate "$JOB" --candidate "$DIR/explore.toml" --window 2d --step 1d --format json --out "$DIR/evaluation.jsonl"
EVALUATE_WALL=$WALL EVALUATE_RSS=$RSS
WINDOWS=$(wc -l <"$DIR/evaluation.jsonl")
rate() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):,.0f}')" "$1" "$2"; }
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$1" "$2"; }
EVENTS=$((COUNT + OUTCOMES))
cat <<MD
### Offline evaluation at scale (scripts/bench-evaluation.sh)

$COUNT assignments and $OUTCOMES outcomes (\`banditflow generate\`, 100 entities x 4 arms, 7 days), \`$JOB\`; $ROWS rows exported; evaluation: 2 candidates, \`--window 2d --step 1d\`, $WINDOWS rows of output.

| command | wall s | rows/s | peak RSS MiB | wall / replay's |
|---|---:|---:|---:|---:|
| \`replay\` (the peer: $EVENTS events) | $REPLAY_WALL | $(rate "$EVENTS" "$REPLAY_WALL") events/s | $REPLAY_RSS | 1 |
| \`export --weights\` | $EXPORT_WALL | $(rate "$ROWS" "$EXPORT_WALL") | $EXPORT_RSS | $(ratio "$EXPORT_WALL" "$REPLAY_WALL") |
| \`evaluate\`, 2 candidates | $EVALUATE_WALL | $(rate "$((ROWS * 2))" "$EVALUATE_WALL") (row x candidate) | $EVALUATE_RSS | $(ratio "$EVALUATE_WALL" "$REPLAY_WALL") |
MD
