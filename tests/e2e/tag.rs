//! `cdp tag` on generated data: tags published to gold and readable through
//! `cdp query`, a versioned model in the lake, identical tags when the same
//! tagger is re-applied, stable segments for customers whose features did
//! not change, refits that keep the old version, and the planted personas
//! recovered.
//!
//! One data set (1,500 customers × 60 days) is ingested and built as of two
//! consecutive days; every `cdp tag` run happens once, in order, when the
//! world is first used, and the tests read what they recorded.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use cdp_ml::metrics::Contingency;

use crate::support::{cdp, generate, read_csv, run_err, run_ok};

const D1: &str = "2026-02-27";
const D2: &str = "2026-02-28";

/// Features that stay put for a customer who does nothing for a day (the
/// data spans less than 90 days, so nothing leaves a 90-day window).
const STABLE: &str = r#"["txn_count_90d", "spend_90d", "travel_share_90d", "dining_share_90d", "online_share_90d", "logins_30d", "income_band", "product_count"]"#;

struct World {
    dir: tempfile::TempDir,
    raw: PathBuf,
    lake: String,
    /// `cdp tag --json` reports, in the order the runs happened.
    reports: BTreeMap<&'static str, serde_json::Value>,
    /// `gold.tags` as CSV right after each run, by run.
    tags: BTreeMap<&'static str, String>,
    /// `gold.tag_drift` as CSV right after each run, by run.
    drift: BTreeMap<&'static str, String>,
}

/// One `cdp tag` run of the world: name, arguments, environment, and the
/// as-of date of the tags it writes.
struct Run<'a>(
    &'static str,
    Vec<&'a str>,
    Vec<(&'a str, &'a str)>,
    &'static str,
);

/// `cdp ARGS` with extra environment, asserting success; returns stdout.
fn run_env(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd: Command = cdp();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("cdp runs");
    assert!(
        out.status.success(),
        "cdp {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn tags_csv(lake: &str, as_of: &str) -> String {
    run_ok(&[
        "query",
        "--lake",
        lake,
        "--format",
        "csv",
        &format!("SELECT * FROM gold.tags WHERE as_of = DATE '{as_of}' ORDER BY unified_id"),
    ])
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        generate(&raw, 1500, 60, 5, 0.0, &[]);
        let lake = dir.path().join("lake").to_str().unwrap().to_string();
        run_ok(&["ingest", "--source", raw.to_str().unwrap(), "--lake", &lake]);
        run_ok(&["build", "--as-of", D1, "--lake", &lake]);
        run_ok(&["build", "--as-of", D2, "--lake", &lake]);
        let mut reports = BTreeMap::new();
        let mut tags = BTreeMap::new();
        let mut drift = BTreeMap::new();
        let plot = dir.path().join("segments.svg");
        let plot = plot.to_str().unwrap();
        // (name, arguments, environment, as-of date of the tags it writes)
        let runs = [
            Run("first", vec!["tag", "--as-of", D1], vec![], D1),
            Run("again", vec!["tag", "--as-of", D1], vec![], D1),
            Run("next day", vec!["tag", "--as-of", D2], vec![], D2),
            Run(
                "refit",
                vec!["tag", "--as-of", D2, "--refit", "--plot", plot],
                vec![],
                D2,
            ),
            Run(
                "stable fit",
                vec!["tag", "--as-of", D1, "--refit"],
                vec![("CDP__TAGGER__FEATURES", STABLE)],
                D1,
            ),
            Run("stable next day", vec!["tag", "--as-of", D2], vec![], D2),
        ];
        for Run(name, mut args, env, as_of) in runs {
            args.extend(["--lake", &lake, "--json"]);
            let report: serde_json::Value =
                serde_json::from_str(&run_env(&args, &env)).expect("tag --json prints JSON");
            reports.insert(name, report);
            tags.insert(name, tags_csv(&lake, as_of));
            drift.insert(
                name,
                run_ok(&[
                    "query",
                    "--lake",
                    &lake,
                    "--format",
                    "csv",
                    &format!(
                        "SELECT kind, count(*) AS n, max(psi) AS worst, min(tagger_version) AS v \
                         FROM gold.tag_drift WHERE as_of = DATE '{as_of}' GROUP BY kind ORDER BY kind"
                    ),
                ]),
            );
        }
        World {
            dir,
            raw,
            lake,
            reports,
            tags,
            drift,
        }
    })
}

/// Rows of CSV text as maps.
fn rows(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|r| {
            headers
                .iter()
                .map(String::from)
                .zip(r.unwrap().iter().map(String::from))
                .collect()
        })
        .collect()
}

fn query(sql: &str) -> Vec<BTreeMap<String, String>> {
    rows(&run_ok(&[
        "query",
        "--lake",
        &world().lake,
        "--format",
        "csv",
        sql,
    ]))
}

#[test]
fn tags_are_published_to_gold_with_a_versioned_readable_model() {
    let w = world();
    let first = &w.reports["first"];
    assert_eq!(first["tagger_version"], "v1");
    assert_eq!(first["fitted"], "no tagger yet");
    let persons = query(&format!(
        "SELECT count(*) AS n FROM silver.features WHERE as_of = DATE '{D1}'"
    ))[0]["n"]
        .clone();
    assert_eq!(first["customers"].to_string(), persons);
    let tags = rows(&w.tags["first"]);
    assert_eq!(tags.len().to_string(), persons);
    let components = first["components"].as_array().unwrap().len();
    assert!((1..=10).contains(&components), "{components} components");
    let segments = first["segments"].as_array().unwrap();
    assert!(
        (4..=10).contains(&segments.len()),
        "{} segments",
        segments.len()
    );
    for row in &tags {
        assert_eq!(row["tagger_version"], "v1");
        assert!(!row["segment_name"].is_empty());
        let scores = row["components"]
            .trim_matches(['[', ']'])
            .split(", ")
            .count();
        assert_eq!(scores, components, "{row:?}");
    }
    // every segment name in the table is one of the model's
    let names: Vec<&str> = segments
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(
        tags.iter()
            .all(|r| names.contains(&r["segment_name"].as_str()))
    );
    // the model is readable JSON with its loadings, centroids and baseline
    let model: serde_json::Value = serde_json::from_slice(
        &std::fs::read(w.dir.path().join("lake/models/tagger/v1/model.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(model["version"], "v1");
    assert_eq!(model["fitted_on"]["as_of"], D1);
    assert!(
        model["fitted_on"]["data_hash"]
            .as_str()
            .unwrap()
            .starts_with("xxh3-128:")
    );
    assert_eq!(model["segments"].as_array().unwrap().len(), segments.len());
    assert!(model["pca"]["components"][0].as_array().unwrap().len() > 10);
    assert!(model["segments"][0]["centroid"].is_array());
    assert!(model["components"][0]["top_loadings"].is_array());
    // drift rows: one per feature, one per segment, one for all segments
    let drift = rows(&w.drift["first"]);
    let by_kind: HashMap<&str, &str> = drift
        .iter()
        .map(|r| (r["kind"].as_str(), r["n"].as_str()))
        .collect();
    assert_eq!(
        by_kind["feature"],
        model["features"].as_array().unwrap().len().to_string()
    );
    assert_eq!(by_kind["segment"], segments.len().to_string());
    assert_eq!(by_kind["segments"], "1");
    assert!(drift.iter().all(|r| r["v"] == "v1"));
    // fitted on this very snapshot: no drift at all
    for r in &drift {
        assert!(r["worst"].parse::<f64>().unwrap() < 1e-6, "{r:?}");
    }
}

#[test]
fn re_applying_the_same_tagger_to_the_same_snapshot_gives_identical_tags() {
    let w = world();
    let again = &w.reports["again"];
    assert!(again["fitted"].is_null(), "{again}");
    assert_eq!(again["tagger_version"], "v1");
    assert_eq!(again["replaced"], true);
    assert_eq!(w.tags["first"], w.tags["again"]);
}

#[test]
fn a_customer_whose_features_did_not_change_keeps_their_segment() {
    let w = world();
    let stable = &w.reports["stable fit"];
    assert_eq!(stable["tagger_version"], "v3");
    assert_eq!(w.reports["stable next day"]["tagger_version"], "v3");
    assert!(w.reports["stable next day"]["fitted"].is_null());
    let features: Vec<String> = serde_json::from_str(STABLE).unwrap();
    let values = |as_of: &str| -> HashMap<String, String> {
        query(&format!(
            "SELECT unified_id, concat_ws('|', {}) AS v FROM silver.features WHERE as_of = DATE '{as_of}'",
            features
                .iter()
                .map(|f| format!("coalesce(CAST({f} AS VARCHAR), 'null')"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into_iter()
        .map(|r| (r["unified_id"].clone(), r["v"].clone()))
        .collect()
    };
    let (before, after) = (values(D1), values(D2));
    let segment = |run: &str| -> HashMap<String, String> {
        rows(&w.tags[run])
            .into_iter()
            .map(|r| (r["unified_id"].clone(), r["segment"].clone()))
            .collect()
    };
    let (s1, s2) = (segment("stable fit"), segment("stable next day"));
    let mut unchanged = 0;
    let mut changed = 0;
    for (id, v) in &before {
        match after.get(id) {
            Some(w2) if w2 == v => {
                unchanged += 1;
                assert_eq!(s1[id], s2[id], "{id} kept its features but changed segment");
            }
            Some(_) => changed += 1,
            None => {}
        }
    }
    assert!(unchanged >= 100, "only {unchanged} unchanged customers");
    assert!(
        changed >= 50,
        "only {changed} changed customers: the test says nothing"
    );
}

#[test]
fn refit_makes_a_new_version_and_keeps_the_old_one() {
    let w = world();
    let next_day = &w.reports["next day"];
    assert_eq!(next_day["tagger_version"], "v1");
    assert_eq!(next_day["fitted_on"], D1);
    // a day later the population barely moved: drift measured, below the warning
    let drift = rows(&w.drift["next day"]);
    let worst: f64 = drift
        .iter()
        .map(|r| r["worst"].parse::<f64>().unwrap())
        .fold(0.0, f64::max);
    assert!(worst > 0.0 && worst < 0.2, "{drift:?}");
    assert!(next_day["drift"]["warnings"].as_array().unwrap().is_empty());
    let refit = &w.reports["refit"];
    assert_eq!(refit["tagger_version"], "v2");
    assert_eq!(refit["fitted"], "--refit");
    assert_eq!(refit["replaced"], true);
    let models = w.dir.path().join("lake/models/tagger");
    for v in ["v1", "v2", "v3"] {
        assert!(models.join(v).join("model.json").is_file(), "{v} missing");
    }
    let registry: serde_json::Value = serde_json::from_slice(
        &std::fs::read(w.dir.path().join("lake/_manifests/models/tagger.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(registry["body"]["current"], "v3");
    assert_eq!(registry["body"]["versions"].as_array().unwrap().len(), 3);
    // what each run wrote says which tagger made it
    assert!(
        rows(&w.tags["next day"])
            .iter()
            .all(|r| r["tagger_version"] == "v1")
    );
    assert!(
        rows(&w.tags["refit"])
            .iter()
            .all(|r| r["tagger_version"] == "v2")
    );
    // the picture names every segment
    let svg = std::fs::read_to_string(w.dir.path().join("segments.svg")).unwrap();
    for s in refit["segments"].as_array().unwrap() {
        let name = s["name"].as_str().unwrap().replace('&', "&amp;");
        assert!(svg.contains(&name), "{name} not in the plot");
    }
}

#[test]
fn planted_personas_are_recovered() {
    let w = world();
    // the persona of a unified_id is that of its customer_ids
    let persona: HashMap<String, String> = read_csv(&w.raw.join("_truth/persons.csv"))
        .into_iter()
        .map(|r| (r["customer_id"].clone(), r["persona"].clone()))
        .collect();
    let person_of: HashMap<String, String> = query(&format!(
        "SELECT source_key, unified_id FROM silver.identity_map \
         WHERE as_of = DATE '{D2}' AND source = 'customers'"
    ))
    .into_iter()
    .map(|r| (r["unified_id"].clone(), persona[&r["source_key"]].clone()))
    .collect();
    let tags = rows(&w.tags["refit"]);
    let truth: Vec<String> = tags
        .iter()
        .map(|r| person_of[&r["unified_id"]].clone())
        .collect();
    let segments: Vec<String> = tags
        .iter()
        .map(|r| format!("{} {}", r["segment"], r["segment_name"]))
        .collect();
    let table = Contingency::new(truth.iter().zip(&segments));
    let ari = table.adjusted_rand_index();
    println!("personas × segments (tagger v2, {D2}), ARI {ari:.3}\n{table}");
    assert!(ari > 0.75, "ARI {ari:.3}\n{table}");
}

#[test]
fn tag_failures_are_one_line_reasons() {
    let w = world();
    let out = run_err(&["tag", "--as-of", "2026-01-15", "--lake", &w.lake]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cdp build --as-of 2026-01-15"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let mut cmd = cdp();
    cmd.args(["tag", "--as-of", D1, "--refit", "--lake", &w.lake])
        .env("CDP__TAGGER__FEATURES", r#"["segment", "age_years"]"#);
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("segment") && err.contains("numeric"), "{err}");

    let help = run_ok(&["tag", "--help"]);
    assert!(
        help.contains("--refit") && help.contains("gold.tags"),
        "{help}"
    );
}
