//! The error type of `cdp-core`: one variant per thing that can go wrong,
//! each carrying the file, key or value it concerns.

use std::path::PathBuf;

use thiserror::Error;

/// Result alias used throughout `cdp-core`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything `cdp-core` can fail with.
#[derive(Debug, Error)]
pub enum Error {
    /// A config file named on the command line, or `cdp.toml`, could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    ConfigRead {
        path: PathBuf,
        source: std::io::Error,
    },

    /// A config file is not valid TOML.
    #[error("config file {} is not valid TOML: {source}", path.display())]
    ConfigParse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },

    /// A `CDP__SECTION__KEY` environment variable does not name a setting.
    #[error("environment variable {var}: {reason}")]
    ConfigEnv { var: String, reason: &'static str },

    /// The merged configuration does not deserialize (unknown key, wrong type).
    #[error("invalid configuration (defaults, then cdp.toml, then CDP__* variables): {source}")]
    ConfigShape { source: Box<toml::de::Error> },

    /// A setting has a value outside what cdp accepts.
    #[error("invalid configuration: {key} = {value:?}: {reason}")]
    ConfigValue {
        key: &'static str,
        value: String,
        reason: String,
    },

    /// A lake URI that is neither a local path nor a supported object store URL.
    #[error("invalid lake URI {uri:?}: {reason}")]
    LakeUri { uri: String, reason: String },

    /// An object store operation failed.
    #[error("lake {op} of {path} failed: {source}")]
    Store {
        op: &'static str,
        path: String,
        source: object_store::Error,
    },

    /// A manifest exists but is not valid JSON of the expected shape.
    #[error("manifest {path} is corrupt: {source}")]
    ManifestCorrupt {
        path: String,
        source: serde_json::Error,
    },

    /// Another writer published the same manifest version first.
    #[error(
        "manifest {name}: version {version} was published by another writer; re-read and retry"
    )]
    ManifestConflict { name: String, version: u64 },

    /// A raw source contract in `schemas/` is malformed.
    #[error("contract {file}: {reason}")]
    Contract { file: String, reason: String },

    /// No contract has this source name.
    #[error("unknown source {name:?}; known sources: {known}")]
    UnknownSource { name: String, known: String },

    /// A time zone name that the tz database does not know.
    #[error("unknown time zone {name:?} (expected an IANA name such as Asia/Shanghai)")]
    TimeZone { name: String },

    /// A date that is not `YYYY-MM-DD`.
    #[error("invalid date {value:?}: expected YYYY-MM-DD")]
    Date { value: String },

    /// Embedded reference data failed to parse (a build-time mistake).
    #[error("reference table {table}, row {row}: {reason}")]
    Reference {
        table: &'static str,
        row: usize,
        reason: String,
    },
}
