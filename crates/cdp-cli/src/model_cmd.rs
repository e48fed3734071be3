//! `cdp model fit|predict`: the gradient-boosted-tree learner on any CSV or
//! Parquet table, and any table scored with a cdp model or an XGBoost JSON
//! model file. Tables are read and written by `cdp_engine::frame`, models
//! fitted and loaded by `cdp_ml::model`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, bail};
use cdp_core::progress::Progress;
use cdp_engine::frame::{self, Table};
use cdp_ml::model::format::{self, TrainingInfo};
use cdp_ml::model::{Algo, Dataset, Model, Params, learner};
use serde_json::{Value, json};

use crate::progress::Bars;
use crate::{Context, print_json};

pub const EXAMPLES: &str = "\
Examples:
  cdp model fit --train train.csv --label accepted --out models/propensity
  cdp model predict --model models/propensity --input customers.parquet --out scores.parquet --explain
  cdp model predict --model xgb_model.json --input customers.csv --out scores.csv --keep customer_id

fit trains cdp's gradient-boosted trees (XGBoost's hist learner, with
XGBoost's parameter names) on a table; predict scores a table with a model
cdp fitted or one Python XGBoost saved with Booster.save_model(\"m.json\").
See `cdp model fit --help` and `cdp model predict --help`.";

pub const FIT_EXAMPLES: &str = "\
Examples:
  cdp model fit --train train.csv --label y --out models/m1
  cdp model fit --train train.parquet --valid valid.parquet --label y --out models/m2 \\
      --param eta=0.1 --param max_depth=6 --param num_round=500 --param early_stopping_rounds=20
  cdp model fit --train offers.csv --label accepted --exclude customer_id --out models/m3 --json

The table is CSV (header row; `,` `;` tab or `|` separated; empty, NA or NaN
cells are missing) or Parquet, by extension. Every column but the label and
the --exclude ones is a feature and must be numeric (integers, decimals,
floats or booleans; missing values are learnt, as in XGBoost): encode text
columns as numbers first, or --exclude them. The label must be numeric: 0/1
for binary:logistic.

Parameters (--param KEY=VALUE, XGBoost's names; an unknown key is refused):
  objective           binary:logistic (default when every label is 0 or 1)
                      or reg:squarederror (default otherwise)
  num_round           boosting rounds (100)
  eta                 learning rate (0.3)
  max_depth           deepest tree (6; 0 = no limit)
  grow_policy         depthwise (default) or lossguide, with max_leaves (0 = no limit)
  max_bin             histogram bins per feature (256)
  lambda, alpha       L2 and L1 regularisation of leaf weights (1, 0)
  gamma               least loss reduction of a split (0)
  min_child_weight    least hessian sum in a child (1)
  subsample           share of rows per round (1)
  colsample_bytree    share of features per tree (1)
  scale_pos_weight    weight of positive rows (1; binary:logistic)
  base_score          starting prediction (default: from the labels)
  early_stopping_rounds  stop when the --valid metric has not improved for N
                      rounds; the model keeps the rounds up to the best one
  eval_metric         --valid metric(s), comma-separated (logloss / rmse)
  seed                sampling seed (0): same data and seed, same model
  nthread             threads (default: every core)
  tree_method         hist (default), approx or exact

DIR gets model.json (cdp's model document: features, parameters, training
rows and data hash, the trees) and xgboost.json (the same trees for Python:
xgboost.Booster(model_file=\"DIR/xgboost.json\")).
--json prints {\"out\", \"model\", \"algo\", \"objective\", \"rows\", \"valid_rows\",
\"features\", \"rounds\", \"best_iteration\", \"params\", \"validation\",
\"train_seconds\", \"seconds\": {\"read\", \"train\", \"save\", \"total\"},
\"data_hash\", \"importance\": [top 10 by total gain]}.";

pub const PREDICT_EXAMPLES: &str = "\
Examples:
  cdp model predict --model models/m1 --input test.csv --out pred.csv
  cdp model predict --model models/m1/model.json --input test.parquet --out pred.parquet --margin
  cdp model predict --model xgb.json --input rows.csv --out why.csv --explain --keep customer_id

--model is a directory `cdp model fit` wrote, its model.json, or an XGBoost
JSON model (Booster.save_model(\"m.json\"), XGBoost 2.x or 3.x; objectives
binary:logistic and reg:squarederror). The model's features are read from
the input's columns of the same names (other columns are ignored); an
XGBoost model saved without feature names reads its features by position:
then the input must hold exactly its feature columns, in order, besides the
--keep columns (or name them f0, f1, …). Feature columns must be numeric;
empty, NA or NaN cells are missing values.

The output (CSV or Parquet, by extension) holds the --keep columns, then
`prediction` (the probability for binary:logistic, or the raw margin with
--margin), then with --explain one `contrib_<feature>` column per feature
and `contrib_bias` (TreeSHAP: they add up to the margin), row for row.
--json prints {\"model\", \"algo\", \"objective\", \"rows\", \"features\",
\"matched_by\", \"output\", \"prediction\", \"explain\", \"score_seconds\",
\"seconds\": {\"load\", \"read\", \"score\", \"explain\", \"write\", \"total\"}}.";

/// `cdp model …`.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Train gradient-boosted trees on a CSV or Parquet table.
    #[command(after_help = FIT_EXAMPLES)]
    Fit(FitArgs),
    /// Score a table with a cdp model or an XGBoost JSON model.
    #[command(after_help = PREDICT_EXAMPLES)]
    Predict(PredictArgs),
}

#[derive(Debug, clap::Args)]
pub struct FitArgs {
    /// The training table (.csv or .parquet).
    #[arg(long, value_name = "FILE")]
    train: PathBuf,
    /// The label column.
    #[arg(long, value_name = "COL")]
    label: String,
    /// A validation table with the same columns: scored every round, and
    /// what early_stopping_rounds watches.
    #[arg(long, value_name = "FILE")]
    valid: Option<PathBuf>,
    /// A learner parameter, XGBoost's name (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// A column that is not a feature, e.g. an id (repeatable).
    #[arg(long, value_name = "COL")]
    exclude: Vec<String>,
    /// The model directory to write (made when missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct PredictArgs {
    /// A cdp model directory or model.json, or an XGBoost JSON model file.
    #[arg(long, value_name = "DIR_OR_XGBOOST_JSON")]
    model: PathBuf,
    /// The table to score (.csv or .parquet).
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// The predictions table to write (.csv or .parquet).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Write raw margins (log-odds for binary:logistic) instead of probabilities.
    #[arg(long)]
    margin: bool,
    /// Also write each feature's TreeSHAP contribution and the bias.
    #[arg(long)]
    explain: bool,
    /// An input column to copy into the output, e.g. an id (repeatable).
    #[arg(long, value_name = "COL")]
    keep: Vec<String>,
}

pub fn run(ctx: &Context, action: Action) -> anyhow::Result<()> {
    match action {
        Action::Fit(args) => fit(ctx, args),
        Action::Predict(args) => predict(ctx, args),
    }
}

/// Seconds since `start`, to the millisecond.
fn secs(start: Instant) -> f64 {
    (start.elapsed().as_secs_f64() * 1000.0).round() / 1000.0
}

fn read(path: &Path, bars: &Bars, what: &str) -> anyhow::Result<Table> {
    bars.begin(what, 0);
    let table = frame::read_table(path);
    bars.finish();
    let table = table?;
    if table.n_rows() == 0 {
        bail!("{} has no rows", path.display());
    }
    Ok(table)
}

/// The feature columns of a training table: every column but the label and
/// the excluded ones, all numeric.
fn feature_columns(
    table: &Table,
    path: &Path,
    label: &str,
    exclude: &[String],
) -> anyhow::Result<Vec<String>> {
    let names = table.column_names();
    if !names.iter().any(|n| n == label) {
        bail!(
            "{} has no label column {label:?} (its columns: {})",
            path.display(),
            names.join(", ")
        );
    }
    let unknown: Vec<&String> = exclude.iter().filter(|e| !names.contains(e)).collect();
    if !unknown.is_empty() {
        bail!("--exclude: {} has no column {unknown:?}", path.display());
    }
    let features: Vec<String> = names
        .into_iter()
        .filter(|n| n != label && !exclude.contains(n))
        .collect();
    if features.is_empty() {
        bail!(
            "{} has no feature columns besides the label {label:?}",
            path.display()
        );
    }
    let text: Vec<String> = features
        .iter()
        .filter_map(|n| {
            let field = table.schema.field_with_name(n).ok()?;
            (!frame::is_numeric(field.data_type())).then(|| format!("{n} ({})", field.data_type()))
        })
        .collect();
    if !text.is_empty() {
        bail!(
            "{} has columns that are not numbers: {}; models read numeric columns only: \
             encode them as numbers or leave them out with --exclude",
            path.display(),
            text.join(", ")
        );
    }
    Ok(features)
}

fn dataset(
    table: &Table,
    path: &Path,
    features: &[String],
    label: &str,
) -> anyhow::Result<Dataset> {
    let (values, _) = frame::batches_to_matrix(&table.batches, features)
        .with_context(|| format!("reading {}", path.display()))?;
    let labels = frame::column_to_f32(&table.batches, label)
        .with_context(|| format!("reading the label of {}", path.display()))?;
    Dataset::new(features.to_vec(), values, labels).with_context(|| format!("{}", path.display()))
}

fn fit(ctx: &Context, args: FitArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let bars = Bars::new(ctx.json);
    let params = Params::from_pairs(&args.params)?;

    let clock = Instant::now();
    let table = read(&args.train, &bars, "reading")?;
    let features = feature_columns(&table, &args.train, &args.label, &args.exclude)?;
    let train = dataset(&table, &args.train, &features, &args.label)?;
    drop(table);
    let valid = match &args.valid {
        None => None,
        Some(path) => {
            let table = read(path, &bars, "reading")?;
            let missing: Vec<&String> = features
                .iter()
                .chain(std::iter::once(&args.label))
                .filter(|f| table.schema.index_of(f).is_err())
                .collect();
            if !missing.is_empty() {
                bail!(
                    "the validation table {} lacks columns of the training table: {missing:?}",
                    path.display()
                );
            }
            Some(dataset(&table, path, &features, &args.label)?)
        }
    };
    let read_seconds = secs(clock);

    let clock = Instant::now();
    let model = learner(Algo::Gbdt)?.fit_with_progress(&train, valid.as_ref(), &params, &bars)?;
    let train_seconds = secs(clock);

    let clock = Instant::now();
    let training = TrainingInfo {
        rows: train.n_rows() as u64,
        valid_rows: valid.as_ref().map(|v| v.n_rows() as u64),
        label: Some(args.label.clone()),
        source: Some(args.train.display().to_string()),
        data_hash: Some(format::data_hash(&train)),
        as_of: None,
        seconds: Some(train_seconds),
    };
    let doc = format::to_document(model.as_ref(), Some(training), None)?;
    let path = format::save_dir(&args.out, &doc)?;
    let save_seconds = secs(clock);

    let rounds = doc.payload["learner"]["gradient_booster"]["model"]["trees"]
        .as_array()
        .map(Vec::len);
    let importance = model.importance();
    let report = json!({
        "out": args.out,
        "model": path,
        "algo": model.algo(),
        "objective": model.objective(),
        "learner": doc.learner,
        "rows": train.n_rows(),
        "valid_rows": valid.as_ref().map(Dataset::n_rows),
        "features": features.len(),
        "rounds": rounds,
        "best_iteration": model.best_iteration(),
        "params": model.params(),
        "validation": model.validation(),
        "train_seconds": train_seconds,
        "seconds": {
            "read": read_seconds,
            "train": train_seconds,
            "save": save_seconds,
            "total": secs(started),
        },
        "data_hash": doc.training.as_ref().and_then(|t| t.data_hash.clone()),
        "importance": importance.iter().take(10).collect::<Vec<_>>(),
    });
    if ctx.json {
        return print_json(&report);
    }
    println!(
        "fitted {} ({}) on {} rows x {} features in {:.2} s: {} rounds{}",
        model.algo(),
        model.objective(),
        train.n_rows(),
        features.len(),
        train_seconds,
        rounds.map_or("?".to_string(), |r| r.to_string()),
        match model.best_iteration() {
            Some(best) => format!(" (best iteration {best})"),
            None => String::new(),
        }
    );
    if let Some(v) = model.validation()
        && let (Some(metric), Some(score)) = (v["metric"].as_str(), v["best_score"].as_f64())
    {
        println!(
            "  validation {metric}: {score:.5} on {} rows",
            valid.as_ref().map_or(0, Dataset::n_rows)
        );
    }
    println!("  top features by total gain:");
    for f in importance.iter().take(5).filter(|f| f.weight > 0) {
        println!(
            "    {:<32} gain {:>12.3}  splits {:>6}",
            f.feature, f.total_gain, f.weight
        );
    }
    println!("  model: {}", path.display());
    Ok(())
}

/// How the input's columns are matched to the model's features.
fn match_features(
    model: &dyn Model,
    table: &Table,
    path: &Path,
    keep: &[String],
) -> anyhow::Result<(Vec<String>, &'static str)> {
    let names = table.column_names();
    let present: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    let wanted = model.features();
    let all_named = wanted.iter().all(|f| present.contains(f.as_str()));
    if model.has_feature_names() || all_named {
        if !all_named {
            let missing: Vec<&str> = wanted
                .iter()
                .map(String::as_str)
                .filter(|f| !present.contains(f))
                .collect();
            bail!(
                "{} lacks {} of the model's {} feature columns: {}",
                path.display(),
                missing.len(),
                wanted.len(),
                missing.join(", ")
            );
        }
        return Ok((wanted.to_vec(), "name"));
    }
    let candidates: Vec<String> = names.into_iter().filter(|n| !keep.contains(n)).collect();
    if candidates.len() != wanted.len() {
        bail!(
            "the model's {} features have no names (an XGBoost file saved without feature_names), \
             so they are read by position: {} must hold exactly {} feature columns besides the \
             --keep columns, but has {}",
            wanted.len(),
            path.display(),
            wanted.len(),
            candidates.len()
        );
    }
    Ok((candidates, "position"))
}

fn predict(ctx: &Context, args: PredictArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let bars = Bars::new(ctx.json);
    // Refuse an output name no table writer takes before any work.
    frame::TableFormat::of(&args.out)?;

    let clock = Instant::now();
    let model = format::load_path(&args.model)?;
    let load_seconds = secs(clock);

    let clock = Instant::now();
    let table = read(&args.input, &bars, "reading")?;
    let unknown: Vec<&String> = args
        .keep
        .iter()
        .filter(|k| table.schema.index_of(k).is_err())
        .collect();
    if !unknown.is_empty() {
        bail!("--keep: {} has no column {unknown:?}", args.input.display());
    }
    let (columns, matched_by) = match_features(model.as_ref(), &table, &args.input, &args.keep)?;
    let (rows, n) = frame::batches_to_matrix(&table.batches, &columns)
        .with_context(|| format!("reading {}", args.input.display()))?;
    let keep = args
        .keep
        .iter()
        .map(|k| Ok((k.clone(), table.column(k)?.context("a --keep column")?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    drop(table);
    let read_seconds = secs(clock);

    let width = columns.len();
    let chunk = 65_536 * width;
    let clock = Instant::now();
    bars.begin("scoring", n as u64);
    let mut prediction = Vec::with_capacity(n);
    for part in rows.chunks(chunk) {
        let scored = if args.margin {
            model.margins(part)
        } else {
            model.predict(part)
        };
        prediction.extend(scored?);
        bars.advance((part.len() / width) as u64);
    }
    bars.finish();
    let score_seconds = secs(clock);

    let clock = Instant::now();
    let contributions = if args.explain {
        bars.begin("explaining", n as u64);
        let mut values = Vec::with_capacity(n * (width + 1));
        for part in rows.chunks(chunk) {
            values.extend(model.contributions(part)?.values);
            bars.advance((part.len() / width) as u64);
        }
        bars.finish();
        Some(values)
    } else {
        None
    };
    let explain_seconds = secs(clock);
    drop(rows);

    let clock = Instant::now();
    let batch = frame::predictions_batch(
        keep,
        prediction,
        contributions.map(|values| (model.features(), values)),
    )?;
    frame::write_table(&args.out, &batch)?;
    let write_seconds = secs(clock);

    let kind = if args.margin || model.objective() == cdp_ml::model::Objective::SquaredError {
        "margin"
    } else {
        "probability"
    };
    let report: Value = json!({
        "model": args.model,
        "algo": model.algo(),
        "objective": model.objective(),
        "rows": n,
        "features": width,
        "matched_by": matched_by,
        "output": args.out,
        "prediction": kind,
        "explain": args.explain,
        "score_seconds": score_seconds,
        "seconds": {
            "load": load_seconds,
            "read": read_seconds,
            "score": score_seconds,
            "explain": explain_seconds,
            "write": write_seconds,
            "total": secs(started),
        },
    });
    if ctx.json {
        return print_json(&report);
    }
    println!(
        "scored {n} rows with {} {} model ({} features matched by {matched_by}) in {:.3} s{} -> {}",
        model.algo(),
        model.objective(),
        width,
        score_seconds,
        if args.explain {
            format!(", explained in {explain_seconds:.3} s")
        } else {
            String::new()
        },
        args.out.display()
    );
    Ok(())
}
