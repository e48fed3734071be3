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

    /// The cell as CSV text.
    fn csv_bytes(&self) -> Vec<u8> {
        match self {
            Cell::Null => Vec::new(),
            Cell::Text(s) => s.as_bytes().to_vec(),
            Cell::Int(n) => n.to_string().into_bytes(),
            Cell::Dec(x, d) => format!("{x:.d$}").into_bytes(),
            Cell::Bool(b) => b.to_string().into_bytes(),
            Cell::List(items) => items.join(";").into_bytes(),
            Cell::Bytes(b) => b.clone(),
        }
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

/// Appends `row` as one CSV record (all cells, or the first `width`).
pub fn write_csv(out: &mut Vec<u8>, row: &[Cell], width: usize) {
    let mut writer = csv::WriterBuilder::new()
        .flexible(true)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(out);
    let cells: Vec<Vec<u8>> = row.iter().take(width).map(Cell::csv_bytes).collect();
    writer.write_record(&cells).expect("writing to a Vec");
    writer.flush().expect("writing to a Vec");
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
        let mut out = Vec::new();
        let row = vec![
            Cell::text("plain"),
            Cell::text("Wang's \"Golden\", Ltd"),
            Cell::Dec(-12.5, 2),
            Cell::Null,
            Cell::List(vec!["a".into(), "b".into()]),
        ];
        write_csv(&mut out, &row, row.len());
        assert_eq!(
            String::from_utf8(out).unwrap(),
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
