#!/usr/bin/env bash
# Load runs against the real server (SPEC §8, issue "The server"): durable creates and a
# where + order + limit 10 query, each with 64 concurrent connections for a bounded time,
# using wrk (Debian package `wrk`). Starts `audit-ledger serve --demo` on a temporary data
# directory on loopback, logs in as the demo manager, runs both loads, prints wrk's
# summaries and the server's CPU time per request, stops the server.
#
#   benches/load/http.sh [SECONDS]        (default 15 s per run)
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-15}
PORT=${PORT:-18181}
if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)" >&2
  { apt-get install -y wrk >&2 || { apt-get update >&2 && apt-get install -y wrk >&2; }; } ||
    { echo "wrk is needed: apt-get install wrk" >&2; exit 2; }
fi
[ -n "${AUDIT_LEDGER_BIN:-}" ] || cargo build --release -p api >&2
BIN=${AUDIT_LEDGER_BIN:-target/release/audit-ledger}
DATA=$(mktemp -d)
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
$BIN --data-dir "$DATA" serve --demo --bind 127.0.0.1:$PORT >"$DATA.log" 2>&1 &
PID=$!
for _ in $(seq 1 120); do curl -sf localhost:$PORT/health >/dev/null && break; sleep 1; done
curl -sf localhost:$PORT/health >/dev/null || { echo "server did not start:"; cat "$DATA.log"; exit 1; }
TOKEN=$(curl -sf -H 'X-Parse-Application-Id: gxp' -H 'Content-Type: application/json' \
  -d '{"username":"manager","password":"audit-ledger-demo"}' localhost:$PORT/parse/login |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["sessionToken"])')
LUA=$(mktemp --suffix=.lua)
cat >"$LUA" <<LUA
wrk.method = "POST"
wrk.headers["X-Parse-Application-Id"] = "gxp"
wrk.headers["X-Parse-Session-Token"] = "$TOKEN"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"protocolId":"PQ-LOAD","testedSystem":"LIMS","result":"Pass","executedAt":{"__type":"Date","iso":"2026-11-20T10:00:00.000Z"},"evidenceUrl":"https://docs.example.org/evidence/pq-load.pdf"}'
done = function(summary, latency, requests)
  io.write(string.format("non-2xx or errors: %d\n", summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
# The server's CPU time (user + system, from /proc) over one wrk run, per request served.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
run_wrk() {
  local before out
  before=$(cpu_ticks)
  out=$(wrk "$@")
  echo "$out"
  python3 - "$before" "$(cpu_ticks)" "$(getconf CLK_TCK)" "$out" <<'PY'
import re, sys
before, after, hz, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
n = int(re.search(r"(\d+) requests in", out).group(1))
cpu = (after - before) / hz
print(f"server CPU: {cpu:.2f} s, {cpu / max(n, 1) * 1e6:.0f} us per request")
PY
}
echo "== POST /parse/classes/ValidationLog, 64 connections, ${SECS}s (each acknowledged durable)"
run_wrk -t2 -c64 -d${SECS}s --latency -s "$LUA" http://127.0.0.1:$PORT/parse/classes/ValidationLog
COUNT=$(curl -sf -G -H 'X-Parse-Application-Id: gxp' -H "X-Parse-Session-Token: $TOKEN" \
  --data-urlencode 'where={"protocolId":"PQ-LOAD"}' --data-urlencode 'limit=0' --data-urlencode 'count=1' \
  localhost:$PORT/parse/classes/ValidationLog)
echo "records created by the load, read back: $COUNT"
TOTAL=$(curl -sf -G -H 'X-Parse-Application-Id: gxp' -H "X-Parse-Session-Token: $TOKEN" \
  --data-urlencode 'limit=0' --data-urlencode 'count=1' localhost:$PORT/parse/classes/ValidationLog)
echo "ValidationLog records in the class for the query run: $TOTAL"
cat >"$LUA" <<LUA
wrk.headers["X-Parse-Application-Id"] = "gxp"
wrk.headers["X-Parse-Session-Token"] = "$TOKEN"
done = function(summary, latency, requests)
  io.write(string.format("non-2xx or errors: %d\n", summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
Q=$(python3 -c 'import urllib.parse,json; print(urllib.parse.urlencode({"where": json.dumps({"result": "Fail"}), "order": "-executedAt", "limit": 10}))')
echo "== GET /parse/classes/ValidationLog?$Q, 64 connections, ${SECS}s"
run_wrk -t2 -c64 -d${SECS}s --latency -s "$LUA" "http://127.0.0.1:$PORT/parse/classes/ValidationLog?$Q"
rm -f "$LUA"
