//! # cdp-ml
//!
//! Customer tags a marketer can read: features robustly standardised,
//! reduced with PCA, segmented with k-means (linfa), named from loadings
//! and centroids, versioned, re-applied night after night, watched for
//! drift. And the models that score card offers: gradient-boosted trees
//! that predict and explain like XGBoost. No query engine here: this
//! crate takes a feature matrix and
//! gives tags back (`cdp-engine` reads `silver.features` and writes
//! `gold.tags`), so it builds and benchmarks on its own.
//!
//! * [`tagger::Tagger`]: the model — [`Tagger::fit`](tagger::Tagger::fit)
//!   on one population, [`Tagger::apply`](tagger::Tagger::apply) to any,
//!   readable JSON ([`Tagger::to_json`](tagger::Tagger::to_json)).
//! * [`scale`]: robust standardisation (log for skewed money, explicit
//!   fills for missing values, percentile clipping).
//! * [`pca`]: PCA by the covariance route for tall matrices, ratios over
//!   the total variance like scikit-learn.
//! * [`kmeans`]: linfa k-means seeded on a sample, refined on every row;
//!   k by silhouette.
//! * [`names`]: feature themes, component and segment names, customer tags.
//! * [`drift`]: population stability index per feature and segment.
//! * [`store::ModelStore`]: versions under `models/<kind>/<version>/` in
//!   the lake, and the registry naming the current one.
//! * [`plot::segments`]: the first two components coloured by segment.
//! * [`metrics`]: contingency tables and the adjusted Rand index.
//! * [`model`]: offer-propensity models behind one trait ([`model::Model`],
//!   [`model::Learner`]): gradient-boosted trees of the XGBoost family on
//!   hessboost ([`model::gbdt`], with TreeSHAP explanations and XGBoost
//!   JSON import), smartcore baselines ([`model::baseline`]), and cdp's
//!   model document `model.json` ([`model::format`], which also loads
//!   Python XGBoost's `save_model` files).
//! * [`eval`]: how good a binary model's scores are: AUC, logloss,
//!   precision and recall at k, lift by decile, calibration, one [`eval::Report`].
//! * [`error`]: the crate's [`Error`] and [`Result`].
//!
//! ```
//! use cdp_core::config::{Segments, TaggerConfig};
//! use cdp_ml::tagger::Tagger;
//! use ndarray::Array2;
//!
//! // two obvious groups of customers over two features
//! let x = Array2::from_shape_fn((40, 2), |(r, c)| if r % 2 == 0 { 1.0 + c as f64 } else { 50.0 } + (r % 5) as f64 * 0.01);
//! let features = vec!["spend_90d".to_string(), "txn_count_30d".to_string()];
//! let settings = TaggerConfig { features: features.clone(), segments: Segments::Fixed(2), ..TaggerConfig::default() };
//! let (tagger, _seconds) = Tagger::fit(x.view(), &features, &settings, None).unwrap();
//! let tags = tagger.apply(x.view(), &features, settings.psi_warning).unwrap();
//! assert_eq!(tagger.segments.len(), 2);
//! assert_ne!(tags.segments[0], tags.segments[1]);
//! assert_eq!(tags.segments[0], tags.segments[2]);
//! ```

pub mod drift;
pub mod error;
pub mod eval;
pub mod kmeans;
pub mod metrics;
pub mod model;
pub mod names;
pub mod offer;
pub(crate) mod par;
pub mod pca;
pub mod plot;
pub mod scale;
pub mod store;
pub mod tagger;

pub use error::{Error, Result};
pub use tagger::{Tagger, Tags};
