//! The error type of `cdp-engine`: typed variants that name the table,
//! feature file, query or snapshot they concern.

use std::path::PathBuf;

use chrono::NaiveDate;
use datafusion::error::DataFusionError;
use thiserror::Error;

/// Result alias used throughout `cdp-engine`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything `cdp-engine` can fail with.
#[derive(Debug, Error)]
pub enum Error {
    /// The lake, a manifest or the configuration failed (see `cdp-core`).
    #[error(transparent)]
    Core(#[from] cdp_core::Error),

    /// The tagger failed to fit, apply, load, store or draw (see `cdp-ml`).
    #[error(transparent)]
    Ml(#[from] cdp_ml::Error),

    /// DataFusion failed while doing `what` (planning or running a query,
    /// registering a table, writing a snapshot).
    #[error("{what}: {error}")]
    DataFusion {
        what: String,
        error: Box<DataFusionError>,
    },

    /// A query the user typed failed to plan or run.
    #[error("query failed: {error}")]
    Query { error: Box<DataFusionError> },

    /// `cdp build` needs bronze data the lake does not have.
    #[error("bronze table {source_name} has no data in lake {lake}; run `cdp ingest` first")]
    NoBronze { source_name: String, lake: String },

    /// A feature or view definition file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    SpecRead {
        path: PathBuf,
        source: std::io::Error,
    },

    /// A feature definition file is malformed.
    #[error("feature file {file}: {reason}")]
    FeatureSpec { file: String, reason: String },

    /// A feature family's SQL returned something other than what its
    /// metadata declares.
    #[error("feature family {family}: {reason}")]
    FeatureOutput { family: String, reason: String },

    /// A job's local scratch folder cannot be made.
    #[error("cannot make a scratch folder under {dir}: {source}")]
    Scratch {
        dir: std::path::PathBuf,
        source: std::io::Error,
    },

    /// `cdp features describe NAME` for a name the registry lacks.
    #[error("no feature named {name:?}; `cdp features list` shows them all")]
    UnknownFeature { name: String },

    /// A SQL template uses a `${…}` parameter the engine does not provide.
    #[error("{file}: unknown parameter ${{{name}}}")]
    UnknownParameter { file: String, name: String },

    /// A column a stage needs is missing or has an unexpected type.
    #[error("table {table}: column {column}: {reason}")]
    Column {
        table: String,
        column: String,
        reason: String,
    },

    /// Too few labelled offers with features to train on.
    #[error(
        "too few offers to train as of {as_of}: {rows} rows with features, {needed} needed \
         ({counts}); build feature snapshots for the days before past offers were sent \
         (`cdp build --as-of D`) or lower [offers] min_rows"
    )]
    TooFewOffers {
        as_of: NaiveDate,
        rows: usize,
        needed: usize,
        counts: String,
    },

    /// An `--algo` or `[offers] algo` cdp does not know.
    #[error("unknown algorithm {name:?}: use gbdt, random-forest or logistic")]
    UnknownAlgo { name: String },

    /// No offer model has been trained in this lake.
    #[error("no offer model in lake {lake}; run `cdp train --as-of D` first")]
    NoOfferModel { lake: String },

    /// The published silver manifest names a snapshot that cannot be used.
    #[error("silver snapshot as of {as_of}: {reason}")]
    Snapshot { as_of: NaiveDate, reason: String },

    /// A table file cannot be read (cdp model fit/predict input).
    #[error("cannot read table {}: {reason}", path.display())]
    TableRead { path: PathBuf, reason: String },

    /// A table file cannot be written.
    #[error("cannot write table {}: {reason}", path.display())]
    TableWrite { path: PathBuf, reason: String },

    /// A table file name without a table extension.
    #[error("{}: a table file must end in .csv or .parquet", path.display())]
    TableFormat { path: PathBuf },

    /// Writing query output failed.
    #[error("cannot write {}: {source}", path.display())]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },

    /// An audience file (`cdp offers --audience FILE`) is wrong at a line:
    /// a TOML error, an unknown key, offer, product, channel or column, or
    /// an eligibility predicate that does not plan.
    #[error("audience file {file}, line {line}: {reason}")]
    Audience {
        file: String,
        line: usize,
        reason: String,
    },

    /// An audience file, or a file it names, cannot be read.
    #[error("audience file {file}: {reason}")]
    AudienceFile { file: String, reason: String },

    /// `cdp offers` needs scores of the as-of date.
    #[error("no offer scores as of {as_of} in gold.scores; run `cdp score --as-of {as_of}` first")]
    NoScores { as_of: NaiveDate },

    /// Encoding query output failed.
    #[error("cannot encode query output as {format}: {source}")]
    Encode {
        format: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    /// Wraps a DataFusion error with what the engine was doing.
    pub(crate) fn datafusion(what: impl Into<String>) -> impl FnOnce(DataFusionError) -> Error {
        let what = what.into();
        move |error| Error::DataFusion {
            what,
            error: Box::new(error),
        }
    }
}
