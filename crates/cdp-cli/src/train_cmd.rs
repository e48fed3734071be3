//! `cdp train --as-of D [--algo …] [--from-xgboost FILE]`: the offer model.

use std::path::PathBuf;

use cdp_engine::features::FeatureRegistry;
use cdp_engine::train::{TrainOptions, parse_algo, train};
use cdp_ml::model::Params;
use chrono::NaiveDate;

use crate::progress::Bars;
use crate::{Context, engine, print_json};

pub const EXAMPLES: &str = "\
Examples:
  cdp train --as-of 2026-03-31
  cdp train --as-of 2026-03-31 --algo logistic
  cdp train --as-of 2026-03-31 --param max_depth=4 --param eta=0.05
  cdp train --as-of 2026-03-31 --from-xgboost offer_model.json
  cat LAKE/models/offer/v1/summary.txt

Learns which card offer a customer accepts from past offers
(bronze.offer_events): an offer is labelled 1 when accepted within 30 days of
sent_at, and only offers whose 30 days ended by D are used. Each offer is
paired with the feature snapshot of the latest built day at or before the
day before it was sent (never that day or later; at most
[offers] max_feature_age_days older), so build snapshots for the days before
your campaigns (`cdp build --as-of D` each night does). Rows are the
person's numeric features plus the card product's attributes (tier, fee,
category, minimum income band). The newest offers are held out as a test
set ([offers] test_share), the ones before them drive early stopping
([offers] valid_share); a sending day is never split.
  --algo gbdt            gradient-boosted trees (default; XGBoost parameters
                         from [offers] params and --param)
  --algo random-forest   smartcore random forest (baseline)
  --algo logistic        smartcore logistic regression (baseline)
  --from-xgboost FILE    evaluate and store a model trained in Python XGBoost
                         (Booster.save_model(\"m.json\")) on the same columns
The model is stored as the next version under LAKE/models/offer/<version>/
(model.json, readable by `cdp model predict --model`; summary.txt) and becomes
current for `cdp score`. --json prints {\"version\", \"algo\", \"offers\", \"split\",
\"test_auc\", \"test_logloss\", \"seconds\", …}.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The as-of business date (YYYY-MM-DD): offers whose outcome is known by then.
    #[arg(long, value_name = "YYYY-MM-DD")]
    as_of: NaiveDate,
    /// The learner: gbdt, random-forest or logistic ([offers] algo by default).
    #[arg(long, value_name = "ALGO")]
    algo: Option<String>,
    /// A learner parameter by XGBoost's name, overriding [offers] params (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// Evaluate and store this XGBoost JSON model instead of training one.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["algo", "params"])]
    from_xgboost: Option<PathBuf>,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let registry = FeatureRegistry::embedded()?;
    let options = TrainOptions {
        algo: args.algo.as_deref().map(parse_algo).transpose()?,
        params: Params::from_pairs(&args.params)?,
        from_xgboost: args.from_xgboost,
        reuse: false,
    };
    let (runtime, engine) = engine::start(ctx)?;
    let report = runtime.block_on(train(
        &engine,
        &ctx.config.offers,
        &registry,
        args.as_of,
        &options,
        &Bars::new(ctx.json),
    ))?;
    if ctx.json {
        return print_json(&report);
    }
    println!(
        "trained offer model {} ({}) as of {} in {:.1} s: test AUC {:.4}, logloss {:.4}",
        report.version,
        report.algo,
        report.as_of,
        report.seconds.get("total").copied().unwrap_or_default(),
        report.test_auc,
        report.test_logloss
    );
    print!("{}", report.summary);
    Ok(())
}
