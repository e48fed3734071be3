#!/usr/bin/env bash
# Tagger benchmark: cdp's Tagger fit + apply (robust standardisation, PCA,
# k-means, names, drift baseline) vs scikit-learn StandardScaler + PCA +
# KMeans, on the same ROWS x COLS matrix (default 1,000,000 x 40, 10
# components, k = 8), two threads each, in one run; prints both sides'
# seconds, peak RSS, the ratio and how well each recovers the planted groups.
# The matrix is generated once into bench/results/tag/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
rows="${1:-1000000}"
cols="${2:-40}"
source bench/lib.sh

python3 -c "import sklearn, numpy, threadpoolctl" 2>/dev/null || pip install -q scikit-learn numpy threadpoolctl
release_build
mkdir -p bench/results
python3 bench/tag_compare.py "$release/examples/tag_matrix" "$rows" "$cols" \
  | tee "bench/results/tag-$(date +%Y%m%d-%H%M%S).txt"
