"""The table of bench/serve.sh: cdp serve vs feast serve, from the JSON
lines of crates/cdp-server/examples/load.rs (one per run, with the run's
name added by serve.sh).

usage: serve_report.py RUNS.jsonl --ready JSON --loadavg TEXT --feast VERSION
                       --feast-workers N --commit SHA

Latencies are in microseconds, from each request's due time in open-loop
runs. Ratios are Feast / cdp for latencies (how many times slower Feast
answers) and cdp / Feast for requests per second.
"""

import argparse
import json
import os

GOALS = {  # run name -> (what, p99 goal in µs)
    "goal-1": ("GetOnlineFeatures 1 entity p99 < 1 ms at {rate}/s", 1000),
    "goal-100": ("GetOnlineFeatures 100 entities p99 < 3 ms", 3000),
    "goal-score": ("ScoreOffers p99 < 2 ms", 2000),
}
COLUMNS = ["requests", "errors", "rps", "p50_us", "p99_us", "p99_9_us", "max_us",
           "server_cpu_us_per_request", "client_cpu_us_per_request"]
HEADERS = ["requests", "errors", "req/s", "p50", "p99", "p99.9", "max", "srv CPU", "gen CPU"]
LINE = "{:<34}{:<14}{:<11}" + "{:>10}" * len(COLUMNS)


def what(r):
    if r["scenario"] == "score":
        return "ScoreOffers 1 customer"
    return f"GetOnlineFeatures {r['entities']} x {r['features']}"


def load(r):
    if r["mode"] == "open-loop":
        return f"{r['rate_target']:,.0f}/s"
    return f"closed, {r['concurrency']}"


def cells(r):
    out = []
    for c in COLUMNS:
        v = r.get(c)
        out.append("-" if v is None else f"{v:,.1f}" if c == "rps" else f"{v:,.0f}")
    return out


def ratio(theirs, ours):
    return f"{theirs / ours:.1f}x" if theirs and ours else "-"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("runs")
    p.add_argument("--ready", required=True)
    p.add_argument("--loadavg", default="?")
    p.add_argument("--feast", default="?")
    p.add_argument("--feast-workers", default="?")
    p.add_argument("--commit", default="?")
    a = p.parse_args()
    with open(a.runs, encoding="utf-8") as f:
        runs = {r["name"]: r for r in map(json.loads, f)}
    ready = json.loads(a.ready)

    print(
        f"cdp serve vs feast serve: {ready['customers']:,} customers x 50 features, snapshot "
        f"{ready['as_of']}, offer model {ready['model']}; loopback, {os.cpu_count()} cores shared "
        f"by the load generator and the servers (load average before / after: {a.loadavg})"
    )
    print(
        f"cdp {a.commit}: gRPC, embedded online store, 4 HTTP/2 connections; Feast {a.feast}: "
        f"HTTP, SQLite online store, gunicorn {a.feast_workers} workers, no access log"
    )
    print("latency in µs; open-loop runs count it from each request's due time (no coordinated omission);")
    print("srv CPU / gen CPU: CPU µs per request of the server (all its processes) / of the load generator,")
    print("  over the measured window, in 10 ms ticks (rough at low rates, where idle work counts too)")
    print()
    print(LINE.format("scenario", "load", "server", *HEADERS))
    for name in ["goal-1", "goal-100", "goal-score"]:
        if name in runs:
            r = runs[name]
            label = what(r) + (f" ({r['first_answer'].split(',')[0]})" if r["scenario"] == "score" else "")
            print(LINE.format(label, load(r), "cdp", *cells(r)))
    for n in ["1", "100", "1-max", "100-max"]:
        ours, theirs = runs.get(f"cdp-{n}"), runs.get(f"feast-{n}")
        if not ours or not theirs:
            continue
        print()
        print(LINE.format(what(ours), load(ours), "cdp", *cells(ours)))
        print(LINE.format("", load(theirs), "Feast", *cells(theirs)))
        rps = ratio(ours["rps"], theirs["rps"]) if ours["mode"] == "closed-loop" else ""
        lat = [ratio(theirs[c], ours[c]) for c in COLUMNS[3:7]]
        cpu = [ratio(theirs.get(c), ours.get(c)) for c in COLUMNS[7:]]
        print(LINE.format("", "", "ratio", "", "", rps, *lat, *cpu))
    print()
    print("ratio: Feast / cdp for latency and CPU; cdp / Feast for requests per second (closed loop)")
    for name, (goal, limit) in GOALS.items():
        r = runs.get(name)
        if not r:
            continue
        rate = r["rate_target"] or 0
        met = r["p99_us"] < limit and r["errors"] == 0 and r["rps"] >= 0.99 * rate
        goal = goal.format(rate=f"{rate:,.0f}")
        print(
            f"goal: {goal}: {'met' if met else 'NOT met'} "
            f"(p99 {r['p99_us']:,} µs, {r['rps']:,.0f} req/s of {rate:,.0f}, {r['errors']} errors)"
        )
    errors = {n: r["errors_by_code"] for n, r in runs.items() if r["errors"]}
    if errors:
        print(f"errors by code: {json.dumps(errors)}")
    lags = max(r["send_lag_p99_us"] for r in runs.values())
    print(f"load generator's own lateness (p99 send - due, worst run): {lags:,} µs")


if __name__ == "__main__":
    main()
