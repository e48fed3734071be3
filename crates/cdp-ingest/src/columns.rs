//! Typed column builders: contract values in, polars series out.

use polars::prelude::*;

use cdp_core::contract::{Field, FieldType, Parsed};

/// Precision of bronze decimals.
pub const DECIMAL_PRECISION: usize = 18;

/// Accumulates one column's values.
pub enum Builder {
    Text(StringChunkedBuilder),
    Int(PrimitiveChunkedBuilder<Int64Type>),
    Float(PrimitiveChunkedBuilder<Float64Type>),
    Decimal(PrimitiveChunkedBuilder<Int128Type>, usize),
    Bool(BooleanChunkedBuilder),
    Date(PrimitiveChunkedBuilder<Int32Type>),
    Timestamp(PrimitiveChunkedBuilder<Int64Type>),
    List(PlSmallStr, Vec<Option<Series>>),
}

/// Days from the common era's day 1 to 1970-01-01.
const UNIX_EPOCH_FROM_CE: i32 = 719_163;

/// Days from 1970-01-01 to `d`, as Arrow dates count.
pub fn epoch_days(d: chrono::NaiveDate) -> i32 {
    use chrono::Datelike;
    d.num_days_from_ce() - UNIX_EPOCH_FROM_CE
}

impl Builder {
    /// A builder for a contract field's values.
    pub fn for_field(field: &Field, capacity: usize) -> Builder {
        let name: PlSmallStr = field.name.as_str().into();
        match field.ty {
            FieldType::String | FieldType::Enum => {
                Builder::Text(StringChunkedBuilder::new(name, capacity))
            }
            FieldType::Integer => Builder::Int(PrimitiveChunkedBuilder::new(name, capacity)),
            FieldType::Decimal => match field.scale {
                Some(scale) => {
                    Builder::Decimal(PrimitiveChunkedBuilder::new(name, capacity), scale as usize)
                }
                None => Builder::Float(PrimitiveChunkedBuilder::new(name, capacity)),
            },
            FieldType::Boolean => Builder::Bool(BooleanChunkedBuilder::new(name, capacity)),
            FieldType::Date => Builder::Date(PrimitiveChunkedBuilder::new(name, capacity)),
            FieldType::Timestamp => {
                Builder::Timestamp(PrimitiveChunkedBuilder::new(name, capacity))
            }
            FieldType::StringList => Builder::List(name, Vec::with_capacity(capacity)),
        }
    }

    /// A text column.
    pub fn text(name: &str, capacity: usize) -> Builder {
        Builder::Text(StringChunkedBuilder::new(name.into(), capacity))
    }

    /// A date column.
    pub fn date(name: &str, capacity: usize) -> Builder {
        Builder::Date(PrimitiveChunkedBuilder::new(name.into(), capacity))
    }

    /// An integer column.
    pub fn int(name: &str, capacity: usize) -> Builder {
        Builder::Int(PrimitiveChunkedBuilder::new(name.into(), capacity))
    }

    /// Appends one value (already checked against the field's type).
    pub fn push(&mut self, value: &Parsed) {
        match (self, value) {
            (Builder::Text(b), Parsed::Text(s)) => b.append_value(s),
            (Builder::Int(b), Parsed::Int(n)) => b.append_value(*n),
            (Builder::Float(b), Parsed::Float(x)) => b.append_value(*x),
            (Builder::Decimal(b, _), Parsed::Decimal(n)) => b.append_value(*n),
            (Builder::Bool(b), Parsed::Bool(v)) => b.append_value(*v),
            (Builder::Date(b), Parsed::Date(d)) => b.append_value(epoch_days(*d)),
            (Builder::Timestamp(b), Parsed::Timestamp(t)) => b.append_value(t.timestamp_micros()),
            (Builder::List(name, items), Parsed::List(values)) => {
                items.push(Some(Series::new(name.clone(), values.as_slice())))
            }
            (Builder::List(_, items), _) => items.push(None),
            (b, _) => b.push_null(),
        }
    }

    /// Appends a missing value.
    pub fn push_null(&mut self) {
        match self {
            Builder::Text(b) => b.append_null(),
            Builder::Int(b) | Builder::Timestamp(b) => b.append_null(),
            Builder::Float(b) => b.append_null(),
            Builder::Decimal(b, _) => b.append_null(),
            Builder::Bool(b) => b.append_null(),
            Builder::Date(b) => b.append_null(),
            Builder::List(_, items) => items.push(None),
        }
    }

    /// The column with its logical type: dates, UTC microsecond instants,
    /// `Decimal(18, scale)`, lists of strings.
    pub fn finish(self) -> PolarsResult<Column> {
        let series = match self {
            Builder::Text(b) => b.finish().into_series(),
            Builder::Int(b) => b.finish().into_series(),
            Builder::Float(b) => b.finish().into_series(),
            Builder::Decimal(b, scale) => b
                .finish()
                .into_series()
                .into_decimal(DECIMAL_PRECISION, scale)?,
            Builder::Bool(b) => b.finish().into_series(),
            Builder::Date(b) => b.finish().into_date().into_series(),
            Builder::Timestamp(b) => b
                .finish()
                .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
                .into_series(),
            Builder::List(name, items) => {
                let list: ListChunked = items.into_iter().collect();
                list.with_name(name)
                    .into_series()
                    .cast(&DataType::List(Box::new(DataType::String)))?
            }
        };
        Ok(series.into_column())
    }
}

/// The date `days` after 1970-01-01.
pub fn date_from_days(days: i32) -> chrono::NaiveDate {
    chrono::NaiveDate::from_num_days_from_ce_opt(days + UNIX_EPOCH_FROM_CE).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_days_round_trip() {
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        assert_eq!(epoch_days(epoch), 0);
        let d = chrono::NaiveDate::from_ymd_opt(2026, 1, 16).unwrap();
        assert_eq!(epoch_days(d), 20_469);
        assert_eq!(date_from_days(epoch_days(d)), d);
    }
}
