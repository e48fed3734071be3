//! Row-chunked parallel loops whose results never depend on the number of
//! threads: rows are cut into fixed-size chunks, chunks run on rayon, and
//! per-chunk results are combined in chunk order. The same data and seed
//! therefore give bit-identical models on 2 cores or 64.

use ndarray::{ArrayView2, ArrayViewMut2, Axis};
use rand::SeedableRng;
use rand::seq::index;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Rows per chunk: large enough to amortise scheduling, small enough to
/// spread a million rows over many cores.
pub(crate) const CHUNK_ROWS: usize = 8192;

/// Runs `f` on every chunk of rows in parallel; results in chunk order.
pub(crate) fn map_chunks<T, F>(x: ArrayView2<'_, f64>, f: F) -> Vec<T>
where
    T: Send,
    F: Fn(ArrayView2<'_, f64>) -> T + Sync + Send,
{
    x.axis_chunks_iter(Axis(0), CHUNK_ROWS)
        .into_par_iter()
        .map(f)
        .collect()
}

/// Runs `f` on every chunk of rows of `x` in parallel, mutably.
pub(crate) fn for_each_chunk_mut<F>(mut x: ArrayViewMut2<'_, f64>, f: F)
where
    F: Fn(ArrayViewMut2<'_, f64>) + Sync + Send,
{
    x.axis_chunks_iter_mut(Axis(0), CHUNK_ROWS)
        .into_par_iter()
        .for_each(f);
}

/// `size` distinct row indices out of `n`, sorted, drawn with `seed`
/// (every row when `n <= size`). `salt` separates the samples of
/// different stages drawn from one seed.
pub(crate) fn sample_rows(n: usize, size: usize, seed: u64, salt: u64) -> Vec<usize> {
    if n <= size {
        return (0..n).collect();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut rows = index::sample(&mut rng, n, size).into_vec();
    rows.sort_unstable();
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn chunk_results_come_back_in_order() {
        let n = CHUNK_ROWS * 3 + 5;
        let x = Array2::from_shape_fn((n, 2), |(r, c)| (r * 2 + c) as f64);
        let firsts = map_chunks(x.view(), |c| c[[0, 0]]);
        assert_eq!(
            firsts,
            [
                0.0,
                2.0 * CHUNK_ROWS as f64,
                4.0 * CHUNK_ROWS as f64,
                6.0 * CHUNK_ROWS as f64
            ]
        );
    }

    #[test]
    fn samples_are_seeded_sorted_and_distinct() {
        let a = sample_rows(1000, 100, 7, 1);
        assert_eq!(a, sample_rows(1000, 100, 7, 1));
        assert_ne!(a, sample_rows(1000, 100, 7, 2));
        assert_ne!(a, sample_rows(1000, 100, 8, 1));
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(sample_rows(10, 100, 7, 1), (0..10).collect::<Vec<_>>());
    }
}
