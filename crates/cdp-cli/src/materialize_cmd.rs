//! `cdp materialize --as-of D [--online URI]`: a feature snapshot into the
//! online store.

use cdp_engine::features::FeatureRegistry;
use cdp_store::materialize::materialize;
use cdp_store::online::OnlineTarget;
use chrono::NaiveDate;

use crate::progress::Bars;
use crate::{Context, engine, print_json};

pub const EXAMPLES: &str = "\
Examples:
  cdp materialize --as-of 2026-03-01
  cdp materialize --as-of 2026-03-01 --online redis://localhost:6379/0
  cdp materialize --as-of 2026-03-01 --json
  CDP__ONLINE__BACKEND=redis://cache:6379/2 cdp materialize --as-of 2026-03-01

Copies every declared feature of silver.features as of D (run `cdp build
--as-of D` first) into the online store that product teams and `cdp serve`
read, where each value carries the snapshot's event time (D+1 00:00
business time) and is served as expired once older than its feature's TTL.
  embedded  (the default) a new immutable snapshot in the lake,
            LAKE/online/embedded/as_of=D/run=R/: features.arrow (Arrow IPC,
            readable by any Arrow tool) and index.bin (the unified_id hash
            index); LAKE/_manifests/online/embedded.json makes it current,
            and readers memory-map it and switch to it without a restart.
            The newest [online] keep_snapshots (3) are kept.
  redis://host:port/db  one hash per customer, <prefix>:e:<unified_id>,
            written in pipelined batches of [online] batch_size; only
            customers whose features changed since the last run are
            written, customers no longer in the snapshot are removed, and
            keys expire [online] key_grace_days after the longest TTL unless
            a later run confirms them.
--online (or [online] backend) picks the store. --json prints {\"as_of\",
\"backend\", \"target\", \"rows\", \"features\", \"skipped_features\",
\"entities_written\", \"entities_unchanged\", \"entities_deleted\",
\"version\", \"bytes\", \"seconds\": {\"read\", \"convert\", \"write\",
\"total\"}}.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The as-of business date (YYYY-MM-DD) of the feature snapshot to materialize.
    #[arg(long, value_name = "YYYY-MM-DD")]
    as_of: NaiveDate,
    /// The online store: `embedded` (in the lake) or redis://host:port/db
    /// (default: [online] backend).
    #[arg(long, value_name = "URI")]
    online: Option<String>,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let target = OnlineTarget::parse(args.online.as_deref().unwrap_or(&ctx.config.online.backend))?;
    let (runtime, engine) = engine::start(ctx)?;
    let registry = FeatureRegistry::embedded()?;
    let report = runtime.block_on(materialize(
        &engine,
        &registry,
        args.as_of,
        &target,
        &ctx.config.online,
        &Bars::new(ctx.json),
    ))?;
    if ctx.json {
        return print_json(&report);
    }
    println!(
        "materialized {} customers x {} features as of {} into {} ({}) in {:.1} s",
        report.rows,
        report.features,
        report.as_of,
        report.backend,
        report.target,
        report.seconds.get("total").copied().unwrap_or_default(),
    );
    match target {
        OnlineTarget::Embedded => println!(
            "  snapshot version {}, {:.1} MB",
            report.version,
            report.bytes.unwrap_or_default() as f64 / 1e6
        ),
        OnlineTarget::Redis(_) => println!(
            "  {} written, {} unchanged, {} removed; version {}",
            report.entities_written,
            report.entities_unchanged,
            report.entities_deleted,
            report.version
        ),
    }
    if !report.skipped_features.is_empty() {
        println!(
            "  not in the snapshot (rebuild it to add them): {}",
            report.skipped_features.join(", ")
        );
    }
    Ok(())
}
