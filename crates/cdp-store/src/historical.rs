//! Point-in-time historical retrieval: `cdp historical`.
//!
//! A data scientist brings an *entity file* (CSV or Parquet): one row per
//! training example, with a customer key and the instant the example is
//! about (an offer sent, a transaction authorised). Each row gets the
//! feature values the bank knew at that instant, and nothing it learnt
//! later:
//!
//! * **Snapshot.** The snapshot of the latest built day D whose cutoff
//!   (D+1 00:00 business time) is at or before the row's timestamp. A
//!   timestamp inside business day X therefore gets snapshot X−1 or older,
//!   never X (X's snapshot holds X's own events, some of them after the
//!   timestamp); a timestamp exactly at X's first instant is X−1's cutoff
//!   and gets X−1. A row before every snapshot gets none.
//! * **TTL.** A snapshot's values are as of its cutoff. A value is
//!   expired, and null, when the timestamp is `ttl_days` (of the feature's
//!   family) or more after that cutoff: a snapshot of day D serves business
//!   days D+1 … D+ttl_days. The row is kept.
//! * **Identity.** The key (`customer_id`, `device_id`, `card_id` or
//!   `unified_id`) is resolved through that same snapshot's
//!   `identity_map`, so it names the person those features describe. A
//!   device (or card) several persons used resolves to nobody: the row's
//!   features are null and its status says `shared_device`.
//! * **Rows** keep their order and every column of the entity file; three
//!   columns are added before the features: `unified_id` (unless the key
//!   is one), `features_as_of` (the snapshot's day) and `entity_status`
//!   (`ok`, `unknown_key`, `shared_device`, `shared_card`, `no_snapshot`,
//!   `no_timestamp`, `no_key`).
//!
//! ## How it scales
//!
//! The as-of step never compares a row with more than one snapshot. Every
//! row's timestamp becomes its business day (a binary search over the day
//! boundaries of the file's time range), and each business day maps to its
//! snapshot and the snapshot's age through a small table over the built
//! days (one entry per day in the range). What is left is two equi-joins
//! in DataFusion — entity rows with the identity map on (snapshot, key),
//! then with the feature snapshots on (snapshot, unified_id) — hash joins
//! whose build sides are the (small) snapshots the rows actually use, and
//! whose probe side streams the entity rows. Each row carries its row
//! number through the joins, and the results are put back in file order
//! by position (no sort), beside the entity file's own columns, which
//! never enter the joins. Work is linear in the entity rows.
//!
//! Timestamps: a timestamp with a time zone (Parquet `TIMESTAMP` with a
//! zone, RFC 3339 text with an offset) is that instant; one without
//! (`2026-01-15 10:00:00`, a naive Parquet timestamp) is wall-clock time in
//! the business time zone; a date is that business day.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use cdp_core::progress::Progress;
use cdp_core::time::BusinessCalendar;
use cdp_engine::Engine;
use cdp_engine::features::FeatureRegistry;
use cdp_engine::frame::{Table, TableFormat, sniff_delimiter};
use cdp_engine::query::OutputFormat;
use cdp_engine::tables::{self, LayerManifest};
use chrono::{DateTime, Days, NaiveDate};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Int32Array, RecordBatch, UInt64Array,
};
use datafusion::arrow::compute::{cast, interleave};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Field, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType, UInt64Type,
};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use serde::Serialize;
use tracing::instrument;

use crate::error::{Error, Result};

/// Rows per batch when reading an entity file.
const BATCH_ROWS: usize = 65_536;

/// Timestamp column names recognised without `--timestamp-column`, in
/// order of preference.
pub const TIMESTAMP_COLUMNS: [&str; 5] = [
    "event_timestamp",
    "event_time",
    "timestamp",
    "event_ts",
    "ts",
];

/// The columns retrieval adds after the entity file's own (`unified_id`
/// only when the key is not one).
pub const ADDED_COLUMNS: [&str; 3] = ["unified_id", "features_as_of", "entity_status"];

/// What kind of customer key the entity file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// A core-banking `customer_id` (identity map source `customers`).
    CustomerId,
    /// A `device_id` of the app and web telemetry (`device_events`).
    DeviceId,
    /// A `card_id` of the card switch (`transactions`).
    CardId,
    /// A `unified_id`: the person itself.
    UnifiedId,
}

impl KeyKind {
    /// Every kind, in the order key columns are looked for.
    pub const ALL: [KeyKind; 4] = [
        KeyKind::CustomerId,
        KeyKind::DeviceId,
        KeyKind::CardId,
        KeyKind::UnifiedId,
    ];

    /// The column name this kind has in the lake.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::CustomerId => "customer_id",
            KeyKind::DeviceId => "device_id",
            KeyKind::CardId => "card_id",
            KeyKind::UnifiedId => "unified_id",
        }
    }

    /// The kind called `name` (`customer_id`, …).
    pub fn parse(name: &str) -> Option<KeyKind> {
        KeyKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The `silver.identity_map` source keys of this kind come from
    /// (`None` for unified_ids).
    fn source(self) -> Option<&'static str> {
        match self {
            KeyKind::CustomerId => Some("customers"),
            KeyKind::DeviceId => Some("device_events"),
            KeyKind::CardId => Some("transactions"),
            KeyKind::UnifiedId => None,
        }
    }
}

/// What to retrieve, and how to read the entity file.
#[derive(Debug, Clone, Default)]
pub struct Retrieval {
    /// Declared feature names, in output order.
    pub features: Vec<String>,
    /// The key column (default: the one column named like a [`KeyKind`]).
    pub key_column: Option<String>,
    /// The key's kind (default: the key column's name).
    pub key_kind: Option<KeyKind>,
    /// The timestamp column (default: one of [`TIMESTAMP_COLUMNS`], else
    /// the one column of a timestamp or date type).
    pub timestamp_column: Option<String>,
}

/// What retrieval found, without timings.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Entity rows (= output rows).
    pub rows: u64,
    /// The key column and its kind.
    pub key_column: String,
    /// Its kind.
    pub key_kind: Option<KeyKind>,
    /// The timestamp column.
    pub timestamp_column: String,
    /// The features, in output order.
    pub features: Vec<String>,
    /// Rows per snapshot used.
    pub snapshots: BTreeMap<NaiveDate, u64>,
    /// Rows per `entity_status`.
    pub status: BTreeMap<String, u64>,
    /// Per feature, values nulled because the snapshot was older than its TTL.
    pub expired: BTreeMap<String, u64>,
}

/// The retrieved rows: the entity file's batches with the added columns
/// and features, in file order.
#[derive(Debug, Clone)]
pub struct Retrieved {
    /// The output columns.
    pub schema: SchemaRef,
    /// The rows, in entity-file order.
    pub batches: Vec<RecordBatch>,
    /// What was found.
    pub summary: Summary,
    /// Seconds per stage (`prepare`, `join`, `assemble`).
    pub seconds: BTreeMap<String, f64>,
}

/// `cdp historical`: an entity file in, a training set out.
#[derive(Debug, Clone)]
pub struct HistoricalRequest {
    /// The entity file (CSV or Parquet, by extension).
    pub entities: PathBuf,
    /// The output file (CSV or Parquet, by extension).
    pub out: PathBuf,
    /// The feature service the features came from, for the report.
    pub service: Option<String>,
    /// What to retrieve.
    pub retrieval: Retrieval,
}

/// What `cdp historical` did.
#[derive(Debug, Clone, Serialize)]
pub struct HistoricalReport {
    /// The output file.
    pub out: PathBuf,
    /// The feature service, when one was asked for.
    pub service: Option<String>,
    /// What was found.
    #[serde(flatten)]
    pub summary: Summary,
    /// Seconds per stage (`read`, `prepare`, `join`, `assemble`, `write`,
    /// `total`).
    pub seconds: BTreeMap<String, f64>,
}

/// Reads the entity file, retrieves, writes the output (see the module docs).
#[instrument(skip_all, fields(entities = %request.entities.display(), out = %request.out.display()))]
pub async fn historical(
    engine: &Engine,
    registry: &FeatureRegistry,
    request: &HistoricalRequest,
    progress: &dyn Progress,
) -> Result<HistoricalReport> {
    let started = Instant::now();
    let out_format = output_format(&request.out)?;
    progress.begin("reading entities", 0);
    let table = read_entities(&request.entities, &request.retrieval)?;
    progress.finish();
    let read = started.elapsed().as_secs_f64();
    tracing::info!(rows = table.n_rows(), seconds = read, "entity file read");

    progress.begin("point-in-time join", 0);
    let retrieved = retrieve(
        engine,
        registry,
        &table,
        &request.retrieval,
        &request.entities,
    )
    .await?;
    progress.finish();

    let writing = Instant::now();
    progress.begin("writing", retrieved.summary.rows);
    write_output(
        &request.out,
        out_format,
        &retrieved.schema,
        &retrieved.batches,
        progress,
    )?;
    progress.finish();
    let mut seconds = retrieved.seconds;
    seconds.insert("read".into(), read);
    seconds.insert("write".into(), writing.elapsed().as_secs_f64());
    seconds.insert("total".into(), started.elapsed().as_secs_f64());
    Ok(HistoricalReport {
        out: request.out.clone(),
        service: request.service.clone(),
        summary: retrieved.summary,
        seconds,
    })
}

fn output_format(path: &Path) -> Result<OutputFormat> {
    match TableFormat::of(path) {
        Ok(TableFormat::Csv) => Ok(OutputFormat::Csv),
        Ok(TableFormat::Parquet) => Ok(OutputFormat::Parquet),
        Err(_) => Err(Error::Output {
            path: path.into(),
            reason: "the output must end in .csv or .parquet".into(),
        }),
    }
}

/// Reads an entity file (CSV or Parquet, by extension) in file order. In a
/// CSV file the key and timestamp columns are read as text (a key such as
/// `00123` keeps its zeros; a timestamp keeps its offset), the other
/// columns as inferred from every row.
#[instrument(skip_all, fields(path = %path.display()))]
pub fn read_entities(path: &Path, retrieval: &Retrieval) -> Result<Table> {
    let fail = |reason: String| Error::EntityRead {
        path: path.into(),
        reason,
    };
    let format = TableFormat::of(path)
        .map_err(|_| fail("the entity file must end in .csv or .parquet".into()))?;
    let mut file = File::open(path).map_err(|e| fail(e.to_string()))?;
    match format {
        TableFormat::Parquet => {
            let builder =
                ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| fail(e.to_string()))?;
            let schema = builder.schema().clone();
            let batches = builder
                .with_batch_size(BATCH_ROWS)
                .build()
                .map_err(|e| fail(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| fail(e.to_string()))?;
            Ok(Table { schema, batches })
        }
        TableFormat::Csv => {
            use datafusion::arrow::csv::ReaderBuilder;
            use datafusion::arrow::csv::reader::Format;

            let mut header = String::new();
            BufReader::new(&mut file)
                .read_line(&mut header)
                .map_err(|e| fail(e.to_string()))?;
            if header.trim().is_empty() {
                return Err(fail("the file is empty: a CSV needs a header row".into()));
            }
            let missing =
                regex::Regex::new(r"^(|NA|N/A|NaN|nan|null|NULL|None)$").expect("a valid regex");
            let format = Format::default()
                .with_header(true)
                .with_delimiter(sniff_delimiter(&header))
                .with_null_regex(missing);
            file.seek(SeekFrom::Start(0))
                .map_err(|e| fail(e.to_string()))?;
            let (inferred, _) = format
                .infer_schema(BufReader::new(&mut file), None)
                .map_err(|e| fail(e.to_string()))?;
            let columns = choose_columns(&inferred, retrieval, path)?;
            let fields: Vec<Field> = inferred
                .fields()
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    if i == columns.key || i == columns.timestamp {
                        Field::new(f.name(), DataType::Utf8, true)
                    } else {
                        f.as_ref().clone()
                    }
                })
                .collect();
            let schema = Arc::new(Schema::new(fields));
            file.seek(SeekFrom::Start(0))
                .map_err(|e| fail(e.to_string()))?;
            let batches = ReaderBuilder::new(schema.clone())
                .with_format(format)
                .with_batch_size(BATCH_ROWS)
                .build(BufReader::new(file))
                .map_err(|e| fail(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| fail(e.to_string()))?;
            Ok(Table { schema, batches })
        }
    }
}

/// The entity file's key and timestamp columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Columns {
    key: usize,
    kind: KeyKind,
    timestamp: usize,
}

fn choose_columns(schema: &Schema, retrieval: &Retrieval, path: &Path) -> Result<Columns> {
    let bad = |reason: String| Error::EntityColumn {
        path: path.into(),
        reason,
    };
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let index = |name: &str, what: &str| {
        names.iter().position(|n| *n == name).ok_or_else(|| {
            bad(format!(
                "no {what} column {name:?}; the columns are {}",
                names.join(", ")
            ))
        })
    };
    let (key, kind) = match &retrieval.key_column {
        Some(name) => {
            let key = index(name, "key")?;
            let kind = retrieval.key_kind.or(KeyKind::parse(name)).ok_or_else(|| {
                bad(format!(
                    "key column {name:?} is not named like a key kind; say which with \
                     --key-kind customer_id|device_id|card_id|unified_id"
                ))
            })?;
            (key, kind)
        }
        None => {
            let found: Vec<(usize, KeyKind)> = KeyKind::ALL
                .into_iter()
                .filter_map(|k| names.iter().position(|n| *n == k.name()).map(|i| (i, k)))
                .collect();
            match found.as_slice() {
                [(i, k)] => (*i, retrieval.key_kind.unwrap_or(*k)),
                [] => {
                    return Err(bad(format!(
                        "no key column: name one customer_id, device_id, card_id or unified_id, \
                         or pick one with --key-column (the columns are {})",
                        names.join(", ")
                    )));
                }
                several => {
                    return Err(bad(format!(
                        "several key columns ({}); pick one with --key-column",
                        several
                            .iter()
                            .map(|(i, _)| names[*i])
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
        }
    };
    let timestamp = match &retrieval.timestamp_column {
        Some(name) => index(name, "timestamp")?,
        None => {
            if let Some(i) = TIMESTAMP_COLUMNS
                .iter()
                .find_map(|c| names.iter().position(|n| n == c))
            {
                i
            } else {
                let typed: Vec<usize> = schema
                    .fields()
                    .iter()
                    .enumerate()
                    .filter(|(i, f)| {
                        *i != key
                            && matches!(
                                f.data_type(),
                                DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
                            )
                    })
                    .map(|(i, _)| i)
                    .collect();
                match typed.as_slice() {
                    [i] => *i,
                    _ => {
                        return Err(bad(format!(
                            "no timestamp column: name it event_timestamp (or {}), or pick it \
                             with --timestamp-column (the columns are {})",
                            TIMESTAMP_COLUMNS[1..].join(", "),
                            names.join(", ")
                        )));
                    }
                }
            }
        }
    };
    if timestamp == key {
        return Err(bad(format!(
            "column {:?} cannot be both the key and the timestamp",
            names[key]
        )));
    }
    Ok(Columns {
        key,
        kind,
        timestamp,
    })
}

/// Retrieves the features of every row of `table` (see the module docs);
/// `path` names the entity file in errors.
#[instrument(skip_all, fields(rows = table.n_rows(), features = retrieval.features.len()))]
pub async fn retrieve(
    engine: &Engine,
    registry: &FeatureRegistry,
    table: &Table,
    retrieval: &Retrieval,
    path: &Path,
) -> Result<Retrieved> {
    let started = Instant::now();
    let columns = choose_columns(&table.schema, retrieval, path)?;
    let features = check_features(registry, &retrieval.features)?;
    let adds_unified = columns.kind != KeyKind::UnifiedId;
    for name in ADDED_COLUMNS
        .iter()
        .filter(|c| adds_unified || **c != "unified_id")
        .copied()
        .chain(features.iter().map(|(f, _)| f.as_str()))
    {
        if table.schema.index_of(name).is_ok() {
            return Err(Error::EntityColumn {
                path: path.into(),
                reason: format!(
                    "it has a column {name:?}, which the output adds; rename or drop it"
                ),
            });
        }
    }

    let built = built_snapshots(engine).await?;
    let prepared = prepare(engine.calendar(), table, columns, &built, path)?;
    let prepare_seconds = started.elapsed().as_secs_f64();

    let joining = Instant::now();
    let joined = join(engine, &prepared, columns.kind, &features, &built).await?;
    let join_seconds = joining.elapsed().as_secs_f64();

    let assembling = Instant::now();
    let (schema, batches) = assemble(table, &prepared, &joined)?;
    let summary = summarise(table, columns, &features, &prepared, &schema, &batches);
    let mut seconds = BTreeMap::new();
    seconds.insert("prepare".into(), prepare_seconds);
    seconds.insert("join".into(), join_seconds);
    seconds.insert("assemble".into(), assembling.elapsed().as_secs_f64());
    Ok(Retrieved {
        schema,
        batches,
        summary,
        seconds,
    })
}

/// The requested features with their TTLs, checked: at least one, each
/// declared, none twice.
fn check_features(registry: &FeatureRegistry, names: &[String]) -> Result<Vec<(String, u32)>> {
    if names.is_empty() {
        return Err(Error::Request {
            reason: "no features asked for: give --features a,b,c or --service NAME".into(),
        });
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        if !seen.insert(name.as_str()) {
            return Err(Error::Request {
                reason: format!("feature {name} is asked for twice"),
            });
        }
        let feature = registry.feature(name).map_err(|_| Error::Request {
            reason: format!("unknown feature {name:?}; `cdp features list` shows them all"),
        })?;
        out.push((feature.name.clone(), feature.ttl_days));
    }
    Ok(out)
}

/// A built snapshot: its day and the files of its identity map and features.
#[derive(Debug, Clone)]
struct Built {
    day: NaiveDate,
    identity_map: Vec<String>,
    features: Vec<String>,
}

/// The silver snapshots that have both an identity map and features, oldest first.
async fn built_snapshots(engine: &Engine) -> Result<Vec<Built>> {
    let manifest = engine
        .lake()
        .read_manifest::<LayerManifest>("silver")
        .await?
        .map(|m| m.body)
        .unwrap_or_default();
    let built: Vec<Built> = manifest
        .snapshots
        .iter()
        .filter_map(|(day, s)| {
            Some(Built {
                day: *day,
                identity_map: s.tables.get("identity_map")?.files.clone(),
                features: s.tables.get("features")?.files.clone(),
            })
        })
        .collect();
    if built.is_empty() {
        return Err(Error::NoSnapshot {
            lake: engine.lake().uri().to_string(),
        });
    }
    Ok(built)
}

/// Days since 1970-01-01 (Arrow's `Date32`).
fn epoch_days(day: NaiveDate) -> i32 {
    (day - NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date")).num_days() as i32
}

fn from_epoch_days(days: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .expect("a valid date")
        .checked_add_signed(chrono::Duration::days(i64::from(days)))
        .unwrap_or(NaiveDate::MAX)
}

/// The entity rows as the joins see them, chunk by chunk like the file.
struct Prepared {
    /// Per chunk: `__row`, `__key`, `__day`, `__snapshot`, `__age`.
    chunks: Vec<RecordBatch>,
    /// Snapshot age in days per row (`i32::MIN`: no snapshot).
    ages: Vec<i32>,
    /// Rows per snapshot used.
    used: BTreeMap<NaiveDate, u64>,
}

/// The schema of [`Prepared::chunks`].
fn prepared_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("__row", DataType::UInt64, false),
        Field::new("__key", DataType::Utf8, true),
        Field::new("__day", DataType::Date32, true),
        Field::new("__snapshot", DataType::Date32, true),
        Field::new("__age", DataType::Int32, true),
    ]))
}

/// Keys as text, timestamps as business days, and each day's snapshot and
/// the snapshot's age, for every row.
fn prepare(
    calendar: &BusinessCalendar,
    table: &Table,
    columns: Columns,
    built: &[Built],
    path: &Path,
) -> Result<Prepared> {
    let bad = |reason: String| Error::EntityColumn {
        path: path.into(),
        reason,
    };
    let ts_name = table.schema.field(columns.timestamp).name().clone();
    let key_name = table.schema.field(columns.key).name().clone();
    // 1. Every timestamp as a business day.
    let mut days: Vec<Date32Array> = Vec::with_capacity(table.batches.len());
    let ts_type = table.schema.field(columns.timestamp).data_type().clone();
    match ts_type {
        DataType::Date32 | DataType::Date64 => {
            for batch in &table.batches {
                let d = cast(batch.column(columns.timestamp), &DataType::Date32)
                    .map_err(|e| bad(format!("timestamp column {ts_name:?}: {e}")))?;
                days.push(d.as_primitive::<Date32Type>().clone());
            }
        }
        DataType::Timestamp(..) | DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let zoned =
                DataType::Timestamp(TimeUnit::Microsecond, Some(calendar.timezone().into()));
            let mut instants = Vec::with_capacity(table.batches.len());
            for (chunk, batch) in table.batches.iter().enumerate() {
                let column = batch.column(columns.timestamp);
                let column = if matches!(column.data_type(), DataType::Timestamp(..)) {
                    column.clone()
                } else {
                    cast(column, &DataType::Utf8)
                        .map_err(|e| bad(format!("timestamp column {ts_name:?}: {e}")))?
                };
                let values = cast(&column, &zoned).map_err(|e| {
                    bad(format!(
                        "timestamp column {ts_name:?} (rows {}…): {e}",
                        chunk * BATCH_ROWS + 1
                    ))
                })?;
                instants.push(values.as_primitive::<TimestampMicrosecondType>().clone());
            }
            days = business_days(calendar, &instants)
                .map_err(|e| bad(format!("timestamp column {ts_name:?}: {e}")))?;
        }
        other => {
            return Err(bad(format!(
                "timestamp column {ts_name:?} is {other}: it must be a timestamp, a date or text"
            )));
        }
    }

    // 2. Each business day in range: its snapshot and the snapshot's age.
    let (lo, hi) = days
        .iter()
        .flat_map(|d| d.iter().flatten())
        .fold((i32::MAX, i32::MIN), |(lo, hi), d| (lo.min(d), hi.max(d)));
    let built_days: Vec<i32> = built.iter().map(|b| epoch_days(b.day)).collect();
    let lookup: Vec<Option<i32>> = if lo > hi {
        Vec::new()
    } else {
        (lo..=hi)
            .map(|day| {
                // the latest built day before `day`: its cutoff is at or
                // before every instant of `day`
                let n = built_days.partition_point(|&b| b < day);
                (n > 0).then(|| built_days[n - 1])
            })
            .collect()
    };

    // 3. The join input, chunk by chunk.
    let schema = prepared_schema();
    let mut chunks = Vec::with_capacity(table.batches.len());
    let mut ages = Vec::with_capacity(table.n_rows());
    let mut used: BTreeMap<i32, u64> = BTreeMap::new();
    let mut row = 0u64;
    for (batch, day) in table.batches.iter().zip(&days) {
        let n = batch.num_rows();
        let key = cast(batch.column(columns.key), &DataType::Utf8)
            .map_err(|e| bad(format!("key column {key_name:?}: {e}")))?;
        let mut snapshot = Vec::with_capacity(n);
        let mut age = Vec::with_capacity(n);
        for d in day.iter() {
            let s = d.and_then(|d| lookup[(d - lo) as usize]);
            match (d, s) {
                (Some(d), Some(s)) => {
                    *used.entry(s).or_default() += 1;
                    snapshot.push(Some(s));
                    age.push(Some(d - s));
                    ages.push(d - s);
                }
                _ => {
                    snapshot.push(None);
                    age.push(None);
                    ages.push(i32::MIN);
                }
            }
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from_iter_values(row..row + n as u64)),
            key,
            Arc::new(day.clone()),
            Arc::new(Date32Array::from(snapshot)),
            Arc::new(Int32Array::from(age)),
        ];
        chunks.push(
            RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::Join {
                what: "preparing entity rows".into(),
                error: Box::new(e.into()),
            })?,
        );
        row += n as u64;
    }
    Ok(Prepared {
        chunks,
        ages,
        used: used
            .into_iter()
            .map(|(d, n)| (from_epoch_days(d), n))
            .collect(),
    })
}

/// The business day of every instant: a binary search over the first
/// instants of the business days the column spans (DST-safe, as the
/// calendar defines days).
fn business_days(
    calendar: &BusinessCalendar,
    instants: &[datafusion::arrow::array::TimestampMicrosecondArray],
) -> std::result::Result<Vec<Date32Array>, String> {
    let (lo, hi) = instants
        .iter()
        .flat_map(|a| a.iter().flatten())
        .fold((i64::MAX, i64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return Ok(instants
            .iter()
            .map(|a| Date32Array::from(vec![None; a.len()]))
            .collect());
    }
    let instant = |micros: i64| {
        DateTime::from_timestamp_micros(micros)
            .ok_or_else(|| format!("timestamp {micros} µs is out of range"))
    };
    let first = calendar.business_date(instant(lo)?);
    let last = calendar.business_date(instant(hi)?);
    let span = (last - first).num_days();
    if span > 200 * 366 {
        return Err(format!(
            "timestamps span {first} to {last}; more than 200 years is not a training set"
        ));
    }
    // starts[i] = the first instant of business day first + i; one past the end.
    let starts: Vec<i64> = (0..=span + 1)
        .map(|i| {
            calendar
                .day_start(first + Days::new(i as u64))
                .timestamp_micros()
        })
        .collect();
    let base = epoch_days(first);
    Ok(instants
        .iter()
        .map(|a| {
            a.iter()
                .map(|v| v.map(|v| base + starts.partition_point(|&s| s <= v) as i32 - 1))
                .collect()
        })
        .collect())
}

/// The rows the joins return: `__row` and the added columns and features,
/// in no particular order.
struct Joined {
    batches: Vec<RecordBatch>,
}

/// Quotes an identifier for SQL.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

const ENTITIES: &str = "historical_entities";
const IDENTITY: &str = "historical_identity_map";
const FEATURES: &str = "historical_features";

/// Wraps a DataFusion error of the join's step `what`.
fn join_error(what: &'static str) -> impl FnOnce(datafusion::error::DataFusionError) -> Error {
    move |error| Error::Join {
        what: what.to_string(),
        error: Box::new(error),
    }
}

/// The two equi-joins in DataFusion.
async fn join(
    engine: &Engine,
    prepared: &Prepared,
    kind: KeyKind,
    features: &[(String, u32)],
    built: &[Built],
) -> Result<Joined> {
    // The snapshots the rows use, newest first (the first file gives the
    // table's schema); the newest built when none is used, so the tables
    // still have their columns.
    let mut used: Vec<&Built> = built
        .iter()
        .rev()
        .filter(|b| prepared.used.contains_key(&b.day))
        .collect();
    if used.is_empty() {
        used.push(built.last().expect("at least one snapshot"));
    }
    let files = |pick: fn(&Built) -> &Vec<String>| -> Vec<String> {
        used.iter().flat_map(|b| pick(b).iter().cloned()).collect()
    };
    let feature_table =
        tables::listing_table(engine, &files(|b| &b.features), "silver.features").await?;
    let available = feature_table.schema();
    for (name, _) in features {
        if available.index_of(name).is_err() {
            return Err(Error::MissingFeature {
                feature: name.clone(),
                as_of: used[0].day,
            });
        }
    }
    tables::register(engine, FEATURES, feature_table)?;
    let identity_table =
        tables::listing_table(engine, &files(|b| &b.identity_map), "silver.identity_map").await?;
    tables::register(engine, IDENTITY, identity_table)?;

    // The entity rows, spread over the engine's partitions.
    let partitions = engine.context().state().config().target_partitions().max(1);
    let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); partitions];
    for (i, chunk) in prepared.chunks.iter().enumerate() {
        parts[i % partitions].push(chunk.clone());
    }
    // in memory here; on a cluster a Parquet file in the lake's scratch
    // space, removed with it
    let scratch = engine.scratch()?;
    let entities =
        tables::scratch_table(engine, &scratch, ENTITIES, prepared_schema(), parts).await;
    let batches = match entities {
        Ok(entities) => run_join(engine, entities, kind, features).await,
        Err(e) => Err(e.into()),
    };
    scratch.remove().await?;
    Ok(Joined { batches: batches? })
}

/// Runs the point-in-time join over the registered feature and identity
/// tables and `entities`, then drops the work tables.
async fn run_join(
    engine: &Engine,
    entities: Arc<dyn datafusion::catalog::TableProvider>,
    kind: KeyKind,
    features: &[(String, u32)],
) -> Result<Vec<RecordBatch>> {
    tables::register(engine, ENTITIES, entities)?;

    let sql = join_sql(kind, features);
    tracing::debug!(%sql, "point-in-time join");
    let frame = engine
        .context()
        .sql(&sql)
        .await
        .map_err(join_error("cannot plan the join"))?;
    let batches = frame
        .collect()
        .await
        .map_err(join_error("cannot run the join"));
    for name in [ENTITIES, IDENTITY, FEATURES] {
        engine
            .context()
            .deregister_table(name)
            .map_err(join_error("cannot drop a work table"))?;
    }
    batches
}

/// The join of the entity rows with the identity map and the feature
/// snapshots: `__row`, [`ADDED_COLUMNS`], then the features, each null
/// when its snapshot is older than its TTL.
fn join_sql(kind: KeyKind, features: &[(String, u32)]) -> String {
    let values = features
        .iter()
        .map(|(name, ttl)| {
            format!(
                "CASE WHEN e.__age <= {ttl} THEN f.{n} END AS {n}",
                n = ident(name)
            )
        })
        .collect::<Vec<_>>()
        .join(",\n       ");
    let status_head = "CASE WHEN e.__day IS NULL THEN 'no_timestamp'
            WHEN e.__snapshot IS NULL THEN 'no_snapshot'
            WHEN e.__key IS NULL THEN 'no_key'";
    match kind.source() {
        // A key several persons used (a family tablet, a shared card)
        // resolves to nobody: its rows keep the rule that flagged it.
        Some(source) => format!(
            "WITH ids AS (
  SELECT as_of, source_key,
         CASE WHEN COUNT(DISTINCT unified_id) = 1 AND MIN(matched_by) NOT LIKE 'shared%'
              THEN MIN(unified_id) END AS unified_id,
         MIN(matched_by) AS matched_by
  FROM {IDENTITY}
  WHERE source = '{source}'
  GROUP BY as_of, source_key
)
SELECT e.__row,
       i.unified_id AS unified_id,
       e.__snapshot AS features_as_of,
       {status_head}
            WHEN i.matched_by IS NULL THEN 'unknown_key'
            WHEN i.unified_id IS NULL THEN i.matched_by
            WHEN f.unified_id IS NULL THEN 'unknown_key'
            ELSE 'ok' END AS entity_status,
       {values}
FROM {ENTITIES} e
LEFT JOIN ids i ON i.as_of = e.__snapshot AND i.source_key = e.__key
LEFT JOIN {FEATURES} f ON f.as_of = e.__snapshot AND f.unified_id = i.unified_id"
        ),
        None => format!(
            "SELECT e.__row,
       e.__snapshot AS features_as_of,
       {status_head}
            WHEN f.unified_id IS NULL THEN 'unknown_key'
            ELSE 'ok' END AS entity_status,
       {values}
FROM {ENTITIES} e
LEFT JOIN {FEATURES} f ON f.as_of = e.__snapshot AND f.unified_id = e.__key"
        ),
    }
}

/// The entity file's chunks with the joined columns beside them, each row
/// of the join put back at its `__row`.
fn assemble(
    table: &Table,
    prepared: &Prepared,
    joined: &Joined,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let fail = |what: String| Error::Join {
        what,
        error: Box::new(datafusion::error::DataFusionError::Internal(
            "row positions".into(),
        )),
    };
    let n = prepared.ages.len();
    let mut position: Vec<(usize, usize)> = vec![(usize::MAX, 0); n];
    let mut seen = 0usize;
    for (b, batch) in joined.batches.iter().enumerate() {
        let rows = batch.column(0).as_primitive::<UInt64Type>();
        for (i, row) in rows.values().iter().enumerate() {
            let slot = &mut position[*row as usize];
            if slot.0 != usize::MAX {
                return Err(fail(format!(
                    "entity row {} matched twice: a snapshot holds a key twice",
                    row + 1
                )));
            }
            *slot = (b, i);
            seen += 1;
        }
    }
    if seen != n {
        return Err(fail(format!("{} of {n} entity rows came back", seen)));
    }
    let added: Vec<Field> = match joined.batches.first() {
        Some(batch) => batch.schema().fields()[1..]
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect(),
        None => Vec::new(),
    };
    let mut fields: Vec<Field> = table
        .schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.extend(added.iter().cloned());
    let schema = Arc::new(Schema::new(fields));
    if joined.batches.is_empty() {
        // No rows: the added columns' types come from an empty join.
        return Ok((schema, Vec::new()));
    }
    let width = added.len();
    let sources: Vec<Vec<&dyn Array>> = (0..width)
        .map(|c| {
            joined
                .batches
                .iter()
                .map(|b| b.column(c + 1).as_ref())
                .collect()
        })
        .collect();
    let mut out = Vec::with_capacity(table.batches.len());
    let mut start = 0;
    for batch in &table.batches {
        let rows = &position[start..start + batch.num_rows()];
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        for source in &sources {
            columns
                .push(interleave(source, rows).map_err(|e| fail(format!("reordering rows: {e}")))?);
        }
        out.push(
            RecordBatch::try_new(schema.clone(), columns)
                .map_err(|e| fail(format!("assembling rows: {e}")))?,
        );
        start += batch.num_rows();
    }
    Ok((schema, out))
}

fn summarise(
    table: &Table,
    columns: Columns,
    features: &[(String, u32)],
    prepared: &Prepared,
    schema: &Schema,
    batches: &[RecordBatch],
) -> Summary {
    let mut status: BTreeMap<String, u64> = BTreeMap::new();
    let mut expired: BTreeMap<String, u64> = features.iter().map(|(f, _)| (f.clone(), 0)).collect();
    if let Ok(index) = schema.index_of("entity_status") {
        let mut row = 0usize;
        for batch in batches {
            let Ok(column) = cast(batch.column(index), &DataType::Utf8) else {
                continue;
            };
            for value in column.as_string::<i32>().iter() {
                let value = value.unwrap_or("unknown");
                if value == "ok" {
                    let age = prepared.ages[row];
                    for (feature, ttl) in features {
                        if age > *ttl as i32 {
                            *expired.get_mut(feature).expect("every feature counted") += 1;
                        }
                    }
                }
                match status.get_mut(value) {
                    Some(n) => *n += 1,
                    None => {
                        status.insert(value.to_string(), 1);
                    }
                }
                row += 1;
            }
        }
    }
    Summary {
        rows: table.n_rows() as u64,
        key_column: table.schema.field(columns.key).name().clone(),
        key_kind: Some(columns.kind),
        timestamp_column: table.schema.field(columns.timestamp).name().clone(),
        features: features.iter().map(|(f, _)| f.clone()).collect(),
        snapshots: prepared.used.clone(),
        status,
        expired,
    }
}

/// Writes the rows as CSV or Parquet (zstd) to a temporary name beside
/// `path`, then renames it: a reader never sees half a file.
fn write_output(
    path: &Path,
    format: OutputFormat,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    progress: &dyn Progress,
) -> Result<()> {
    let fail = |reason: String| Error::Output {
        path: path.into(),
        reason,
    };
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    let tmp = path.with_file_name(name);
    let empty = [RecordBatch::new_empty(schema.clone())];
    let batches = if batches.is_empty() {
        &empty[..]
    } else {
        batches
    };
    let written = (|| -> std::result::Result<(), String> {
        let file = File::create(&tmp).map_err(|e| e.to_string())?;
        match format {
            OutputFormat::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::default()))
                    .build();
                let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props))
                    .map_err(|e| e.to_string())?;
                for batch in batches {
                    writer.write(batch).map_err(|e| e.to_string())?;
                    progress.advance(batch.num_rows() as u64);
                }
                writer.close().map_err(|e| e.to_string())?;
            }
            _ => {
                let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
                cdp_engine::query::write(batches, OutputFormat::Csv, &mut out)
                    .map_err(|e| e.to_string())?;
                out.flush().map_err(|e| e.to_string())?;
                progress.advance(batches.iter().map(|b| b.num_rows() as u64).sum());
            }
        }
        Ok(())
    })();
    if let Err(reason) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(reason));
    }
    std::fs::rename(&tmp, path).map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(fields: &[(&str, DataType)]) -> Schema {
        Schema::new(
            fields
                .iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn key_and_timestamp_columns_are_found_by_name_or_type() {
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let utf8 = DataType::Utf8;
        // (columns, --key-column, --timestamp-column, expected (key, kind, ts) or error text)
        type Case<'a> = (
            Vec<(&'a str, DataType)>,
            Option<&'a str>,
            Option<&'a str>,
            std::result::Result<(usize, KeyKind, usize), &'a str>,
        );
        let cases: Vec<Case> = vec![
            (
                vec![
                    ("customer_id", utf8.clone()),
                    ("event_timestamp", ts.clone()),
                ],
                None,
                None,
                Ok((0, KeyKind::CustomerId, 1)),
            ),
            (
                vec![
                    ("label", utf8.clone()),
                    ("device_id", utf8.clone()),
                    ("when", ts.clone()),
                ],
                None,
                None,
                Ok((1, KeyKind::DeviceId, 2)),
            ),
            (
                vec![("unified_id", utf8.clone()), ("ts", utf8.clone())],
                None,
                None,
                Ok((0, KeyKind::UnifiedId, 1)),
            ),
            (
                vec![
                    ("customer_id", utf8.clone()),
                    ("device_id", utf8.clone()),
                    ("ts", ts.clone()),
                ],
                None,
                None,
                Err("several key columns (customer_id, device_id)"),
            ),
            (
                vec![
                    ("customer_id", utf8.clone()),
                    ("device_id", utf8.clone()),
                    ("ts", ts.clone()),
                ],
                Some("device_id"),
                None,
                Ok((1, KeyKind::DeviceId, 2)),
            ),
            (
                vec![("cust", utf8.clone()), ("ts", ts.clone())],
                Some("cust"),
                None,
                Err("--key-kind"),
            ),
            (
                vec![("id", utf8.clone()), ("ts", ts.clone())],
                None,
                None,
                Err("no key column"),
            ),
            (
                vec![("customer_id", utf8.clone()), ("note", utf8.clone())],
                None,
                None,
                Err("no timestamp column"),
            ),
            (
                vec![
                    ("customer_id", utf8.clone()),
                    ("a", ts.clone()),
                    ("b", ts.clone()),
                ],
                None,
                None,
                Err("no timestamp column"),
            ),
            (
                vec![
                    ("customer_id", utf8.clone()),
                    ("a", ts.clone()),
                    ("b", ts.clone()),
                ],
                None,
                Some("b"),
                Ok((0, KeyKind::CustomerId, 2)),
            ),
            (
                vec![("customer_id", utf8.clone()), ("ts", ts.clone())],
                None,
                Some("when"),
                Err("no timestamp column \"when\""),
            ),
        ];
        for (fields, key, timestamp, expected) in cases {
            let retrieval = Retrieval {
                key_column: key.map(String::from),
                timestamp_column: timestamp.map(String::from),
                ..Retrieval::default()
            };
            let got = choose_columns(&schema(&fields), &retrieval, Path::new("e.csv"));
            match (got, expected) {
                (Ok(c), Ok((k, kind, t))) => {
                    assert_eq!((c.key, c.kind, c.timestamp), (k, kind, t), "{fields:?}")
                }
                (Err(e), Err(text)) => {
                    let e = e.to_string();
                    assert!(
                        e.contains(text) && e.contains("e.csv"),
                        "{text:?} not in {e}"
                    );
                }
                (got, expected) => panic!("{fields:?}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn business_days_follow_the_calendar_across_midnight() {
        let cal = BusinessCalendar::default();
        let t = |s: &str| {
            cdp_core::time::parse_timestamp(s)
                .unwrap()
                .timestamp_micros()
        };
        let values = [
            "2026-01-15T15:59:59.999999Z", // 23:59:59.999999 Shanghai, 15 Jan
            "2026-01-15T16:00:00Z",        // 00:00 Shanghai, 16 Jan
            "2026-01-16T10:00:00+08:00",
            "2026-01-20T23:59:59+08:00",
        ];
        let array = datafusion::arrow::array::TimestampMicrosecondArray::from(
            values
                .iter()
                .map(|v| Some(t(v)))
                .chain([None])
                .collect::<Vec<_>>(),
        );
        let days = business_days(&cal, &[array]).unwrap();
        let got: Vec<Option<NaiveDate>> = days[0].iter().map(|d| d.map(from_epoch_days)).collect();
        let d = |s: &str| Some(cdp_core::time::parse_date(s).unwrap());
        assert_eq!(
            got,
            [
                d("2026-01-15"),
                d("2026-01-16"),
                d("2026-01-16"),
                d("2026-01-20"),
                None
            ]
        );
        // and the calendar's own answer for each
        for v in values {
            let expected = cal.business_date(cdp_core::time::parse_timestamp(v).unwrap());
            let array = datafusion::arrow::array::TimestampMicrosecondArray::from(vec![t(v)]);
            let day = business_days(&cal, &[array]).unwrap()[0].value(0);
            assert_eq!(from_epoch_days(day), expected, "{v}");
        }
    }

    #[test]
    fn join_sql_nulls_each_feature_past_its_own_ttl() {
        let sql = join_sql(
            KeyKind::DeviceId,
            &[("txn_count_1d".into(), 1), ("age_years".into(), 7)],
        );
        assert!(
            sql.contains("CASE WHEN e.__age <= 1 THEN f.\"txn_count_1d\" END"),
            "{sql}"
        );
        assert!(
            sql.contains("CASE WHEN e.__age <= 7 THEN f.\"age_years\" END"),
            "{sql}"
        );
        assert!(sql.contains("source = 'device_events'"), "{sql}");
        let sql = join_sql(KeyKind::UnifiedId, &[("age_years".into(), 7)]);
        assert!(!sql.contains("identity_map"), "{sql}");
    }

    #[test]
    fn features_are_checked() {
        let registry = FeatureRegistry::embedded().unwrap();
        let cases: [(&[&str], &str); 3] = [
            (&[], "no features asked for"),
            (&["spend_30d", "spend_30d"], "asked for twice"),
            (&["spend_31d"], "unknown feature \"spend_31d\""),
        ];
        for (names, text) in cases {
            let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            let err = check_features(&registry, &names).unwrap_err().to_string();
            assert!(err.contains(text), "{err}");
        }
        let ok = check_features(&registry, &["txn_count_1d".into(), "spend_30d".into()]).unwrap();
        assert_eq!(
            ok,
            [
                ("txn_count_1d".to_string(), 1),
                ("spend_30d".to_string(), 2)
            ]
        );
    }
}
