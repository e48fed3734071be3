//! `cdp cluster scheduler` and `cdp cluster executor`: the processes of an
//! Apache DataFusion Ballista cluster that runs cdp's query plans.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use std::io::Write as _;

use cdp_cluster::{ExecutorOptions, Scheduler, SchedulerOptions};
use cdp_core::lake::Lake;

use crate::{Context, print_json};

pub const EXAMPLES: &str = "\
Examples:
  cdp cluster scheduler --addr 0.0.0.0:50050 --min-executors 2
  cdp cluster executor --scheduler 10.0.0.5:50050 --flight-port 50051 --grpc-port 50052
  cdp build --as-of 2026-03-31 --engine ballista://10.0.0.5:50050

Past one machine, `cdp build`, `cdp historical` and `cdp offers` hand their
DataFusion plans to an Apache DataFusion Ballista scheduler, which runs them
on its executors (--engine ballista://HOST:PORT, or [engine] cluster).
These are Ballista's own scheduler and executor, started with cdp's SQL
functions and the lake's object store, so every process must read the same
[lake] (and [lake.s3]) and [time] configuration as the commands that send
work. The scheduler answers GET /healthz, and GET /readyz with 200 once
--min-executors executors have joined. Both stop on Ctrl-C or SIGTERM.";

/// Stack of each worker thread of a scheduler or executor.
const PLAN_STACK_BYTES: usize = 64 << 20;

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Run a Ballista scheduler that knows cdp's functions and the lake.
    Scheduler(SchedulerArgs),
    /// Run a Ballista executor that joins a scheduler.
    Executor(ExecutorArgs),
}

#[derive(Debug, clap::Args)]
pub struct SchedulerArgs {
    /// gRPC listen address (also /healthz and /readyz); port 0 picks a free
    /// one, named on the first stdout line ({"scheduler": "HOST:PORT"} with --json).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50050")]
    addr: SocketAddr,
    /// The host executors call back on (default: the listen address's host).
    #[arg(long, value_name = "HOST")]
    external_host: Option<String>,
    /// Executors that must have joined before /readyz answers 200.
    #[arg(long, value_name = "N", default_value_t = 1)]
    min_executors: usize,
    /// Seconds without a heartbeat before an executor is declared lost and
    /// its tasks run elsewhere.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    executor_timeout: u64,
    /// Attempts per task before its job fails.
    #[arg(long, value_name = "N", default_value_t = 4)]
    task_attempts: usize,
}

#[derive(Debug, clap::Args)]
pub struct ExecutorArgs {
    /// The scheduler to join.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50050")]
    scheduler: String,
    /// The interface to listen on.
    #[arg(long, value_name = "HOST", default_value = "127.0.0.1")]
    bind_host: String,
    /// The host others reach this executor at (default: as the scheduler sees it).
    #[arg(long, value_name = "HOST")]
    external_host: Option<String>,
    /// Arrow Flight port: shuffle and result fetches.
    #[arg(long, value_name = "PORT", default_value_t = 50051)]
    flight_port: u16,
    /// gRPC port: tasks pushed by the scheduler.
    #[arg(long, value_name = "PORT", default_value_t = 50052)]
    grpc_port: u16,
    /// Tasks run at once (0: one per core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    tasks: usize,
    /// Folder for shuffle files (default: a temporary folder).
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// Seconds between heartbeats to the scheduler.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    heartbeat: u64,
}

pub fn run(ctx: &Context, action: Action) -> anyhow::Result<()> {
    // Decoding and planning a serialized plan recurses once per plan node
    // (the customer 360's plan is deep): worker threads get room for it.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(PLAN_STACK_BYTES)
        .build()
        .context("starting the async runtime")?;
    let lake = Lake::connect(&ctx.config.lake)?;
    let calendar = ctx.config.time.calendar()?;
    match action {
        Action::Scheduler(args) => {
            let options = SchedulerOptions {
                addr: args.addr,
                external_host: args.external_host,
                min_executors: args.min_executors,
                executor_timeout_seconds: args.executor_timeout.max(1),
                task_max_failures: args.task_attempts.max(1),
            };
            let shutdown = crate::serve_cmd::shutdown_signal()?;
            runtime.block_on(async {
                let scheduler = Scheduler::bind(&lake, calendar, &options).await?;
                let addr = scheduler.addr();
                if ctx.json {
                    print_json(&serde_json::json!({ "scheduler": addr.to_string() }))?;
                } else {
                    println!("Ballista scheduler listening on {addr}; send work with --engine ballista://{addr}");
                }
                let _ = std::io::stdout().flush();
                tokio::select! {
                    result = scheduler.run() => result.map_err(anyhow::Error::from),
                    () = shutdown => Ok(()),
                }
            })?;
        }
        Action::Executor(args) => {
            let engine = cdp_engine::EngineOptions::from_config(&ctx.config.engine)?;
            let options = ExecutorOptions {
                scheduler: args.scheduler,
                bind_host: args.bind_host,
                external_host: args.external_host,
                flight_port: args.flight_port,
                grpc_port: args.grpc_port,
                tasks: args.tasks,
                work_dir: args.work_dir,
                memory_limit: engine.memory_limit,
                heartbeat_seconds: args.heartbeat.max(1),
            };
            // the executor handles Ctrl-C and SIGTERM itself (it leaves the
            // cluster before it stops)
            runtime.block_on(cdp_cluster::run_executor(&lake, calendar, &options))?;
        }
    }
    Ok(())
}
