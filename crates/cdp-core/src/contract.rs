//! Raw source contracts (`schemas/*.toml`) and the row validator that
//! enforces them.
//!
//! The six contracts of DESIGN.md are embedded at build time and available
//! through [`Contracts::embedded`]. A [`Contract`] checks one CSV record
//! ([`Contract::validate_csv`], after [`Contract::csv_layout`] has matched the
//! header) or one NDJSON line ([`Contract::validate_json`]) and explains the
//! first problem as a [`Violation`] with a stable [`Reason`] code.
//!
//! ```
//! use cdp_core::contract::{Contracts, Reason};
//!
//! let txns = Contracts::embedded().get("transactions").unwrap();
//! let header = ["txn_id", "customer_id", "card_id", "ts", "amount", "currency",
//!               "mcc", "merchant_id", "merchant_name", "channel", "country", "status"];
//! let layout = txns.csv_layout(&header).unwrap();
//! let row = ["T1", "C100000001", "K1", "2026-01-05T10:00:00+08:00", "12.50", "CNY",
//!            "5812", "M1", "Noodles, Ltd", "kiosk", "CN", "approved"];
//! let err = txns.validate_csv(&layout, row.iter().map(|s| s.as_bytes())).unwrap_err();
//! assert_eq!(err.reason, Reason::UnknownEnum);
//! assert_eq!(err.field.as_deref(), Some("channel"));
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;

use globset::{Glob, GlobMatcher};
use regex_automata::dfa::{Automaton, StartKind, dense};
use regex_automata::{Anchored, Input};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::time::{parse_date, parse_timestamp};

/// The contract files shipped in `schemas/`, embedded into the binary.
const EMBEDDED: [(&str, &str); 6] = [
    (
        "customers.toml",
        include_str!("../../../schemas/customers.toml"),
    ),
    (
        "transactions.toml",
        include_str!("../../../schemas/transactions.toml"),
    ),
    (
        "device_events.toml",
        include_str!("../../../schemas/device_events.toml"),
    ),
    (
        "social_profiles.toml",
        include_str!("../../../schemas/social_profiles.toml"),
    ),
    (
        "offer_events.toml",
        include_str!("../../../schemas/offer_events.toml"),
    ),
    (
        "card_products.toml",
        include_str!("../../../schemas/card_products.toml"),
    ),
];

static EMBEDDED_CONTRACTS: LazyLock<Contracts> = LazyLock::new(|| {
    Contracts::parse(EMBEDDED.iter().copied())
        .expect("the contracts in schemas/ parse (checked by cdp-core's tests)")
});

/// How a source's files are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// CSV with a header row, RFC 4180 quoting.
    Csv,
    /// One JSON object per line.
    Ndjson,
}

/// The type of a contract field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// Free text, optionally constrained by `pattern` and `max_length`.
    String,
    /// A signed 64-bit integer.
    Integer,
    /// A decimal number written with a `.` and at most `scale` decimals.
    Decimal,
    /// `true` or `false`.
    Boolean,
    /// `YYYY-MM-DD`.
    Date,
    /// RFC 3339 with an offset.
    Timestamp,
    /// One of `values`.
    Enum,
    /// A list of strings (`;`-separated in CSV, a JSON array in NDJSON).
    StringList,
}

/// Why a row was rejected; the code is stable and lands in quarantine files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Bytes that are not UTF-8.
    InvalidEncoding,
    /// An NDJSON line that is not one JSON object (truncated, garbage).
    MalformedJson,
    /// A CSV row with more or fewer cells than the header.
    WrongFieldCount,
    /// A required value is empty, null or absent.
    MissingRequired,
    /// Not a number, or a decimal with too many decimals.
    InvalidNumber,
    /// Not `true`/`false`.
    InvalidBoolean,
    /// Not a real `YYYY-MM-DD` date.
    InvalidDate,
    /// Not RFC 3339 with an offset.
    InvalidTimestamp,
    /// A value outside the enum domain.
    UnknownEnum,
    /// A number outside `min ..= max`.
    OutOfRange,
    /// Text that does not match the field's pattern or length.
    InvalidFormat,
    /// A JSON value of the wrong JSON type.
    WrongType,
}

impl Reason {
    /// All reasons, in code order.
    pub const ALL: [Reason; 12] = [
        Reason::InvalidEncoding,
        Reason::MalformedJson,
        Reason::WrongFieldCount,
        Reason::MissingRequired,
        Reason::InvalidNumber,
        Reason::InvalidBoolean,
        Reason::InvalidDate,
        Reason::InvalidTimestamp,
        Reason::UnknownEnum,
        Reason::OutOfRange,
        Reason::InvalidFormat,
        Reason::WrongType,
    ];

    /// The snake_case code, e.g. `unknown_enum`.
    pub fn code(self) -> &'static str {
        match self {
            Reason::InvalidEncoding => "invalid_encoding",
            Reason::MalformedJson => "malformed_json",
            Reason::WrongFieldCount => "wrong_field_count",
            Reason::MissingRequired => "missing_required",
            Reason::InvalidNumber => "invalid_number",
            Reason::InvalidBoolean => "invalid_boolean",
            Reason::InvalidDate => "invalid_date",
            Reason::InvalidTimestamp => "invalid_timestamp",
            Reason::UnknownEnum => "unknown_enum",
            Reason::OutOfRange => "out_of_range",
            Reason::InvalidFormat => "invalid_format",
            Reason::WrongType => "wrong_type",
        }
    }

    /// The reason with this code.
    pub fn from_code(code: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.code() == code)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The first problem found in a row. `detail` never repeats the offending
/// value of a PII field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Machine-readable reason.
    pub reason: Reason,
    /// The field concerned, when there is one.
    pub field: Option<String>,
    /// A readable explanation.
    pub detail: String,
}

impl Violation {
    fn new(reason: Reason, field: &Field, detail: impl Into<String>) -> Self {
        Self {
            reason,
            field: Some(field.name.clone()),
            detail: detail.into(),
        }
    }

    fn row(reason: Reason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            field: None,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{} in {field}: {}", self.reason, self.detail),
            None => write!(f, "{}: {}", self.reason, self.detail),
        }
    }
}

/// One field of a contract.
#[derive(Debug, Clone)]
pub struct Field {
    /// Column name / JSON key.
    pub name: String,
    /// Value type.
    pub ty: FieldType,
    /// Empty, null or absent is an error when true.
    pub required: bool,
    /// Enum domain.
    pub values: Vec<String>,
    /// Inclusive lower bound for numbers.
    pub min: Option<f64>,
    /// Inclusive upper bound for numbers.
    pub max: Option<f64>,
    /// Most decimals for a decimal.
    pub scale: Option<u32>,
    /// Pattern the whole text must match.
    pub pattern: Option<Pattern>,
    /// Most characters of a string.
    pub max_length: Option<usize>,
    /// Personal data: masked on output, never logged.
    pub pii: bool,
    /// What the field means.
    pub description: String,
}

/// A raw source contract.
#[derive(Debug, Clone)]
pub struct Contract {
    /// Source name, e.g. `transactions`.
    pub source: String,
    /// What the source is.
    pub description: String,
    /// File encoding.
    pub format: Format,
    /// File-name glob, e.g. `transactions*.csv`.
    pub files: String,
    matcher: GlobMatcher,
    /// Fields identifying a row for de-duplication.
    pub key: Vec<String>,
    /// Field placing a row in business time.
    pub event_time: Option<String>,
    /// Fields, in CSV column order.
    pub fields: Vec<Field>,
}

/// How a CSV file's columns map onto a contract's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvLayout {
    /// For each contract field, its column index in the file.
    pub positions: Vec<usize>,
    /// Number of columns in the header.
    pub width: usize,
}

/// A header that does not fit the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMismatch {
    /// Contract columns the header lacks.
    pub missing: Vec<String>,
    /// Columns named twice.
    pub duplicated: Vec<String>,
}

impl fmt::Display for HeaderMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!("missing columns {}", self.missing.join(", ")));
        }
        if !self.duplicated.is_empty() {
            parts.push(format!("repeated columns {}", self.duplicated.join(", ")));
        }
        f.write_str(&parts.join("; "))
    }
}

impl Contract {
    /// True when `file_name` (a bare name, no directories) belongs to this
    /// source; a trailing `.gz` is accepted.
    pub fn matches_file(&self, file_name: &str) -> bool {
        let plain = file_name.strip_suffix(".gz").unwrap_or(file_name);
        self.matcher.is_match(plain)
    }

    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Index of the field called `name`.
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    /// The column names in contract order (the header `cdp gen` writes).
    pub fn column_names(&self) -> Vec<&str> {
        self.fields.iter().map(|f| f.name.as_str()).collect()
    }

    /// Matches a CSV header to the contract. Columns may come in any order and
    /// extra columns are ignored; every contract column must be present once.
    pub fn csv_layout<S: AsRef<str>>(&self, header: &[S]) -> Result<CsvLayout, HeaderMismatch> {
        let names: Vec<&str> = header
            .iter()
            .map(|h| h.as_ref().trim().trim_start_matches('\u{feff}'))
            .collect();
        let mut missing = Vec::new();
        let mut duplicated = Vec::new();
        let mut positions = Vec::with_capacity(self.fields.len());
        for field in &self.fields {
            let mut hits = names.iter().enumerate().filter(|(_, n)| **n == field.name);
            match (hits.next(), hits.next()) {
                (Some((i, _)), None) => positions.push(i),
                (Some(_), Some(_)) => duplicated.push(field.name.clone()),
                (None, _) => missing.push(field.name.clone()),
            }
        }
        if missing.is_empty() && duplicated.is_empty() {
            Ok(CsvLayout {
                positions,
                width: names.len(),
            })
        } else {
            Err(HeaderMismatch {
                missing,
                duplicated,
            })
        }
    }

    /// Validates one CSV record (its raw cells) against the contract.
    pub fn validate_csv<'a, I>(&self, layout: &CsvLayout, cells: I) -> Result<(), Violation>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let cells: Vec<&[u8]> = cells.into_iter().collect();
        self.parse_csv(layout, &cells, &mut Vec::new())
    }

    /// Parses one CSV record into `out`, one value per contract field in
    /// contract order, or explains the first problem.
    pub fn parse_csv<'a>(
        &self,
        layout: &CsvLayout,
        cells: &[&'a [u8]],
        out: &mut Vec<Parsed<'a>>,
    ) -> Result<(), Violation> {
        out.clear();
        if cells.len() != layout.width {
            return Err(Violation::row(
                Reason::WrongFieldCount,
                format!("{} cells, the header has {}", cells.len(), layout.width),
            ));
        }
        let utf8 = |cell: &'a [u8], field: Option<&Field>| {
            std::str::from_utf8(cell).map_err(|e| Violation {
                reason: Reason::InvalidEncoding,
                field: field.map(|f| f.name.clone()),
                detail: format!("not UTF-8 (bad byte at offset {})", e.valid_up_to()),
            })
        };
        // bad bytes anywhere make the whole row an encoding problem
        for (i, cell) in cells.iter().enumerate() {
            if !cell.is_ascii() {
                let field = layout.positions.iter().position(|&p| p == i);
                utf8(cell, field.map(|f| &self.fields[f]))?;
            }
        }
        for (field, &pos) in self.fields.iter().zip(&layout.positions) {
            out.push(field.parse_text(utf8(cells[pos], Some(field))?)?);
        }
        Ok(())
    }

    /// Validates one NDJSON line against the contract.
    pub fn validate_json(&self, line: &[u8]) -> Result<(), Violation> {
        let object = Self::json_object(line)?;
        self.parse_json(&object, &mut Vec::new())
    }

    /// Reads one NDJSON line as a JSON object.
    pub fn json_object(line: &[u8]) -> Result<serde_json::Map<String, Value>, Violation> {
        let text = std::str::from_utf8(line).map_err(|e| {
            Violation::row(
                Reason::InvalidEncoding,
                format!("not UTF-8 (bad byte at offset {})", e.valid_up_to()),
            )
        })?;
        let value: Value = serde_json::from_str(text).map_err(|e| {
            Violation::row(
                Reason::MalformedJson,
                format!("not JSON: {e} (line of {} bytes)", line.len()),
            )
        })?;
        match value {
            Value::Object(object) => Ok(object),
            _ => Err(Violation::row(
                Reason::MalformedJson,
                "a JSON value that is not an object",
            )),
        }
    }

    /// Parses a JSON object into `out`, one value per contract field.
    pub fn parse_json<'a>(
        &self,
        object: &'a serde_json::Map<String, Value>,
        out: &mut Vec<Parsed<'a>>,
    ) -> Result<(), Violation> {
        out.clear();
        for field in &self.fields {
            out.push(field.parse_json(object.get(&field.name).unwrap_or(&Value::Null))?);
        }
        Ok(())
    }
}

impl Field {
    fn describe(&self, value: &str) -> String {
        if self.pii {
            "(value withheld: personal data)".into()
        } else {
            format!("{value:?}")
        }
    }

    /// Checks a CSV cell (already UTF-8).
    pub fn check_text(&self, value: &str) -> Result<(), Violation> {
        self.parse_text(value).map(|_| ())
    }

    /// Checks a JSON value (`Null` stands for absent).
    pub fn check_json(&self, value: &Value) -> Result<(), Violation> {
        self.parse_json(value).map(|_| ())
    }

    /// Parses a CSV cell (already UTF-8) by the field's type and checks it.
    pub fn parse_text<'a>(&self, value: &'a str) -> Result<Parsed<'a>, Violation> {
        if value.is_empty() {
            return if self.required {
                Err(Violation::new(Reason::MissingRequired, self, "empty"))
            } else {
                Ok(Parsed::Null)
            };
        }
        match self.ty {
            FieldType::String => self.check_string(value).map(|()| Parsed::Text(value)),
            FieldType::Integer => {
                let n: i64 = value.parse().map_err(|_| {
                    let shown = self.describe(value);
                    Violation::new(
                        Reason::InvalidNumber,
                        self,
                        format!("{shown} is not an integer"),
                    )
                })?;
                self.check_range(n as f64, value).map(|()| Parsed::Int(n))
            }
            FieldType::Decimal => self.parse_decimal_text(value),
            FieldType::Boolean => match value {
                "true" => Ok(Parsed::Bool(true)),
                "false" => Ok(Parsed::Bool(false)),
                _ => Err(Violation::new(
                    Reason::InvalidBoolean,
                    self,
                    format!("{} is not true or false", self.describe(value)),
                )),
            },
            FieldType::Date => parse_date(value).map(Parsed::Date).map_err(|_| {
                let shown = self.describe(value);
                Violation::new(
                    Reason::InvalidDate,
                    self,
                    format!("{shown} is not YYYY-MM-DD"),
                )
            }),
            FieldType::Timestamp => parse_timestamp(value).map(Parsed::Timestamp).map_err(|_| {
                Violation::new(
                    Reason::InvalidTimestamp,
                    self,
                    format!("{} is not RFC 3339 with an offset", self.describe(value)),
                )
            }),
            FieldType::Enum => self.check_enum(value).map(|()| Parsed::Text(value)),
            FieldType::StringList => {
                let items: Vec<&str> = value.split(';').collect();
                items.iter().try_for_each(|item| self.check_item(item))?;
                Ok(Parsed::List(items))
            }
        }
    }

    /// Parses a JSON value (`Null` stands for absent) by the field's type and checks it.
    pub fn parse_json<'a>(&self, value: &'a Value) -> Result<Parsed<'a>, Violation> {
        let wrong_type = |expected: &str| {
            Violation::new(
                Reason::WrongType,
                self,
                format!("expected {expected}, found {}", json_type(value)),
            )
        };
        match (self.ty, value) {
            (_, Value::Null) if self.required => Err(Violation::new(
                Reason::MissingRequired,
                self,
                "null or absent",
            )),
            (_, Value::Null) => Ok(Parsed::Null),
            (FieldType::Integer, Value::Number(n)) => match n.as_i64() {
                Some(i) => self
                    .check_range(i as f64, &n.to_string())
                    .map(|()| Parsed::Int(i)),
                None => Err(wrong_type("an integer")),
            },
            (FieldType::Decimal, Value::Number(n)) => {
                let x = n.as_f64().ok_or_else(|| wrong_type("a number"))?;
                self.check_range(x, &n.to_string())?;
                Ok(match self.scale {
                    Some(scale) => Parsed::Decimal((x * 10f64.powi(scale as i32)).round() as i128),
                    None => Parsed::Float(x),
                })
            }
            (FieldType::Boolean, Value::Bool(b)) => Ok(Parsed::Bool(*b)),
            (FieldType::StringList, Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .ok_or_else(|| wrong_type("an array of strings"))
                        .and_then(|s| self.check_item(s).map(|()| s))
                })
                .collect::<Result<Vec<&str>, _>>()
                .map(Parsed::List),
            (
                FieldType::String | FieldType::Date | FieldType::Timestamp | FieldType::Enum,
                Value::String(s),
            ) if s.is_empty() && self.required => Err(Violation::new(
                Reason::MissingRequired,
                self,
                "empty string",
            )),
            (
                FieldType::String | FieldType::Date | FieldType::Timestamp | FieldType::Enum,
                Value::String(s),
            ) => self.parse_text(s),
            (FieldType::Integer, _) => Err(wrong_type("an integer")),
            (FieldType::Decimal, _) => Err(wrong_type("a number")),
            (FieldType::Boolean, _) => Err(wrong_type("true or false")),
            (FieldType::StringList, _) => Err(wrong_type("an array of strings")),
            _ => Err(wrong_type("a string")),
        }
    }

    fn check_string(&self, value: &str) -> Result<(), Violation> {
        if let Some(max) = self.max_length
            && value.len() > max
        {
            let n = value.chars().count();
            if n > max {
                return Err(Violation::new(
                    Reason::InvalidFormat,
                    self,
                    format!("{n} characters, at most {max} allowed"),
                ));
            }
        }
        if let Some(pattern) = &self.pattern
            && !pattern.is_match(value)
        {
            return Err(Violation::new(
                Reason::InvalidFormat,
                self,
                format!(
                    "{} does not match {}",
                    self.describe(value),
                    pattern.as_str()
                ),
            ));
        }
        Ok(())
    }

    fn check_item(&self, item: &str) -> Result<(), Violation> {
        match &self.pattern {
            Some(p) if !p.is_match(item) => Err(Violation::new(
                Reason::InvalidFormat,
                self,
                format!("list item {item:?} does not match {}", p.as_str()),
            )),
            _ => Ok(()),
        }
    }

    fn check_enum(&self, value: &str) -> Result<(), Violation> {
        if self.values.iter().any(|v| v == value) {
            Ok(())
        } else {
            Err(Violation::new(
                Reason::UnknownEnum,
                self,
                format!("{value:?} is not one of {}", self.values.join("|")),
            ))
        }
    }

    fn parse_decimal_text<'a>(&self, value: &str) -> Result<Parsed<'a>, Violation> {
        let negative = value.starts_with('-');
        let digits = value.strip_prefix('-').unwrap_or(value);
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let well_formed = !int.is_empty()
            && int.len() <= 30
            && int.bytes().all(|b| b.is_ascii_digit())
            && frac.bytes().all(|b| b.is_ascii_digit())
            && !(digits.contains('.') && frac.is_empty());
        if !well_formed {
            let shown = self.describe(value);
            return Err(Violation::new(
                Reason::InvalidNumber,
                self,
                format!("{shown} is not a decimal number"),
            ));
        }
        if let Some(scale) = self.scale
            && frac.len() > scale as usize
        {
            return Err(Violation::new(
                Reason::InvalidNumber,
                self,
                format!("{} decimals, at most {scale} allowed", frac.len()),
            ));
        }
        let x: f64 = value.parse().map_err(|_| {
            Violation::new(Reason::InvalidNumber, self, "not a representable number")
        })?;
        self.check_range(x, value)?;
        Ok(match self.scale {
            Some(scale) => {
                let mut unscaled: i128 = 0;
                for b in int.bytes().chain(frac.bytes()) {
                    unscaled = unscaled * 10 + i128::from(b - b'0');
                }
                unscaled *= 10i128.pow(scale - frac.len() as u32);
                Parsed::Decimal(if negative { -unscaled } else { unscaled })
            }
            None => Parsed::Float(x),
        })
    }

    fn check_range(&self, x: f64, shown: &str) -> Result<(), Violation> {
        let below = self.min.is_some_and(|min| x < min);
        let above = self.max.is_some_and(|max| x > max);
        if below || above {
            let lo = self.min.map_or("-inf".into(), |v| v.to_string());
            let hi = self.max.map_or("inf".into(), |v| v.to_string());
            let shown = self.describe(shown);
            return Err(Violation::new(
                Reason::OutOfRange,
                self,
                format!("{shown} is outside {lo}..={hi}"),
            ));
        }
        Ok(())
    }
}

/// A value parsed by its field's type. Text borrows from the input.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed<'a> {
    /// Empty, null or absent.
    Null,
    /// A string or enum value.
    Text(&'a str),
    /// An integer.
    Int(i64),
    /// A decimal with a declared scale, as its unscaled integer
    /// (`-12.5` at scale 2 is `-1250`).
    Decimal(i128),
    /// A decimal without a declared scale.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A date.
    Date(chrono::NaiveDate),
    /// An instant.
    Timestamp(chrono::DateTime<chrono::Utc>),
    /// A list of strings.
    List(Vec<&'a str>),
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The set of contracts, by source name.
#[derive(Debug, Clone)]
pub struct Contracts {
    by_source: BTreeMap<String, Contract>,
}

impl Contracts {
    /// The contracts shipped in `schemas/`.
    pub fn embedded() -> &'static Contracts {
        &EMBEDDED_CONTRACTS
    }

    /// Parses contracts from `(file name, TOML text)` pairs.
    pub fn parse<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Contracts> {
        let mut by_source = BTreeMap::new();
        for (file, text) in files {
            let contract = parse_contract(file, text)?;
            if by_source.contains_key(&contract.source) {
                return Err(Error::Contract {
                    file: file.into(),
                    reason: format!("source {:?} is defined twice", contract.source),
                });
            }
            by_source.insert(contract.source.clone(), contract);
        }
        Ok(Contracts { by_source })
    }

    /// The contract of `source`.
    pub fn get(&self, source: &str) -> Result<&Contract> {
        self.by_source
            .get(source)
            .ok_or_else(|| Error::UnknownSource {
                name: source.into(),
                known: self
                    .by_source
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// All contracts, sorted by source name.
    pub fn iter(&self) -> impl Iterator<Item = &Contract> {
        self.by_source.values()
    }

    /// The contract whose file pattern matches `file_name`, if any.
    pub fn for_file(&self, file_name: &str) -> Option<&Contract> {
        self.iter().find(|c| c.matches_file(file_name))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContract {
    source: String,
    #[serde(default)]
    description: String,
    format: Format,
    files: String,
    key: Vec<String>,
    event_time: Option<String>,
    field: Vec<RawField>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    name: String,
    #[serde(rename = "type")]
    ty: FieldType,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    values: Vec<String>,
    min: Option<f64>,
    max: Option<f64>,
    scale: Option<u32>,
    pattern: Option<String>,
    max_length: Option<usize>,
    #[serde(default)]
    pii: bool,
    #[serde(default)]
    description: String,
}

fn parse_contract(file: &str, text: &str) -> Result<Contract> {
    let bad = |reason: String| Error::Contract {
        file: file.into(),
        reason,
    };
    let raw: RawContract = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
    let matcher = Glob::new(&raw.files)
        .map_err(|e| bad(format!("files = {:?}: {e}", raw.files)))?
        .compile_matcher();
    let mut fields = Vec::with_capacity(raw.field.len());
    for f in raw.field {
        if fields.iter().any(|g: &Field| g.name == f.name) {
            return Err(bad(format!("field {:?} is declared twice", f.name)));
        }
        if (f.ty == FieldType::Enum) == f.values.is_empty() {
            return Err(bad(format!(
                "field {:?}: `values` goes with type enum, and only with it",
                f.name
            )));
        }
        let pattern = f
            .pattern
            .map(|p| Pattern::new(&p))
            .transpose()
            .map_err(|e| bad(format!("field {:?}: bad pattern: {e}", f.name)))?;
        fields.push(Field {
            name: f.name,
            ty: f.ty,
            required: f.required,
            values: f.values,
            min: f.min,
            max: f.max,
            scale: f.scale,
            pattern,
            max_length: f.max_length,
            pii: f.pii,
            description: f.description,
        });
    }
    let known = |name: &String| fields.iter().any(|f| &f.name == name);
    if let Some(missing) = raw.key.iter().chain(&raw.event_time).find(|n| !known(n)) {
        return Err(bad(format!(
            "key or event_time names unknown field {missing:?}"
        )));
    }
    Ok(Contract {
        source: raw.source,
        description: raw.description,
        format: raw.format,
        files: raw.files,
        matcher,
        key: raw.key,
        event_time: raw.event_time,
        fields,
    })
}

/// A field's pattern, compiled once into an anchored DFA: matching needs
/// no cache, so checking values on many threads costs no coordination.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    dfa: dense::DFA<Vec<u32>>,
}

impl Pattern {
    /// Compiles `pattern`; it must match the whole text, whatever anchors it
    /// already has.
    pub fn new(pattern: &str) -> Result<Pattern, Box<dense::BuildError>> {
        let dfa = dense::Builder::new()
            .configure(dense::Config::new().start_kind(StartKind::Anchored))
            .build(&format!("^(?:{pattern})$"))
            .map_err(Box::new)?;
        Ok(Pattern {
            source: pattern.to_string(),
            dfa,
        })
    }

    /// True when the whole of `text` matches.
    pub fn is_match(&self, text: &str) -> bool {
        let input = Input::new(text).anchored(Anchored::Yes);
        matches!(self.dfa.try_search_fwd(&input), Ok(Some(_)))
    }

    /// The pattern as written in the contract.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract(name: &str) -> &'static Contract {
        Contracts::embedded().get(name).unwrap()
    }

    fn check(source: &str, overrides: &[(&str, &str)]) -> Result<(), Violation> {
        let c = contract(source);
        let base: BTreeMap<&str, &str> = match source {
            "transactions" => [
                ("txn_id", "TX1"),
                ("customer_id", "C100000001"),
                ("card_id", "CD1"),
                ("ts", "2026-01-05T10:00:00+08:00"),
                ("amount", "-12.50"),
                ("currency", "CNY"),
                ("mcc", "5812"),
                ("merchant_id", "M1"),
                ("merchant_name", "Wang's \"Golden\" Dumplings, Ltd"),
                ("channel", "pos"),
                ("country", "CN"),
                ("status", "approved"),
            ]
            .into(),
            "customers" => [
                ("customer_id", "C100000001"),
                ("full_name", "王伟"),
                ("id_number", "31010119900101123X"),
                ("phone", "+86 138 1234 5678"),
                ("email", " Wang.Wei@QQ.com "),
                ("birth_date", "1990-01-01"),
                ("gender", "M"),
                ("city", "Xi'an"),
                ("segment", "mass"),
                ("income_band", "10"),
                ("onboard_date", "2020-02-29"),
                ("kyc_level", "3"),
                ("marketing_opt_in", "true"),
                ("products", "debit;credit_classic"),
                ("updated_at", "2026-01-05T10:00:00Z"),
            ]
            .into(),
            other => panic!("no base row for {other}"),
        };
        let header = c.column_names();
        let layout = c.csv_layout(&header).unwrap();
        let row: Vec<&str> = header
            .iter()
            .map(|h| {
                overrides
                    .iter()
                    .find(|(k, _)| k == h)
                    .map_or(base[h], |(_, v)| v)
            })
            .collect();
        c.validate_csv(&layout, row.iter().map(|s| s.as_bytes()))
    }

    fn reason(source: &str, overrides: &[(&str, &str)]) -> Reason {
        check(source, overrides).unwrap_err().reason
    }

    #[test]
    fn embedded_contracts_parse_and_cover_the_six_sources() {
        let names: Vec<_> = Contracts::embedded()
            .iter()
            .map(|c| c.source.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "card_products",
                "customers",
                "device_events",
                "offer_events",
                "social_profiles",
                "transactions"
            ]
        );
        assert!(contract("transactions").matches_file("transactions_2026-01-01.csv.gz"));
        assert!(!contract("transactions").matches_file("transactions.ndjson"));
        assert_eq!(
            Contracts::embedded()
                .for_file("device_events_2026-01-01.ndjson")
                .map(|c| c.source.as_str()),
            Some("device_events")
        );
    }

    #[test]
    fn valid_rows_pass_including_tricky_but_legal_values() {
        check("transactions", &[]).unwrap();
        check("customers", &[]).unwrap();
        check(
            "customers",
            &[("phone", ""), ("email", ""), ("products", "")],
        )
        .unwrap();
        check(
            "transactions",
            &[("ts", "2026-01-05T02:00:00Z"), ("amount", "7")],
        )
        .unwrap();
    }

    #[test]
    fn each_kind_of_bad_value_gets_its_reason() {
        use Reason::*;
        assert_eq!(
            reason("transactions", &[("amount", "1.2.3")]),
            InvalidNumber
        );
        assert_eq!(
            reason("transactions", &[("amount", "12.345")]),
            InvalidNumber
        );
        assert_eq!(
            reason("transactions", &[("amount", "1,234.50")]),
            InvalidNumber
        );
        assert_eq!(
            reason("transactions", &[("amount", "9999999999.00")]),
            OutOfRange
        );
        assert_eq!(
            reason("transactions", &[("ts", "2026-01-05 10:00:00")]),
            InvalidTimestamp
        );
        assert_eq!(reason("transactions", &[("channel", "kiosk")]), UnknownEnum);
        assert_eq!(reason("transactions", &[("txn_id", "")]), MissingRequired);
        assert_eq!(reason("transactions", &[("mcc", "581")]), InvalidFormat);
        assert_eq!(reason("customers", &[("income_band", "11")]), OutOfRange);
        assert_eq!(
            reason("customers", &[("birth_date", "1990-02-30")]),
            InvalidDate
        );
        assert_eq!(
            reason("customers", &[("marketing_opt_in", "yes")]),
            InvalidBoolean
        );
        assert_eq!(
            reason("customers", &[("products", "debit;Credit Gold")]),
            InvalidFormat
        );
    }

    #[test]
    fn short_rows_and_bad_bytes_are_caught_before_values() {
        let c = contract("transactions");
        let layout = c.csv_layout(&c.column_names()).unwrap();
        let short = ["TX1", "C100000001"];
        let err = c
            .validate_csv(&layout, short.iter().map(|s| s.as_bytes()))
            .unwrap_err();
        assert_eq!(err.reason, Reason::WrongFieldCount);

        let mut row: Vec<Vec<u8>> = vec![b"x".to_vec(); 12];
        row[8] = vec![0xD5, 0xC5, 0xCE, 0xB0]; // GBK for 张伟
        let err = c
            .validate_csv(&layout, row.iter().map(|v| v.as_slice()))
            .unwrap_err();
        assert_eq!(err.reason, Reason::InvalidEncoding);
        assert_eq!(err.field.as_deref(), Some("merchant_name"));
    }

    #[test]
    fn headers_match_by_name_in_any_order() {
        let c = contract("card_products");
        let mut header = c.column_names();
        header.reverse();
        header.push("extra");
        let layout = c.csv_layout(&header).unwrap();
        assert_eq!(layout.width, 7);
        assert_eq!(layout.positions[0], 5);
        let err = c.csv_layout(&["offer_id", "name", "name"]).unwrap_err();
        assert!(err.missing.contains(&"tier".to_string()));
        assert_eq!(err.duplicated, ["name"]);
    }

    #[test]
    fn json_lines_are_typed() {
        let c = contract("social_profiles");
        let ok = r#"{"record_id":"SP1","platform":"weibo","handle":"@w","phone_sha256":null,
            "email_sha256":null,"customer_id":null,"observed_at":"2026-01-05T10:00:00Z",
            "followers":10,"following":3,"posts_30d":0,"engagement_rate":0.1,
            "interests":["travel"],"sentiment":-0.5,"unknown_key":1}"#
            .replace('\n', "");
        c.validate_json(ok.as_bytes()).unwrap();
        let bad = |from: &str, to: &str| {
            c.validate_json(ok.replace(from, to).as_bytes())
                .unwrap_err()
                .reason
        };
        assert_eq!(
            bad(r#""followers":10"#, r#""followers":"10""#),
            Reason::WrongType
        );
        assert_eq!(
            bad(r#""followers":10"#, r#""followers":1.5"#),
            Reason::WrongType
        );
        assert_eq!(bad("0.1", "1.7"), Reason::OutOfRange);
        assert_eq!(bad(r#""record_id":"SP1","#, ""), Reason::MissingRequired);
        assert_eq!(bad(r#"["travel"]"#, r#""travel""#), Reason::WrongType);
        assert_eq!(
            bad("2026-01-05T10:00:00Z", "yesterday"),
            Reason::InvalidTimestamp
        );
        assert_eq!(
            c.validate_json(&ok.as_bytes()[..40]).unwrap_err().reason,
            Reason::MalformedJson
        );
        assert_eq!(
            c.validate_json(b"[1,2]").unwrap_err().reason,
            Reason::MalformedJson
        );
    }

    #[test]
    fn pii_values_never_appear_in_violations() {
        let err = check("customers", &[("id_number", "SECRET-123")]).unwrap_err();
        assert_eq!(err.reason, Reason::InvalidFormat);
        assert!(!err.to_string().contains("SECRET"), "{err}");
    }

    #[test]
    fn malformed_contracts_are_reported_with_their_file() {
        let err = Contracts::parse([("x.toml", "source = 1")]).unwrap_err();
        assert!(err.to_string().starts_with("contract x.toml:"), "{err}");
        let text = r#"
            source = "s"
            format = "csv"
            files = "s*.csv"
            key = ["nope"]
            [[field]]
            name = "a"
            type = "string"
        "#;
        let err = Contracts::parse([("s.toml", text)]).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        assert!(Contracts::embedded().get("ledger").is_err());
    }

    #[test]
    fn values_parse_to_their_types() {
        let c = contract("transactions");
        let amount = c.field("amount").unwrap();
        assert_eq!(amount.parse_text("-12.5").unwrap(), Parsed::Decimal(-1250));
        assert_eq!(amount.parse_text("7").unwrap(), Parsed::Decimal(700));
        assert_eq!(amount.parse_text("0.07").unwrap(), Parsed::Decimal(7));
        let ts = c.field("ts").unwrap();
        assert_eq!(
            ts.parse_text("2026-01-05T10:00:00+08:00").unwrap(),
            Parsed::Timestamp(parse_timestamp("2026-01-05T02:00:00Z").unwrap())
        );
        let merchant = c.field("merchant_name").unwrap();
        assert_eq!(merchant.parse_text("").unwrap(), Parsed::Null);
        let customers = contract("customers");
        let products = customers.field("products").unwrap();
        assert_eq!(
            products.parse_text("debit;credit_classic").unwrap(),
            Parsed::List(vec!["debit", "credit_classic"])
        );
        let rate = contract("social_profiles")
            .field("engagement_rate")
            .unwrap();
        assert_eq!(
            rate.parse_json(&serde_json::json!(0.25)).unwrap(),
            Parsed::Float(0.25)
        );
    }

    #[test]
    fn reason_codes_round_trip() {
        for r in Reason::ALL {
            assert_eq!(Reason::from_code(r.code()), Some(r));
        }
    }
}
