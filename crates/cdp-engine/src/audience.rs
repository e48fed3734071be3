//! `cdp offers --audience FILE --as-of D --out LIST`: a targeted list of
//! customers for one card offer, from an audience file a marketer writes
//! ([`spec`]), evaluated with DataFusion over the snapshot of D and the
//! offer scores of D.
//!
//! The funnel, counted at every step:
//!
//! 1. **customers**: every person of `silver.customer_360` as of D;
//! 2. **eligible**: the audience's `eligibility` predicate over `c`
//!    (customer_360), `f` (silver.features) and `t` (gold.tags) of D; a
//!    predicate that is NULL counts as false;
//! 3. **suppressions**, in this order, each removing customers still in
//!    the funnel: marketing opt-out (`marketing_opt_in` not true), not
//!    reachable on the channel (no phone for sms, no e-mail for email, no
//!    app device for app_push), KYC level below the minimum (or unknown),
//!    holding a listed product, sent any offer in the last N business days
//!    or this offer in the last M (`bronze.offer_events.sent_at` in the
//!    window ending at D's cutoff, customer_ids resolved through D's
//!    `silver.identity_map`), on a suppression list (customer_ids or
//!    unified_ids);
//! 4. **scored**: with a score for the offer in `gold.scores` of D (which
//!    also applies the card's own rules: income band, card not held);
//! 5. **above the minimum score**;
//! 6. **selected**: ranked by score (then unified_id), walked under the
//!    caps, list size and budget ([`select`]); **treatment** and
//!    **control** split by a seeded hash of the unified_id.
//!
//! The list ([`LIST_COLUMNS`]) carries masked contact fields only. A run
//! record (`<list>.run.json`) keeps the audience file's SHA-256, the
//! snapshot and score runs, the model version, the seed and every count,
//! so the list can be reproduced and audited; the same inputs give the
//! same list byte for byte. [`report`] draws the HTML report.

pub mod report;
pub mod select;
pub mod spec;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use cdp_core::progress::Progress;
use cdp_ml::offer::{OfferMetrics, OfferModel};
use cdp_ml::store::ModelStore;
use chrono::{NaiveDate, SecondsFormat, Utc};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    UInt32Array,
};
use datafusion::arrow::compute::{cast, concat_batches, take};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tracing::instrument;

use crate::error::{Error, Result};
use crate::query::{self, OutputFormat, register_lake};
use crate::session::{Engine, Scratch};
use crate::tables::{self, Access};

pub use spec::Audience;

/// The columns of an offer list, in order.
pub const LIST_COLUMNS: [&str; 15] = [
    "rank",
    "unified_id",
    "customer_id",
    "full_name_masked",
    "phone_masked",
    "email_masked",
    "offer_id",
    "channel",
    "score",
    "reasons",
    "segment",
    "city",
    "tag_segment",
    "control",
    "model_version",
];

/// The in-session table of eligible customers with their suppression flags.
const BASE: &str = "audience_base";
/// The in-session table of suppression-list keys.
const LIST_KEYS: &str = "audience_list_keys";

/// One suppression rule as the funnel applies it.
struct Rule {
    /// Funnel step name.
    step: &'static str,
    /// Words for people.
    label: String,
    /// A null-free SQL condition over `c` and the joined set: true = suppress.
    condition: String,
    /// A set of unified_ids to LEFT JOIN as `k_<step>`, if the rule needs one.
    join: Option<String>,
}

/// One step of the funnel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// A stable name: `customers`, `eligible`, `opt_out`, `unreachable`,
    /// `kyc`, `holding`, `contacted`, `offered`, `list`, `scored`,
    /// `min_score`, `selected`.
    pub step: String,
    /// What the step does, in words.
    pub label: String,
    /// Customers left after the step.
    pub customers: u64,
    /// Customers the step removed.
    pub removed: u64,
}

/// The audience file as the run record keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AudienceInfo {
    /// The file as given.
    pub file: String,
    /// SHA-256 (hex) of its text.
    pub sha256: String,
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// The card offer.
    pub offer: String,
    /// The card's name in the catalogue.
    pub offer_name: String,
    /// The channel.
    pub channel: String,
}

/// The limits the selection ran under.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LimitsInfo {
    /// Lowest score.
    pub min_score: f64,
    /// List size.
    pub top: Option<u64>,
    /// Budget.
    pub budget: Option<f64>,
    /// Cost per contact.
    pub cost_per_contact: Option<f64>,
    /// Treatment contacts the budget pays for.
    pub max_contacts: Option<u64>,
    /// Cap per segment.
    pub per_segment: Option<u64>,
    /// Cap per city.
    pub per_city: Option<u64>,
    /// Control share.
    pub holdout_share: f64,
    /// Control seed.
    pub seed: u64,
}

/// A written file and its SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WrittenFile {
    /// Where.
    pub path: String,
    /// SHA-256 (hex) of its bytes.
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
}

/// Everything about one `cdp offers` run: written beside the list as
/// `<list>.run.json` and printed by `--json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    /// The audience file.
    pub audience: AudienceInfo,
    /// The as-of date.
    pub as_of: NaiveDate,
    /// The silver snapshot's run (customer_360, features, identity_map).
    pub snapshot_run: String,
    /// The gold snapshot's run (scores, tags).
    pub gold_run: String,
    /// The offer model version the scores come from.
    pub model_version: String,
    /// Whether gold.tags of D existed (`t` in the predicate).
    pub tags: bool,
    /// Limits, caps and the control group.
    pub limits: LimitsInfo,
    /// The funnel, step by step.
    pub funnel: Vec<Step>,
    /// Customers on the list.
    pub selected: u64,
    /// Of them, to contact.
    pub treatment: u64,
    /// Of them, held out.
    pub control: u64,
    /// Candidates skipped because their segment was full.
    pub capped_by_segment: u64,
    /// Candidates skipped because their city was full.
    pub capped_by_city: u64,
    /// Why the selection ended.
    pub stop: select::Stop,
    /// Sum of the treatment's scores.
    pub expected_acceptances: f64,
    /// The same through the model's calibration table (observed rate of
    /// each score's bin on the test offers), when the model has one.
    pub expected_acceptances_calibrated: Option<f64>,
    /// Treatment contacts × cost per contact.
    pub cost: Option<f64>,
    /// The list file, once written.
    pub list: Option<WrittenFile>,
    /// The report file, once written.
    pub report: Option<WrittenFile>,
    /// True for `--dry-run`: nothing written.
    pub dry_run: bool,
    /// cdp's version.
    pub cdp_version: String,
    /// When the run happened (RFC 3339 UTC).
    pub created_at: String,
    /// Seconds per stage.
    pub seconds: BTreeMap<String, f64>,
}

/// An evaluated audience: the list and what the report needs.
#[derive(Debug, Clone)]
pub struct OfferList {
    /// The record of the run.
    pub record: RunRecord,
    /// The list, [`LIST_COLUMNS`], best first.
    pub list: RecordBatch,
    /// The offer model's training metrics (test lift and calibration),
    /// when the model version is still stored.
    pub model: Option<OfferMetrics>,
}

/// Evaluates `audience` as of `as_of`: the funnel and the list, nothing
/// written.
#[instrument(skip_all, fields(audience = %audience.name, as_of = %as_of))]
pub async fn evaluate(
    engine: &Engine,
    audience: &Audience,
    as_of: NaiveDate,
    progress: &dyn Progress,
) -> Result<OfferList> {
    let started = Instant::now();
    let mut seconds = BTreeMap::new();
    let mut clock = Instant::now();
    progress.begin("offers: check", 0);

    register_lake(engine, Access::Masked).await?;
    let silver = tables::register_layer(engine, "silver").await?;
    let snapshot_run = silver
        .as_ref()
        .and_then(|m| m.snapshots.get(&as_of))
        .filter(|s| s.tables.contains_key("customer_360") && s.tables.contains_key("features"))
        .map(|s| s.run.clone())
        .ok_or_else(|| Error::Snapshot {
            as_of,
            reason: format!("not built; run `cdp build --as-of {as_of}` first"),
        })?;
    let gold = tables::register_layer(engine, "gold").await?;
    let gold_snapshot = gold.as_ref().and_then(|m| m.snapshots.get(&as_of));
    if !gold_snapshot.is_some_and(|s| s.tables.contains_key("scores")) {
        return Err(Error::NoScores { as_of });
    }
    let gold_run = gold_snapshot.map(|s| s.run.clone()).unwrap_or_default();
    let tags = gold_snapshot.is_some_and(|s| s.tables.contains_key("tags"));
    if !engine.context().table_exist("gold.tags").unwrap_or(false) {
        register_empty_tags(engine).await?;
    }

    let offer_name = check_names(engine, audience, as_of).await?;
    let model_version = model_version(engine, audience, as_of).await?;
    let (predicate, from) = eligible_from(audience, as_of);
    // run the eligibility predicate on its own first, so that its errors
    // (planning or running: a bad cast, a division by zero) name its line
    if audience.eligibility.is_some()
        && let Err(e) = count(
            engine,
            &format!("SELECT count(*) {from} WHERE c.as_of = DATE '{as_of}' AND ({predicate})"),
        )
        .await
    {
        let text = match e {
            Error::Query { error } => error.to_string(),
            e => return Err(e),
        };
        return Err(audience.eligibility_error(needle(&text).as_deref(), first_clause(&text)));
    }
    lap(&mut seconds, "check", &mut clock);
    progress.finish();
    progress.begin("offers: eligible", 0);

    // the funnel's intermediate tables: in memory here, in the lake's
    // scratch space on a cluster (removed whether the funnel ran or not)
    let scratch = engine.scratch()?;
    let counted = eligible_and_funnel(
        engine,
        audience,
        as_of,
        (&predicate, &from),
        &scratch,
        (&mut seconds, &mut clock),
        progress,
    )
    .await;
    scratch.remove().await?;
    let (funnel, survivor_schema, survivors) = counted?;
    progress.finish();
    progress.begin("offers: select", 0);

    let survivors = concat_batches(&survivor_schema, &survivors).map_err(|e| Error::Column {
        table: BASE.into(),
        column: "*".into(),
        reason: e.to_string(),
    })?;
    let ids = text(&survivors, "unified_id")?;
    let segments = text(&survivors, "segment")?;
    let cities = text(&survivors, "city")?;
    let candidates: Vec<select::Candidate> = (0..survivors.num_rows())
        .map(|i| select::Candidate {
            unified_id: ids.value(i),
            segment: segments.is_valid(i).then(|| segments.value(i)),
            city: cities.is_valid(i).then(|| cities.value(i)),
        })
        .collect();
    let limits = select::Limits {
        top: audience.select.top,
        max_contacts: audience.select.max_contacts(),
        per_segment: audience.caps.per_segment,
        per_city: audience.caps.per_city,
        holdout_share: audience.holdout_share,
        seed: audience.seed,
    };
    let selection = select::select(&candidates, &limits);
    let list = list_batch(&survivors, &selection, audience, &model_version)?;
    lap(&mut seconds, "select", &mut clock);

    let model = ModelStore::<OfferModel>::new(engine.lake())
        .load(&model_version)
        .await
        .and_then(|m| m.metrics())
        .map_err(|e| tracing::warn!("offer model {model_version}: {e}; report without it"))
        .ok();
    let mut funnel = funnel;
    let before = funnel.last().map_or(0, |s| s.customers);
    funnel.push(Step {
        step: "selected".into(),
        label: "selected (caps, list size, budget)".into(),
        customers: selection.chosen.len() as u64,
        removed: before - selection.chosen.len() as u64,
    });
    let scores = list
        .column(8)
        .as_primitive::<Float64Type>()
        .values()
        .to_vec();
    let control = list.column(13).as_boolean().clone();
    let treatment_scores: Vec<f64> = scores
        .iter()
        .enumerate()
        .filter(|(i, _)| !control.value(*i))
        .map(|(_, s)| *s)
        .collect();
    // + 0.0: an empty f64 sum is -0.0
    let expected_acceptances = treatment_scores.iter().sum::<f64>() + 0.0;
    let expected_acceptances_calibrated = model
        .as_ref()
        .filter(|m| !m.test.calibration.is_empty())
        .map(|m| {
            treatment_scores
                .iter()
                .map(|&s| report::calibrated(&m.test.calibration, s))
                .sum::<f64>()
                + 0.0
        });
    progress.finish();
    seconds.insert("total".into(), started.elapsed().as_secs_f64());
    let record = RunRecord {
        audience: AudienceInfo {
            file: audience.file.clone(),
            sha256: audience.sha256.clone(),
            name: audience.name.clone(),
            description: audience.description.clone(),
            offer: audience.offer.value.clone(),
            offer_name,
            channel: audience.channel.value.clone(),
        },
        as_of,
        snapshot_run,
        gold_run,
        model_version,
        tags,
        limits: LimitsInfo {
            min_score: audience.min_score,
            top: audience.select.top,
            budget: audience.select.budget,
            cost_per_contact: audience.select.cost_per_contact,
            max_contacts: limits.max_contacts,
            per_segment: limits.per_segment,
            per_city: limits.per_city,
            holdout_share: limits.holdout_share,
            seed: limits.seed,
        },
        funnel,
        selected: selection.chosen.len() as u64,
        treatment: selection.treatment(),
        control: selection.control(),
        capped_by_segment: selection.capped_by_segment,
        capped_by_city: selection.capped_by_city,
        stop: selection.stop,
        expected_acceptances,
        expected_acceptances_calibrated,
        cost: audience
            .select
            .cost_per_contact
            .map(|c| c * selection.treatment() as f64),
        list: None,
        report: None,
        dry_run: true,
        cdp_version: env!("CARGO_PKG_VERSION").into(),
        created_at: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        seconds,
    };
    Ok(OfferList {
        record,
        list,
        model,
    })
}

/// The eligible customers, the suppression sets and the funnel's counts,
/// with the tables they need held in `scratch`; returns the funnel and the
/// customers who survive it, best first.
async fn eligible_and_funnel(
    engine: &Engine,
    audience: &Audience,
    as_of: NaiveDate,
    (predicate, from): (&str, &str),
    scratch: &Scratch,
    (seconds, clock): (&mut BTreeMap<String, f64>, &mut Instant),
    progress: &dyn Progress,
) -> Result<(Vec<Step>, SchemaRef, Vec<RecordBatch>)> {
    register_list_keys(engine, audience, scratch).await?;
    let rules = rules(audience, engine, as_of);
    let customers = count(
        engine,
        &format!("SELECT count(*) FROM silver.customer_360 WHERE as_of = DATE '{as_of}'"),
    )
    .await?;
    // Each suppression set is computed on its own and held apart: as
    // subqueries of the one base query, DataFusion's plan for a million
    // customers grew to tens of GB.
    for rule in &rules {
        if let Some(sql) = &rule.join {
            let (schema, batches) =
                collect(engine, &format!("SELECT DISTINCT unified_id FROM ({sql})")).await?;
            let name = suppression_table(rule.step);
            let table =
                tables::scratch_table(engine, scratch, &name, schema, vec![batches]).await?;
            tables::register(engine, &name, table)?;
        }
    }
    let base = base_sql(audience, as_of, predicate, from, &rules);
    // the schema comes from the plan: no one may be eligible
    let (schema, batches) = collect(engine, &base).await?;
    let table = tables::scratch_table(engine, scratch, BASE, schema, vec![batches]).await?;
    tables::register(engine, BASE, table)?;
    lap(seconds, "eligible", clock);
    progress.finish();
    progress.begin("offers: funnel", 0);

    let funnel = funnel(engine, audience, customers, &rules).await?;
    let (survivor_schema, survivors) = collect(
        engine,
        &format!(
            "SELECT * FROM {BASE} WHERE {} ORDER BY score DESC, unified_id ASC",
            survivor_condition(&rules, audience.min_score)
        ),
    )
    .await?;
    lap(seconds, "funnel", clock);
    Ok((funnel, survivor_schema, survivors))
}

/// The run record's path beside a list: `lists/travel.csv` →
/// `lists/travel.run.json`.
pub fn record_path(list: &Path) -> PathBuf {
    list.with_extension("run.json")
}

/// Writes the list (CSV or Parquet, by extension), its run record beside
/// it and, when asked, the HTML report; fills the record's file entries.
#[instrument(skip_all, fields(out = %out.display()))]
pub fn write(list: &mut OfferList, out: &Path, report_path: Option<&Path>) -> Result<()> {
    let format = match out.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("csv") => OutputFormat::Csv,
        Some(e) if e.eq_ignore_ascii_case("parquet") => OutputFormat::Parquet,
        _ => return Err(Error::TableFormat { path: out.into() }),
    };
    let clock = Instant::now();
    query::write_file(std::slice::from_ref(&list.list), format, out)?;
    list.record.list = Some(written(out)?);
    if let Some(path) = report_path {
        let html = report::render(list);
        std::fs::write(path, html).map_err(|source| Error::Output {
            path: path.into(),
            source,
        })?;
        list.record.report = Some(written(path)?);
    }
    list.record.dry_run = false;
    list.record
        .seconds
        .insert("write".into(), clock.elapsed().as_secs_f64());
    let path = record_path(out);
    let json = serde_json::to_vec_pretty(&list.record).map_err(|e| Error::Encode {
        format: "json",
        source: Box::new(e),
    })?;
    std::fs::write(&path, json).map_err(|source| Error::Output { path, source })
}

/// A written file's path, hash and size.
fn written(path: &Path) -> Result<WrittenFile> {
    let bytes = std::fs::read(path).map_err(|source| Error::Output {
        path: path.into(),
        source,
    })?;
    Ok(WrittenFile {
        path: path.display().to_string(),
        sha256: hex_digest(&bytes),
        bytes: bytes.len() as u64,
    })
}

fn hex_digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn lap(seconds: &mut BTreeMap<String, f64>, stage: &str, clock: &mut Instant) {
    seconds.insert(stage.into(), clock.elapsed().as_secs_f64());
    *clock = Instant::now();
}

/// A text literal for SQL.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `gold.tags`' shape, empty, for lakes never tagged (so `t.` still plans).
async fn register_empty_tags(engine: &Engine) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("as_of", DataType::Date32, true),
        Field::new("unified_id", DataType::Utf8, true),
        Field::new("segment", DataType::Int32, true),
        Field::new("segment_name", DataType::Utf8, true),
        Field::new(
            "tags",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
        Field::new("tagger_version", DataType::Utf8, true),
    ]));
    let table = tables::held_table(engine, "gold.tags", schema, Vec::new()).await?;
    tables::register(engine, "gold.tags", table)
}

/// Checks the offer and the held products against the catalogue and the
/// snapshot; returns the card's name.
async fn check_names(engine: &Engine, audience: &Audience, as_of: NaiveDate) -> Result<String> {
    let catalogue = query::run(
        engine,
        "SELECT offer_id, name FROM ref.card_products ORDER BY offer_id",
    )
    .await?;
    let mut offers = BTreeMap::new();
    for batch in &catalogue {
        let ids = text(batch, "offer_id")?;
        let names = text(batch, "name")?;
        for i in 0..batch.num_rows() {
            offers.insert(ids.value(i).to_string(), names.value(i).to_string());
        }
    }
    let offer = &audience.offer;
    let Some(name) = offers.get(&offer.value) else {
        return Err(audience.error_at(
            offer.line,
            format!(
                "unknown offer {:?}; the card catalogue has {}",
                offer.value,
                offers.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        ));
    };
    let held = query::run(
        engine,
        &format!(
            "SELECT DISTINCT p FROM (SELECT unnest(products) AS p FROM silver.customer_360 \
             WHERE as_of = DATE '{as_of}') WHERE p IS NOT NULL ORDER BY p"
        ),
    )
    .await?;
    let mut known: Vec<String> = offers.keys().cloned().collect();
    for batch in &held {
        let p = text(batch, "p")?;
        known.extend((0..batch.num_rows()).map(|i| p.value(i).to_string()));
    }
    known.sort();
    known.dedup();
    for product in &audience.suppress.holding {
        if !known.contains(&product.value) {
            return Err(audience.error_at(
                product.line,
                format!(
                    "unknown product {:?} in holding; products are {}",
                    product.value,
                    known.join(", ")
                ),
            ));
        }
    }
    Ok(name.clone())
}

/// The offer model version of D's scores (checked against a pinned one).
async fn model_version(engine: &Engine, audience: &Audience, as_of: NaiveDate) -> Result<String> {
    let batches = query::run(
        engine,
        &format!(
            "SELECT DISTINCT model_version FROM gold.scores WHERE as_of = DATE '{as_of}' \
             ORDER BY model_version"
        ),
    )
    .await?;
    let mut versions = Vec::new();
    for batch in &batches {
        let v = text(batch, "model_version")?;
        versions.extend((0..batch.num_rows()).map(|i| v.value(i).to_string()));
    }
    let Some(version) = versions.last().cloned() else {
        return Err(Error::NoScores { as_of });
    };
    if let Some(pinned) = &audience.model_version
        && pinned.value != version
    {
        return Err(audience.error_at(
            pinned.line,
            format!(
                "the scores as of {as_of} come from offer model {version}, not {}; \
                 re-score with it or change model_version",
                pinned.value
            ),
        ));
    }
    Ok(version)
}

/// The eligibility predicate (or `TRUE`) and the FROM clause it reads.
fn eligible_from(audience: &Audience, as_of: NaiveDate) -> (String, String) {
    let predicate = audience
        .eligibility
        .as_ref()
        .map_or_else(|| "TRUE".to_string(), |e| e.value.clone());
    // Each table is cut to the date before it is joined: a join on
    // `f.as_of = c.as_of` would hash every snapshot of silver.features
    // (tens of GB for a million customers) before the date filter applies.
    let from = format!(
        "FROM (SELECT * FROM silver.customer_360 WHERE as_of = DATE '{as_of}') c
LEFT JOIN (SELECT * FROM silver.features WHERE as_of = DATE '{as_of}') f ON f.unified_id = c.unified_id
LEFT JOIN (SELECT * FROM gold.tags WHERE as_of = DATE '{as_of}') t ON t.unified_id = c.unified_id"
    );
    (predicate, from)
}

/// Registers the suppression lists' keys (empty without lists).
async fn register_list_keys(engine: &Engine, audience: &Audience, scratch: &Scratch) -> Result<()> {
    let mut keys = Vec::new();
    for list in &audience.suppress.lists {
        let content = std::fs::read_to_string(&list.value).map_err(|e| {
            audience.error_at(
                list.line,
                format!("cannot read suppression list {}: {e}", list.value.display()),
            )
        })?;
        keys.extend(list_keys(&content));
    }
    keys.sort();
    keys.dedup();
    let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new("key", DataType::Utf8, false)]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(keys))])
        .map_err(|e| Error::Column {
            table: LIST_KEYS.into(),
            column: "key".into(),
            reason: e.to_string(),
        })?;
    let table =
        tables::scratch_table(engine, scratch, LIST_KEYS, schema, vec![vec![batch]]).await?;
    tables::register(engine, LIST_KEYS, table)
}

/// The keys of a suppression list: the first field of each line (comma,
/// semicolon or tab separated), blank lines, `#` comments and a header
/// (`customer_id`, `unified_id`, `id`, `key`) skipped.
pub fn list_keys(content: &str) -> Vec<String> {
    content
        .lines()
        .map(|l| {
            l.split([',', ';', '\t'])
                .next()
                .unwrap_or_default()
                .trim()
                .trim_matches('"')
        })
        .filter(|k| {
            !k.is_empty()
                && !k.starts_with('#')
                && !["customer_id", "unified_id", "id", "key"].contains(&k.to_lowercase().as_str())
        })
        .map(str::to_string)
        .collect()
}

/// The suppression rules the audience turns on, in funnel order.
fn rules(audience: &Audience, engine: &Engine, as_of: NaiveDate) -> Vec<Rule> {
    let s = &audience.suppress;
    let mut rules = Vec::new();
    if s.opt_out {
        rules.push(Rule {
            step: "opt_out",
            label: "marketing opt-out".into(),
            condition: "(c.marketing_opt_in IS NOT TRUE)".into(),
            join: None,
        });
    }
    if s.unreachable {
        let (what, condition) = match audience.channel.value.as_str() {
            "sms" => ("no phone", "(c.phone_masked IS NULL)"),
            "email" => ("no e-mail", "(c.email_masked IS NULL)"),
            "app_push" => ("no app device", "(COALESCE(c.device_count, 0) = 0)"),
            _ => ("", "FALSE"),
        };
        if condition != "FALSE" {
            rules.push(Rule {
                step: "unreachable",
                label: format!("not reachable by {} ({what})", audience.channel.value),
                condition: condition.into(),
                join: None,
            });
        }
    }
    if let Some(kyc) = &s.min_kyc_level {
        rules.push(Rule {
            step: "kyc",
            label: format!("KYC level below {}", kyc.value),
            condition: format!("(COALESCE(c.kyc_level, 0) < {})", kyc.value),
            join: None,
        });
    }
    if !s.holding.is_empty() {
        let products: Vec<String> = s.holding.iter().map(|p| literal(&p.value)).collect();
        rules.push(Rule {
            step: "holding",
            label: format!(
                "holds {}",
                s.holding
                    .iter()
                    .map(|p| p.value.as_str())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
            condition: format!(
                "array_has_any(COALESCE(c.products, make_array()), make_array({}))",
                products.join(", ")
            ),
            join: None,
        });
    }
    let calendar = engine.calendar();
    let window = |days: u32| {
        let w = calendar.window(as_of, days);
        (
            w.start.to_rfc3339_opts(SecondsFormat::Secs, true),
            w.end.to_rfc3339_opts(SecondsFormat::Secs, true),
        )
    };
    if let Some(days) = &s.contacted_within_days {
        let (start, end) = window(days.value);
        rules.push(Rule {
            step: "contacted",
            label: format!("contacted in the last {} days", days.value),
            condition: "(k_contacted.unified_id IS NOT NULL)".into(),
            join: Some(format!(
                "SELECT DISTINCT m.unified_id FROM bronze.offer_events o \
                 JOIN silver.identity_map m ON m.source_key = o.customer_id \
                 WHERE m.as_of = DATE '{as_of}' AND m.source = 'customers' \
                 AND o.sent_at >= TIMESTAMP '{start}' AND o.sent_at < TIMESTAMP '{end}'"
            )),
        });
    }
    if let Some(days) = &s.offered_within_days {
        let (start, end) = window(days.value);
        rules.push(Rule {
            step: "offered",
            label: format!(
                "offered {} in the last {} days",
                audience.offer.value, days.value
            ),
            condition: "(k_offered.unified_id IS NOT NULL)".into(),
            join: Some(format!(
                "SELECT DISTINCT m.unified_id FROM bronze.offer_events o \
                 JOIN silver.identity_map m ON m.source_key = o.customer_id \
                 WHERE m.as_of = DATE '{as_of}' AND m.source = 'customers' \
                 AND o.offer_id = {} \
                 AND o.sent_at >= TIMESTAMP '{start}' AND o.sent_at < TIMESTAMP '{end}'",
                literal(&audience.offer.value)
            )),
        });
    }
    if !s.lists.is_empty() {
        rules.push(Rule {
            step: "list",
            label: "on a suppression list".into(),
            condition: "(k_list.unified_id IS NOT NULL)".into(),
            join: Some(format!(
                "SELECT key AS unified_id FROM {LIST_KEYS} \
                 UNION SELECT m.unified_id FROM silver.identity_map m \
                 JOIN {LIST_KEYS} k ON m.source_key = k.key \
                 WHERE m.as_of = DATE '{as_of}' AND m.source = 'customers'"
            )),
        });
    }
    rules
}

/// The eligible customers with one flag per rule (`s_<step>`) and their
/// score for the offer.
fn base_sql(
    audience: &Audience,
    as_of: NaiveDate,
    predicate: &str,
    from: &str,
    rules: &[Rule],
) -> String {
    let flags: String = rules
        .iter()
        .map(|r| format!(",\n       {} AS s_{}", r.condition, r.step))
        .collect();
    let joins: String = rules
        .iter()
        .filter(|r| r.join.is_some())
        .map(|r| {
            format!(
                "\nLEFT JOIN {table} k_{step} ON k_{step}.unified_id = c.unified_id",
                table = suppression_table(r.step),
                step = r.step
            )
        })
        .collect();
    format!(
        "SELECT c.unified_id, c.primary_customer_id AS customer_id, c.full_name_masked,
       c.phone_masked, c.email_masked, c.segment, c.city, t.segment_name AS tag_segment,
       s.probability AS score, s.reasons{flags}
{from}{joins}
LEFT JOIN (SELECT unified_id, probability, reasons FROM gold.scores
           WHERE as_of = DATE '{as_of}' AND offer_id = {offer}) s ON s.unified_id = c.unified_id
WHERE c.as_of = DATE '{as_of}' AND ({predicate})",
        offer = literal(&audience.offer.value)
    )
}

/// The in-session table of the unified_ids suppression rule `step` removes.
fn suppression_table(step: &str) -> String {
    format!("audience_suppress_{step}")
}

/// Rows of the base table still in the funnel after every rule, scored and
/// at least `min_score`.
fn survivor_condition(rules: &[Rule], min_score: f64) -> String {
    let mut parts: Vec<String> = rules.iter().map(|r| format!("NOT s_{}", r.step)).collect();
    parts.push("score IS NOT NULL".into());
    parts.push(format!("score >= {min_score:?}"));
    parts.join(" AND ")
}

/// Counts every funnel step up to the minimum score in one pass over the
/// base table.
async fn funnel(
    engine: &Engine,
    audience: &Audience,
    customers: u64,
    rules: &[Rule],
) -> Result<Vec<Step>> {
    let mut labels: Vec<(String, String)> = Vec::new();
    let mut sums = vec!["count(*)".to_string()];
    labels.push((
        "eligible".into(),
        if audience.eligibility.is_some() {
            "eligible (the audience's predicate)".into()
        } else {
            "eligible (no predicate: everyone)".into()
        },
    ));
    let mut kept: Vec<String> = Vec::new();
    for r in rules {
        kept.push(format!("NOT s_{}", r.step));
        sums.push(format!(
            "sum(CASE WHEN {} THEN 1 ELSE 0 END)",
            kept.join(" AND ")
        ));
        labels.push((r.step.into(), format!("without: {}", r.label)));
    }
    kept.push("score IS NOT NULL".into());
    sums.push(format!(
        "sum(CASE WHEN {} THEN 1 ELSE 0 END)",
        kept.join(" AND ")
    ));
    labels.push((
        "scored".into(),
        format!("scored for {} (card's income rule)", audience.offer.value),
    ));
    kept.push(format!("score >= {:?}", audience.min_score));
    sums.push(format!(
        "sum(CASE WHEN {} THEN 1 ELSE 0 END)",
        kept.join(" AND ")
    ));
    labels.push((
        "min_score".into(),
        format!("score at least {}", audience.min_score),
    ));
    let sql = format!(
        "SELECT {} FROM {BASE}",
        sums.iter()
            .enumerate()
            .map(|(i, s)| format!("CAST(COALESCE({s}, 0) AS BIGINT) AS n{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let batches = query::run(engine, &sql).await?;
    let batch = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| Error::Column {
            table: BASE.into(),
            column: "*".into(),
            reason: "the funnel query returned no row".into(),
        })?;
    let mut steps = vec![Step {
        step: "customers".into(),
        label: "customers in the snapshot".into(),
        customers,
        removed: 0,
    }];
    let mut before = customers;
    for (i, (step, label)) in labels.into_iter().enumerate() {
        let n = batch
            .column(i)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        let n = n.value(0).max(0) as u64;
        steps.push(Step {
            step,
            label,
            customers: n,
            removed: before.saturating_sub(n),
        });
        before = n;
    }
    Ok(steps)
}

/// A count query's one value.
async fn count(engine: &Engine, sql: &str) -> Result<u64> {
    let batches = query::run(engine, sql).await?;
    Ok(batches.iter().find(|b| b.num_rows() > 0).map_or(0, |b| {
        b.column(0)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .value(0)
            .max(0) as u64
    }))
}

/// Runs `sql`; returns the plan's schema (also when no row comes back)
/// and the rows.
async fn collect(engine: &Engine, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let query_error = |error| Error::Query {
        error: Box::new(error),
    };
    let frame = engine.context().sql(sql).await.map_err(query_error)?;
    let planned: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await.map_err(query_error)?;
    // the batches' own schema when there are rows (it may differ from the
    // plan's in nullability), else the plan's
    let schema = batches.first().map_or(planned, |b| b.schema());
    Ok((schema, batches))
}

/// A text column as plain Utf8.
fn text(batch: &RecordBatch, name: &str) -> Result<StringArray> {
    let column = batch.column_by_name(name).ok_or_else(|| Error::Column {
        table: "audience".into(),
        column: name.into(),
        reason: "missing".into(),
    })?;
    let utf8 = cast(column, &DataType::Utf8).map_err(|e| Error::Column {
        table: "audience".into(),
        column: name.into(),
        reason: e.to_string(),
    })?;
    Ok(utf8.as_string::<i32>().clone())
}

/// The list: the chosen rows of `survivors`, best first, as [`LIST_COLUMNS`].
fn list_batch(
    survivors: &RecordBatch,
    selection: &select::Selection,
    audience: &Audience,
    model_version: &str,
) -> Result<RecordBatch> {
    let n = selection.chosen.len();
    let indices = UInt32Array::from(
        selection
            .chosen
            .iter()
            .map(|(i, _)| *i as u32)
            .collect::<Vec<_>>(),
    );
    let pick = |name: &str| -> Result<ArrayRef> {
        let column = text(survivors, name)?;
        take(&column, &indices, None).map_err(|e| Error::Column {
            table: "audience list".into(),
            column: name.into(),
            reason: e.to_string(),
        })
    };
    let score_column = survivors
        .column_by_name("score")
        .ok_or_else(|| Error::Column {
            table: BASE.into(),
            column: "score".into(),
            reason: "missing".into(),
        })?;
    let scores = cast(score_column, &DataType::Float64).map_err(|e| Error::Column {
        table: BASE.into(),
        column: "score".into(),
        reason: e.to_string(),
    })?;
    let scores = scores.as_primitive::<Float64Type>();
    let reasons = survivors.column_by_name("reasons");
    let reason_text = |i: usize| -> String {
        let Some(list) = reasons.and_then(|r| r.as_list_opt::<i32>()) else {
            return String::new();
        };
        if list.is_null(i) {
            return String::new();
        }
        let items = list.value(i);
        let Ok(items) = cast(&items, &DataType::Utf8) else {
            return String::new();
        };
        let items = items.as_string::<i32>();
        (0..items.len())
            .filter(|&j| items.is_valid(j))
            .map(|j| items.value(j))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(1..=n as i64)),
        pick("unified_id")?,
        pick("customer_id")?,
        pick("full_name_masked")?,
        pick("phone_masked")?,
        pick("email_masked")?,
        Arc::new(StringArray::from(vec![audience.offer.value.as_str(); n])),
        Arc::new(StringArray::from(vec![audience.channel.value.as_str(); n])),
        Arc::new(Float64Array::from_iter_values(
            selection.chosen.iter().map(|(i, _)| scores.value(*i)),
        )),
        Arc::new(StringArray::from_iter_values(
            selection.chosen.iter().map(|(i, _)| reason_text(*i)),
        )),
        pick("segment")?,
        pick("city")?,
        pick("tag_segment")?,
        Arc::new(BooleanArray::from_iter(
            selection.chosen.iter().map(|(_, c)| Some(*c)),
        )),
        Arc::new(StringArray::from(vec![model_version; n])),
    ];
    let fields: Vec<Field> = LIST_COLUMNS
        .iter()
        .zip(&columns)
        .map(|(name, c)| {
            let nullable = !matches!(
                *name,
                "rank" | "unified_id" | "offer_id" | "channel" | "score" | "control"
            );
            Field::new(*name, c.data_type().clone(), nullable)
        })
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| Error::Column {
        table: "audience list".into(),
        column: "*".into(),
        reason: e.to_string(),
    })
}

/// A name a planning error is about (`No field named c.foo`, `Invalid
/// function 'foo'`), to find its line in the predicate.
fn needle(message: &str) -> Option<String> {
    let patterns = [
        r"No field named ([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)",
        r#"(?i)function '([^']+)'"#,
        r"Ambiguous reference to unqualified field ([A-Za-z_][A-Za-z0-9_]*)",
        r#""([A-Za-z_][A-Za-z0-9_]*)""#,
    ];
    patterns.iter().find_map(|p| {
        regex::Regex::new(p)
            .ok()?
            .captures(message)?
            .get(1)
            .map(|m| m.as_str().replace('"', ""))
    })
}

/// The first sentence of a DataFusion error, without its list of every
/// valid field.
fn first_clause(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default();
    let cut = line
        .find(". Valid fields are")
        .or_else(|| line.find(". Did you mean"))
        .map_or(line, |i| &line[..i]);
    cut.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suppression_lists_take_the_first_field_of_each_line() {
        let text =
            "customer_id\n# people who asked\nC100000001\n\n U0000000007 ,note\n\"C100000002\";x\n";
        assert_eq!(list_keys(text), ["C100000001", "U0000000007", "C100000002"]);
        assert!(list_keys("").is_empty());
    }

    /// (DataFusion's message, the name to look for, the sentence kept)
    const PLANNING_ERRORS: &[(&str, Option<&str>, &str)] = &[
        (
            "Schema error: No field named c.fooo. Valid fields are c.as_of, c.unified_id.",
            Some("c.fooo"),
            "Schema error: No field named c.fooo",
        ),
        (
            "Error during planning: Invalid function 'lenght'.\nDid you mean 'length'?",
            Some("lenght"),
            "Error during planning: Invalid function 'lenght'.",
        ),
        (
            "Schema error: Ambiguous reference to unqualified field age_years",
            Some("age_years"),
            "Schema error: Ambiguous reference to unqualified field age_years",
        ),
        (
            "Arrow error: Divide by zero error",
            None,
            "Arrow error: Divide by zero error",
        ),
    ];

    #[test]
    fn planning_errors_give_a_name_and_one_sentence() {
        for (message, name, kept) in PLANNING_ERRORS {
            assert_eq!(needle(message).as_deref(), *name, "{message}");
            assert_eq!(first_clause(message), *kept, "{message}");
        }
    }

    #[test]
    fn records_sit_beside_lists_and_literals_are_quoted() {
        assert_eq!(
            record_path(Path::new("out/travel.csv")),
            Path::new("out/travel.run.json")
        );
        assert_eq!(literal("it's"), "'it''s'");
    }
}
