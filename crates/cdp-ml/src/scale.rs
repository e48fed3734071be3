//! Robust standardisation of the raw feature matrix.
//!
//! Bank features are heavy-tailed (a few customers spend a thousand times
//! the median) and often missing (no purchases, no social profile). Each
//! feature is, with values fixed at fit time and kept in the model:
//!
//! 1. **transformed**: a signed `ln(1 + |x|)` when its fit-time values are
//!    non-negative and right-skewed (skewness above [`LOG_SKEWNESS`]), else
//!    left as is;
//! 2. **filled** when missing (null, NaN, infinite): with the fit-time
//!    median, or the fit-time maximum for features whose missing value means
//!    "never" (`days_since_*`, configurable) — never silently dropped;
//! 3. **clipped** to its fit-time 1st–99th percentiles, so one outlier
//!    cannot own a principal component;
//! 4. **standardised** with the fit-time mean and standard deviation of the
//!    clipped values (a constant feature gets scale 1 and stays 0).

use ndarray::{ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::par;

/// Skewness above which a non-negative feature is log-transformed.
pub const LOG_SKEWNESS: f64 = 1.0;

/// The clipping percentiles.
pub const CLIP_QUANTILES: (f64, f64) = (0.01, 0.99);

/// Rows sampled to estimate percentiles, medians and skewness.
pub const QUANTILE_SAMPLE: usize = 100_000;

/// How a feature's raw value is transformed before it is standardised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// Used as is.
    Identity,
    /// `sign(x) * ln(1 + |x|)`.
    SignedLog1p,
}

impl Transform {
    /// Applies the transform to one raw value.
    pub fn apply(self, v: f64) -> f64 {
        match self {
            Transform::Identity => v,
            Transform::SignedLog1p => v.signum() * v.abs().ln_1p(),
        }
    }
}

/// What replaces a missing value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FillRule {
    /// The fit-time median.
    Median,
    /// The fit-time maximum (missing means "never", e.g. days since last login).
    Max,
}

/// The fit-time standardisation of one feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureScale {
    /// Feature name.
    pub name: String,
    /// Transform applied to raw values.
    pub transform: Transform,
    /// Skewness of the raw fit-time values (decides the transform).
    pub skewness: f64,
    /// How missing values are filled.
    pub fill_rule: FillRule,
    /// The fill value, after the transform.
    pub fill: f64,
    /// Share of missing values at fit time.
    pub missing_share: f64,
    /// Lower clip bound, after the transform.
    pub lower: f64,
    /// Upper clip bound, after the transform.
    pub upper: f64,
    /// Mean of the clipped, transformed values.
    pub mean: f64,
    /// Standard deviation of the clipped, transformed values (1 for a constant).
    pub scale: f64,
}

impl FeatureScale {
    /// The standardised value of one raw value (`NaN` = missing).
    #[inline]
    pub fn standardise(&self, raw: f64) -> f64 {
        (self.clipped(raw) - self.mean) / self.scale
    }
}

/// Robust standardisation of every feature of a matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    /// One entry per feature, in matrix column order.
    pub features: Vec<FeatureScale>,
}

impl Scaler {
    /// Fits on `x` (rows = customers, columns = `names`; `NaN` = missing).
    /// `fill_with_max(name)` tells features filled with their maximum.
    /// Percentiles, medians and skewness come from the rows `sample`;
    /// means and scales from every row.
    pub fn fit(
        x: ArrayView2<'_, f64>,
        names: &[String],
        sample: &[usize],
        fill_with_max: impl Fn(&str) -> bool + Sync,
    ) -> Result<Scaler> {
        let features = names
            .par_iter()
            .enumerate()
            .map(|(j, name)| {
                let sorted = sorted_sample(x, j, sample);
                FeatureScale::from_sorted(name, &sorted, sample.len(), fill_with_max(name))
            })
            .collect::<Vec<_>>();
        let mut scaler = Scaler::without_moments(names, features)?;
        let moments = par::map_chunks(x, |chunk| {
            let clipped = scaler.clipped(chunk);
            Moments::of_rows(clipped.view())
        });
        scaler.set_moments(&Moments::merge_all(moments));
        Ok(scaler)
    }

    /// A scaler from per-feature fits without means and scales yet
    /// ([`Scaler::set_moments`]); fails naming the features with no values.
    pub(crate) fn without_moments(
        names: &[String],
        features: Vec<Option<FeatureScale>>,
    ) -> Result<Scaler> {
        let empty: Vec<String> = names
            .iter()
            .zip(&features)
            .filter(|(_, f)| f.is_none())
            .map(|(n, _)| n.clone())
            .collect();
        if !empty.is_empty() {
            return Err(Error::EmptyFeatures { features: empty });
        }
        Ok(Scaler {
            features: features.into_iter().flatten().collect(),
        })
    }

    /// Sets means and scales from the moments of the clipped values.
    pub(crate) fn set_moments(&mut self, moments: &Moments) {
        for (j, f) in self.features.iter_mut().enumerate() {
            let sd = moments.variance(j).sqrt();
            f.mean = moments.mean[j];
            f.scale = if sd > 1e-12 * f.mean.abs().max(1.0) {
                sd
            } else {
                1.0
            };
        }
    }

    /// Raw rows transformed, filled and clipped (not yet centred).
    pub(crate) fn clipped(&self, rows: ArrayView2<'_, f64>) -> ndarray::Array2<f64> {
        let mut out = ndarray::Array2::<f64>::zeros(rows.dim());
        for (row, mut o) in rows.rows().into_iter().zip(out.rows_mut()) {
            for ((v, &raw), f) in o.iter_mut().zip(row).zip(&self.features) {
                *v = f.clipped(raw);
            }
        }
        out
    }

    /// Feature names in column order.
    pub fn names(&self) -> Vec<String> {
        self.features.iter().map(|f| f.name.clone()).collect()
    }

    /// Standardises `x` in place; returns the number of missing values filled.
    pub fn transform_inplace(&self, x: ArrayViewMut2<'_, f64>) -> u64 {
        let filled = std::sync::atomic::AtomicU64::new(0);
        par::for_each_chunk_mut(x, |mut chunk| {
            let mut missing = 0;
            for mut row in chunk.axis_iter_mut(Axis(0)) {
                for (v, f) in row.iter_mut().zip(&self.features) {
                    missing += u64::from(!v.is_finite());
                    *v = f.standardise(*v);
                }
            }
            filled.fetch_add(missing, std::sync::atomic::Ordering::Relaxed);
        });
        filled.into_inner()
    }
}

/// The finite values of column `j` at the `sample` rows, sorted.
pub(crate) fn sorted_sample(x: ArrayView2<'_, f64>, j: usize, sample: &[usize]) -> Vec<f64> {
    let column = x.column(j);
    let mut values: Vec<f64> = sample
        .iter()
        .map(|&r| column[r])
        .filter(|v| v.is_finite())
        .collect();
    values.sort_unstable_by(f64::total_cmp);
    values
}

/// Count, means and summed squared deviations of some rows, per column;
/// chunks merge exactly in order (Chan et al.'s pairwise update), so one
/// pass gives means and variances whatever the number of threads.
#[derive(Debug, Clone)]
pub(crate) struct Moments {
    count: f64,
    mean: Vec<f64>,
    m2: Vec<f64>,
}

impl Moments {
    pub(crate) fn new(columns: usize) -> Moments {
        Moments {
            count: 0.0,
            mean: vec![0.0; columns],
            m2: vec![0.0; columns],
        }
    }

    /// The moments of a block of rows (two passes over the block, which
    /// is small enough to stay in cache).
    pub(crate) fn of_rows(rows: ArrayView2<'_, f64>) -> Moments {
        let columns = rows.ncols();
        let mut moments = Moments::new(columns);
        if rows.nrows() == 0 {
            return moments;
        }
        for row in rows.rows() {
            for (m, &v) in moments.mean.iter_mut().zip(row) {
                *m += v;
            }
        }
        let count = rows.nrows() as f64;
        moments.mean.iter_mut().for_each(|m| *m /= count);
        for row in rows.rows() {
            for ((q, m), &v) in moments.m2.iter_mut().zip(&moments.mean).zip(row) {
                *q += (v - m) * (v - m);
            }
        }
        moments.count = count;
        moments
    }

    /// Both sets of rows together.
    fn merge(mut self, other: &Moments) -> Moments {
        if other.count == 0.0 {
            return self;
        }
        let count = self.count + other.count;
        for j in 0..self.mean.len() {
            let delta = other.mean[j] - self.mean[j];
            self.m2[j] += other.m2[j] + delta * delta * self.count * other.count / count;
            self.mean[j] += delta * other.count / count;
        }
        self.count = count;
        self
    }

    /// Merges chunk moments in chunk order.
    pub(crate) fn merge_all(parts: Vec<Moments>) -> Moments {
        let columns = parts.first().map_or(0, |p| p.mean.len());
        parts
            .iter()
            .fold(Moments::new(columns), |acc, p| acc.merge(p))
    }

    /// Population variance of column `j`.
    fn variance(&self, j: usize) -> f64 {
        if self.count > 0.0 {
            (self.m2[j] / self.count).max(0.0)
        } else {
            0.0
        }
    }
}

impl FeatureScale {
    /// Transform, fill and clip bounds of one feature from its finite
    /// sample values, sorted (`sampled` rows were drawn); `None` when it
    /// has none. Mean and scale are set from the moments later.
    pub(crate) fn from_sorted(
        name: &str,
        sorted: &[f64],
        sampled: usize,
        max_fill: bool,
    ) -> Option<FeatureScale> {
        if sorted.is_empty() {
            return None;
        }
        let skewness = skewness(sorted);
        let transform = if sorted[0] >= 0.0 && skewness > LOG_SKEWNESS {
            Transform::SignedLog1p
        } else {
            Transform::Identity
        };
        // The transform is increasing: transformed values stay sorted.
        let t: Vec<f64> = sorted.iter().map(|&v| transform.apply(v)).collect();
        let fill_rule = if max_fill {
            FillRule::Max
        } else {
            FillRule::Median
        };
        let fill = match fill_rule {
            FillRule::Median => quantile(&t, 0.5),
            FillRule::Max => t[t.len() - 1],
        };
        Some(FeatureScale {
            name: name.to_string(),
            transform,
            skewness,
            fill_rule,
            fill,
            missing_share: 1.0 - sorted.len() as f64 / sampled.max(1) as f64,
            lower: quantile(&t, CLIP_QUANTILES.0),
            upper: quantile(&t, CLIP_QUANTILES.1),
            mean: 0.0,
            scale: 1.0,
        })
    }

    /// A raw value transformed, filled and clipped (not yet centred).
    #[inline]
    pub(crate) fn clipped(&self, raw: f64) -> f64 {
        let v = if raw.is_finite() {
            self.transform.apply(raw)
        } else {
            self.fill
        };
        v.clamp(self.lower, self.upper)
    }
}

/// Sample skewness (third standardised moment); 0 for a constant.
fn skewness(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let (m2, m3) = values.iter().fold((0.0, 0.0), |(m2, m3), &v| {
        let d = v - mean;
        (m2 + d * d, m3 + d * d * d)
    });
    let (m2, m3) = (m2 / n, m3 / n);
    if m2 <= 1e-24 { 0.0 } else { m3 / m2.powf(1.5) }
}

/// The `q` quantile of sorted values, interpolating linearly between the
/// two nearest ranks (numpy's default).
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, array};

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.5), 2.5);
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 1.0), 4.0);
        assert!((quantile(&v, 0.01) - 1.03).abs() < 1e-12);
    }

    #[test]
    fn skewed_money_is_logged_missing_is_filled_and_outliers_clipped() {
        // spend: heavy right tail; days: missing means never; share: symmetric.
        let n = 1000;
        let mut x = Array2::zeros((n, 3));
        for r in 0..n {
            x[[r, 0]] = if r % 100 == 0 {
                1e7
            } else {
                (r % 50) as f64 * 10.0
            };
            x[[r, 1]] = if r % 10 == 0 {
                f64::NAN
            } else {
                (r % 30) as f64
            };
            x[[r, 2]] = (r % 7) as f64 / 7.0;
        }
        let rows: Vec<usize> = (0..n).collect();
        let s = Scaler::fit(
            x.view(),
            &names(&["spend", "days_since_x", "share"]),
            &rows,
            |name| name.starts_with("days_since_"),
        )
        .unwrap();
        assert_eq!(s.features[0].transform, Transform::SignedLog1p);
        assert_eq!(s.features[2].transform, Transform::Identity);
        assert_eq!(s.features[1].fill_rule, FillRule::Max);
        assert_eq!(s.features[1].fill, 29.0);
        assert!((s.features[1].missing_share - 0.1).abs() < 1e-12);
        assert_eq!(s.features[0].fill_rule, FillRule::Median);
        // the 1e7 outliers are clipped to the 99th percentile
        assert!(s.features[0].upper < 1e7f64.ln_1p());

        let mut z = x.clone();
        let filled = s.transform_inplace(z.view_mut());
        assert_eq!(filled, 100);
        for j in 0..3 {
            let col = z.column(j);
            let mean = col.sum() / n as f64;
            let var = col.mapv(|v| (v - mean) * (v - mean)).sum() / n as f64;
            assert!(mean.abs() < 1e-9, "column {j} mean {mean}");
            assert!((var - 1.0).abs() < 1e-9, "column {j} var {var}");
        }
        // a missing day count is standardised like the largest one seen
        assert_eq!(z[[0, 1]], s.features[1].standardise(29.0));
    }

    #[test]
    fn constants_stay_zero_and_empty_features_are_named() {
        let x = array![[1.0, f64::NAN], [1.0, f64::NAN], [1.0, f64::NAN]];
        let err = Scaler::fit(x.view(), &names(&["c", "gone"]), &[0, 1, 2], |_| false).unwrap_err();
        assert!(err.to_string().contains("gone"), "{err}");
        let x = array![[1.0, 2.0], [1.0, 3.0], [1.0, 4.0]];
        let s = Scaler::fit(x.view(), &names(&["c", "v"]), &[0, 1, 2], |_| false).unwrap();
        assert_eq!(s.features[0].scale, 1.0);
        assert_eq!(s.features[0].standardise(1.0), 0.0);
        assert_eq!(s.features[0].standardise(f64::NAN), 0.0);
    }

    #[test]
    fn negative_values_after_a_log_fit_stay_finite() {
        let f = FeatureScale {
            name: "x".into(),
            transform: Transform::SignedLog1p,
            skewness: 3.0,
            fill_rule: FillRule::Median,
            fill: 1.0,
            missing_share: 0.0,
            lower: -10.0,
            upper: 10.0,
            mean: 0.0,
            scale: 1.0,
        };
        assert!((f.standardise(-(1f64.exp() - 1.0)) + 1.0).abs() < 1e-12);
        assert_eq!(f.standardise(f64::INFINITY), 1.0);
    }
}
