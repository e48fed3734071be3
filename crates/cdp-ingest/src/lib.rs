//! # cdp-ingest (under construction)
use polars::prelude::*;

/// Probe of the polars API used for bronze files.
pub fn probe() -> PolarsResult<Vec<u8>> {
    let mut df = DataFrame::new_infer_height(vec![
        Column::new("a".into(), vec![1i64, 2]),
        Column::new("b".into(), vec![Some("x"), None]),
    ])?;
    let mut out = Vec::new();
    ParquetWriter::new(&mut out)
        .with_compression(ParquetCompression::Zstd(None))
        .finish(&mut df)?;
    Ok(out)
}
