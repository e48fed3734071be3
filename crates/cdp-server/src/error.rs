//! The server's errors, and the one place they become gRPC status codes.
//!
//! Messages never carry customer data: a key that was not found is named by
//! its kind, never by its value.

use tonic::{Code, Status};

/// Everything that can go wrong while serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No `authorization: Bearer KEY` metadata, or a key nobody holds.
    #[error("unauthenticated: {reason}")]
    Unauthenticated { reason: &'static str },

    /// The caller's key lacks the scope the method needs.
    #[error("team {team:?} lacks the {scope:?} scope")]
    PermissionDenied { team: String, scope: &'static str },

    /// The caller's key may not read this feature service or feature.
    #[error("team {team:?} may not read {what}")]
    FeatureDenied { team: String, what: String },

    /// A malformed request: which field, and why.
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: String, reason: String },

    /// No customer has the key (the value is not repeated: it may be PII).
    #[error("no customer has that {kind}")]
    NotFound { kind: &'static str },

    /// The caller's deadline (`grpc-timeout`) passed before the answer was ready.
    #[error("deadline of {budget_micros} µs exceeded")]
    DeadlineExceeded { budget_micros: u128 },

    /// Too many requests at once.
    #[error("overloaded: {limit} requests in flight; retry with back-off")]
    Overloaded { limit: usize },

    /// Nothing to serve yet (no snapshot, nothing materialized, no model).
    #[error("not ready: {reason}")]
    NotReady { reason: String },

    /// The online store failed.
    #[error("online store: {0}")]
    Store(#[from] cdp_store::Error),

    /// Loading a snapshot from the lake failed.
    #[error("loading the snapshot: {0}")]
    Engine(#[from] cdp_engine::Error),

    /// The offer model failed.
    #[error("offer model: {0}")]
    Model(#[from] cdp_ml::Error),

    /// The lake failed.
    #[error("lake: {0}")]
    Lake(#[from] cdp_core::Error),

    /// A loaded table lacks a column the server needs, or has another type.
    #[error("table {table}: column {column}: {reason}")]
    Column {
        table: &'static str,
        column: String,
        reason: String,
    },

    /// A listener could not be bound or served.
    #[error("{what} on {addr}: {reason}")]
    Listen {
        what: &'static str,
        addr: String,
        reason: String,
    },

    /// The TLS certificate or key could not be read.
    #[error("TLS: cannot read {path}: {source}")]
    Tls {
        path: String,
        source: std::io::Error,
    },
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A malformed request field.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The gRPC status code of this error.
    pub fn code(&self) -> Code {
        match self {
            Error::Unauthenticated { .. } => Code::Unauthenticated,
            Error::PermissionDenied { .. } | Error::FeatureDenied { .. } => Code::PermissionDenied,
            Error::InvalidArgument { .. } => Code::InvalidArgument,
            Error::NotFound { .. } => Code::NotFound,
            Error::Overloaded { .. } => Code::ResourceExhausted,
            Error::DeadlineExceeded { .. } => Code::DeadlineExceeded,
            Error::NotReady { .. } => Code::Unavailable,
            Error::Store(e) => match e {
                cdp_store::Error::TooManyEntities { .. } => Code::InvalidArgument,
                cdp_store::Error::UnknownOnlineFeature { .. }
                | cdp_store::Error::UnknownService { .. } => Code::InvalidArgument,
                cdp_store::Error::NotMaterialized { .. } => Code::Unavailable,
                _ => Code::Internal,
            },
            Error::Engine(_)
            | Error::Model(_)
            | Error::Lake(_)
            | Error::Column { .. }
            | Error::Listen { .. }
            | Error::Tls { .. } => Code::Internal,
        }
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Status {
        let code = error.code();
        if code == Code::Internal {
            // the cause goes to the log; the caller gets no internals
            tracing::error!(error = %error, "internal error");
            return Status::internal("internal error; see the server log");
        }
        Status::new(code, error.to_string())
    }
}
