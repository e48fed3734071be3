//! Parity with Python XGBoost 3.x, both ways.
//!
//! **XGBoost to cdp.** `xgboost_parity.py reference` (beside this file)
//! trains XGBoost models on data with missing values (UCI bank-marketing,
//! `../shared/data/bank-marketing/bank-full.csv`, and a synthetic set with
//! 20% missing cells): binary:logistic and reg:squarederror, depth-wise and
//! loss-guided growth, early stopping, scale_pos_weight, L1/L2/gamma, a
//! dart booster; with and without feature names. It saves each with
//! `Booster.save_model("m.json")` and writes `predict(output_margin=True)`
//! and `predict(pred_contribs=True)` of 1,000+ rows. cdp loads each file
//! through [`format::load_path`] and must give, on every row:
//! margins within [`MARGIN_TOLERANCE`] of XGBoost's (batch and single-row
//! paths alike), TreeSHAP contributions within [`SHAP_TOLERANCE`] of
//! XGBoost's, and contributions that sum to the margin.
//!
//! **cdp to XGBoost.** A model cdp fits is saved with [`format::save_dir`];
//! `xgboost_parity.py score` loads its `xgboost.json` in Python XGBoost,
//! which must predict cdp's margins within [`MARGIN_TOLERANCE`] and see
//! cdp's feature names.
//!
//! Without `python3` able to import `xgboost` and `numpy` the tests say so
//! and pass, unless `CDP_REQUIRE_XGBOOST` is set (CI sets it after
//! installing them), when they fail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use cdp_ml::model::format::{self, XGBOOST_FILE};
use cdp_ml::model::{Algo, Dataset, Params, learner};
use ndarray::{Array1, Array2};
use ndarray_npy::{read_npy, write_npy};

/// Largest margin difference the issue allows.
const MARGIN_TOLERANCE: f32 = 1e-5;
/// Largest TreeSHAP difference the issue allows.
const SHAP_TOLERANCE: f32 = 1e-4;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/xgboost_parity.py")
}

fn bank_full() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/bank-marketing/bank-full.csv")
}

/// Whether the Python side can run; panics when it cannot but CI requires
/// it.
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
        eprintln!(
            "skipped: python3 with xgboost and numpy not found \
             (python3 -m pip install xgboost; CDP_REQUIRE_XGBOOST=1 makes this a failure)"
        );
    }
    ok
}

/// The reference files, made once per test binary; `None` when skipped.
fn reference() -> Option<&'static (tempfile::TempDir, Vec<String>)> {
    static REFERENCE: OnceLock<Option<(tempfile::TempDir, Vec<String>)>> = OnceLock::new();
    REFERENCE
        .get_or_init(|| {
            if !python_with_xgboost() {
                return None;
            }
            assert!(bank_full().exists(), "{} is missing", bank_full().display());
            let dir = tempfile::tempdir().unwrap();
            let out = Command::new("python3")
                .arg(script())
                .arg("reference")
                .arg(bank_full())
                .arg(dir.path())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            eprintln!("reference from XGBoost {}", report["xgboost"]);
            let cases = report["cases"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_string())
                .collect();
            Some((dir, cases))
        })
        .as_ref()
}

/// The largest absolute difference between two series of equal length.
fn max_diff(ours: &[f32], theirs: &[f32]) -> f32 {
    assert_eq!(ours.len(), theirs.len());
    ours.iter()
        .zip(theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

/// Check one reference case; returns (max margin diff, max SHAP diff).
fn check_case(dir: &Path, case: &str) -> (f32, f32) {
    let model = format::load_path(&dir.join(format!("{case}.json")))
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    assert_eq!(model.algo(), Algo::Xgboost);
    let x: Array2<f32> = read_npy(dir.join(format!("{case}.x.npy"))).unwrap();
    let margin: Array1<f32> = read_npy(dir.join(format!("{case}.margin.npy"))).unwrap();
    let contribs: Array2<f32> = read_npy(dir.join(format!("{case}.contribs.npy"))).unwrap();
    let (rows, cols) = x.dim();
    assert!(rows >= 1000, "{case}: {rows} rows");
    assert_eq!(model.features().len(), cols, "{case}");
    assert!(
        x.iter().any(|v| v.is_nan()),
        "{case}: the rows have no missing values"
    );
    let values = x
        .as_standard_layout()
        .to_owned()
        .into_raw_vec_and_offset()
        .0;

    let ours = model.margins(&values).unwrap();
    let margin_diff = max_diff(&ours, margin.as_slice().unwrap());
    assert!(
        margin_diff <= MARGIN_TOLERANCE,
        "{case}: margins differ from XGBoost's by up to {margin_diff}"
    );
    for (r, row) in values.chunks(cols).enumerate() {
        assert_eq!(
            model.margin_row(row).unwrap().to_bits(),
            ours[r].to_bits(),
            "{case}: row {r} single-row margin differs from the batch's"
        );
    }

    let explained = model.contributions(&values).unwrap();
    assert_eq!(explained.n_rows(), rows);
    let theirs = contribs
        .as_standard_layout()
        .to_owned()
        .into_raw_vec_and_offset()
        .0;
    let shap_diff = max_diff(&explained.values, &theirs);
    assert!(
        shap_diff <= SHAP_TOLERANCE,
        "{case}: TreeSHAP differs from XGBoost's pred_contribs by up to {shap_diff}"
    );
    for (r, m) in ours.iter().enumerate() {
        let sum: f32 = explained.row(r).iter().sum();
        assert!(
            (sum - m).abs() <= SHAP_TOLERANCE * m.abs().max(1.0),
            "{case}: row {r} contributions sum to {sum}, margin {m}"
        );
    }
    (margin_diff, shap_diff)
}

#[test]
fn xgboost_models_predict_and_explain_alike_in_cdp() {
    let Some((dir, cases)) = reference() else {
        return;
    };
    assert_eq!(cases.len(), 5, "{cases:?}");
    let (mut worst_margin, mut worst_shap) = (0.0f32, 0.0f32);
    for case in cases {
        let (m, s) = check_case(dir.path(), case);
        eprintln!("{case}: max |margin diff| {m:e}, max |SHAP diff| {s:e}");
        worst_margin = worst_margin.max(m);
        worst_shap = worst_shap.max(s);
    }
    eprintln!("all cases: max |margin diff| {worst_margin:e}, max |SHAP diff| {worst_shap:e}");
}

#[test]
fn feature_names_come_from_the_file_or_stand_in_by_position() {
    let Some((dir, _)) = reference() else {
        return;
    };
    let unnamed = format::load_path(&dir.path().join("bank_logistic.json")).unwrap();
    assert!(!unnamed.has_feature_names());
    assert_eq!(unnamed.features()[0], "f0");
    assert_eq!(unnamed.features()[15], "f15");
    let named = format::load_path(&dir.path().join("bank_names.json")).unwrap();
    assert!(named.has_feature_names());
    assert_eq!(named.features()[0], "age");
    assert!(named.features().iter().any(|f| f == "pdays"));
    // early stopping recorded its best round; XGBoost's Booster.predict
    // (and cdp, for an imported file) still uses every tree
    assert!(named.best_iteration().is_some());
}

#[test]
fn models_cdp_fits_load_in_python_xgboost() {
    let Some((dir, _)) = reference() else {
        return;
    };
    // cdp fits on the bank rows with a label made from them
    let x: Array2<f32> = read_npy(dir.path().join("bank_names.x.npy")).unwrap();
    let names: Vec<String> = format::load_path(&dir.path().join("bank_names.json"))
        .unwrap()
        .features()
        .to_vec();
    let values = x
        .as_standard_layout()
        .to_owned()
        .into_raw_vec_and_offset()
        .0;
    let cols = names.len();
    let (age, balance) = (0, names.iter().position(|n| n == "balance").unwrap());
    let labels: Vec<f32> = values
        .chunks(cols)
        .map(|r| {
            let rich = r[balance].is_nan() || r[balance] > 800.0;
            f32::from(u8::from(rich && r[age] > 35.0 || r[age] > 60.0))
        })
        .collect();
    let train = Dataset::new(names.clone(), values.clone(), labels).unwrap();
    let params =
        Params::from_pairs(["num_round=60", "max_depth=5", "eta=0.2", "nthread=2"]).unwrap();
    let model = learner(Algo::Gbdt)
        .unwrap()
        .fit(&train, None, &params)
        .unwrap();
    let saved = tempfile::tempdir().unwrap();
    let doc = format::to_document(model.as_ref(), None, None).unwrap();
    format::save_dir(saved.path(), &doc).unwrap();

    let margins_npy = saved.path().join("python_margins.npy");
    let x_npy = saved.path().join("x.npy");
    write_npy(&x_npy, &x).unwrap();
    let out = Command::new("python3")
        .arg(script())
        .arg("score")
        .arg(saved.path().join(XGBOOST_FILE))
        .arg(&x_npy)
        .arg(&margins_npy)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "Python XGBoost cannot load cdp's model: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["feature_names"], serde_json::json!(names));
    let python: Array1<f32> = read_npy(&margins_npy).unwrap();
    let ours = model.margins(&values).unwrap();
    let diff = max_diff(&ours, python.as_slice().unwrap());
    eprintln!("cdp model in Python XGBoost: max |margin diff| {diff:e}");
    assert!(
        diff <= MARGIN_TOLERANCE,
        "Python XGBoost predicts cdp's model with margins off by up to {diff}"
    );
}
