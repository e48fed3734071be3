//! `cdp query SQL`: SQL over every lake table.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use cdp_engine::query::{self, OutputFormat};
use cdp_engine::tables::Access;

use crate::{Context, engine};

pub const EXAMPLES: &str = "\
Examples:
  cdp query \"SELECT unified_id, txn_count_30d, spend_30d FROM silver.features WHERE as_of = DATE '2026-03-01' ORDER BY spend_30d DESC LIMIT 10\"
  cdp query \"SELECT matched_by, count(*) FROM silver.identity_map GROUP BY 1\" --format csv
  cdp query \"SELECT * FROM silver.customer_360\" --format parquet --out c360.parquet
  cdp query \"SHOW TABLES\"

Tables: bronze.<source> (customers, transactions, device_events,
social_profiles, offer_events, card_products), silver.identity_map,
silver.customer_360, silver.features (every published as-of date; filter on
as_of), gold.tags and gold.tag_drift (cdp tag), ref.fx_rates,
ref.mcc_categories, ref.card_products. The SQL dialect is Apache DataFusion's.
PII in bronze.customers (full_name, id_number, phone, email) is masked.";

/// Output formats of `cdp query`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// A text table (the default on a terminal).
    Table,
    /// CSV with a header.
    Csv,
    /// JSON lines: one object per row.
    Json,
    /// Parquet (needs --out).
    Parquet,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// One SQL statement.
    sql: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Write to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let format = match args.format {
        Format::Table => OutputFormat::Table,
        Format::Csv => OutputFormat::Csv,
        Format::Json => OutputFormat::Json,
        Format::Parquet => OutputFormat::Parquet,
    };
    let (runtime, engine) = engine::start(ctx)?;
    let batches = runtime.block_on(async {
        query::register_lake(&engine, Access::Masked).await?;
        query::run(&engine, &args.sql).await
    })?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    match &args.out {
        Some(path) => {
            query::write_file(&batches, format, path)?;
            if !ctx.json {
                eprintln!("{rows} rows written to {}", path.display());
            }
        }
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            query::write(&batches, format, &mut lock)?;
            lock.flush().context("writing to stdout")?;
        }
    }
    Ok(())
}
