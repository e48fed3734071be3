//! `cdp tag --as-of D [--refit]`: customer tags from the feature snapshot.
//!
//! 1. the features the tagger reads, from `silver.features` as of D (one row
//!    per unified_id, ordered by it; nulls become missing values);
//! 2. the current tagger from the lake's model store — or, with `--refit`
//!    or before the first one, a new tagger fitted on this snapshot and
//!    stored as the next version (the old ones stay);
//! 3. the tagger applied: component scores, segment, tags, drift against
//!    its fit-time population;
//! 4. `gold.tags` and `gold.tag_drift` as of D, published together into the
//!    gold snapshot of D (other gold tables of D are kept).
//!
//! The numbers live in `cdp-ml`; this module moves them between the lake
//! and the tagger.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use cdp_core::config::TaggerConfig;
use cdp_core::progress::Progress;
use cdp_ml::store::TaggerStore;
use cdp_ml::tagger::{Tagger, Tags};
use chrono::NaiveDate;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Float64Array, Int32Array, ListArray,
    StringArray, StringBuilder,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::concat;
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::{cast, col};
use ndarray::Array2;
use serde::Serialize;
use tracing::instrument;

use crate::build::lap;
use crate::error::{Error, Result};
use crate::gold;
use crate::session::Engine;
use crate::tables::{self, LayerManifest};

/// The gold tables a tag run writes.
pub const GOLD_TABLES: [&str; 2] = ["tags", "tag_drift"];

/// What `cdp tag` is asked to do beyond applying the current tagger.
#[derive(Debug, Clone, Default)]
pub struct TagOptions {
    /// Fit a new tagger version on this snapshot first.
    pub refit: bool,
    /// Draw the first two components coloured by segment to this file
    /// (`.png` or `.svg`).
    pub plot: Option<PathBuf>,
}

/// What a tag run did.
#[derive(Debug, Clone, Serialize)]
pub struct TagReport {
    /// The as-of date.
    pub as_of: NaiveDate,
    /// The run id (names the gold files).
    pub run: String,
    /// The tagger version applied.
    pub tagger_version: String,
    /// Why a new tagger was fitted (`--refit`, or no tagger yet); `None`
    /// when the current one was re-applied.
    pub fitted: Option<String>,
    /// The snapshot the applied tagger was fitted on.
    pub fitted_on: Option<NaiveDate>,
    /// Customers tagged.
    pub customers: u64,
    /// Input features.
    pub features: usize,
    /// Missing feature values filled.
    pub filled: u64,
    /// Principal components: name and share of the variance.
    pub components: Vec<ComponentLine>,
    /// Share of the total variance the components keep.
    pub explained_variance: f64,
    /// Segments: name, customers now, share now and at fit time.
    pub segments: Vec<SegmentLine>,
    /// Drift against the fit-time population.
    pub drift: DriftLine,
    /// Rows per gold table.
    pub rows: BTreeMap<String, u64>,
    /// True when an earlier tag run of D was replaced.
    pub replaced: bool,
    /// The picture, when one was drawn.
    pub plot: Option<PathBuf>,
    /// Seconds per stage.
    pub seconds: BTreeMap<String, f64>,
}

/// One principal component in the report.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentLine {
    /// `PC1`, …
    pub component: String,
    /// Its readable name.
    pub name: String,
    /// Its share of the total variance.
    pub explained_variance_ratio: f64,
}

/// One segment in the report.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentLine {
    /// 1-based id.
    pub id: u32,
    /// Readable name.
    pub name: String,
    /// Customers in it now.
    pub customers: u64,
    /// Their share now.
    pub share: f64,
    /// Its share at fit time.
    pub baseline_share: f64,
}

/// Drift in the report.
#[derive(Debug, Clone, Serialize)]
pub struct DriftLine {
    /// PSI above which a warning is raised.
    pub threshold: f64,
    /// The feature with the largest PSI, and that PSI.
    pub worst_feature: Option<(String, f64)>,
    /// PSI of the segment shares.
    pub segments_psi: f64,
    /// One line per warning.
    pub warnings: Vec<String>,
}

/// Tags every customer of the silver snapshot as of `as_of` and publishes
/// `gold.tags` and `gold.tag_drift`.
#[instrument(skip_all, fields(as_of = %as_of, refit = options.refit))]
pub async fn tag(
    engine: &Engine,
    settings: &TaggerConfig,
    as_of: NaiveDate,
    options: &TagOptions,
    progress: &dyn Progress,
) -> Result<TagReport> {
    let started = Instant::now();
    let mut seconds = BTreeMap::new();
    let mut clock = Instant::now();
    let lake = engine.lake();
    let store = TaggerStore::new(lake);
    let current = if options.refit {
        None
    } else {
        store.current().await?
    };
    let fitted = match (&current, options.refit) {
        (_, true) => Some("--refit".to_string()),
        (None, false) => Some("no tagger yet".to_string()),
        (Some(_), false) => None,
    };
    progress.begin(
        &format!("tag as of {as_of}"),
        if fitted.is_some() { 5 } else { 4 },
    );
    let features = match &current {
        Some(tagger) => tagger.features.clone(),
        None => settings.features.clone(),
    };
    let (ids, x) = read_features(engine, as_of, &features).await?;
    lap(&mut seconds, "read", &mut clock);
    progress.advance(1);

    let tagger = match current {
        Some(tagger) => tagger,
        None => {
            let (tagger, fit_seconds) = Tagger::fit(x.view(), &features, settings, Some(as_of))?;
            for (stage, s) in fit_seconds {
                seconds.insert(format!("fit/{stage}"), s);
            }
            let stored = store.publish(tagger).await?;
            tracing::info!(version = %stored.version, "fitted a new tagger");
            lap(&mut seconds, "fit", &mut clock);
            progress.advance(1);
            stored
        }
    };
    let tags = tagger.apply(x.view(), &features, settings.psi_warning)?;
    for (stage, s) in &tags.seconds {
        seconds.insert(format!("apply/{stage}"), *s);
    }
    for warning in &tags.drift.warnings {
        tracing::warn!(tagger = %tagger.version, "{warning}");
    }
    lap(&mut seconds, "apply", &mut clock);
    progress.advance(1);

    let run = cdp_core::lake::run_id();
    let tags_batch = tags_batch(&tagger, as_of, ids, &tags)?;
    let drift_batch = drift_batch(&tagger, as_of, &tags)?;
    let mut written = BTreeMap::new();
    for (table, batch) in GOLD_TABLES.iter().zip([tags_batch, drift_batch]) {
        written.insert(
            table.to_string(),
            gold::write_table(engine, table, as_of, &run, &[batch]).await?,
        );
    }
    lap(&mut seconds, "write", &mut clock);
    progress.advance(1);
    let (_, replaced) = gold::publish(engine, as_of, &run, &written).await?;
    if let Some(path) = &options.plot {
        let title = format!(
            "Customer segments as of {as_of} · tagger {} · {} customers",
            tagger.version,
            thousands(tags.segments.len())
        );
        cdp_ml::plot::segments(path, &title, &tagger, tags.scores.view(), &tags.segments)?;
    }
    lap(&mut seconds, "publish", &mut clock);
    progress.advance(1);
    progress.finish();
    seconds.insert("total".into(), started.elapsed().as_secs_f64());
    Ok(report(
        &tagger, &tags, as_of, run, fitted, &written, replaced, options, seconds,
    ))
}

/// `1234567` as `1,234,567`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The report of a run.
#[allow(clippy::too_many_arguments)]
fn report(
    tagger: &Tagger,
    tags: &Tags,
    as_of: NaiveDate,
    run: String,
    fitted: Option<String>,
    written: &BTreeMap<String, tables::TableFiles>,
    replaced: bool,
    options: &TagOptions,
    seconds: BTreeMap<String, f64>,
) -> TagReport {
    let customers = tags.segments.len() as u64;
    let mut counts = vec![0u64; tagger.segments.len()];
    for &s in &tags.segments {
        counts[s as usize] += 1;
    }
    TagReport {
        as_of,
        run,
        tagger_version: tagger.version.clone(),
        fitted,
        fitted_on: tagger.fitted_on.as_of,
        customers,
        features: tagger.features.len(),
        filled: tags.filled,
        components: tagger
            .components
            .iter()
            .map(|c| ComponentLine {
                component: format!("PC{}", c.index),
                name: c.name.clone(),
                explained_variance_ratio: c.explained_variance_ratio,
            })
            .collect(),
        explained_variance: tagger.pca.explained_variance_ratio.iter().sum(),
        segments: tagger
            .segments
            .iter()
            .zip(&counts)
            .map(|(s, &n)| SegmentLine {
                id: s.id,
                name: s.name.clone(),
                customers: n,
                share: n as f64 / customers.max(1) as f64,
                baseline_share: s.share,
            })
            .collect(),
        drift: DriftLine {
            threshold: tags.drift.threshold,
            worst_feature: tags
                .drift
                .features
                .iter()
                .max_by(|a, b| a.psi.total_cmp(&b.psi))
                .map(|p| (p.name.clone(), p.psi)),
            segments_psi: tags.drift.segments_psi,
            warnings: tags.drift.warnings.clone(),
        },
        rows: written.iter().map(|(t, f)| (t.clone(), f.rows)).collect(),
        replaced,
        plot: options.plot.clone(),
        seconds,
    }
}

/// The unified_ids of snapshot D (sorted) and their features as a
/// `customers × features` matrix, nulls as `NaN`.
async fn read_features(
    engine: &Engine,
    as_of: NaiveDate,
    features: &[String],
) -> Result<(ArrayRef, Array2<f64>)> {
    let manifest = engine
        .lake()
        .read_manifest::<LayerManifest>("silver")
        .await?
        .map(|m| m.body)
        .unwrap_or_default();
    let files = manifest
        .snapshots
        .get(&as_of)
        .and_then(|s| s.tables.get("features"))
        .ok_or_else(|| Error::Snapshot {
            as_of,
            reason: format!(
                "not built; run `cdp build --as-of {as_of}` first (built: {})",
                if manifest.snapshots.is_empty() {
                    "none".to_string()
                } else {
                    manifest
                        .snapshots
                        .keys()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
        })?;
    let provider = tables::listing_table(engine, &files.files, "silver.features").await?;
    let frame = engine
        .context()
        .read_table(provider)
        .map_err(Error::datafusion("cannot read silver.features"))?;
    let mut columns = vec![col("unified_id")];
    for name in features {
        let field = frame
            .schema()
            .field_with_unqualified_name(name)
            .map_err(|_| Error::Column {
                table: "silver.features".into(),
                column: name.clone(),
                reason: "not in silver.features (`cdp features list` shows those there; \
                         `cdp tag --refit` fits a tagger on the [tagger] features)"
                    .into(),
            })?;
        let ty = field.data_type();
        if !(ty.is_numeric() || *ty == DataType::Boolean) {
            return Err(Error::Column {
                table: "silver.features".into(),
                column: name.clone(),
                reason: format!(
                    "is {ty}, not a number or boolean; [tagger] features must be numeric"
                ),
            });
        }
        columns.push(cast(col(name.as_str()), DataType::Float64).alias(name.as_str()));
    }
    let batches = frame
        .select(columns)
        .and_then(|f| f.sort(vec![col("unified_id").sort(true, false)]))
        .map_err(Error::datafusion("cannot plan the tagger's features"))?
        .collect()
        .await
        .map_err(Error::datafusion("cannot read silver.features"))?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let mut x = Array2::<f64>::from_elem((rows, features.len()), f64::NAN);
    let mut offset = 0;
    for batch in &batches {
        let columns: Vec<&Float64Array> = (1..batch.num_columns())
            .map(|c| batch.column(c).as_primitive::<Float64Type>())
            .collect();
        let mut rows = x.slice_mut(ndarray::s![offset..offset + batch.num_rows(), ..]);
        for (r, mut row) in rows.outer_iter_mut().enumerate() {
            for (v, column) in row.iter_mut().zip(&columns) {
                if column.is_valid(r) {
                    *v = column.value(r);
                }
            }
        }
        offset += batch.num_rows();
    }
    let id_columns: Vec<&dyn Array> = batches.iter().map(|b| b.column(0).as_ref()).collect();
    let ids = if id_columns.is_empty() {
        Arc::new(StringArray::from(Vec::<String>::new())) as ArrayRef
    } else {
        concat(&id_columns).map_err(|e| Error::Column {
            table: "silver.features".into(),
            column: "unified_id".into(),
            reason: e.to_string(),
        })?
    };
    Ok((ids, x))
}

/// Days since 1970-01-01, Arrow's `Date32`.
fn date32(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")).num_days() as i32
}

/// A list column whose row `i` holds `values[offsets[i]..offsets[i + 1]]`.
fn list(item: DataType, values: ArrayRef, offsets: Vec<i32>) -> Result<ArrayRef> {
    ListArray::try_new(
        Arc::new(Field::new("item", item, true)),
        OffsetBuffer::new(offsets.into()),
        values,
        None,
    )
    .map(|a| Arc::new(a) as ArrayRef)
    .map_err(|e| Error::Column {
        table: "gold.tags".into(),
        column: "list".into(),
        reason: e.to_string(),
    })
}

/// `gold.tags`: one row per customer.
fn tags_batch(
    tagger: &Tagger,
    as_of: NaiveDate,
    ids: ArrayRef,
    tags: &Tags,
) -> Result<RecordBatch> {
    let n = tags.segments.len();
    let m = tags.scores.ncols();
    let vocabulary = tagger.tag_vocabulary();
    let scores: Vec<f64> = tags.scores.iter().copied().collect();
    let score_offsets: Vec<i32> = (0..=n).map(|i| (i * m) as i32).collect();
    let mut tag_texts = StringBuilder::new();
    let mut tag_offsets = Vec::with_capacity(n + 1);
    tag_offsets.push(0i32);
    let mut count = 0i32;
    for row in &tags.tags {
        for &t in row.as_slice() {
            tag_texts.append_value(&vocabulary[t as usize]);
        }
        count += row.as_slice().len() as i32;
        tag_offsets.push(count);
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("as_of", DataType::Date32, false),
        Field::new("unified_id", ids.data_type().clone(), false),
        Field::new("segment", DataType::Int32, false),
        Field::new("segment_name", DataType::Utf8, false),
        Field::new(
            "tags",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            false,
        ),
        Field::new(
            "components",
            DataType::List(Arc::new(Field::new("item", DataType::Float64, true))),
            false,
        ),
        Field::new("tagger_version", DataType::Utf8, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Date32Array::from(vec![date32(as_of); n])),
        ids,
        Arc::new(Int32Array::from_iter_values(
            tags.segments
                .iter()
                .map(|&s| tagger.segments[s as usize].id as i32),
        )),
        Arc::new(StringArray::from_iter_values(
            tags.segments
                .iter()
                .map(|&s| tagger.segments[s as usize].name.as_str()),
        )),
        list(DataType::Utf8, Arc::new(tag_texts.finish()), tag_offsets)?,
        list(
            DataType::Float64,
            Arc::new(Float64Array::from(scores)),
            score_offsets,
        )?,
        Arc::new(StringArray::from(vec![tagger.version.as_str(); n])),
    ];
    RecordBatch::try_new(schema, columns).map_err(|e| Error::Column {
        table: "gold.tags".into(),
        column: "*".into(),
        reason: e.to_string(),
    })
}

/// `gold.tag_drift`: one row per feature, per segment, and one for the
/// segment shares as a whole.
fn drift_batch(tagger: &Tagger, as_of: NaiveDate, tags: &Tags) -> Result<RecordBatch> {
    let drift = &tags.drift;
    let mut kind = Vec::new();
    let mut name = Vec::new();
    let mut psi = Vec::new();
    let mut baseline = Vec::new();
    let mut share = Vec::new();
    let mut warning = Vec::new();
    for p in &drift.features {
        kind.push("feature");
        name.push(p.name.clone());
        psi.push(p.psi);
        baseline.push(None);
        share.push(None);
        warning.push(p.warning);
    }
    for p in &drift.segments {
        kind.push("segment");
        name.push(p.name.clone());
        psi.push(p.psi);
        baseline.push(p.baseline_share);
        share.push(p.share);
        warning.push(p.warning);
    }
    kind.push("segments");
    name.push("all segments".to_string());
    psi.push(drift.segments_psi);
    baseline.push(None);
    share.push(None);
    warning.push(drift.segments_psi > drift.threshold);
    let n = kind.len();
    let schema = Arc::new(Schema::new(vec![
        Field::new("as_of", DataType::Date32, false),
        Field::new("tagger_version", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("psi", DataType::Float64, false),
        Field::new("baseline_share", DataType::Float64, true),
        Field::new("share", DataType::Float64, true),
        Field::new("warning", DataType::Boolean, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Date32Array::from(vec![date32(as_of); n])),
        Arc::new(StringArray::from(vec![tagger.version.as_str(); n])),
        Arc::new(StringArray::from(kind)),
        Arc::new(StringArray::from(name)),
        Arc::new(Float64Array::from(psi)),
        Arc::new(Float64Array::from(baseline)),
        Arc::new(Float64Array::from(share)),
        Arc::new(BooleanArray::from(warning)),
    ];
    RecordBatch::try_new(schema, columns).map_err(|e| Error::Column {
        table: "gold.tag_drift".into(),
        column: "*".into(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(12_345_678), "12,345,678");
    }
}
