//! `cdp build --as-of D`: bronze to the silver layer.

use chrono::NaiveDate;

use cdp_engine::features::FeatureRegistry;

use crate::progress::Bars;
use crate::{Context, engine, print_json};

pub const EXAMPLES: &str = "\
Examples:
  cdp build --as-of 2026-03-01
  cdp build --as-of 2026-03-01 --lake s3://bank-lake/cdp --json
  cdp build --as-of 2026-03-01 --engine ballista://10.0.0.5:50050

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
With --engine ballista://HOST:PORT (or [engine] cluster) the SQL runs on an
Apache DataFusion Ballista cluster (see `cdp cluster --help`) with the same
results; identity resolution (union-find over every customer key) runs in
this process.
--json prints {\"as_of\", \"run\", \"persons\", \"rows\": {…}, \"seconds\": {…}, …}.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The as-of business date (YYYY-MM-DD).
    #[arg(long, value_name = "YYYY-MM-DD")]
    as_of: NaiveDate,
    /// Where the plans run: `local` (this process) or `ballista://HOST:PORT`
    /// (default: [engine] cluster).
    #[arg(long, value_name = "URI")]
    engine: Option<String>,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let registry = FeatureRegistry::embedded()?;
    let (runtime, engine) = engine::start_on(ctx, args.engine.as_deref())?;
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
