//! In-process lookups in the embedded online store: 1 and 100 random
//! entities, 10 and all 100 features, from a memory-mapped synthetic
//! snapshot of 1,000,000 customers × 100 features written once into a
//! temporary lake (`CDP_BENCH_CUSTOMERS` changes the size).
//!
//! ```text
//! cargo bench -p cdp-store --bench lookup
//! ```

use std::hint::black_box;

use cdp_core::lake::Lake;
use cdp_store::online::Lookup;
use cdp_store::online::embedded::{self, EmbeddedStore};
use cdp_store::synthetic::{Spec, table};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

fn lookups(c: &mut Criterion) {
    let customers = std::env::var("CDP_BENCH_CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let spec = Spec {
        customers,
        features: 100,
        ..Spec::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = runtime.block_on(async {
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let t = table(&spec).unwrap();
        embedded::write(&lake, &t, &Default::default())
            .await
            .unwrap();
        EmbeddedStore::open(lake).await.unwrap()
    });
    let at = spec.event_time();
    let all: Vec<String> = spec.features().into_iter().map(|f| f.name).collect();
    let ten: Vec<String> = all.iter().step_by(10).cloned().collect();
    // xorshift over the customers, so each lookup hits a different row.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut pick = move |n: usize| -> Vec<String> {
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                Spec::id((state % customers as u64) as usize)
            })
            .collect()
    };

    let mut group = c.benchmark_group("embedded_lookup");
    for (entities, features, label) in [
        (1, &ten, "1_entity_10_features"),
        (1, &all, "1_entity_100_features"),
        (100, &ten, "100_entities_10_features"),
        (100, &all, "100_entities_100_features"),
    ] {
        group.throughput(Throughput::Elements(entities as u64));
        group.bench_function(label, |b| {
            b.iter_batched(
                || pick(entities),
                |ids| {
                    let got = store.lookup(&Lookup::new(&ids, features).at(at)).unwrap();
                    black_box(got)
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, lookups);
criterion_main!(benches);
