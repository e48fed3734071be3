#!/usr/bin/env python3
"""cdp's gradient-boosted trees vs Python XGBoost (hist) and LightGBM, in one run.

Usage:
  model_compare.py CDP [bank|synthetic ...]      compare (bench/model.sh runs this)
  model_compare.py --xgboost DATA_DIR            the XGBoost side alone (prints JSON)
  model_compare.py --lightgbm DATA_DIR           the LightGBM side alone (prints JSON)

Data sets (made once under bench/results/model/, reused):
  bank       UCI bank marketing (../shared/data/bank-marketing/bank-full.csv),
             encoded and split 80/20 stratified with seed 42 exactly as the
             quality test does (crates/cdp-ml/tests/bank_marketing.py):
             36,168 training and 9,043 test rows x 48 features, duration kept.
  synthetic  SYNTH_ROWS (1,000,000) training and SYNTH_ROWS / 4 test rows x
             SYNTH_COLS (50) float32 features: normal, uniform and count
             columns, 2 % missing (NaN) in five of them, a label drawn from a
             nonlinear rule of 12 features (sines, interactions, thresholds,
             a missing-value effect), about 30 % positive.
Both are written as Parquet (float32 features, label `y` first), the files
every side reads.

Every side gets the same parameters: binary:logistic, 200 rounds, depth 6,
learning rate 0.1, 256 histogram bins, 2 threads, other settings at each
tool's defaults (LightGBM: num_leaves 63, the full depth-6 tree). Each side
runs in its own process, so its peak RSS is its own, and is timed from
inside:

  cdp       `cdp model fit --train train.parquet --label y --param … --json`
            then `cdp model predict --model DIR --input test.parquet --json`
            (the release binary; their JSON reports the seconds spent
            training and scoring, without reading and writing files); peak
            RSS is the larger of the two processes'.
  XGBoost   DMatrix + xgb.train (tree_method hist) timed together (the
            quantile sketch happens in either), then Booster.inplace_predict
            on the test matrix.
  LightGBM  Dataset + lgb.train timed together (binning happens in train),
            then Booster.predict.

The sides alternate REPEAT times (default 3); each side's median run (by
training time) is reported, with the largest peak RSS. Test AUC is
scikit-learn's roc_auc_score on each side's test predictions. Prints a table
per data set with the ratios cdp / XGBoost, and writes every number to
bench/results/model-<time>.json.
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

THREADS = 2
ROUNDS = 200
DEPTH = 6
ETA = 0.1
BINS = 256
REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
DATA = RESULTS / "model"
BANK_CSV = REPO.parent / "shared" / "data" / "bank-marketing" / "bank-full.csv"
ENV = {
    "RAYON_NUM_THREADS": str(THREADS),
    "OMP_NUM_THREADS": str(THREADS),
    "OPENBLAS_NUM_THREADS": str(THREADS),
    "MKL_NUM_THREADS": str(THREADS),
}


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------


def write_parquet(path: Path, names: list[str], x, y) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = [pa.array(y.astype(np.float32))]
    columns += [pa.array(np.ascontiguousarray(x[:, j], dtype=np.float32)) for j in range(x.shape[1])]
    pq.write_table(pa.table(columns, names=["y", *names]), path, compression="zstd")


def bank() -> Path:
    """The bank-marketing split of the quality test, as Parquet."""
    out = DATA / "bank"
    if (out / "test.parquet").exists():
        return out
    from sklearn.model_selection import train_test_split

    spec = importlib.util.spec_from_file_location(
        "bank_marketing", REPO / "crates" / "cdp-ml" / "tests" / "bank_marketing.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    names, x, y = module.encode(BANK_CSV, set())
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=42
    )
    out.mkdir(parents=True, exist_ok=True)
    write_parquet(out / "train.parquet", names, x_train, y_train)
    write_parquet(out / "test.parquet", names, x_test, y_test)
    return out


def synthetic_rows(rng, n: int, cols: int):
    """n rows of the synthetic problem: (features, labels)."""
    import numpy as np

    normal = cols * 3 // 5
    uniform = cols // 5
    counts = cols - normal - uniform
    x = np.empty((n, cols), dtype=np.float32)
    x[:, :normal] = rng.standard_normal((n, normal), dtype=np.float32)
    x[:, normal : normal + uniform] = rng.random((n, uniform), dtype=np.float32)
    x[:, normal + uniform :] = rng.poisson(3.0, (n, counts)).astype(np.float32)
    u = normal  # first uniform column
    c = normal + uniform  # first count column
    margin = (
        1.2 * np.sin(2.0 * x[:, 0])
        + 0.9 * x[:, 1] * x[:, 2]
        + np.where(x[:, 3] > 0.5, 1.0, -0.4)
        + 0.6 * np.abs(x[:, 4])
        - 0.8 * (x[:, u] > 0.7)
        + 1.5 * x[:, u + 1] * x[:, u + 2]
        + 0.25 * np.minimum(x[:, c], 6.0)
        - 0.3 * (x[:, c + 1] == 0)
        + 0.5 * np.tanh(x[:, 5] + x[:, 6])
        + 0.4 * x[:, 7]
        - 2.6
    )
    # 2 % missing in five columns; a missing x[:, 3] itself raises the odds
    for j in (3, 8, 9, u + 3, c + 2):
        x[rng.random(n) < 0.02, j] = np.nan
    margin = np.where(np.isnan(x[:, 3]), margin + 0.8, margin)
    noise = rng.logistic(0.0, 1.0, n)
    y = (margin + noise > 0).astype(np.float32)
    return x, y


def synthetic() -> Path:
    rows = int(os.environ.get("SYNTH_ROWS", "1000000"))
    cols = int(os.environ.get("SYNTH_COLS", "50"))
    out = DATA / f"synthetic-{rows}x{cols}"
    if (out / "test.parquet").exists():
        return out
    import numpy as np

    rng = np.random.default_rng(20261126)
    names = [f"f{j:02d}" for j in range(cols)]
    out.mkdir(parents=True, exist_ok=True)
    x, y = synthetic_rows(rng, rows, cols)
    write_parquet(out / "train.parquet", names, x, y)
    x, y = synthetic_rows(rng, rows // 4, cols)
    write_parquet(out / "test.parquet", names, x, y)
    return out


def load(path: Path):
    """(features float32 row-major, labels) of a Parquet file."""
    import numpy as np
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    y = table.column("y").to_numpy()
    x = np.empty((table.num_rows, table.num_columns - 1), dtype=np.float32)
    for j, name in enumerate(table.column_names[1:]):
        x[:, j] = table.column(name).to_numpy()
    return x, y


# --------------------------------------------------------------------------
# the Python sides (each in its own process)
# --------------------------------------------------------------------------


def xgboost_side(data: Path) -> None:
    import xgboost as xgb
    from sklearn.metrics import roc_auc_score

    x, y = load(data / "train.parquet")
    xt, yt = load(data / "test.parquet")
    params = {
        "objective": "binary:logistic",
        "tree_method": "hist",
        "max_depth": DEPTH,
        "eta": ETA,
        "max_bin": BINS,
        "nthread": THREADS,
    }
    started = time.perf_counter()
    booster = xgb.train(params, xgb.DMatrix(x, label=y, nthread=THREADS), num_boost_round=ROUNDS)
    train = time.perf_counter() - started
    started = time.perf_counter()
    p = booster.inplace_predict(xt)
    score = time.perf_counter() - started
    print(
        json.dumps(
            {
                "version": xgb.__version__,
                "train_seconds": train,
                "score_seconds": score,
                "auc": float(roc_auc_score(yt, p)),
            }
        )
    )


def lightgbm_side(data: Path) -> None:
    import lightgbm as lgb
    from sklearn.metrics import roc_auc_score

    x, y = load(data / "train.parquet")
    xt, yt = load(data / "test.parquet")
    params = {
        "objective": "binary",
        "num_leaves": 2**DEPTH - 1,
        "max_depth": DEPTH,
        "learning_rate": ETA,
        "max_bin": BINS - 1,
        "num_threads": THREADS,
        "verbose": -1,
    }
    started = time.perf_counter()
    booster = lgb.train(params, lgb.Dataset(x, label=y), num_boost_round=ROUNDS)
    train = time.perf_counter() - started
    started = time.perf_counter()
    p = booster.predict(xt, num_threads=THREADS)
    score = time.perf_counter() - started
    print(
        json.dumps(
            {
                "version": lgb.__version__,
                "train_seconds": train,
                "score_seconds": score,
                "auc": float(roc_auc_score(yt, p)),
            }
        )
    )


# --------------------------------------------------------------------------
# running and timing
# --------------------------------------------------------------------------


def run_rss(cmd: list[str]) -> tuple[dict, float]:
    """Runs one process; returns its JSON report and its own peak RSS in MB."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env={**os.environ, **ENV})
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        if status != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace")[-3000:]
            sys.exit(f"{' '.join(cmd[:4])} ... failed (status {status}):\n{tail}")
    return json.loads(out), usage.ru_maxrss / 1024


def seconds_field(report: dict, *names: str) -> float:
    """The first of `names` present in cdp's JSON report (top level or under
    "seconds")."""
    for name in names:
        for scope in (report, report.get("seconds", {})):
            if isinstance(scope, dict) and name in scope:
                return float(scope[name])
    sys.exit(f"cdp's report has none of {names}: {json.dumps(report)[:2000]}")


def cdp_side(cdp: str, data: Path) -> tuple[dict, float]:
    """cdp model fit, then cdp model predict; one report, the larger RSS."""
    import pyarrow.parquet as pq
    from sklearn.metrics import roc_auc_score

    # the model stays in DATA_DIR/cdp-model (bench/model.sh times single-row
    # predictions with it)
    model = data / "cdp-model"
    shutil.rmtree(model, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="cdp-bench-model-") as work:
        pred = Path(work) / "pred.parquet"
        params = [
            "objective=binary:logistic",
            f"num_round={ROUNDS}",
            f"max_depth={DEPTH}",
            f"eta={ETA}",
            f"max_bin={BINS}",
            "tree_method=hist",
            f"nthread={THREADS}",
        ]
        fit_cmd = [cdp, "model", "fit", "--train", str(data / "train.parquet"), "--label", "y"]
        for p in params:
            fit_cmd += ["--param", p]
        fit_cmd += ["--out", str(model), "--json"]
        fit, fit_rss = run_rss(fit_cmd)
        predict, predict_rss = run_rss(
            [
                cdp, "model", "predict", "--model", str(model),
                "--input", str(data / "test.parquet"), "--out", str(pred), "--json",
            ]
        )
        p = pq.read_table(pred).column("prediction").to_numpy()
    _, yt = load(data / "test.parquet")
    return (
        {
            "train_seconds": seconds_field(fit, "train_seconds", "training_seconds", "train", "fit"),
            "score_seconds": seconds_field(predict, "score_seconds", "scoring_seconds", "predict", "score"),
            "auc": float(roc_auc_score(yt, p)),
            "fit_rss_mb": fit_rss,
            "predict_rss_mb": predict_rss,
            "fit_report": fit,
            "predict_report": predict,
        },
        max(fit_rss, predict_rss),
    )


def median(runs: list[tuple[dict, float]]) -> tuple[dict, float]:
    """The run with the median training time, and the largest peak RSS."""
    ordered = sorted(runs, key=lambda r: r[0]["train_seconds"])
    return ordered[len(ordered) // 2][0], max(rss for _, rss in runs)


def compare(cdp: str, name: str, data: Path, repeat: int) -> dict:
    import pyarrow.parquet as pq

    train_rows = pq.read_metadata(data / "train.parquet").num_rows
    test_rows = pq.read_metadata(data / "test.parquet").num_rows
    features = pq.read_metadata(data / "train.parquet").num_columns - 1
    sides = {"cdp": [], "XGBoost": [], "LightGBM": []}
    for _ in range(repeat):
        sides["XGBoost"].append(run_rss([sys.executable, __file__, "--xgboost", str(data)]))
        sides["LightGBM"].append(run_rss([sys.executable, __file__, "--lightgbm", str(data)]))
        sides["cdp"].append(cdp_side(cdp, data))
    picked = {side: median(runs) for side, runs in sides.items()}

    load = os.getloadavg()[0]
    print()
    print(
        f"{name}: {train_rows:,} training / {test_rows:,} test rows x {features} features; "
        f"{ROUNDS} rounds, depth {DEPTH}, eta {ETA}, {THREADS} threads; "
        f"median of {repeat} alternating runs; load average {load:.1f} at the end"
    )
    print(f"{'':18}{'train s':>9}{'score s':>10}{'test AUC':>10}{'peak RSS MB':>13}")
    for side, (r, rss) in picked.items():
        label = f"{side} {r['version']}" if "version" in r else side
        print(f"{label:18}{r['train_seconds']:9.2f}{r['score_seconds']:10.4f}{r['auc']:10.4f}{rss:13.0f}")
    for side, runs in sides.items():
        print(
            f"  {side} every run (train s, score s): "
            + ", ".join(f"{r['train_seconds']:.2f}, {r['score_seconds']:.4f}" for r, _ in runs)
        )
    ours, our_rss = picked["cdp"]
    xgb, xgb_rss = picked["XGBoost"]
    print(
        "cdp / XGBoost: train {:.2f}x, batch score {:.2f}x, peak RSS {:.2f}x, AUC {:+.4f}".format(
            ours["train_seconds"] / xgb["train_seconds"],
            ours["score_seconds"] / xgb["score_seconds"],
            our_rss / xgb_rss,
            ours["auc"] - xgb["auc"],
        )
    )
    if "fit_rss_mb" in ours:
        print(f"cdp peak RSS: fit {ours['fit_rss_mb']:.0f} MB, predict {ours['predict_rss_mb']:.0f} MB")
    return {
        "data": name,
        "train_rows": train_rows,
        "test_rows": test_rows,
        "features": features,
        "repeat": repeat,
        "load_average": load,
        "sides": {side: {**r, "peak_rss_mb": rss} for side, (r, rss) in picked.items()},
        "runs": {side: [{**r, "peak_rss_mb": rss} for r, rss in runs] for side, runs in sides.items()},
    }


def main() -> None:
    if sys.argv[1] == "--xgboost":
        xgboost_side(Path(sys.argv[2]))
        return
    if sys.argv[1] == "--lightgbm":
        lightgbm_side(Path(sys.argv[2]))
        return
    cdp = sys.argv[1]
    which = sys.argv[2:] or ["bank", "synthetic"]
    repeat = int(os.environ.get("REPEAT", "3"))
    results = []
    for name in which:
        started = time.perf_counter()
        data = {"bank": bank, "synthetic": synthetic}[name]()
        print(f"{name} data ready in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        results.append(compare(cdp, name, data, repeat))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"model-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps({"threads": THREADS, "rounds": ROUNDS, "depth": DEPTH, "results": results}, indent=2))
    print(f"\nnumbers: {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
