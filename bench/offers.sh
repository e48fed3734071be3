#!/usr/bin/env bash
# Offer-list benchmark: `cdp offers` over a generated bank of CUSTOMERS
# (default 1,000,000) scored for every card offer, one list per offer for
# five offers, each under /usr/bin/time -v with the release binary; prints
# the seconds and peak RSS of each run (goal: under 30 s each).
#
# The lake is made once into bench/results/offers/ (git-ignored) and reused:
# gen (75 days, so the weekly campaigns have a known outcome), ingest,
# builds on three campaign eves and on D, tag, train, score. Delete the folder
# to start over.
#
#   bench/offers.sh [CUSTOMERS]        (CDP_BIN=path measures that binary)
set -euo pipefail
cd "$(dirname "$0")/.."
customers="${1:-1000000}"
as_of=2026-03-16
# the last three campaign eves whose offers have matured: a model needs
# three sending days (train, validation, test), as in bench/refresh.sh
eves="2026-01-24 2026-01-31 2026-02-07"
offers="cc_travel_gold cc_travel_platinum cc_cashback_gold cc_dining_gold cc_premium_signature"
work="bench/results/offers/$customers"
lake="$work/lake"
mkdir -p "$work"

source bench/lib.sh
# CDP_BIN: a cdp binary to measure instead of building the release one
if [ -n "${CDP_BIN:-}" ]; then cdp="$CDP_BIN"; else release_build; cdp="$release/cdp"; fi

if [ ! -f "$work/scored.ok" ]; then
  echo "making a scored lake of $customers customers in $work (once)"
  rm -rf "$lake" "$work/raw"
  timed "gen" "$cdp" gen --out "$work/raw" --customers "$customers" --days 75 --seed 1 --dirty-rate 0 --json
  timed "ingest" "$cdp" ingest --source "$work/raw" --lake "$lake" --json
  for d in $eves $as_of; do
    timed "build $d" "$cdp" build --as-of "$d" --lake "$lake" --json
  done
  for stage in tag train score; do
    timed "$stage" "$cdp" "$stage" --as-of "$as_of" --lake "$lake" --json
  done
  rm -rf "$work/raw"
  touch "$work/scored.ok"
fi

echo "cdp offers over $customers customers as of $as_of (release binary, $(nproc) cores)"
for offer in $offers; do
  cat > "$work/$offer.toml" <<TOML
name = "bench-$offer"
offer = "$offer"
channel = "sms"
eligibility = "c.age_years >= 21 AND f.txn_count_30d >= 1"
[suppress]
min_kyc_level = 2
contacted_within_days = 30
offered_within_days = 90
[score]
min = 0.02
[select]
top = 20000
[caps]
per_city = 4000
[holdout]
share = 0.1
seed = 1
TOML
  timed "offers $offer" "$cdp" offers --audience "$work/$offer.toml" --as-of "$as_of" --lake "$lake" \
    --out "$work/$offer.parquet" --report "$work/$offer.html" --json
  python3 - "$work/last.out" <<'PY' || true
import json, sys
record = json.load(open(sys.argv[1]))
steps = " -> ".join(f"{s['step']} {s['customers']}" for s in record["funnel"])
print(f"    {steps}; stages {record['seconds']}")
PY
done
