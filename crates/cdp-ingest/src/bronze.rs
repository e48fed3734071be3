//! The bronze layer's bookkeeping: the per-source manifest, partition files
//! written to staging, the quarantine file and the key index.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use cdp_core::lake::Lake;

use crate::error::{Error, Result};
use crate::parse::BadRow;

/// Hashes a key that is already a 128-bit hash by taking its low 64 bits.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(word);
        }
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

/// The set of key hashes seen so far.
pub type KeySet = HashSet<u128, std::hash::BuildHasherDefault<KeyHasher>>;

/// Rows per source, as `cdp ingest --json` reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub read: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub quarantined: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.read += o.read;
        self.accepted += o.accepted;
        self.duplicates += o.duplicates;
        self.quarantined += o.quarantined;
    }
}

/// A Parquet file the manifest makes visible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartFile {
    /// Path relative to the lake root.
    pub path: String,
    /// Business date of its rows, for partitioned sources.
    pub dt: Option<NaiveDate>,
    pub rows: u64,
    /// Ingest run that wrote it.
    pub run: String,
    /// Raw file its rows came from.
    pub file: String,
}

/// A raw file that has been ingested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestedFile {
    pub name: String,
    /// xxh3-128 of the file's bytes as delivered (hex).
    pub hash: String,
    pub bytes: u64,
    pub run: String,
    pub counts: Counts,
}

/// The published state of one bronze source (`_manifests/bronze/<source>.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BronzeManifest {
    pub source: String,
    /// Data files.
    pub parts: Vec<PartFile>,
    /// Quarantine files.
    pub quarantine: Vec<PartFile>,
    /// Key-index files (hashes of every accepted key).
    pub keys: Vec<String>,
    /// Raw files ingested so far.
    pub files: Vec<IngestedFile>,
    /// Totals over all runs.
    pub totals: Counts,
}

impl BronzeManifest {
    /// The manifest name of a source.
    pub fn name(source: &str) -> String {
        format!("bronze/{source}")
    }

    /// Every lake path the manifest references.
    pub fn referenced(&self) -> HashSet<&str> {
        self.parts
            .iter()
            .chain(&self.quarantine)
            .map(|p| p.path.as_str())
            .chain(self.keys.iter().map(String::as_str))
            .collect()
    }
}

/// Parquet writer options for bronze: zstd at level 1, the fast end (bronze
/// is written once a night and read often; level 3 saves little more).
fn writer(file: File, row_group_rows: usize) -> ParquetWriter<File> {
    let level = polars_parquet::write::ZstdLevel::try_new(1).ok();
    ParquetWriter::new(file)
        .with_compression(ParquetCompression::Zstd(level))
        .with_row_group_size(Some(row_group_rows))
}

fn staging_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Staging {
        path: path.display().to_string(),
        source,
    }
}

/// One business date's rows of one raw file, streamed to a staging file in
/// row groups.
pub struct Partition {
    pub dt: Option<i32>,
    path: PathBuf,
    pending: Vec<DataFrame>,
    pending_rows: usize,
    writer: Option<polars::io::parquet::write::BatchedWriter<File>>,
    rows: u64,
    row_group_rows: usize,
}

/// Rows that may wait in memory across all partitions of a file before
/// the largest waiting partitions are written out.
pub const PENDING_BUDGET: usize = 1 << 19;

/// A staged file ready to be moved into the lake.
#[derive(Debug, Clone)]
pub struct Staged {
    pub local: PathBuf,
    pub dt: Option<NaiveDate>,
    pub rows: u64,
}

impl Partition {
    pub fn new(dt: Option<i32>, path: PathBuf, row_group_rows: usize) -> Partition {
        Partition {
            dt,
            path,
            pending: Vec::new(),
            pending_rows: 0,
            writer: None,
            rows: 0,
            row_group_rows,
        }
    }

    /// Adds rows; writes a row group once enough are pending.
    pub fn push(&mut self, frame: DataFrame) -> Result<()> {
        self.pending_rows += frame.height();
        self.pending.push(frame);
        if self.pending_rows >= self.row_group_rows {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let mut frames = std::mem::take(&mut self.pending).into_iter();
        let Some(mut df) = frames.next() else {
            return Ok(());
        };
        let context = || format!("writing {}", self.path.display());
        for f in frames {
            df.vstack_mut_owned(f).map_err(Error::frame(context()))?;
        }
        if self.writer.is_none() {
            let file = File::create(&self.path).map_err(staging_error(&self.path))?;
            let batched = writer(file, self.row_group_rows)
                .batched(df.schema())
                .map_err(Error::frame(context()))?;
            self.writer = Some(batched);
        }
        let w = self.writer.as_mut().expect("just created");
        w.write_batch(&df).map_err(Error::frame(context()))?;
        self.rows += df.height() as u64;
        self.pending_rows = 0;
        Ok(())
    }

    /// Abandons the partition and deletes its staging file.
    pub fn discard(self) {
        drop(self.writer);
        let _ = std::fs::remove_file(&self.path);
    }

    /// Writes what is pending and closes the file.
    pub fn finish(mut self) -> Result<Staged> {
        self.flush()?;
        if let Some(w) = self.writer.take() {
            w.finish()
                .map_err(Error::frame(format!("closing {}", self.path.display())))?;
        }
        Ok(Staged {
            local: self.path,
            dt: self.dt.map(crate::columns::date_from_days),
            rows: self.rows,
        })
    }
}

/// The partitions of one raw file, by business date, written to staging.
pub struct PartitionSet {
    partitions: BTreeMap<Option<i32>, Partition>,
    staging: PathBuf,
    stem: String,
    row_group_rows: usize,
}

impl PartitionSet {
    /// Partitions staged as `staging/<stem>-<dt>.parquet`.
    pub fn new(staging: &Path, stem: String, row_group_rows: usize) -> PartitionSet {
        PartitionSet {
            partitions: BTreeMap::new(),
            staging: staging.into(),
            stem,
            row_group_rows,
        }
    }

    /// Adds rows of business date `dt`; bounds the rows waiting in memory by
    /// writing out the partitions with the most of them.
    pub fn push(&mut self, dt: Option<i32>, frame: DataFrame) -> Result<()> {
        let (staging, stem, rows) = (&self.staging, &self.stem, self.row_group_rows);
        let partition = self.partitions.entry(dt).or_insert_with(|| {
            let tag = dt.map_or("all".to_string(), |d| d.to_string());
            Partition::new(dt, staging.join(format!("{stem}-{tag}.parquet")), rows)
        });
        partition.push(frame)?;
        let mut pending: usize = self.partitions.values().map(|p| p.pending_rows).sum();
        while pending > PENDING_BUDGET {
            let largest = self
                .partitions
                .values_mut()
                .max_by_key(|p| p.pending_rows)
                .expect("rows are pending");
            pending -= largest.pending_rows;
            largest.flush()?;
        }
        Ok(())
    }

    /// Closes every partition file.
    pub fn finish(self) -> Result<Vec<Staged>> {
        self.partitions
            .into_values()
            .map(Partition::finish)
            .collect()
    }

    /// Abandons every partition and deletes its staging file.
    pub fn discard(self) {
        for p in self.partitions.into_values() {
            p.discard();
        }
    }
}

/// Runs a [`PartitionSet`] on its own thread inside `scope`, so writing
/// Parquet overlaps with parsing the next block. Send `(dt, rows)`; drop the
/// sender and join to get the set back.
#[allow(clippy::type_complexity)]
pub fn spawn_writer<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    mut set: PartitionSet,
) -> (
    std::sync::mpsc::SyncSender<(Option<i32>, DataFrame)>,
    std::thread::ScopedJoinHandle<'scope, (PartitionSet, Result<()>)>,
) {
    let (tx, rx) = std::sync::mpsc::sync_channel::<(Option<i32>, DataFrame)>(16);
    let handle = scope.spawn(move || {
        for (dt, frame) in rx {
            if let Err(e) = set.push(dt, frame) {
                return (set, Err(e));
            }
        }
        (set, Ok(()))
    });
    (tx, handle)
}

/// Writes a file's bad rows to a staging Parquet file.
pub fn write_quarantine(rows: &[BadRow], file: &str, run: &str, path: &Path) -> Result<Staged> {
    let n = rows.len();
    let text = |f: fn(&BadRow) -> String| -> Column {
        Column::new("".into(), rows.iter().map(f).collect::<Vec<_>>())
    };
    let columns = vec![
        Column::new("_file".into(), vec![file; n]),
        Column::new(
            "_line".into(),
            rows.iter().map(|r| r.line as i64).collect::<Vec<_>>(),
        ),
        text(|r| r.reason.code().to_string()).with_name("reason".into()),
        Column::new(
            "field".into(),
            rows.iter().map(|r| r.field.clone()).collect::<Vec<_>>(),
        ),
        text(|r| r.detail.clone()).with_name("detail".into()),
        text(|r| String::from_utf8_lossy(&r.text).into_owned()).with_name("text".into()),
        Column::new(
            "raw".into(),
            rows.iter().map(|r| r.text.as_slice()).collect::<Vec<_>>(),
        ),
        Column::new("_run".into(), vec![run; n]),
    ];
    let mut df = DataFrame::new(n, columns).map_err(Error::frame("building quarantine rows"))?;
    let f = File::create(path).map_err(staging_error(path))?;
    writer(f, 262_144)
        .finish(&mut df)
        .map_err(Error::frame(format!("writing {}", path.display())))?;
    Ok(Staged {
        local: path.into(),
        dt: None,
        rows: n as u64,
    })
}

/// Writes key hashes to a staging Parquet file (`hi`, `lo` as UInt64).
pub fn write_keys(keys: &[u128], path: &Path) -> Result<Staged> {
    let hi: Vec<u64> = keys.iter().map(|k| (k >> 64) as u64).collect();
    let lo: Vec<u64> = keys.iter().map(|k| *k as u64).collect();
    let mut df = DataFrame::new(
        keys.len(),
        vec![Column::new("hi".into(), hi), Column::new("lo".into(), lo)],
    )
    .map_err(Error::frame("building the key index"))?;
    let f = File::create(path).map_err(staging_error(path))?;
    writer(f, 1 << 20)
        .finish(&mut df)
        .map_err(Error::frame(format!("writing {}", path.display())))?;
    Ok(Staged {
        local: path.into(),
        dt: None,
        rows: keys.len() as u64,
    })
}

/// Loads every key hash the manifest's key files hold.
pub async fn load_keys(lake: &Lake, manifest: &BronzeManifest) -> Result<KeySet> {
    let mut keys = KeySet::default();
    for path in &manifest.keys {
        let Some(bytes) = lake.get(path).await? else {
            return Err(Error::Staging {
                path: path.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "key index file listed in the manifest is missing",
                ),
            });
        };
        let df = ParquetReader::new(Cursor::new(bytes.to_vec()))
            .finish()
            .map_err(Error::frame(format!("reading {path}")))?;
        let hi = df.column("hi").and_then(|c| c.u64().cloned());
        let lo = df.column("lo").and_then(|c| c.u64().cloned());
        let (hi, lo) = (
            hi.map_err(Error::frame(path.clone()))?,
            lo.map_err(Error::frame(path.clone()))?,
        );
        keys.reserve(df.height());
        for (h, l) in hi.into_no_null_iter().zip(lo.into_no_null_iter()) {
            keys.insert((u128::from(h) << 64) | u128::from(l));
        }
    }
    Ok(keys)
}

/// Counts bad rows by reason.
pub fn reasons(rows: &[BadRow]) -> BTreeMap<&'static str, u64> {
    let mut out = BTreeMap::new();
    for r in rows {
        *out.entry(r.reason.code()).or_default() += 1;
    }
    out
}
