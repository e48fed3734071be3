//! Fits a tagger on a matrix saved as `.npy` and applies it, timing both:
//! the cdp side of `bench/tag.sh` (scikit-learn runs the same matrix).
//!
//! ```text
//! cargo run --release -p cdp-ml --example tag_matrix -- MATRIX.npy [K] [COMPONENTS] [LABELS_OUT.npy]
//! ```
//!
//! Prints one JSON object: seconds (fit, apply, and their stages), the
//! components kept and their variance share, segment sizes, and the mean
//! squared distance of a row to its centroid in component space.

use std::time::Instant;

use cdp_core::config::{Segments, TaggerConfig};
use cdp_ml::tagger::Tagger;
use ndarray::{Array1, Array2};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        return Err("usage: tag_matrix MATRIX.npy [K] [COMPONENTS] [LABELS_OUT.npy]".into());
    };
    let k: usize = args.get(2).map_or(Ok(8), |a| a.parse())?;
    let components: usize = args.get(3).map_or(Ok(10), |a| a.parse())?;

    let started = Instant::now();
    let x: Array2<f64> = ndarray_npy::read_npy(path)?;
    let load = started.elapsed().as_secs_f64();
    let features: Vec<String> = (0..x.ncols()).map(|j| format!("f{j:02}")).collect();
    let settings = TaggerConfig {
        features: features.clone(),
        segments: Segments::Fixed(k),
        // exactly `components` components, like scikit-learn's n_components
        variance_target: 1.0,
        max_components: components,
        ..TaggerConfig::default()
    };

    let started = Instant::now();
    let (tagger, fit_stages) = Tagger::fit(x.view(), &features, &settings, None)?;
    // what a nightly run applies: the model as read back from its JSON
    let tagger = tagger.through_json()?;
    let fit = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let tags = tagger.apply(x.view(), &features, settings.psi_warning)?;
    let apply = started.elapsed().as_secs_f64();

    let centroids = tagger.centroids();
    let mut distance = 0.0;
    for (row, &s) in tags.scores.rows().into_iter().zip(&tags.segments) {
        distance += row
            .iter()
            .zip(centroids.row(s as usize))
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>();
    }
    let rows = tags.segments.len();
    if let Some(out) = args.get(4) {
        let labels: Array1<i64> = tags.segments.iter().map(|&s| i64::from(s)).collect();
        ndarray_npy::write_npy(out, &labels)?;
    }
    let report = serde_json::json!({
        "rows": rows,
        "features": features.len(),
        "threads": rayon::current_num_threads(),
        "seconds": { "load": load, "fit": fit, "apply": apply },
        "fit_stages": fit_stages,
        "apply_stages": tags.seconds,
        "components": tagger.pca.n_components(),
        "explained_variance_ratio": tagger.pca.explained_variance_ratio.iter().sum::<f64>(),
        "k": tagger.segments.len(),
        "sizes": tagger.segments.iter().map(|s| s.size).collect::<Vec<_>>(),
        "mean_squared_distance": distance / rows.max(1) as f64,
    });
    println!("{report}");
    Ok(())
}
