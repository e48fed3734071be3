//! Dirt: the ways real extracts go wrong, planted into rows at the dirty
//! rate. Targets are chosen from the contract itself (a numeric field for a
//! malformed number, an enum for an unknown value, …), so every planted row
//! breaks the contract in exactly one known way, and the reason the
//! validator must give is known in advance.

use cdp_core::contract::{Contract, FieldType, Format, Reason};
use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;

use crate::row::{Cell, Row};

/// A kind of dirt (or of legitimate irregularity) planted in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// The exact same row sent again (valid; counted as a duplicate).
    Duplicate,
    /// An event delivered one to three days late (valid; accepted).
    Late,
    MissingRequired,
    MalformedNumber,
    MalformedTimestamp,
    MalformedDate,
    MalformedBoolean,
    UnknownEnum,
    OutOfRange,
    BadFormat,
    ShortRow,
    InvalidEncoding,
    TruncatedLine,
    NotJson,
}

impl Kind {
    /// Every kind that makes a row invalid.
    pub const INVALID: [Kind; 12] = [
        Kind::MissingRequired,
        Kind::MalformedNumber,
        Kind::MalformedTimestamp,
        Kind::MalformedDate,
        Kind::MalformedBoolean,
        Kind::UnknownEnum,
        Kind::OutOfRange,
        Kind::BadFormat,
        Kind::ShortRow,
        Kind::InvalidEncoding,
        Kind::TruncatedLine,
        Kind::NotJson,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Kind::Duplicate => "duplicate",
            Kind::Late => "late",
            Kind::MissingRequired => "missing_required",
            Kind::MalformedNumber => "malformed_number",
            Kind::MalformedTimestamp => "malformed_timestamp",
            Kind::MalformedDate => "malformed_date",
            Kind::MalformedBoolean => "malformed_boolean",
            Kind::UnknownEnum => "unknown_enum",
            Kind::OutOfRange => "out_of_range",
            Kind::BadFormat => "bad_format",
            Kind::ShortRow => "short_row",
            Kind::InvalidEncoding => "invalid_encoding",
            Kind::TruncatedLine => "truncated_line",
            Kind::NotJson => "not_json",
        }
    }

    /// The reason a validator must give for a row with this dirt, `None`
    /// for valid rows.
    pub fn reason(self, format: Format) -> Option<Reason> {
        let json = format == Format::Ndjson;
        Some(match self {
            Kind::Duplicate | Kind::Late => return None,
            Kind::MissingRequired => Reason::MissingRequired,
            Kind::MalformedNumber if json => Reason::WrongType,
            Kind::MalformedNumber => Reason::InvalidNumber,
            Kind::MalformedTimestamp => Reason::InvalidTimestamp,
            Kind::MalformedDate => Reason::InvalidDate,
            Kind::MalformedBoolean if json => Reason::WrongType,
            Kind::MalformedBoolean => Reason::InvalidBoolean,
            Kind::UnknownEnum => Reason::UnknownEnum,
            Kind::OutOfRange => Reason::OutOfRange,
            Kind::BadFormat => Reason::InvalidFormat,
            Kind::ShortRow => Reason::WrongFieldCount,
            Kind::InvalidEncoding => Reason::InvalidEncoding,
            Kind::TruncatedLine | Kind::NotJson => Reason::MalformedJson,
        })
    }
}

/// What to do with the serialised line after the cells were changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineOp {
    /// Write the row as it is.
    Keep,
    /// CSV: write only the first `n` cells.
    Short(usize),
    /// JSON: leave this key out.
    DropKey(usize),
    /// JSON: cut the line at a random character boundary.
    Truncate,
    /// Replace the line by non-JSON text.
    NotJson,
}

/// The invalid kinds a contract offers a target for.
pub fn applicable(contract: &Contract) -> Vec<Kind> {
    let csv = contract.format == Format::Csv;
    Kind::INVALID
        .into_iter()
        .filter(|&kind| match kind {
            Kind::ShortRow => csv,
            Kind::InvalidEncoding => csv && !targets(contract, kind).is_empty(),
            Kind::TruncatedLine | Kind::NotJson => !csv,
            _ => !targets(contract, kind).is_empty(),
        })
        .collect()
}

/// Fields a kind can be planted in.
fn targets(contract: &Contract, kind: Kind) -> Vec<usize> {
    let fields = contract.fields.iter().enumerate();
    fields
        .filter(|(_, f)| match kind {
            Kind::MissingRequired => f.required,
            Kind::MalformedNumber => matches!(f.ty, FieldType::Integer | FieldType::Decimal),
            Kind::MalformedTimestamp => f.ty == FieldType::Timestamp,
            Kind::MalformedDate => f.ty == FieldType::Date,
            Kind::MalformedBoolean => f.ty == FieldType::Boolean,
            Kind::UnknownEnum => f.ty == FieldType::Enum,
            Kind::OutOfRange => f.min.is_some() || f.max.is_some(),
            Kind::BadFormat => f.ty == FieldType::String && f.pattern.is_some(),
            Kind::InvalidEncoding => {
                f.ty == FieldType::String && f.pattern.is_none() && f.max_length.is_some()
            }
            _ => false,
        })
        .map(|(i, _)| i)
        .collect()
}

/// Plants `kind` into `row`; returns what to do with the line.
pub fn plant(kind: Kind, contract: &Contract, row: &mut Row, r: &mut ChaCha8Rng) -> LineOp {
    let json = contract.format == Format::Ndjson;
    let Some(&field) = targets(contract, kind).choose(r) else {
        return match kind {
            Kind::ShortRow => Short(r.random_range(1..contract.fields.len().min(5)).max(1)),
            Kind::TruncatedLine => LineOp::Truncate,
            Kind::NotJson => LineOp::NotJson,
            _ => LineOp::Keep,
        };
    };
    use LineOp::Short;
    let spec = &contract.fields[field];
    let cell = &mut row[field];
    match kind {
        Kind::MissingRequired => {
            *cell = Cell::Null;
            if json && r.random_bool(0.5) {
                return LineOp::DropKey(field);
            }
        }
        Kind::MalformedNumber => {
            let junk = if json {
                ["1.2k", "12", "n/a", "\u{2014}"]
            } else if spec.ty == FieldType::Integer {
                ["3.5", "ten", "1e3", "4 "]
            } else {
                ["1.2.3", "1,234.50", "\u{a5}88", "abc"]
            };
            *cell = Cell::text(*junk.choose(r).expect("non-empty"));
        }
        Kind::MalformedTimestamp => {
            let junk = match cell {
                Cell::Text(ts) if ts.len() >= 19 && r.random_bool(0.6) => {
                    // the same instant without its offset, as some exports write it
                    ts[..19].replacen('T', " ", usize::from(r.random_bool(0.5)))
                }
                _ => ["2026-13-01T00:00:00Z", "yesterday", "05/01/2026 10:00"]
                    .choose(r)
                    .expect("non-empty")
                    .to_string(),
            };
            *cell = Cell::Text(junk);
        }
        Kind::MalformedDate => {
            *cell = Cell::text(
                *["1990-02-30", "1990/01/05", "05.01.1990"]
                    .choose(r)
                    .expect("non-empty"),
            );
        }
        Kind::MalformedBoolean => {
            *cell = Cell::text(*["yes", "Y", "1", "TRUE"].choose(r).expect("non-empty"));
        }
        Kind::UnknownEnum => {
            let candidates = [
                "pending",
                "kiosk",
                "harmonyos",
                "vip",
                "wechat",
                "X",
                "screen_view",
            ];
            let unknown: Vec<&str> = candidates
                .into_iter()
                .filter(|c| !spec.values.iter().any(|v| v == c))
                .collect();
            *cell = Cell::text(*unknown.choose(r).expect("some candidate is unknown"));
        }
        Kind::OutOfRange => {
            *cell = match (spec.ty, spec.max, spec.min) {
                (FieldType::Integer, Some(max), _) if r.random_bool(0.5) => {
                    Cell::Int(max as i64 + 1)
                }
                (FieldType::Integer, _, Some(min)) => {
                    Cell::Int(min as i64 - 1 - r.random_range(0..5))
                }
                (FieldType::Integer, Some(max), None) => Cell::Int(max as i64 + 1),
                (_, Some(max), _) if r.random_bool(0.5) || spec.min.is_none() => {
                    Cell::Dec(max * 1.7 + 1.0, 2)
                }
                (_, _, Some(min)) => Cell::Dec(min * 3.0 - 1.0, 2),
                _ => Cell::Dec(1e12, 2),
            };
        }
        Kind::BadFormat => {
            *cell = Cell::text(
                *["#N/A", "n/a?", "<null>", "?"]
                    .choose(r)
                    .expect("non-empty"),
            );
        }
        Kind::InvalidEncoding => {
            let name = ["张伟", "海底捞火锅", "王芳", "上海"]
                .choose(r)
                .expect("non-empty");
            let (bytes, _, _) = encoding_rs::GBK.encode(name);
            *cell = Cell::Bytes(bytes.into_owned());
        }
        Kind::ShortRow => return Short(r.random_range(1..contract.fields.len().min(5)).max(1)),
        Kind::TruncatedLine => return LineOp::Truncate,
        Kind::NotJson => return LineOp::NotJson,
        Kind::Duplicate | Kind::Late => {}
    }
    LineOp::Keep
}

/// Cuts a JSON line (without its newline) at a character boundary in its
/// first 60 %, so it can never parse.
pub fn truncate(line: &mut Vec<u8>, r: &mut ChaCha8Rng) {
    let text = String::from_utf8_lossy(line).into_owned();
    let limit = (text.len() * 6 / 10).max(2);
    let mut cut = r.random_range(1..limit);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    line.truncate(cut);
}

/// A line a broken upstream writes instead of JSON.
pub fn not_json(r: &mut ChaCha8Rng) -> &'static str {
    [
        "<html><body>502 Bad Gateway</body></html>",
        "ERROR upstream timeout after 30000ms",
        "null",
        "{\"event_id\": }",
        "event_id=E1;ts=2026-01-01",
    ]
    .choose(r)
    .expect("non-empty")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Stream, rng};
    use crate::sink::Buffer;
    use crate::sources::{self, Clock, Source};
    use crate::world::World;
    use cdp_core::contract::Contracts;
    use cdp_core::rawfile::check_file;

    /// Plants every applicable kind into real rows of every source and
    /// checks the validator gives exactly the declared reason.
    #[test]
    fn every_kind_breaks_its_contract_with_the_declared_reason() {
        let w = World {
            seed: 1,
            persons: 300,
            days: 20,
            start: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            products: cdp_core::reference::card_products().unwrap(),
        };
        let clock = Clock::new(&w);
        let mut rows: Vec<Vec<Row>> = vec![Vec::new(); 5];
        for i in 0..w.persons {
            let p = w.person(i);
            for d in [0, 3, 10, 17] {
                let mut out = Vec::new();
                let r = &mut rng(9, Stream::Dirt, u64::from(i), u64::from(d));
                let pd = sources::PersonDay {
                    world: &w,
                    clock: &clock,
                    person: &p,
                    d,
                };
                sources::customers(pd, r, &mut out);
                sources::transactions(pd, r, &mut out);
                sources::device_events(pd, r, &mut out);
                sources::social_profiles(pd, r, &mut out);
                sources::offer_events(pd, r, &mut out);
                for (s, _, row) in out {
                    rows[s as usize].push(row);
                }
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let mut r = rng(2, Stream::Dirt, 0, 0);
        for s in Source::ALL {
            let contract = Contracts::embedded().get(s.name()).unwrap();
            let sample = &rows[s as usize];
            assert!(!sample.is_empty(), "no rows for {}", s.name());
            for kind in applicable(contract) {
                let ext = if contract.format == Format::Csv {
                    "csv"
                } else {
                    "ndjson"
                };
                let path = dir
                    .path()
                    .join(format!("{}_{}.{ext}", s.name(), kind.code()));
                let mut file = Vec::new();
                if contract.format == Format::Csv {
                    crate::row::write_header(&mut file, contract).unwrap();
                }
                let mut buf = Buffer::default();
                for row in sample.iter().take(40) {
                    let mut row = row.clone();
                    let op = plant(kind, contract, &mut row, &mut r);
                    buf.push(contract, &row, op, Some(kind), &mut r);
                }
                file.extend_from_slice(&buf.into_bytes());
                std::fs::write(&path, file).unwrap();
                let check = check_file(&path, contract).unwrap();
                let expected = kind.reason(contract.format).unwrap();
                assert_eq!(
                    check.violations.len() as u64,
                    check.rows,
                    "{} {kind:?}",
                    s.name()
                );
                for (line, v) in check.violations {
                    assert_eq!(v.reason, expected, "{} {kind:?} line {line}: {v}", s.name());
                }
            }
        }
    }
}
