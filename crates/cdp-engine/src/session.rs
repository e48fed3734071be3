//! The DataFusion session cdp runs every query in: sized for this machine
//! (a fair, spilling memory pool with the configured limit, one partition per
//! core), with the lake's object store and cdp's functions registered, and
//! the `bronze`, `silver`, `gold` and `ref` schemas ready for tables.

use std::path::PathBuf;
use std::sync::Arc;

use cdp_core::lake::Lake;
use cdp_core::time::BusinessCalendar;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
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
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            memory_limit: 2 << 30,
            target_partitions: 0,
            spill_dir: None,
        }
    }
}

impl EngineOptions {
    /// Options from the `[engine]` section of the configuration.
    pub fn from_config(config: &cdp_core::config::EngineConfig) -> Result<Self> {
        Ok(Self {
            memory_limit: config.memory_limit_bytes(total_memory())?,
            target_partitions: config.target_partitions,
            spill_dir: (!config.spill_dir.is_empty()).then(|| PathBuf::from(&config.spill_dir)),
        })
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
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("lake", &self.lake.uri())
            .field("calendar", &self.calendar)
            .finish()
    }
}

impl Engine {
    /// A session over `lake` with the given resource limits.
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
        let ctx = SessionContext::new_with_config_rt(config, runtime);

        let (lake_url, store) = lake_store_url(&lake)?;
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
        })
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

/// The URL under which the lake's object store is registered with
/// DataFusion, and the store to register there. Object paths under that URL
/// are [`Lake::path`]s.
fn lake_store_url(lake: &Lake) -> Result<(Url, Arc<dyn object_store::ObjectStore>)> {
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
