//! The feature registry: every feature is declared, not hidden in code.
//!
//! A feature family is two files in `pipelines/features/`: `<family>.sql`,
//! one `SELECT` returning `unified_id` and the family's features, and
//! `<family>.toml`, the metadata of each feature (name, entity, type,
//! description, owner, TTL, default, tags). The registry loads both, checks
//! they agree, and is what `cdp features list|describe` shows and what
//! `cdp build` computes.
//!
//! ```
//! use cdp_engine::features::FeatureRegistry;
//!
//! let registry = FeatureRegistry::embedded().unwrap();
//! let f = registry.feature("txn_count_30d").unwrap();
//! assert_eq!(f.entity, "customer");
//! assert!(registry.features().count() >= 40);
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The families shipped in `pipelines/features/`, embedded in the binary.
const EMBEDDED: &[(&str, &str, &str)] = &[
    embedded_family!("transactions"),
    embedded_family!("categories"),
    embedded_family!("velocity"),
    embedded_family!("digital"),
    embedded_family!("social"),
    embedded_family!("profile"),
    embedded_family!("offers"),
];

macro_rules! embedded_family {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!("../../../pipelines/features/", $name, ".toml")),
            include_str!(concat!("../../../pipelines/features/", $name, ".sql")),
        )
    };
}
use embedded_family;

/// A feature's value type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureType {
    /// 64-bit integer.
    Int64,
    /// 64-bit float.
    Float64,
    /// Money: DECIMAL(18,2).
    Decimal,
    /// Text.
    String,
    /// true / false.
    Bool,
    /// A calendar date.
    Date,
    /// A list of strings.
    StringList,
}

impl FeatureType {
    /// The SQL type a value is cast to, `None` for lists (kept as computed).
    pub fn sql_type(self) -> Option<&'static str> {
        match self {
            FeatureType::Int64 => Some("BIGINT"),
            FeatureType::Float64 => Some("DOUBLE"),
            FeatureType::Decimal => Some("DECIMAL(18,2)"),
            FeatureType::String => Some("VARCHAR"),
            FeatureType::Bool => Some("BOOLEAN"),
            FeatureType::Date => Some("DATE"),
            FeatureType::StringList => None,
        }
    }

    /// The name used in metadata files and listings.
    pub fn name(self) -> &'static str {
        match self {
            FeatureType::Int64 => "int64",
            FeatureType::Float64 => "float64",
            FeatureType::Decimal => "decimal",
            FeatureType::String => "string",
            FeatureType::Bool => "bool",
            FeatureType::Date => "date",
            FeatureType::StringList => "string_list",
        }
    }

    /// True for types models can use directly.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            FeatureType::Int64 | FeatureType::Float64 | FeatureType::Decimal | FeatureType::Bool
        )
    }
}

/// One declared feature.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Feature {
    /// Column name in `silver.features`.
    pub name: String,
    /// Family (the SQL file computing it).
    pub family: String,
    /// What it describes: `customer` (one value per unified_id).
    pub entity: String,
    /// Value type.
    #[serde(rename = "type")]
    pub ty: FeatureType,
    /// What it means, precisely.
    pub description: String,
    /// Who answers questions about it.
    pub owner: String,
    /// How long a snapshot value stays valid for serving, in days.
    pub ttl_days: u32,
    /// Value when the entity has no rows in the family's SQL (`None`: null).
    pub default: Option<String>,
    /// Labels such as `canonical`, `pii`, `window:30d`.
    pub tags: Vec<String>,
}

/// A feature family: its SQL and the features it computes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Family {
    /// Name (the file stem).
    pub name: String,
    /// What the family covers.
    pub description: String,
    /// The `SELECT` (with `${…}` parameters).
    pub sql: String,
    /// Its features, in declaration order.
    pub features: Vec<Feature>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FamilyFile {
    description: String,
    entity: String,
    owner: String,
    #[serde(default = "default_ttl")]
    ttl_days: u32,
    #[serde(rename = "feature")]
    features: Vec<FeatureFile>,
}

fn default_ttl() -> u32 {
    2
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeatureFile {
    name: String,
    #[serde(rename = "type")]
    ty: FeatureType,
    description: String,
    owner: Option<String>,
    ttl_days: Option<u32>,
    default: Option<toml::Value>,
    #[serde(default)]
    tags: Vec<String>,
}

/// All declared features, by family.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureRegistry {
    families: Vec<Family>,
}

impl FeatureRegistry {
    /// The families embedded in the binary (`pipelines/features/`).
    pub fn embedded() -> Result<Self> {
        Self::parse(
            EMBEDDED
                .iter()
                .map(|(n, t, s)| (n.to_string(), t.to_string(), s.to_string())),
        )
    }

    /// The families in a folder: every `<family>.toml` with its `<family>.sql`.
    pub fn load_dir(dir: &Path) -> Result<Self> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| Error::SpecRead {
                path: path.into(),
                source,
            })
        };
        let entries = std::fs::read_dir(dir).map_err(|source| Error::SpecRead {
            path: dir.into(),
            source,
        })?;
        let mut files = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|source| Error::SpecRead {
                    path: dir.into(),
                    source,
                })?
                .path();
            if path.extension().is_some_and(|e| e == "toml") {
                let name = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                files.push((name, read(&path)?, read(&path.with_extension("sql"))?));
            }
        }
        files.sort();
        Self::parse(files)
    }

    /// Families from (name, metadata TOML, SQL) triples.
    pub fn parse(files: impl IntoIterator<Item = (String, String, String)>) -> Result<Self> {
        let mut families = Vec::new();
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for (name, toml_text, sql) in files {
            let file = format!("{name}.toml");
            let bad = |reason: String| Error::FeatureSpec {
                file: file.clone(),
                reason,
            };
            let meta: FamilyFile = toml::from_str(&toml_text).map_err(|e| bad(e.to_string()))?;
            if meta.features.is_empty() {
                return Err(bad("declares no [[feature]]".into()));
            }
            if meta.entity != "customer" {
                return Err(bad(format!(
                    "entity {:?}: only `customer` (keyed by unified_id) is supported",
                    meta.entity
                )));
            }
            let mut features = Vec::with_capacity(meta.features.len());
            for f in meta.features {
                if !is_identifier(&f.name) {
                    return Err(bad(format!(
                        "feature name {:?} must be lower_snake_case",
                        f.name
                    )));
                }
                if let Some(other) = seen.insert(f.name.clone(), name.clone()) {
                    return Err(bad(format!(
                        "feature {} is already declared by family {other}",
                        f.name
                    )));
                }
                if f.description.trim().is_empty() {
                    return Err(bad(format!("feature {} has no description", f.name)));
                }
                let default = match f.default {
                    None => None,
                    Some(toml::Value::Integer(i)) => Some(i.to_string()),
                    Some(toml::Value::Float(x)) => Some(x.to_string()),
                    Some(toml::Value::Boolean(b)) => Some(b.to_string()),
                    Some(other) => {
                        return Err(bad(format!(
                            "feature {}: default {other} must be a number or a boolean",
                            f.name
                        )));
                    }
                };
                features.push(Feature {
                    name: f.name,
                    family: name.clone(),
                    entity: meta.entity.clone(),
                    ty: f.ty,
                    description: f.description,
                    owner: f.owner.unwrap_or_else(|| meta.owner.clone()),
                    ttl_days: f.ttl_days.unwrap_or(meta.ttl_days),
                    default,
                    tags: f.tags,
                });
            }
            families.push(Family {
                name,
                description: meta.description,
                sql,
                features,
            });
        }
        Ok(Self { families })
    }

    /// The families, in order.
    pub fn families(&self) -> &[Family] {
        &self.families
    }

    /// Every feature, family by family.
    pub fn features(&self) -> impl Iterator<Item = &Feature> {
        self.families.iter().flat_map(|f| f.features.iter())
    }

    /// The feature called `name`.
    pub fn feature(&self, name: &str) -> Result<&Feature> {
        self.features()
            .find(|f| f.name == name)
            .ok_or_else(|| Error::UnknownFeature { name: name.into() })
    }

    /// The family computing feature `name`.
    pub fn family_of(&self, name: &str) -> Result<&Family> {
        let feature = self.feature(name)?;
        Ok(self
            .families
            .iter()
            .find(|f| f.name == feature.family)
            .expect("a feature's family is registered"))
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family(toml_text: &str) -> Result<FeatureRegistry> {
        FeatureRegistry::parse([(
            "fam".to_string(),
            toml_text.to_string(),
            "SELECT 1".to_string(),
        )])
    }

    const OK: &str = r#"
description = "d"
entity = "customer"
owner = "team"
[[feature]]
name = "a_1"
type = "int64"
description = "an a"
default = 0
"#;

    #[test]
    fn a_family_parses_with_inherited_owner_and_ttl() {
        let registry = family(OK).unwrap();
        let a = registry.feature("a_1").unwrap();
        assert_eq!(a.owner, "team");
        assert_eq!(a.ttl_days, 2);
        assert_eq!(a.default.as_deref(), Some("0"));
        assert!(matches!(
            registry.feature("b"),
            Err(Error::UnknownFeature { .. })
        ));
    }

    #[test]
    fn bad_metadata_is_named() {
        let err = family(&OK.replace("a_1", "A-1")).unwrap_err().to_string();
        assert!(
            err.contains("fam.toml") && err.contains("lower_snake_case"),
            "{err}"
        );
        let err = family(&OK.replace("int64", "number"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("fam.toml"), "{err}");
        let err = family(&OK.replace("\"customer\"", "\"card\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("only `customer`"), "{err}");
    }

    #[test]
    fn a_feature_declared_twice_is_refused() {
        let twice = FeatureRegistry::parse([
            ("one".to_string(), OK.to_string(), String::new()),
            ("two".to_string(), OK.to_string(), String::new()),
        ]);
        let err = twice.unwrap_err().to_string();
        assert!(err.contains("already declared by family one"), "{err}");
    }

    #[test]
    fn embedded_families_cover_the_canonical_features() {
        let registry = FeatureRegistry::embedded().unwrap();
        for name in [
            "txn_count_30d",
            "spend_30d",
            "days_since_last_txn",
            "distinct_devices_90d",
        ] {
            let f = registry.feature(name).unwrap();
            assert!(f.tags.iter().any(|t| t == "canonical"), "{name}");
        }
    }
}
