//! # cdp-store
//!
//! The feature store over the lake's feature snapshots: named feature
//! services per consumer, point-in-time historical retrieval for training
//! sets, and online stores (embedded in the lake, or Redis) that product
//! teams read in well under a millisecond.
//!
//! * [`services`]: feature services, the named and versioned feature sets
//!   of `pipelines/feature_services/` (`card_offers_v1`, …).
//! * [`historical`]: point-in-time historical retrieval (`cdp historical`):
//!   an entity file with timestamps joined to the feature snapshots, never
//!   seeing a snapshot built after a row's timestamp.
//! * [`online`]: the online store — the [`online::OnlineStore`] trait
//!   (lookups by unified_id with per-value status and event time), the
//!   embedded backend (memory-mapped snapshots in the lake) and the Redis
//!   backend.
//! * [`materialize`]: `cdp materialize`, a feature snapshot into an
//!   online store.
//! * [`synthetic`]: synthetic feature snapshots of any size, for
//!   benchmarks and tests.
//! * [`error`]: the crate's [`Error`] and [`Result`].

pub mod error;
pub mod historical;
pub mod materialize;
pub mod online;
pub mod services;
pub mod synthetic;

pub use error::{Error, Result};
