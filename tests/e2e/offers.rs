//! `cdp train` and `cdp score` on generated data: point-in-time training
//! rows (a snapshot of the sending day or later never changes them),
//! versioned offer models, baselines through `--algo`, and `gold.scores`
//! holding exactly the eligible customer × offer pairs, ranked and
//! explained.
//!
//! One data set (2,000 customers × 75 days, weekly campaigns) is ingested
//! and built as of the day before each of the first six campaigns and as of
//! D; every run happens once, in order, when the world is first used, and
//! the tests read what they recorded.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::support::{cdp, generate, run_err, run_ok};

/// The training and scoring date: offers sent up to 30 days earlier have
/// a known outcome.
const D: &str = "2026-03-16";

/// The days before the first six campaigns (campaigns go out on day 3 and
/// every 7 days after).
const EVE: [&str; 6] = [
    "2026-01-03",
    "2026-01-10",
    "2026-01-17",
    "2026-01-24",
    "2026-01-31",
    "2026-02-07",
];

/// The campaign days themselves: snapshots a leaking join would pick.
const SENDING_DAYS: [&str; 6] = [
    "2026-01-04",
    "2026-01-11",
    "2026-01-18",
    "2026-01-25",
    "2026-02-01",
    "2026-02-08",
];

struct World {
    _dir: tempfile::TempDir,
    lake: String,
    /// `cdp train --json` with snapshots of the eves only.
    first: serde_json::Value,
    /// The same after snapshots of the sending days were added.
    again: serde_json::Value,
    /// `cdp train --algo logistic --json`.
    logistic: serde_json::Value,
    /// `cdp train --from-xgboost models/offer/v1/xgboost.json --json`.
    imported: serde_json::Value,
    /// `cdp score --json` with the first model.
    score: serde_json::Value,
    /// `cdp train` before any snapshot existed (stderr).
    no_snapshot: String,
    /// `cdp score` before any model existed (stderr).
    no_model: String,
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).expect("--json prints JSON")
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let raw: PathBuf = dir.path().join("raw");
        let lake = dir.path().join("lake").to_str().unwrap().to_string();
        generate(&raw, 2_000, 75, 11, 0.0, &[]);
        run_ok(&["ingest", "--lake", &lake, "--source", raw.to_str().unwrap()]);
        let build = |d: &str| run_ok(&["build", "--lake", &lake, "--as-of", d, "--json"]);
        let fail = |args: &[&str]| String::from_utf8(run_err(args).stderr).expect("utf-8 stderr");
        let no_snapshot = fail(&["train", "--lake", &lake, "--as-of", D]);
        for d in EVE.iter().chain([&D]) {
            build(d);
        }
        let no_model = fail(&["score", "--lake", &lake, "--as-of", D]);
        let train = |extra: &[&str]| {
            let mut args = vec!["train", "--lake", &lake, "--as-of", D, "--json"];
            args.extend_from_slice(extra);
            json(&run_ok(&args))
        };
        let first = train(&[]);
        let score = json(&run_ok(&["score", "--lake", &lake, "--as-of", D, "--json"]));
        for d in SENDING_DAYS {
            build(d);
        }
        let again = train(&[]);
        let logistic = train(&["--algo", "logistic"]);
        let xgboost = format!("{lake}/models/offer/v1/xgboost.json");
        let imported = train(&["--from-xgboost", &xgboost]);
        World {
            _dir: dir,
            lake,
            first,
            again,
            logistic,
            imported,
            score,
            no_snapshot,
            no_model,
        }
    })
}

/// The single number `SQL` returns.
fn number(lake: &str, sql: &str) -> f64 {
    let out = run_ok(&["query", "--lake", lake, "--format", "csv", sql]);
    out.lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("{sql} gave {out}"))
}

#[test]
fn labelled_offers_are_those_whose_outcome_is_known() {
    let w = world();
    let offers = &w.first["offers"];
    // independent: offers sent at least 30 days before D+1 00:00 Shanghai
    let labelled = number(
        &w.lake,
        "SELECT count(DISTINCT offer_event_id) FROM bronze.offer_events \
         WHERE sent_at + INTERVAL '30 days' <= TIMESTAMP '2026-03-16T16:00:00Z'",
    );
    assert_eq!(offers["labelled"].as_f64().unwrap(), labelled, "{offers}");
    let parts =
        ["used", "without_snapshot", "without_features"].map(|k| offers[k].as_u64().unwrap());
    assert_eq!(
        parts.iter().sum::<u64>(),
        offers["labelled"].as_u64().unwrap()
    );
    assert!(parts[0] as f64 >= 0.9 * labelled, "{offers}");
    let accepted = offers["accepted"].as_u64().unwrap();
    assert!(accepted > 20 && accepted < parts[0] / 2, "{offers}");
    let split = &w.first["split"];
    let rows: u64 = ["train_rows", "valid_rows", "test_rows"]
        .iter()
        .map(|k| split[*k].as_u64().unwrap())
        .sum();
    assert_eq!(rows, parts[0]);
    assert!(
        split["train_until"].as_str() < split["test_from"].as_str(),
        "{split}"
    );
}

#[test]
fn snapshots_of_the_sending_day_or_later_never_reach_training() {
    let w = world();
    // Six more snapshots, each of a day offers were sent: a join that took
    // the sending day's features would now see them.
    assert_eq!(w.first["data_hash"], w.again["data_hash"]);
    assert_eq!(w.first["offers"], w.again["offers"]);
    assert_eq!(
        w.first["test_auc"], w.again["test_auc"],
        "deterministic for a seed"
    );
}

#[test]
fn models_are_versioned_and_the_baseline_is_selectable() {
    let w = world();
    let auc = |r: &serde_json::Value| r["test_auc"].as_f64().unwrap();
    assert_eq!(w.first["version"], "v1");
    assert_eq!(w.again["version"], "v2");
    assert_eq!(w.logistic["version"], "v3");
    // the first model's trees as an XGBoost JSON file score the same test set alike
    assert_eq!(w.imported["version"], "v4");
    assert_eq!(w.imported["algo"], "xgboost");
    let (a, b) = (auc(&w.first), auc(&w.imported));
    assert!((a - b).abs() < 1e-9, "imported AUC {b} vs {a}");
    assert_eq!(w.first["algo"], "gbdt");
    assert_eq!(w.logistic["algo"], "logistic");
    // about 250 test offers, 30 of them accepted: AUC is noisy here; model
    // quality is measured in cdp-ml's tests (bank-marketing, generated data)
    assert!(auc(&w.first) > 0.55, "gbdt test AUC {}", auc(&w.first));
    assert!(
        auc(&w.logistic) > 0.5,
        "logistic test AUC {}",
        auc(&w.logistic)
    );
    let dir = PathBuf::from(&w.lake).join("models/offer");
    for v in ["v1", "v2", "v3"] {
        assert!(dir.join(v).join("model.json").is_file());
        let summary = std::fs::read_to_string(dir.join(v).join("summary.txt")).unwrap();
        assert!(summary.contains("Test set"), "{summary}");
    }
    // a stored model is a model file `cdp model predict` reads
    let doc: serde_json::Value = json(&std::fs::read_to_string(dir.join("v1/model.json")).unwrap());
    assert_eq!(doc["format"], "cdp-model");
    assert!(doc["features"].as_array().unwrap().len() > 40);
}

#[test]
fn scores_cover_exactly_the_eligible_pairs_ranked_and_explained() {
    let w = world();
    let s = &w.score;
    assert_eq!(s["model_version"], "v1");
    let eligible = number(
        &w.lake,
        "SELECT count(*) FROM silver.customer_360 c CROSS JOIN ref.card_products p \
         WHERE c.as_of = DATE '2026-03-16' AND c.income_band >= p.min_income_band \
         AND NOT array_has(c.products, p.offer_id)",
    );
    assert_eq!(s["scores"].as_f64().unwrap(), eligible, "{s}");
    let gold = |sql: &str| number(&w.lake, &sql.replace("$D", "DATE '2026-03-16'"));
    assert_eq!(
        gold("SELECT count(*) FROM gold.scores WHERE as_of = $D"),
        eligible
    );
    assert_eq!(
        gold("SELECT count(*) FROM gold.scores WHERE as_of = $D AND rank = 1"),
        gold("SELECT count(DISTINCT unified_id) FROM gold.scores WHERE as_of = $D"),
    );
    // a held product is never offered; an income band below the card's minimum never either
    assert_eq!(
        gold(
            "SELECT count(*) FROM gold.scores s JOIN silver.customer_360 c \
             ON c.as_of = s.as_of AND c.unified_id = s.unified_id \
             JOIN ref.card_products p ON p.offer_id = s.offer_id \
             WHERE s.as_of = $D AND (array_has(c.products, s.offer_id) \
             OR c.income_band < p.min_income_band)"
        ),
        0.0
    );
    assert_eq!(
        gold(
            "SELECT count(*) FROM gold.scores WHERE as_of = $D \
             AND NOT (probability > 0 AND probability < 1)"
        ),
        0.0
    );
    // ranks follow probabilities within each person
    assert_eq!(
        gold(
            "SELECT count(*) FROM gold.scores a JOIN gold.scores b \
             ON a.as_of = b.as_of AND a.unified_id = b.unified_id \
             WHERE a.as_of = $D AND a.rank < b.rank AND a.probability < b.probability"
        ),
        0.0
    );
    let explained = gold(
        "SELECT avg(CASE WHEN cardinality(reasons) > 0 THEN 1.0 ELSE 0.0 END) \
         FROM gold.scores WHERE as_of = $D",
    );
    assert!(explained > 0.9, "only {explained} of scores have reasons");
}

#[test]
fn missing_inputs_are_named() {
    let w = world();
    assert!(
        w.no_snapshot.contains("cdp build --as-of"),
        "{}",
        w.no_snapshot
    );
    assert!(w.no_model.contains("cdp train"), "{}", w.no_model);
    let out = cdp()
        .args(["train", "--lake", &w.lake, "--as-of", D, "--algo", "magic"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("magic") && err.lines().count() == 1, "{err}");
    let out = cdp()
        .args([
            "train",
            "--lake",
            &w.lake,
            "--as-of",
            D,
            "--param",
            "max_dept=3",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_dept"));
}
