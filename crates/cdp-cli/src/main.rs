//! `cdp`: the customer-data platform's command line. Thin by design: it
//! parses arguments, loads the configuration once, sets up logging and
//! progress, and calls the library crates.

mod build_cmd;
mod cluster_cmd;
mod engine;
mod features_cmd;
mod gen_cmd;
mod historical_cmd;
mod ingest_cmd;
mod materialize_cmd;
mod model_cmd;
mod offers_cmd;
mod progress;
mod query_cmd;
mod refresh_cmd;
mod score_cmd;
mod serve_cmd;
mod tag_cmd;
mod train_cmd;
mod validate_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use cdp_core::config::{Config, LogFormat};

const ABOUT: &str = "cdp — a customer-data platform and feature store for a retail bank";

const EXAMPLES: &str = "\
Quick start:
  cdp gen --out data/raw --customers 2000 --days 60 --seed 7 --dirty-rate 0.01
  cdp validate --source data/raw
  cdp ingest --source data/raw --lake ./lake
  cdp build --as-of 2026-02-28
  cdp tag --as-of 2026-02-28 --plot segments.png
  cdp query \"SELECT * FROM silver.features WHERE as_of = DATE '2026-02-28' LIMIT 5\"

Every command takes --lake (default ./lake, env CDP_LAKE) and --json, which
prints one JSON summary on stdout instead of progress and tables.
Configuration: built-in defaults, then ./cdp.toml (or --config FILE), then
CDP__SECTION__KEY environment variables (e.g. CDP__TIME__TIMEZONE=Asia/Shanghai).";

#[derive(Debug, Parser)]
#[command(name = "cdp", version, about = ABOUT, after_help = EXAMPLES)]
struct Cli {
    /// The lake: a local folder or an object-store URL.
    #[arg(long, global = true, env = "CDP_LAKE", value_name = "URI")]
    lake: Option<String>,

    /// Configuration file (default: ./cdp.toml when it exists).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Print one JSON summary on stdout; no progress bars.
    #[arg(long, global = true)]
    json: bool,

    /// More log output from cdp's own crates (-v debug, -vv trace); overrides [log] level.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a synthetic bank's raw files (all six sources) with a ground-truth sidecar.
    #[command(after_help = gen_cmd::EXAMPLES)]
    Gen(gen_cmd::Args),
    /// Ingest raw files into the lake's bronze layer (validated, de-duplicated Parquet).
    #[command(after_help = ingest_cmd::EXAMPLES)]
    Ingest(ingest_cmd::Args),
    /// Check raw files against the source contracts in schemas/, without ingesting them.
    #[command(after_help = validate_cmd::EXAMPLES)]
    Validate(validate_cmd::Args),
    /// Build the silver layer as of a date: identity map, customer 360, features.
    #[command(after_help = build_cmd::EXAMPLES)]
    Build(build_cmd::Args),
    /// Tag every customer as of a date: PCA components, a named segment, tags (gold.tags).
    #[command(after_help = tag_cmd::EXAMPLES)]
    Tag(tag_cmd::Args),
    /// Train the offer-propensity model from past offers with point-in-time features.
    #[command(after_help = train_cmd::EXAMPLES)]
    Train(train_cmd::Args),
    /// Score every eligible customer x card offer with the current offer model (gold.scores).
    #[command(after_help = score_cmd::EXAMPLES)]
    Score(score_cmd::Args),
    /// Copy a feature snapshot into the online store (embedded in the lake, or Redis).
    #[command(after_help = materialize_cmd::EXAMPLES)]
    Materialize(materialize_cmd::Args),
    /// A targeted offer list from an audience file: eligible, suppressed, ranked, with a control group.
    #[command(after_help = offers_cmd::EXAMPLES)]
    Offers(offers_cmd::Args),
    /// Point-in-time training set: an entity file with timestamps joined to the feature snapshots.
    #[command(after_help = historical_cmd::EXAMPLES)]
    Historical(historical_cmd::Args),
    /// Run SQL over every lake table (bronze, silver, gold, ref).
    #[command(after_help = query_cmd::EXAMPLES)]
    Query(query_cmd::Args),
    /// Fit gradient-boosted trees on a CSV/Parquet table, or score one with a cdp or XGBoost model.
    #[command(after_help = model_cmd::EXAMPLES)]
    Model {
        #[command(subcommand)]
        action: model_cmd::Action,
    },
    /// Serve profiles, online features and offer scores over gRPC (cdp.v1).
    #[command(after_help = serve_cmd::SERVE_EXAMPLES)]
    Serve(serve_cmd::ServeArgs),
    /// The nightly job: ingest, build, quality gate, tag, labels, train, score, materialize, publish.
    #[command(after_help = refresh_cmd::REFRESH_EXAMPLES)]
    Refresh(refresh_cmd::RefreshArgs),
    /// The records of refresh runs: list them, or show one.
    #[command(after_help = refresh_cmd::RUNS_EXAMPLES)]
    Runs {
        #[command(subcommand)]
        action: refresh_cmd::RunsAction,
    },
    /// Apply the retention policy: drop old snapshots and models, delete unreferenced files.
    #[command(after_help = refresh_cmd::GC_EXAMPLES)]
    Gc(refresh_cmd::GcArgs),
    /// The quick start: build a lake from the samples when empty, then serve it with a demo key.
    #[command(after_help = serve_cmd::UP_EXAMPLES)]
    Up(serve_cmd::UpArgs),
    /// API keys for `cdp serve`.
    #[command(after_help = serve_cmd::APIKEY_EXAMPLES)]
    Apikey {
        #[command(subcommand)]
        action: serve_cmd::ApiKeyAction,
    },
    /// Ballista cluster processes (scheduler, executor) that run cdp's plans past one machine.
    #[command(after_help = cluster_cmd::EXAMPLES)]
    Cluster {
        #[command(subcommand)]
        action: cluster_cmd::Action,
    },
    /// The declared features: list them, or describe one.
    #[command(after_help = features_cmd::EXAMPLES)]
    Features {
        #[command(subcommand)]
        action: features_cmd::Action,
    },
}

/// What every command gets.
pub struct Context {
    pub config: Config,
    pub json: bool,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version go to stdout as clap prints them.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            // A usage error: one line, like every other failure (clap's
            // first paragraph, e.g. the missing argument's name with it).
            let text = e.to_string();
            let first: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            eprintln!("{} (see --help)", first.join(" "));
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            match e.downcast_ref::<cdp_refresh::Error>() {
                // a failed quality gate is the data's fault, not the job's
                Some(cdp_refresh::Error::Gate { .. }) => ExitCode::from(3),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config =
        Config::load(cli.config.as_deref(), std::env::vars()).context("loading configuration")?;
    if let Some(lake) = cli.lake {
        config.lake.uri = lake;
        config.validate()?;
    }
    init_logging(&config, cli.verbose)?;
    let ctx = Context {
        config,
        json: cli.json,
    };
    match cli.command {
        Command::Gen(args) => gen_cmd::run(&ctx, args),
        Command::Ingest(args) => ingest_cmd::run(&ctx, args),
        Command::Validate(args) => validate_cmd::run(&ctx, args),
        Command::Build(args) => build_cmd::run(&ctx, args),
        Command::Tag(args) => tag_cmd::run(&ctx, args),
        Command::Train(args) => train_cmd::run(&ctx, args),
        Command::Score(args) => score_cmd::run(&ctx, args),
        Command::Materialize(args) => materialize_cmd::run(&ctx, args),
        Command::Offers(args) => offers_cmd::run(&ctx, args),
        Command::Historical(args) => historical_cmd::run(&ctx, args),
        Command::Query(args) => query_cmd::run(&ctx, args),
        Command::Cluster { action } => cluster_cmd::run(&ctx, action),
        Command::Features { action } => features_cmd::run(&ctx, action),
        Command::Model { action } => model_cmd::run(&ctx, action),
        Command::Serve(args) => serve_cmd::serve(&ctx, args),
        Command::Up(args) => serve_cmd::up(&ctx, args),
        Command::Refresh(args) => refresh_cmd::refresh_run(&ctx, args),
        Command::Runs { action } => refresh_cmd::runs(&ctx, action),
        Command::Gc(args) => refresh_cmd::gc(&ctx, args),
        Command::Apikey { action } => serve_cmd::apikey(&ctx, action),
    }
}

fn init_logging(config: &Config, verbose: u8) -> anyhow::Result<()> {
    // -v and -vv open cdp's own crates only: third-party crates (DataFusion,
    // Parquet, h2) log data values such as column statistics at debug
    // level, and customer data never goes to the log.
    let level = match verbose {
        0 => config.log.level.clone(),
        1 => own_crates("debug"),
        _ => own_crates("trace"),
    };
    let filter = EnvFilter::try_new(&level).with_context(|| format!("log level {level:?}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match config.log.format {
        LogFormat::Text => builder.compact().init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

/// A log filter: `level` for cdp's crates, warnings for everything else.
fn own_crates(level: &str) -> String {
    let crates = [
        "cdp",
        "cdp_core",
        "cdp_gen",
        "cdp_ingest",
        "cdp_engine",
        "cdp_ml",
        "cdp_store",
        "cdp_server",
        "cdp_refresh",
    ];
    std::iter::once("warn".to_string())
        .chain(crates.iter().map(|c| format!("{c}={level}")))
        .collect::<Vec<_>>()
        .join(",")
}

/// The error and its causes on one line.
fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
        .replace('\n', " ")
}

/// Prints a value as one line of JSON on stdout. A reader that went away
/// (`cdp … --json | head`) is not an error.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    use std::io::Write as _;
    let line = serde_json::to_string(value)?;
    match writeln!(std::io::stdout().lock(), "{line}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("writing the JSON summary to stdout"))
        }
        _ => Ok(()),
    }
}
