"""Reading a cdp lake from Python: manifests -> Parquet files -> polars.

Every stage of cdp publishes by swapping one small JSON manifest under
`LAKE/_manifests/`; the Parquet files a manifest does not name (a crashed
run's leftovers, an older run of the same date) must not be read. So, like
`cdp query`, these helpers never list folders: they read the manifest and
load exactly the files it names (paths relative to the lake root).

    import cdp_lake
    features = cdp_lake.read_table("silver", "features")          # latest snapshot
    scores = cdp_lake.read_table("gold", "scores", as_of="2026-03-16")
    version, folder = cdp_lake.current_model("offer")

The lake is `$CDP_LAKE` (default `lake`), a local folder. A relative path is
taken from the current folder, else from the repository root, so that
`CDP_LAKE=./lake jupyter lab` started at the root works although Jupyter runs
each notebook's kernel in `notebooks/`.
"""

import json
import os
import shutil
from pathlib import Path

import polars as pl

# notebooks/ and the repository it lives in.
NOTEBOOKS = Path(__file__).resolve().parent
REPO = NOTEBOOKS.parent


def lake_root(lake=None):
    """The lake folder: `lake`, else $CDP_LAKE, else `lake`; it must hold `_manifests/`."""
    given = str(lake or os.environ.get("CDP_LAKE") or "lake")
    if given.startswith("file://"):
        given = given[len("file://"):]
    if "://" in given:
        raise ValueError(f"{given}: these notebooks read a local lake folder (for s3:// copy it, or use `cdp query`)")
    path = Path(given).expanduser()
    tried = [path] if path.is_absolute() else [Path.cwd() / path, REPO / path]
    for candidate in tried:
        if (candidate / "_manifests").is_dir():
            return candidate.resolve()
    raise FileNotFoundError(
        f"no cdp lake at {' or '.join(str(t) for t in tried)} (no _manifests/ folder): "
        "set CDP_LAKE to a lake built with `cdp build` (e.g. `cargo run --release -- up --lake ./lake`)"
    )


def manifest(name, lake=None):
    """The body of the latest committed version of manifest `name` (e.g. "silver", "gold", "models/offer").

    That is `LAKE/_manifests/<name>.json`, or a newer `_manifests/<name>/vNNNNNNNNNN.json` history entry whose
    writer died before replacing the current file: cdp commits a version by writing its history entry.
    """
    root = lake_root(lake) / "_manifests"
    path = root / f"{name}.json"
    current = None
    if path.exists():
        with open(path, encoding="utf-8") as f:
            current = json.load(f)
    version = current["version"] if current else 0
    while (committed := root / name / f"v{version + 1:010d}.json").exists():
        with open(committed, encoding="utf-8") as f:
            current = json.load(f)
        version += 1
    if current is None:
        raise FileNotFoundError(f"{path} does not exist: nothing published under {name!r} yet")
    return current["body"]


def snapshots(layer, table=None, lake=None):
    """The as-of dates (YYYY-MM-DD, oldest first) of a layer ("silver" or "gold"), only those holding `table` if given."""
    found = manifest(layer, lake).get("snapshots", {})
    return sorted(d for d, s in found.items() if table is None or table in s.get("tables", {}))


def latest(layer, table=None, lake=None):
    """The newest as-of date of a layer (holding `table` if given)."""
    dates = snapshots(layer, table, lake)
    if not dates:
        raise LookupError(f"no {layer} snapshot" + (f" with table {table!r}" if table else "") + " is published")
    return dates[-1]


def table_files(layer, table, as_of=None, lake=None):
    """Absolute paths of the Parquet files of `layer.table` as of `as_of` (default: the latest date holding it)."""
    root = lake_root(lake)
    as_of = as_of or latest(layer, table, root)
    snapshot = manifest(layer, root)["snapshots"].get(as_of)
    if snapshot is None or table not in snapshot["tables"]:
        raise LookupError(f"{layer}.{table} has no snapshot as of {as_of} (published: {snapshots(layer, table, root)})")
    return [root / f for f in snapshot["tables"][table]["files"]]


def release(lake=None):
    """The body of `_manifests/release.json` (what `cdp refresh` last released for serving: as_of, model, ...), or None."""
    try:
        return manifest("release", lake)
    except FileNotFoundError:
        return None


def read_table(layer, table, as_of=None, lake=None, columns=None):
    """`layer.table` as of `as_of` (default: the latest) as one polars DataFrame."""
    files = table_files(layer, table, as_of, lake)
    if not files:
        raise LookupError(f"{layer}.{table} as of {as_of or 'the latest date'} has no rows")
    return pl.read_parquet([str(f) for f in files], columns=columns)


def read_bronze(source, lake=None):
    """Every published part of a bronze source (e.g. "card_products") as one DataFrame."""
    parts = manifest(f"bronze/{source}", lake)["parts"]
    root = lake_root(lake)
    return pl.read_parquet([str(root / p["path"]) for p in parts])


def current_model(kind="offer", lake=None):
    """(version, folder) of the current model of a kind ("offer" or "tagger"), from `_manifests/models/<kind>.json`."""
    body = manifest(f"models/{kind}", lake)
    version = body["current"]
    entry = next((v for v in body["versions"] if v["version"] == version), None)
    root = lake_root(lake)
    folder = root / Path(entry["path"]).parent if entry else root / "models" / kind / version
    return version, folder


def to_float(df):
    """Decimal (amounts) and boolean columns as Float64, for numpy, matplotlib and XGBoost."""
    return df.with_columns(
        [pl.col(name).cast(pl.Float64) for name, dtype in df.schema.items()
         if isinstance(dtype, pl.Decimal) or dtype == pl.Boolean]
    )


def feature_registry():
    """The declared features (`pipelines/features/*.toml`, what `cdp features list` shows) as a DataFrame."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib
    rows = []
    for path in sorted((REPO / "pipelines" / "features").glob("*.toml")):
        with open(path, "rb") as f:
            family = tomllib.load(f)
        for feature in family.get("feature", []):
            rows.append({
                "name": feature["name"],
                "family": path.stem,
                "type": feature.get("type"),
                "ttl_days": feature.get("ttl_days", family.get("ttl_days")),
                "tags": feature.get("tags", []),
                "description": feature.get("description", ""),
            })
    return pl.DataFrame(rows)


def cdp_bin():
    """The `cdp` binary: $CDP_BIN, else `cdp` on PATH, else a build of this repository."""
    given = os.environ.get("CDP_BIN")
    if given:
        return given
    on_path = shutil.which("cdp")
    if on_path:
        return on_path
    for profile in ("release", "debug"):
        for target in (os.environ.get("CARGO_TARGET_DIR"), REPO / "target"):
            if target and (Path(target) / profile / "cdp").exists():
                return str(Path(target) / profile / "cdp")
    raise FileNotFoundError("no cdp binary: set CDP_BIN, put cdp on PATH, or `cargo build --release`")
