"""cdp vs Feast 0.67 on the same customers x 10 features: historical
retrieval (100,000 and BIG entity rows), materialize, online lookups.
Run by bench/feature_store.sh inside Feast's virtualenv.

usage: feature_store_compare.py CDP LOOKUP_LATENCY LAKE WORK BIG
       feature_store_compare.py --feast-historical REPO ENTITIES OUT
       feature_store_compare.py --feast-materialize REPO START END
       feature_store_compare.py --feast-online REPO IDS

Each measured step runs in its own process under /usr/bin/time -v (wall
seconds, peak RSS). Historical retrieval is timed file to file on both
sides: cdp reads the entity Parquet, joins, writes Parquet; Feast's process
imports Feast, reads the entity Parquet into pandas, runs
get_historical_features(...).to_df() and writes Parquet. Feast's in-memory
retrieval alone (get_historical_features().to_df()) is reported too.
Ratios are Feast / cdp: how many times faster cdp is.
"""

import datetime
import json
import os
import re
import subprocess
import sys
import time

FEATURES = [
    "txn_count_7d",
    "txn_count_30d",
    "spend_30d",
    "spend_90d",
    "days_since_last_txn",
    "avg_ticket_90d",
    "online_share_90d",
    "foreign_share_90d",
    "distinct_devices_90d",
    "failed_logins_30d",
]
TTL_DAYS = 2  # the TTL of the transactions and digital families
TIMEZONE = "Asia/Shanghai"
VIEW = "customer_features"
TIMEOUT = int(os.environ.get("BENCH_FEAST_TIMEOUT", "3600"))
ONLINE_ITERATIONS = {1: 2000, 100: 300}


def cutoff(day):
    """D+1 00:00 business time, as a UTC pandas Timestamp."""
    import pandas as pd

    return pd.Timestamp(day + datetime.timedelta(days=1)).tz_localize(TIMEZONE).tz_convert("UTC")


def feast_objects():
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64

    entity = Entity(name="customer", join_keys=["unified_id"], value_type=ValueType.STRING)
    return entity, lambda path: FeatureView(
        name=VIEW,
        entities=[entity],
        ttl=datetime.timedelta(days=TTL_DAYS),
        schema=[Field(name=f, dtype=Float64) for f in FEATURES],
        source=FileSource(path=path, timestamp_field="event_timestamp"),
        online=True,
    )


def feast_historical(repo, entities, out):
    started = time.perf_counter()
    import pandas as pd
    from feast import FeatureStore

    store = FeatureStore(repo_path=repo)
    imported = time.perf_counter()
    df = pd.read_parquet(entities)
    read = time.perf_counter()
    result = store.get_historical_features(
        entity_df=df, features=[f"{VIEW}:{f}" for f in FEATURES]
    ).to_df()
    retrieved = time.perf_counter()
    result.to_parquet(out)
    written = time.perf_counter()
    print(json.dumps({
        "rows": len(result),
        "seconds": {
            "import": imported - started,
            "read": read - imported,
            "retrieve": retrieved - read,
            "write": written - retrieved,
            "total": written - started,
        },
    }))


def feast_materialize(repo, start, end):
    from feast import FeatureStore

    store = FeatureStore(repo_path=repo)
    started = time.perf_counter()
    store.materialize(
        start_date=datetime.datetime.fromisoformat(start), end_date=datetime.datetime.fromisoformat(end)
    )
    print(json.dumps({"seconds": time.perf_counter() - started}))


def percentiles(samples):
    samples = sorted(samples)
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]
    return {"p50_us": pick(0.50) * 1e6, "p99_us": pick(0.99) * 1e6, "mean_us": sum(samples) / len(samples) * 1e6}


def feast_online(repo, ids_file):
    import random

    from feast import FeatureStore

    store = FeatureStore(repo_path=repo)
    with open(ids_file, encoding="utf-8") as f:
        ids = f.read().split()
    rng = random.Random(7)
    features = [f"{VIEW}:{f}" for f in FEATURES]
    out = []
    for n, iterations in ONLINE_ITERATIONS.items():
        for _ in range(20):  # warm-up
            store.get_online_features(features=features, entity_rows=[{"unified_id": i} for i in rng.sample(ids, n)])
        samples = []
        present = 0
        for _ in range(iterations):
            rows = [{"unified_id": i} for i in rng.sample(ids, n)]
            t = time.perf_counter()
            got = store.get_online_features(features=features, entity_rows=rows).to_dict()
            samples.append(time.perf_counter() - t)
            present += sum(v is not None for v in got[FEATURES[0]])
        out.append({"entities": n, "iterations": iterations, "present": present, **percentiles(samples)})
    print(json.dumps(out))


def timed(cmd, timeout=None):
    """Runs cmd under /usr/bin/time -v: (wall s, peak RSS MB, stdout), or
    None when it ran out of time."""
    try:
        proc = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[:3])} failed: {proc.stderr[-3000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", proc.stderr)
    h, m, s = wall.groups()
    seconds = int(h or 0) * 3600 + int(m) * 60 + float(s)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1)) / 1024
    return seconds, rss, proc.stdout


def log(message):
    print(message, file=sys.stderr, flush=True)


def main():
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    cdp, lookup, lake, work, big = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    repo = os.path.join(work, "feast")
    data = os.path.join(repo, "data")
    os.makedirs(data, exist_ok=True)
    me = os.path.abspath(__file__)

    # 1. Feast's file source: the 10 features of every snapshot, event time
    #    = the snapshot's cutoff.
    with open(os.path.join(lake, "_manifests", "silver.json"), encoding="utf-8") as f:
        snapshots = json.load(f)["body"]["snapshots"]
    days = sorted(datetime.date.fromisoformat(d) for d in snapshots if "features" in snapshots[d]["tables"])
    source_path = os.path.join(data, "features.parquet")
    parts, ids_by_day = [], []
    for day in days:
        files = snapshots[day.isoformat()]["tables"]["features"]["files"]
        frame = pd.concat(
            [pd.read_parquet(os.path.join(lake, p), columns=["unified_id"] + FEATURES) for p in files],
            ignore_index=True,
        )
        for feature in FEATURES:
            frame[feature] = pd.to_numeric(frame[feature].astype(object), errors="coerce").astype("float64")
        frame["event_timestamp"] = cutoff(day)
        frame["created"] = frame["event_timestamp"]
        parts.append(frame)
        ids_by_day.append(set(frame["unified_id"]))
    source = pd.concat(parts, ignore_index=True)
    source.to_parquet(source_path, index=False)
    customers = len(parts[-1])
    # keys in every snapshot: no person merged away in the range (where
    # cdp and Feast differ by design: cdp asks the snapshot, Feast the key's own last row)
    keys = np.array(sorted(set.intersection(*ids_by_day)), dtype=object)
    log(f"feast source: {len(source):,} rows ({len(days)} snapshots x ~{customers:,} customers), {len(keys):,} keys in all")

    with open(os.path.join(repo, "feature_store.yaml"), "w", encoding="utf-8") as f:
        f.write(
            "project: cdp_bench\nregistry: data/registry.db\nprovider: local\n"
            "offline_store:\n  type: file\nonline_store:\n  type: sqlite\n  path: data/online.db\n"
            "entity_key_serialization_version: 3\n"
        )
    for stale in ["registry.db", "online.db"]:
        if os.path.exists(os.path.join(data, stale)):
            os.remove(os.path.join(data, stale))
    subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {os.path.dirname(me)!r}); "
         f"import feature_store_compare as c; from feast import FeatureStore; "
         f"e, fv = c.feast_objects(); FeatureStore(repo_path={repo!r}).apply([e, fv({source_path!r})])"],
        check=True, capture_output=True,
    )

    # 2. Entity files: random keys, instants from half a day before the
    #    first cutoff to a TTL after the last, at millisecond resolution.
    rng = np.random.default_rng(1)
    lo = (cutoff(days[0]) - pd.Timedelta(hours=12)).value // 10**6
    hi = (cutoff(days[-1]) + pd.Timedelta(days=TTL_DAYS)).value // 10**6
    entity_files = {}
    for n in [100_000, big]:
        path = os.path.join(work, f"entities-{n}.parquet")
        if not os.path.exists(path):
            table = pa.table({
                "unified_id": pa.array(keys[rng.integers(0, len(keys), n)], pa.string()),
                "event_timestamp": pa.array(rng.integers(lo, hi, n), pa.timestamp("ms", tz="UTC")),
                "label": pa.array(np.arange(n, dtype=np.int64)),
            })
            pq.write_table(table, path)
        entity_files[n] = path
    log("entity files ready")

    results = {"customers": customers, "features": FEATURES, "snapshots": [d.isoformat() for d in days],
               "cores": os.cpu_count(), "historical": {}, "feast_version": None}
    import feast

    results["feast_version"] = feast.__version__

    # 3. Historical retrieval, file to file.
    for n, entities in entity_files.items():
        cdp_out = os.path.join(work, f"cdp-{n}.parquet")
        feast_out = os.path.join(work, f"feast-{n}.parquet")
        log(f"historical {n:,} rows: cdp")
        wall, rss, out = timed([cdp, "historical", "--lake", lake, "--entities", entities,
                                "--features", ",".join(FEATURES), "--out", cdp_out, "--json"])
        ours = {"wall": wall, "rss_mb": rss, "report": json.loads(out)}
        log(f"  cdp {wall:.2f} s; Feast")
        run = timed([sys.executable, me, "--feast-historical", repo, entities, feast_out], TIMEOUT)
        theirs = None
        if run is not None:
            wall, rss, out = run
            theirs = {"wall": wall, "rss_mb": rss, "report": json.loads(out.strip().splitlines()[-1])}
            log(f"  Feast {wall:.2f} s")
        else:
            log(f"  Feast did not finish in {TIMEOUT} s")
        entry = {"cdp": ours, "feast": theirs}
        if theirs is not None:
            entry["mismatches"] = compare(cdp_out, feast_out, n)
        results["historical"][str(n)] = entry

    # 4. Materialize the latest snapshot.
    latest = days[-1]
    log("materialize: cdp")
    wall, rss, out = timed([cdp, "materialize", "--lake", lake, "--as-of", latest.isoformat(), "--json"])
    results["materialize"] = {"cdp": {"wall": wall, "rss_mb": rss, "report": json.loads(out)}}
    log("materialize: Feast")
    start = (cutoff(latest) - pd.Timedelta(minutes=1)).to_pydatetime().isoformat()
    end = (cutoff(latest) + pd.Timedelta(minutes=1)).to_pydatetime().isoformat()
    run = timed([sys.executable, me, "--feast-materialize", repo, start, end], TIMEOUT)
    results["materialize"]["feast"] = None if run is None else {
        "wall": run[0], "rss_mb": run[1], "seconds": json.loads(run[2].strip().splitlines()[-1])["seconds"]}

    # 5. Online lookups in-process.
    log("online lookups: cdp")
    wall, rss, out = timed([lookup, "--lake", lake, "--lookup-features", ",".join(FEATURES), "--json"])
    results["online"] = {"cdp": json.loads(out.strip().splitlines()[-1])["lookups"]}
    ids_file = os.path.join(work, "online-ids.txt")
    with open(ids_file, "w", encoding="utf-8") as f:
        f.write("\n".join(parts[-1]["unified_id"]))
    log("online lookups: Feast")
    run = timed([sys.executable, me, "--feast-online", repo, ids_file], TIMEOUT)
    results["online"]["feast"] = None if run is None else json.loads(run[2].strip().splitlines()[-1])

    report(results, big)
    repo_root = os.path.dirname(os.path.dirname(me))
    name = os.path.join(repo_root, "bench", "results", f"feature_store-{time.strftime('%Y%m%d-%H%M%S')}.json")
    with open(name, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2, default=str)
    print(f"results: {os.path.relpath(name, repo_root)}")


def compare(cdp_out, feast_out, n):
    """Cells that differ between the two outputs, by label (rows of a
    10,000,000-row run are compared on a 1,000,000-row sample)."""
    import numpy as np
    import pandas as pd

    ours = pd.read_parquet(cdp_out, columns=["label"] + FEATURES)
    theirs = pd.read_parquet(feast_out, columns=["label"] + FEATURES)
    out = {"rows_cdp": len(ours), "rows_feast": len(theirs)}
    # Feast leaves out entity rows older than every feature row (here those
    # up to half a day before the first cutoff); cdp keeps them, all null
    dropped = ours[~ours["label"].isin(theirs["label"])]
    out["rows_only_cdp"] = len(dropped)
    out["rows_only_cdp_with_values"] = int(dropped[FEATURES].notna().any(axis=1).sum())
    if n > 1_000_000:
        ours = ours.sample(1_000_000, random_state=1)
    merged = ours.merge(theirs, on="label", suffixes=("_cdp", "_feast"))
    out.update({"rows_compared": len(merged), "cells": 0})
    for feature in FEATURES:
        a = pd.to_numeric(merged[f"{feature}_cdp"].astype(object), errors="coerce").astype("float64").to_numpy()
        b = pd.to_numeric(merged[f"{feature}_feast"].astype(object), errors="coerce").astype("float64").to_numpy()
        out["cells"] += int((~np.isclose(a, b, equal_nan=True)).sum())
    out["null_cells_cdp"] = int(merged[[f"{f}_cdp" for f in FEATURES]].isna().sum().sum())
    return out


def report(r, big):
    def ratio(theirs, ours):
        return f"{theirs / ours:8.1f}x" if theirs and ours else "       -"

    line = "{:<46}{:>12}{:>14}{:>10}"
    print(f"feature store: {r['customers']:,} customers x {len(r['features'])} features, "
          f"{len(r['snapshots'])} daily snapshots ({r['snapshots'][0]} .. {r['snapshots'][-1]}), "
          f"{r['cores']} cores; Feast {r['feast_version']} (file offline store, SQLite online store)")
    print(line.format("", "cdp", "Feast", "Feast/cdp"))
    for n, h in r["historical"].items():
        n = int(n)
        ours, theirs = h["cdp"], h["feast"]
        label = f"historical {n:,} rows, file to file (s)"
        if theirs is None:
            print(line.format(label, f"{ours['wall']:.2f}", f">{TIMEOUT}", ""))
            continue
        print(line.format(label, f"{ours['wall']:.2f}", f"{theirs['wall']:.2f}", ratio(theirs["wall"], ours["wall"])))
        s = theirs["report"]["seconds"]
        cs = ours["report"]["seconds"]
        join = cs["prepare"] + cs["join"] + cs["assemble"]
        print(line.format("  retrieval alone (s)", f"{join:.2f}", f"{s['retrieve']:.2f}", ratio(s["retrieve"], join)))
        print(line.format("  peak RSS (MB)", f"{ours['rss_mb']:.0f}", f"{theirs['rss_mb']:.0f}", ""))
        m = h.get("mismatches", {})
        print(f"  {'values compared':<44}{m.get('rows_compared', 0):>12,} rows, {m.get('cells', '?')} cells differ")
        if m.get("rows_only_cdp"):
            print(f"  {'rows Feast leaves out (before any feature)':<44}{m['rows_only_cdp']:>12,} "
                  f"(cdp: all null in {m['rows_only_cdp'] - m['rows_only_cdp_with_values']:,})")
    m = r["materialize"]
    ours = m["cdp"]
    theirs = m["feast"]
    print(line.format(f"materialize latest snapshot (s)", f"{ours['wall']:.2f}",
                      f"{theirs['wall']:.2f}" if theirs else f">{TIMEOUT}",
                      ratio(theirs["wall"], ours["wall"]) if theirs else ""))
    print(f"  (cdp writes all {ours['report'].get('features', '?')} declared features "
          f"of {ours['report'].get('rows', '?'):,} customers; Feast the 10; Feast's own timer "
          f"{theirs['seconds']:.2f} s)" if theirs else "")
    online = r["online"]
    # the same 10 features Feast looks up (the example also times all features)
    by_n = {o["entities"]: o for o in online["cdp"] if o["features"] == len(FEATURES)}
    theirs_by_n = {o["entities"]: o for o in (online["feast"] or [])}
    for n in [1, 100]:
        for q in ["p50", "p99"]:
            a = by_n.get(n, {}).get(f"{q}_us")
            b = theirs_by_n.get(n, {}).get(f"{q}_us")
            print(line.format(f"online lookup {n} entit{'y' if n == 1 else 'ies'} {q} (µs)",
                              f"{a:.1f}" if a else "-", f"{b:.0f}" if b else "-", ratio(b, a)))


if __name__ == "__main__":
    if sys.argv[1] == "--feast-historical":
        feast_historical(*sys.argv[2:5])
    elif sys.argv[1] == "--feast-materialize":
        feast_materialize(*sys.argv[2:5])
    elif sys.argv[1] == "--feast-online":
        feast_online(*sys.argv[2:4])
    else:
        main()
