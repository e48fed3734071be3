//! `cdp build` on generated data, checked against the generator's truth and
//! against values recomputed here, independently, from the raw files.
//!
//! One data set (600 customers × 50 days) is ingested in two deliveries:
//! files dated up to day 30 first, built as of day 30; then the rest, built
//! as of day 50, and day 30 rebuilt. The tests below share that lake.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use chrono::{DateTime, Duration, FixedOffset, NaiveDate};

use crate::support::{data_files, generate, read_csv, run_ok};

const FIRST: &str = "2026-01-30";
const SECOND: &str = "2026-02-19";

struct World {
    _dir: tempfile::TempDir,
    raw: PathBuf,
    lake: String,
    /// Query results of the first build of FIRST, before later data arrived.
    first_build: BTreeMap<&'static str, String>,
}

/// The silver tables as of `as_of`, as sorted CSV text (run ids excluded).
fn silver(lake: &str, as_of: &str) -> BTreeMap<&'static str, String> {
    let q = |sql: String| run_ok(&["query", "--lake", lake, "--format", "csv", &sql]);
    BTreeMap::from([
        (
            "identity_map",
            q(format!(
                "SELECT * FROM silver.identity_map WHERE as_of = DATE '{as_of}' ORDER BY source, source_key, unified_id"
            )),
        ),
        (
            "customer_360",
            q(format!(
                "SELECT * FROM silver.customer_360 WHERE as_of = DATE '{as_of}' ORDER BY unified_id"
            )),
        ),
        (
            "features",
            q(format!(
                "SELECT * FROM silver.features WHERE as_of = DATE '{as_of}' ORDER BY unified_id"
            )),
        ),
    ])
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        generate(&raw, 600, 50, 21, 0.0, &[]);
        let first = dir.path().join("delivery-1");
        std::fs::create_dir_all(&first).unwrap();
        for file in data_files(&raw) {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            let dated_early = name
                .split('_')
                .next_back()
                .and_then(|s| s.get(..10))
                .is_some_and(|d| d <= FIRST);
            if dated_early || name == "card_products.csv" {
                std::fs::copy(&file, first.join(&name)).unwrap();
            }
        }
        let lake = dir.path().join("lake").to_str().unwrap().to_string();
        run_ok(&[
            "ingest",
            "--source",
            first.to_str().unwrap(),
            "--lake",
            &lake,
        ]);
        run_ok(&["build", "--as-of", FIRST, "--lake", &lake]);
        let first_build = silver(&lake, FIRST);
        run_ok(&["ingest", "--source", raw.to_str().unwrap(), "--lake", &lake]);
        run_ok(&["build", "--as-of", SECOND, "--lake", &lake]);
        run_ok(&["build", "--as-of", FIRST, "--lake", &lake]);
        World {
            _dir: dir,
            raw,
            lake,
            first_build,
        }
    })
}

/// Rows of `cdp query --format csv`.
fn rows(sql: &str) -> Vec<BTreeMap<String, String>> {
    let text = run_ok(&["query", "--lake", &world().lake, "--format", "csv", sql]);
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            headers
                .iter()
                .map(String::from)
                .zip(r.iter().map(String::from))
                .collect()
        })
        .collect()
}

/// customer_id → unified_id of the snapshot as of `as_of`.
fn unified_ids(as_of: &str) -> HashMap<String, String> {
    rows(&format!(
        "SELECT source_key, unified_id FROM silver.identity_map \
         WHERE as_of = DATE '{as_of}' AND source = 'customers'"
    ))
    .into_iter()
    .map(|r| (r["source_key"].clone(), r["unified_id"].clone()))
    .collect()
}

#[test]
fn every_true_person_has_exactly_one_unified_id() {
    let w = world();
    let truth = read_csv(&w.raw.join("_truth/persons.csv"));
    let person_of: HashMap<&str, &str> = truth
        .iter()
        .map(|r| (r["customer_id"].as_str(), r["person_id"].as_str()))
        .collect();
    let map = unified_ids(SECOND);
    assert!(map.len() > 500, "only {} customer_ids resolved", map.len());
    let mut ids_of_person: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut persons_of_id: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (customer_id, unified_id) in &map {
        let person = person_of
            .get(customer_id.as_str())
            .unwrap_or_else(|| panic!("{customer_id} is not in the truth"));
        ids_of_person.entry(person).or_default().insert(unified_id);
        persons_of_id.entry(unified_id).or_default().insert(person);
    }
    let split: Vec<_> = ids_of_person.iter().filter(|(_, u)| u.len() > 1).collect();
    let merged: Vec<_> = persons_of_id.iter().filter(|(_, p)| p.len() > 1).collect();
    assert!(
        split.is_empty(),
        "persons with several unified_ids: {split:?}"
    );
    assert!(
        merged.is_empty(),
        "unified_ids spanning persons (same-name strangers or tablet families merged?): {merged:?}"
    );
    // The traps were there to fall into.
    let roles: BTreeSet<&str> = truth
        .iter()
        .filter(|r| map.contains_key(&r["customer_id"]))
        .map(|r| r["role"].as_str())
        .collect();
    for role in ["dup_id_number", "dup_phone", "dup_email", "dup_chain"] {
        assert!(roles.contains(role), "no {role} among {roles:?}");
    }
    assert!(truth.iter().any(|r| !r["same_name_as"].is_empty()));
    let shared = rows(&format!(
        "SELECT count(*) AS n FROM silver.identity_map \
         WHERE as_of = DATE '{SECOND}' AND matched_by = 'shared_device'"
    ));
    assert!(
        shared[0]["n"].parse::<u32>().unwrap() >= 2,
        "no shared device recorded"
    );
}

#[test]
fn unified_ids_are_stable_across_nightly_builds() {
    let before = unified_ids(FIRST);
    let after = unified_ids(SECOND);
    let number = |u: &str| u[1..].parse::<u64>().unwrap();
    let highest_before = before.values().map(|u| number(u)).max().unwrap();
    // Everyone known yesterday keeps the oldest id among the ids their
    // person had yesterday.
    let mut members: HashMap<&str, Vec<&str>> = HashMap::new();
    for (customer, unified) in &after {
        members.entry(unified).or_default().push(customer);
    }
    let mut kept = 0;
    for (unified, customers) in &members {
        let old: Vec<u64> = customers
            .iter()
            .filter_map(|c| before.get(*c))
            .map(|u| number(u))
            .collect();
        match old.iter().min() {
            Some(oldest) => {
                assert_eq!(number(unified), *oldest, "{customers:?} lost their id");
                kept += 1;
            }
            None => assert!(
                number(unified) > highest_before,
                "new person {customers:?} got an id issued before: {unified}"
            ),
        }
    }
    assert!(kept > 300, "only {kept} persons carried over");
    assert!(
        after.len() > before.len(),
        "no new customers arrived between the builds"
    );
}

#[test]
fn a_build_never_changes_when_later_data_arrives() {
    let w = world();
    let rebuilt = silver(&w.lake, FIRST);
    for (table, text) in &w.first_build {
        assert!(text.lines().count() > 10, "{table} is nearly empty");
        assert_eq!(
            text, &rebuilt[table],
            "silver.{table} as of {FIRST} changed after later files were ingested"
        );
    }
}

/// CNY per unit, as integers scaled by 10^4.
fn fx_e4() -> HashMap<String, i128> {
    read_csv(&crate::support::repo_root().join("pipelines/reference/fx_rates.csv"))
        .into_iter()
        .map(|r| (r["currency"].clone(), scaled(&r["cny_per_unit"], 4)))
        .collect()
}

/// A decimal string as an integer scaled by 10^scale.
fn scaled(text: &str, scale: u32) -> i128 {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let mut frac = frac.to_string();
    frac.truncate(scale as usize);
    while frac.len() < scale as usize {
        frac.push('0');
    }
    let v: i128 = format!("{int}{frac}").parse().unwrap();
    if neg { -v } else { v }
}

/// Cents, as the engine prints a DECIMAL(18,2).
fn cents_text(cents: i128) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

fn raw_files<'a>(dir: &'a Path, prefix: &'a str) -> impl Iterator<Item = PathBuf> + 'a {
    data_files(dir)
        .into_iter()
        .filter(move |p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
}

#[test]
fn canonical_features_equal_an_independent_recomputation_from_raw_files() {
    let w = world();
    let as_of = NaiveDate::parse_from_str(SECOND, "%Y-%m-%d").unwrap();
    let shanghai = FixedOffset::east_opt(8 * 3600).unwrap();
    let business_day = |ts: &str| -> NaiveDate {
        DateTime::parse_from_rfc3339(ts)
            .unwrap()
            .with_timezone(&shanghai)
            .date_naive()
    };
    let unified = unified_ids(SECOND);
    let fx = fx_e4();

    #[derive(Default, Debug)]
    struct Expected {
        count_30d: u64,
        spend_e6: i128,
        last: Option<NaiveDate>,
        devices: BTreeSet<String>,
    }
    let mut expected: BTreeMap<String, Expected> = BTreeMap::new();
    let mut seen_txn = BTreeSet::new();
    for path in raw_files(&w.raw, "transactions_") {
        for row in read_csv(&path) {
            if !seen_txn.insert(row["txn_id"].clone()) {
                continue;
            }
            let day = business_day(&row["ts"]);
            let Some(person) = unified.get(&row["customer_id"]) else {
                continue;
            };
            if day > as_of || row["status"] != "approved" {
                continue;
            }
            let e = expected.entry(person.clone()).or_default();
            e.last = e.last.max(Some(day));
            let amount = scaled(&row["amount"], 2);
            if amount > 0 && day > as_of - Duration::days(30) {
                e.count_30d += 1;
                e.spend_e6 += amount * fx[&row["currency"]];
            }
        }
    }
    for path in raw_files(&w.raw, "device_events_") {
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            let Some(customer) = event["customer_id"].as_str() else {
                continue;
            };
            let day = business_day(event["ts"].as_str().unwrap());
            if day > as_of || day <= as_of - Duration::days(90) {
                continue;
            }
            if let Some(person) = unified.get(customer) {
                expected
                    .entry(person.clone())
                    .or_default()
                    .devices
                    .insert(event["device_id"].as_str().unwrap().to_string());
            }
        }
    }

    let actual = rows(&format!(
        "SELECT unified_id, txn_count_30d, spend_30d, days_since_last_txn, distinct_devices_90d \
         FROM silver.features WHERE as_of = DATE '{SECOND}'"
    ));
    assert!(actual.len() > 500);
    let mut checked_spend = 0;
    for row in &actual {
        let e = expected.remove(&row["unified_id"]).unwrap_or_default();
        // Round half away from zero from 10^-6 CNY to cents.
        let cents = (e.spend_e6 + e.spend_e6.signum() * 5_000) / 10_000;
        let want = [
            e.count_30d.to_string(),
            cents_text(cents),
            e.last
                .map_or(String::new(), |d| (as_of - d).num_days().to_string()),
            e.devices.len().to_string(),
        ];
        let got = [
            row["txn_count_30d"].clone(),
            row["spend_30d"].clone(),
            row["days_since_last_txn"].clone(),
            row["distinct_devices_90d"].clone(),
        ];
        assert_eq!(got, want, "canonical features of {}", row["unified_id"]);
        checked_spend += usize::from(e.count_30d > 0);
    }
    assert!(checked_spend > 300, "only {checked_spend} persons spent");
    assert!(
        expected.is_empty(),
        "persons missing from silver.features: {:?}",
        expected.keys()
    );
}

#[test]
fn pii_leaves_the_lake_only_masked() {
    let w = world();
    let mut raw_values = BTreeSet::new();
    for path in raw_files(&w.raw, "customers_") {
        for row in read_csv(&path) {
            for column in ["full_name", "id_number", "phone", "email"] {
                if row[column].len() >= 6 {
                    raw_values.insert(row[column].clone());
                }
            }
        }
    }
    assert!(raw_values.len() > 1000);
    for sql in [
        "SELECT * FROM bronze.customers".to_string(),
        format!("SELECT * FROM silver.customer_360 WHERE as_of = DATE '{SECOND}'"),
    ] {
        let text = run_ok(&["query", "--lake", &w.lake, "--format", "csv", &sql]);
        let cells: BTreeSet<&str> = text.lines().flat_map(|l| l.split(',')).collect();
        let leaked: Vec<_> = raw_values
            .iter()
            .filter(|v| cells.contains(v.as_str()))
            .take(3)
            .collect();
        assert!(leaked.is_empty(), "{sql} shows raw PII, e.g. {leaked:?}");
        assert!(text.contains("****"), "{sql} shows no masked values");
    }
}
