//! Prediction speed of cdp's gradient-boosted trees (200 trees of depth 6,
//! 50 features, binary:logistic, fitted once on generated rows): one row
//! through `Model::margin_row` (the serving path: no allocation), batches
//! of 1,000 and 100,000 rows through `Model::margins` and
//! `Model::predict`, and TreeSHAP (`Model::contributions`) of 100 rows
//! and of 10,000 (blocks of rows in lockstep, chunks in parallel).
//!
//! ```text
//! cargo bench -p cdp-ml --bench predict
//! ```

use std::hint::black_box;

use cdp_ml::model::{Algo, Dataset, Model, Params, learner};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const FEATURES: usize = 50;

/// `rows` rows of generated features (a tenth missing) and labels.
fn data(rows: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut values = Vec::with_capacity(rows * FEATURES);
    let mut labels = Vec::with_capacity(rows);
    for _ in 0..rows {
        let start = values.len();
        for _ in 0..FEATURES {
            let v = next();
            values.push(if next() < 0.1 { f32::NAN } else { v });
        }
        let x = |j: usize| values[start + j];
        let signal = x(0) + x(1) * x(2) + (x(3) * 6.0).sin() * 0.3
            - if x(4).is_nan() { 0.2 } else { x(4) * 0.5 };
        labels.push(f32::from(u8::from(signal + next() * 0.3 > 0.9)));
    }
    (values, labels)
}

fn model() -> Box<dyn Model> {
    let (values, labels) = data(20_000, 1);
    let names = (0..FEATURES).map(|i| format!("f{i}")).collect();
    let train = Dataset::new(names, values, labels).unwrap();
    let params = Params::from_pairs([
        "objective=binary:logistic",
        "num_round=200",
        "max_depth=6",
        "eta=0.1",
        "seed=1",
    ])
    .unwrap();
    learner(Algo::Gbdt)
        .unwrap()
        .fit(&train, None, &params)
        .unwrap()
}

fn predict(c: &mut Criterion) {
    let model = model();
    let (rows, _) = data(100_000, 2);

    let mut group = c.benchmark_group("gbdt_200x6");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("margin_row", |b| {
        b.iter(|| {
            i = (i + 1) % 1000;
            black_box(model.margin_row(black_box(&rows[i * FEATURES..(i + 1) * FEATURES])))
        })
    });
    for n in [1_000usize, 100_000] {
        let batch = &rows[..n * FEATURES];
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("margins_{n}"), |b| {
            b.iter(|| black_box(model.margins(black_box(batch)).unwrap()))
        });
    }
    group.throughput(Throughput::Elements(100_000));
    group.bench_function("predict_100000", |b| {
        b.iter(|| black_box(model.predict(black_box(&rows)).unwrap()))
    });
    group.throughput(Throughput::Elements(100));
    group.sample_size(20);
    group.bench_function("contributions_100", |b| {
        b.iter(|| {
            black_box(
                model
                    .contributions(black_box(&rows[..100 * FEATURES]))
                    .unwrap(),
            )
        })
    });
    group.throughput(Throughput::Elements(10_000));
    group.sample_size(10);
    group.bench_function("contributions_10000", |b| {
        let batch = &rows[..10_000 * FEATURES];
        b.iter(|| black_box(model.contributions(black_box(batch)).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, predict);
criterion_main!(benches);
