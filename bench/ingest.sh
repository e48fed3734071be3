#!/usr/bin/env bash
# Ingest benchmark: one generated transactions file of at least N million rows
# (default 10), ingested by cdp (validation, dedup, business-day partitions,
# quarantine) and converted to zstd Parquet by DuckDB and by Python polars.
# The file is clean (DuckDB and polars stop at the first invalid UTF-8 byte);
# cdp still validates every value, de-duplicates and partitions by business day.
set -euo pipefail
cd "$(dirname "$0")/.."
millions="${1:-10}"
work="${BENCH_DIR:-/tmp/cdp-bench-ingest}"

python3 -c "import duckdb, polars" 2>/dev/null || pip install -q duckdb polars
source bench/lib.sh
release_build
cdp="$release/cdp"

mkdir -p "$work" bench/results
file="$work/src/transactions_bench.csv"
if [ ! -s "$file" ]; then
  # ~0.74 transactions per customer per day: size the bank for the rows asked
  customers=$(( millions * 1000000 / 66 + 1 ))
  rm -rf "$work/gen" "$work/src" && mkdir -p "$work/src"
  "$cdp" gen --out "$work/gen" --customers "$customers" --days 90 --seed 1 --dirty-rate 0 --json > "$work/gen.json"
  first=1
  for f in "$work"/gen/transactions_*.csv; do
    if [ $first = 1 ]; then cat "$f"; first=0; else tail -n +2 "$f"; fi
  done > "$file"
  rm -rf "$work/gen"
fi
python3 bench/ingest_compare.py "$cdp" "$file" "$work" | tee "bench/results/ingest-$(date +%Y%m%d-%H%M%S).txt"
