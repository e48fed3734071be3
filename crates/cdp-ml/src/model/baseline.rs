//! Baselines behind the [`Model`] trait, on smartcore 0.7: a random forest
//! and a logistic regression, so `cdp train --algo` can show what the
//! gradient-boosted trees add.
//!
//! **Missing values.** smartcore has none: every `NaN` is replaced by its
//! feature's training mean (over the rows where it is present; 0 for a
//! feature never present), both when fitting and when scoring. The means
//! are part of the model's payload.
//!
//! **Random forest** ([`RandomForestLearner`], [`Algo::RandomForest`]): a
//! probability forest. smartcore's forest classifier only votes, so the
//! forest is smartcore's `RandomForestRegressor` fitted on the 0/1 labels:
//! each leaf holds its rows' positive rate and the forest averages the
//! leaves, which is scikit-learn's `RandomForestClassifier.predict_proba`
//! (variance reduction on 0/1 labels is Gini reduction). [`Model::predict`]
//! gives that probability `p`; the margin is `logit(p)` with `p` clipped to
//! `[1e-6, 1 − 1e-6]` (so margins stay within ±13.8). With
//! `objective=reg:squarederror` the forest averages any numeric label and
//! margin and prediction are that average. Trees are fitted in fixed groups
//! of [`TREES_PER_GROUP`] on all rayon threads; each group has its own seed
//! derived from `seed`, so a seed gives the same forest on any number of
//! cores. No per-feature contributions ([`Error::Unsupported`]); the
//! importance is smartcore's impurity share (see [`Model::importance`] on
//! [`ForestModel`]). Scoring a row builds a one-row smartcore matrix (the
//! forest is a baseline, not the serving path).
//!
//! Parameters: `n_trees` (100), `max_depth` (12; 0 = unlimited),
//! `min_samples_leaf` (5), `min_samples_split` (2), `max_features` (split
//! candidates per node; default ⌊√features⌋), `seed` (0), `objective`
//! (`binary:logistic`).
//!
//! **Logistic regression** ([`LogisticLearner`], [`Algo::Logistic`]):
//! features standardised with the training mean and (population) standard
//! deviation (a constant feature gets scale 1), then smartcore's L-BFGS
//! logistic regression with an L2 penalty `alpha/2 · |w|²` on the summed
//! log-loss (scikit-learn's `C = 1/alpha`; the intercept is not penalised).
//! The margin is the log-odds; contributions are exact:
//! `coef_j · (x_j − mean_j) / scale_j` per feature (0 for a missing value)
//! and the intercept as the bias, which is the margin of a row at the
//! training mean. Margins are computed here from the stored coefficients,
//! without allocating.
//!
//! Parameters: `alpha` (1.0), `objective` (`binary:logistic` only).
//!
//! Both refuse unknown parameters, labels other than 0/1 under
//! `binary:logistic`, and training data with one class.

use std::fmt;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use smartcore::ensemble::random_forest_regressor::{
    RandomForestRegressor, RandomForestRegressorParameters,
};
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::logistic_regression::{LogisticRegression, LogisticRegressionParameters};
use tracing::{debug, instrument};

use crate::error::{Error, Result};
use crate::eval;
use crate::model::{
    Algo, Contributions, Dataset, FeatureImportance, Learner, Model, Objective, Params,
};

/// Trees fitted together as one smartcore forest (one rayon task).
pub const TREES_PER_GROUP: usize = 10;

/// Forest probabilities are clipped to `[PROBABILITY_EPS, 1 − PROBABILITY_EPS]`
/// before taking the logit for the margin.
pub const PROBABILITY_EPS: f64 = 1e-6;

/// Rows per parallel scoring task.
const SCORE_CHUNK_ROWS: usize = 4096;

const FOREST_PARAMS: &[&str] = &[
    "n_trees",
    "max_depth",
    "min_samples_leaf",
    "min_samples_split",
    "max_features",
    "seed",
    "objective",
];

const LOGISTIC_PARAMS: &[&str] = &["alpha", "objective"];

/// The training mean of every feature, over the rows where it is present
/// (0 for a feature never present): what a missing value becomes.
fn column_means(data: &Dataset) -> Vec<f64> {
    let cols = data.n_features();
    let mut sums = vec![(0.0f64, 0usize); cols];
    for row in data.values().chunks_exact(cols) {
        for (s, &v) in sums.iter_mut().zip(row) {
            if !v.is_nan() {
                s.0 += f64::from(v);
                s.1 += 1;
            }
        }
    }
    sums.iter()
        .map(|&(sum, n)| if n == 0 { 0.0 } else { sum / n as f64 })
        .collect()
}

/// Row-major `rows` with every `NaN` replaced by its column's mean.
fn impute(rows: &[f32], means: &[f64]) -> Vec<f32> {
    let cols = means.len();
    let mut out = rows.to_vec();
    for row in out.chunks_exact_mut(cols) {
        for (v, &m) in row.iter_mut().zip(means) {
            if v.is_nan() {
                *v = m as f32;
            }
        }
    }
    out
}

/// Refuse a batch whose length is not a whole number of rows.
fn check_rows(rows: &[f32], cols: usize) -> Result<usize> {
    if cols == 0 || !rows.len().is_multiple_of(cols) {
        return Err(Error::Shape {
            what: "feature values (a whole number of rows)",
            expected: rows.len().div_ceil(cols.max(1)) * cols,
            got: rows.len(),
        });
    }
    Ok(rows.len() / cols)
}

/// Refuse a row of the wrong width.
fn check_row(row: &[f32], cols: usize) -> Result<()> {
    if row.len() != cols {
        return Err(Error::Shape {
            what: "feature values of a row",
            expected: cols,
            got: row.len(),
        });
    }
    Ok(())
}

/// The objective named by `params` (`binary:logistic` when absent), among
/// those `allowed`.
fn objective_param(params: &Params, algo: Algo, allowed: &[Objective]) -> Result<Objective> {
    let objective = match params.0.get("objective") {
        Some(name) => Objective::parse(name)?,
        None => Objective::BinaryLogistic,
    };
    if !allowed.contains(&objective) {
        return Err(Error::Param {
            key: "objective".to_string(),
            reason: format!("{algo} fits {objective} models only with gbdt or random-forest"),
        });
    }
    Ok(objective)
}

/// Under `binary:logistic`: labels must be 0/1 and both present.
fn check_binary_labels(data: &Dataset, objective: Objective) -> Result<()> {
    if objective != Objective::BinaryLogistic {
        return Ok(());
    }
    let mut positives = 0;
    for (row, &y) in data.labels().iter().enumerate() {
        if y == 1.0 {
            positives += 1;
        } else if y != 0.0 {
            return Err(Error::NotBinaryLabel { row, value: y });
        }
    }
    let negatives = data.n_rows() - positives;
    if positives == 0 || negatives == 0 {
        return Err(Error::OneClass {
            what: "a binary:logistic model",
            positives,
            negatives,
        });
    }
    Ok(())
}

/// The validation set, when given, must have the training features; its
/// AUC is logged (baselines do not stop early).
fn report_valid(model: &dyn Model, train: &Dataset, valid: Option<&Dataset>) -> Result<()> {
    let Some(valid) = valid else { return Ok(()) };
    if valid.features() != train.features() {
        return Err(Error::Columns {
            expected: train.features().to_vec(),
            got: valid.features().to_vec(),
        });
    }
    if model.objective() == Objective::BinaryLogistic {
        let scores = model.margins(valid.values())?;
        match eval::auc(valid.labels(), &scores) {
            Ok(auc) => debug!(algo = %model.algo(), auc, "validation AUC"),
            Err(e) => debug!(algo = %model.algo(), error = %e, "no validation AUC"),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Random forest
// ---------------------------------------------------------------------------

/// Fits a probability forest with smartcore (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomForestLearner;

/// The forest's settings after defaults.
#[derive(Debug, Clone, PartialEq)]
struct ForestSettings {
    n_trees: usize,
    /// 0 = unlimited
    max_depth: u16,
    min_samples_leaf: usize,
    min_samples_split: usize,
    max_features: Option<usize>,
    seed: u64,
    objective: Objective,
}

impl ForestSettings {
    fn parse(params: &Params) -> Result<Self> {
        params.only(Algo::RandomForest, FOREST_PARAMS)?;
        let objective = objective_param(
            params,
            Algo::RandomForest,
            &[Objective::BinaryLogistic, Objective::SquaredError],
        )?;
        let settings = ForestSettings {
            n_trees: params.get("n_trees")?.unwrap_or(100),
            max_depth: params.get("max_depth")?.unwrap_or(12),
            min_samples_leaf: params.get("min_samples_leaf")?.unwrap_or(5),
            min_samples_split: params.get("min_samples_split")?.unwrap_or(2),
            max_features: params.get("max_features")?,
            seed: params.get("seed")?.unwrap_or(0),
            objective,
        };
        let at_least_one = [
            ("n_trees", settings.n_trees),
            ("min_samples_leaf", settings.min_samples_leaf),
            ("max_features", settings.max_features.unwrap_or(1)),
        ];
        for (key, value) in at_least_one {
            if value == 0 {
                return Err(Error::Param {
                    key: key.to_string(),
                    reason: "must be at least 1".to_string(),
                });
            }
        }
        Ok(settings)
    }

    fn to_params(&self) -> Params {
        let mut p = Params::default()
            .with("n_trees", self.n_trees)
            .with("max_depth", self.max_depth)
            .with("min_samples_leaf", self.min_samples_leaf)
            .with("min_samples_split", self.min_samples_split)
            .with("seed", self.seed)
            .with("objective", self.objective.name());
        if let Some(m) = self.max_features {
            p = p.with("max_features", m);
        }
        p
    }

    /// smartcore's parameters for the trees of group `group`.
    fn group(
        &self,
        group: usize,
        trees: usize,
        features: usize,
    ) -> RandomForestRegressorParameters {
        let mut p = RandomForestRegressorParameters::default()
            .with_n_trees(trees)
            .with_min_samples_leaf(self.min_samples_leaf)
            .with_min_samples_split(self.min_samples_split)
            .with_seed(group_seed(self.seed, group));
        if self.max_depth > 0 {
            p = p.with_max_depth(self.max_depth);
        }
        if let Some(m) = self.max_features {
            p = p.with_m(m.min(features));
        }
        p
    }
}

/// The seed of tree group `group`: groups apart by a large odd step
/// (smartcore seeds tree `i` of a group with its seed + `i`).
fn group_seed(seed: u64, group: usize) -> u64 {
    seed.wrapping_add((group as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// smartcore's forest over `f32` features and `f64` labels.
type Forest = RandomForestRegressor<f32, f64, DenseMatrix<f32>, Vec<f64>>;

/// What a forest keeps in its model document.
#[derive(Serialize, Deserialize)]
struct ForestPayload {
    /// Training mean per feature: the value of a missing one.
    means: Vec<f64>,
    /// Trees in each group.
    trees: Vec<usize>,
    /// The groups, as smartcore serialises them.
    groups: Vec<Forest>,
}

/// A fitted probability (or regression) forest.
pub struct ForestModel {
    features: Vec<String>,
    settings: ForestSettings,
    payload: ForestPayload,
    importance: Vec<FeatureImportance>,
}

impl fmt::Debug for ForestModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForestModel")
            .field("features", &self.features)
            .field("settings", &self.settings)
            .field("groups", &self.payload.trees)
            .finish_non_exhaustive()
    }
}

impl Learner for RandomForestLearner {
    fn algo(&self) -> Algo {
        Algo::RandomForest
    }

    #[instrument(skip_all, fields(rows = train.n_rows(), features = train.n_features()))]
    fn fit(
        &self,
        train: &Dataset,
        valid: Option<&Dataset>,
        params: &Params,
    ) -> Result<Box<dyn Model>> {
        let settings = ForestSettings::parse(params)?;
        check_binary_labels(train, settings.objective)?;
        let means = column_means(train);
        let (rows, cols) = (train.n_rows(), train.n_features());
        let x = DenseMatrix::new(rows, cols, impute(train.values(), &means), false).map_err(
            |source| Error::Smartcore {
                algo: Algo::RandomForest,
                what: "training matrix",
                source,
            },
        )?;
        let y: Vec<f64> = train.labels().iter().map(|&v| f64::from(v)).collect();
        let sizes: Vec<usize> = (0..settings.n_trees)
            .step_by(TREES_PER_GROUP)
            .map(|start| TREES_PER_GROUP.min(settings.n_trees - start))
            .collect();
        let groups = sizes
            .par_iter()
            .enumerate()
            .map(|(g, &trees)| {
                Forest::fit(&x, &y, settings.group(g, trees, cols)).map_err(|source| {
                    Error::Smartcore {
                        algo: Algo::RandomForest,
                        what: "fitting trees",
                        source,
                    }
                })
            })
            .collect::<Result<Vec<_>>>()?;
        debug!(groups = groups.len(), "forest fitted");
        let model = ForestModel::new(
            train.features().to_vec(),
            settings,
            ForestPayload {
                means,
                trees: sizes,
                groups,
            },
        )?;
        report_valid(&model, train, valid)?;
        Ok(Box::new(model))
    }
}

impl ForestModel {
    fn new(
        features: Vec<String>,
        settings: ForestSettings,
        payload: ForestPayload,
    ) -> Result<Self> {
        if payload.means.len() != features.len() {
            return Err(Error::Shape {
                what: "feature means in a random-forest payload",
                expected: features.len(),
                got: payload.means.len(),
            });
        }
        if payload.trees.len() != payload.groups.len() || payload.groups.is_empty() {
            return Err(Error::Shape {
                what: "tree groups in a random-forest payload",
                expected: payload.trees.len(),
                got: payload.groups.len(),
            });
        }
        let importance = forest_importance(&features, &payload)?;
        Ok(ForestModel {
            features,
            settings,
            payload,
            importance,
        })
    }

    /// The forest's average of `rows` (already imputed), one per row.
    fn average(&self, imputed: Vec<f32>) -> Result<Vec<f64>> {
        let cols = self.features.len();
        let n = imputed.len() / cols;
        let total: usize = self.payload.trees.iter().sum();
        let x = DenseMatrix::new(n, cols, imputed, false).map_err(|source| Error::Smartcore {
            algo: Algo::RandomForest,
            what: "scoring matrix",
            source,
        })?;
        let mut out = vec![0.0f64; n];
        for (group, &trees) in self.payload.groups.iter().zip(&self.payload.trees) {
            let mean = group.predict(&x).map_err(|source| Error::Smartcore {
                algo: Algo::RandomForest,
                what: "scoring",
                source,
            })?;
            let weight = trees as f64 / total as f64;
            out.iter_mut().zip(mean).for_each(|(o, m)| *o += weight * m);
        }
        Ok(out)
    }

    /// The forest's average of row-major `rows`, in parallel chunks.
    fn averages(&self, rows: &[f32]) -> Result<Vec<f64>> {
        let cols = self.features.len();
        check_rows(rows, cols)?;
        let chunks = rows
            .par_chunks(SCORE_CHUNK_ROWS * cols)
            .map(|chunk| self.average(impute(chunk, &self.payload.means)))
            .collect::<Result<Vec<_>>>()?;
        Ok(chunks.concat())
    }

    /// The margin of an average: the clipped logit for a probability.
    fn margin_of(&self, average: f64) -> f32 {
        match self.settings.objective {
            Objective::BinaryLogistic => {
                let p = average.clamp(PROBABILITY_EPS, 1.0 - PROBABILITY_EPS);
                (p / (1.0 - p)).ln() as f32
            }
            Objective::SquaredError => average as f32,
        }
    }
}

/// Importance per feature: `total_gain` is smartcore's impurity share
/// (the trees' normalised impurity decreases averaged over the forest, so
/// the features' shares sum to 1), `weight` the splits on the feature
/// (counted in the serialised trees), `gain` the share per split; `cover`
/// is 0 (smartcore keeps no row counts per node). Most total gain first.
fn forest_importance(
    features: &[String],
    payload: &ForestPayload,
) -> Result<Vec<FeatureImportance>> {
    let cols = features.len();
    let total: usize = payload.trees.iter().sum();
    let mut share = vec![0.0f64; cols];
    for (group, &trees) in payload.groups.iter().zip(&payload.trees) {
        let imp = group
            .compute_feature_importances()
            .map_err(|source| Error::Smartcore {
                algo: Algo::RandomForest,
                what: "feature importance",
                source,
            })?;
        for (s, v) in share.iter_mut().zip(imp) {
            *s += v * trees as f64 / total as f64;
        }
    }
    // Splits per feature, from smartcore's serialised nodes: a node with a
    // `true_child` is a split on its `split_feature`.
    let mut splits = vec![0u64; cols];
    let groups = serde_json::to_value(&payload.groups).map_err(|source| Error::Payload {
        algo: Algo::RandomForest,
        source,
    })?;
    let trees = groups
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g.pointer("/forest_regressor/trees")?.as_array())
        .flatten();
    for node in trees.filter_map(|t| t.get("nodes")?.as_array()).flatten() {
        if node.get("true_child").is_some_and(|c| !c.is_null())
            && let Some(f) = node.get("split_feature").and_then(|f| f.as_u64())
            && let Some(count) = splits.get_mut(f as usize)
        {
            *count += 1;
        }
    }
    let mut out: Vec<FeatureImportance> = features
        .iter()
        .zip(share.iter().zip(&splits))
        .filter(|(_, (_, w))| **w > 0)
        .map(|(feature, (&total_gain, &weight))| FeatureImportance {
            feature: feature.clone(),
            weight,
            gain: total_gain / weight as f64,
            cover: 0.0,
            total_gain,
        })
        .collect();
    out.sort_by(|a, b| b.total_gain.total_cmp(&a.total_gain));
    Ok(out)
}

impl Model for ForestModel {
    fn algo(&self) -> Algo {
        Algo::RandomForest
    }

    fn objective(&self) -> Objective {
        self.settings.objective
    }

    fn features(&self) -> &[String] {
        &self.features
    }

    /// Builds a one-row matrix (allocates; baselines are not the serving
    /// path).
    fn margin_row(&self, row: &[f32]) -> Result<f32> {
        check_row(row, self.features.len())?;
        let average = self.average(impute(row, &self.payload.means))?;
        Ok(self.margin_of(average[0]))
    }

    fn margins(&self, rows: &[f32]) -> Result<Vec<f32>> {
        Ok(self
            .averages(rows)?
            .into_iter()
            .map(|a| self.margin_of(a))
            .collect())
    }

    /// The forest's average itself: the positive-class probability under
    /// `binary:logistic` (not clipped), the mean label otherwise.
    fn predict(&self, rows: &[f32]) -> Result<Vec<f32>> {
        Ok(self.averages(rows)?.into_iter().map(|a| a as f32).collect())
    }

    fn contributions(&self, _rows: &[f32]) -> Result<Contributions> {
        Err(Error::Unsupported {
            algo: Algo::RandomForest,
            what: "per-feature contributions (smartcore trees keep no node covers)",
        })
    }

    fn importance(&self) -> Vec<FeatureImportance> {
        self.importance.clone()
    }

    fn payload(&self) -> Result<serde_json::Value> {
        serde_json::to_value(&self.payload).map_err(|source| Error::Payload {
            algo: Algo::RandomForest,
            source,
        })
    }

    fn params(&self) -> Params {
        self.settings.to_params()
    }
}

// ---------------------------------------------------------------------------
// Logistic regression
// ---------------------------------------------------------------------------

/// Fits a standardised, L2-penalised logistic regression with smartcore
/// (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogisticLearner;

/// What a logistic regression keeps in its model document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LogisticPayload {
    /// Training mean per feature (standardisation centre, missing value).
    means: Vec<f64>,
    /// Training standard deviation per feature (1 for a constant one).
    scales: Vec<f64>,
    /// Coefficient per standardised feature.
    coefficients: Vec<f64>,
    /// The log-odds of a row at the training mean.
    intercept: f64,
}

/// A fitted logistic regression.
#[derive(Debug)]
pub struct LogisticModel {
    features: Vec<String>,
    alpha: f64,
    payload: LogisticPayload,
}

impl LogisticLearner {
    fn alpha(params: &Params) -> Result<f64> {
        params.only(Algo::Logistic, LOGISTIC_PARAMS)?;
        objective_param(params, Algo::Logistic, &[Objective::BinaryLogistic])?;
        let alpha = params.get::<f64>("alpha")?.unwrap_or(1.0);
        if !(alpha >= 0.0 && alpha.is_finite()) {
            return Err(Error::Param {
                key: "alpha".to_string(),
                reason: format!("{alpha}: must be a finite number of at least 0"),
            });
        }
        Ok(alpha)
    }
}

impl Learner for LogisticLearner {
    fn algo(&self) -> Algo {
        Algo::Logistic
    }

    #[instrument(skip_all, fields(rows = train.n_rows(), features = train.n_features()))]
    fn fit(
        &self,
        train: &Dataset,
        valid: Option<&Dataset>,
        params: &Params,
    ) -> Result<Box<dyn Model>> {
        let alpha = Self::alpha(params)?;
        check_binary_labels(train, Objective::BinaryLogistic)?;
        let (rows, cols) = (train.n_rows(), train.n_features());
        let means = column_means(train);
        let mut squares = vec![0.0f64; cols];
        for row in train.values().chunks_exact(cols) {
            for ((s, &v), m) in squares.iter_mut().zip(row).zip(&means) {
                // a missing value sits at the mean
                if !v.is_nan() {
                    *s += (f64::from(v) - m).powi(2);
                }
            }
        }
        let scales: Vec<f64> = squares
            .iter()
            .map(|s| (s / rows as f64).sqrt())
            .map(|sd| if sd > 0.0 && sd.is_finite() { sd } else { 1.0 })
            .collect();
        let mut z = Vec::with_capacity(rows * cols);
        for row in train.values().chunks_exact(cols) {
            z.extend(
                row.iter()
                    .zip(means.iter().zip(&scales))
                    .map(|(&v, (m, s))| {
                        if v.is_nan() {
                            0.0
                        } else {
                            (f64::from(v) - m) / s
                        }
                    }),
            );
        }
        let x = DenseMatrix::new(rows, cols, z, false).map_err(|source| Error::Smartcore {
            algo: Algo::Logistic,
            what: "training matrix",
            source,
        })?;
        let y: Vec<i32> = train.labels().iter().map(|&v| v as i32).collect();
        let fitted = LogisticRegression::fit(
            &x,
            &y,
            LogisticRegressionParameters::default().with_alpha(alpha),
        )
        .map_err(|source| Error::Smartcore {
            algo: Algo::Logistic,
            what: "fitting",
            source,
        })?;
        let coefficients: Vec<f64> = (0..cols)
            .map(|j| *smartcore::linalg::basic::arrays::Array::get(fitted.coefficients(), (0, j)))
            .collect();
        let intercept = *smartcore::linalg::basic::arrays::Array::get(fitted.intercept(), (0, 0));
        let model = LogisticModel::new(
            train.features().to_vec(),
            alpha,
            LogisticPayload {
                means,
                scales,
                coefficients,
                intercept,
            },
        )?;
        report_valid(&model, train, valid)?;
        Ok(Box::new(model))
    }
}

impl LogisticModel {
    fn new(features: Vec<String>, alpha: f64, payload: LogisticPayload) -> Result<Self> {
        for (what, len) in [
            ("feature means in a logistic payload", payload.means.len()),
            ("feature scales in a logistic payload", payload.scales.len()),
            (
                "coefficients in a logistic payload",
                payload.coefficients.len(),
            ),
        ] {
            if len != features.len() {
                return Err(Error::Shape {
                    what,
                    expected: features.len(),
                    got: len,
                });
            }
        }
        Ok(LogisticModel {
            features,
            alpha,
            payload,
        })
    }

    /// Feature `j`'s share of the margin for value `v`.
    #[inline]
    fn term(&self, j: usize, v: f32) -> f64 {
        if v.is_nan() {
            return 0.0;
        }
        let p = &self.payload;
        p.coefficients[j] * (f64::from(v) - p.means[j]) / p.scales[j]
    }

    fn margin_unchecked(&self, row: &[f32]) -> f32 {
        let sum: f64 = row.iter().enumerate().map(|(j, &v)| self.term(j, v)).sum();
        (self.payload.intercept + sum) as f32
    }
}

impl Model for LogisticModel {
    fn algo(&self) -> Algo {
        Algo::Logistic
    }

    fn objective(&self) -> Objective {
        Objective::BinaryLogistic
    }

    fn features(&self) -> &[String] {
        &self.features
    }

    fn margin_row(&self, row: &[f32]) -> Result<f32> {
        check_row(row, self.features.len())?;
        Ok(self.margin_unchecked(row))
    }

    fn margins(&self, rows: &[f32]) -> Result<Vec<f32>> {
        let cols = self.features.len();
        check_rows(rows, cols)?;
        Ok(rows
            .par_chunks(cols)
            .map(|row| self.margin_unchecked(row))
            .collect())
    }

    /// Exact: `coef_j · (x_j − mean_j) / scale_j` per feature (0 when
    /// missing), the intercept as the bias.
    fn contributions(&self, rows: &[f32]) -> Result<Contributions> {
        let cols = self.features.len();
        let n = check_rows(rows, cols)?;
        let mut values = Vec::with_capacity(n * (cols + 1));
        for row in rows.chunks_exact(cols) {
            values.extend(row.iter().enumerate().map(|(j, &v)| self.term(j, v) as f32));
            values.push(self.payload.intercept as f32);
        }
        Ok(Contributions {
            values,
            n_features: cols,
        })
    }

    /// None: a linear model has no splits.
    fn importance(&self) -> Vec<FeatureImportance> {
        Vec::new()
    }

    fn payload(&self) -> Result<serde_json::Value> {
        serde_json::to_value(&self.payload).map_err(|source| Error::Payload {
            algo: Algo::Logistic,
            source,
        })
    }

    fn params(&self) -> Params {
        Params::default()
            .with("alpha", self.alpha)
            .with("objective", Objective::BinaryLogistic.name())
    }
}

/// Rebuild a baseline model from the payload its [`Model::payload`] wrote,
/// with the features, objective and parameters of its model document.
pub fn from_payload(
    algo: Algo,
    features: Vec<String>,
    objective: Objective,
    params: Params,
    payload: &serde_json::Value,
) -> Result<Box<dyn Model>> {
    match algo {
        Algo::RandomForest => {
            let mut settings = ForestSettings::parse(&params)?;
            settings.objective = objective;
            let payload: ForestPayload = serde_json::from_value(payload.clone())
                .map_err(|source| Error::Payload { algo, source })?;
            Ok(Box::new(ForestModel::new(features, settings, payload)?))
        }
        Algo::Logistic => {
            if objective != Objective::BinaryLogistic {
                return Err(Error::UnknownObjective {
                    objective: format!("{objective} (a logistic regression is binary:logistic)"),
                });
            }
            let alpha = LogisticLearner::alpha(&params)?;
            let payload: LogisticPayload = serde_json::from_value(payload.clone())
                .map_err(|source| Error::Payload { algo, source })?;
            Ok(Box::new(LogisticModel::new(features, alpha, payload)?))
        }
        Algo::Gbdt | Algo::Xgboost => Err(Error::Unsupported {
            algo,
            what: "loading as a baseline (gbdt and xgboost models load through model::gbdt)",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// `n` rows of 4 features: the label follows feature 0 and 1 through
    /// a logistic link; feature 2 is noise; feature 3 is missing in every
    /// fifth row.
    fn data(n: usize, seed: u64) -> Dataset {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut values = Vec::with_capacity(n * 4);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let x: [f32; 4] = [
                rng.random_range(-2.0..2.0),
                rng.random_range(0.0..10.0),
                rng.random_range(-1.0..1.0),
                if i % 5 == 0 {
                    f32::NAN
                } else {
                    rng.random_range(0.0..1.0)
                },
            ];
            let margin = 1.5 * x[0] + 0.3 * (x[1] - 5.0);
            let p = 1.0 / (1.0 + (-margin).exp());
            labels.push(f32::from(u8::from(rng.random::<f32>() < p)));
            values.extend(x);
        }
        let names = ["a", "b", "noise", "sparse"].map(String::from).to_vec();
        Dataset::new(names, values, labels).unwrap()
    }

    fn round_trip(model: &dyn Model) -> Box<dyn Model> {
        let text = serde_json::to_string(&model.payload().unwrap()).unwrap();
        let payload: serde_json::Value = serde_json::from_str(&text).unwrap();
        from_payload(
            model.algo(),
            model.features().to_vec(),
            model.objective(),
            model.params(),
            &payload,
        )
        .unwrap()
    }

    #[test]
    fn logistic_learns_the_planted_coefficients_and_explains_exactly() {
        let train = data(4000, 1);
        let test = data(2000, 2);
        let params = Params::default().with("alpha", 0.01);
        let model = LogisticLearner.fit(&train, Some(&test), &params).unwrap();
        let auc = eval::auc(test.labels(), &model.predict(test.values()).unwrap()).unwrap();
        assert!(auc > 0.85, "AUC {auc}");
        // coefficients on the raw scale: 1.5 and 0.3 (standardised / scale)
        let text = serde_json::to_value(model.payload().unwrap()).unwrap();
        let p: LogisticPayload = serde_json::from_value(text).unwrap();
        let raw: Vec<f64> = p
            .coefficients
            .iter()
            .zip(&p.scales)
            .map(|(c, s)| c / s)
            .collect();
        assert!((raw[0] - 1.5).abs() < 0.2, "{raw:?}");
        assert!((raw[1] - 0.3).abs() < 0.05, "{raw:?}");
        assert!(raw[2].abs() < 0.2, "{raw:?}");
        // contributions plus bias are the margin, row by row
        let rows = &test.values()[..40 * 4];
        let margins = model.margins(rows).unwrap();
        let contributions = model.contributions(rows).unwrap();
        assert_eq!(contributions.n_rows(), 40);
        for (i, m) in margins.iter().enumerate() {
            let sum: f32 = contributions.row(i).iter().sum();
            assert!((sum - m).abs() < 1e-4, "row {i}: {sum} vs {m}");
            assert_eq!(model.margin_row(test.row(i)).unwrap(), *m);
        }
        // a missing value contributes nothing
        assert_eq!(contributions.row(0)[3], 0.0);
        assert!(model.importance().is_empty());
    }

    #[test]
    fn forest_scores_sensibly_and_is_deterministic() {
        let train = data(3000, 3);
        let test = data(1000, 4);
        let params = Params::default().with("n_trees", 25).with("seed", 7);
        let model = RandomForestLearner.fit(&train, None, &params).unwrap();
        let p = model.predict(test.values()).unwrap();
        assert!(p.iter().all(|v| (0.0..=1.0).contains(v)));
        let auc = eval::auc(test.labels(), &p).unwrap();
        assert!(auc > 0.8, "AUC {auc}");
        // the margin is the clipped logit of the probability
        let margins = model.margins(test.values()).unwrap();
        for (m, p) in margins.iter().zip(&p).take(50) {
            let pc = f64::from(*p).clamp(PROBABILITY_EPS, 1.0 - PROBABILITY_EPS);
            assert!((f64::from(*m) - (pc / (1.0 - pc)).ln()).abs() < 1e-3);
        }
        assert_eq!(model.margin_row(test.row(3)).unwrap(), margins[3]);
        // same seed, same forest; another seed, another forest
        let again = RandomForestLearner.fit(&train, None, &params).unwrap();
        assert_eq!(again.predict(test.values()).unwrap(), p);
        let other = RandomForestLearner
            .fit(&train, None, &params.clone().with("seed", 8))
            .unwrap();
        assert_ne!(other.predict(test.values()).unwrap(), p);
        // the informative features are used most
        let imp = model.importance();
        assert!(imp.iter().all(|i| i.weight > 0));
        assert!(["a", "b"].contains(&imp[0].feature.as_str()), "{imp:?}");
        let shares: f64 = imp.iter().map(|i| i.total_gain).sum();
        assert!((shares - 1.0).abs() < 1e-9);
        assert!(matches!(
            model.contributions(test.values()),
            Err(Error::Unsupported { .. })
        ));
        assert_eq!(model.params().get::<usize>("n_trees").unwrap(), Some(25));
    }

    #[test]
    fn payloads_round_trip_to_identical_predictions() {
        let train = data(1500, 5);
        let test = data(500, 6);
        for (learner, params) in [
            (
                Box::new(RandomForestLearner) as Box<dyn Learner>,
                Params::default().with("n_trees", 12).with("max_depth", 0),
            ),
            (Box::new(LogisticLearner), Params::default()),
        ] {
            let model = learner.fit(&train, None, &params).unwrap();
            let back = round_trip(model.as_ref());
            assert_eq!(back.algo(), model.algo());
            assert_eq!(back.params(), model.params());
            assert_eq!(
                back.margins(test.values()).unwrap(),
                model.margins(test.values()).unwrap()
            );
            assert_eq!(
                back.predict(test.values()).unwrap(),
                model.predict(test.values()).unwrap()
            );
            assert_eq!(back.importance(), model.importance());
        }
    }

    #[test]
    fn regression_forest_averages_the_label() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let x: Vec<f32> = (0..2000).map(|_| rng.random_range(0.0..1.0)).collect();
        let y: Vec<f32> = x
            .iter()
            .map(|v| if *v < 0.5 { 10.0 } else { 20.0 })
            .collect();
        let data = Dataset::new(vec!["x".into()], x, y).unwrap();
        let params = Params::default()
            .with("objective", "reg:squarederror")
            .with("n_trees", 10);
        let model = RandomForestLearner.fit(&data, None, &params).unwrap();
        assert_eq!(model.objective(), Objective::SquaredError);
        let p = model.predict(&[0.1, 0.9]).unwrap();
        assert!(
            (p[0] - 10.0).abs() < 0.5 && (p[1] - 20.0).abs() < 0.5,
            "{p:?}"
        );
        assert_eq!(model.margins(&[0.1, 0.9]).unwrap(), p);
    }

    #[test]
    fn bad_input_gets_a_clear_error() {
        let train = data(200, 10);
        for learner in [
            Box::new(RandomForestLearner) as Box<dyn Learner>,
            Box::new(LogisticLearner),
        ] {
            // unknown parameter, named
            let err = learner
                .fit(&train, None, &Params::default().with("eta", 0.1))
                .unwrap_err();
            assert!(
                matches!(err, Error::Param { ref key, .. } if key == "eta"),
                "{err}"
            );
            // labels other than 0/1, and one class only
            let names = train.features().to_vec();
            let twos =
                Dataset::new(names.clone(), train.values().to_vec(), vec![2.0; 200]).unwrap();
            assert!(matches!(
                learner.fit(&twos, None, &Params::default()),
                Err(Error::NotBinaryLabel { row: 0, .. })
            ));
            let ones = Dataset::new(names, train.values().to_vec(), vec![1.0; 200]).unwrap();
            assert!(matches!(
                learner.fit(&ones, None, &Params::default()),
                Err(Error::OneClass { .. })
            ));
            // rows of the wrong width
            let model = learner.fit(&train, None, &Params::default()).unwrap();
            assert!(matches!(
                model.margin_row(&[1.0; 3]),
                Err(Error::Shape { .. })
            ));
            assert!(matches!(model.margins(&[1.0; 7]), Err(Error::Shape { .. })));
            // a validation set with other features
            let other = Dataset::new(vec!["x".into()], vec![1.0, 2.0], vec![0.0, 1.0]).unwrap();
            assert!(matches!(
                learner.fit(&train, Some(&other), &Params::default()),
                Err(Error::Columns { .. })
            ));
        }
        assert!(matches!(
            LogisticLearner.fit(
                &train,
                None,
                &Params::default().with("objective", "reg:squarederror")
            ),
            Err(Error::Param { .. })
        ));
        assert!(matches!(
            RandomForestLearner.fit(&train, None, &Params::default().with("n_trees", 0)),
            Err(Error::Param { .. })
        ));
        assert!(matches!(
            from_payload(
                Algo::Logistic,
                vec!["a".into()],
                Objective::BinaryLogistic,
                Params::default(),
                &serde_json::json!({"means": [0.0]}),
            ),
            Err(Error::Payload { .. })
        ));
    }
}
