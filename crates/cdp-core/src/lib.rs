//! # cdp-core
//!
//! The foundations every other cdp crate stands on.
//!
//! * [`config`]: layered settings — defaults, `cdp.toml`, `CDP__SECTION__KEY`
//!   environment variables — validated once by [`config::Config::load`].
//! * [`lake`]: the lake as an `object_store` root ([`lake::Lake::open`]), its
//!   folder layout ([`lake::paths`]) and the publish primitive
//!   ([`lake::Lake::publish`]: write files, then swap one small manifest).
//! * [`release`]: the manifest that says what serves (`cdp refresh` publishes
//!   it last) and the pins of running servers.
//! * [`time`]: the bank's business day and as-of windows
//!   ([`time::BusinessCalendar`]).
//! * [`contract`]: the raw source contracts of `schemas/` and the row
//!   validator that enforces them ([`contract::Contracts::embedded`]).
//! * [`rawfile`]: raw files (plain or `.gz`) read record by record with their
//!   line numbers, and checked against their contract ([`rawfile::check_file`]).
//! * [`identity`] and [`pii`]: normalised, hashed identity keys and masking.
//! * [`reference`]: embedded reference data (card products, FX rates).
//! * [`progress`]: the progress-reporting trait long tasks report through.
//! * [`error`]: the crate's [`Error`] and [`Result`].

pub mod config;
pub mod contract;
pub mod error;
pub mod identity;
pub mod lake;
pub mod pii;
pub mod progress;
pub mod rawfile;
pub mod reference;
pub mod release;
pub mod time;

pub use error::{Error, Result};
