//! `cdp score --as-of D`: offer scores for every eligible customer.

use cdp_engine::score::score;
use chrono::NaiveDate;

use crate::progress::Bars;
use crate::{Context, engine, print_json};

pub const EXAMPLES: &str = "\
Examples:
  cdp score --as-of 2026-03-31
  cdp score --as-of 2026-03-31 --json
  cdp query \"SELECT offer_id, count(*), avg(probability) FROM gold.scores WHERE as_of = DATE '2026-03-31' AND rank = 1 GROUP BY 1\"

Scores every person of silver.features as of D (run `cdp build --as-of D`
first) against every card offer they are eligible for: income band at least
the product's min_income_band, and the product not already held
(silver.customer_360.products). The current offer model (`cdp train`) gives
each pair a probability of acceptance; each person's offers are ranked (1 =
most likely) and explained by the largest positive contributions (TreeSHAP)
in words ([offers] top_reasons of them).
  gold.scores  as_of, unified_id, offer_id, probability, rank, reasons,
               model_version
Re-scoring a date replaces its scores atomically. --json prints {\"as_of\",
\"model_version\", \"customers\", \"scored_customers\", \"scores\", \"per_offer\",
\"mean_probability\", \"seconds\", …}.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The as-of business date (YYYY-MM-DD) of the feature snapshot to score.
    #[arg(long, value_name = "YYYY-MM-DD")]
    as_of: NaiveDate,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let (runtime, engine) = engine::start(ctx)?;
    let report = runtime.block_on(score(
        &engine,
        &ctx.config.offers,
        args.as_of,
        &Bars::new(ctx.json),
    ))?;
    if ctx.json {
        return print_json(&report);
    }
    println!(
        "scored {} offers for {} of {} customers as of {} with offer model {} ({}) in {:.1} s{}",
        report.scores,
        report.scored_customers,
        report.customers,
        report.as_of,
        report.model_version,
        report.algo,
        report.seconds.get("total").copied().unwrap_or_default(),
        if report.replaced {
            ", replacing the earlier scores"
        } else {
            ""
        }
    );
    for (offer, n) in &report.per_offer {
        println!(
            "  {offer:<24} {n:>9} eligible  mean probability {:.3}",
            report
                .mean_probability
                .get(offer)
                .copied()
                .unwrap_or_default()
        );
    }
    Ok(())
}
