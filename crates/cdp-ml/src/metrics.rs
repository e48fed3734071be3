//! Comparing a segmentation with known groups: the contingency table and
//! the adjusted Rand index (Hubert and Arabie, 1985; the same value as
//! scikit-learn's `adjusted_rand_score`).

use std::collections::BTreeMap;

/// Rows = known groups, columns = segments, cells = customers in both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contingency<A: Ord, B: Ord> {
    /// Cell counts by (group, segment).
    pub cells: BTreeMap<A, BTreeMap<B, u64>>,
    /// All segments seen, sorted.
    pub columns: Vec<B>,
}

impl<A: Ord + Clone, B: Ord + Clone> Contingency<A, B> {
    /// Counts pairs `(group, segment)`.
    pub fn new<'a>(pairs: impl IntoIterator<Item = (&'a A, &'a B)>) -> Self
    where
        A: 'a,
        B: 'a,
    {
        let mut cells: BTreeMap<A, BTreeMap<B, u64>> = BTreeMap::new();
        let mut columns = std::collections::BTreeSet::new();
        for (a, b) in pairs {
            *cells
                .entry(a.clone())
                .or_default()
                .entry(b.clone())
                .or_default() += 1;
            columns.insert(b.clone());
        }
        Contingency {
            cells,
            columns: columns.into_iter().collect(),
        }
    }

    /// The adjusted Rand index: 1 for identical partitions, about 0 for
    /// unrelated ones.
    pub fn adjusted_rand_index(&self) -> f64 {
        let pairs = |n: u64| (n as f64) * (n as f64 - 1.0) / 2.0;
        let mut column_sums: BTreeMap<&B, u64> = BTreeMap::new();
        let mut sum_cells = 0.0;
        let mut sum_rows = 0.0;
        let mut total = 0u64;
        for row in self.cells.values() {
            let mut row_sum = 0;
            for (b, &n) in row {
                sum_cells += pairs(n);
                *column_sums.entry(b).or_default() += n;
                row_sum += n;
            }
            sum_rows += pairs(row_sum);
            total += row_sum;
        }
        let sum_columns: f64 = column_sums.values().map(|&n| pairs(n)).sum();
        let expected = sum_rows * sum_columns / pairs(total).max(1.0);
        let max = (sum_rows + sum_columns) / 2.0;
        if (max - expected).abs() < f64::EPSILON {
            return 1.0;
        }
        (sum_cells - expected) / (max - expected)
    }
}

impl<A: Ord + std::fmt::Display, B: Ord + std::fmt::Display> std::fmt::Display
    for Contingency<A, B>
{
    /// A text table: one row per group, one column per segment.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let width = self
            .cells
            .keys()
            .map(|a| a.to_string().len())
            .max()
            .unwrap_or(0)
            .max(5);
        let headers: Vec<String> = self.columns.iter().map(|b| b.to_string()).collect();
        let cell = headers.iter().map(String::len).max().unwrap_or(0).max(6);
        write!(f, "{:width$}", "")?;
        for h in &headers {
            write!(f, " {h:>cell$}")?;
        }
        writeln!(f)?;
        for (a, row) in &self.cells {
            write!(f, "{:width$}", a.to_string())?;
            for b in &self.columns {
                write!(f, " {:>cell$}", row.get(b).copied().unwrap_or(0))?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ari(a: &[u32], b: &[u32]) -> f64 {
        Contingency::new(a.iter().zip(b)).adjusted_rand_index()
    }

    #[test]
    fn matches_scikit_learn_values() {
        // sklearn.metrics.adjusted_rand_score([0,0,1,1],[0,0,1,1]) == 1.0
        assert_eq!(ari(&[0, 0, 1, 1], &[1, 1, 0, 0]), 1.0);
        // adjusted_rand_score([0,0,1,2],[0,0,1,1]) == 0.5714285714285715
        assert!((ari(&[0, 0, 1, 2], &[0, 0, 1, 1]) - 0.571_428_571_428_571_5).abs() < 1e-12);
        // adjusted_rand_score([0,0,1,1],[0,1,0,1]) == -0.5
        assert!((ari(&[0, 0, 1, 1], &[0, 1, 0, 1]) + 0.5).abs() < 1e-12);
    }

    #[test]
    fn table_prints_groups_by_segments() {
        let groups = ["a", "a", "b"];
        let segments = [1, 2, 2];
        let t = Contingency::new(groups.iter().zip(&segments));
        let text = t.to_string();
        assert!(text.contains("a          1      1"), "{text}");
        assert!(text.contains("b          0      1"), "{text}");
    }
}
