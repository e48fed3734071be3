//! # cdp-server
//!
//! The gRPC surface of cdp (`proto/cdp/v1`), served by tonic: what product
//! teams call from their own request paths.
//!
//! * [`server::serve`]: binds the gRPC and metrics listeners and serves
//!   until shut down — `ProfileService`, `FeatureService`,
//!   `ScoringService`, `grpc.health.v1` and server reflection; TLS when a
//!   certificate is configured.
//! * [`state`]: what is served — one [`state::Serving`] per published
//!   snapshot (profiles, card catalogue, offer model, online store), loaded
//!   from the lake and swapped in without blocking a request
//!   ([`state::Reloader`]).
//! * [`profiles`]: the profile index — every known key of every person to
//!   their golden record, masked unless the caller holds the PII scope.
//! * [`scoring`]: online offer scoring — eligibility, the current offer
//!   model over the customer's online features, TreeSHAP reasons in words.
//! * [`auth`]: API keys (stored as SHA-256 hashes), teams and scopes.
//! * [`service`]: the three tonic services; every call passes one gate
//!   (authentication, scope, concurrency limit, metrics).
//! * [`metrics`]: Prometheus metrics (`GET /metrics`).
//! * [`error`]: the crate's [`Error`], [`Result`], and the one place errors
//!   become gRPC status codes.
//! * [`pb`]: the generated `cdp.v1` messages, clients and servers.

pub mod auth;
pub mod error;
pub mod metrics;
pub mod profiles;
pub mod scoring;
pub mod server;
pub mod service;
pub mod state;

pub use error::{Error, Result};

/// The generated `cdp.v1` protocol: messages, `*_client` and `*_server`.
pub mod pb {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("cdp.v1");

    /// The encoded file descriptor set of `cdp.v1`, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("cdp_v1_descriptor");
}
