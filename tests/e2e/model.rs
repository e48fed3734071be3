//! `cdp model fit` and `cdp model predict` on generated tables: fit with a
//! validation set and early stopping, predict probabilities, margins and
//! TreeSHAP contributions to CSV and Parquet, columns matched by name;
//! predict with a Python XGBoost JSON model (features by position) when
//! Python XGBoost is there; and bad input refused with one line.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use crate::support::{read_csv, run_err, run_ok};

/// A table of `rows` customers: `id`, three features (`spend` with 15%
/// missing cells, `visits` an integer, `digital` a boolean) and the label
/// `accepted`, which follows the features (a missing spend counting as
/// high) with a little noise. `shuffled` writes the columns in another
/// order.
fn table(path: &Path, rows: usize, seed: u64, shuffled: bool) {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut text = if shuffled {
        "digital,accepted,visits,id,spend\n".to_string()
    } else {
        "id,spend,visits,digital,accepted\n".to_string()
    };
    for i in 0..rows {
        let spend = next() * 1000.0;
        let missing = next() < 0.15;
        let visits = (next() * 20.0).floor();
        let digital = next() < 0.5;
        let score = if missing { 800.0 } else { spend } / 1000.0 + visits / 40.0
            - if digital { 0.0 } else { 0.3 }
            + (next() - 0.5) * 0.2;
        let accepted = u8::from(score > 0.6);
        let spend = if missing {
            String::new()
        } else {
            format!("{spend:.2}")
        };
        if shuffled {
            writeln!(text, "{digital},{accepted},{visits},c{seed}-{i},{spend}").unwrap();
        } else {
            writeln!(text, "c{seed}-{i},{spend},{visits},{digital},{accepted}").unwrap();
        }
    }
    std::fs::write(path, text).unwrap();
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn num(row: &BTreeMap<String, String>, column: &str) -> f64 {
    row[column]
        .parse()
        .unwrap_or_else(|_| panic!("{column}: {}", row[column]))
}

/// The one line a failing command prints.
fn one_line_error(args: &[&str]) -> String {
    let out = run_err(args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
    assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    stderr
}

#[test]
fn fit_then_predict_probabilities_margins_and_explanations() {
    let dir = tempfile::tempdir().unwrap();
    let (train, valid, test) = (
        dir.path().join("train.csv"),
        dir.path().join("valid.csv"),
        dir.path().join("test.csv"),
    );
    table(&train, 3000, 1, false);
    table(&valid, 1000, 2, false);
    table(&test, 1000, 3, true);
    let model = dir.path().join("model");
    let fit: serde_json::Value = serde_json::from_str(&run_ok(&[
        "model",
        "fit",
        "--train",
        s(&train),
        "--valid",
        s(&valid),
        "--label",
        "accepted",
        "--exclude",
        "id",
        "--param",
        "num_round=300",
        "--param",
        "eta=0.3",
        "--param",
        "max_depth=4",
        "--param",
        "early_stopping_rounds=10",
        "--param",
        "seed=5",
        "--out",
        s(&model),
        "--json",
    ]))
    .unwrap();
    assert_eq!(fit["algo"], "gbdt");
    assert_eq!(fit["objective"], "binary:logistic");
    assert_eq!(fit["rows"], 3000);
    assert_eq!(fit["valid_rows"], 1000);
    assert_eq!(fit["features"], 3);
    assert_eq!(fit["params"]["max_depth"], "4");
    let best = fit["best_iteration"].as_u64().expect("early stopping ran");
    assert_eq!(fit["rounds"].as_u64().unwrap(), best + 1);
    assert!(best < 299, "{fit}");
    assert!(fit["train_seconds"].as_f64().unwrap() >= 0.0);
    assert!(fit["validation"]["best_score"].as_f64().unwrap() < 0.5);
    assert!(fit["data_hash"].as_str().unwrap().starts_with("xxh3-128:"));
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("model.json")).unwrap()).unwrap();
    assert_eq!(doc["format"], "cdp-model");
    assert_eq!(doc["format_version"], 1);
    assert_eq!(
        doc["features"],
        serde_json::json!(["spend", "visits", "digital"])
    );
    assert_eq!(doc["training"]["label"], "accepted");
    assert!(model.join("xgboost.json").exists());

    // probabilities and explanations, the test table's columns in another order
    let explained = dir.path().join("explained.csv");
    let predict: serde_json::Value = serde_json::from_str(&run_ok(&[
        "model",
        "predict",
        "--model",
        s(&model),
        "--input",
        s(&test),
        "--out",
        s(&explained),
        "--explain",
        "--keep",
        "id",
        "--keep",
        "accepted",
        "--json",
    ]))
    .unwrap();
    assert_eq!(predict["rows"], 1000);
    assert_eq!(predict["matched_by"], "name");
    assert_eq!(predict["prediction"], "probability");
    assert!(predict["score_seconds"].as_f64().unwrap() >= 0.0);
    let rows = read_csv(&explained);
    assert_eq!(rows.len(), 1000);
    let columns: Vec<&String> = rows[0].keys().collect();
    for c in [
        "id",
        "accepted",
        "prediction",
        "contrib_spend",
        "contrib_visits",
        "contrib_digital",
        "contrib_bias",
    ] {
        assert!(rows[0].contains_key(c), "{c} missing from {columns:?}");
    }
    assert!(rows[0]["id"].starts_with("c3-"));
    let right = rows
        .iter()
        .filter(|r| (num(r, "prediction") > 0.5) == (num(r, "accepted") > 0.5))
        .count();
    assert!(right > 900, "{right} of 1000 right");

    // margins, to Parquet: the contributions add up to them
    let margins = dir.path().join("margins.parquet");
    run_ok(&[
        "model",
        "predict",
        "--model",
        s(&model.join("model.json")),
        "--input",
        s(&test),
        "--out",
        s(&margins),
        "--margin",
    ]);
    let frame = polars_read(&margins);
    assert_eq!(frame.len(), 1000);
    for (row, margin) in rows.iter().zip(&frame) {
        let sum: f64 = ["spend", "visits", "digital", "bias"]
            .iter()
            .map(|f| num(row, &format!("contrib_{f}")))
            .sum();
        assert!((sum - margin).abs() < 1e-3, "{sum} vs {margin}");
        let p = 1.0 / (1.0 + (-margin).exp());
        assert!((p - num(row, "prediction")).abs() < 1e-5);
    }
}

/// The `prediction` column of a Parquet file.
fn polars_read(path: &Path) -> Vec<f64> {
    use polars::prelude::*;
    let file = std::fs::File::open(path).unwrap();
    let frame = ParquetReader::new(file).finish().unwrap();
    frame
        .column("prediction")
        .unwrap()
        .cast(&DataType::Float64)
        .unwrap()
        .f64()
        .unwrap()
        .into_no_null_iter()
        .collect()
}

fn python_with_xgboost() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import xgboost, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    let required = std::env::var("CDP_REQUIRE_XGBOOST").is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(
        ok || !required,
        "CDP_REQUIRE_XGBOOST is set but python3 cannot import xgboost and numpy"
    );
    if !ok {
        eprintln!("skipped: python3 with xgboost and numpy not found");
    }
    ok
}

/// Python XGBoost trains on the table's features without names and writes
/// its margins; cdp predicts the same margins from the JSON file, reading
/// the features by position (the id kept aside).
#[test]
fn predict_with_a_python_xgboost_model() {
    if !python_with_xgboost() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let train = dir.path().join("train.csv");
    table(&train, 2000, 7, false);
    let script = r#"
import sys, numpy as np, xgboost as xgb
rows = np.genfromtxt(sys.argv[1], delimiter=",", skip_header=1, dtype=str)
def num(c):
    return np.array([np.nan if v == "" else 1.0 if v == "true" else 0.0 if v == "false" else float(v) for v in c], dtype=np.float32)
x = np.stack([num(rows[:, j]) for j in (1, 2, 3)], axis=1)
y = num(rows[:, 4])
b = xgb.train({"objective": "binary:logistic", "max_depth": 4, "eta": 0.2, "nthread": 1}, xgb.DMatrix(x, label=y, missing=np.nan), 40)
b.save_model(sys.argv[2])
np.savetxt(sys.argv[3], b.predict(xgb.DMatrix(x, missing=np.nan), output_margin=True), fmt="%.9g")
"#;
    let model = dir.path().join("xgb.json");
    let reference = dir.path().join("margins.txt");
    let out = Command::new("python3")
        .args(["-c", script, s(&train), s(&model), s(&reference)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<f64> = std::fs::read_to_string(&reference)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();

    // the input: id and the three features, in the model's order
    let input = dir.path().join("input.csv");
    let text: String = std::fs::read_to_string(&train)
        .unwrap()
        .lines()
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            format!("{}\n", cells[..4].join(","))
        })
        .collect();
    std::fs::write(&input, text).unwrap();
    let pred = dir.path().join("pred.csv");
    let report: serde_json::Value = serde_json::from_str(&run_ok(&[
        "model",
        "predict",
        "--model",
        s(&model),
        "--input",
        s(&input),
        "--out",
        s(&pred),
        "--margin",
        "--keep",
        "id",
        "--json",
    ]))
    .unwrap();
    assert_eq!(report["algo"], "xgboost");
    assert_eq!(report["matched_by"], "position");
    let ours = read_csv(&pred);
    assert_eq!(ours.len(), theirs.len());
    for (row, m) in ours.iter().zip(&theirs) {
        let diff = (num(row, "prediction") - m).abs();
        assert!(diff <= 1e-5, "margin {} vs XGBoost {m}", row["prediction"]);
    }
    // without --keep, the id column would be read as a fourth feature
    let err = one_line_error(&[
        "model",
        "predict",
        "--model",
        s(&model),
        "--input",
        s(&input),
        "--out",
        s(&pred),
    ]);
    assert!(err.contains("by position"), "{err}");
}

#[test]
fn bad_input_is_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let train = dir.path().join("train.csv");
    table(&train, 300, 11, false);
    let model = dir.path().join("model");
    let out = dir.path().join("out.csv");
    let fit = |extra: &[&str]| {
        let mut args = vec![
            "model",
            "fit",
            "--train",
            s(&train),
            "--exclude",
            "id",
            "--out",
            s(&model),
        ];
        args.extend_from_slice(extra);
        args.iter().map(|a| a.to_string()).collect::<Vec<_>>()
    };
    let refuse = |args: Vec<String>, needle: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = one_line_error(&args);
        assert!(err.contains(needle), "{args:?}: {err}");
    };
    refuse(fit(&["--label", "missing"]), "no label column \"missing\"");
    refuse(
        fit(&["--label", "accepted", "--param", "max_dept=3"]),
        "max_dept",
    );
    refuse(fit(&["--label", "accepted", "--param", "eta"]), "KEY=VALUE");
    refuse(
        fit(&["--label", "accepted", "--param", "objective=multi:softprob"]),
        "multi:softprob",
    );
    // a text column that is not excluded
    let args: Vec<String> = [
        "model",
        "fit",
        "--train",
        s(&train),
        "--label",
        "accepted",
        "--out",
        s(&model),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    refuse(args, "id (Utf8)");

    run_ok(
        &fit(&["--label", "accepted", "--param", "num_round=5"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    // the model's feature columns missing from the input
    let narrow = dir.path().join("narrow.csv");
    let text: String = std::fs::read_to_string(&train)
        .unwrap()
        .lines()
        .map(|l| format!("{}\n", l.split(',').take(3).collect::<Vec<_>>().join(",")))
        .collect();
    std::fs::write(&narrow, text).unwrap();
    let predict = |model: &Path, input: &Path, out: &Path| {
        vec![
            "model".to_string(),
            "predict".into(),
            "--model".into(),
            s(model).into(),
            "--input".into(),
            s(input).into(),
            "--out".into(),
            s(out).into(),
        ]
    };
    refuse(
        predict(&model, &narrow, &out),
        "lacks 1 of the model's 3 feature columns: digital",
    );
    refuse(
        predict(&model, &train, &dir.path().join("out.xlsx")),
        ".csv or .parquet",
    );
    refuse(predict(&dir.path().join("none"), &train, &out), "none");
    // an infinite value
    let inf = dir.path().join("inf.csv");
    std::fs::write(&inf, "spend,visits,digital\n1.0,inf,true\n").unwrap();
    refuse(predict(&model, &inf, &out), "visits");
    // broken and unsupported model files
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"learner\": ").unwrap();
    refuse(predict(&broken, &train, &out), "broken.json");
    let mut xgb: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("xgboost.json")).unwrap()).unwrap();
    xgb["learner"]["objective"]["name"] = "multi:softprob".into();
    let multi = dir.path().join("multi.json");
    std::fs::write(&multi, xgb.to_string()).unwrap();
    refuse(predict(&multi, &train, &out), "multi:softprob");
    xgb["learner"]["objective"]["name"] = "binary:logistic".into();
    xgb["version"] = serde_json::json!([1, 7, 6]);
    std::fs::write(&multi, xgb.to_string()).unwrap();
    refuse(predict(&multi, &train, &out), "XGBoost 1.7.6");
}
