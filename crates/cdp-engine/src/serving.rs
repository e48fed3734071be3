//! What `cdp serve` loads from the lake for one snapshot date: every
//! person's profile (`silver.customer_360` with their `gold.tags`, and —
//! only when a caller may see it — the raw golden PII), and the card
//! catalogue that online scoring pairs them with.
//!
//! The server indexes these tables in memory and answers from them; it
//! reloads them when a newer snapshot is published.

use cdp_core::lake::Lake;
use chrono::NaiveDate;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::DataType;
use tracing::instrument;

use crate::error::{Error, Result};
use crate::query::run;
use crate::session::Engine;
use crate::sql::{Params, render};
use crate::tables::{Access, LayerManifest, register_bronze, register_layer};
use crate::train::register_products;

/// Raw golden PII per person: the same survivorship as `customer_360`
/// (per attribute, the latest non-null value by `updated_at` over every
/// record of the person's customer_ids written before the cutoff), read
/// from bronze with the PII scope.
const PII_SQL: &str = "
WITH records AS (
    SELECT m.unified_id, c.full_name, c.id_number, c.phone, c.email,
           ROW_NUMBER() OVER (PARTITION BY m.unified_id
                              ORDER BY c.updated_at, c._file, c._line) AS version
    FROM bronze.customers c
    JOIN silver.identity_map m
      ON m.as_of = ${as_of} AND m.source = 'customers' AND m.source_key = c.customer_id
    WHERE c.updated_at < ${cutoff}
)
SELECT unified_id,
       first_value(full_name ORDER BY version DESC) FILTER (WHERE full_name IS NOT NULL) AS full_name,
       first_value(id_number ORDER BY version DESC) FILTER (WHERE id_number IS NOT NULL) AS id_number,
       first_value(phone ORDER BY version DESC) FILTER (WHERE phone IS NOT NULL) AS phone,
       first_value(email ORDER BY version DESC) FILTER (WHERE email IS NOT NULL) AS email
FROM records
GROUP BY unified_id";

/// The tables of one served snapshot.
#[derive(Debug, Clone)]
pub struct ServingTables {
    /// The snapshot date.
    pub as_of: NaiveDate,
    /// The build run that wrote the silver snapshot.
    pub run: String,
    /// One row per person: every `customer_360` column; `tag_segment`,
    /// `tag_segment_name`, `tag_list`, `tagger_version` when the date is
    /// tagged; `full_name`, `id_number`, `phone`, `email` (raw) when loaded
    /// with PII.
    pub profiles: RecordBatch,
    /// One row per card offer: `offer_id`, `name`, `tier`, `category` and
    /// the numeric `offer_*` attributes the offer model reads.
    pub products: RecordBatch,
    /// `gold.scores` of the date (`unified_id`, `offer_id`, `probability`,
    /// `rank`, `reasons`, `model_version`), grouped by person in rank order;
    /// `None` when `cdp score` has not run for it.
    pub scores: Option<RecordBatch>,
}

/// The newest silver snapshot: its date and build run; `None` before the
/// first build.
pub async fn latest_snapshot(lake: &Lake) -> Result<Option<(NaiveDate, String)>> {
    let manifest = lake.read_manifest::<LayerManifest>("silver").await?;
    Ok(manifest.and_then(|m| {
        m.body
            .snapshots
            .iter()
            .next_back()
            .map(|(d, s)| (*d, s.run.clone()))
    }))
}

/// The first and last business days with transactions in bronze, `None`
/// when there are none: the range a quick start builds over.
pub async fn business_days(engine: &Engine) -> Result<Option<(NaiveDate, NaiveDate)>> {
    register_bronze(engine, Access::Masked).await?;
    let batches = run(
        engine,
        "SELECT CAST(min(dt) AS VARCHAR) AS first, CAST(max(dt) AS VARCHAR) AS last \
         FROM bronze.transactions",
    )
    .await?;
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(None);
    };
    let day = |i: usize| -> Result<Option<NaiveDate>> {
        let column = cast(batch.column(i), &DataType::Utf8).map_err(|e| Error::Column {
            table: "bronze.transactions".into(),
            column: "dt".into(),
            reason: e.to_string(),
        })?;
        let column = column.as_string::<i32>();
        Ok(column.iter().next().flatten().and_then(|d| d.parse().ok()))
    };
    Ok(day(0)?.zip(day(1)?))
}

/// Loads the profiles and the card catalogue of the snapshot as of
/// `as_of`, with raw PII columns when `pii` is set.
#[instrument(skip_all, fields(as_of = %as_of, pii))]
pub async fn load(engine: &Engine, as_of: NaiveDate, pii: bool) -> Result<ServingTables> {
    register_bronze(engine, if pii { Access::Pii } else { Access::Masked }).await?;
    let silver = register_layer(engine, "silver").await?.unwrap_or_default();
    let Some(snapshot) = silver.snapshots.get(&as_of) else {
        return Err(Error::Snapshot {
            as_of,
            reason: format!("not built; run `cdp build --as-of {as_of}` first"),
        });
    };
    let run_id = snapshot.run.clone();
    let gold = register_layer(engine, "gold").await?.unwrap_or_default();
    let has = |table: &str| {
        gold.snapshots
            .get(&as_of)
            .is_some_and(|s| s.tables.contains_key(table))
    };
    let tagged = has("tags");
    let scores = if has("scores") {
        let sql = format!(
            "SELECT unified_id, offer_id, probability, rank, reasons, model_version \
             FROM gold.scores WHERE as_of = DATE '{as_of}' ORDER BY unified_id, rank"
        );
        let batches = run(engine, &sql).await?;
        if batches.iter().all(|b| b.num_rows() == 0) {
            None
        } else {
            Some(one_batch(batches, "scores")?)
        }
    } else {
        None
    };

    let mut select = vec!["c.*".to_string()];
    let mut joins = Vec::new();
    if tagged {
        select.push(
            "t.segment AS tag_segment, t.segment_name AS tag_segment_name, \
             t.tags AS tag_list, t.tagger_version"
                .into(),
        );
        // cut to the date before joining: a join on `t.as_of = c.as_of`
        // would hash the tags of every date kept
        joins.push(format!(
            "LEFT JOIN (SELECT * FROM gold.tags WHERE as_of = DATE '{as_of}') t \
             ON t.unified_id = c.unified_id"
        ));
    }
    let params = Params::for_build(engine.calendar(), as_of);
    if pii {
        let pii_sql = render("serving pii", PII_SQL, &params)?;
        select.push("p.full_name, p.id_number, p.phone, p.email".into());
        joins.push(format!(
            "LEFT JOIN ({pii_sql}) p ON p.unified_id = c.unified_id"
        ));
    }
    let sql = format!(
        "SELECT {} FROM silver.customer_360 c {} WHERE c.as_of = DATE '{as_of}' ORDER BY c.unified_id",
        select.join(", "),
        joins.join(" ")
    );
    let profiles = one_batch(run(engine, &sql).await?, "profiles")?;

    register_products(engine, as_of).await?;
    let products = one_batch(
        run(
            engine,
            "SELECT p.*, c.name, c.tier, c.category
             FROM model.offer_products p JOIN model.card_products c ON c.offer_id = p.offer_id
             ORDER BY p.offer_id",
        )
        .await?,
        "products",
    )?;
    Ok(ServingTables {
        as_of,
        run: run_id,
        profiles,
        products,
        scores,
    })
}

/// The batches of a query as one batch.
fn one_batch(batches: Vec<RecordBatch>, what: &str) -> Result<RecordBatch> {
    let Some(first) = batches.first() else {
        return Err(Error::Column {
            table: what.into(),
            column: "*".into(),
            reason: "the query returned no batches".into(),
        });
    };
    concat_batches(&first.schema(), &batches).map_err(|e| Error::Column {
        table: what.into(),
        column: "*".into(),
        reason: e.to_string(),
    })
}
