"""Runs `cdp build --as-of D` on a lake, then the same feature SQL in DuckDB
over the same bronze Parquet, and prints the features stage of each, the
ratio, cdp's whole build and the peak RSS of both; then checks that both
engines computed the same feature values.

DuckDB gets exactly what cdp's features stage gets: views over the bronze
files the ingest manifests list, the reference tables from
pipelines/reference/, pipelines/views/asof.sql and entities.sql rendered with
the same parameters, and build.identity_map and build.customer_360 read from
the silver snapshot cdp just wrote (identity resolution is Rust code and the
customer_360 masks PII with cdp's own functions: they are inputs to the
feature stage, not part of the comparison). DuckDB runs twice, each in a
fresh process: "staged" executes the statements cdp's features stage runs
(the shared entity views build.txn and build.devices materialized as tables,
each family into a table, then the final join, as `build` in
crates/cdp-engine/src/build.rs does), and "composed" the whole stage as one
query with a CTE per family, planned as DuckDB likes. The timed part is those
statements plus the final features query written to zstd Parquet with COPY;
the ratio is taken against the faster of the two. Each engine runs in its own
process under /usr/bin/time -v, with its default threads.

usage: build_compare.py CDP LAKE AS_OF WORK [TIMEZONE]
(BENCH_CDP_REPORT=FILE BENCH_CDP_RSS_MB=N: reuse a build already measured)"""

import datetime
import json
import os
import re
import subprocess
import sys
import time
import tomllib
import zoneinfo

cdp, lake, as_of, work = sys.argv[1], os.path.abspath(sys.argv[2]), sys.argv[3], sys.argv[4]
timezone = sys.argv[5] if len(sys.argv) > 5 else "Asia/Shanghai"
repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
out = os.path.join(work, "duckdb")
CANONICAL = ["txn_count_30d", "spend_30d", "days_since_last_txn", "distinct_devices_90d"]


def timed(cmd):
    """Runs cmd under /usr/bin/time -v: (wall seconds, peak RSS MB, stdout)."""
    proc = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True, cwd=repo)
    if proc.returncode != 0:
        sys.exit(f"{os.path.basename(cmd[0])} failed: {proc.stderr[-3000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", proc.stderr)
    h, m, s = wall.groups()
    seconds = int(h or 0) * 3600 + int(m) * 60 + float(s)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1)) / 1024
    return seconds, rss, proc.stdout


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def statements(script):
    """The statements of a script without `--` comments, split at `;` outside
    string literals (as crates/cdp-engine/src/sql.rs splits them)."""
    parts, current, in_string, i = [], [], False, 0
    while i < len(script):
        c = script[i]
        if c == "'":
            in_string = not in_string
            current.append(c)
        elif c == "-" and not in_string and script[i + 1 : i + 2] == "-":
            end = script.find("\n", i)
            i = len(script) if end < 0 else end
            current.append("\n")
        elif c == ";" and not in_string:
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


# The parameters of a build as of D (crates/cdp-engine/src/sql.rs), as
# literals DuckDB reads the same way: the cutoff is an instant, so TIMESTAMPTZ.
day = datetime.date.fromisoformat(as_of)
next_day = day + datetime.timedelta(days=1)
cutoff = datetime.datetime.combine(next_day, datetime.time(), zoneinfo.ZoneInfo(timezone))
cutoff_utc = cutoff.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S+00")
params = {"as_of": f"DATE '{day}'", "cutoff": f"TIMESTAMPTZ '{cutoff_utc}'", "next_day": f"DATE '{next_day}'"}


def render(text):
    return re.sub(r"\$\{(\w+)\}", lambda m: params[m.group(1)], text)


def families():
    """(name, rendered SQL, declared features) of every embedded family."""
    source = read(os.path.join(repo, "crates/cdp-engine/src/features.rs"))
    for family in re.findall(r'embedded_family!\("(\w+)"\)', source):
        base = os.path.join(repo, "pipelines/features", family)
        yield family, render(read(base + ".sql")), tomllib.loads(read(base + ".toml"))["feature"]


def shared_views():
    """The entity views cdp materializes once per build (SHARED_VIEWS in build.rs)."""
    source = read(os.path.join(repo, "crates/cdp-engine/src/build.rs"))
    listed = re.search(r"SHARED_VIEWS: \[&str; \d+\] = \[([^\]]*)\]", source).group(1)
    return re.findall(r'"(\w+)"', listed)


def features_sql(family_source):
    """The final features query, as `features_sql` in build.rs builds it: each
    family (family_source(name, sql) gives what to read) LEFT JOINed onto
    build.customer_360, declared defaults by COALESCE, declared types by CAST
    (lists kept as computed)."""
    sql_types = {"int64": "BIGINT", "float64": "DOUBLE", "decimal": "DECIMAL(18,2)",
                 "string": "VARCHAR", "bool": "BOOLEAN", "date": "DATE"}
    ctes, columns, joins = [], ["c.as_of", "c.unified_id"], []
    for family, sql, features in families():
        alias = f"f_{family}"
        for f in features:
            value = f"{alias}.{f['name']}"
            if "default" in f:
                d = f["default"]
                value = f"COALESCE({value}, {str(d).lower() if isinstance(d, bool) else d})"
            ty = sql_types.get(f["type"])
            columns.append(f"CAST({value} AS {ty}) AS {f['name']}" if ty else f"{value} AS {f['name']}")
        source, cte = family_source(alias, sql)
        joins.append(f"LEFT JOIN {source} {alias} ON {alias}.unified_id = c.unified_id")
        if cte:
            ctes.append(cte)
    sql = "SELECT {}\nFROM build.customer_360 c\n{}".format(",\n       ".join(columns), "\n".join(joins))
    return ("WITH " + ",\n".join(ctes) + "\n" if ctes else "") + sql, len(columns) - 2


def staged():
    """What cdp's features stage runs: the shared entity views computed once,
    each family into a table, then the final join."""
    pre = []
    for view in shared_views():
        pre += [f"CREATE TABLE build.{view}__m AS SELECT * FROM build.{view}",
                f"DROP VIEW build.{view}", f"ALTER TABLE build.{view}__m RENAME TO {view}"]
    pre += [f"CREATE TABLE build.f_{family} AS {sql}" for family, sql, _ in families()]
    sql, count = features_sql(lambda alias, sql: (f"build.{alias}", None))
    return pre, sql, count


def composed():
    """The whole features stage as one query, a CTE per family: DuckDB plans it
    as it likes (it shares CTEs and scans on its own)."""
    sql, count = features_sql(lambda alias, sql: (alias, f"{alias} AS (\n{sql}\n)"))
    return [], sql, count


def manifest(name):
    return json.loads(read(os.path.join(lake, "_manifests", name + ".json")))["body"]


def files(paths):
    """read_parquet over exactly these lake files (no hive columns from the
    `dt=` / `as_of=` / `run=` folder names)."""
    listed = ", ".join("'" + os.path.join(lake, p).replace("'", "''") + "'" for p in paths)
    return f"read_parquet([{listed}], hive_partitioning = false)"


# DuckDB, in its own process: everything but the features query is set-up.
DUCK = r"""
import json, sys, time
import duckdb
job = json.load(open(sys.argv[1]))
started = time.perf_counter()
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
con.execute("SET enable_progress_bar = false")
con.execute(f"SET temp_directory = '{job['temp']}'")
# cdp's sha256_hex(text) (crates/cdp-engine/src/udf.rs) is DuckDB's sha256.
con.execute("CREATE MACRO sha256_hex(x) AS sha256(x)")
for schema in ["bronze", "ref", "build"]:
    con.execute(f"CREATE SCHEMA {schema}")
for source, parts in job["bronze"].items():
    con.execute(f"CREATE VIEW bronze.{source} AS SELECT * FROM {parts}")
for statement in job["setup"]:
    con.execute(statement)
setup = time.perf_counter() - started
started = time.perf_counter()
for statement in job["features_pre"]:
    con.execute(statement)
con.execute(f"COPY ({job['features']}) TO '{job['out']}' (FORMAT parquet, COMPRESSION zstd)")
features = time.perf_counter() - started
rows = con.execute(f"SELECT count(*) FROM read_parquet('{job['out']}')").fetchone()[0]
print(json.dumps({"setup": setup, "features": features, "rows": rows, "threads": con.execute("SELECT current_setting('threads')").fetchone()[0]}))
"""


def main():
    os.makedirs(out, exist_ok=True)
    # 1. cdp build, the whole of it.
    # BENCH_CDP_REPORT=FILE (the build's --json) and BENCH_CDP_RSS_MB reuse a
    # build already measured on this lake instead of running it again.
    reuse = os.environ.get("BENCH_CDP_REPORT")
    if reuse:
        report = json.loads(read(reuse))
        cdp_wall, cdp_rss = report["seconds"]["total"], float(os.environ.get("BENCH_CDP_RSS_MB", "nan"))
    else:
        cdp_wall, cdp_rss, stdout = timed([cdp, "build", "--as-of", as_of, "--lake", lake, "--json"])
        report = json.loads(stdout)
    snapshot = manifest("silver")["snapshots"][as_of]
    silver = {t: snapshot["tables"][t]["files"] for t in ["identity_map", "customer_360", "features"]}

    # 2. DuckDB on the same inputs.
    ref = os.path.join(repo, "pipelines/reference")
    setup = [
        f"CREATE TABLE ref.fx_rates AS SELECT currency, CAST(cny_per_unit AS DECIMAL(18,6)) AS cny_per_unit "
        f"FROM read_csv('{ref}/fx_rates.csv', header = true, all_varchar = true)",
        f"CREATE TABLE ref.mcc_categories AS SELECT mcc, category, description "
        f"FROM read_csv('{ref}/mcc_categories.csv', header = true, all_varchar = true)",
        f"CREATE TABLE ref.card_products AS SELECT offer_id, name, tier, category, "
        f"CAST(annual_fee AS DECIMAL(18,2)) AS annual_fee, CAST(min_income_band AS BIGINT) AS min_income_band "
        f"FROM read_csv('{ref}/card_products.csv', header = true, all_varchar = true)",
    ]
    setup += statements(render(read(os.path.join(repo, "pipelines/views/asof.sql"))))
    # cdp holds the identity map in memory (a MemTable) and reads the
    # customer_360 back from the files it wrote: the same here.
    setup.append(f"CREATE TABLE build.identity_map AS SELECT * FROM {files(silver['identity_map'])}")
    setup += statements(render(read(os.path.join(repo, "pipelines/views/entities.sql"))))
    setup.append(f"CREATE VIEW build.customer_360 AS SELECT * FROM {files(silver['customer_360'])}")
    bronze, parts_count = {}, {}
    for source in ["customers", "transactions", "device_events", "social_profiles", "offer_events", "card_products"]:
        parts = [p["path"] for p in manifest(f"bronze/{source}")["parts"]]
        bronze[source] = files(parts)
        parts_count[source] = len(parts)
    # DuckDB twice, each in a fresh process: the statements cdp runs
    # (staged), and the whole stage as one query that DuckDB plans as it
    # likes (composed). The ratio is against the faster of the two.
    duck = {}
    for form, make in [("staged", staged), ("composed", composed)]:
        pre, sql, features = make()
        job_file = os.path.join(work, f"duckdb_job_{form}.json")
        out_file = os.path.join(out, f"features_{form}.parquet")
        with open(job_file, "w", encoding="utf-8") as f:
            json.dump({"bronze": bronze, "setup": setup, "features_pre": pre, "features": sql, "out": out_file,
                       "temp": os.path.join(work, "duckdb.tmp")}, f)
        with open(os.path.join(work, f"features_duckdb_{form}.sql"), "w", encoding="utf-8") as f:
            f.write(";\n".join(pre + [sql]) + "\n")
        wall, rss, stdout = timed([sys.executable, "-c", DUCK, job_file])
        duck[form] = json.loads(stdout.strip().splitlines()[-1]) | {"wall": wall, "rss": rss, "out": out_file}
    best = min(duck, key=lambda form: duck[form]["features"])
    out_file = duck["staged"]["out"]

    # 3. Same values? Every person on both sides, every feature compared.
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE VIEW a AS SELECT * FROM {files(silver['features'])}")
    con.execute(f"CREATE VIEW b AS SELECT * FROM read_parquet('{out_file}')")
    kinds = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE a)").fetchall())
    names = [n for n in kinds if n not in ("as_of", "unified_id")]

    def differs(n):
        if kinds[n] in ("DOUBLE", "FLOAT"):
            return (f"(a.{n} IS NULL) <> (b.{n} IS NULL) OR (isnan(a.{n}) <> isnan(b.{n})) OR "
                    f"abs(a.{n} - b.{n}) > 1e-9 * greatest(1, abs(a.{n}), abs(b.{n}))")
        return f"a.{n} IS DISTINCT FROM b.{n}"

    numeric = [n for n in names if kinds[n] in ("DOUBLE", "FLOAT", "BIGINT", "INTEGER") or kinds[n].startswith("DECIMAL")]
    counts = con.execute(
        "SELECT count(*) FILTER (WHERE a.unified_id IS NULL), count(*) FILTER (WHERE b.unified_id IS NULL), "
        + ", ".join(f"count(*) FILTER (WHERE a.unified_id IS NOT NULL AND b.unified_id IS NOT NULL AND ({differs(n)}))"
                    for n in names)
        + "".join(f", CAST(max(abs(a.{n} - b.{n})) AS DOUBLE)" for n in numeric)
        + " FROM a FULL OUTER JOIN b ON a.unified_id = b.unified_id").fetchone()
    only_duckdb, only_cdp = counts[0], counts[1]
    mismatches = dict(zip(names, counts[2 : 2 + len(names)]))
    max_diff = dict(zip(numeric, counts[2 + len(names) :]))
    persons = report["persons"]

    stages = report["seconds"]
    print(f"lake: {lake}, as of {as_of}: {persons:,} persons, {report['rows']['features']:,} feature rows, "
          f"{features} features; bronze files " + ", ".join(f"{s} {n}" for s, n in parts_count.items() if n))
    print(f"{'engine':<36}{'features s':>11}{'total s':>9}{'peak RSS MB':>13}")
    print(f"{'cdp build (DataFusion)':<36}{stages['features']:>11.2f}{cdp_wall:>9.2f}{cdp_rss:>13.0f}")
    for form, d in duck.items():
        print(f"{'duckdb ' + duckdb.__version__ + ' ' + form + ' (' + str(d['threads']) + ' threads)':<36}"
              f"{d['features']:>11.2f}{d['wall']:>9.2f}{d['rss']:>13.0f}")
    print("cdp stages s: " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
    ratio = stages["features"] / duck[best]["features"]
    print(f"cdp / duckdb ({best}, the faster) features-stage ratio: {ratio:.2f} (goal <= 1.0); cdp peak RSS {cdp_rss / 1024:.2f} GB (goal < 8)")
    print("mismatches (of {:,} persons; cdp-only {:,}, duckdb-only {:,}): ".format(persons, only_cdp, only_duckdb)
          + ", ".join(f"{n} {mismatches[n]}" for n in CANONICAL))
    others = {n: c for n, c in mismatches.items() if c and n not in CANONICAL}
    print("other features differing: " + (", ".join(
        f"{n} {c}" + (f" (max |diff| {max_diff[n]:.6g})" if n in max_diff else "") for n, c in others.items()) or "none"))

    results = {
        "as_of": as_of, "lake": lake, "persons": persons, "features": features,
        "cdp": {"wall_seconds": cdp_wall, "peak_rss_mb": cdp_rss, "seconds": stages, "rows": report["rows"]},
        "duckdb": {"version": duckdb.__version__, "faster": best} | {
            form: {"threads": d["threads"], "wall_seconds": d["wall"], "peak_rss_mb": d["rss"],
                   "setup_seconds": d["setup"], "features_seconds": d["features"], "rows": d["rows"]}
            for form, d in duck.items()},
        "ratio_features_cdp_over_duckdb": ratio,
        "mismatches": mismatches, "max_abs_diff": max_diff, "only_cdp": only_cdp, "only_duckdb": only_duckdb,
    }
    results_dir = os.path.join(repo, "bench/results")
    os.makedirs(results_dir, exist_ok=True)
    name = os.path.join(results_dir, f"build-{time.strftime('%Y%m%d-%H%M%S')}.json")
    with open(name, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    print(f"results: {os.path.relpath(name, repo)}")


main()
