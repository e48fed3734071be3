//! Reading raw source files (plain or `.gz`) record by record, with the
//! line each record starts on and its original bytes, and checking them
//! against their contract.
//!
//! ```
//! use cdp_core::contract::Contracts;
//! use cdp_core::rawfile::check_file;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("card_products.csv");
//! std::fs::write(&path, cdp_core::reference::CARD_PRODUCTS_CSV).unwrap();
//! let contract = Contracts::embedded().get("card_products").unwrap();
//! let check = check_file(&path, contract).unwrap();
//! assert_eq!((check.rows, check.violations.len()), (6, 0));
//! ```

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::contract::{Contract, CsvLayout, Format, Violation};

/// A raw file that cannot be read as a whole.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Missing, unreadable or truncated (including broken gzip).
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A CSV header that does not fit the contract.
    #[error("{}: header does not match the {source_name} contract: {mismatch}", path.display())]
    Header {
        path: PathBuf,
        source_name: String,
        mismatch: String,
    },
}

/// One record of a raw file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    /// 1-based line the record starts on.
    pub line: u64,
    /// The record's original bytes, without the line terminator.
    pub text: Vec<u8>,
}

/// The result of checking a file.
#[derive(Debug, Default)]
pub struct FileCheck {
    /// Data records read (not counting a CSV header).
    pub rows: u64,
    /// Rows that break the contract, with their line.
    pub violations: Vec<(u64, Violation)>,
}

/// Opens a file, decompressing `.gz` transparently.
pub fn open(path: &Path) -> Result<Box<dyn Read + Send>, FileError> {
    let file = File::open(path).map_err(|source| FileError::Io {
        path: path.into(),
        source,
    })?;
    let gz = path.extension().is_some_and(|e| e == "gz");
    Ok(if gz {
        Box::new(MultiGzDecoder::new(BufReader::with_capacity(1 << 20, file)))
    } else {
        Box::new(file)
    })
}

/// Calls `f` with each record of a raw file, after matching a CSV header;
/// returns the number of records. For CSV the callback also receives the
/// parsed cells; for NDJSON, `None`.
pub fn for_each_record<F>(path: &Path, contract: &Contract, mut f: F) -> Result<u64, FileError>
where
    F: FnMut(&RawRecord, Option<(&CsvLayout, &csv::ByteRecord)>),
{
    let io = |source| FileError::Io {
        path: path.into(),
        source,
    };
    let reader = BufReader::with_capacity(1 << 20, open(path)?);
    let mut rows = 0;
    match contract.format {
        Format::Csv => {
            let mut csv = csv::ReaderBuilder::new()
                .flexible(true)
                .has_headers(false)
                .from_reader(reader);
            let mut record = csv::ByteRecord::new();
            let header = match csv.read_byte_record(&mut record) {
                Ok(true) => record
                    .iter()
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect::<Vec<_>>(),
                Ok(false) => Vec::new(),
                Err(e) => return Err(io(e.into())),
            };
            let layout = contract
                .csv_layout(&header)
                .map_err(|m| FileError::Header {
                    path: path.into(),
                    source_name: contract.source.clone(),
                    mismatch: m.to_string(),
                })?;
            let mut raw = RawRecord {
                line: 0,
                text: Vec::new(),
            };
            loop {
                match csv.read_byte_record(&mut record) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => return Err(io(e.into())),
                }
                rows += 1;
                raw.line = record.position().map_or(0, |p| p.line());
                raw.text = join_record(&record);
                f(&raw, Some((&layout, &record)));
            }
        }
        Format::Ndjson => {
            for (index, line) in reader.split(b'\n').enumerate() {
                let mut text = line.map_err(io)?;
                let line_no = index as u64 + 1;
                if text.last() == Some(&b'\r') {
                    text.pop();
                }
                rows += 1;
                f(
                    &RawRecord {
                        line: line_no,
                        text,
                    },
                    None,
                );
            }
        }
    }
    Ok(rows)
}

/// Re-joins parsed CSV cells into the record's text (quoting as needed).
fn join_record(record: &csv::ByteRecord) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new()
        .flexible(true)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    // Writing into a Vec cannot fail.
    let _ = writer.write_byte_record(record);
    let mut text = writer.into_inner().unwrap_or_default();
    text.pop();
    text
}

/// Checks every record of a raw file against its contract.
pub fn check_file(path: &Path, contract: &Contract) -> Result<FileCheck, FileError> {
    let mut violations = Vec::new();
    let rows = for_each_record(path, contract, |raw, csv| {
        let result = match csv {
            Some((layout, record)) => contract.validate_csv(layout, record.iter()),
            None => contract.validate_json(&raw.text),
        };
        if let Err(v) = result {
            violations.push((raw.line, v));
        }
    })?;
    Ok(FileCheck { rows, violations })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{Contracts, Reason};
    use std::io::Write;

    #[test]
    fn csv_lines_are_numbered_from_the_header_and_gz_is_transparent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offer_events_x.csv.gz");
        let mut gz = flate2::write::GzEncoder::new(
            File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        let text = "offer_event_id,customer_id,offer_id,channel,sent_at,opened_at,accepted_at\n\
            OE1,C100000001,cc_dining_gold,sms,2026-01-04T10:00:00+08:00,,\n\
            OE2,C100000001,cc_dining_gold,pigeon,2026-01-04T10:00:00Z,,\n\
            OE3,C100000001\n";
        gz.write_all(text.as_bytes()).unwrap();
        gz.finish().unwrap();
        let contract = Contracts::embedded().get("offer_events").unwrap();
        let check = check_file(&path, contract).unwrap();
        assert_eq!(check.rows, 3);
        let got: Vec<(u64, Reason)> = check
            .violations
            .iter()
            .map(|(l, v)| (*l, v.reason))
            .collect();
        assert_eq!(
            got,
            [(3, Reason::UnknownEnum), (4, Reason::WrongFieldCount)]
        );
    }

    #[test]
    fn unreadable_files_and_wrong_headers_are_file_errors() {
        let dir = tempfile::tempdir().unwrap();
        let contract = Contracts::embedded().get("transactions").unwrap();
        let missing = check_file(&dir.path().join("transactions_x.csv"), contract).unwrap_err();
        assert!(
            missing.to_string().contains("transactions_x.csv"),
            "{missing}"
        );

        let bad_gz = dir.path().join("transactions_y.csv.gz");
        std::fs::write(&bad_gz, b"this is not gzip").unwrap();
        assert!(matches!(
            check_file(&bad_gz, contract),
            Err(FileError::Io { .. })
        ));

        let wrong = dir.path().join("transactions_z.csv");
        std::fs::write(&wrong, "id,amount\n1,2\n").unwrap();
        let err = check_file(&wrong, contract).unwrap_err();
        assert!(err.to_string().contains("missing columns txn_id"), "{err}");
    }

    #[test]
    fn ndjson_counts_every_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device_events_x.ndjson");
        let good = r#"{"event_id":"E1","ts":"2026-01-01T00:00:00Z","device_id":"D1","customer_id":null,"event_type":"app_open","os":"web","os_version":null,"app_version":null,"ip":"1.2.3.4","geo_country":"CN","rooted":null}"#;
        std::fs::write(&path, format!("{good}\n{{\"event_id\"\n\n{good}\r\n")).unwrap();
        let contract = Contracts::embedded().get("device_events").unwrap();
        let check = check_file(&path, contract).unwrap();
        assert_eq!(check.rows, 4);
        let lines: Vec<u64> = check.violations.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [2, 3]);
    }
}
