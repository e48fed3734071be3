//! The Redis online store: one hash per entity, written incrementally in
//! pipelined batches, read with one pipelined round trip per lookup.
//!
//! Keys (`P` is `[online] key_prefix`, `cdp` by default):
//!
//! * `P:e:<unified_id>` — one hash per entity: a field per non-null
//!   feature value, as text ([`Column::encode`]: `42`, `0.25`, `true`,
//!   `affluent`, `2026-03-01`, `["travel"]`), plus `_h`, the hash of the
//!   entity's content, and `_t`, the event time (Unix milliseconds) of the
//!   snapshot that last wrote it. Each key expires `[online]
//!   key_grace_days` after the longest feature TTL, counted from the last
//!   materialization that confirmed it, so an entity nobody materializes
//!   any more goes away by itself;
//! * `P:meta` — what is materialized: `info` (the [`SnapshotInfo`] as
//!   JSON: as-of date, event time, rows, features with types and TTLs) and
//!   `version`, incremented by every materialization;
//! * `P:lock` — held while a materialization runs, so two never interleave.
//!
//! Materialization ([`materialize`]) is incremental: it scans the entity
//! keys there are, asks each batch of entities for their `_h`, rewrites
//! (in one `MULTI`/`EXEC` per batch: `DEL`, `HSET`, `EXPIRE`) only those
//! whose content hash differs or who are new, refreshes the expiry of the
//! others, unlinks the entities the snapshot no longer has, and then
//! publishes `P:meta`. An entity's event time is the later of its `_t` and
//! the meta's event time: an entity left unchanged was confirmed as of the
//! newer snapshot.
//!
//! A lookup is one pipeline: `HGET P:meta version`, then one
//! `HMGET P:e:<id> _t <features…>` per entity. When the version moved on
//! since the features were last read, the store re-reads `P:meta` and
//! looks up again.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use cdp_core::config::OnlineConfig;
use cdp_core::progress::Progress;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, Value as RedisValue};
use serde::Serialize;
use tracing::instrument;
use xxhash_rust::xxh3::Xxh3;

use super::table::{OnlineTable, decode};
use super::{
    FeatureColumn, Lookup, OnlineFeatures, OnlineStore, SnapshotInfo, Status, Value, redact,
};
use crate::error::{Error, Result};

pub mod server;

/// The field holding an entity's content hash.
pub const HASH_FIELD: &str = "_h";
/// The field holding an entity's event time (Unix milliseconds).
pub const TIME_FIELD: &str = "_t";

/// Seconds a materialization may hold the lock before it lapses.
const LOCK_SECONDS: u64 = 3_600;
/// Keys asked for per `SCAN`.
const SCAN_COUNT: usize = 10_000;

/// The key names under one prefix.
#[derive(Debug, Clone)]
struct Keys {
    prefix: String,
}

impl Keys {
    fn entity(&self, id: &str) -> String {
        format!("{}:e:{id}", self.prefix)
    }
    fn entity_pattern(&self) -> String {
        format!("{}:e:*", self.prefix)
    }
    fn entity_id<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(&self.prefix)?.strip_prefix(":e:")
    }
    fn meta(&self) -> String {
        format!("{}:meta", self.prefix)
    }
    fn lock(&self) -> String {
        format!("{}:lock", self.prefix)
    }
}

/// A connection manager (reconnects on its own) to `url`.
async fn connect(url: &str, timeout: Duration) -> Result<ConnectionManager> {
    let fail = |source| Error::Redis {
        url: redact(url),
        op: "connect",
        source,
    };
    let client = redis::Client::open(url).map_err(fail)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(2);
    client
        .get_connection_manager_with_config(config)
        .await
        .map_err(fail)
}

/// The materialized features as one lookup needs them.
#[derive(Debug)]
struct Schema {
    version: i64,
    info: SnapshotInfo,
    by_name: HashMap<String, usize>,
}

/// The Redis online store.
pub struct RedisStore {
    url: String,
    keys: Keys,
    conn: ConnectionManager,
    schema: ArcSwapOption<Schema>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &redact(&self.url))
            .field("prefix", &self.keys.prefix)
            .finish()
    }
}

impl RedisStore {
    /// Connects to `url` (keys under `settings.key_prefix`) and reads what
    /// is materialized there, if anything.
    pub async fn connect(url: &str, settings: &OnlineConfig) -> Result<Self> {
        let conn = connect(url, Duration::from_millis(settings.redis_timeout_ms)).await?;
        let store = Self {
            url: url.to_string(),
            keys: Keys {
                prefix: settings.key_prefix.clone(),
            },
            conn,
            schema: ArcSwapOption::empty(),
        };
        store.load_schema().await?;
        Ok(store)
    }

    fn error(&self, op: &'static str) -> impl FnOnce(redis::RedisError) -> Error + '_ {
        move |source| Error::Redis {
            url: redact(&self.url),
            op,
            source,
        }
    }

    /// Reads `P:meta`; `false` when nothing is materialized.
    async fn load_schema(&self) -> Result<bool> {
        let mut conn = self.conn.clone();
        let (version, info): (Option<i64>, Option<String>) = redis::cmd("HMGET")
            .arg(self.keys.meta())
            .arg("version")
            .arg("info")
            .query_async(&mut conn)
            .await
            .map_err(self.error("read meta"))?;
        let (Some(version), Some(info)) = (version, info) else {
            self.schema.store(None);
            return Ok(false);
        };
        let info: SnapshotInfo = serde_json::from_str(&info).map_err(|e| Error::RedisData {
            key: self.keys.meta(),
            reason: format!("info is not a snapshot description: {e}"),
        })?;
        let by_name = info
            .features
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), i))
            .collect();
        self.schema.store(Some(Arc::new(Schema {
            version,
            info,
            by_name,
        })));
        Ok(true)
    }

    /// One attempt at a lookup with `schema`; `None` when the meta version
    /// moved on.
    async fn try_get(
        &self,
        schema: &Schema,
        lookup: &Lookup<'_>,
    ) -> Result<Option<OnlineFeatures>> {
        let at = lookup.time();
        let wanted: Vec<usize> = if lookup.features.is_empty() {
            (0..schema.info.features.len()).collect()
        } else {
            lookup
                .features
                .iter()
                .map(|name| {
                    schema.by_name.get(name.as_str()).copied().ok_or_else(|| {
                        Error::UnknownOnlineFeature {
                            feature: name.clone(),
                            as_of: schema.info.as_of,
                        }
                    })
                })
                .collect::<Result<_>>()?
        };
        let mut pipe = redis::pipe();
        pipe.cmd("HGET").arg(self.keys.meta()).arg("version");
        for id in lookup.entities {
            let cmd = pipe.cmd("HMGET").arg(self.keys.entity(id)).arg(TIME_FIELD);
            for &i in &wanted {
                cmd.arg(&schema.info.features[i].name);
            }
        }
        let mut conn = self.conn.clone();
        let replies: Vec<RedisValue> = pipe
            .query_async(&mut conn)
            .await
            .map_err(self.error("lookup"))?;
        let mut replies = replies.into_iter();
        let version = replies
            .next()
            .map(Option::<i64>::from_redis_value)
            .transpose()
            .map_err(|e| self.error("lookup")(e.into()))?
            .flatten();
        if version != Some(schema.version) {
            return Ok(None);
        }
        let snapshot_time = schema.info.event_time;
        let n = lookup.entities.len();
        let mut columns: Vec<FeatureColumn> = wanted
            .iter()
            .map(|&i| {
                let spec = &schema.info.features[i];
                FeatureColumn {
                    name: spec.name.clone(),
                    ty: spec.ty,
                    values: Vec::with_capacity(n),
                    status: Vec::with_capacity(n),
                    event_time: Vec::with_capacity(n),
                }
            })
            .collect();
        for (id, reply) in lookup.entities.iter().zip(replies) {
            let fields = Vec::<Option<Vec<u8>>>::from_redis_value(reply)
                .map_err(|e| self.error("lookup")(e.into()))?;
            let mut fields = fields.into_iter();
            let event_time = match fields.next().flatten() {
                None => None,
                Some(t) => {
                    let ms = std::str::from_utf8(&t)
                        .ok()
                        .and_then(|t| t.parse::<i64>().ok())
                        .and_then(DateTime::<Utc>::from_timestamp_millis)
                        .ok_or_else(|| Error::RedisData {
                            key: self.keys.entity(id),
                            reason: format!("{TIME_FIELD} is not a time in milliseconds"),
                        })?;
                    Some(ms.max(snapshot_time))
                }
            };
            for ((column, &i), raw) in columns.iter_mut().zip(&wanted).zip(fields) {
                let spec = &schema.info.features[i];
                let status = spec.status(raw.is_some(), event_time, at);
                let value = match (status, raw) {
                    (Status::Present, Some(raw)) => {
                        decode(spec.ty, &raw).map_err(|reason| Error::RedisData {
                            key: self.keys.entity(id),
                            reason: format!("field {}: {reason}", spec.name),
                        })?
                    }
                    _ => Value::Null,
                };
                column.values.push(value);
                column.status.push(status);
                column.event_time.push(event_time);
            }
        }
        Ok(Some(OnlineFeatures {
            entities: lookup.entities.to_vec(),
            columns,
        }))
    }
}

#[async_trait]
impl OnlineStore for RedisStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn get(&self, lookup: &Lookup<'_>) -> Result<OnlineFeatures> {
        lookup.check()?;
        for _ in 0..3 {
            let schema = match self.schema.load_full() {
                Some(schema) => schema,
                None if self.load_schema().await? => continue,
                None => {
                    return Err(Error::NotMaterialized {
                        store: format!("{} (redis)", redact(&self.url)),
                    });
                }
            };
            if let Some(found) = self.try_get(&schema, lookup).await? {
                return Ok(found);
            }
            // A materialization published since: read its features and retry.
            self.load_schema().await?;
        }
        Err(Error::RedisData {
            key: self.keys.meta(),
            reason: "the materialized version kept changing during the lookup".into(),
        })
    }

    async fn refresh(&self) -> Result<bool> {
        let before = self.schema.load().as_ref().map(|s| s.version);
        self.load_schema().await?;
        Ok(self.schema.load().as_ref().map(|s| s.version) != before)
    }

    async fn info(&self) -> Result<Option<SnapshotInfo>> {
        Ok(self.schema.load().as_ref().map(|s| s.info.clone()))
    }
}

/// What a materialization into Redis did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RedisReport {
    /// Entities written: new, or whose features changed.
    pub written: u64,
    /// Entities whose features had not changed (only their expiry refreshed).
    pub unchanged: u64,
    /// Entities removed because the snapshot no longer has them.
    pub deleted: u64,
    /// The meta version published.
    pub version: i64,
    /// Seconds a key lives unless a later materialization confirms it.
    pub key_ttl_seconds: u64,
}

/// Writes `table` into the Redis database at `url`: only new and changed
/// entities, pipelined in batches of `settings.batch_size`, with
/// `settings.pipelines` batches in flight.
#[instrument(skip_all, fields(url = %redact(url), as_of = %table.info.as_of, rows = table.rows()))]
pub async fn materialize(
    table: Arc<OnlineTable>,
    url: &str,
    settings: &OnlineConfig,
    progress: &dyn Progress,
) -> Result<RedisReport> {
    let fail = |op: &'static str| {
        move |source| Error::Redis {
            url: redact(url),
            op,
            source,
        }
    };
    // Writes are large; give them time.
    let mut conn = connect(url, Duration::from_secs(120)).await?;
    let keys = Keys {
        prefix: settings.key_prefix.clone(),
    };
    let token = uuid::Uuid::new_v4().to_string();
    let locked: Option<String> = redis::cmd("SET")
        .arg(keys.lock())
        .arg(&token)
        .arg("NX")
        .arg("EX")
        .arg(LOCK_SECONDS)
        .query_async(&mut conn)
        .await
        .map_err(fail("lock"))?;
    if locked.is_none() {
        return Err(Error::MaterializeBusy { lock: keys.lock() });
    }
    let outcome = write_all(&table, &keys, &mut conn, settings, progress, url).await;
    // Release the lock only if it is still ours.
    let holder: Option<String> = redis::cmd("GET")
        .arg(keys.lock())
        .query_async(&mut conn)
        .await
        .map_err(fail("unlock"))?;
    if holder.as_deref() == Some(token.as_str()) {
        redis::cmd("DEL")
            .arg(keys.lock())
            .exec_async(&mut conn)
            .await
            .map_err(fail("unlock"))?;
    }
    outcome
}

async fn write_all(
    table: &Arc<OnlineTable>,
    keys: &Keys,
    conn: &mut ConnectionManager,
    settings: &OnlineConfig,
    progress: &dyn Progress,
    url: &str,
) -> Result<RedisReport> {
    let fail = |op: &'static str| {
        move |source| Error::Redis {
            url: redact(url),
            op,
            source,
        }
    };
    let started = Instant::now();
    let existing = scan_entities(keys, conn, url).await?;
    tracing::info!(
        existing = existing.len(),
        seconds = started.elapsed().as_secs_f64(),
        "entity keys scanned"
    );
    let max_ttl = table
        .info
        .features
        .iter()
        .map(|f| u64::from(f.ttl_days))
        .max()
        .unwrap_or(0);
    let key_ttl_seconds = (max_ttl + u64::from(settings.key_grace_days)) * 86_400;
    let event_ms = table.info.event_time.timestamp_millis();
    let existing = Arc::new(existing);

    progress.begin("redis", table.rows() as u64);
    let batch = settings.batch_size.max(1);
    let shared = conn.clone();
    let batches = (0..table.rows()).step_by(batch).map(|start| {
        let range = start..(start + batch).min(table.rows());
        let job = Batch {
            table: Arc::clone(table),
            keys: keys.clone(),
            existing: Arc::clone(&existing),
            conn: shared.clone(),
            key_ttl_seconds,
            event_ms,
            url: url.to_string(),
        };
        tokio::spawn(job.run(range))
    });
    let mut report = RedisReport {
        key_ttl_seconds,
        ..RedisReport::default()
    };
    {
        let mut results = std::pin::pin!(
            futures::stream::iter(batches).buffer_unordered(settings.pipelines.max(1))
        );
        while let Some(done) = results.next().await {
            let (written, unchanged) = done.map_err(|e| Error::RedisData {
                key: keys.entity("*"),
                reason: format!("a write task failed: {e}"),
            })??;
            report.written += written;
            report.unchanged += unchanged;
            progress.advance(written + unchanged);
        }
    }
    progress.finish();

    // Entities the snapshot no longer has.
    let mut gone: Vec<String> = {
        let current: HashSet<&str> = table.ids.iter().flatten().collect();
        existing
            .iter()
            .filter(|id| !current.contains(id.as_str()))
            .map(|id| keys.entity(id))
            .collect()
    };
    gone.sort_unstable();
    for chunk in gone.chunks(batch) {
        redis::cmd("UNLINK")
            .arg(chunk)
            .exec_async(conn)
            .await
            .map_err(fail("unlink"))?;
    }
    report.deleted = gone.len() as u64;

    let info = serde_json::to_string(&table.info).map_err(|e| Error::RedisData {
        key: keys.meta(),
        reason: e.to_string(),
    })?;
    let (version,): (i64,) = redis::pipe()
        .atomic()
        .cmd("HSET")
        .arg(keys.meta())
        .arg("info")
        .arg(info)
        .arg("materialized_at")
        .arg(Utc::now().to_rfc3339())
        .ignore()
        .cmd("HINCRBY")
        .arg(keys.meta())
        .arg("version")
        .arg(1)
        .cmd("PERSIST")
        .arg(keys.meta())
        .ignore()
        .query_async(conn)
        .await
        .map_err(fail("publish meta"))?;
    report.version = version;
    Ok(report)
}

/// Every unified_id with an entity key under the prefix.
async fn scan_entities(
    keys: &Keys,
    conn: &mut ConnectionManager,
    url: &str,
) -> Result<HashSet<String>> {
    let mut found = HashSet::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(keys.entity_pattern())
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query_async(conn)
            .await
            .map_err(|source| Error::Redis {
                url: redact(url),
                op: "scan",
                source,
            })?;
        found.extend(
            batch
                .iter()
                .filter_map(|k| keys.entity_id(k))
                .map(str::to_string),
        );
        if next == 0 {
            return Ok(found);
        }
        cursor = next;
    }
}

/// One row of a batch, encoded for Redis.
struct EncodedRow {
    /// Its row in the table.
    row: usize,
    /// (feature index, text) of every non-null value.
    fields: Vec<(usize, Vec<u8>)>,
    /// The content hash, hex.
    hash: String,
}

/// One batch of a materialization, run on its own task.
struct Batch {
    table: Arc<OnlineTable>,
    keys: Keys,
    existing: Arc<HashSet<String>>,
    conn: ConnectionManager,
    key_ttl_seconds: u64,
    event_ms: i64,
    url: String,
}

impl Batch {
    /// Writes rows `range`: returns (written, unchanged).
    async fn run(mut self, range: std::ops::Range<usize>) -> Result<(u64, u64)> {
        let url = redact(&self.url);
        let fail = |op: &'static str| {
            let url = url.clone();
            move |source| Error::Redis { url, op, source }
        };
        let table = &self.table;
        // Each row's fields as text, and its content hash.
        let mut rows: Vec<EncodedRow> = Vec::with_capacity(range.len());
        for row in range {
            let mut fields = Vec::with_capacity(table.columns.len());
            let mut hasher = Xxh3::new();
            for (i, (spec, column)) in table.info.features.iter().zip(&table.columns).enumerate() {
                let mut text = Vec::new();
                hasher.update(spec.name.as_bytes());
                hasher.update(spec.ty.name().as_bytes());
                if column.encode(row, &mut text) {
                    hasher.update(&[1]);
                    hasher.update(&text);
                    fields.push((i, text));
                } else {
                    hasher.update(&[0]);
                }
                hasher.update(&[0xFF]);
            }
            let mut hash = String::with_capacity(16);
            let _ = write!(hash, "{:016x}", hasher.digest());
            rows.push(EncodedRow { row, fields, hash });
        }
        // The stored hashes of the entities Redis has.
        let known: Vec<usize> = (0..rows.len())
            .filter(|&r| self.existing.contains(table.ids.value(rows[r].row)))
            .collect();
        let mut stored: Vec<Option<String>> = vec![None; rows.len()];
        if !known.is_empty() {
            let mut pipe = redis::pipe();
            for &r in &known {
                pipe.cmd("HGET")
                    .arg(self.keys.entity(table.ids.value(rows[r].row)))
                    .arg(HASH_FIELD);
            }
            let hashes: Vec<Option<String>> = pipe
                .query_async(&mut self.conn)
                .await
                .map_err(fail("read hashes"))?;
            for (&r, h) in known.iter().zip(hashes) {
                stored[r] = h;
            }
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        let (mut written, mut unchanged) = (0, 0);
        let event_ms = self.event_ms.to_string();
        for (EncodedRow { row, fields, hash }, stored) in rows.iter().zip(&stored) {
            let key = self.keys.entity(table.ids.value(*row));
            if stored.as_deref() == Some(hash.as_str()) {
                pipe.cmd("EXPIRE")
                    .arg(&key)
                    .arg(self.key_ttl_seconds)
                    .ignore();
                unchanged += 1;
                continue;
            }
            pipe.cmd("DEL").arg(&key).ignore();
            let hset = pipe
                .cmd("HSET")
                .arg(&key)
                .arg(HASH_FIELD)
                .arg(hash)
                .arg(TIME_FIELD)
                .arg(&event_ms);
            for (i, text) in fields {
                hset.arg(&table.info.features[*i].name).arg(text.as_slice());
            }
            hset.ignore();
            pipe.cmd("EXPIRE")
                .arg(&key)
                .arg(self.key_ttl_seconds)
                .ignore();
            written += 1;
        }
        pipe.exec_async(&mut self.conn)
            .await
            .map_err(fail("write"))?;
        Ok((written, unchanged))
    }
}
