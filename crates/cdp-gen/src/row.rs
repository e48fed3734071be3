//! A generated row: typed cells in contract field order, written as CSV
//! (through the `csv` crate's quoting) or as one NDJSON object.

use std::io::Write;

use cdp_core::contract::Contract;

/// One value of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Text(String),
    Int(i64),
    /// A decimal with this many digits after the point.
    Dec(f64, usize),
    Bool(bool),
    List(Vec<String>),
    /// Raw bytes (used only to plant wrongly encoded text in CSV).
    Bytes(Vec<u8>),
}

impl Cell {
    /// Text of a string-like cell.
    pub fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }

    /// Appends the text of a number, boolean or list cell.
    fn write_text(&self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = match self {
            Cell::Int(n) => write!(out, "{n}"),
            Cell::Dec(x, d) => write!(out, "{x:.d$}"),
            Cell::Bool(b) => write!(out, "{b}"),
            Cell::List(items) => write!(out, "{}", items.join(";")),
            Cell::Null | Cell::Text(_) | Cell::Bytes(_) => Ok(()),
        };
    }

    fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Cell::Null | Cell::Bytes(_) => out.extend_from_slice(b"null"),
            Cell::Text(s) => serde_json::to_writer(&mut *out, s).expect("writing to a Vec"),
            Cell::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
            Cell::Dec(x, d) => out.extend_from_slice(format!("{x:.d$}").as_bytes()),
            Cell::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Cell::List(items) => serde_json::to_writer(&mut *out, items).expect("writing to a Vec"),
        }
    }
}

/// A row and how to lay it out.
pub type Row = Vec<Cell>;

/// A CSV writer for rows (no header, `\n` terminator, quoting as needed).
pub fn csv_writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .flexible(true)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new())
}

/// Writes `row` as one CSV record: all cells, or the first `width`.
pub fn write_csv(writer: &mut csv::Writer<Vec<u8>>, row: &[Cell], width: usize) {
    let mut scratch = String::new();
    for cell in row.iter().take(width) {
        let bytes: &[u8] = match cell {
            Cell::Null => b"",
            Cell::Text(s) => s.as_bytes(),
            Cell::Bytes(b) => b,
            other => {
                scratch.clear();
                other.write_text(&mut scratch);
                scratch.as_bytes()
            }
        };
        writer.write_field(bytes).expect("writing to a Vec");
    }
    writer
        .write_record(None::<&[u8]>)
        .expect("writing to a Vec");
}

/// Appends `row` as one JSON object line; keys listed in `skip` are left out.
pub fn write_json(out: &mut Vec<u8>, contract: &Contract, row: &[Cell], skip: Option<usize>) {
    out.push(b'{');
    let mut first = true;
    for (k, (field, cell)) in contract.fields.iter().zip(row).enumerate() {
        if Some(k) == skip {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        serde_json::to_writer(&mut *out, &field.name).expect("writing to a Vec");
        out.push(b':');
        cell.write_json(out);
    }
    out.extend_from_slice(b"}\n");
}

/// Appends the CSV header of a contract.
pub fn write_header(out: &mut impl Write, contract: &Contract) -> std::io::Result<()> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(out);
    writer.write_record(contract.column_names())?;
    writer.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdp_core::contract::Contracts;

    #[test]
    fn csv_quotes_only_what_needs_quoting() {
        let mut out = csv_writer();
        let row = vec![
            Cell::text("plain"),
            Cell::text("Wang's \"Golden\", Ltd"),
            Cell::Dec(-12.5, 2),
            Cell::Null,
            Cell::List(vec!["a".into(), "b".into()]),
        ];
        write_csv(&mut out, &row, row.len());
        assert_eq!(
            String::from_utf8(out.into_inner().unwrap()).unwrap(),
            "plain,\"Wang's \"\"Golden\"\", Ltd\",-12.50,,a;b\n"
        );
    }

    #[test]
    fn json_keeps_types() {
        let contract = Contracts::embedded().get("card_products").unwrap();
        let row = vec![
            Cell::text("x"),
            Cell::text("Gourmet \"Plus\""),
            Cell::text("gold"),
            Cell::text("dining"),
            Cell::Dec(360.0, 2),
            Cell::Int(4),
        ];
        let mut out = Vec::new();
        write_json(&mut out, contract, &row, Some(0));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"name\":\"Gourmet \\\"Plus\\\"\",\"tier\":\"gold\",\"category\":\"dining\",\"annual_fee\":360.00,\"min_income_band\":4}\n"
        );
    }
}
