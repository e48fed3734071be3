//! `cdp-cluster`: the processes of a Ballista cluster that runs cdp's
//! query plans past one machine.
//!
//! cdp does not schedule anything itself. [`Scheduler`] and
//! [`run_executor`] start Apache DataFusion Ballista's own scheduler and
//! executor (the `ballista-scheduler` and `ballista-executor` crates) with
//! the two things a stock Ballista process lacks:
//!
//! - cdp's SQL functions ([`cdp_engine::udf::functions`]): a plan names
//!   `business_date` or `mask_phone`, and every process that decodes it must
//!   know the function by that name;
//! - the lake's object store ([`cdp_engine::session::lake_object_store`]),
//!   so table scans and writes reach the same files the client planned over.
//!
//! Both therefore read the same `[lake]` and `[time]` configuration as the
//! `cdp` commands that send them work (`cdp build --engine ballista://…`).
//! A client plans SQL in its own process; the scheduler turns the optimized
//! plan into stages; executors run the tasks and stream results back.

mod error;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ballista_core::RuntimeProducer;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::utils::default_session_builder;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service_with_listener};
use ballista_scheduler::scheduler_server::SessionBuilder;
use cdp_core::lake::Lake;
use cdp_core::time::BusinessCalendar;
use datafusion::execution::FunctionRegistry;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionConfig;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use tracing::instrument;

pub use error::{Error, Result};

/// How the scheduler listens and decides an executor is gone.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// gRPC (and `/healthz`, `/readyz`) listen address.
    pub addr: SocketAddr,
    /// The host executors are told to call back on (default: the listen
    /// address's host).
    pub external_host: Option<String>,
    /// Executors needed before `/readyz` answers 200.
    pub min_executors: usize,
    /// Seconds without a heartbeat after which an executor is dead and its
    /// tasks are run elsewhere.
    pub executor_timeout_seconds: u64,
    /// Attempts per task before its job fails.
    pub task_max_failures: usize,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 50050)),
            external_host: None,
            min_executors: 1,
            executor_timeout_seconds: 30,
            task_max_failures: 4,
        }
    }
}

/// Where an executor listens, which scheduler it joins and what it may use.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler, `host:port`.
    pub scheduler: String,
    /// The interface to listen on.
    pub bind_host: String,
    /// The host others reach this executor at (default: what the scheduler
    /// sees the connection come from).
    pub external_host: Option<String>,
    /// Arrow Flight port (shuffle and result fetches).
    pub flight_port: u16,
    /// gRPC port (tasks pushed by the scheduler).
    pub grpc_port: u16,
    /// Tasks run at once (0: one per core).
    pub tasks: usize,
    /// Folder for shuffle files (default: a temporary folder).
    pub work_dir: Option<PathBuf>,
    /// Memory the executor's tasks share before they spill.
    pub memory_limit: u64,
    /// Seconds between heartbeats to the scheduler.
    pub heartbeat_seconds: u64,
}

/// cdp's functions, as shared handles.
fn functions(calendar: BusinessCalendar) -> Vec<Arc<ScalarUDF>> {
    cdp_engine::udf::functions(calendar)
        .into_iter()
        .map(Arc::new)
        .collect()
}

/// A Ballista scheduler that knows cdp's functions and the lake, bound to
/// its address and ready to [`run`](Scheduler::run).
pub struct Scheduler {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    config: Arc<SchedulerConfig>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Scheduler {
    /// Binds the listen address (port 0 picks a free one) and prepares the
    /// scheduler's sessions: each decodes a client's logical plan (cdp's
    /// functions by name) and plans it physically over the lake's files.
    #[instrument(skip_all, fields(addr = %options.addr, lake = %lake.uri()))]
    pub async fn bind(
        lake: &Lake,
        calendar: BusinessCalendar,
        options: &SchedulerOptions,
    ) -> Result<Scheduler> {
        let (url, store) = cdp_engine::session::lake_object_store(lake)?;
        let udfs = functions(calendar);
        let session_builder: SessionBuilder = Arc::new(move |config: SessionConfig| {
            let mut state = default_session_builder(config)?;
            state
                .runtime_env()
                .register_object_store(&url, store.clone());
            for f in &udfs {
                state.register_udf(f.clone())?;
            }
            Ok(state)
        });
        let bind_error = |source| Error::Bind {
            addr: options.addr,
            source,
        };
        let listener = tokio::net::TcpListener::bind(options.addr)
            .await
            .map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let config = SchedulerConfig {
            bind_host: addr.ip().to_string(),
            bind_port: addr.port(),
            external_host: options
                .external_host
                .clone()
                .unwrap_or_else(|| addr.ip().to_string()),
            min_ready_executors: options.min_executors,
            executor_timeout_seconds: options.executor_timeout_seconds,
            expire_dead_executor_interval_seconds: options.executor_timeout_seconds.clamp(1, 15),
            task_max_failures: options.task_max_failures,
            override_session_builder: Some(session_builder),
            ..Default::default()
        };
        Ok(Scheduler {
            listener,
            addr,
            config: Arc::new(config),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves executors and clients until the process ends.
    pub async fn run(self) -> Result<()> {
        let cluster = BallistaCluster::new_from_config(&self.config)
            .await
            .map_err(Error::ballista("cannot set up the scheduler's state"))?;
        let scheduler = create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, self.config)
            .await
            .map_err(Error::ballista("cannot start the scheduler"))?;
        tracing::info!(addr = %self.addr, "scheduler listening");
        start_grpc_service_with_listener(self.listener, scheduler)
            .await
            .map_err(Error::ballista("the scheduler stopped"))
    }
}

/// Runs a Ballista executor that knows cdp's functions and the lake, joined
/// to `options.scheduler`, until the process ends (or SIGTERM, which it
/// handles by leaving the cluster).
#[instrument(skip_all, fields(scheduler = %options.scheduler, lake = %lake.uri()))]
pub async fn run_executor(
    lake: &Lake,
    calendar: BusinessCalendar,
    options: &ExecutorOptions,
) -> Result<()> {
    let (scheduler_host, scheduler_port) = split_host_port(&options.scheduler)?;
    let (url, store) = cdp_engine::session::lake_object_store(lake)?;
    let udfs = functions(calendar);
    let mut state = SessionStateBuilder::new().with_default_features().build();
    for f in &udfs {
        state
            .register_udf(f.clone())
            .map_err(|source| Error::DataFusion {
                what: "cannot register cdp's functions",
                source: Box::new(source),
            })?;
    }
    let registry = BallistaFunctionRegistry::from(&state);
    let work_dir = options.work_dir.clone();
    let runtime: RuntimeProducer = Arc::new(move |_config: &SessionConfig| {
        let mut builder = RuntimeEnvBuilder::new();
        if let Some(dir) = &work_dir {
            builder = builder.with_temp_file_path(dir.clone());
        }
        let runtime = builder.build()?;
        runtime.register_object_store(&url, store.clone());
        Ok(Arc::new(runtime))
    });
    let config = ExecutorProcessConfig {
        bind_host: options.bind_host.clone(),
        external_host: options.external_host.clone(),
        port: options.flight_port,
        grpc_port: options.grpc_port,
        scheduler_host,
        scheduler_port,
        scheduler_connect_timeout_seconds: 30,
        vcores: options.tasks,
        work_dir: options
            .work_dir
            .as_ref()
            .map(|d| d.to_string_lossy().into_owned()),
        executor_heartbeat_interval_seconds: options.heartbeat_seconds,
        memory_pool_size: Some(options.memory_limit),
        override_function_registry: Some(Arc::new(registry)),
        override_runtime_producer: Some(runtime),
        ..Default::default()
    };
    tracing::info!(
        flight_port = options.flight_port,
        grpc_port = options.grpc_port,
        "executor starting"
    );
    start_executor_process(Arc::new(config))
        .await
        .map_err(Error::ballista("the executor stopped"))
}

/// `host:port` split, the port checked.
fn split_host_port(addr: &str) -> Result<(String, u16)> {
    let bad = |reason: &str| Error::SchedulerAddress {
        addr: addr.to_string(),
        reason: reason.into(),
    };
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| bad("expected host:port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| bad("the port must be a number in 1..=65535"))?;
    if host.is_empty() || port == 0 {
        return Err(bad("expected host:port"));
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_addresses_are_host_and_port() {
        assert_eq!(
            split_host_port("10.1.2.3:50050").unwrap(),
            ("10.1.2.3".to_string(), 50050)
        );
        for bad in ["nohost", ":50050", "h:0", "h:http"] {
            assert!(split_host_port(bad).is_err(), "{bad}");
        }
    }
}
