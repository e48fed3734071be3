//! The embedded online store: immutable snapshots in the lake, read
//! memory-mapped, swapped without locks.
//!
//! [`write`] stores a snapshot under
//! `online/embedded/as_of=D/run=R/` — `features.arrow` (one Arrow IPC
//! record batch: `unified_id` and one column per feature, integers
//! narrowed; readable by any Arrow tool) and `index.bin` (a
//! [`KeyIndex`](super::index::KeyIndex)) — and then publishes the
//! `online/embedded` manifest that makes it current, keeping the
//! previous `keep_snapshots - 1` snapshots' files and deleting older ones.
//!
//! [`EmbeddedStore`] maps both files of the current snapshot (a local
//! lake; an object-store lake is read into memory) and answers lookups
//! from them: an index probe per entity, then typed reads of the
//! requested columns. The snapshot sits behind an
//! [`ArcSwapOption`](arc_swap::ArcSwapOption): a lookup takes the current
//! one without a lock and keeps it until it is done; [`OnlineStore::refresh`]
//! loads a newer published snapshot and swaps it in, and the old one is
//! unmapped when its last lookup ends.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use bytes::Bytes;
use cdp_core::lake::{Lake, Manifest};
use chrono::{DateTime, Utc};
use datafusion::arrow::array::{Array, AsArray, RecordBatch, StringArray};
use datafusion::arrow::buffer::Buffer;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::ipc::convert::fb_to_schema;
use datafusion::arrow::ipc::reader::{FileDecoder, read_footer_length};
use datafusion::arrow::ipc::root_as_footer;
use datafusion::arrow::ipc::writer::FileWriter;
use serde::{Deserialize, Serialize};
use tracing::instrument;

use super::index::KeyIndex;
use super::table::{Column, KEY, OnlineTable};
use super::{FeatureColumn, Lookup, OnlineFeatures, OnlineStore, SnapshotInfo, Status, Value};
use crate::error::{Error, Result};

/// The manifest naming the current embedded snapshot.
pub const MANIFEST: &str = "online/embedded";

/// The data file of a snapshot.
pub const DATA_FILE: &str = "features.arrow";

/// The key index of a snapshot.
pub const INDEX_FILE: &str = "index.bin";

/// Attempts at the manifest swap when another materialization publishes
/// at the same time.
const ATTEMPTS: usize = 5;

/// The body of the `online/embedded` manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddedManifest {
    /// What the snapshot holds.
    #[serde(flatten)]
    pub info: SnapshotInfo,
    /// The run that wrote it.
    pub run: String,
    /// Its data file, relative to the lake root.
    pub data: String,
    /// Its key index, relative to the lake root.
    pub index: String,
    /// Bytes of both files.
    pub bytes: u64,
    /// When it was written.
    pub materialized_at: DateTime<Utc>,
    /// Folders of the older snapshots still kept, newest first.
    #[serde(default)]
    pub kept: Vec<String>,
}

/// How [`write`] keeps old snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOptions {
    /// Snapshots kept, the new one included (at least 1).
    pub keep_snapshots: usize,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self { keep_snapshots: 3 }
    }
}

/// What [`write`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WriteReport {
    /// The published manifest's version.
    pub version: u64,
    /// The snapshot's folder, relative to the lake root.
    pub folder: String,
    /// Bytes written (data and index).
    pub bytes: u64,
    /// Older snapshot folders deleted.
    pub deleted: Vec<String>,
}

/// The folder of the snapshot of `table` written by `run`.
fn folder(table: &OnlineTable, run: &str) -> String {
    format!("{MANIFEST}/as_of={}/run={run}", table.info.as_of)
}

/// Writes `table` as a new embedded snapshot and makes it current.
#[instrument(skip_all, fields(as_of = %table.info.as_of, rows = table.rows()))]
pub async fn write(
    lake: &Lake,
    table: &OnlineTable,
    options: &WriteOptions,
) -> Result<WriteReport> {
    let run = cdp_core::lake::run_id();
    let folder = folder(table, &run);
    let data = format!("{folder}/{DATA_FILE}");
    let index = format!("{folder}/{INDEX_FILE}");

    let batch = table.to_batch()?;
    let data_bytes = write_ipc(lake, &data, &batch).await?;
    let index_bytes = table.index.len() as u64;
    lake.put(&index, Bytes::copy_from_slice(&table.index))
        .await?;

    let keep = options.keep_snapshots.max(1);
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let current = lake.read_manifest::<EmbeddedManifest>(MANIFEST).await?;
        let expected = current.as_ref().map_or(0, |m| m.version);
        let mut kept: Vec<String> = Vec::new();
        if let Some(m) = &current {
            kept.push(snapshot_folder(&m.body));
            kept.extend(m.body.kept.iter().cloned());
        }
        let mut dropped = kept.split_off(kept.len().min(keep - 1));
        // the released snapshot serves until the next release: never dropped
        if let Some(released) = released_manifest(lake).await? {
            let folder = snapshot_folder(&released.body);
            if let Some(i) = dropped.iter().position(|d| *d == folder) {
                kept.push(dropped.remove(i));
            }
        }
        let body = EmbeddedManifest {
            info: table.info.clone(),
            run: run.clone(),
            data: data.clone(),
            index: index.clone(),
            bytes: data_bytes + index_bytes,
            materialized_at: Utc::now(),
            kept,
        };
        match lake.publish(MANIFEST, &body, Some(expected)).await {
            Ok(published) => {
                for old in &dropped {
                    for file in [DATA_FILE, INDEX_FILE] {
                        lake.delete(&format!("{old}/{file}")).await?;
                    }
                }
                tracing::info!(version = published.version, "embedded snapshot published");
                return Ok(WriteReport {
                    version: published.version,
                    folder,
                    bytes: body.bytes,
                    deleted: dropped,
                });
            }
            Err(e @ cdp_core::Error::ManifestConflict { .. }) => {
                tracing::info!("online manifest moved on; publishing again");
                last = Some(e);
            }
            Err(e) => return Err(e.into()),
        }
    }
    // Only conflicts repeat the loop, and each one is kept.
    Err(Error::from(last.expect("at least one attempt")))
}

/// Writes `batch` as an Arrow IPC file at `relative`: straight to disk and
/// renamed into place for a local lake, uploaded otherwise. Returns bytes.
async fn write_ipc(lake: &Lake, relative: &str, batch: &RecordBatch) -> Result<u64> {
    let encode = |e: datafusion::arrow::error::ArrowError| Error::OnlineFile {
        path: relative.to_string(),
        reason: e.to_string(),
    };
    let io = |e: std::io::Error| Error::OnlineFile {
        path: relative.to_string(),
        reason: e.to_string(),
    };
    if let Some(root) = lake.local_root() {
        let target = root.join(relative);
        let partial = target.with_extension("arrow.partial");
        if let Some(parent) = partial.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let file = std::fs::File::create(&partial).map_err(io)?;
        let mut writer = FileWriter::try_new_buffered(file, &batch.schema()).map_err(encode)?;
        writer.write(batch).map_err(encode)?;
        writer.finish().map_err(encode)?;
        let file = writer.into_inner().map_err(encode)?;
        let file = file.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_data().map_err(io)?;
        let bytes = file.metadata().map_err(io)?.len();
        lake.put_file(relative, &partial).await?;
        return Ok(bytes);
    }
    let mut out = Vec::new();
    let mut writer = FileWriter::try_new(&mut out, &batch.schema()).map_err(encode)?;
    writer.write(batch).map_err(encode)?;
    writer.finish().map_err(encode)?;
    drop(writer);
    let bytes = out.len() as u64;
    lake.put(relative, Bytes::from(out)).await?;
    Ok(bytes)
}

/// A loaded snapshot: its files mapped, its columns typed.
#[derive(Debug)]
struct Loaded {
    version: u64,
    info: SnapshotInfo,
    by_name: HashMap<String, usize>,
    ids: StringArray,
    columns: Vec<Column>,
    index: KeyIndex,
}

impl Loaded {
    /// Loads the snapshot `manifest` names.
    async fn open(lake: &Lake, manifest: &Manifest<EmbeddedManifest>) -> Result<Self> {
        let body = &manifest.body;
        let data = read(lake, &body.data).await?;
        let index = read(lake, &body.index).await?;
        let index = KeyIndex::new(index).map_err(|reason| Error::OnlineFile {
            path: body.index.clone(),
            reason,
        })?;
        let batch = decode_ipc(data).map_err(|reason| Error::OnlineFile {
            path: body.data.clone(),
            reason,
        })?;
        let corrupt = |reason: String| Error::OnlineFile {
            path: body.data.clone(),
            reason,
        };
        let ids = batch
            .column_by_name(KEY)
            .filter(|c| *c.data_type() == DataType::Utf8)
            .ok_or_else(|| corrupt(format!("no {KEY} column of strings")))?
            .as_string::<i32>()
            .clone();
        if ids.len() != index.rows() {
            return Err(corrupt(format!(
                "{} rows but the index has {}",
                ids.len(),
                index.rows()
            )));
        }
        let mut columns = Vec::with_capacity(body.info.features.len());
        let mut by_name = HashMap::with_capacity(body.info.features.len());
        for (i, spec) in body.info.features.iter().enumerate() {
            let array = batch
                .column_by_name(&spec.name)
                .ok_or_else(|| corrupt(format!("feature {} has no column", spec.name)))?;
            columns.push(Column::from_stored(spec, array)?);
            by_name.insert(spec.name.clone(), i);
        }
        Ok(Self {
            version: manifest.version,
            info: body.info.clone(),
            by_name,
            ids,
            columns,
            index,
        })
    }

    fn lookup(&self, lookup: &Lookup<'_>) -> Result<OnlineFeatures> {
        lookup.check()?;
        let at = lookup.time();
        let wanted: Vec<usize> = if lookup.features.is_empty() {
            (0..self.columns.len()).collect()
        } else {
            lookup
                .features
                .iter()
                .map(|name| {
                    self.by_name.get(name.as_str()).copied().ok_or_else(|| {
                        Error::UnknownOnlineFeature {
                            feature: name.clone(),
                            as_of: self.info.as_of,
                        }
                    })
                })
                .collect::<Result<_>>()?
        };
        let rows: Vec<Option<usize>> = lookup
            .entities
            .iter()
            .map(|id| self.index.find(id, |row| self.ids.value(row)))
            .collect();
        let event_time = self.info.event_time;
        let times: Vec<Option<DateTime<Utc>>> =
            rows.iter().map(|r| r.map(|_| event_time)).collect();
        let columns = wanted
            .into_iter()
            .map(|i| {
                let spec = &self.info.features[i];
                let column = &self.columns[i];
                let mut values = Vec::with_capacity(rows.len());
                let mut status = Vec::with_capacity(rows.len());
                for row in &rows {
                    let s = match row {
                        Some(r) => spec.status(column.is_valid(*r), Some(event_time), at),
                        None => Status::Missing,
                    };
                    values.push(match (s, row) {
                        (Status::Present, Some(r)) => column.value(*r),
                        _ => Value::Null,
                    });
                    status.push(s);
                }
                FeatureColumn {
                    name: spec.name.clone(),
                    ty: spec.ty,
                    values,
                    status,
                    event_time: times.clone(),
                }
            })
            .collect();
        Ok(OnlineFeatures {
            entities: lookup.entities.to_vec(),
            columns,
        })
    }
}

/// A lake file's bytes: memory-mapped for a local lake, read otherwise.
async fn read(lake: &Lake, relative: &str) -> Result<Bytes> {
    let missing = || Error::OnlineFile {
        path: relative.to_string(),
        reason: "missing".into(),
    };
    if let Some(root) = lake.local_root() {
        let path = root.join(relative);
        return map(&path).map_err(|e| Error::OnlineFile {
            path: relative.to_string(),
            reason: e.to_string(),
        });
    }
    lake.get(relative).await?.ok_or_else(missing)
}

/// Maps a snapshot file into memory.
fn map(path: &Path) -> std::io::Result<Bytes> {
    let file = std::fs::File::open(path)?;
    // SAFETY: snapshot files are written once under a unique run folder,
    // renamed into place complete, and never modified afterwards (old ones
    // are only unlinked, which leaves an existing mapping intact), so the
    // mapped bytes cannot change under the reader.
    let mmap = unsafe { memmap2::Mmap::map(&file)? };
    Ok(Bytes::from_owner(mmap))
}

/// The one record batch of an Arrow IPC file, its buffers pointing into `data`.
fn decode_ipc(data: Bytes) -> std::result::Result<RecordBatch, String> {
    let buffer = Buffer::from(data);
    if buffer.len() < 10 {
        return Err("too short for an Arrow IPC file".into());
    }
    let trailer = buffer.len() - 10;
    let footer_len = read_footer_length(buffer[trailer..].try_into().expect("10 bytes"))
        .map_err(|e| e.to_string())?;
    let footer = root_as_footer(
        buffer
            .get(trailer.saturating_sub(footer_len)..trailer)
            .ok_or("bad footer length")?,
    )
    .map_err(|e| e.to_string())?;
    let schema = Arc::new(fb_to_schema(footer.schema().ok_or("no schema")?));
    let decoder = FileDecoder::new(schema, footer.version());
    let blocks = footer.recordBatches().ok_or("no record batches")?;
    if blocks.len() != 1 {
        return Err(format!("{} record batches, expected 1", blocks.len()));
    }
    let block = blocks.get(0);
    let start = usize::try_from(block.offset()).map_err(|e| e.to_string())?;
    let len = block.bodyLength() as usize + block.metaDataLength() as usize;
    if start + len > trailer {
        return Err("record batch beyond the end of the file".into());
    }
    let data = buffer.slice_with_length(start, len);
    decoder
        .read_record_batch(block, &data)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "empty record batch".into())
}

/// The manifest of the snapshot to serve: the version the lake's release
/// names when it has one (`cdp refresh` publishes the online snapshot and
/// the rest of the night's outputs together), else the latest.
pub async fn served_manifest(lake: &Lake) -> Result<Option<Manifest<EmbeddedManifest>>> {
    match released_manifest(lake).await? {
        Some(released) => Ok(Some(released)),
        None => Ok(lake.read_manifest(MANIFEST).await?),
    }
}

/// The manifest of the snapshot the lake's release names; `None` without
/// a release (or with one whose online store is Redis).
pub async fn released_manifest(lake: &Lake) -> Result<Option<Manifest<EmbeddedManifest>>> {
    match cdp_core::release::current(lake)
        .await?
        .and_then(|r| r.body.online)
    {
        Some(version) => Ok(lake.read_manifest_version(MANIFEST, version).await?),
        None => Ok(None),
    }
}

/// The folder of a snapshot's files, from its manifest body.
pub fn snapshot_folder(body: &EmbeddedManifest) -> String {
    body.data
        .rsplit_once('/')
        .map_or(body.data.clone(), |(d, _)| d.into())
}

/// The embedded online store over a lake.
#[derive(Debug)]
pub struct EmbeddedStore {
    lake: Lake,
    current: ArcSwapOption<Loaded>,
    refreshing: tokio::sync::Mutex<()>,
}

impl EmbeddedStore {
    /// Opens the store over `lake` and loads its current snapshot, if any
    /// (without one, lookups fail until a [`refresh`](OnlineStore::refresh)
    /// finds one).
    pub async fn open(lake: Lake) -> Result<Self> {
        let store = Self {
            lake,
            current: ArcSwapOption::empty(),
            refreshing: tokio::sync::Mutex::new(()),
        };
        store.reload().await?;
        Ok(store)
    }

    /// The lookup, without the async wrapper: what [`OnlineStore::get`]
    /// does, callable from synchronous code.
    pub fn lookup(&self, lookup: &Lookup<'_>) -> Result<OnlineFeatures> {
        match self.current.load().as_deref() {
            Some(snapshot) => snapshot.lookup(lookup),
            None => Err(Error::NotMaterialized {
                store: format!("{} (embedded)", self.lake.uri()),
            }),
        }
    }

    /// Every unified_id of the snapshot served, in stored order (for tools
    /// and benchmarks; empty before the first snapshot).
    pub fn entities(&self) -> Vec<String> {
        self.current.load().as_ref().map_or_else(Vec::new, |s| {
            s.ids.iter().flatten().map(str::to_string).collect()
        })
    }

    /// The manifest version of the snapshot served, 0 before the first.
    pub fn version(&self) -> u64 {
        self.current.load().as_ref().map_or(0, |s| s.version)
    }

    #[instrument(skip_all, fields(lake = %self.lake.uri()))]
    async fn reload(&self) -> Result<bool> {
        let _one_at_a_time = self.refreshing.lock().await;
        let Some(manifest) = served_manifest(&self.lake).await? else {
            return Ok(false);
        };
        if manifest.version == self.version() {
            return Ok(false);
        }
        let loaded = Loaded::open(&self.lake, &manifest).await?;
        tracing::info!(
            version = loaded.version,
            as_of = %loaded.info.as_of,
            rows = loaded.info.rows,
            "embedded snapshot loaded"
        );
        self.current.store(Some(Arc::new(loaded)));
        Ok(true)
    }
}

#[async_trait]
impl OnlineStore for EmbeddedStore {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    async fn get(&self, lookup: &Lookup<'_>) -> Result<OnlineFeatures> {
        self.lookup(lookup)
    }

    async fn refresh(&self) -> Result<bool> {
        self.reload().await
    }

    async fn info(&self) -> Result<Option<SnapshotInfo>> {
        Ok(self.current.load().as_ref().map(|s| s.info.clone()))
    }
}
