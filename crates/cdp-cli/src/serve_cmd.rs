//! `cdp serve`, `cdp up` and `cdp apikey new`: the gRPC server, the quick
//! start that builds a lake from the samples and serves it, and API keys.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, bail};
use cdp_core::config::{ApiKeyConfig, Config, SCOPES};
use cdp_server::auth;
use cdp_server::server::{self, Ready};
use serde_json::json;

use crate::{Context, engine, print_json};

pub const SERVE_EXAMPLES: &str = "\
Examples:
  cdp serve
  cdp serve --addr 0.0.0.0:50051 --metrics-addr 0.0.0.0:9464
  cdp serve --addr 127.0.0.1:0 --json      # a free port; the first stdout line names it

Serves cdp.v1 over gRPC (proto/cdp/v1): ProfileService (scope profiles;
PII masked without scope pii), FeatureService (scope features) and
ScoringService (scope scores), plus grpc.health.v1 and server reflection,
so grpcurl and any gRPC client work:

  grpcurl -plaintext -H 'authorization: Bearer KEY' \\
    -d '{\"key\": {\"value\": \"C0000042\"}}' 127.0.0.1:50051 cdp.v1.ProfileService/GetProfile

Every call needs `authorization: Bearer KEY` with a key of [server]
api_keys (make one with `cdp apikey new`). It serves the date last
materialized (`cdp materialize`), with the current offer model, and picks up
a newer materialization, build or model within [server] reload_interval_ms
without a restart. Metrics: GET http://METRICS_ADDR/metrics (Prometheus).
TLS: set [server] tls_cert and tls_key (PEM). Stops on Ctrl-C or SIGTERM.
With --json the ready line is {\"grpc\", \"metrics\", \"tls\", \"as_of\",
\"model\", \"customers\", \"online\"}.";

pub const UP_EXAMPLES: &str = "\
Examples:
  cdp up
  cdp up --lake /tmp/demo-lake --addr 127.0.0.1:50052

The quick start. When the lake has no built snapshot it ingests the sample
bank (data/samples/, or --source), then builds, tags, trains, scores and
materializes as of the last business day in it; then it serves on
127.0.0.1:50051 with a fresh demo API key (scopes profiles, features,
scores; no pii) and prints a grpcurl call to paste.";

pub const APIKEY_EXAMPLES: &str = "\
Examples:
  cdp apikey new --team mobile-app --scopes profiles,features
  cdp apikey new --team call-centre --scopes profiles,pii
  cdp apikey new --team marketing --scopes features,scores --feature-services card_offers_v1

Prints a new random key (give it to the team; cdp keeps no copy) and the
[[server.api_keys]] entry to add to cdp.toml, which stores only its SHA-256.";

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// gRPC listen address (default: [server] addr, 127.0.0.1:50051); port 0 picks a free one.
    #[arg(long, value_name = "HOST:PORT")]
    addr: Option<String>,
    /// Prometheus metrics address (default: [server] metrics_addr); `off` disables it.
    #[arg(long, value_name = "HOST:PORT")]
    metrics_addr: Option<String>,
    /// The online store (default: [online] backend): `embedded` or redis://host:port/db.
    #[arg(long, value_name = "URI")]
    online: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Raw files to ingest when the lake is empty.
    #[arg(long, value_name = "DIR", default_value = "data/samples")]
    source: PathBuf,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum ApiKeyAction {
    /// Make a new API key and its configuration entry.
    New {
        /// The team the key belongs to.
        #[arg(long)]
        team: String,
        /// Comma-separated scopes: profiles, features, scores, pii.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Feature services the key may read (default: any).
        #[arg(long, value_delimiter = ',')]
        feature_services: Vec<String>,
    },
}

/// Applies `--addr`, `--metrics-addr` and `--online` to the configuration.
fn apply(config: &mut Config, args: &ServeArgs) -> anyhow::Result<()> {
    if let Some(addr) = &args.addr {
        config.server.addr = addr.clone();
    }
    if let Some(addr) = &args.metrics_addr {
        config.server.metrics_addr = if addr == "off" {
            String::new()
        } else {
            addr.clone()
        };
    }
    if let Some(online) = &args.online {
        config.online.backend = online.clone();
    }
    config.validate()?;
    Ok(())
}

pub fn serve(ctx: &Context, args: ServeArgs) -> anyhow::Result<()> {
    let mut config = ctx.config.clone();
    apply(&mut config, &args)?;
    if config.server.api_keys.is_empty() {
        bail!(
            "no API keys in [server] api_keys, so every call would be refused; \
             `cdp apikey new --team NAME --scopes profiles,features,scores` makes one"
        );
    }
    run_server(ctx.json, &config, None)
}

/// Runs the server until Ctrl-C or SIGTERM; `demo_key` is shown in the ready message.
fn run_server(json: bool, config: &Config, demo_key: Option<&str>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let shutdown = shutdown_signal()?;
    runtime.block_on(async {
        server::serve(config, shutdown, |ready| announce(json, ready, demo_key))
            .await
            .context("cdp serve")
    })
}

/// The ready message: one JSON line, or a few lines for a person.
fn announce(json: bool, ready: &Ready, demo_key: Option<&str>) {
    let grpc = ready.bound.grpc.to_string();
    let metrics = ready.bound.metrics.map(|a| format!("http://{a}/metrics"));
    if json {
        let line = json!({
            "grpc": grpc,
            "metrics": metrics,
            "tls": ready.bound.tls,
            "as_of": ready.as_of,
            "model": ready.model,
            "customers": ready.customers,
            "online": ready.online,
            "demo_key": demo_key,
        });
        println!("{line}");
    } else {
        println!(
            "cdp serve: gRPC on {grpc}{}",
            if ready.bound.tls { " (TLS)" } else { "" }
        );
        println!("  metrics:  {}", metrics.as_deref().unwrap_or("off"));
        match &ready.as_of {
            Some(d) => println!(
                "  serving:  snapshot as of {d}, {} customers, offer model {}, online store {}",
                ready.customers,
                ready.model.as_deref().unwrap_or("none (run `cdp train`)"),
                ready.online
            ),
            None => println!(
                "  serving:  nothing yet (run `cdp build` and `cdp materialize`); health is NOT_SERVING"
            ),
        }
        if let Some(key) = demo_key {
            let tls = if ready.bound.tls { "" } else { "-plaintext " };
            println!("  demo API key (scopes profiles, features, scores): {key}");
            println!("\ntry:");
            println!(
                "  grpcurl {tls}-H 'authorization: Bearer {key}' -d '{{\"key\": {{\"kind\": \"KEY_KIND_UNIFIED_ID\", \"value\": \"U0000000001\"}}}}' {grpc} cdp.v1.ProfileService/GetProfile"
            );
            println!(
                "  grpcurl {tls}-H 'authorization: Bearer {key}' -d '{{\"customer\": {{\"value\": \"U0000000001\"}}}}' {grpc} cdp.v1.ScoringService/ScoreOffers"
            );
            println!(
                "  grpcurl {tls}-H 'authorization: Bearer {key}' -d '{{\"entities\": [{{\"value\": \"U0000000001\"}}], \"feature_service\": \"card_offers_v1\"}}' {grpc} cdp.v1.FeatureService/GetOnlineFeatures"
            );
        }
        println!("\nCtrl-C stops it.");
    }
    let _ = std::io::stdout().flush();
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
pub(crate) fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("installing signal handlers")?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            let _ = tx.send(());
        }
    });
    Ok(async move {
        let _ = rx.await;
    })
}

pub fn up(ctx: &Context, args: UpArgs) -> anyhow::Result<()> {
    let mut config = ctx.config.clone();
    apply(&mut config, &args.serve)?;
    let lake = config.lake.uri.clone();
    let (runtime, engine) = engine::start(ctx)?;
    let built = runtime.block_on(cdp_engine::serving::latest_snapshot(engine.lake()))?;
    if built.is_none() {
        if !args.source.is_dir() {
            bail!(
                "the lake {lake} is empty and the sample folder {} does not exist; run `cdp up` from the repository root or pass --source DIR",
                args.source.display()
            );
        }
        let source = args.source.to_string_lossy().to_string();
        stage(ctx, &lake, &["ingest", "--source", &source])?;
        let (first, last) = runtime
            .block_on(cdp_engine::serving::business_days(&engine))?
            .context("no transactions were ingested from the samples")?;
        // weekly snapshots back from the last day: `cdp train` pairs each
        // past offer with the features of the week before it was sent
        let mut days = vec![last];
        while let Some(earlier) = days
            .last()
            .and_then(|d| d.checked_sub_days(chrono::Days::new(7)))
        {
            if earlier < first {
                break;
            }
            days.push(earlier);
        }
        for d in days.iter().rev() {
            stage(ctx, &lake, &["build", "--as-of", &d.to_string()])?;
        }
        let d = last.to_string();
        for step in ["tag", "train", "score", "materialize"] {
            stage(ctx, &lake, &[step, "--as-of", &d])?;
        }
    }
    drop(engine);
    drop(runtime);
    let key = auth::new_key();
    config.server.api_keys.push(ApiKeyConfig {
        team: "demo".into(),
        key_sha256: auth::hash_key(&key),
        scopes: vec!["profiles".into(), "features".into(), "scores".into()],
        feature_services: Vec::new(),
    });
    run_server(ctx.json, &config, Some(&key))
}

/// Runs one `cdp` stage as a child process over `lake`, with its own progress.
fn stage(ctx: &Context, lake: &str, args: &[&str]) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("locating the cdp binary")?;
    if !ctx.json {
        eprintln!("cdp up: cdp {}", args.join(" "));
    }
    let mut command = Command::new(exe);
    command.args(args).args(["--lake", lake]);
    if ctx.json {
        // keep stdout for the one ready line
        command.arg("--json").stdout(std::process::Stdio::null());
    }
    let status = command
        .status()
        .with_context(|| format!("running cdp {}", args[0]))?;
    if !status.success() {
        bail!("cdp up: `cdp {}` failed", args.join(" "));
    }
    Ok(())
}

pub fn apikey(ctx: &Context, action: ApiKeyAction) -> anyhow::Result<()> {
    let ApiKeyAction::New {
        team,
        scopes,
        feature_services,
    } = action;
    if let Some(bad) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
        bail!("unknown scope {bad:?}; expected profiles, features, scores or pii");
    }
    let key = auth::new_key();
    let hash = auth::hash_key(&key);
    if ctx.json {
        return print_json(&json!({
            "team": team, "key": key, "key_sha256": hash,
            "scopes": scopes, "feature_services": feature_services,
        }));
    }
    println!("API key for team {team} (shown once; cdp keeps only its hash):\n\n  {key}\n");
    println!("Add to cdp.toml:\n");
    println!("[[server.api_keys]]");
    println!("team = {team:?}");
    println!("key_sha256 = \"{hash}\"");
    println!("scopes = {scopes:?}");
    if !feature_services.is_empty() {
        println!("feature_services = {feature_services:?}");
    }
    Ok(())
}
