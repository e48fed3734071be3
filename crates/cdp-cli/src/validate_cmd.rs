//! `cdp validate`: check raw files against the contracts without ingesting.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;

use cdp_core::contract::Contracts;
use cdp_core::rawfile::check_file;

use crate::{Context, print_json};

pub const EXAMPLES: &str = "\
Examples:
  cdp validate --source data/samples
  cdp validate --source data/raw --violations bad_rows.csv --json

Every file whose name matches a contract (schemas/*.toml, e.g.
transactions*.csv[.gz]) is read row by row. Rows that break the contract are
counted by reason code (missing_required, unknown_enum, invalid_timestamp, ...)
and, with --violations, listed with file, line, reason, field and detail.
Personal data never appears in the details. Exit code 1 when a file cannot be
read at all (missing, broken gzip, wrong header); bad rows alone are not an
error.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder of raw files.
    #[arg(long, value_name = "DIR")]
    source: PathBuf,
    /// Write every violation to this CSV file.
    #[arg(long, value_name = "FILE")]
    violations: Option<PathBuf>,
}

#[derive(Debug, Default, Serialize)]
struct SourceReport {
    files: usize,
    rows: u64,
    valid: u64,
    invalid: u64,
    reasons: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Serialize)]
struct Report {
    source: PathBuf,
    sources: BTreeMap<String, SourceReport>,
    unreadable: Vec<String>,
    ignored: Vec<String>,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let contracts = Contracts::embedded();
    let files = list_files(&args.source)?;
    let mut report = Report {
        source: args.source.clone(),
        sources: BTreeMap::new(),
        unreadable: Vec::new(),
        ignored: Vec::new(),
    };
    let mut out = match &args.violations {
        Some(path) => {
            let mut w = csv::Writer::from_path(path)
                .with_context(|| format!("creating {}", path.display()))?;
            w.write_record(["source", "file", "line", "reason", "field", "detail"])?;
            Some(w)
        }
        None => None,
    };
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(contract) = contracts.for_file(&name) else {
            report.ignored.push(name);
            continue;
        };
        let entry = report.sources.entry(contract.source.clone()).or_default();
        entry.files += 1;
        let check = match check_file(&path, contract) {
            Ok(check) => check,
            Err(e) => {
                tracing::error!("{e}");
                report.unreadable.push(e.to_string());
                continue;
            }
        };
        entry.rows += check.rows;
        entry.invalid += check.violations.len() as u64;
        entry.valid += check.rows - check.violations.len() as u64;
        for (line, v) in &check.violations {
            *entry.reasons.entry(v.reason.code()).or_default() += 1;
            if let Some(w) = out.as_mut() {
                w.write_record([
                    contract.source.as_str(),
                    name.as_str(),
                    &line.to_string(),
                    v.reason.code(),
                    v.field.as_deref().unwrap_or(""),
                    &v.detail,
                ])?;
            }
        }
    }
    if let Some(mut w) = out {
        w.flush()?;
    }
    if ctx.json {
        print_json(&report)?;
    } else {
        println!(
            "{:<16} {:>6} {:>12} {:>12} {:>9}  reasons",
            "source", "files", "rows", "valid", "invalid"
        );
        for (source, r) in &report.sources {
            let reasons: Vec<String> = r.reasons.iter().map(|(k, n)| format!("{k}={n}")).collect();
            println!(
                "{source:<16} {:>6} {:>12} {:>12} {:>9}  {}",
                r.files,
                r.rows,
                r.valid,
                r.invalid,
                reasons.join(" ")
            );
        }
    }
    if !report.unreadable.is_empty() {
        anyhow::bail!(
            "{} file(s) could not be read: {}",
            report.unreadable.len(),
            report.unreadable.join("; ")
        );
    }
    Ok(())
}

fn list_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}
