//! Tables in and out of models: CSV and Parquet files as Arrow record
//! batches, Arrow columns as the row-major `f32` matrices models take, and
//! predictions written back as a table.
//!
//! Models ([`cdp_ml::model::Model`]) read rows of `f32` feature values,
//! `NaN` for a missing one, like XGBoost. [`batches_to_matrix`] makes such a
//! matrix from any Arrow batches (a file read here, a DataFusion query over
//! the lake) with one rule for every numeric type:
//!
//! | Arrow type | value |
//! |---|---|
//! | integers, `Float16/32/64` | the number, rounded to `f32` |
//! | `Decimal128/256` | the number, rounded to `f32` |
//! | `Boolean` | `1` for true, `0` for false |
//! | `Null`, or a null entry of any of these | `NaN` (missing) |
//! | anything else (text, dates, lists, …) | refused: [`Error::Column`] names the column and its type |
//!
//! CSV files ([`read_table`]) have a header row; the delimiter is the one of
//! `,` `;` tab `|` the header holds most of (outside quotes), so
//! semicolon-separated exports such as UCI bank-marketing read as they are.
//! Column types are inferred from every row (integers, then decimals, else
//! text); an empty cell, `NA`, `N/A`, `NaN`, `nan`, `null`, `NULL` or
//! `None` is a missing value.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float32Array, RecordBatch};
use datafusion::arrow::compute::{cast, concat};
use datafusion::arrow::datatypes::{DataType, Field, Float32Type, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use regex::Regex;
use tracing::instrument;

use crate::error::{Error, Result};

/// Rows per batch when reading a file.
const BATCH_ROWS: usize = 65_536;

/// The file formats tables are read from and written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    /// Comma- (or `;`, tab, `|`) separated text with a header row.
    Csv,
    /// Apache Parquet.
    Parquet,
}

impl TableFormat {
    /// The format of `path` by its extension: `.csv` (also `.tsv`,
    /// `.txt`) or `.parquet` (`.pq`).
    pub fn of(path: &Path) -> Result<TableFormat> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("csv" | "tsv" | "txt") => Ok(TableFormat::Csv),
            Some("parquet" | "pq") => Ok(TableFormat::Parquet),
            _ => Err(Error::TableFormat {
                path: path.to_path_buf(),
            }),
        }
    }
}

/// A table read from a file: its schema and batches.
#[derive(Debug, Clone)]
pub struct Table {
    /// The columns.
    pub schema: SchemaRef,
    /// The rows, in file order.
    pub batches: Vec<RecordBatch>,
}

impl Table {
    /// Rows in all batches.
    pub fn n_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// The column names, in order.
    pub fn column_names(&self) -> Vec<String> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    /// The whole column `name` as one array, `None` when the table has no
    /// such column.
    pub fn column(&self, name: &str) -> Result<Option<ArrayRef>> {
        let Ok(index) = self.schema.index_of(name) else {
            return Ok(None);
        };
        let parts: Vec<&dyn Array> = self
            .batches
            .iter()
            .map(|b| b.column(index).as_ref())
            .collect();
        if parts.is_empty() {
            return Ok(Some(datafusion::arrow::array::new_empty_array(
                self.schema.field(index).data_type(),
            )));
        }
        concat(&parts).map(Some).map_err(|e| Error::Column {
            table: "input".into(),
            column: name.into(),
            reason: e.to_string(),
        })
    }
}

fn read_error(path: &Path) -> impl Fn(String) -> Error + '_ {
    move |reason| Error::TableRead {
        path: path.to_path_buf(),
        reason,
    }
}

/// Read a CSV or Parquet file (by its extension, [`TableFormat::of`]).
#[instrument(skip_all, fields(path = %path.display()))]
pub fn read_table(path: &Path) -> Result<Table> {
    let format = TableFormat::of(path)?;
    let fail = read_error(path);
    let file = File::open(path).map_err(|e| fail(e.to_string()))?;
    match format {
        TableFormat::Parquet => {
            let builder =
                ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| fail(e.to_string()))?;
            let schema = builder.schema().clone();
            let reader = builder
                .with_batch_size(BATCH_ROWS)
                .build()
                .map_err(|e| fail(e.to_string()))?;
            let batches = reader
                .collect::<Result<Vec<_>, ArrowError>>()
                .map_err(|e| fail(e.to_string()))?;
            Ok(Table { schema, batches })
        }
        TableFormat::Csv => read_csv(file, &fail),
    }
}

/// What a CSV cell that means "missing" looks like.
fn missing_cell() -> Regex {
    Regex::new(r"^(|NA|N/A|NaN|nan|null|NULL|None)$").expect("a valid regex")
}

fn read_csv(mut file: File, fail: &dyn Fn(String) -> Error) -> Result<Table> {
    use datafusion::arrow::csv::ReaderBuilder;
    use datafusion::arrow::csv::reader::Format;

    let mut header = String::new();
    BufReader::new(&mut file)
        .read_line(&mut header)
        .map_err(|e| fail(e.to_string()))?;
    if header.trim().is_empty() {
        return Err(fail(
            "the file is empty: a CSV table needs a header row".into(),
        ));
    }
    let delimiter = sniff_delimiter(&header);
    let format = Format::default()
        .with_header(true)
        .with_delimiter(delimiter)
        .with_null_regex(missing_cell());
    file.seek(SeekFrom::Start(0))
        .map_err(|e| fail(e.to_string()))?;
    let (schema, _) = format
        .infer_schema(BufReader::new(&mut file), None)
        .map_err(|e| fail(e.to_string()))?;
    let schema = Arc::new(schema);
    file.seek(SeekFrom::Start(0))
        .map_err(|e| fail(e.to_string()))?;
    let reader = ReaderBuilder::new(schema.clone())
        .with_format(format)
        .with_batch_size(BATCH_ROWS)
        .build(BufReader::new(file))
        .map_err(|e| fail(e.to_string()))?;
    let batches = reader
        .collect::<Result<Vec<_>, ArrowError>>()
        .map_err(|e| fail(e.to_string()))?;
    Ok(Table { schema, batches })
}

/// The delimiter of a CSV header line: whichever of `,` `;` tab `|` it
/// holds most of outside quotes (`,` when it holds none).
pub fn sniff_delimiter(header: &str) -> u8 {
    let mut counts = [0usize; 4];
    let candidates = [b',', b';', b'\t', b'|'];
    let mut quoted = false;
    for b in header.bytes() {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted && let Some(i) = candidates.iter().position(|&c| c == b) {
            counts[i] += 1;
        }
    }
    let best = (0..4)
        .max_by_key(|&i| (counts[i], usize::MAX - i))
        .unwrap_or(0);
    if counts[best] == 0 {
        b','
    } else {
        candidates[best]
    }
}

/// Whether [`batches_to_matrix`] reads columns of type `data_type`.
pub fn is_numeric(data_type: &DataType) -> bool {
    data_type.is_numeric() || matches!(data_type, DataType::Boolean | DataType::Null)
}

/// The `columns` of `batches` as one row-major `f32` matrix (`columns.len()`
/// values per row, `NaN` for null), and its row count. Types are read as
/// the [module docs](self) say; a column that is missing or not numeric is
/// an [`Error::Column`] naming it.
pub fn batches_to_matrix<S: AsRef<str>>(
    batches: &[RecordBatch],
    columns: &[S],
) -> Result<(Vec<f32>, usize)> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let width = columns.len();
    let mut out = vec![0.0f32; rows * width];
    let mut start = 0;
    for batch in batches {
        let schema = batch.schema();
        let n = batch.num_rows();
        for (c, name) in columns.iter().enumerate() {
            let name = name.as_ref();
            let index = schema.index_of(name).map_err(|_| Error::Column {
                table: "input".into(),
                column: name.into(),
                reason: "no such column".into(),
            })?;
            let values = to_f32(name, batch.column(index))?;
            let dest = &mut out[start * width..(start + n) * width];
            match values.nulls().filter(|nulls| nulls.null_count() > 0) {
                None => {
                    for (slot, &v) in dest.chunks_exact_mut(width).zip(values.values()) {
                        slot[c] = v;
                    }
                }
                Some(nulls) => {
                    for (r, (slot, &v)) in dest
                        .chunks_exact_mut(width)
                        .zip(values.values())
                        .enumerate()
                    {
                        slot[c] = if nulls.is_valid(r) { v } else { f32::NAN };
                    }
                }
            }
        }
        start += n;
    }
    Ok((out, rows))
}

/// One column of `batches` as `f32` values (`NaN` for null): a label, a
/// weight.
pub fn column_to_f32(batches: &[RecordBatch], column: &str) -> Result<Vec<f32>> {
    Ok(batches_to_matrix(batches, &[column])?.0)
}

/// A numeric (or boolean, or null) array cast to `f32`.
fn to_f32(name: &str, array: &ArrayRef) -> Result<Float32Array> {
    let data_type = array.data_type();
    if !is_numeric(data_type) {
        return Err(Error::Column {
            table: "input".into(),
            column: name.into(),
            reason: format!(
                "is {data_type}, not a number; models read numeric (or boolean) columns only"
            ),
        });
    }
    let cast = cast(array, &DataType::Float32).map_err(|e| Error::Column {
        table: "input".into(),
        column: name.into(),
        reason: format!("cannot read {data_type} as numbers: {e}"),
    })?;
    Ok(cast.as_primitive::<Float32Type>().clone())
}

/// A table of model outputs: the `keep` columns as they are (say an id),
/// then `prediction`, then, when given, one `contrib_<feature>` column per
/// feature and `contrib_bias` from row-major contributions
/// (`features.len() + 1` per row, bias last).
pub fn predictions_batch(
    keep: Vec<(String, ArrayRef)>,
    prediction: Vec<f32>,
    contributions: Option<(&[String], Vec<f32>)>,
) -> Result<RecordBatch> {
    let rows = prediction.len();
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (name, array) in keep {
        fields.push(Field::new(name, array.data_type().clone(), true));
        columns.push(array);
    }
    fields.push(Field::new("prediction", DataType::Float32, false));
    columns.push(Arc::new(Float32Array::from(prediction)));
    if let Some((features, values)) = contributions {
        let width = features.len() + 1;
        if values.len() != rows * width {
            return Err(Error::Column {
                table: "predictions".into(),
                column: "contrib_*".into(),
                reason: format!("{} contributions for {rows} rows of {width}", values.len()),
            });
        }
        let names = features
            .iter()
            .map(|f| format!("contrib_{f}"))
            .chain(std::iter::once("contrib_bias".to_string()));
        for (j, name) in names.enumerate() {
            let column: Float32Array = values.iter().skip(j).step_by(width).copied().collect();
            fields.push(Field::new(name, DataType::Float32, false));
            columns.push(Arc::new(column));
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| Error::Column {
        table: "predictions".into(),
        column: "*".into(),
        reason: e.to_string(),
    })
}

/// Write `batch` to `path` as CSV (with a header) or Parquet (zstd), by the
/// extension; written to a temporary name and renamed, so a reader never
/// sees half a file.
#[instrument(skip_all, fields(path = %path.display(), rows = batch.num_rows()))]
pub fn write_table(path: &Path, batch: &RecordBatch) -> Result<()> {
    let format = TableFormat::of(path)?;
    let fail = |reason: String| Error::TableWrite {
        path: path.to_path_buf(),
        reason,
    };
    let tmp = temporary(path);
    let file = File::create(&tmp).map_err(|e| fail(e.to_string()))?;
    let written = match format {
        TableFormat::Csv => {
            let mut writer = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(std::io::BufWriter::new(file));
            writer
                .write(batch)
                .map_err(|e| e.to_string())
                .and_then(|()| writer.into_inner().flush().map_err(|e| e.to_string()))
        }
        TableFormat::Parquet => {
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::default()))
                .build();
            ArrowWriter::try_new(file, batch.schema(), Some(props))
                .and_then(|mut writer| {
                    writer.write(batch)?;
                    writer.close().map(|_| ())
                })
                .map_err(|e| e.to_string())
        }
    };
    if let Err(reason) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(reason));
    }
    std::fs::rename(&tmp, path).map_err(|e| fail(e.to_string()))
}

fn temporary(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        BooleanArray, Decimal128Array, Float64Array, Int32Array, Int64Array, NullArray,
        StringArray, UInt8Array,
    };

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(columns).unwrap()
    }

    #[test]
    fn every_numeric_type_becomes_f32_with_nulls_as_nan() {
        let b1 = batch(vec![
            (
                "i",
                Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef,
            ),
            (
                "f",
                Arc::new(Float64Array::from(vec![Some(0.5), Some(f64::NAN)])),
            ),
            (
                "b",
                Arc::new(BooleanArray::from(vec![Some(true), Some(false)])),
            ),
            (
                "d",
                Arc::new(
                    Decimal128Array::from(vec![Some(12345), None])
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ),
            ),
            ("n", Arc::new(NullArray::new(2))),
            ("u", Arc::new(UInt8Array::from(vec![7, 8]))),
        ]);
        let b2 = batch(vec![
            ("i", Arc::new(Int64Array::from(vec![3])) as ArrayRef),
            ("f", Arc::new(Float64Array::from(vec![None]))),
            ("b", Arc::new(BooleanArray::from(vec![None]))),
            (
                "d",
                Arc::new(
                    Decimal128Array::from(vec![Some(-50)])
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ),
            ),
            ("n", Arc::new(NullArray::new(1))),
            ("u", Arc::new(UInt8Array::from(vec![9]))),
        ]);
        // columns in another order than the batches hold them
        let (m, rows) = batches_to_matrix(&[b1, b2], &["u", "i", "f", "b", "d", "n"]).unwrap();
        assert_eq!(rows, 3);
        let expect = [
            [7.0, 1.0, 0.5, 1.0, 123.45, f32::NAN],
            [8.0, f32::NAN, f32::NAN, 0.0, f32::NAN, f32::NAN],
            [9.0, 3.0, f32::NAN, f32::NAN, -0.5, f32::NAN],
        ];
        for (got, want) in m.chunks(6).zip(expect) {
            for (g, w) in got.iter().zip(want) {
                assert!(
                    g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                    "{got:?}"
                );
            }
        }
    }

    #[test]
    fn text_and_missing_columns_are_refused_by_name() {
        let b = batch(vec![
            ("x", Arc::new(Int32Array::from(vec![1])) as ArrayRef),
            ("job", Arc::new(StringArray::from(vec!["admin"]))),
        ]);
        let err = batches_to_matrix(std::slice::from_ref(&b), &["x", "job"]).unwrap_err();
        assert!(
            matches!(&err, Error::Column { column, .. } if column == "job"),
            "{err}"
        );
        assert!(err.to_string().contains("Utf8"), "{err}");
        let err = batches_to_matrix(&[b], &["y"]).unwrap_err();
        assert!(matches!(&err, Error::Column { column, .. } if column == "y"));
        let (m, rows) = batches_to_matrix::<&str>(&[], &["a"]).unwrap();
        assert_eq!((m.len(), rows), (0, 0));
    }

    #[test]
    fn delimiters_are_sniffed_outside_quotes() {
        assert_eq!(sniff_delimiter("a,b,c\n"), b',');
        assert_eq!(sniff_delimiter("\"age\";\"job\";\"y\"\n"), b';');
        assert_eq!(sniff_delimiter("\"a;b\",c,d\n"), b',');
        assert_eq!(sniff_delimiter("a\tb\n"), b'\t');
        assert_eq!(sniff_delimiter("single\n"), b',');
    }

    #[test]
    fn csv_and_parquet_round_trip_through_files() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("in.csv");
        std::fs::write(
            &csv,
            "\"id\";\"age\";\"score\";\"flag\";\"job\"\n\
             a1;30;0.5;true;admin\n\
             a2;;NaN;false;\n\
             a3;41;1e3;true;nurse\n",
        )
        .unwrap();
        let table = read_table(&csv).unwrap();
        assert_eq!(table.n_rows(), 3);
        assert_eq!(table.column_names(), ["id", "age", "score", "flag", "job"]);
        let (m, _) = batches_to_matrix(&table.batches, &["age", "score", "flag"]).unwrap();
        assert_eq!(m[0..3], [30.0, 0.5, 1.0]);
        assert!(m[3].is_nan() && m[4].is_nan() && m[5] == 0.0);
        assert_eq!(m[6..9], [41.0, 1000.0, 1.0]);
        assert!(batches_to_matrix(&table.batches, &["job"]).is_err());

        let ids = table.column("id").unwrap().unwrap();
        let out = predictions_batch(
            vec![("id".into(), ids)],
            vec![0.25, 0.5, 0.75],
            Some((
                &["age".to_string(), "score".to_string()],
                vec![0.1, 0.2, -0.05, 0.3, 0.1, 0.1, -0.2, 0.0, 0.95],
            )),
        )
        .unwrap();
        let names: Vec<_> = out
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(
            names,
            [
                "id",
                "prediction",
                "contrib_age",
                "contrib_score",
                "contrib_bias"
            ]
        );
        for name in ["out.csv", "out.parquet"] {
            let path = dir.path().join(name);
            write_table(&path, &out).unwrap();
            let back = read_table(&path).unwrap();
            assert_eq!(back.n_rows(), 3);
            let (m, _) = batches_to_matrix(
                &back.batches,
                &["prediction", "contrib_score", "contrib_bias"],
            )
            .unwrap();
            assert_eq!(m, [0.25, 0.2, -0.05, 0.5, 0.1, 0.1, 0.75, 0.0, 0.95]);
            let id = back.column("id").unwrap().unwrap();
            assert_eq!(id.as_string::<i32>().value(2), "a3");
        }
        assert!(matches!(
            predictions_batch(vec![], vec![1.0], Some((&["a".to_string()], vec![1.0]))),
            Err(Error::Column { .. })
        ));
    }

    #[test]
    fn bad_files_get_errors_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("rows.xlsx");
        assert!(matches!(read_table(&odd), Err(Error::TableFormat { .. })));
        let missing = dir.path().join("none.csv");
        let err = read_table(&missing).unwrap_err();
        assert!(err.to_string().contains("none.csv"), "{err}");
        let empty = dir.path().join("empty.csv");
        std::fs::write(&empty, "").unwrap();
        assert!(matches!(read_table(&empty), Err(Error::TableRead { .. })));
        let junk = dir.path().join("junk.parquet");
        std::fs::write(&junk, "not parquet").unwrap();
        assert!(matches!(read_table(&junk), Err(Error::TableRead { .. })));
        let ragged = dir.path().join("ragged.csv");
        std::fs::write(&ragged, "a,b\n1,2\n3\n").unwrap();
        assert!(matches!(read_table(&ragged), Err(Error::TableRead { .. })));
    }
}
