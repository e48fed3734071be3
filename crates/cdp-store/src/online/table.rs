//! A feature snapshot as the online store holds it: one row per
//! unified_id, one typed column per feature, integers narrowed to the
//! fewest bytes their values need.
//!
//! Both backends are fed the same [`OnlineTable`] and answer from the same
//! typed [`Column`] accessors (the embedded one reads them memory-mapped;
//! Redis stores their [`Column::encode`]d text and [`decode`]s it back), so
//! the two give the same values.

use std::io::Write as _;
use std::sync::Arc;

use cdp_engine::features::FeatureType;
use chrono::NaiveDate;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Float64Array, Int8Array, Int16Array,
    Int32Array, Int64Array, ListArray, RecordBatch, StringArray,
};
use datafusion::arrow::compute::{cast, max, min};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Field, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, Schema,
};

use crate::error::{Error, Result};
use crate::online::index::KeyIndex;
use crate::online::{FeatureSpec, SnapshotInfo, Value};

/// The key column of every online table.
pub const KEY: &str = "unified_id";

/// Days from 0001-01-01 (CE) to 1970-01-01, Arrow's `Date32` epoch.
const UNIX_EPOCH_DAYS_CE: i32 = 719_163;

/// One feature's values, typed.
#[derive(Debug, Clone)]
pub enum Column {
    /// `int64` values that fit in 8 bits.
    I8(Int8Array),
    /// `int64` values that fit in 16 bits.
    I16(Int16Array),
    /// `int64` values that fit in 32 bits.
    I32(Int32Array),
    /// `int64` values.
    I64(Int64Array),
    /// `float64` and `decimal` values.
    F64(Float64Array),
    /// `bool` values.
    Bool(BooleanArray),
    /// `string` values.
    Text(StringArray),
    /// `date` values.
    Date(Date32Array),
    /// `string_list` values.
    List(ListArray),
}

impl Column {
    /// A column of feature `spec` from an array of any type Arrow can cast
    /// to the feature's (integers narrowed, decimals to `f64`, string views
    /// to strings).
    pub fn from_any(spec: &FeatureSpec, array: &ArrayRef) -> Result<Column> {
        let bad = |reason: String| Error::OnlineColumn {
            feature: spec.name.clone(),
            reason,
        };
        let to = |ty: &DataType| cast(array, ty).map_err(|e| bad(e.to_string()));
        Ok(match spec.ty {
            FeatureType::Int64 => narrow(to(&DataType::Int64)?.as_primitive::<Int64Type>()),
            FeatureType::Float64 | FeatureType::Decimal => Column::F64(
                to(&DataType::Float64)?
                    .as_primitive::<Float64Type>()
                    .clone(),
            ),
            FeatureType::Bool => Column::Bool(to(&DataType::Boolean)?.as_boolean().clone()),
            FeatureType::String => Column::Text(to(&DataType::Utf8)?.as_string::<i32>().clone()),
            FeatureType::Date => {
                Column::Date(to(&DataType::Date32)?.as_primitive::<Date32Type>().clone())
            }
            FeatureType::StringList => {
                let item = Arc::new(Field::new("item", DataType::Utf8, true));
                Column::List(to(&DataType::List(item))?.as_list::<i32>().clone())
            }
        })
    }

    /// A column read back from a stored array, which must have one of the
    /// types [`Column::from_any`] produces for `spec`.
    pub fn from_stored(spec: &FeatureSpec, array: &ArrayRef) -> Result<Column> {
        let bad = || Error::OnlineColumn {
            feature: spec.name.clone(),
            reason: format!(
                "stored as {}, which is not a {} column",
                array.data_type(),
                spec.ty.name()
            ),
        };
        let column = match (spec.ty, array.data_type()) {
            (FeatureType::Int64, DataType::Int8) => Column::I8(array.as_primitive().clone()),
            (FeatureType::Int64, DataType::Int16) => Column::I16(array.as_primitive().clone()),
            (FeatureType::Int64, DataType::Int32) => Column::I32(array.as_primitive().clone()),
            (FeatureType::Int64, DataType::Int64) => Column::I64(array.as_primitive().clone()),
            (FeatureType::Float64 | FeatureType::Decimal, DataType::Float64) => {
                Column::F64(array.as_primitive().clone())
            }
            (FeatureType::Bool, DataType::Boolean) => Column::Bool(array.as_boolean().clone()),
            (FeatureType::String, DataType::Utf8) => Column::Text(array.as_string().clone()),
            (FeatureType::Date, DataType::Date32) => Column::Date(array.as_primitive().clone()),
            (FeatureType::StringList, DataType::List(item))
                if *item.data_type() == DataType::Utf8 =>
            {
                Column::List(array.as_list().clone())
            }
            _ => return Err(bad()),
        };
        Ok(column)
    }

    /// The column as an Arrow array.
    pub fn array(&self) -> ArrayRef {
        match self {
            Column::I8(a) => Arc::new(a.clone()),
            Column::I16(a) => Arc::new(a.clone()),
            Column::I32(a) => Arc::new(a.clone()),
            Column::I64(a) => Arc::new(a.clone()),
            Column::F64(a) => Arc::new(a.clone()),
            Column::Bool(a) => Arc::new(a.clone()),
            Column::Text(a) => Arc::new(a.clone()),
            Column::Date(a) => Arc::new(a.clone()),
            Column::List(a) => Arc::new(a.clone()),
        }
    }

    fn inner(&self) -> &dyn Array {
        match self {
            Column::I8(a) => a,
            Column::I16(a) => a,
            Column::I32(a) => a,
            Column::I64(a) => a,
            Column::F64(a) => a,
            Column::Bool(a) => a,
            Column::Text(a) => a,
            Column::Date(a) => a,
            Column::List(a) => a,
        }
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.inner().len()
    }

    /// True without rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when row `row` holds a value (is not null).
    #[inline]
    pub fn is_valid(&self, row: usize) -> bool {
        self.inner().is_valid(row)
    }

    /// The value of row `row` ([`Value::Null`] when null).
    #[inline]
    pub fn value(&self, row: usize) -> Value {
        if !self.is_valid(row) {
            return Value::Null;
        }
        match self {
            Column::I8(a) => Value::Int(i64::from(a.value(row))),
            Column::I16(a) => Value::Int(i64::from(a.value(row))),
            Column::I32(a) => Value::Int(i64::from(a.value(row))),
            Column::I64(a) => Value::Int(a.value(row)),
            Column::F64(a) => Value::Float(a.value(row)),
            Column::Bool(a) => Value::Bool(a.value(row)),
            Column::Text(a) => Value::Text(a.value(row).to_string()),
            Column::Date(a) => date_value(a.value(row)),
            Column::List(a) => {
                let items = a.value(row);
                let items = items.as_string::<i32>();
                Value::List(
                    (0..items.len())
                        .filter(|&i| items.is_valid(i))
                        .map(|i| items.value(i).to_string())
                        .collect(),
                )
            }
        }
    }

    /// Appends the text Redis stores for row `row` to `out`; `false` (and
    /// nothing appended) when the row is null.
    pub fn encode(&self, row: usize, out: &mut Vec<u8>) -> bool {
        if !self.is_valid(row) {
            return false;
        }
        // Writing into a Vec cannot fail.
        let _ = match self {
            Column::I8(a) => write!(out, "{}", a.value(row)),
            Column::I16(a) => write!(out, "{}", a.value(row)),
            Column::I32(a) => write!(out, "{}", a.value(row)),
            Column::I64(a) => write!(out, "{}", a.value(row)),
            // Rust prints the shortest text that parses back to the same f64.
            Column::F64(a) => write!(out, "{}", a.value(row)),
            Column::Bool(a) => write!(out, "{}", a.value(row)),
            Column::Text(a) => out.write_all(a.value(row).as_bytes()),
            Column::Date(a) => match date_value(a.value(row)) {
                Value::Date(d) => write!(out, "{d}"),
                _ => write!(out, "{}", a.value(row)),
            },
            Column::List(_) => {
                if let Value::List(items) = self.value(row) {
                    let _ = serde_json::to_writer(&mut *out, &items);
                }
                Ok(())
            }
        };
        true
    }
}

/// The [`Value`] of an Arrow `Date32` (days since 1970-01-01).
fn date_value(days: i32) -> Value {
    days.checked_add(UNIX_EPOCH_DAYS_CE)
        .and_then(NaiveDate::from_num_days_from_ce_opt)
        .map_or(Value::Null, Value::Date)
}

/// Reads back text written by [`Column::encode`] for a feature of type `ty`.
///
/// ```
/// use cdp_engine::features::FeatureType;
/// use cdp_store::online::Value;
/// use cdp_store::online::table::decode;
///
/// assert_eq!(decode(FeatureType::Int64, b"42").unwrap(), Value::Int(42));
/// assert_eq!(decode(FeatureType::Decimal, b"10.25").unwrap(), Value::Float(10.25));
/// assert_eq!(decode(FeatureType::StringList, br#"["a"]"#).unwrap(), Value::List(vec!["a".into()]));
/// assert!(decode(FeatureType::Bool, b"maybe").is_err());
/// ```
pub fn decode(ty: FeatureType, bytes: &[u8]) -> std::result::Result<Value, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let bad = |what: &str| format!("not {what}");
    Ok(match ty {
        FeatureType::Int64 => Value::Int(text.parse().map_err(|_| bad("an integer"))?),
        FeatureType::Float64 | FeatureType::Decimal => {
            Value::Float(text.parse().map_err(|_| bad("a number"))?)
        }
        FeatureType::Bool => Value::Bool(text.parse().map_err(|_| bad("true or false"))?),
        FeatureType::String => Value::Text(text.to_string()),
        FeatureType::Date => Value::Date(text.parse().map_err(|_| bad("a date"))?),
        FeatureType::StringList => {
            Value::List(serde_json::from_str(text).map_err(|_| bad("a JSON list of strings"))?)
        }
    })
}

/// An `int64` column in the narrowest integer type holding its values.
fn narrow(values: &Int64Array) -> Column {
    let (lo, hi) = (min(values).unwrap_or(0), max(values).unwrap_or(0));
    let fits = |lo_t: i64, hi_t: i64| lo >= lo_t && hi <= hi_t;
    if fits(i64::from(i8::MIN), i64::from(i8::MAX)) {
        Column::I8(values.unary::<_, Int8Type>(|v| v as i8))
    } else if fits(i64::from(i16::MIN), i64::from(i16::MAX)) {
        Column::I16(values.unary::<_, Int16Type>(|v| v as i16))
    } else if fits(i64::from(i32::MIN), i64::from(i32::MAX)) {
        Column::I32(values.unary::<_, Int32Type>(|v| v as i32))
    } else {
        Column::I64(values.clone())
    }
}

/// A feature snapshot for the online store: unified_ids, one typed column
/// per feature, and what the snapshot is.
#[derive(Debug, Clone)]
pub struct OnlineTable {
    /// As-of date, event time, rows and features (in column order).
    pub info: SnapshotInfo,
    /// The unified_ids, one per row, no nulls, no duplicates.
    pub ids: StringArray,
    /// One column per feature of `info.features`.
    pub columns: Vec<Column>,
    /// The key index file over `ids` (see [`KeyIndex`]).
    pub index: Vec<u8>,
}

impl OnlineTable {
    /// Builds the table, and its key index, from `unified_id` and one
    /// array per feature of `info.features` (any type [`Column::from_any`]
    /// accepts). Duplicate or null unified_ids are refused.
    pub fn new(mut info: SnapshotInfo, ids: &ArrayRef, arrays: &[ArrayRef]) -> Result<Self> {
        let ids = cast(ids, &DataType::Utf8).map_err(|e| Error::OnlineColumn {
            feature: KEY.into(),
            reason: e.to_string(),
        })?;
        let ids = ids.as_string::<i32>().clone();
        if ids.null_count() > 0 {
            return Err(Error::OnlineColumn {
                feature: KEY.into(),
                reason: format!("{} rows have no unified_id", ids.null_count()),
            });
        }
        let index = KeyIndex::build(ids.len(), |row| ids.value(row)).map_err(|reason| {
            Error::OnlineColumn {
                feature: KEY.into(),
                reason,
            }
        })?;
        let columns = info
            .features
            .iter()
            .zip(arrays)
            .map(|(spec, array)| Column::from_any(spec, array))
            .collect::<Result<Vec<_>>>()?;
        if columns.len() != info.features.len() {
            return Err(Error::OnlineColumn {
                feature: "*".into(),
                reason: format!(
                    "{} features but {} columns",
                    info.features.len(),
                    arrays.len()
                ),
            });
        }
        info.rows = ids.len() as u64;
        Ok(Self {
            info,
            ids,
            columns,
            index,
        })
    }

    /// Rows (entities).
    pub fn rows(&self) -> usize {
        self.ids.len()
    }

    /// The table as one Arrow batch: `unified_id`, then the features.
    pub fn to_batch(&self) -> Result<RecordBatch> {
        let mut fields = vec![Field::new(KEY, DataType::Utf8, false)];
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(self.ids.clone())];
        for (spec, column) in self.info.features.iter().zip(&self.columns) {
            let array = column.array();
            fields.push(Field::new(&spec.name, array.data_type().clone(), true));
            arrays.push(array);
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| {
            Error::OnlineColumn {
                feature: "*".into(),
                reason: e.to_string(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ty: FeatureType) -> FeatureSpec {
        FeatureSpec {
            name: "f".into(),
            ty,
            ttl_days: 1,
        }
    }

    #[test]
    fn integers_are_narrowed_and_read_back_as_i64() {
        for (values, width) in [
            (vec![Some(1), None, Some(-128)], 8),
            (vec![Some(300), Some(0)], 16),
            (vec![Some(70_000), None], 32),
            (vec![Some(i64::MAX), Some(i64::MIN)], 64),
        ] {
            let array: ArrayRef = Arc::new(Int64Array::from(values.clone()));
            let column = Column::from_any(&spec(FeatureType::Int64), &array).unwrap();
            assert_eq!(
                column.array().data_type().primitive_width().unwrap() * 8,
                width
            );
            let back = Column::from_stored(&spec(FeatureType::Int64), &column.array()).unwrap();
            for (row, v) in values.iter().enumerate() {
                let expected = v.map_or(Value::Null, Value::Int);
                assert_eq!(back.value(row), expected);
                let mut text = Vec::new();
                if back.encode(row, &mut text) {
                    assert_eq!(decode(FeatureType::Int64, &text).unwrap(), expected);
                } else {
                    assert_eq!(expected, Value::Null);
                }
            }
        }
    }

    #[test]
    fn every_type_round_trips_through_the_redis_text() {
        let item = Arc::new(Field::new("item", DataType::Utf8View, true));
        let list = datafusion::arrow::array::ListBuilder::new(
            datafusion::arrow::array::StringViewBuilder::new(),
        );
        let mut list = list.with_field(item);
        list.append_value([Some("travel"), Some("food, \"good\"")]);
        list.append_null();
        let cases: Vec<(FeatureType, ArrayRef)> = vec![
            (
                FeatureType::Float64,
                Arc::new(Float64Array::from(vec![Some(0.1 + 0.2), None])),
            ),
            (
                FeatureType::Decimal,
                Arc::new(
                    datafusion::arrow::array::Decimal128Array::from(vec![Some(12345), None])
                        .with_precision_and_scale(18, 2)
                        .unwrap(),
                ),
            ),
            (
                FeatureType::Bool,
                Arc::new(BooleanArray::from(vec![Some(true), None])),
            ),
            (
                FeatureType::String,
                Arc::new(datafusion::arrow::array::StringViewArray::from(vec![
                    Some("affluent"),
                    None,
                ])),
            ),
            (
                FeatureType::Date,
                Arc::new(Date32Array::from(vec![Some(20_513), None])),
            ),
            (FeatureType::StringList, Arc::new(list.finish())),
        ];
        for (ty, array) in cases {
            let column = Column::from_any(&spec(ty), &array).unwrap();
            let stored = Column::from_stored(&spec(ty), &column.array()).unwrap();
            let v = stored.value(0);
            assert_ne!(v, Value::Null, "{ty:?}");
            assert_eq!(stored.value(1), Value::Null, "{ty:?}");
            let mut text = Vec::new();
            assert!(stored.encode(0, &mut text));
            assert_eq!(decode(ty, &text).unwrap(), v, "{ty:?}");
            assert!(!stored.encode(1, &mut text));
        }
        let decimal = Column::from_any(
            &spec(FeatureType::Decimal),
            &(Arc::new(
                datafusion::arrow::array::Decimal128Array::from(vec![12345])
                    .with_precision_and_scale(18, 2)
                    .unwrap(),
            ) as ArrayRef),
        )
        .unwrap();
        assert_eq!(decimal.value(0), Value::Float(123.45));
        let date = Column::from_any(
            &spec(FeatureType::Date),
            &(Arc::new(Date32Array::from(vec![20_513])) as ArrayRef),
        )
        .unwrap();
        assert_eq!(
            date.value(0),
            Value::Date(NaiveDate::from_ymd_opt(2026, 3, 1).unwrap())
        );
    }

    #[test]
    fn a_stored_column_of_the_wrong_type_is_refused() {
        let array: ArrayRef = Arc::new(Float64Array::from(vec![1.0]));
        let err = Column::from_stored(&spec(FeatureType::Int64), &array).unwrap_err();
        assert!(err.to_string().contains("not a int64 column"), "{err}");
    }

    #[test]
    fn duplicate_unified_ids_are_refused() {
        let info = SnapshotInfo {
            as_of: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
            event_time: chrono::Utc::now(),
            rows: 0,
            features: vec![spec(FeatureType::Int64)],
        };
        let ids: ArrayRef = Arc::new(StringArray::from(vec!["U1", "U1"]));
        let values: ArrayRef = Arc::new(Int64Array::from(vec![1, 2]));
        let err = OnlineTable::new(info, &ids, &[values]).unwrap_err();
        assert!(err.to_string().contains("U1 appears twice"), "{err}");
    }
}
