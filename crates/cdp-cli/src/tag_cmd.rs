//! `cdp tag --as-of D [--refit] [--plot FILE]`: customer tags.

use std::path::PathBuf;

use cdp_engine::tag::{TagOptions, tag};
use chrono::NaiveDate;

use crate::progress::Bars;
use crate::{Context, engine, print_json};

pub const EXAMPLES: &str = "\
Examples:
  cdp tag --as-of 2026-03-01
  cdp tag --as-of 2026-03-01 --refit --plot segments.png
  cdp tag --as-of 2026-03-02 --json
  cdp query \"SELECT segment_name, count(*) FROM gold.tags WHERE as_of = DATE '2026-03-01' GROUP BY 1 ORDER BY 2 DESC\"

Reads silver.features as of D (run `cdp build --as-of D` first) and gives
every customer a segment and tags with the current tagger, the model stored
in LAKE/models/tagger/<version>/model.json (readable JSON). The first run,
or --refit, fits a new version on this snapshot: the [tagger] features are
robustly standardised (log for skewed amounts, missing values filled with
the fit-time median, or maximum for days_since_*, 1st-99th percentile
clipping), reduced with PCA to the components that explain
[tagger] variance_target of the variance (at most max_components), and
segmented with k-means (k by silhouette, or [tagger] segments = N). Names
come from the loadings and centroids; older versions are kept, and nightly
runs re-apply the current one, so a customer's segment changes only when
their features do.
  gold.tags       unified_id, segment, segment_name, tags, components
                  (component scores), tagger_version
  gold.tag_drift  population stability index per feature and per segment
                  against the fit-time population; a warning above
                  [tagger] psi_warning (0.2)
--plot draws the first two components coloured by segment (.png or .svg).
--json prints {\"as_of\", \"tagger_version\", \"fitted\", \"customers\",
\"components\": […], \"segments\": […], \"drift\": {…}, \"seconds\": {…}, …}.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The as-of business date (YYYY-MM-DD) of the feature snapshot.
    #[arg(long, value_name = "YYYY-MM-DD")]
    as_of: NaiveDate,
    /// Fit a new tagger version on this snapshot (the old versions stay).
    #[arg(long)]
    refit: bool,
    /// Draw the first two components coloured by segment (.png or .svg).
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let (runtime, engine) = engine::start(ctx)?;
    let options = TagOptions {
        refit: args.refit,
        plot: args.plot,
    };
    let report = runtime.block_on(tag(
        &engine,
        &ctx.config.tagger,
        args.as_of,
        &options,
        &Bars::new(ctx.json),
    ))?;
    if ctx.json {
        return print_json(&report);
    }
    println!(
        "tagged {} customers as of {} with tagger {}{} in {:.1} s{}",
        report.customers,
        report.as_of,
        report.tagger_version,
        match &report.fitted {
            Some(why) => format!(" (fitted now: {why})"),
            None => format!(
                " (fitted on {})",
                report
                    .fitted_on
                    .map_or("another population".to_string(), |d| d.to_string())
            ),
        },
        report.seconds.get("total").copied().unwrap_or_default(),
        if report.replaced {
            ", replacing the earlier tags"
        } else {
            ""
        }
    );
    println!(
        "  {} features -> {} components keeping {:.1}% of the variance",
        report.features,
        report.components.len(),
        report.explained_variance * 100.0
    );
    for c in &report.components {
        println!(
            "    {:<5} {:>5.1}%  {}",
            c.component,
            c.explained_variance_ratio * 100.0,
            c.name
        );
    }
    println!("  {} segments (share now, at fit):", report.segments.len());
    for s in &report.segments {
        println!(
            "    {:>2}  {:<40} {:>9}  {:>5.1}%  ({:.1}%)",
            s.id,
            s.name,
            s.customers,
            s.share * 100.0,
            s.baseline_share * 100.0
        );
    }
    let worst = report
        .drift
        .worst_feature
        .as_ref()
        .map_or("none".to_string(), |(f, psi)| format!("{f} {psi:.3}"));
    println!(
        "  drift (PSI, warning above {}): worst feature {worst}; segment shares {:.3}",
        report.drift.threshold, report.drift.segments_psi
    );
    for w in &report.drift.warnings {
        println!("  warning: {w}");
    }
    for (table, rows) in &report.rows {
        println!("  gold.{table:<10} {rows:>10} rows");
    }
    if let Some(path) = &report.plot {
        println!("  plot: {}", path.display());
    }
    Ok(())
}
