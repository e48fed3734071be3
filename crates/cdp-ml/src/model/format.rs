//! cdp's model document (`model.json`), and loading any model file.
//!
//! Every model cdp fits or imports is saved as one JSON document: an
//! envelope cdp reads (what the model predicts, from which columns, how it
//! was fitted) around the learner's own `payload`. For gradient-boosted
//! trees the payload is the ensemble in XGBoost's JSON model schema, so any
//! cdp tree model also loads in Python XGBoost
//! (`xgb.Booster(model_file="xgboost.json")`, or the `payload` object of
//! `model.json` saved on its own).
//!
//! # `model.json`, field by field (format version 1)
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `format` | string | always `"cdp-model"` |
//! | `format_version` | integer | `1`; a reader refuses versions it does not know |
//! | `algo` | string | `gbdt` (fitted by cdp), `xgboost` (imported from an XGBoost JSON file), `random-forest` or `logistic` (smartcore baselines) |
//! | `objective` | string | XGBoost's name: `binary:logistic` (the margin is a log-odds, the prediction a probability) or `reg:squarederror` |
//! | `features` | array of strings | feature names in the column order rows must follow |
//! | `params` | object of strings | the learner's parameters after defaults, XGBoost's names (`eta`, `max_depth`, `num_round`, …) |
//! | `learner` | string | the library and version that fitted or read it, e.g. `"hessboost 0.4.6"`, `"smartcore 0.7"` |
//! | `created_at` | string | RFC 3339 UTC time the document was written |
//! | `best_iteration` | integer or null | the boosting round early stopping kept (0-based); the payload holds the rounds up to it only |
//! | `training` | object, optional | what it was fitted on: `rows`, `valid_rows`, `label`, `source`, `data_hash`, `as_of`, `seconds` (each optional but `rows`) |
//! | `metrics` | any JSON, optional | evaluation the caller attached (e.g. `cdp train`'s test AUC) |
//! | `payload` | object | the model itself: for `gbdt` and `xgboost`, an XGBoost JSON model document (`version`, `learner.gradient_booster.model.trees`, …, with `learner.feature_names`); for the baselines, their own parameters |
//!
//! Unknown envelope fields are ignored, so later version-1 writers may add
//! some. A model directory ([`save_dir`]) holds `model.json` and, for tree
//! models, `xgboost.json`: the payload alone, for Python.
//!
//! # Reading model files
//!
//! [`load_path`] takes a cdp model directory, a `model.json`, or a file
//! Python XGBoost 2.x/3.x wrote with `Booster.save_model("m.json")`
//! (recognised by its `"learner"` key). An XGBoost model without
//! `feature_names` gets the stand-in names `f0`, `f1`, … and its rows are
//! matched by position ([`Model::has_feature_names`]). Errors name the file
//! ([`Error::ModelFile`]) and say why: malformed JSON, an unknown
//! `format_version`, an objective cdp does not score (`multi:softprob`,
//! `rank:*`, …), an XGBoost version before 2 or after 3, a gblinear
//! booster, XGBoost's binary UBJSON.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::instrument;

use crate::error::{Error, Result};
use crate::model::gbdt::{self, GbdtModel};
use crate::model::{Algo, Dataset, Model, Objective, Params, baseline};

/// The `format` of every cdp model document.
pub const FORMAT: &str = "cdp-model";

/// The document format version this cdp writes and reads.
pub const FORMAT_VERSION: u64 = 1;

/// The document's file name in a model directory.
pub const MODEL_FILE: &str = "model.json";

/// The XGBoost copy of a tree model's payload in a model directory.
pub const XGBOOST_FILE: &str = "xgboost.json";

/// What a model was fitted on (the `training` field of a document).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// Training rows.
    pub rows: u64,
    /// Validation rows (early stopping), when there was a validation set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_rows: Option<u64>,
    /// The label column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Where the rows came from (a file, a lake table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// A hash of the training data, to tell whether two models saw the
    /// same rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_hash: Option<String>,
    /// The as-of date of lake training data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<NaiveDate>,
    /// Seconds the fit took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
}

/// cdp's model document (see the [module docs](self) for every field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelDocument {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`].
    pub format_version: u64,
    /// The algorithm.
    pub algo: Algo,
    /// What the model predicts.
    pub objective: Objective,
    /// Feature names in row order.
    pub features: Vec<String>,
    /// Parameters after defaults.
    pub params: Params,
    /// The library that fitted or read the model, with its version.
    pub learner: String,
    /// When the document was made.
    pub created_at: DateTime<Utc>,
    /// The boosting round early stopping kept.
    pub best_iteration: Option<usize>,
    /// What the model was fitted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<TrainingInfo>,
    /// Evaluation attached by the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Value>,
    /// The learner's model (XGBoost JSON for tree models).
    pub payload: Value,
}

/// A fingerprint of a dataset (its feature names, values and labels, bit
/// for bit): `xxh3-128:` and 32 hex digits, for [`TrainingInfo::data_hash`].
pub fn data_hash(data: &Dataset) -> String {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for name in data.features() {
        hasher.update(name.as_bytes());
        hasher.update(&[0]);
    }
    hasher.update(&(data.n_rows() as u64).to_le_bytes());
    let mut buffer = Vec::with_capacity(4 * 8192);
    for values in [data.values(), data.labels()] {
        for chunk in values.chunks(8192) {
            buffer.clear();
            buffer.extend(chunk.iter().flat_map(|v| v.to_bits().to_le_bytes()));
            hasher.update(&buffer);
        }
    }
    format!("xxh3-128:{:032x}", hasher.digest128())
}

/// The library behind `algo`'s models, as documents name it.
pub fn learner_name(algo: Algo) -> &'static str {
    match algo {
        Algo::Gbdt | Algo::Xgboost => gbdt::LEARNER,
        Algo::RandomForest | Algo::Logistic => "smartcore 0.7",
    }
}

/// The document of `model`, with what it was fitted on and any metrics.
pub fn to_document(
    model: &dyn Model,
    training: Option<TrainingInfo>,
    metrics: Option<Value>,
) -> Result<ModelDocument> {
    Ok(ModelDocument {
        format: FORMAT.to_string(),
        format_version: FORMAT_VERSION,
        algo: model.algo(),
        objective: model.objective(),
        features: model.features().to_vec(),
        params: model.params(),
        learner: learner_name(model.algo()).to_string(),
        created_at: Utc::now(),
        best_iteration: model.best_iteration(),
        training,
        metrics,
        payload: model.payload()?,
    })
}

/// The model a document describes.
pub fn from_document(doc: &ModelDocument) -> Result<Box<dyn Model>> {
    if doc.format != FORMAT {
        return Err(Error::ModelInvalid {
            reason: format!("format is {:?}, not {FORMAT:?}", doc.format),
        });
    }
    if doc.format_version != FORMAT_VERSION {
        return Err(Error::FormatVersion {
            version: doc.format_version,
            supported: FORMAT_VERSION,
        });
    }
    if doc.features.is_empty() {
        return Err(Error::ModelInvalid {
            reason: "the document lists no features".into(),
        });
    }
    match doc.algo {
        Algo::Gbdt | Algo::Xgboost => Ok(Box::new(GbdtModel::from_payload(
            doc.algo,
            doc.features.clone(),
            doc.objective,
            doc.params.clone(),
            doc.best_iteration,
            &doc.payload,
        )?)),
        Algo::RandomForest | Algo::Logistic => baseline::from_payload(
            doc.algo,
            doc.features.clone(),
            doc.objective,
            doc.params.clone(),
            &doc.payload,
        ),
    }
}

/// Write `doc` into the model directory `dir` (made when missing):
/// `model.json`, and for tree models `xgboost.json` (the payload alone,
/// which Python XGBoost loads). Each file is written to a temporary name
/// and renamed, so a reader never sees half a file. Returns the path of
/// `model.json`.
#[instrument(skip_all, fields(dir = %dir.display()))]
pub fn save_dir(dir: &Path, doc: &ModelDocument) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|cause| Error::ModelIo {
        action: "create",
        path: dir.to_path_buf(),
        cause,
    })?;
    if matches!(doc.algo, Algo::Gbdt | Algo::Xgboost) {
        write_file(&dir.join(XGBOOST_FILE), &pretty(&doc.payload)?)?;
    }
    let path = dir.join(MODEL_FILE);
    write_file(&path, &pretty(doc)?)?;
    Ok(path)
}

fn pretty<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(value).map_err(|e| Error::ModelInvalid {
        reason: format!("cannot encode the model document: {e}"),
    })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |cause| Error::ModelIo {
        action: "write",
        path: path.to_path_buf(),
        cause,
    };
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Read a cdp model document from `bytes` (`name` names them in errors).
pub fn read_document(bytes: &[u8], name: &str) -> Result<ModelDocument> {
    let in_file = |source: Error| Error::ModelFile {
        name: name.to_string(),
        cause: Box::new(source),
    };
    let value = parse_json(bytes).map_err(in_file)?;
    document_from_value(value).map_err(in_file)
}

/// Load a model from `bytes` of a cdp `model.json` or an XGBoost JSON model
/// file; `name` names them in errors.
pub fn load_bytes(bytes: &[u8], name: &str) -> Result<Box<dyn Model>> {
    let in_file = |source: Error| Error::ModelFile {
        name: name.to_string(),
        cause: Box::new(source),
    };
    let value = parse_json(bytes).map_err(in_file)?;
    let is_cdp = value.get("format").is_some() || value.get("format_version").is_some();
    if !is_cdp && value.get("learner").is_some() {
        return Ok(Box::new(GbdtModel::from_xgboost(value).map_err(in_file)?));
    }
    if !is_cdp {
        return Err(in_file(Error::ModelInvalid {
            reason: "neither a cdp model document (no \"format\") nor an XGBoost JSON model \
                     (no \"learner\")"
                .into(),
        }));
    }
    let doc = document_from_value(value).map_err(in_file)?;
    from_document(&doc).map_err(in_file)
}

/// Load the model at `path`: a cdp model directory (its `model.json`), a
/// cdp `model.json`, or an XGBoost JSON model file.
#[instrument(skip_all, fields(path = %path.display()))]
pub fn load_path(path: &Path) -> Result<Box<dyn Model>> {
    let file = if path.is_dir() {
        path.join(MODEL_FILE)
    } else {
        path.to_path_buf()
    };
    let bytes = std::fs::read(&file).map_err(|cause| Error::ModelIo {
        action: "read",
        path: file.clone(),
        cause,
    })?;
    load_bytes(&bytes, &file.display().to_string())
}

fn parse_json(bytes: &[u8]) -> Result<Value> {
    if bytes.first() == Some(&b'{')
        && bytes
            .get(1)
            .is_some_and(|b| matches!(b, b'i' | b'U' | b'I' | b'l' | b'L' | b'$' | b'#'))
    {
        return Err(Error::ModelInvalid {
            reason: "an XGBoost binary (UBJSON) model; save it as JSON: \
                     booster.save_model(\"model.json\")"
                .into(),
        });
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| Error::ModelInvalid {
        reason: format!("malformed JSON: {e}"),
    })?;
    if !value.is_object() {
        return Err(Error::ModelInvalid {
            reason: "not a JSON object".into(),
        });
    }
    Ok(value)
}

/// A cdp document from its JSON, checking the format, version and
/// objective first so each gets its own error.
fn document_from_value(value: Value) -> Result<ModelDocument> {
    match value.get("format").and_then(Value::as_str) {
        Some(FORMAT) => {}
        other => {
            return Err(Error::ModelInvalid {
                reason: format!("format is {other:?}, not {FORMAT:?}"),
            });
        }
    }
    let version = value
        .get("format_version")
        .and_then(Value::as_u64)
        .ok_or_else(|| Error::ModelInvalid {
            reason: "no format_version".into(),
        })?;
    if version != FORMAT_VERSION {
        return Err(Error::FormatVersion {
            version,
            supported: FORMAT_VERSION,
        });
    }
    if let Some(objective) = value.get("objective").and_then(Value::as_str) {
        Objective::parse(objective)?;
    }
    serde_json::from_value(value).map_err(|e| Error::ModelInvalid {
        reason: format!("malformed model document: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Learner;

    /// A small binary problem with missing values.
    fn data(rows: usize, seed: u32) -> Dataset {
        let features: Vec<String> = ["age", "balance", "visits"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut values = Vec::with_capacity(rows * 3);
        let mut labels = Vec::with_capacity(rows);
        let mut state = seed.wrapping_mul(2_654_435_761).max(1);
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state % 10_000) as f32 / 10_000.0
        };
        for _ in 0..rows {
            let (a, b, c) = (next(), next(), next());
            values.push(a * 80.0);
            values.push(if c < 0.1 {
                f32::NAN
            } else {
                b * 1000.0 - 300.0
            });
            values.push((c * 10.0).floor());
            labels.push(if a + 0.5 * b + 0.2 * next() > 0.9 {
                1.0
            } else {
                0.0
            });
        }
        Dataset::new(features, values, labels).unwrap()
    }

    fn fitted() -> Box<dyn Model> {
        let params = Params::default()
            .with("num_round", 30)
            .with("max_depth", 4)
            .with("eta", 0.2)
            .with("nthread", 1);
        gbdt::GbdtLearner.fit(&data(600, 7), None, &params).unwrap()
    }

    #[test]
    fn margins_round_trip_bit_for_bit_through_the_document() {
        let model = fitted();
        let training = TrainingInfo {
            rows: 600,
            label: Some("y".into()),
            ..TrainingInfo::default()
        };
        let doc = to_document(model.as_ref(), Some(training), None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = save_dir(dir.path(), &doc).unwrap();
        let again = load_path(dir.path()).unwrap();
        let probe = data(400, 99);
        let before = model.margins(probe.values()).unwrap();
        let after = again.margins(probe.values()).unwrap();
        let bits = |v: &[f32]| v.iter().map(|m| m.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&before), bits(&after));
        assert_eq!(again.features(), model.features());
        assert_eq!(again.params(), model.params());
        assert_eq!(again.algo(), Algo::Gbdt);
        // the document read back is the one written
        let read = read_document(&std::fs::read(&path).unwrap(), "m").unwrap();
        assert_eq!(read, doc);
        // and the XGBoost copy loads on its own, with the feature names
        let xgb = load_path(&dir.path().join(XGBOOST_FILE)).unwrap();
        assert_eq!(xgb.algo(), Algo::Xgboost);
        assert!(xgb.has_feature_names());
        assert_eq!(xgb.features(), model.features());
        assert_eq!(bits(&xgb.margins(probe.values()).unwrap()), bits(&before));
    }

    /// XGBoost stores a logistic model's starting margin as a probability
    /// (`base_score`), so the document's margin goes through a sigmoid and
    /// back: it must come back with the same bits whatever the label rate.
    #[test]
    fn starting_margins_of_every_label_rate_survive_the_round_trip() {
        let rows = 997;
        let features = vec!["x".to_string()];
        let values: Vec<f32> = (0..rows).map(|i| i as f32).collect();
        let params = Params::default()
            .with("num_round", 1)
            .with("max_depth", 1)
            .with("nthread", 1);
        let mut failures = Vec::new();
        for positives in (1..rows).step_by(5) {
            let labels: Vec<f32> = (0..rows)
                .map(|i| {
                    if (i * 7919) % rows < positives {
                        1.0
                    } else {
                        0.0
                    }
                })
                .collect();
            let train = Dataset::new(features.clone(), values.clone(), labels).unwrap();
            let model = gbdt::GbdtLearner.fit(&train, None, &params).unwrap();
            let doc = to_document(model.as_ref(), None, None).unwrap();
            let text = serde_json::to_vec(&doc).unwrap();
            let again = load_bytes(&text, "m").unwrap();
            let probe = [f32::NAN, 0.0, 500.0];
            for x in probe {
                let (a, b) = (
                    model.margin_row(&[x]).unwrap(),
                    again.margin_row(&[x]).unwrap(),
                );
                if a.to_bits() != b.to_bits() {
                    failures.push((positives, x, a, b));
                }
            }
        }
        assert!(failures.is_empty(), "{failures:?}");
    }

    #[test]
    fn data_hashes_tell_datasets_apart() {
        let (a, b) = (data(100, 1), data(100, 2));
        assert_eq!(data_hash(&a), data_hash(&data(100, 1)));
        assert_ne!(data_hash(&a), data_hash(&b));
        let relabelled = Dataset::new(
            a.features().to_vec(),
            a.values().to_vec(),
            a.labels().iter().map(|y| 1.0 - y).collect(),
        )
        .unwrap();
        assert_ne!(data_hash(&a), data_hash(&relabelled));
        assert!(data_hash(&a).starts_with("xxh3-128:"));
        assert_eq!(data_hash(&a).len(), 9 + 32);
    }

    fn load_err(text: &str) -> Error {
        match load_bytes(text.as_bytes(), "m.json") {
            Err(Error::ModelFile { name, cause }) => {
                assert_eq!(name, "m.json");
                *cause
            }
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("loaded {text}"),
        }
    }

    #[test]
    fn bad_documents_get_typed_errors_naming_the_file() {
        let model = fitted();
        let doc = to_document(model.as_ref(), None, None).unwrap();
        let mut value = serde_json::to_value(&doc).unwrap();

        assert!(matches!(load_err("{not json"), Error::ModelInvalid { .. }));
        assert!(matches!(load_err("[1, 2]"), Error::ModelInvalid { .. }));
        assert!(matches!(load_err("{\"a\": 1}"), Error::ModelInvalid { .. }));

        value["format_version"] = 2.into();
        assert!(matches!(
            load_err(&value.to_string()),
            Error::FormatVersion { version: 2, .. }
        ));
        value["format_version"] = 1.into();
        value["objective"] = "multi:softprob".into();
        assert!(matches!(
            load_err(&value.to_string()),
            Error::UnknownObjective { .. }
        ));
        value["objective"] = "binary:logistic".into();
        value["features"] = serde_json::json!(["a", "b"]);
        assert!(matches!(
            load_err(&value.to_string()),
            Error::ModelInvalid { .. }
        ));
        value["features"] = serde_json::json!(["age", "balance", "visits"]);
        value["objective"] = "reg:squarederror".into();
        assert!(matches!(
            load_err(&value.to_string()),
            Error::ModelInvalid { .. }
        ));
        let message = Error::ModelFile {
            name: "m.json".into(),
            cause: Box::new(Error::FormatVersion {
                version: 2,
                supported: 1,
            }),
        }
        .to_string();
        assert!(message.starts_with("model m.json: "), "{message}");

        let missing = load_path(Path::new("/nonexistent/cdp/model")).unwrap_err();
        assert!(matches!(missing, Error::ModelIo { .. }));
    }

    #[test]
    fn xgboost_documents_are_checked_before_import() {
        let model = fitted();
        let xgb = model.payload().unwrap();

        let mut old = xgb.clone();
        old["version"] = serde_json::json!([1, 7, 6]);
        assert!(matches!(
            load_err(&old.to_string()),
            Error::XgboostVersion { .. }
        ));
        let mut multi = xgb.clone();
        multi["learner"]["objective"]["name"] = "multi:softprob".into();
        assert!(matches!(
            load_err(&multi.to_string()),
            Error::UnknownObjective { .. }
        ));
        let mut rank = xgb.clone();
        rank["learner"]["objective"]["name"] = "rank:ndcg".into();
        assert!(matches!(
            load_err(&rank.to_string()),
            Error::UnknownObjective { .. }
        ));
        let mut linear = xgb.clone();
        linear["learner"]["gradient_booster"]["name"] = "gblinear".into();
        assert!(matches!(
            load_err(&linear.to_string()),
            Error::XgboostBooster { .. }
        ));
        let mut broken = xgb.clone();
        broken["learner"]["gradient_booster"]["model"]["trees"][0]["left_children"] =
            serde_json::json!("x");
        assert!(matches!(load_err(&broken.to_string()), Error::Boost { .. }));

        // XGBoost 2.x: a scalar base_score, and no feature names
        let mut v2 = xgb.clone();
        v2["version"] = serde_json::json!([2, 1, 4]);
        let base = v2["learner"]["learner_model_param"]["base_score"]
            .as_str()
            .unwrap()
            .trim_matches(['[', ']'])
            .to_string();
        v2["learner"]["learner_model_param"]["base_score"] = base.into();
        v2["learner"]["feature_names"] = serde_json::json!([]);
        let loaded = load_bytes(v2.to_string().as_bytes(), "v2.json").unwrap();
        assert!(!loaded.has_feature_names());
        assert_eq!(loaded.features(), ["f0", "f1", "f2"]);
        let probe = data(50, 3);
        assert_eq!(
            loaded.margins(probe.values()).unwrap(),
            model.margins(probe.values()).unwrap()
        );
    }
}
