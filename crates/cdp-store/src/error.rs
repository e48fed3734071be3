//! The error type of `cdp-store`: typed variants naming the feature
//! service, entity file, row, key or snapshot they concern.

use thiserror::Error;

/// Result alias used throughout `cdp-store`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything `cdp-store` can fail with.
#[derive(Debug, Error)]
pub enum Error {
    /// The lake, a manifest or the configuration failed (see `cdp-core`).
    #[error(transparent)]
    Core(#[from] cdp_core::Error),

    /// The query engine failed (see `cdp-engine`).
    #[error(transparent)]
    Engine(#[from] cdp_engine::Error),

    /// `cdp materialize --as-of D` before `cdp build --as-of D`.
    #[error(
        "silver.features as of {as_of} is not built (built: {built}); run `cdp build --as-of {as_of}` first"
    )]
    NotBuilt {
        as_of: chrono::NaiveDate,
        built: String,
    },

    /// A lookup before anything was materialized into the online store.
    #[error("nothing is materialized in the online store {store}; run `cdp materialize --as-of D`")]
    NotMaterialized { store: String },

    /// A lookup names a feature the online store does not hold.
    #[error(
        "feature {feature} is not in the online store (materialized as of {as_of}); `cdp features list` shows the declared ones"
    )]
    UnknownOnlineFeature {
        feature: String,
        as_of: chrono::NaiveDate,
    },

    /// A lookup names more entities than one request may.
    #[error("{requested} entities in one lookup; at most {max}")]
    TooManyEntities { requested: usize, max: usize },

    /// `--online` / `[online] backend` is neither `embedded` nor a Redis URL.
    #[error("online store {uri}: {reason}")]
    OnlineTarget { uri: String, reason: String },

    /// A feature column cannot be turned into, or read back as, its
    /// declared type.
    #[error("online store column {feature}: {reason}")]
    OnlineColumn { feature: String, reason: String },

    /// An embedded snapshot file cannot be written, read or decoded.
    #[error("online snapshot file {path}: {reason}")]
    OnlineFile { path: String, reason: String },

    /// Redis failed or could not be reached (the URL shown without credentials).
    #[error("redis {url}: {op}: {source}")]
    Redis {
        url: String,
        op: &'static str,
        source: redis::RedisError,
    },

    /// Redis holds something the online store did not write as it reads it.
    #[error("redis key {key}: {reason}")]
    RedisData { key: String, reason: String },

    /// Another materialization into the same Redis keys is running.
    #[error(
        "another materialization holds {lock}; try again when it is done (the lock lapses after an hour)"
    )]
    MaterializeBusy { lock: String },

    /// A feature service file or folder could not be read.
    #[error("cannot read {}: {source}", path.display())]
    ServiceRead {
        path: std::path::PathBuf,
        source: std::io::Error,
    },

    /// A feature service file is malformed.
    #[error("feature service file {file}: {reason}")]
    ServiceSpec { file: String, reason: String },

    /// A feature service lists a feature the registry does not declare.
    #[error(
        "feature service file {file}: unknown feature {feature}; `cdp features list` shows the declared ones"
    )]
    ServiceFeature { file: String, feature: String },

    /// A feature service name no file declares.
    #[error("no feature service named {name:?}; known: {}", known.join(", "))]
    UnknownService { name: String, known: Vec<String> },

    /// A historical retrieval asks for something it cannot give (no
    /// features, an unknown one, a feature twice).
    #[error("historical retrieval: {reason}")]
    Request { reason: String },

    /// The entity file cannot be read.
    #[error("entity file {}: {reason}", path.display())]
    EntityRead {
        path: std::path::PathBuf,
        reason: String,
    },

    /// A column of the entity file is missing, ambiguous or of a type that
    /// cannot be used.
    #[error("entity file {}: {reason}", path.display())]
    EntityColumn {
        path: std::path::PathBuf,
        reason: String,
    },

    /// The lake has no feature snapshot to retrieve from.
    #[error("lake {lake} has no feature snapshot; run `cdp build --as-of D` first")]
    NoSnapshot { lake: String },

    /// A feature snapshot lacks a requested feature (built before it was
    /// declared).
    #[error(
        "feature {feature} is not in the snapshot as of {as_of}; rebuild it with `cdp build --as-of {as_of}`"
    )]
    MissingFeature {
        feature: String,
        as_of: chrono::NaiveDate,
    },

    /// The point-in-time join failed in DataFusion.
    #[error("historical retrieval: {what}: {error}")]
    Join {
        what: String,
        error: Box<datafusion::error::DataFusionError>,
    },

    /// The output file cannot be written.
    #[error("cannot write {}: {reason}", path.display())]
    Output {
        path: std::path::PathBuf,
        reason: String,
    },
}
