//! # cdp-refresh
//!
//! The nightly job: `cdp refresh --source DIR --as-of D` takes the lake
//! from last night's state to tonight's as one run, and publishes only
//! when everything passed.
//!
//! * [`pipeline::refresh`]: ingest → build → quality gate → tag → labels →
//!   train (when due) → score → materialize → publish, each stage skipped
//!   when its inputs are unchanged since an earlier run did it (content
//!   fingerprints), so a re-run after a failure resumes where it stopped;
//!   the release manifest ([`cdp_core::release`]) that `cdp serve` follows
//!   is published last. A backfill is the same run for each date of a
//!   range ([`pipeline::Request::range`]).
//! * [`record`]: one JSON run record per run in the lake (`_runs/`):
//!   stages, durations, rows, checks, drift, warnings, status; read by
//!   `cdp runs list` and `cdp runs show ID`.
//! * [`quality`]: the data-quality checks and drift (PSI) the gate applies.
//! * [`retention`]: keep the newest N snapshots, models and records; delete
//!   unreferenced files safely ([`retention::gc`], also `cdp gc`).
//! * [`lock`]: the lake's lease lock, so two refreshes never both publish.
//! * [`error`]: the crate's [`Error`] and [`Result`].
//!
//! A backfill's dates, and the run records of a lake (none yet):
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use cdp_core::lake::Lake;
//! use cdp_refresh::{Request, record};
//!
//! let days = Request::range("2026-03-14".parse().unwrap(), "2026-03-16".parse().unwrap()).unwrap();
//! assert_eq!(days.len(), 3);
//! let lake = Lake::open("memory://").unwrap();
//! assert!(record::list(&lake).await.unwrap().is_empty());
//! # });
//! ```

pub mod error;
pub mod lock;
pub mod pipeline;
pub mod quality;
pub mod record;
pub mod retention;

pub use error::{Error, Result};
pub use pipeline::{Observer, Request, refresh};
pub use record::{RunRecord, RunStatus};
