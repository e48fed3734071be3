//! # SQL logic tests of the lake
//!
//! A data-driven harness in the style of
//! [sqllogictest](https://www.sqlite.org/sqllogictest/) (and of DataFusion's
//! `datafusion/sqllogictest`): every `tests/slt/*.slt` file is a
//! self-contained case that writes raw files, ingests them, builds the silver
//! layer as of a date and checks query results. See `tests/slt/README.md`
//! for the file format.
//!
//! Each file runs against its own temporary lake through [`LakeDb`], an
//! [`sqllogictest::AsyncDB`] that understands three pseudo-statements
//! besides SQL (each written as a `statement ok` record):
//!
//! * `FILE <name>` followed by the file's lines (up to the blank line that
//!   ends the record): writes that raw file into the current batch folder.
//! * `INGEST`: `cdp_ingest::ingest` of the current batch folder, then a new
//!   empty batch folder for the next `FILE`s. It fails when a file was
//!   ignored (no source claims its name) or unreadable, or when any row went
//!   to quarantine (the accepted rows are ingested all the same), so a typo
//!   in an input never passes silently; `statement error quarantined` tests
//!   a bad row on purpose.
//! * `BUILD AS OF YYYY-MM-DD`: `cdp_engine::build::build` with the embedded
//!   feature registry.
//!
//! `INGEST` completes with the number of rows accepted and `BUILD` with the
//! number of persons, so `statement count <n>` can check them.
//!
//! Any other text is SQL, run like `cdp_engine::query::run` after a fresh
//! `query::register_lake(Access::Masked)` (so the latest snapshots and
//! bronze parts are visible): `bronze.*`, `silver.*`, `ref.*`.
//!
//! ## Result rendering
//!
//! | arrow type                  | column type | text                                              |
//! |-----------------------------|-------------|---------------------------------------------------|
//! | any null                    |             | `NULL`                                            |
//! | `Int*`, `UInt*`             | `I`         | decimal digits                                    |
//! | `Float16/32/64`             | `R`         | rounded to 6 decimals, trailing zeros trimmed (`0.5`, `2`, `0.333333`) |
//! | `Decimal128/256`            | `R`         | as arrow prints it, with its scale (`12.30`)      |
//! | `Utf8*`                     | `T`         | the string; the empty string as `(empty)`         |
//! | everything else             | `T`         | arrow's display: `true`, dates `2026-01-31`, lists `[a, b]`, timestamps `2026-01-30T16:00:00Z` |
//!
//! Column types are checked strictly: `query IRT` must name exactly the
//! types of the result columns. Rows are compared after the default
//! whitespace normalisation of `sqllogictest` (cells joined by one space),
//! so write `ORDER BY` (or `rowsort`) for a deterministic order.
//!
//! ## Running
//!
//! `cargo test -p cdp-engine --test sql` runs every file, in parallel, and
//! reports every failing file with the line and SQL of its first failing
//! record. `SLT=<substring>` runs only the files whose name contains it.
//!
//! Records preceded by `onlyif known_bug` state the correct expectation for
//! an engine bug not fixed yet: they are skipped unless `SLT_KNOWN_BUGS` is
//! set (`SLT_KNOWN_BUGS=1 cargo test -p cdp-engine --test sql` shows them
//! failing). Drop the `onlyif` line together with the fix.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use cdp_core::lake::Lake;
use cdp_core::progress::Silent;
use cdp_core::time::BusinessCalendar;
use cdp_engine::features::FeatureRegistry;
use cdp_engine::tables::Access;
use cdp_engine::{Engine, EngineOptions, build, query};
use cdp_ingest::{IngestOptions, ingest};
use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float16Type, Float32Type, Float64Type, Schema};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::FutureExt;
use sqllogictest::{DBOutput, DefaultColumnType, Runner, strict_column_validator};

/// What the harness reports: a message naming what failed.
#[derive(Debug)]
struct HarnessError(String);

impl std::fmt::Display for HarnessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HarnessError {}

fn fail(what: impl std::fmt::Display) -> HarnessError {
    HarnessError(what.to_string())
}

/// One test case's lake, raw folders and sessions.
struct LakeDb {
    /// Keeps the temporary folder alive as long as the case runs.
    _root: Arc<tempfile::TempDir>,
    lake: Lake,
    /// Raw batch folders live under here: `raw/batch-001`, `raw/batch-002`, …
    raw: PathBuf,
    /// The batch the next `FILE` goes to.
    batch: usize,
    /// The session builds run in (it registers bronze with raw PII).
    builder: Engine,
    /// The session queries run in (masked bronze).
    reader: Engine,
}

impl LakeDb {
    fn new(root: Arc<tempfile::TempDir>) -> Result<Self, HarnessError> {
        let lake_dir = root.path().join("lake");
        let lake = Lake::open(&lake_dir.to_string_lossy()).map_err(fail)?;
        let options = EngineOptions {
            memory_limit: 256 << 20,
            target_partitions: 2,
            ..EngineOptions::default()
        };
        let engine = || Engine::new(lake.clone(), BusinessCalendar::default(), &options);
        let builder = engine().map_err(fail)?;
        let reader = engine().map_err(fail)?;
        let raw = root.path().join("raw");
        Ok(Self {
            _root: root,
            lake,
            raw,
            batch: 1,
            builder,
            reader,
        })
    }

    /// One record: a pseudo-statement or SQL.
    async fn record(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, HarnessError> {
        let (first, rest) = sql.split_once('\n').unwrap_or((sql, ""));
        let words: Vec<&str> = first.split_whitespace().collect();
        match words.as_slice() {
            ["FILE", name] => {
                self.write_file(name, rest)?;
                Ok(DBOutput::StatementComplete(rest.lines().count() as u64))
            }
            ["FILE", ..] => Err(fail("usage: FILE <name>, then the file's lines")),
            ["INGEST"] if rest.trim().is_empty() => {
                Ok(DBOutput::StatementComplete(self.ingest().await?))
            }
            ["BUILD", "AS", "OF", date] if rest.trim().is_empty() => {
                let as_of = NaiveDate::parse_from_str(date, "%Y-%m-%d")
                    .map_err(|e| fail(format!("BUILD AS OF {date}: {e}")))?;
                Ok(DBOutput::StatementComplete(self.build(as_of).await?))
            }
            ["INGEST", ..] | ["BUILD", ..] => {
                Err(fail("usage: INGEST | BUILD AS OF YYYY-MM-DD (alone)"))
            }
            _ => self.query(sql).await,
        }
    }

    fn batch_dir(&self) -> PathBuf {
        self.raw.join(format!("batch-{:03}", self.batch))
    }

    /// `FILE <name>` + lines: writes the raw file into the current batch.
    fn write_file(&self, name: &str, body: &str) -> Result<(), HarnessError> {
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(fail(format!("FILE needs a plain file name, got {name:?}")));
        }
        let dir = self.batch_dir();
        std::fs::create_dir_all(&dir).map_err(fail)?;
        let mut text = body.to_string();
        text.push('\n');
        std::fs::write(dir.join(name), text).map_err(fail)
    }

    /// `INGEST`: the current batch into the lake; later files go to a new batch.
    async fn ingest(&mut self) -> Result<u64, HarnessError> {
        let dir = self.batch_dir();
        std::fs::create_dir_all(&dir).map_err(fail)?;
        self.batch += 1;
        let report = ingest(
            &self.lake,
            &dir.to_string_lossy(),
            &IngestOptions::default(),
            &Silent,
        )
        .await
        .map_err(|e| fail(format!("ingest failed: {e}")))?;
        let mut problems = Vec::new();
        if !report.ignored.is_empty() {
            problems.push(format!(
                "files no source claims (check the names): {:?}",
                report.ignored
            ));
        }
        for u in &report.unreadable {
            problems.push(format!("unreadable {} ({}): {}", u.file, u.source, u.error));
        }
        for (source, r) in &report.sources {
            if r.counts.quarantined > 0 {
                problems.push(format!(
                    "{source}: {} rows quarantined, by reason {:?}",
                    r.counts.quarantined, r.reasons
                ));
            }
        }
        if !problems.is_empty() {
            return Err(fail(format!(
                "ingest: {}{}",
                problems.join("; "),
                quarantine_detail(&self.lake).await
            )));
        }
        Ok(report.sources.values().map(|r| r.counts.accepted).sum())
    }

    /// `BUILD AS OF D`.
    async fn build(&self, as_of: NaiveDate) -> Result<u64, HarnessError> {
        let registry = FeatureRegistry::embedded().map_err(fail)?;
        let report = build::build(&self.builder, &registry, as_of, &Silent)
            .await
            .map_err(|e| fail(format!("build as of {as_of} failed: {e}")))?;
        Ok(report.persons)
    }

    /// Plain SQL over the lake as it is now.
    async fn query(&self, sql: &str) -> Result<DBOutput<DefaultColumnType>, HarnessError> {
        query::register_lake(&self.reader, Access::Masked)
            .await
            .map_err(fail)?;
        // As `query::run`, keeping the planned schema: a result without rows
        // still has its column types.
        let frame = self.reader.context().sql(sql).await.map_err(fail)?;
        let schema: Schema = frame.schema().as_arrow().clone();
        let batches = frame.collect().await.map_err(fail)?;
        render(&schema, &batches)
    }
}

/// The quarantined rows' reasons and lines, to show next to an INGEST
/// failure (best effort: the quarantine is not a registered table).
async fn quarantine_detail(lake: &Lake) -> String {
    let Some(root) = lake.local_root() else {
        return String::new();
    };
    let dir = root.join("quarantine");
    if !dir.exists() {
        return String::new();
    }
    let Ok(engine) = Engine::new(
        lake.clone(),
        BusinessCalendar::default(),
        &EngineOptions::default(),
    ) else {
        return String::new();
    };
    let listing = async {
        let mut text = String::new();
        let mut sources: Vec<PathBuf> = std::fs::read_dir(&dir)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        sources.sort();
        for source in sources {
            let frame = engine
                .context()
                .read_parquet(
                    source.to_string_lossy().as_ref(),
                    datafusion::prelude::ParquetReadOptions::default(),
                )
                .await
                .ok()?;
            let frame = frame
                .select_columns(&["_file", "_line", "reason", "field", "detail", "text"])
                .ok()?;
            let batches = frame.collect().await.ok()?;
            let table = datafusion::arrow::util::pretty::pretty_format_batches(&batches).ok()?;
            text.push_str(&format!("{}:\n{table}\n", source.display()));
        }
        Some(text)
    };
    match listing.await {
        Some(text) => format!("\nquarantine:\n{text}"),
        None => String::new(),
    }
}

#[async_trait]
impl sqllogictest::AsyncDB for LakeDb {
    type Error = HarnessError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, HarnessError> {
        // A panic in the engine fails the record (naming its file, line and
        // SQL), not the whole run.
        match AssertUnwindSafe(self.record(sql)).catch_unwind().await {
            Ok(result) => result,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)");
                Err(fail(format!("panicked: {message}")))
            }
        }
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "cdp"
    }

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await;
    }
}

/// Record batches as sqllogictest rows (see the table in the module docs).
fn render(
    schema: &Schema,
    batches: &[RecordBatch],
) -> Result<DBOutput<DefaultColumnType>, HarnessError> {
    let types = schema
        .fields()
        .iter()
        .map(|f| column_type(f.data_type()))
        .collect();
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let columns: Vec<(&dyn Array, ArrayFormatter)> = batch
            .columns()
            .iter()
            .map(|c| {
                ArrayFormatter::try_new(c.as_ref(), &options)
                    .map(|f| (c.as_ref(), f))
                    .map_err(fail)
            })
            .collect::<Result<_, _>>()?;
        for row in 0..batch.num_rows() {
            rows.push(
                columns
                    .iter()
                    .map(|(array, formatter)| cell(*array, formatter, row))
                    .collect(),
            );
        }
    }
    Ok(DBOutput::Rows { types, rows })
}

fn column_type(ty: &DataType) -> DefaultColumnType {
    match ty {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => DefaultColumnType::Integer,
        DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => DefaultColumnType::FloatingPoint,
        _ => DefaultColumnType::Text,
    }
}

fn cell(array: &dyn Array, formatter: &ArrayFormatter, row: usize) -> String {
    if array.is_null(row) {
        return "NULL".into();
    }
    let float = match array.data_type() {
        DataType::Float64 => Some(array.as_primitive::<Float64Type>().value(row)),
        DataType::Float32 => Some(f64::from(array.as_primitive::<Float32Type>().value(row))),
        DataType::Float16 => Some(f64::from(array.as_primitive::<Float16Type>().value(row))),
        _ => None,
    };
    if let Some(x) = float {
        return float_text(x);
    }
    let text = formatter.value(row).to_string();
    match array.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View if text.is_empty() => {
            "(empty)".into()
        }
        _ => text,
    }
}

/// A float rounded to 6 decimals, trailing zeros trimmed: stable across
/// summation orders, readable in expectations.
fn float_text(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let text = format!("{x:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

/// The label of records that check a known engine bug (`onlyif known_bug`):
/// they run only with `SLT_KNOWN_BUGS` set, and fail until the bug is fixed.
const KNOWN_BUG: &str = "known_bug";

/// The `.slt` files to run, sorted, filtered by `$SLT` when set.
fn slt_files(dir: &Path) -> Vec<PathBuf> {
    let filter = std::env::var("SLT").unwrap_or_default();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("tests/slt exists")
        .map(|e| e.expect("readable tests/slt").path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(&filter))
        })
        .collect();
    files.sort();
    files
}

/// Runs one file against a fresh lake; the error names the file, the
/// record's line and its SQL.
async fn run_file(path: PathBuf) -> Result<(), String> {
    let root = Arc::new(tempfile::tempdir().map_err(|e| e.to_string())?);
    let mut runner = Runner::new(move || {
        let root = root.clone();
        async move { LakeDb::new(root) }
    });
    runner.with_column_validator(strict_column_validator);
    if std::env::var_os("SLT_KNOWN_BUGS").is_some() {
        runner.add_label(KNOWN_BUG);
    }
    runner
        .run_file_async(&path)
        .await
        .map_err(|e| e.display(false).to_string())
}

#[test]
fn slt() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let files = slt_files(&dir);
    assert!(!files.is_empty(), "no .slt files in {}", dir.display());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let results = runtime.block_on(async {
        let tasks: Vec<_> = files
            .iter()
            .map(|path| {
                let path = path.clone();
                tokio::spawn(async move {
                    let started = Instant::now();
                    let result = run_file(path).await;
                    (result, started.elapsed())
                })
            })
            .collect();
        let mut results = Vec::new();
        for (path, task) in files.iter().zip(tasks) {
            let outcome = match task.await {
                Ok(outcome) => outcome,
                Err(e) => (Err(format!("panicked: {e}")), Default::default()),
            };
            results.push((path.clone(), outcome));
        }
        results
    });
    let mut failures = Vec::new();
    for (path, (result, took)) in &results {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        match result {
            Ok(()) => eprintln!("slt {name} ... ok ({:.1}s)", took.as_secs_f64()),
            Err(e) => {
                eprintln!("slt {name} ... FAILED ({:.1}s)", took.as_secs_f64());
                failures.push(format!("--- {}\n{e}", path.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} slt files failed:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n")
    );
}

#[test]
fn floats_render_stably() {
    assert_eq!(float_text(0.5), "0.5");
    assert_eq!(float_text(2.0), "2");
    assert_eq!(float_text(1.0 / 3.0), "0.333333");
    assert_eq!(float_text(-0.0000001), "0");
    assert_eq!(float_text(0.1 + 0.2), "0.3");
    assert_eq!(float_text(f64::NAN), "NaN");
}
