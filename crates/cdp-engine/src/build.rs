//! `cdp build --as-of D`: bronze to the silver layer, exactly as of D.
//!
//! 1. the as-of views (`pipelines/views/asof.sql`) over bronze: only events
//!    before D+1 00:00 business time, whatever else is in the lake;
//! 2. identity resolution ([`crate::identity`]) with the previous snapshot's
//!    map as input, written as `silver.identity_map`;
//! 3. the entity views (`pipelines/views/entities.sql`) keying events by person;
//! 4. `silver.customer_360` (`pipelines/views/customer_360.sql`);
//! 5. `silver.features`: every declared feature family joined onto the
//!    persons of the customer_360, defaults applied, types enforced;
//! 6. one publish of the `silver` manifest naming the three tables' new
//!    files: the snapshot appears whole or not at all, and a rebuild of the
//!    same D replaces it atomically.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use cdp_core::lake::paths;
use cdp_core::progress::Progress;
use chrono::{Days, NaiveDate, SecondsFormat, Utc};
use datafusion::arrow::array::{Array, AsArray, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Date32Type, Field, Schema};
use datafusion::catalog::TableProvider;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::config::TableParquetOptions;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::datasource::MemTable;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::DataFrame;
use futures::StreamExt;
use serde::Serialize;
use tracing::instrument;

use crate::error::{Error, Result};
use crate::features::{Family, FeatureRegistry};
use crate::identity::{KeyKind, Resolver, format_unified_id, parse_unified_id};
use crate::session::{Engine, Scratch};
use crate::sql::{Params, render, statements};
use crate::tables::{self, Access, LayerManifest, Snapshot, TableFiles};

/// The view definitions shipped in `pipelines/views/`.
pub const ASOF_SQL: &str = include_str!("../../../pipelines/views/asof.sql");
/// Entity views, created once the identity map exists.
pub const ENTITIES_SQL: &str = include_str!("../../../pipelines/views/entities.sql");
/// The unified customer view.
pub const CUSTOMER_360_SQL: &str = include_str!("../../../pipelines/views/customer_360.sql");

/// Entity views (`pipelines/views/entities.sql`) that several feature
/// families scan. Each is computed once per build into local scratch Parquet
/// that the families read: as a view it would redo its bronze scan and
/// identity join for every family (and every CTE) that reads it.
pub const SHARED_VIEWS: [&str; 2] = ["txn", "devices"];

/// The silver tables a build writes.
pub const SILVER_TABLES: [&str; 3] = ["identity_map", "customer_360", "features"];

/// What a build did.
#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    /// The as-of date.
    pub as_of: NaiveDate,
    /// The run id (names the snapshot's files).
    pub run: String,
    /// The snapshot whose identity map seeded this one's ids.
    pub previous_as_of: Option<NaiveDate>,
    /// True when an earlier snapshot of the same date was replaced.
    pub replaced: bool,
    /// customer_ids seen as of D.
    pub customer_ids: u64,
    /// Persons (unified_ids).
    pub persons: u64,
    /// Rows per silver table.
    pub rows: BTreeMap<String, u64>,
    /// Declared features computed.
    pub features: usize,
    /// Seconds per stage.
    pub seconds: BTreeMap<String, f64>,
}

/// Builds the silver snapshot as of `as_of` and publishes it.
#[instrument(skip_all, fields(as_of = %as_of))]
pub async fn build(
    engine: &Engine,
    registry: &FeatureRegistry,
    as_of: NaiveDate,
    progress: &dyn Progress,
) -> Result<BuildReport> {
    let started = Instant::now();
    let mut seconds = BTreeMap::new();
    let mut clock = Instant::now();
    let lake = engine.lake();
    let current = lake.read_manifest::<LayerManifest>("silver").await?;
    let version = current.as_ref().map_or(0, |m| m.version);
    let mut manifest = current.map(|m| m.body).unwrap_or_default();
    let run = cdp_core::lake::run_id();
    let stages = 5;
    progress.begin(&format!("build as of {as_of}"), stages);

    // 1. As-of views.
    let bronze = tables::register_bronze(engine, Access::Pii).await?;
    if bronze.get("customers").copied().unwrap_or(0) == 0 {
        return Err(Error::NoBronze {
            source_name: "customers".into(),
            lake: lake.uri().into(),
        });
    }
    tables::register_reference(engine).await?;
    fresh_build_schema(engine)?;
    let params = Params::for_build(engine.calendar(), as_of);
    execute_script(engine, "pipelines/views/asof.sql", ASOF_SQL, &params).await?;
    progress.advance(1);

    // 2. Identity.
    let previous = manifest
        .snapshots
        .range(..as_of)
        .next_back()
        .map(|(d, s)| (*d, s.clone()));
    let identity = resolve_identity(engine, &manifest, as_of).await?;
    let identity_rows = identity.batch.num_rows() as u64;
    // In-memory tables do not travel to executors: on a cluster the map is
    // written first, and the entity views read it from the lake.
    let identity_files = if engine.is_distributed() {
        let files = write_batch(engine, &identity.batch, "identity_map", as_of, &run).await?;
        let table = tables::listing_table(engine, &files.files, "build.identity_map").await?;
        tables::register(engine, "build.identity_map", table)?;
        Some(files)
    } else {
        let mem = MemTable::try_new(
            identity.batch.schema(),
            partitioned(engine, &identity.batch),
        )
        .map_err(Error::datafusion("cannot hold the identity map"))?;
        tables::register(engine, "build.identity_map", Arc::new(mem))?;
        None
    };
    execute_script(
        engine,
        "pipelines/views/entities.sql",
        ENTITIES_SQL,
        &params,
    )
    .await?;
    let identity_files = match identity_files {
        Some(files) => files,
        None => {
            let frame = engine
                .context()
                .table("build.identity_map")
                .await
                .map_err(Error::datafusion("cannot read the identity map"))?;
            write_table(engine, frame, "identity_map", as_of, &run).await?
        }
    };
    let mut written = BTreeMap::from([("identity_map".to_string(), identity_files)]);
    lap(&mut seconds, "identity", &mut clock);
    progress.advance(1);

    // 3. Customer 360.
    let sql = render(
        "pipelines/views/customer_360.sql",
        CUSTOMER_360_SQL,
        &params,
    )?;
    let frame = query(engine, "pipelines/views/customer_360.sql", &sql).await?;
    let files = write_table(engine, frame, "customer_360", as_of, &run).await?;
    let c360 = tables::listing_table(engine, &files.files, "build.customer_360").await?;
    tables::register(engine, "build.customer_360", c360)?;
    written.insert("customer_360".to_string(), files);
    lap(&mut seconds, "customer_360", &mut clock);
    progress.advance(1);

    // 4. Features: the entity views several families scan, computed once;
    // then each family on its own; then all of them joined onto the persons.
    let scratch = engine.scratch()?;
    let files = features(
        engine,
        registry,
        &params,
        &scratch,
        as_of,
        &run,
        &mut seconds,
    )
    .await;
    // the scratch files go whether the features were written or not
    scratch.remove().await?;
    written.insert("features".to_string(), files?);
    clock = Instant::now();
    let features: f64 = seconds
        .iter()
        .filter(|(stage, _)| stage.starts_with("features/"))
        .map(|(_, s)| s)
        .sum();
    seconds.insert("features".into(), features);
    progress.advance(1);

    // 5. Publish.
    let replaced = manifest.snapshots.contains_key(&as_of);
    let rows = written.iter().map(|(t, f)| (t.clone(), f.rows)).collect();
    manifest.snapshots.insert(
        as_of,
        Snapshot {
            run: run.clone(),
            built_at: Utc::now(),
            tables: written,
            next_unified_id: Some(identity.next_unified_id),
        },
    );
    lake.publish("silver", &manifest, Some(version)).await?;
    lap(&mut seconds, "publish", &mut clock);
    progress.advance(1);
    progress.finish();
    seconds.insert("total".into(), started.elapsed().as_secs_f64());
    tracing::info!(persons = identity.persons, identity_rows, "built");
    Ok(BuildReport {
        as_of,
        run,
        previous_as_of: previous.map(|p| p.0),
        replaced,
        customer_ids: identity.customer_ids,
        persons: identity.persons,
        rows,
        features: registry.features().count(),
        seconds,
    })
}

/// The features stage: the shared entity views, then each family, into
/// scratch Parquet, then `silver.features` joined onto the persons.
async fn features(
    engine: &Engine,
    registry: &FeatureRegistry,
    params: &Params,
    scratch: &Scratch,
    as_of: NaiveDate,
    run: &str,
    seconds: &mut BTreeMap<String, f64>,
) -> Result<TableFiles> {
    let mut clock = Instant::now();
    for view in SHARED_VIEWS {
        let name = format!("build.{view}");
        let frame = query(
            engine,
            "pipelines/views/entities.sql",
            &format!("SELECT * FROM {name}"),
        )
        .await?;
        let table = materialize(engine, frame, scratch, view, &name).await?;
        tables::register(engine, &name, table)?;
        lap(seconds, &format!("features/{view}"), &mut clock);
    }
    for family in registry.families() {
        let folder = family_table(&family.name);
        let name = format!("build.{folder}");
        let frame = family_frame(engine, family, params).await?;
        let table = materialize(engine, frame, scratch, &folder, &name).await?;
        tables::register(engine, &name, table)?;
        lap(seconds, &format!("features/{folder}"), &mut clock);
    }
    let frame = query(engine, "silver.features", &features_sql(registry)).await?;
    let files = write_table(engine, frame, "features", as_of, run).await?;
    lap(seconds, "features/join", &mut clock);
    Ok(files)
}

/// Records the seconds since `since` as stage `name` and restarts the clock.
pub(crate) fn lap(seconds: &mut BTreeMap<String, f64>, name: &str, since: &mut Instant) {
    seconds.insert(name.to_string(), since.elapsed().as_secs_f64());
    *since = Instant::now();
}

/// A batch cut into session-sized batches spread over the session's
/// partitions, so scans of it run in parallel and operators see batches of
/// the size they are tuned for (one huge batch makes per-group aggregates
/// crawl).
fn partitioned(engine: &Engine, batch: &RecordBatch) -> Vec<Vec<RecordBatch>> {
    let options = engine.context().state().config().options().clone();
    let size = options.execution.batch_size.get();
    let partitions = options.execution.target_partitions.max(1);
    let mut out = vec![Vec::new(); partitions];
    let mut offset = 0;
    let mut i = 0;
    while offset < batch.num_rows() {
        let len = size.min(batch.num_rows() - offset);
        out[i % partitions].push(batch.slice(offset, len));
        offset += len;
        i += 1;
    }
    out
}

/// Drops the views of an earlier build in this session and starts afresh.
fn fresh_build_schema(engine: &Engine) -> Result<()> {
    let catalog = engine
        .context()
        .catalog("datafusion")
        .expect("a session always has its default catalog");
    let provider: Arc<dyn SchemaProvider> = Arc::new(MemorySchemaProvider::new());
    catalog
        .register_schema("build", provider)
        .map_err(Error::datafusion("cannot create schema build"))?;
    Ok(())
}

/// Runs every statement of a script (views, mostly).
async fn execute_script(engine: &Engine, file: &str, text: &str, params: &Params) -> Result<()> {
    let rendered = render(file, text, params)?;
    for statement in statements(&rendered) {
        query(engine, file, &statement)
            .await?
            .collect()
            .await
            .map_err(Error::datafusion(format!("{file}: cannot run statement")))?;
    }
    Ok(())
}

/// Plans `sql`, naming `file` when it does not.
async fn query(engine: &Engine, file: &str, sql: &str) -> Result<DataFrame> {
    engine
        .context()
        .sql(sql)
        .await
        .map_err(Error::datafusion(format!("{file}: cannot plan")))
}

/// Writes a frame as the table's files of this snapshot and lists them.
async fn write_table(
    engine: &Engine,
    frame: DataFrame,
    table: &str,
    as_of: NaiveDate,
    run: &str,
) -> Result<TableFiles> {
    let dir = format!("{}/run={run}/", paths::silver_snapshot(table, as_of));
    let schema = Arc::new(frame.schema().as_arrow().clone());
    let counts = frame
        .write_parquet(&engine.url(&dir), DataFrameWriteOptions::new(), None)
        .await
        .map_err(Error::datafusion(format!("cannot write silver.{table}")))?;
    let rows = counts
        .iter()
        .filter_map(|b| {
            b.column(0)
                .as_primitive_opt::<datafusion::arrow::datatypes::UInt64Type>()
        })
        .flat_map(|a| a.iter().flatten())
        .sum();
    let mut files: Vec<String> = engine
        .lake()
        .list(&dir)
        .await?
        .into_iter()
        .map(|m| relative(engine, m.location.as_ref()))
        .filter(|p| p.ends_with(".parquet"))
        .collect();
    if files.is_empty() {
        // Nothing to write still makes a (schema-only) file, so the table
        // of this snapshot exists for readers.
        let path = format!("{dir}part-empty.parquet");
        engine
            .lake()
            .put(&path, tables::parquet_bytes(schema, &[], None)?.into())
            .await?;
        files.push(path);
    }
    files.sort();
    Ok(TableFiles { files, rows })
}

/// Writes a batch this process holds as the table's one file of this
/// snapshot (zstd, like the engine's own writes).
async fn write_batch(
    engine: &Engine,
    batch: &RecordBatch,
    table: &str,
    as_of: NaiveDate,
    run: &str,
) -> Result<TableFiles> {
    let path = format!(
        "{}/run={run}/part-0.parquet",
        paths::silver_snapshot(table, as_of)
    );
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let bytes = tables::parquet_bytes(
        batch.schema(),
        std::slice::from_ref(batch),
        Some(properties),
    )?;
    engine.lake().put(&path, bytes.into()).await?;
    Ok(TableFiles {
        files: vec![path],
        rows: batch.num_rows() as u64,
    })
}

/// A store path made relative to the lake root.
fn relative(engine: &Engine, location: &str) -> String {
    let root = engine.lake().root().as_ref().to_string();
    if root.is_empty() {
        location.to_string()
    } else {
        location
            .strip_prefix(&format!("{root}/"))
            .unwrap_or(location)
            .to_string()
    }
}

/// The identity step's output.
struct Identity {
    batch: RecordBatch,
    next_unified_id: u64,
    customer_ids: u64,
    persons: u64,
}

/// Resolves persons from the as-of customer records, attaches social
/// profiles, devices and cards, and returns the identity map as one batch.
async fn resolve_identity(
    engine: &Engine,
    manifest: &LayerManifest,
    as_of: NaiveDate,
) -> Result<Identity> {
    let mut resolver = Resolver::default();
    for_each_row(
        engine,
        "SELECT customer_id, upper(trim(id_number)), phone_sha256, email_sha256 \
         FROM build.customers",
        |row| {
            let Some(customer_id) = row[0] else {
                return;
            };
            resolver.add_customer(customer_id);
            for (kind, value) in [
                (KeyKind::IdNumber, row[1]),
                (KeyKind::Phone, row[2]),
                (KeyKind::Email, row[3]),
            ] {
                if let Some(v) = value {
                    resolver.add_key(customer_id, kind, v);
                }
            }
        },
    )
    .await?;
    let (prior, next_id) = claimed_ids(engine, manifest, as_of).await?;

    // Attachments need the key owners before the resolver is consumed.
    let mut social_owner: BTreeMap<String, (String, &'static str)> = BTreeMap::new();
    let rank = |rule: &str| {
        ["customer_id", "phone_sha256", "email_sha256"]
            .iter()
            .position(|r| *r == rule)
    };
    for_each_row(
        engine,
        "SELECT DISTINCT profile_key, customer_id, phone_sha256, email_sha256 \
         FROM build.social_profiles",
        |row| {
            let Some(profile) = row[0] else {
                return;
            };
            let candidates = [
                (row[1].filter(|c| resolver.knows(c)), "customer_id"),
                (
                    row[2].and_then(|h| resolver.owner_of(KeyKind::Phone, h)),
                    "phone_sha256",
                ),
                (
                    row[3].and_then(|h| resolver.owner_of(KeyKind::Email, h)),
                    "email_sha256",
                ),
            ];
            for (customer, rule) in candidates {
                let Some(customer) = customer else { continue };
                // The strongest rule wins; among equals, the smallest customer_id.
                let better = social_owner
                    .get(profile)
                    .is_none_or(|(have_customer, have)| {
                        (rank(rule), customer) < (rank(have), have_customer.as_str())
                    });
                if better {
                    social_owner.insert(profile.to_string(), (customer.to_string(), rule));
                }
            }
        },
    )
    .await?;
    let persons = resolver.resolve(&prior, next_id);
    let mut source = Vec::new();
    let mut key = Vec::new();
    let mut unified = Vec::new();
    let mut rule = Vec::new();
    let mut push = |s: &'static str, k: &str, u: u64, r: &'static str| {
        source.push(s);
        key.push(k.to_string());
        unified.push(format_unified_id(u));
        rule.push(r);
    };
    for (customer_id, number, matched_by) in &persons.rows {
        push("customers", customer_id, *number, matched_by);
    }
    for (profile, (customer, matched_by)) in &social_owner {
        if let Some(n) = persons.number_of(customer) {
            push("social_profiles", profile, n, matched_by);
        }
    }
    for (kind, sql, single, several) in [
        (
            "device_events",
            "SELECT DISTINCT device_id, customer_id FROM build.device_events \
             WHERE customer_id IS NOT NULL",
            "login",
            "shared_device",
        ),
        (
            "transactions",
            "SELECT DISTINCT card_id, customer_id FROM build.transactions \
             WHERE card_id IS NOT NULL",
            "customer_id",
            "shared_card",
        ),
    ] {
        let mut owners: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for_each_row(engine, sql, |row| {
            if let (Some(k), Some(c)) = (row[0], row[1])
                && let Some(n) = persons.number_of(c)
            {
                match owners.get_mut(k) {
                    Some(numbers) => numbers.push(n),
                    None => {
                        owners.insert(k.to_string(), vec![n]);
                    }
                }
            }
        })
        .await?;
        for (k, mut numbers) in owners {
            numbers.sort_unstable();
            numbers.dedup();
            let matched_by = if numbers.len() > 1 { several } else { single };
            for n in numbers {
                push(kind, &k, n, matched_by);
            }
        }
    }
    let n = source.len();
    let days = (as_of - NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid")).num_days() as i32;
    let schema = Arc::new(Schema::new(vec![
        Field::new("as_of", DataType::Date32, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("source_key", DataType::Utf8, false),
        Field::new("unified_id", DataType::Utf8, false),
        Field::new("matched_by", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(datafusion::arrow::array::PrimitiveArray::<Date32Type>::from(vec![days; n])),
            Arc::new(StringArray::from(source)),
            Arc::new(StringArray::from(key)),
            Arc::new(StringArray::from(unified)),
            Arc::new(StringArray::from(rule)),
        ],
    )
    .map_err(|e| Error::Column {
        table: "silver.identity_map".into(),
        column: "*".into(),
        reason: e.to_string(),
    })?;
    Ok(Identity {
        batch,
        next_unified_id: persons.next_unified_id,
        customer_ids: persons.rows.len() as u64,
        persons: persons.persons() as u64,
    })
}

/// The unified_id each known customer_id claims, and the first number
/// never issued in any snapshot.
///
/// Yesterday's snapshot (the latest before D) decides. A customer_id it does
/// not know keeps the id an earlier build of D, or the latest snapshot after
/// D, gave it: rebuilding D then changes nothing, and a person who arrived
/// late is not given a second id. New numbers start above every number any
/// snapshot has issued, so none is ever issued twice.
async fn claimed_ids(
    engine: &Engine,
    manifest: &LayerManifest,
    as_of: NaiveDate,
) -> Result<(HashMap<String, u64>, u64)> {
    let next_id = manifest
        .snapshots
        .values()
        .filter_map(|s| s.next_unified_id)
        .max()
        .unwrap_or(1);
    let sources = [
        manifest.snapshots.range(..as_of).next_back(),
        manifest.snapshots.get_key_value(&as_of),
        manifest.snapshots.range(as_of..).next_back(),
    ];
    let mut claims: HashMap<String, u64> = HashMap::new();
    let mut read = Vec::new();
    for (date, snapshot) in sources.into_iter().flatten() {
        if read.contains(date) {
            continue;
        }
        read.push(*date);
        let Some(files) = snapshot.tables.get("identity_map") else {
            continue;
        };
        let table = tables::listing_table(engine, &files.files, "identity_map").await?;
        tables::register(engine, "build.claimed_identity_map", table)?;
        for_each_row(
            engine,
            "SELECT source_key, unified_id FROM build.claimed_identity_map \
             WHERE source = 'customers'",
            |row| {
                if let (Some(c), Some(u)) = (row[0], row[1].and_then(parse_unified_id))
                    && !claims.contains_key(c)
                {
                    claims.insert(c.to_string(), u);
                }
            },
        )
        .await?;
    }
    let highest = claims.values().max().map_or(1, |m| m + 1);
    Ok((claims, next_id.max(highest)))
}

/// Runs a query and calls `f` with each row's columns as optional text,
/// batch by batch (nothing is held beyond one batch).
async fn for_each_row<F>(engine: &Engine, sql: &str, mut f: F) -> Result<()>
where
    F: FnMut(&[Option<&str>]),
{
    let mut stream = engine
        .context()
        .sql(sql)
        .await
        .map_err(Error::datafusion("identity: cannot plan"))?
        .execute_stream()
        .await
        .map_err(Error::datafusion("identity: cannot read"))?;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(Error::datafusion("identity: cannot read"))?;
        let columns = batch
            .columns()
            .iter()
            .map(|c| cast(c, &DataType::Utf8))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Column {
                table: "identity input".into(),
                column: "*".into(),
                reason: e.to_string(),
            })?;
        let strings: Vec<&StringArray> = columns.iter().map(|c| c.as_string::<i32>()).collect();
        let mut row: Vec<Option<&str>> = Vec::with_capacity(strings.len());
        for r in 0..batch.num_rows() {
            row.clear();
            row.extend(strings.iter().map(|s| (!s.is_null(r)).then(|| s.value(r))));
            f(&row);
        }
    }
    Ok(())
}

/// The table a family's features are held in during a build.
fn family_table(family: &str) -> String {
    format!("f_{family}")
}

/// Plans one family's SQL and checks that it returns `unified_id` and
/// exactly the family's declared features.
async fn family_frame(engine: &Engine, family: &Family, params: &Params) -> Result<DataFrame> {
    let file = format!("pipelines/features/{}.sql", family.name);
    let sql = render(&file, &family.sql, params)?;
    let frame = query(engine, &file, &sql).await?;
    let produced: Vec<&String> = frame.schema().fields().iter().map(|f| f.name()).collect();
    let declared: Vec<&str> = family.features.iter().map(|f| f.name.as_str()).collect();
    let missing: Vec<&&str> = declared
        .iter()
        .filter(|d| !produced.iter().any(|p| p == *d))
        .collect();
    let extra: Vec<&&String> = produced
        .iter()
        .filter(|p| **p != "unified_id" && !declared.contains(&p.as_str()))
        .collect();
    if !produced.iter().any(|p| *p == "unified_id") || !missing.is_empty() || !extra.is_empty() {
        return Err(Error::FeatureOutput {
            family: family.name.clone(),
            reason: format!(
                "the SQL must return unified_id and exactly the declared features; missing {missing:?}, undeclared {extra:?}"
            ),
        });
    }
    Ok(frame)
}

/// The `silver.features` query: every family's table LEFT JOINed onto the
/// persons of the customer_360, declared defaults by COALESCE, declared
/// types by CAST.
pub fn features_sql(registry: &FeatureRegistry) -> String {
    let mut columns = vec!["c.as_of".to_string(), "c.unified_id".to_string()];
    let mut joins = Vec::new();
    for family in registry.families() {
        let alias = family_table(&family.name);
        for f in &family.features {
            let value = match &f.default {
                Some(d) => format!("COALESCE({alias}.{}, {d})", f.name),
                None => format!("{alias}.{}", f.name),
            };
            columns.push(match f.ty.sql_type() {
                Some(ty) => format!("CAST({value} AS {ty}) AS {}", f.name),
                None => format!("{value} AS {}", f.name),
            });
        }
        joins.push(format!(
            "LEFT JOIN build.{alias} {alias} ON {alias}.unified_id = c.unified_id"
        ));
    }
    format!(
        "SELECT {}\nFROM build.customer_360 c\n{}",
        columns.join(",\n       "),
        joins.join("\n")
    )
}

/// Runs `frame` into Parquet files in scratch folder `folder` (fast
/// compression: they live for one build) and returns a table over them.
async fn materialize(
    engine: &Engine,
    frame: DataFrame,
    scratch: &Scratch,
    folder: &str,
    name: &str,
) -> Result<Arc<dyn TableProvider>> {
    let url = scratch.url(folder)?;
    let schema = Arc::new(frame.schema().as_arrow().clone());
    let mut options = TableParquetOptions::default();
    options.global = engine
        .context()
        .state()
        .config()
        .options()
        .execution
        .parquet
        .clone();
    options.global.compression = Some("lz4_raw".into());
    frame
        .write_parquet(&url, DataFrameWriteOptions::new(), Some(options))
        .await
        .map_err(Error::datafusion(format!("cannot compute {name}")))?;
    if !scratch.has_files(folder).await? {
        // No rows, no files: one schema-only file keeps the table readable.
        let bytes = tables::parquet_bytes(schema, &[], None)?;
        scratch
            .put(folder, "part-empty.parquet", bytes.into())
            .await?;
    }
    tables::parquet_table(engine, &[url], name).await
}

/// The cutoff instant as text, for logs and reports.
pub fn cutoff_text(engine: &Engine, as_of: NaiveDate) -> String {
    engine
        .calendar()
        .as_of_cutoff(as_of)
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The day after `as_of` (bronze files are pruned with a day of slack).
pub(crate) fn next_day(as_of: NaiveDate) -> NaiveDate {
    as_of.checked_add_days(Days::new(1)).unwrap_or(as_of)
}
