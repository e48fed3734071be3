//! Lake tables as DataFusion tables.
//!
//! Tables are registered from manifests, never by listing folders: bronze
//! from `_manifests/bronze/<source>.json` (every part file ingest
//! published), silver and gold from their layer manifests (every current
//! snapshot, each file carrying its `as_of` column), reference data from
//! the tables embedded in the binary. Files a crashed run left behind are
//! therefore never read.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;

use cdp_core::contract::{Contracts, FieldType};
use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::FunctionRegistry;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::{Expr, col};
use serde::{Deserialize, Serialize};
use tracing::instrument;

use crate::error::{Error, Result};
use crate::session::{Engine, Scratch};

/// The bronze sources, as ingest names them.
pub const BRONZE_SOURCES: [&str; 6] = [
    "customers",
    "transactions",
    "device_events",
    "social_profiles",
    "offer_events",
    "card_products",
];

/// The SQL function masking a PII column (the same choice as
/// [`cdp_core::pii::mask_for_column`]).
fn mask_function(column: &str) -> &'static str {
    match column {
        "phone" => "mask_phone",
        "email" => "mask_email",
        "full_name" => "mask_name",
        "id_number" => "mask_id_number",
        _ => "mask_text",
    }
}

/// Whether a reader may see raw PII.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// PII columns are masked (`138****5678`): every caller without the PII scope.
    Masked,
    /// PII columns are raw: the build itself, or a caller holding the PII scope.
    Pii,
}

/// The part of ingest's bronze manifest the engine reads.
#[derive(Debug, Deserialize)]
struct BronzeParts {
    parts: Vec<BronzePart>,
}

#[derive(Debug, Deserialize)]
struct BronzePart {
    path: String,
}

/// A layer manifest (`silver`, `gold`): the current snapshot per as-of date.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerManifest {
    /// Snapshots by as-of date.
    pub snapshots: BTreeMap<NaiveDate, Snapshot>,
}

/// One published snapshot: the files of each table, written by one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The run that wrote it.
    pub run: String,
    /// When it was built.
    pub built_at: DateTime<Utc>,
    /// Files and row counts per table.
    pub tables: BTreeMap<String, TableFiles>,
    /// The first unified_id number not yet issued (silver only): ids
    /// retired by merges are never issued again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_unified_id: Option<u64>,
}

/// The files of one table in one snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableFiles {
    /// Lake-relative paths.
    pub files: Vec<String>,
    /// Rows across the files.
    pub rows: u64,
}

/// Registers `bronze.<source>` for every source. A source with no data yet
/// is an empty table of its contract's shape, so views over it still plan.
/// Returns the number of published part files per source.
#[instrument(skip_all, fields(lake = %engine.lake().uri()))]
pub async fn register_bronze(engine: &Engine, access: Access) -> Result<BTreeMap<String, u64>> {
    let mut parts = BTreeMap::new();
    for source in BRONZE_SOURCES {
        let manifest = engine
            .lake()
            .read_manifest::<BronzeParts>(&format!("bronze/{source}"))
            .await?;
        let paths: Vec<String> = manifest
            .map(|m| m.body.parts.into_iter().map(|p| p.path).collect())
            .unwrap_or_default();
        let provider = if paths.is_empty() {
            parts.insert(source.to_string(), 0);
            empty_bronze(engine, source).await?
        } else {
            parts.insert(source.to_string(), paths.len() as u64);
            listing_table(engine, &paths, &format!("bronze.{source}")).await?
        };
        let pii: Vec<&str> = Contracts::embedded()
            .get(source)?
            .fields
            .iter()
            .filter(|f| f.pii)
            .map(|f| f.name.as_str())
            .collect();
        let provider = if access == Access::Masked && !pii.is_empty() {
            masked(engine, source, provider, &pii)?
        } else {
            provider
        };
        register(engine, &format!("bronze.{source}"), provider)?;
    }
    Ok(parts)
}

/// Registers `<layer>.<table>` for every table of the layer's current
/// snapshots (all as-of dates in one table, told apart by `as_of`).
/// Returns the manifest, `None` before the layer's first publish.
#[instrument(skip_all, fields(layer))]
pub async fn register_layer(engine: &Engine, layer: &str) -> Result<Option<LayerManifest>> {
    let Some(manifest) = engine.lake().read_manifest::<LayerManifest>(layer).await? else {
        return Ok(None);
    };
    let mut files: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    // Newest snapshot first: its first file gives the table's schema.
    for snapshot in manifest.body.snapshots.values().rev() {
        for (table, table_files) in &snapshot.tables {
            files
                .entry(table)
                .or_default()
                .extend(table_files.files.iter().cloned());
        }
    }
    for (table, paths) in files {
        let name = format!("{layer}.{table}");
        let provider = listing_table(engine, &paths, &name).await?;
        register(engine, &name, provider)?;
    }
    Ok(Some(manifest.body))
}

/// Registers `ref.fx_rates`, `ref.mcc_categories` and `ref.card_products`
/// from the reference tables embedded in the binary.
pub async fn register_reference(engine: &Engine) -> Result<()> {
    use cdp_core::reference::{CARD_PRODUCTS_CSV, FX_RATES_CSV, MCC_CATEGORIES_CSV};
    let utf8 = |name: &str| Field::new(name, DataType::Utf8, false);
    let tables = [
        (
            "fx_rates",
            FX_RATES_CSV,
            vec![
                utf8("currency"),
                Field::new("cny_per_unit", DataType::Decimal128(18, 6), false),
            ],
        ),
        (
            "mcc_categories",
            MCC_CATEGORIES_CSV,
            vec![utf8("mcc"), utf8("category"), utf8("description")],
        ),
        (
            "card_products",
            CARD_PRODUCTS_CSV,
            vec![
                utf8("offer_id"),
                utf8("name"),
                utf8("tier"),
                utf8("category"),
                Field::new("annual_fee", DataType::Decimal128(18, 2), false),
                Field::new("min_income_band", DataType::Int64, false),
            ],
        ),
    ];
    for (name, text, fields) in tables {
        let schema = Arc::new(Schema::new(fields));
        let table = format!("ref.{name}");
        let reader = datafusion::arrow::csv::ReaderBuilder::new(schema.clone())
            .with_header(true)
            .build(Cursor::new(text.as_bytes()))
            .map_err(|e| Error::Column {
                table: table.clone(),
                column: "*".into(),
                reason: e.to_string(),
            })?;
        let batches = reader
            .collect::<std::result::Result<Vec<RecordBatch>, _>>()
            .map_err(|e| Error::Column {
                table: table.clone(),
                column: "*".into(),
                reason: e.to_string(),
            })?;
        let provider = held_table(engine, &table, schema, batches).await?;
        register(engine, &table, provider)?;
    }
    Ok(())
}

/// Registers (or replaces) a table under a `schema.table` name.
pub fn register(engine: &Engine, name: &str, provider: Arc<dyn TableProvider>) -> Result<()> {
    let ctx = engine.context();
    ctx.deregister_table(name)
        .map_err(Error::datafusion(format!("cannot replace table {name}")))?;
    ctx.register_table(name, provider)
        .map_err(Error::datafusion(format!("cannot register table {name}")))?;
    Ok(())
}

/// A Parquet table over exactly these lake files (the first gives the schema).
pub async fn listing_table(
    engine: &Engine,
    paths: &[String],
    name: &str,
) -> Result<Arc<dyn TableProvider>> {
    let urls: Vec<String> = paths.iter().map(|p| engine.url(p)).collect();
    parquet_table(engine, &urls, name).await
}

/// A Parquet table over these URLs: files, or folders (every `.parquet`
/// file inside). The first file gives the schema.
pub async fn parquet_table(
    engine: &Engine,
    urls: &[String],
    name: &str,
) -> Result<Arc<dyn TableProvider>> {
    let what = || format!("cannot open table {name}");
    let urls = urls
        .iter()
        .map(ListingTableUrl::parse)
        .collect::<datafusion::error::Result<Vec<_>>>()
        .map_err(Error::datafusion(what()))?;
    // the session's Parquet options (plain Utf8 strings, filter pushdown):
    // a default ParquetFormat would read every string as Utf8View, and a
    // chain of hash joins over view arrays copies their ever-growing buffer
    // lists into every output batch (tens of GB for a million customers)
    let format = ParquetFormat::default()
        .with_options(engine.context().state().table_options().parquet.clone());
    let options = ListingOptions::new(Arc::new(format)).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .infer_schema(&engine.context().state())
        .await
        .map_err(Error::datafusion(what()))?;
    // Files whose embedded Arrow schema says Utf8View (polars writes
    // bronze so) are read as plain Utf8 all the same.
    let config = match config.file_schema.clone() {
        Some(schema) => config.with_schema(without_views(&schema)),
        None => config,
    };
    let table = ListingTable::try_new(config).map_err(Error::datafusion(what()))?;
    Ok(Arc::new(table))
}

/// `schema` with every Utf8View (also inside lists) made Utf8.
fn without_views(schema: &SchemaRef) -> SchemaRef {
    fn plain(ty: &DataType) -> DataType {
        match ty {
            DataType::Utf8View => DataType::Utf8,
            DataType::BinaryView => DataType::Binary,
            DataType::List(item) => DataType::List(Arc::new(
                item.as_ref()
                    .clone()
                    .with_data_type(plain(item.data_type())),
            )),
            DataType::LargeList(item) => DataType::LargeList(Arc::new(
                item.as_ref()
                    .clone()
                    .with_data_type(plain(item.data_type())),
            )),
            other => other.clone(),
        }
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_data_type(plain(f.data_type())))
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// A bronze table with its PII columns (those the contract marks `pii`) masked.
fn masked(
    engine: &Engine,
    source: &str,
    provider: Arc<dyn TableProvider>,
    pii: &[&str],
) -> Result<Arc<dyn TableProvider>> {
    let ctx = engine.context();
    let what = || format!("cannot mask bronze.{source}");
    let frame = ctx
        .read_table(provider)
        .map_err(Error::datafusion(what()))?;
    let columns: Vec<String> = frame
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut exprs: Vec<Expr> = Vec::with_capacity(columns.len());
    for name in &columns {
        let expr = if pii.contains(&name.as_str()) {
            ctx.udf(mask_function(name))
                .map_err(Error::datafusion("mask functions are registered"))?
                .call(vec![col(name.as_str())])
                .alias(name.as_str())
        } else {
            col(name.as_str())
        };
        exprs.push(expr);
    }
    let masked = frame.select(exprs).map_err(Error::datafusion(what()))?;
    Ok(masked.into_view())
}

/// An empty table with the shape ingest gives a source: its contract's
/// fields, the identity hashes of customers, the business date and lineage.
async fn empty_bronze(engine: &Engine, source: &str) -> Result<Arc<dyn TableProvider>> {
    let schema = bronze_schema(source)?;
    held_table(engine, &format!("bronze.{source}"), schema, Vec::new()).await
}

/// A table over batches this process holds: in memory when plans run here;
/// on a cluster, where in-memory tables do not travel with the plan, a
/// Parquet file in the lake (`_scratch/tables/<name>-<content hash>.parquet`,
/// written once per content) that every executor can read.
pub async fn held_table(
    engine: &Engine,
    name: &str,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<Arc<dyn TableProvider>> {
    if !engine.is_distributed() {
        let mem = MemTable::try_new(schema, vec![batches])
            .map_err(Error::datafusion(format!("cannot hold {name}")))?;
        return Ok(Arc::new(mem));
    }
    let bytes = parquet_bytes(schema, &batches, None)?;
    let path = format!(
        "_scratch/tables/{name}-{:016x}.parquet",
        xxhash_rust::xxh3::xxh3_64(&bytes)
    );
    // the name carries the content: a file already there is this one
    engine.lake().put_create(&path, bytes.into()).await?;
    listing_table(engine, &[path], name).await
}

/// A table over batches one job holds for its own later queries (the
/// partitions as given): in memory when plans run here; on a cluster a
/// Parquet file in the job's scratch space (`<scratch>/<name>/part-0.parquet`),
/// gone when the job removes its scratch.
pub async fn scratch_table(
    engine: &Engine,
    scratch: &Scratch,
    name: &str,
    schema: SchemaRef,
    partitions: Vec<Vec<RecordBatch>>,
) -> Result<Arc<dyn TableProvider>> {
    match scratch {
        Scratch::Local(_) => {
            let mem = MemTable::try_new(schema, partitions)
                .map_err(Error::datafusion(format!("cannot hold {name}")))?;
            Ok(Arc::new(mem))
        }
        Scratch::Lake { prefix, .. } => {
            let batches: Vec<RecordBatch> = partitions.into_iter().flatten().collect();
            let bytes = parquet_bytes(schema, &batches, None)?;
            scratch.put(name, "part-0.parquet", bytes.into()).await?;
            listing_table(engine, &[format!("{prefix}{name}/part-0.parquet")], name).await
        }
    }
}

/// Batches encoded as one Parquet file (an empty batch list gives a
/// schema-only file), with the writer's default properties unless given.
pub(crate) fn parquet_bytes(
    schema: SchemaRef,
    batches: &[RecordBatch],
    properties: Option<WriterProperties>,
) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let encode = |e: datafusion::parquet::errors::ParquetError| Error::Encode {
        format: "parquet",
        source: Box::new(e),
    };
    let mut writer = ArrowWriter::try_new(&mut bytes, schema, properties).map_err(encode)?;
    for batch in batches {
        writer.write(batch).map_err(encode)?;
    }
    writer.close().map_err(encode)?;
    Ok(bytes)
}

/// The schema bronze files of `source` have.
pub fn bronze_schema(source: &str) -> Result<SchemaRef> {
    let contract = Contracts::embedded().get(source)?;
    let mut fields: Vec<Field> = contract
        .fields
        .iter()
        .map(|f| {
            let ty = match f.ty {
                FieldType::String | FieldType::Enum => DataType::Utf8,
                FieldType::Integer => DataType::Int64,
                FieldType::Decimal => DataType::Decimal128(18, f.scale.unwrap_or(2) as i8),
                FieldType::Boolean => DataType::Boolean,
                FieldType::Date => DataType::Date32,
                FieldType::Timestamp => {
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
                }
                FieldType::StringList => {
                    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
                }
            };
            Field::new(&f.name, ty, true)
        })
        .collect();
    for key in ["phone", "email"] {
        let hash = format!("{key}_sha256");
        if contract.field(key).is_some() && contract.field(&hash).is_none() {
            fields.push(Field::new(hash, DataType::Utf8, true));
        }
    }
    fields.push(Field::new("dt", DataType::Date32, true));
    fields.push(Field::new("_file", DataType::Utf8, true));
    fields.push(Field::new("_line", DataType::Int64, true));
    fields.push(Field::new("_run", DataType::Utf8, true));
    Ok(Arc::new(Schema::new(fields)))
}
