"""Point-in-time retrieval with pandas, compared with what `cdp historical`
wrote: an independent implementation of the same contract.

usage: pandas_asof.py LAKE ENTITIES CDP_OUTPUT KEY_KIND FEATURES_JSON TIMEZONE

* the snapshots are the silver manifest's (LAKE/_manifests/silver.json);
  snapshot D's cutoff is D+1 00:00 in TIMEZONE;
* each entity row takes the latest snapshot whose cutoff is at or before its
  timestamp: `pandas.merge_asof(direction="backward")` of the rows on the
  snapshots' cutoffs (exact matches allowed);
* the key resolves through that snapshot's identity map (a key with a
  `shared_*` row, or several persons, resolves to nobody);
* a feature is null unless timestamp < cutoff(D + ttl_days).

Prints "N rows equal" and exits 0, or prints the first differences and exits 1.
"""

import datetime
import json
import os
import sys

import pandas as pd

lake, entities_path, output_path, kind, features_json, timezone = sys.argv[1:7]
features = json.loads(features_json)
SOURCES = {"customer_id": "customers", "device_id": "device_events", "card_id": "transactions"}

with open(os.path.join(lake, "_manifests", "silver.json"), encoding="utf-8") as f:
    manifest = json.load(f)["body"]["snapshots"]


def read_table(name):
    parts = []
    for day, snapshot in sorted(manifest.items()):
        for path in snapshot["tables"][name]["files"]:
            parts.append(pd.read_parquet(os.path.join(lake, path)))
    return pd.concat(parts, ignore_index=True)


def cutoff(day):
    """D+1 00:00 in the business time zone, as a UTC instant."""
    midnight = pd.Timestamp(day + datetime.timedelta(days=1))
    return midnight.tz_localize(timezone).tz_convert("UTC")


days = sorted(datetime.date.fromisoformat(d) for d in manifest)
snapshots = pd.DataFrame({"as_of": days, "cutoff": [cutoff(d) for d in days]})
snapshots["cutoff"] = snapshots["cutoff"].astype("datetime64[ns, UTC]")

if entities_path.endswith(".csv"):
    entities = pd.read_csv(entities_path, dtype={kind: "string"}, keep_default_na=False, na_values=[""])
    entities["event_timestamp"] = pd.to_datetime(entities["event_timestamp"], utc=True, format="ISO8601")
else:
    entities = pd.read_parquet(entities_path)
    entities["event_timestamp"] = pd.to_datetime(entities["event_timestamp"], utc=True)
entities["event_timestamp"] = entities["event_timestamp"].astype("datetime64[ns, UTC]")
entities["__row"] = range(len(entities))

# merge_asof needs sorted, non-null keys: rows without a timestamp get no snapshot.
timed = entities[entities["event_timestamp"].notna()].sort_values("event_timestamp")
picked = pd.merge_asof(
    timed[["__row", "event_timestamp"]],
    snapshots.sort_values("cutoff"),
    left_on="event_timestamp",
    right_on="cutoff",
    direction="backward",
    allow_exact_matches=True,
)
rows = entities.merge(picked[["__row", "as_of"]], on="__row", how="left")
rows["as_of"] = pd.to_datetime(rows["as_of"]).dt.date

feature_table = read_table("features")
feature_table["as_of"] = pd.to_datetime(feature_table["as_of"]).dt.date
if kind == "unified_id":
    rows["unified_id"] = rows[kind]
    rows["__known"] = True
else:
    ids = read_table("identity_map")
    ids = ids[ids["source"] == SOURCES[kind]]
    ids["as_of"] = pd.to_datetime(ids["as_of"]).dt.date
    grouped = ids.groupby(["as_of", "source_key"]).agg(
        persons=("unified_id", "nunique"),
        unified_id=("unified_id", "min"),
        matched_by=("matched_by", "min"),
    ).reset_index()
    resolvable = (grouped["persons"] == 1) & ~grouped["matched_by"].str.startswith("shared")
    grouped.loc[~resolvable, "unified_id"] = None
    rows = rows.merge(
        grouped[["as_of", "source_key", "unified_id", "matched_by"]],
        left_on=["as_of", kind],
        right_on=["as_of", "source_key"],
        how="left",
    )
rows = rows.merge(
    feature_table[["as_of", "unified_id"] + list(features)],
    on=["as_of", "unified_id"],
    how="left",
    indicator="__features",
)
rows = rows.sort_values("__row").reset_index(drop=True)

for feature, ttl in features.items():
    # the cutoff of D + ttl, per snapshot D
    expiry = {d: cutoff(d + datetime.timedelta(days=ttl)) for d in days}
    expires = pd.to_datetime(rows["as_of"].map(expiry), utc=True)
    valid = rows["event_timestamp"].notna() & expires.notna() & (rows["event_timestamp"] < expires)
    rows[feature] = rows[feature].astype(object).where(valid, None)

got = pd.read_csv(output_path, dtype=str, keep_default_na=False) if output_path.endswith(".csv") else pd.read_parquet(output_path)
if len(got) != len(rows):
    sys.exit(f"{len(got)} rows written, {len(rows)} expected")


def normalise(series):
    """Cells as comparable values: numbers rounded to 6 places, other values
    as text, missing values (null, NaN, empty text) as None."""
    series = series.astype(object).where(series.notna(), None).replace("", None)
    try:
        numbers = pd.to_numeric(series, errors="raise").astype("float64").round(6)
        return [None if n != n else n for n in numbers.tolist()]  # n != n: NaN
    except (ValueError, TypeError):
        return [None if v is None else str(v) for v in series.tolist()]


bad = 0
columns = [("features_as_of", "as_of")] + [(f, f) for f in features]
if kind != "unified_id":
    columns.insert(0, ("unified_id", "unified_id"))
for got_column, want_column in columns:
    g = normalise(got[got_column])
    w = normalise(rows[want_column])
    for i, (a, b) in enumerate(zip(g, w)):
        if a != b:
            bad += 1
            if bad <= 10:
                print(f"row {i} {got_column}: cdp {a!r}, pandas {b!r} "
                      f"(key {rows[kind][i]!r}, ts {rows['event_timestamp'][i]})")
# The row order and the entity file's own column survive.
if normalise(got["label"]) != normalise(entities["label"]):
    bad += 1
    print("label column differs: row order or extra columns lost")
if bad:
    print(f"{bad} cells differ")
    sys.exit(1)
print(f"{len(rows)} rows equal")
