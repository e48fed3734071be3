#!/usr/bin/env bash
# Build benchmark: `cdp build --as-of D` (D = the last generated day) on
# CUSTOMERS x DAYS of generated data (default 1,000,000 x 90), and the same
# feature SQL run by DuckDB over the same bronze Parquet, in one run; prints
# the features-stage seconds of both, the ratio, cdp's whole build and peak RSS.
#
# Work folder: $BENCH_DIR (default /tmp/cdp-bench-build-CUSTOMERS-DAYS) with
# raw/ (generated once, reused) and lake/ (ingested once, reused).
# BENCH_RAW=DIR reuses raw files generated elsewhere (never regenerated: it
# must hold DIR/_truth/counts.json, written when `cdp gen` finishes).
set -euo pipefail
cd "$(dirname "$0")/.."
customers="${1:-1000000}"
days="${2:-90}"
work="${BENCH_DIR:-/tmp/cdp-bench-build-$customers-$days}"
raw="${BENCH_RAW:-$work/raw}"
lake="$work/lake"

python3 -c "import duckdb" 2>/dev/null || pip install -q duckdb
source bench/lib.sh
release_build
cdp="$release/cdp"

mkdir -p "$work" bench/results
if [ ! -s "$raw/_truth/counts.json" ]; then
  if [ -n "${BENCH_RAW:-}" ]; then
    echo "BENCH_RAW=$raw has no _truth/counts.json (not generated, or still generating)" >&2
    exit 1
  fi
  rm -rf "$raw" "$lake" "$work/ingest.json"
  "$cdp" gen --out "$raw" --customers "$customers" --days "$days" --seed 1 --json > "$work/gen.json"
fi
if [ ! -s "$work/ingest.json" ]; then
  "$cdp" ingest --source "$raw" --lake "$lake" --json > "$work/ingest.part"
  mv "$work/ingest.part" "$work/ingest.json"
fi
# The as-of date: the last generated business day (the data decides, not the arguments).
as_of=$(python3 -c 'import datetime, json, sys
g = json.load(open(sys.argv[1]))["generator"]
print(datetime.date.fromisoformat(g["start"]) + datetime.timedelta(days=g["days"] - 1))' "$raw/_truth/counts.json")
python3 bench/build_compare.py "$cdp" "$lake" "$as_of" "$work" | tee "bench/results/build-$(date +%Y%m%d-%H%M%S).txt"
