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
//!
//! Shards: the target may list several databases, comma-separated
//! (`redis://a:6379/0,redis://b:6379/0`). An entity key lives on shard
//! `xxh3(unified_id) mod N`; `P:meta` and `P:lock` live on the first. A
//! lookup sends one pipeline per shard that holds some of its entities, all
//! at once; a materialization scans every shard, and an entity found on a
//! shard that is no longer its own (the list changed) is written where it
//! belongs and unlinked where it was. Each shard is one multiplexed,
//! self-reconnecting connection; reads and the idempotent batch writes are
//! retried with exponential back-off when a connection drops or times out.

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

/// Attempts of a read or an idempotent write before its error is returned.
const ATTEMPTS: u32 = 4;
/// The first back-off; each next one is four times longer (10, 40, 160 ms).
const FIRST_BACKOFF: Duration = Duration::from_millis(10);

/// The URLs of the shards `target` lists (comma-separated), in order.
///
/// ```
/// use cdp_store::online::redis::shard_urls;
///
/// assert_eq!(shard_urls("redis://a/0, redis://b/0"), ["redis://a/0", "redis://b/0"]);
/// assert_eq!(shard_urls("redis://a/0"), ["redis://a/0"]);
/// ```
pub fn shard_urls(target: &str) -> Vec<&str> {
    target
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// A connection manager (reconnects on its own, with back-off) to `url`.
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
        .set_number_of_retries(ATTEMPTS as usize)
        .set_min_delay(FIRST_BACKOFF)
        .set_max_delay(Duration::from_secs(2));
    client
        .get_connection_manager_with_config(config)
        .await
        .map_err(fail)
}

/// Whether `e` is worth another attempt: the connection, not the request.
fn transient(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_connection_refusal()
}

/// Runs `op` until it succeeds, fails for good, or [`ATTEMPTS`] are spent,
/// waiting [`FIRST_BACKOFF`] × 4ⁿ between attempts. Only for reads and
/// writes that may safely run twice.
async fn retry<T, F, Fut>(mut op: F) -> redis::RedisResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<T>>,
{
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) if attempt < ATTEMPTS && transient(&e) => {
                tracing::warn!(attempt, error = %e, "redis call failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff *= 4;
                attempt += 1;
            }
            done => return done,
        }
    }
}

/// The shard of `n` that entity `id` lives on.
fn shard_of(id: &str, n: usize) -> usize {
    match n {
        0 | 1 => 0,
        n => (xxhash_rust::xxh3::xxh3_64(id.as_bytes()) % n as u64) as usize,
    }
}

/// The databases of one store: an entity lives on the shard its id hashes
/// to; the meta and the lock on the first.
#[derive(Clone)]
struct Shards {
    urls: Arc<[String]>,
    conns: Vec<ConnectionManager>,
}

impl Shards {
    async fn connect(target: &str, timeout: Duration) -> Result<Shards> {
        let urls: Vec<String> = shard_urls(target).into_iter().map(String::from).collect();
        if urls.is_empty() {
            return Err(Error::OnlineTarget {
                uri: redact(target),
                reason: "names no Redis database".into(),
            });
        }
        let conns =
            futures::future::try_join_all(urls.iter().map(|url| connect(url, timeout))).await?;
        Ok(Shards {
            urls: urls.into(),
            conns,
        })
    }

    fn len(&self) -> usize {
        self.conns.len()
    }

    /// The shard entity `id` lives on.
    fn of(&self, id: &str) -> usize {
        shard_of(id, self.conns.len())
    }

    /// The shard holding the meta and the lock.
    fn first(&self) -> ConnectionManager {
        self.conns[0].clone()
    }

    /// A mapper of a Redis error on shard `shard` during `op`.
    fn error(&self, shard: usize, op: &'static str) -> impl Fn(redis::RedisError) -> Error + '_ {
        move |source| Error::Redis {
            url: redact(&self.urls[shard]),
            op,
            source,
        }
    }
}

/// The materialized features as one lookup needs them.
#[derive(Debug)]
struct Schema {
    version: i64,
    info: SnapshotInfo,
    by_name: HashMap<String, usize>,
}

/// The Redis online store, on one database or several shards.
pub struct RedisStore {
    url: String,
    keys: Keys,
    shards: Shards,
    schema: ArcSwapOption<Schema>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &redact(&self.url))
            .field("prefix", &self.keys.prefix)
            .field("shards", &self.shards.len())
            .finish()
    }
}

impl RedisStore {
    /// Connects to `url`, one database or a comma-separated list of
    /// shards (keys under `settings.key_prefix`), and reads what is
    /// materialized there, if anything.
    pub async fn connect(url: &str, settings: &OnlineConfig) -> Result<Self> {
        let shards = Shards::connect(url, Duration::from_millis(settings.redis_timeout_ms)).await?;
        let store = Self {
            url: url.to_string(),
            keys: Keys {
                prefix: settings.key_prefix.clone(),
            },
            shards,
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
        let (version, info): (Option<i64>, Option<String>) = retry(|| {
            let mut conn = self.shards.first();
            let meta = self.keys.meta();
            async move {
                redis::cmd("HMGET")
                    .arg(meta)
                    .arg("version")
                    .arg("info")
                    .query_async(&mut conn)
                    .await
            }
        })
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
        // one pipeline per shard holding some of the entities; the first
        // also reads the meta version
        let n_shards = self.shards.len();
        let mut pipes: Vec<(redis::Pipeline, Vec<usize>)> =
            (0..n_shards).map(|_| (redis::pipe(), Vec::new())).collect();
        pipes[0].0.cmd("HGET").arg(self.keys.meta()).arg("version");
        for (e, id) in lookup.entities.iter().enumerate() {
            let (pipe, members) = &mut pipes[self.shards.of(id)];
            let cmd = pipe.cmd("HMGET").arg(self.keys.entity(id)).arg(TIME_FIELD);
            for &i in &wanted {
                cmd.arg(&schema.info.features[i].name);
            }
            members.push(e);
        }
        let calls = pipes
            .iter()
            .enumerate()
            .filter(|(shard, (_, members))| *shard == 0 || !members.is_empty())
            .map(|(shard, (pipe, members))| async move {
                let replies: Vec<RedisValue> = retry(|| {
                    let mut conn = self.shards.conns[shard].clone();
                    async move { pipe.query_async(&mut conn).await }
                })
                .await
                .map_err(self.shards.error(shard, "lookup"))?;
                Ok::<_, Error>((shard, members, replies))
            });
        let answers = futures::future::try_join_all(calls).await?;
        let mut by_entity: Vec<Option<RedisValue>> = vec![None; lookup.entities.len()];
        let mut version = None;
        for (shard, members, replies) in answers {
            let mut replies = replies.into_iter();
            if shard == 0 {
                version = replies
                    .next()
                    .map(Option::<i64>::from_redis_value)
                    .transpose()
                    .map_err(|e| self.error("lookup")(e.into()))?
                    .flatten();
            }
            for (&e, reply) in members.iter().zip(replies) {
                by_entity[e] = Some(reply);
            }
        }
        if version != Some(schema.version) {
            return Ok(None);
        }
        let replies = by_entity
            .into_iter()
            .zip(lookup.entities)
            .map(|(reply, id)| {
                reply.ok_or_else(|| Error::RedisData {
                    key: self.keys.entity(id),
                    reason: "its shard sent fewer replies than commands".into(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
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
    let shards = Shards::connect(url, Duration::from_secs(120)).await?;
    let mut conn = shards.first();
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
    let outcome = write_all(&table, &keys, &shards, settings, progress).await;
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
    shards: &Shards,
    settings: &OnlineConfig,
    progress: &dyn Progress,
) -> Result<RedisReport> {
    let started = Instant::now();
    // the entities each shard holds, wherever they belong
    let existing: Vec<HashSet<String>> = futures::future::try_join_all(
        (0..shards.len()).map(|shard| scan_entities(keys, shards, shard)),
    )
    .await?;
    tracing::info!(
        existing = existing.iter().map(HashSet::len).sum::<usize>(),
        shards = shards.len(),
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
    let batches = (0..table.rows()).step_by(batch).map(|start| {
        let range = start..(start + batch).min(table.rows());
        let job = Batch {
            table: Arc::clone(table),
            keys: keys.clone(),
            existing: Arc::clone(&existing),
            shards: shards.clone(),
            key_ttl_seconds,
            event_ms,
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

    // Keys to drop: entities the snapshot no longer has, and entities
    // found on a shard that is no longer theirs (written where they belong
    // above).
    let current: HashSet<&str> = table.ids.iter().flatten().collect();
    for (shard, held) in existing.iter().enumerate() {
        let mut gone = Vec::new();
        for id in held {
            let dropped = !current.contains(id.as_str());
            if dropped || shards.of(id) != shard {
                gone.push(keys.entity(id));
            }
            report.deleted += u64::from(dropped);
        }
        gone.sort_unstable();
        for chunk in gone.chunks(batch) {
            retry(|| {
                let mut conn = shards.conns[shard].clone();
                async move { redis::cmd("UNLINK").arg(chunk).exec_async(&mut conn).await }
            })
            .await
            .map_err(shards.error(shard, "unlink"))?;
        }
    }

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
        .query_async(&mut shards.first())
        .await
        .map_err(shards.error(0, "publish meta"))?;
    report.version = version;
    Ok(report)
}

/// Every unified_id with an entity key under the prefix on shard `shard`.
async fn scan_entities(keys: &Keys, shards: &Shards, shard: usize) -> Result<HashSet<String>> {
    let mut found = HashSet::new();
    let mut cursor: u64 = 0;
    let pattern = keys.entity_pattern();
    loop {
        let (next, batch): (u64, Vec<String>) = retry(|| {
            let mut conn = shards.conns[shard].clone();
            let pattern = &pattern;
            async move {
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(SCAN_COUNT)
                    .query_async(&mut conn)
                    .await
            }
        })
        .await
        .map_err(shards.error(shard, "scan"))?;
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
    /// The entities each shard holds.
    existing: Arc<Vec<HashSet<String>>>,
    shards: Shards,
    key_ttl_seconds: u64,
    event_ms: i64,
}

impl Batch {
    /// Writes rows `range`, each on its shard: returns (written, unchanged).
    async fn run(self, range: std::ops::Range<usize>) -> Result<(u64, u64)> {
        let mut by_shard: Vec<Vec<usize>> = vec![Vec::new(); self.shards.len()];
        for row in range {
            by_shard[self.shards.of(self.table.ids.value(row))].push(row);
        }
        let mut done = (0, 0);
        for (shard, rows) in by_shard.into_iter().enumerate() {
            if !rows.is_empty() {
                let (written, unchanged) = self.run_on(shard, rows).await?;
                done.0 += written;
                done.1 += unchanged;
            }
        }
        Ok(done)
    }

    /// Writes `rows`, which all live on shard `shard`.
    async fn run_on(&self, shard: usize, rows: Vec<usize>) -> Result<(u64, u64)> {
        let table = &self.table;
        // Each row's fields as text, and its content hash.
        let rows: Vec<EncodedRow> = rows.into_iter().map(|row| self.encode(row)).collect();
        // The stored hashes of the entities this shard has.
        let held = &self.existing[shard];
        let known: Vec<usize> = (0..rows.len())
            .filter(|&r| held.contains(table.ids.value(rows[r].row)))
            .collect();
        let mut stored: Vec<Option<String>> = vec![None; rows.len()];
        if !known.is_empty() {
            let mut pipe = redis::pipe();
            for &r in &known {
                pipe.cmd("HGET")
                    .arg(self.keys.entity(table.ids.value(rows[r].row)))
                    .arg(HASH_FIELD);
            }
            let hashes: Vec<Option<String>> = retry(|| {
                let mut conn = self.shards.conns[shard].clone();
                let pipe = &pipe;
                async move { pipe.query_async(&mut conn).await }
            })
            .await
            .map_err(self.shards.error(shard, "read hashes"))?;
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
        // DEL + HSET + EXPIRE in one transaction: safe to send again
        retry(|| {
            let mut conn = self.shards.conns[shard].clone();
            let pipe = &pipe;
            async move { pipe.exec_async(&mut conn).await }
        })
        .await
        .map_err(self.shards.error(shard, "write"))?;
        Ok((written, unchanged))
    }

    /// A row's fields as text, and its content hash.
    fn encode(&self, row: usize) -> EncodedRow {
        let table = &self.table;
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
        EncodedRow { row, fields, hash }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn dropped() -> redis::RedisError {
        std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer").into()
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_with_backoff_and_others_are_not() {
        let calls = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let got = retry(|| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move { if n < 2 { Err(dropped()) } else { Ok(n) } }
        })
        .await;
        assert_eq!(got.unwrap(), 2);
        // waited 10 ms, then 40 ms
        assert_eq!(started.elapsed(), Duration::from_millis(50));

        calls.store(0, Ordering::SeqCst);
        let got: redis::RedisResult<()> = retry(|| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(dropped()) }
        })
        .await;
        assert!(got.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), ATTEMPTS, "gives up");

        calls.store(0, Ordering::SeqCst);
        let got: redis::RedisResult<()> = retry(|| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err((redis::ErrorKind::UnexpectedReturnType, "not a hash").into()) }
        })
        .await;
        assert!(got.is_err());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "a wrong answer is not retried"
        );
    }

    #[test]
    fn entities_spread_over_the_shards_by_their_id() {
        let shards = |n: usize| -> Vec<usize> {
            let mut count = vec![0; n];
            for i in 0..10_000 {
                let id = format!("U{i:09}");
                count[shard_of(&id, n)] += 1;
            }
            count
        };
        for count in [shards(2), shards(3)] {
            let fair = 10_000 / count.len();
            assert!(
                count.iter().all(|&c| c.abs_diff(fair) < fair / 10),
                "{count:?}"
            );
        }
    }
}
