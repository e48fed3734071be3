//! `cdp historical --entities FILE --features LIST|--service NAME --out FILE`:
//! a point-in-time-correct training set.

use std::path::PathBuf;

use cdp_engine::features::FeatureRegistry;
use cdp_store::historical::{HistoricalRequest, KeyKind, Retrieval, historical};
use cdp_store::services::FeatureServices;

use crate::progress::Bars;
use crate::{Context, engine, print_json};

pub const EXAMPLES: &str = "\
Examples:
  cdp historical --entities offers.parquet --service card_offers_v1 --out train.parquet
  cdp historical --entities labels.csv --features txn_count_30d,spend_30d,days_since_last_txn --out train.csv
  cdp historical --entities logins.csv --key-column device --key-kind device_id \\
      --timestamp-column login_at --features failed_logins_30d,rooted_devices_90d --out x.parquet
  cdp historical --entities offers.parquet --service card_offers_v1 --out train.parquet --json
  cdp historical --entities offers.parquet --service card_offers_v1 --out train.parquet \\
      --engine ballista://10.0.0.5:50050

The entity file (CSV or Parquet) has one row per example: a customer key and
the instant the example is about. The key column is the one named customer_id,
device_id, card_id or unified_id (or --key-column); the timestamp column is
event_timestamp, event_time, timestamp, event_ts or ts, else the one column of
a timestamp or date type (or --timestamp-column). A timestamp with an offset
or zone is that instant; one without is business time ([time] timezone); a
date is that business day.

Each row gets the features of the snapshot of the latest built day D whose
cutoff (D+1 00:00 business time) is at or before its timestamp: a timestamp
during day X sees X-1 or older, never X. A value is null when that snapshot
is ttl_days (of its family, `cdp features list`) or more older than the
timestamp. Keys resolve through the same snapshot's identity map; a device or
card several persons used resolves to nobody. Rows keep their order and every
column; added are unified_id (unless the key is one), features_as_of (the
snapshot used) and entity_status (ok, unknown_key, shared_device, shared_card,
no_snapshot, no_timestamp, no_key), then the features. The output is CSV or
Parquet by its extension. With --engine ballista://HOST:PORT (or [engine]
cluster) the join runs on an Apache DataFusion Ballista cluster (`cdp cluster
--help`), the entity rows in the lake's _scratch/ for the run. --json prints {\"rows\", \"snapshots\", \"status\",
\"expired\", \"seconds\", …}.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The entity file: CSV or Parquet with a key and a timestamp per row.
    #[arg(long, value_name = "FILE")]
    entities: PathBuf,
    /// Features to retrieve, comma-separated (`cdp features list`).
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        conflicts_with = "service"
    )]
    features: Vec<String>,
    /// A feature service whose features to retrieve (`cdp features list`).
    #[arg(long, value_name = "NAME")]
    service: Option<String>,
    /// Where to write the training set: .csv or .parquet.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The key column (default: the column named customer_id, device_id, card_id or unified_id).
    #[arg(long, value_name = "COLUMN")]
    key_column: Option<String>,
    /// What the key column holds when its name does not say: customer_id, device_id, card_id or unified_id.
    #[arg(long, value_name = "KIND", value_parser = parse_kind)]
    key_kind: Option<KeyKind>,
    /// The timestamp column (default: event_timestamp, event_time, timestamp, event_ts or ts).
    #[arg(long, value_name = "COLUMN")]
    timestamp_column: Option<String>,
    /// Where the plans run: `local` (this process) or `ballista://HOST:PORT`
    /// (default: [engine] cluster).
    #[arg(long, value_name = "URI")]
    engine: Option<String>,
}

fn parse_kind(text: &str) -> Result<KeyKind, String> {
    KeyKind::parse(text).ok_or_else(|| {
        format!("{text:?} is not a key kind: customer_id, device_id, card_id or unified_id")
    })
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let registry = FeatureRegistry::embedded()?;
    let features = match &args.service {
        Some(name) => FeatureServices::embedded(&registry)?
            .get(name)?
            .features
            .clone(),
        None => args
            .features
            .iter()
            .map(|f| f.trim().to_string())
            .filter(|f| !f.is_empty())
            .collect(),
    };
    if features.is_empty() {
        anyhow::bail!("no features asked for: give --features a,b,c or --service NAME");
    }
    let request = HistoricalRequest {
        entities: args.entities,
        out: args.out,
        service: args.service,
        retrieval: Retrieval {
            features,
            key_column: args.key_column,
            key_kind: args.key_kind,
            timestamp_column: args.timestamp_column,
        },
    };
    let (runtime, engine) = engine::start_on(ctx, args.engine.as_deref())?;
    let report = runtime.block_on(historical(
        &engine,
        &registry,
        &request,
        &Bars::new(ctx.json),
    ))?;
    if ctx.json {
        return print_json(&report);
    }
    let s = &report.summary;
    println!(
        "{} rows x {} features -> {} in {:.2} s",
        s.rows,
        s.features.len(),
        report.out.display(),
        report.seconds.get("total").copied().unwrap_or_default()
    );
    println!(
        "  key {} ({}), timestamp {}",
        s.key_column,
        s.key_kind.map(|k| k.name()).unwrap_or("?"),
        s.timestamp_column
    );
    let status: Vec<String> = s.status.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!("  entity_status: {}", status.join(", "));
    let snapshots: Vec<String> = s
        .snapshots
        .iter()
        .map(|(d, n)| format!("{d} ({n})"))
        .collect();
    println!(
        "  snapshots used: {}",
        if snapshots.is_empty() {
            "none".to_string()
        } else {
            snapshots.join(", ")
        }
    );
    let expired: Vec<String> = s
        .expired
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(f, n)| format!("{f} {n}"))
        .collect();
    if !expired.is_empty() {
        println!("  expired (older than TTL, null): {}", expired.join(", "));
    }
    Ok(())
}
