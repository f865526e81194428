#!/usr/bin/env bash
# Side by side (issue "Proof of claims", SPEC §8): the same bounded workload, with one
# load generator (wrk, 2 threads, 64 connections, SECS seconds per load, loopback),
# against
#   - Parse Server (npm `parse-server` 7, installed here in benches/peer/node_modules) on
#     PostgreSQL 15 (Debian package; a fresh cluster in a temporary directory, default
#     fsync and synchronous_commit: durable), and
#   - audit-ledger on its embedded store (release build, fresh data directory; every
#     create acknowledged only once fsynced),
# both with the GxP ValidationLog class, a "manager" account and the same 2,000 seeded
# records (1 in 10 "Fail"). Loads: log in; create ValidationLogs; the query
# where {"result":"Fail"} order -executedAt limit 10; a get by objectId. Each side runs
# alone (the other stopped, the disk synced). Prints each figure for both and the ratio.
#
#   benches/peer/run.sh [SECS]      (default 15)
#   RECORD=1 benches/peer/run.sh    also appends the figures, with the date, the machine
#                                   and the commit, to docs/BENCHMARKS.md
set -euo pipefail
SECS=${1:-15}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PEER="$ROOT/benches/peer"
PG_PORT=${PG_PORT:-15433}
PARSE_PORT=${PARSE_PORT:-13371}
LEDGER_PORT=${LEDGER_PORT:-18371}
PASS=peer-benchmark-password
say() { printf 'peer: %s\n' "$*" >&2; }

need() { command -v "$1" >/dev/null || { say "installing $2"; apt-get install -y "$2" >&2 || { apt-get update >&2 && apt-get install -y "$2" >&2; }; }; }
need wrk wrk
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
[ -x "$PG_BIN/initdb" ] || { need psql postgresql; PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1); }
if [ ! -x "$PEER/node_modules/.bin/parse-server" ]; then
  say "installing parse-server (npm)"
  (cd "$PEER" && timeout 600 npm install --no-audit --no-fund --loglevel=error >&2)
fi
(cd "$ROOT" && cargo build --release -q -p api)

WORK=$(mktemp -d)
chown postgres "$WORK" 2>/dev/null || true
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/pg" -m fast stop >/dev/null 2>&1 || true
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# PostgreSQL: a fresh cluster, default durability settings.
runuser -u postgres -- "$PG_BIN/initdb" -D "$WORK/pg" --auth=trust -U postgres >/dev/null
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/pg" -o "-p $PG_PORT -k $WORK -c listen_addresses=127.0.0.1" -l "$WORK/pg.log" start >/dev/null
for _ in $(seq 60); do "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$PG_PORT" >/dev/null 2>&1 && break; sleep 0.5; done
"$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres parse
say "PostgreSQL: fsync=$(psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc 'show fsync'), synchronous_commit=$(psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc 'show synchronous_commit')"

# Parse Server.
(cd "$PEER" && exec node_modules/.bin/parse-server --appId gxp --masterKey peer-master-key \
  --databaseURI "postgres://postgres@127.0.0.1:$PG_PORT/parse" --port "$PARSE_PORT" \
  --serverURL "http://127.0.0.1:$PARSE_PORT/parse" --mountPath /parse --logsFolder "$WORK/parse-logs") > "$WORK/parse.log" 2>&1 &
PIDS+=($!)
wait_for() {
  for _ in $(seq 240); do curl -sf "$1" >/dev/null && break; sleep 0.5; done
  curl -sf "$1" >/dev/null || { say "$1 does not answer"; tail -20 "$WORK"/*.log >&2; exit 1; }
}
wait_for "http://127.0.0.1:$PARSE_PORT/parse/health"
H_APP='X-Parse-Application-Id: gxp'
# The GxP schema and the manager on Parse Server.
curl -sf -X POST -H "$H_APP" -H 'X-Parse-Master-Key: peer-master-key' -H 'Content-Type: application/json' \
  -d '{"className":"ValidationLog","fields":{"protocolId":{"type":"String"},"testedSystem":{"type":"String"},"result":{"type":"String"},"executedAt":{"type":"Date"},"evidenceUrl":{"type":"String"}}}' \
  "http://127.0.0.1:$PARSE_PORT/parse/schemas/ValidationLog" >/dev/null
curl -sf -X POST -H "$H_APP" -H 'Content-Type: application/json' -d "{\"username\":\"manager\",\"password\":\"$PASS\"}" \
  "http://127.0.0.1:$PARSE_PORT/parse/users" >/dev/null

LOADS=$(cat <<'PY'
import json, subprocess, sys, urllib.request
name, port, password, secs, work = sys.argv[1:]

def call(base, method, path, token=None, body=None):
    req = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode())
    req.add_header("X-Parse-Application-Id", "gxp")
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Parse-Session-Token", token)
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"null")

def record(i):
    return {"protocolId": f"PQ-{i:05d}", "testedSystem": "LIMS",
            "result": "Fail" if i % 10 == 0 else "Pass",
            "executedAt": {"__type": "Date", "iso": f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:00:00.000Z"},
            "evidenceUrl": f"https://docs.example.org/evidence/pq-{i}.pdf"}

def wrk(url, lua, label):
    out = subprocess.run(["wrk", "-t2", "-c64", f"-d{secs}s", "--latency", "-s", lua, url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(next(l for l in out.splitlines() if l.startswith("Requests/sec")).split()[1])
    p50 = next(l.split()[1] for l in out.splitlines() if l.strip().startswith("50%"))
    p99 = next(l.split()[1] for l in out.splitlines() if l.strip().startswith("99%"))
    errors = next((l for l in out.splitlines() if "Non-2xx" in l or "Socket errors" in l), "")
    return rps, p50, p99, errors

base = f"http://127.0.0.1:{port}/parse"
token = call(base, "POST", "/login", body={"username": "manager", "password": password})["sessionToken"]
ids = [call(base, "POST", "/classes/ValidationLog", token, record(i))["objectId"] for i in range(2000)]
headers = f'wrk.headers["X-Parse-Application-Id"] = "gxp"\nwrk.headers["X-Parse-Session-Token"] = "{token}"\nwrk.headers["Content-Type"] = "application/json"\n'
create = f"{work}/create.lua"
open(create, "w").write(headers + 'wrk.method = "POST"\nwrk.body = ' + json.dumps(json.dumps(record(7))) + "\n")
plain = f"{work}/get.lua"
open(plain, "w").write(headers)
q = urllib.parse.urlencode({"where": json.dumps({"result": "Fail"}), "order": "-executedAt", "limit": 10})
r = {}
r["creates"] = wrk(f"{base}/classes/ValidationLog", create, "creates")
r["query"] = wrk(f"{base}/classes/ValidationLog?{q}", plain, "query")
r["get"] = wrk(f"{base}/classes/ValidationLog/{ids[1234]}", plain, "get")
for k, (rps, p50, p99, err) in r.items():
    print(f"{name:27} {k:8} {rps:10.0f} req/s  p50 {p50:>8}  p99 {p99:>8}  {err}", flush=True)
with open(f"{work}/results.json", "a") as f:
    f.write(json.dumps({"name": name, "rps": {k: v[0] for k, v in r.items()},
                        "p50": {k: v[1] for k, v in r.items()},
                        "p99": {k: v[2] for k, v in r.items()}}) + "\n")
PY
)
python3 -c "$LOADS" "Parse Server + PostgreSQL" "$PARSE_PORT" "$PASS" "$SECS" "$WORK"
# Each side runs alone: Parse Server and PostgreSQL are stopped (and the disk synced)
# before audit-ledger starts, so neither's background writes slow the other's fsyncs.
kill "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null || true
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/pg" -m fast stop >/dev/null
sync
# audit-ledger.
AL="$ROOT/target/release/audit-ledger"
echo "$PASS" | "$AL" --data-dir "$WORK/ledger" user add --app gxp --username manager --role manager >/dev/null
"$AL" --data-dir "$WORK/ledger" serve --bind "127.0.0.1:$LEDGER_PORT" --checkpoint-every 0 > "$WORK/ledger.log" 2>&1 &
PIDS+=($!)
wait_for "http://127.0.0.1:$LEDGER_PORT/health"
python3 -c "$LOADS" "audit-ledger" "$LEDGER_PORT" "$PASS" "$SECS" "$WORK"
python3 - "$WORK/results.json" <<'PY'
import json, sys
r = {x["name"]: x["rps"] for x in map(json.loads, open(sys.argv[1]))}
a, b = r["audit-ledger"], r["Parse Server + PostgreSQL"]
for k in ["creates", "query", "get"]:
    print(f"ratio {k:8} audit-ledger / Parse Server = {a[k] / b[k]:.1f}x")
PY
[ "${RECORD:-0}" = 1 ] || exit 0
python3 - "$WORK/results.json" "$ROOT/docs/BENCHMARKS.md" "$SECS" \
  "$(git -C "$ROOT" rev-parse --short HEAD)" "$(uname -r)" <<'PY'
import datetime, json, os, sys
results, out, secs, commit, kernel = sys.argv[1:]
rows = {x["name"]: x for x in map(json.loads, open(results))}
a, b = rows["audit-ledger"], rows["Parse Server + PostgreSQL"]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((int(l.split()[1]) // (1024 * 1024) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
lines = [
    "",
    f"### {datetime.date.today()} — `benches/peer/run.sh {secs}` (recorded by the script)",
    "",
    f"Machine: {os.cpu_count()} vCPUs ({cpu}), {mem} GiB, Linux {kernel}; commit `{commit}`.",
    "",
    "| load (64 connections) | Parse Server + PostgreSQL | audit-ledger | ratio |",
    "|---|---|---|---|",
]
for k in ["creates", "query", "get"]:
    lines.append(
        f"| {k} | {b['rps'][k]:,.0f} req/s (p50 {b['p50'][k]}, p99 {b['p99'][k]}) "
        f"| {a['rps'][k]:,.0f} req/s (p50 {a['p50'][k]}, p99 {a['p99'][k]}) "
        f"| {a['rps'][k] / b['rps'][k]:.1f}× |"
    )
with open(out, "a") as f:
    f.write("\n".join(lines) + "\n")
print(f"recorded in {out}")
PY
