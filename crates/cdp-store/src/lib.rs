//! # cdp-store
//!
//! The feature store over the lake's feature snapshots: named feature
//! services per consumer, point-in-time historical retrieval for training
//! sets, and online stores (embedded in the lake, or Redis) that product
//! teams read in well under a millisecond.
//!
//! * [`error`]: the crate's [`Error`] and [`Result`].

pub mod error;

pub use error::{Error, Result};
