#!/usr/bin/env bash
# The replay tool under load (issue "The replay tool", docs/BENCHMARKS.md): a 1,000,000-
# event data directory made by the fixtures generator, its projections brought up to date
# as a server leaves them, and its export; then, RUNS times each (default 5), the wall
# time of `ledger-replay` for:
#   - verify of the export, full and links-only (events/s over the whole file);
#   - verify of the data directory, full and links-only;
#   - `at` of the largest class (gxp ValidationLog, ~114k records) on the data directory,
#     start-up included, in each output format, written to a file.
# Prints each run and the medians. Reuses DIR (default /tmp/replay-load) when it holds a
# data directory already.
#
#   benches/load/replay.sh [RUNS] [DIR]
set -euo pipefail
RUNS=${1:-5}
DIR=${2:-/tmp/replay-load}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
cargo build --release -q -p replay-tool -p fixtures --bin ledger-replay --bin generate
cargo build --release -q -p benches --example project_dir
R="$ROOT/target/release/ledger-replay"
if [ ! -d "$DIR/store" ]; then
  "$ROOT/target/release/generate" --data-dir "$DIR" --events 1000000 --days 90 --seed 1
  "$ROOT/target/release/examples/project_dir" "$DIR"
fi
[ -f "$DIR.ndjson" ] || "$R" --data-dir "$DIR" export -o "$DIR.ndjson"
EVENTS=$(grep -c '^{"type":"event"' "$DIR.ndjson")
echo "log: $EVENTS events, export $(du -h "$DIR.ndjson" | cut -f1)"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
run() { # name, then the command
  local name=$1; shift
  local times=()
  for _ in $(seq "$RUNS"); do
    local s e
    s=$(date +%s.%N)
    "$@" > /dev/null
    e=$(date +%s.%N)
    times+=("$(echo "$e - $s" | bc)")
  done
  local m
  m=$(printf '%s\n' "${times[@]}" | median)
  printf '%-28s runs %s  median %.3f s' "$name" "${times[*]}" "$m"
  if [ "${PER_EVENT:-}" = 1 ]; then printf '  %.0f events/s' "$(echo "$EVENTS / $m" | bc -l)"; fi
  echo
}
PER_EVENT=1 run "verify export full" "$R" --export "$DIR.ndjson" verify
PER_EVENT=1 run "verify export links-only" "$R" --export "$DIR.ndjson" verify --links-only
PER_EVENT=1 run "verify data-dir full" "$R" --data-dir "$DIR" verify
PER_EVENT=1 run "verify data-dir links-only" "$R" --data-dir "$DIR" verify --links-only
for f in json csv table html; do
  run "at ValidationLog $f" "$R" --data-dir "$DIR" --app gxp --format "$f" at now --class ValidationLog -o "$DIR-at.$f"
done
echo "records: $(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(len(d[0]['classes'][0]['records']))" "$DIR-at.json")"
