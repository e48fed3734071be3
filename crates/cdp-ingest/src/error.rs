//! Errors of the ingest stage.

use thiserror::Error;

/// Result alias of `cdp-ingest`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can stop an ingest run (bad rows and unreadable files never do:
/// they are quarantined or reported).
#[derive(Debug, Error)]
pub enum Error {
    /// An ingest spec in `pipelines/ingest/` is malformed.
    #[error("ingest spec {file}: {reason}")]
    Spec { file: String, reason: String },

    /// The source folder or URL cannot be listed.
    #[error("cannot list source {uri}: {reason}")]
    Source { uri: String, reason: String },

    /// Local staging I/O failed.
    #[error("staging file {path}: {source}")]
    Staging {
        path: String,
        source: std::io::Error,
    },

    /// Polars failed to build or write a frame.
    #[error("{context}: {source}")]
    Frame {
        context: String,
        source: polars::error::PolarsError,
    },

    /// A lake, contract or manifest error.
    #[error(transparent)]
    Core(#[from] cdp_core::Error),
}

impl Error {
    pub(crate) fn frame(
        context: impl Into<String>,
    ) -> impl FnOnce(polars::error::PolarsError) -> Error {
        let context = context.into();
        move |source| Error::Frame { context, source }
    }
}
