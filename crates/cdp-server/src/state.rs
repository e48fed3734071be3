//! What the server serves, and how a newer publish replaces it.
//!
//! A [`Serving`] is immutable: the profiles of one snapshot date, the
//! card catalogue and the current offer model. It is built off the request
//! path by a [`Loader`] and swapped in atomically ([`arc_swap`]): a request
//! holds the `Arc` it started with, so a reload never fails or blocks one.
//!
//! Which date is served: the one last materialized into the online store
//! (`cdp materialize`), so profiles, features and scores describe the same
//! day; before any materialization, the newest built snapshot (profiles
//! only).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use cdp_core::lake::Lake;
use cdp_core::release::{self, ServingPin, hostname};
use cdp_core::time::BusinessCalendar;
use cdp_engine::serving;
use cdp_engine::tables::LayerManifest;
use cdp_engine::{Engine, EngineOptions};
use cdp_ml::offer::OfferModel;
use cdp_ml::store::ModelStore;
use cdp_store::online::embedded::{served_manifest, snapshot_folder};
use cdp_store::online::{OnlineStore, SnapshotInfo};
use chrono::{DateTime, NaiveDate, Utc};
use tracing::{info, instrument, warn};

use crate::error::Result;
use crate::metrics::Metrics;
use crate::profiles::Profiles;
use crate::scoring::{Precomputed, Scorer};

/// What the lake had published when a [`Serving`] was loaded; a reload
/// happens when it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// The date served.
    pub as_of: NaiveDate,
    /// The release served (its manifest version and offer model version)
    /// when the lake has one; it alone then decides what serves.
    pub release: Option<(u64, Option<String>)>,
    /// Version of the silver layer manifest.
    pub silver: u64,
    /// Version of the gold layer manifest (tags).
    pub gold: u64,
    /// Version of the offer model registry.
    pub models: u64,
    /// What the online store serves (date, event time, rows).
    pub online: Option<(NaiveDate, DateTime<Utc>, u64)>,
}

/// One loaded snapshot, served until a newer one replaces it.
#[derive(Debug)]
pub struct Serving {
    /// The snapshot date.
    pub as_of: NaiveDate,
    /// The build run of the silver snapshot.
    pub run: String,
    /// The snapshot's cutoff: every event before it went in.
    pub event_time: DateTime<Utc>,
    /// Profiles and their key index.
    pub profiles: Profiles,
    /// The current offer model with the catalogue; `None` before `cdp train`.
    pub scorer: Option<Scorer>,
    /// The date's `gold.scores`, answered from when its model is the one served.
    pub precomputed: Option<Precomputed>,
    /// What the online store serves; `None` before `cdp materialize`.
    pub online: Option<SnapshotInfo>,
    /// The embedded online snapshot's folder (for the serving pin).
    pub online_folder: Option<String>,
    /// When it was loaded.
    pub loaded_at: DateTime<Utc>,
    /// What it was loaded from.
    pub fingerprint: Fingerprint,
}

/// Loads [`Serving`]s from the lake.
#[derive(Debug, Clone)]
pub struct Loader {
    lake: Lake,
    calendar: BusinessCalendar,
    engine: EngineOptions,
    pii: bool,
}

impl Loader {
    /// A loader over `lake`; raw PII is loaded only when `pii` is set (some
    /// API key holds the PII scope).
    pub fn new(lake: Lake, calendar: BusinessCalendar, engine: EngineOptions, pii: bool) -> Self {
        Loader {
            lake,
            calendar,
            engine,
            pii,
        }
    }

    /// What is published now; `None` when nothing is built yet.
    pub async fn fingerprint(&self, online: Option<&SnapshotInfo>) -> Result<Option<Fingerprint>> {
        let version = |m: Option<u64>| m.unwrap_or(0);
        if let Some(release) = cdp_core::release::current(&self.lake).await? {
            // `cdp refresh` published everything this names together
            return Ok(Some(Fingerprint {
                as_of: release.body.as_of,
                release: Some((release.version, release.body.model)),
                silver: 0,
                gold: 0,
                models: 0,
                online: online.map(|i| (i.as_of, i.event_time, i.rows)),
            }));
        }
        let silver = self.lake.read_manifest::<LayerManifest>("silver").await?;
        let Some(silver) = silver else {
            return Ok(None);
        };
        let as_of = match online {
            Some(info) => info.as_of,
            None => match silver.body.snapshots.keys().next_back() {
                Some(d) => *d,
                None => return Ok(None),
            },
        };
        let gold = self
            .lake
            .read_manifest::<LayerManifest>("gold")
            .await?
            .map(|m| m.version);
        let models = ModelStore::<OfferModel>::new(&self.lake)
            .registry()
            .await
            .map_err(crate::Error::Model)?
            .map(|m| m.version);
        Ok(Some(Fingerprint {
            as_of,
            release: None,
            silver: silver.version,
            gold: version(gold),
            models: version(models),
            online: online.map(|i| (i.as_of, i.event_time, i.rows)),
        }))
    }

    /// Loads what `fingerprint` describes.
    #[instrument(skip_all, fields(as_of = %fingerprint.as_of))]
    pub async fn load(
        &self,
        fingerprint: Fingerprint,
        online: Option<SnapshotInfo>,
    ) -> Result<Serving> {
        let engine = Engine::new(self.lake.clone(), self.calendar, &self.engine)?;
        let tables = serving::load(&engine, fingerprint.as_of, self.pii).await?;
        let profiles = Profiles::new(&tables.profiles)?;
        let models = ModelStore::<OfferModel>::new(&self.lake);
        let model = match &fingerprint.release {
            Some((_, Some(version))) => Some(models.load(version).await?),
            Some((_, None)) => None,
            None => models.current().await?,
        };
        let scorer = model
            .map(|model| Scorer::new(model, &tables.products))
            .transpose()?;
        let precomputed = tables.scores.as_ref().map(Precomputed::new).transpose()?;
        let online_folder = served_manifest(&self.lake)
            .await
            .ok()
            .flatten()
            .map(|m| snapshot_folder(&m.body));
        Ok(Serving {
            online_folder,
            precomputed,
            as_of: tables.as_of,
            run: tables.run,
            event_time: self.calendar.as_of_cutoff(tables.as_of),
            profiles,
            scorer,
            online,
            loaded_at: Utc::now(),
            fingerprint,
        })
    }
}

/// Keeps the current [`Serving`] up to date with the lake.
#[derive(Debug, Clone)]
pub struct Reloader {
    /// What requests read.
    pub current: Arc<ArcSwapOption<Serving>>,
    loader: Loader,
    online: Arc<dyn OnlineStore>,
    metrics: Arc<Metrics>,
    instance: String,
}

impl Reloader {
    /// A reloader with nothing loaded yet.
    pub fn new(loader: Loader, online: Arc<dyn OnlineStore>, metrics: Arc<Metrics>) -> Self {
        Reloader {
            current: Arc::new(ArcSwapOption::empty()),
            loader,
            online,
            metrics,
            instance: format!("serve-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// Loads what is published when it differs from what is served;
    /// `true` when a new snapshot was swapped in. A failed load leaves the
    /// served snapshot in place.
    pub async fn check(&self) -> Result<bool> {
        if let Err(e) = self.online.refresh().await {
            warn!(error = %e, "online store refresh failed; serving the previous snapshot");
        }
        let online = self.online.info().await?;
        let Some(fingerprint) = self.loader.fingerprint(online.as_ref()).await? else {
            return Ok(false);
        };
        if self
            .current
            .load()
            .as_ref()
            .is_some_and(|s| s.fingerprint == fingerprint)
        {
            return Ok(false);
        }
        let started = Instant::now();
        // DataFusion's work runs on a runtime of its own, off the threads
        // that answer requests.
        let loader = self.loader.clone();
        let load = tokio::task::spawn_blocking(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| crate::Error::NotReady {
                    reason: format!("cannot start the loader runtime: {e}"),
                })?;
            runtime.block_on(loader.load(fingerprint, online))
        })
        .await
        .map_err(|e| crate::Error::NotReady {
            reason: format!("the loader stopped: {e}"),
        });
        match load.and_then(|r| r) {
            Ok(serving) => {
                info!(
                    as_of = %serving.as_of,
                    run = %serving.run,
                    customers = serving.profiles.len(),
                    model = serving.scorer.as_ref().map_or("none", |s| s.version()),
                    online = serving.online.is_some(),
                    seconds = started.elapsed().as_secs_f64(),
                    "serving a new snapshot"
                );
                self.metrics.loaded(&serving);
                self.current.store(Some(Arc::new(serving)));
                Ok(true)
            }
            Err(e) => {
                self.metrics.reload_failed();
                Err(e)
            }
        }
    }

    /// Checks every `interval` until `shutdown` resolves; failures are
    /// logged and retried at the next tick. Meanwhile the server's pin in
    /// the lake names what it serves, renewed every [`PIN_RENEWAL`], so
    /// retention keeps those files; it is removed at shutdown.
    pub async fn watch(self, interval: Duration, shutdown: impl std::future::Future<Output = ()>) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        let mut pinned: Option<(Instant, String)> = None;
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = ticks.tick() => {
                    if let Err(e) = self.check().await {
                        warn!(error = %e, "reload failed; serving the previous snapshot");
                    }
                    self.renew_pin(&mut pinned).await;
                }
            }
        }
        if let Err(e) = release::remove_pin(&self.loader.lake, &self.instance).await {
            warn!(error = %e, "could not remove the serving pin; it lapses with its lease");
        }
    }

    /// Writes the pin when what is served changed or the last write is
    /// [`PIN_RENEWAL`] old.
    async fn renew_pin(&self, pinned: &mut Option<(Instant, String)>) {
        let Some(serving) = self.current.load_full() else {
            return;
        };
        let what = format!("{}/{}", serving.run, serving.fingerprint.silver);
        if pinned
            .as_ref()
            .is_some_and(|(at, w)| *w == what && at.elapsed() < PIN_RENEWAL)
        {
            return;
        }
        let pin = ServingPin {
            instance: self.instance.clone(),
            host: hostname(),
            pid: std::process::id(),
            as_of: serving.as_of,
            silver_run: serving.run.clone(),
            model: serving.scorer.as_ref().map(|s| s.version().to_string()),
            online_folder: serving.online_folder.clone(),
            heartbeat_at: Utc::now(),
        };
        match release::write_pin(&self.loader.lake, &pin).await {
            Ok(()) => *pinned = Some((Instant::now(), what)),
            Err(e) => warn!(error = %e, "could not write the serving pin"),
        }
    }
}

/// How often a running server renews its pin (well within
/// `[retention] pin_lease_seconds`).
pub const PIN_RENEWAL: Duration = Duration::from_secs(30);
