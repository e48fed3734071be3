//! Output: per-chunk row buffers, the day files they are appended to, and
//! the ground-truth sidecar that records every planted row.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use cdp_core::contract::{Contract, Format};
use flate2::Compression;
use flate2::write::GzEncoder;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::dirt::{self, Kind, LineOp};
use crate::error::{Error, Result};
use crate::row::{self, Row};

/// Rows of one source produced by one chunk, serialised, with the planted
/// kinds by row index.
#[derive(Debug, Default)]
pub struct Buffer {
    bytes: Vec<u8>,
    csv: Option<csv::Writer<Vec<u8>>>,
    rows: u64,
    marks: Vec<(u64, Kind)>,
}

impl Buffer {
    /// Appends a row, applying the line operation of its dirt.
    pub fn push(
        &mut self,
        contract: &Contract,
        row: &Row,
        op: LineOp,
        mark: Option<Kind>,
        r: &mut ChaCha8Rng,
    ) {
        if let Some(kind) = mark {
            self.marks.push((self.rows, kind));
        }
        self.rows += 1;
        match (contract.format, op) {
            (_, LineOp::NotJson) => {
                self.bytes.extend_from_slice(dirt::not_json(r).as_bytes());
                self.bytes.push(b'\n');
            }
            (Format::Csv, op) => {
                let width = match op {
                    LineOp::Short(n) => n,
                    _ => row.len(),
                };
                row::write_csv(self.csv.get_or_insert_with(row::csv_writer), row, width);
            }
            (Format::Ndjson, LineOp::Truncate) => {
                let mut line = Vec::new();
                row::write_json(&mut line, contract, row, None);
                line.pop();
                dirt::truncate(&mut line, r);
                self.bytes.extend_from_slice(&line);
                self.bytes.push(b'\n');
            }
            (Format::Ndjson, LineOp::DropKey(k)) => {
                row::write_json(&mut self.bytes, contract, row, Some(k))
            }
            (Format::Ndjson, _) => row::write_json(&mut self.bytes, contract, row, None),
        }
    }
}

impl Buffer {
    /// The serialised rows.
    pub fn into_bytes(mut self) -> Vec<u8> {
        if let Some(writer) = self.csv.take() {
            self.bytes = writer.into_inner().expect("writing to a Vec cannot fail");
        }
        self.bytes
    }
}

/// Counts per source, as `cdp ingest --json` reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub read: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub quarantined: u64,
}

/// One output file being written.
pub struct DayFile {
    /// File name inside the output folder.
    pub name: String,
    path: PathBuf,
    out: Box<dyn Write + Send>,
    header_lines: u64,
    rows: u64,
}

impl DayFile {
    /// Creates `dir/name` (`.gz` appended when `gzip`), writing the CSV header.
    pub fn create(dir: &Path, name: &str, contract: &Contract, gzip: bool) -> Result<DayFile> {
        let name = if gzip {
            format!("{name}.gz")
        } else {
            name.to_string()
        };
        let path = dir.join(&name);
        let file = File::create(&path).map_err(|source| Error::Write {
            path: path.clone(),
            source,
        })?;
        let buffered = BufWriter::with_capacity(1 << 20, file);
        let mut out: Box<dyn Write + Send> = if gzip {
            Box::new(GzEncoder::new(buffered, Compression::default()))
        } else {
            Box::new(buffered)
        };
        let mut header_lines = 0;
        if contract.format == Format::Csv {
            row::write_header(&mut out, contract).map_err(|source| Error::Write {
                path: path.clone(),
                source,
            })?;
            header_lines = 1;
        }
        Ok(DayFile {
            name,
            path,
            out,
            header_lines,
            rows: 0,
        })
    }

    /// Appends a chunk's buffer, telling the truth about its planted rows.
    pub fn append(
        &mut self,
        source: &str,
        contract: &Contract,
        mut buf: Buffer,
        truth: &mut Truth,
    ) -> Result<()> {
        let rows = buf.rows;
        for (index, kind) in std::mem::take(&mut buf.marks) {
            let line = self.header_lines + self.rows + index + 1;
            truth.record(source, &self.name, line, kind, contract.format)?;
        }
        truth.count(source, rows);
        self.rows += rows;
        self.out
            .write_all(&buf.into_bytes())
            .map_err(|source| Error::Write {
                path: self.path.clone(),
                source,
            })
    }

    /// Flushes and closes the file.
    pub fn finish(mut self) -> Result<u64> {
        self.out.flush().map_err(|source| Error::Write {
            path: self.path.clone(),
            source,
        })?;
        drop(self.out);
        Ok(self.rows)
    }
}

/// The ground truth of a generated data set (`DIR/_truth/`).
pub struct Truth {
    dir: PathBuf,
    dirty: csv::Writer<BufWriter<File>>,
    counts: BTreeMap<String, Counts>,
    by_kind: BTreeMap<(String, &'static str), u64>,
}

impl Truth {
    /// Creates `dir/_truth/` and its dirty-row list.
    pub fn create(dir: &Path) -> Result<Truth> {
        let dir = dir.join("_truth");
        std::fs::create_dir_all(&dir).map_err(|source| Error::Write {
            path: dir.clone(),
            source,
        })?;
        let path = dir.join("dirty.csv");
        let file = File::create(&path).map_err(|source| Error::Write {
            path: path.clone(),
            source,
        })?;
        let mut dirty = csv::Writer::from_writer(BufWriter::new(file));
        dirty
            .write_record(["source", "file", "line", "kind", "reason"])
            .map_err(|e| Error::Csv {
                path: path.clone(),
                source: e,
            })?;
        Ok(Truth {
            dir,
            dirty,
            counts: BTreeMap::new(),
            by_kind: BTreeMap::new(),
        })
    }

    fn record(
        &mut self,
        source: &str,
        file: &str,
        line: u64,
        kind: Kind,
        format: Format,
    ) -> Result<()> {
        let reason = kind.reason(format);
        let counts = self.counts.entry(source.into()).or_default();
        match (kind, reason) {
            (Kind::Duplicate, _) => counts.duplicates += 1,
            (_, Some(_)) => counts.quarantined += 1,
            _ => {}
        }
        *self
            .by_kind
            .entry((source.into(), kind.code()))
            .or_default() += 1;
        self.dirty
            .write_record([
                source,
                file,
                &line.to_string(),
                kind.code(),
                reason.map_or("", |r| r.code()),
            ])
            .map_err(|e| Error::Csv {
                path: self.dir.join("dirty.csv"),
                source: e,
            })
    }

    fn count(&mut self, source: &str, rows: u64) {
        self.counts.entry(source.into()).or_default().read += rows;
    }

    /// Registers a source that produced no rows at all.
    pub fn touch(&mut self, source: &str) {
        self.counts.entry(source.into()).or_default();
    }

    /// The folder of the sidecar.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Final counts per source (accepted = read − duplicates − quarantined).
    pub fn counts(&self) -> BTreeMap<String, Counts> {
        self.counts
            .iter()
            .map(|(s, c)| {
                let accepted = c.read - c.duplicates - c.quarantined;
                (s.clone(), Counts { accepted, ..*c })
            })
            .collect()
    }

    /// Planted rows per source and kind.
    pub fn kinds(&self) -> BTreeMap<String, BTreeMap<&'static str, u64>> {
        let mut out: BTreeMap<String, BTreeMap<&'static str, u64>> = BTreeMap::new();
        for ((source, kind), n) in &self.by_kind {
            out.entry(source.clone()).or_default().insert(kind, *n);
        }
        out
    }

    /// Flushes the dirty-row list.
    pub fn finish(&mut self) -> Result<()> {
        let path = self.dir.join("dirty.csv");
        self.dirty
            .flush()
            .map_err(|source| Error::Write { path, source })
    }
}
