//! One test suite for both online stores: the embedded one (snapshots in a
//! lake) and Redis (a real `redis-server` started on a free port). Each
//! backend materializes the same two hand-made snapshots and must give the
//! same answers to the same lookups: values of every type, statuses
//! (present, missing, expired at each TTL's edge), event times, feature
//! order, errors, a newer snapshot picked up by `refresh`, and, on a larger
//! synthetic snapshot, value-for-value agreement between the backends.
//!
//! Without `redis-server` the Redis half is skipped with a message, unless
//! `CDP_REQUIRE_REDIS` is set (CI sets it), which makes it fail instead.

use std::sync::Arc;

use async_trait::async_trait;
use cdp_core::config::OnlineConfig;
use cdp_core::lake::Lake;
use cdp_core::progress::Silent;
use cdp_engine::features::FeatureType;
use cdp_store::Error;
use cdp_store::online::embedded::{self, EmbeddedStore, WriteOptions};
use cdp_store::online::redis::server::RedisServer;
use cdp_store::online::redis::{RedisReport, RedisStore, materialize};
use cdp_store::online::table::OnlineTable;
use cdp_store::online::{
    FeatureSpec, Lookup, MAX_ENTITIES, OnlineFeatures, OnlineStore, SnapshotInfo, Status, Value,
};
use cdp_store::synthetic;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int64Array, ListBuilder,
    StringArray, StringBuilder,
};

// ---------------------------------------------------------------------------
// The snapshots

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
}

/// The as-of cutoff of 2026-03-D in Asia/Shanghai: D+1 00:00 +08:00.
fn cutoff(d: u32) -> DateTime<Utc> {
    (day(d) + TimeDelta::days(1))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        - TimeDelta::hours(8)
}

fn specs() -> Vec<FeatureSpec> {
    let f = |name: &str, ty, ttl_days| FeatureSpec {
        name: name.into(),
        ty,
        ttl_days,
    };
    vec![
        f("count_30d", FeatureType::Int64, 1),
        f("spend_30d", FeatureType::Decimal, 2),
        f("share_90d", FeatureType::Float64, 7),
        f("segment", FeatureType::String, 2),
        f("has_card", FeatureType::Bool, 1),
        f("interests", FeatureType::StringList, 7),
        f("onboarded", FeatureType::Date, 7),
    ]
}

/// One entity's row, as the test writes it.
#[derive(Clone)]
struct Row {
    id: &'static str,
    count: Option<i64>,
    spend_cents: Option<i128>,
    share: Option<f64>,
    segment: Option<&'static str>,
    has_card: Option<bool>,
    interests: Option<Vec<&'static str>>,
    onboarded: Option<NaiveDate>,
}

fn rows_day_1() -> Vec<Row> {
    let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d);
    vec![
        Row {
            id: "U1",
            count: Some(3),
            spend_cents: Some(12_345),
            share: Some(0.1 + 0.2),
            segment: Some("affluent"),
            has_card: Some(true),
            interests: Some(vec!["travel", "food"]),
            onboarded: date(2020, 1, 1),
        },
        Row {
            id: "U2",
            count: None,
            spend_cents: Some(0),
            share: None,
            segment: Some("mass"),
            has_card: Some(false),
            interests: Some(vec![]),
            onboarded: None,
        },
        Row {
            id: "U3",
            count: Some(70_000),
            spend_cents: None,
            share: Some(1.0),
            segment: None,
            has_card: None,
            interests: None,
            onboarded: date(1999, 12, 31),
        },
        Row {
            id: "U4",
            count: Some(0),
            spend_cents: Some(9_999_999),
            share: Some(0.0),
            segment: Some("private, \"vip\""),
            has_card: Some(true),
            interests: Some(vec!["x"]),
            onboarded: date(2026, 2, 28),
        },
    ]
}

/// Day 2: U2 changed, U3 gone, U5 new, U1 and U4 as they were.
fn rows_day_2() -> Vec<Row> {
    let mut rows = rows_day_1();
    rows[1].count = Some(5);
    rows[1].share = Some(0.5);
    rows.remove(2);
    rows.push(Row {
        id: "U5",
        count: Some(1),
        spend_cents: None,
        share: None,
        segment: Some("student"),
        has_card: Some(false),
        interests: None,
        onboarded: None,
    });
    rows
}

fn table(d: u32, rows: &[Row]) -> OnlineTable {
    let mut interests = ListBuilder::new(StringBuilder::new());
    for r in rows {
        match &r.interests {
            Some(items) => interests.append_value(items.iter().map(|s| Some(*s))),
            None => interests.append_null(),
        }
    }
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.count))),
        Arc::new(
            Decimal128Array::from_iter(rows.iter().map(|r| r.spend_cents))
                .with_precision_and_scale(18, 2)
                .unwrap(),
        ),
        Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.share))),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.segment))),
        Arc::new(BooleanArray::from_iter(rows.iter().map(|r| r.has_card))),
        Arc::new(interests.finish()),
        Arc::new(Date32Array::from_iter(
            rows.iter()
                .map(|r| r.onboarded.map(|d| (d - epoch).num_days() as i32)),
        )),
    ];
    let ids: ArrayRef = Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.id)));
    let info = SnapshotInfo {
        as_of: day(d),
        event_time: cutoff(d),
        rows: 0,
        features: specs(),
    };
    OnlineTable::new(info, &ids, &arrays).unwrap()
}

/// The value of `feature` in `row`, as a lookup must give it when present.
fn expected(row: &Row, feature: &str) -> Value {
    let or_null = |v: Option<Value>| v.unwrap_or(Value::Null);
    or_null(match feature {
        "count_30d" => row.count.map(Value::Int),
        "spend_30d" => row.spend_cents.map(|c| Value::Float(c as f64 / 100.0)),
        "share_90d" => row.share.map(Value::Float),
        "segment" => row.segment.map(|s| Value::Text(s.into())),
        "has_card" => row.has_card.map(Value::Bool),
        "interests" => row
            .interests
            .as_ref()
            .map(|i| Value::List(i.iter().map(|s| s.to_string()).collect())),
        "onboarded" => row.onboarded.map(Value::Date),
        other => panic!("no feature {other}"),
    })
}

// ---------------------------------------------------------------------------
// The backends

#[async_trait]
trait Backend: Send + Sync {
    fn name(&self) -> &'static str;
    /// True when readers see a materialization as it lands (Redis), false
    /// when they see it from their next refresh (embedded snapshots).
    fn live(&self) -> bool;
    /// Makes `table` current.
    async fn materialize(&self, table: OnlineTable);
    /// A new reader.
    async fn open(&self) -> Arc<dyn OnlineStore>;
}

struct Embedded {
    lake: Lake,
    _dir: tempfile::TempDir,
}

impl Embedded {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            lake: Lake::open(dir.path().to_str().unwrap()).unwrap(),
            _dir: dir,
        }
    }
}

#[async_trait]
impl Backend for Embedded {
    fn name(&self) -> &'static str {
        "embedded"
    }
    fn live(&self) -> bool {
        false
    }
    async fn materialize(&self, table: OnlineTable) {
        embedded::write(&self.lake, &table, &WriteOptions::default())
            .await
            .unwrap();
    }
    async fn open(&self) -> Arc<dyn OnlineStore> {
        Arc::new(EmbeddedStore::open(self.lake.clone()).await.unwrap())
    }
}

struct Redis {
    url: String,
    settings: OnlineConfig,
    reports: std::sync::Mutex<Vec<RedisReport>>,
}

impl Redis {
    fn new(server: &RedisServer, db: u8) -> Self {
        let settings = OnlineConfig {
            // Small batches, several in flight: exercise the batching.
            batch_size: 2,
            pipelines: 3,
            ..OnlineConfig::default()
        };
        Self {
            url: server.url_db(db),
            settings,
            reports: std::sync::Mutex::new(Vec::new()),
        }
    }
}

#[async_trait]
impl Backend for Redis {
    fn name(&self) -> &'static str {
        "redis"
    }
    fn live(&self) -> bool {
        true
    }
    async fn materialize(&self, table: OnlineTable) {
        let report = materialize(Arc::new(table), &self.url, &self.settings, &Silent)
            .await
            .unwrap();
        self.reports.lock().unwrap().push(report);
    }
    async fn open(&self) -> Arc<dyn OnlineStore> {
        Arc::new(
            RedisStore::connect(&self.url, &self.settings)
                .await
                .unwrap(),
        )
    }
}

/// A Redis server for this test, or `None` (after saying so) when
/// `redis-server` is missing and `CDP_REQUIRE_REDIS` is unset.
fn redis_server() -> Option<RedisServer> {
    let server = RedisServer::start().expect("redis-server starts");
    if server.is_none() {
        assert!(
            std::env::var_os("CDP_REQUIRE_REDIS").is_none(),
            "CDP_REQUIRE_REDIS is set but redis-server is not installed"
        );
        eprintln!(
            "skipping the Redis online-store tests: redis-server is not installed \
             (apt-get install redis-server; CDP_REQUIRE_REDIS=1 makes this fail)"
        );
    }
    server
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------
// The suite

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn all_features() -> Vec<String> {
    specs().into_iter().map(|f| f.name).collect()
}

async fn get(
    store: &dyn OnlineStore,
    entities: &[&str],
    features: &[&str],
    at: DateTime<Utc>,
) -> OnlineFeatures {
    let (e, f) = (strings(entities), strings(features));
    store.get(&Lookup::new(&e, &f).at(at)).await.unwrap()
}

/// Checks every column of `got` against `rows` for statuses judged at `at`
/// on a snapshot with event time `event_time`.
fn check(
    got: &OnlineFeatures,
    rows: &[Row],
    at: DateTime<Utc>,
    event_time: DateTime<Utc>,
    who: &str,
) {
    for column in &got.columns {
        let spec = specs().into_iter().find(|s| s.name == column.name).unwrap();
        assert_eq!(column.ty, spec.ty, "{who}: {}", column.name);
        for (i, id) in got.entities.iter().enumerate() {
            let at_what = format!("{who}: {} of {id}", column.name);
            match rows.iter().find(|r| r.id == id) {
                None => {
                    assert_eq!(column.status[i], Status::Missing, "{at_what}");
                    assert_eq!(column.values[i], Value::Null, "{at_what}");
                    assert_eq!(column.event_time[i], None, "{at_what}");
                }
                Some(row) => {
                    let value = expected(row, &column.name);
                    assert_eq!(column.event_time[i], Some(event_time), "{at_what}");
                    let status = if value == Value::Null {
                        Status::Missing
                    } else if at - event_time > TimeDelta::days(i64::from(spec.ttl_days)) {
                        Status::Expired
                    } else {
                        Status::Present
                    };
                    assert_eq!(column.status[i], status, "{at_what}");
                    let shown = if status == Status::Present {
                        value
                    } else {
                        Value::Null
                    };
                    assert_eq!(column.values[i], shown, "{at_what}");
                }
            }
        }
    }
}

/// The same lookups against one backend; returns every answer, for
/// comparing backends.
async fn suite(backend: &dyn Backend) -> Vec<OnlineFeatures> {
    let who = backend.name();
    let mut answers = Vec::new();

    // Nothing materialized yet.
    let store = backend.open().await;
    assert_eq!(store.backend(), who);
    assert!(store.info().await.unwrap().is_none(), "{who}");
    let (e, f) = (strings(&["U1"]), strings(&["count_30d"]));
    let err = store.get(&Lookup::new(&e, &f)).await.unwrap_err();
    assert!(matches!(err, Error::NotMaterialized { .. }), "{who}: {err}");
    assert!(!store.refresh().await.unwrap(), "{who}");

    // Day 1.
    backend.materialize(table(1, &rows_day_1())).await;
    assert!(store.refresh().await.unwrap(), "{who}: refresh sees day 1");
    assert!(!store.refresh().await.unwrap(), "{who}: nothing newer");
    let info = store.info().await.unwrap().unwrap();
    assert_eq!(
        (info.as_of, info.event_time, info.rows),
        (day(1), cutoff(1), 4)
    );
    assert_eq!(info.features, specs());

    let rows = rows_day_1();
    let entities = ["U1", "U2", "U3", "U4", "nobody", "U1"];
    let features: Vec<String> = all_features();
    let features: Vec<&str> = features.iter().map(String::as_str).collect();
    // Just after the snapshot, at each TTL's edge (1, 2 and 7 days: still
    // present) and just past it (expired).
    for at in [
        cutoff(1) + TimeDelta::hours(1),
        cutoff(1) + TimeDelta::days(1),
        cutoff(1) + TimeDelta::days(1) + TimeDelta::seconds(1),
        cutoff(1) + TimeDelta::days(2),
        cutoff(1) + TimeDelta::days(2) + TimeDelta::seconds(1),
        cutoff(1) + TimeDelta::days(7),
        cutoff(1) + TimeDelta::days(8),
    ] {
        let got = get(store.as_ref(), &entities, &features, at).await;
        assert_eq!(got.entities, strings(&entities));
        assert_eq!(got.columns.len(), features.len());
        check(&got, &rows, at, cutoff(1), who);
        answers.push(got);
    }
    // The edges themselves, spelled out.
    let at = cutoff(1) + TimeDelta::days(1) + TimeDelta::seconds(1);
    let got = get(
        store.as_ref(),
        &["U1"],
        &["count_30d", "spend_30d", "interests"],
        at,
    )
    .await;
    let status: Vec<Status> = got.columns.iter().map(|c| c.status[0]).collect();
    assert_eq!(
        status,
        [Status::Expired, Status::Present, Status::Present],
        "{who}"
    );
    assert_eq!(
        got.columns[0].values[0],
        Value::Null,
        "{who}: expired values are withheld"
    );
    assert_eq!(got.columns[1].values[0], Value::Float(123.45), "{who}");
    assert_eq!(
        got.columns[2].values[0],
        Value::List(strings(&["travel", "food"])),
        "{who}"
    );

    // Order as requested, repeats allowed; no features means all of them.
    let at = cutoff(1);
    let got = get(
        store.as_ref(),
        &["U4"],
        &["onboarded", "count_30d", "onboarded"],
        at,
    )
    .await;
    let names: Vec<&str> = got.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["onboarded", "count_30d", "onboarded"], "{who}");
    check(&got, &rows, at, cutoff(1), who);
    let got = get(store.as_ref(), &["U3"], &[], at).await;
    let names: Vec<String> = got.columns.iter().map(|c| c.name.clone()).collect();
    assert_eq!(names, all_features(), "{who}");
    check(&got, &rows, at, cutoff(1), who);
    answers.push(got);
    // No entities: empty columns.
    let got = get(store.as_ref(), &[], &["segment"], at).await;
    assert!(got.columns[0].values.is_empty(), "{who}");

    // Errors.
    let (e, f) = (strings(&["U1"]), strings(&["count_30d", "no_such_feature"]));
    let err = store.get(&Lookup::new(&e, &f)).await.unwrap_err();
    assert!(
        matches!(&err, Error::UnknownOnlineFeature { feature, as_of } if feature == "no_such_feature" && *as_of == day(1)),
        "{who}: {err}"
    );
    let many: Vec<String> = (0..=MAX_ENTITIES).map(|i| format!("U{i}")).collect();
    let err = store.get(&Lookup::new(&many, &f[..1])).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooManyEntities {
                requested: 1001,
                max: 1000
            }
        ),
        "{who}: {err}"
    );
    let got = store
        .get(&Lookup::new(&many[..MAX_ENTITIES], &f[..1]).at(at))
        .await
        .unwrap();
    assert_eq!(got.columns[0].status.len(), MAX_ENTITIES, "{who}");
    let present = got.columns[0]
        .status
        .iter()
        .filter(|s| **s == Status::Present)
        .count();
    assert_eq!(
        present, 3,
        "{who}: U1, U3 and U4 have a count among U0..U999"
    );

    // Day 2. An embedded reader answers from its snapshot, day 1, until it
    // refreshes; a Redis reader sees what Redis holds, day 2, at once.
    backend.materialize(table(2, &rows_day_2())).await;
    let at = cutoff(2) + TimeDelta::hours(1);
    let got = get(store.as_ref(), &["U3"], &["share_90d"], cutoff(1)).await;
    if backend.live() {
        assert_eq!(got.columns[0].status[0], Status::Missing, "{who}: live");
        store.refresh().await.unwrap();
    } else {
        assert_eq!(
            got.columns[0].values[0],
            Value::Float(1.0),
            "{who}: day 1 until refresh"
        );
        assert!(store.refresh().await.unwrap(), "{who}: refresh sees day 2");
    }
    assert_eq!(store.info().await.unwrap().unwrap().as_of, day(2));
    let rows = rows_day_2();
    let entities = ["U1", "U2", "U3", "U4", "U5"];
    let got = get(store.as_ref(), &entities, &features, at).await;
    // U3 is gone; unchanged U1 and U4 carry the new event time too.
    check(&got, &rows, at, cutoff(2), who);
    assert_eq!(got.columns[0].values[1], Value::Int(5), "{who}: U2 changed");
    assert_eq!(
        got.columns[0].status[2],
        Status::Missing,
        "{who}: U3 removed"
    );
    answers.push(got);

    // A fresh reader agrees with the refreshed one.
    let fresh = backend.open().await;
    let again = get(fresh.as_ref(), &entities, &features, at).await;
    assert_eq!(&again, answers.last().unwrap(), "{who}");
    answers
}

#[test]
fn embedded_store_passes_the_suite() {
    runtime().block_on(async {
        suite(&Embedded::new()).await;
    });
}

#[test]
fn redis_store_passes_the_suite_and_writes_only_what_changed() {
    let Some(server) = redis_server() else { return };
    runtime().block_on(async {
        let redis = Redis::new(&server, 0);
        let answers = suite(&redis).await;
        let reports = redis.reports.lock().unwrap().clone();
        let counts: Vec<(u64, u64, u64)> = reports
            .iter()
            .map(|r| (r.written, r.unchanged, r.deleted))
            .collect();
        // Day 1: all four; day 2: U2 (changed) and U5 (new) written, U1 and
        // U4 left alone, U3 removed.
        assert_eq!(counts, [(4, 0, 0), (2, 2, 1)]);
        assert_eq!(reports[1].version, 2);
        // Materializing day 2 again writes nothing.
        redis.materialize(table(2, &rows_day_2())).await;
        let last = redis.reports.lock().unwrap().last().cloned().unwrap();
        assert_eq!((last.written, last.unchanged, last.deleted), (0, 4, 0));

        // Keys expire after the longest TTL (7 days) plus a grace day.
        let client = redis::Client::open(server.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let ttl: i64 = redis::cmd("TTL")
            .arg("cdp:e:U1")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!((8 * 86_400 - 60..=8 * 86_400).contains(&ttl), "TTL {ttl}");
        let meta_ttl: i64 = redis::cmd("TTL")
            .arg("cdp:meta")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(meta_ttl, -1, "the meta key never expires");

        // Same answers as the embedded store, lookup for lookup.
        let embedded = suite(&Embedded::new()).await;
        assert_eq!(answers, embedded);

        // A value Redis cannot read back is an error naming key and field.
        let _: () = redis::cmd("HSET")
            .arg("cdp:e:U1")
            .arg("count_30d")
            .arg("many")
            .query_async(&mut conn)
            .await
            .unwrap();
        let store = redis.open().await;
        let (e, f) = (strings(&["U1"]), strings(&["count_30d"]));
        let err = store
            .get(&Lookup::new(&e, &f).at(cutoff(2)))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cdp:e:U1") && err.contains("count_30d"),
            "{err}"
        );
        assert!(!err.contains("many"), "no stored value in messages: {err}");
    });
}

#[test]
fn both_backends_agree_value_for_value_on_a_synthetic_snapshot() {
    let Some(server) = redis_server() else { return };
    runtime().block_on(async {
        let spec = synthetic::Spec {
            customers: 3_000,
            features: 40,
            ..synthetic::Spec::default()
        };
        let t = synthetic::table(&spec).unwrap();
        let embedded = Embedded::new();
        embedded.materialize(t.clone()).await;
        let settings = OnlineConfig {
            batch_size: 250,
            ..OnlineConfig::default()
        };
        let url = server.url_db(1);
        let report = materialize(Arc::new(t.clone()), &url, &settings, &Silent)
            .await
            .unwrap();
        assert_eq!(report.written, 3_000);
        let a = embedded.open().await;
        let b: Arc<dyn OnlineStore> = Arc::new(RedisStore::connect(&url, &settings).await.unwrap());
        let at = spec.event_time() + TimeDelta::hours(30);
        let mut statuses = std::collections::HashMap::new();
        for chunk in (0..spec.customers + 50)
            .collect::<Vec<_>>()
            .chunks(MAX_ENTITIES)
        {
            let ids: Vec<String> = chunk.iter().map(|&r| synthetic::Spec::id(r)).collect();
            let x = a.get(&Lookup::new(&ids, &[]).at(at)).await.unwrap();
            let y = b.get(&Lookup::new(&ids, &[]).at(at)).await.unwrap();
            assert_eq!(x, y);
            for (k, v) in x.status_counts() {
                *statuses.entry(k).or_insert(0) += v;
            }
            // And both equal the table itself.
            for (column, (spec, values)) in
                x.columns.iter().zip(t.info.features.iter().zip(&t.columns))
            {
                for (i, &row) in chunk.iter().enumerate() {
                    if column.status[i] == Status::Present {
                        assert_eq!(
                            column.values[i],
                            values.value(row),
                            "{} of row {row}",
                            spec.name
                        );
                    }
                }
            }
        }
        // 30 hours on, the 1-day features are expired, and some values are null.
        for status in [Status::Present, Status::Missing, Status::Expired] {
            assert!(
                statuses.get(&status).copied().unwrap_or(0) > 1_000,
                "{statuses:?}"
            );
        }
    });
}

#[test]
fn a_second_redis_materialization_waits_for_the_first() {
    let Some(server) = redis_server() else { return };
    runtime().block_on(async {
        let client = redis::Client::open(server.url_db(2)).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let _: () = redis::cmd("SET")
            .arg("cdp:lock")
            .arg("someone else")
            .query_async(&mut conn)
            .await
            .unwrap();
        let err = materialize(
            Arc::new(table(1, &rows_day_1())),
            &server.url_db(2),
            &OnlineConfig::default(),
            &Silent,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Error::MaterializeBusy { .. }), "{err}");
        let holder: String = redis::cmd("GET")
            .arg("cdp:lock")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(holder, "someone else", "another's lock is left alone");
    });
}

#[test]
fn an_unreachable_redis_is_a_one_line_error_without_the_password() {
    runtime().block_on(async {
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("redis://:hunter2@127.0.0.1:{port}/0");
        let settings = OnlineConfig {
            redis_timeout_ms: 200,
            ..OnlineConfig::default()
        };
        let err = RedisStore::connect(&url, &settings)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    });
}

#[test]
fn an_embedded_reader_keeps_its_snapshot_when_its_files_are_deleted() {
    runtime().block_on(async {
        let backend = Embedded::new();
        let keep_one = WriteOptions { keep_snapshots: 1 };
        embedded::write(&backend.lake, &table(1, &rows_day_1()), &keep_one)
            .await
            .unwrap();
        let store = EmbeddedStore::open(backend.lake.clone()).await.unwrap();
        let report = embedded::write(&backend.lake, &table(2, &rows_day_2()), &keep_one)
            .await
            .unwrap();
        assert_eq!(report.deleted.len(), 1, "day 1's snapshot is deleted");
        let root = backend.lake.local_root().unwrap();
        assert!(
            !root
                .join(&report.deleted[0])
                .join(embedded::DATA_FILE)
                .exists()
        );
        // Still mapped: day 1's answers, until the refresh.
        let at = cutoff(1);
        let got = get(
            &store,
            &["U3", "U2"],
            &all_features()
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            at,
        )
        .await;
        check(
            &got,
            &rows_day_1(),
            at,
            cutoff(1),
            "embedded, deleted files",
        );
        assert!(store.refresh().await.unwrap());
        let at = cutoff(2);
        let got = get(&store, &["U3", "U2"], &["count_30d"], at).await;
        check(&got, &rows_day_2(), at, cutoff(2), "embedded, refreshed");
    });
}

#[test]
fn embedded_lookups_go_on_while_snapshots_are_swapped() {
    let backend = Embedded::new();
    let store = runtime().block_on(async {
        backend.materialize(table(1, &rows_day_1())).await;
        Arc::new(EmbeddedStore::open(backend.lake.clone()).await.unwrap())
    });
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
            std::thread::spawn(move || {
                let entities = strings(&["U1", "U2", "U3", "U4", "U5"]);
                let features = all_features();
                let mut seen = std::collections::BTreeSet::new();
                let mut lookups = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || lookups == 0 {
                    let got = store
                        .lookup(&Lookup::new(&entities, &features).at(cutoff(1)))
                        .expect("a lookup never fails during a swap");
                    // Every answer comes from one snapshot, whole.
                    let day = if got.columns[0].event_time[0] == Some(cutoff(1)) {
                        1
                    } else {
                        2
                    };
                    let rows = if day == 1 { rows_day_1() } else { rows_day_2() };
                    check(
                        &got,
                        &rows,
                        cutoff(1),
                        cutoff(day),
                        "embedded, during a swap",
                    );
                    seen.insert(day);
                    lookups += 1;
                }
                (lookups, seen)
            })
        })
        .collect();
    runtime().block_on(async {
        for round in 0..6 {
            let (d, rows) = if round % 2 == 0 {
                (2, rows_day_2())
            } else {
                (1, rows_day_1())
            };
            backend.materialize(table(d, &rows)).await;
            assert!(store.refresh().await.unwrap());
        }
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        let (lookups, seen) = reader.join().unwrap();
        assert!(lookups > 0);
        assert!(!seen.is_empty());
    }
    assert_eq!(store.version(), 7);
}

#[test]
fn two_redis_shards_split_the_entities_and_answer_like_one_database() {
    let Some(first) = redis_server() else { return };
    let second = RedisServer::start()
        .expect("a second redis-server starts")
        .expect("redis-server is installed");
    runtime().block_on(async {
        let spec = synthetic::Spec {
            customers: 2_000,
            features: 12,
            ..synthetic::Spec::default()
        };
        let t = Arc::new(synthetic::table(&spec).unwrap());
        let settings = OnlineConfig {
            batch_size: 300,
            ..OnlineConfig::default()
        };
        let single = first.url_db(3);
        let shards = format!("{},{}", first.url_db(4), second.url_db(4));
        materialize(Arc::clone(&t), &single, &settings, &Silent)
            .await
            .unwrap();
        // first everything on one database, then on two shards: the
        // entities that now belong to the second move there
        let before = materialize(Arc::clone(&t), &first.url_db(4), &settings, &Silent)
            .await
            .unwrap();
        assert_eq!(before.written, 2_000);
        let after = materialize(Arc::clone(&t), &shards, &settings, &Silent)
            .await
            .unwrap();
        assert_eq!(after.written + after.unchanged, 2_000);
        assert_eq!(after.deleted, 0, "moving is not deleting");
        assert!(
            (800..1_200).contains(&after.written),
            "about half moved: {after:?}"
        );

        let mut held = Vec::new();
        for url in [first.url_db(4), second.url_db(4)] {
            let mut conn = redis::Client::open(url)
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap();
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg("cdp:e:*")
                .query_async(&mut conn)
                .await
                .unwrap();
            held.push(keys.len());
        }
        assert_eq!(
            held.iter().sum::<usize>(),
            2_000,
            "each entity once: {held:?}"
        );
        assert!(held.iter().all(|&n| n > 800), "{held:?}");

        // the sharded store answers exactly like the single database
        let one = RedisStore::connect(&single, &settings).await.unwrap();
        let two = RedisStore::connect(&shards, &settings).await.unwrap();
        let at = spec.event_time() + TimeDelta::hours(2);
        for chunk in (0..spec.customers + 20)
            .collect::<Vec<_>>()
            .chunks(MAX_ENTITIES)
        {
            let ids: Vec<String> = chunk.iter().map(|&r| synthetic::Spec::id(r)).collect();
            let x = one.get(&Lookup::new(&ids, &[]).at(at)).await.unwrap();
            let y = two.get(&Lookup::new(&ids, &[]).at(at)).await.unwrap();
            assert_eq!(x, y);
        }
        // a second pass over the same shards writes nothing
        let again = materialize(Arc::clone(&t), &shards, &settings, &Silent)
            .await
            .unwrap();
        assert_eq!((again.written, again.unchanged), (0, 2_000));
    });
}
