#!/usr/bin/env bash
# Ballista scaling benchmark: `cdp build` of one generated bank (CUSTOMERS,
# default 200,000, × 90 days) in process, then on a Ballista cluster of 1, 2
# and 4 executors (`cdp cluster executor --tasks 2` each, one scheduler), all
# on this machine, release binary, each build under /usr/bin/time -v on its
# own copy of the ingested lake. Prints wall time, the client's peak RSS and
# the ratio to in-process, checks every cluster build's silver tables equal
# the in-process build's, and estimates the cluster a 50,000,000-customer
# night needs from the measured per-customer costs.
#
# On one 2-core machine more executors cannot be faster: the figures show
# Ballista's overhead (serialized plans, shuffle files, Flight fetches),
# not a speed-up. The estimate says so too.
#
#   bench/cluster.sh [CUSTOMERS]
set -euo pipefail
cd "$(dirname "$0")/.."
customers="${1:-200000}"
days=90
work="${BENCH_DIR:-/tmp/cdp-bench-cluster-$customers}"
mkdir -p "$work"
source bench/lib.sh
if [ -n "${CDP_BIN:-}" ]; then cdp="$CDP_BIN"; else release_build; cdp="$release/cdp"; fi

if [ ! -f "$work/lake.ok" ]; then
  echo "making a lake of $customers customers x $days days in $work (once)"
  rm -rf "$work/raw" "$work/lake"
  timed "gen" "$cdp" gen --out "$work/raw" --customers "$customers" --days "$days" --seed 1 --dirty-rate 0.01 --json
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["last_day"])' "$work/last.out" > "$work/as_of"
  timed "ingest" "$cdp" ingest --source "$work/raw" --lake "$work/lake" --json
  rm -rf "$work/raw"
  touch "$work/lake.ok"
fi
as_of=$(cat "$work/as_of")

pids=()
stop_cluster() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
trap stop_cluster EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# `start_cluster LAKE N`: a scheduler and N executors over LAKE; sets $engine
start_cluster() {
  local lake="$1" n="$2"
  "$cdp" cluster scheduler --lake "$lake" --addr 127.0.0.1:0 --min-executors "$n" --json \
    > "$work/scheduler.out" 2> "$work/scheduler.log" &
  pids+=($!)
  until [ -s "$work/scheduler.out" ]; do sleep 0.1; done
  local addr
  addr=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["scheduler"])' "$work/scheduler.out")
  for i in $(seq 1 "$n"); do
    mkdir -p "$work/exec-$i"
    "$cdp" cluster executor --lake "$lake" --scheduler "$addr" --tasks 2 \
      --flight-port "$(free_port)" --grpc-port "$(free_port)" --work-dir "$work/exec-$i" \
      2> "$work/executor-$i.log" &
    pids+=($!)
  done
  until curl -sf "http://$addr/readyz" > /dev/null; do sleep 0.2; done
  engine="ballista://$addr"
}

echo "cdp build as of $as_of over $customers customers x $days days (release binary, $(nproc) cores)"
results="$work/results.tsv"
: > "$results"
run_build() {
  local label="$1" lake="$2"; shift 2
  rm -rf "$lake"; cp -r "$work/lake" "$lake"
  timed "$label" "$cdp" build --as-of "$as_of" --lake "$lake" --json "$@"
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time.txt")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
  printf '%s\t%s\t%s\t%s\n' "$label" "$wall" "$rss" "$(tr -d '\n' < "$work/last.out")" >> "$results"
}
run_build "in process" "$work/local"
for n in 1 2 4; do
  start_cluster "$work/cluster-$n" "$n"
  run_build "ballista, $n executor(s)" "$work/cluster-$n" --engine "$engine"
  stop_cluster
done

# the same silver tables, whatever ran the plans
for n in 1 2 4; do
  for table in identity_map customer_360 features; do
    # a total order: a shared device has one identity row per person
    order="unified_id"
    [ "$table" = identity_map ] && order="source, source_key, unified_id"
    a=$("$cdp" query --lake "$work/local" --format csv "SELECT * FROM silver.$table ORDER BY $order" | md5sum)
    b=$("$cdp" query --lake "$work/cluster-$n" --format csv "SELECT * FROM silver.$table ORDER BY $order" | md5sum)
    [ "$a" = "$b" ] || { echo "silver.$table differs on $n executor(s)" >&2; exit 1; }
  done
done
echo "silver tables: identical in process and on 1, 2 and 4 executors"

python3 - "$results" "$customers" "$(nproc)" <<'PY'
import json, sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
customers, cores = int(sys.argv[2]), int(sys.argv[3])
def seconds(wall):
    parts = [float(p) for p in wall.split(":")]
    return sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
runs = [(label, seconds(wall), int(rss) / 1024, json.loads(report)) for label, wall, rss, report in rows]
base = runs[0][1]
print(f"{'':<26}{'wall s':>9}{'client RSS MB':>15}{'vs in process':>15}  identity s  features s")
for label, wall, rss, report in runs:
    s = report["seconds"]
    print(f"{label:<26}{wall:>9.1f}{rss:>15.0f}{wall / base:>14.2f}x  {s.get('identity', 0):>10.1f}  {s.get('features', 0):>9.1f}")
local = runs[0][3]
keys = local["rows"]["identity_map"]
identity_s = local["seconds"]["identity"]
core_ms = base * cores * 1000 / customers
cluster_best = min(w for _, w, _, _ in runs[1:])
overhead = cluster_best / base
target = 50_000_000
print()
print(f"per customer: {core_ms:.2f} core-ms in process ({cores} cores); identity {identity_s * 1e6 / keys:.1f} us per key "
      f"({keys} identity rows); Ballista on this machine {overhead:.2f}x the in-process time")
core_h = core_ms * target / 1000 / 3600 * overhead
print(f"50,000,000 customers: about {core_h:.0f} core-hours of build per night on a cluster "
      f"(the in-process cost per customer x Ballista's measured overhead, assuming linear scaling);")
for window_h in (1, 2):
    cores_needed = core_h / window_h
    print(f"  to finish in {window_h} h: {cores_needed:.0f} cores, e.g. {max(1, round(cores_needed / 4))} executors of 4 cores / 16 GiB")
print(f"  identity resolution stays on the client: about {identity_s / keys * keys / customers * target / 60:.0f} min "
      f"single-threaded for 50,000,000 customers")
PY
