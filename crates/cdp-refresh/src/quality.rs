//! The quality gate: data-quality checks and drift of a night's data.
//!
//! * After ingest, per source: the share of rows quarantined, and the
//!   reconciliation `read = accepted + duplicates + quarantined`.
//! * After build, the new snapshot against the previous one: persons
//!   (ratio within bounds), one row per person in `silver.features` and as
//!   many as in `silver.customer_360` (reconciliation), per numeric
//!   feature the rise of its null rate, its range (a warning when it moves
//!   outside the previous one), and its population stability index (PSI;
//!   a warning, then a failure, at the configured thresholds).
//!
//! Each check carries its value and threshold; one failed check fails the
//! gate and the refresh publishes nothing.

use cdp_core::config::QualityConfig;
use cdp_engine::Engine;
use cdp_engine::tables::{LayerManifest, register_layer};
use cdp_ingest::IngestReport;
use cdp_ml::drift::{FeatureBaseline, psi};
use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Rows per snapshot read for the PSI (a deterministic sample above it).
const PSI_SAMPLE: u64 = 200_000;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Within bounds.
    Pass,
    /// Worth a look; does not stop the publish.
    Warn,
    /// Stops the publish.
    Fail,
}

/// One data-quality check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// `ingest.transactions.quarantine_share`, `build.persons_ratio`, …
    pub name: String,
    /// The measured value.
    pub value: f64,
    /// The bound it was held to, for people (`<= 0.05`, `0.9..=1.5`).
    pub threshold: String,
    /// How it came out.
    pub outcome: Outcome,
    /// What was measured, for people.
    pub detail: String,
}

/// A numeric feature's population stability against the previous snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureDrift {
    /// The feature.
    pub feature: String,
    /// Its PSI.
    pub psi: f64,
    /// Null rate in the previous snapshot and now.
    pub null_rate: (f64, f64),
}

/// Checks of one ingest run.
pub fn ingest_checks(report: &IngestReport, q: &QualityConfig) -> Vec<Check> {
    let mut checks = Vec::new();
    for (source, r) in &report.sources {
        let c = &r.counts;
        if c.read == 0 {
            continue;
        }
        let share = c.quarantined as f64 / c.read as f64;
        let reasons: Vec<String> = r.reasons.iter().map(|(k, v)| format!("{k} {v}")).collect();
        checks.push(Check {
            name: format!("ingest.{source}.quarantine_share"),
            value: share,
            threshold: format!("<= {}", q.max_quarantine_share),
            outcome: if share > q.max_quarantine_share {
                Outcome::Fail
            } else {
                Outcome::Pass
            },
            detail: format!(
                "{} of {} rows quarantined{}",
                c.quarantined,
                c.read,
                if reasons.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", reasons.join(", "))
                }
            ),
        });
        let balanced = c.read == c.accepted + c.duplicates + c.quarantined;
        checks.push(Check {
            name: format!("ingest.{source}.reconciliation"),
            value: (c.accepted + c.duplicates + c.quarantined) as f64 - c.read as f64,
            threshold: "= 0".into(),
            outcome: if balanced {
                Outcome::Pass
            } else {
                Outcome::Fail
            },
            detail: format!(
                "read {} = accepted {} + duplicates {} + quarantined {}",
                c.read, c.accepted, c.duplicates, c.quarantined
            ),
        });
    }
    checks
}

/// Per-feature statistics of one snapshot.
struct Profile {
    rows: u64,
    distinct_ids: u64,
    /// (non-null count, min, max) per feature.
    columns: Vec<(u64, f64, f64)>,
    /// Sampled values per feature (`NaN` for null).
    sample: Vec<Vec<f64>>,
}

/// Checks and drift of snapshot `as_of` against the snapshot `previous`
/// (the newest before it, if any), over the numeric features `features`.
pub async fn snapshot_checks(
    engine: &Engine,
    as_of: NaiveDate,
    previous: Option<NaiveDate>,
    features: &[String],
    q: &QualityConfig,
) -> Result<(Vec<Check>, Vec<FeatureDrift>)> {
    let manifest = register_layer(engine, "silver").await?.unwrap_or_default();
    let mut checks = Vec::new();
    let now = profile(engine, as_of, features).await?;
    checks.extend(reconciliation(&manifest, as_of, &now));
    let Some(previous) = previous else {
        return Ok((checks, Vec::new()));
    };
    let before = profile(engine, previous, features).await?;
    let gap = (as_of - previous).num_days();
    let stale = gap > i64::from(q.max_gap_days);
    // against a snapshot more than a few nights older, drift is expected
    let outcome = |o: Outcome| {
        if stale && o == Outcome::Fail {
            Outcome::Warn
        } else {
            o
        }
    };
    let against = if stale {
        format!("{previous} ({gap} days earlier: warnings only)")
    } else {
        previous.to_string()
    };
    let ratio = now.rows as f64 / before.rows.max(1) as f64;
    checks.push(Check {
        name: "build.persons_ratio".into(),
        value: ratio,
        threshold: format!("{}..={}", q.min_persons_ratio, q.max_persons_ratio),
        outcome: outcome(
            if (q.min_persons_ratio..=q.max_persons_ratio).contains(&ratio) {
                Outcome::Pass
            } else {
                Outcome::Fail
            },
        ),
        detail: format!("{} persons now, {} on {against}", now.rows, before.rows),
    });
    let mut drift = Vec::new();
    for (i, feature) in features.iter().enumerate() {
        let null_rate = |p: &Profile| 1.0 - p.columns[i].0 as f64 / p.rows.max(1) as f64;
        let (was, is) = (null_rate(&before), null_rate(&now));
        checks.push(Check {
            name: format!("build.null_rate.{feature}"),
            value: is,
            threshold: format!(
                "<= {:.4} (previous + {})",
                was + q.max_null_rate_increase,
                q.max_null_rate_increase
            ),
            outcome: outcome(if is - was > q.max_null_rate_increase {
                Outcome::Fail
            } else {
                Outcome::Pass
            }),
            detail: format!("null rate {is:.4}, was {was:.4} on {against}"),
        });
        let (_, lo0, hi0) = before.columns[i];
        let (n1, lo1, hi1) = now.columns[i];
        if n1 > 0 && lo0.is_finite() && hi0.is_finite() {
            let slack = (hi0 - lo0).abs().max(1.0);
            let outside = lo1 < lo0 - slack || hi1 > hi0 + slack;
            if outside {
                checks.push(Check {
                    name: format!("build.range.{feature}"),
                    value: if hi1 > hi0 + slack { hi1 } else { lo1 },
                    threshold: format!("{}..={}", lo0 - slack, hi0 + slack),
                    outcome: Outcome::Warn,
                    detail: format!(
                        "range {lo1}..={hi1}, was {lo0}..={hi0} on {previous} (allowed: one range width beyond)"
                    ),
                });
            }
        }
        let mut reference: Vec<f64> = before.sample[i]
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        let bins = FeatureBaseline::edges_from(feature, &mut reference);
        let shares = |values: &[f64]| -> Vec<f64> {
            let mut counts = vec![0u64; bins.edges.len() + 2];
            for v in values {
                counts[bins.bin(*v)] += 1;
            }
            let total = values.len().max(1) as f64;
            counts.iter().map(|c| *c as f64 / total).collect()
        };
        let value = psi(&shares(&before.sample[i]), &shares(&now.sample[i]));
        drift.push(FeatureDrift {
            feature: feature.clone(),
            psi: value,
            null_rate: (was, is),
        });
        let psi_outcome = outcome(if value >= q.max_psi {
            Outcome::Fail
        } else if value >= q.psi_warning {
            Outcome::Warn
        } else {
            Outcome::Pass
        });
        checks.push(Check {
            name: format!("drift.psi.{feature}"),
            value,
            threshold: format!("< {} (warning at {})", q.max_psi, q.psi_warning),
            outcome: psi_outcome,
            detail: format!("population stability index against {against}"),
        });
    }
    Ok((checks, drift))
}

/// One row per person, and as many persons in customer_360 as in features.
fn reconciliation(manifest: &LayerManifest, as_of: NaiveDate, now: &Profile) -> Vec<Check> {
    let rows = |table: &str| {
        manifest
            .snapshots
            .get(&as_of)
            .and_then(|s| s.tables.get(table))
            .map_or(0, |t| t.rows)
    };
    let c360 = rows("customer_360");
    vec![
        Check {
            name: "build.features_unique_ids".into(),
            value: now.rows as f64 - now.distinct_ids as f64,
            threshold: "= 0".into(),
            outcome: if now.rows == now.distinct_ids {
                Outcome::Pass
            } else {
                Outcome::Fail
            },
            detail: format!(
                "{} rows, {} distinct unified_ids in silver.features",
                now.rows, now.distinct_ids
            ),
        },
        Check {
            name: "build.reconciliation".into(),
            value: c360 as f64 - now.rows as f64,
            threshold: "= 0".into(),
            outcome: if c360 == now.rows {
                Outcome::Pass
            } else {
                Outcome::Fail
            },
            detail: format!(
                "silver.customer_360 {c360} rows, silver.features {} rows",
                now.rows
            ),
        },
    ]
}

async fn profile(engine: &Engine, as_of: NaiveDate, features: &[String]) -> Result<Profile> {
    let day = format!("DATE '{as_of}'");
    let mut select = vec![
        "count(*) AS rows".to_string(),
        "count(DISTINCT unified_id) AS ids".to_string(),
    ];
    for f in features {
        let v = format!("CAST(\"{f}\" AS DOUBLE)");
        select.push(format!("count({v})"));
        select.push(format!("min({v})"));
        select.push(format!("max({v})"));
    }
    let sql = format!(
        "SELECT {} FROM silver.features WHERE as_of = {day}",
        select.join(", ")
    );
    let batches = query(engine, &sql).await?;
    let batch = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .cloned()
        .unwrap_or_else(|| RecordBatch::new_empty(batches[0].schema()));
    let float = |i: usize| -> f64 {
        if batch.num_rows() == 0 {
            return f64::NAN;
        }
        cast(batch.column(i), &DataType::Float64)
            .ok()
            .and_then(|a| {
                let a = a.as_primitive::<Float64Type>();
                a.is_valid(0).then(|| a.value(0))
            })
            .unwrap_or(f64::NAN)
    };
    let rows = float(0) as u64;
    let distinct_ids = float(1) as u64;
    let columns = (0..features.len())
        .map(|i| (float(2 + 3 * i) as u64, float(3 + 3 * i), float(4 + 3 * i)))
        .collect();

    // a deterministic sample: the same persons every night
    let filter = if rows > PSI_SAMPLE {
        let keep = (256.0 * PSI_SAMPLE as f64 / rows as f64).ceil() as u32;
        format!(
            " AND substr(md5(unified_id), 1, 2) < '{:02x}'",
            keep.min(255)
        )
    } else {
        String::new()
    };
    let values: Vec<String> = features
        .iter()
        .map(|f| format!("CAST(\"{f}\" AS DOUBLE)"))
        .collect();
    let mut sample = vec![Vec::new(); features.len()];
    if !features.is_empty() {
        let sql = format!(
            "SELECT {} FROM silver.features WHERE as_of = {day}{filter}",
            values.join(", ")
        );
        for batch in query(engine, &sql).await? {
            for (i, column) in batch.columns().iter().enumerate() {
                let column = column.as_primitive::<Float64Type>();
                sample[i].extend((0..column.len()).map(|r| {
                    if column.is_valid(r) {
                        column.value(r)
                    } else {
                        f64::NAN
                    }
                }));
            }
        }
    }
    Ok(Profile {
        rows,
        distinct_ids,
        columns,
        sample,
    })
}

async fn query(engine: &Engine, sql: &str) -> Result<Vec<RecordBatch>> {
    Ok(cdp_engine::query::run(engine, sql).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdp_ingest::Counts;
    use cdp_ingest::SourceReport;

    #[test]
    fn a_source_with_its_rows_quarantined_fails_the_gate() {
        let mut report = IngestReport {
            run: "r".into(),
            source: "drop".into(),
            sources: Default::default(),
            unreadable: Vec::new(),
            ignored: Vec::new(),
            seconds: 0.0,
        };
        let source = |read, accepted, quarantined| SourceReport {
            counts: Counts {
                read,
                accepted,
                duplicates: 0,
                quarantined,
            },
            files: 1,
            skipped: 0,
            reasons: Default::default(),
        };
        report
            .sources
            .insert("customers".into(), source(100, 99, 1));
        report
            .sources
            .insert("transactions".into(), source(1000, 0, 1000));
        let checks = ingest_checks(&report, &QualityConfig::default());
        let failed: Vec<&str> = checks
            .iter()
            .filter(|c| c.outcome == Outcome::Fail)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(failed, ["ingest.transactions.quarantine_share"]);
    }
}
