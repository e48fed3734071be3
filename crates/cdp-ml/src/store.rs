//! Tagger versions in the lake.
//!
//! Each fitted tagger is one readable JSON file,
//! `models/tagger/<version>/model.json` (`v1`, `v2`, …), written once and
//! never changed; the registry manifest `_manifests/models/tagger.json`
//! lists every version and names the current one. A refit writes the new
//! file create-only (two refits can never write the same version), then
//! publishes the registry with the lake's expected-version swap, so a
//! reader sees the old current tagger or the new one, never half of one.
//! Old versions stay, so any night can be re-tagged with the model it
//! used.

use bytes::Bytes;
use cdp_core::lake::{Lake, Manifest, paths};
use chrono::{DateTime, NaiveDate, Utc};
use object_store::{PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use tracing::instrument;

use crate::error::{Error, Result};
use crate::tagger::Tagger;

/// The model kind under `models/`.
pub const KIND: &str = "tagger";

/// The registry manifest's name.
pub const REGISTRY: &str = "models/tagger";

/// Attempts when another writer takes the same version or registry update.
const ATTEMPTS: usize = 5;

/// Every stored version and the current one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    /// The version nightly runs apply.
    pub current: Option<String>,
    /// Every version, oldest first.
    pub versions: Vec<VersionInfo>,
}

/// One stored version, for listings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// `v1`, `v2`, …
    pub version: String,
    /// Its model file, relative to the lake root.
    pub path: String,
    /// When it was fitted.
    pub created_at: DateTime<Utc>,
    /// The feature snapshot it was fitted on.
    pub fitted_on: Option<NaiveDate>,
    /// Customers it was fitted on.
    pub rows: usize,
    /// Principal components kept.
    pub components: usize,
    /// Segments.
    pub segments: usize,
}

/// The model file of a version, relative to the lake root.
pub fn model_path(version: &str) -> String {
    format!("{}/model.json", paths::model(KIND, version))
}

/// Taggers stored in one lake.
#[derive(Debug, Clone, Copy)]
pub struct TaggerStore<'a> {
    lake: &'a Lake,
}

impl<'a> TaggerStore<'a> {
    /// The store of `lake`.
    pub fn new(lake: &'a Lake) -> Self {
        TaggerStore { lake }
    }

    /// The registry, `None` before the first tagger.
    pub async fn registry(&self) -> Result<Option<Manifest<Registry>>> {
        Ok(self.lake.read_manifest::<Registry>(REGISTRY).await?)
    }

    /// The current tagger, `None` before the first.
    pub async fn current(&self) -> Result<Option<Tagger>> {
        let Some(manifest) = self.registry().await? else {
            return Ok(None);
        };
        match manifest.body.current {
            Some(version) => self.load(&version).await.map(Some),
            None => Ok(None),
        }
    }

    /// One stored version.
    pub async fn load(&self, version: &str) -> Result<Tagger> {
        let path = model_path(version);
        let bytes = self
            .lake
            .get(&path)
            .await?
            .ok_or_else(|| Error::MissingModel {
                version: version.to_string(),
                path: path.clone(),
            })?;
        Tagger::from_json(&bytes, &path)
    }

    /// Stores `tagger` as the next version and makes it current. Returns
    /// the tagger as read back from its file, version set.
    #[instrument(skip_all, fields(lake = %self.lake.uri()))]
    pub async fn publish(&self, mut tagger: Tagger) -> Result<Tagger> {
        let mut last = String::new();
        for _ in 0..ATTEMPTS {
            let manifest = self.registry().await?;
            let expected = manifest.as_ref().map_or(0, |m| m.version);
            let mut registry = manifest.map(|m| m.body).unwrap_or_default();
            let version = format!("v{}", self.highest(&registry).await? + 1);
            tagger.version = version.clone();
            let bytes = tagger.to_json()?;
            let path = model_path(&version);
            let create = PutOptions {
                mode: PutMode::Create,
                ..PutOptions::default()
            };
            let written = self
                .lake
                .store()
                .put_opts(
                    &self.lake.path(&path),
                    PutPayload::from(Bytes::from(bytes.clone())),
                    create,
                )
                .await;
            match written {
                Ok(_) => {}
                Err(object_store::Error::AlreadyExists { .. }) => {
                    last = version;
                    continue;
                }
                Err(source) => {
                    return Err(Error::Core(cdp_core::Error::Store {
                        op: "put",
                        path,
                        source,
                    }));
                }
            }
            registry.versions.push(VersionInfo {
                version: version.clone(),
                path: path.clone(),
                created_at: tagger.created_at,
                fitted_on: tagger.fitted_on.as_of,
                rows: tagger.fitted_on.rows,
                components: tagger.pca.n_components(),
                segments: tagger.segments.len(),
            });
            registry.current = Some(version.clone());
            match self.lake.publish(REGISTRY, &registry, Some(expected)).await {
                Ok(_) => {
                    tracing::info!(%version, "tagger stored");
                    return Tagger::from_json(&bytes, &path);
                }
                // Another refit registered first; our file stays as an
                // unregistered version and the next attempt takes a new number.
                Err(cdp_core::Error::ManifestConflict { .. }) => last = version,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::VersionTaken { version: last })
    }

    /// The highest version number registered or present as a file.
    async fn highest(&self, registry: &Registry) -> Result<u64> {
        let number = |v: &str| v.strip_prefix('v').and_then(|n| n.parse::<u64>().ok());
        let registered = registry
            .versions
            .iter()
            .filter_map(|v| number(&v.version))
            .max()
            .unwrap_or(0);
        // `models/tagger/` — the folder every version lives in.
        let folder = paths::model(KIND, "");
        let present = self
            .lake
            .list(&folder)
            .await?
            .iter()
            .filter_map(|meta| {
                let location = meta.location.as_ref();
                let at = location.find(folder.as_str())? + folder.len();
                number(location[at..].split('/').next()?)
            })
            .max()
            .unwrap_or(0);
        Ok(registered.max(present))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tagger::tests::{FEATURES, population};
    use cdp_core::config::TaggerConfig;

    fn fitted(seed: u64) -> Tagger {
        let (x, names, _) = population(300, seed);
        let settings = TaggerConfig {
            features: FEATURES.map(String::from).to_vec(),
            max_segments: 5,
            ..TaggerConfig::default()
        };
        Tagger::fit(x.view(), &names, &settings, None).unwrap().0
    }

    #[test]
    fn versions_are_numbered_kept_and_the_latest_is_current() {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
                let store = TaggerStore::new(&lake);
                assert!(store.current().await.unwrap().is_none());
                let first = store.publish(fitted(1)).await.unwrap();
                assert_eq!(first.version, "v1");
                let second = store.publish(fitted(2)).await.unwrap();
                assert_eq!(second.version, "v2");
                let current = store.current().await.unwrap().unwrap();
                assert_eq!(current, second);
                assert_eq!(store.load("v1").await.unwrap(), first);
                let registry = store.registry().await.unwrap().unwrap().body;
                assert_eq!(registry.versions.len(), 2);
                assert!(dir.path().join("models/tagger/v1/model.json").is_file());

                // a file left by a writer that died before registering is skipped
                lake.put(&model_path("v3"), Bytes::from_static(b"{}"))
                    .await
                    .unwrap();
                let fourth = store.publish(fitted(3)).await.unwrap();
                assert_eq!(fourth.version, "v4");

                let err = store.load("v9").await.unwrap_err();
                assert!(matches!(err, Error::MissingModel { .. }), "{err}");
                let err = store.load("v3").await.unwrap_err();
                assert!(
                    err.to_string().contains("models/tagger/v3/model.json"),
                    "{err}"
                );
            });
    }
}
