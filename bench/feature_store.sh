#!/usr/bin/env bash
# Feature-store benchmark: cdp vs Feast 0.67 (local provider, file offline
# store, SQLite online store) on the same CUSTOMERS customers x 10 features
# (default 100,000), in one run; prints a table with both sides and the
# ratios, and writes it as JSON under bench/results/.
#
#   historical retrieval   `cdp historical` vs `get_historical_features().to_df()`
#                          for 100,000 and BIG (default 10,000,000) entity rows,
#                          file to file, each in its own process
#   materialize            `cdp materialize` (embedded) vs `FeatureStore.materialize`
#                          of the latest snapshot
#   online lookups         p50 / p99 in-process for 1 and 100 entities: cdp's
#                          embedded store (crates/cdp-store/examples/lookup_latency)
#                          vs `get_online_features`
#   scale (cdp only)       materialize a synthetic SYNTH_CUSTOMERS x SYNTH_FEATURES
#                          snapshot (default 1,000,000 x 100), then look it up
#
# Both sides read the same feature values: Feast's file source is exported
# from cdp's silver.features snapshots (event time = the snapshot's cutoff,
# D+1 00:00 business time; TTL 2 days, the TTL of the 10 features), and the
# two historical outputs are compared value by value.
#
# Work folder: $BENCH_DIR (default /tmp/cdp-bench-feature-store-CUSTOMERS)
# with raw/ and lake/ (generated, ingested and built once, reused) and
# feast/. Feast lives in its own virtualenv, $FEAST_VENV (default
# ~/.cache/cdp/feast-venv), created on first use. BENCH_FEAST_TIMEOUT
# (seconds, default 3600) bounds each Feast step.
set -euo pipefail
cd "$(dirname "$0")/.."
customers="${1:-100000}"
big="${2:-10000000}"
days="${BENCH_DAYS:-40}"
snapshots="${BENCH_SNAPSHOTS:-7}"
work="${BENCH_DIR:-/tmp/cdp-bench-feature-store-$customers}"
raw="$work/raw"
lake="$work/lake"
venv="${FEAST_VENV:-$HOME/.cache/cdp/feast-venv}"

if ! "$venv/bin/python" -c 'import feast, sys; sys.exit(not feast.__version__.startswith("0.67"))' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "feast==0.67.*"
fi
source bench/lib.sh
release_build
cdp="$release/cdp"
lookup="$release/examples/lookup_latency"

mkdir -p "$work" bench/results
if [ ! -s "$raw/_truth/counts.json" ]; then
  rm -rf "$raw" "$lake" "$work/built"
  "$cdp" gen --out "$raw" --customers "$customers" --days "$days" --seed 1 --dirty-rate 0 --json > "$work/gen.json"
fi
if [ ! -s "$work/ingest.json" ]; then
  "$cdp" ingest --source "$raw" --lake "$lake" --json > "$work/ingest.part"
  mv "$work/ingest.part" "$work/ingest.json"
fi
# One snapshot per day for the last SNAPSHOTS generated days.
for as_of in $(python3 -c 'import datetime, json, sys
g = json.load(open(sys.argv[1]))["generator"]
last = datetime.date.fromisoformat(g["start"]) + datetime.timedelta(days=g["days"] - 1)
for i in reversed(range(int(sys.argv[2]))):
    print(last - datetime.timedelta(days=i))' "$raw/_truth/counts.json" "$snapshots"); do
  if ! grep -qx "$as_of" "$work/built" 2>/dev/null; then
    "$cdp" build --lake "$lake" --as-of "$as_of" --json > /dev/null
    echo "$as_of" >> "$work/built"
  fi
done
{
  "$venv/bin/python" bench/feature_store_compare.py "$cdp" "$lookup" "$lake" "$work" "$big"
  # The issue's scale goal, cdp alone (Feast is measured above at 100k x 10):
  # materialize a synthetic 1,000,000 x 100 snapshot, then look it up in-process.
  echo
  echo "synthetic ${SYNTH_CUSTOMERS:-1000000} customers x ${SYNTH_FEATURES:-100} features (crates/cdp-store/examples/lookup_latency.rs):"
  "$lookup" --customers "${SYNTH_CUSTOMERS:-1000000}" --features "${SYNTH_FEATURES:-100}"
} 2>&1 | tee "bench/results/feature_store-$(date +%Y%m%d-%H%M%S).txt"
