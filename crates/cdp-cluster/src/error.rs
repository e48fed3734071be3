//! The error type of `cdp-cluster`: what failed, and at which address.

use std::net::SocketAddr;

use ballista_core::error::BallistaError;
use thiserror::Error;

/// Result alias used throughout `cdp-cluster`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything `cdp-cluster` can fail with.
#[derive(Debug, Error)]
pub enum Error {
    /// The lake or the engine settings failed (see `cdp-engine`).
    #[error(transparent)]
    Engine(#[from] cdp_engine::Error),

    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },

    /// The scheduler address is not `host:port`.
    #[error("scheduler address {addr:?}: {reason}")]
    SchedulerAddress { addr: String, reason: String },

    /// DataFusion failed while doing `what`.
    #[error("{what}: {source}")]
    DataFusion {
        what: &'static str,
        source: Box<datafusion::error::DataFusionError>,
    },

    /// Ballista failed while doing `what`.
    #[error("{what}: {source}")]
    Ballista {
        what: &'static str,
        source: Box<BallistaError>,
    },
}

impl Error {
    /// A mapper for `map_err` naming what Ballista was doing.
    pub(crate) fn ballista(what: &'static str) -> impl FnOnce(BallistaError) -> Self {
        move |source| Self::Ballista {
            what,
            source: Box::new(source),
        }
    }
}
