//! How good a binary model's scores are: the metrics of a model's report.
//!
//! * [`auc`]: area under the ROC curve, the Mann–Whitney statistic with tied
//!   scores given their average rank (the same value as scikit-learn's
//!   `roc_auc_score`), in O(n log n).
//! * [`logloss`]: mean negative log-likelihood, probabilities clipped to
//!   `[1e-15, 1 - 1e-15]`.
//! * [`brier`]: mean squared difference between probability and label.
//! * [`at_k`]: precision and recall among the `k` highest scores.
//! * [`lift_by_decile`]: rows sorted by score, cut into ten groups; each
//!   group's positive rate over the overall rate, and the same cumulatively.
//! * [`calibration`]: bins of predicted probability, mean predicted against
//!   observed rate (scikit-learn's `calibration_curve` with uniform bins),
//!   and [`calibration_error`] over them.
//! * [`Report`]: all of them for one set of predictions, serialisable for a
//!   model's `metrics.json` and readable as text ([`fmt::Display`]).
//!
//! Labels are `0` or `1` (anything else is refused, naming the row); scores
//! are finite numbers, probabilities lie in `[0, 1]`. Rows with equal scores
//! keep their input order wherever the order matters (top `k`, deciles), so
//! every metric is deterministic.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Probabilities are clipped to `[LOGLOSS_EPS, 1 - LOGLOSS_EPS]` before
/// taking logarithms (scikit-learn's long-standing default).
pub const LOGLOSS_EPS: f64 = 1e-15;

/// Shares of rows at which [`Report::new`] measures precision and recall:
/// the top 1 %, 5 %, 10 % and 20 % of scores.
pub const DEFAULT_TOP_SHARES: [f64; 4] = [0.01, 0.05, 0.10, 0.20];

/// Bins of the calibration table in [`Report::new`].
pub const DEFAULT_CALIBRATION_BINS: usize = 10;

/// Check that `labels` and `scores` pair up, that there are rows, that every
/// label is 0 or 1 and every score finite; returns the number of positives.
fn check(labels: &[f32], scores: &[f32]) -> Result<usize> {
    if labels.len() != scores.len() {
        return Err(Error::Shape {
            what: "scores (one per label)",
            expected: labels.len(),
            got: scores.len(),
        });
    }
    if labels.is_empty() {
        return Err(Error::NoRows { what: "metrics" });
    }
    let mut positives = 0;
    for (row, &y) in labels.iter().enumerate() {
        if y == 1.0 {
            positives += 1;
        } else if y != 0.0 {
            return Err(Error::NotBinaryLabel { row, value: y });
        }
    }
    if let Some(row) = scores.iter().position(|s| !s.is_finite()) {
        return Err(Error::BadScore {
            row,
            value: scores[row],
            expected: "a finite number",
        });
    }
    Ok(positives)
}

/// [`check`], and every score a probability in `[0, 1]`.
fn check_probabilities(labels: &[f32], probabilities: &[f32]) -> Result<usize> {
    let positives = check(labels, probabilities)?;
    if let Some(row) = probabilities.iter().position(|p| !(0.0..=1.0).contains(p)) {
        return Err(Error::BadScore {
            row,
            value: probabilities[row],
            expected: "a probability in [0, 1]",
        });
    }
    Ok(positives)
}

/// Row indices by descending score, equal scores in input order.
fn by_descending_score(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    // A stable sort: ties keep their input order.
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order
}

/// Area under the ROC curve of `scores` for 0/1 `labels`: the probability
/// that a random positive row scores above a random negative one, ties
/// counting one half (ranks averaged over tied scores, as scikit-learn's
/// `roc_auc_score`). Needs both classes.
pub fn auc(labels: &[f32], scores: &[f32]) -> Result<f64> {
    let positives = check(labels, scores)?;
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return Err(Error::OneClass {
            what: "AUC",
            positives,
            negatives,
        });
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the (1-based, tie-averaged) ranks of the positive rows.
    let mut rank_sum = 0.0f64;
    let mut start = 0;
    while start < order.len() {
        let score = scores[order[start]];
        let mut end = start + 1;
        while end < order.len() && scores[order[end]] == score {
            end += 1;
        }
        let tied_positives = order[start..end]
            .iter()
            .filter(|&&i| labels[i] == 1.0)
            .count();
        // ranks start + 1 ..= end, averaged
        let average_rank = (start + 1 + end) as f64 / 2.0;
        rank_sum += average_rank * tied_positives as f64;
        start = end;
    }
    let (p, n) = (positives as f64, negatives as f64);
    Ok((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// Mean negative log-likelihood of 0/1 `labels` under `probabilities`,
/// each clipped to `[LOGLOSS_EPS, 1 - LOGLOSS_EPS]` so a confident mistake
/// costs about 34.5 rather than infinity.
pub fn logloss(labels: &[f32], probabilities: &[f32]) -> Result<f64> {
    check_probabilities(labels, probabilities)?;
    let total: f64 = labels
        .iter()
        .zip(probabilities)
        .map(|(&y, &p)| {
            let p = f64::from(p).clamp(LOGLOSS_EPS, 1.0 - LOGLOSS_EPS);
            if y == 1.0 { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum();
    Ok(total / labels.len() as f64)
}

/// Mean squared difference between `probabilities` and 0/1 `labels` (the
/// Brier score: 0 is perfect, 0.25 is a constant one half).
pub fn brier(labels: &[f32], probabilities: &[f32]) -> Result<f64> {
    check_probabilities(labels, probabilities)?;
    let total: f64 = labels
        .iter()
        .zip(probabilities)
        .map(|(&y, &p)| (f64::from(p) - f64::from(y)).powi(2))
        .sum();
    Ok(total / labels.len() as f64)
}

/// Precision and recall among the `k` highest-scoring rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AtK {
    /// Rows taken from the top.
    pub k: usize,
    /// `k` over all rows.
    pub share: f64,
    /// Positive rows among them.
    pub positives: usize,
    /// Positives among the `k` over `k`.
    pub precision: f64,
    /// Positives among the `k` over all positives (0 when there are none).
    pub recall: f64,
}

/// Precision and recall at each of `ks` (each clamped to the number of
/// rows; 0 is refused). Rows with equal scores keep their input order.
pub fn at_k(labels: &[f32], scores: &[f32], ks: &[usize]) -> Result<Vec<AtK>> {
    let positives = check(labels, scores)?;
    let order = by_descending_score(scores);
    let n = labels.len();
    ks.iter()
        .map(|&k| {
            if k == 0 {
                return Err(Error::Param {
                    key: "k".to_string(),
                    reason: "precision at k needs k of at least 1".to_string(),
                });
            }
            let k = k.min(n);
            let hits = order[..k].iter().filter(|&&i| labels[i] == 1.0).count();
            Ok(AtK {
                k,
                share: k as f64 / n as f64,
                positives: hits,
                precision: hits as f64 / k as f64,
                recall: if positives == 0 {
                    0.0
                } else {
                    hits as f64 / positives as f64
                },
            })
        })
        .collect()
}

/// One tenth of the rows, by descending score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decile {
    /// 1 for the highest scores, 10 for the lowest.
    pub decile: usize,
    /// Rows in it.
    pub rows: usize,
    /// Positive rows in it.
    pub positives: usize,
    /// Its lowest score.
    pub min_score: f32,
    /// Its highest score.
    pub max_score: f32,
    /// Its positive rate.
    pub rate: f64,
    /// Its positive rate over the overall rate (1 = no better than random).
    pub lift: f64,
    /// Rows in deciles 1 ..= this one.
    pub cumulative_rows: usize,
    /// Positives in deciles 1 ..= this one.
    pub cumulative_positives: usize,
    /// The positive rate of deciles 1 ..= this one over the overall rate.
    pub cumulative_lift: f64,
}

/// Lift by decile: rows sorted by descending score (ties in input order)
/// and cut into ten groups whose sizes differ by at most one (decile `d`
/// holds sorted rows `d·n/10 .. (d+1)·n/10`); empty deciles (fewer than ten
/// rows) are left out. Needs at least one positive row.
pub fn lift_by_decile(labels: &[f32], scores: &[f32]) -> Result<Vec<Decile>> {
    let positives = check(labels, scores)?;
    let n = labels.len();
    if positives == 0 {
        return Err(Error::OneClass {
            what: "lift",
            positives,
            negatives: n,
        });
    }
    let overall = positives as f64 / n as f64;
    let order = by_descending_score(scores);
    let mut out = Vec::with_capacity(10);
    let (mut cumulative_rows, mut cumulative_positives) = (0, 0);
    for d in 0..10 {
        let rows = &order[d * n / 10..(d + 1) * n / 10];
        if rows.is_empty() {
            continue;
        }
        let hits = rows.iter().filter(|&&i| labels[i] == 1.0).count();
        cumulative_rows += rows.len();
        cumulative_positives += hits;
        let rate = hits as f64 / rows.len() as f64;
        out.push(Decile {
            decile: d + 1,
            rows: rows.len(),
            positives: hits,
            // sorted descending: the first row scores highest
            max_score: scores[rows[0]],
            min_score: scores[rows[rows.len() - 1]],
            rate,
            lift: rate / overall,
            cumulative_rows,
            cumulative_positives,
            cumulative_lift: cumulative_positives as f64 / cumulative_rows as f64 / overall,
        });
    }
    Ok(out)
}

/// One bin of predicted probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    /// The bin's lower edge (exclusive, but 0 belongs to the first bin).
    pub lower: f64,
    /// The bin's upper edge (inclusive).
    pub upper: f64,
    /// Rows predicted in it.
    pub rows: usize,
    /// Their mean predicted probability.
    pub mean_predicted: f64,
    /// Their observed positive rate.
    pub observed_rate: f64,
}

/// The calibration table: `bins` equal-width bins of predicted probability
/// over `[0, 1]` (a probability on an inner edge goes to the lower bin, as
/// in scikit-learn),
/// each with its rows' mean prediction and observed positive rate; empty
/// bins are left out, like scikit-learn's `calibration_curve`.
pub fn calibration(
    labels: &[f32],
    probabilities: &[f32],
    bins: usize,
) -> Result<Vec<CalibrationBin>> {
    check_probabilities(labels, probabilities)?;
    if bins == 0 {
        return Err(Error::Param {
            key: "bins".to_string(),
            reason: "a calibration table needs at least one bin".to_string(),
        });
    }
    // (rows, sum of predictions, positives) per bin
    let mut sums = vec![(0usize, 0.0f64, 0usize); bins];
    for (&y, &p) in labels.iter().zip(probabilities) {
        // bins (lower, upper]: ceil(p · bins) − 1, 0 in the first bin
        let bin = ((f64::from(p) * bins as f64).ceil() as usize).clamp(1, bins) - 1;
        let s = &mut sums[bin];
        s.0 += 1;
        s.1 += f64::from(p);
        s.2 += usize::from(y == 1.0);
    }
    Ok(sums
        .iter()
        .enumerate()
        .filter(|(_, s)| s.0 > 0)
        .map(|(b, &(rows, predicted, positives))| CalibrationBin {
            lower: b as f64 / bins as f64,
            upper: (b + 1) as f64 / bins as f64,
            rows,
            mean_predicted: predicted / rows as f64,
            observed_rate: positives as f64 / rows as f64,
        })
        .collect())
}

/// Expected calibration error of a calibration table: the row-weighted mean
/// of `|mean predicted − observed rate|` over its bins (0 when empty).
pub fn calibration_error(table: &[CalibrationBin]) -> f64 {
    let rows: usize = table.iter().map(|b| b.rows).sum();
    if rows == 0 {
        return 0.0;
    }
    table
        .iter()
        .map(|b| b.rows as f64 * (b.mean_predicted - b.observed_rate).abs())
        .sum::<f64>()
        / rows as f64
}

/// Every metric of one set of binary predictions, as a model's metrics
/// report keeps them (JSON through serde, text through [`fmt::Display`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Rows scored.
    pub rows: usize,
    /// Positive rows.
    pub positives: usize,
    /// Positives over rows.
    pub base_rate: f64,
    /// Area under the ROC curve.
    pub auc: f64,
    /// Mean negative log-likelihood (clipped).
    pub logloss: f64,
    /// Brier score.
    pub brier: f64,
    /// Precision and recall among the top scores.
    pub at_k: Vec<AtK>,
    /// Lift by decile.
    pub lift: Vec<Decile>,
    /// The calibration table.
    pub calibration: Vec<CalibrationBin>,
    /// Expected calibration error over [`Report::calibration`].
    pub calibration_error: f64,
}

impl Report {
    /// The report of `probabilities` for 0/1 `labels`: precision and recall
    /// at the top [`DEFAULT_TOP_SHARES`] of rows (at least one row each),
    /// [`DEFAULT_CALIBRATION_BINS`] calibration bins. Needs both classes.
    pub fn new(labels: &[f32], probabilities: &[f32]) -> Result<Self> {
        let n = labels.len();
        let ks: Vec<usize> = DEFAULT_TOP_SHARES
            .iter()
            .map(|share| ((share * n as f64).ceil() as usize).max(1))
            .collect();
        Self::with(labels, probabilities, &ks, DEFAULT_CALIBRATION_BINS)
    }

    /// The report with precision and recall at each of `ks` and a
    /// calibration table of `bins` bins.
    pub fn with(labels: &[f32], probabilities: &[f32], ks: &[usize], bins: usize) -> Result<Self> {
        let positives = check_probabilities(labels, probabilities)?;
        let calibration = calibration(labels, probabilities, bins)?;
        Ok(Report {
            rows: labels.len(),
            positives,
            base_rate: positives as f64 / labels.len() as f64,
            auc: auc(labels, probabilities)?,
            logloss: logloss(labels, probabilities)?,
            brier: brier(labels, probabilities)?,
            at_k: at_k(labels, probabilities, ks)?,
            lift: lift_by_decile(labels, probabilities)?,
            calibration_error: calibration_error(&calibration),
            calibration,
        })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} rows, {} positive ({:.2} %)",
            self.rows,
            self.positives,
            100.0 * self.base_rate
        )?;
        writeln!(
            f,
            "AUC {:.4}   logloss {:.4}   Brier {:.4}   calibration error {:.4}",
            self.auc, self.logloss, self.brier, self.calibration_error
        )?;
        writeln!(f)?;
        writeln!(f, "top of the scores     rows   precision   recall")?;
        for a in &self.at_k {
            writeln!(
                f,
                "  {:>6.2} %       {:>9}   {:>8.2} %  {:>6.2} %",
                100.0 * a.share,
                a.k,
                100.0 * a.precision,
                100.0 * a.recall
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "decile     rows  positives    rate    lift  cum. lift   scores"
        )?;
        for d in &self.lift {
            writeln!(
                f,
                "  {:>4} {:>8} {:>10} {:>6.2} % {:>7.2} {:>10.2}   {:.4} .. {:.4}",
                d.decile,
                d.rows,
                d.positives,
                100.0 * d.rate,
                d.lift,
                d.cumulative_lift,
                d.min_score,
                d.max_score
            )?;
        }
        writeln!(f)?;
        writeln!(f, "predicted           rows   mean predicted   observed")?;
        for b in &self.calibration {
            writeln!(
                f,
                "  {:.2} .. {:.2} {:>9} {:>14.2} % {:>8.2} %",
                b.lower,
                b.upper,
                b.rows,
                100.0 * b.mean_predicted,
                100.0 * b.observed_rate
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 50 rows: labels and scores 0..=10 with many ties, made with numpy
    /// (`default_rng(3)`); the references below are scikit-learn 1.9's.
    const LABELS_50: &str = "10000111000010001100001100110111100111101001100001";
    const SCORES_50: [u8; 50] = [
        6, 5, 8, 0, 7, 4, 1, 7, 9, 2, 6, 3, 7, 7, 2, 8, 7, 7, 8, 4, 8, 9, 1, 8, 4, 5, 1, 7, 3, 9,
        3, 6, 4, 6, 2, 2, 7, 8, 6, 9, 2, 9, 2, 10, 6, 6, 10, 8, 8, 1,
    ];

    fn fifty() -> (Vec<f32>, Vec<f32>) {
        let labels = LABELS_50
            .bytes()
            .map(|b| f32::from(b - b'0'))
            .collect::<Vec<_>>();
        let scores = SCORES_50.iter().map(|&k| f32::from(k)).collect();
        (labels, scores)
    }

    /// The scores as probabilities 0.03 + 0.09·k (none on a bin edge).
    fn fifty_probabilities() -> (Vec<f32>, Vec<f32>) {
        let (labels, scores) = fifty();
        let p = scores.iter().map(|&k| (0.03 + 0.09 * f64::from(k)) as f32);
        (labels, p.collect())
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn auc_counts_ties_as_half_by_hand() {
        // positives score .35 .8 .4 .9 .1, negatives .1 .4 .4 .2 .65: the
        // positives beat 2, 5, 2 + 2 × ½, 5 and 0 + ½ negatives: 15.5 / 25.
        let y = [0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0];
        let s = [0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.2, 0.9, 0.1, 0.65];
        assert!(close(auc(&y, &s).unwrap(), 0.62, 1e-12));
        // perfect, reversed and constant scores
        let y = [0.0, 0.0, 1.0, 1.0];
        assert_eq!(auc(&y, &[0.1, 0.2, 0.3, 0.4]).unwrap(), 1.0);
        assert_eq!(auc(&y, &[0.4, 0.3, 0.2, 0.1]).unwrap(), 0.0);
        assert_eq!(auc(&y, &[0.5; 4]).unwrap(), 0.5);
    }

    #[test]
    fn auc_matches_scikit_learn_with_many_ties() {
        let (labels, scores) = fifty();
        // sklearn.metrics.roc_auc_score
        assert!(close(
            auc(&labels, &scores).unwrap(),
            0.4194847020933977,
            1e-12
        ));
        // a monotone transformation keeps the AUC
        let (_, p) = fifty_probabilities();
        assert!(close(auc(&labels, &p).unwrap(), 0.4194847020933977, 1e-12));
    }

    #[test]
    fn logloss_and_brier_match_scikit_learn() {
        let (labels, p) = fifty_probabilities();
        // sklearn.metrics.log_loss and brier_score_loss on the same float32 values
        assert!(close(
            logloss(&labels, &p).unwrap(),
            0.9446684234096462,
            1e-9
        ));
        assert!(close(
            brier(&labels, &p).unwrap(),
            0.34398399649968764,
            1e-9
        ));
        // clipped: a certain mistake costs -ln(1e-15), not infinity
        let certain = logloss(&[1.0], &[0.0]).unwrap();
        assert!(close(certain, -(1e-15f64).ln(), 1e-9));
        assert!(close(
            logloss(&[1.0, 0.0], &[0.5, 0.5]).unwrap(),
            2f64.ln(),
            1e-12
        ));
    }

    #[test]
    fn precision_and_recall_at_k_by_hand() {
        let y = [1.0, 0.0, 1.0, 0.0, 0.0, 1.0];
        let s = [0.9, 0.8, 0.7, 0.6, 0.5, 0.1];
        let r = at_k(&y, &s, &[1, 2, 3, 6, 100]).unwrap();
        let pr: Vec<(usize, f64, f64)> = r.iter().map(|a| (a.k, a.precision, a.recall)).collect();
        assert_eq!(
            pr,
            vec![
                (1, 1.0, 1.0 / 3.0),
                (2, 0.5, 1.0 / 3.0),
                (3, 2.0 / 3.0, 2.0 / 3.0),
                (6, 0.5, 1.0),
                (6, 0.5, 1.0),
            ]
        );
        assert!(at_k(&y, &s, &[0]).is_err());
        // ties keep input order: the first of two equal scores is taken
        let r = at_k(&[0.0, 1.0], &[0.5, 0.5], &[1]).unwrap();
        assert_eq!(r[0].positives, 0);
    }

    #[test]
    fn lift_by_decile_by_hand() {
        // 20 rows, scores 19..0; positives at scores 19, 18, 17, 10 and 2
        let scores: Vec<f32> = (0..20).rev().map(|v| v as f32).collect();
        let labels: Vec<f32> = scores
            .iter()
            .map(|&s| f32::from(u8::from([19.0, 18.0, 17.0, 10.0, 2.0].contains(&s))))
            .collect();
        let lift = lift_by_decile(&labels, &scores).unwrap();
        assert_eq!(lift.len(), 10);
        assert!(lift.iter().all(|d| d.rows == 2));
        let positives: Vec<usize> = lift.iter().map(|d| d.positives).collect();
        assert_eq!(positives, vec![2, 1, 0, 0, 1, 0, 0, 0, 1, 0]);
        // overall rate 5/20 = 0.25: decile 1's rate 1.0 is a lift of 4
        assert!(close(lift[0].lift, 4.0, 1e-12));
        assert!(close(lift[1].lift, 2.0, 1e-12));
        assert!(close(lift[1].cumulative_lift, 3.0, 1e-12));
        assert!(close(lift[9].cumulative_lift, 1.0, 1e-12));
        assert_eq!((lift[0].max_score, lift[0].min_score), (19.0, 18.0));
        // 23 rows: sizes 2 or 3, every row once
        let lift = lift_by_decile(&[1.0; 23], &[0.5; 23]).unwrap();
        assert_eq!(lift.iter().map(|d| d.rows).sum::<usize>(), 23);
        assert!(lift.iter().all(|d| d.rows == 2 || d.rows == 3));
        // fewer than ten rows: only non-empty deciles
        assert_eq!(lift_by_decile(&[1.0, 0.0], &[0.2, 0.1]).unwrap().len(), 2);
    }

    #[test]
    fn calibration_matches_scikit_learn() {
        let (labels, p) = fifty_probabilities();
        let table = calibration(&labels, &p, 5).unwrap();
        // sklearn.calibration.calibration_curve(y, p, n_bins=5)
        let observed = [
            0.8,
            0.38461538461538464,
            0.4444444444444444,
            0.5,
            0.2857142857142857,
        ];
        let predicted = [0.102, 0.28615384, 0.54999999, 0.70500001, 0.86571427];
        assert_eq!(table.len(), 5);
        for (b, (o, m)) in table.iter().zip(observed.iter().zip(predicted)) {
            assert!(close(b.observed_rate, *o, 1e-12), "{b:?}");
            assert!(close(b.mean_predicted, m, 1e-7), "{b:?}");
        }
        assert_eq!(table.iter().map(|b| b.rows).sum::<usize>(), 50);
        // by hand: two bins of two rows each, the middle bin left out
        let table = calibration(&[0.0, 1.0, 1.0, 1.0], &[0.1, 0.2, 0.9, 1.0], 3).unwrap();
        assert_eq!(table.len(), 2);
        assert_eq!((table[0].rows, table[0].observed_rate), (2, 0.5));
        assert_eq!((table[1].rows, table[1].observed_rate), (2, 1.0));
        assert!(close(table[1].mean_predicted, 0.95, 1e-7));
        // error: |0.15 - 0.5| and |0.95 - 1.0|, equal weights
        assert!(close(calibration_error(&table), (0.35 + 0.05) / 2.0, 1e-7));
    }

    #[test]
    fn bad_input_is_refused_with_the_row() {
        assert!(matches!(auc(&[], &[]), Err(Error::NoRows { .. })));
        assert!(matches!(auc(&[0.0, 1.0], &[0.1]), Err(Error::Shape { .. })));
        assert!(matches!(
            auc(&[0.0, 2.0], &[0.1, 0.2]),
            Err(Error::NotBinaryLabel { row: 1, .. })
        ));
        assert!(matches!(
            auc(&[0.0, f32::NAN], &[0.1, 0.2]),
            Err(Error::NotBinaryLabel { row: 1, .. })
        ));
        assert!(matches!(
            auc(&[0.0, 1.0], &[f32::NAN, 0.2]),
            Err(Error::BadScore { row: 0, .. })
        ));
        assert!(matches!(
            auc(&[1.0, 1.0], &[0.1, 0.2]),
            Err(Error::OneClass {
                positives: 2,
                negatives: 0,
                ..
            })
        ));
        assert!(matches!(
            logloss(&[0.0, 1.0], &[0.1, 1.5]),
            Err(Error::BadScore { row: 1, .. })
        ));
        assert!(matches!(
            calibration(&[0.0], &[0.1], 0),
            Err(Error::Param { .. })
        ));
    }

    #[test]
    fn report_gathers_everything_and_reads_as_text() {
        let (labels, p) = fifty_probabilities();
        let report = Report::new(&labels, &p).unwrap();
        assert_eq!((report.rows, report.positives), (50, 23));
        assert!(close(report.auc, 0.4194847020933977, 1e-12));
        // top 1 %, 5 %, 10 %, 20 % of 50 rows
        let ks: Vec<usize> = report.at_k.iter().map(|a| a.k).collect();
        assert_eq!(ks, vec![1, 3, 5, 10]);
        assert_eq!(report.lift.len(), 10);
        let json = serde_json::to_string(&report).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
        let text = report.to_string();
        assert!(text.contains("AUC 0.4195"), "{text}");
        assert!(text.contains("50 rows, 23 positive (46.00 %)"), "{text}");
        assert_eq!(
            text.lines().filter(|l| l.contains(" .. ")).count(),
            10 + report.calibration.len()
        );
    }
}
