//! `cdp materialize --as-of D [--online URI]`: the feature snapshot as of
//! D into the online store.
//!
//! Reads `silver.features` as of D (every declared feature it has; a
//! feature declared after the snapshot was built is skipped and reported),
//! turns it into an [`OnlineTable`] (typed columns, narrowed integers, the
//! key index), and hands it to the backend: a new embedded snapshot in the
//! lake ([`embedded::write`]), or the changed entities of a Redis database
//! ([`redis::materialize`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use cdp_core::config::OnlineConfig;
use cdp_core::progress::Progress;
use cdp_engine::Engine;
use cdp_engine::features::FeatureRegistry;
use cdp_engine::tables::{self, LayerManifest};
use chrono::NaiveDate;
use datafusion::arrow::array::{Array, ArrayRef, new_empty_array};
use datafusion::arrow::compute::concat;
use datafusion::prelude::col;
use serde::Serialize;
use tracing::instrument;

use crate::error::{Error, Result};
use crate::online::table::{KEY, OnlineTable};
use crate::online::{FeatureSpec, OnlineTarget, SnapshotInfo, embedded, redact, redis};

/// What `cdp materialize` did (`--json` prints it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MaterializeReport {
    /// The snapshot's as-of date.
    pub as_of: NaiveDate,
    /// `embedded` or `redis`.
    pub backend: &'static str,
    /// Where it went: the lake, or the Redis URL without credentials.
    pub target: String,
    /// Entities (rows) in the snapshot.
    pub rows: u64,
    /// Features materialized.
    pub features: usize,
    /// Declared features the snapshot does not have (built before they were
    /// declared); not materialized.
    pub skipped_features: Vec<String>,
    /// Entities written (every one for an embedded snapshot).
    pub entities_written: u64,
    /// Entities left as they were because their features had not changed (Redis).
    pub entities_unchanged: u64,
    /// Entities removed because the snapshot no longer has them (Redis).
    pub entities_deleted: u64,
    /// The version now current: the manifest's (embedded) or the meta key's (Redis).
    pub version: u64,
    /// Bytes of the embedded snapshot's files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Seconds per step (`read`, `convert`, `write`) and `total`.
    pub seconds: BTreeMap<String, f64>,
}

/// Materializes `silver.features` as of `as_of` into `target`.
#[instrument(skip_all, fields(as_of = %as_of, target = %target))]
pub async fn materialize(
    engine: &Engine,
    registry: &FeatureRegistry,
    as_of: NaiveDate,
    target: &OnlineTarget,
    settings: &OnlineConfig,
    progress: &dyn Progress,
) -> Result<MaterializeReport> {
    let started = Instant::now();
    let mut seconds = BTreeMap::new();
    let mut lap = {
        let mut last = Instant::now();
        move |seconds: &mut BTreeMap<String, f64>, step: &str| {
            seconds.insert(step.to_string(), last.elapsed().as_secs_f64());
            last = Instant::now();
        }
    };
    progress.begin("read", 0);
    let (ids, arrays, features, skipped) = read_features(engine, registry, as_of).await?;
    progress.finish();
    lap(&mut seconds, "read");
    let info = SnapshotInfo {
        as_of,
        event_time: engine.calendar().as_of_cutoff(as_of),
        rows: 0,
        features,
    };
    // Casting, narrowing and indexing a million rows is CPU work: off the
    // async workers.
    let table = tokio::task::spawn_blocking(move || OnlineTable::new(info, &ids, &arrays))
        .await
        .map_err(|e| Error::OnlineColumn {
            feature: "*".into(),
            reason: format!("the conversion task failed: {e}"),
        })??;
    lap(&mut seconds, "convert");
    let rows = table.rows() as u64;
    let features = table.info.features.len();
    let mut report = MaterializeReport {
        as_of,
        backend: target.backend(),
        target: match target {
            OnlineTarget::Embedded => redact(engine.lake().uri()),
            OnlineTarget::Redis(url) => redact(url),
        },
        rows,
        features,
        skipped_features: skipped,
        entities_written: 0,
        entities_unchanged: 0,
        entities_deleted: 0,
        version: 0,
        bytes: None,
        seconds: BTreeMap::new(),
    };
    match target {
        OnlineTarget::Embedded => {
            progress.begin("write", 0);
            let options = embedded::WriteOptions {
                keep_snapshots: settings.keep_snapshots,
            };
            let written = embedded::write(engine.lake(), &table, &options).await?;
            progress.finish();
            report.entities_written = rows;
            report.version = written.version;
            report.bytes = Some(written.bytes);
        }
        OnlineTarget::Redis(url) => {
            let written = redis::materialize(Arc::new(table), url, settings, progress).await?;
            report.entities_written = written.written;
            report.entities_unchanged = written.unchanged;
            report.entities_deleted = written.deleted;
            report.version = u64::try_from(written.version).unwrap_or_default();
        }
    }
    lap(&mut seconds, "write");
    seconds.insert("total".into(), started.elapsed().as_secs_f64());
    report.seconds = seconds;
    tracing::info!(rows, features, "materialized");
    Ok(report)
}

/// The unified_ids and declared feature columns of `silver.features` as
/// of `as_of`: (ids, one array per feature, the features, the declared
/// features the snapshot lacks).
async fn read_features(
    engine: &Engine,
    registry: &FeatureRegistry,
    as_of: NaiveDate,
) -> Result<(ArrayRef, Vec<ArrayRef>, Vec<FeatureSpec>, Vec<String>)> {
    let manifest = engine
        .lake()
        .read_manifest::<LayerManifest>("silver")
        .await?
        .map(|m| m.body)
        .unwrap_or_default();
    let files = manifest
        .snapshots
        .get(&as_of)
        .and_then(|s| s.tables.get("features"))
        .ok_or_else(|| Error::NotBuilt {
            as_of,
            built: if manifest.snapshots.is_empty() {
                "none".into()
            } else {
                manifest
                    .snapshots
                    .keys()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })?;
    let provider = tables::listing_table(engine, &files.files, "silver.features").await?;
    let frame = engine
        .context()
        .read_table(provider)
        .map_err(|e| read_error("cannot read silver.features", e))?;
    let mut features = Vec::new();
    let mut skipped = Vec::new();
    for f in registry.features() {
        if frame.schema().field_with_unqualified_name(&f.name).is_ok() {
            features.push(FeatureSpec {
                name: f.name.clone(),
                ty: f.ty,
                ttl_days: f.ttl_days,
            });
        } else {
            skipped.push(f.name.clone());
        }
    }
    if !skipped.is_empty() {
        tracing::warn!(
            skipped = skipped.len(),
            "declared features missing from the snapshot are not materialized"
        );
    }
    let columns: Vec<_> = std::iter::once(col(KEY))
        .chain(features.iter().map(|f| col(f.name.as_str())))
        .collect();
    let selected = frame
        .select(columns)
        .map_err(|e| read_error("cannot plan the read of silver.features", e))?;
    let schema = selected.schema().as_arrow().clone();
    let batches = selected
        .collect()
        .await
        .map_err(|e| read_error("cannot read silver.features", e))?;
    let column = |i: usize| -> Result<ArrayRef> {
        let parts: Vec<&dyn Array> = batches.iter().map(|b| b.column(i).as_ref()).collect();
        match parts.as_slice() {
            [] => Ok(new_empty_array(schema.field(i).data_type())),
            [one] => Ok(one.slice(0, one.len())),
            many => concat(many).map_err(|e| Error::OnlineColumn {
                feature: if i == 0 {
                    KEY.into()
                } else {
                    features[i - 1].name.clone()
                },
                reason: e.to_string(),
            }),
        }
    };
    let ids = column(0)?;
    let arrays = (1..=features.len())
        .map(column)
        .collect::<Result<Vec<_>>>()?;
    Ok((ids, arrays, features, skipped))
}

fn read_error(what: &str, e: datafusion::error::DataFusionError) -> Error {
    Error::Engine(cdp_engine::Error::DataFusion {
        what: what.to_string(),
        error: Box::new(e),
    })
}
