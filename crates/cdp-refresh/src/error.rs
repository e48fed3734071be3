//! The refresh's error type.

use chrono::{DateTime, NaiveDate, Utc};

/// What can go wrong in a refresh.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another refresh holds the lake's lock.
    #[error(
        "the lake is locked by refresh run {run} (host {host}, pid {pid}) until {expires_at}; \
         wait for it, or for its lease to run out if it died"
    )]
    Locked {
        run: String,
        host: String,
        pid: u32,
        expires_at: DateTime<Utc>,
    },

    /// This refresh's lock was taken over (its lease ran out while it was
    /// stalled); it must not publish.
    #[error("refresh run {run} lost the lake's lock to a newer lease ({lease}); nothing published")]
    LockLost { run: String, lease: String },

    /// Another writer published a release while this refresh ran.
    #[error(
        "the release moved from version {expected} to {found} while refresh run {run} ran; \
         nothing published, re-run to publish over it"
    )]
    ReleaseMoved {
        run: String,
        expected: u64,
        found: u64,
    },

    /// A stage failed.
    #[error("refresh run {run}, {as_of}, stage {stage}: {source}")]
    Stage {
        run: String,
        as_of: NaiveDate,
        stage: &'static str,
        #[source]
        source: Box<Error>,
    },

    /// The quality gate failed: nothing was published.
    #[error(
        "refresh run {run}, {as_of}: the quality gate failed ({failed}); nothing published \
         (`cdp runs show {run}` for every check)"
    )]
    Gate {
        run: String,
        as_of: NaiveDate,
        failed: String,
    },

    /// No run record of that id.
    #[error("no refresh run {id} in the lake (`cdp runs list` shows them)")]
    NoSuchRun { id: String },

    /// Several run records start with that id.
    #[error("run id {id} is ambiguous: {matches}")]
    AmbiguousRun { id: String, matches: String },

    /// A run record or lock lease that does not parse.
    #[error("{path} is corrupt: {source}")]
    Corrupt {
        path: String,
        source: serde_json::Error,
    },

    /// A backfill range that ends before it starts.
    #[error("--from {from} is after --to {to}")]
    BadRange { from: NaiveDate, to: NaiveDate },

    /// The lake.
    #[error(transparent)]
    Core(#[from] cdp_core::Error),

    /// The engine (build, tag, labels, train, score).
    #[error(transparent)]
    Engine(#[from] cdp_engine::Error),

    /// The model store.
    #[error(transparent)]
    Model(#[from] cdp_ml::Error),

    /// The online store.
    #[error(transparent)]
    Store(#[from] cdp_store::Error),

    /// Ingest.
    #[error(transparent)]
    Ingest(#[from] cdp_ingest::Error),
}

/// The refresh's result type.
pub type Result<T> = std::result::Result<T, Error>;
