//! The gold layer: tables derived from silver (`gold.tags`,
//! `gold.tag_drift`, later scores), one snapshot per as-of date.
//!
//! A stage writes its tables' files under `gold/<table>/as_of=D/run=R/`,
//! then [`publish`] swaps the `gold` layer manifest: the stage's tables in
//! snapshot D are replaced, the other tables of that snapshot (another
//! stage's) are kept. The swap is the lake's expected-version publish; when
//! another stage published in between, the manifest is read again and the
//! swap retried, so concurrent stages never drop each other's tables.

use std::collections::BTreeMap;

use cdp_core::lake::paths;
use chrono::{NaiveDate, Utc};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use tracing::instrument;

use crate::error::{Error, Result};
use crate::session::Engine;
use crate::tables::{LayerManifest, Snapshot, TableFiles};

/// The layer manifest's name.
pub const LAYER: &str = "gold";

/// Attempts at the manifest swap when other stages publish at the same time.
const ATTEMPTS: usize = 5;

/// The folder of one run's files of a gold table.
pub fn run_dir(table: &str, as_of: NaiveDate, run: &str) -> String {
    format!("{}/run={run}", paths::gold_snapshot(table, as_of))
}

/// Writes `batches` (all of one schema; at least one, possibly empty) as
/// the one Parquet file of gold table `table`, snapshot `as_of`, run `run`.
#[instrument(skip_all, fields(table, as_of = %as_of))]
pub async fn write_table(
    engine: &Engine,
    table: &str,
    as_of: NaiveDate,
    run: &str,
    batches: &[RecordBatch],
) -> Result<TableFiles> {
    let encode = |e: datafusion::parquet::errors::ParquetError| Error::Encode {
        format: "parquet",
        source: Box::new(e),
    };
    let Some(first) = batches.first() else {
        return Err(Error::Column {
            table: format!("gold.{table}"),
            column: "*".into(),
            reason: "no batch to take the schema from".into(),
        });
    };
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).map_err(encode)?))
        .build();
    let mut bytes = Vec::new();
    let mut writer =
        ArrowWriter::try_new(&mut bytes, first.schema(), Some(properties)).map_err(encode)?;
    let mut rows = 0u64;
    for batch in batches {
        writer.write(batch).map_err(encode)?;
        rows += batch.num_rows() as u64;
    }
    writer.close().map_err(encode)?;
    let path = format!("{}/part-0.parquet", run_dir(table, as_of, run));
    engine.lake().put(&path, bytes.into()).await?;
    Ok(TableFiles {
        files: vec![path],
        rows,
    })
}

/// Makes `tables` the current tables of gold snapshot `as_of` (written by
/// `run`), keeping that snapshot's other tables. Returns the manifest
/// version published and whether a table of the same name was replaced.
#[instrument(skip_all, fields(as_of = %as_of))]
pub async fn publish(
    engine: &Engine,
    as_of: NaiveDate,
    run: &str,
    tables: &BTreeMap<String, TableFiles>,
) -> Result<(u64, bool)> {
    let lake = engine.lake();
    let mut last_error = None;
    for _ in 0..ATTEMPTS {
        let current = lake.read_manifest::<LayerManifest>(LAYER).await?;
        let expected = current.as_ref().map_or(0, |m| m.version);
        let mut manifest = current.map(|m| m.body).unwrap_or_default();
        let snapshot = manifest.snapshots.entry(as_of).or_insert_with(|| Snapshot {
            run: run.to_string(),
            built_at: Utc::now(),
            tables: BTreeMap::new(),
            next_unified_id: None,
        });
        let replaced = tables.keys().any(|t| snapshot.tables.contains_key(t));
        snapshot.run = run.to_string();
        snapshot.built_at = Utc::now();
        for (name, files) in tables {
            snapshot.tables.insert(name.clone(), files.clone());
        }
        match lake.publish(LAYER, &manifest, Some(expected)).await {
            Ok(published) => return Ok((published.version, replaced)),
            Err(e @ cdp_core::Error::ManifestConflict { .. }) => {
                tracing::info!("gold manifest moved on; publishing again");
                last_error = Some(e);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(last_error
        .map(Error::from)
        .unwrap_or_else(|| Error::Snapshot {
            as_of,
            reason: "gold manifest could not be published".into(),
        }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cdp_core::lake::Lake;
    use cdp_core::time::BusinessCalendar;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::EngineOptions;
    use crate::query;

    fn batch(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("unified_id", DataType::Utf8, false),
            Field::new("value", DataType::Int64, false),
        ]));
        let ids: Vec<String> = values.iter().map(|v| format!("U{v}")).collect();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(ids)),
                Arc::new(Int64Array::from(values.to_vec())),
            ],
        )
        .unwrap()
    }

    #[test]
    fn tables_of_a_snapshot_are_replaced_one_by_one_and_read_back() {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
            let engine =
                Engine::new(lake, BusinessCalendar::default(), &EngineOptions::default()).unwrap();
            let d = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
            let a = write_table(&engine, "a", d, "r1", &[batch(&[1, 2])])
                .await
                .unwrap();
            let b = write_table(&engine, "b", d, "r1", &[batch(&[3])])
                .await
                .unwrap();
            assert_eq!(a.rows, 2);
            let both = BTreeMap::from([("a".to_string(), a), ("b".to_string(), b)]);
            let (v1, replaced) = publish(&engine, d, "r1", &both).await.unwrap();
            assert_eq!((v1, replaced), (1, false));
            // a later run replaces `a` only
            let a2 = write_table(&engine, "a", d, "r2", &[batch(&[7, 8, 9])])
                .await
                .unwrap();
            let (v2, replaced) =
                publish(&engine, d, "r2", &BTreeMap::from([("a".to_string(), a2)]))
                    .await
                    .unwrap();
            assert_eq!((v2, replaced), (2, true));
            query::register_lake(&engine, crate::tables::Access::Masked)
                .await
                .unwrap();
            let out = query::run(&engine, "SELECT sum(value) AS s FROM gold.a")
                .await
                .unwrap();
            let mut text = Vec::new();
            query::write(&out, query::OutputFormat::Csv, &mut text).unwrap();
            assert_eq!(String::from_utf8(text).unwrap(), "s\n24\n");
            let out = query::run(&engine, "SELECT count(*) AS n FROM gold.b")
                .await
                .unwrap();
            let mut text = Vec::new();
            query::write(&out, query::OutputFormat::Csv, &mut text).unwrap();
            assert_eq!(String::from_utf8(text).unwrap(), "n\n1\n");
            assert!(
                dir.path()
                    .join("gold/a/as_of=2026-03-01/run=r2/part-0.parquet")
                    .is_file()
            );
        });
    }
}
