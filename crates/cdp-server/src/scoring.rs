//! Online offer scoring: a customer's eligible card offers ranked by the
//! current offer model, each with its reasons in words.
//!
//! The same rules and inputs as `cdp score` (and so the same numbers as
//! `gold.scores` for the same snapshot and model): a card is eligible when
//! the customer's income band is at least its minimum and they do not hold
//! it; the model reads the customer's features (from the online store),
//! the card's attributes, and the income gap between the two; reasons are
//! the largest positive TreeSHAP contributions.

use std::collections::{BTreeMap, HashMap};

use cdp_engine::score::Explainer;
use cdp_engine::train::PRODUCT_FEATURES;
use cdp_ml::offer::OfferModel;
use cdp_store::online::Value;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};

use crate::error::{Error, Result};

/// Where one model input comes from.
#[derive(Debug, Clone, Copy)]
enum Input {
    /// The customer's online feature at this index of [`Scorer::online_features`].
    Online(usize),
    /// The card's attribute at this index of [`PRODUCT_FEATURES`].
    Product(usize),
    /// The customer's income band minus the card's minimum.
    IncomeGap,
}

/// A card of the catalogue.
#[derive(Debug, Clone)]
struct Product {
    offer_id: String,
    name: String,
    tier: String,
    category: String,
    min_income_band: f64,
    /// Values of [`PRODUCT_FEATURES`].
    values: Vec<f64>,
}

/// One scored offer.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The card's offer_id.
    pub offer_id: String,
    /// Its name, tier and category.
    pub name: String,
    /// classic, gold, platinum or signature.
    pub tier: String,
    /// travel, cashback, dining, student or premium.
    pub category: String,
    /// Probability of acceptance.
    pub probability: f64,
    /// 1 = most likely for this customer.
    pub rank: i32,
    /// Reasons in words.
    pub reasons: Vec<String>,
}

/// The current offer model with the card catalogue.
#[derive(Debug)]
pub struct Scorer {
    offer: OfferModel,
    medians: BTreeMap<String, f64>,
    products: Vec<Product>,
    inputs: Vec<Input>,
    online: Vec<String>,
    income_band: Option<usize>,
}

impl Scorer {
    /// The model `offer` over the catalogue `products` (the products table
    /// of [`cdp_engine::serving::ServingTables`]).
    pub fn new(offer: OfferModel, products: &RecordBatch) -> Result<Self> {
        let medians = offer.metrics()?.feature_medians;
        let mut online: Vec<String> = Vec::new();
        let mut online_index = |name: &str| match online.iter().position(|f| f == name) {
            Some(i) => i,
            None => {
                online.push(name.to_string());
                online.len() - 1
            }
        };
        let mut inputs = Vec::new();
        let mut income_band = None;
        for feature in offer.model.features() {
            let input = if feature == "income_gap" {
                income_band = Some(online_index("income_band"));
                Input::IncomeGap
            } else if let Some(i) = PRODUCT_FEATURES.iter().position(|p| p == feature) {
                Input::Product(i)
            } else {
                Input::Online(online_index(feature))
            };
            inputs.push(input);
        }
        Ok(Scorer {
            offer,
            medians,
            products: read_products(products)?,
            inputs,
            online,
            income_band,
        })
    }

    /// The offer model version.
    pub fn version(&self) -> &str {
        &self.offer.version
    }

    /// The online features the model reads, in lookup order.
    pub fn online_features(&self) -> &[String] {
        &self.online
    }

    /// Cards in the catalogue.
    pub fn catalogue_len(&self) -> usize {
        self.products.len()
    }

    /// Scores one customer: `values` holds their online values of
    /// [`Self::online_features`] (null when missing or expired);
    /// `income_band` and `held` decide eligibility. Returns the eligible
    /// offers, most likely first, at most `max` (0: all), each with up to
    /// `top` reasons.
    pub fn score(
        &self,
        values: &[&Value],
        income_band: Option<i64>,
        held: &[String],
        top: usize,
        max: usize,
    ) -> Result<Vec<Scored>> {
        let Some(band) = income_band else {
            return Ok(Vec::new());
        };
        let eligible: Vec<&Product> = self
            .products
            .iter()
            .filter(|p| band as f64 >= p.min_income_band && !held.contains(&p.offer_id))
            .collect();
        if eligible.is_empty() {
            return Ok(Vec::new());
        }
        let online: Vec<f64> = values.iter().map(|v| number(v)).collect();
        let mut rows = Vec::with_capacity(eligible.len() * self.inputs.len());
        for product in &eligible {
            rows.extend(self.inputs.iter().map(|input| {
                (match *input {
                    Input::Online(i) => online[i],
                    Input::Product(i) => product.values[i],
                    Input::IncomeGap => {
                        let band = self.income_band.map_or(f64::NAN, |i| online[i]);
                        band - product.min_income_band
                    }
                }) as f32
            }));
        }
        let model = self.offer.model.as_ref();
        let probabilities = model.predict(&rows)?;
        let reasons = Explainer::new(model, &self.medians, top)
            .reasons(&rows)
            .map_err(Error::Engine)?;
        let mut scored: Vec<Scored> = eligible
            .iter()
            .zip(probabilities)
            .zip(reasons)
            .map(|((p, probability), reasons)| Scored {
                offer_id: p.offer_id.clone(),
                name: p.name.clone(),
                tier: p.tier.clone(),
                category: p.category.clone(),
                probability: f64::from(probability),
                rank: 0,
                reasons,
            })
            .collect();
        // most likely first; ties keep offer_id order, as `cdp score` ranks
        scored.sort_by(|a, b| b.probability.total_cmp(&a.probability));
        for (i, s) in scored.iter_mut().enumerate() {
            s.rank = i as i32 + 1;
        }
        if max > 0 {
            scored.truncate(max);
        }
        Ok(scored)
    }
}

/// A feature value as the model reads it: numbers as numbers, booleans as
/// 0/1, anything else (null, expired) missing.
fn number(value: &Value) -> f64 {
    match value {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        _ => f64::NAN,
    }
}

/// The catalogue of the products table.
fn read_products(batch: &RecordBatch) -> Result<Vec<Product>> {
    let column = |name: &str, to: &DataType| {
        let c = batch.column_by_name(name).ok_or_else(|| Error::Column {
            table: "card products",
            column: name.into(),
            reason: "missing".into(),
        })?;
        cast(c, to).map_err(|e| Error::Column {
            table: "card products",
            column: name.into(),
            reason: e.to_string(),
        })
    };
    let text = |name: &str| -> Result<Vec<String>> {
        let c = column(name, &DataType::Utf8)?;
        Ok(c.as_string::<i32>()
            .iter()
            .map(|v| v.unwrap_or_default().to_string())
            .collect())
    };
    let number = |name: &str| -> Result<Vec<f64>> {
        let c = column(name, &DataType::Float64)?;
        let c = c.as_primitive::<Float64Type>();
        Ok((0..c.len())
            .map(|i| if c.is_valid(i) { c.value(i) } else { f64::NAN })
            .collect())
    };
    let ids = text("offer_id")?;
    let names = text("name")?;
    let tiers = text("tier")?;
    let categories = text("category")?;
    let min_band = number("offer_min_income_band")?;
    // income_gap is a product feature computed per customer (Input::IncomeGap)
    let attributes = PRODUCT_FEATURES
        .iter()
        .map(|&f| match f {
            "income_gap" => Ok(vec![f64::NAN; ids.len()]),
            f => number(f),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((0..ids.len())
        .map(|i| Product {
            offer_id: ids[i].clone(),
            name: names[i].clone(),
            tier: tiers[i].clone(),
            category: categories[i].clone(),
            min_income_band: min_band[i],
            values: attributes.iter().map(|a| a[i]).collect(),
        })
        .collect())
}

/// The nightly `gold.scores` of the served date: what `cdp score` computed
/// with the same rules, model and reasons, looked up instead of recomputed
/// when its model version is the one being served.
#[derive(Debug)]
pub struct Precomputed {
    model_version: String,
    rows: HashMap<Box<str>, std::ops::Range<usize>>,
    offer_id: Vec<String>,
    probability: Vec<f64>,
    reasons: Vec<Vec<String>>,
    /// The most reasons any score keeps: the `top_reasons` it was run with.
    max_reasons: usize,
}

impl Precomputed {
    /// Indexes the scores table of [`cdp_engine::serving::ServingTables`]
    /// (grouped by unified_id, in rank order).
    pub fn new(batch: &RecordBatch) -> Result<Self> {
        let column = |name: &str, to: &DataType| {
            let c = batch.column_by_name(name).ok_or_else(|| Error::Column {
                table: "gold.scores",
                column: name.into(),
                reason: "missing".into(),
            })?;
            cast(c, to).map_err(|e| Error::Column {
                table: "gold.scores",
                column: name.into(),
                reason: e.to_string(),
            })
        };
        let ids = column("unified_id", &DataType::Utf8)?;
        let ids = ids.as_string::<i32>();
        let offers = column("offer_id", &DataType::Utf8)?;
        let probabilities = column("probability", &DataType::Float64)?;
        let versions = column("model_version", &DataType::Utf8)?;
        let item = datafusion::arrow::datatypes::Field::new("item", DataType::Utf8, true);
        let reasons = column("reasons", &DataType::List(std::sync::Arc::new(item)))?;
        let reasons = reasons.as_list::<i32>();
        let mut rows: HashMap<Box<str>, std::ops::Range<usize>> = HashMap::new();
        for i in 0..ids.len() {
            rows.entry(ids.value(i).into())
                .and_modify(|r| r.end = i + 1)
                .or_insert(i..i + 1);
        }
        let reasons: Vec<Vec<String>> = (0..reasons.len())
            .map(|i| {
                let list = reasons.value(i);
                list.as_string::<i32>()
                    .iter()
                    .flatten()
                    .map(str::to_string)
                    .collect()
            })
            .collect();
        Ok(Precomputed {
            max_reasons: reasons.iter().map(Vec::len).max().unwrap_or(0),
            model_version: versions
                .as_string::<i32>()
                .iter()
                .next()
                .flatten()
                .unwrap_or_default()
                .to_string(),
            rows,
            offer_id: offers
                .as_string::<i32>()
                .iter()
                .map(|v| v.unwrap_or_default().to_string())
                .collect(),
            probability: probabilities
                .as_primitive::<Float64Type>()
                .iter()
                .map(|v| v.unwrap_or(f64::NAN))
                .collect(),
            reasons,
        })
    }

    /// The model version the scores were computed with.
    pub fn model_version(&self) -> &str {
        &self.model_version
    }
}

impl Scorer {
    /// The offers of `unified_id` from `precomputed`, as [`Scorer::score`]
    /// would compute them: at most `max` (0: all), `top` reasons each.
    /// `None` when `precomputed` was made with another model, or keeps
    /// fewer reasons than asked for.
    pub fn lookup(
        &self,
        precomputed: &Precomputed,
        unified_id: &str,
        top: usize,
        max: usize,
    ) -> Option<Vec<Scored>> {
        if precomputed.model_version != self.offer.version || top > precomputed.max_reasons {
            return None;
        }
        let Some(range) = precomputed.rows.get(unified_id) else {
            return Some(Vec::new());
        };
        let take = if max == 0 {
            range.len()
        } else {
            max.min(range.len())
        };
        range
            .clone()
            .take(take)
            .enumerate()
            .map(|(rank, i)| {
                let offer_id = &precomputed.offer_id[i];
                let product = self.products.iter().find(|p| &p.offer_id == offer_id)?;
                Some(Scored {
                    offer_id: offer_id.clone(),
                    name: product.name.clone(),
                    tier: product.tier.clone(),
                    category: product.category.clone(),
                    probability: precomputed.probability[i],
                    rank: rank as i32 + 1,
                    reasons: precomputed.reasons[i].iter().take(top).cloned().collect(),
                })
            })
            .collect()
    }
}
