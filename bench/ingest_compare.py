"""Runs cdp ingest, DuckDB and Python polars on the same CSV file and prints
wall time, peak RSS, rows/s, MB/s and the ratios to cdp. Each tool runs in
its own process under /usr/bin/time -v, twice; the faster run counts (the
first warms the page cache)."""

import json
import os
import re
import shutil
import subprocess
import sys

cdp, csv_file, work = sys.argv[1], sys.argv[2], sys.argv[3]
size_mb = os.path.getsize(csv_file) / 1e6
out = os.path.join(work, "out")


def timed(cmd):
    best = None
    for _ in range(2):
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        proc = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"{cmd[0]} failed: {proc.stderr[-2000:]}")
        wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", proc.stderr)
        h, m, s = wall.groups()
        seconds = int(h or 0) * 3600 + int(m) * 60 + float(s)
        rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1)) / 1024
        if best is None or seconds < best[0]:
            best = (seconds, rss, proc.stdout)
    return best


duck = f"""
import duckdb
con = duckdb.connect()
con.execute("SET threads TO 2")
con.execute("COPY (SELECT * FROM read_csv('{csv_file}')) TO '{out}/duckdb.parquet' (FORMAT parquet, COMPRESSION zstd)")
print(con.execute("SELECT count(*) FROM '{out}/duckdb.parquet'").fetchone()[0])
"""
pl = f"""
import os
os.environ["POLARS_MAX_THREADS"] = "2"
import polars as pl
pl.scan_csv('{csv_file}').sink_parquet('{out}/polars.parquet', compression='zstd')
print(pl.scan_parquet('{out}/polars.parquet').select(pl.len()).collect().item())
"""

results = {}
seconds, rss, stdout = timed([cdp, "ingest", "--json", "--source", os.path.dirname(csv_file), "--lake", out + "/lake"])
report = json.loads(stdout)["sources"]["transactions"]
rows = report["read"]
results["cdp ingest"] = (seconds, rss)
results["duckdb read_csv -> parquet"] = timed([sys.executable, "-c", duck])[:2]
results["polars scan_csv -> sink_parquet"] = timed([sys.executable, "-c", pl])[:2]

print(f"file: {csv_file} ({size_mb:.0f} MB, {rows:,} rows; cdp accepted {report['accepted']:,}, "
      f"duplicates {report['duplicates']:,}, quarantined {report['quarantined']:,})")
print(f"{'tool':<34}{'wall s':>9}{'peak RSS MB':>13}{'rows/s':>13}{'MB/s':>8}{'vs cdp':>9}")
base = results["cdp ingest"][0]
for tool, (s, r) in results.items():
    print(f"{tool:<34}{s:>9.2f}{r:>13.0f}{rows / s:>13,.0f}{size_mb / s:>8.0f}{s / base:>9.2f}")
print(f"cdp / duckdb wall-time ratio: {base / results['duckdb read_csv -> parquet'][0]:.2f} (goal <= 1.5)")
