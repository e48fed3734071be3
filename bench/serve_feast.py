"""The Feast side of bench/serve.sh: a Feast 0.67 repository (local
provider, file offline store, SQLite online store) whose online store holds
the same features of the same customers as the snapshot cdp serves, so that
`feast serve` can be load-tested beside `cdp serve`.

usage: serve_feast.py LAKE AS_OF FEATURES REPO

LAKE      cdp's lake; the features come from its silver.features snapshot AS_OF
AS_OF     the snapshot cdp materialized and serves (YYYY-MM-DD)
FEATURES  comma-separated feature names (all numeric; stored as Float64)
REPO      the Feast repository folder, created or reused

The feature view `customer_features` (entity `customer`, join key
unified_id) has no TTL: cdp's load generator judges TTLs at the snapshot's
cutoff, so both servers return every value as present. The repository is
reused when REPO/ready.json names the same lake, snapshot and features.
Runs inside Feast's virtualenv; prints one JSON line (rows, seconds).
"""

import datetime
import json
import os
import sys
import time

TIMEZONE = "Asia/Shanghai"
VIEW = "customer_features"


def cutoff(day):
    """D+1 00:00 business time, as a UTC pandas Timestamp."""
    import pandas as pd

    return pd.Timestamp(day + datetime.timedelta(days=1)).tz_localize(TIMEZONE).tz_convert("UTC")


def main():
    lake, as_of, features, repo = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4]
    wanted = {"lake": os.path.abspath(lake), "as_of": as_of, "features": features}
    marker = os.path.join(repo, "ready.json")
    if os.path.exists(marker):
        with open(marker, encoding="utf-8") as f:
            if json.load(f).get("wanted") == wanted:
                print(json.dumps({"reused": True}))
                return

    started = time.perf_counter()
    import pandas as pd
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64

    data = os.path.join(repo, "data")
    os.makedirs(data, exist_ok=True)
    for stale in [marker, os.path.join(data, "registry.db"), os.path.join(data, "online.db")]:
        if os.path.exists(stale):
            os.remove(stale)

    # The snapshot's features, exported from cdp's lake.
    with open(os.path.join(lake, "_manifests", "silver.json"), encoding="utf-8") as f:
        files = json.load(f)["body"]["snapshots"][as_of]["tables"]["features"]["files"]
    frame = pd.concat(
        [pd.read_parquet(os.path.join(lake, p), columns=["unified_id"] + features) for p in files],
        ignore_index=True,
    )
    for feature in features:
        frame[feature] = pd.to_numeric(frame[feature].astype(object), errors="coerce").astype("float64")
    day = datetime.date.fromisoformat(as_of)
    frame["event_timestamp"] = cutoff(day)
    frame["created"] = frame["event_timestamp"]
    source = os.path.join(data, "features.parquet")
    frame.to_parquet(source, index=False)

    with open(os.path.join(repo, "feature_store.yaml"), "w", encoding="utf-8") as f:
        f.write(
            "project: cdp_serve_bench\nregistry: data/registry.db\nprovider: local\n"
            "offline_store:\n  type: file\nonline_store:\n  type: sqlite\n  path: data/online.db\n"
            "entity_key_serialization_version: 3\n"
        )
    entity = Entity(name="customer", join_keys=["unified_id"], value_type=ValueType.STRING)
    view = FeatureView(
        name=VIEW,
        entities=[entity],
        ttl=datetime.timedelta(0),
        schema=[Field(name=f, dtype=Float64) for f in features],
        source=FileSource(path=source, timestamp_field="event_timestamp"),
        online=True,
    )
    store = FeatureStore(repo_path=repo)
    store.apply([entity, view])
    at = cutoff(day)
    store.materialize(
        start_date=(at - pd.Timedelta(minutes=1)).to_pydatetime(),
        end_date=(at + pd.Timedelta(minutes=1)).to_pydatetime(),
    )
    seconds = time.perf_counter() - started
    with open(marker, "w", encoding="utf-8") as f:
        json.dump({"wanted": wanted, "rows": len(frame), "seconds": seconds}, f)
    print(json.dumps({"reused": False, "rows": len(frame), "seconds": round(seconds, 1)}))


if __name__ == "__main__":
    main()
