//! `cdp build --as-of D`: bronze to the silver layer.

use chrono::NaiveDate;

use cdp_engine::features::FeatureRegistry;

use crate::progress::Bars;
use crate::{Context, engine, print_json};

pub const EXAMPLES: &str = "\
Examples:
  cdp build --as-of 2026-03-01
  cdp build --as-of 2026-03-01 --lake s3://bank-lake/cdp --json

Builds the silver layer as of D from what ingest published: only events
before D+1 00:00 business time ([time] timezone, Asia/Shanghai by default)
are read, whatever else the lake holds, so a build for D never changes when
later data arrives.
  silver.identity_map   (source, source_key, unified_id, matched_by): one
                        unified_id per person; customer_ids merge on a shared
                        id_number, phone or e-mail; ids stay stable night to night
  silver.customer_360   one golden row per person, PII masked, plus hashes
  silver.features       every feature of `cdp features list`, one row per person
The three are published together as one snapshot (LAKE/silver/<table>/as_of=D/);
re-building D replaces it atomically. Read them with `cdp query`.
--json prints {\"as_of\", \"run\", \"persons\", \"rows\": {…}, \"seconds\": {…}, …}.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The as-of business date (YYYY-MM-DD).
    #[arg(long, value_name = "YYYY-MM-DD")]
    as_of: NaiveDate,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let registry = FeatureRegistry::embedded()?;
    let (runtime, engine) = engine::start(ctx)?;
    let report = runtime.block_on(cdp_engine::build::build(
        &engine,
        &registry,
        args.as_of,
        &Bars::new(ctx.json),
    ))?;
    if ctx.json {
        return print_json(&report);
    }
    println!(
        "built silver as of {} (run {}) in {:.1} s{}",
        report.as_of,
        report.run,
        report.seconds.get("total").copied().unwrap_or_default(),
        if report.replaced {
            ", replacing the earlier snapshot"
        } else {
            ""
        }
    );
    println!(
        "{} customer_ids -> {} persons; ids carried over from {}",
        report.customer_ids,
        report.persons,
        report
            .previous_as_of
            .map_or("nothing (first build)".to_string(), |d| d.to_string())
    );
    for (table, rows) in &report.rows {
        println!("  silver.{table:<14} {rows:>10} rows");
    }
    println!("  {} features", report.features);
    Ok(())
}
