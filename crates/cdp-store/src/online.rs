//! The online store: the latest materialized features of every customer,
//! looked up by `unified_id` in microseconds (embedded) or a millisecond
//! (Redis).
//!
//! One trait, [`OnlineStore`], two backends:
//!
//! * [`embedded::EmbeddedStore`] (the default, no server): `cdp
//!   materialize` writes an immutable snapshot into the lake, an Arrow IPC
//!   file plus a hash index, and publishes it through the lake's manifest
//!   swap; a reader memory-maps it and looks entities up without locks, and
//!   [`OnlineStore::refresh`] switches to a newer snapshot without blocking
//!   lookups in flight;
//! * [`redis::RedisStore`] (`redis://host:port/db`): one hash per entity,
//!   written incrementally in pipelined batches, read with one pipelined
//!   `HMGET` per entity.
//!
//! A lookup ([`Lookup`]) names up to [`MAX_ENTITIES`] unified_ids and the
//! features wanted (none: every materialized feature) and gets
//! [`OnlineFeatures`] back: one [`FeatureColumn`] per feature, with one
//! typed [`Value`], one [`Status`] and one event time per entity. A value is
//! [`Status::Present`] when the entity was materialized with a non-null
//! value no older than the feature's TTL at the lookup time;
//! [`Status::Expired`] when it is older (the value is then withheld, as
//! [`Value::Null`]); [`Status::Missing`] when the entity is unknown or the
//! value is null. The event time is the as-of cutoff of the snapshot the
//! value comes from (D+1 00:00 business time for a snapshot as of D):
//! every event before it, and none after, went into the value.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use cdp_store::online::{Lookup, OnlineStore, Status, Value};
//! use cdp_store::online::embedded::EmbeddedStore;
//! use cdp_store::synthetic;
//!
//! // A lake with a small materialized snapshot (3 customers).
//! let dir = tempfile::tempdir().unwrap();
//! let lake = cdp_core::lake::Lake::open(dir.path().to_str().unwrap()).unwrap();
//! let snapshot = synthetic::Spec { customers: 3, features: 4, ..synthetic::Spec::default() };
//! let table = synthetic::table(&snapshot).unwrap();
//! cdp_store::online::embedded::write(&lake, &table, &Default::default()).await.unwrap();
//!
//! let store = EmbeddedStore::open(lake).await.unwrap();
//! let entities = vec!["U000000001".to_string(), "nobody".to_string()];
//! let features = vec!["f000_count".to_string()];
//! let at = snapshot.event_time(); // the moment the snapshot is as of
//! let got = store.get(&Lookup::new(&entities, &features).at(at)).await.unwrap();
//! let column = &got.columns[0];
//! assert_eq!(column.name, "f000_count");
//! assert!(matches!(column.values[0], Value::Int(_)));
//! assert_eq!(column.status, [Status::Present, Status::Missing]);
//! assert_eq!(column.event_time[0], Some(at));
//! # });
//! ```

pub mod embedded;
pub mod index;
pub mod redis;
pub mod table;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use cdp_core::config::OnlineConfig;
use cdp_core::lake::Lake;
use cdp_engine::features::FeatureType;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The most entities one lookup may name.
pub const MAX_ENTITIES: usize = 1_000;

/// A feature as the online store keeps it: name, type and TTL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// Its name in the registry and in `silver.features`.
    pub name: String,
    /// Its declared type (decimals are served as `f64`).
    #[serde(rename = "type")]
    pub ty: FeatureType,
    /// Days after its event time a value stops being served as present.
    pub ttl_days: u32,
}

impl FeatureSpec {
    /// The TTL as a duration.
    pub fn ttl(&self) -> TimeDelta {
        TimeDelta::days(i64::from(self.ttl_days))
    }

    /// The status of a value of this feature with event time `event_time`
    /// (`None`: the entity is unknown), seen at `at`. `valid` is false when
    /// the value is null.
    pub fn status(
        &self,
        valid: bool,
        event_time: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> Status {
        match event_time {
            None => Status::Missing,
            Some(_) if !valid => Status::Missing,
            Some(t) if at - t > self.ttl() => Status::Expired,
            Some(_) => Status::Present,
        }
    }
}

/// What the online store holds: the snapshot's date, event time and features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// The as-of date of the materialized `silver.features` snapshot.
    pub as_of: NaiveDate,
    /// The as-of cutoff (D+1 00:00 business time): the event time of its values.
    pub event_time: DateTime<Utc>,
    /// Entities materialized.
    pub rows: u64,
    /// The features, in materialized order.
    pub features: Vec<FeatureSpec>,
}

/// A typed feature value.
///
/// Serialized untagged: `null`, `true`, `42`, `1.5`, `"text"`,
/// `"2026-03-01"`, `["a", "b"]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// No value: unknown entity, null, or withheld because expired.
    Null,
    /// A `bool` feature.
    Bool(bool),
    /// An `int64` feature.
    Int(i64),
    /// A `float64` or `decimal` feature (decimals to the nearest `f64`).
    Float(f64),
    /// A `string` feature.
    Text(String),
    /// A `date` feature.
    Date(NaiveDate),
    /// A `string_list` feature.
    List(Vec<String>),
}

/// Whether a value was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Materialized, non-null, within the feature's TTL.
    Present,
    /// Unknown entity, or a null value.
    Missing,
    /// Materialized but older than the feature's TTL at the lookup time.
    Expired,
}

/// One feature's values for the entities of a lookup, in request order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureColumn {
    /// The feature.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub ty: FeatureType,
    /// One value per entity ([`Value::Null`] unless present).
    pub values: Vec<Value>,
    /// One status per entity.
    pub status: Vec<Status>,
    /// One event time per entity (`None` for an unknown entity).
    pub event_time: Vec<Option<DateTime<Utc>>>,
}

/// The answer to a [`Lookup`]: columns of values, statuses and event times.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OnlineFeatures {
    /// The entities, as requested.
    pub entities: Vec<String>,
    /// One column per requested feature, in request order.
    pub columns: Vec<FeatureColumn>,
}

impl OnlineFeatures {
    /// The column of `feature`, if requested.
    pub fn column(&self, feature: &str) -> Option<&FeatureColumn> {
        self.columns.iter().find(|c| c.name == feature)
    }

    /// Number of values per status over all columns.
    pub fn status_counts(&self) -> HashMap<Status, usize> {
        let mut counts = HashMap::new();
        for status in self.columns.iter().flat_map(|c| &c.status) {
            *counts.entry(*status).or_insert(0) += 1;
        }
        counts
    }
}

/// A lookup: entities (unified_ids), features, and the time statuses are
/// judged at.
#[derive(Debug, Clone, Copy)]
pub struct Lookup<'a> {
    /// The unified_ids, at most [`MAX_ENTITIES`].
    pub entities: &'a [String],
    /// The features; empty means every materialized feature.
    pub features: &'a [String],
    /// Values older than their TTL at this time are expired (`None`: now).
    pub at: Option<DateTime<Utc>>,
}

impl<'a> Lookup<'a> {
    /// `features` of `entities`, judged now.
    pub fn new(entities: &'a [String], features: &'a [String]) -> Self {
        Self {
            entities,
            features,
            at: None,
        }
    }

    /// Judges TTLs at `at` instead of now.
    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.at = Some(at);
        self
    }

    /// The time TTLs are judged at.
    pub fn time(&self) -> DateTime<Utc> {
        self.at.unwrap_or_else(Utc::now)
    }

    /// Refuses lookups over [`MAX_ENTITIES`].
    pub fn check(&self) -> Result<()> {
        if self.entities.len() > MAX_ENTITIES {
            return Err(Error::TooManyEntities {
                requested: self.entities.len(),
                max: MAX_ENTITIES,
            });
        }
        Ok(())
    }
}

/// An online feature store: lookups of the latest materialized features.
///
/// Implementations are cheap to share (`Arc<dyn OnlineStore>`) and safe to
/// call from many tasks at once; a lookup never waits for a
/// [`refresh`](OnlineStore::refresh).
#[async_trait]
pub trait OnlineStore: Send + Sync + std::fmt::Debug {
    /// `embedded` or `redis`.
    fn backend(&self) -> &'static str;

    /// The features of the entities of `lookup`, one column per feature.
    ///
    /// Fails on more than [`MAX_ENTITIES`] entities, on a feature the
    /// store does not hold, and when nothing was materialized yet.
    async fn get(&self, lookup: &Lookup<'_>) -> Result<OnlineFeatures>;

    /// Picks up a newer materialization; `true` when it changed.
    async fn refresh(&self) -> Result<bool>;

    /// What the store currently serves, `None` before the first
    /// materialization.
    async fn info(&self) -> Result<Option<SnapshotInfo>>;
}

/// Where `cdp materialize` writes and the server reads: the lake's
/// embedded snapshots, or a Redis database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnlineTarget {
    /// Snapshots in the lake (`embedded`).
    Embedded,
    /// A Redis database (`redis://[user:password@]host:port/db`, or
    /// `rediss://`), or several shards as a comma-separated list of such
    /// URLs (each entity lives on the shard its id hashes to).
    Redis(String),
}

impl OnlineTarget {
    /// Parses `embedded` or a `redis://` / `rediss://` URL.
    ///
    /// ```
    /// use cdp_store::online::OnlineTarget;
    ///
    /// assert_eq!(OnlineTarget::parse("embedded").unwrap(), OnlineTarget::Embedded);
    /// let redis = OnlineTarget::parse("redis://:secret@cache:6379/2").unwrap();
    /// assert_eq!(redis.to_string(), "redis://cache:6379/2"); // no password shown
    /// assert!(OnlineTarget::parse("memcached://x").is_err());
    /// let shards = OnlineTarget::parse("redis://a:6379/0, redis://b:6379/0").unwrap();
    /// assert_eq!(shards.to_string(), "redis://a:6379/0,redis://b:6379/0");
    /// ```
    pub fn parse(uri: &str) -> Result<Self> {
        let uri = uri.trim();
        if uri.eq_ignore_ascii_case("embedded") {
            return Ok(Self::Embedded);
        }
        if uri.starts_with("redis://") || uri.starts_with("rediss://") {
            let shards = redis::shard_urls(uri);
            for (i, shard) in shards.iter().enumerate() {
                ::redis::Client::open(*shard).map_err(|e| Error::OnlineTarget {
                    uri: redact(uri),
                    reason: format!("shard {}: {e}", i + 1),
                })?;
            }
            return Ok(Self::Redis(shards.join(",")));
        }
        Err(Error::OnlineTarget {
            uri: redact(uri),
            reason: "must be `embedded` or a redis://host:port/db URL".into(),
        })
    }

    /// The backend name: `embedded` or `redis`.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Embedded => "embedded",
            Self::Redis(_) => "redis",
        }
    }
}

impl std::fmt::Display for OnlineTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Embedded => f.write_str("embedded"),
            Self::Redis(url) => f.write_str(&redact(url)),
        }
    }
}

/// `uri` without the password (and user) of its authority, for messages;
/// each URL of a comma-separated list of shards alike.
///
/// ```
/// use cdp_store::online::redact;
///
/// assert_eq!(
///     redact("redis://:pw@a:6379/0,redis://user:pw@b:6380/0"),
///     "redis://a:6379/0,redis://b:6380/0"
/// );
/// ```
pub fn redact(uri: &str) -> String {
    uri.split(',').map(redact_one).collect::<Vec<_>>().join(",")
}

fn redact_one(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_string();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://{host}{path}"),
        None => uri.to_string(),
    }
}

/// Opens the online store `target` names (the embedded one reads `lake`)
/// and loads what is current.
pub async fn open(
    target: &OnlineTarget,
    lake: &Lake,
    settings: &OnlineConfig,
) -> Result<Arc<dyn OnlineStore>> {
    Ok(match target {
        OnlineTarget::Embedded => Arc::new(embedded::EmbeddedStore::open(lake.clone()).await?),
        OnlineTarget::Redis(url) => Arc::new(redis::RedisStore::connect(url, settings).await?),
    })
}
