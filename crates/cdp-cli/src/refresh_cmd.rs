//! `cdp refresh`, `cdp runs list|show`, `cdp gc`: the nightly job and its
//! records.

use std::io::Write as _;

use anyhow::Context as _;
use cdp_core::lake::Lake;
use cdp_refresh::pipeline::{Observer, Request, refresh};
use cdp_refresh::quality::Outcome;
use cdp_refresh::record::{self, RunRecord, StageRecord, StageStatus};
use cdp_refresh::retention;
use cdp_store::online::OnlineTarget;
use chrono::NaiveDate;

use crate::progress::Bars;
use crate::{Context, print_json};

pub const REFRESH_EXAMPLES: &str = "\
Examples:
  cdp refresh --source /data/drops/2026-03-17 --as-of 2026-03-17
  cdp refresh --as-of 2026-03-17 --retrain
  cdp refresh --source s3://bank-drops/2026-03-17/ --as-of 2026-03-17 --json
  cdp refresh --from 2026-03-01 --to 2026-03-16          # backfill, in order

The nightly job, as one run with a run id:
  ingest       the new raw files of --source (already ingested files are skipped)
  build        silver as of D (identity map, customer 360, features)
  quality      the gate: quarantine share and reconciliation per source;
               persons, unique ids, null rates, ranges and drift (PSI) of every
               numeric feature against the previous snapshot ([refresh.quality])
  tag          gold.tags with the current tagger (fitted only when there is none)
  labels       gold.offer_labels: past offers whose 30-day outcome is known
  train        a new offer model when due: --retrain, no model yet, or the
               current one is [refresh] retrain_every_days (7) old
  score        gold.scores for every eligible customer x card offer
  materialize  the online store ([online] backend, or --online)
  publish      the release that `cdp serve` follows, then retention ([retention])
A stage is skipped when its inputs are unchanged since an earlier run did it
(content fingerprints), so re-running after a failure resumes where it
stopped. Nothing is served from tonight until publish: a run that fails or is
killed leaves yesterday's release serving. A failed quality gate publishes
nothing and exits with status 3; other failures with 1.
Only one refresh runs per lake: the lock is a lease in the lake
(LAKE/_locks/refresh/), renewed while the run lives and taken over once a dead
run's lease ([refresh] lock_lease_seconds, 300) ran out.
Each run writes LAKE/_runs/<run id>.json; read it with `cdp runs show ID`.
--json prints the run records as one JSON array.";

pub const RUNS_EXAMPLES: &str = "\
Examples:
  cdp runs list
  cdp runs show 20261207T020000Z-1a2b3c
  cdp runs show 20261207T02          # any unique prefix
  cdp runs list --json | jq '.[0].status'";

pub const GC_EXAMPLES: &str = "\
Examples:
  cdp gc --dry-run
  cdp gc

Applies [retention]: keeps the newest keep_snapshots (45) silver and gold
dates, the released one and any a running `cdp serve` holds (servers pin what
they serve in LAKE/_serving/), the newest keep_models (5) model versions per
kind besides the current and released ones, and the newest keep_runs (100)
run records; files nothing names any more are deleted once older than
grace_minutes (60). Scratch folders a killed cluster job left
(LAKE/_scratch/<run id>/, jobs started over a day ago) are deleted. Bronze is
never deleted. `cdp refresh` runs this after every publish.";

#[derive(Debug, clap::Args)]
pub struct RefreshArgs {
    /// A folder or object-store URL of new raw files to ingest first.
    #[arg(long, value_name = "DIR_OR_URI")]
    source: Option<String>,
    /// The business date to refresh (YYYY-MM-DD).
    #[arg(long, value_name = "YYYY-MM-DD", required_unless_present_all = ["from", "to"], conflicts_with_all = ["from", "to"])]
    as_of: Option<NaiveDate>,
    /// Backfill: the first date of the range.
    #[arg(long, value_name = "YYYY-MM-DD", requires = "to")]
    from: Option<NaiveDate>,
    /// Backfill: the last date of the range.
    #[arg(long, value_name = "YYYY-MM-DD", requires = "from")]
    to: Option<NaiveDate>,
    /// Train a new offer model whatever the schedule says.
    #[arg(long)]
    retrain: bool,
    /// The online store: `embedded` or redis://host:port/db (default: [online] backend).
    #[arg(long, value_name = "URI")]
    online: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum RunsAction {
    /// Every run, newest first: id, date, status, duration, stages.
    List,
    /// One run in full: stages, rows, checks, drift, warnings.
    Show {
        /// The run id, or a unique prefix of it.
        id: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// Say what would be deleted, delete nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Prints one line per stage event on stderr.
struct Lines {
    quiet: bool,
}

impl Observer for Lines {
    fn started(&self, run: &str, as_of: NaiveDate, stage: &str) {
        if !self.quiet {
            eprintln!("refresh {run} {as_of} {stage}: started");
        }
    }

    fn finished(&self, run: &str, as_of: NaiveDate, stage: &StageRecord) {
        if self.quiet {
            return;
        }
        let status = match stage.status {
            StageStatus::Done => "done",
            StageStatus::Skipped => "skipped",
            StageStatus::NotDue => "not due",
            StageStatus::Failed => "FAILED",
            StageStatus::Running => "running",
        };
        let rows = match (stage.rows_in, stage.rows_out) {
            (Some(i), Some(o)) => format!(", {i} rows in, {o} out"),
            (None, Some(o)) => format!(", {o} rows"),
            _ => String::new(),
        };
        let detail = stage
            .detail
            .as_deref()
            .map_or(String::new(), |d| format!(" ({d})"));
        eprintln!(
            "refresh {run} {as_of} {}: {status} in {:.1} s{rows}{detail}",
            stage.name, stage.seconds
        );
    }
}

pub fn refresh_run(ctx: &Context, args: RefreshArgs) -> anyhow::Result<()> {
    let dates = match (args.as_of, args.from, args.to) {
        (Some(d), _, _) => vec![d],
        (None, Some(from), Some(to)) => Request::range(from, to)?,
        _ => anyhow::bail!("give --as-of D, or --from D1 --to D2"),
    };
    let online = OnlineTarget::parse(args.online.as_deref().unwrap_or(&ctx.config.online.backend))?;
    let request = Request {
        source: args.source,
        dates,
        retrain: args.retrain,
        online,
    };
    let runtime = runtime()?;
    let lake = Lake::connect(&ctx.config.lake)?;
    let bars = Bars::new(true);
    let observer = Lines { quiet: ctx.json };
    let outcome = runtime.block_on(refresh(&lake, &ctx.config, &request, &bars, &observer));
    let (records, error) = match outcome {
        Ok(records) => (records, None),
        Err((records, e)) => (records, Some(e)),
    };
    if ctx.json {
        print_json(&records)?;
    } else {
        for r in &records {
            summary(r)?;
        }
    }
    // main turns a failed gate into exit status 3
    error.map_or(Ok(()), |e| Err(e.into()))
}

pub fn runs(ctx: &Context, action: RunsAction) -> anyhow::Result<()> {
    let runtime = runtime()?;
    let lake = Lake::connect(&ctx.config.lake)?;
    match action {
        RunsAction::List => {
            let records = runtime.block_on(record::list(&lake))?;
            if ctx.json {
                return print_json(&records);
            }
            if records.is_empty() {
                println!(
                    "no refresh runs in {} yet (`cdp refresh --help`)",
                    lake.uri()
                );
                return Ok(());
            }
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{:<24} {:<10} {:<11} {:>8}  {:<9} stages (done/skipped)",
                "run", "as of", "status", "seconds", "published"
            )?;
            for r in &records {
                let count = |s: StageStatus| r.stages.iter().filter(|x| x.status == s).count();
                writeln!(
                    out,
                    "{:<24} {:<10} {:<11} {:>8.1}  {:<9} {}/{}{}",
                    r.run,
                    r.as_of,
                    status_word(r),
                    r.seconds(),
                    r.published.map_or("-".into(), |v| format!("v{v}")),
                    count(StageStatus::Done),
                    count(StageStatus::Skipped),
                    r.stages
                        .last()
                        .filter(
                            |s| s.status != StageStatus::Done && s.status != StageStatus::Skipped
                        )
                        .map_or(String::new(), |s| format!(
                            ", last: {} {:?}",
                            s.name, s.status
                        )),
                )?;
            }
            Ok(())
        }
        RunsAction::Show { id } => {
            let r = runtime.block_on(record::show(&lake, &id))?;
            if ctx.json {
                return print_json(&r);
            }
            summary(&r)?;
            let mut out = std::io::stdout().lock();
            let checks: Vec<_> = r
                .checks
                .iter()
                .filter(|c| c.outcome != Outcome::Pass)
                .collect();
            writeln!(
                out,
                "  checks: {} passed, {} not:",
                r.checks.len() - checks.len(),
                checks.len()
            )?;
            for c in checks {
                writeln!(
                    out,
                    "    {:<5} {:<48} {:>12.4}  {}  ({})",
                    format!("{:?}", c.outcome).to_lowercase(),
                    c.name,
                    c.value,
                    c.threshold,
                    c.detail
                )?;
            }
            let mut drift = r.drift.clone();
            drift.sort_by(|a, b| b.psi.total_cmp(&a.psi));
            if !drift.is_empty() {
                writeln!(
                    out,
                    "  drift (PSI against the previous snapshot), highest first:"
                )?;
                for d in drift.iter().take(10) {
                    writeln!(
                        out,
                        "    {:<36} {:>8.4}  null rate {:.3} -> {:.3}",
                        d.feature, d.psi, d.null_rate.0, d.null_rate.1
                    )?;
                }
            }
            Ok(())
        }
    }
}

pub fn gc(ctx: &Context, args: GcArgs) -> anyhow::Result<()> {
    let runtime = runtime()?;
    let lake = Lake::connect(&ctx.config.lake)?;
    let report = runtime.block_on(retention::gc(&lake, &ctx.config.retention, args.dry_run))?;
    if ctx.json {
        return print_json(&report);
    }
    let verb = if args.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    println!(
        "{verb} {} files ({:.1} MB); dropped {} snapshot dates, {} model versions, {} run records, {} scratch files of killed jobs; {} unreferenced files are younger than the grace period",
        report.files_deleted,
        report.bytes_deleted as f64 / 1e6,
        report.dates_dropped.len(),
        report.models_dropped.len(),
        report.runs_deleted,
        report.scratch_files_deleted,
        report.files_in_grace,
    );
    if !report.pinned_dates.is_empty() {
        println!(
            "kept for running servers: {}",
            report
                .pinned_dates
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

fn status_word(r: &RunRecord) -> &'static str {
    match r.status {
        cdp_refresh::RunStatus::Running => "running",
        cdp_refresh::RunStatus::Succeeded => "succeeded",
        cdp_refresh::RunStatus::GateFailed => "gate failed",
        cdp_refresh::RunStatus::Failed => "failed",
    }
}

/// A run's stages as a table on stdout.
fn summary(r: &RunRecord) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "refresh {} as of {}: {} in {:.1} s{}",
        r.run,
        r.as_of,
        status_word(r),
        r.seconds(),
        r.published
            .map_or(String::new(), |v| format!(", published release v{v}"))
    )?;
    for s in &r.stages {
        writeln!(
            out,
            "  {:<12} {:<8} {:>8.1} s  {:>10} {:>10}  {}",
            s.name,
            format!("{:?}", s.status).to_lowercase(),
            s.seconds,
            s.rows_in.map_or(String::new(), |n| n.to_string()),
            s.rows_out.map_or(String::new(), |n| n.to_string()),
            s.detail.as_deref().unwrap_or("")
        )?;
    }
    for w in &r.warnings {
        writeln!(out, "  warning: {w}")?;
    }
    if let Some(e) = &r.error {
        writeln!(out, "  error: {e}")?;
    }
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
