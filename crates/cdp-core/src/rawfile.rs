//! Reading raw source files (plain or `.gz`) record by record, with the
//! line each record starts on and its original bytes, and checking them
//! against their contract.
//!
//! Files are read in large blocks and cut into records by [`split`]: for
//! NDJSON at every newline, for CSV at newlines outside quoted fields, with
//! the same quoting rules as the `csv` crate, so a quoted field may hold
//! commas, quotes and even newlines. Blank lines are not records. Each
//! record's fields are then parsed by [`CsvFields`]. `cdp validate` and
//! `cdp ingest` both read through here, so they always agree on what a row
//! and a line are.
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
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::contract::{Contract, CsvLayout, Format, Violation};

/// Bytes read per block (records never straddle blocks).
pub const BLOCK_BYTES: usize = 32 << 20;

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

/// Where one record sits in a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte, line terminator (`\n`, `\r\n`) excluded.
    pub end: usize,
    /// 1-based line the record starts on.
    pub line: u64,
}

/// Cuts the complete records out of `bytes`, appending their spans.
///
/// `first_line` is the line `bytes` starts on. Unless `at_eof`, a record
/// without its terminating newline is left for the next block. Returns the
/// bytes consumed and the line after them.
pub fn split(
    bytes: &[u8],
    format: Format,
    first_line: u64,
    at_eof: bool,
    spans: &mut Vec<Span>,
) -> (usize, u64) {
    let mut line = first_line;
    let mut start = 0;
    let mut start_line = line;
    let mut push = |start: usize, mut end: usize, line: u64| {
        if end > start && bytes[end - 1] == b'\r' {
            end -= 1;
        }
        if end > start {
            spans.push(Span { start, end, line });
        }
    };
    match format {
        Format::Ndjson => {
            for nl in memchr::memchr_iter(b'\n', bytes) {
                push(start, nl, line);
                line += 1;
                start = nl + 1;
            }
            start_line = line;
        }
        Format::Csv => {
            // Only quotes and newlines matter. A quote opens a quoted field
            // when it starts the field (record start or after a comma); in a
            // quoted field, `""` is a quote and `"` closes it. Elsewhere a
            // quote is a plain character — the `csv` crate's rules.
            let mut at = 0;
            let mut quoted = false;
            while at < bytes.len() {
                if quoted {
                    let Some(offset) = memchr::memchr(b'"', &bytes[at..]) else {
                        break;
                    };
                    let pos = at + offset;
                    line += memchr::memchr_iter(b'\n', &bytes[at..pos]).count() as u64;
                    match bytes.get(pos + 1) {
                        Some(b'"') => at = pos + 2,
                        Some(_) => {
                            quoted = false;
                            at = pos + 1;
                        }
                        None if at_eof => break,
                        None => {
                            // is it `""` or a closing quote? the next block tells
                            return (start, start_line);
                        }
                    }
                    continue;
                }
                let Some(offset) = memchr::memchr2(b'"', b'\n', &bytes[at..]) else {
                    break;
                };
                let pos = at + offset;
                if bytes[pos] == b'\n' {
                    push(start, pos, start_line);
                    line += 1;
                    start = pos + 1;
                    start_line = line;
                } else if pos == start || bytes[pos - 1] == b',' {
                    quoted = true;
                }
                at = pos + 1;
            }
            if quoted && !at_eof {
                return (start, start_line);
            }
        }
    }
    if at_eof && start < bytes.len() {
        push(start, bytes.len(), start_line);
        return (bytes.len(), line);
    }
    (start, start_line)
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

/// Reads `reader` block by block, calling `f` with each block's bytes and
/// the spans of the complete records in it. A record larger than a block
/// grows the block. Returns the records seen.
pub fn for_each_block<R, F, E>(
    mut reader: R,
    format: Format,
    block_bytes: usize,
    mut f: F,
) -> Result<u64, E>
where
    R: Read,
    F: FnMut(&[u8], &[Span]) -> Result<(), E>,
    E: From<std::io::Error>,
{
    let mut buf: Vec<u8> = Vec::new();
    let mut spans = Vec::new();
    let mut target = block_bytes.max(1);
    let (mut line, mut records) = (1, 0);
    loop {
        let want = target.saturating_sub(buf.len()).max(1);
        let read = (&mut reader).take(want as u64).read_to_end(&mut buf)?;
        let eof = read < want;
        spans.clear();
        let (consumed, next_line) = split(&buf, format, line, eof, &mut spans);
        records += spans.len() as u64;
        if !spans.is_empty() {
            f(&buf, &spans)?;
        }
        if eof {
            return Ok(records);
        }
        line = next_line;
        buf.drain(..consumed);
        target = if consumed == 0 {
            target * 2
        } else {
            block_bytes.max(1)
        };
    }
}

/// Splits one CSV record into its fields (unquoting as the `csv` crate does).
#[derive(Debug)]
pub struct CsvFields {
    reader: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
}

impl Default for CsvFields {
    fn default() -> Self {
        Self {
            reader: csv_core::ReaderBuilder::new()
                .terminator(csv_core::Terminator::Any(b'\n'))
                .build(),
            out: vec![0; 4096],
            ends: vec![0; 64],
        }
    }
}

impl CsvFields {
    /// Parses `record` (one span, no terminator); returns its fields.
    pub fn parse<'s>(&'s mut self, record: &[u8]) -> Vec<&'s [u8]> {
        let mut fields = Vec::new();
        self.parse_into(record, &mut fields);
        fields
    }

    /// Parses `record` into `fields` (cleared first), reusing its allocation.
    pub fn parse_into<'s>(&'s mut self, record: &[u8], fields: &mut Vec<&'s [u8]>) {
        use csv_core::ReadRecordResult::*;
        self.reader.reset();
        let (mut nin, mut nout, mut nend) = (0, 0, 0);
        loop {
            let input = &record[nin..];
            let (res, i, o, e) =
                self.reader
                    .read_record(input, &mut self.out[nout..], &mut self.ends[nend..]);
            nin += i;
            nout += o;
            nend += e;
            match res {
                InputEmpty => {}
                OutputFull => {
                    let n = self.out.len() * 2;
                    self.out.resize(n, 0);
                }
                OutputEndsFull => {
                    let n = self.ends.len() * 2;
                    self.ends.resize(n, 0);
                }
                Record | End => break,
            }
        }
        fields.clear();
        let mut from = 0;
        for &end in &self.ends[..nend] {
            fields.push(&self.out[from..end]);
            from = end;
        }
    }
}

/// Empties a vector of borrows so that its allocation can hold borrows of
/// another lifetime (the loop over records reuses one buffer this way).
pub fn recycle<'b, T: ?Sized>(mut v: Vec<&T>) -> Vec<&'b T> {
    v.clear();
    v.into_iter()
        .map(|_| unreachable!("the vector is empty"))
        .collect()
}

/// One record of a raw file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord<'a> {
    /// 1-based line the record starts on.
    pub line: u64,
    /// The record's original bytes, without the line terminator.
    pub text: &'a [u8],
}

/// The result of checking a file.
#[derive(Debug, Default)]
pub struct FileCheck {
    /// Data records read (not counting a CSV header).
    pub rows: u64,
    /// Rows that break the contract, with their line.
    pub violations: Vec<(u64, Violation)>,
}

/// Calls `f` with each data record of a raw file (after matching a CSV
/// header, which is not a data record); returns the number of data records.
/// For CSV the callback also receives the header layout and parsed fields.
pub fn for_each_record<F>(path: &Path, contract: &Contract, mut f: F) -> Result<u64, FileError>
where
    F: FnMut(&RawRecord, Option<(&CsvLayout, &[&[u8]])>),
{
    let reader = open(path)?;
    let mut layout: Option<CsvLayout> = None;
    let mut header_error: Option<FileError> = None;
    let mut fields = CsvFields::default();
    let mut rows = 0;
    let io = |source| FileError::Io {
        path: path.into(),
        source,
    };
    for_each_block(reader, contract.format, BLOCK_BYTES, |bytes, spans| {
        for span in spans {
            if header_error.is_some() {
                break;
            }
            let raw = RawRecord {
                line: span.line,
                text: &bytes[span.start..span.end],
            };
            if contract.format == Format::Ndjson {
                rows += 1;
                f(&raw, None);
                continue;
            }
            let cells = fields.parse(raw.text);
            match &layout {
                Some(layout) => {
                    rows += 1;
                    f(&raw, Some((layout, &cells)));
                }
                None => {
                    let names: Vec<String> = cells
                        .iter()
                        .map(|c| String::from_utf8_lossy(c).into_owned())
                        .collect();
                    match contract.csv_layout(&names) {
                        Ok(l) => layout = Some(l),
                        Err(m) => {
                            header_error = Some(FileError::Header {
                                path: path.into(),
                                source_name: contract.source.clone(),
                                mismatch: m.to_string(),
                            })
                        }
                    }
                }
            }
        }
        Ok::<(), std::io::Error>(())
    })
    .map_err(io)?;
    match header_error {
        Some(e) => Err(e),
        None => Ok(rows),
    }
}

/// Checks every record of a raw file against its contract.
pub fn check_file(path: &Path, contract: &Contract) -> Result<FileCheck, FileError> {
    let mut violations = Vec::new();
    let rows = for_each_record(path, contract, |raw, csv| {
        let result = match csv {
            Some((layout, cells)) => contract.validate_csv(layout, cells.iter().copied()),
            None => contract.validate_json(raw.text),
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

    fn spans(text: &str, format: Format) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        split(text.as_bytes(), format, 1, true, &mut out);
        out.iter()
            .map(|s| (text[s.start..s.end].to_string(), s.line))
            .collect()
    }

    #[test]
    fn csv_records_end_at_newlines_outside_quoted_fields() {
        let text = "a,b\n\"x\ny\",2\r\n\nab\"c,\"q\"\"\"\nlast";
        assert_eq!(
            spans(text, Format::Csv),
            [
                ("a,b".to_string(), 1),
                ("\"x\ny\",2".to_string(), 2),
                ("ab\"c,\"q\"\"\"".to_string(), 5),
                ("last".to_string(), 6),
            ]
        );
        let mut fields = CsvFields::default();
        let cells: Vec<Vec<u8>> = fields
            .parse(b"ab\"c,\"q\"\"\"")
            .iter()
            .map(|c| c.to_vec())
            .collect();
        assert_eq!(cells, [b"ab\"c".to_vec(), b"q\"".to_vec()]);
    }

    /// Record starts and lines agree with the `csv` crate on random texts
    /// made of quotes, commas, newlines and letters.
    #[test]
    fn records_start_where_the_csv_crate_says() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..400 {
            let len = (next() % 60) as usize;
            let text: Vec<u8> = (0..len).map(|_| b"a,\"\n"[(next() % 4) as usize]).collect();
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .terminator(csv::Terminator::Any(b'\n'))
                .from_reader(text.as_slice());
            let mut record = csv::ByteRecord::new();
            let mut expected = Vec::new();
            while reader.read_byte_record(&mut record).unwrap() {
                // the csv crate reports a record's position before the blank lines it skips
                let (mut start, mut line) = (
                    record.position().unwrap().byte() as usize,
                    record.position().unwrap().line(),
                );
                while text.get(start) == Some(&b'\n') {
                    start += 1;
                    line += 1;
                }
                expected.push((start, line));
            }
            let mut spans = Vec::new();
            split(&text, Format::Csv, 1, true, &mut spans);
            let got: Vec<(usize, u64)> = spans.iter().map(|s| (s.start, s.line)).collect();
            assert_eq!(got, expected, "{:?}", String::from_utf8_lossy(&text));
        }
    }

    #[test]
    fn an_incomplete_record_waits_for_the_next_block() {
        let mut out = Vec::new();
        let (consumed, line) = split(b"a,b\n\"open\nquote", Format::Csv, 1, false, &mut out);
        assert_eq!((consumed, line, out.len()), (4, 2, 1));
        let mut out = Vec::new();
        let (consumed, _) = split(b"{}\n{", Format::Ndjson, 7, false, &mut out);
        assert_eq!((consumed, out[0].line), (3, 7));
    }

    #[test]
    fn blocks_agree_with_one_pass_whatever_the_block_size() {
        let mut text = String::from("h1,h2\n");
        for i in 0..500 {
            text.push_str(&format!("{i},\"multi\nline {i}, with \"\"quotes\"\"\"\n"));
        }
        let whole = spans(&text, Format::Csv);
        for block in [7, 64, 1000, 1 << 20] {
            let mut got = Vec::new();
            for_each_block(text.as_bytes(), Format::Csv, block, |bytes, sp| {
                for s in sp {
                    got.push((
                        String::from_utf8(bytes[s.start..s.end].to_vec()).unwrap(),
                        s.line,
                    ));
                }
                Ok::<(), std::io::Error>(())
            })
            .unwrap();
            assert_eq!(got, whole, "block size {block}");
        }
    }

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
    fn ndjson_counts_every_non_blank_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device_events_x.ndjson");
        let good = r#"{"event_id":"E1","ts":"2026-01-01T00:00:00Z","device_id":"D1","customer_id":null,"event_type":"app_open","os":"web","os_version":null,"app_version":null,"ip":"1.2.3.4","geo_country":"CN","rooted":null}"#;
        std::fs::write(&path, format!("{good}\n{{\"event_id\"\n\n{good}\r\n")).unwrap();
        let contract = Contracts::embedded().get("device_events").unwrap();
        let check = check_file(&path, contract).unwrap();
        assert_eq!(check.rows, 3);
        let lines: Vec<u64> = check.violations.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [2]);
    }
}
