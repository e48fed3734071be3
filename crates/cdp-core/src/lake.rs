//! The lake: an `object_store` root (a local folder by default, or
//! `s3://bucket/prefix` on any S3-compatible store), its path layout, and
//! the publish primitive.
//!
//! Every stage writes new, uniquely named files and then publishes them as
//! one small JSON manifest version, committed by a create-only put of its
//! history entry (a conditional write on object stores, never a rename), so
//! a reader sees either the previous version or the new one, never half of
//! a snapshot, and a crash before the commit leaves nothing visible.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use cdp_core::lake::Lake;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
//! let first = lake.publish("silver/features", &vec!["part-0.parquet"], None).await.unwrap();
//! assert_eq!(first.version, 1);
//! let current = lake.read_manifest::<Vec<String>>("silver/features").await.unwrap().unwrap();
//! assert_eq!(current.body, ["part-0.parquet"]);
//! # });
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracing::instrument;
use url::Url;

use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut};

use crate::config::{LakeConfig, S3Config};
use crate::error::{Error, Result};

/// Folder of manifests inside the lake.
pub const MANIFESTS: &str = "_manifests";

/// A published manifest: a version number and a body naming what is current.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest<T> {
    /// Manifest name, e.g. `silver/features`.
    pub name: String,
    /// 1 for the first publish, +1 for each one after.
    pub version: u64,
    /// When this version was published.
    pub published_at: DateTime<Utc>,
    /// What is published.
    pub body: T,
}

/// The lake root and its object store.
#[derive(Debug, Clone)]
pub struct Lake {
    uri: String,
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    local_root: Option<PathBuf>,
}

impl Lake {
    /// Opens a lake: a local folder (created when missing), `file:///…`,
    /// `memory://` (tests), `s3://bucket/prefix` with default settings, or
    /// any URL `object_store` supports in this build. [`Lake::connect`]
    /// takes the `[lake]` settings of the configuration.
    pub fn open(uri: &str) -> Result<Lake> {
        Lake::connect(&LakeConfig {
            uri: uri.into(),
            ..LakeConfig::default()
        })
    }

    /// Opens the lake `config` names; an `s3://bucket/prefix` lake is reached
    /// with `config.s3` (endpoint, region, credentials), conditional writes
    /// on, so [`Lake::put_create`] and so [`Lake::publish`] stay safe
    /// between concurrent writers.
    pub fn connect(config: &LakeConfig) -> Result<Lake> {
        let uri = config.uri.as_str();
        let bad = |reason: String| Error::LakeUri {
            uri: uri.into(),
            reason,
        };
        if uri == "memory://" {
            return Ok(Lake {
                uri: uri.into(),
                store: Arc::new(InMemory::new()),
                prefix: Path::default(),
                local_root: None,
            });
        }
        let local = match uri.strip_prefix("file://") {
            Some(rest) => Some(PathBuf::from(rest)),
            None if !uri.contains("://") => Some(PathBuf::from(uri)),
            None => None,
        };
        if let Some(dir) = local {
            std::fs::create_dir_all(&dir).map_err(|e| bad(format!("cannot create folder: {e}")))?;
            let root = dir
                .canonicalize()
                .map_err(|e| bad(format!("cannot resolve folder: {e}")))?;
            let store = LocalFileSystem::new_with_prefix(&root)
                .map_err(|e| bad(e.to_string()))?
                .with_automatic_cleanup(true);
            return Ok(Lake {
                uri: uri.into(),
                store: Arc::new(store),
                prefix: Path::default(),
                local_root: Some(root),
            });
        }
        let url = Url::parse(uri).map_err(|e| bad(e.to_string()))?;
        if url.scheme() == "s3" {
            let store = s3_store(&url, &config.s3).map_err(|e| bad(e.to_string()))?;
            let prefix = Path::from_url_path(url.path()).map_err(|e| bad(e.to_string()))?;
            return Ok(Lake {
                uri: uri.into(),
                store: Arc::new(store),
                prefix,
                local_root: None,
            });
        }
        let (store, prefix) = object_store::parse_url(&url).map_err(|e| bad(e.to_string()))?;
        Ok(Lake {
            uri: uri.into(),
            store: Arc::from(store),
            prefix,
            local_root: None,
        })
    }

    /// The URI the lake was opened with.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The underlying object store (paths are relative to [`Lake::root`]).
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The prefix of the lake inside its store.
    pub fn root(&self) -> &Path {
        &self.prefix
    }

    /// The folder on disk, for a local lake.
    pub fn local_root(&self) -> Option<&std::path::Path> {
        self.local_root.as_deref()
    }

    /// `relative` resolved under the lake root.
    pub fn path(&self, relative: &str) -> Path {
        relative
            .split('/')
            .filter(|p| !p.is_empty())
            .fold(self.prefix.clone(), |acc, part| acc.clone().join(part))
    }

    /// Writes an object atomically (visible whole or not at all).
    pub async fn put(&self, relative: &str, bytes: Bytes) -> Result<()> {
        let path = self.path(relative);
        self.store
            .put(&path, PutPayload::from(bytes))
            .await
            .map_err(|source| store_error("put", &path, source))?;
        Ok(())
    }

    /// Moves a finished local file into the lake at `relative`: a rename for a
    /// local lake (the file must be on the same disk), an upload otherwise.
    pub async fn put_file(&self, relative: &str, local: &std::path::Path) -> Result<()> {
        let path = self.path(relative);
        let io = |source: std::io::Error| {
            store_error(
                "put",
                &path,
                object_store::Error::Generic {
                    store: "local",
                    source: Box::new(source),
                },
            )
        };
        if let Some(root) = &self.local_root {
            let target = root.join(relative);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            return std::fs::rename(local, &target).map_err(io);
        }
        let bytes = std::fs::read(local).map_err(io)?;
        self.put(relative, Bytes::from(bytes)).await?;
        std::fs::remove_file(local).map_err(io)
    }

    /// Deletes an object; a missing one is not an error.
    pub async fn delete(&self, relative: &str) -> Result<()> {
        let path = self.path(relative);
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(store_error("delete", &path, source)),
        }
    }

    /// Reads an object, `None` when it does not exist.
    pub async fn get(&self, relative: &str) -> Result<Option<Bytes>> {
        let path = self.path(relative);
        match self.store.get(&path).await {
            Ok(result) => result
                .bytes()
                .await
                .map(Some)
                .map_err(|source| store_error("read", &path, source)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(store_error("get", &path, source)),
        }
    }

    /// Lists every object under `relative`, sorted by path.
    pub async fn list(&self, relative: &str) -> Result<Vec<ObjectMeta>> {
        let path = self.path(relative);
        let mut items: Vec<ObjectMeta> = self
            .store
            .list(Some(&path))
            .try_collect()
            .await
            .map_err(|source| store_error("list", &path, source))?;
        items.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(items)
    }

    /// Reads the latest committed version of manifest `name`, `None` before
    /// the first publish.
    ///
    /// A version is committed once its history entry exists (see
    /// [`Lake::publish`]), so a version whose writer died before swapping
    /// the current file is already the one readers see: its files are
    /// complete, and nobody may treat them as orphans.
    pub async fn read_manifest<T: DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<Manifest<T>>> {
        let mut latest: Option<Manifest<T>> = self.read_json(&manifest_path(name)).await?;
        let mut version = latest.as_ref().map_or(0, |m| m.version);
        while let Some(committed) = self.read_manifest_version(name, version + 1).await? {
            latest = Some(committed);
            version += 1;
        }
        Ok(latest)
    }

    /// Reads version `version` of manifest `name` from its history, `None`
    /// when that version was never published.
    pub async fn read_manifest_version<T: DeserializeOwned>(
        &self,
        name: &str,
        version: u64,
    ) -> Result<Option<Manifest<T>>> {
        self.read_json(&history_path(name, version)).await
    }

    /// A manifest file, `None` when it does not exist.
    async fn read_json<T: DeserializeOwned>(&self, relative: &str) -> Result<Option<T>> {
        let Some(bytes) = self.get(relative).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| Error::ManifestCorrupt {
                path: self.path(relative).to_string(),
                source,
            })
    }

    /// Writes an object only when none exists at `relative` yet; `false`
    /// when one does (another writer got there first). On a local disk and
    /// on object stores with conditional writes alike, exactly one of
    /// several concurrent writers succeeds.
    pub async fn put_create(&self, relative: &str, bytes: Bytes) -> Result<bool> {
        let path = self.path(relative);
        let create = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(&path, PutPayload::from(bytes), create)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(source) => Err(store_error("put", &path, source)),
        }
    }

    /// The lake-relative path of an object listed by [`Lake::list`].
    pub fn relative(&self, location: &Path) -> String {
        let full = location.as_ref();
        let root = self.prefix.as_ref();
        if root.is_empty() {
            return full.to_string();
        }
        full.strip_prefix(root)
            .map(|rest| rest.trim_start_matches('/'))
            .unwrap_or(full)
            .to_string()
    }

    /// Publishes a new version of manifest `name`.
    ///
    /// With `expected_version`, fails with [`Error::ManifestConflict`] unless
    /// the current version is that one (`Some(0)`: no manifest yet).
    ///
    /// Each version is first written once, create-only, to the manifest's
    /// history (`_manifests/<name>/v<version>.json`): that write is the
    /// commit, so two writers can never both publish the same version. Then
    /// the current manifest is replaced by a write to a staging name and a
    /// rename. A writer that died between the two is rolled forward by the
    /// next publish (its files were complete before it committed).
    #[instrument(skip_all, fields(lake = %self.uri, manifest = name))]
    pub async fn publish<T>(
        &self,
        name: &str,
        body: &T,
        expected_version: Option<u64>,
    ) -> Result<Manifest<T>>
    where
        T: Serialize + Clone,
    {
        let current_version = self.roll_forward(name).await?;
        if let Some(expected) = expected_version
            && expected != current_version
        {
            return Err(Error::ManifestConflict {
                name: name.into(),
                version: current_version,
            });
        }
        let manifest = Manifest {
            name: name.into(),
            version: current_version + 1,
            published_at: Utc::now(),
            body: body.clone(),
        };
        let bytes = Bytes::from(serde_json::to_vec_pretty(&manifest).map_err(|source| {
            Error::ManifestCorrupt {
                path: manifest_path(name),
                source,
            }
        })?);

        if !self
            .put_create(&history_path(name, manifest.version), bytes.clone())
            .await?
        {
            return Err(Error::ManifestConflict {
                name: name.into(),
                version: manifest.version,
            });
        }
        self.swap_current(name, bytes).await?;
        tracing::info!(version = manifest.version, "published");
        Ok(manifest)
    }

    /// Finishes publishes of manifest `name` whose writer died after the
    /// commit (see [`Lake::publish`]): the latest committed version becomes
    /// the current file. Returns that version, 0 before the first publish.
    /// [`Lake::publish`] does this first; a writer that may end a run
    /// without publishing (nothing new) calls it so the current file is
    /// never left behind its history.
    pub async fn roll_forward(&self, name: &str) -> Result<u64> {
        let mut current_version = self
            .read_json::<Manifest<serde_json::Value>>(&manifest_path(name))
            .await?
            .map_or(0, |m| m.version);
        while let Some(committed) = self.get(&history_path(name, current_version + 1)).await? {
            current_version += 1;
            serde_json::from_slice::<Manifest<serde_json::Value>>(&committed).map_err(
                |source| Error::ManifestCorrupt {
                    path: self.path(&history_path(name, current_version)).to_string(),
                    source,
                },
            )?;
            tracing::warn!(
                version = current_version,
                "rolling forward an interrupted publish"
            );
            self.swap_current(name, committed).await?;
        }
        Ok(current_version)
    }

    /// Replaces the current manifest: write to a staging name, then rename.
    async fn swap_current(&self, name: &str, bytes: Bytes) -> Result<()> {
        let target = self.path(&manifest_path(name));
        let staging = self.path(&format!(
            "{MANIFESTS}/_staging/{}.{}.json",
            name.replace('/', "__"),
            uuid::Uuid::new_v4()
        ));
        self.store
            .put(&staging, PutPayload::from(bytes))
            .await
            .map_err(|source| store_error("put", &staging, source))?;
        self.store
            .rename(&staging, &target)
            .await
            .map_err(|source| store_error("rename", &target, source))
    }
}

/// An S3 client for `s3://bucket/…` with these settings. Conditional puts
/// use the standard `If-None-Match: *` header (AWS S3 since 2024, MinIO,
/// R2, Ceph, s3s-fs), which is what makes a manifest commit safe there.
fn s3_store(url: &Url, s3: &S3Config) -> object_store::Result<AmazonS3> {
    let set = |value: &str| (!value.is_empty()).then(|| value.to_string());
    let mut builder = AmazonS3Builder::new()
        .with_url(url.as_str())
        .with_region(set(&s3.region).unwrap_or_else(|| "us-east-1".into()))
        .with_allow_http(s3.allow_http)
        .with_conditional_put(S3ConditionalPut::ETagMatch);
    if let Some(endpoint) = set(&s3.endpoint) {
        builder = builder.with_endpoint(endpoint);
    }
    if let (Some(id), Some(secret)) = (set(&s3.access_key_id), set(&s3.secret_access_key)) {
        builder = builder
            .with_access_key_id(id)
            .with_secret_access_key(secret);
        if let Some(token) = set(&s3.session_token) {
            builder = builder.with_token(token);
        }
    }
    builder.build()
}

/// Where version `version` of manifest `name` is kept, relative to the lake root.
fn history_path(name: &str, version: u64) -> String {
    format!("{MANIFESTS}/{name}/v{version:010}.json")
}

fn store_error(op: &'static str, path: &Path, source: object_store::Error) -> Error {
    Error::Store {
        op,
        path: path.to_string(),
        source,
    }
}

/// Where manifest `name` lives, relative to the lake root.
pub fn manifest_path(name: &str) -> String {
    format!("{MANIFESTS}/{name}.json")
}

/// The lake's folder layout (relative paths).
pub mod paths {
    use super::NaiveDate;

    /// `bronze/<source>`
    pub fn bronze(source: &str) -> String {
        format!("bronze/{source}")
    }

    /// `bronze/<source>/dt=YYYY-MM-DD`
    pub fn bronze_partition(source: &str, dt: NaiveDate) -> String {
        format!("bronze/{source}/dt={dt}")
    }

    /// `quarantine/<source>`
    pub fn quarantine(source: &str) -> String {
        format!("quarantine/{source}")
    }

    /// `silver/<table>/as_of=YYYY-MM-DD`
    pub fn silver_snapshot(table: &str, as_of: NaiveDate) -> String {
        format!("silver/{table}/as_of={as_of}")
    }

    /// `gold/<table>/as_of=YYYY-MM-DD`
    pub fn gold_snapshot(table: &str, as_of: NaiveDate) -> String {
        format!("gold/{table}/as_of={as_of}")
    }

    /// `models/<kind>/<version>`
    pub fn model(kind: &str, version: &str) -> String {
        format!("models/{kind}/{version}")
    }
}

/// A run id that sorts by time and is unique per run:
/// `20261125T164500Z-1a2b3c`. Names the files a job writes.
pub fn run_id() -> String {
    let uuid = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        &uuid[..6]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    #[test]
    fn publish_increments_versions_and_keeps_history() {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
            assert!(
                lake.read_manifest::<u32>("gold/scores")
                    .await
                    .unwrap()
                    .is_none()
            );
            lake.publish("gold/scores", &1u32, Some(0)).await.unwrap();
            let second = lake.publish("gold/scores", &2u32, Some(1)).await.unwrap();
            assert_eq!(second.version, 2);
            let current = lake
                .read_manifest::<u32>("gold/scores")
                .await
                .unwrap()
                .unwrap();
            assert_eq!((current.version, current.body), (2, 2));
            let history = lake.list("_manifests/gold/scores").await.unwrap();
            assert_eq!(history.len(), 2);
            // nothing left in staging
            assert!(lake.list("_manifests/_staging").await.unwrap().is_empty());
        });
    }

    #[test]
    fn a_stale_writer_is_refused() {
        rt().block_on(async {
            let lake = Lake::open("memory://").unwrap();
            lake.publish("silver/x", &"a", None).await.unwrap();
            let err = lake.publish("silver/x", &"b", Some(0)).await.unwrap_err();
            assert!(
                matches!(err, Error::ManifestConflict { version: 1, .. }),
                "{err}"
            );
            // a history entry that is not a manifest is named, never made current
            lake.put(&history_path("silver/x", 2), Bytes::from_static(b"{}"))
                .await
                .unwrap();
            let err = lake.publish("silver/x", &"c", None).await.unwrap_err();
            assert!(err.to_string().contains("v0000000002.json"), "{err}");
            // readers name it too, instead of serving version 1 as if nothing were wrong
            let err = lake.read_manifest::<String>("silver/x").await.unwrap_err();
            assert!(err.to_string().contains("v0000000002.json"), "{err}");
            let current: Manifest<String> = lake
                .read_json(&manifest_path("silver/x"))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(current.body, "a", "never made current");
        });
    }

    #[test]
    fn a_publish_interrupted_after_its_commit_is_rolled_forward() {
        rt().block_on(async {
            let lake = Lake::open("memory://").unwrap();
            lake.publish("silver/x", &"a".to_string(), None)
                .await
                .unwrap();
            // another writer committed version 2 and died before the swap
            let committed = Manifest {
                name: "silver/x".to_string(),
                version: 2,
                published_at: Utc::now(),
                body: "b".to_string(),
            };
            let bytes = Bytes::from(serde_json::to_vec(&committed).unwrap());
            lake.put(&history_path("silver/x", 2), bytes).await.unwrap();
            let current: Manifest<String> = lake.read_manifest("silver/x").await.unwrap().unwrap();
            assert_eq!(
                (current.version, current.body.as_str()),
                (2, "b"),
                "committed, so visible before the next publish swaps it in"
            );
            let file: Manifest<String> = lake
                .read_json(&manifest_path("silver/x"))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(file.version, 1, "the current file still lags");
            assert_eq!(lake.roll_forward("silver/x").await.unwrap(), 2);
            let file: Manifest<String> = lake
                .read_json(&manifest_path("silver/x"))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(file.version, 2, "rolled forward without a new publish");
            // a writer that expected version 1 learns it is stale
            let err = lake
                .publish("silver/x", &"c".to_string(), Some(1))
                .await
                .unwrap_err();
            assert!(
                matches!(err, Error::ManifestConflict { version: 2, .. }),
                "{err}"
            );
            let current: Manifest<String> = lake.read_manifest("silver/x").await.unwrap().unwrap();
            assert_eq!((current.version, current.body.as_str()), (2, "b"));
            let next = lake
                .publish("silver/x", &"d".to_string(), Some(2))
                .await
                .unwrap();
            assert_eq!(next.version, 3);
        });
    }

    #[test]
    fn a_crash_before_the_swap_leaves_the_old_manifest_current() {
        rt().block_on(async {
            let lake = Lake::open("memory://").unwrap();
            lake.publish("silver/y", &1u8, None).await.unwrap();
            // a writer that died after staging its manifest
            lake.put(
                "_manifests/_staging/silver__y.dead.json",
                Bytes::from_static(b"{"),
            )
            .await
            .unwrap();
            let current = lake.read_manifest::<u8>("silver/y").await.unwrap().unwrap();
            assert_eq!(current.body, 1);
        });
    }

    #[test]
    fn corrupt_manifests_and_bad_uris_are_named() {
        rt().block_on(async {
            let lake = Lake::open("memory://").unwrap();
            lake.put("_manifests/bad.json", Bytes::from_static(b"not json"))
                .await
                .unwrap();
            let err = lake.read_manifest::<u8>("bad").await.unwrap_err();
            assert!(err.to_string().contains("_manifests/bad.json"), "{err}");
        });
        let err = Lake::open("gopher://nowhere").unwrap_err();
        assert!(err.to_string().contains("gopher://nowhere"), "{err}");
    }

    #[test]
    fn layout() {
        let d = NaiveDate::from_ymd_opt(2026, 1, 31).unwrap();
        assert_eq!(
            paths::bronze_partition("transactions", d),
            "bronze/transactions/dt=2026-01-31"
        );
        assert_eq!(
            paths::silver_snapshot("features", d),
            "silver/features/as_of=2026-01-31"
        );
        assert_eq!(paths::model("offer", "v3"), "models/offer/v3");
        let lake = Lake::open("memory://").unwrap();
        assert_eq!(lake.path("/bronze//x/").to_string(), "bronze/x");
    }
}
