//! Errors of the generator.

use std::path::PathBuf;

use thiserror::Error;

/// Result alias of `cdp-gen`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while generating.
#[derive(Debug, Error)]
pub enum Error {
    /// An argument outside what the generator supports.
    #[error("invalid generator option {option} = {value}: {reason}")]
    Option {
        option: &'static str,
        value: String,
        reason: &'static str,
    },

    /// The output folder already holds files.
    #[error(
        "output folder {} is not empty ({entries} entries); use a new folder, or --force to replace generated files",
        path.display()
    )]
    NotEmpty { path: PathBuf, entries: usize },

    /// Writing an output file failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },

    /// Writing a CSV file failed.
    #[error("cannot write {}: {source}", path.display())]
    Csv { path: PathBuf, source: csv::Error },

    /// The embedded contracts or reference data are unusable.
    #[error(transparent)]
    Core(#[from] cdp_core::Error),
}
