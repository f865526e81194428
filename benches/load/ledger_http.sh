#!/usr/bin/env bash
# The ledger's own routes over HTTP on a 1,000,000-event data directory (issue "The ledger
# over HTTP", docs/BENCHMARKS.md): starts `audit-ledger serve` on DIR (made with the
# fixtures generator and its projections brought up to date, as benches/load/replay.sh
# does, if DIR has no store yet), signs in as an auditor, and times with curl, RUNS
# times each (default 10), end to end on loopback:
#   - an as-of class query: ValidationLog where result = Fail, newest first, limit 100,
#     as of a past instant;
#   - the same class as of that instant, whole (limit 10,000, the most one answer holds);
#   - a record's history (the ValidationLog with the most events in one day's report);
#   - the streamed export of gxp (events/s).
# Prints each run and the medians.
#
#   benches/load/ledger_http.sh [RUNS] [DIR]
set -euo pipefail
RUNS=${1:-10}
DIR=${2:-/tmp/replay-load}
PORT=18089
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
cargo build --release -q -p api -p fixtures --bin audit-ledger --bin generate
cargo build --release -q -p benches --example project_dir
AL="$ROOT/target/release/audit-ledger"
if [ ! -d "$DIR/store" ]; then
  "$ROOT/target/release/generate" --data-dir "$DIR" --events 1000000 --days 90 --seed 1
  "$ROOT/target/release/examples/project_dir" "$DIR"
fi
PASS=bench-auditor-password
echo "$PASS" | "$AL" --data-dir "$DIR" user add --app gxp --username bench.auditor --role auditor >/dev/null 2>&1 || true
"$AL" --data-dir "$DIR" serve --bind 127.0.0.1:$PORT --checkpoint-every 0 > "$DIR.serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 600); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break
  sleep 0.1
done
BASE="http://127.0.0.1:$PORT"
TOKEN=$(curl -sf -H 'X-Parse-Application-Id: gxp' -d "{\"username\":\"bench.auditor\",\"password\":\"$PASS\"}" \
  "$BASE/parse/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sessionToken"])')
H="Authorization: Bearer $TOKEN"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
run() { # name, URL
  local name=$1 url=$2 times=() t
  curl -sf -H "$H" -o /dev/null "$url"   # warm-up, not counted
  for _ in $(seq "$RUNS"); do
    t=$(curl -sf -H "$H" -o /dev/null -w '%{time_total}' "$url")
    times+=("$t")
  done
  printf '%-34s median %.4f s  runs %s\n' "$name" "$(printf '%s\n' "${times[@]}" | median)" "${times[*]}"
}
AT="2026-11-15T12:00:00Z"
Q=$(python3 -c 'import urllib.parse; print(urllib.parse.quote("{\"result\":\"Fail\"}"))')
run "as-of query (where/order/limit 100)" "$BASE/ledger/gxp/classes/ValidationLog?where=$Q&order=-executedAt&limit=100&asOf=$AT"
run "as-of class, 10,000 records" "$BASE/ledger/gxp/classes/ValidationLog?limit=10000&asOf=$AT"
# The ValidationLog with the most events in one busy day's report: a long history.
ID=$(curl -sf -H "$H" "$BASE/ledger/gxp/day/2026-10-15" | python3 -c '
import json, sys
groups = [g for g in json.load(sys.stdin)["records"] if g["class"] == "ValidationLog"]
print(max(groups, key=lambda g: len(g["events"]))["object_id"])')
EVENTS=$(curl -sf -H "$H" "$BASE/ledger/gxp/history/ValidationLog/$ID" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["events"]))')
echo "history of ValidationLog $ID: $EVENTS events"
run "history" "$BASE/ledger/gxp/history/ValidationLog/$ID"
HEAD=$(curl -sf "$BASE/health" >/dev/null; curl -sf -H "$H" "$BASE/ledger/gxp/events?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["head"])')
times=()
for _ in $(seq 3); do
  times+=("$(curl -sf -H "$H" -o /dev/null -w '%{time_total}' "$BASE/ledger/gxp/export")")
done
m=$(printf '%s\n' "${times[@]}" | median)
printf '%-34s median %.2f s  runs %s  = %.0f events/s (%s events)\n' "export of gxp" "$m" "${times[*]}" "$(echo "$HEAD / $m" | bc -l)" "$HEAD"
