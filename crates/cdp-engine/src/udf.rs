//! SQL functions cdp adds to DataFusion: PII masking (`mask_phone`,
//! `mask_email`, `mask_name`, `mask_id_number`, `mask_text`) with the same
//! rules as [`cdp_core::pii`], `sha256_hex(text)` (the lower-case hex SHA-256
//! of a text, for pseudonymous keys), and `business_date(ts)`, the bank's
//! business day of an instant in the configured time zone.

use std::sync::Arc;

use cdp_core::time::BusinessCalendar;
use chrono::{DateTime, NaiveDate};
use datafusion::arrow::array::{ArrayRef, AsArray, Date32Array, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use datafusion::common::{Result as DfResult, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, create_udf,
};
use datafusion::prelude::SessionContext;

/// Registers every cdp function with `ctx`.
pub fn register(ctx: &SessionContext, calendar: BusinessCalendar) {
    for f in functions(calendar) {
        ctx.register_udf(f);
    }
}

/// Every cdp function, for sessions made elsewhere: a Ballista scheduler's
/// and executors' registries must hold the same functions, under the same
/// names, as the client that planned the query.
pub fn functions(calendar: BusinessCalendar) -> Vec<ScalarUDF> {
    let mut out: Vec<ScalarUDF> = [
        (
            "mask_phone",
            cdp_core::pii::mask_phone as fn(&str) -> String,
        ),
        ("mask_email", cdp_core::pii::mask_email),
        ("mask_name", cdp_core::pii::mask_name),
        ("mask_id_number", cdp_core::pii::mask_id_number),
        ("mask_text", cdp_core::pii::mask_text),
        ("sha256_hex", cdp_core::identity::sha256_hex),
    ]
    .into_iter()
    .map(|(name, f)| ScalarUDF::new_from_impl(StringMap::new(name, f)))
    .collect();
    out.push(business_date(calendar));
    out
}

/// A string-to-string function applied value by value; nulls stay null.
/// Two are the same function when they have the same name.
#[derive(Debug)]
struct StringMap {
    name: &'static str,
    signature: Signature,
    f: fn(&str) -> String,
}

impl PartialEq for StringMap {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for StringMap {}

impl std::hash::Hash for StringMap {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl StringMap {
    fn new(name: &'static str, f: fn(&str) -> String) -> Self {
        Self {
            name,
            signature: Signature::string(1, Volatility::Immutable),
            f,
        }
    }
}

impl ScalarUDFImpl for StringMap {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let input = cast(&arrays[0], &DataType::Utf8)?;
        let strings = input.as_string::<i32>();
        let out: StringArray = strings.iter().map(|v| v.map(self.f)).collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `business_date(ts)`: the business day (a DATE) of a UTC timestamp.
fn business_date(calendar: BusinessCalendar) -> ScalarUDF {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    let f = move |args: &[ColumnarValue]| -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(args)?;
        let input = cast(
            &arrays[0],
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        )?;
        let ts = input.as_primitive::<TimestampMicrosecondType>();
        let mut out = Vec::with_capacity(ts.len());
        for value in ts.iter() {
            out.push(match value {
                None => None,
                Some(micros) => match DateTime::from_timestamp_micros(micros) {
                    Some(t) => Some((calendar.business_date(t) - epoch).num_days() as i32),
                    None => return exec_err!("business_date: timestamp {micros} out of range"),
                },
            });
        }
        let array: ArrayRef = Arc::new(Date32Array::from(out));
        Ok(ColumnarValue::Array(array))
    };
    create_udf(
        "business_date",
        vec![DataType::Timestamp(
            TimeUnit::Microsecond,
            Some("UTC".into()),
        )],
        DataType::Date32,
        Volatility::Immutable,
        Arc::new(f),
    )
}
