//! `cdp query SQL`: any SQL over every lake table, written as a terminal
//! table, CSV, JSON lines or Parquet.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use cdp_core::{lake::Lake, time::BusinessCalendar};
//! use cdp_engine::query::{self, OutputFormat};
//! use cdp_engine::tables::Access;
//! use cdp_engine::{Engine, EngineOptions};
//!
//! let lake = Lake::open("memory://").unwrap();
//! let engine = Engine::new(lake, BusinessCalendar::default(), &EngineOptions::default()).unwrap();
//! query::register_lake(&engine, Access::Masked).await.unwrap();
//! let batches = query::run(&engine, "SELECT currency FROM ref.fx_rates WHERE currency = 'USD'").await.unwrap();
//! let mut out = Vec::new();
//! query::write(&batches, OutputFormat::Csv, &mut out).unwrap();
//! assert_eq!(String::from_utf8(out).unwrap(), "currency\nUSD\n");
//! # });
//! ```

use std::io::Write;
use std::path::Path;

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::parquet::arrow::ArrowWriter;
use tracing::instrument;

use crate::error::{Error, Result};
use crate::session::Engine;
use crate::tables::{self, Access};

/// How query results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// A boxed text table, for people.
    Table,
    /// CSV with a header.
    Csv,
    /// One JSON object per row, one per line.
    Json,
    /// A Parquet file (needs a file to write to).
    Parquet,
}

/// Registers every lake table: `bronze.*` (with `access`), the current
/// snapshots of `silver.*` and `gold.*`, and `ref.*`.
#[instrument(skip_all)]
pub async fn register_lake(engine: &Engine, access: Access) -> Result<()> {
    tables::register_bronze(engine, access).await?;
    tables::register_layer(engine, "silver").await?;
    tables::register_layer(engine, "gold").await?;
    tables::register_reference(engine).await
}

/// Runs one SQL statement and collects its rows.
#[instrument(skip_all)]
pub async fn run(engine: &Engine, sql: &str) -> Result<Vec<RecordBatch>> {
    let frame = engine
        .context()
        .sql(sql)
        .await
        .map_err(|error| Error::Query {
            error: Box::new(error),
        })?;
    frame.collect().await.map_err(|error| Error::Query {
        error: Box::new(error),
    })
}

/// Writes batches in a text format (`Table`, `Csv`, `Json`) to `out`.
pub fn write(batches: &[RecordBatch], format: OutputFormat, out: &mut dyn Write) -> Result<()> {
    let encode = |format: &'static str| {
        move |e: datafusion::arrow::error::ArrowError| Error::Encode {
            format,
            source: Box::new(e),
        }
    };
    match format {
        OutputFormat::Table => {
            let text = datafusion::arrow::util::pretty::pretty_format_batches(batches)
                .map_err(encode("table"))?;
            writeln!(out, "{text}").map_err(|e| Error::Encode {
                format: "table",
                source: Box::new(e),
            })?;
        }
        OutputFormat::Csv => {
            let mut writer = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            for batch in batches {
                writer
                    .write(&nested_as_text(batch).map_err(encode("csv"))?)
                    .map_err(encode("csv"))?;
            }
        }
        OutputFormat::Json => {
            let mut writer = datafusion::arrow::json::LineDelimitedWriter::new(out);
            for batch in batches {
                writer.write(batch).map_err(encode("json"))?;
            }
            writer.finish().map_err(encode("json"))?;
        }
        OutputFormat::Parquet => {
            return Err(Error::Encode {
                format: "parquet",
                source: "Parquet output needs a file: add --out FILE".into(),
            });
        }
    }
    Ok(())
}

/// The batch with lists, structs and maps rendered as text (`[a, b]`),
/// since CSV cells hold no nesting.
fn nested_as_text(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| f.data_type().is_nested())
    {
        return Ok(batch.clone());
    }
    let options = FormatOptions::default();
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if !field.data_type().is_nested() {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
            continue;
        }
        let formatter = ArrayFormatter::try_new(column.as_ref(), &options)?;
        let text: StringArray = (0..column.len())
            .map(|i| (!column.is_null(i)).then(|| formatter.value(i).to_string()))
            .collect();
        fields.push(Field::new(field.name(), DataType::Utf8, true));
        columns.push(Arc::new(text));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// Writes batches to a file in any format.
pub fn write_file(batches: &[RecordBatch], format: OutputFormat, path: &Path) -> Result<()> {
    let output = |source| Error::Output {
        path: path.into(),
        source,
    };
    let file = std::fs::File::create(path).map_err(output)?;
    if format != OutputFormat::Parquet {
        let mut buffered = std::io::BufWriter::new(file);
        write(batches, format, &mut buffered)?;
        return buffered.flush().map_err(output);
    }
    let Some(first) = batches.first() else {
        // No batches means no schema: an empty Parquet file is not possible.
        return Ok(());
    };
    let encode = |e: datafusion::parquet::errors::ParquetError| Error::Encode {
        format: "parquet",
        source: Box::new(e),
    };
    let mut writer = ArrowWriter::try_new(file, first.schema(), None).map_err(encode)?;
    for batch in batches {
        writer.write(batch).map_err(encode)?;
    }
    writer.close().map_err(encode)?;
    Ok(())
}
