#!/usr/bin/env bash
# Nightly refresh benchmark: `cdp refresh` of one new day for CUSTOMERS
# (default 1,000,000) customers, release binary, under /usr/bin/time -v;
# prints each stage's seconds and rows, the total, and peak RSS (goal:
# under 10 minutes end to end on a 2-core machine).
#
# The bank is generated once for 76 days into $BENCH_DIR (default
# /tmp/cdp-bench-refresh-CUSTOMERS); day 76 is set aside as the night's
# drop. The base lake ingests days 1-75, builds the snapshots of the last
# three campaign eves whose offers have matured (a model needs three sending
# days: train, validation and test), and
# is refreshed and released as of day 75 with --retrain. The measured
# night is then `cdp refresh --source DROP --as-of <day 76>` on a copy of
# that base: ingest, build, quality gate, tag, labels, (train not due),
# score, materialize, publish, retention. RETRAIN=1 adds --retrain;
# CDP_BIN=path measures that binary instead of building the release one.
#
#   bench/refresh.sh [CUSTOMERS]
set -euo pipefail
cd "$(dirname "$0")/.."
customers="${1:-1000000}"
work="${BENCH_DIR:-/tmp/cdp-bench-refresh-$customers}"
base_day=2026-03-16
new_day=2026-03-17
eves="2026-01-24 2026-01-31 2026-02-07"
mkdir -p "$work"

source bench/lib.sh
# CDP_BIN: a cdp binary to measure instead of building the release one
if [ -n "${CDP_BIN:-}" ]; then cdp="$CDP_BIN"; else release_build; cdp="$release/cdp"; fi

if [ ! -f "$work/base.ok" ]; then
  echo "making the base lake of $customers customers in $work (once)"
  rm -rf "$work/raw" "$work/drop" "$work/base"
  timed "gen (76 days)" "$cdp" gen --out "$work/raw" --customers "$customers" --days 76 --seed 1 --dirty-rate 0.01 --json
  mkdir -p "$work/drop"
  mv "$work"/raw/*_"$new_day".* "$work/drop/"
  cp "$work/raw/card_products.csv" "$work/drop/"
  timed "ingest days 1-75" "$cdp" ingest --source "$work/raw" --lake "$work/base" --json
  for eve in $eves; do
    timed "build $eve" "$cdp" build --as-of "$eve" --lake "$work/base" --json
  done
  # five weeks apart, the two snapshots differ more than a night's drift
  timed "refresh $base_day --retrain" env CDP__REFRESH__QUALITY__MAX_PSI=1000 CDP__REFRESH__QUALITY__MAX_PERSONS_RATIO=10 \
    "$cdp" refresh --as-of "$base_day" --retrain --lake "$work/base" --json
  rm -rf "$work/raw"
  touch "$work/base.ok"
fi

rm -rf "$work/night"
cp -r "$work/base" "$work/night"
echo "cdp refresh of $new_day over $customers customers (release binary, $(nproc) cores)"
extra=()
[ "${RETRAIN:-0}" = 1 ] && extra+=(--retrain)
timed "refresh $new_day ${extra[*]:-}" "$cdp" refresh --source "$work/drop" --as-of "$new_day" \
  --lake "$work/night" --json "${extra[@]}"
python3 - "$work/last.out" <<'PY'
import json, sys
for record in json.load(open(sys.argv[1])):
    total = sum(s["seconds"] for s in record["stages"])
    print(f"run {record['run']} {record['as_of']}: {record['status']}, stages {total:.1f} s")
    for s in record["stages"]:
        rows = " ".join(f"{k} {s[k]}" for k in ("rows_in", "rows_out") if s.get(k) is not None)
        print(f"  {s['name']:<12} {s['status']:<8} {s['seconds']:>7.1f} s  {rows}  {s.get('detail') or ''}")
    for w in record["warnings"][:5]:
        print(f"  warning: {w}")
PY
