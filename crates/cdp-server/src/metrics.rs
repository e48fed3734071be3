//! Prometheus metrics: requests and latency per method and status code,
//! requests in flight and refused, what is served (snapshot date and age,
//! model version, customers) and reloads. `GET /metrics` on
//! `[server] metrics_addr` serves them in the text exposition format.
//!
//! No label ever carries customer data: methods, codes and teams only.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use chrono::Utc;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::state::Serving;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Call {
    method: &'static str,
    code: &'static str,
    team: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Method {
    method: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    result: &'static str,
}

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<Call, Counter>,
    latency: Family<Method, Histogram>,
    in_flight: Gauge,
    reloads: Family<Outcome, Counter>,
    as_of: Gauge,
    loaded_at: Gauge,
    age: Gauge<f64, AtomicU64>,
    model_version: Gauge,
    customers: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("cdp");
        let requests = Family::<Call, Counter>::default();
        registry.register(
            "requests",
            "gRPC requests by method, status code and team",
            requests.clone(),
        );
        let latency = Family::<Method, Histogram>::new_with_constructor(|| {
            // 25 µs to ~0.8 s
            Histogram::new(exponential_buckets(0.000_025, 2.0, 16))
        });
        registry.register(
            "request_duration_seconds",
            "gRPC request latency by method, in seconds",
            latency.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "requests_in_flight",
            "gRPC requests being served",
            in_flight.clone(),
        );
        let reloads = Family::<Outcome, Counter>::default();
        registry.register(
            "reloads",
            "snapshot reloads by result (loaded, failed)",
            reloads.clone(),
        );
        let as_of = Gauge::default();
        registry.register(
            "snapshot_as_of_timestamp_seconds",
            "the served snapshot's cutoff (as-of date + 1 day, business time), Unix seconds",
            as_of.clone(),
        );
        let loaded_at = Gauge::default();
        registry.register(
            "snapshot_loaded_timestamp_seconds",
            "when the served snapshot was loaded, Unix seconds",
            loaded_at.clone(),
        );
        let age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "snapshot_age_seconds",
            "seconds since the served snapshot's cutoff",
            age.clone(),
        );
        let model_version = Gauge::default();
        registry.register(
            "offer_model_version",
            "the served offer model version number (vN), 0 without a model",
            model_version.clone(),
        );
        let customers = Gauge::default();
        registry.register(
            "customers",
            "people in the served snapshot",
            customers.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            in_flight,
            reloads,
            as_of,
            loaded_at,
            age,
            model_version,
            customers,
        }
    }

    /// A request started.
    pub fn started(&self) {
        self.in_flight.inc();
    }

    /// A request of `team` to `method` ended with `code` after `elapsed`.
    pub fn finished(&self, method: &'static str, team: &str, code: tonic::Code, elapsed: Duration) {
        self.in_flight.dec();
        self.requests
            .get_or_create(&Call {
                method,
                code: code_name(code),
                team: team.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&Method { method })
            .observe(elapsed.as_secs_f64());
    }

    /// A request refused before it started (unauthenticated, overloaded).
    pub fn refused(&self, method: &'static str, code: tonic::Code) {
        self.requests
            .get_or_create(&Call {
                method,
                code: code_name(code),
                team: String::new(),
            })
            .inc();
    }

    /// A new snapshot is served.
    pub fn loaded(&self, serving: &Serving) {
        self.reloads
            .get_or_create(&Outcome { result: "loaded" })
            .inc();
        self.as_of.set(serving.event_time.timestamp());
        self.loaded_at.set(serving.loaded_at.timestamp());
        let version = serving
            .scorer
            .as_ref()
            .and_then(|s| s.version().trim_start_matches('v').parse().ok())
            .unwrap_or(0);
        self.model_version.set(version);
        self.customers.set(serving.profiles.len() as i64);
    }

    /// A reload failed.
    pub fn reload_failed(&self) {
        self.reloads
            .get_or_create(&Outcome { result: "failed" })
            .inc();
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let as_of = self.as_of.get();
        if as_of > 0 {
            self.age.set((Utc::now().timestamp() - as_of) as f64);
        }
        let mut out = String::new();
        // writing into a String cannot fail
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// A status code's canonical name.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: std::sync::Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.render(),
                )
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// The address a metrics listener is bound to, for messages.
pub fn describe(addr: Option<SocketAddr>) -> String {
    addr.map_or_else(|| "off".into(), |a| format!("http://{a}/metrics"))
}
