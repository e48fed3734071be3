//! Offer-propensity models behind one trait.
//!
//! A [`Model`] turns rows of numeric features into margins (and, through its
//! [`Objective`]'s link, probabilities), explains a row when it can, and
//! writes itself into a [`format::ModelDocument`]. A [`Learner`] fits one
//! from a [`Dataset`] with XGBoost-named [`Params`]. Everything above this
//! module (`cdp train`, `cdp score`, `cdp model`, serving) talks to these two
//! traits only, so a second learner or a newer crate replaces the current
//! one without touching its callers.
//!
//! * [`gbdt`]: the gradient-boosted-tree learner (hessboost) and XGBoost
//!   JSON models.
//! * [`treeshap`]: exact TreeSHAP over a flattened forest, behind the
//!   gradient-boosted trees' contributions.
//! * [`baseline`]: random forest and logistic regression (smartcore).
//! * [`format`]: cdp's model document (`model.json`), loading any model
//!   file, XGBoost's included.
//!
//! Feature values are `f32`, row-major, `NaN` for a missing value, as
//! XGBoost takes them; margins are `f32` like XGBoost's.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub mod baseline;
pub mod format;
pub mod gbdt;
pub mod treeshap;

/// The learning algorithms cdp knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algo {
    /// Gradient-boosted trees of the XGBoost family (cdp's default).
    Gbdt,
    /// A model trained by Python XGBoost and imported from its JSON file.
    Xgboost,
    /// smartcore's random forest (a baseline).
    RandomForest,
    /// smartcore's logistic regression (a baseline).
    Logistic,
}

impl Algo {
    /// The name used on the command line and in model documents.
    pub fn name(self) -> &'static str {
        match self {
            Algo::Gbdt => "gbdt",
            Algo::Xgboost => "xgboost",
            Algo::RandomForest => "random-forest",
            Algo::Logistic => "logistic",
        }
    }
}

impl fmt::Display for Algo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a model predicts, with XGBoost's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Objective {
    /// `binary:logistic`: the margin is a log-odds, the prediction a
    /// probability.
    #[serde(rename = "binary:logistic")]
    BinaryLogistic,
    /// `reg:squarederror`: the margin is the prediction.
    #[serde(rename = "reg:squarederror")]
    SquaredError,
}

impl Objective {
    /// XGBoost's name of the objective.
    pub fn name(self) -> &'static str {
        match self {
            Objective::BinaryLogistic => "binary:logistic",
            Objective::SquaredError => "reg:squarederror",
        }
    }

    /// Parse XGBoost's name.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "binary:logistic" => Ok(Objective::BinaryLogistic),
            "reg:squarederror" => Ok(Objective::SquaredError),
            other => Err(Error::UnknownObjective {
                objective: other.to_string(),
            }),
        }
    }

    /// The prediction of a margin: the logistic sigmoid for
    /// `binary:logistic`, the margin itself for `reg:squarederror`.
    pub fn link(self, margin: f32) -> f32 {
        match self {
            Objective::BinaryLogistic => 1.0 / (1.0 + (-margin).exp()),
            Objective::SquaredError => margin,
        }
    }
}

impl fmt::Display for Objective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A dense table of numeric features with a label per row: what learners
/// fit on and metrics score. Built through [`Dataset::new`], which refuses
/// what no learner can use (empty data, ragged rows, infinite values, a
/// `NaN` or infinite label), naming the row and column.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    features: Vec<String>,
    values: Vec<f32>,
    labels: Vec<f32>,
}

impl Dataset {
    /// A dataset of `values` (row-major, `features.len()` per row, `NaN` for
    /// missing) and one label per row.
    pub fn new(features: Vec<String>, values: Vec<f32>, labels: Vec<f32>) -> Result<Self> {
        let cols = features.len();
        if cols == 0 || labels.is_empty() {
            return Err(Error::EmptyData {
                rows: labels.len(),
                features: cols,
            });
        }
        if values.len() != labels.len() * cols {
            return Err(Error::Shape {
                what: "feature values",
                expected: labels.len() * cols,
                got: values.len(),
            });
        }
        if let Some(row) = labels.iter().position(|y| !y.is_finite()) {
            return Err(Error::BadLabel {
                row,
                value: labels[row],
            });
        }
        check_finite(&features, &values)?;
        Ok(Dataset {
            features,
            values,
            labels,
        })
    }

    /// The feature names, in column order.
    pub fn features(&self) -> &[String] {
        &self.features
    }

    /// Row-major feature values.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// One label per row.
    pub fn labels(&self) -> &[f32] {
        &self.labels
    }

    /// Rows.
    pub fn n_rows(&self) -> usize {
        self.labels.len()
    }

    /// Feature columns.
    pub fn n_features(&self) -> usize {
        self.features.len()
    }

    /// The feature values of row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        let cols = self.features.len();
        &self.values[i * cols..(i + 1) * cols]
    }
}

/// Refuse infinite feature values (XGBoost's rule: missing is `NaN`, every
/// other value finite), naming the row and column of the first one.
pub fn check_finite(features: &[String], values: &[f32]) -> Result<()> {
    let cols = features.len().max(1);
    match values.iter().position(|v| v.is_infinite()) {
        Some(at) => Err(Error::BadFeatureValue {
            row: at / cols,
            feature: features.get(at % cols).cloned().unwrap_or_default(),
            value: values[at],
        }),
        None => Ok(()),
    }
}

/// Learner parameters by XGBoost's names (`eta`, `max_depth`, `lambda`,
/// `num_round`, …) as text, as they come from a command line or a config
/// file. Each learner parses the ones it knows and refuses any other, so a
/// typo never silently trains with a default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Params(pub BTreeMap<String, String>);

impl Params {
    /// Parameters from `KEY=VALUE` pairs.
    pub fn from_pairs<I, S>(pairs: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut map = BTreeMap::new();
        for pair in pairs {
            let pair = pair.as_ref();
            let (key, value) = pair.split_once('=').ok_or_else(|| Error::Param {
                key: pair.to_string(),
                reason: "expected KEY=VALUE".to_string(),
            })?;
            map.insert(key.trim().to_string(), value.trim().to_string());
        }
        Ok(Params(map))
    }

    /// Set `key` to `value` (builder style).
    pub fn with(mut self, key: &str, value: impl ToString) -> Self {
        self.0.insert(key.to_string(), value.to_string());
        self
    }

    /// The value of `key` parsed as `T`, `None` when absent.
    pub fn get<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>>
    where
        T::Err: fmt::Display,
    {
        self.0
            .get(key)
            .map(|text| {
                text.parse::<T>().map_err(|e| Error::Param {
                    key: key.to_string(),
                    reason: format!("{text:?}: {e}"),
                })
            })
            .transpose()
    }

    /// Refuse every key not in `known`, naming the learner.
    pub fn only(&self, algo: Algo, known: &[&str]) -> Result<()> {
        match self.0.keys().find(|k| !known.contains(&k.as_str())) {
            Some(key) => Err(Error::Param {
                key: key.clone(),
                reason: format!("not a parameter of {algo} (known: {})", known.join(", ")),
            }),
            None => Ok(()),
        }
    }
}

/// Per-feature contributions of rows to their margins (TreeSHAP):
/// `n_features + 1` values per row, the bias (expected margin) last; each
/// row's values sum to its margin.
#[derive(Debug, Clone, PartialEq)]
pub struct Contributions {
    /// Row-major, `n_features + 1` per row.
    pub values: Vec<f32>,
    /// Feature columns (without the bias).
    pub n_features: usize,
}

impl Contributions {
    /// The contributions of row `i`, bias last.
    pub fn row(&self, i: usize) -> &[f32] {
        let width = self.n_features + 1;
        &self.values[i * width..(i + 1) * width]
    }

    /// Rows.
    pub fn n_rows(&self) -> usize {
        self.values.len() / (self.n_features + 1)
    }
}

/// How much one feature is used by a tree model, over all its splits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureImportance {
    /// The feature.
    pub feature: String,
    /// Splits on it.
    pub weight: u64,
    /// Average loss reduction of its splits (XGBoost's `gain`).
    pub gain: f64,
    /// Average hessian sum of its splits (XGBoost's `cover`).
    pub cover: f64,
    /// Total loss reduction (XGBoost's `total_gain`).
    pub total_gain: f64,
}

/// A fitted model: rows in, margins out.
pub trait Model: Send + Sync + fmt::Debug {
    /// The algorithm that made it.
    fn algo(&self) -> Algo;

    /// What it predicts.
    fn objective(&self) -> Objective;

    /// Feature names in the column order rows must follow.
    fn features(&self) -> &[String];

    /// The margin of one row (`features().len()` values, `NaN` for
    /// missing), without allocating.
    fn margin_row(&self, row: &[f32]) -> Result<f32>;

    /// The margins of row-major `rows`.
    fn margins(&self, rows: &[f32]) -> Result<Vec<f32>>;

    /// Predictions (probabilities for `binary:logistic`) of row-major
    /// `rows`.
    fn predict(&self, rows: &[f32]) -> Result<Vec<f32>> {
        let objective = self.objective();
        let mut out = self.margins(rows)?;
        out.iter_mut().for_each(|m| *m = objective.link(*m));
        Ok(out)
    }

    /// Exact per-feature contributions of row-major `rows` to their
    /// margins; [`Error::Unsupported`] for a model that has none.
    fn contributions(&self, rows: &[f32]) -> Result<Contributions>;

    /// Global importance per feature (tree models), most total gain first;
    /// empty for models without splits.
    fn importance(&self) -> Vec<FeatureImportance>;

    /// The learner-specific part of the model document (the trees, the
    /// coefficients), from which [`format::from_document`] rebuilds the
    /// model.
    fn payload(&self) -> Result<serde_json::Value>;

    /// The parameters it was fitted with, as given (after defaults).
    fn params(&self) -> Params;

    /// The boosting round early stopping kept, for models that boost.
    fn best_iteration(&self) -> Option<usize> {
        None
    }

    /// Whether [`Model::features`] are real column names (rows are matched
    /// to them by name) or stand-ins (`f0`, `f1`, … of an XGBoost model
    /// saved without names: rows are matched by position).
    fn has_feature_names(&self) -> bool {
        true
    }

    /// What the learner reported on the validation set while fitting (for
    /// boosted trees: `{"metric", "best_score", "rounds_run"}`), when there
    /// was one.
    fn validation(&self) -> Option<serde_json::Value> {
        None
    }
}

/// Something that fits a [`Model`].
pub trait Learner: Send + Sync {
    /// The algorithm it fits.
    fn algo(&self) -> Algo;

    /// Fit on `train`; `valid`, when given, drives early stopping
    /// (`early_stopping_rounds`) and is otherwise only reported.
    fn fit(
        &self,
        train: &Dataset,
        valid: Option<&Dataset>,
        params: &Params,
    ) -> Result<Box<dyn Model>>;

    /// [`Learner::fit`], reporting progress (boosting rounds, for learners
    /// that boost) to `progress`; learners without steps to report just
    /// fit.
    fn fit_with_progress(
        &self,
        train: &Dataset,
        valid: Option<&Dataset>,
        params: &Params,
        progress: &dyn cdp_core::progress::Progress,
    ) -> Result<Box<dyn Model>> {
        let _ = progress;
        self.fit(train, valid, params)
    }
}

/// The learner of `algo`; [`Error::Unsupported`] for
/// [`Algo::Xgboost`] (imported, never fitted here).
pub fn learner(algo: Algo) -> Result<Box<dyn Learner>> {
    match algo {
        Algo::Gbdt => Ok(Box::new(gbdt::GbdtLearner)),
        Algo::RandomForest => Ok(Box::new(baseline::RandomForestLearner)),
        Algo::Logistic => Ok(Box::new(baseline::LogisticLearner)),
        Algo::Xgboost => Err(Error::Unsupported {
            algo,
            what: "fitting (train in Python XGBoost and import the JSON file)",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("f{i}")).collect()
    }

    #[test]
    fn dataset_refuses_what_no_learner_can_use() {
        assert!(matches!(
            Dataset::new(names(2), vec![], vec![]),
            Err(Error::EmptyData { .. })
        ));
        assert!(matches!(
            Dataset::new(names(2), vec![1.0; 3], vec![0.0, 1.0]),
            Err(Error::Shape { .. })
        ));
        assert!(matches!(
            Dataset::new(names(1), vec![1.0, 2.0], vec![0.0, f32::NAN]),
            Err(Error::BadLabel { row: 1, .. })
        ));
        let err =
            Dataset::new(names(2), vec![1.0, 2.0, f32::INFINITY, 0.0], vec![0.0, 1.0]).unwrap_err();
        assert!(
            matches!(err, Error::BadFeatureValue { row: 1, ref feature, .. } if feature == "f0")
        );
        let ok = Dataset::new(names(2), vec![1.0, f32::NAN, 3.0, 4.0], vec![0.0, 1.0]).unwrap();
        assert_eq!(ok.row(1), &[3.0, 4.0]);
    }

    #[test]
    fn params_parse_and_refuse_unknown_keys() {
        let p = Params::from_pairs(["eta=0.1", "max_depth = 6"]).unwrap();
        assert_eq!(p.get::<f64>("eta").unwrap(), Some(0.1));
        assert_eq!(p.get::<u32>("max_depth").unwrap(), Some(6));
        assert!(p.get::<u32>("eta").is_err());
        assert!(p.only(Algo::Gbdt, &["eta"]).is_err());
        assert!(Params::from_pairs(["eta"]).is_err());
    }

    #[test]
    fn objectives_round_trip_names_and_links() {
        for o in [Objective::BinaryLogistic, Objective::SquaredError] {
            assert_eq!(Objective::parse(o.name()).unwrap(), o);
        }
        assert!(matches!(
            Objective::parse("multi:softprob"),
            Err(Error::UnknownObjective { .. })
        ));
        assert_eq!(Objective::BinaryLogistic.link(0.0), 0.5);
        assert_eq!(Objective::SquaredError.link(2.5), 2.5);
    }
}
