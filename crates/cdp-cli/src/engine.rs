//! The query engine as the commands that use it start it.

use anyhow::Context as _;
use cdp_core::lake::Lake;
use cdp_engine::{Engine, EngineOptions};

use crate::Context;

/// A multi-threaded runtime and an engine over the configured lake.
pub fn start(ctx: &Context) -> anyhow::Result<(tokio::runtime::Runtime, Engine)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let lake = Lake::connect(&ctx.config.lake)?;
    let options = EngineOptions::from_config(&ctx.config.engine)?;
    let engine = Engine::new(lake, ctx.config.time.calendar()?, &options)?;
    Ok((runtime, engine))
}
