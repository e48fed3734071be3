//! `cdp historical` on generated data: each entity row gets the snapshot
//! of the day before its timestamp's business day (never that day's, whose
//! values differ — checked, so a leak would show), identity through that
//! snapshot, TTLs per feature, shared devices resolved to nobody, rows and
//! columns kept; feature services by name; one-line errors.
//!
//! One small data set (300 customers × 14 days) is ingested and built as
//! of 10, 11 and 12 January when the world is first used.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::support::{generate, read_csv, run_err, run_ok};

const DAYS: [&str; 3] = ["2026-01-10", "2026-01-11", "2026-01-12"];

/// Features of several families and TTLs: transactions (2 days),
/// velocity (1 day), profile (7 days).
const FEATURES: [&str; 4] = [
    "days_since_last_txn",
    "spend_30d",
    "txn_count_1d",
    "age_years",
];

/// (timestamp, the snapshot it must get, features not expired). Business
/// time is Asia/Shanghai.
const TIMES: [(&str, &str, [bool; 4]); 5] = [
    // the morning of a built day: the day before
    ("2026-01-12T09:30:00+08:00", "2026-01-11", [true; 4]),
    // exactly the cutoff of 11 Jan, as an offset and as UTC
    ("2026-01-12T00:00:00+08:00", "2026-01-11", [true; 4]),
    ("2026-01-11T16:00:00Z", "2026-01-11", [true; 4]),
    // a second before it
    ("2026-01-11T23:59:59+08:00", "2026-01-10", [true; 4]),
    // two days after the last snapshot: velocity (1 day) has expired
    (
        "2026-01-14T08:00:00+08:00",
        "2026-01-12",
        [true, true, false, true],
    ),
];

struct World {
    dir: tempfile::TempDir,
    lake: String,
    /// customer_ids known as of the first snapshot.
    customers: Vec<String>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        let lake = dir.path().join("lake").to_str().unwrap().to_string();
        generate(&raw, 300, 14, 4, 0.0, &[]);
        run_ok(&["ingest", "--lake", &lake, "--source", raw.to_str().unwrap()]);
        for d in DAYS {
            run_ok(&["build", "--lake", &lake, "--as-of", d, "--json"]);
        }
        let customers = query(
            &lake,
            &format!(
                "SELECT source_key FROM silver.identity_map WHERE as_of = DATE '{}' \
                 AND source = 'customers' ORDER BY source_key",
                DAYS[0]
            ),
        )
        .into_iter()
        .map(|mut r| r.remove("source_key").unwrap())
        .collect();
        World {
            dir,
            lake,
            customers,
        }
    })
}

/// Rows of a query, as maps from column to CSV text.
fn query(lake: &str, sql: &str) -> Vec<BTreeMap<String, String>> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q.csv");
    std::fs::write(
        &out,
        run_ok(&["query", "--lake", lake, "--format", "csv", sql]),
    )
    .unwrap();
    read_csv(&out)
}

/// The features of every customer_id as of `day`, straight from the lake
/// (customer_id → unified_id and feature → CSV text).
fn expected(lake: &str, day: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let sql = format!(
        "SELECT i.source_key AS customer_id, f.unified_id, {} \
         FROM silver.identity_map i JOIN silver.features f \
           ON f.as_of = i.as_of AND f.unified_id = i.unified_id \
         WHERE i.as_of = DATE '{day}' AND i.source = 'customers'",
        FEATURES.map(|f| format!("f.{f}")).join(", ")
    );
    query(lake, &sql)
        .into_iter()
        .map(|mut r| (r.remove("customer_id").unwrap(), r))
        .collect()
}

fn path(name: &str) -> PathBuf {
    world().dir.path().join(name)
}

fn historical(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["historical", "--lake", &world().lake, "--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&run_ok(&all)).expect("--json prints JSON")
}

/// Writes an entity CSV: every customer at every time of [`TIMES`], with
/// a `label` column numbering the rows.
fn customer_entities(file: &Path) -> Vec<(String, usize)> {
    let mut text = String::from("label,customer_id,event_timestamp\n");
    let mut rows = Vec::new();
    for (t, (ts, _, _)) in TIMES.iter().enumerate() {
        for c in &world().customers {
            text.push_str(&format!("{},{c},{ts}\n", rows.len()));
            rows.push((c.clone(), t));
        }
    }
    std::fs::write(file, text).unwrap();
    rows
}

#[test]
fn rows_get_the_snapshot_before_their_day_never_their_day() {
    let w = world();
    let entities = path("customers.csv");
    let rows = customer_entities(&entities);
    let out = path("train.csv");
    let report = historical(&[
        "--entities",
        entities.to_str().unwrap(),
        "--features",
        &FEATURES.join(","),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(report["rows"].as_u64().unwrap() as usize, rows.len());
    assert_eq!(report["key_kind"], "customer_id", "{report}");
    assert_eq!(
        report["status"]["ok"].as_u64().unwrap() as usize,
        rows.len(),
        "{report}"
    );

    let snapshots: BTreeMap<&str, _> = DAYS.iter().map(|d| (*d, expected(&w.lake, d))).collect();
    // The test can catch a leak: the morning of 12 Jan must not see 12
    // Jan's values, and those differ from 11 Jan's for most customers.
    let differ = w
        .customers
        .iter()
        .filter(|c| snapshots["2026-01-11"][*c] != snapshots["2026-01-12"][*c])
        .count();
    assert!(
        differ * 2 > w.customers.len(),
        "only {differ} customers change"
    );

    let got = read_csv(&out);
    assert_eq!(got.len(), rows.len());
    for (i, ((customer, t), row)) in rows.iter().zip(&got).enumerate() {
        let (ts, day, fresh) = TIMES[*t];
        assert_eq!(row["label"], i.to_string(), "rows keep their order");
        assert_eq!(row["event_timestamp"], ts, "columns are kept");
        assert_eq!(row["features_as_of"], day, "{customer} at {ts}");
        assert_eq!(row["entity_status"], "ok");
        let want = &snapshots[day][customer];
        assert_eq!(row["unified_id"], want["unified_id"], "{customer} at {ts}");
        for (f, feature) in FEATURES.iter().enumerate() {
            let expected = if fresh[f] {
                want[*feature].as_str()
            } else {
                ""
            };
            assert_eq!(row[*feature], expected, "{customer} at {ts}: {feature}");
        }
    }
    let expired = &report["expired"];
    assert_eq!(
        expired["txn_count_1d"].as_u64().unwrap() as usize,
        w.customers.len(),
        "{report}"
    );
    assert_eq!(expired["spend_30d"], 0, "{report}");
}

#[test]
fn a_service_retrieves_its_features_into_parquet_and_devices_resolve_through_the_snapshot() {
    let w = world();
    // Devices as of 11 Jan: one logged into by one person, shared ones.
    let devices = query(
        &w.lake,
        "SELECT source_key, min(unified_id) AS unified_id, min(matched_by) AS matched_by \
         FROM silver.identity_map \
         WHERE as_of = DATE '2026-01-11' AND source = 'device_events' \
         GROUP BY source_key ORDER BY source_key",
    );
    let shared = devices
        .iter()
        .find(|d| d["matched_by"] == "shared_device")
        .expect("the generator plants shared devices");
    let single = devices
        .iter()
        .find(|d| d["matched_by"] == "login")
        .expect("devices of one person");
    let entities = path("devices.csv");
    std::fs::write(
        &entities,
        format!(
            "device_id,ts,note\n{},2026-01-12T10:00:00+08:00,a\n{},2026-01-12T10:00:00+08:00,b\nDV-none,2026-01-12T10:00:00+08:00,c\n{},2026-01-01T10:00:00+08:00,d\n",
            single["source_key"], shared["source_key"], single["source_key"]
        ),
    )
    .unwrap();
    let out = path("devices.parquet");
    let report = historical(&[
        "--entities",
        entities.to_str().unwrap(),
        "--service",
        "fraud_signals_v1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(report["service"], "fraud_signals_v1");
    assert_eq!(report["key_kind"], "device_id");
    assert_eq!(report["timestamp_column"], "ts");
    let features: Vec<&str> = report["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(features.contains(&"failed_logins_30d"), "{report}");

    use polars::prelude::*;
    let frame = ParquetReader::new(std::fs::File::open(&out).unwrap())
        .finish()
        .unwrap();
    let text = |name: &str| -> Vec<Option<String>> {
        let column = frame.column(name).unwrap().cast(&DataType::String).unwrap();
        column
            .str()
            .unwrap()
            .iter()
            .map(|v| v.map(String::from))
            .collect()
    };
    assert_eq!(
        text("entity_status"),
        ["ok", "shared_device", "unknown_key", "no_snapshot"].map(|s| Some(s.to_string()))
    );
    assert_eq!(
        text("note"),
        ["a", "b", "c", "d"].map(|s| Some(s.to_string()))
    );
    assert_eq!(
        text("unified_id"),
        [Some(single["unified_id"].clone()), None, None, None]
    );
    // The shared device's row holds no one's features.
    let failed = text("failed_logins_30d");
    assert!(failed[0].is_some() && failed[1].is_none(), "{failed:?}");
    let columns: Vec<String> = frame
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(
        columns[..6],
        [
            "device_id",
            "ts",
            "note",
            "unified_id",
            "features_as_of",
            "entity_status"
        ]
    );
    assert_eq!(columns.len(), 6 + features.len());
}

#[test]
fn feature_services_are_listed_and_described() {
    let list = run_ok(&["features", "list"]);
    assert!(
        list.contains("card_offers_v1") && list.contains("fraud_signals_v1"),
        "{list}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&run_ok(&["features", "list", "--json"])).unwrap();
    let spend = json
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "spend_30d")
        .unwrap();
    assert_eq!(spend["services"], serde_json::json!(["card_offers_v1"]));
    let service: serde_json::Value = serde_json::from_str(&run_ok(&[
        "features",
        "describe",
        "card_offers_v1",
        "--json",
    ]))
    .unwrap();
    assert_eq!(service["version"], 1);
    assert!(service["consumer"].as_str().unwrap().contains("offer"));
    let help = run_ok(&["historical", "--help"]);
    assert!(
        help.contains("Examples:") && help.contains("--service card_offers_v1"),
        "{help}"
    );
}

#[test]
fn mistakes_get_one_line_reasons() {
    let w = world();
    let entities = path("few.csv");
    std::fs::write(
        &entities,
        "customer_id,event_timestamp\nC1,2026-01-12T10:00:00+08:00\n",
    )
    .unwrap();
    let no_key = path("nokey.csv");
    std::fs::write(
        &no_key,
        "who,event_timestamp\nC1,2026-01-12T10:00:00+08:00\n",
    )
    .unwrap();
    let out = path("x.csv");
    let (e, o) = (entities.to_str().unwrap(), out.to_str().unwrap());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--entities", e, "--features", "spend_31d", "--out", o],
            "unknown feature \"spend_31d\"",
        ),
        (
            vec!["--entities", e, "--service", "card_offers_v9", "--out", o],
            "no feature service named \"card_offers_v9\"",
        ),
        (
            vec![
                "--entities",
                no_key.to_str().unwrap(),
                "--features",
                "spend_30d",
                "--out",
                o,
            ],
            "no key column",
        ),
        (
            vec![
                "--entities",
                e,
                "--features",
                "spend_30d",
                "--out",
                "x.json",
            ],
            "must end in .csv or .parquet",
        ),
        (
            vec![
                "--entities",
                "missing.csv",
                "--features",
                "spend_30d",
                "--out",
                o,
            ],
            "missing.csv",
        ),
        (
            vec!["--entities", e, "--out", o],
            "give --features a,b,c or --service NAME",
        ),
    ];
    for (args, reason) in cases {
        let mut all = vec!["historical", "--lake", &w.lake];
        all.extend(args);
        let err = String::from_utf8(run_err(&all).stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(reason), "{reason:?} not in {err}");
    }
    assert!(!out.exists(), "nothing is written on failure");
}
