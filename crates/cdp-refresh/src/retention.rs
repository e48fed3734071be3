//! Retention: keep the newest snapshots, models and run records, delete
//! the rest safely.
//!
//! 1. Snapshot dates kept: the newest `keep_snapshots` silver dates, the
//!    released date and every date a live server pin names. Other dates
//!    leave the silver and gold manifests (an expected-version swap, so a
//!    concurrent publish is never overwritten).
//! 2. Model versions kept per kind: the newest `keep_models`, the current,
//!    the released and the pinned ones; others leave their registry.
//! 3. Files: under `silver/`, `gold/`, `models/` and `online/embedded/`,
//!    a file that no manifest (nor the release, nor a live pin) names any
//!    more is deleted — but only once it is older than `grace_minutes`, so
//!    a stage still writing its files is never cut short.
//! 4. Run records beyond the newest `keep_runs`, and released lock leases
//!    but the newest, are deleted.
//! 5. Scratch folders (`_scratch/<run id>/`, a cluster job's intermediate
//!    files) of jobs started more than [`SCRATCH_ABANDONED_AFTER_HOURS`]
//!    ago are deleted: a job that ends removes its own, so these are what
//!    killed jobs left behind.
//!
//! Bronze is never touched: it is the source of truth every snapshot can
//! be rebuilt from.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use cdp_core::config::RetentionConfig;
use cdp_core::lake::Lake;
use cdp_core::release;
use cdp_engine::tables::LayerManifest;
use cdp_ml::offer::OfferModel;
use cdp_ml::store::{ModelStore, TaggerStore};
use cdp_store::online::embedded::{
    EmbeddedManifest, MANIFEST as ONLINE, released_manifest, snapshot_folder,
};
use chrono::{NaiveDate, Utc};
use serde::Serialize;
use tracing::instrument;

use crate::error::Result;
use crate::lock::LOCKS;
use crate::record::RUNS;

/// Attempts at a manifest swap when another writer publishes meanwhile.
const ATTEMPTS: usize = 5;

/// Where jobs keep intermediate files when their plans run on a cluster.
const SCRATCH: &str = "_scratch";

/// A scratch folder is abandoned once its job started this long ago: no
/// night's job runs for a day.
pub const SCRATCH_ABANDONED_AFTER_HOURS: i64 = 24;

/// What retention did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GcReport {
    /// Snapshot dates dropped from the silver and gold manifests.
    pub dates_dropped: Vec<NaiveDate>,
    /// Model versions dropped from their registries (`offer/v1`, …).
    pub models_dropped: Vec<String>,
    /// Files deleted.
    pub files_deleted: u64,
    /// Their bytes.
    pub bytes_deleted: u64,
    /// Unreferenced files left because they are younger than the grace period.
    pub files_in_grace: u64,
    /// Run records deleted.
    pub runs_deleted: u64,
    /// Files deleted from scratch folders killed jobs left behind.
    pub scratch_files_deleted: u64,
    /// Dates kept because a running server holds them.
    pub pinned_dates: Vec<NaiveDate>,
    /// Nothing was changed (`--dry-run`).
    pub dry_run: bool,
}

/// Applies the retention policy to `lake`.
#[instrument(skip_all, fields(lake = %lake.uri(), dry_run))]
pub async fn gc(lake: &Lake, policy: &RetentionConfig, dry_run: bool) -> Result<GcReport> {
    let mut report = GcReport {
        dry_run,
        ..GcReport::default()
    };
    let released = release::current(lake).await?.map(|m| m.body);
    let pins = release::live_pins(lake, Duration::from_secs(policy.pin_lease_seconds)).await?;

    // 1. snapshot dates
    let silver = lake.read_manifest::<LayerManifest>("silver").await?;
    let mut keep_dates: BTreeSet<NaiveDate> = silver
        .as_ref()
        .map(|m| {
            m.body
                .snapshots
                .keys()
                .rev()
                .take(policy.keep_snapshots)
                .copied()
                .collect()
        })
        .unwrap_or_default();
    keep_dates.extend(released.as_ref().map(|r| r.as_of));
    for pin in &pins {
        if keep_dates.insert(pin.as_of) {
            report.pinned_dates.push(pin.as_of);
        }
    }
    for layer in ["silver", "gold"] {
        let dropped = drop_dates(lake, layer, &keep_dates, dry_run).await?;
        for d in dropped {
            if !report.dates_dropped.contains(&d) {
                report.dates_dropped.push(d);
            }
        }
    }
    report.dates_dropped.sort();

    // 2. model versions
    let mut offer_keep: Vec<String> = pins.iter().filter_map(|p| p.model.clone()).collect();
    offer_keep.extend(released.as_ref().and_then(|r| r.model.clone()));
    let tagger_keep: Vec<String> = released
        .as_ref()
        .and_then(|r| r.tagger.clone())
        .into_iter()
        .collect();
    report.models_dropped.extend(
        ModelStore::<OfferModel>::new(lake)
            .retain(policy.keep_models, &offer_keep, dry_run)
            .await?,
    );
    report.models_dropped.extend(
        TaggerStore::new(lake)
            .retain(policy.keep_models, &tagger_keep, dry_run)
            .await?,
    );

    // 3. unreferenced files (a dry run counts what steps 1 and 2 would drop)
    let dropped_dates: BTreeSet<NaiveDate> = report.dates_dropped.iter().copied().collect();
    let mut referenced = referenced(lake, &pins, &dropped_dates).await?;
    for folder in &report.models_dropped {
        referenced.folders.remove(folder);
    }
    let grace = chrono::Duration::minutes(policy.grace_minutes as i64);
    let now = Utc::now();
    for area in ["silver", "gold", "models", ONLINE] {
        for meta in lake.list(area).await? {
            let path = lake.relative(&meta.location);
            if referenced.is_referenced(&path) {
                continue;
            }
            if now - meta.last_modified < grace {
                report.files_in_grace += 1;
                continue;
            }
            report.files_deleted += 1;
            report.bytes_deleted += meta.size;
            if !dry_run {
                lake.delete(&path).await?;
            }
        }
    }

    // 4. run records and lock leases
    let runs = lake.list(RUNS).await?;
    if runs.len() > policy.keep_runs {
        for meta in &runs[..runs.len() - policy.keep_runs] {
            report.runs_deleted += 1;
            if !dry_run {
                lake.delete(&lake.relative(&meta.location)).await?;
            }
        }
    }
    let leases = lake.list(LOCKS).await?;
    if !dry_run && leases.len() > 1 {
        for meta in &leases[..leases.len() - 1] {
            lake.delete(&lake.relative(&meta.location)).await?;
        }
    }
    // 5. scratch folders of killed jobs
    sweep_scratch(lake, now, dry_run, &mut report).await?;
    tracing::info!(
        dates = report.dates_dropped.len(),
        models = report.models_dropped.len(),
        files = report.files_deleted,
        bytes = report.bytes_deleted,
        "retention applied"
    );
    Ok(report)
}

/// Deletes the files of abandoned scratch folders (step 5).
async fn sweep_scratch(
    lake: &Lake,
    now: chrono::DateTime<Utc>,
    dry_run: bool,
    report: &mut GcReport,
) -> Result<()> {
    let cutoff = now - chrono::Duration::hours(SCRATCH_ABANDONED_AFTER_HOURS);
    let mut folders = BTreeSet::new();
    for meta in lake.list(SCRATCH).await? {
        let path = lake.relative(&meta.location);
        let Some((folder, started)) = scratch_folder(&path) else {
            continue;
        };
        if started >= cutoff {
            continue;
        }
        report.scratch_files_deleted += 1;
        report.bytes_deleted += meta.size;
        if !dry_run {
            lake.delete(&path).await?;
            folders.insert(folder.to_string());
        }
    }
    // a local store leaves the emptied folders behind
    if let Some(root) = lake.local_root() {
        for folder in folders {
            if let Err(e) = std::fs::remove_dir_all(root.join(&folder)) {
                tracing::warn!(%folder, "cannot remove an emptied scratch folder: {e}");
            }
        }
    }
    Ok(())
}

/// The folder of a scratch file (`_scratch/<run id>`) and when its job
/// started, from the run id (`20260316T020000Z-1a2b3c`); `None` for files
/// outside a job's folder (`_scratch/tables/`, shared by content).
fn scratch_folder(path: &str) -> Option<(&str, chrono::DateTime<Utc>)> {
    let rest = path.strip_prefix(SCRATCH)?.strip_prefix('/')?;
    let (id, _) = rest.split_once('/')?;
    let (stamp, _) = id.split_once('-')?;
    let started = chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ").ok()?;
    Some((&path[..SCRATCH.len() + 1 + id.len()], started.and_utc()))
}

/// Drops the dates not in `keep` from layer manifest `layer`; returns them.
async fn drop_dates(
    lake: &Lake,
    layer: &str,
    keep: &BTreeSet<NaiveDate>,
    dry_run: bool,
) -> Result<Vec<NaiveDate>> {
    for _ in 0..ATTEMPTS {
        let Some(manifest) = lake.read_manifest::<LayerManifest>(layer).await? else {
            return Ok(Vec::new());
        };
        let mut body = manifest.body;
        let dropped: Vec<NaiveDate> = body
            .snapshots
            .keys()
            .filter(|d| !keep.contains(d))
            .copied()
            .collect();
        if dropped.is_empty() || dry_run {
            return Ok(dropped);
        }
        body.snapshots.retain(|d, _| keep.contains(d));
        match lake.publish(layer, &body, Some(manifest.version)).await {
            Ok(_) => return Ok(dropped),
            Err(cdp_core::Error::ManifestConflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(cdp_core::Error::ManifestConflict {
        name: layer.into(),
        version: 0,
    }
    .into())
}

/// Every file and folder something still names.
#[derive(Debug, Default)]
struct Referenced {
    files: BTreeSet<String>,
    folders: BTreeSet<String>,
}

impl Referenced {
    fn is_referenced(&self, path: &str) -> bool {
        self.files.contains(path)
            || self
                .folders
                .iter()
                .any(|f| path.starts_with(f.as_str()) && path[f.len()..].starts_with('/'))
    }
}

async fn referenced(
    lake: &Lake,
    pins: &[release::ServingPin],
    dropped: &BTreeSet<NaiveDate>,
) -> Result<Referenced> {
    let mut r = Referenced::default();
    for layer in ["silver", "gold"] {
        if let Some(m) = lake.read_manifest::<LayerManifest>(layer).await? {
            for (_, snapshot) in m
                .body
                .snapshots
                .iter()
                .filter(|(d, _)| !dropped.contains(d))
            {
                for table in snapshot.tables.values() {
                    r.files.extend(table.files.iter().cloned());
                }
            }
        }
    }
    for kind in ["offer", "tagger"] {
        let registry = lake
            .read_manifest::<cdp_ml::store::Registry>(&cdp_ml::store::registry_name(kind))
            .await?;
        for v in registry.iter().flat_map(|m| m.body.versions.iter()) {
            r.folders
                .insert(cdp_core::lake::paths::model(kind, &v.version));
        }
    }
    let mut online: BTreeMap<u64, EmbeddedManifest> = BTreeMap::new();
    if let Some(m) = lake.read_manifest::<EmbeddedManifest>(ONLINE).await? {
        online.insert(m.version, m.body);
    }
    if let Some(m) = released_manifest(lake).await? {
        online.insert(m.version, m.body);
    }
    for body in online.values() {
        r.folders.insert(snapshot_folder(body));
        r.folders.extend(body.kept.iter().cloned());
    }
    for pin in pins {
        r.folders.extend(pin.online_folder.iter().cloned());
        // a pinned date's silver files stay through the dates kept above
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_folders_are_known_by_their_run_id() {
        let (folder, started) =
            scratch_folder("_scratch/20260316T020000Z-1a2b3c/txn_daily/part-0.parquet").unwrap();
        assert_eq!(folder, "_scratch/20260316T020000Z-1a2b3c");
        assert_eq!(started.to_rfc3339(), "2026-03-16T02:00:00+00:00");
        assert_eq!(
            scratch_folder("_scratch/tables/bronze.x-00ff.parquet"),
            None
        );
        assert_eq!(
            scratch_folder("silver/features/as_of=2026-03-16/a.parquet"),
            None
        );
        assert_eq!(scratch_folder("_scratch/20260316T020000Z-1a2b3c"), None);
    }

    #[tokio::test]
    async fn gc_sweeps_the_scratch_of_killed_jobs_only() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let old = cdp_core::lake::run_id().replacen("2026", "2020", 1);
        let fresh = cdp_core::lake::run_id();
        let files = [
            format!("_scratch/{old}/persons/part-0.parquet"),
            format!("_scratch/{old}/txn_daily/part-0.parquet"),
            format!("_scratch/{fresh}/persons/part-0.parquet"),
            "_scratch/tables/bronze.customers-00ff.parquet".to_string(),
        ];
        for f in &files {
            lake.put(f, bytes::Bytes::from_static(b"x")).await.unwrap();
        }
        let policy = RetentionConfig::default();
        let dry = gc(&lake, &policy, true).await.unwrap();
        assert_eq!(dry.scratch_files_deleted, 2);
        assert_eq!(
            lake.list(SCRATCH).await.unwrap().len(),
            4,
            "a dry run deletes nothing"
        );
        let done = gc(&lake, &policy, false).await.unwrap();
        assert_eq!(done.scratch_files_deleted, 2);
        let left: Vec<String> = lake
            .list(SCRATCH)
            .await
            .unwrap()
            .iter()
            .map(|m| lake.relative(&m.location))
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(left.iter().all(|p| !p.contains(&old)), "{left:?}");
        assert!(!dir.path().join(format!("_scratch/{old}")).exists());
    }
}
