#!/usr/bin/env python3
"""The Python side of the bank-marketing quality test (bank_marketing.rs).

Usage:
  bank_marketing.py BANK_FULL_CSV OUT_DIR [--drop COLUMN ...] [--threads N]

1. Encodes the UCI table (`;`-separated, quoted strings) as numbers, one
   way for every tool: numeric columns as they are; yes/no columns as 1/0;
   every other text column one-hot, one 0/1 column `name=value` per value
   in sorted order ("unknown" is a value like any other); `y` as the 0/1
   label. Columns named with --drop are left out (`duration` leaks the
   outcome: it is known only after the call).
2. Splits the rows 80/20, stratified on `y`, with scikit-learn's
   `train_test_split(random_state=42)`.
3. Writes OUT_DIR/train.csv and OUT_DIR/test.csv: a header, the label `y`
   first, the features after it; numbers in full precision.
4. Trains XGBoost (binary:logistic, hist, 200 rounds, max_depth 6, eta 0.1,
   N threads, other parameters at their defaults) on train.csv's numbers,
   scores test.csv, writes its test probabilities (float32) to
   OUT_DIR/xgboost_test_pred.txt, one per line, and prints one JSON object:
   {"xgboost", "auc", "train_seconds", "features", "train_rows",
    "test_rows", "params"}.
"""
import csv
import json
import sys
import time
from pathlib import Path

PARAMS = {
    "objective": "binary:logistic",
    "tree_method": "hist",
    "max_depth": 6,
    "eta": 0.1,
    "seed": 42,
}
ROUNDS = 200


def encode(path: Path, drop: set[str]) -> tuple[list[str], "np.ndarray", "np.ndarray"]:
    import numpy as np

    with path.open(newline="") as f:
        rows = list(csv.reader(f, delimiter=";", quotechar='"'))
    header, body = rows[0], rows[1:]
    unknown = drop - set(header)
    if unknown:
        sys.exit(f"--drop: no column {sorted(unknown)} in {path}")
    columns = {name: [r[i] for r in body] for i, name in enumerate(header)}
    labels = np.array([{"yes": 1.0, "no": 0.0}[v] for v in columns.pop("y")])
    names: list[str] = []
    blocks: list[np.ndarray] = []
    for name in header:
        if name == "y" or name in drop:
            continue
        values = columns[name]
        try:
            blocks.append(np.array([float(v) for v in values]))
            names.append(name)
            continue
        except ValueError:
            pass
        levels = sorted(set(values))
        if levels == ["no", "yes"]:
            blocks.append(np.array([1.0 if v == "yes" else 0.0 for v in values]))
            names.append(name)
            continue
        for level in levels:
            blocks.append(np.array([1.0 if v == level else 0.0 for v in values]))
            names.append(f"{name}={level}")
    return names, np.column_stack(blocks), labels


def write(path: Path, names: list[str], x, y) -> None:
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["y", *names])
        for label, row in zip(y, x):
            out.writerow([repr(float(label)), *(repr(float(v)) for v in row)])


def main() -> None:
    args = sys.argv[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    source, out_dir = Path(args[0]), Path(args[1])
    drop: set[str] = set()
    threads = 2
    rest = args[2:]
    while rest:
        flag = rest.pop(0)
        if flag == "--drop" and rest:
            drop.add(rest.pop(0))
        elif flag == "--threads" and rest:
            threads = int(rest.pop(0))
        else:
            sys.exit(f"unknown argument {flag!r}\n{__doc__}")

    import numpy as np
    import xgboost as xgb
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    names, x, y = encode(source, drop)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=42
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    write(out_dir / "train.csv", names, x_train, y_train)
    write(out_dir / "test.csv", names, x_test, y_test)

    # XGBoost reads the same float32 numbers cdp reads from the files.
    dtrain = xgb.DMatrix(x_train.astype(np.float32), label=y_train, feature_names=names)
    dtest = xgb.DMatrix(x_test.astype(np.float32), label=y_test, feature_names=names)
    params = {**PARAMS, "nthread": threads}
    started = time.perf_counter()
    booster = xgb.train(params, dtrain, num_boost_round=ROUNDS)
    seconds = time.perf_counter() - started
    pred = booster.predict(dtest).astype(np.float32)
    with (out_dir / "xgboost_test_pred.txt").open("w") as f:
        f.writelines(f"{float(p)!r}\n" for p in pred)
    print(
        json.dumps(
            {
                "xgboost": xgb.__version__,
                "auc": float(roc_auc_score(y_test, pred)),
                "train_seconds": seconds,
                "features": names,
                "train_rows": int(len(y_train)),
                "test_rows": int(len(y_test)),
                "params": {**params, "num_round": ROUNDS},
            }
        )
    )


if __name__ == "__main__":
    main()
