#!/usr/bin/env bash
# Model benchmark: cdp's gradient-boosted trees (`cdp model fit` / `cdp model
# predict`, release build) vs Python XGBoost (hist) and LightGBM, two threads
# each, in one run: training seconds, batch-scoring seconds, test AUC and peak
# RSS on UCI bank marketing and on a generated 1,000,000 x 50 set (200 rounds,
# depth 6, eta 0.1), with the ratios cdp / XGBoost; then single-row
# prediction latency in-process (crates/cdp-ml/examples/predict_latency.rs).
#
# Usage: bench/model.sh [bank] [synthetic]   (default both; REPEAT=3 runs each,
# SYNTH_ROWS / SYNTH_COLS change the generated set's shape). The data sets are
# written once under bench/results/model/ (git-ignored) and reused.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

python3 -c "import xgboost, lightgbm, sklearn, pyarrow, numpy" 2>/dev/null \
  || python3 -m pip install -q xgboost lightgbm scikit-learn pyarrow numpy
release_build
mkdir -p bench/results
out="bench/results/model-$(date +%Y%m%d-%H%M%S).txt"
{
  python3 bench/model_compare.py "$release/cdp" "$@"
  # Single rows on one thread, batches on two; the serving-sized model the
  # example fits, then the model cdp just trained on the generated set.
  export RAYON_NUM_THREADS=2
  echo
  echo "in-process prediction (crates/cdp-ml/examples/predict_latency.rs):"
  "$release/examples/predict_latency"
  for model in bench/results/model/synthetic-*/cdp-model; do
    [ -d "$model" ] || continue
    echo "with $model:"
    "$release/examples/predict_latency" "$model"
  done
} 2>&1 | tee "$out"
