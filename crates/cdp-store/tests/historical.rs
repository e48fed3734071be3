//! Point-in-time historical retrieval against lakes whose silver snapshots
//! are written here, value by value, so every expected cell is known:
//!
//! * a leakage test whose snapshots differ day by day, with timestamps on
//!   the morning of a built day, a millisecond before midnight, exactly at
//!   a cutoff, and on each side of every TTL boundary;
//! * equality with a nested-loop reference written here (every row against
//!   every snapshot, instants compared with the calendar's cutoffs) on
//!   random small worlds with merges, late customers, shared devices, gaps
//!   between built days and every key kind;
//! * equality with pandas `merge_asof` on a larger world (a Python script;
//!   skipped without pandas unless `CDP_REQUIRE_PANDAS=1`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cdp_core::lake::Lake;
use cdp_core::progress::Silent;
use cdp_core::time::{BusinessCalendar, parse_date, parse_timestamp};
use cdp_engine::features::FeatureRegistry;
use cdp_engine::frame::Table;
use cdp_engine::tables::{LayerManifest, Snapshot, TableFiles};
use cdp_engine::{Engine, EngineOptions};
use cdp_store::historical::{
    HistoricalRequest, KeyKind, Retrieval, Retrieved, historical, retrieve,
};
use chrono::{DateTime, Days, NaiveDate, Utc};
use datafusion::arrow::array::{
    ArrayRef, Date32Array, Decimal128Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::parquet::arrow::ArrowWriter;

/// The features the worlds hold, with their registry TTLs (velocity 1 day,
/// transactions and categories 2, profile 7).
const FEATURES: [(&str, u32); 4] = [
    ("txn_count_1d", 1),
    ("spend_30d", 2),
    ("age_years", 7),
    ("top_category_90d", 2),
];

fn d(s: &str) -> NaiveDate {
    parse_date(s).unwrap()
}

fn epoch_days(day: NaiveDate) -> i32 {
    (day - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32
}

/// One identity-map row: (source, source_key, unified_id, matched_by).
type IdRow = (&'static str, String, String, &'static str);

/// One feature row: unified_id and the four feature values.
#[derive(Debug, Clone)]
struct FeatureRow {
    unified_id: String,
    txn_count_1d: Option<i64>,
    /// In cents.
    spend_30d: Option<i128>,
    age_years: Option<i64>,
    top_category_90d: Option<String>,
}

impl FeatureRow {
    /// The feature's value as Arrow displays it.
    fn cell(&self, feature: &str) -> Option<String> {
        match feature {
            "txn_count_1d" => self.txn_count_1d.map(|v| v.to_string()),
            "spend_30d" => self.spend_30d.map(|c| {
                format!(
                    "{}{}.{:02}",
                    if c < 0 { "-" } else { "" },
                    c.abs() / 100,
                    c.abs() % 100
                )
            }),
            "age_years" => self.age_years.map(|v| v.to_string()),
            "top_category_90d" => self.top_category_90d.clone(),
            other => panic!("no feature {other}"),
        }
    }
}

/// A world: per built day, its identity map and feature rows.
#[derive(Debug, Clone, Default)]
struct World {
    snapshots: BTreeMap<NaiveDate, (Vec<IdRow>, Vec<FeatureRow>)>,
}

/// Writes `batch` as one Parquet file at `lake/relative`.
fn write_parquet(root: &Path, relative: &str, batch: &RecordBatch) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), None).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
}

impl World {
    /// Writes the world's snapshots into a new lake under `root` and
    /// publishes them in the silver manifest.
    async fn write(&self, root: &Path) -> Lake {
        let mut manifest = LayerManifest::default();
        for (day, (ids, rows)) in &self.snapshots {
            let as_of =
                |n: usize| -> ArrayRef { Arc::new(Date32Array::from(vec![epoch_days(*day); n])) };
            let id_schema = Arc::new(Schema::new(vec![
                Field::new("as_of", DataType::Date32, false),
                Field::new("source", DataType::Utf8, false),
                Field::new("source_key", DataType::Utf8, false),
                Field::new("unified_id", DataType::Utf8, false),
                Field::new("matched_by", DataType::Utf8, false),
            ]));
            let ids_batch = RecordBatch::try_new(
                id_schema,
                vec![
                    as_of(ids.len()),
                    Arc::new(StringArray::from_iter_values(ids.iter().map(|r| r.0))),
                    Arc::new(StringArray::from_iter_values(
                        ids.iter().map(|r| r.1.as_str()),
                    )),
                    Arc::new(StringArray::from_iter_values(
                        ids.iter().map(|r| r.2.as_str()),
                    )),
                    Arc::new(StringArray::from_iter_values(ids.iter().map(|r| r.3))),
                ],
            )
            .unwrap();
            let f_schema = Arc::new(Schema::new(vec![
                Field::new("as_of", DataType::Date32, false),
                Field::new("unified_id", DataType::Utf8, false),
                Field::new("txn_count_1d", DataType::Int64, true),
                Field::new("spend_30d", DataType::Decimal128(18, 2), true),
                Field::new("age_years", DataType::Int64, true),
                Field::new("top_category_90d", DataType::Utf8, true),
            ]));
            let f_batch = RecordBatch::try_new(
                f_schema,
                vec![
                    as_of(rows.len()),
                    Arc::new(StringArray::from_iter_values(
                        rows.iter().map(|r| r.unified_id.as_str()),
                    )),
                    Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.txn_count_1d))),
                    Arc::new(
                        Decimal128Array::from_iter(rows.iter().map(|r| r.spend_30d))
                            .with_precision_and_scale(18, 2)
                            .unwrap(),
                    ),
                    Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.age_years))),
                    Arc::new(StringArray::from_iter(
                        rows.iter().map(|r| r.top_category_90d.clone()),
                    )),
                ],
            )
            .unwrap();
            let mut tables = BTreeMap::new();
            for (table, batch) in [("identity_map", &ids_batch), ("features", &f_batch)] {
                let relative = format!("silver/{table}/as_of={day}/run=test/part-0.parquet");
                write_parquet(root, &relative, batch);
                tables.insert(
                    table.to_string(),
                    TableFiles {
                        files: vec![relative],
                        rows: batch.num_rows() as u64,
                    },
                );
            }
            manifest.snapshots.insert(
                *day,
                Snapshot {
                    run: "test".into(),
                    built_at: Utc::now(),
                    tables,
                    next_unified_id: None,
                },
            );
        }
        let lake = Lake::open(root.to_str().unwrap()).unwrap();
        lake.publish("silver", &manifest, None).await.unwrap();
        lake
    }

    /// The reference answer for one entity row, by nested loops: every
    /// snapshot whose cutoff is at or before the instant, the latest of
    /// them, every identity row of it, every feature row of it.
    /// Returns (unified_id, features_as_of, entity_status, feature cells).
    fn reference(
        &self,
        cal: &BusinessCalendar,
        kind: KeyKind,
        key: Option<&str>,
        ts: Option<DateTime<Utc>>,
    ) -> Vec<Option<String>> {
        let mut snapshot: Option<NaiveDate> = None;
        if let Some(ts) = ts {
            for day in self.snapshots.keys() {
                if cal.as_of_cutoff(*day) <= ts && snapshot.is_none_or(|s| s < *day) {
                    snapshot = Some(*day);
                }
            }
        }
        let nulls = vec![None; FEATURES.len()];
        let answer = |unified: Option<String>, status: &str, cells: Vec<Option<String>>| {
            let mut out = Vec::new();
            if kind != KeyKind::UnifiedId {
                out.push(unified);
            }
            out.push(snapshot.map(|s| s.to_string()));
            out.push(Some(status.to_string()));
            out.extend(cells);
            out
        };
        let Some(ts) = ts else {
            return answer(None, "no_timestamp", nulls);
        };
        let Some(day) = snapshot else {
            return answer(None, "no_snapshot", nulls);
        };
        let Some(key) = key else {
            return answer(None, "no_key", nulls);
        };
        let (ids, rows) = &self.snapshots[&day];
        let unified = match kind {
            KeyKind::UnifiedId => key.to_string(),
            _ => {
                let source = match kind {
                    KeyKind::CustomerId => "customers",
                    KeyKind::DeviceId => "device_events",
                    KeyKind::CardId => "transactions",
                    KeyKind::UnifiedId => unreachable!(),
                };
                let matches: Vec<&IdRow> =
                    ids.iter().filter(|r| r.0 == source && r.1 == key).collect();
                if matches.is_empty() {
                    return answer(None, "unknown_key", nulls);
                }
                if let Some(shared) = matches.iter().find(|r| r.3.starts_with("shared")) {
                    return answer(None, shared.3, nulls);
                }
                matches[0].2.clone()
            }
        };
        let Some(row) = rows.iter().find(|r| r.unified_id == unified) else {
            return answer(Some(unified), "unknown_key", nulls);
        };
        let cells = FEATURES
            .iter()
            .map(|(feature, ttl)| {
                // valid while the instant is before the cutoff of D + ttl
                (ts < cal.as_of_cutoff(day + Days::new(u64::from(*ttl))))
                    .then(|| row.cell(feature))
                    .flatten()
            })
            .collect();
        answer(Some(unified), "ok", cells)
    }
}

fn engine(lake: Lake) -> Engine {
    Engine::new(lake, BusinessCalendar::default(), &EngineOptions::default()).unwrap()
}

fn retrieval(key: Option<&str>) -> Retrieval {
    Retrieval {
        features: FEATURES.iter().map(|(f, _)| f.to_string()).collect(),
        key_column: key.map(String::from),
        ..Retrieval::default()
    }
}

/// An entity table: `key` (text), `event_timestamp` (UTC), `label` (the
/// row's position, to check order and extra columns).
fn entities(key: &str, rows: &[(Option<String>, Option<DateTime<Utc>>)]) -> Table {
    let schema = Arc::new(Schema::new(vec![
        Field::new(key, DataType::Utf8, true),
        Field::new(
            "event_timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("label", DataType::Int64, false),
    ]));
    // Several batches, so order across batches is exercised.
    let batches = rows
        .chunks(7)
        .enumerate()
        .map(|(c, chunk)| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from_iter(chunk.iter().map(|r| r.0.clone()))),
                    Arc::new(
                        TimestampMicrosecondArray::from_iter(
                            chunk.iter().map(|r| r.1.map(|t| t.timestamp_micros())),
                        )
                        .with_timezone("UTC"),
                    ),
                    Arc::new(Int64Array::from_iter_values(
                        (0..chunk.len()).map(|i| (c * 7 + i) as i64),
                    )),
                ],
            )
            .unwrap()
        })
        .collect();
    Table { schema, batches }
}

/// Every cell of column `name`, as Arrow displays it (`None` for null).
fn column(retrieved: &Retrieved, name: &str) -> Vec<Option<String>> {
    let index = retrieved.schema.index_of(name).unwrap();
    let options = FormatOptions::default();
    let mut out = Vec::new();
    for batch in &retrieved.batches {
        let array = batch.column(index);
        let formatter = ArrayFormatter::try_new(array.as_ref(), &options).unwrap();
        for i in 0..array.len() {
            out.push((!array.is_null(i)).then(|| formatter.value(i).to_string()));
        }
    }
    out
}

use datafusion::arrow::array::Array;

/// The columns retrieval adds, then the features.
fn output_columns(kind: KeyKind) -> Vec<&'static str> {
    let mut names = Vec::new();
    if kind != KeyKind::UnifiedId {
        names.push("unified_id");
    }
    names.extend(["features_as_of", "entity_status"]);
    names.extend(FEATURES.iter().map(|(f, _)| *f));
    names
}

/// Checks retrieval against the nested-loop reference, row by row.
fn assert_matches_reference(
    world: &World,
    kind: KeyKind,
    rows: &[(Option<String>, Option<DateTime<Utc>>)],
    retrieved: &Retrieved,
) {
    let cal = BusinessCalendar::default();
    let names = output_columns(kind);
    let got: Vec<Vec<Option<String>>> = names.iter().map(|n| column(retrieved, n)).collect();
    let labels = column(retrieved, "label");
    assert_eq!(labels.len(), rows.len());
    for (i, (key, ts)) in rows.iter().enumerate() {
        assert_eq!(labels[i], Some(i.to_string()), "row order");
        let expected = world.reference(&cal, kind, key.as_deref(), *ts);
        let actual: Vec<Option<String>> = got.iter().map(|c| c[i].clone()).collect();
        assert_eq!(
            actual, expected,
            "row {i}: {kind:?} {key:?} at {ts:?}\ncolumns {names:?}"
        );
    }
}

fn row(unified: &str, day: NaiveDate, seed: i64) -> FeatureRow {
    // Every value names its snapshot's day, so a leak shows.
    let n = i64::from(epoch_days(day)) * 1000 + seed;
    FeatureRow {
        unified_id: unified.into(),
        txn_count_1d: Some(n),
        spend_30d: Some(i128::from(n) * 100 + 25),
        age_years: Some(n),
        top_category_90d: Some(format!("cat-{day}-{seed}")),
    }
}

/// Three built days (10, 11 and 12 January) whose values all differ; C1
/// is U1, DV1 is C1's own device, DV2 a tablet U1 and U2 share.
fn leak_world() -> World {
    let mut world = World::default();
    for day in ["2026-01-10", "2026-01-11", "2026-01-12"] {
        let day = d(day);
        let ids = vec![
            (
                "customers",
                "C1".to_string(),
                "U1".to_string(),
                "customer_id",
            ),
            (
                "customers",
                "C2".to_string(),
                "U2".to_string(),
                "customer_id",
            ),
            (
                "device_events",
                "DV1".to_string(),
                "U1".to_string(),
                "login",
            ),
            (
                "device_events",
                "DV2".to_string(),
                "U1".to_string(),
                "shared_device",
            ),
            (
                "device_events",
                "DV2".to_string(),
                "U2".to_string(),
                "shared_device",
            ),
        ];
        world
            .snapshots
            .insert(day, (ids, vec![row("U1", day, 1), row("U2", day, 2)]));
    }
    world
}

#[tokio::test]
async fn no_row_sees_a_snapshot_built_after_its_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let world = leak_world();
    let engine = engine(world.write(dir.path()).await);
    let t = |s: &str| Some(parse_timestamp(s).unwrap());
    // (timestamp, expected snapshot, expected non-null features)
    type Case<'a> = (Option<DateTime<Utc>>, Option<&'a str>, [bool; 4]);
    let cases: Vec<Case> = vec![
        // the morning of a built day: the day before, never the day itself
        (
            t("2026-01-12T09:00:00+08:00"),
            Some("2026-01-11"),
            [true; 4],
        ),
        (
            t("2026-01-11T08:00:00+08:00"),
            Some("2026-01-10"),
            [true; 4],
        ),
        // a millisecond before midnight, and exactly at the cutoff
        (
            t("2026-01-11T23:59:59.999+08:00"),
            Some("2026-01-10"),
            [true; 4],
        ),
        (
            t("2026-01-12T00:00:00+08:00"),
            Some("2026-01-11"),
            [true; 4],
        ),
        (t("2026-01-11T16:00:00Z"), Some("2026-01-11"), [true; 4]),
        (t("2026-01-11T15:59:59Z"), Some("2026-01-10"), [true; 4]),
        // before the first cutoff: nothing
        (t("2026-01-10T23:00:00+08:00"), None, [false; 4]),
        (
            t("2026-01-11T00:00:00+08:00"),
            Some("2026-01-10"),
            [true; 4],
        ),
        // the latest snapshot ages: txn_count_1d (1 day), spend and
        // category (2 days), age (7 days) expire at their cutoffs
        (
            t("2026-01-13T23:59:59+08:00"),
            Some("2026-01-12"),
            [true; 4],
        ),
        (
            t("2026-01-14T00:00:00+08:00"),
            Some("2026-01-12"),
            [false, true, true, true],
        ),
        (
            t("2026-01-15T00:00:00+08:00"),
            Some("2026-01-12"),
            [false, false, true, false],
        ),
        (
            t("2026-01-19T23:59:59+08:00"),
            Some("2026-01-12"),
            [false, false, true, false],
        ),
        (
            t("2026-01-20T00:00:00+08:00"),
            Some("2026-01-12"),
            [false; 4],
        ),
        (None, None, [false; 4]),
    ];
    let rows: Vec<_> = cases
        .iter()
        .map(|c| (Some("C1".to_string()), c.0))
        .collect();
    let table = entities("customer_id", &rows);
    let got = retrieve(
        &engine,
        &FeatureRegistry::embedded().unwrap(),
        &table,
        &retrieval(None),
        Path::new("e"),
    )
    .await
    .unwrap();
    let as_of = column(&got, "features_as_of");
    let values: Vec<Vec<Option<String>>> = FEATURES.iter().map(|(f, _)| column(&got, f)).collect();
    for (i, (ts, snapshot, present)) in cases.iter().enumerate() {
        assert_eq!(as_of[i].as_deref(), *snapshot, "row {i} at {ts:?}");
        for (f, (feature, _)) in FEATURES.iter().enumerate() {
            let expected = match (snapshot, present[f]) {
                (Some(s), true) => row("U1", d(s), 1).cell(feature),
                _ => None,
            };
            assert_eq!(values[f][i], expected, "row {i} at {ts:?}: {feature}");
        }
    }
    assert_matches_reference(&world, KeyKind::CustomerId, &rows, &got);
    assert_eq!(got.summary.snapshots.len(), 3, "{:?}", got.summary);
    assert_eq!(got.summary.status["no_snapshot"], 1);
    assert_eq!(got.summary.status["no_timestamp"], 1);
    assert_eq!(got.summary.expired["age_years"], 1);
    assert_eq!(got.summary.expired["txn_count_1d"], 4);

    // A shared device resolves to nobody; a device of one person to them.
    let at = t("2026-01-12T09:00:00+08:00");
    let rows = vec![
        (Some("DV1".to_string()), at),
        (Some("DV2".to_string()), at),
        (Some("DV9".to_string()), at),
        (None, at),
    ];
    let got = retrieve(
        &engine,
        &FeatureRegistry::embedded().unwrap(),
        &entities("device_id", &rows),
        &retrieval(None),
        Path::new("e"),
    )
    .await
    .unwrap();
    assert_eq!(
        column(&got, "entity_status"),
        ["ok", "shared_device", "unknown_key", "no_key"].map(|s| Some(s.to_string()))
    );
    assert_eq!(
        column(&got, "unified_id"),
        [Some("U1".to_string()), None, None, None]
    );
    assert_matches_reference(&world, KeyKind::DeviceId, &rows, &got);
}

/// A small deterministic generator (xorshift), so worlds are reproducible
/// without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() % 1_000_000) as f64 / 1e6 < p
    }
}

/// A random world over `built` days: `persons` customers joining over
/// time, some merging into an older person, devices of one person or
/// shared, cards, some null feature values.
fn random_world(rng: &mut Rng, built: &[NaiveDate], persons: usize) -> World {
    let mut world = World::default();
    let joined: Vec<usize> = (0..persons)
        .map(|_| rng.below(built.len() as u64) as usize)
        .collect();
    // person p merges into p - 1 from this built day on (if any)
    let merged: Vec<Option<usize>> = (0..persons)
        .map(|p| (p > 0 && rng.chance(0.1)).then(|| rng.below(built.len() as u64) as usize))
        .collect();
    let shared: Vec<bool> = (0..persons).map(|_| rng.chance(0.15)).collect();
    for (b, day) in built.iter().enumerate() {
        let mut ids = Vec::new();
        let mut rows = Vec::new();
        for p in 0..persons {
            if joined[p] > b {
                continue;
            }
            let owner = match merged[p] {
                Some(m) if m <= b && joined[p - 1] <= b => p - 1,
                _ => p,
            };
            let unified = format!("U{owner:05}");
            ids.push((
                "customers",
                format!("C{p:05}"),
                unified.clone(),
                "customer_id",
            ));
            ids.push((
                "transactions",
                format!("K{p:05}"),
                unified.clone(),
                "customer_id",
            ));
            if shared[p] && p + 1 < persons && joined[p + 1] <= b {
                ids.push((
                    "device_events",
                    format!("DV{p:05}"),
                    unified.clone(),
                    "shared_device",
                ));
                ids.push((
                    "device_events",
                    format!("DV{p:05}"),
                    format!("U{:05}", p + 1),
                    "shared_device",
                ));
            } else {
                ids.push((
                    "device_events",
                    format!("DV{p:05}"),
                    unified.clone(),
                    "login",
                ));
            }
            if owner == p {
                let mut r = row(&unified, *day, p as i64);
                if rng.chance(0.1) {
                    r.txn_count_1d = None;
                }
                if rng.chance(0.1) {
                    r.top_category_90d = None;
                }
                rows.push(r);
            }
        }
        world.snapshots.insert(*day, (ids, rows));
    }
    world
}

/// Random entity rows: keys of every person (and unknown ones, and
/// nulls), instants from before the first snapshot to after every TTL,
/// many of them exactly at a business-day boundary.
fn random_rows(
    rng: &mut Rng,
    kind: KeyKind,
    built: &[NaiveDate],
    persons: usize,
    n: usize,
) -> Vec<(Option<String>, Option<DateTime<Utc>>)> {
    let cal = BusinessCalendar::default();
    let first = cal.day_start(built[0] - Days::new(1));
    let span = (cal.day_start(*built.last().unwrap() + Days::new(10)) - first).num_seconds() as u64;
    let prefix = match kind {
        KeyKind::CustomerId => "C",
        KeyKind::DeviceId => "DV",
        KeyKind::CardId => "K",
        KeyKind::UnifiedId => "U",
    };
    (0..n)
        .map(|_| {
            let key = if rng.chance(0.03) {
                None
            } else {
                Some(format!("{prefix}{:05}", rng.below(persons as u64 + 3)))
            };
            let ts = if rng.chance(0.03) {
                None
            } else if rng.chance(0.2) {
                // exactly a business midnight, or a microsecond before one
                let day = built[0] - Days::new(1) + Days::new(rng.below(15));
                let start = cal.day_start(day);
                Some(if rng.chance(0.5) {
                    start
                } else {
                    start - chrono::Duration::microseconds(1)
                })
            } else {
                Some(first + chrono::Duration::seconds(rng.below(span) as i64))
            };
            (key, ts)
        })
        .collect()
}

#[tokio::test]
async fn retrieval_equals_a_nested_loop_reference_on_random_worlds() {
    let registry = FeatureRegistry::embedded().unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // gaps between built days, so older snapshots and TTLs both matter
    let built: Vec<NaiveDate> = [
        "2026-02-01",
        "2026-02-02",
        "2026-02-04",
        "2026-02-05",
        "2026-02-09",
    ]
    .map(d)
    .to_vec();
    for world_seed in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let world = random_world(&mut rng, &built, 40 + world_seed * 10);
        let engine = engine(world.write(dir.path()).await);
        for kind in KeyKind::ALL {
            let rows = random_rows(&mut rng, kind, &built, 40 + world_seed * 10, 400);
            let got = retrieve(
                &engine,
                &registry,
                &entities(kind.name(), &rows),
                &retrieval(None),
                Path::new("e"),
            )
            .await
            .unwrap();
            assert_matches_reference(&world, kind, &rows, &got);
            let statuses = &got.summary.status;
            assert!(
                statuses.get("ok").copied().unwrap_or(0) > 100,
                "{kind:?}: {statuses:?}"
            );
            assert!(
                statuses.contains_key("no_snapshot"),
                "{kind:?}: {statuses:?}"
            );
        }
    }
}

fn python_with_pandas() -> Option<&'static str> {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import pandas, pyarrow"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some("python3");
    }
    assert!(
        std::env::var("CDP_REQUIRE_PANDAS").as_deref() != Ok("1"),
        "CDP_REQUIRE_PANDAS=1 but python3 with pandas and pyarrow is missing"
    );
    eprintln!(
        "skipped: python3 with pandas and pyarrow is missing (CDP_REQUIRE_PANDAS=1 makes this fail)"
    );
    None
}

#[tokio::test]
async fn retrieval_equals_pandas_merge_asof_on_a_larger_world() {
    let Some(python) = python_with_pandas() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let built: Vec<NaiveDate> = (0..30)
        .filter(|i| i % 7 != 3) // a gap every week
        .map(|i| d("2026-03-01") + Days::new(i))
        .collect();
    let persons = 2_000;
    let world = random_world(&mut rng, &built, persons);
    let lake_dir = dir.path().join("lake");
    let engine = engine(world.write(&lake_dir).await);
    let registry = FeatureRegistry::embedded().unwrap();
    // 100,000 rows through Parquet, 30,000 through CSV (text timestamps).
    for (kind, file, n) in [
        (KeyKind::CustomerId, "entities.parquet", 100_000),
        (KeyKind::DeviceId, "entities.csv", 30_000),
    ] {
        let rows = random_rows(&mut rng, kind, &built, persons, n);
        let table = entities(kind.name(), &rows);
        let entities_path = dir.path().join(file);
        write_table(&entities_path, &table);
        let out = dir.path().join(format!("out-{}", file));
        let report = historical(
            &engine,
            &registry,
            &HistoricalRequest {
                entities: entities_path.clone(),
                out: out.clone(),
                service: None,
                retrieval: retrieval(None),
            },
            &Silent,
        )
        .await
        .unwrap();
        assert_eq!(report.summary.rows, n as u64);
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/pandas_asof.py");
        let features = serde_json::to_string(
            &FEATURES
                .iter()
                .map(|(f, t)| (f.to_string(), *t))
                .collect::<BTreeMap<_, _>>(),
        )
        .unwrap();
        let check = std::process::Command::new(python)
            .arg(&script)
            .args([
                lake_dir.to_str().unwrap(),
                entities_path.to_str().unwrap(),
                out.to_str().unwrap(),
                kind.name(),
                &features,
                "Asia/Shanghai",
            ])
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{kind:?}: pandas disagrees:\n{}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let said = String::from_utf8_lossy(&check.stdout);
        assert!(said.contains(&format!("{n} rows equal")), "{said}");
    }
}

/// Writes an entity table as CSV (RFC 3339 instants) or Parquet.
fn write_table(path: &Path, table: &Table) {
    if path.extension().is_some_and(|e| e == "csv") {
        let mut writer = datafusion::arrow::csv::WriterBuilder::new()
            .with_header(true)
            .with_timestamp_tz_format("%Y-%m-%dT%H:%M:%S%.6f%:z".to_string())
            .build(std::fs::File::create(path).unwrap());
        for batch in &table.batches {
            writer.write(batch).unwrap();
        }
    } else {
        let mut writer = ArrowWriter::try_new(
            std::fs::File::create(path).unwrap(),
            table.schema.clone(),
            None,
        )
        .unwrap();
        for batch in &table.batches {
            writer.write(batch).unwrap();
        }
        writer.close().unwrap();
    }
}

#[tokio::test]
async fn csv_entities_keep_their_columns_and_read_naive_times_as_business_time() {
    let dir = tempfile::tempdir().unwrap();
    let world = leak_world();
    let engine = engine(world.write(&dir.path().join("lake")).await);
    let registry = FeatureRegistry::embedded().unwrap();
    let csv = dir.path().join("labels.csv");
    // 20:00 on 11 Jan in Shanghai sees 10 Jan; read as UTC it would be
    // 04:00 on 12 Jan and see 11 Jan. A key of digits keeps its zeros.
    std::fs::write(
        &csv,
        "offer,cust,when,score\n\
         o1,C1,2026-01-11 20:00:00,0.5\n\
         o2,C1,2026-01-12T09:00:00+08:00,\n\
         o3,007,2026-01-12T01:00:00Z,1.5\n\
         o4,C2,,2\n",
    )
    .unwrap();
    let out = dir.path().join("train.csv");
    let mut request = retrieval(Some("cust"));
    request.key_kind = Some(KeyKind::CustomerId);
    request.timestamp_column = Some("when".into());
    request.features = vec!["age_years".into(), "txn_count_1d".into()];
    let report = historical(
        &engine,
        &registry,
        &HistoricalRequest {
            entities: csv,
            out: out.clone(),
            service: None,
            retrieval: request,
        },
        &Silent,
    )
    .await
    .unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let n = |day: &str, seed: i64| (i64::from(epoch_days(d(day))) * 1000 + seed).to_string();
    assert_eq!(
        lines,
        [
            "offer,cust,when,score,unified_id,features_as_of,entity_status,age_years,txn_count_1d"
                .to_string(),
            format!(
                "o1,C1,2026-01-11 20:00:00,0.5,U1,2026-01-10,ok,{},{}",
                n("2026-01-10", 1),
                n("2026-01-10", 1)
            ),
            format!(
                "o2,C1,2026-01-12T09:00:00+08:00,,U1,2026-01-11,ok,{},{}",
                n("2026-01-11", 1),
                n("2026-01-11", 1)
            ),
            "o3,007,2026-01-12T01:00:00Z,1.5,,2026-01-11,unknown_key,,".to_string(),
            "o4,C2,,2.0,,,no_timestamp,,".to_string(),
        ]
    );
    assert_eq!(report.summary.key_column, "cust");
    assert_eq!(report.summary.status["ok"], 2);
}
