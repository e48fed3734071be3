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
}
