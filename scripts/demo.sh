#!/usr/bin/env bash
# The offline demo: a local coordinator and two CPU agents run examples/demo.yaml end to end,
# then the leaderboard is printed and written to out/demo/report.{md,json,csv}, with the HTML
# leaderboard (index.html and its charts) beside them.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=target/release
OUT=${DEMO_OUT:-out/demo}
SWEEP=${DEMO_SWEEP:-examples/demo.yaml}
AGENTS=${DEMO_AGENTS:-2}

rm -rf "$OUT"
mkdir -p "$OUT"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

echo "==> starting the coordinator (state in $OUT/state, log in $OUT/coordinator.log)"
"$BIN/coordinator" serve --listen 127.0.0.1:0 --state "$OUT/state" --addr-file "$OUT/address" \
    >"$OUT/coordinator.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [[ -s "$OUT/address" ]] && break; sleep 0.1; done
[[ -s "$OUT/address" ]] || { echo "the coordinator did not start; see $OUT/coordinator.log" >&2; exit 1; }
URL="http://$(cat "$OUT/address")"
# The coordinator generated a bearer token into its state directory; agents and CLI present it.
export BEARD_TOKEN_FILE="$OUT/state/token"

# Two agents share this machine's cores: one libtorch thread each.
for i in $(seq 0 $((AGENTS - 1))); do
    echo "==> starting agent $i (log in $OUT/agent$i.log)"
    OMP_NUM_THREADS=1 "$BIN/agent" run --coordinator "$URL" --device cpu --work-dir "$OUT/agent$i" \
        --name "demo-agent-$i" >"$OUT/agent$i.log" 2>&1 &
    pids+=($!)
done

echo "==> submitting $SWEEP"
"$BIN/coordinator" submit "$SWEEP" --coordinator "$URL" --wait | tee "$OUT/submit.txt"
SWEEP_ID=$(awk '/^submitted/ {print $2; exit}' "$OUT/submit.txt")

"$BIN/coordinator" report "$SWEEP_ID" --coordinator "$URL" --format html --out "$OUT"
echo
cat "$OUT/report.md"
echo
echo "==> HTML leaderboard (sortable tables, charts; opens offline): $(realpath "$OUT/index.html")"
