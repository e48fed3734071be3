//! `cdp materialize` on generated data: the embedded snapshot in the lake
//! holds exactly what `silver.features` holds (looked up through
//! `cdp-store`'s reader and compared with `cdp query`), a newer date is
//! picked up by a refresh, Redis receives the same values and only what
//! changed, and mistakes are one-line errors.
//!
//! One small data set (400 customers × 40 days) is ingested and built as
//! of two consecutive days when the world is first used.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use cdp_core::config::OnlineConfig;
use cdp_core::lake::Lake;
use cdp_store::online::embedded::EmbeddedStore;
use cdp_store::online::redis::RedisStore;
use cdp_store::online::redis::server::RedisServer;
use cdp_store::online::{Lookup, MAX_ENTITIES, OnlineFeatures, OnlineStore, Status, Value};

use crate::support::{copy_dir, generate, read_csv, run_err, run_ok};

const D1: &str = "2026-02-08";
const D2: &str = "2026-02-09";

/// The four canonical features and a few of other types.
const FEATURES: [&str; 8] = [
    "txn_count_30d",
    "spend_30d",
    "days_since_last_txn",
    "distinct_devices_90d",
    "travel_share_90d",
    "segment",
    "has_credit_card",
    "social_interests",
];

struct World {
    _dir: tempfile::TempDir,
    lake: String,
    /// `cdp materialize --json` as of D1, then D2 (embedded).
    embedded: Vec<serde_json::Value>,
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).expect("--json prints JSON")
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        let lake = dir.path().join("lake").to_str().unwrap().to_string();
        generate(&raw, 400, 40, 3, 0.0, &[]);
        run_ok(&["ingest", "--lake", &lake, "--source", raw.to_str().unwrap()]);
        let mut embedded = Vec::new();
        for d in [D1, D2] {
            run_ok(&["build", "--lake", &lake, "--as-of", d, "--json"]);
            embedded.push(json(&run_ok(&[
                "materialize",
                "--lake",
                &lake,
                "--as-of",
                d,
                "--json",
            ])));
        }
        World {
            _dir: dir,
            lake,
            embedded,
        }
    })
}

/// `silver.features` as of `as_of`, by unified_id: feature → CSV text.
fn snapshot(lake: &str, as_of: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("features.csv");
    let sql = format!(
        "SELECT unified_id, {} FROM silver.features WHERE as_of = DATE '{as_of}'",
        FEATURES.join(", ")
    );
    let csv = run_ok(&["query", "--lake", lake, "--format", "csv", &sql]);
    std::fs::write(&out, csv).unwrap();
    read_csv(&out)
        .into_iter()
        .map(|mut row| (row.remove("unified_id").unwrap(), row))
        .collect()
}

/// True when a looked-up value is what `cdp query --format csv` printed.
fn same(value: &Value, csv: &str) -> bool {
    match value {
        Value::Null => csv.is_empty(),
        Value::Bool(b) => csv == b.to_string(),
        Value::Int(i) => csv.parse::<i64>() == Ok(*i),
        // Decimals print as `12.50`, floats as `0.0`: compare the numbers.
        Value::Float(x) => csv.parse::<f64>() == Ok(*x),
        Value::Text(s) => csv == s,
        Value::Date(d) => csv == d.to_string(),
        Value::List(items) => csv == format!("[{}]", items.join(", ")),
    }
}

async fn lookup_all(store: &dyn OnlineStore, ids: &[String]) -> Vec<OnlineFeatures> {
    let features: Vec<String> = FEATURES.iter().map(|f| f.to_string()).collect();
    let mut out = Vec::new();
    for chunk in ids.chunks(MAX_ENTITIES / 4) {
        // Judged at the snapshot's own event time: nothing expired.
        let at = store.info().await.unwrap().unwrap().event_time;
        out.push(
            store
                .get(&Lookup::new(chunk, &features).at(at))
                .await
                .unwrap(),
        );
    }
    out
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_embedded_snapshot_serves_exactly_silver_features() {
    let w = world();
    let first = &w.embedded[0];
    let expected = snapshot(&w.lake, D1);
    assert_eq!(first["as_of"], D1);
    assert_eq!(first["backend"], "embedded");
    assert_eq!(first["rows"].as_u64().unwrap() as usize, expected.len());
    assert_eq!(first["entities_written"], first["rows"]);
    assert_eq!(first["features"].as_u64(), Some(74), "{first}");
    assert_eq!(first["skipped_features"], serde_json::json!([]));
    assert!(first["seconds"]["total"].as_f64().unwrap() > 0.0);
    assert_eq!(w.embedded[1]["version"].as_u64(), Some(2));

    runtime().block_on(async {
        // The current snapshot is the latest materialized, D2's.
        let store = EmbeddedStore::open(Lake::open(&w.lake).unwrap())
            .await
            .unwrap();
        let info = store.info().await.unwrap().unwrap();
        assert_eq!(info.as_of.to_string(), D2);
        let expected = snapshot(&w.lake, D2);
        let ids: Vec<String> = expected.keys().cloned().collect();
        let mut present = 0;
        for answer in lookup_all(&store, &ids).await {
            for column in &answer.columns {
                for (i, id) in answer.entities.iter().enumerate() {
                    let want = &expected[id][&column.name];
                    assert!(
                        same(&column.values[i], want),
                        "{} of {id}: {:?} but silver.features has {want:?}",
                        column.name,
                        column.values[i]
                    );
                    let status = if want.is_empty() {
                        Status::Missing
                    } else {
                        present += 1;
                        Status::Present
                    };
                    assert_eq!(column.status[i], status, "{} of {id}", column.name);
                    assert_eq!(column.event_time[i], Some(info.event_time));
                }
            }
        }
        assert!(present > ids.len() * 4, "most values are there: {present}");
        // An unknown customer is missing everywhere.
        let got = lookup_all(&store, &["U-nobody".to_string()]).await;
        assert!(
            got[0]
                .columns
                .iter()
                .all(|c| c.status == [Status::Missing] && c.event_time == [None])
        );
    });
}

#[test]
fn a_refresh_picks_up_a_new_materialization_and_redis_gets_the_same_values() {
    let w = world();
    // Its own lake copy: this test materializes again.
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    copy_dir(std::path::Path::new(&w.lake), &lake);
    let lake = lake.to_str().unwrap().to_string();
    runtime().block_on(async {
        let store = EmbeddedStore::open(Lake::open(&lake).unwrap())
            .await
            .unwrap();
        assert_eq!(store.version(), 2);
        run_ok(&["materialize", "--lake", &lake, "--as-of", D1]);
        assert!(store.refresh().await.unwrap());
        assert_eq!(store.version(), 3);
        let info = store.info().await.unwrap().unwrap();
        assert_eq!(info.as_of.to_string(), D1);
        // The newest three snapshots are kept.
        let kept = walk(&std::path::Path::new(&lake).join("online/embedded"))
            .into_iter()
            .filter(|p| p.ends_with("features.arrow"))
            .count();
        assert_eq!(kept, 3);
        run_ok(&["materialize", "--lake", &lake, "--as-of", D2]);
        let kept = walk(&std::path::Path::new(&lake).join("online/embedded"))
            .into_iter()
            .filter(|p| p.ends_with("features.arrow"))
            .count();
        assert_eq!(kept, 3, "the oldest is deleted");
        // The reader still answers from the snapshot it holds.
        assert_eq!(store.info().await.unwrap().unwrap().as_of.to_string(), D1);
        assert!(store.refresh().await.unwrap());

        let Some(server) = redis_server() else { return };
        let url = server.url();
        let materialize = |d: &str| {
            json(&run_ok(&[
                "materialize",
                "--lake",
                &lake,
                "--as-of",
                d,
                "--online",
                &url,
                "--json",
            ]))
        };
        let first = materialize(D1);
        let rows = first["rows"].as_u64().unwrap();
        assert_eq!(first["backend"], "redis");
        assert_eq!(
            (
                first["entities_written"].as_u64(),
                first["entities_unchanged"].as_u64()
            ),
            (Some(rows), Some(0))
        );
        let again = materialize(D1);
        assert_eq!(
            (
                again["entities_written"].as_u64(),
                again["entities_unchanged"].as_u64()
            ),
            (Some(0), Some(rows)),
            "nothing changed: {again}"
        );
        let next = materialize(D2);
        let (written, unchanged) = (
            next["entities_written"].as_u64().unwrap(),
            next["entities_unchanged"].as_u64().unwrap(),
        );
        // tenure_days moves for everyone, daily: every customer changed.
        assert_eq!(
            (written, unchanged),
            (next["rows"].as_u64().unwrap(), 0),
            "{next}"
        );

        // Redis answers exactly as the embedded snapshot of D2 does.
        let redis = RedisStore::connect(&url, &OnlineConfig::default())
            .await
            .unwrap();
        let ids: Vec<String> = snapshot(&lake, D2).keys().cloned().collect();
        assert_eq!(
            lookup_all(&redis, &ids).await,
            lookup_all(&store, &ids).await
        );
    });
}

#[test]
fn mistakes_are_one_line_errors() {
    let w = world();
    let one_line = |args: &[&str]| {
        let out = run_err(args);
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        err
    };
    let err = one_line(&["materialize", "--lake", &w.lake, "--as-of", "2026-01-15"]);
    assert!(err.contains("cdp build --as-of 2026-01-15"), "{err}");
    let err = one_line(&[
        "materialize",
        "--lake",
        &w.lake,
        "--as-of",
        D1,
        "--online",
        "memcached://cache",
    ]);
    assert!(
        err.contains("embedded") && err.contains("redis://"),
        "{err}"
    );
    // Nothing listens there; the password is never printed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://:topsecret@127.0.0.1:{port}/0");
    let err = one_line(&[
        "materialize",
        "--lake",
        &w.lake,
        "--as-of",
        D1,
        "--online",
        &url,
    ]);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(!err.contains("topsecret"), "{err}");
}

/// A Redis server, or `None` (after saying so) when `redis-server` is
/// missing and `CDP_REQUIRE_REDIS` is unset.
fn redis_server() -> Option<RedisServer> {
    let server = RedisServer::start().expect("redis-server starts");
    if server.is_none() {
        assert!(
            std::env::var_os("CDP_REQUIRE_REDIS").is_none(),
            "CDP_REQUIRE_REDIS is set but redis-server is not installed"
        );
        eprintln!("skipping the Redis half: redis-server is not installed");
    }
    server
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
