#!/usr/bin/env python3
"""cdp's tagger vs scikit-learn PCA + KMeans on the same matrix, in one run.

Usage:
  tag_compare.py CDP_TAG_MATRIX ROWS COLS [K] [COMPONENTS]   compare (bench/tag.sh runs this)
  tag_compare.py --sklearn MATRIX K COMPONENTS LABELS_OUT    the scikit-learn side alone

The matrix (ROWS x COLS float64, generated once into bench/results/tag/ and
reused) has K planted groups in a 10-dimensional latent space mixed into
COLS features with noise; a quarter of the columns are heavy-tailed and
non-negative, like amounts. Each side runs in its own process with two
threads and is timed from inside (matrix already in memory), so its peak
RSS is its own:

  cdp           Tagger::fit (robust standardisation, PCA, k-means seeded on
                a sample, names, drift baseline) + Tagger::apply
                (crates/cdp-ml/examples/tag_matrix.rs)
  scikit-learn  StandardScaler + PCA(n_components) + KMeans(K) fit, then
                transform + predict

The sides alternate REPEAT times (default 3); each side's median run is
reported. Prints both sides' fit, apply and total seconds, peak RSS, the
ratios, and how well each recovered the planted groups (adjusted Rand
index).
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

THREADS = "2"
RESULTS = Path(__file__).resolve().parent / "results" / "tag"


def generate(rows: int, cols: int, k: int) -> tuple[Path, Path]:
    """The matrix and its planted labels, made once per shape."""
    import numpy as np

    RESULTS.mkdir(parents=True, exist_ok=True)
    matrix = RESULTS / f"matrix-{rows}x{cols}-k{k}.npy"
    truth = RESULTS / f"truth-{rows}x{cols}-k{k}.npy"
    if matrix.exists() and truth.exists():
        return matrix, truth
    rng = np.random.default_rng(7)
    latent = 10
    centres = rng.normal(0.0, 2.0, (k, latent))
    weights = rng.uniform(0.5, 1.5, k)
    labels = rng.choice(k, size=rows, p=weights / weights.sum())
    z = centres[labels] + rng.normal(0.0, 1.0, (rows, latent))
    mixing = rng.normal(0.0, 1.0, (latent, cols))
    x = z @ mixing
    x += rng.normal(0.0, 0.5, (rows, cols))
    heavy = cols // 4
    x[:, :heavy] = np.exp(x[:, :heavy] / x[:, :heavy].std(axis=0))
    np.save(matrix, np.ascontiguousarray(x, dtype=np.float64))
    np.save(truth, labels.astype(np.int64))
    return matrix, truth


def sklearn_side(matrix: str, k: int, components: int, labels_out: str) -> None:
    """Runs in its own process: prints the scikit-learn timings as JSON."""
    import numpy as np
    import sklearn
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=int(THREADS)):
        started = time.perf_counter()
        x = np.load(matrix)
        load = time.perf_counter() - started

        started = time.perf_counter()
        scaler = StandardScaler().fit(x)
        z = scaler.transform(x)
        pca = PCA(n_components=components, random_state=0).fit(z)
        scores = pca.transform(z)
        del z
        kmeans = KMeans(n_clusters=k, n_init="auto", random_state=0).fit(scores)
        fit = time.perf_counter() - started

        started = time.perf_counter()
        labels = kmeans.predict(pca.transform(scaler.transform(x)))
        apply = time.perf_counter() - started
    np.save(labels_out, labels.astype(np.int64))
    print(
        json.dumps(
            {
                "sklearn": sklearn.__version__,
                "solver": pca._fit_svd_solver,
                "seconds": {"load": load, "fit": fit, "apply": apply},
                "components": int(pca.n_components_),
                "explained_variance_ratio": float(pca.explained_variance_ratio_.sum()),
                "iterations": int(kmeans.n_iter_),
                "mean_squared_distance": float(kmeans.inertia_ / x.shape[0]),
            }
        )
    )


def run(cmd: list[str], env: dict[str, str]) -> tuple[dict, float]:
    """Runs one side; returns its JSON report and its own peak RSS in MB."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env={**os.environ, **env})
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        sys.exit(f"{cmd[0]} failed with status {status}")
    return json.loads(out), usage.ru_maxrss / 1024


def median(runs: list[tuple[dict, float]]) -> tuple[dict, float]:
    """The run with the median total time, and the largest peak RSS."""
    ordered = sorted(runs, key=lambda r: r[0]["seconds"]["fit"] + r[0]["seconds"]["apply"])
    return ordered[len(ordered) // 2][0], max(rss for _, rss in runs)


def ari(a, b) -> float:
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(a, b))


def main() -> None:
    if sys.argv[1] == "--sklearn":
        sklearn_side(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
        return
    import numpy as np

    cdp, rows, cols = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    k = int(sys.argv[4]) if len(sys.argv) > 4 else 8
    components = int(sys.argv[5]) if len(sys.argv) > 5 else 10
    started = time.perf_counter()
    matrix, truth = generate(rows, cols, k)
    print(f"matrix {matrix.name} ready in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    labels_cdp = RESULTS / "labels-cdp.npy"
    labels_sk = RESULTS / "labels-sklearn.npy"
    threads = {
        "RAYON_NUM_THREADS": THREADS,
        "OMP_NUM_THREADS": THREADS,
        "OPENBLAS_NUM_THREADS": THREADS,
        "MKL_NUM_THREADS": THREADS,
    }
    # Alternate the sides REPEAT times and keep each side's median run (by
    # total time): another job on the machine then slows both alike.
    repeat = int(os.environ.get("REPEAT", "3"))
    sk_runs, our_runs = [], []
    for _ in range(repeat):
        sk_runs.append(
            run(
                [sys.executable, __file__, "--sklearn", str(matrix), str(k), str(components), str(labels_sk)],
                threads,
            )
        )
        our_runs.append(run([cdp, str(matrix), str(k), str(components), str(labels_cdp)], threads))
    sk, sk_rss = median(sk_runs)
    ours, our_rss = median(our_runs)
    planted = np.load(truth)
    a, b = np.load(labels_cdp), np.load(labels_sk)

    def total(r: dict) -> float:
        return r["seconds"]["fit"] + r["seconds"]["apply"]

    load = os.getloadavg()[0]
    print(
        f"{rows:,} x {cols} features -> {components} components, k = {k}, {THREADS} threads; "
        f"median of {repeat} alternating runs; load average {load:.1f} at the end"
    )
    print(f"{'':14}{'fit s':>9}{'apply s':>9}{'total s':>9}{'peak RSS MB':>13}{'ARI planted':>13}")
    for name, r, rss, labels in [("cdp", ours, our_rss, a), (f"scikit-learn", sk, sk_rss, b)]:
        s = r["seconds"]
        print(
            f"{name:14}{s['fit']:9.2f}{s['apply']:9.2f}{total(r):9.2f}{rss:13.0f}{ari(planted, labels):13.3f}"
        )
    for name, runs in [("cdp", our_runs), ("scikit-learn", sk_runs)]:
        print(
            f"  {name} every run (fit + apply s): "
            + ", ".join(f"{r['seconds']['fit']:.2f} + {r['seconds']['apply']:.2f}" for r, _ in runs)
        )
    print(
        "scikit-learn / cdp time: fit {:.2f}x, apply {:.2f}x, total {:.2f}x".format(
            sk["seconds"]["fit"] / ours["seconds"]["fit"],
            sk["seconds"]["apply"] / ours["seconds"]["apply"],
            total(sk) / total(ours),
        )
    )
    print(
        f"scikit-learn {sk['sklearn']} PCA solver {sk['solver']}, KMeans {sk['iterations']} iterations; "
        f"variance kept: cdp {ours['explained_variance_ratio']:.4f} (robust scaling), "
        f"scikit-learn {sk['explained_variance_ratio']:.4f}; ARI cdp vs scikit-learn {ari(a, b):.3f}"
    )
    print("cdp fit stages (s): " + ", ".join(f"{k} {v:.2f}" for k, v in ours["fit_stages"].items()))
    print("cdp apply stages (s): " + ", ".join(f"{k} {v:.2f}" for k, v in ours["apply_stages"].items()))


if __name__ == "__main__":
    main()
