//! The tagger: robust standardisation, PCA, k-means segments and readable
//! names, fitted once and re-applied night after night.
//!
//! [`Tagger::fit`] learns everything from one population (a feature
//! snapshot); [`Tagger::apply`] gives any population — the same one, or
//! any later night's — its tags with that model, so a customer's segment
//! changes only when their features do. The model is plain data
//! ([`serde`]), stored as readable JSON by [`crate::store`]; what is
//! applied is always the model as read back from its JSON
//! ([`Tagger::from_json`]), so the night of a refit tags exactly as the
//! nights after it.

use std::collections::BTreeMap;
use std::time::Instant;

use cdp_core::config::{Segments, TaggerConfig};
use chrono::{DateTime, NaiveDate, Utc};
use globset::{Glob, GlobSetBuilder};
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::drift::{self, Baseline, DriftReport, FeatureBaseline};
use crate::error::{Error, Result};
use crate::kmeans::{self, Candidate};
use crate::names::{self, TagList, Theme};
use crate::par;
use crate::pca::{Keep, Pca};
use crate::scale::{self, FeatureScale, Moments, QUANTILE_SAMPLE, Scaler};

/// Version of the model file layout.
pub const FORMAT: u32 = 1;

/// Loadings and profile entries kept per component and segment for people.
const TOP: usize = 6;

const SALT_SCALE: u64 = 10;

/// A fitted tagger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tagger {
    /// [`FORMAT`] of the file.
    pub format: u32,
    /// Version in the model store (`v1`, `v2`, …); empty until stored.
    pub version: String,
    /// When it was fitted.
    pub created_at: DateTime<Utc>,
    /// The population it was fitted on.
    pub fitted_on: FitData,
    /// The settings it was fitted with.
    pub settings: TaggerConfig,
    /// Input features, in matrix column order.
    pub features: Vec<String>,
    /// Robust standardisation.
    pub scaler: Scaler,
    /// Principal components of the standardised features.
    pub pca: Pca,
    /// Each component, named, with its strongest loadings.
    pub components: Vec<Component>,
    /// How k was chosen.
    pub selection: Selection,
    /// Segments, largest first, named, with their centroids.
    pub segments: Vec<Segment>,
    /// Mean squared distance of a fit customer to its segment centroid.
    pub inertia: f64,
    /// The feature themes names and tags are made of.
    pub themes: Vec<Theme>,
    /// The fit-time population, for drift.
    pub baseline: Baseline,
}

/// The population a tagger was fitted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitData {
    /// Feature snapshot date, when fitted from the lake.
    pub as_of: Option<NaiveDate>,
    /// Customers.
    pub rows: usize,
    /// xxh3-128 of the feature names and raw values, in row order.
    pub data_hash: String,
}

/// A principal component, for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Component {
    /// 1-based index (`PC1` is the strongest).
    pub index: usize,
    /// Name from its loadings: `"travel & foreign spend vs card activity"`.
    pub name: String,
    /// Share of the total variance it explains.
    pub explained_variance_ratio: f64,
    /// Its strongest loadings (all are in `pca.components`).
    pub top_loadings: Vec<Weight>,
}

/// A feature or theme with a weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Weight {
    /// Feature or theme.
    pub name: String,
    /// Loading, standardised value or theme score.
    pub value: f64,
}

/// A segment, for people and for assignment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// 1-based id; 1 is the largest at fit time.
    pub id: u32,
    /// Name from its centroid: `"high-spend dining"`.
    pub name: String,
    /// Fit customers in it.
    pub size: u64,
    /// Their share of the fit population.
    pub share: f64,
    /// Centroid in component space (what assignment uses).
    pub centroid: Vec<f64>,
    /// Theme scores of the centroid, strongest first (why the name).
    pub themes: Vec<Weight>,
    /// Standardised features of the centroid, most distinctive first.
    pub features: Vec<Weight>,
}

/// How the number of segments was chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// `auto` (silhouette) or `fixed`.
    pub method: String,
    /// Silhouette of each candidate k (empty when fixed).
    pub candidates: Vec<Candidate>,
}

/// A population's tags.
#[derive(Debug, Clone, PartialEq)]
pub struct Tags {
    /// Component scores, `rows × components`.
    pub scores: Array2<f64>,
    /// Segment of each row (0-based index into [`Tagger::segments`]).
    pub segments: Vec<u32>,
    /// Tags of each row: indices into [`Tagger::tag_vocabulary`].
    pub tags: Vec<TagList>,
    /// Drift against the fit-time population.
    pub drift: DriftReport,
    /// Missing values filled during standardisation.
    pub filled: u64,
    /// Seconds per stage.
    pub seconds: BTreeMap<String, f64>,
}

impl Tagger {
    /// Fits a tagger on `x` (rows = customers, columns = `features`, `NaN`
    /// = missing); returns it with the seconds each stage took.
    pub fn fit(
        x: ArrayView2<'_, f64>,
        features: &[String],
        settings: &TaggerConfig,
        as_of: Option<NaiveDate>,
    ) -> Result<(Tagger, BTreeMap<String, f64>)> {
        let mut clock = Clock::new();
        check_columns(features, x, features)?;
        let n = x.nrows();
        let needed = match settings.segments {
            Segments::Fixed(k) => 2 * k,
            Segments::Auto => 2 * settings.max_segments,
        }
        .max(10);
        if n < needed {
            return Err(Error::TooFewRows {
                rows: n,
                needed,
                why: "two customers per possible segment, and ten at least",
            });
        }
        let d = features.len();
        // 1. From a sample, per feature: the standardisation's transform,
        //    fill and clip bounds, and the drift deciles (one sort each).
        let sample = par::sample_rows(n, QUANTILE_SAMPLE, settings.seed, SALT_SCALE);
        let patterns = fill_patterns(&settings.fill_with_max);
        let (scales, mut baseline_features): (Vec<_>, Vec<_>) = features
            .par_iter()
            .enumerate()
            .map(|(j, name)| {
                let sorted = scale::sorted_sample(x, j, &sample);
                (
                    FeatureScale::from_sorted(name, &sorted, sample.len(), patterns.is_match(name)),
                    FeatureBaseline::edges_from_sorted(name, &sorted),
                )
            })
            .unzip();
        let mut scaler = Scaler::without_moments(features, scales)?;
        clock.lap("sample");

        // 2. One pass over every row: the data hash, the drift bin counts,
        //    and the clipped values with their means and variances.
        let mut z = Array2::<f64>::zeros((n, d));
        let parts: Vec<(u64, Vec<Vec<u64>>, Moments)> = x
            .axis_chunks_iter(Axis(0), par::CHUNK_ROWS)
            .into_par_iter()
            .zip(z.axis_chunks_iter_mut(Axis(0), par::CHUNK_ROWS))
            .map(|(rows, mut clipped)| {
                let mut counts = drift::empty_counts(&baseline_features);
                for (row, mut out) in rows.rows().into_iter().zip(clipped.rows_mut()) {
                    for ((((&raw, o), c), b), f) in row
                        .iter()
                        .zip(out.iter_mut())
                        .zip(counts.iter_mut())
                        .zip(&baseline_features)
                        .zip(&scaler.features)
                    {
                        c[b.bin(raw)] += 1;
                        *o = f.clipped(raw);
                    }
                }
                (chunk_digest(rows), counts, Moments::of_rows(clipped.view()))
            })
            .collect();
        let data_hash = data_hash(parts.iter().map(|p| p.0), n, features);
        let mut all_moments = Vec::with_capacity(parts.len());
        let mut all_counts = Vec::with_capacity(parts.len());
        for (_, counts, moments) in parts {
            all_counts.push(counts);
            all_moments.push(moments);
        }
        let counts = drift::merge_counts(&baseline_features, all_counts);
        scaler.set_moments(&Moments::merge_all(all_moments));
        for (f, c) in baseline_features.iter_mut().zip(&counts) {
            f.shares = drift::shares(c);
        }
        clock.lap("scan");

        // 3. Standardised in place: exactly `FeatureScale::standardise`.
        par::for_each_chunk_mut(z.view_mut(), |mut chunk| {
            for mut row in chunk.rows_mut() {
                for (v, f) in row.iter_mut().zip(&scaler.features) {
                    *v = (*v - f.mean) / f.scale;
                }
            }
        });
        clock.lap("standardise");

        let pca = Pca::fit(
            z.view(),
            Keep::Variance {
                target: settings.variance_target,
                max: settings.max_components,
            },
        )?;
        let scores = pca.transform(z.view());
        drop(z);
        clock.lap("pca");

        let (k, selection) = match settings.segments {
            Segments::Fixed(k) => (
                k,
                Selection {
                    method: "fixed".into(),
                    candidates: Vec::new(),
                },
            ),
            Segments::Auto => {
                let (k, candidates) = kmeans::choose_k(
                    scores.view(),
                    settings.min_segments..=settings.max_segments,
                    settings.silhouette_sample,
                    settings.seed,
                )?;
                (
                    k,
                    Selection {
                        method: "auto".into(),
                        candidates,
                    },
                )
            }
        };
        clock.lap("choose_k");
        let segmentation = kmeans::fit(scores.view(), k, settings.seed)?;
        clock.lap("kmeans");

        let themes = names::themes_for(features);
        let weights = names::theme_weights(&themes, features);
        let components = name_components(&pca, &themes, features);
        let mut profile = vec![0.0; features.len()];
        let mut segment_scores = Vec::with_capacity(k);
        let mut segments = Vec::with_capacity(k);
        for (i, centroid) in segmentation.centroids.axis_iter(Axis(0)).enumerate() {
            let centroid = centroid.to_vec();
            pca.reconstruct(&centroid, &mut profile);
            let theme_scores = names::theme_scores(&weights, &profile);
            segments.push(Segment {
                id: i as u32 + 1,
                name: String::new(),
                size: segmentation.sizes[i],
                share: segmentation.sizes[i] as f64 / n as f64,
                centroid,
                themes: top(themes
                    .iter()
                    .map(|t| t.label.clone())
                    .zip(theme_scores.iter().copied())),
                features: top(features.iter().cloned().zip(profile.iter().copied())),
            });
            segment_scores.push(theme_scores);
        }
        for (segment, name) in segments
            .iter_mut()
            .zip(names::segment_names(&themes, &segment_scores))
        {
            segment.name = name;
        }
        let baseline = Baseline {
            features: baseline_features,
            segments: segments.iter().map(|s| s.share).collect(),
        };
        clock.lap("name");
        let tagger = Tagger {
            format: FORMAT,
            version: String::new(),
            created_at: Utc::now(),
            fitted_on: FitData {
                as_of,
                rows: n,
                data_hash,
            },
            settings: settings.clone(),
            features: features.to_vec(),
            scaler,
            pca,
            components,
            selection,
            segments,
            inertia: segmentation.inertia,
            themes,
            baseline,
        };
        Ok((tagger, clock.seconds))
    }

    /// The model as readable JSON.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self).map_err(|source| Error::ModelEncode {
            version: self.version.clone(),
            source,
        })
    }

    /// A model from its JSON (`origin` names it in errors). Numbers are
    /// parsed the same way every time, so every run applying one stored
    /// model uses exactly the same values.
    pub fn from_json(bytes: &[u8], origin: &str) -> Result<Tagger> {
        let tagger: Tagger = serde_json::from_slice(bytes).map_err(|e| Error::ModelFormat {
            path: origin.to_string(),
            reason: e.to_string(),
        })?;
        if tagger.format != FORMAT {
            return Err(Error::ModelFormat {
                path: origin.to_string(),
                reason: format!(
                    "format {} is not {FORMAT}, the one this cdp reads",
                    tagger.format
                ),
            });
        }
        let (m, d, k) = (
            tagger.pca.n_components(),
            tagger.features.len(),
            tagger.segments.len(),
        );
        let consistent = tagger.scaler.features.len() == d
            && tagger.pca.n_features() == d
            && tagger.pca.components.iter().all(|c| c.len() == d)
            && tagger.segments.iter().all(|s| s.centroid.len() == m)
            && tagger.baseline.features.len() == d
            && tagger.baseline.segments.len() == k
            && k > 0
            && m > 0;
        if !consistent {
            return Err(Error::ModelFormat {
                path: origin.to_string(),
                reason: format!("sizes disagree ({d} features, {m} components, {k} segments)"),
            });
        }
        Ok(tagger)
    }

    /// The model as every later run will see it: through its JSON.
    pub fn through_json(&self) -> Result<Tagger> {
        Tagger::from_json(&self.to_json()?, &format!("tagger {}", self.version))
    }

    /// Tags a population (rows = customers, columns = `features`, which
    /// must be the tagger's, in its order). Drift warnings are raised above
    /// `psi_warning`.
    ///
    /// One parallel pass per chunk of rows does everything: drift bin
    /// counts of the raw values, standardisation, the projection on the
    /// components (a matrix product), the nearest centroid and the tags. A
    /// row's result depends on that row alone.
    pub fn apply(
        &self,
        x: ArrayView2<'_, f64>,
        features: &[String],
        psi_warning: f64,
    ) -> Result<Tags> {
        let mut clock = Clock::new();
        check_columns(&self.features, x, features)?;
        let n = x.nrows();
        let m = self.pca.n_components();
        let projection = self.pca.projection();
        let centroids = self.centroids();
        let (through, offset) = self.theme_projection();
        let threshold = self.settings.tag_threshold;
        let low_sides = names::low_sides(&self.themes);
        let mut scores = Array2::<f64>::zeros((n, m));
        let mut segments = vec![0u32; n];
        let mut tags = vec![TagList::default(); n];
        let parts: Vec<(Vec<Vec<u64>>, u64)> = x
            .axis_chunks_iter(Axis(0), par::CHUNK_ROWS)
            .into_par_iter()
            .zip(scores.axis_chunks_iter_mut(Axis(0), par::CHUNK_ROWS))
            .zip(segments.par_chunks_mut(par::CHUNK_ROWS))
            .zip(tags.par_chunks_mut(par::CHUNK_ROWS))
            // One standardised-rows buffer per worker, reused chunk after
            // chunk (a fresh one per chunk costs page faults).
            .map_init(
                || Array2::<f64>::zeros((par::CHUNK_ROWS, x.ncols())),
                |buffer, (((rows, mut chunk_scores), chunk_segments), chunk_tags)| {
                    let mut counts = drift::empty_counts(&self.baseline.features);
                    let mut filled = 0u64;
                    let mut centred = buffer.slice_mut(ndarray::s![..rows.nrows(), ..]);
                    for (row, mut out) in rows.rows().into_iter().zip(centred.rows_mut()) {
                        for (((((&raw, o), c), b), f), mu) in row
                            .iter()
                            .zip(out.iter_mut())
                            .zip(counts.iter_mut())
                            .zip(&self.baseline.features)
                            .zip(&self.scaler.features)
                            .zip(&self.pca.mean)
                        {
                            filled += u64::from(!raw.is_finite());
                            c[b.bin(raw)] += 1;
                            *o = f.standardise(raw) - mu;
                        }
                    }
                    general_mat_mul(1.0, &centred, &projection, 0.0, &mut chunk_scores);
                    // Theme scores of the chunk: one more matrix product.
                    let mut theme_scores =
                        Array2::from_shape_fn((chunk_scores.nrows(), offset.len()), |(_, t)| {
                            offset[t]
                        });
                    general_mat_mul(1.0, &chunk_scores, &through, 1.0, &mut theme_scores);
                    for (((row, themes), segment), tag) in chunk_scores
                        .rows()
                        .into_iter()
                        .zip(theme_scores.rows())
                        .zip(chunk_segments.iter_mut())
                        .zip(chunk_tags.iter_mut())
                    {
                        *segment = kmeans::nearest(row, &centroids).0;
                        let themes = themes
                            .as_slice()
                            .expect("rows of a fresh array are contiguous");
                        *tag = names::customer_tags(&low_sides, themes, threshold);
                    }
                    (counts, filled)
                },
            )
            .collect();
        let filled = parts.iter().map(|p| p.1).sum();
        let counts = drift::merge_counts(&self.baseline.features, parts.into_iter().map(|p| p.0));
        clock.lap("tag");
        let names: Vec<String> = self.segments.iter().map(|s| s.name.clone()).collect();
        let drift = self
            .baseline
            .compare_counts(&counts, &segments, &names, psi_warning);
        clock.lap("drift");
        Ok(Tags {
            scores,
            segments,
            tags,
            drift,
            filled,
            seconds: clock.seconds,
        })
    }

    /// The `k × m` centroid matrix.
    pub fn centroids(&self) -> Array2<f64> {
        let (k, m) = (self.segments.len(), self.pca.n_components());
        Array2::from_shape_fn((k, m), |(s, c)| self.segments[s].centroid[c])
    }

    /// Tag texts, indexed by [`Tags::tags`].
    pub fn tag_vocabulary(&self) -> Vec<String> {
        names::tag_vocabulary(&self.themes)
    }

    /// Theme scores are linear in the PCA profile (`scores · components
    /// + mean`), so they come straight from component scores: returns the
    /// `components × themes` matrix and the themes' offset.
    fn theme_projection(&self) -> (Array2<f64>, Vec<f64>) {
        let weights = names::theme_weights(&self.themes, &self.features);
        let through = Array2::from_shape_fn((self.pca.n_components(), weights.len()), |(c, t)| {
            weights[t]
                .iter()
                .zip(&self.pca.components[c])
                .map(|(a, b)| a * b)
                .sum()
        });
        (through, names::theme_scores(&weights, &self.pca.mean))
    }
}

/// Checks that `x` has the columns `expected`, named `got`.
fn check_columns(expected: &[String], x: ArrayView2<'_, f64>, got: &[String]) -> Result<()> {
    if expected != got || got.len() != x.ncols() {
        return Err(Error::Columns {
            expected: expected.to_vec(),
            got: if got.len() == x.ncols() {
                got.to_vec()
            } else {
                vec![format!("{} columns for {} names", x.ncols(), got.len())]
            },
        });
    }
    Ok(())
}

/// The glob patterns of features filled with their maximum (validated with
/// the configuration; an invalid one here matches nothing).
fn fill_patterns(patterns: &[String]) -> globset::GlobSet {
    let mut builder = GlobSetBuilder::new();
    for p in patterns {
        if let Ok(glob) = Glob::new(p) {
            builder.add(glob);
        }
    }
    builder
        .build()
        .unwrap_or_else(|_| globset::GlobSet::empty())
}

/// The xxh3 digest of a chunk's raw values' bits, row by row.
fn chunk_digest(rows: ArrayView2<'_, f64>) -> u64 {
    let mut bytes = Vec::with_capacity(rows.len() * 8);
    for v in rows.iter() {
        bytes.extend_from_slice(&v.to_bits().to_le_bytes());
    }
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

/// xxh3-128 of the feature names, the row count and the chunk digests.
fn data_hash(digests: impl Iterator<Item = u64>, rows: usize, features: &[String]) -> String {
    let mut all = features.join("\u{1f}").into_bytes();
    all.extend_from_slice(&(rows as u64).to_le_bytes());
    for d in digests {
        all.extend_from_slice(&d.to_le_bytes());
    }
    format!("xxh3-128:{:032x}", xxhash_rust::xxh3::xxh3_128(&all))
}

/// Components named from their loadings.
fn name_components(pca: &Pca, themes: &[Theme], features: &[String]) -> Vec<Component> {
    pca.components
        .iter()
        .zip(&pca.explained_variance_ratio)
        .enumerate()
        .map(|(c, (loadings, ratio))| Component {
            index: c + 1,
            name: names::component_name(themes, features, loadings),
            explained_variance_ratio: *ratio,
            top_loadings: top(features.iter().cloned().zip(loadings.iter().copied())),
        })
        .collect()
}

/// The [`TOP`] entries with the largest magnitude, strongest first.
fn top(items: impl Iterator<Item = (String, f64)>) -> Vec<Weight> {
    let mut all: Vec<Weight> = items.map(|(name, value)| Weight { name, value }).collect();
    all.sort_by(|a, b| b.value.abs().total_cmp(&a.value.abs()));
    all.truncate(TOP);
    all
}

/// Seconds per stage.
struct Clock {
    at: Instant,
    seconds: BTreeMap<String, f64>,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            at: Instant::now(),
            seconds: BTreeMap::new(),
        }
    }

    fn lap(&mut self, stage: &str) {
        self.seconds
            .insert(stage.to_string(), self.at.elapsed().as_secs_f64());
        self.at = Instant::now();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::metrics::Contingency;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    pub(crate) const FEATURES: [&str; 10] = [
        "txn_count_30d",
        "spend_90d",
        "travel_share_90d",
        "foreign_spend_90d",
        "dining_share_90d",
        "online_share_90d",
        "logins_30d",
        "days_since_last_txn",
        "age_years",
        "income_band",
    ];

    pub(crate) const PERSONAS: [&str; 5] = ["traveller", "diner", "online", "dormant", "student"];

    /// A small bank: five planted personas over [`FEATURES`], heavy-tailed
    /// spend, missing recency for customers who never paid.
    pub(crate) fn population(n: usize, seed: u64) -> (Array2<f64>, Vec<String>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut x = Array2::zeros((n, FEATURES.len()));
        let mut persona = Vec::with_capacity(n);
        for r in 0..n {
            let p = rng.random_range(0..PERSONAS.len());
            persona.push(p);
            let u = |rng: &mut ChaCha8Rng, a: f64, b: f64| rng.random_range(a..b);
            let (txns, spend, travel, dining, online, logins, age, income) = match p {
                0 => (
                    u(&mut rng, 15.0, 30.0),
                    40_000.0,
                    u(&mut rng, 0.4, 0.8),
                    0.1,
                    0.2,
                    8.0,
                    45.0,
                    8.0,
                ),
                1 => (
                    u(&mut rng, 20.0, 35.0),
                    12_000.0,
                    0.02,
                    u(&mut rng, 0.5, 0.8),
                    0.1,
                    6.0,
                    38.0,
                    5.0,
                ),
                2 => (
                    u(&mut rng, 20.0, 35.0),
                    20_000.0,
                    0.03,
                    0.1,
                    u(&mut rng, 0.6, 0.9),
                    12.0,
                    38.0,
                    6.0,
                ),
                3 => (
                    u(&mut rng, 0.0, 2.0),
                    500.0,
                    0.0,
                    0.05,
                    0.05,
                    0.0,
                    55.0,
                    3.0,
                ),
                _ => (
                    u(&mut rng, 25.0, 40.0),
                    1_000.0,
                    0.0,
                    0.3,
                    0.3,
                    18.0,
                    21.0,
                    1.0,
                ),
            };
            let tail = (-u(&mut rng, 1e-6, 1.0f64).ln()).powf(1.5);
            let row = [
                txns.round(),
                spend * tail,
                travel,
                if travel > 0.1 {
                    spend * travel * u(&mut rng, 0.2, 0.6)
                } else {
                    0.0
                },
                dining,
                online,
                (logins + u(&mut rng, -2.0, 2.0)).max(0.0).round(),
                if p == 3 && rng.random_bool(0.5) {
                    f64::NAN
                } else {
                    u(&mut rng, 0.0, if p == 3 { 60.0 } else { 3.0 }).round()
                },
                age + u(&mut rng, -5.0, 5.0),
                (income + u(&mut rng, -1.0, 1.0)).round().clamp(1.0, 10.0),
            ];
            x.row_mut(r).assign(&ndarray::arr1(&row));
        }
        (x, FEATURES.map(String::from).to_vec(), persona)
    }

    fn settings() -> TaggerConfig {
        TaggerConfig {
            features: FEATURES.map(String::from).to_vec(),
            ..TaggerConfig::default()
        }
    }

    /// Fits, then applies the model as read back from its JSON.
    pub(crate) fn fit_apply(
        x: &Array2<f64>,
        names: &[String],
        settings: &TaggerConfig,
    ) -> (Tagger, Tags) {
        let (tagger, _) = Tagger::fit(x.view(), names, settings, None).unwrap();
        let tagger = tagger.through_json().unwrap();
        let tags = tagger.apply(x.view(), names, 0.2).unwrap();
        (tagger, tags)
    }

    #[test]
    fn planted_personas_are_recovered_and_named() {
        let (x, names, persona) = population(3000, 1);
        let (tagger, tags) = fit_apply(&x, &names, &settings());
        let truth: Vec<&str> = persona.iter().map(|&p| PERSONAS[p]).collect();
        let table = Contingency::new(truth.iter().zip(&tags.segments));
        let ari = table.adjusted_rand_index();
        assert!(ari > 0.9, "ARI {ari}\n{table}");
        assert_eq!(tagger.selection.method, "auto");
        let named: Vec<&str> = tagger.segments.iter().map(|s| s.name.as_str()).collect();
        assert!(named.iter().any(|n| n.contains("traveller")), "{named:?}");
        assert!(named.contains(&"dormant"), "{named:?}");
        // every name differs
        let unique: std::collections::BTreeSet<&&str> = named.iter().collect();
        assert_eq!(unique.len(), named.len(), "{named:?}");
        // ratios are shares of the total variance and meet the target
        let kept: f64 = tagger.pca.explained_variance_ratio.iter().sum();
        assert!(kept > 0.85 || tagger.pca.n_components() == tagger.settings.max_components);
        // travellers are tagged as such
        let vocabulary = tagger.tag_vocabulary();
        let travellers_tagged = persona
            .iter()
            .zip(&tags.tags)
            .filter(|(p, t)| {
                **p == 0
                    && t.as_slice()
                        .iter()
                        .any(|&i| vocabulary[i as usize] == "traveller")
            })
            .count();
        let travellers = persona.iter().filter(|p| **p == 0).count();
        assert!(
            travellers_tagged * 2 > travellers,
            "{travellers_tagged} of {travellers}"
        );
    }

    #[test]
    fn fitting_is_deterministic_and_reapplying_is_identical() {
        let (x, names, _) = population(1500, 2);
        let (a, _) = Tagger::fit(x.view(), &names, &settings(), None).unwrap();
        let (mut b, _) = Tagger::fit(x.view(), &names, &settings(), None).unwrap();
        b.created_at = a.created_at;
        assert_eq!(a, b);
        // JSON keeps every number to the last bit or the next one
        let stored = a.through_json().unwrap();
        for (p, q) in stored
            .pca
            .components
            .iter()
            .flatten()
            .zip(a.pca.components.iter().flatten())
        {
            assert!((p - q).abs() <= 1e-15 * q.abs().max(1e-300), "{p} {q}");
        }
        let first = stored.apply(x.view(), &names, 0.2).unwrap();
        let again = stored
            .through_json()
            .unwrap()
            .apply(x.view(), &names, 0.2)
            .unwrap();
        assert_eq!(again.scores, first.scores);
        assert_eq!(again.segments, first.segments);
        assert_eq!(again.tags, first.tags);
        assert!(again.drift.warnings.is_empty());
        assert!(again.drift.features.iter().all(|p| p.psi.abs() < 1e-12));
        assert!(again.drift.segments_psi.abs() < 1e-6);
        // the in-memory model tags the same segments
        let in_memory = a.apply(x.view(), &names, 0.2).unwrap();
        assert_eq!(in_memory.segments, first.segments);
        // another seed is another model of the same data
        let other = TaggerConfig {
            seed: 7,
            ..settings()
        };
        let (c, _) = Tagger::fit(x.view(), &names, &other, None).unwrap();
        assert_eq!(c.fitted_on.data_hash, a.fitted_on.data_hash);
        assert!(c.fitted_on.data_hash.starts_with("xxh3-128:"));
    }

    #[test]
    fn an_unchanged_customer_keeps_their_segment_when_the_population_moves() {
        let (x, names, _) = population(2000, 3);
        let (tagger, tags) = fit_apply(&x, &names, &settings());
        // tomorrow: everyone else spends twenty times more; the first 500 did not change
        let (mut tomorrow, _, _) = population(2000, 4);
        tomorrow.column_mut(1).mapv_inplace(|v| v * 20.0);
        tomorrow
            .slice_mut(ndarray::s![..500, ..])
            .assign(&x.slice(ndarray::s![..500, ..]));
        let later = tagger.apply(tomorrow.view(), &names, 0.2).unwrap();
        assert_eq!(later.segments[..500], tags.segments[..500]);
        assert_eq!(later.tags[..500], tags.tags[..500]);
        assert_eq!(
            later.scores.slice(ndarray::s![..500, ..]),
            tags.scores.slice(ndarray::s![..500, ..])
        );
        assert!(
            later
                .drift
                .features
                .iter()
                .any(|p| p.name == "spend_90d" && p.warning),
            "{:?}",
            later.drift.warnings
        );
    }

    #[test]
    fn wrong_columns_bad_files_and_tiny_populations_are_refused() {
        let (x, names, _) = population(200, 5);
        let (tagger, _) = Tagger::fit(x.view(), &names, &settings(), None).unwrap();
        let mut swapped = names.clone();
        swapped.swap(0, 1);
        let err = tagger.apply(x.view(), &swapped, 0.2).unwrap_err();
        assert!(matches!(err, Error::Columns { .. }), "{err}");
        let small = x.slice(ndarray::s![..15, ..]);
        let err = Tagger::fit(small, &names, &settings(), None).unwrap_err();
        assert!(matches!(err, Error::TooFewRows { rows: 15, .. }), "{err}");
        let mut broken = tagger.clone();
        broken.segments[0].centroid.pop();
        let err = Tagger::from_json(&broken.to_json().unwrap(), "m.json").unwrap_err();
        assert!(err.to_string().contains("m.json"), "{err}");
        let err = Tagger::from_json(b"{}", "empty.json").unwrap_err();
        assert!(err.to_string().contains("empty.json"), "{err}");

        let fixed = TaggerConfig {
            segments: Segments::Fixed(3),
            ..settings()
        };
        let (three, tags) = fit_apply(&x, &names, &fixed);
        assert_eq!(three.segments.len(), 3);
        assert_eq!(three.selection.method, "fixed");
        assert!(tags.segments.iter().all(|&s| s < 3));
        assert!(three.segments.windows(2).all(|w| w[0].size >= w[1].size));
    }
}
