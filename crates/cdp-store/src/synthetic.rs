//! Synthetic feature snapshots of any size, for benchmarks and tests:
//! `customers × features` values of every feature type, with nulls, from a
//! seed, without ingesting or building anything.
//!
//! Feature `i` is named `f{i:03}_{kind}` after its kind, which cycles
//! through small counts (`int64`), recency days (`int64`, some null),
//! shares (`float64`, some null), amounts (`decimal`), flags (`bool`) and,
//! every 20th feature, a category (`string`); TTLs cycle through 1, 2 and 7
//! days. Customers are `U000000001`, `U000000002`, … and every value is a
//! pure function of (seed, customer, feature), so two calls agree.
//!
//! * [`table`]: the snapshot as an [`OnlineTable`], ready for the online
//!   stores (what the lookup benchmarks read);
//! * [`publish`]: the snapshot as `silver.features` of a lake, Parquet
//!   files and manifest, as `cdp build` would leave it (what the
//!   materialization benchmark reads), and its [`FeatureRegistry`].
//!
//! ```
//! use cdp_store::synthetic::{Spec, table};
//!
//! let spec = Spec { customers: 10, features: 12, ..Spec::default() };
//! let t = table(&spec).unwrap();
//! assert_eq!((t.rows(), t.columns.len()), (10, 12));
//! assert_eq!(t.info.features[0].name, "f000_count");
//! assert_eq!(t.ids.value(0), "U000000001");
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use cdp_core::lake::Lake;
use cdp_core::time::{BusinessCalendar, DEFAULT_TIMEZONE};
use cdp_engine::features::{FeatureRegistry, FeatureType};
use cdp_engine::tables::{LayerManifest, Snapshot, TableFiles};
use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int64Array, RecordBatch,
    StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;

use crate::error::{Error, Result};
use crate::online::table::{KEY, OnlineTable};
use crate::online::{FeatureSpec, SnapshotInfo};

/// The categories of `string` features.
const CATEGORIES: [&str; 5] = ["mass", "affluent", "premier", "private", "student"];

/// The size and seed of a synthetic snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// Customers (rows).
    pub customers: usize,
    /// Features (columns besides `unified_id`).
    pub features: usize,
    /// The as-of date.
    pub as_of: NaiveDate,
    /// Seed of every value.
    pub seed: u64,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            customers: 1_000,
            features: 100,
            as_of: NaiveDate::from_ymd_opt(2026, 3, 1).expect("valid date"),
            seed: 1,
        }
    }
}

impl Spec {
    /// The snapshot's event time: its as-of cutoff in the bank's default
    /// time zone (Asia/Shanghai).
    pub fn event_time(&self) -> DateTime<Utc> {
        BusinessCalendar::new(DEFAULT_TIMEZONE)
            .expect("the default time zone exists")
            .as_of_cutoff(self.as_of)
    }

    /// The features: name, type and TTL.
    pub fn features(&self) -> Vec<FeatureSpec> {
        (0..self.features)
            .map(|i| {
                let (kind, ty) = kind(i);
                FeatureSpec {
                    name: format!("f{i:03}_{kind}"),
                    ty,
                    ttl_days: [1, 2, 7][i % 3],
                }
            })
            .collect()
    }

    /// The feature registry declaring [`Spec::features`] (one family,
    /// `synthetic`).
    pub fn registry(&self) -> Result<FeatureRegistry> {
        let mut toml = String::from(
            "description = \"synthetic features\"\nentity = \"customer\"\nowner = \"bench\"\n",
        );
        for f in self.features() {
            toml.push_str(&format!(
                "[[feature]]\nname = \"{}\"\ntype = \"{}\"\ndescription = \"synthetic\"\nttl_days = {}\n",
                f.name,
                f.ty.name(),
                f.ttl_days
            ));
        }
        Ok(FeatureRegistry::parse([(
            "synthetic".to_string(),
            toml,
            "SELECT 1".to_string(),
        )])?)
    }

    /// The unified_id of row `row`.
    pub fn id(row: usize) -> String {
        format!("U{:09}", row + 1)
    }
}

/// The kind (name suffix) and type of feature `i`.
fn kind(i: usize) -> (&'static str, FeatureType) {
    if i % 20 == 19 {
        return ("category", FeatureType::String);
    }
    match i % 8 {
        0..=2 => ("count", FeatureType::Int64),
        3 => ("days", FeatureType::Int64),
        4 | 5 => ("share", FeatureType::Float64),
        6 => ("amount", FeatureType::Decimal),
        _ => ("flag", FeatureType::Bool),
    }
}

/// A well-mixed 64-bit value of (seed, row, feature) (SplitMix64).
fn mix(seed: u64, row: usize, feature: usize) -> u64 {
    let mut z = seed
        .wrapping_add((row as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add((feature as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Feature `f`'s column for rows `rows`, in `silver.features` types.
fn column(spec: &Spec, f: usize, rows: std::ops::Range<usize>) -> ArrayRef {
    let (kind, _) = kind(f);
    let r = |row: usize| mix(spec.seed, row, f);
    // About 5% nulls where the kind allows them.
    let null = |row: usize| r(row) % 20 == 0;
    match kind {
        "count" => Arc::new(Int64Array::from_iter_values(
            rows.map(|row| ((r(row) >> 8) % 200) as i64),
        )),
        "days" => Arc::new(Int64Array::from_iter(
            rows.map(|row| (!null(row)).then(|| ((r(row) >> 8) % 400) as i64)),
        )),
        "share" => Arc::new(Float64Array::from_iter(rows.map(|row| {
            (!null(row)).then(|| ((r(row) >> 11) as f64) / ((1u64 << 53) as f64))
        }))),
        "amount" => Arc::new(
            Decimal128Array::from_iter_values(rows.map(|row| ((r(row) >> 8) % 10_000_000) as i128))
                .with_precision_and_scale(18, 2)
                .expect("valid decimal type"),
        ),
        "flag" => Arc::new(BooleanArray::from_iter(
            rows.map(|row| Some((r(row) >> 8) % 2 == 0)),
        )),
        _ => Arc::new(StringArray::from_iter(rows.map(|row| {
            (!null(row)).then(|| CATEGORIES[((r(row) >> 8) % 5) as usize])
        }))),
    }
}

/// The synthetic snapshot as an online table.
pub fn table(spec: &Spec) -> Result<OnlineTable> {
    let ids: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..spec.customers).map(Spec::id),
    ));
    let arrays: Vec<ArrayRef> = (0..spec.features)
        .map(|f| column(spec, f, 0..spec.customers))
        .collect();
    let info = SnapshotInfo {
        as_of: spec.as_of,
        event_time: spec.event_time(),
        rows: 0,
        features: spec.features(),
    };
    OnlineTable::new(info, &ids, &arrays)
}

/// Rows per Parquet file [`publish`] writes.
const ROWS_PER_FILE: usize = 125_000;

/// Writes the synthetic snapshot into `lake` as `silver.features` as of
/// `spec.as_of` (Parquet files of up to 125,000 rows, written on all
/// cores, then the `silver` manifest) and returns its registry.
pub async fn publish(lake: &Lake, spec: &Spec) -> Result<FeatureRegistry> {
    let registry = spec.registry()?;
    let run = format!("synthetic-{}", spec.seed);
    let folder = format!(
        "{}/run={run}",
        cdp_core::lake::paths::silver_snapshot("features", spec.as_of)
    );
    let chunks: Vec<std::ops::Range<usize>> = (0..spec.customers)
        .step_by(ROWS_PER_FILE)
        .map(|s| s..(s + ROWS_PER_FILE).min(spec.customers))
        .collect();
    let encoded: Vec<Result<Vec<u8>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|rows| scope.spawn(|| parquet(spec, rows.clone())))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a parquet writer thread panicked"))
            .collect()
    });
    let mut files = Vec::new();
    for (i, bytes) in encoded.into_iter().enumerate() {
        let path = format!("{folder}/part-{i}.parquet");
        lake.put(&path, bytes?.into()).await?;
        files.push(path);
    }
    let current = lake.read_manifest::<LayerManifest>("silver").await?;
    let expected = current.as_ref().map_or(0, |m| m.version);
    let mut manifest = current.map(|m| m.body).unwrap_or_default();
    manifest.snapshots.insert(
        spec.as_of,
        Snapshot {
            run,
            built_at: Utc::now(),
            tables: BTreeMap::from([(
                "features".to_string(),
                TableFiles {
                    files,
                    rows: spec.customers as u64,
                },
            )]),
            next_unified_id: None,
        },
    );
    lake.publish("silver", &manifest, Some(expected)).await?;
    Ok(registry)
}

/// Rows `rows` as one Parquet file, in `silver.features`' layout.
fn parquet(spec: &Spec, rows: std::ops::Range<usize>) -> Result<Vec<u8>> {
    let encode = |e: datafusion::parquet::errors::ParquetError| Error::OnlineFile {
        path: "synthetic silver.features".into(),
        reason: e.to_string(),
    };
    let days = (spec.as_of - NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")).num_days();
    let mut fields = vec![
        Field::new("as_of", DataType::Date32, false),
        Field::new(KEY, DataType::Utf8, false),
    ];
    let mut arrays: Vec<ArrayRef> = vec![
        Arc::new(Date32Array::from(vec![days as i32; rows.len()])),
        Arc::new(StringArray::from_iter_values(rows.clone().map(Spec::id))),
    ];
    for (f, feature) in spec.features().iter().enumerate() {
        let array = column(spec, f, rows.clone());
        fields.push(Field::new(&feature.name, array.data_type().clone(), true));
        arrays.push(array);
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| {
        Error::OnlineColumn {
            feature: "*".into(),
            reason: e.to_string(),
        }
    })?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).map_err(encode)?))
        .build();
    let mut bytes = Vec::new();
    let mut writer =
        ArrowWriter::try_new(&mut bytes, batch.schema(), Some(properties)).map_err(encode)?;
    writer.write(&batch).map_err(encode)?;
    writer.close().map_err(encode)?;
    Ok(bytes)
}
