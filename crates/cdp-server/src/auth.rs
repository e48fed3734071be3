//! API keys: each bound to a team, with scopes and the feature services it
//! may read. The server keeps only SHA-256 hashes of the keys; a caller
//! sends the key as `authorization: Bearer KEY`.
//!
//! ```
//! use cdp_core::config::ApiKeyConfig;
//! use cdp_server::auth::{ApiKeys, Scope, hash_key};
//!
//! let keys = ApiKeys::new(&[ApiKeyConfig {
//!     team: "mobile-app".into(),
//!     key_sha256: hash_key("cdp_secret"),
//!     scopes: vec!["profiles".into()],
//!     feature_services: vec![],
//! }]);
//! let caller = keys.authenticate(Some("Bearer cdp_secret")).unwrap();
//! assert_eq!(caller.team, "mobile-app");
//! assert!(caller.require(Scope::Profiles).is_ok());
//! assert!(caller.require(Scope::Pii).is_err());
//! assert!(keys.authenticate(Some("Bearer wrong")).is_err());
//! assert!(keys.authenticate(None).is_err());
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use cdp_core::config::ApiKeyConfig;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `ProfileService`.
    Profiles,
    /// `FeatureService`.
    Features,
    /// `ScoringService`.
    Scores,
    /// Raw names, id numbers, phones and e-mails in profiles.
    Pii,
}

impl Scope {
    /// The scope's name in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Profiles => "profiles",
            Scope::Features => "features",
            Scope::Scores => "scores",
            Scope::Pii => "pii",
        }
    }

    fn parse(name: &str) -> Option<Scope> {
        Some(match name {
            "profiles" => Scope::Profiles,
            "features" => Scope::Features,
            "scores" => Scope::Scores,
            "pii" => Scope::Pii,
            _ => return None,
        })
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The team the key belongs to.
    pub team: String,
    scopes: Vec<Scope>,
    /// Feature services the key may read; empty: any.
    pub feature_services: Vec<String>,
}

impl Caller {
    /// Whether the caller holds `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// Fails with PERMISSION_DENIED unless the caller holds `scope`.
    pub fn require(&self, scope: Scope) -> Result<()> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(Error::PermissionDenied {
                team: self.team.clone(),
                scope: scope.name(),
            })
        }
    }

    /// Whether the caller is limited to named feature services.
    pub fn limited_to_services(&self) -> bool {
        !self.feature_services.is_empty()
    }

    /// Fails with PERMISSION_DENIED unless the caller may read `service`.
    pub fn may_read_service(&self, service: &str) -> Result<()> {
        if !self.limited_to_services() || self.feature_services.iter().any(|s| s == service) {
            Ok(())
        } else {
            Err(Error::FeatureDenied {
                team: self.team.clone(),
                what: format!("feature service {service:?}"),
            })
        }
    }
}

/// The configured keys, by hash.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    by_hash: HashMap<[u8; 32], Arc<Caller>>,
}

impl ApiKeys {
    /// The keys of `[server] api_keys` (validated with the configuration:
    /// hashes are 64 hex digits, scopes known).
    pub fn new(keys: &[ApiKeyConfig]) -> Self {
        let by_hash = keys
            .iter()
            .filter_map(|k| {
                let mut hash = [0u8; 32];
                hex::decode_to_slice(k.key_sha256.to_ascii_lowercase(), &mut hash).ok()?;
                let caller = Caller {
                    team: k.team.clone(),
                    scopes: k.scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
                    feature_services: k.feature_services.clone(),
                };
                Some((hash, Arc::new(caller)))
            })
            .collect();
        ApiKeys { by_hash }
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether no key is configured (then every call is refused).
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Whether any key holds `scope` (the server loads raw PII only then).
    pub fn any_has(&self, scope: Scope) -> bool {
        self.by_hash.values().any(|c| c.has(scope))
    }

    /// The caller of an `authorization` metadata value.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Arc<Caller>> {
        let value = authorization.ok_or(Error::Unauthenticated {
            reason: "no `authorization: Bearer KEY` metadata",
        })?;
        let key = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or(Error::Unauthenticated {
                reason: "authorization must be `Bearer KEY`",
            })?;
        let hash: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        self.by_hash
            .get(&hash)
            .cloned()
            .ok_or(Error::Unauthenticated {
                reason: "unknown API key",
            })
    }
}

/// The SHA-256 hex of an API key, as `[server] api_keys` stores it.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A new random API key (`cdp_` and 64 hex digits from the OS's random source).
pub fn new_key() -> String {
    let a = uuid::Uuid::new_v4();
    let b = uuid::Uuid::new_v4();
    format!("cdp_{}{}", a.simple(), b.simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> ApiKeys {
        ApiKeys::new(&[
            ApiKeyConfig {
                team: "marketing".into(),
                key_sha256: hash_key("k1").to_uppercase(),
                scopes: vec!["features".into(), "scores".into()],
                feature_services: vec!["card_offers_v1".into()],
            },
            ApiKeyConfig {
                team: "call-centre".into(),
                key_sha256: hash_key("k2"),
                scopes: vec!["profiles".into(), "pii".into()],
                feature_services: vec![],
            },
        ])
    }

    #[test]
    fn keys_resolve_to_their_team_and_scopes() {
        let keys = keys();
        assert_eq!(keys.len(), 2);
        assert!(keys.any_has(Scope::Pii));
        let m = keys.authenticate(Some("Bearer k1")).unwrap();
        assert_eq!(m.team, "marketing");
        assert!(m.has(Scope::Scores) && !m.has(Scope::Profiles));
        assert!(m.may_read_service("card_offers_v1").is_ok());
        assert!(matches!(
            m.may_read_service("fraud_signals_v1"),
            Err(Error::FeatureDenied { .. })
        ));
        let c = keys.authenticate(Some("bearer  k2 ")).unwrap();
        assert!(c.has(Scope::Pii));
        assert!(c.may_read_service("anything").is_ok());
    }

    #[test]
    fn bad_credentials_are_unauthenticated() {
        let keys = keys();
        for bad in [
            None,
            Some(""),
            Some("k1"),
            Some("Basic k1"),
            Some("Bearer "),
            Some("Bearer k3"),
        ] {
            let e = keys.authenticate(bad).unwrap_err();
            assert_eq!(e.code(), tonic::Code::Unauthenticated, "{bad:?}");
        }
    }

    #[test]
    fn new_keys_are_random_and_hash_to_64_hex_digits() {
        let (a, b) = (new_key(), new_key());
        assert_ne!(a, b);
        assert!(a.starts_with("cdp_") && a.len() == 68);
        assert_eq!(hash_key(&a).len(), 64);
    }
}
