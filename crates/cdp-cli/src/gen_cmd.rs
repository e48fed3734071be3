//! `cdp gen`: a synthetic bank's raw files.

use std::path::PathBuf;

use chrono::NaiveDate;

use crate::progress::Bars;
use crate::{Context, print_json};

pub const EXAMPLES: &str = "\
Examples:
  # the committed sample: 2,000 people, 60 days, 1% dirty rows, gzipped
  cdp gen --out data/samples --customers 2000 --days 60 --seed 7 --dirty-rate 0.01 --gzip
  # a benchmark-sized, clean bank
  cdp gen --out /tmp/bank --customers 1000000 --days 90 --seed 1

Writes one file per source and business day (customers_2026-01-01.csv,
transactions_2026-01-01.csv, device_events_2026-01-01.ndjson, ...) plus
card_products.csv, and the ground truth under DIR/_truth/: counts.json (the
read/accepted/duplicates/quarantined counts ingest must report), dirty.csv
(every planted row with its expected reason), persons.csv (the true person
behind every customer_id), devices.csv and social.csv. The same arguments
give byte-identical files.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output folder (created; must be empty unless --force).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Number of people (a few percent hold a second customer_id).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    customers: u32,
    /// Number of business days.
    #[arg(long, value_name = "D", default_value_t = 30)]
    days: u32,
    /// Random seed.
    #[arg(long, value_name = "S", default_value_t = 42)]
    seed: u64,
    /// Share of rows that are dirty: re-sent duplicates, late events and contract violations.
    #[arg(long, value_name = "R", default_value_t = 0.0)]
    dirty_rate: f64,
    /// Write .gz files.
    #[arg(long)]
    gzip: bool,
    /// First business day.
    #[arg(long, value_name = "YYYY-MM-DD", default_value = "2026-01-01")]
    start: NaiveDate,
    /// Replace files an earlier `cdp gen` wrote in DIR.
    #[arg(long)]
    force: bool,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let config = cdp_gen::GenConfig {
        out: args.out,
        customers: args.customers,
        days: args.days,
        seed: args.seed,
        dirty_rate: args.dirty_rate,
        gzip: args.gzip,
        start: args.start,
        force: args.force,
    };
    let summary = cdp_gen::generate(&config, &Bars::new(ctx.json))?;
    if ctx.json {
        return print_json(&summary);
    }
    println!(
        "generated {} people ({} customer_ids), {} .. {}, {} files, {:.1} MB in {:.1} s -> {}",
        summary.persons,
        summary.customer_ids,
        summary.first_day,
        summary.last_day,
        summary.files,
        summary.bytes as f64 / 1e6,
        summary.seconds,
        summary.out.display()
    );
    println!(
        "{:<16} {:>12} {:>12} {:>11} {:>12}",
        "source", "read", "accepted", "duplicates", "quarantined"
    );
    for (source, c) in &summary.sources {
        println!(
            "{source:<16} {:>12} {:>12} {:>11} {:>12}",
            c.read, c.accepted, c.duplicates, c.quarantined
        );
    }
    let rate = summary.offers_accepted_30d as f64 / summary.offers_sent.max(1) as f64;
    println!(
        "offers sent {}, accepted within 30 days {} ({:.1}%)",
        summary.offers_sent,
        summary.offers_accepted_30d,
        100.0 * rate
    );
    Ok(())
}
