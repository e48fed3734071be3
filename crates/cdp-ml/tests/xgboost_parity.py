#!/usr/bin/env python3
"""The Python XGBoost side of cdp-ml's parity test (xgboost_parity.rs).

Usage:
  xgboost_parity.py reference BANK_FULL_CSV OUT_DIR
  xgboost_parity.py score MODEL_JSON X_NPY OUT_NPY

`reference` trains XGBoost models on data with missing values and writes,
per case, into OUT_DIR:
  <case>.json          the model, Booster.save_model (XGBoost's JSON)
  <case>.x.npy         the rows to score (float32, NaN = missing)
  <case>.margin.npy    Booster.predict(output_margin=True) of those rows
  <case>.contribs.npy  Booster.predict(pred_contribs=True), bias last
and prints {"xgboost": version, "cases": [names]} as JSON.

Cases:
  bank_logistic   UCI bank-marketing (every numeric column, yes/no as 1/0,
                  other text columns as integer codes in sorted order;
                  pdays -1, "never contacted", as missing, and 5% of
                  balance and campaign blanked at random), binary:logistic,
                  200 rounds, depth 6, eta 0.1, hist; trained on 10,000
                  rows, scored on 2,000 others
  bank_names      the same data with feature names, lossguide growth,
                  subsampling, early stopping on a validation set
  synth_regression  a synthetic regression (8 features, 20% missing),
                  reg:squarederror, 100 rounds, depth 6, L1/L2, gamma
  synth_logistic  a synthetic binary target on the same features,
                  scale_pos_weight 3, 80 rounds, max_depth 4
  synth_dart      dart booster (rate_drop 0.1), binary:logistic
XGBoost trains on one thread: its OpenMP workers spin while they wait, so
on a machine busy with other work two threads can take minutes (and one
thread gives the same model).

`score` loads any XGBoost JSON model file (e.g. one cdp wrote) and writes
Booster.predict(output_margin=True) of the rows in X_NPY to OUT_NPY.
"""
import csv
import json
import sys
from pathlib import Path

import numpy as np
import xgboost as xgb


def bank(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    with path.open(newline="") as f:
        rows = list(csv.reader(f, delimiter=";", quotechar='"'))
    header, body = rows[0], rows[1:]
    columns = {name: [r[i] for r in body] for i, name in enumerate(header)}
    labels = np.array([{"yes": 1.0, "no": 0.0}[v] for v in columns.pop("y")], dtype=np.float32)
    names, values = [], []
    for name, cells in columns.items():
        try:
            numbers = [float(c) for c in cells]
        except ValueError:
            if set(cells) <= {"yes", "no"}:
                numbers = [1.0 if c == "yes" else 0.0 for c in cells]
            else:
                codes = {v: i for i, v in enumerate(sorted(set(cells)))}
                numbers = [float(codes[c]) for c in cells]
        column = np.array(numbers, dtype=np.float32)
        if name == "pdays":
            column[column == -1] = np.nan
        names.append(name)
        values.append(column)
    x = np.stack(values, axis=1)
    rng = np.random.default_rng(7)
    for name in ("balance", "campaign"):
        j = names.index(name)
        x[rng.random(len(x)) < 0.05, j] = np.nan
    return names, x, labels


def synthetic(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 8)).astype(np.float32)
    x[:, 3] = np.round(x[:, 3] * 3)  # a coarse, tie-heavy column
    x[:, 5] = np.exp(x[:, 5])  # a skewed one
    signal = np.sin(2 * x[:, 0]) + x[:, 1] * x[:, 2] + 0.5 * np.abs(x[:, 3]) - 0.3 * x[:, 5]
    missing = rng.random(x.shape) < 0.2
    x[missing] = np.nan
    noisy = signal + rng.normal(scale=0.3, size=rows)
    y_reg = noisy.astype(np.float32)
    y_bin = (noisy > np.quantile(noisy, 0.75)).astype(np.float32)
    return x, y_reg, y_bin


def write_case(out: Path, case: str, booster: xgb.Booster, x: np.ndarray, names=None) -> None:
    booster.save_model(str(out / f"{case}.json"))
    d = xgb.DMatrix(x, missing=np.nan, feature_names=names)
    np.save(out / f"{case}.x.npy", x.astype(np.float32))
    np.save(out / f"{case}.margin.npy", booster.predict(d, output_margin=True).astype(np.float32))
    np.save(out / f"{case}.contribs.npy", booster.predict(d, pred_contribs=True).astype(np.float32))


def reference(bank_csv: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    cases = []

    names, x, y = bank(bank_csv)
    order = np.random.default_rng(42).permutation(len(x))
    train, valid, test = order[:10_000], order[10_000:13_000], order[13_000:15_000]
    params = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": 6,
              "eta": 0.1, "seed": 42, "nthread": 1}
    dtrain = xgb.DMatrix(x[train], label=y[train], missing=np.nan)
    booster = xgb.train(params, dtrain, 200)
    write_case(out, "bank_logistic", booster, x[test])
    cases.append("bank_logistic")

    dtrain = xgb.DMatrix(x[train], label=y[train], missing=np.nan, feature_names=names)
    dvalid = xgb.DMatrix(x[valid], label=y[valid], missing=np.nan, feature_names=names)
    named = dict(params, grow_policy="lossguide", max_leaves=24, max_depth=0, subsample=0.8,
                 colsample_bytree=0.7, min_child_weight=2, eval_metric="logloss")
    booster = xgb.train(named, dtrain, 300, evals=[(dvalid, "valid")], early_stopping_rounds=10,
                        verbose_eval=False)
    write_case(out, "bank_names", booster, x[test], names)
    cases.append("bank_names")

    x, y_reg, y_bin = synthetic(5_000, 3)
    fit, score = slice(0, 4_000), slice(4_000, None)
    d = xgb.DMatrix(x[fit], label=y_reg[fit], missing=np.nan)
    booster = xgb.train({"objective": "reg:squarederror", "max_depth": 6, "eta": 0.1,
                         "lambda": 2.0, "alpha": 0.5, "gamma": 0.1, "min_child_weight": 3,
                         "max_bin": 64, "seed": 1, "nthread": 1}, d, 100)
    write_case(out, "synth_regression", booster, x[score])
    cases.append("synth_regression")

    d = xgb.DMatrix(x[fit], label=y_bin[fit], missing=np.nan)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 4, "eta": 0.2,
                         "scale_pos_weight": 3.0, "seed": 1, "nthread": 1}, d, 80)
    write_case(out, "synth_logistic", booster, x[score])
    cases.append("synth_logistic")

    booster = xgb.train({"booster": "dart", "objective": "binary:logistic", "max_depth": 4,
                         "eta": 0.2, "rate_drop": 0.1, "seed": 1, "nthread": 1}, d, 40)
    write_case(out, "synth_dart", booster, x[score])
    cases.append("synth_dart")

    json.dump({"xgboost": xgb.__version__, "cases": cases}, sys.stdout)


def score(model: Path, x_npy: Path, out: Path) -> None:
    booster = xgb.Booster(model_file=str(model))
    x = np.load(x_npy)
    names = booster.feature_names
    d = xgb.DMatrix(x, missing=np.nan, feature_names=names)
    np.save(out, booster.predict(d, output_margin=True).astype(np.float32))
    json.dump({"xgboost": xgb.__version__, "feature_names": names}, sys.stdout)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "reference":
        reference(Path(sys.argv[2]), Path(sys.argv[3]))
    elif len(sys.argv) == 5 and sys.argv[1] == "score":
        score(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
