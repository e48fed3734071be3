//! `cdp train --as-of D`: an offer-propensity model from past offers.
//!
//! 1. Labelled offers (`pipelines/models/offer_training.sql`): every offer
//!    whose 30-day outcome is known as of D, labelled 1 when accepted
//!    within 30 days of sending, paired with the feature snapshot of the
//!    latest built day at or before the day before it was sent (never the
//!    day itself or later) and with that snapshot's identity map.
//! 2. Rows: the person's numeric features from that snapshot (every
//!    declared feature that is a number or a flag and not PII) and the
//!    card product's attributes (`pipelines/models/offer_products.sql`).
//! 3. A split by sending time: the oldest offers train, the next validate
//!    (early stopping), the newest test; a sending day is never split.
//! 4. The learner of `--algo` (or an XGBoost model from `--from-xgboost`,
//!    only evaluated here), its test report, and a new version under
//!    `models/offer/<version>/` made current.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use cdp_core::config::OffersConfig;
use cdp_core::progress::Progress;
use cdp_ml::eval::Report;
use cdp_ml::model::format::{self, TrainingInfo};
use cdp_ml::model::{Algo, Dataset, Model, Params};
use cdp_ml::offer::{OfferCounts, OfferMetrics, OfferModel, Split};
use cdp_ml::store::ModelStore;
use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Date32Type, Float64Type};
use serde::Serialize;
use tracing::instrument;

use crate::build::lap;
use crate::error::{Error, Result};
use crate::features::FeatureRegistry;
use crate::query::register_lake;
use crate::session::Engine;
use crate::sql::{Params as SqlParams, render, statements};
use crate::tables::{Access, LayerManifest};

/// The card products as numbers (`model.card_products`,
/// `model.offer_products`).
pub const PRODUCTS_SQL: &str = include_str!("../../../pipelines/models/offer_products.sql");

/// Labelled offers with their point-in-time snapshot.
pub const TRAINING_SQL: &str = include_str!("../../../pipelines/models/offer_training.sql");

/// What `cdp train` is asked beyond the `[offers]` settings.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// The learner; `[offers] algo` when `None`.
    pub algo: Option<Algo>,
    /// Parameters overriding `[offers] params`.
    pub params: Params,
    /// Evaluate and store this XGBoost JSON model instead of fitting one.
    pub from_xgboost: Option<PathBuf>,
    /// When a stored version was fitted on exactly these training rows with
    /// the same learner and parameters, make it current instead of fitting
    /// again (a re-run of a nightly refresh gets the same model version).
    pub reuse: bool,
}

/// What a training run did.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// The as-of date.
    pub as_of: NaiveDate,
    /// The stored version, now current.
    pub version: String,
    /// The algorithm.
    pub algo: Algo,
    /// How labelled offers became rows.
    pub offers: OfferCounts,
    /// The split.
    pub split: Split,
    /// Feature columns.
    pub features: usize,
    /// Test AUC.
    pub test_auc: f64,
    /// Test logloss.
    pub test_logloss: f64,
    /// Boosting rounds kept by early stopping.
    pub best_iteration: Option<usize>,
    /// A hash of the training rows and labels (equal hashes: the same
    /// training set).
    pub data_hash: String,
    /// The readable report (also `models/offer/<version>/summary.txt`).
    pub summary: String,
    /// Seconds per stage.
    pub seconds: BTreeMap<String, f64>,
    /// True when an identical earlier fit was made current instead of
    /// fitting again ([`TrainOptions::reuse`]).
    pub reused: bool,
}

/// The numeric, non-PII declared features a model may read from
/// `silver.features`, in registry order.
pub fn model_features(registry: &FeatureRegistry) -> Vec<String> {
    registry
        .features()
        .filter(|f| {
            (f.ty.is_numeric() || f.ty == crate::features::FeatureType::Bool)
                && !f.tags.iter().any(|t| t == "pii")
        })
        .map(|f| f.name.clone())
        .collect()
}

/// The columns `model.offer_products` adds for the offered card, plus the
/// gap between the person's income band and the card's minimum.
pub const PRODUCT_FEATURES: [&str; 9] = [
    "offer_tier",
    "offer_annual_fee",
    "offer_min_income_band",
    "offer_is_travel",
    "offer_is_cashback",
    "offer_is_dining",
    "offer_is_student",
    "offer_is_premium",
    "income_gap",
];

/// Every column an offer model can be given, customer features first.
pub fn candidate_features(registry: &FeatureRegistry) -> Vec<String> {
    let mut all = model_features(registry);
    all.extend(PRODUCT_FEATURES.iter().map(|s| s.to_string()));
    all
}

/// The SELECT list of `columns` as `DOUBLE`s read from `f` (features) and
/// `p` (products); `income_gap` is computed.
pub fn feature_select(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| match c.as_str() {
            "income_gap" => {
                "CAST(f.income_band - p.offer_min_income_band AS DOUBLE) AS income_gap".to_string()
            }
            c if PRODUCT_FEATURES.contains(&c) => format!("CAST(p.{c} AS DOUBLE) AS {c}"),
            c => format!("CAST(f.{c} AS DOUBLE) AS {c}"),
        })
        .collect::<Vec<_>>()
        .join(",\n       ")
}

/// Registers `model.card_products` and `model.offer_products` as of
/// `as_of` (the `model` schema is created on first use).
pub async fn register_products(engine: &Engine, as_of: NaiveDate) -> Result<()> {
    let catalog = engine
        .context()
        .catalog("datafusion")
        .expect("a session always has its default catalog");
    if catalog.schema("model").is_none() {
        let provider: std::sync::Arc<dyn datafusion::catalog::SchemaProvider> =
            std::sync::Arc::new(datafusion::catalog::MemorySchemaProvider::new());
        catalog
            .register_schema("model", provider)
            .map_err(Error::datafusion("cannot create schema model"))?;
    }
    let params = SqlParams::for_build(engine.calendar(), as_of);
    let rendered = render("offer_products.sql", PRODUCTS_SQL, &params)?;
    for statement in statements(&rendered) {
        let statement = statement.replacen("CREATE VIEW", "CREATE OR REPLACE VIEW", 1);
        run(engine, "offer_products.sql", &statement).await?;
    }
    let products = run(
        engine,
        "offer_products.sql",
        "SELECT count(*) FROM model.card_products",
    )
    .await?;
    if count(&products) == 0 {
        return Err(Error::NoBronze {
            source_name: "card_products".into(),
            lake: engine.lake().uri().to_string(),
        });
    }
    Ok(())
}

/// Plans and runs one statement of `file`.
pub(crate) async fn run(engine: &Engine, file: &str, sql: &str) -> Result<Vec<RecordBatch>> {
    engine
        .context()
        .sql(sql)
        .await
        .map_err(Error::datafusion(format!("{file}: cannot plan")))?
        .collect()
        .await
        .map_err(Error::datafusion(format!("{file}: cannot run")))
}

/// The first column of the first row, as a count.
fn count(batches: &[RecordBatch]) -> i64 {
    batches.iter().find(|b| b.num_rows() > 0).map_or(0, |b| {
        b.column(0)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .value(0)
    })
}

/// The silver snapshots built at or before `as_of`.
async fn snapshots(engine: &Engine, as_of: NaiveDate) -> Result<Vec<NaiveDate>> {
    let manifest = engine
        .lake()
        .read_manifest::<LayerManifest>("silver")
        .await?
        .map(|m| m.body)
        .unwrap_or_default();
    Ok(manifest
        .snapshots
        .range(..=as_of)
        .filter(|(_, s)| s.tables.contains_key("features"))
        .map(|(d, _)| *d)
        .collect())
}

/// Labelled offers as rows of features, oldest sending first.
#[derive(Debug)]
pub struct TrainingRows {
    /// Feature columns.
    pub features: Vec<String>,
    /// Row-major values (`NaN` for missing).
    pub values: Vec<f32>,
    /// 0/1 labels.
    pub labels: Vec<f32>,
    /// Sending day per row.
    pub sent: Vec<NaiveDate>,
    /// How the labelled offers became rows.
    pub counts: OfferCounts,
}

/// Registers `model.labelled_offers` (`pipelines/models/offer_training.sql`)
/// as of `as_of`: every offer whose outcome is known, its label and its
/// point-in-time snapshot. Returns the offers labelled and those without a
/// snapshot in reach.
pub async fn register_labelled_offers(
    engine: &Engine,
    settings: &OffersConfig,
    as_of: NaiveDate,
) -> Result<(u64, u64)> {
    let built = snapshots(engine, as_of).await?;
    if built.is_empty() {
        return Err(Error::Snapshot {
            as_of,
            reason: "no feature snapshot built at or before it; `cdp build --as-of D` for the \
                     days before the offers were sent"
                .into(),
        });
    }
    register_lake(engine, Access::Masked).await?;
    register_products(engine, as_of).await?;
    let mut params = SqlParams::for_build(engine.calendar(), as_of);
    params.set(
        "snapshots",
        built
            .iter()
            .map(|d| format!("SELECT DATE '{d}'"))
            .collect::<Vec<_>>()
            .join(" UNION ALL "),
    );
    params.set(
        "oldest_lag",
        format!("INTERVAL '{} days'", settings.max_feature_age_days + 1),
    );
    let labelled = render("offer_training.sql", TRAINING_SQL, &params)?;
    let labelled = statements(&labelled).join("\n");
    run(
        engine,
        "offer_training.sql",
        &format!("CREATE OR REPLACE VIEW model.labelled_offers AS {labelled}"),
    )
    .await?;

    let totals = run(
        engine,
        "offer_training.sql",
        "SELECT count(*), count(*) FILTER (WHERE snapshot IS NULL) FROM model.labelled_offers",
    )
    .await?;
    let (labelled, without_snapshot) =
        totals
            .iter()
            .find(|b| b.num_rows() > 0)
            .map_or((0, 0), |b| {
                let c = |i: usize| {
                    b.column(i)
                        .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                        .value(0) as u64
                };
                (c(0), c(1))
            });

    Ok((labelled, without_snapshot))
}

/// What `cdp refresh`'s labels stage wrote.
#[derive(Debug, Clone, Serialize)]
pub struct LabelsReport {
    /// The as-of date.
    pub as_of: NaiveDate,
    /// The run that wrote `gold.offer_labels`.
    pub run: String,
    /// Offers whose 30-day outcome is known.
    pub labelled: u64,
    /// Of those, accepted.
    pub accepted: u64,
    /// Of those, without a feature snapshot in reach.
    pub without_snapshot: u64,
}

/// Writes the labelled offers as of `as_of` to `gold.offer_labels`
/// (as_of, offer_event_id, customer_id, unified_id, offer_id, channel, sent_at,
/// sent_date, snapshot, label): what `cdp train` learns from, kept so each
/// night's labels can be checked and compared.
#[instrument(skip_all, fields(as_of = %as_of))]
pub async fn labels(
    engine: &Engine,
    settings: &OffersConfig,
    as_of: NaiveDate,
) -> Result<LabelsReport> {
    let (labelled, without_snapshot) = register_labelled_offers(engine, settings, as_of).await?;
    // one frame for the rows and their shape: no offer may have matured yet
    let query_error = |error| Error::Query {
        error: Box::new(error),
    };
    let frame = engine
        .context()
        .sql(&format!(
            "SELECT DATE '{as_of}' AS as_of, * FROM model.labelled_offers \
             ORDER BY sent_at, offer_event_id"
        ))
        .await
        .map_err(query_error)?;
    let schema = std::sync::Arc::new(frame.schema().as_arrow().clone());
    let mut batches = frame.collect().await.map_err(query_error)?;
    if batches.is_empty() {
        batches.push(RecordBatch::new_empty(schema));
    }
    let accepted = batches
        .iter()
        .map(|b| {
            b.column_by_name("label").map_or(0, |c| {
                c.as_primitive::<datafusion::arrow::datatypes::Int32Type>()
                    .iter()
                    .filter(|v| *v == Some(1))
                    .count() as u64
            })
        })
        .sum();
    let run_id = cdp_core::lake::run_id();
    let files = crate::gold::write_table(engine, "offer_labels", as_of, &run_id, &batches).await?;
    crate::gold::publish(
        engine,
        as_of,
        &run_id,
        &BTreeMap::from([("offer_labels".to_string(), files)]),
    )
    .await?;
    Ok(LabelsReport {
        as_of,
        run: run_id,
        labelled,
        accepted,
        without_snapshot,
    })
}

/// The training rows of `as_of` (see the module docs).
#[instrument(skip_all, fields(as_of = %as_of))]
pub async fn training_rows(
    engine: &Engine,
    settings: &OffersConfig,
    registry: &FeatureRegistry,
    as_of: NaiveDate,
) -> Result<TrainingRows> {
    let (labelled, without_snapshot) = register_labelled_offers(engine, settings, as_of).await?;

    let features = candidate_features(registry);
    let sql = format!(
        "SELECT t.sent_date, CAST(t.label AS DOUBLE) AS label,
       {}
FROM model.labelled_offers t
JOIN silver.features f ON f.as_of = t.snapshot AND f.unified_id = t.unified_id
JOIN model.offer_products p ON p.offer_id = t.offer_id
ORDER BY t.sent_at, t.offer_event_id",
        feature_select(&features)
    );
    let batches = run(engine, "offer training rows", &sql).await?;
    let cols = features.len();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let mut values = Vec::with_capacity(rows * cols);
    let mut labels = Vec::with_capacity(rows);
    let mut sent = Vec::with_capacity(rows);
    for batch in &batches {
        let days = batch.column(0).as_primitive::<Date32Type>();
        let label = batch.column(1).as_primitive::<Float64Type>();
        let columns: Vec<_> = (2..batch.num_columns())
            .map(|c| batch.column(c).as_primitive::<Float64Type>())
            .collect();
        for r in 0..batch.num_rows() {
            sent.push(days.value_as_date(r).unwrap_or_default());
            labels.push(label.value(r) as f32);
            values.extend(columns.iter().map(|c| {
                if c.is_valid(r) {
                    c.value(r) as f32
                } else {
                    f32::NAN
                }
            }));
        }
    }
    let used = labels.len() as u64;
    let accepted = labels.iter().filter(|&&y| y > 0.5).count() as u64;
    Ok(TrainingRows {
        features,
        values,
        labels,
        sent,
        counts: OfferCounts {
            labelled,
            without_snapshot,
            without_features: labelled - without_snapshot - used,
            used,
            accepted,
        },
    })
}

/// Row ranges of the split (rows are in sending order): train, valid,
/// test. Shares are of all rows; a sending day is never split, and each
/// part keeps at least one day.
pub fn split_by_time(
    sent: &[NaiveDate],
    valid_share: f64,
    test_share: f64,
) -> [std::ops::Range<usize>; 3] {
    let n = sent.len();
    // the first row of the day that holds row `at`, or the next day's
    // first row when `at` is past the middle of its day
    let boundary = |at: usize| -> usize {
        let at = at.min(n.saturating_sub(1));
        let day = sent[at];
        let start = sent.partition_point(|d| *d < day);
        let end = sent.partition_point(|d| *d <= day);
        if at - start <= end - at { start } else { end }
    };
    if n == 0 {
        return [0..0, 0..0, 0..0];
    }
    let mut test_from = boundary(((1.0 - test_share) * n as f64) as usize);
    let mut valid_from = boundary(((1.0 - test_share - valid_share) * n as f64) as usize);
    if test_from >= n {
        test_from = sent.partition_point(|d| *d < sent[n - 1]);
    }
    if valid_from >= test_from {
        valid_from = sent.partition_point(|d| *d < sent[test_from.saturating_sub(1)]);
    }
    [0..valid_from, valid_from..test_from, test_from..n]
}

/// A dataset of rows `range` of `rows`.
fn part(rows: &TrainingRows, range: std::ops::Range<usize>) -> Result<Dataset> {
    let cols = rows.features.len();
    Ok(Dataset::new(
        rows.features.clone(),
        rows.values[range.start * cols..range.end * cols].to_vec(),
        rows.labels[range].to_vec(),
    )?)
}

/// Rows of `data` in the column order of `model`'s features.
fn columns_for(model: &dyn Model, data: &Dataset) -> Result<Vec<f32>> {
    let index: Vec<usize> = model
        .features()
        .iter()
        .map(|f| {
            data.features()
                .iter()
                .position(|c| c == f)
                .ok_or_else(|| Error::Column {
                    table: "offer training rows".into(),
                    column: f.clone(),
                    reason: format!(
                        "the model reads it but cdp does not compute it; offer models can read: {}",
                        data.features().join(", ")
                    ),
                })
        })
        .collect::<Result<_>>()?;
    let mut out = Vec::with_capacity(data.n_rows() * index.len());
    for r in 0..data.n_rows() {
        let row = data.row(r);
        out.extend(index.iter().map(|&i| row[i]));
    }
    Ok(out)
}

/// A hash of the rows and labels a model saw.
fn data_hash(rows: &TrainingRows) -> String {
    let mut hash = xxhash_rust::xxh3::Xxh3::new();
    for name in &rows.features {
        hash.update(name.as_bytes());
        hash.update(&[0]);
    }
    for v in &rows.values {
        hash.update(&v.to_le_bytes());
    }
    for v in &rows.labels {
        hash.update(&v.to_le_bytes());
    }
    format!("xxh3-128:{:032x}", hash.digest128())
}

/// The median of each column over the rows of `data` (missing values
/// skipped).
fn medians(data: &Dataset) -> BTreeMap<String, f64> {
    let cols = data.n_features();
    (0..cols)
        .map(|c| {
            let mut v: Vec<f32> = (0..data.n_rows())
                .map(|r| data.row(r)[c])
                .filter(|x| !x.is_nan())
                .collect();
            v.sort_by(f32::total_cmp);
            let median = if v.is_empty() {
                f64::NAN
            } else {
                f64::from(v[v.len() / 2])
            };
            (data.features()[c].clone(), median)
        })
        .filter(|(_, m)| m.is_finite())
        .collect()
}

/// Trains (or imports) an offer model as of `as_of` and makes it the
/// current version.
#[instrument(skip_all, fields(as_of = %as_of))]
pub async fn train(
    engine: &Engine,
    settings: &OffersConfig,
    registry: &FeatureRegistry,
    as_of: NaiveDate,
    options: &TrainOptions,
    progress: &dyn Progress,
) -> Result<TrainReport> {
    let started = Instant::now();
    let mut seconds = BTreeMap::new();
    let mut clock = Instant::now();
    progress.begin(&format!("train as of {as_of}"), 4);
    let rows = training_rows(engine, settings, registry, as_of).await?;
    lap(&mut seconds, "rows", &mut clock);
    progress.advance(1);
    if (rows.labels.len()) < settings.min_rows {
        return Err(Error::TooFewOffers {
            as_of,
            rows: rows.labels.len(),
            needed: settings.min_rows,
            counts: format!(
                "{} labelled, {} without a snapshot in reach, {} without features",
                rows.counts.labelled, rows.counts.without_snapshot, rows.counts.without_features
            ),
        });
    }
    let [train_rows, valid_rows, test_rows] =
        split_by_time(&rows.sent, settings.valid_share, settings.test_share);
    let split = Split {
        train_rows: train_rows.len() as u64,
        valid_rows: valid_rows.len() as u64,
        test_rows: test_rows.len() as u64,
        train_until: train_rows.end.checked_sub(1).map(|i| rows.sent[i]),
        test_from: rows.sent.get(test_rows.start).copied(),
    };
    let train_set = part(&rows, train_rows)?;
    let valid_set = part(&rows, valid_rows)?;
    let test_set = part(&rows, test_rows)?;
    let hash = data_hash(&rows);
    if options.reuse
        && options.from_xgboost.is_none()
        && let Some(stored) = fitted_before(engine, settings, options, &hash).await?
    {
        return reused(stored, as_of, rows.counts, split, hash, started);
    }

    let (algo, model): (Algo, Box<dyn Model>) = match &options.from_xgboost {
        Some(path) => {
            let model = format::load_path(path)?;
            (model.algo(), model)
        }
        None => {
            let (algo, params) = learner_params(settings, options)?;
            let learner = cdp_ml::model::learner(algo)?;
            let model = learner.fit(&train_set, Some(&valid_set), &params)?;
            (algo, model)
        }
    };
    lap(&mut seconds, "fit", &mut clock);
    progress.advance(1);

    let test_p = model.predict(&columns_for(model.as_ref(), &test_set)?)?;
    let test = Report::new(test_set.labels(), &test_p)?;
    let valid = match valid_set.n_rows() {
        0 => None,
        _ => {
            let p = model.predict(&columns_for(model.as_ref(), &valid_set)?)?;
            Report::new(valid_set.labels(), &p).ok()
        }
    };
    let mut importance = model.importance();
    importance.truncate(30);
    let metrics = OfferMetrics {
        as_of,
        offers: rows.counts.clone(),
        split: split.clone(),
        test: test.clone(),
        valid,
        importance,
        feature_medians: medians(&train_set),
    };
    lap(&mut seconds, "evaluate", &mut clock);
    progress.advance(1);

    let training = TrainingInfo {
        rows: split.train_rows,
        valid_rows: Some(split.valid_rows),
        label: Some("accepted within 30 days of sent_at".into()),
        source: Some("bronze.offer_events x silver.features (point in time)".into()),
        data_hash: Some(hash.clone()),
        as_of: Some(as_of),
        seconds: seconds.get("fit").copied(),
    };
    let metrics_json = serde_json::to_value(&metrics).map_err(|e| Error::Column {
        table: "models/offer".into(),
        column: "metrics".into(),
        reason: e.to_string(),
    })?;
    let document = format::to_document(model.as_ref(), Some(training), Some(metrics_json))?;
    let stored = ModelStore::<OfferModel>::new(engine.lake())
        .publish(OfferModel::new(document)?)
        .await?;
    lap(&mut seconds, "store", &mut clock);
    progress.advance(1);
    progress.finish();
    seconds.insert("total".into(), started.elapsed().as_secs_f64());
    Ok(TrainReport {
        as_of,
        version: stored.version.clone(),
        algo,
        offers: rows.counts,
        split,
        features: stored.model.features().len(),
        test_auc: test.auc,
        test_logloss: test.logloss,
        best_iteration: stored.document.best_iteration,
        data_hash: hash,
        summary: stored.summary()?,
        seconds,
        reused: false,
    })
}

/// The learner and its parameters: `--algo` or `[offers] algo`, then
/// `[offers] params` (boosted trees only) overridden by `--param`.
fn learner_params(settings: &OffersConfig, options: &TrainOptions) -> Result<(Algo, Params)> {
    let algo = match options.algo {
        Some(algo) => algo,
        None => parse_algo(&settings.algo)?,
    };
    let mut params = Params(settings.params.clone());
    if algo != Algo::Gbdt {
        // the configured parameters are the boosted trees'
        params = Params::default();
    }
    params.0.extend(options.params.0.clone());
    if algo == Algo::Gbdt {
        params
            .0
            .entry("objective".into())
            .or_insert("binary:logistic".into());
    }
    Ok((algo, params))
}

/// The newest stored offer model fitted on rows of data hash `hash` with
/// the learner and parameters `options` ask for, if any.
async fn fitted_before(
    engine: &Engine,
    settings: &OffersConfig,
    options: &TrainOptions,
    hash: &str,
) -> Result<Option<OfferModel>> {
    let (algo, params) = learner_params(settings, options)?;
    let store = ModelStore::<OfferModel>::new(engine.lake());
    let Some(registry) = store.registry().await? else {
        return Ok(None);
    };
    for info in registry.body.versions.iter().rev() {
        if info.details.get("data_hash").and_then(|h| h.as_str()) != Some(hash) {
            continue;
        }
        let model = store.load(&info.version).await?;
        let same_params = params
            .0
            .iter()
            .all(|(k, v)| model.document.params.0.get(k) == Some(v));
        if model.document.algo == algo && same_params {
            if registry.body.current.as_deref() != Some(info.version.as_str()) {
                store.make_current(&info.version).await?;
            }
            return Ok(Some(model));
        }
    }
    Ok(None)
}

/// The report of a training run that found its model already stored.
fn reused(
    stored: OfferModel,
    as_of: NaiveDate,
    offers: OfferCounts,
    split: Split,
    hash: String,
    started: Instant,
) -> Result<TrainReport> {
    let metrics = stored.metrics()?;
    Ok(TrainReport {
        as_of,
        version: stored.version.clone(),
        algo: stored.document.algo,
        offers,
        split,
        features: stored.model.features().len(),
        test_auc: metrics.test.auc,
        test_logloss: metrics.test.logloss,
        best_iteration: stored.document.best_iteration,
        data_hash: hash,
        summary: stored.summary()?,
        seconds: BTreeMap::from([("total".to_string(), started.elapsed().as_secs_f64())]),
        reused: true,
    })
}

/// `gbdt`, `random-forest` or `logistic`.
pub fn parse_algo(name: &str) -> Result<Algo> {
    match name {
        "gbdt" => Ok(Algo::Gbdt),
        "random-forest" => Ok(Algo::RandomForest),
        "logistic" => Ok(Algo::Logistic),
        other => Err(Error::UnknownAlgo {
            name: other.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(spec: &[(u32, usize)]) -> Vec<NaiveDate> {
        spec.iter()
            .flat_map(|&(d, n)| {
                std::iter::repeat_n(NaiveDate::from_ymd_opt(2026, 1, d).unwrap(), n)
            })
            .collect()
    }

    #[test]
    fn the_split_follows_sending_time_and_never_cuts_a_day() {
        let sent = days(&[(1, 30), (8, 30), (15, 30), (22, 30), (29, 30)]);
        let [train, valid, test] = split_by_time(&sent, 0.2, 0.2);
        assert_eq!((train, valid, test), (0..90, 90..120, 120..150));
        for [a, b] in [[89, 90], [119, 120]] {
            assert_ne!(sent[a], sent[b]);
        }
        // uneven days: boundaries move to the nearer end of the day
        let sent = days(&[(1, 70), (8, 20), (15, 10)]);
        let [train, valid, test] = split_by_time(&sent, 0.15, 0.15);
        assert_eq!(test, 90..100);
        assert_eq!(valid, 70..90);
        assert_eq!(train, 0..70);
    }

    #[test]
    fn two_days_still_give_a_test_set() {
        let sent = days(&[(1, 95), (8, 5)]);
        let [train, valid, test] = split_by_time(&sent, 0.15, 0.15);
        assert_eq!(test, 95..100);
        assert!(train.end <= valid.start && valid.end == 95);
    }
}
