//! Online-store latency in-process: p50 / p99 of lookups of 1 and 100
//! random customers, through the `OnlineStore` trait, plus the time to
//! materialize the snapshot they read.
//!
//! Without `--lake`, a synthetic `silver.features` snapshot
//! (`--customers` × `--features`, default 1,000,000 × 100, every feature
//! type, some nulls) is written into a temporary lake and materialized
//! with `cdp materialize`'s code; with `--lake DIR`, the lake's current
//! embedded snapshot (`cdp materialize --as-of D --lake DIR`) is read as it
//! is. `--online redis://…` measures a Redis store instead (the synthetic
//! snapshot is materialized into it), and `--redis` starts a throwaway
//! `redis-server` for that.
//!
//! ```text
//! cargo run --release -p cdp-store --example lookup_latency
//! cargo run --release -p cdp-store --example lookup_latency -- --customers 100000 --features 10 --json
//! cargo run --release -p cdp-store --example lookup_latency -- --lake ./lake --lookup-features txn_count_30d,spend_30d --json
//! cargo run --release -p cdp-store --example lookup_latency -- --customers 1000000 --redis
//! ```
//!
//! `--json` prints one line: `{"backend", "customers", "features",
//! "materialize": {"seconds": {"read", "convert", "write", "total"}, …} or
//! null, "lookups": [{"entities", "features", "iterations", "p50_us",
//! "p99_us", "mean_us", "max_us"}, …]}`.

use std::time::{Duration, Instant};

use cdp_core::config::OnlineConfig;
use cdp_core::lake::Lake;
use cdp_core::progress::Silent;
use cdp_core::time::{BusinessCalendar, DEFAULT_TIMEZONE};
use cdp_engine::{Engine, EngineOptions};
use cdp_store::materialize::{MaterializeReport, materialize};
use cdp_store::online::embedded::EmbeddedStore;
use cdp_store::online::redis::server::RedisServer;
use cdp_store::online::{Lookup, OnlineStore, OnlineTarget};
use cdp_store::synthetic::{self, Spec};
use serde::Serialize;

#[derive(Debug)]
struct Options {
    lake: Option<String>,
    customers: usize,
    features: usize,
    lookup_features: Option<String>,
    iterations: usize,
    online: Option<String>,
    start_redis: bool,
    json: bool,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        lake: None,
        customers: 1_000_000,
        features: 100,
        lookup_features: None,
        iterations: 20_000,
        online: None,
        start_redis: false,
        json: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        let number = |v: String| {
            v.replace('_', "")
                .parse::<usize>()
                .map_err(|e| e.to_string())
        };
        match arg.as_str() {
            "--lake" => o.lake = Some(value()?),
            "--customers" => o.customers = number(value()?)?,
            "--features" => o.features = number(value()?)?,
            "--lookup-features" => o.lookup_features = Some(value()?),
            "--iterations" => o.iterations = number(value()?)?,
            "--online" => o.online = Some(value()?),
            "--redis" => o.start_redis = true,
            "--json" => o.json = true,
            "-h" | "--help" => {
                println!(
                    "lookup_latency [--lake DIR | --customers N --features N] \
                     [--lookup-features LIST|N] [--iterations N] [--online URI | --redis] [--json]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other} (see --help)")),
        }
    }
    Ok(o)
}

#[derive(Debug, Serialize)]
struct Latency {
    entities: usize,
    features: usize,
    iterations: usize,
    p50_us: f64,
    p99_us: f64,
    mean_us: f64,
    max_us: f64,
}

#[derive(Debug, Serialize)]
struct Summary {
    backend: &'static str,
    customers: usize,
    features: usize,
    materialize: Option<MaterializeReport>,
    lookups: Vec<Latency>,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let o = options()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let _redis = if o.start_redis {
        Some(RedisServer::start()?.ok_or("--redis: redis-server is not installed")?)
    } else {
        None
    };
    let online = match (&o.online, &_redis) {
        (Some(uri), _) => OnlineTarget::parse(uri)?,
        (None, Some(server)) => OnlineTarget::Redis(server.url()),
        (None, None) => OnlineTarget::Embedded,
    };
    let settings = OnlineConfig::default();
    let temp = tempfile::tempdir()?;
    let lake_uri = o
        .lake
        .clone()
        .unwrap_or_else(|| temp.path().to_string_lossy().into_owned());
    let lake = Lake::open(&lake_uri)?;

    let (materialized, ids, names) = runtime.block_on(async {
        let mut materialized = None;
        if o.lake.is_none() {
            let spec = Spec {
                customers: o.customers,
                features: o.features,
                ..Spec::default()
            };
            let started = Instant::now();
            let registry = synthetic::publish(&lake, &spec).await?;
            eprintln!(
                "synthetic silver.features: {} x {} written in {:.1} s",
                spec.customers,
                spec.features,
                started.elapsed().as_secs_f64()
            );
            let calendar = BusinessCalendar::new(DEFAULT_TIMEZONE)?;
            let engine = Engine::new(lake.clone(), calendar, &EngineOptions::default())?;
            let report =
                materialize(&engine, &registry, spec.as_of, &online, &settings, &Silent).await?;
            eprintln!(
                "materialized into {} in {:.2} s ({:?})",
                report.backend, report.seconds["total"], report.seconds
            );
            if let OnlineTarget::Redis(_) = online {
                let again =
                    materialize(&engine, &registry, spec.as_of, &online, &settings, &Silent)
                        .await?;
                eprintln!(
                    "materialized the same snapshot again: {} written, {} unchanged in {:.2} s",
                    again.entities_written, again.entities_unchanged, again.seconds["total"]
                );
            }
            materialized = Some(report);
        }
        // The unified_ids to look up come from the lake's embedded
        // snapshot, or the synthetic ones.
        let ids = if o.lake.is_some() {
            EmbeddedStore::open(lake.clone()).await?.entities()
        } else {
            (0..o.customers).map(Spec::id).collect()
        };
        let store = cdp_store::online::open(&online, &lake, &settings).await?;
        let info = store
            .info()
            .await?
            .ok_or("nothing is materialized in that online store")?;
        let names: Vec<String> = info.features.iter().map(|f| f.name.clone()).collect();
        Ok::<_, Box<dyn std::error::Error>>((materialized, ids, names))
    })?;
    if ids.is_empty() {
        return Err("the snapshot has no customers".into());
    }

    let lookup_features: Vec<String> = match &o.lookup_features {
        None => spread(&names, 10),
        Some(text) => match text.parse::<usize>() {
            Ok(n) => spread(&names, n),
            Err(_) => text.split(',').map(|s| s.trim().to_string()).collect(),
        },
    };
    let store = runtime.block_on(cdp_store::online::open(&online, &lake, &settings))?;
    let mut lookups = Vec::new();
    for (entities, features) in [
        (1, lookup_features.clone()),
        (100, lookup_features.clone()),
        (1, names.clone()),
        (100, names.clone()),
    ] {
        let iterations = if entities == 1 {
            o.iterations
        } else {
            (o.iterations / 10).max(100)
        };
        let latency = runtime.block_on(measure(
            store.as_ref(),
            &ids,
            &features,
            entities,
            iterations,
        ))?;
        lookups.push(latency);
    }
    let summary = Summary {
        backend: online.backend(),
        customers: ids.len(),
        features: names.len(),
        materialize: materialized,
        lookups,
    };
    if o.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "{} store, {} customers x {} features",
            summary.backend, summary.customers, summary.features
        );
        println!("  entities  features  iterations    p50 us    p99 us   mean us    max us");
        for l in &summary.lookups {
            println!(
                "  {:>8}  {:>8}  {:>10}  {:>8.1}  {:>8.1}  {:>8.1}  {:>8.1}",
                l.entities, l.features, l.iterations, l.p50_us, l.p99_us, l.mean_us, l.max_us
            );
        }
    }
    Ok(())
}

/// `n` names spread evenly over `names` (all when fewer).
fn spread(names: &[String], n: usize) -> Vec<String> {
    if n >= names.len() || n == 0 {
        return names.to_vec();
    }
    (0..n).map(|i| names[i * names.len() / n].clone()).collect()
}

/// Latency of `iterations` lookups of `entities` random customers (after
/// a tenth as many untimed ones).
async fn measure(
    store: &dyn OnlineStore,
    ids: &[String],
    features: &[String],
    entities: usize,
    iterations: usize,
) -> Result<Latency, Box<dyn std::error::Error>> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut pick = move || {
        (0..entities)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ids[(state % ids.len() as u64) as usize].clone()
            })
            .collect::<Vec<_>>()
    };
    let at = chrono::Utc::now();
    for _ in 0..iterations / 10 {
        let batch = pick();
        store.get(&Lookup::new(&batch, features).at(at)).await?;
    }
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let batch = pick();
        let started = Instant::now();
        let got = store.get(&Lookup::new(&batch, features).at(at)).await?;
        times.push(started.elapsed());
        std::hint::black_box(got);
    }
    times.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let quantile = |q: f64| us(times[((times.len() - 1) as f64 * q).round() as usize]);
    Ok(Latency {
        entities,
        features: features.len(),
        iterations,
        p50_us: quantile(0.5),
        p99_us: quantile(0.99),
        mean_us: us(times.iter().sum::<Duration>()) / times.len() as f64,
        max_us: us(*times.last().expect("at least one lookup")),
    })
}
