//! Ingest specs (`pipelines/ingest/*.toml`): which contract a source
//! follows, its key, its event time, and the identity keys to derive.

use globset::{Glob, GlobMatcher};
use serde::Deserialize;

use cdp_core::contract::{Contract, Contracts};

use crate::error::{Error, Result};

const EMBEDDED: [(&str, &str); 6] = [
    (
        "card_products.toml",
        include_str!("../../../pipelines/ingest/card_products.toml"),
    ),
    (
        "customers.toml",
        include_str!("../../../pipelines/ingest/customers.toml"),
    ),
    (
        "device_events.toml",
        include_str!("../../../pipelines/ingest/device_events.toml"),
    ),
    (
        "offer_events.toml",
        include_str!("../../../pipelines/ingest/offer_events.toml"),
    ),
    (
        "social_profiles.toml",
        include_str!("../../../pipelines/ingest/social_profiles.toml"),
    ),
    (
        "transactions.toml",
        include_str!("../../../pipelines/ingest/transactions.toml"),
    ),
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    source: String,
    contract: String,
    files: Option<String>,
    key: Option<Vec<String>>,
    event_time: Option<String>,
    #[serde(default)]
    phone_keys: Vec<String>,
    #[serde(default)]
    email_keys: Vec<String>,
    row_group_rows: Option<usize>,
    #[serde(default)]
    partition: Partitioning,
}

/// How bronze files are laid out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Partitioning {
    /// One folder per business date of the event time (`dt=YYYY-MM-DD`).
    #[default]
    EventDate,
    /// One file per raw file; rows still carry `dt`.
    None,
}

/// One source's ingest spec, resolved against its contract.
#[derive(Debug, Clone)]
pub struct IngestSpec {
    /// Bronze table name.
    pub source: String,
    /// The contract the files follow.
    pub contract: Contract,
    /// File-name glob.
    pub files: String,
    matcher: GlobMatcher,
    /// Indices of the de-duplication key fields.
    pub key: Vec<usize>,
    /// Index of the event-time field, if the source has one.
    pub event_time: Option<usize>,
    /// Indices of phone fields to hash.
    pub phone_keys: Vec<usize>,
    /// Indices of e-mail fields to hash.
    pub email_keys: Vec<usize>,
    /// Parquet row-group size.
    pub row_group_rows: usize,
    /// Whether files are split by business date.
    pub partition: Partitioning,
}

impl IngestSpec {
    /// True when a file name (no folders) belongs to this source.
    pub fn matches_file(&self, name: &str) -> bool {
        self.matcher
            .is_match(name.strip_suffix(".gz").unwrap_or(name))
    }
}

/// The specs shipped in `pipelines/ingest/`, sorted by source.
pub fn embedded() -> Result<Vec<IngestSpec>> {
    parse(EMBEDDED.iter().copied(), Contracts::embedded())
}

/// Parses specs from `(file name, TOML)` pairs against `contracts`.
pub fn parse<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a str)>,
    contracts: &Contracts,
) -> Result<Vec<IngestSpec>> {
    let mut specs = Vec::new();
    for (file, text) in files {
        let bad = |reason: String| Error::Spec {
            file: file.into(),
            reason,
        };
        let raw: RawSpec = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let contract = contracts
            .get(&raw.contract)
            .map_err(|e| bad(e.to_string()))?
            .clone();
        let index = |name: &String| {
            contract.field_index(name).ok_or_else(|| {
                bad(format!(
                    "{name:?} is not a field of contract {}",
                    contract.source
                ))
            })
        };
        let key = match &raw.key {
            Some(k) => k.iter().map(index).collect::<Result<Vec<_>>>()?,
            None => contract.key.iter().map(index).collect::<Result<Vec<_>>>()?,
        };
        let event_time = raw
            .event_time
            .as_ref()
            .or(contract.event_time.as_ref())
            .map(index)
            .transpose()?;
        let phone_keys = raw
            .phone_keys
            .iter()
            .map(index)
            .collect::<Result<Vec<_>>>()?;
        let email_keys = raw
            .email_keys
            .iter()
            .map(index)
            .collect::<Result<Vec<_>>>()?;
        let files = raw.files.clone().unwrap_or_else(|| contract.files.clone());
        let matcher = Glob::new(&files)
            .map_err(|e| bad(format!("files = {files:?}: {e}")))?
            .compile_matcher();
        if specs.iter().any(|s: &IngestSpec| s.source == raw.source) {
            return Err(bad(format!("source {:?} has two specs", raw.source)));
        }
        specs.push(IngestSpec {
            source: raw.source,
            contract,
            files,
            matcher,
            key,
            event_time,
            phone_keys,
            email_keys,
            row_group_rows: raw.row_group_rows.unwrap_or(262_144).max(1024),
            partition: if event_time.is_some() {
                raw.partition
            } else {
                Partitioning::None
            },
        });
    }
    specs.sort_by(|a, b| a.source.cmp(&b.source));
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_specs_resolve_against_their_contracts() {
        let specs = embedded().unwrap();
        assert_eq!(specs.len(), 6);
        let customers = specs.iter().find(|s| s.source == "customers").unwrap();
        assert_eq!(customers.key.len(), 2);
        assert_eq!(customers.phone_keys.len(), 1);
        assert!(customers.matches_file("customers_2026-01-01.csv.gz"));
        assert_eq!(customers.partition, Partitioning::None);
        let products = specs.iter().find(|s| s.source == "card_products").unwrap();
        assert!(products.event_time.is_none());
        assert_eq!(products.partition, Partitioning::None);
        let txns = specs.iter().find(|s| s.source == "transactions").unwrap();
        assert_eq!(txns.partition, Partitioning::EventDate);
    }

    #[test]
    fn a_spec_naming_an_unknown_field_is_refused_with_its_file() {
        let text = "source = \"t\"\ncontract = \"transactions\"\nkey = [\"nope\"]\n";
        let err = parse([("t.toml", text)], Contracts::embedded()).unwrap_err();
        assert!(
            err.to_string().contains("t.toml") && err.to_string().contains("nope"),
            "{err}"
        );
    }
}
