//! `cdp ingest`: raw files to bronze Parquet.

use anyhow::Context as _;

use cdp_core::lake::Lake;
use cdp_ingest::IngestOptions;

use crate::progress::Bars;
use crate::{Context, print_json};

pub const EXAMPLES: &str = "\
Examples:
  cdp ingest --source data/samples
  cdp ingest --source /data/raw/2026-03-01 --lake s3://bank-lake/cdp --json

Every file in the source whose name matches a spec in pipelines/ingest/
(transactions*.csv[.gz], device_events*.ndjson[.gz], ...) is read, checked
against its contract in schemas/, de-duplicated by its key and written to
LAKE/bronze/<source>/dt=YYYY-MM-DD/ as zstd Parquet. Bad rows go to
LAKE/quarantine/<source>/ with file, line, reason and the original text.
A file whose content was ingested before is skipped, so re-running is safe;
nothing is visible until a source's manifest is published, so an interrupted
run leaves the previous state and the next run finishes the job.
For every source: read = accepted + duplicates + quarantined.

--json prints {\"run\": …, \"sources\": {\"transactions\": {\"read\": …,
\"accepted\": …, \"duplicates\": …, \"quarantined\": …, …}, …}, \"unreadable\": […]}.
Exit code 1 when a file could not be read at all (missing, broken gzip, wrong
header): everything else is still ingested, and the file is retried next run.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder or object-store URL holding the raw files.
    #[arg(long, value_name = "DIR_OR_URI")]
    source: String,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let lake = Lake::connect(&ctx.config.lake)?;
    let options = IngestOptions {
        calendar: ctx.config.time.calendar()?,
        ..IngestOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime.block_on(cdp_ingest::ingest(
        &lake,
        &args.source,
        &options,
        &Bars::new(ctx.json),
    ))?;
    if ctx.json {
        print_json(&report)?;
    } else {
        println!(
            "ingest run {} from {} in {:.1} s",
            report.run, report.source, report.seconds
        );
        println!(
            "{:<16} {:>6} {:>8} {:>12} {:>12} {:>11} {:>12}",
            "source", "files", "skipped", "read", "accepted", "duplicates", "quarantined"
        );
        for (source, r) in &report.sources {
            let c = &r.counts;
            println!(
                "{source:<16} {:>6} {:>8} {:>12} {:>12} {:>11} {:>12}",
                r.files, r.skipped, c.read, c.accepted, c.duplicates, c.quarantined
            );
        }
    }
    if !report.unreadable.is_empty() {
        let list: Vec<String> = report
            .unreadable
            .iter()
            .map(|u| format!("{} ({})", u.file, u.error))
            .collect();
        anyhow::bail!(
            "{} file(s) could not be read and will be retried next run: {}",
            list.len(),
            list.join("; ")
        );
    }
    Ok(())
}
