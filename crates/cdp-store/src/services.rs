//! Feature services: named, versioned sets of features per consumer.
//!
//! A feature service is one TOML file in `pipelines/feature_services/`
//! (`card_offers_v1.toml`, `fraud_signals_v1.toml`): the features one
//! consumer reads, under a name that pins them. A consumer asks for
//! `card_offers_v1` (`cdp historical --service`, the gRPC
//! `FeatureService`) and always gets the same columns; a changed list is a
//! new version (`card_offers_v2`) beside the old one.
//!
//! ```toml
//! name = "card_offers_v1"       # the file stem; ends in _v<version>
//! version = 1
//! description = "Card-offer propensity: spend level and mix, …"
//! owner = "cards-analytics"
//! consumer = "card offer model and the mobile app's offer carousel"
//! features = ["txn_count_30d", "spend_30d", "travel_share_90d"]
//! ```
//!
//! Every feature must be declared in the feature registry
//! ([`FeatureRegistry`]); an unknown one is an error naming the file and
//! the feature.
//!
//! ```
//! use cdp_engine::features::FeatureRegistry;
//! use cdp_store::services::FeatureServices;
//!
//! let registry = FeatureRegistry::embedded().unwrap();
//! let services = FeatureServices::embedded(&registry).unwrap();
//! let offers = services.get("card_offers_v1").unwrap();
//! assert_eq!(offers.version, 1);
//! assert!(offers.features.iter().any(|f| f == "spend_30d"));
//! ```

use std::collections::BTreeSet;
use std::path::Path;

use cdp_engine::features::FeatureRegistry;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The services shipped in `pipelines/feature_services/`, embedded in the
/// binary: (file name, contents).
const EMBEDDED: &[(&str, &str)] = &[
    embedded_service!("card_offers_v1"),
    embedded_service!("fraud_signals_v1"),
];

macro_rules! embedded_service {
    ($name:literal) => {
        (
            concat!($name, ".toml"),
            include_str!(concat!(
                "../../../pipelines/feature_services/",
                $name,
                ".toml"
            )),
        )
    };
}
use embedded_service;

/// One feature service: the features a consumer reads, by name and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureService {
    /// Name, `<base>_v<version>` (the file stem).
    pub name: String,
    /// Version, as in the name.
    pub version: u32,
    /// What the set is for.
    pub description: String,
    /// Who answers questions about it.
    pub owner: String,
    /// Who reads it.
    pub consumer: String,
    /// Declared feature names, in the order consumers get them.
    pub features: Vec<String>,
}

/// Every feature service, validated against a feature registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeatureServices {
    services: Vec<FeatureService>,
}

impl FeatureServices {
    /// The services embedded in the binary (`pipelines/feature_services/`).
    pub fn embedded(registry: &FeatureRegistry) -> Result<Self> {
        Self::parse(
            EMBEDDED
                .iter()
                .map(|(file, text)| (file.to_string(), text.to_string())),
            registry,
        )
    }

    /// The services in a folder: every `*.toml` file.
    pub fn load_dir(dir: &Path, registry: &FeatureRegistry) -> Result<Self> {
        let read_error = |path: &Path, source| Error::ServiceRead {
            path: path.to_path_buf(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| read_error(dir, e))? {
            let path = entry.map_err(|e| read_error(dir, e))?.path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).map_err(|e| read_error(&path, e))?;
                let file = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                files.push((file, text));
            }
        }
        files.sort();
        Self::parse(files, registry)
    }

    /// Services from (file name, TOML text) pairs, checked against
    /// `registry`: the name is the file stem and ends in `_v<version>`,
    /// the list is not empty, names no feature twice, and every feature is
    /// declared.
    pub fn parse(
        files: impl IntoIterator<Item = (String, String)>,
        registry: &FeatureRegistry,
    ) -> Result<Self> {
        let mut services: Vec<FeatureService> = Vec::new();
        for (file, text) in files {
            let bad = |reason: String| Error::ServiceSpec {
                file: file.clone(),
                reason,
            };
            let service: FeatureService = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
            let stem = file.strip_suffix(".toml").unwrap_or(&file);
            if service.name != stem {
                return Err(bad(format!(
                    "name {:?} must be the file name without .toml ({stem:?})",
                    service.name
                )));
            }
            let suffix = format!("_v{}", service.version);
            if !service.name.ends_with(&suffix) || service.name.len() == suffix.len() {
                return Err(bad(format!(
                    "name {:?} must end in {suffix:?} (its version is {})",
                    service.name, service.version
                )));
            }
            for (what, value) in [
                ("description", &service.description),
                ("owner", &service.owner),
                ("consumer", &service.consumer),
            ] {
                if value.trim().is_empty() {
                    return Err(bad(format!("{what} is empty")));
                }
            }
            if service.features.is_empty() {
                return Err(bad("lists no features".into()));
            }
            let mut seen = BTreeSet::new();
            for feature in &service.features {
                if !seen.insert(feature.as_str()) {
                    return Err(bad(format!("lists feature {feature} twice")));
                }
                if registry.feature(feature).is_err() {
                    return Err(Error::ServiceFeature {
                        file: file.clone(),
                        feature: feature.clone(),
                    });
                }
            }
            if services.iter().any(|s| s.name == service.name) {
                return Err(bad(format!("service {} is declared twice", service.name)));
            }
            services.push(service);
        }
        Ok(Self { services })
    }

    /// The services, in file-name order.
    pub fn services(&self) -> &[FeatureService] {
        &self.services
    }

    /// The service called `name`.
    pub fn get(&self, name: &str) -> Result<&FeatureService> {
        self.services
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| Error::UnknownService {
                name: name.into(),
                known: self.services.iter().map(|s| s.name.clone()).collect(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
name = "offers_v2"
version = 2
description = "d"
owner = "o"
consumer = "c"
features = ["txn_count_30d", "spend_30d"]
"#;

    fn parse(file: &str, text: &str) -> Result<FeatureServices> {
        let registry = FeatureRegistry::embedded().unwrap();
        FeatureServices::parse([(file.to_string(), text.to_string())], &registry)
    }

    #[test]
    fn the_embedded_services_load_against_the_embedded_registry() {
        let registry = FeatureRegistry::embedded().unwrap();
        let services = FeatureServices::embedded(&registry).unwrap();
        let names: Vec<_> = services
            .services()
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, ["card_offers_v1", "fraud_signals_v1"]);
        for service in services.services() {
            assert!(service.features.len() >= 10, "{}", service.name);
        }
    }

    #[test]
    fn a_valid_file_parses_in_order() {
        let services = parse("offers_v2.toml", OK).unwrap();
        let s = services.get("offers_v2").unwrap();
        assert_eq!(s.features, ["txn_count_30d", "spend_30d"]);
        assert_eq!(s.version, 2);
    }

    #[test]
    fn bad_files_are_refused_with_file_and_reason() {
        // (file, text, what the message must hold)
        let cases = [
            (
                "offers_v2.toml",
                OK.replace("\"spend_30d\"", "\"spend_31d\""),
                "offers_v2.toml: unknown feature spend_31d",
            ),
            ("other_v2.toml", OK.to_string(), "must be the file name"),
            (
                "offers_v2.toml",
                OK.replace("version = 2", "version = 3"),
                "must end in \"_v3\"",
            ),
            (
                "offers_v2.toml",
                OK.replace("\"spend_30d\"", "\"txn_count_30d\""),
                "lists feature txn_count_30d twice",
            ),
            (
                "offers_v2.toml",
                OK.replace("[\"txn_count_30d\", \"spend_30d\"]", "[]"),
                "lists no features",
            ),
            (
                "offers_v2.toml",
                OK.replace("owner = \"o\"", "owner = \" \""),
                "owner is empty",
            ),
            (
                "offers_v2.toml",
                format!("{OK}\nextra = 1"),
                "unknown field `extra`",
            ),
        ];
        for (file, text, expected) in cases {
            let err = parse(file, &text).unwrap_err().to_string();
            assert!(err.contains(file), "{err}");
            assert!(err.contains(expected), "{expected:?} not in {err}");
        }
    }

    #[test]
    fn an_unknown_service_names_the_known_ones() {
        let services = parse("offers_v2.toml", OK).unwrap();
        let err = services.get("offers_v1").unwrap_err().to_string();
        assert!(
            err.contains("offers_v1") && err.contains("offers_v2"),
            "{err}"
        );
    }
}
