//! `cdp score --as-of D`: every customer × every card offer they are
//! eligible for, scored by the current offer model and explained.
//!
//! 1. Candidates: each person of `silver.features` as of D paired with
//!    each card product of the catalogue whose rules they meet — income
//!    band at least the product's `min_income_band`, and the product not
//!    already held (`silver.customer_360.products`).
//! 2. The current offer model (`models/offer/`, `cdp train`) gives each
//!    pair a probability of acceptance; the person's offers are ranked
//!    (1 = most likely).
//! 3. Reasons: the pair's largest positive contributions (TreeSHAP for
//!    tree models, exact for logistic regression), in words: "high foreign
//!    share in the last 90 days", "travel card".
//! 4. `gold.scores` (as_of, unified_id, offer_id, probability, rank,
//!    reasons, model_version), published into the gold snapshot of D, so
//!    offer lists and serving read one scored snapshot.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use cdp_core::config::OffersConfig;
use cdp_core::progress::Progress;
use cdp_ml::model::{Algo, Model};
use cdp_ml::offer::OfferModel;
use cdp_ml::store::ModelStore;
use chrono::NaiveDate;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Float64Array, Int32Array, ListBuilder, RecordBatch,
    StringArray, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema};
use serde::Serialize;
use tracing::instrument;

use crate::build::lap;
use crate::error::{Error, Result};
use crate::gold;
use crate::query::register_lake;
use crate::session::Engine;
use crate::tables::Access;
use crate::train::{feature_select, register_products, run};

/// The gold table a score run writes.
pub const GOLD_TABLE: &str = "scores";

/// What a score run did.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreReport {
    /// The as-of date.
    pub as_of: NaiveDate,
    /// The run id (names the gold file).
    pub run: String,
    /// The offer model version used.
    pub model_version: String,
    /// Its algorithm.
    pub algo: Algo,
    /// Customers in the feature snapshot.
    pub customers: u64,
    /// Customers with at least one eligible offer.
    pub scored_customers: u64,
    /// Customer × offer pairs scored.
    pub scores: u64,
    /// Scored pairs per offer.
    pub per_offer: BTreeMap<String, u64>,
    /// Mean probability per offer.
    pub mean_probability: BTreeMap<String, f64>,
    /// True when an earlier score run of D was replaced.
    pub replaced: bool,
    /// Seconds per stage.
    pub seconds: BTreeMap<String, f64>,
}

/// Scores every eligible customer × offer pair as of `as_of` with the
/// current offer model and publishes `gold.scores`.
#[instrument(skip_all, fields(as_of = %as_of))]
pub async fn score(
    engine: &Engine,
    settings: &OffersConfig,
    as_of: NaiveDate,
    progress: &dyn Progress,
) -> Result<ScoreReport> {
    let started = Instant::now();
    let mut seconds = BTreeMap::new();
    let mut clock = Instant::now();
    let offer = ModelStore::<OfferModel>::new(engine.lake())
        .current()
        .await?
        .ok_or_else(|| Error::NoOfferModel {
            lake: engine.lake().uri().to_string(),
        })?;
    let metrics = offer.metrics()?;
    let model = offer.model.as_ref();
    register_lake(engine, Access::Masked).await?;
    register_products(engine, as_of).await?;
    let built = run(
        engine,
        "score",
        &format!("SELECT count(*) FROM silver.features WHERE as_of = DATE '{as_of}'"),
    )
    .await?;
    let customers = first_count(&built);
    if customers == 0 {
        return Err(Error::Snapshot {
            as_of,
            reason: format!("not built; run `cdp build --as-of {as_of}` first"),
        });
    }
    let features = model.features().to_vec();
    let sql = format!(
        "SELECT f.unified_id, p.offer_id,
       {}
FROM (SELECT * FROM silver.features WHERE as_of = DATE '{as_of}') f
JOIN (SELECT * FROM silver.customer_360 WHERE as_of = DATE '{as_of}') c
  ON c.unified_id = f.unified_id
CROSS JOIN model.offer_products p
WHERE c.income_band >= p.offer_min_income_band
  AND NOT array_has(COALESCE(c.products, make_array()), p.offer_id)
ORDER BY f.unified_id, p.offer_id",
        feature_select(&features)
    );
    let batches = run(engine, "score candidates", &sql).await?;
    lap(&mut seconds, "candidates", &mut clock);
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    progress.begin(&format!("score as of {as_of}"), total as u64);

    let explain = Explainer::new(model, &metrics.feature_medians, settings.top_reasons);
    let mut ids = StringBuilder::new();
    let mut offers = StringBuilder::new();
    let mut probabilities = Vec::with_capacity(total);
    let mut reasons = ListBuilder::new(StringBuilder::new());
    let cols = features.len();
    for batch in &batches {
        let n = batch.num_rows();
        let id = utf8(batch.column(0), "unified_id")?;
        let id = id.as_string::<i32>();
        let offer_id = utf8(batch.column(1), "offer_id")?;
        let offer_id = offer_id.as_string::<i32>();
        let columns: Vec<_> = (2..batch.num_columns())
            .map(|c| batch.column(c).as_primitive::<Float64Type>())
            .collect();
        let mut rows = Vec::with_capacity(n * cols);
        for r in 0..n {
            rows.extend(columns.iter().map(|c| {
                if c.is_valid(r) {
                    c.value(r) as f32
                } else {
                    f32::NAN
                }
            }));
        }
        let p = model.predict(&rows)?;
        let why = explain.reasons(&rows)?;
        for (r, row_reasons) in why.iter().enumerate() {
            ids.append_value(id.value(r));
            offers.append_value(offer_id.value(r));
            for reason in row_reasons {
                reasons.values().append_value(reason);
            }
            reasons.append(true);
        }
        probabilities.extend(p.iter().map(|&v| f64::from(v)));
        progress.advance(n as u64);
    }
    progress.finish();
    lap(&mut seconds, "predict", &mut clock);

    let ids = ids.finish();
    let offers = offers.finish();
    let ranks = ranks(&ids, &probabilities);
    let mut per_offer: BTreeMap<String, u64> = BTreeMap::new();
    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    for (o, p) in offers.iter().zip(&probabilities) {
        let o = o.unwrap_or_default().to_string();
        *per_offer.entry(o.clone()).or_default() += 1;
        *sums.entry(o).or_default() += p;
    }
    let scored_customers = ranks.iter().filter(|&&r| r == 1).count() as u64;
    let n = probabilities.len();
    let schema = Arc::new(Schema::new(vec![
        Field::new("as_of", DataType::Date32, false),
        Field::new("unified_id", DataType::Utf8, false),
        Field::new("offer_id", DataType::Utf8, false),
        Field::new("probability", DataType::Float64, false),
        Field::new("rank", DataType::Int32, false),
        Field::new(
            "reasons",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            false,
        ),
        Field::new("model_version", DataType::Utf8, false),
    ]));
    let days = (as_of - NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")).num_days();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Date32Array::from(vec![days as i32; n])),
        Arc::new(ids),
        Arc::new(offers),
        Arc::new(Float64Array::from(probabilities)),
        Arc::new(Int32Array::from(ranks)),
        Arc::new(reasons.finish()),
        Arc::new(StringArray::from(vec![offer.version.as_str(); n])),
    ];
    let batch = RecordBatch::try_new(schema, columns).map_err(|e| Error::Column {
        table: "gold.scores".into(),
        column: "*".into(),
        reason: e.to_string(),
    })?;
    let run_id = cdp_core::lake::run_id();
    let written = BTreeMap::from([(
        GOLD_TABLE.to_string(),
        gold::write_table(engine, GOLD_TABLE, as_of, &run_id, &[batch]).await?,
    )]);
    let (_, replaced) = gold::publish(engine, as_of, &run_id, &written).await?;
    lap(&mut seconds, "publish", &mut clock);
    seconds.insert("total".into(), started.elapsed().as_secs_f64());
    Ok(ScoreReport {
        as_of,
        run: run_id,
        model_version: offer.version.clone(),
        algo: offer.document.algo,
        customers,
        scored_customers,
        scores: n as u64,
        mean_probability: sums
            .iter()
            .map(|(o, s)| (o.clone(), s / per_offer[o] as f64))
            .collect(),
        per_offer,
        replaced,
        seconds,
    })
}

/// A string column (Utf8 or Utf8View) as Utf8.
fn utf8(column: &ArrayRef, name: &str) -> Result<ArrayRef> {
    datafusion::arrow::compute::cast(column, &DataType::Utf8).map_err(|e| Error::Column {
        table: "score candidates".into(),
        column: name.into(),
        reason: e.to_string(),
    })
}

/// The first column of the first row, as a count.
fn first_count(batches: &[RecordBatch]) -> u64 {
    batches.iter().find(|b| b.num_rows() > 0).map_or(0, |b| {
        b.column(0)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .value(0) as u64
    })
}

/// Rank of each row among the rows of the same unified_id (rows grouped by
/// id): 1 for the highest probability, ties broken by row order (offer_id).
pub fn ranks(ids: &StringArray, probabilities: &[f64]) -> Vec<i32> {
    let mut out = vec![0i32; probabilities.len()];
    let mut start = 0;
    while start < probabilities.len() {
        let mut end = start + 1;
        while end < probabilities.len() && ids.value(end) == ids.value(start) {
            end += 1;
        }
        let mut order: Vec<usize> = (start..end).collect();
        order.sort_by(|&a, &b| {
            probabilities[b]
                .total_cmp(&probabilities[a])
                .then(a.cmp(&b))
        });
        for (rank, i) in order.into_iter().enumerate() {
            out[i] = rank as i32 + 1;
        }
        start = end;
    }
    out
}

/// Turns a model's contributions into reasons in words; shared by `cdp
/// score` and the server's online scoring, so both explain alike.
pub struct Explainer<'a> {
    model: &'a dyn Model,
    medians: &'a BTreeMap<String, f64>,
    top: usize,
}

impl<'a> Explainer<'a> {
    /// Explains `model`'s rows with up to `top` reasons each; `medians`
    /// (the training medians) tell "high" from "low".
    pub fn new(model: &'a dyn Model, medians: &'a BTreeMap<String, f64>, top: usize) -> Self {
        Explainer {
            model,
            medians,
            top,
        }
    }

    /// The reasons of each row of `rows`: up to `top` features with the
    /// largest positive contributions, in words; none for a model without
    /// contributions.
    pub fn reasons(&self, rows: &[f32]) -> Result<Vec<Vec<String>>> {
        let features = self.model.features();
        let n = rows.len() / features.len().max(1);
        if self.top == 0 {
            return Ok(vec![Vec::new(); n]);
        }
        let contributions = match self.model.contributions(rows) {
            Ok(c) => c,
            // a baseline without contributions, or trees TreeSHAP refuses
            // (categorical splits of an imported model): scores stay
            // unexplained rather than unscored
            Err(cdp_ml::Error::Unsupported { .. } | cdp_ml::Error::Explain { .. }) => {
                return Ok(vec![Vec::new(); n]);
            }
            Err(e) => return Err(e.into()),
        };
        Ok((0..n)
            .map(|r| {
                let c = &contributions.row(r)[..features.len()];
                let row = &rows[r * features.len()..(r + 1) * features.len()];
                let mut order: Vec<usize> = (0..features.len()).filter(|&j| c[j] > 0.0).collect();
                order.sort_by(|&a, &b| c[b].total_cmp(&c[a]));
                order
                    .into_iter()
                    .take(self.top)
                    .map(|j| {
                        reason(
                            &features[j],
                            row[j],
                            self.medians.get(&features[j]).copied(),
                        )
                    })
                    .collect()
            })
            .collect())
    }
}

/// A feature and its value in words, for a product team to show: "high
/// foreign share in the last 90 days", "travel card", "holds credit card".
pub fn reason(feature: &str, value: f32, median: Option<f64>) -> String {
    if value.is_nan() {
        return format!("no {} on record", words(feature));
    }
    if let Some(category) = feature.strip_prefix("offer_is_") {
        return if value > 0.5 {
            format!("{category} card")
        } else {
            format!("not a {category} card")
        };
    }
    if feature == "income_gap" {
        return if value >= 2.0 {
            "income well above the card's minimum".into()
        } else {
            "income near the card's minimum".into()
        };
    }
    if let Some(rest) = feature.strip_prefix("has_") {
        let rest = rest.replace('_', " ");
        return if value > 0.5 {
            format!("holds {rest}")
        } else {
            format!("no {rest}")
        };
    }
    let high = median.is_none_or(|m| f64::from(value) > m);
    let level = if high { "high" } else { "low" };
    format!("{level} {}", words(feature))
}

/// A feature name in words: `foreign_share_90d` → "foreign share in the
/// last 90 days".
pub fn words(feature: &str) -> String {
    let (stem, window) = match feature.rsplit_once('_') {
        Some((stem, w)) if w.ends_with('d') && w[..w.len() - 1].parse::<u32>().is_ok() => {
            (stem, Some(&w[..w.len() - 1]))
        }
        _ => (feature, None),
    };
    let product = crate::train::PRODUCT_FEATURES.contains(&feature);
    let stem = match stem.strip_prefix("offer_") {
        Some(s) if product => format!("card {s}"),
        _ => stem.to_string(),
    };
    let text: Vec<String> = stem
        .split('_')
        .map(|w| match w {
            "txn" => "transaction".to_string(),
            "avg" => "average".to_string(),
            "pos" => "in-store".to_string(),
            "atm" => "ATM".to_string(),
            w => w.to_string(),
        })
        .collect();
    let text = text.join(" ");
    match window {
        Some(days) => format!("{text} in the last {days} days"),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_order_each_persons_offers() {
        let ids = StringArray::from(vec!["U1", "U1", "U1", "U2", "U3", "U3"]);
        let p = [0.1, 0.5, 0.3, 0.2, 0.4, 0.4];
        assert_eq!(ranks(&ids, &p), vec![3, 1, 2, 1, 1, 2]);
    }

    #[test]
    fn reasons_read_like_words() {
        assert_eq!(
            reason("foreign_share_90d", 0.8, Some(0.1)),
            "high foreign share in the last 90 days"
        );
        assert_eq!(
            reason("txn_count_30d", 1.0, Some(12.0)),
            "low transaction count in the last 30 days"
        );
        assert_eq!(reason("offer_is_travel", 1.0, None), "travel card");
        assert_eq!(reason("has_credit_card", 1.0, None), "holds credit card");
        assert_eq!(reason("has_mortgage", 0.0, None), "no mortgage");
        assert_eq!(
            reason("age_years", f32::NAN, None),
            "no age years on record"
        );
        assert_eq!(
            reason("offer_annual_fee", 0.0, Some(360.0)),
            "low card annual fee"
        );
        assert_eq!(
            reason("offer_open_rate_90d", 0.9, Some(0.3)),
            "high offer open rate in the last 90 days"
        );
        assert_eq!(
            reason("income_gap", 4.0, Some(1.0)),
            "income well above the card's minimum"
        );
    }
}
