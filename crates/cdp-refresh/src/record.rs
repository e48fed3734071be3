//! Run records: one JSON document per refresh run in `_runs/`, written when
//! the run starts and rewritten after every stage, so a run killed half-way
//! still says how far it got. `cdp runs list` and `cdp runs show ID` read
//! them; the next run reads them to skip stages whose inputs are unchanged.

use std::collections::BTreeMap;

use bytes::Bytes;
use cdp_core::lake::Lake;
use cdp_core::release::hostname;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::quality::{Check, FeatureDrift};

/// Folder of run records inside the lake.
pub const RUNS: &str = "_runs";

/// How a run ended (or that it has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Still running, or killed before it could say otherwise.
    Running,
    /// Every stage passed and the release was published.
    Succeeded,
    /// The quality gate failed; nothing was published.
    GateFailed,
    /// A stage failed; nothing was published.
    Failed,
}

/// What became of one stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    /// Started and not finished (or killed).
    Running,
    /// Did its work.
    Done,
    /// Its inputs were unchanged since an earlier run did it; its output
    /// is still current.
    Skipped,
    /// Not due (training outside its schedule).
    NotDue,
    /// Failed.
    Failed,
}

/// One stage of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    /// `ingest`, `build`, `quality`, `tag`, `labels`, `train`, `score`,
    /// `materialize`, `publish`.
    pub name: String,
    /// What became of it.
    pub status: StageStatus,
    /// A fingerprint of its inputs: equal fingerprints, same work.
    pub input: String,
    /// What it produced (run ids, versions, files), stage-specific.
    pub output: serde_json::Value,
    /// Rows read, when the stage counts them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_in: Option<u64>,
    /// Rows written, when the stage counts them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_out: Option<u64>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Wall time.
    pub seconds: f64,
    /// For people: why skipped, what failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl StageRecord {
    /// A stage starting now, with inputs of fingerprint `input` (empty
    /// for a stage that always runs).
    pub fn start(name: &str, input: String) -> Self {
        StageRecord {
            name: name.into(),
            status: StageStatus::Running,
            input,
            output: serde_json::Value::Null,
            rows_in: None,
            rows_out: None,
            started_at: Utc::now(),
            seconds: 0.0,
            detail: None,
        }
    }
}

/// One refresh run of one date.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run id (sorts by start time).
    pub run: String,
    /// The business date refreshed.
    pub as_of: NaiveDate,
    /// The source folder ingested, if any.
    pub source: Option<String>,
    /// Host and process id.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended (`None` while running, or when killed).
    pub finished_at: Option<DateTime<Utc>>,
    /// How it ended.
    pub status: RunStatus,
    /// The error, when it failed.
    pub error: Option<String>,
    /// Its stages, in order.
    pub stages: Vec<StageRecord>,
    /// Data-quality checks.
    pub checks: Vec<Check>,
    /// Population stability of every numeric feature against the previous
    /// snapshot.
    pub drift: Vec<FeatureDrift>,
    /// Warnings for people.
    pub warnings: Vec<String>,
    /// The release version it published.
    pub published: Option<u64>,
    /// Files and bytes retention removed after the publish.
    #[serde(default)]
    pub retention: BTreeMap<String, u64>,
}

impl RunRecord {
    /// A new running record.
    pub fn start(run: &str, as_of: NaiveDate, source: Option<&str>) -> Self {
        RunRecord {
            run: run.into(),
            as_of,
            source: source.map(str::to_string),
            host: hostname(),
            pid: std::process::id(),
            started_at: Utc::now(),
            finished_at: None,
            status: RunStatus::Running,
            error: None,
            stages: Vec::new(),
            checks: Vec::new(),
            drift: Vec::new(),
            warnings: Vec::new(),
            published: None,
            retention: BTreeMap::new(),
        }
    }

    /// Seconds from start to finish (or to now).
    pub fn seconds(&self) -> f64 {
        let end = self.finished_at.unwrap_or_else(Utc::now);
        (end - self.started_at).num_milliseconds() as f64 / 1000.0
    }

    /// The stage named `name`, if it ran.
    pub fn stage(&self, name: &str) -> Option<&StageRecord> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// Writes the record to the lake (replacing the previous write).
    pub async fn save(&self, lake: &Lake) -> Result<()> {
        let path = record_path(&self.run);
        let bytes = serde_json::to_vec_pretty(self).map_err(|source| Error::Corrupt {
            path: path.clone(),
            source,
        })?;
        lake.put(&path, Bytes::from(bytes)).await?;
        Ok(())
    }
}

/// Where the record of `run` lives, relative to the lake root.
pub fn record_path(run: &str) -> String {
    format!("{RUNS}/{run}.json")
}

/// Every run record, newest first.
pub async fn list(lake: &Lake) -> Result<Vec<RunRecord>> {
    let mut records = Vec::new();
    for meta in lake.list(RUNS).await? {
        let path = lake.relative(&meta.location);
        if !path.ends_with(".json") {
            continue;
        }
        let Some(bytes) = lake.get(&path).await? else {
            continue;
        };
        records.push(
            serde_json::from_slice::<RunRecord>(&bytes)
                .map_err(|source| Error::Corrupt { path, source })?,
        );
    }
    records.sort_by(|a, b| b.run.cmp(&a.run));
    Ok(records)
}

/// The record of run `id` (or the one run whose id starts with `id`).
pub async fn show(lake: &Lake, id: &str) -> Result<RunRecord> {
    let matches: Vec<RunRecord> = list(lake)
        .await?
        .into_iter()
        .filter(|r| r.run.starts_with(id))
        .collect();
    match matches.len() {
        0 => Err(Error::NoSuchRun { id: id.into() }),
        1 => Ok(matches.into_iter().next().expect("one")),
        _ => match matches.iter().position(|r| r.run == id) {
            Some(i) => Ok(matches.into_iter().nth(i).expect("found")),
            None => Err(Error::AmbiguousRun {
                id: id.into(),
                matches: matches
                    .iter()
                    .map(|r| r.run.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_are_found_by_prefix() {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async {
                let lake = Lake::open("memory://").unwrap();
                let day: NaiveDate = "2026-03-17".parse().unwrap();
                let mut a = RunRecord::start("20261207T010000Z-aaaaaa", day, Some("drop/"));
                a.status = RunStatus::Succeeded;
                a.save(&lake).await.unwrap();
                RunRecord::start("20261207T020000Z-bbbbbb", day, None)
                    .save(&lake)
                    .await
                    .unwrap();
                let all = list(&lake).await.unwrap();
                assert_eq!(all.len(), 2);
                assert_eq!(all[0].run, "20261207T020000Z-bbbbbb", "newest first");
                assert_eq!(show(&lake, "20261207T01").await.unwrap(), a);
                assert!(matches!(
                    show(&lake, "20261207T0").await,
                    Err(Error::AmbiguousRun { .. })
                ));
                assert!(matches!(
                    show(&lake, "nope").await,
                    Err(Error::NoSuchRun { .. })
                ));
            });
    }
}
