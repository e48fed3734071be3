//! Drift against the fit-time population: the population stability index
//! (PSI) of every input feature and of the segment shares.
//!
//! At fit time each feature's raw values are cut into (up to) ten bins at
//! their deciles, plus one bin for missing values, and the share of the
//! fit population in each bin is kept with the model. A later population's
//! PSI is `Σ (actual − expected) · ln(actual / expected)` over the bins,
//! with shares floored at [`SHARE_FLOOR`] so an empty bin does not make it
//! infinite. The usual reading: below 0.1 stable, 0.1–0.25 a shift worth a
//! look, above 0.25 a different population (the warning threshold is
//! configurable).

use ndarray::{ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::par;
use crate::scale::quantile;

/// Shares are floored at this before the PSI's logarithm.
pub const SHARE_FLOOR: f64 = 1e-4;

/// Bins per feature (deciles).
pub const BINS: usize = 10;

/// A feature's fit-time distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureBaseline {
    /// Feature name.
    pub name: String,
    /// Upper edges of all bins but the last (a value `v` falls in the first
    /// bin whose edge is `>= v`); distinct and increasing.
    pub edges: Vec<f64>,
    /// Fit-time share of each bin (`edges.len() + 1` bins), then of the
    /// missing-value bin.
    pub shares: Vec<f64>,
}

/// The fit-time population: feature distributions and segment shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// One per feature, in matrix order.
    pub features: Vec<FeatureBaseline>,
    /// Fit-time share of each segment.
    pub segments: Vec<f64>,
}

/// The PSI of one feature or one segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Psi {
    /// Feature name, or segment name.
    pub name: String,
    /// Population stability index (for one segment: its term of the sum).
    pub psi: f64,
    /// Fit-time share (segments only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_share: Option<f64>,
    /// Share now (segments only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share: Option<f64>,
    /// Over the warning threshold.
    pub warning: bool,
}

/// Drift of one population against the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    /// The threshold warnings were raised at.
    pub threshold: f64,
    /// PSI per input feature.
    pub features: Vec<Psi>,
    /// PSI of the segment distribution as a whole.
    pub segments_psi: f64,
    /// Each segment's term of it, with both shares.
    pub segments: Vec<Psi>,
    /// One line per warning, for people.
    pub warnings: Vec<String>,
}

impl FeatureBaseline {
    /// Edges at the deciles of a feature's finite sample values.
    pub fn edges_from(name: &str, sample: &mut [f64]) -> FeatureBaseline {
        sample.sort_unstable_by(f64::total_cmp);
        FeatureBaseline::edges_from_sorted(name, sample)
    }

    /// Edges at the deciles of a feature's finite sample values, sorted.
    pub fn edges_from_sorted(name: &str, sample: &[f64]) -> FeatureBaseline {
        let mut edges: Vec<f64> = Vec::new();
        if !sample.is_empty() {
            for b in 1..BINS {
                let e = quantile(sample, b as f64 / BINS as f64);
                if edges.last().is_none_or(|last| e > *last) {
                    edges.push(e);
                }
            }
        }
        FeatureBaseline {
            name: name.to_string(),
            shares: Vec::new(),
            edges,
        }
    }

    /// The bin of one raw value (the last bin is for missing values).
    #[inline]
    pub fn bin(&self, v: f64) -> usize {
        if !v.is_finite() {
            return self.edges.len() + 1;
        }
        // At most nine edges: counting them beats a branchy binary search.
        self.edges.iter().filter(|&&e| e < v).count()
    }
}

/// Bin counts of every feature of `x` (rows = customers), in one parallel
/// pass.
pub fn bin_counts(x: ArrayView2<'_, f64>, features: &[FeatureBaseline]) -> Vec<Vec<u64>> {
    let parts = par::map_chunks(x, |chunk| {
        let mut counts = empty_counts(features);
        for row in chunk.axis_iter(Axis(0)) {
            for ((c, f), &v) in counts.iter_mut().zip(features).zip(row) {
                c[f.bin(v)] += 1;
            }
        }
        counts
    });
    merge_counts(features, parts)
}

/// Zero counts for every bin of every feature.
pub(crate) fn empty_counts(features: &[FeatureBaseline]) -> Vec<Vec<u64>> {
    features
        .iter()
        .map(|f| vec![0; f.edges.len() + 2])
        .collect()
}

/// The sum of per-chunk bin counts.
pub(crate) fn merge_counts(
    features: &[FeatureBaseline],
    parts: impl IntoIterator<Item = Vec<Vec<u64>>>,
) -> Vec<Vec<u64>> {
    parts
        .into_iter()
        .fold(empty_counts(features), |mut acc, part| {
            for (a, p) in acc.iter_mut().zip(part) {
                for (x, y) in a.iter_mut().zip(p) {
                    *x += y;
                }
            }
            acc
        })
}

/// Counts as shares of their total.
pub fn shares(counts: &[u64]) -> Vec<f64> {
    let total: u64 = counts.iter().sum();
    counts
        .iter()
        .map(|&c| {
            if total == 0 {
                0.0
            } else {
                c as f64 / total as f64
            }
        })
        .collect()
}

/// One bin's PSI term.
pub fn psi_term(expected: f64, actual: f64) -> f64 {
    let (e, a) = (expected.max(SHARE_FLOOR), actual.max(SHARE_FLOOR));
    (a - e) * (a / e).ln()
}

/// PSI of two share vectors over the same bins.
pub fn psi(expected: &[f64], actual: &[f64]) -> f64 {
    expected
        .iter()
        .zip(actual)
        .map(|(e, a)| psi_term(*e, *a))
        .sum()
}

impl Baseline {
    /// Compares a population's raw features and segment labels with the
    /// baseline; `segment_names` label the segment rows.
    pub fn compare(
        &self,
        x: ArrayView2<'_, f64>,
        labels: &[u32],
        segment_names: &[String],
        threshold: f64,
    ) -> DriftReport {
        self.compare_counts(
            &bin_counts(x, &self.features),
            labels,
            segment_names,
            threshold,
        )
    }

    /// [`Baseline::compare`] from the population's bin counts
    /// ([`bin_counts`]), when they were taken already.
    pub fn compare_counts(
        &self,
        counts: &[Vec<u64>],
        labels: &[u32],
        segment_names: &[String],
        threshold: f64,
    ) -> DriftReport {
        let mut warnings = Vec::new();
        let features: Vec<Psi> = self
            .features
            .iter()
            .zip(counts)
            .map(|(f, c)| {
                let value = psi(&f.shares, &shares(c));
                let warning = value > threshold;
                if warning {
                    warnings.push(format!(
                        "feature {} drifted: PSI {value:.3} > {threshold}",
                        f.name
                    ));
                }
                Psi {
                    name: f.name.clone(),
                    psi: value,
                    baseline_share: None,
                    share: None,
                    warning,
                }
            })
            .collect();
        let mut segment_counts = vec![0u64; self.segments.len()];
        for &l in labels {
            segment_counts[l as usize] += 1;
        }
        let now = shares(&segment_counts);
        let segments_psi = psi(&self.segments, &now);
        if segments_psi > threshold {
            warnings.push(format!(
                "segment shares drifted: PSI {segments_psi:.3} > {threshold}"
            ));
        }
        let segments = self
            .segments
            .iter()
            .zip(&now)
            .zip(segment_names)
            .map(|((e, a), name)| Psi {
                name: name.clone(),
                psi: psi_term(*e, *a),
                baseline_share: Some(*e),
                share: Some(*a),
                warning: segments_psi > threshold,
            })
            .collect();
        DriftReport {
            threshold,
            features,
            segments_psi,
            segments,
            warnings,
        }
    }

    /// The largest feature PSI, with its feature.
    pub fn worst(report: &DriftReport) -> Option<&Psi> {
        report
            .features
            .iter()
            .max_by(|a, b| a.psi.total_cmp(&b.psi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn baseline(x: &Array2<f64>, labels: &[u32], k: usize) -> Baseline {
        let mut features: Vec<FeatureBaseline> = (0..x.ncols())
            .map(|j| {
                let mut v: Vec<f64> = x
                    .column(j)
                    .iter()
                    .copied()
                    .filter(|v| v.is_finite())
                    .collect();
                FeatureBaseline::edges_from(&format!("f{j}"), &mut v)
            })
            .collect();
        let counts = bin_counts(x.view(), &features);
        for (f, c) in features.iter_mut().zip(counts) {
            f.shares = shares(&c);
        }
        let mut seg = vec![0u64; k];
        labels.iter().for_each(|&l| seg[l as usize] += 1);
        Baseline {
            features,
            segments: shares(&seg),
        }
    }

    #[test]
    fn bins_follow_deciles_and_missing_has_its_own() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        let b = FeatureBaseline::edges_from("x", &mut v);
        assert_eq!(b.edges.len(), 9);
        assert_eq!(b.bin(1.0), 0);
        assert_eq!(b.bin(100.0), 9);
        assert_eq!(b.bin(f64::NAN), 10);
        // many ties collapse the edges
        let mut zeros = vec![0.0; 90];
        zeros.extend((1..=10).map(f64::from));
        let b = FeatureBaseline::edges_from("y", &mut zeros);
        assert!(b.edges.len() < 9);
        assert_eq!(b.bin(0.0), 0);
    }

    #[test]
    fn same_population_has_no_drift_and_a_shift_warns() {
        let n = 2000;
        let x = Array2::from_shape_fn((n, 2), |(r, c)| {
            if c == 0 {
                (r % 100) as f64
            } else {
                (r % 7) as f64
            }
        });
        let labels: Vec<u32> = (0..n).map(|r| (r % 3) as u32).collect();
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let base = baseline(&x, &labels, 3);
        let same = base.compare(x.view(), &labels, &names, 0.2);
        assert!(same.features.iter().all(|p| p.psi.abs() < 1e-12));
        assert!(same.segments_psi.abs() < 1e-12 && same.warnings.is_empty());

        // feature 0 shifts up by half its range, a third of values of feature 1 go missing,
        // and everyone moves to segment 0
        let shifted = Array2::from_shape_fn((n, 2), |(r, c)| {
            if c == 0 {
                (r % 100) as f64 + 50.0
            } else if r % 3 == 0 {
                f64::NAN
            } else {
                (r % 7) as f64
            }
        });
        let report = base.compare(shifted.view(), &vec![0; n], &names, 0.2);
        assert!(report.features[0].psi > 1.0 && report.features[0].warning);
        assert!(report.features[1].psi > 0.2, "{}", report.features[1].psi);
        assert!(report.segments_psi > 1.0);
        assert_eq!(report.segments[0].share, Some(1.0));
        assert_eq!(report.warnings.len(), 3, "{:?}", report.warnings);
        assert_eq!(Baseline::worst(&report).unwrap().name, "f0");
    }

    #[test]
    fn psi_is_floored_not_infinite() {
        let p = psi(&[0.5, 0.5, 0.0], &[0.0, 0.5, 0.5]);
        assert!(p.is_finite() && p > 1.0);
    }
}
