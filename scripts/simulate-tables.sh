#!/usr/bin/env bash
# Produces the README's "Simulate" tables and plots: every bundled scenario's final regret
# (weights, uniform split, oracle at each refresh), and the refresh sweep (regret against
# refresh_every from 10 to 100,000 steps). Writes docs/simulate/*.svg and *.json and prints
# the two markdown tables.
#
# Usage (from anywhere): scripts/simulate-tables.sh      (about 3 minutes on 2 cores)
# Environment: BANDITFLOW_BIN (default target/release/banditflow; built if missing),
#              SIM_REFRESHES (default 10,100,1000,10000,100000).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${BANDITFLOW_BIN:-target/release/banditflow}
REFRESHES=${SIM_REFRESHES:-10,100,1000,10000,100000}
OUT=docs/simulate
mkdir -p "$OUT"
if [[ ! -x $BIN ]]; then
    cargo build --release --quiet
fi
log() { echo "[simulate-tables] $*" >&2; }

for s in stationary churn drift; do
    log "scenario $s"
    "$BIN" simulate --scenario "dataflows/scenarios/$s.toml" --quiet --out "$OUT/$s.json" --plot "$OUT/$s.svg"
done
log "refresh sweep ($REFRESHES) on dataflows/scenarios/refresh.toml"
"$BIN" simulate --scenario dataflows/scenarios/refresh.toml --refresh-sweep "$REFRESHES" --quiet \
    --out "$OUT/refresh-sweep.json" --plot "$OUT/refresh-sweep.svg"

python3 - "$OUT" <<'PY'
import json, math, sys
out = sys.argv[1]
def final(p):
    v = p["final_regret"]; n = len(v); m = sum(v) / n
    se = math.sqrt(sum((x - m) ** 2 for x in v) / (n - 1) / n) if n > 1 else 0.0
    return m, se
print("| scenario | steps x reps | arms | weights | uniform split | oracle at refresh | weights / uniform |")
print("|---|---:|---:|---:|---:|---:|---:|")
for s in ["stationary", "churn", "drift"]:
    r = json.load(open(f"{out}/{s}.json"))
    (w, ws), (u, us), (o, os_) = final(r["weights"]), final(r["uniform"]), final(r["oracle"])
    print(f"| {s} | {r['total_steps']:,} x {r['reps']} | {r['arms']} | {w:,.0f} ± {ws:,.0f} | {u:,.0f} ± {us:,.0f} | {o:,.0f} ± {os_:,.0f} | {w / u:.3f} |")
print()
sweep = json.load(open(f"{out}/refresh-sweep.json"))
print(f"Refresh sweep: `{sweep['scenario']}`, {sweep['total_steps']:,} steps x {sweep['reps']} reps.")
print()
print("| refresh every (steps) | weights | uniform split | oracle at refresh | weights / uniform |")
print("|---:|---:|---:|---:|---:|")
for p in sweep["points"]:
    (w, ws), (u, us), (o, os_) = p["weights"], p["uniform"], p["oracle"]
    print(f"| {p['refresh_every']:,} | {w:,.0f} ± {ws:,.0f} | {u:,.0f} ± {us:,.0f} | {o:,.0f} ± {os_:,.0f} | {w / u:.3f} |")
PY
