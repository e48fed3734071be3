//! Offer-propensity models as the lake keeps them.
//!
//! An [`OfferModel`] is a [`ModelDocument`] (any algorithm behind the
//! [`Model`] trait, an imported XGBoost model included) whose `metrics`
//! hold an [`OfferMetrics`]: how the training set was made, the test and
//! validation reports, global importance and the training medians that
//! turn contributions into words ("high foreign share in the last 90
//! days"). Versions live under `models/offer/<version>/` through the
//! [`ModelStore`](crate::store::ModelStore): `model.json` (loadable by
//! `cdp model predict --model`), `summary.txt`, a readable report, and for
//! tree models `xgboost.json`, the trees as Python XGBoost loads them.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::Arc;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::eval::Report;
use crate::model::format::{self, ModelDocument};
use crate::model::{Algo, FeatureImportance, Model};
use crate::store::{VersionInfo, Versioned};

/// How the labelled offers were turned into a training set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OfferCounts {
    /// Offers whose 30-day outcome was known as of the training date.
    pub labelled: u64,
    /// Of them, offers with no feature snapshot in reach (none built at or
    /// before the day before sending, within the allowed age).
    pub without_snapshot: u64,
    /// Of them, offers whose customer_id or person is missing from that
    /// snapshot (a customer not yet known the day before).
    pub without_features: u64,
    /// Offers the model learnt from and was tested on.
    pub used: u64,
    /// Accepted offers among them.
    pub accepted: u64,
}

/// The time-based split: older offers train, the newest test.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Split {
    /// Training rows (offers sent up to `train_until`).
    pub train_rows: u64,
    /// Validation rows (early stopping), sent after `train_until`.
    pub valid_rows: u64,
    /// Test rows, sent on or after `test_from`.
    pub test_rows: u64,
    /// The last sending day in the training rows.
    pub train_until: Option<NaiveDate>,
    /// The first sending day in the test rows.
    pub test_from: Option<NaiveDate>,
}

/// What an offer model's document keeps in its `metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfferMetrics {
    /// The as-of date of the training data.
    pub as_of: NaiveDate,
    /// How the labelled offers became rows.
    pub offers: OfferCounts,
    /// The time-based split.
    pub split: Split,
    /// Scores of the newest offers, never seen in training.
    pub test: Report,
    /// Scores of the validation offers (early stopping).
    pub valid: Option<Report>,
    /// Global importance (tree models), most total gain first.
    pub importance: Vec<FeatureImportance>,
    /// Median of each feature over the training rows: a reason says "high"
    /// above it and "low" below.
    pub feature_medians: BTreeMap<String, f64>,
}

/// A stored offer model: its document and the model rebuilt from it.
#[derive(Debug, Clone)]
pub struct OfferModel {
    /// `v1`, `v2`, … (empty before it is stored).
    pub version: String,
    /// The document (`model.json`).
    pub document: ModelDocument,
    /// The model, ready to score.
    pub model: Arc<dyn Model>,
}

impl OfferModel {
    /// An offer model from its document; the document's metrics must be an
    /// [`OfferMetrics`].
    pub fn new(document: ModelDocument) -> Result<Self> {
        let model = Arc::from(format::from_document(&document)?);
        let offer = OfferModel {
            version: String::new(),
            document,
            model,
        };
        offer.metrics()?;
        Ok(offer)
    }

    /// The metrics the training run recorded.
    pub fn metrics(&self) -> Result<OfferMetrics> {
        let value = self
            .document
            .metrics
            .clone()
            .ok_or_else(|| Error::ModelFormat {
                path: format!("models/offer/{}", self.version),
                reason: "no metrics: not an offer model written by `cdp train`".into(),
            })?;
        serde_json::from_value(value).map_err(|e| Error::ModelFormat {
            path: format!("models/offer/{}", self.version),
            reason: format!("metrics: {e}"),
        })
    }

    /// The readable report written beside the model as `summary.txt`.
    pub fn summary(&self) -> Result<String> {
        let m = self.metrics()?;
        let doc = &self.document;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Offer model {} ({} via {}, {}), trained as of {}",
            if self.version.is_empty() {
                "(unstored)"
            } else {
                &self.version
            },
            doc.algo,
            doc.learner,
            doc.objective,
            m.as_of
        );
        let _ = writeln!(
            out,
            "Offers: {} labelled, {} without a snapshot in reach, {} without features, {} used ({} accepted)",
            m.offers.labelled,
            m.offers.without_snapshot,
            m.offers.without_features,
            m.offers.used,
            m.offers.accepted
        );
        let day = |d: Option<NaiveDate>| d.map_or("-".to_string(), |d| d.to_string());
        let _ = writeln!(
            out,
            "Split by sending time: {} train (sent up to {}), {} validation, {} test (sent from {})",
            m.split.train_rows,
            day(m.split.train_until),
            m.split.valid_rows,
            m.split.test_rows,
            day(m.split.test_from)
        );
        if let Some(best) = doc.best_iteration {
            let _ = writeln!(out, "Early stopping kept {} rounds", best + 1);
        }
        let _ = writeln!(out, "\nTest set (newest offers)\n{}", m.test);
        if let Some(valid) = &m.valid {
            let _ = writeln!(out, "Validation set\n{valid}");
        }
        if !m.importance.is_empty() {
            let _ = writeln!(out, "Most important features (total gain)");
            for f in m.importance.iter().take(15) {
                let _ = writeln!(
                    out,
                    "  {:<32} gain {:>10.2}  cover {:>10.2}  splits {:>5}",
                    f.feature, f.total_gain, f.cover, f.weight
                );
            }
        }
        Ok(out)
    }
}

impl fmt::Display for OfferModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary().map_err(|_| fmt::Error)?)
    }
}

impl Versioned for OfferModel {
    const KIND: &'static str = "offer";

    fn set_version(&mut self, version: &str) {
        self.version = version.to_string();
    }

    fn model_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(&self.document).map_err(|source| Error::ModelEncode {
            version: self.version.clone(),
            source,
        })
    }

    fn other_files(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let mut files = vec![("summary.txt".into(), self.summary()?.into_bytes())];
        if matches!(self.document.algo, Algo::Gbdt | Algo::Xgboost) {
            // the trees alone, as Python XGBoost loads them
            let trees = serde_json::to_vec_pretty(&self.document.payload).map_err(|source| {
                Error::ModelEncode {
                    version: self.version.clone(),
                    source,
                }
            })?;
            files.push((format::XGBOOST_FILE.into(), trees));
        }
        Ok(files)
    }

    fn from_model_json(bytes: &[u8], origin: &str) -> Result<Self> {
        let document = format::read_document(bytes, origin)?;
        let mut offer = OfferModel::new(document)?;
        // `models/offer/<version>/model.json`
        offer.version = origin.rsplit('/').nth(1).unwrap_or_default().to_string();
        Ok(offer)
    }

    fn info(&self) -> VersionInfo {
        let metrics = self.metrics().ok();
        let training = self.document.training.as_ref();
        VersionInfo {
            created_at: self.document.created_at,
            fitted_on: metrics.as_ref().map(|m| m.as_of),
            rows: training.map_or(0, |t| t.rows as usize),
            details: BTreeMap::from([
                ("algo".into(), self.document.algo.name().into()),
                (
                    "test_auc".into(),
                    metrics.map_or(serde_json::Value::Null, |m| m.test.auc.into()),
                ),
                (
                    "data_hash".into(),
                    training
                        .and_then(|t| t.data_hash.clone())
                        .map_or(serde_json::Value::Null, Into::into),
                ),
            ]),
            ..VersionInfo::default()
        }
    }
}
