//! # cdp-ingest
//!
//! Raw files (DESIGN.md's contracts; CSV or NDJSON, plain or `.gz`, from a
//! local folder or an object-store URL) become the bronze layer of the lake:
//! typed, validated, de-duplicated Parquet partitioned by business date.
//!
//! Entry point: [`ingest`]. Per source (one spec in `pipelines/ingest/`,
//! see [`spec`]), every raw file not ingested before (by content hash) is
//! read in blocks; records are cut by `cdp_core::rawfile`, parsed and checked
//! against the contract in parallel ([`parse`]); a bad row goes to quarantine
//! with its line, original text and reason; a row whose key was accepted
//! before (in this run or an earlier one) is a duplicate; the rest are
//! written as zstd Parquet per business date ([`bronze`]). Nothing becomes
//! visible until the source's manifest is published, so a crash leaves the
//! previous state and a re-run finishes the job. For every source and run,
//! rows read = accepted + duplicates + quarantined.
//!
//! ```
//! use cdp_core::{lake::Lake, progress::Silent};
//! use cdp_ingest::{IngestOptions, ingest};
//!
//! let (raw, lake_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
//! std::fs::write(
//!     raw.path().join("card_products.csv"),
//!     "offer_id,name,tier,category,annual_fee,min_income_band\n\
//!      cc_a,\"A, Gold\",gold,travel,480.00,4\n\
//!      cc_a,\"A, Gold\",gold,travel,480.00,4\n\
//!      cc_b,B,tin,travel,0,1\n",
//! ).unwrap();
//! let lake = Lake::open(lake_dir.path().to_str().unwrap()).unwrap();
//! let runtime = tokio::runtime::Runtime::new().unwrap();
//! let report = runtime
//!     .block_on(ingest(&lake, raw.path().to_str().unwrap(), &IngestOptions::default(), &Silent))
//!     .unwrap();
//! let products = &report.sources["card_products"].counts;
//! assert_eq!((products.read, products.accepted, products.duplicates, products.quarantined), (3, 1, 1, 1));
//! ```
//!
//! Why not polars' CSV reader: quarantine needs each bad row's line number
//! and original text, and a per-row reason; polars reads a file as a whole
//! and turns a bad value into a null or a failed read. Polars does the
//! columnar half: typed column building and Parquet writing.

pub mod bronze;
pub mod columns;
pub mod error;
pub mod parse;
pub mod source;
pub mod spec;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use polars::prelude::*;
use serde::Serialize;
use tracing::instrument;

use cdp_core::contract::Format;
use cdp_core::lake::{Lake, paths};
use cdp_core::progress::Progress;
use cdp_core::rawfile::{self, CsvFields};
use cdp_core::time::BusinessCalendar;

pub use bronze::{BronzeManifest, Counts};
pub use error::{Error, Result};

use bronze::{IngestedFile, PartFile, PartitionSet, Staged};
use parse::{BadRow, FileContext};
use source::{SourceDir, SourceFile};
use spec::IngestSpec;

/// How to ingest.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// The business calendar that assigns rows to days.
    pub calendar: BusinessCalendar,
    /// Bytes read per block.
    pub block_bytes: usize,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            calendar: BusinessCalendar::default(),
            block_bytes: rawfile::BLOCK_BYTES,
        }
    }
}

/// What one run did.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    /// Run id (also in every bronze row's `_run`).
    pub run: String,
    /// The source folder or URL.
    pub source: String,
    /// Per source: the rows of the files ingested in this run.
    pub sources: BTreeMap<String, SourceReport>,
    /// Files that could not be read at all; they are retried next run.
    pub unreadable: Vec<Unreadable>,
    /// Files in the source that no spec claims.
    pub ignored: Vec<String>,
    /// Wall time.
    pub seconds: f64,
}

/// One source's part of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceReport {
    #[serde(flatten)]
    pub counts: Counts,
    /// Files ingested in this run.
    pub files: usize,
    /// Files skipped because their content was ingested before.
    pub skipped: usize,
    /// Quarantined rows by reason.
    pub reasons: BTreeMap<&'static str, u64>,
}

/// A file that could not be read.
#[derive(Debug, Clone, Serialize)]
pub struct Unreadable {
    pub source: String,
    pub file: String,
    pub error: String,
}

/// Ingests every raw file in `source_uri` that has not been ingested before.
#[instrument(skip_all, fields(lake = lake.uri(), source = source_uri))]
pub async fn ingest(
    lake: &Lake,
    source_uri: &str,
    options: &IngestOptions,
    progress: &dyn Progress,
) -> Result<IngestReport> {
    let started = Instant::now();
    let specs = spec::embedded()?;
    let dir = SourceDir::open(source_uri)?;
    let files = dir.list().await?;
    let run = cdp_core::lake::run_id();
    let staging = Staging::new(lake, &run)?;

    let ignored = files
        .iter()
        .filter(|f| !specs.iter().any(|s| s.matches_file(&f.name)))
        .map(|f| f.name.clone())
        .collect();
    let mut report = IngestReport {
        run: run.clone(),
        source: source_uri.into(),
        sources: BTreeMap::new(),
        unreadable: Vec::new(),
        ignored,
        seconds: 0.0,
    };
    for spec in &specs {
        let mine: Vec<&SourceFile> = files
            .iter()
            .filter(|f| spec.matches_file(&f.name))
            .collect();
        let source_report = ingest_source(
            lake,
            &dir,
            &mine,
            spec,
            &run,
            &staging.dir,
            options,
            progress,
            &mut report.unreadable,
        )
        .await?;
        report.sources.insert(spec.source.clone(), source_report);
    }
    report.seconds = started.elapsed().as_secs_f64();
    let log = serde_json::to_vec_pretty(&report).expect("plain data serialises");
    lake.put(&format!("_ingest/runs/{run}.json"), log.into())
        .await?;
    tracing::info!(run = %run, seconds = report.seconds, "ingest finished");
    Ok(report)
}

/// Local staging for a run: inside a local lake (so moving a file in is a
/// rename), else a temporary folder.
struct Staging {
    dir: PathBuf,
    temp: Option<tempfile::TempDir>,
}

impl Staging {
    fn new(lake: &Lake, run: &str) -> Result<Staging> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| Error::Staging { path, source }
        };
        match lake.local_root() {
            Some(root) => {
                // a single writer per lake: earlier runs' leftovers are garbage
                let all = root.join("_ingest/staging");
                if all.exists() {
                    std::fs::remove_dir_all(&all).map_err(io(&all))?;
                }
                let dir = all.join(run);
                std::fs::create_dir_all(&dir).map_err(io(&dir))?;
                Ok(Staging { dir, temp: None })
            }
            None => {
                let temp = tempfile::tempdir().map_err(io(Path::new("temporary folder")))?;
                Ok(Staging {
                    dir: temp.path().to_path_buf(),
                    temp: Some(temp),
                })
            }
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.temp.is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[instrument(skip_all, fields(source = %spec.source))]
async fn ingest_source(
    lake: &Lake,
    dir: &SourceDir,
    files: &[&SourceFile],
    spec: &IngestSpec,
    run: &str,
    staging: &Path,
    options: &IngestOptions,
    progress: &dyn Progress,
    unreadable: &mut Vec<Unreadable>,
) -> Result<SourceReport> {
    let mut report = SourceReport::default();
    let name = BronzeManifest::name(&spec.source);
    // a killed run may have committed this source without making it current,
    // and this run may find nothing new to publish
    lake.roll_forward(&name).await?;
    let (mut manifest, version) = match lake.read_manifest::<BronzeManifest>(&name).await? {
        Some(m) => (m.body, m.version),
        None => (
            BronzeManifest {
                source: spec.source.clone(),
                ..BronzeManifest::default()
            },
            0,
        ),
    };
    remove_orphans(lake, spec, &manifest).await?;
    if files.is_empty() {
        return Ok(report);
    }
    let mut known = bronze::load_keys(lake, &manifest).await?;
    let mut done: HashSet<String> = manifest.files.iter().map(|f| f.hash.clone()).collect();
    let mut new_keys = Vec::new();
    // (lake path, staged file, raw file) of data and of quarantine files
    let mut new_parts: Vec<(String, Staged, String)> = Vec::new();
    let mut new_quarantine: Vec<(String, Staged, String)> = Vec::new();

    progress.begin(&spec.source, files.len() as u64);
    for (index, file) in files.iter().enumerate() {
        let fail = |error: String| Unreadable {
            source: spec.source.clone(),
            file: file.name.clone(),
            error,
        };
        let local = match dir.fetch(file, staging).await {
            Ok(local) => local,
            Err(e) => {
                unreadable.push(fail(e.to_string()));
                continue;
            }
        };
        let t_hash = Instant::now();
        let hash = match content_hash(&local.path) {
            Ok(h) => h,
            Err(e) => {
                unreadable.push(fail(e.to_string()));
                continue;
            }
        };
        tracing::debug!(file = %file.name, seconds = t_hash.elapsed().as_secs_f64(), "content hash");
        if !done.insert(hash.clone()) {
            report.skipped += 1;
            progress.advance(1);
            continue;
        }
        let out = match ingest_file(
            spec,
            &local.path,
            &file.name,
            run,
            index,
            &mut known,
            staging,
            options,
        ) {
            Ok(out) => out,
            Err(FileFailure::Unreadable(e)) => {
                tracing::warn!(file = %file.name, "unreadable: {e}");
                done.remove(&hash);
                unreadable.push(fail(e));
                continue;
            }
            Err(FileFailure::Fatal(e)) => return Err(e),
        };
        new_keys.extend(out.new_keys);
        for part in out.parts {
            let path = match part.dt {
                Some(dt) => format!(
                    "{}/part-{run}-{index:05}.parquet",
                    paths::bronze_partition(&spec.source, dt)
                ),
                None => format!(
                    "{}/part-{run}-{index:05}.parquet",
                    paths::bronze(&spec.source)
                ),
            };
            new_parts.push((path, part, file.name.clone()));
        }
        if let Some(q) = out.quarantine {
            let path = format!(
                "{}/part-{run}-{index:05}.parquet",
                paths::quarantine(&spec.source)
            );
            new_quarantine.push((path, q, file.name.clone()));
        }
        for (reason, n) in out.reasons {
            *report.reasons.entry(reason).or_default() += n;
        }
        report.counts += out.counts;
        report.files += 1;
        manifest.files.push(IngestedFile {
            name: file.name.clone(),
            hash,
            bytes: file.size,
            run: run.into(),
            counts: out.counts,
        });
        progress.advance(1);
    }
    progress.finish();
    if report.files == 0 {
        return Ok(report);
    }

    // Commit: move the files in, then publish the manifest that names them.
    let t_commit = Instant::now();
    let keys_path = format!("_ingest/keys/{}/keys-{run}.parquet", spec.source);
    let keys = bronze::write_keys(
        &new_keys,
        &staging.join(format!("{}-keys.parquet", spec.source)),
    )?;
    lake.put_file(&keys_path, &keys.local).await?;
    manifest.keys.push(keys_path);
    for (shelf, staged) in [
        (&mut manifest.parts, new_parts),
        (&mut manifest.quarantine, new_quarantine),
    ] {
        for (path, part, file) in staged {
            lake.put_file(&path, &part.local).await?;
            shelf.push(PartFile {
                path,
                dt: part.dt,
                rows: part.rows,
                run: run.into(),
                file,
            });
        }
    }
    manifest.totals += report.counts;
    lake.publish(&name, &manifest, Some(version)).await?;
    tracing::debug!(seconds = t_commit.elapsed().as_secs_f64(), "commit");
    Ok(report)
}

/// Deletes files under the source's folders that its manifest does not
/// name: leftovers of a run that died before publishing.
async fn remove_orphans(lake: &Lake, spec: &IngestSpec, manifest: &BronzeManifest) -> Result<()> {
    let referenced = manifest.referenced();
    for folder in [
        paths::bronze(&spec.source),
        paths::quarantine(&spec.source),
        format!("_ingest/keys/{}", spec.source),
    ] {
        for object in lake.list(&folder).await? {
            let path = object.location.to_string();
            let relative = path
                .strip_prefix(&format!("{}/", lake.root()))
                .unwrap_or(&path)
                .to_string();
            if !referenced.contains(relative.as_str()) {
                tracing::warn!(path = %relative, "removing a file no manifest names (interrupted run)");
                lake.delete(&relative).await?;
            }
        }
    }
    Ok(())
}

/// xxh3-128 of a file's bytes, as hex.
fn content_hash(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("{:032x}", hasher.digest128()))
}

/// What the dedup stage hands back.
struct Deduped<'k> {
    counts: Counts,
    bad: Vec<BadRow>,
    /// Keys this file added to `known` (taken back out if the file fails).
    new_keys: Vec<u128>,
    known: &'k mut bronze::KeySet,
    error: Option<Error>,
}

/// The dedup stage: counts rows, keeps bad ones aside, drops rows whose key
/// was seen before (first occurrence wins, in file order), splits the rest
/// by business date and passes them to the writer.
fn deduplicate(
    chunks: std::sync::mpsc::Receiver<Vec<parse::ChunkOut>>,
    known: &mut bronze::KeySet,
    writer: std::sync::mpsc::SyncSender<(Option<i32>, DataFrame)>,
    by_date: bool,
) -> Deduped<'_> {
    let mut out = Deduped {
        counts: Counts::default(),
        bad: Vec::new(),
        new_keys: Vec::new(),
        known,
        error: None,
    };
    for chunk in chunks.iter().flatten() {
        if out.error.is_some() {
            continue;
        }
        out.counts.read += (chunk.frame.height() + chunk.bad.len()) as u64;
        out.counts.quarantined += chunk.bad.len() as u64;
        out.bad.extend(chunk.bad);
        let mask: Vec<bool> = chunk.keys.iter().map(|k| out.known.insert(*k)).collect();
        out.new_keys.extend(
            chunk
                .keys
                .iter()
                .zip(&mask)
                .filter(|(_, m)| **m)
                .map(|(k, _)| *k),
        );
        let kept = mask.iter().filter(|m| **m).count();
        out.counts.accepted += kept as u64;
        out.counts.duplicates += (mask.len() - kept) as u64;
        let dts = if by_date {
            chunk.dts
        } else {
            vec![None; mask.len()]
        };
        match split_by_date(chunk.frame, &dts, &mask) {
            Ok(parts) => {
                for part in parts {
                    if writer.send(part).is_err() {
                        break; // the writer failed; its error comes at join
                    }
                }
            }
            Err(e) => out.error = Some(e),
        }
    }
    out
}

/// Drops duplicate rows (`keep` false) and splits the rest by business date.
fn split_by_date(
    frame: DataFrame,
    dts: &[Option<i32>],
    keep: &[bool],
) -> Result<Vec<(Option<i32>, DataFrame)>> {
    let all_kept = keep.iter().all(|k| *k);
    let frame = if all_kept {
        frame
    } else {
        frame
            .filter(&BooleanChunked::from_slice("keep".into(), keep))
            .map_err(Error::frame("dropping duplicates"))?
    };
    let dts: Vec<Option<i32>> = dts
        .iter()
        .zip(keep)
        .filter(|(_, k)| **k)
        .map(|(d, _)| *d)
        .collect();
    let distinct: BTreeSet<Option<i32>> = dts.iter().copied().collect();
    if distinct.len() <= 1 {
        return Ok(distinct.into_iter().map(|dt| (dt, frame.clone())).collect());
    }
    distinct
        .into_iter()
        .map(|dt| {
            let mask: Vec<bool> = dts.iter().map(|d| *d == dt).collect();
            frame
                .filter(&BooleanChunked::from_slice("dt".into(), &mask))
                .map(|part| (dt, part))
                .map_err(Error::frame("splitting by business date"))
        })
        .collect()
}

/// Why a file was not ingested.
enum FileFailure {
    /// The file is broken as a whole; the rest of the run goes on.
    Unreadable(String),
    /// The run cannot go on (staging disk, Parquet writer).
    Fatal(Error),
}

enum BlockError {
    Io(std::io::Error),
    Header(String),
    Fatal(Error),
}

impl From<std::io::Error> for BlockError {
    fn from(e: std::io::Error) -> Self {
        BlockError::Io(e)
    }
}

/// A file's output, staged.
struct FileOutput {
    counts: Counts,
    parts: Vec<Staged>,
    quarantine: Option<Staged>,
    new_keys: Vec<u128>,
    reasons: BTreeMap<&'static str, u64>,
}

#[allow(clippy::too_many_arguments)]
fn ingest_file(
    spec: &IngestSpec,
    path: &Path,
    name: &str,
    run: &str,
    index: usize,
    known: &mut bronze::KeySet,
    staging: &Path,
    options: &IngestOptions,
) -> Result<FileOutput, FileFailure> {
    let reader = rawfile::open(path).map_err(|e| FileFailure::Unreadable(e.to_string()))?;
    let format = spec.contract.format;
    let mut ctx = FileContext {
        spec,
        calendar: options.calendar,
        layout: None,
        file: name,
        run,
    };
    let mut header_done = format == Format::Ndjson;
    let partitions = PartitionSet::new(
        staging,
        format!("{}-{index:05}", spec.source),
        spec.row_group_rows,
    );
    let t_file = Instant::now();

    // Three stages, so that parsing never waits: this thread reads and
    // parses blocks (in parallel), a second thread drops duplicates and
    // splits rows by date, a third writes Parquet.
    let (partitions, deduped, result) = std::thread::scope(|scope| {
        let (to_writer, writer) = bronze::spawn_writer(scope, partitions);
        let (to_dedup, from_parser) = std::sync::mpsc::sync_channel::<Vec<parse::ChunkOut>>(2);
        let by_date = spec.partition == spec::Partitioning::EventDate;
        let dedup = scope.spawn(move || deduplicate(from_parser, known, to_writer, by_date));
        let result =
            rawfile::for_each_block(reader, format, options.block_bytes, |bytes, spans| {
                let mut spans = spans;
                if !header_done {
                    let header = &spans[0];
                    let cells: Vec<String> = CsvFields::default()
                        .parse(&bytes[header.start..header.end])
                        .iter()
                        .map(|c| String::from_utf8_lossy(c).into_owned())
                        .collect();
                    let layout = spec.contract.csv_layout(&cells).map_err(|m| {
                        BlockError::Header(format!(
                            "header does not match the {} contract: {m}",
                            spec.contract.source
                        ))
                    })?;
                    ctx.layout = Some(layout);
                    header_done = true;
                    spans = &spans[1..];
                }
                let outs = ctx.parse_block(bytes, spans).map_err(BlockError::Fatal)?;
                // a closed channel means a later stage failed: its error comes at join
                let _ = to_dedup.send(outs);
                Ok(())
            });
        drop(to_dedup);
        let mut deduped = dedup.join().expect("the dedup stage does not panic");
        let (partitions, written) = writer.join().expect("the partition writer does not panic");
        let result = match (result, deduped.error.take(), written) {
            (Err(e), _, _) => Err(e),
            (Ok(_), Some(e), _) | (Ok(_), None, Err(e)) => Err(BlockError::Fatal(e)),
            (Ok(_), None, Ok(())) => Ok(()),
        };
        (partitions, deduped, result)
    });
    tracing::debug!(
        file = name,
        seconds = t_file.elapsed().as_secs_f64(),
        "read, parse, dedup, write"
    );
    let Deduped {
        counts,
        bad,
        new_keys,
        known,
        ..
    } = deduped;
    if let Err(e) = result {
        for k in &new_keys {
            known.remove(k);
        }
        partitions.discard();
        return Err(match e {
            BlockError::Io(e) => FileFailure::Unreadable(format!("cannot read {name}: {e}")),
            BlockError::Header(m) => FileFailure::Unreadable(format!("{name}: {m}")),
            BlockError::Fatal(e) => FileFailure::Fatal(e),
        });
    }
    if !header_done {
        partitions.discard();
        return Err(FileFailure::Unreadable(format!(
            "{name}: empty file, no CSV header"
        )));
    }
    let parts = partitions.finish().map_err(FileFailure::Fatal)?;
    let reasons = bronze::reasons(&bad);
    let quarantine = if bad.is_empty() {
        None
    } else {
        let path = staging.join(format!("{}-{index:05}-quarantine.parquet", spec.source));
        Some(bronze::write_quarantine(&bad, name, run, &path).map_err(FileFailure::Fatal)?)
    };
    Ok(FileOutput {
        counts,
        parts,
        quarantine,
        new_keys,
        reasons,
    })
}
