//! Single-row prediction latency of cdp's gradient-boosted trees, in
//! process: p50 / p90 / p99 / p99.9 of `Model::margin_row` over many
//! different rows, then batch throughput.
//!
//! ```text
//! cargo run --release -p cdp-ml --example predict_latency [-- MODEL]
//! ```
//!
//! Without `MODEL` it fits the serving-sized model the issue names (200
//! trees of depth 6, binary:logistic) on 20,000 generated rows of 50
//! features (10% missing); with `MODEL` (a cdp model directory, its
//! model.json, or an XGBoost JSON file) it times that model on generated
//! rows of its width. Set `ROWS` for the number of timed predictions
//! (default 200,000). Single rows run on the calling thread; batches use
//! rayon's pool (`RAYON_NUM_THREADS`).

use std::hint::black_box;
use std::time::Instant;

use cdp_ml::model::{Algo, Dataset, Model, Params, format, learner};

/// `rows` rows of `cols` features in [0, 1), a tenth missing, and a label
/// that depends on a few of them non-linearly.
fn data(rows: usize, cols: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut values = Vec::with_capacity(rows * cols);
    let mut labels = Vec::with_capacity(rows);
    for _ in 0..rows {
        let start = values.len();
        for _ in 0..cols {
            let v = next();
            values.push(if next() < 0.1 { f32::NAN } else { v });
        }
        let x = |j: usize| values[start + j % cols];
        let signal = x(0) + x(1) * x(2) + (x(3) * 6.0).sin() * 0.3
            - if x(4).is_nan() { 0.2 } else { x(4) * 0.5 };
        labels.push(f32::from(u8::from(signal + next() * 0.3 > 0.9)));
    }
    (values, labels)
}

fn serving_model() -> Box<dyn Model> {
    let cols = 50;
    let (values, labels) = data(20_000, cols, 1);
    let names = (0..cols).map(|i| format!("f{i}")).collect();
    let train = Dataset::new(names, values, labels).expect("a dataset");
    let params = Params::from_pairs([
        "objective=binary:logistic",
        "num_round=200",
        "max_depth=6",
        "eta=0.1",
        "seed=1",
    ])
    .expect("parameters");
    learner(Algo::Gbdt)
        .expect("a learner")
        .fit(&train, None, &params)
        .expect("a fit")
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64
}

fn main() {
    let model = match std::env::args().nth(1) {
        Some(path) => format::load_path(std::path::Path::new(&path)).expect("a model"),
        None => serving_model(),
    };
    let cols = model.features().len();
    let timed: usize = std::env::var("ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    // distinct rows, so every prediction walks other paths of the trees
    let pool = 10_000;
    let (rows, _) = data(pool, cols, 2);

    // warm up: the first row lays the trees out for single rows
    for row in rows.chunks(cols).take(1000) {
        black_box(model.margin_row(row).expect("a margin"));
    }
    let mut nanos = Vec::with_capacity(timed);
    for i in 0..timed {
        let row = &rows[(i % pool) * cols..(i % pool + 1) * cols];
        let start = Instant::now();
        let margin = model.margin_row(black_box(row));
        let elapsed = start.elapsed();
        black_box(margin.expect("a margin"));
        nanos.push(elapsed.as_nanos() as u64);
    }
    nanos.sort_unstable();
    let mean = nanos.iter().sum::<u64>() as f64 / nanos.len() as f64;
    println!(
        "single row ({} model, {} features, {} timed rows): p50 {:.2} us, p90 {:.2} us, p99 {:.2} us, p99.9 {:.2} us, mean {:.2} us",
        model.algo(),
        cols,
        timed,
        percentile(&nanos, 0.50) / 1000.0,
        percentile(&nanos, 0.90) / 1000.0,
        percentile(&nanos, 0.99) / 1000.0,
        percentile(&nanos, 0.999) / 1000.0,
        mean / 1000.0,
    );

    // batches: the same rows, many times over
    let repeats = 10;
    let start = Instant::now();
    for _ in 0..repeats {
        black_box(model.margins(black_box(&rows)).expect("margins"));
    }
    let seconds = start.elapsed().as_secs_f64() / repeats as f64;
    println!(
        "batch of {pool} rows: {:.2} ms, {:.0} rows/s ({:.3} us per row) on {} threads",
        seconds * 1000.0,
        pool as f64 / seconds,
        seconds * 1e6 / pool as f64,
        rayon::current_num_threads(),
    );
    let start = Instant::now();
    for _ in 0..repeats {
        for row in rows.chunks(cols) {
            black_box(model.margin_row(black_box(row)).expect("a margin"));
        }
    }
    let seconds = start.elapsed().as_secs_f64() / repeats as f64;
    println!(
        "the same {pool} rows one by one: {:.2} ms ({:.3} us per row) on 1 thread",
        seconds * 1000.0,
        seconds * 1e6 / pool as f64,
    );
    let explain = 1000;
    let start = Instant::now();
    black_box(
        model
            .contributions(&rows[..explain * cols])
            .expect("contributions"),
    );
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "TreeSHAP of {explain} rows: {:.2} ms ({:.1} us per row)",
        seconds * 1000.0,
        seconds * 1e6 / explain as f64
    );
}
