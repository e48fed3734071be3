#!/usr/bin/env bash
# Serving benchmark (issue 8): `cdp serve` (gRPC) vs Feast 0.67's feature
# server (`feast serve`: HTTP, SQLite online store) on the same CUSTOMERS
# customers (default 100,000) x the first 50 numeric features, in one run,
# on loopback, with client and servers sharing this machine. Prints one
# table (requests, errors, requests/s, p50 / p99 / p99.9 / max latency,
# Feast/cdp ratios, the issue's goals) and writes it to
# bench/results/serve-<timestamp>.txt, the raw JSON lines beside it.
#
#   usage: bench/serve.sh [CUSTOMERS]
#
# One load generator for both sides, crates/cdp-server/examples/load.rs:
# open loop on a fixed schedule (latency from each request's due time, so
# no coordinated omission) or closed loop for the most requests/s; exact
# percentiles over every measured request. Each run: WARMUP (3) s, then
# DURATION (20) s measured.
#
#   cdp    GetOnlineFeatures 1 entity x 50 features   at RATE1 (10,000)/s  goal p99 < 1 ms
#   cdp    GetOnlineFeatures 100 entities x 50         at RATE100 (500)/s   goal p99 < 3 ms
#   cdp    ScoreOffers 1 customer, all eligible offers with reasons
#                                                      at RATE_SCORE (1,000)/s  goal p99 < 2 ms
#   both   1 entity at FEAST_RATE1 (200)/s and 100 entities at FEAST_RATE100
#          (5)/s: rates Feast sustains, for like-for-like latencies
#   both   1 and 100 entities, closed loop, CONCURRENCY (16) callers
#
# cdp gets 4 HTTP/2 connections; Feast runs under gunicorn with
# FEAST_WORKERS (2) workers, no access log and no worker recycling (its
# best showing here), over pooled keep-alive HTTP/1.1 connections. Feast's
# JSON answers are read but not parsed by the client; cdp's are decoded.
# Every request has a TIMEOUT_MS (10,000) deadline. The table also shows
# the CPU time per request of each server (all its processes) and of the
# load generator over the measured window.
#
# Work folder: $BENCH_DIR (default /tmp/cdp-bench-serve-CUSTOMERS) with
# raw/ and lake/ (generated with --days BENCH_DAYS (75), ingested, built
# weekly before the offers and on the last day, tagged, trained, scored and
# materialized once, then reused) and feast/ (the Feast repository,
# rebuilt only when the snapshot or features change). Feast lives in
# $FEAST_VENV (default ~/.cache/cdp/feast-venv, shared with
# feature_store.sh), created on first use. Every server started here is
# stopped on exit; only 127.0.0.1 is used.
set -euo pipefail
cd "$(dirname "$0")/.."
customers="${1:-100000}"
days="${BENCH_DAYS:-75}"
work="${BENCH_DIR:-/tmp/cdp-bench-serve-$customers}"
venv="${FEAST_VENV:-$HOME/.cache/cdp/feast-venv}"
duration="${DURATION:-20}"
warmup="${WARMUP:-3}"
rate1="${RATE1:-10000}"
rate100="${RATE100:-500}"
rate_score="${RATE_SCORE:-1000}"
feast_rate1="${FEAST_RATE1:-200}"
feast_rate100="${FEAST_RATE100:-5}"
concurrency="${CONCURRENCY:-16}"
feast_workers="${FEAST_WORKERS:-2}"
timeout_ms="${TIMEOUT_MS:-10000}"
raw="$work/raw"
lake="$work/lake"

log() { echo "serve.sh: $*" >&2; }

# --- tools -------------------------------------------------------------
if ! "$venv/bin/python" -c 'import feast, sys; sys.exit(not feast.__version__.startswith("0.67"))' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "feast==0.67.*"
fi
log "building release binaries"
source bench/lib.sh
release_build
cdp="$release/cdp"
load="$release/examples/load"

# --- the bench lake, made once -----------------------------------------
mkdir -p "$work" bench/results
if [ ! -s "$raw/_truth/counts.json" ]; then
  rm -rf "$raw" "$lake" "$work"/done-*
  log "generating $customers customers x $days days"
  "$cdp" gen --out "$raw" --customers "$customers" --days "$days" --seed 11 --dirty-rate 0.01 --json > "$work/gen.json"
fi
# Weekly snapshots from day 3 while offers can still have a known 30-day
# outcome (training needs the features of the day before each offer), and
# the last day, which is served.
mapfile -t snapshots < <(python3 -c 'import datetime, json, sys
g = json.load(open(sys.argv[1]))["generator"]
start = datetime.date.fromisoformat(g["start"])
last = start + datetime.timedelta(days=g["days"] - 1)
day = start + datetime.timedelta(days=2)
while day <= last - datetime.timedelta(days=37):
    print(day)
    day += datetime.timedelta(days=7)
print(last)' "$raw/_truth/counts.json")
as_of="${snapshots[-1]}"
step() { # step NAME COMMAND...: runs a lake step once
  local name="$1"
  shift
  if [ ! -e "$work/done-$name" ]; then
    log "cdp $name"
    "$@" --lake "$lake" --json > "$work/$name.json"
    touch "$work/done-$name"
  fi
}
step ingest "$cdp" ingest --source "$raw"
for d in "${snapshots[@]}"; do
  step "build-$d" "$cdp" build --as-of "$d"
done
for s in tag train score materialize; do
  step "$s" "$cdp" "$s" --as-of "$as_of"
done
if [ ! -s "$work/ids.csv" ]; then
  "$cdp" query --lake "$lake" --format csv \
    "SELECT unified_id FROM silver.customer_360 WHERE as_of = DATE '$as_of'" > "$work/ids.part"
  mv "$work/ids.part" "$work/ids.csv"
fi
features=$("$cdp" features list --json | python3 -c 'import json, sys
numeric = [f["name"] for f in json.load(sys.stdin) if f["type"] in ("int64", "float64", "decimal")]
print(",".join(numeric[:50]))')

log "Feast repository"
"$venv/bin/python" bench/serve_feast.py "$lake" "$as_of" "$features" "$work/feast" >&2

# --- servers -----------------------------------------------------------
cdp_pid=""
feast_pid=""
stop() { # SIGTERM to each server; both shut down gracefully within seconds
  local pid i
  for pid in $cdp_pid $feast_pid; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in $cdp_pid $feast_pid; do
    for i in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
}
trap stop EXIT
trap 'exit 130' INT TERM

"$cdp" apikey new --team bench --scopes features,scores --json > "$work/key.json"
key=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["key"])' "$work/key.json")
python3 - "$work/key.json" > "$work/cdp.toml" <<'EOF'
import json, sys
k = json.load(open(sys.argv[1]))
print('[server]\nmetrics_addr = "127.0.0.1:0"\n\n[[server.api_keys]]')
print(f'team = "{k["team"]}"\nkey_sha256 = "{k["key_sha256"]}"\nscopes = {json.dumps(k["scopes"])}')
EOF

log "starting cdp serve"
exec {cdp_out}< <(exec "$cdp" serve --config "$work/cdp.toml" --lake "$lake" \
  --addr 127.0.0.1:0 --json 2> "$work/cdp-serve.log")
cdp_pid=$!
# the first stdout line says where it listens, once it serves
if ! IFS= read -r -t 600 -u "$cdp_out" ready; then
  log "cdp serve did not become ready; see $work/cdp-serve.log"
  exit 1
fi
cat <&"$cdp_out" > /dev/null &
grpc=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["grpc"])' "$ready")
log "cdp serve ready on $grpc: $ready"

log "starting feast serve"
feast_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
exec {feast_err}< <(cd "$work/feast" && exec "$venv/bin/feast" serve -h 127.0.0.1 -p "$feast_port" \
  --workers "$feast_workers" --no-access-log --max-requests 0 2>&1)
feast_pid=$!
# gunicorn's workers each log "Application startup complete." when they serve
started=0
while [ "$started" -lt "$feast_workers" ] && IFS= read -r -t 300 -u "$feast_err" line; do
  echo "$line" >> "$work/feast-serve.log"
  case "$line" in *"Application startup complete"*) started=$((started + 1)) ;; esac
done
if [ "$started" -lt "$feast_workers" ]; then
  log "feast serve did not become ready; see $work/feast-serve.log"
  exit 1
fi
cat <&"$feast_err" >> "$work/feast-serve.log" &
log "feast serve ready on 127.0.0.1:$feast_port"

# --- load --------------------------------------------------------------
stamp=$(date +%Y%m%d-%H%M%S)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
runs="bench/results/serve-$stamp.jsonl"
: > "$runs"
run() { # run NAME LOAD-ARGS...: one measured run, one JSON line in $runs
  local name="$1"
  shift
  log "run $name"
  local line
  line=$("$load" --entities-file "$work/ids.csv" --features "$features" \
    --duration "$duration" --warmup "$warmup" --timeout-ms "$timeout_ms" "$@")
  python3 -c 'import json, sys; r = json.loads(sys.argv[2]); r["name"] = sys.argv[1]; print(json.dumps(r))' \
    "$name" "$line" >> "$runs"
}
feast_pids="$feast_pid,$(pgrep -d, -P "$feast_pid")" # gunicorn and its workers
cdp_args=(--target cdp --addr "$grpc" --key "$key" --connections 4 --server-pids "$cdp_pid")
feast_args=(--target feast --addr "127.0.0.1:$feast_port" --server-pids "$feast_pids")
run goal-1 "${cdp_args[@]}" --scenario features1 --rate "$rate1"
run goal-100 "${cdp_args[@]}" --scenario features100 --rate "$rate100"
run goal-score "${cdp_args[@]}" --scenario score --rate "$rate_score"
run cdp-1 "${cdp_args[@]}" --scenario features1 --rate "$feast_rate1"
run feast-1 "${feast_args[@]}" --scenario features1 --rate "$feast_rate1"
run cdp-100 "${cdp_args[@]}" --scenario features100 --rate "$feast_rate100"
run feast-100 "${feast_args[@]}" --scenario features100 --rate "$feast_rate100"
run cdp-1-max "${cdp_args[@]}" --scenario features1 --concurrency "$concurrency"
run feast-1-max "${feast_args[@]}" --scenario features1 --concurrency "$concurrency"
run cdp-100-max "${cdp_args[@]}" --scenario features100 --concurrency "$concurrency"
run feast-100-max "${feast_args[@]}" --scenario features100 --concurrency "$concurrency"

python3 bench/serve_report.py "$runs" --ready "$ready" \
  --loadavg "$load_before / $(cut -d' ' -f1-3 /proc/loadavg)" \
  --feast "$("$venv/bin/python" -c 'import feast; print(feast.__version__)')" \
  --feast-workers "$feast_workers" --commit "$(git rev-parse --short HEAD)" \
  | tee "bench/results/serve-$stamp.txt"
log "results: bench/results/serve-$stamp.txt (raw: $runs)"
