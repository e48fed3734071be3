//! The refresh itself: the stages of one night, in order, each skipped
//! when its inputs are unchanged since an earlier run did it and its
//! output is still current, then one publish.
//!
//! | stage | does | its inputs (fingerprinted) |
//! |---|---|---|
//! | `ingest` | `cdp ingest --source` | the source files' names, sizes and contents |
//! | `build` | `cdp build --as-of D` | the bronze manifests, the previous snapshot, the feature registry |
//! | `quality` | the gate ([`crate::quality`]); always runs | — |
//! | `tag` | `cdp tag --as-of D` (apply; fits only when there is no tagger) | D's silver run, the tagger version |
//! | `labels` | `gold.offer_labels` as of D | every silver run up to D, the offer events |
//! | `train` | `cdp train --as-of D` when due (`--retrain`, no model, or the model is `retrain_every_days` old) | the labels, the learner settings |
//! | `score` | `cdp score --as-of D` | D's silver run, the model version |
//! | `materialize` | `cdp materialize --as-of D` | D's silver run, the online target |
//! | `publish` | the release manifest ([`cdp_core::release`]), then retention | what the stages produced |
//!
//! A run killed anywhere leaves the previous release serving; the next run
//! skips what the killed one finished and redoes the rest, so its outputs
//! equal those of a run that was never interrupted.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cdp_core::config::Config;
use cdp_core::lake::Lake;
use cdp_core::progress::Progress;
use cdp_core::release::{self, RELEASE, Release};
use cdp_core::time::BusinessCalendar;
use cdp_engine::features::FeatureRegistry;
use cdp_engine::tables::LayerManifest;
use cdp_engine::tag::TagOptions;
use cdp_engine::train::TrainOptions;
use cdp_engine::{Engine, EngineOptions};
use cdp_ingest::IngestOptions;
use cdp_ingest::source::SourceDir;
use cdp_ml::offer::OfferModel;
use cdp_ml::store::{ModelStore, TaggerStore};
use cdp_store::online::OnlineTarget;
use cdp_store::online::embedded::{EmbeddedManifest, MANIFEST as ONLINE};
use chrono::{NaiveDate, Utc};
use serde_json::{Value, json};
use tracing::instrument;

use crate::error::{Error, Result};
use crate::lock::RefreshLock;
use crate::quality::{self, Outcome};
use crate::record::{self, RunRecord, RunStatus, StageRecord, StageStatus};
use crate::retention;

/// The stages of a run, in order.
pub const STAGES: [&str; 9] = [
    "ingest",
    "build",
    "quality",
    "tag",
    "labels",
    "train",
    "score",
    "materialize",
    "publish",
];

/// What to refresh.
#[derive(Debug, Clone)]
pub struct Request {
    /// A folder (or object-store URL) of new raw files to ingest first.
    pub source: Option<String>,
    /// The dates, in order: one for `--as-of`, several for a backfill.
    pub dates: Vec<NaiveDate>,
    /// Retrain the offer model whatever the schedule says.
    pub retrain: bool,
    /// Where online features go.
    pub online: OnlineTarget,
}

impl Request {
    /// The dates `from..=to`, in order.
    pub fn range(from: NaiveDate, to: NaiveDate) -> Result<Vec<NaiveDate>> {
        if from > to {
            return Err(Error::BadRange { from, to });
        }
        Ok(from.iter_days().take_while(|d| *d <= to).collect())
    }
}

/// Told about each stage as it starts and ends (the command line prints
/// these lines; tests wait on them).
pub trait Observer: Send + Sync {
    /// A stage of run `run` for `as_of` starts.
    fn started(&self, run: &str, as_of: NaiveDate, stage: &str);
    /// It ended.
    fn finished(&self, run: &str, as_of: NaiveDate, stage: &StageRecord);
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Quiet;

impl Observer for Quiet {
    fn started(&self, _: &str, _: NaiveDate, _: &str) {}
    fn finished(&self, _: &str, _: NaiveDate, _: &StageRecord) {}
}

/// Refreshes `request.dates` in order under the lake's lock; one run
/// record per date. Stops at the first date that fails (its record says
/// why) and returns the records so far with the error.
#[instrument(skip_all, fields(lake = %lake.uri(), dates = request.dates.len()))]
pub async fn refresh(
    lake: &Lake,
    config: &Config,
    request: &Request,
    progress: &dyn Progress,
    observer: &dyn Observer,
) -> std::result::Result<Vec<RunRecord>, (Vec<RunRecord>, Error)> {
    let calendar = config.time.calendar().map_err(|e| (Vec::new(), e.into()))?;
    let engine = EngineOptions::from_config(&config.engine).map_err(|e| (Vec::new(), e.into()))?;
    let registry = FeatureRegistry::embedded().map_err(|e| (Vec::new(), e.into()))?;
    let first_run = cdp_core::lake::run_id();
    let lock = RefreshLock::acquire(
        lake,
        &first_run,
        Duration::from_secs(config.refresh.lock_lease_seconds),
    )
    .await
    .map_err(|e| (Vec::new(), e))?;
    let mut records = Vec::new();
    let mut failure = None;
    for (i, as_of) in request.dates.iter().enumerate() {
        let run = if i == 0 {
            first_run.clone()
        } else {
            cdp_core::lake::run_id()
        };
        let mut night = Night {
            lake,
            config,
            calendar,
            engine: &engine,
            registry: &registry,
            progress,
            observer,
            lock: &lock,
            record: RunRecord::start(&run, *as_of, request.source.as_deref()),
            history: Vec::new(),
        };
        let source = if i == 0 {
            request.source.as_deref()
        } else {
            None
        };
        let outcome = night.run(source, request).await;
        let mut record = night.record;
        record.finished_at = Some(Utc::now());
        match &outcome {
            Ok(()) => record.status = RunStatus::Succeeded,
            Err(e @ Error::Gate { .. }) => {
                record.status = RunStatus::GateFailed;
                record.error = Some(e.to_string());
            }
            Err(e) => {
                record.status = RunStatus::Failed;
                record.error = Some(e.to_string());
            }
        }
        if let Err(e) = record.save(lake).await {
            tracing::warn!(error = %e, "could not write the final run record");
        }
        records.push(record);
        if let Err(e) = outcome {
            failure = Some(e);
            break;
        }
    }
    if let Err(e) = lock.release().await {
        tracing::warn!(error = %e, "could not release the refresh lock; it lapses with its lease");
    }
    match failure {
        None => Ok(records),
        Some(e) => Err((records, e)),
    }
}

/// One date's run.
struct Night<'a> {
    lake: &'a Lake,
    config: &'a Config,
    calendar: BusinessCalendar,
    engine: &'a EngineOptions,
    registry: &'a FeatureRegistry,
    progress: &'a dyn Progress,
    observer: &'a dyn Observer,
    lock: &'a RefreshLock,
    record: RunRecord,
    /// Earlier records of the same date, newest first.
    history: Vec<RunRecord>,
}

/// What a stage's work returns.
struct Done {
    output: Value,
    rows_in: Option<u64>,
    rows_out: Option<u64>,
    detail: Option<String>,
}

impl Night<'_> {
    async fn run(&mut self, source: Option<&str>, request: &Request) -> Result<()> {
        let as_of = self.record.as_of;
        self.history = record::list(self.lake)
            .await?
            .into_iter()
            .filter(|r| r.as_of == as_of)
            .collect();
        let release_at_start = release::current(self.lake).await?.map_or(0, |m| m.version);
        self.record.save(self.lake).await?;

        if let Some(source) = source {
            self.ingest(source).await?;
        }
        let silver_run = self.build().await?;
        self.quality().await?;
        let tagger = self.tag(&silver_run).await?;
        let labels = self.labels().await?;
        let model = self.train(&labels, request.retrain).await?;
        self.score(&silver_run, model.as_deref()).await?;
        let online = self.materialize(&silver_run, &request.online).await?;
        self.publish(
            Release {
                run: self.record.run.clone(),
                as_of,
                silver_run,
                model,
                tagger,
                online,
            },
            release_at_start,
        )
        .await?;
        self.retention().await;
        Ok(())
    }

    fn new_engine(&self) -> Result<Engine> {
        Ok(Engine::new(self.lake.clone(), self.calendar, self.engine)?)
    }

    /// The build's engine: on the Ballista cluster of `[engine] cluster`
    /// when there is one (the other stages run in this process).
    fn build_engine(&self) -> Result<Engine> {
        let options = self.engine.clone().on_cluster(&self.config.engine)?;
        Ok(Engine::new(self.lake.clone(), self.calendar, &options)?)
    }

    /// Runs one stage: skipped when an earlier run of the date did it with
    /// the same `input` and `still_current` accepts its output; otherwise
    /// `work`. The record is saved when the stage starts and when it ends.
    async fn stage(
        &mut self,
        name: &'static str,
        input: String,
        still_current: impl AsyncFnOnce(&Value) -> Result<bool>,
        work: impl AsyncFnOnce() -> Result<Done>,
    ) -> Result<Value> {
        let as_of = self.record.as_of;
        let earlier = self
            .history
            .iter()
            .filter_map(|r| r.stage(name).map(|s| (r.run.clone(), s.clone())))
            .find(|(_, s)| {
                matches!(s.status, StageStatus::Done | StageStatus::Skipped) && s.input == input
            });
        let started = Instant::now();
        let mut stage = StageRecord::start(name, input.clone());
        self.observer.started(&self.record.run, as_of, name);
        if let Some((run, done)) = earlier
            && still_current(&done.output).await?
        {
            stage.status = StageStatus::Skipped;
            stage.output = done.output;
            stage.rows_in = done.rows_in;
            stage.rows_out = done.rows_out;
            stage.detail = Some(format!("inputs unchanged since run {run}"));
            stage.seconds = started.elapsed().as_secs_f64();
            return self.finish(stage).await;
        }
        self.record.stages.push(stage.clone());
        self.record.save(self.lake).await?;
        self.record.stages.pop();
        match work().await {
            Ok(done) => {
                stage.status = StageStatus::Done;
                stage.output = done.output;
                stage.rows_in = done.rows_in;
                stage.rows_out = done.rows_out;
                stage.detail = done.detail;
                stage.seconds = started.elapsed().as_secs_f64();
                self.finish(stage).await
            }
            Err(e) => {
                stage.status = StageStatus::Failed;
                stage.detail = Some(e.to_string());
                stage.seconds = started.elapsed().as_secs_f64();
                let _ = self.finish(stage).await;
                Err(match e {
                    gate @ Error::Gate { .. } => gate,
                    other => Error::Stage {
                        run: self.record.run.clone(),
                        as_of,
                        stage: name,
                        source: Box::new(other),
                    },
                })
            }
        }
    }

    async fn finish(&mut self, stage: StageRecord) -> Result<Value> {
        let output = stage.output.clone();
        self.observer
            .finished(&self.record.run, self.record.as_of, &stage);
        self.record.stages.push(stage);
        self.record.save(self.lake).await?;
        Ok(output)
    }

    async fn ingest(&mut self, source: &str) -> Result<()> {
        let dir = SourceDir::open(source)?;
        let input = fingerprint(&json!({ "source_files": dir.content_hash().await? }));
        let lake = self.lake.clone();
        let options = IngestOptions {
            calendar: self.calendar,
            ..IngestOptions::default()
        };
        let quality = self.config.refresh.quality.clone();
        let progress = self.progress;
        let mut checks = Vec::new();
        let output = self
            .stage(
                "ingest",
                input,
                async |_| Ok(true),
                async || {
                    let report = cdp_ingest::ingest(&lake, source, &options, progress).await?;
                    checks = quality::ingest_checks(&report, &quality);
                    let read: u64 = report.sources.values().map(|s| s.counts.read).sum();
                    let accepted: u64 = report.sources.values().map(|s| s.counts.accepted).sum();
                    let unreadable = report.unreadable.len();
                    Ok(Done {
                        output: json!({
                            "ingest_run": report.run,
                            "sources": report.sources,
                            "unreadable": report.unreadable,
                        }),
                        rows_in: Some(read),
                        rows_out: Some(accepted),
                        detail: (unreadable > 0).then(|| {
                            format!("{unreadable} files could not be read; retried next run")
                        }),
                    })
                },
            )
            .await?;
        if checks.is_empty() {
            // skipped: the checks of the run that ingested these files
            checks = self
                .history
                .iter()
                .find(|r| r.stage("ingest").is_some())
                .map(|r| {
                    r.checks
                        .iter()
                        .filter(|c| c.name.starts_with("ingest."))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
        }
        if let Some(unreadable) = output.get("unreadable").and_then(Value::as_array)
            && !unreadable.is_empty()
        {
            self.record.warnings.push(format!(
                "{} source files could not be read: {}",
                unreadable.len(),
                Value::Array(unreadable.clone())
            ));
        }
        self.record.checks.extend(checks);
        Ok(())
    }

    async fn build(&mut self) -> Result<String> {
        let as_of = self.record.as_of;
        let lake = self.lake.clone();
        let mut bronze = BTreeMap::new();
        for contract in cdp_core::contract::Contracts::embedded().iter() {
            let source = &contract.source;
            let version = lake
                .read_manifest::<Value>(&format!("bronze/{source}"))
                .await?
                .map_or(0, |m| m.version);
            bronze.insert(source.to_string(), version);
        }
        let silver = lake.read_manifest::<LayerManifest>("silver").await?;
        let previous = silver.as_ref().and_then(|m| {
            m.body
                .snapshots
                .range(..as_of)
                .next_back()
                .map(|(d, s)| (d.to_string(), s.run.clone()))
        });
        let input = fingerprint(&json!({
            "as_of": as_of,
            "bronze": bronze,
            "previous": previous,
            "features": registry_fingerprint(self.registry),
            "timezone": self.config.time.timezone,
        }));
        let engine = self.build_engine()?;
        let registry = self.registry;
        let progress = self.progress;
        let output = self
            .stage(
                "build",
                input,
                async |out| Ok(silver_run(&lake, as_of).await?.as_deref() == out["run"].as_str()),
                async || {
                    let report =
                        cdp_engine::build::build(&engine, registry, as_of, progress).await?;
                    Ok(Done {
                        rows_in: Some(report.customer_ids),
                        rows_out: Some(report.persons),
                        output: json!({ "run": report.run, "rows": report.rows }),
                        detail: None,
                    })
                },
            )
            .await?;
        Ok(output["run"].as_str().unwrap_or_default().to_string())
    }

    async fn quality(&mut self) -> Result<()> {
        let as_of = self.record.as_of;
        let started = Instant::now();
        let mut stage = StageRecord::start("quality", String::new());
        self.observer.started(&self.record.run, as_of, "quality");
        let engine = self.new_engine()?;
        let previous = self
            .lake
            .read_manifest::<LayerManifest>("silver")
            .await?
            .and_then(|m| m.body.snapshots.range(..as_of).next_back().map(|(d, _)| *d));
        let features = cdp_engine::train::model_features(self.registry);
        let (checks, drift) = quality::snapshot_checks(
            &engine,
            as_of,
            previous,
            &features,
            &self.config.refresh.quality,
        )
        .await?;
        self.record.checks.extend(checks);
        self.record.drift = drift;
        for c in &self.record.checks {
            if c.outcome == Outcome::Warn {
                self.record.warnings.push(format!(
                    "{} = {:.4}: {} (bound {})",
                    c.name, c.value, c.detail, c.threshold
                ));
            }
        }
        let failed: Vec<String> = self
            .record
            .checks
            .iter()
            .filter(|c| c.outcome == Outcome::Fail)
            .map(|c| {
                format!(
                    "{} = {:.4}, bound {}: {}",
                    c.name, c.value, c.threshold, c.detail
                )
            })
            .collect();
        stage.status = if failed.is_empty() {
            StageStatus::Done
        } else {
            StageStatus::Failed
        };
        stage.output = json!({
            "checks": self.record.checks.len(),
            "warnings": self.record.warnings.len(),
            "failed": failed,
            "previous": previous,
        });
        stage.seconds = started.elapsed().as_secs_f64();
        self.finish(stage).await?;
        if failed.is_empty() {
            Ok(())
        } else {
            Err(Error::Gate {
                run: self.record.run.clone(),
                as_of,
                failed: failed.join("; "),
            })
        }
    }

    async fn tag(&mut self, silver_run: &str) -> Result<Option<String>> {
        let as_of = self.record.as_of;
        let lake = self.lake.clone();
        let tagger = TaggerStore::new(&lake)
            .registry()
            .await?
            .and_then(|m| m.body.current);
        let input = fingerprint(&json!({ "silver": silver_run, "tagger": tagger }));
        let engine = self.new_engine()?;
        let settings = self.config.tagger.clone();
        let progress = self.progress;
        let output = self
            .stage(
                "tag",
                input,
                async |out| gold_has(&lake, as_of, "tags", out["file"].as_str()).await,
                async || {
                    let report = cdp_engine::tag::tag(
                        &engine,
                        &settings,
                        as_of,
                        &TagOptions::default(),
                        progress,
                    )
                    .await?;
                    let file = gold_file(engine.lake(), as_of, "tags").await?;
                    Ok(Done {
                        rows_out: Some(report.customers),
                        detail: report.fitted.map(|why| format!("tagger fitted: {why}")),
                        output: json!({ "tagger": report.tagger_version, "file": file }),
                        rows_in: None,
                    })
                },
            )
            .await?;
        Ok(output["tagger"].as_str().map(str::to_string))
    }

    async fn labels(&mut self) -> Result<String> {
        let as_of = self.record.as_of;
        let lake = self.lake.clone();
        let silver: BTreeMap<String, String> = lake
            .read_manifest::<LayerManifest>("silver")
            .await?
            .map(|m| {
                m.body
                    .snapshots
                    .range(..=as_of)
                    .map(|(d, s)| (d.to_string(), s.run.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let offers = lake
            .read_manifest::<Value>("bronze/offer_events")
            .await?
            .map_or(0, |m| m.version);
        let input = fingerprint(&json!({
            "silver": silver,
            "offer_events": offers,
            "max_feature_age_days": self.config.offers.max_feature_age_days,
        }));
        let engine = self.new_engine()?;
        let settings = self.config.offers.clone();
        let output = self
            .stage(
                "labels",
                input,
                async |out| gold_has(&lake, as_of, "offer_labels", out["file"].as_str()).await,
                async || {
                    let report = cdp_engine::train::labels(&engine, &settings, as_of).await?;
                    let file = gold_file(engine.lake(), as_of, "offer_labels").await?;
                    Ok(Done {
                        rows_out: Some(report.labelled),
                        detail: Some(format!(
                            "{} labelled offers, {} accepted, {} without a snapshot in reach",
                            report.labelled, report.accepted, report.without_snapshot
                        )),
                        output: json!({ "file": file, "labelled": report.labelled }),
                        rows_in: None,
                    })
                },
            )
            .await?;
        Ok(output["file"].as_str().unwrap_or_default().to_string())
    }

    async fn train(&mut self, labels: &str, retrain: bool) -> Result<Option<String>> {
        let as_of = self.record.as_of;
        let lake = self.lake.clone();
        let store = ModelStore::<OfferModel>::new(&lake);
        let current = store.registry().await?.and_then(|m| {
            let current = m.body.current.clone()?;
            let fitted_on = m
                .body
                .versions
                .iter()
                .find(|v| v.version == current)
                .and_then(|v| v.fitted_on);
            Some((current, fitted_on))
        });
        let every = self.config.refresh.retrain_every_days;
        let due = match &current {
            _ if retrain => Some("--retrain".to_string()),
            None => Some("no offer model yet".to_string()),
            Some((_, Some(fitted_on)))
                if every > 0 && (as_of - *fitted_on).num_days() >= i64::from(every) =>
            {
                Some(format!(
                    "the current model was fitted on {fitted_on}, {every}+ days ago"
                ))
            }
            Some((_, None)) if every > 0 => {
                Some("the current model's fitting date is unknown".into())
            }
            Some(_) => None,
        };
        let Some(why) = due else {
            let (version, fitted_on) = current.expect("not due only with a current model");
            let mut stage = StageRecord::start("train", String::new());
            stage.status = StageStatus::NotDue;
            stage.output = json!({ "version": version });
            stage.detail = Some(format!(
                "model {version} fitted on {} is younger than {every} days",
                fitted_on.map_or("?".into(), |d| d.to_string())
            ));
            self.observer.started(&self.record.run, as_of, "train");
            self.finish(stage).await?;
            return Ok(Some(version));
        };
        let settings = self.config.offers.clone();
        let input = fingerprint(&json!({
            "labels": labels,
            "algo": settings.algo,
            "params": settings.params,
            "split": [settings.valid_share, settings.test_share],
        }));
        let engine = self.new_engine()?;
        let registry = self.registry;
        let progress = self.progress;
        let output = self
            .stage(
                "train",
                input,
                async |out| {
                    let Some(version) = out["version"].as_str() else {
                        return Ok(false);
                    };
                    let store = ModelStore::<OfferModel>::new(&lake);
                    let registered = store
                        .registry()
                        .await?
                        .is_some_and(|m| m.body.versions.iter().any(|v| v.version == version));
                    if registered {
                        store.make_current(version).await?;
                    }
                    Ok(registered)
                },
                async || {
                    let options = TrainOptions {
                        reuse: true,
                        ..TrainOptions::default()
                    };
                    let report = cdp_engine::train::train(
                        &engine, &settings, registry, as_of, &options, progress,
                    )
                    .await?;
                    Ok(Done {
                        rows_in: Some(report.offers.used),
                        rows_out: None,
                        detail: Some(format!(
                            "{why}; {} {}, test AUC {:.4}",
                            if report.reused { "reused" } else { "fitted" },
                            report.version,
                            report.test_auc
                        )),
                        output: json!({
                            "version": report.version,
                            "test_auc": report.test_auc,
                            "data_hash": report.data_hash,
                        }),
                    })
                },
            )
            .await?;
        Ok(output["version"].as_str().map(str::to_string))
    }

    async fn score(&mut self, silver_run: &str, model: Option<&str>) -> Result<()> {
        let as_of = self.record.as_of;
        let lake = self.lake.clone();
        let input = fingerprint(&json!({ "silver": silver_run, "model": model }));
        let engine = self.new_engine()?;
        let settings = self.config.offers.clone();
        let progress = self.progress;
        self.stage(
            "score",
            input,
            async |out| gold_has(&lake, as_of, "scores", out["file"].as_str()).await,
            async || {
                let report = cdp_engine::score::score(&engine, &settings, as_of, progress).await?;
                let file = gold_file(engine.lake(), as_of, "scores").await?;
                Ok(Done {
                    rows_in: Some(report.customers),
                    rows_out: Some(report.scores),
                    output: json!({ "file": file, "model": report.model_version }),
                    detail: None,
                })
            },
        )
        .await?;
        Ok(())
    }

    async fn materialize(
        &mut self,
        silver_run: &str,
        target: &OnlineTarget,
    ) -> Result<Option<u64>> {
        let as_of = self.record.as_of;
        let lake = self.lake.clone();
        let (target_name, embedded) = match target {
            OnlineTarget::Embedded => ("embedded".to_string(), true),
            OnlineTarget::Redis(url) => (redacted(url), false),
        };
        let input = fingerprint(&json!({ "silver": silver_run, "online": target_name }));
        let engine = self.new_engine()?;
        let registry = self.registry;
        let settings = self.config.online.clone();
        let progress = self.progress;
        let output = self
            .stage(
                "materialize",
                input,
                async |out| {
                    // Redis is written in place: always re-checked by a write
                    if !embedded {
                        return Ok(false);
                    }
                    let Some(version) = out["version"].as_u64() else {
                        return Ok(false);
                    };
                    let Some(m) = lake
                        .read_manifest_version::<EmbeddedManifest>(ONLINE, version)
                        .await?
                    else {
                        return Ok(false);
                    };
                    Ok(lake.get(&m.body.index).await?.is_some())
                },
                async || {
                    let report = cdp_store::materialize::materialize(
                        &engine, registry, as_of, target, &settings, progress,
                    )
                    .await?;
                    Ok(Done {
                        rows_out: Some(report.rows),
                        output: json!({ "version": report.version, "backend": report.backend }),
                        rows_in: None,
                        detail: (!report.skipped_features.is_empty()).then(|| {
                            format!(
                                "not in the snapshot: {}",
                                report.skipped_features.join(", ")
                            )
                        }),
                    })
                },
            )
            .await?;
        Ok(if embedded {
            output["version"].as_u64()
        } else {
            None
        })
    }

    async fn publish(&mut self, body: Release, expected: u64) -> Result<()> {
        let as_of = self.record.as_of;
        let started = Instant::now();
        self.observer.started(&self.record.run, as_of, "publish");
        let current = release::current(self.lake).await?;
        let unchanged = current.as_ref().is_some_and(|m| {
            let mut same = m.body.clone();
            same.run = body.run.clone();
            same == body
        });
        let mut stage = StageRecord::start(
            "publish",
            fingerprint(&serde_json::to_value(&body).unwrap_or_default()),
        );
        stage.status = StageStatus::Done;
        let later = current.as_ref().filter(|m| m.body.as_of > as_of);
        let version = if unchanged {
            let m = current.expect("unchanged implies a release");
            stage.status = StageStatus::Skipped;
            stage.detail = Some(format!(
                "release {} already serves these outputs",
                m.version
            ));
            m.version
        } else if let Some(m) = later {
            // a backfill of past dates never takes serving back in time
            stage.status = StageStatus::Skipped;
            stage.detail = Some(format!(
                "release {} serves a later date, {}; left as it is",
                m.version, m.body.as_of
            ));
            m.version
        } else {
            self.lock.check().await?;
            let found = current.as_ref().map_or(0, |m| m.version);
            if found != expected {
                return Err(Error::ReleaseMoved {
                    run: self.record.run.clone(),
                    expected,
                    found,
                });
            }
            match self.lake.publish(RELEASE, &body, Some(expected)).await {
                Ok(m) => m.version,
                Err(cdp_core::Error::ManifestConflict { version, .. }) => {
                    return Err(Error::ReleaseMoved {
                        run: self.record.run.clone(),
                        expected,
                        found: version,
                    });
                }
                Err(e) => return Err(e.into()),
            }
        };
        stage.output = json!({ "release": version, "as_of": as_of, "model": body.model, "online": body.online });
        stage.seconds = started.elapsed().as_secs_f64();
        if stage.status == StageStatus::Done {
            self.record.published = Some(version);
        }
        self.finish(stage).await?;
        Ok(())
    }

    /// Retention after a publish; a failure is a warning, not a failed run.
    async fn retention(&mut self) {
        match retention::gc(self.lake, &self.config.retention, false).await {
            Ok(report) => {
                self.record.retention = BTreeMap::from([
                    ("dates_dropped".into(), report.dates_dropped.len() as u64),
                    ("models_dropped".into(), report.models_dropped.len() as u64),
                    ("files_deleted".into(), report.files_deleted),
                    ("bytes_deleted".into(), report.bytes_deleted),
                    ("runs_deleted".into(), report.runs_deleted),
                    ("scratch_files_deleted".into(), report.scratch_files_deleted),
                ]);
            }
            Err(e) => self
                .record
                .warnings
                .push(format!("retention failed (the publish stands): {e}")),
        }
    }
}

/// The run of silver snapshot `as_of`, if built.
async fn silver_run(lake: &Lake, as_of: NaiveDate) -> Result<Option<String>> {
    Ok(lake
        .read_manifest::<LayerManifest>("silver")
        .await?
        .and_then(|m| m.body.snapshots.get(&as_of).map(|s| s.run.clone())))
}

/// The first file of gold table `table` as of `as_of`.
async fn gold_file(lake: &Lake, as_of: NaiveDate, table: &str) -> Result<Option<String>> {
    Ok(lake
        .read_manifest::<LayerManifest>("gold")
        .await?
        .and_then(|m| {
            m.body
                .snapshots
                .get(&as_of)
                .and_then(|s| s.tables.get(table))
                .and_then(|t| t.files.first().cloned())
        }))
}

/// Whether gold table `table` as of `as_of` is still the file `file`.
async fn gold_has(lake: &Lake, as_of: NaiveDate, table: &str, file: Option<&str>) -> Result<bool> {
    Ok(file.is_some() && gold_file(lake, as_of, table).await?.as_deref() == file)
}

/// A fingerprint of a JSON value (maps serialize with sorted keys).
pub fn fingerprint(value: &Value) -> String {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    format!("xxh3-128:{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes))
}

/// The feature registry's declarations, fingerprinted.
fn registry_fingerprint(registry: &FeatureRegistry) -> String {
    let families: Vec<Value> = registry
        .families()
        .iter()
        .map(|f| {
            json!({
                "name": f.name,
                "sql": f.sql,
                "features": f.features.iter().map(|x| json!([x.name, x.ty.name(), x.ttl_days, x.default])).collect::<Vec<_>>(),
            })
        })
        .collect();
    fingerprint(&Value::Array(families))
}

/// A Redis URL without its password, for records.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_follow_content_not_key_order() {
        let a = fingerprint(&json!({"a": 1, "b": [1, 2]}));
        let b = fingerprint(&serde_json::from_str(r#"{"b": [1, 2], "a": 1}"#).unwrap());
        assert_eq!(a, b);
        assert_ne!(a, fingerprint(&json!({"a": 2, "b": [1, 2]})));
    }

    #[test]
    fn backfill_ranges_are_inclusive_and_ordered() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert_eq!(
            Request::range(d("2026-03-14"), d("2026-03-16")).unwrap(),
            [d("2026-03-14"), d("2026-03-15"), d("2026-03-16")]
        );
        assert!(matches!(
            Request::range(d("2026-03-16"), d("2026-03-14")),
            Err(Error::BadRange { .. })
        ));
    }

    #[test]
    fn redis_passwords_stay_out_of_records() {
        assert_eq!(redacted("redis://:secret@h:6379/0"), "redis://***@h:6379/0");
        assert_eq!(redacted("redis://h:6379/0"), "redis://h:6379/0");
    }
}
