//! `cdp serve`: the gRPC server and its metrics endpoint.
//!
//! Startup binds both listeners, opens the online store, loads what is
//! published (or waits for it: health says NOT_SERVING until a snapshot is
//! served), then serves until shutdown while a [`Reloader`] swaps in newer
//! snapshots and models.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cdp_core::config::Config;
use cdp_core::lake::Lake;
use cdp_engine::EngineOptions;
use cdp_engine::features::FeatureRegistry;
use cdp_store::online::{self, OnlineTarget};
use cdp_store::services::FeatureServices;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tracing::{info, warn};

use crate::auth::{ApiKeys, Scope};
use crate::error::{Error, Result};
use crate::metrics::{self, Metrics};
use crate::pb;
use crate::service::Gate;
use crate::state::{Loader, Reloader};

/// Where the server listens, once bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// The gRPC address (a port of 0 in the configuration is resolved here).
    pub grpc: SocketAddr,
    /// The metrics address, when enabled.
    pub metrics: Option<SocketAddr>,
    /// Whether the gRPC listener speaks TLS.
    pub tls: bool,
}

/// What the server serves at startup, for the ready message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// The listeners.
    pub bound: Bound,
    /// The snapshot date served, if any.
    pub as_of: Option<String>,
    /// The offer model version served, if any.
    pub model: Option<String>,
    /// People in the snapshot.
    pub customers: usize,
    /// The online store backend.
    pub online: &'static str,
}

/// Serves `config` until `shutdown` resolves; `ready` is called once the
/// listeners are bound and the initial snapshot (if any) is loaded.
pub async fn serve(
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
    ready: impl FnOnce(&Ready),
) -> Result<()> {
    let settings = &config.server;
    let keys = ApiKeys::new(&settings.api_keys);
    let lake = Lake::connect(&config.lake)?;
    let calendar = config.time.calendar()?;
    let registry = FeatureRegistry::embedded()?;
    let services = FeatureServices::embedded(&registry)?;
    let metrics = Arc::new(Metrics::new());

    let addr: SocketAddr = settings.addr.parse().map_err(|_| Error::Listen {
        what: "gRPC",
        addr: settings.addr.clone(),
        reason: "not HOST:PORT".into(),
    })?;
    let incoming = TcpIncoming::bind(addr)
        .map_err(|e| Error::Listen {
            what: "gRPC",
            addr: addr.to_string(),
            reason: e.to_string(),
        })?
        .with_nodelay(Some(true));
    let grpc_addr = incoming.local_addr().map_err(|e| Error::Listen {
        what: "gRPC",
        addr: addr.to_string(),
        reason: e.to_string(),
    })?;
    let metrics_listener = if settings.metrics_addr.is_empty() {
        None
    } else {
        let listener = tokio::net::TcpListener::bind(&settings.metrics_addr)
            .await
            .map_err(|e| Error::Listen {
                what: "metrics",
                addr: settings.metrics_addr.clone(),
                reason: e.to_string(),
            })?;
        Some(listener)
    };
    let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());

    let target = OnlineTarget::parse(&config.online.backend)?;
    let store = online::open(&target, &lake, &config.online).await?;
    let loader = Loader::new(
        lake,
        calendar,
        EngineOptions::from_config(&config.engine)?,
        keys.any_has(Scope::Pii),
    );
    let reloader = Reloader::new(loader, store.clone(), metrics.clone());
    if let Err(e) = reloader.check().await {
        warn!(error = %e, "no snapshot loaded at startup; serving NOT_SERVING until one loads");
    }

    let (health, health_service) = tonic_health::server::health_reporter();
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| Error::Listen {
            what: "gRPC reflection",
            addr: grpc_addr.to_string(),
            reason: e.to_string(),
        })?;

    let gate = Gate::new(
        keys,
        reloader.current.clone(),
        store.clone(),
        services,
        settings.max_concurrent_requests,
        metrics.clone(),
        config.offers.top_reasons,
    );
    let limit = settings.max_request_bytes;
    let profiles = pb::profile_service_server::ProfileServiceServer::new(gate.clone())
        .max_decoding_message_size(limit);
    let features = pb::feature_service_server::FeatureServiceServer::new(gate.clone())
        .max_decoding_message_size(limit);
    let scoring = pb::scoring_service_server::ScoringServiceServer::new(gate)
        .max_decoding_message_size(limit);

    let current = reloader.current.load_full();
    let tls = !settings.tls_cert.is_empty();
    ready(&Ready {
        bound: Bound {
            grpc: grpc_addr,
            metrics: metrics_addr,
            tls,
        },
        as_of: current.as_ref().map(|s| s.as_of.to_string()),
        model: current
            .as_ref()
            .and_then(|s| s.scorer.as_ref().map(|m| m.version().to_string())),
        customers: current.as_ref().map_or(0, |s| s.profiles.len()),
        online: target.backend(),
    });

    // one shutdown signal for the gRPC server, the metrics endpoint, the
    // reloader and the health updater
    let (stop, stopped) = watch::channel(false);
    let signal = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let health_updates = {
        let current = reloader.current.clone();
        let mut stopped = stopped.clone();
        async move {
            let mut serving = None;
            loop {
                let now = current.load().is_some();
                if serving != Some(now) {
                    serving = Some(now);
                    let status = if now {
                        tonic_health::ServingStatus::Serving
                    } else {
                        tonic_health::ServingStatus::NotServing
                    };
                    for name in [
                        "",
                        "cdp.v1.ProfileService",
                        "cdp.v1.FeatureService",
                        "cdp.v1.ScoringService",
                    ] {
                        health.set_service_status(name, status).await;
                    }
                }
                tokio::select! {
                    _ = stopped.wait_for(|s| *s) => return,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        }
    };
    tokio::spawn(health_updates);
    tokio::spawn(reloader.clone().watch(
        Duration::from_millis(settings.reload_interval_ms),
        signal(stopped.clone()),
    ));
    if let Some(listener) = metrics_listener {
        let metrics = metrics.clone();
        let until = signal(stopped.clone());
        tokio::spawn(async move {
            if let Err(e) = metrics::serve(listener, metrics, until).await {
                warn!(error = %e, "metrics endpoint stopped");
            }
        });
    }

    let mut builder = Server::builder()
        .timeout(Duration::from_millis(settings.default_timeout_ms))
        .tcp_nodelay(true);
    if tls {
        let read = |path: &str| {
            std::fs::read(path).map_err(|source| Error::Tls {
                path: path.to_string(),
                source,
            })
        };
        let identity = Identity::from_pem(read(&settings.tls_cert)?, read(&settings.tls_key)?);
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(identity))
            .map_err(|e| Error::Listen {
                what: "gRPC TLS",
                addr: grpc_addr.to_string(),
                reason: e.to_string(),
            })?;
    }
    info!(addr = %grpc_addr, tls, metrics = %metrics::describe(metrics_addr), "serving cdp.v1");
    builder
        .add_service(health_service)
        .add_service(reflection)
        .add_service(profiles)
        .add_service(features)
        .add_service(scoring)
        .serve_with_incoming_shutdown(incoming, signal(stopped))
        .await
        .map_err(|e| Error::Listen {
            what: "gRPC",
            addr: grpc_addr.to_string(),
            reason: e.to_string(),
        })
}
