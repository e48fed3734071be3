//! Where raw files come from: a local folder or an object-store URL, both
//! through `object_store`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{GetResultPayload, ObjectStore, ObjectStoreExt};

use crate::error::{Error, Result};

/// A folder of raw files.
pub struct SourceDir {
    uri: String,
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
}

/// One raw file in the source.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// File name (no folders).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    location: StorePath,
}

/// A raw file available on local disk for reading.
pub struct LocalCopy {
    pub path: PathBuf,
    /// A spooled copy to delete after use (remote sources).
    temporary: bool,
}

impl Drop for LocalCopy {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl SourceDir {
    /// Opens `uri`: a local folder (must exist), `file:///…`, or any
    /// object-store URL this build supports.
    pub fn open(uri: &str) -> Result<SourceDir> {
        let bad = |reason: String| Error::Source {
            uri: uri.into(),
            reason,
        };
        let local = match uri.strip_prefix("file://") {
            Some(rest) => Some(PathBuf::from(rest)),
            None if !uri.contains("://") => Some(PathBuf::from(uri)),
            None => None,
        };
        if let Some(dir) = local {
            if !dir.is_dir() {
                return Err(bad("no such folder".into()));
            }
            let store = LocalFileSystem::new_with_prefix(&dir).map_err(|e| bad(e.to_string()))?;
            return Ok(SourceDir {
                uri: uri.into(),
                store: Arc::new(store),
                prefix: StorePath::default(),
            });
        }
        let url = url::Url::parse(uri).map_err(|e| bad(e.to_string()))?;
        let (store, prefix) = object_store::parse_url(&url).map_err(|e| bad(e.to_string()))?;
        Ok(SourceDir {
            uri: uri.into(),
            store: Arc::from(store),
            prefix,
        })
    }

    /// The files directly in the folder, sorted by name.
    pub async fn list(&self) -> Result<Vec<SourceFile>> {
        let listing = self
            .store
            .list_with_delimiter(Some(&self.prefix))
            .await
            .map_err(|e| Error::Source {
                uri: self.uri.clone(),
                reason: e.to_string(),
            })?;
        let mut files: Vec<SourceFile> = listing
            .objects
            .into_iter()
            .filter_map(|m| {
                let name = m.location.filename()?.to_string();
                Some(SourceFile {
                    name,
                    size: m.size,
                    location: m.location,
                })
            })
            .collect();
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }

    /// A fingerprint of the folder's files, names, sizes and contents
    /// (`xxh3-128:` and 32 hex digits): equal fingerprints, the same files.
    pub async fn content_hash(&self) -> Result<String> {
        use futures::StreamExt;
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        for file in self.list().await? {
            hasher.update(file.name.as_bytes());
            hasher.update(&[0]);
            hasher.update(&file.size.to_le_bytes());
            let read_error = |e: object_store::Error| Error::Source {
                uri: format!("{}/{}", self.uri, file.name),
                reason: e.to_string(),
            };
            let result = self.store.get(&file.location).await.map_err(read_error)?;
            let mut stream = result.into_stream();
            while let Some(chunk) = stream.next().await {
                hasher.update(&chunk.map_err(read_error)?);
            }
        }
        Ok(format!("xxh3-128:{:032x}", hasher.digest128()))
    }

    /// The file on local disk: itself for a local folder, otherwise a copy
    /// spooled into `spool`.
    pub async fn fetch(&self, file: &SourceFile, spool: &Path) -> std::io::Result<LocalCopy> {
        let result = self
            .store
            .get(&file.location)
            .await
            .map_err(std::io::Error::other)?;
        match result.payload {
            GetResultPayload::File(_, path) => Ok(LocalCopy {
                path,
                temporary: false,
            }),
            GetResultPayload::Stream(_) => {
                let bytes = result.bytes().await.map_err(std::io::Error::other)?;
                let path = spool.join(format!("fetch-{}", file.name));
                std::fs::create_dir_all(spool)?;
                std::fs::write(&path, &bytes)?;
                Ok(LocalCopy {
                    path,
                    temporary: true,
                })
            }
        }
    }
}
