//! The DataFusion session cdp runs every query in: sized for this machine
//! (a fair, spilling memory pool with the configured limit, one partition per
//! core), with the lake's object store and cdp's functions registered, and
//! the `bronze`, `silver`, `gold` and `ref` schemas ready for tables.
//!
//! The same session can hand its plans to an Apache DataFusion Ballista
//! scheduler instead ([`EngineOptions::scheduler`]): SQL is planned here,
//! the optimized plan runs on the cluster's executors, and results stream
//! back. Such an engine keeps in-memory tables out of its plans (they do not
//! travel) and puts a job's intermediate files in the lake
//! ([`Engine::scratch`]), where every executor can reach them.

use std::path::PathBuf;
use std::sync::Arc;

use ballista_core::extension::SessionStateExt;
use bytes::Bytes;
use cdp_core::lake::Lake;
use cdp_core::time::BusinessCalendar;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use url::Url;

use crate::error::{Error, Result};
use crate::udf;

/// The schemas every session has.
pub const SCHEMAS: [&str; 4] = ["bronze", "silver", "gold", "ref"];

/// How much of the machine a session may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineOptions {
    /// Bytes the memory pool hands out before operators must spill.
    pub memory_limit: u64,
    /// Parallel partitions per query (0: one per core).
    pub target_partitions: usize,
    /// Folder for spill files (`None`: the system temporary folder).
    pub spill_dir: Option<PathBuf>,
    /// The Ballista scheduler (`host:port`) to run plans on; `None` runs
    /// them in this process.
    pub scheduler: Option<String>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            memory_limit: 2 << 30,
            target_partitions: 0,
            spill_dir: None,
            scheduler: None,
        }
    }
}

impl EngineOptions {
    /// Options from the `[engine]` section of the configuration, for plans
    /// run in this process (see [`EngineOptions::on_cluster`]).
    pub fn from_config(config: &cdp_core::config::EngineConfig) -> Result<Self> {
        Ok(Self {
            memory_limit: config.memory_limit_bytes(total_memory())?,
            target_partitions: config.target_partitions,
            spill_dir: (!config.spill_dir.is_empty()).then(|| PathBuf::from(&config.spill_dir)),
            scheduler: None,
        })
    }

    /// These options, with plans sent to the Ballista scheduler of `[engine]
    /// cluster` when it names one. Only jobs whose plans can travel use it
    /// (`cdp build`); everything else runs in process.
    pub fn on_cluster(mut self, config: &cdp_core::config::EngineConfig) -> Result<Self> {
        self.scheduler = config.scheduler()?;
        Ok(self)
    }
}

/// This machine's physical memory in bytes, when the OS tells.
fn total_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A DataFusion session bound to one lake and one business calendar.
#[derive(Clone)]
pub struct Engine {
    ctx: SessionContext,
    lake: Lake,
    calendar: BusinessCalendar,
    lake_url: Url,
    spill_dir: Option<PathBuf>,
    scheduler: Option<String>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("lake", &self.lake.uri())
            .field("calendar", &self.calendar)
            .field("scheduler", &self.scheduler)
            .finish()
    }
}

impl Engine {
    /// A session over `lake` with the given resource limits; its plans run
    /// on the Ballista scheduler of `options` when there is one.
    pub fn new(lake: Lake, calendar: BusinessCalendar, options: &EngineOptions) -> Result<Self> {
        let mode = match &options.spill_dir {
            Some(dir) => DiskManagerMode::Directories(vec![dir.clone()]),
            None => DiskManagerMode::OsTmpDirectory,
        };
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(options.memory_limit as usize)))
            .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(mode))
            .build_arc()
            .map_err(Error::datafusion("cannot start the query engine"))?;
        let mut config = SessionConfig::new()
            .with_information_schema(true)
            .with_default_catalog_and_schema("datafusion", "public");
        if options.target_partitions > 0 {
            config = config.with_target_partitions(options.target_partitions);
        }
        // Plain Utf8 strings, not Utf8View: the golden-record and
        // identity aggregates (first_value, array_agg over text) slice their
        // input per group, and a view array drags every data buffer of the
        // batch into each slice (measured: 10 s instead of 0.1 s for the
        // customer_360 of 20,000 persons).
        config
            .options_mut()
            .execution
            .parquet
            .schema_force_view_types = false;
        config.options_mut().execution.parquet.pushdown_filters = true;
        config.options_mut().execution.parquet.reorder_filters = true;
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            .build();
        let state = match &options.scheduler {
            None => state,
            // Ballista's planner sends each optimized plan to the scheduler;
            // the functions below are registered after the upgrade, which
            // replaces the state's scalar functions with Ballista's own.
            Some(address) => state
                .upgrade_for_ballista(format!("http://{address}"))
                .map_err(Error::datafusion(format!(
                    "cannot use the Ballista scheduler at {address}"
                )))?,
        };
        let ctx = SessionContext::new_with_state(state);

        let (lake_url, store) = lake_object_store(&lake)?;
        ctx.register_object_store(&lake_url, store);
        let catalog = ctx
            .catalog("datafusion")
            .expect("a session always has its default catalog");
        for schema in SCHEMAS {
            let provider: Arc<dyn SchemaProvider> = Arc::new(MemorySchemaProvider::new());
            catalog
                .register_schema(schema, provider)
                .map_err(Error::datafusion(format!("cannot create schema {schema}")))?;
        }
        udf::register(&ctx, calendar);
        Ok(Self {
            ctx,
            lake,
            calendar,
            lake_url,
            spill_dir: options.spill_dir.clone(),
            scheduler: options.scheduler.clone(),
        })
    }

    /// True when plans run on a Ballista cluster rather than in this process.
    pub fn is_distributed(&self) -> bool {
        self.scheduler.is_some()
    }

    /// The DataFusion session.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The lake this session reads and writes.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// The business calendar as-of dates are interpreted in.
    pub fn calendar(&self) -> &BusinessCalendar {
        &self.calendar
    }

    /// A fresh local folder for a job's intermediate files, under the spill
    /// folder (or the system temporary folder); removed when dropped.
    pub fn scratch_dir(&self) -> Result<tempfile::TempDir> {
        let parent = self.spill_dir.clone().unwrap_or_else(std::env::temp_dir);
        tempfile::Builder::new()
            .prefix("cdp-scratch-")
            .tempdir_in(&parent)
            .map_err(|source| Error::Scratch {
                dir: parent,
                source,
            })
    }

    /// A job's scratch space for intermediate Parquet: a local folder when
    /// plans run in this process, a fresh lake prefix (`_scratch/<id>/`)
    /// every executor can reach when they run on a cluster.
    pub fn scratch(&self) -> Result<Scratch> {
        if self.is_distributed() {
            let id = cdp_core::lake::run_id();
            return Ok(Scratch::Lake {
                lake: self.lake.clone(),
                base: format!("{}/", self.url(&format!("_scratch/{id}"))),
                prefix: format!("_scratch/{id}/"),
            });
        }
        Ok(Scratch::Local(self.scratch_dir()?))
    }

    /// The URL DataFusion knows lake object `relative` by.
    pub fn url(&self, relative: &str) -> String {
        let path = self.lake.path(relative);
        format!("{}{}", self.lake_url.as_str().trim_end_matches('/'), {
            let p = path.as_ref();
            if p.is_empty() {
                String::new()
            } else {
                format!("/{p}")
            }
        })
    }
}

/// Where a job keeps its intermediate Parquet folders (see [`Engine::scratch`]);
/// removed when dropped (a local folder) or by [`Scratch::remove`] (a lake
/// prefix).
#[derive(Debug)]
pub enum Scratch {
    /// A local temporary folder.
    Local(tempfile::TempDir),
    /// A prefix of the lake.
    Lake {
        /// The lake holding it.
        lake: Lake,
        /// Its lake path, ending in `/`.
        prefix: String,
        /// Its URL as DataFusion knows it, ending in `/`.
        base: String,
    },
}

impl Scratch {
    /// The URL of folder `name` in the scratch space, ending in `/`.
    pub fn url(&self, name: &str) -> Result<String> {
        match self {
            Scratch::Local(dir) => {
                let path = dir.path().join(name);
                Url::from_directory_path(&path)
                    .map(|u| u.to_string())
                    .map_err(|()| Error::Scratch {
                        dir: path,
                        source: std::io::Error::other("not an absolute path"),
                    })
            }
            Scratch::Lake { base, .. } => Ok(format!("{base}{name}/")),
        }
    }

    /// True when folder `name` holds at least one file.
    pub async fn has_files(&self, name: &str) -> Result<bool> {
        match self {
            Scratch::Local(dir) => Ok(std::fs::read_dir(dir.path().join(name))
                .map(|entries| entries.flatten().next().is_some())
                .unwrap_or(false)),
            Scratch::Lake { lake, prefix, .. } => {
                Ok(!lake.list(&format!("{prefix}{name}/")).await?.is_empty())
            }
        }
    }

    /// Writes `bytes` as file `file` of folder `name`.
    pub async fn put(&self, name: &str, file: &str, bytes: Bytes) -> Result<()> {
        match self {
            Scratch::Local(dir) => {
                let folder = dir.path().join(name);
                std::fs::create_dir_all(&folder)
                    .and_then(|()| std::fs::write(folder.join(file), &bytes))
                    .map_err(|source| Error::Scratch {
                        dir: folder,
                        source,
                    })
            }
            Scratch::Lake { lake, prefix, .. } => {
                Ok(lake.put(&format!("{prefix}{name}/{file}"), bytes).await?)
            }
        }
    }

    /// Deletes everything the scratch space holds.
    pub async fn remove(self) -> Result<()> {
        match self {
            Scratch::Local(dir) => {
                drop(dir);
                Ok(())
            }
            Scratch::Lake { lake, prefix, .. } => {
                for object in lake.list(&prefix).await? {
                    lake.delete(&lake.relative(&object.location)).await?;
                }
                if let Some(root) = lake.local_root() {
                    // a local store leaves the emptied folders behind
                    match std::fs::remove_dir_all(root.join(&prefix)) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(source) => {
                            return Err(Error::Scratch {
                                dir: root.join(&prefix),
                                source,
                            });
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

/// The URL under which the lake's object store is registered with
/// DataFusion, and the store to register there. Object paths under that URL
/// are [`Lake::path`]s. Every process that runs cdp's plans (a Ballista
/// scheduler and executors too) registers the lake this way.
pub fn lake_object_store(lake: &Lake) -> Result<(Url, Arc<dyn object_store::ObjectStore>)> {
    let parse = |text: &str| {
        Url::parse(text).map_err(|e| {
            Error::Core(cdp_core::Error::LakeUri {
                uri: lake.uri().into(),
                reason: e.to_string(),
            })
        })
    };
    if lake.local_root().is_some() {
        // A local lake's store is rooted at the lake folder; DataFusion sees
        // it under its own scheme so paths stay relative to the lake.
        return Ok((parse("cdp-lake://local")?, lake.store().clone()));
    }
    if lake.uri() == "memory://" {
        return Ok((parse("cdp-lake://memory")?, lake.store().clone()));
    }
    let url = parse(lake.uri())?;
    let base = parse(&format!("{}://{}", url.scheme(), url.authority()))?;
    Ok((base, lake.store().clone()))
}
