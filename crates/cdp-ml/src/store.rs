//! Model versions in the lake: taggers, offer models, any kind.
//!
//! Each fitted model is a folder of files, `models/<kind>/<version>/`
//! (`v1`, `v2`, …), its readable `model.json` first, written once and never
//! changed; the registry manifest `_manifests/models/<kind>.json` lists
//! every version and names the current one. Storing a new version writes
//! `model.json` create-only (two fits can never take the same version),
//! then its other files, then publishes the registry with the lake's
//! expected-version swap, so a reader sees the old current model or the
//! new one, never half of one. Old versions stay, so any night can be
//! re-run with the model it used.
//!
//! [`ModelStore`] is generic over the [`Versioned`] kind;
//! [`TaggerStore`] is the taggers' store.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use bytes::Bytes;
use cdp_core::lake::{Lake, Manifest, paths};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use tracing::instrument;

use crate::error::{Error, Result};
use crate::tagger::Tagger;

/// Attempts when another writer takes the same version or registry update.
const ATTEMPTS: usize = 5;

/// The file every version has, and the one a version is claimed with.
pub const MODEL_FILE: &str = "model.json";

/// A kind of model kept in numbered versions.
pub trait Versioned: Sized {
    /// The folder under `models/` (`tagger`, `offer`).
    const KIND: &'static str;

    /// Sets the version the model is stored as.
    fn set_version(&mut self, version: &str);

    /// Its `model.json`.
    fn model_json(&self) -> Result<Vec<u8>>;

    /// Further files of the version (name, bytes), e.g. reports.
    fn other_files(&self) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(Vec::new())
    }

    /// Reads a `model.json` written by [`Versioned::model_json`]; `origin`
    /// names the file in errors.
    fn from_model_json(bytes: &[u8], origin: &str) -> Result<Self>;

    /// Its line in the registry (version and path are filled in by the
    /// store).
    fn info(&self) -> VersionInfo;
}

/// Every stored version and the current one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    /// The version nightly runs apply.
    pub current: Option<String>,
    /// Every version, oldest first.
    pub versions: Vec<VersionInfo>,
}

/// One stored version, for listings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// `v1`, `v2`, …
    pub version: String,
    /// Its model file, relative to the lake root.
    pub path: String,
    /// When it was fitted.
    pub created_at: DateTime<Utc>,
    /// The snapshot it was fitted on.
    pub fitted_on: Option<NaiveDate>,
    /// Rows it was fitted on.
    pub rows: usize,
    /// What else a listing shows of this kind (components and segments of
    /// a tagger, the algorithm and test AUC of an offer model).
    #[serde(flatten)]
    pub details: BTreeMap<String, serde_json::Value>,
}

/// The model file of `version` of `kind`, relative to the lake root.
pub fn model_path(kind: &str, version: &str) -> String {
    format!("{}/{MODEL_FILE}", paths::model(kind, version))
}

/// The registry manifest's name for `kind`.
pub fn registry_name(kind: &str) -> String {
    format!("models/{kind}")
}

/// Models of one kind stored in one lake.
#[derive(Debug)]
pub struct ModelStore<'a, M> {
    lake: &'a Lake,
    kind: PhantomData<fn() -> M>,
}

impl<M> Clone for ModelStore<'_, M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M> Copy for ModelStore<'_, M> {}

/// The taggers' store.
pub type TaggerStore<'a> = ModelStore<'a, Tagger>;

impl<'a, M: Versioned> ModelStore<'a, M> {
    /// The store of `lake`.
    pub fn new(lake: &'a Lake) -> Self {
        ModelStore {
            lake,
            kind: PhantomData,
        }
    }

    /// The registry, `None` before the first version.
    pub async fn registry(&self) -> Result<Option<Manifest<Registry>>> {
        Ok(self
            .lake
            .read_manifest::<Registry>(&registry_name(M::KIND))
            .await?)
    }

    /// The current model, `None` before the first.
    pub async fn current(&self) -> Result<Option<M>> {
        let Some(manifest) = self.registry().await? else {
            return Ok(None);
        };
        match manifest.body.current {
            Some(version) => self.load(&version).await.map(Some),
            None => Ok(None),
        }
    }

    /// One stored version.
    pub async fn load(&self, version: &str) -> Result<M> {
        let path = model_path(M::KIND, version);
        let bytes = self
            .lake
            .get(&path)
            .await?
            .ok_or_else(|| Error::MissingModel {
                kind: M::KIND,
                version: version.to_string(),
                path: path.clone(),
            })?;
        M::from_model_json(&bytes, &path)
    }

    /// Stores `model` as the next version and makes it current. Returns
    /// the model as read back from its file, version set.
    #[instrument(skip_all, fields(kind = M::KIND, lake = %self.lake.uri()))]
    pub async fn publish(&self, mut model: M) -> Result<M> {
        let mut last = String::new();
        let registry_name = registry_name(M::KIND);
        for _ in 0..ATTEMPTS {
            let manifest = self.registry().await?;
            let expected = manifest.as_ref().map_or(0, |m| m.version);
            let mut registry = manifest.map(|m| m.body).unwrap_or_default();
            let version = format!("v{}", self.highest(&registry).await? + 1);
            model.set_version(&version);
            let bytes = model.model_json()?;
            let path = model_path(M::KIND, &version);
            if !self
                .lake
                .put_create(&path, Bytes::from(bytes.clone()))
                .await?
            {
                last = version;
                continue;
            }
            let folder = paths::model(M::KIND, &version);
            for (name, file) in model.other_files()? {
                self.lake
                    .put(&format!("{folder}/{name}"), Bytes::from(file))
                    .await?;
            }
            registry.versions.push(VersionInfo {
                version: version.clone(),
                path: path.clone(),
                ..model.info()
            });
            registry.current = Some(version.clone());
            match self
                .lake
                .publish(&registry_name, &registry, Some(expected))
                .await
            {
                Ok(_) => {
                    tracing::info!(%version, "model stored");
                    return M::from_model_json(&bytes, &path);
                }
                // Another fit registered first; our files stay as an
                // unregistered version and the next attempt takes a new number.
                Err(cdp_core::Error::ManifestConflict { .. }) => last = version,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::VersionTaken {
            kind: M::KIND,
            version: last,
        })
    }

    /// Makes stored `version` the current one.
    #[instrument(skip_all, fields(kind = M::KIND, version))]
    pub async fn make_current(&self, version: &str) -> Result<()> {
        self.update_registry(|registry| {
            if !registry.versions.iter().any(|v| v.version == version) {
                return Err(Error::MissingModel {
                    kind: M::KIND,
                    version: version.to_string(),
                    path: model_path(M::KIND, version),
                });
            }
            registry.current = Some(version.to_string());
            Ok(())
        })
        .await
        .map(|_| ())
    }

    /// Drops all but the newest `keep` versions from the registry, never
    /// the current one nor any in `also_keep`; returns the folders of the
    /// versions dropped (their files are left for the caller to delete).
    /// With `dry_run`, only says which.
    #[instrument(skip_all, fields(kind = M::KIND, keep))]
    pub async fn retain(
        &self,
        keep: usize,
        also_keep: &[String],
        dry_run: bool,
    ) -> Result<Vec<String>> {
        let Some(manifest) = self.registry().await? else {
            return Ok(Vec::new());
        };
        let select = move |registry: &mut Registry| {
            let n = registry.versions.len();
            let current = registry.current.clone();
            let mut dropped = Vec::new();
            let mut index = 0;
            registry.versions.retain(|v| {
                index += 1;
                let kept = index + keep > n
                    || current.as_deref() == Some(v.version.as_str())
                    || also_keep.contains(&v.version);
                if !kept {
                    dropped.push(paths::model(M::KIND, &v.version));
                }
                kept
            });
            Ok(dropped)
        };
        if dry_run {
            return select(&mut manifest.body.clone());
        }
        self.update_registry(select).await
    }

    /// Applies `change` to the registry and publishes it, re-reading and
    /// re-applying when another writer published first.
    async fn update_registry<T>(
        &self,
        mut change: impl FnMut(&mut Registry) -> Result<T>,
    ) -> Result<T> {
        let name = registry_name(M::KIND);
        for _ in 0..ATTEMPTS {
            let manifest = self.registry().await?;
            let expected = manifest.as_ref().map_or(0, |m| m.version);
            let mut registry = manifest.map(|m| m.body).unwrap_or_default();
            let out = change(&mut registry)?;
            match self.lake.publish(&name, &registry, Some(expected)).await {
                Ok(_) => return Ok(out),
                Err(cdp_core::Error::ManifestConflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::VersionTaken {
            kind: M::KIND,
            version: "registry".into(),
        })
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
        // `models/<kind>/` — the folder every version lives in.
        let folder = paths::model(M::KIND, "");
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

impl Versioned for Tagger {
    const KIND: &'static str = "tagger";

    fn set_version(&mut self, version: &str) {
        self.version = version.to_string();
    }

    fn model_json(&self) -> Result<Vec<u8>> {
        self.to_json()
    }

    fn from_model_json(bytes: &[u8], origin: &str) -> Result<Self> {
        Tagger::from_json(bytes, origin)
    }

    fn info(&self) -> VersionInfo {
        VersionInfo {
            created_at: self.created_at,
            fitted_on: self.fitted_on.as_of,
            rows: self.fitted_on.rows,
            details: BTreeMap::from([
                ("components".into(), self.pca.n_components().into()),
                ("segments".into(), self.segments.len().into()),
            ]),
            ..VersionInfo::default()
        }
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
                lake.put(&model_path("tagger", "v3"), Bytes::from_static(b"{}"))
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
