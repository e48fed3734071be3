//! The error type of `cdp-ml`: typed variants naming the features, sizes,
//! model versions or files they concern.

use std::path::PathBuf;

use thiserror::Error;

/// Result alias used throughout `cdp-ml`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything `cdp-ml` can fail with.
#[derive(Debug, Error)]
pub enum Error {
    /// The lake or a manifest failed (see `cdp-core`).
    #[error(transparent)]
    Core(#[from] cdp_core::Error),

    /// Too few customers to fit a tagger with these settings.
    #[error("cannot fit a tagger on {rows} customers: at least {needed} are needed ({why})")]
    TooFewRows {
        rows: usize,
        needed: usize,
        why: &'static str,
    },

    /// The matrix and its feature names disagree, or a tagger is applied to
    /// other features than it was fitted on.
    #[error("feature columns do not match: expected {expected:?}, got {got:?}")]
    Columns {
        expected: Vec<String>,
        got: Vec<String>,
    },

    /// Every value of the named features is missing, so nothing can be
    /// learnt from them.
    #[error(
        "features {features:?} have no values in the fit data; drop them from [tagger] features"
    )]
    EmptyFeatures { features: Vec<String> },

    /// The eigen-decomposition of the covariance matrix failed.
    #[error("PCA of {features} features failed: {source}")]
    Eigen {
        features: usize,
        source: linfa_linalg::LinalgError,
    },

    /// linfa's k-means refused its parameters or failed to fit.
    #[error("k-means with k = {k} on {rows} customers failed: {source}")]
    KMeans {
        k: usize,
        rows: usize,
        source: linfa_clustering::KMeansError,
    },

    /// A model file is not a tagger this version of cdp can read.
    #[error("tagger model {path} cannot be read: {reason}")]
    ModelFormat { path: String, reason: String },

    /// A model file could not be encoded as JSON.
    #[error("cannot encode tagger model {version}: {source}")]
    ModelEncode {
        version: String,
        source: serde_json::Error,
    },

    /// Another writer published the same model version first.
    #[error("{kind} version {version} was written by another run at the same time; retry")]
    VersionTaken { kind: &'static str, version: String },

    /// The registry names a version whose model file is missing.
    #[error("{kind} version {version} is registered but {path} is missing")]
    MissingModel {
        kind: &'static str,
        version: String,
        path: String,
    },

    /// Drawing or saving the segment plot failed.
    #[error("cannot draw the segment plot {}: {reason}", path.display())]
    Plot { path: PathBuf, reason: String },

    /// The plot file name has no extension cdp draws.
    #[error("plot file {} must end in .png or .svg", path.display())]
    PlotFormat { path: PathBuf },

    /// A metric was asked of no rows.
    #[error("{what}: no rows")]
    NoRows { what: &'static str },

    /// A label that should be 0 or 1 (metrics, binary objectives) is not.
    #[error("label of row {row} is {value}: expected 0 or 1")]
    NotBinaryLabel { row: usize, value: f32 },

    /// Something that needs both classes got one only.
    #[error(
        "{what} needs positive and negative rows: got {positives} positive, {negatives} negative"
    )]
    OneClass {
        what: &'static str,
        positives: usize,
        negatives: usize,
    },

    /// A score handed to a metric is not what the metric takes.
    #[error("score of row {row} is {value}: expected {expected}")]
    BadScore {
        row: usize,
        value: f32,
        expected: &'static str,
    },

    /// smartcore refused or failed while fitting or scoring a baseline.
    #[error("{algo} ({what}): {source}")]
    Smartcore {
        algo: crate::model::Algo,
        what: &'static str,
        source: smartcore::error::Failed,
    },

    /// A baseline model's payload could not be written or read back.
    #[error("{algo} model payload: {source}")]
    Payload {
        algo: crate::model::Algo,
        source: serde_json::Error,
    },

    /// No rows or no feature columns to learn from or score.
    #[error("no data: {rows} rows x {features} feature columns")]
    EmptyData { rows: usize, features: usize },

    /// A buffer does not have the size its shape says.
    #[error("{what}: expected {expected} values, got {got}")]
    Shape {
        what: &'static str,
        expected: usize,
        got: usize,
    },

    /// A label is NaN or infinite.
    #[error("label of row {row} is {value}: labels must be finite numbers")]
    BadLabel { row: usize, value: f32 },

    /// A feature value is infinite (missing values are NaN).
    #[error("feature {feature:?} of row {row} is {value}: use NaN (an empty cell) for missing")]
    BadFeatureValue {
        row: usize,
        feature: String,
        value: f32,
    },

    /// A learner parameter is unknown or does not parse.
    #[error("parameter {key:?}: {reason}")]
    Param { key: String, reason: String },

    /// An objective cdp does not train or score.
    #[error(
        "objective {objective:?} is not supported (supported: binary:logistic, reg:squarederror)"
    )]
    UnknownObjective { objective: String },

    /// The model cannot do what was asked.
    #[error("{algo} models do not support {what}")]
    Unsupported {
        algo: crate::model::Algo,
        what: &'static str,
    },

    /// cdp's TreeSHAP cannot explain the model (a categorical split, linear
    /// or vector leaves, more than one output, a tree too deep); `reason`
    /// names the tree and node.
    #[error("TreeSHAP cannot explain this model: {reason}")]
    Explain { reason: String },

    /// A row handed to a model does not hold one value per model feature.
    #[error("the model takes {expected} feature values per row, got {got}")]
    FeatureCount { expected: usize, got: usize },

    /// The gradient-boosted-tree library (hessboost) refused or failed while
    /// doing `what`. (The causes of this variant and the next two are in
    /// their messages, not error sources, so a chain prints them once.)
    #[error("{what}: {cause}")]
    Boost {
        what: &'static str,
        cause: hessboost::error::HessboostError,
    },

    /// A model file or document is not one cdp reads; `cause` says why.
    #[error("model {name}: {cause}")]
    ModelFile { name: String, cause: Box<Error> },

    /// A model document is malformed (its JSON or a field).
    #[error("{reason}")]
    ModelInvalid { reason: String },

    /// An XGBoost model saved by a release whose JSON cdp does not read.
    #[error("saved by XGBoost {version}: cdp reads the JSON models of XGBoost 2.x and 3.x")]
    XgboostVersion { version: String },

    /// An XGBoost booster other than gbtree (or dart).
    #[error("XGBoost booster {booster:?} is not supported (only gbtree and dart tree models)")]
    XgboostBooster { booster: String },

    /// A cdp model document of another format version.
    #[error(
        "model document format_version {version} is not supported (this cdp reads version {supported})"
    )]
    FormatVersion { version: u64, supported: u64 },

    /// Reading or writing a model file failed.
    #[error("cannot {action} {}: {cause}", path.display())]
    ModelIo {
        action: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },
}
