//! Hot path of ingest: cutting a block of CSV into records, and parsing and
//! checking those records into typed frames. `cargo bench -p cdp-ingest`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use cdp_core::contract::Format;
use cdp_core::rawfile::{CsvFields, split};
use cdp_core::time::BusinessCalendar;
use cdp_ingest::parse::FileContext;
use cdp_ingest::spec;

/// A block of transactions shaped like the generator's.
fn block(rows: usize) -> Vec<u8> {
    let mut text = String::from(
        "txn_id,customer_id,card_id,ts,amount,currency,mcc,merchant_id,merchant_name,channel,country,status\n",
    );
    for i in 0..rows {
        let name = if i % 7 == 0 {
            "\"Wang's \"\"Golden\"\" Dumplings, Ltd\""
        } else {
            "Golden Dragon #12"
        };
        let ts = if i % 2 == 0 {
            "2026-01-15T23:59:59+08:00"
        } else {
            "2026-01-15T15:10:00Z"
        };
        text.push_str(&format!(
            "TX{i:x},C{:09},CD{:x},{ts},{}.{:02},CNY,5812,M581200{:03},{name},pos,CN,approved\n",
            100_000_000 + i % 50_000,
            i % 90_000,
            i % 900,
            i % 100,
            i % 400
        ));
    }
    text.into_bytes()
}

fn benches(c: &mut Criterion) {
    let bytes = block(100_000);
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.sample_size(10);

    group.bench_function("split 100k CSV records", |b| {
        let mut spans = Vec::with_capacity(100_001);
        b.iter(|| {
            spans.clear();
            split(&bytes, Format::Csv, 1, true, &mut spans)
        })
    });

    let specs = spec::embedded().expect("embedded specs");
    let spec = specs
        .iter()
        .find(|s| s.source == "transactions")
        .expect("transactions spec");
    let mut spans = Vec::new();
    split(&bytes, Format::Csv, 1, true, &mut spans);
    let header: Vec<String> = CsvFields::default()
        .parse(&bytes[spans[0].start..spans[0].end])
        .iter()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let ctx = FileContext {
        spec,
        calendar: BusinessCalendar::default(),
        layout: Some(spec.contract.csv_layout(&header).expect("header fits")),
        file: "bench.csv",
        run: "bench",
    };
    group.bench_function("parse and check 100k records", |b| {
        b.iter(|| ctx.parse_block(&bytes, &spans[1..]).expect("parses"))
    });
    group.finish();
}

criterion_group!(ingest, benches);
criterion_main!(ingest);
