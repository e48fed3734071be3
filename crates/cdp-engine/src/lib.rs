//! # cdp-engine
//!
//! Apache DataFusion over the lake: identity resolution, the unified
//! customer view, declared features and SQL.
//!
//! * [`session::Engine`]: a DataFusion session sized for this machine
//!   (spilling memory pool, partitions per core) with the lake's object
//!   store and cdp's SQL functions ([`udf`]) registered.
//! * [`tables`]: lake tables registered from manifests — `bronze.*` (PII
//!   masked unless the caller has the PII scope), `silver.*`, `gold.*`,
//!   `ref.*`.
//! * [`build::build`]: `cdp build --as-of D`, bronze to a published silver
//!   snapshot (`identity_map`, `customer_360`, `features`).
//! * [`tag::tag`]: `cdp tag --as-of D`, `silver.features` through the
//!   current (or a newly fitted) customer tagger of `cdp-ml` to
//!   `gold.tags` and `gold.tag_drift`.
//! * [`train::train`]: `cdp train --as-of D`, labelled past offers with
//!   point-in-time features to a versioned offer model (`models/offer/`).
//! * [`score::score`]: `cdp score --as-of D`, every eligible customer ×
//!   card offer scored by the current offer model, ranked and explained in
//!   `gold.scores`.
//! * [`audience`]: `cdp offers`, a marketer's audience file evaluated into
//!   a ranked, suppressed, capped offer list with a control group, a run
//!   record and an HTML report.
//! * [`serving`]: what `cdp serve` loads for a snapshot: profiles with
//!   tags (and raw PII for callers holding the PII scope), the card catalogue.
//! * [`gold`]: gold tables written and published into a gold snapshot,
//!   beside the other tables of that date.
//! * [`identity`]: union-find identity resolution with ids stable across
//!   nights.
//! * [`frame`]: CSV and Parquet tables in and out of models (`cdp model
//!   fit|predict`), and Arrow batches as the row-major `f32` matrices
//!   models read ([`frame::batches_to_matrix`]).
//! * [`features::FeatureRegistry`]: the declared features of
//!   `pipelines/features/`.
//! * [`query`]: `cdp query SQL` over every lake table, and its output formats.
//! * [`sql`]: `${…}` parameters of the SQL templates.
//! * [`error`]: the crate's [`Error`] and [`Result`].

pub mod audience;
pub mod build;
pub mod error;
pub mod features;
pub mod frame;
pub mod gold;
pub mod identity;
pub mod query;
pub mod score;
pub mod serving;
pub mod session;
pub mod sql;
pub mod tables;
pub mod tag;
pub mod train;
pub mod udf;

pub use error::{Error, Result};
pub use session::{Engine, EngineOptions};
