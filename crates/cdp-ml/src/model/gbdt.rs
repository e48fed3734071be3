//! Gradient-boosted trees of the XGBoost family, on [hessboost] 0.4.6.
//!
//! [`GbdtLearner`] fits a [`GbdtModel`]: second-order boosting with
//! histogram splits on quantile bins, depth-wise or loss-guided growth, L1/L2
//! leaf regularisation, `gamma`, `min_child_weight`, row and column
//! subsampling, missing values (`NaN`) sent down a learned default
//! direction, `base_score` from the labels, early stopping on a validation
//! set, `scale_pos_weight`. hessboost does the numeric work; this module
//! maps cdp's [`Params`] (XGBoost's names, as text) onto it, checks the
//! data, and keeps the model behind cdp's [`Model`] trait.
//!
//! # Why hessboost, and what is written here
//!
//! hessboost is a pure-Rust implementation of XGBoost's `hist` learner
//! (Apache-2.0) that reads and writes XGBoost's JSON model schema, predicts
//! imported XGBoost models with the same margins, and has TreeSHAP and
//! XGBoost's importance types. Training and prediction are its own;
//! contributions are cdp's exact TreeSHAP ([`super::treeshap`]: about
//! twice hessboost's throughput in release builds, see there), over a
//! flattened copy of the trees built on the first call. Besides that this
//! module adds only what cdp needs around it:
//!
//! * parameter parsing with cdp's rules ([`Params::only`]: an unknown key is
//!   refused, never ignored) and defaults recorded in the model (`nthread`
//!   defaults to every core, on a thread pool local to the fit, which
//!   hessboost builds when `nthread` is set; `objective` defaults from the
//!   labels);
//! * early stopping keeps only the rounds up to the best one (the model is
//!   sliced there), so cdp, the saved file and Python XGBoost all predict
//!   with the same trees;
//! * XGBoost import checks hessboost leaves to its caller: the file's
//!   XGBoost version (2.x and 3.x; 2.x's scalar `base_score` is rewritten as
//!   3.x's vector), the objective (only `binary:logistic` and
//!   `reg:squarederror`: hessboost would import any objective "by name" and
//!   predict raw margins), the booster (gbtree; dart is rewritten into the
//!   gbtree-plus-`weight_drop` layout hessboost reads; gblinear refused) and
//!   the feature names (hessboost ignores them);
//! * feature names written into the exported document, so a cdp model
//!   loads in Python XGBoost with its names.
//!
//! # Prediction layout
//!
//! Single rows go through hessboost's `predict_margin_row_into`, which is
//! already the compact flattened layout the serving path needs: trees are
//! cut into chunks of eight, each chunk of numeric trees up to depth 8 laid
//! out as complete binary trees in heap order (children of node `a` at
//! `2a + 1` and `2a + 2`, no child links), a split being a `u32` threshold
//! key and a `u16` feature slot, with missing values routed by the same
//! unsigned compare; the chunk's trees are walked in lockstep, branch-free.
//! The layout is built once, on the first row, and a row then allocates
//! nothing. Batches go through `predict_margin_rows`, which walks blocks of
//! rows through every tree in parallel. Both give the same bits as any
//! other batch of the same rows. Nothing here re-implements them.

use std::num::NonZeroUsize;
use std::ops::ControlFlow;
use std::sync::OnceLock;

use cdp_core::progress::{Progress, Silent};
use hessboost::error::HessboostError;
use hessboost::model::{BoostedModel, ImportanceType, ModelFormat};
use hessboost::prelude::{DMatrix, TrainingParams};
use hessboost::training::Trainer;
use serde_json::{Value, json};
use tracing::{debug, instrument};

use crate::error::{Error, Result};
use crate::model::treeshap::Forest;
use crate::model::{
    Algo, Contributions, Dataset, FeatureImportance, Learner, Model, Objective, Params,
    check_finite,
};

/// The learning library and version behind [`GbdtModel`], as model
/// documents record it.
pub const LEARNER: &str = "hessboost 0.4.6";

/// The parameters [`GbdtLearner`] accepts (XGBoost's names).
pub const PARAMS: &[&str] = &[
    "objective",
    "num_round",
    "eta",
    "max_depth",
    "max_leaves",
    "grow_policy",
    "max_bin",
    "lambda",
    "alpha",
    "gamma",
    "min_child_weight",
    "subsample",
    "colsample_bytree",
    "scale_pos_weight",
    "base_score",
    "early_stopping_rounds",
    "eval_metric",
    "seed",
    "nthread",
    "tree_method",
];

/// Boosting rounds when `num_round` is not given (XGBoost's CLI default is
/// 10; 100 is the common choice, and early stopping cuts it short).
pub const DEFAULT_NUM_ROUND: usize = 100;

/// Fits gradient-boosted trees ([`GbdtModel`]) with XGBoost-named
/// parameters:
///
/// | key | default | meaning |
/// |---|---|---|
/// | `objective` | `binary:logistic` when every label is 0 or 1, else `reg:squarederror` | what to predict |
/// | `num_round` | 100 | boosting rounds (at most, with early stopping) |
/// | `eta` | 0.3 | learning rate |
/// | `max_depth` | 6 | deepest tree (0: no limit) |
/// | `max_leaves` | 0 | most leaves per tree with `grow_policy=lossguide` (0: no limit) |
/// | `grow_policy` | `depthwise` | or `lossguide` (split the best leaf first) |
/// | `max_bin` | 256 | quantile bins per feature |
/// | `lambda`, `alpha` | 1, 0 | L2 and L1 regularisation of leaf weights |
/// | `gamma` | 0 | least loss reduction a split must bring |
/// | `min_child_weight` | 1 | least hessian sum in a child |
/// | `subsample`, `colsample_bytree` | 1, 1 | rows per round, features per tree |
/// | `scale_pos_weight` | 1 | weight of positive rows (`binary:logistic`) |
/// | `base_score` | from the labels | the starting prediction (a probability for `binary:logistic`) |
/// | `early_stopping_rounds` | none | stop when the validation metric has not improved for this many rounds (needs a validation set) |
/// | `eval_metric` | `logloss` / `rmse` | validation metric(s), comma-separated; the last drives early stopping |
/// | `seed` | 0 | sampling seed: same data, parameters and seed, same model, on any thread count |
/// | `nthread` | every core | threads of the fit's own pool |
/// | `tree_method` | `hist` | `hist`, `approx` or `exact` |
#[derive(Debug, Clone, Copy, Default)]
pub struct GbdtLearner;

impl Learner for GbdtLearner {
    fn algo(&self) -> Algo {
        Algo::Gbdt
    }

    fn fit(
        &self,
        train: &Dataset,
        valid: Option<&Dataset>,
        params: &Params,
    ) -> Result<Box<dyn Model>> {
        Ok(Box::new(GbdtModel::fit(train, valid, params, &Silent)?))
    }

    fn fit_with_progress(
        &self,
        train: &Dataset,
        valid: Option<&Dataset>,
        params: &Params,
        progress: &dyn Progress,
    ) -> Result<Box<dyn Model>> {
        Ok(Box::new(GbdtModel::fit(train, valid, params, progress)?))
    }
}

/// A gradient-boosted tree ensemble with one output: fitted by
/// [`GbdtLearner`] ([`Algo::Gbdt`]) or imported from an XGBoost JSON model
/// ([`Algo::Xgboost`]).
///
/// Margins use every tree it holds (a fitted model holds the rounds up to
/// early stopping's best one; an imported one predicts as XGBoost's
/// `Booster.predict` does, with all its trees). Contributions are exact
/// TreeSHAP, XGBoost's `pred_contribs`. Importance lists every feature,
/// zeros for those never split on, most total gain first (XGBoost's
/// `weight`, `gain`, `cover`, `total_gain`); it is empty when no tree
/// splits.
#[derive(Debug, Clone)]
pub struct GbdtModel {
    algo: Algo,
    objective: Objective,
    features: Vec<String>,
    named: bool,
    params: Params,
    best_iteration: Option<usize>,
    validation: Option<Value>,
    /// `learner_model_param.base_score` as the XGBoost document the model
    /// was read from (or, for a fitted model, first written to) holds it.
    /// XGBoost stores a logistic model's starting margin as a probability,
    /// and the margin's trip through the sigmoid and back is not always
    /// exact in `f32`; writing the text read keeps every save and load of
    /// the model bit for bit the same model.
    base_score_text: String,
    booster: BoostedModel,
    /// The trees flattened for [`super::treeshap`], built by the first
    /// [`Model::contributions`].
    explainer: OnceLock<Forest>,
}

/// The settings of one fit, parsed from [`Params`].
#[derive(Debug)]
struct Settings {
    objective: Objective,
    num_round: usize,
    early_stopping_rounds: Option<NonZeroUsize>,
    /// hessboost's parameters, by XGBoost's names.
    xgboost: Vec<(&'static str, Value)>,
    /// What the model records: every parameter after defaults.
    recorded: Params,
}

fn boost(what: &'static str) -> impl FnOnce(HessboostError) -> Error {
    move |cause| Error::Boost { what, cause }
}

/// Parse `params` for a fit on `labels`, with XGBoost's defaults.
fn settings(params: &Params, labels: &[f32], has_valid: bool) -> Result<Settings> {
    params.only(Algo::Gbdt, PARAMS)?;
    let objective = match params.0.get("objective") {
        Some(name) => Objective::parse(name)?,
        None if labels.iter().all(|&y| y == 0.0 || y == 1.0) => Objective::BinaryLogistic,
        None => Objective::SquaredError,
    };
    let num_round = params
        .get::<usize>("num_round")?
        .unwrap_or(DEFAULT_NUM_ROUND);
    if num_round == 0 {
        return Err(Error::Param {
            key: "num_round".into(),
            reason: "must be at least 1".into(),
        });
    }
    let early_stopping_rounds = match params.get::<usize>("early_stopping_rounds")? {
        None => None,
        Some(0) => {
            return Err(Error::Param {
                key: "early_stopping_rounds".into(),
                reason: "must be at least 1".into(),
            });
        }
        Some(_) if !has_valid => {
            return Err(Error::Param {
                key: "early_stopping_rounds".into(),
                reason: "needs a validation set (--valid FILE)".into(),
            });
        }
        Some(n) => NonZeroUsize::new(n),
    };
    let threads = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let nthread = match params.get::<usize>("nthread")? {
        None | Some(0) => threads,
        Some(n) => n,
    };

    let mut recorded = Params::default()
        .with("objective", objective.name())
        .with("num_round", num_round)
        .with("nthread", nthread);
    let mut xgboost: Vec<(&'static str, Value)> = vec![
        ("objective", json!(objective.name())),
        ("nthread", json!(nthread)),
    ];
    // (key, XGBoost's default, kind): every value is checked here, so the
    // error names cdp's parameter; hessboost checks the ranges.
    enum Kind {
        Float,
        Int,
        Text,
    }
    let keys: &[(&'static str, &str, Kind)] = &[
        ("eta", "0.3", Kind::Float),
        ("max_depth", "6", Kind::Int),
        ("max_leaves", "0", Kind::Int),
        ("grow_policy", "depthwise", Kind::Text),
        ("max_bin", "256", Kind::Int),
        ("lambda", "1", Kind::Float),
        ("alpha", "0", Kind::Float),
        ("gamma", "0", Kind::Float),
        ("min_child_weight", "1", Kind::Float),
        ("subsample", "1", Kind::Float),
        ("colsample_bytree", "1", Kind::Float),
        ("scale_pos_weight", "1", Kind::Float),
        ("seed", "0", Kind::Int),
        ("tree_method", "hist", Kind::Text),
    ];
    for (key, default, kind) in keys {
        let text = params.0.get(*key).map_or(*default, String::as_str);
        let value = match kind {
            Kind::Float => {
                let v = Params::default().with(key, text).get::<f64>(key)?;
                match v {
                    Some(v) if v.is_finite() => json!(v),
                    _ => {
                        return Err(Error::Param {
                            key: (*key).into(),
                            reason: format!("{text:?} is not a finite number"),
                        });
                    }
                }
            }
            Kind::Int => json!(Params::default().with(key, text).get::<u64>(key)?),
            Kind::Text => json!(text),
        };
        if *key == "scale_pos_weight" && objective != Objective::BinaryLogistic {
            if params.0.contains_key(*key) {
                return Err(Error::Param {
                    key: (*key).into(),
                    reason: format!("applies to binary:logistic only, not {objective}"),
                });
            }
            continue;
        }
        recorded = recorded.with(key, text);
        xgboost.push((key, value));
    }
    if let Some(base_score) = params.get::<f64>("base_score")? {
        let valid = match objective {
            Objective::BinaryLogistic => base_score > 0.0 && base_score < 1.0,
            Objective::SquaredError => base_score.is_finite(),
        };
        if !valid {
            return Err(Error::Param {
                key: "base_score".into(),
                reason: format!(
                    "{base_score} is not a valid starting prediction for {objective}{}",
                    if objective == Objective::BinaryLogistic {
                        " (a probability strictly between 0 and 1)"
                    } else {
                        ""
                    }
                ),
            });
        }
        recorded = recorded.with("base_score", base_score);
        xgboost.push(("base_score", json!(base_score)));
    }
    if let Some(rounds) = early_stopping_rounds {
        recorded = recorded.with("early_stopping_rounds", rounds);
    }
    if let Some(metrics) = params.0.get("eval_metric") {
        let list: Vec<&str> = metrics
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .collect();
        if list.is_empty() {
            return Err(Error::Param {
                key: "eval_metric".into(),
                reason: "names no metric".into(),
            });
        }
        recorded = recorded.with("eval_metric", list.join(","));
        xgboost.push(("eval_metric", json!(list)));
    }
    Ok(Settings {
        objective,
        num_round,
        early_stopping_rounds,
        xgboost,
        recorded,
    })
}

/// Refuse labels the objective cannot learn from, naming the row.
fn check_labels(objective: Objective, labels: &[f32], what: &str) -> Result<()> {
    if objective == Objective::BinaryLogistic
        && let Some(row) = labels.iter().position(|y| !(0.0..=1.0).contains(y))
    {
        return Err(Error::Param {
            key: "objective".into(),
            reason: format!(
                "binary:logistic needs {what} labels in [0, 1]; row {row} has {}",
                labels[row]
            ),
        });
    }
    Ok(())
}

/// `learner.learner_model_param.base_score` of an XGBoost document.
fn base_score_text(document: &Value) -> Result<String> {
    document
        .pointer("/learner/learner_model_param/base_score")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| Error::ModelInvalid {
            reason: "not an XGBoost JSON model: no learner_model_param.base_score".into(),
        })
}

/// The matrix of a dataset, with its labels.
fn matrix(data: &Dataset) -> Result<DMatrix> {
    DMatrix::from_dense(data.values(), data.n_rows(), data.n_features())
        .and_then(|m| m.with_labels(data.labels()))
        .map_err(boost("building the training matrix"))
}

impl GbdtModel {
    /// Fit on `train` with `params` (see [`GbdtLearner`]); `valid` drives
    /// early stopping and is scored every round. `progress` advances once
    /// per boosting round.
    #[instrument(skip_all, fields(rows = train.n_rows(), features = train.n_features()))]
    pub fn fit(
        train: &Dataset,
        valid: Option<&Dataset>,
        params: &Params,
        progress: &dyn Progress,
    ) -> Result<GbdtModel> {
        let settings = settings(params, train.labels(), valid.is_some())?;
        check_labels(settings.objective, train.labels(), "training")?;
        if let Some(valid) = valid {
            if valid.features() != train.features() {
                return Err(Error::Columns {
                    expected: train.features().to_vec(),
                    got: valid.features().to_vec(),
                });
            }
            check_labels(settings.objective, valid.labels(), "validation")?;
        }
        let training = TrainingParams::from_xgboost(settings.xgboost.iter().cloned())
            .map_err(boost("checking the parameters"))?;
        let dtrain = matrix(train)?;
        let dvalid = valid.map(matrix).transpose()?;

        progress.begin("boosting", settings.num_round as u64);
        let mut trainer = Trainer::new(&training, &dtrain, settings.num_round).on_round(|_| {
            progress.advance(1);
            ControlFlow::Continue(())
        });
        if let Some(dvalid) = &dvalid {
            trainer = trainer.eval(dvalid, "valid");
        }
        if let Some(rounds) = settings.early_stopping_rounds {
            trainer = trainer.early_stopping_rounds(rounds);
        }
        let result = trainer.train();
        progress.finish();
        let result = result.map_err(boost("training"))?;

        let rounds_run = result.model.num_boost_rounds();
        let mut booster = result.model;
        let best_iteration = booster.best_iteration();
        // Keep only the rounds early stopping chose, so every reader of
        // the model (cdp, its saved file, Python XGBoost) predicts with
        // the same trees.
        if let Some(best) = best_iteration
            && best + 1 < rounds_run
        {
            booster = booster
                .slice(..best + 1, 1)
                .map_err(boost("keeping the best rounds"))?;
        }
        let validation = dvalid.as_ref().map(|_| {
            let metric = result.history.metrics().last().cloned();
            let last = result
                .history
                .last()
                .and_then(|round| round.values().last().copied());
            json!({
                "metric": metric,
                "best_score": result.best_score.or(last),
                "rounds_run": rounds_run,
            })
        });
        let mut recorded = settings.recorded;
        if !params.0.contains_key("base_score") {
            // The starting prediction training estimated, as a probability
            // for binary:logistic (XGBoost's `base_score` space).
            recorded = recorded.with("base_score", settings.objective.link(booster.base_score()));
        }
        debug!(rounds_run, ?best_iteration, "fitted");
        // The model is the one its XGBoost document holds (the starting
        // margin read back through XGBoost's probability space), so the
        // fitted model and every saved copy predict the same bits.
        let saved = booster
            .encode(ModelFormat::XgboostJson)
            .map_err(boost("writing XGBoost JSON"))?;
        let base_score_text =
            base_score_text(
                &serde_json::from_slice(&saved).map_err(|e| Error::ModelInvalid {
                    reason: format!("hessboost wrote unreadable XGBoost JSON: {e}"),
                })?,
            )?;
        let booster = BoostedModel::decode(&saved, ModelFormat::XgboostJson)
            .map_err(boost("reading the XGBoost trees"))?;
        Ok(GbdtModel {
            algo: Algo::Gbdt,
            objective: settings.objective,
            features: train.features().to_vec(),
            named: true,
            params: recorded,
            best_iteration,
            validation,
            base_score_text,
            booster,
            explainer: OnceLock::new(),
        })
    }

    /// Import an XGBoost JSON model document (`Booster.save_model("m.json")`
    /// of XGBoost 2.x or 3.x) as an [`Algo::Xgboost`] model. Its features
    /// are the document's `feature_names`, or `f0`, `f1`, … when it has
    /// none (then [`Model::has_feature_names`] is false and rows are matched
    /// by position).
    ///
    /// Refused with a typed error: another major XGBoost version
    /// ([`Error::XgboostVersion`]), an objective other than
    /// `binary:logistic` or `reg:squarederror` ([`Error::UnknownObjective`]),
    /// a gblinear booster ([`Error::XgboostBooster`]), anything malformed
    /// ([`Error::ModelInvalid`], [`Error::Boost`]).
    #[instrument(skip_all)]
    pub fn from_xgboost(mut document: Value) -> Result<GbdtModel> {
        let invalid = |reason: &str| Error::ModelInvalid {
            reason: format!("not an XGBoost JSON model: {reason}"),
        };
        let version: Vec<u64> = document
            .get("version")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_u64).collect())
            .ok_or_else(|| invalid("no \"version\""))?;
        let major = version.first().copied().unwrap_or(0);
        if !(2..=3).contains(&major) {
            return Err(Error::XgboostVersion {
                version: version
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join("."),
            });
        }
        let learner = document
            .get_mut("learner")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| invalid("no \"learner\" object"))?;

        let objective = learner
            .get("objective")
            .and_then(|o| o.get("name"))
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("no learner.objective.name"))?;
        let objective = Objective::parse(objective)?;

        let booster = learner
            .get_mut("gradient_booster")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| invalid("no learner.gradient_booster"))?;
        let name = booster
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("gbtree")
            .to_string();
        match name.as_str() {
            "gbtree" => {}
            // XGBoost 2.x/3.2 nest a dart booster's trees in "gbtree" with
            // the per-tree weights beside them; hessboost reads the
            // XGBoost 3.4 layout: gbtree with model.weight_drop.
            "dart" => {
                let weights = booster
                    .remove("weight_drop")
                    .ok_or_else(|| invalid("dart booster without weight_drop"))?;
                let mut inner = booster
                    .remove("gbtree")
                    .ok_or_else(|| invalid("dart booster without gbtree"))?;
                let model = inner
                    .get_mut("model")
                    .and_then(Value::as_object_mut)
                    .ok_or_else(|| invalid("dart booster without gbtree.model"))?;
                model.insert("weight_drop".into(), weights);
                booster.insert("name".into(), json!("gbtree"));
                booster.insert("model".into(), inner["model"].take());
            }
            other => {
                return Err(Error::XgboostBooster {
                    booster: other.to_string(),
                });
            }
        }

        let params = learner
            .get_mut("learner_model_param")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| invalid("no learner.learner_model_param"))?;
        // XGBoost 2.x writes a scalar base_score ("5E-1"), 3.x a vector.
        if let Some(Value::String(base)) = params.get_mut("base_score")
            && !base.trim_start().starts_with('[')
        {
            *base = format!("[{}]", base.trim());
        }
        let num_feature = params
            .get("num_feature")
            .and_then(|v| match v {
                Value::String(s) => s.parse::<usize>().ok(),
                other => other.as_u64().map(|n| n as usize),
            })
            .ok_or_else(|| invalid("no learner_model_param.num_feature"))?;

        let names: Vec<String> = match learner.get("feature_names") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(names)) => names
                .iter()
                .map(|n| n.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| invalid("feature_names holds a non-string"))?,
            Some(_) => return Err(invalid("feature_names is not an array")),
        };
        if !names.is_empty() && names.len() != num_feature {
            return Err(invalid(&format!(
                "{} feature_names for num_feature {num_feature}",
                names.len()
            )));
        }
        let base_score_text = base_score_text(&document)?;
        let best_iteration = document["learner"]
            .get("attributes")
            .and_then(|a| a.get("best_iteration"))
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<usize>().ok());

        let text = serde_json::to_string(&document).map_err(|e| Error::ModelInvalid {
            reason: e.to_string(),
        })?;
        let booster = BoostedModel::decode(text.as_bytes(), ModelFormat::XgboostJson)
            .map_err(boost("reading the XGBoost trees"))?;
        if booster.n_outputs() != 1 {
            return Err(invalid(&format!(
                "{} outputs per row (cdp models predict one)",
                booster.n_outputs()
            )));
        }
        let named = !names.is_empty();
        let features = if named {
            names
        } else {
            (0..num_feature).map(|i| format!("f{i}")).collect()
        };
        Ok(GbdtModel {
            algo: Algo::Xgboost,
            objective,
            features,
            named,
            params: Params::default().with("objective", objective.name()),
            best_iteration,
            validation: None,
            base_score_text,
            booster,
            explainer: OnceLock::new(),
        })
    }

    /// Rebuild a model from the parts of a cdp model document: its XGBoost
    /// JSON `payload` and the envelope's algorithm, features, objective,
    /// parameters and best iteration (which win over the payload's).
    pub fn from_payload(
        algo: Algo,
        features: Vec<String>,
        objective: Objective,
        params: Params,
        best_iteration: Option<usize>,
        payload: &Value,
    ) -> Result<GbdtModel> {
        let mut model = GbdtModel::from_xgboost(payload.clone())?;
        if model.objective != objective {
            return Err(Error::ModelInvalid {
                reason: format!(
                    "the document says objective {objective} but its trees were saved with {}",
                    model.objective
                ),
            });
        }
        if features.len() != model.features.len() {
            return Err(Error::ModelInvalid {
                reason: format!(
                    "the document lists {} features but its trees take {}",
                    features.len(),
                    model.features.len()
                ),
            });
        }
        model.algo = algo;
        model.named = true;
        model.features = features;
        model.params = params;
        model.best_iteration = best_iteration;
        Ok(model)
    }

    /// The model as an XGBoost JSON document (the payload of its cdp model
    /// document): what `Booster.save_model("m.json")` writes, with the
    /// feature names (when the model has them) and `best_iteration` in
    /// `attributes`, so Python XGBoost loads it as is.
    pub fn to_xgboost(&self) -> Result<Value> {
        let bytes = self
            .booster
            .encode(ModelFormat::XgboostJson)
            .map_err(boost("writing XGBoost JSON"))?;
        let mut document: Value =
            serde_json::from_slice(&bytes).map_err(|e| Error::ModelInvalid {
                reason: format!("hessboost wrote unreadable XGBoost JSON: {e}"),
            })?;
        if let Some(learner) = document.get_mut("learner").and_then(Value::as_object_mut) {
            if let Some(params) = learner
                .get_mut("learner_model_param")
                .and_then(Value::as_object_mut)
            {
                params.insert("base_score".into(), json!(self.base_score_text));
            }
            if self.named {
                learner.insert("feature_names".into(), json!(self.features));
            }
            if let Some(best) = self.best_iteration {
                let attributes = learner
                    .entry("attributes")
                    .or_insert_with(|| json!({}))
                    .as_object_mut();
                if let Some(attributes) = attributes {
                    attributes.insert("best_iteration".into(), json!(best.to_string()));
                }
            }
        }
        Ok(document)
    }

    /// The hessboost model inside.
    pub fn booster(&self) -> &BoostedModel {
        &self.booster
    }

    /// Trees in the ensemble.
    pub fn n_trees(&self) -> usize {
        self.booster.num_trees()
    }

    /// Boosting rounds kept (one tree each).
    pub fn n_rounds(&self) -> usize {
        self.booster.num_boost_rounds()
    }

    /// The trees flattened for TreeSHAP, built on first use; a model it
    /// cannot explain is refused (again) on every call.
    pub fn explainer(&self) -> Result<&Forest> {
        if let Some(forest) = self.explainer.get() {
            return Ok(forest);
        }
        let forest = Forest::new(&self.booster)?;
        Ok(self.explainer.get_or_init(|| forest))
    }

    /// Map a hessboost refusal of prediction rows to cdp's error: the
    /// first infinite value by row and feature, else the library's reason.
    fn rows_error(&self, rows: &[f32], cause: HessboostError) -> Error {
        match check_finite(&self.features, rows) {
            Err(e) => e,
            Ok(()) => Error::Boost {
                what: "predicting",
                cause,
            },
        }
    }

    fn check_rows(&self, rows: &[f32]) -> Result<usize> {
        let cols = self.features.len();
        if !rows.len().is_multiple_of(cols) {
            return Err(Error::Shape {
                what: "rows (whole rows of the model's features)",
                expected: rows.len().next_multiple_of(cols),
                got: rows.len(),
            });
        }
        Ok(rows.len() / cols)
    }
}

impl Model for GbdtModel {
    fn algo(&self) -> Algo {
        self.algo
    }

    fn objective(&self) -> Objective {
        self.objective
    }

    fn features(&self) -> &[String] {
        &self.features
    }

    fn has_feature_names(&self) -> bool {
        self.named
    }

    fn margin_row(&self, row: &[f32]) -> Result<f32> {
        if row.len() != self.features.len() {
            return Err(Error::FeatureCount {
                expected: self.features.len(),
                got: row.len(),
            });
        }
        let mut out = [0.0f32];
        match self.booster.predict_margin_row_into(row, .., &mut out) {
            Ok(()) => Ok(out[0]),
            Err(e) => Err(self.rows_error(row, e)),
        }
    }

    fn margins(&self, rows: &[f32]) -> Result<Vec<f32>> {
        if self.check_rows(rows)? == 0 {
            return Ok(Vec::new());
        }
        match self.booster.predict_margin_rows(rows, ..) {
            Ok(margins) => Ok(margins.into_vec()),
            Err(e) => Err(self.rows_error(rows, e)),
        }
    }

    fn contributions(&self, rows: &[f32]) -> Result<Contributions> {
        let n = self.check_rows(rows)?;
        let n_features = self.features.len();
        if n == 0 {
            return Ok(Contributions {
                values: Vec::new(),
                n_features,
            });
        }
        check_finite(&self.features, rows)?;
        Ok(Contributions {
            values: self.explainer()?.contributions(rows)?,
            n_features,
        })
    }

    fn importance(&self) -> Vec<FeatureImportance> {
        let weight = self.booster.feature_importance(ImportanceType::Weight);
        let gain = self.booster.feature_importance(ImportanceType::Gain);
        let cover = self.booster.feature_importance(ImportanceType::Cover);
        let total_gain = self.booster.feature_importance(ImportanceType::TotalGain);
        let mut out: Vec<FeatureImportance> = self
            .features
            .iter()
            .enumerate()
            .map(|(i, feature)| FeatureImportance {
                feature: feature.clone(),
                weight: weight.get(&i).map_or(0, |&w| w as u64),
                gain: gain.get(&i).copied().unwrap_or(0.0),
                cover: cover.get(&i).copied().unwrap_or(0.0),
                total_gain: total_gain.get(&i).copied().unwrap_or(0.0),
            })
            .collect();
        if out.iter().all(|f| f.weight == 0) {
            // a model of single-leaf trees: nothing to rank
            return Vec::new();
        }
        out.sort_by(|a, b| {
            b.total_gain
                .total_cmp(&a.total_gain)
                .then_with(|| a.feature.cmp(&b.feature))
        });
        out
    }

    fn payload(&self) -> Result<Value> {
        self.to_xgboost()
    }

    fn params(&self) -> Params {
        self.params.clone()
    }

    fn best_iteration(&self) -> Option<usize> {
        self.best_iteration
    }

    fn validation(&self) -> Option<Value> {
        self.validation.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("x{i}")).collect()
    }

    /// `rows` rows of 4 features, a tenth of `x1` missing; the label is 1
    /// when `x0 + x1` (a missing `x1` counting as large) is large, with
    /// some noise from `x3`.
    fn binary(rows: usize, seed: u64) -> Dataset {
        let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).max(1);
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 1_000_000) as f32 / 1_000_000.0
        };
        let mut values = Vec::with_capacity(rows * 4);
        let mut labels = Vec::with_capacity(rows);
        for _ in 0..rows {
            let x: [f32; 4] = [next(), next(), next(), next()];
            let missing = x[2] < 0.1;
            values.extend([
                x[0],
                if missing { f32::NAN } else { x[1] },
                x[2] * 5.0,
                x[3],
            ]);
            let signal = x[0] + if missing { 1.0 } else { x[1] } + 0.3 * (x[3] - 0.5);
            labels.push(if signal > 1.0 { 1.0 } else { 0.0 });
        }
        Dataset::new(names(4), values, labels).unwrap()
    }

    fn params(pairs: &[&str]) -> Params {
        Params::from_pairs(pairs.iter().copied()).unwrap()
    }

    fn fit(train: &Dataset, valid: Option<&Dataset>, pairs: &[&str]) -> Result<GbdtModel> {
        GbdtModel::fit(train, valid, &params(pairs), &Silent)
    }

    fn accuracy(model: &GbdtModel, data: &Dataset) -> f64 {
        let p = model.predict(data.values()).unwrap();
        let right = p
            .iter()
            .zip(data.labels())
            .filter(|(p, y)| (**p > 0.5) == (**y > 0.5))
            .count();
        right as f64 / data.n_rows() as f64
    }

    #[test]
    fn learns_with_missing_values_and_records_its_parameters() {
        let train = binary(3000, 1);
        let test = binary(1000, 2);
        let model = fit(&train, None, &["num_round=40", "max_depth=4", "nthread=1"]).unwrap();
        assert!(accuracy(&model, &test) > 0.9, "{}", accuracy(&model, &test));
        assert_eq!(model.objective(), Objective::BinaryLogistic);
        assert_eq!(model.n_rounds(), 40);
        let recorded = model.params();
        assert_eq!(recorded.0["objective"], "binary:logistic");
        assert_eq!(recorded.0["eta"], "0.3");
        assert_eq!(recorded.0["max_depth"], "4");
        assert_eq!(recorded.0["nthread"], "1");
        // base_score from the label mean, as XGBoost estimates it
        let mean = train.labels().iter().sum::<f32>() / train.n_rows() as f32;
        let base: f32 = recorded.0["base_score"].parse().unwrap();
        assert!((base - mean).abs() < 1e-4, "{base} vs {mean}");
        // a missing x1 goes where large values go: the positive side
        let missing = model.predict(&[0.6, f32::NAN, 2.0, 0.5]).unwrap()[0];
        let small = model.predict(&[0.6, 0.05, 2.0, 0.5]).unwrap()[0];
        assert!(missing > 0.5 && small < 0.5, "{missing} {small}");
    }

    #[test]
    fn the_objective_follows_the_labels_unless_given() {
        let train = binary(200, 3);
        let reg = Dataset::new(
            names(4),
            train.values().to_vec(),
            train.labels().iter().map(|y| y * 3.0 + 1.5).collect(),
        )
        .unwrap();
        let model = fit(&reg, None, &["num_round=5"]).unwrap();
        assert_eq!(model.objective(), Objective::SquaredError);
        assert!(!model.params().0.contains_key("scale_pos_weight"));
        let model = fit(&train, None, &["num_round=5", "objective=reg:squarederror"]).unwrap();
        assert_eq!(model.objective(), Objective::SquaredError);
        // labels a logistic model cannot take
        let err = fit(&reg, None, &["objective=binary:logistic"]).unwrap_err();
        assert!(err.to_string().contains("[0, 1]"), "{err}");
    }

    #[test]
    fn same_seed_same_model_on_any_thread_count() {
        let train = binary(2000, 4);
        let p = [
            "num_round=20",
            "subsample=0.7",
            "colsample_bytree=0.75",
            "seed=11",
        ];
        let one = fit(&train, None, &[&p[..], &["nthread=1"]].concat()).unwrap();
        let two = fit(&train, None, &[&p[..], &["nthread=2"]].concat()).unwrap();
        let again = fit(&train, None, &[&p[..], &["nthread=2"]].concat()).unwrap();
        let other = fit(&train, None, &[&p[..], &["nthread=2", "seed=12"]].concat()).unwrap();
        let m = |m: &GbdtModel| m.margins(train.values()).unwrap();
        assert_eq!(m(&one), m(&two));
        assert_eq!(m(&two), m(&again));
        assert_ne!(m(&two), m(&other));
    }

    #[test]
    fn early_stopping_keeps_the_best_rounds() {
        let train = binary(1500, 5);
        let valid = binary(500, 6);
        let model = fit(
            &train,
            Some(&valid),
            &[
                "num_round=500",
                "eta=0.5",
                "max_depth=6",
                "early_stopping_rounds=5",
                "eval_metric=logloss",
            ],
        )
        .unwrap();
        let best = model.best_iteration().expect("a best iteration");
        assert_eq!(model.n_rounds(), best + 1);
        assert!(model.n_rounds() < 500);
        let validation = model.validation().unwrap();
        assert_eq!(validation["metric"], "logloss");
        assert!(validation["best_score"].as_f64().unwrap() < 0.4);
        assert!(validation["rounds_run"].as_u64().unwrap() as usize > best + 1);
        assert_eq!(model.params().0["early_stopping_rounds"], "5");
        // the payload holds only the kept rounds, and says which was best
        let payload = model.payload().unwrap();
        assert_eq!(
            payload["learner"]["gradient_booster"]["model"]["trees"]
                .as_array()
                .unwrap()
                .len(),
            best + 1
        );
        assert_eq!(
            payload["learner"]["attributes"]["best_iteration"],
            best.to_string()
        );
        // early stopping without a validation set is refused
        let err = fit(&train, None, &["early_stopping_rounds=5"]).unwrap_err();
        assert!(matches!(err, Error::Param { ref key, .. } if key == "early_stopping_rounds"));
    }

    #[test]
    fn lossguide_growth_limits_leaves() {
        let train = binary(2000, 7);
        let model = fit(
            &train,
            None,
            &[
                "num_round=5",
                "grow_policy=lossguide",
                "max_leaves=4",
                "max_depth=0",
            ],
        )
        .unwrap();
        for tree in model.booster().trees() {
            let leaves = tree.nodes().iter().filter(|n| n.is_leaf()).count();
            assert!(leaves <= 4, "{leaves} leaves");
        }
    }

    #[test]
    fn parameters_are_checked() {
        let train = binary(100, 8);
        let refused = |pairs: &[&str]| fit(&train, None, pairs).unwrap_err();
        assert!(matches!(refused(&["etaa=0.1"]), Error::Param { ref key, .. } if key == "etaa"));
        assert!(matches!(refused(&["eta=fast"]), Error::Param { ref key, .. } if key == "eta"));
        assert!(matches!(refused(&["eta=NaN"]), Error::Param { ref key, .. } if key == "eta"));
        assert!(matches!(refused(&["max_depth=-1"]), Error::Param { .. }));
        assert!(matches!(refused(&["num_round=0"]), Error::Param { .. }));
        assert!(matches!(
            refused(&["objective=multi:softprob"]),
            Error::UnknownObjective { .. }
        ));
        assert!(matches!(refused(&["base_score=1.5"]), Error::Param { .. }));
        assert!(matches!(refused(&["subsample=0"]), Error::Boost { .. }));
        assert!(matches!(
            refused(&["grow_policy=sideways"]),
            Error::Boost { .. }
        ));
        assert!(matches!(refused(&["eval_metric=, ,"]), Error::Param { .. }));
    }

    #[test]
    fn bad_rows_get_clear_errors_never_panics() {
        let train = binary(300, 9);
        let model = fit(&train, None, &["num_round=5"]).unwrap();
        assert!(matches!(
            model.margin_row(&[1.0, 2.0]),
            Err(Error::FeatureCount {
                expected: 4,
                got: 2
            })
        ));
        assert!(matches!(model.margins(&[1.0; 6]), Err(Error::Shape { .. })));
        let err = model
            .margins(&[0.0, 0.0, 0.0, 0.0, 1.0, f32::INFINITY, 0.0, 0.0])
            .unwrap_err();
        assert!(
            matches!(err, Error::BadFeatureValue { row: 1, ref feature, .. } if feature == "x1"),
            "{err}"
        );
        assert!(matches!(
            model.margin_row(&[0.0, f32::NEG_INFINITY, 0.0, 0.0]),
            Err(Error::BadFeatureValue { row: 0, .. })
        ));
        assert!(matches!(
            model.contributions(&[0.0, f32::INFINITY, 0.0, 0.0]),
            Err(Error::BadFeatureValue { .. })
        ));
        assert!(model.margins(&[]).unwrap().is_empty());
        assert_eq!(model.contributions(&[]).unwrap().n_rows(), 0);
        // a validation set of other features
        let other = Dataset::new(names(3), vec![0.0; 3], vec![1.0]).unwrap();
        assert!(matches!(
            fit(&train, Some(&other), &[]),
            Err(Error::Columns { .. })
        ));
        // all rows missing in one feature, a single row, constant labels
        let flat =
            Dataset::new(names(2), vec![f32::NAN, 1.0, f32::NAN, 2.0], vec![1.0, 1.0]).unwrap();
        let model = fit(&flat, None, &["num_round=3"]).unwrap();
        assert!(model.margin_row(&[f32::NAN, 1.5]).unwrap().is_finite());
        assert!(model.importance().is_empty());
    }

    #[test]
    fn contributions_sum_to_the_margin_and_importance_ranks_features() {
        let train = binary(2000, 10);
        let model = fit(&train, None, &["num_round=30", "max_depth=5"]).unwrap();
        let rows = &train.values()[..200 * 4];
        let margins = model.margins(rows).unwrap();
        let contribs = model.contributions(rows).unwrap();
        assert_eq!(contribs.n_rows(), 200);
        for (i, margin) in margins.iter().enumerate() {
            let sum: f32 = contribs.row(i).iter().sum();
            assert!((sum - margin).abs() < 1e-4, "row {i}: {sum} vs {margin}");
            assert_eq!(
                model.margin_row(&rows[i * 4..(i + 1) * 4]).unwrap(),
                *margin
            );
        }
        let importance = model.importance();
        assert_eq!(importance.len(), 4);
        // x0 and x1 carry the signal; x2 (only its missing band) and x3
        // (noise) less
        let top: Vec<&str> = importance[..2].iter().map(|f| f.feature.as_str()).collect();
        assert!(top.contains(&"x0") && top.contains(&"x1"), "{importance:?}");
        for f in &importance {
            if f.weight > 0 {
                assert!(
                    (f.gain * f.weight as f64 - f.total_gain).abs() < 1e-6 * f.total_gain.max(1.0)
                );
                assert!(f.cover > 0.0);
            }
        }
    }
}
