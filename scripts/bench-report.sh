#!/usr/bin/env bash
# The HTML report at scale: writes a synthetic weights file of 100 entities x 10,000 records
# (4 arms each, weights on a random walk), times `banditflow report` over it, and times
# headless Chromium opening the page (against an empty page, for the browser's own start).
#
# Usage: scripts/bench-report.sh      (needs python3 and chromium; ~2 GB in $BENCH_DIR)
# Environment: BENCH_DIR (default bench-data), BANDITFLOW_BIN (default target/release/banditflow).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BENCH_DIR=${BENCH_DIR:-bench-data}
BIN=${BANDITFLOW_BIN:-target/release/banditflow}
mkdir -p "$BENCH_DIR"
[[ -x $BIN ]] || cargo build --release --quiet
WEIGHTS=$BENCH_DIR/report-weights.jsonl
PAGE=$BENCH_DIR/report.html
if [[ ! -s $WEIGHTS ]]; then
    echo "[bench-report] writing $WEIGHTS" >&2
    python3 - "$WEIGHTS" <<'PY'
import json, random, sys
random.seed(1)
with open(sys.argv[1], "w") as f:
    for e in range(100):
        ws = [0.25] * 4
        for k in range(10000):
            ws = [max(0.01, w + random.gauss(0, 0.01)) for w in ws]
            s = sum(ws); ws = [w / s for w in ws]
            arms = []
            for a in range(4):
                m = 0.05 + 0.01 * a + random.gauss(0, 0.002)
                arms.append({"arm_id": f"arm-{a}", "weight": ws[a], "p_best": ws[a], "alpha": 1.0 + k + a, "beta": 1.0 + 9 * k,
                             "trials": 10 * k + a, "successes": k + a, "mean": m, "ci95": [m - 0.01, m + 0.01], "expected_loss": 0.0,
                             "vs_control": None, "state": "exploring"})
            as_of = 1767225600000 + k * 60000 + 59999
            f.write(json.dumps({"entity_id": f"entity-{e:03d}", "version": as_of, "as_of": as_of, "computed_at": as_of, "status": "adaptive",
                                "arms": arms, "chi_square": {"statistic": 0.0, "dof": 3, "p_value": 1.0},
                                "srm": {"statistic": 0.0, "dof": 3, "p_value": 1.0, "flagged": False, "matched": 0, "unmatched": 0},
                                "dataflow": "bench", "schema_version": 2}) + "\n")
PY
fi
chrome() { chromium --headless --no-sandbox --disable-gpu --disable-background-networking --no-first-run \
    --user-data-dir="$(mktemp -d)" --window-size=1000,1400 --screenshot="$BENCH_DIR/report.png" "$1" >/dev/null 2>&1; }
/usr/bin/time -f "report: wall %e s, peak RSS %M KB" "$BIN" report --weights "$WEIGHTS" --out "$PAGE"
echo "page: $(stat -c %s "$PAGE") bytes"
for run in 1 2 3; do
    TIMEFORMAT="chromium, the report (run $run): wall %R s"
    time chrome "file://$(realpath "$PAGE")"
    TIMEFORMAT="chromium, an empty page (run $run): wall %R s"
    time chrome about:blank
done
