//! The hot path: records of a block, parsed and checked in parallel into
//! typed polars frames, bad rows kept aside with their line and text.

use polars::prelude::*;
use rayon::prelude::*;
use xxhash_rust::xxh3::Xxh3;

use cdp_core::contract::{Contract, CsvLayout, Format, Parsed, Reason, Violation};
use cdp_core::identity::{email_sha256, phone_sha256};
use cdp_core::rawfile::{CsvFields, Span, recycle};
use cdp_core::time::BusinessCalendar;

use crate::columns::{Builder, date_from_days, epoch_days};
use crate::error::{Error, Result};
use crate::spec::IngestSpec;

/// Records per unit of parallel work.
const CHUNK_RECORDS: usize = 16_384;

/// Name of the business-date partition column.
pub const DT: &str = "dt";
/// Lineage columns.
pub const FILE: &str = "_file";
pub const LINE: &str = "_line";
pub const RUN: &str = "_run";

/// A row that broke the contract.
#[derive(Debug, Clone)]
pub struct BadRow {
    pub line: u64,
    pub reason: Reason,
    pub field: Option<String>,
    pub detail: String,
    /// The record exactly as it was in the file.
    pub text: Vec<u8>,
}

/// What a chunk of records became.
pub struct ChunkOut {
    /// Rows that passed the contract, in file order.
    pub frame: DataFrame,
    /// The de-duplication key of each row of `frame`.
    pub keys: Vec<u128>,
    /// Business date (days since 1970) of each row, if the source has an event time.
    pub dts: Vec<Option<i32>>,
    /// Rows that did not.
    pub bad: Vec<BadRow>,
}

/// Everything a chunk parser needs to know about the file.
pub struct FileContext<'a> {
    pub spec: &'a IngestSpec,
    pub calendar: BusinessCalendar,
    pub layout: Option<CsvLayout>,
    pub file: &'a str,
    pub run: &'a str,
}

impl FileContext<'_> {
    fn contract(&self) -> &Contract {
        &self.spec.contract
    }

    /// Parses the records of one block, in parallel chunks, in order.
    pub fn parse_block(&self, bytes: &[u8], spans: &[Span]) -> Result<Vec<ChunkOut>> {
        spans
            .par_chunks(CHUNK_RECORDS)
            .map(|chunk| self.parse_chunk(bytes, chunk))
            .collect()
    }

    fn parse_chunk(&self, bytes: &[u8], spans: &[Span]) -> Result<ChunkOut> {
        let spec = self.spec;
        let contract = self.contract();
        let n = spans.len();
        let mut columns: Vec<Builder> = contract
            .fields
            .iter()
            .map(|f| Builder::for_field(f, n))
            .collect();
        let mut phone_hashes: Vec<Builder> = spec
            .phone_keys
            .iter()
            .map(|&i| Builder::text(&hash_column(contract, i), n))
            .collect();
        let mut email_hashes: Vec<Builder> = spec
            .email_keys
            .iter()
            .map(|&i| Builder::text(&hash_column(contract, i), n))
            .collect();
        let mut dt = Builder::date(DT, n);
        let mut lines = Builder::int(LINE, n);
        let mut keys = Vec::with_capacity(n);
        let mut dts = Vec::with_capacity(n);
        let mut bad = Vec::new();
        let mut fields = CsvFields::default();
        let width = contract.fields.len();
        let mut cells_buf: Vec<&[u8]> = Vec::new();
        let mut values_buf: Vec<Parsed> = Vec::with_capacity(width);

        for span in spans {
            let text = &bytes[span.start..span.end];
            let mut keep = |values: &[Parsed]| {
                for (b, v) in columns.iter_mut().zip(values) {
                    b.push(v);
                }
                for (b, &i) in phone_hashes.iter_mut().zip(&spec.phone_keys) {
                    push_hash(b, &values[i], phone_sha256);
                }
                for (b, &i) in email_hashes.iter_mut().zip(&spec.email_keys) {
                    push_hash(b, &values[i], email_sha256);
                }
                let day = spec.event_time.and_then(|i| match &values[i] {
                    Parsed::Timestamp(t) => Some(epoch_days(self.calendar.business_date(*t))),
                    Parsed::Date(d) => Some(epoch_days(*d)),
                    _ => None,
                });
                match day {
                    Some(d) => dt.push(&Parsed::Date(date_from_days(d))),
                    None => dt.push_null(),
                }
                dts.push(day);
                lines.push(&Parsed::Int(span.line as i64));
                keys.push(key_hash(spec.key.iter().map(|&i| &values[i])));
            };
            let outcome = match contract.format {
                Format::Csv => {
                    let layout = self.layout.as_ref().expect("CSV files have a layout");
                    let mut cells = recycle(std::mem::take(&mut cells_buf));
                    fields.parse_into(text, &mut cells);
                    let mut values = recycle_values(std::mem::take(&mut values_buf));
                    let outcome = contract
                        .parse_csv(layout, &cells, &mut values)
                        .map(|()| keep(&values));
                    values_buf = recycle_values(values);
                    cells_buf = recycle(cells);
                    outcome
                }
                Format::Ndjson => Contract::json_object(text).and_then(|object| {
                    let mut values = Vec::with_capacity(width);
                    contract
                        .parse_json(&object, &mut values)
                        .map(|()| keep(&values))
                }),
            };
            if let Err(Violation {
                reason,
                field,
                detail,
            }) = outcome
            {
                bad.push(BadRow {
                    line: span.line,
                    reason,
                    field,
                    detail,
                    text: text.to_vec(),
                });
            }
        }

        let rows = keys.len();
        let mut out: Vec<Column> = Vec::with_capacity(columns.len() + 6);
        let finish = |b: Builder| {
            b.finish()
                .map_err(Error::frame(format!("building columns of {}", self.file)))
        };
        for b in columns.into_iter().chain(phone_hashes).chain(email_hashes) {
            out.push(finish(b)?);
        }
        if spec.event_time.is_some() {
            out.push(finish(dt)?);
        }
        out.push(
            StringChunked::full(FILE.into(), self.file, rows)
                .into_series()
                .into_column(),
        );
        out.push(finish(lines)?);
        out.push(
            StringChunked::full(RUN.into(), self.run, rows)
                .into_series()
                .into_column(),
        );
        let frame = DataFrame::new(rows, out)
            .map_err(Error::frame(format!("assembling rows of {}", self.file)))?;
        Ok(ChunkOut {
            frame,
            keys,
            dts,
            bad,
        })
    }
}

/// Empties a vector of parsed values so its allocation can be reused for
/// the next record's values (see [`recycle`]).
fn recycle_values<'b>(mut v: Vec<Parsed>) -> Vec<Parsed<'b>> {
    v.clear();
    v.into_iter()
        .map(|_| unreachable!("the vector is empty"))
        .collect()
}

/// The bronze column holding the hash of field `i`.
pub fn hash_column(contract: &Contract, i: usize) -> String {
    format!("{}_sha256", contract.fields[i].name)
}

fn push_hash(builder: &mut Builder, value: &Parsed, hash: fn(&str) -> Option<String>) {
    match value {
        Parsed::Text(s) => match hash(s) {
            Some(h) => builder.push(&Parsed::Text(&h)),
            None => builder.push_null(),
        },
        _ => builder.push_null(),
    }
}

/// A 128-bit hash of a row's key values in canonical form (so the same
/// instant written with another offset is the same key).
pub fn key_hash<'a>(values: impl Iterator<Item = &'a Parsed<'a>>) -> u128 {
    let mut h = Xxh3::new();
    for v in values {
        match v {
            Parsed::Null => h.update(&[0]),
            Parsed::Text(s) => {
                h.update(&[1]);
                h.update(s.as_bytes());
            }
            Parsed::Int(n) => {
                h.update(&[2]);
                h.update(&n.to_le_bytes());
            }
            Parsed::Decimal(n) => {
                h.update(&[3]);
                h.update(&n.to_le_bytes());
            }
            Parsed::Float(x) => {
                h.update(&[4]);
                h.update(&x.to_le_bytes());
            }
            Parsed::Bool(b) => h.update(&[5, u8::from(*b)]),
            Parsed::Date(d) => {
                h.update(&[6]);
                h.update(&epoch_days(*d).to_le_bytes());
            }
            Parsed::Timestamp(t) => {
                h.update(&[7]);
                h.update(&t.timestamp_micros().to_le_bytes());
            }
            Parsed::List(items) => {
                h.update(&[8]);
                for item in items {
                    h.update(item.as_bytes());
                    h.update(&[0x1f]);
                }
            }
        }
        h.update(&[0x1e]);
    }
    h.digest128()
}
