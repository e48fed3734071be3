//! `cdp offers --audience FILE --as-of D --out LIST [--report FILE.html]
//! [--dry-run]`: a marketer's offer list.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use cdp_engine::audience::{self, Audience, OfferList};
use chrono::NaiveDate;

use crate::progress::Bars;
use crate::{Context, engine, print_json};

pub const EXAMPLES: &str = "\
Examples:
  cdp offers --audience pipelines/audiences/travel_card.toml --as-of 2026-03-16 --dry-run
  cdp offers --audience pipelines/audiences/travel_card.toml --as-of 2026-03-16 \\
      --out travel.csv --report travel.html
  cdp offers --audience pipelines/audiences/cashback_budget.toml --as-of 2026-03-16 --out cashback.parquet --json
  cdp offers --audience pipelines/audiences/travel_card.toml --as-of 2026-03-16 --out travel.csv \\
      --engine ballista://10.0.0.5:50050

The audience file (pipelines/audiences/*.toml, see the README) names the card
offer, the channel, an eligibility predicate in SQL over c (silver.customer_360),
f (silver.features) and t (gold.tags) as of D, the suppressions (marketing
opt-out, unreachable on the channel, KYC level, products held, contacted or
offered within N business days per bronze.offer_events, suppression list
files), the minimum score, the list size or budget, caps per segment or city,
and the control group's share and seed. Needs `cdp build`, `cdp score` (and
`cdp tag` for t) as of D.

Customers are ranked by their score for the offer in gold.scores as of D
(best first, then unified_id); the control flag is a seeded hash of the
unified_id, so the same inputs give the same list byte for byte.
  LIST (.csv or .parquet)  rank, unified_id, customer_id, full_name_masked,
                           phone_masked, email_masked, offer_id, channel,
                           score, reasons, segment, city, tag_segment,
                           control, model_version (contact fields masked)
  LIST.run.json            the run record: audience file SHA-256, snapshot
                           and score runs, model version, seed, limits and
                           the count at every funnel step
  --report FILE.html       one self-contained page: funnel, scores, expected
                           acceptances, the model's lift and calibration,
                           segment/city mix, top reasons
With --engine ballista://HOST:PORT (or [engine] cluster) the funnel's SQL
runs on an Apache DataFusion Ballista cluster (`cdp cluster --help`), its
intermediate tables in the lake's _scratch/ for the run; selection and
writing stay here.
--dry-run prints the funnel and writes nothing. A mistake in the audience
file is reported with its line: `audience file F, line N: …`. --json prints
the run record.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The audience file (TOML).
    #[arg(long, value_name = "FILE")]
    audience: PathBuf,
    /// The as-of business date (YYYY-MM-DD) of the snapshot and scores.
    #[arg(long, value_name = "YYYY-MM-DD")]
    as_of: NaiveDate,
    /// The list to write: .csv or .parquet (its run record goes beside it).
    #[arg(long, value_name = "FILE", required_unless_present = "dry_run")]
    out: Option<PathBuf>,
    /// Also write the HTML report here.
    #[arg(long, value_name = "FILE.html")]
    report: Option<PathBuf>,
    /// Print the funnel; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Where the plans run: `local` (this process) or `ballista://HOST:PORT`
    /// (default: [engine] cluster).
    #[arg(long, value_name = "URI")]
    engine: Option<String>,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    if let Some(out) = &args.out {
        let ext = out
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if !matches!(ext.as_deref(), Some("csv" | "parquet")) {
            bail!(
                "--out {}: the list must end in .csv or .parquet",
                out.display()
            );
        }
    }
    let spec = Audience::load(&args.audience)?;
    let (runtime, engine) = engine::start_on(ctx, args.engine.as_deref())?;
    let mut list = runtime.block_on(audience::evaluate(
        &engine,
        &spec,
        args.as_of,
        &Bars::new(ctx.json),
    ))?;
    if !args.dry_run
        && let Some(out) = &args.out
    {
        for path in [Some(out), args.report.as_ref()].into_iter().flatten() {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating the folder of {}", path.display()))?;
            }
        }
        audience::write(&mut list, out, args.report.as_deref())?;
    }
    if ctx.json {
        return print_json(&list.record);
    }
    print_summary(&list, args.dry_run);
    Ok(())
}

fn print_summary(list: &OfferList, dry_run: bool) {
    let r = &list.record;
    println!(
        "{} — {} ({}) by {} as of {}, offer model {}{}",
        r.audience.name,
        r.audience.offer_name,
        r.audience.offer,
        r.audience.channel,
        r.as_of,
        r.model_version,
        if dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        }
    );
    for step in &r.funnel {
        let removed = if step.removed > 0 {
            format!("-{}", step.removed)
        } else {
            String::new()
        };
        println!(
            "  {:<12} {:>10} {:>10}  {}",
            step.step, step.customers, removed, step.label
        );
    }
    println!(
        "  {:<12} {:>10} {:>10}  to contact",
        "treatment", r.treatment, ""
    );
    println!("  {:<12} {:>10} {:>10}  held out", "control", r.control, "");
    println!(
        "expected acceptances {:.1} (sum of the treatment's scores){}",
        r.expected_acceptances,
        r.expected_acceptances_calibrated
            .map(|c| format!(", {c:.1} through the model's calibration"))
            .unwrap_or_default()
    );
    if let Some(file) = &r.list {
        println!(
            "list: {} ({} rows); run record: {}",
            file.path,
            r.selected,
            audience::record_path(std::path::Path::new(&file.path)).display()
        );
    }
    if let Some(file) = &r.report {
        println!("report: {}", file.path);
    }
}
