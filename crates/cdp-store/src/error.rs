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
}
