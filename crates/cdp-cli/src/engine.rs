//! The query engine as the commands that use it start it.

use anyhow::Context as _;
use cdp_core::lake::Lake;
use cdp_engine::{Engine, EngineOptions};

use crate::Context;

/// A multi-threaded runtime and an engine over the configured lake, its
/// plans run in this process.
pub fn start(ctx: &Context) -> anyhow::Result<(tokio::runtime::Runtime, Engine)> {
    start_with(ctx, EngineOptions::from_config(&ctx.config.engine)?)
}

/// Like [`start`], for a job whose plans may run on a Ballista cluster:
/// `--engine` (`local` or `ballista://host:port`) when given, else
/// [engine] cluster.
pub fn start_on(
    ctx: &Context,
    engine: Option<&str>,
) -> anyhow::Result<(tokio::runtime::Runtime, Engine)> {
    let mut options =
        EngineOptions::from_config(&ctx.config.engine)?.on_cluster(&ctx.config.engine)?;
    if let Some(engine) = engine {
        options.scheduler = cdp_core::config::parse_engine(engine)?;
    }
    start_with(ctx, options)
}

fn start_with(
    ctx: &Context,
    options: EngineOptions,
) -> anyhow::Result<(tokio::runtime::Runtime, Engine)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let lake = Lake::connect(&ctx.config.lake)?;
    let engine = Engine::new(lake, ctx.config.time.calendar()?, &options)?;
    Ok((runtime, engine))
}
