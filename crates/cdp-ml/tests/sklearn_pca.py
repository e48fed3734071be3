#!/usr/bin/env python3
"""scikit-learn's PCA of a saved matrix, for cdp-ml's parity test.

Usage: sklearn_pca.py MATRIX.npy VARIANCE_TARGET > reference.json

Prints the full-SVD PCA (explained variance and ratios, components, mean,
the scores of the first rows) and the number of components scikit-learn
keeps for n_components=VARIANCE_TARGET, as JSON on stdout.
"""
import json
import sys

import numpy as np
import sklearn
from sklearn.decomposition import PCA


def main() -> None:
    x = np.load(sys.argv[1])
    target = float(sys.argv[2])
    full = PCA(svd_solver="full").fit(x)
    chosen = PCA(n_components=target, svd_solver="full").fit(x)
    json.dump(
        {
            "sklearn": sklearn.__version__,
            "rows": int(x.shape[0]),
            "explained_variance": full.explained_variance_.tolist(),
            "explained_variance_ratio": full.explained_variance_ratio_.tolist(),
            "components": full.components_.tolist(),
            "mean": full.mean_.tolist(),
            "scores_head": full.transform(x[:5]).tolist(),
            "n_components_for_target": int(chosen.n_components_),
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
