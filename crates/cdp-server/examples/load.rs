//! A bounded load generator for `cdp serve` on loopback — and, for the
//! comparison in `bench/serve.sh`, for Feast's HTTP feature server on the
//! same customers and features (issue 8's load benchmark).
//!
//! Scenarios (`--scenario`):
//!
//! * `features1`: `GetOnlineFeatures` for 1 entity × the `--features` list
//!   (default: the first 50 numeric features of the registry);
//! * `features100`: the same for 100 entities;
//! * `score`: `ScoreOffers` for 1 customer: every eligible offer, ranked,
//!   with the server's default number of reasons.
//!
//! With `--target feast` the two feature scenarios go to Feast's
//! `POST /get-online-features` (HTTP/1.1, pooled keep-alive connections)
//! instead, with the same entities and feature names in `--feast-view`.
//!
//! Load. With `--rate R` the load is open loop: request `i` is due at
//! `start + i / R` whatever happened to the ones before it, and its latency
//! counts from that due time, so a server that stalls cannot hide its queue
//! by slowing the client down (no coordinated omission). At most
//! `--max-in-flight` requests are outstanding; due requests never sent
//! before the end count as `CLIENT_BACKLOG` errors. Without `--rate` the
//! load is closed loop: `--concurrency` callers each send the next request
//! as soon as the last one answered, which measures maximum throughput.
//! gRPC calls go round-robin over `--connections` HTTP/2 connections, so
//! one connection does not serialise everything.
//!
//! Bounds. `--warmup` seconds (at most 30, not recorded), then `--duration`
//! seconds (at most 120), then at most the request timeout for stragglers
//! (counted as `UNFINISHED`); a watchdog ends the process should anything
//! hang. Every request has a deadline (`--timeout-ms`); only loopback
//! addresses are accepted.
//!
//! Output: one JSON line on stdout — target, scenario, requests, errors (by
//! gRPC status code or HTTP status), achieved requests/s and the latency
//! percentiles of the successful requests in microseconds (exact, from all
//! samples), the client's CPU time per request and, given
//! `--server-pids`, the server's — and a one-line check of the first
//! answer on stderr.
//!
//! ```text
//! cargo run --release -p cdp-server --example load -- --addr 127.0.0.1:50051 \
//!     --key "$KEY" --scenario features1 --entities-file ids.csv --rate 10000 --duration 20
//! ```

use std::collections::BTreeMap;
use std::net::ToSocketAddrs as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use bytes::Bytes;
use cdp_server::pb;
use cdp_server::pb::feature_service_client::FeatureServiceClient;
use cdp_server::pb::scoring_service_client::ScoringServiceClient;
use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};

/// The first 50 numeric features of the registry (`cdp features list`), in
/// registry order: the default `--features`.
const DEFAULT_FEATURES: [&str; 50] = [
    "txn_count_7d",
    "txn_count_30d",
    "txn_count_90d",
    "spend_7d",
    "spend_30d",
    "spend_90d",
    "avg_ticket_30d",
    "avg_ticket_90d",
    "max_ticket_90d",
    "days_since_last_txn",
    "active_days_30d",
    "distinct_merchants_90d",
    "pos_share_90d",
    "online_share_90d",
    "foreign_share_90d",
    "foreign_spend_90d",
    "foreign_currency_share_90d",
    "atm_count_90d",
    "transfer_count_90d",
    "refund_count_90d",
    "refund_amount_90d",
    "decline_count_30d",
    "decline_rate_30d",
    "reversal_count_90d",
    "grocery_share_90d",
    "dining_share_90d",
    "travel_share_90d",
    "retail_share_90d",
    "digital_share_90d",
    "transport_share_90d",
    "entertainment_share_90d",
    "max_daily_txn_30d",
    "max_daily_spend_30d",
    "txn_count_1d",
    "spend_pace_7d_vs_90d",
    "distinct_devices_90d",
    "shared_devices",
    "rooted_devices_90d",
    "failed_logins_30d",
    "logins_30d",
    "app_opens_30d",
    "payment_auths_30d",
    "password_resets_90d",
    "device_binds_90d",
    "digital_active_days_30d",
    "days_since_last_login",
    "web_share_90d",
    "foreign_geo_events_90d",
    "social_profiles",
    "social_followers",
];

const MAX_DURATION_S: u64 = 120;
const MAX_WARMUP_S: u64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// GetOnlineFeatures, 1 entity.
    Features1,
    /// GetOnlineFeatures, 100 entities.
    Features100,
    /// ScoreOffers, 1 customer.
    Score,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    /// `cdp serve` over gRPC.
    Cdp,
    /// `feast serve` over HTTP.
    Feast,
}

#[derive(Debug, Parser)]
#[command(
    about = "Bounded open- or closed-loop load on cdp serve (gRPC) or feast serve (HTTP), on loopback"
)]
struct Args {
    /// The server's HOST:PORT (a loopback address).
    #[arg(long)]
    addr: String,
    /// The API key, sent as `authorization: Bearer KEY` (cdp only).
    #[arg(long, env = "CDP_API_KEY", default_value = "", hide_env_values = true)]
    key: String,
    #[arg(long, value_enum)]
    scenario: Scenario,
    #[arg(long, value_enum, default_value = "cdp")]
    target: Target,
    /// Customer unified_ids, one a line; a header line `unified_id` is
    /// skipped (so `cdp query --format csv` output works as it is).
    #[arg(long, value_name = "FILE")]
    entities_file: PathBuf,
    /// Comma-separated feature names (default: the first 50 numeric
    /// features of the registry).
    #[arg(long, value_delimiter = ',')]
    features: Vec<String>,
    /// The Feast feature view holding the features (--target feast).
    #[arg(long, default_value = "customer_features")]
    feast_view: String,
    /// Open loop: requests per second on a fixed schedule.
    #[arg(long)]
    rate: Option<f64>,
    /// Closed loop (without --rate): callers, each with one request in flight.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// HTTP/2 connections to the gRPC server, used round-robin.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Measured seconds (at most 120).
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Seconds of load before measuring (at most 30).
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Deadline of each request.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Open loop: most requests outstanding at once.
    #[arg(long, default_value_t = 4096)]
    max_in_flight: usize,
    /// Client runtime threads (client and server share the machine).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Judge feature TTLs now rather than at the served snapshot's cutoff
    /// (a lake built in the past then serves mostly expired, empty values).
    #[arg(long)]
    ttl_at_now: bool,
    /// Seed of the entity choice.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Server process ids whose CPU time over the measured window is
    /// reported beside the client's (Linux).
    #[arg(long, value_delimiter = ',')]
    server_pids: Vec<u32>,
}

/// How one request is sent; shared by every task.
enum Caller {
    Features {
        clients: Vec<FeatureServiceClient<Channel>>,
        names: pb::FeatureList,
        at: Option<prost_types::Timestamp>,
    },
    Score {
        clients: Vec<ScoringServiceClient<Channel>>,
    },
    Feast {
        client: Box<HttpClient<HttpConnector, Full<Bytes>>>,
        uri: hyper::Uri,
        features: Vec<String>,
    },
}

/// Everything a request needs: the caller, the customers to pick from and
/// how many per request.
struct Load {
    caller: Caller,
    ids: Vec<String>,
    per_call: usize,
    bearer: MetadataValue<Ascii>,
    timeout: Duration,
    seed: u64,
}

/// A failed request: its gRPC status code (or `HTTP_<status>`, or a
/// client-side failure) and the first words of its message.
struct Failure {
    code: String,
    message: String,
}

impl Failure {
    fn new(code: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Failure {
            code: code.into(),
            message: message.to_string().chars().take(200).collect(),
        }
    }

    fn grpc(status: tonic::Status) -> Self {
        Failure::new(code_name(status.code()), status.message())
    }
}

/// What the first answer looked like, for the stderr check line.
struct Answer {
    summary: String,
    /// The served snapshot's cutoff (cdp features).
    event_time: Option<prost_types::Timestamp>,
}

impl Load {
    /// The customers of request `i`: a fixed pseudo-random choice.
    fn pick(&self, i: u64) -> Vec<String> {
        (0..self.per_call as u64)
            .map(|k| {
                let h = splitmix64(self.seed ^ i.wrapping_mul(1_000_003).wrapping_add(k));
                self.ids[(h % self.ids.len() as u64) as usize].clone()
            })
            .collect()
    }

    fn grpc_request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", self.bearer.clone());
        request.set_timeout(self.timeout);
        request
    }

    /// Sends request `i`; with `check`, describes the answer. (Feast's JSON
    /// is parsed only then: the measured Feast client just reads the body,
    /// while tonic always decodes cdp's answer.)
    async fn call(&self, i: u64, check: bool) -> Result<Option<Answer>, Failure> {
        let keys = self.pick(i);
        match &self.caller {
            Caller::Features { clients, names, at } => {
                let mut client = clients[i as usize % clients.len()].clone();
                let request = self.grpc_request(pb::GetOnlineFeaturesRequest {
                    entities: keys.into_iter().map(unified_id).collect(),
                    selection: Some(pb::get_online_features_request::Selection::Features(
                        names.clone(),
                    )),
                    at: *at,
                });
                let response = client
                    .get_online_features(request)
                    .await
                    .map_err(Failure::grpc)?
                    .into_inner();
                Ok(check.then(|| describe_features(&response)))
            }
            Caller::Score { clients } => {
                let mut client = clients[i as usize % clients.len()].clone();
                let customer = keys.into_iter().next().map(unified_id);
                let request = self.grpc_request(pb::ScoreOffersRequest {
                    customer,
                    top_reasons: 0,
                    max_offers: 0,
                });
                let response = client
                    .score_offers(request)
                    .await
                    .map_err(Failure::grpc)?
                    .into_inner();
                Ok(check.then(|| describe_offers(&response)))
            }
            Caller::Feast {
                client,
                uri,
                features,
            } => {
                let body = json!({
                    "features": features,
                    "entities": {"unified_id": keys},
                    "full_feature_names": false,
                });
                let request = hyper::Request::post(uri.clone())
                    .header(hyper::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(body.to_string())))
                    .map_err(|e| Failure::new("CLIENT_REQUEST", e))?;
                let exchange = async {
                    let response = client
                        .request(request)
                        .await
                        .map_err(|e| Failure::new("HTTP_CONNECTION", e))?;
                    let status = response.status();
                    let body = response
                        .into_body()
                        .collect()
                        .await
                        .map_err(|e| Failure::new("HTTP_BODY", e))?
                        .to_bytes();
                    if !status.is_success() {
                        let text = String::from_utf8_lossy(&body);
                        return Err(Failure::new(format!("HTTP_{}", status.as_u16()), text));
                    }
                    Ok(body)
                };
                let body = tokio::time::timeout(self.timeout, exchange)
                    .await
                    .map_err(|_| Failure::new("DEADLINE_EXCEEDED", "client timeout"))??;
                Ok(check.then(|| describe_feast(&body)))
            }
        }
    }
}

fn unified_id(value: String) -> pb::CustomerKey {
    pb::CustomerKey {
        kind: pb::KeyKind::UnifiedId as i32,
        value,
    }
}

fn describe_features(response: &pb::GetOnlineFeaturesResponse) -> Answer {
    let statuses = response.columns.iter().flat_map(|c| c.statuses.iter());
    let (mut present, mut all) = (0, 0);
    for &status in statuses {
        all += 1;
        present += usize::from(status == pb::FeatureStatus::Present as i32);
    }
    let snapshot = response.snapshot.as_ref();
    Answer {
        summary: format!(
            "entities {}, features {}, {present} of {all} values present, snapshot {}",
            response.unified_ids.len(),
            response.columns.len(),
            snapshot.map_or("?", |s| s.as_of.as_str()),
        ),
        event_time: snapshot.and_then(|s| s.event_time),
    }
}

fn describe_offers(response: &pb::ScoreOffersResponse) -> Answer {
    let reasons: Vec<String> = response
        .offers
        .iter()
        .map(|o| o.reasons.len().to_string())
        .collect();
    Answer {
        summary: format!(
            "{} offers, reasons per offer [{}], model {}",
            response.offers.len(),
            reasons.join(","),
            response.model_version
        ),
        event_time: None,
    }
}

fn describe_feast(body: &[u8]) -> Answer {
    let parsed: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let results = parsed["results"].as_array().cloned().unwrap_or_default();
    let statuses = results
        .iter()
        .filter_map(|r| r["statuses"].as_array())
        .flatten();
    let (mut present, mut all) = (0, 0);
    for status in statuses {
        all += 1;
        present += usize::from(status == "PRESENT");
    }
    Answer {
        summary: format!(
            "{} columns (with the entity key), {present} of {all} values present",
            results.len()
        ),
        event_time: None,
    }
}

/// `DeadlineExceeded` -> `DEADLINE_EXCEEDED`, as gRPC spells its codes.
fn code_name(code: tonic::Code) -> String {
    let mut name = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The measured outcomes; requests due before the end of the warm-up are
/// not recorded.
struct Recorder {
    /// When the first request is due.
    start: Instant,
    /// When the warm-up ends.
    measure_from: Instant,
    stats: Mutex<Stats>,
}

#[derive(Default)]
struct Stats {
    /// Due (open loop) or sent (closed loop) to answered, successes only.
    latencies_us: Vec<u64>,
    /// Sent minus due: the generator's own lateness.
    lags_us: Vec<u64>,
    errors: BTreeMap<String, u64>,
    /// The first message of each error code.
    messages: BTreeMap<String, String>,
    last_done: Option<Instant>,
}

impl Recorder {
    fn record(&self, due: Instant, sent: Instant, outcome: Result<(), Failure>) {
        if due < self.measure_from {
            return;
        }
        let done = Instant::now();
        let mut stats = self.stats.lock().expect("stats lock");
        match outcome {
            Ok(()) => stats.latencies_us.push(micros(done - due)),
            Err(failure) => {
                *stats.errors.entry(failure.code.clone()).or_default() += 1;
                stats
                    .messages
                    .entry(failure.code)
                    .or_insert(failure.message);
            }
        }
        stats.lags_us.push(micros(sent - due));
        stats.last_done = Some(stats.last_done.map_or(done, |d| d.max(done)));
    }

    fn error(&self, code: &str, count: u64) {
        if count > 0 {
            let mut stats = self.stats.lock().expect("stats lock");
            *stats.errors.entry(code.to_string()).or_default() += count;
        }
    }
}

/// CPU seconds used so far by process `pid`: utime + stime of
/// /proc/PID/stat, in USER_HZ (100 a second); `None` off Linux.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // fields after the command name, which may hold spaces: the 3rd on
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    let ticks = |field: usize| fields.get(field - 3)?.parse::<u64>().ok();
    Some((ticks(14)? + ticks(15)?) as f64 / 100.0)
}

/// Samples the CPU time of this process and of `servers` at `from` and
/// `window` later: the seconds each side used in the measured window.
fn cpu_window(
    from: Instant,
    window: Duration,
    servers: Vec<u32>,
) -> std::thread::JoinHandle<(Option<f64>, Option<f64>)> {
    let sample = move || {
        let client = cpu_seconds("self");
        let server = (!servers.is_empty())
            .then(|| servers.iter().map(|p| cpu_seconds(&p.to_string())).sum())
            .flatten();
        (client, server)
    };
    std::thread::spawn(move || {
        std::thread::sleep(from.saturating_duration_since(Instant::now()));
        let before = sample();
        std::thread::sleep(window);
        let after = sample();
        let used = |a: Option<f64>, b: Option<f64>| Some(b? - a?);
        (used(before.0, after.0), used(before.1, after.1))
    })
}

/// CPU microseconds per successful request.
fn per_request(seconds: Option<f64>, ok: u64) -> Option<f64> {
    seconds
        .filter(|_| ok > 0)
        .map(|s| (s * 1e6 / ok as f64).round())
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The nearest-rank percentile `q` of sorted samples (0 when empty).
fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Open loop: the calling thread keeps the schedule and hands each due
/// request to the runtime; returns when every request is answered or has
/// run out of time.
fn open_loop(rt: &Runtime, load: &Arc<Load>, recorder: &Arc<Recorder>, rate: f64, args: &Args) {
    let start = recorder.start;
    let end = recorder.measure_from + Duration::from_secs(args.duration);
    let slots = Arc::new(Semaphore::new(args.max_in_flight));
    let mut i: u64 = 0;
    loop {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        if due >= end {
            break;
        }
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let permit = loop {
            match slots.clone().try_acquire_owned() {
                Ok(permit) => break Some(permit),
                Err(_) if Instant::now() >= end => break None,
                Err(_) => std::thread::sleep(Duration::from_micros(100)),
            }
        };
        let Some(permit) = permit else { break };
        let (load, recorder) = (Arc::clone(load), Arc::clone(recorder));
        rt.spawn(async move {
            let sent = Instant::now();
            let outcome = load.call(i, false).await.map(|_| ());
            recorder.record(due, sent, outcome);
            drop(permit);
        });
        i += 1;
    }
    // Due in the measured window but never sent: the client fell behind.
    let scheduled = ((end - start).as_secs_f64() * rate).ceil() as u64;
    let unsent_from = i.max(
        ((recorder.measure_from.saturating_duration_since(start)).as_secs_f64() * rate).ceil()
            as u64,
    );
    recorder.error("CLIENT_BACKLOG", scheduled.saturating_sub(unsent_from));
    let all = u32::try_from(args.max_in_flight).unwrap_or(u32::MAX);
    let drain = load.timeout + Duration::from_secs(1);
    let drained = rt.block_on(async {
        tokio::time::timeout(drain, slots.acquire_many(all))
            .await
            .is_ok()
    });
    if !drained {
        let outstanding = args.max_in_flight - slots.available_permits();
        recorder.error("UNFINISHED", outstanding as u64);
    }
}

/// Closed loop: `concurrency` callers, each sending its next request when
/// the last one answered, until the end of the measured window.
fn closed_loop(rt: &Runtime, load: &Arc<Load>, recorder: &Arc<Recorder>, args: &Args) {
    let end = recorder.measure_from + Duration::from_secs(args.duration);
    let callers = args.concurrency as u64;
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for caller in 0..callers {
            let (load, recorder) = (Arc::clone(load), Arc::clone(recorder));
            set.spawn(async move {
                let mut i = caller;
                loop {
                    let sent = Instant::now();
                    if sent >= end {
                        break;
                    }
                    let outcome = load.call(i, false).await.map(|_| ());
                    recorder.record(sent, sent, outcome);
                    i += callers;
                }
            });
        }
        while set.join_next().await.is_some() {}
    });
}

/// Reads unified_ids, one a line, skipping blanks and a `unified_id` header.
fn read_ids(path: &PathBuf) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading entities from {}", path.display()))?;
    let ids: Vec<String> = text
        .lines()
        .map(|l| l.trim().trim_matches('"'))
        .filter(|l| !l.is_empty() && *l != "unified_id")
        .map(str::to_string)
        .collect();
    ensure!(!ids.is_empty(), "no ids in {}", path.display());
    Ok(ids)
}

fn check_loopback(addr: &str) -> anyhow::Result<()> {
    let resolved: Vec<_> = addr
        .to_socket_addrs()
        .with_context(|| format!("--addr {addr}: not HOST:PORT"))?
        .collect();
    ensure!(
        !resolved.is_empty() && resolved.iter().all(|a| a.ip().is_loopback()),
        "--addr {addr}: only loopback addresses are load-tested"
    );
    Ok(())
}

async fn connect_caller(args: &Args, features: &[String]) -> anyhow::Result<Caller> {
    if args.target == Target::Feast {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = HttpClient::builder(TokioExecutor::new()).build(connector);
        let uri = format!("http://{}/get-online-features", args.addr).parse()?;
        let features = features
            .iter()
            .map(|f| format!("{}:{f}", args.feast_view))
            .collect();
        return Ok(Caller::Feast {
            client: Box::new(client),
            uri,
            features,
        });
    }
    let endpoint = Endpoint::from_shared(format!("http://{}", args.addr))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_millis(args.timeout_ms));
    let mut channels = Vec::with_capacity(args.connections);
    for _ in 0..args.connections.max(1) {
        // each connect() opens its own HTTP/2 connection
        channels.push(
            endpoint
                .connect()
                .await
                .with_context(|| format!("connecting to {}", args.addr))?,
        );
    }
    Ok(match args.scenario {
        Scenario::Score => Caller::Score {
            clients: channels
                .into_iter()
                .map(ScoringServiceClient::new)
                .collect(),
        },
        Scenario::Features1 | Scenario::Features100 => Caller::Features {
            clients: channels
                .into_iter()
                .map(FeatureServiceClient::new)
                .collect(),
            names: pb::FeatureList {
                names: features.to_vec(),
            },
            at: None,
        },
    })
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    ensure!(
        (1..=MAX_DURATION_S).contains(&args.duration),
        "--duration must be 1..={MAX_DURATION_S} seconds"
    );
    ensure!(
        args.warmup <= MAX_WARMUP_S,
        "--warmup must be at most {MAX_WARMUP_S} seconds"
    );
    ensure!(
        args.rate.is_none_or(|r| r > 0.0 && r <= 1_000_000.0),
        "--rate must be in (0, 1000000]"
    );
    ensure!(
        args.concurrency >= 1 && args.max_in_flight >= 1 && args.threads >= 1,
        "--concurrency, --max-in-flight and --threads must be at least 1"
    );
    if args.target == Target::Feast && args.scenario == Scenario::Score {
        bail!("Feast has no offer scoring: --target feast takes features1 or features100");
    }
    check_loopback(&args.addr)?;

    // The watchdog: whatever happens, the process ends.
    let limit = Duration::from_secs(args.warmup + args.duration + 30)
        + 2 * Duration::from_millis(args.timeout_ms);
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("load: still running after {limit:?}; giving up");
        std::process::exit(3);
    });

    let features: Vec<String> = if args.features.is_empty() {
        DEFAULT_FEATURES.iter().map(|f| f.to_string()).collect()
    } else {
        args.features.clone()
    };
    let per_call = if args.scenario == Scenario::Features100 {
        100
    } else {
        1
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()?;
    let mut load = Load {
        caller: rt.block_on(connect_caller(&args, &features))?,
        ids: read_ids(&args.entities_file)?,
        per_call,
        bearer: format!("Bearer {}", args.key)
            .parse()
            .context("--key: not a valid header value")?,
        timeout: Duration::from_millis(args.timeout_ms),
        seed: args.seed,
    };

    // Checked calls first: they fail loudly on a wrong key, id or feature,
    // and give the snapshot cutoff to judge TTLs at.
    let check = |load: &Load| {
        rt.block_on(load.call(u64::MAX, true))
            .map_err(|f| anyhow::anyhow!("the first request failed: {} {}", f.code, f.message))
            .map(|answer| answer.expect("a checked call describes its answer"))
    };
    let mut first = check(&load)?;
    if let Caller::Features { at, .. } = &mut load.caller
        && !args.ttl_at_now
    {
        *at = first.event_time;
        first = check(&load)?;
    }
    eprintln!(
        "load: {:?} {:?} on {}: {}",
        args.target, args.scenario, args.addr, first.summary
    );

    let load = Arc::new(load);
    let start = Instant::now() + Duration::from_millis(10);
    let cpu = cpu_window(
        start + Duration::from_secs(args.warmup),
        Duration::from_secs(args.duration),
        args.server_pids.clone(),
    );
    let recorder = Arc::new(Recorder {
        start,
        measure_from: start + Duration::from_secs(args.warmup),
        stats: Mutex::new(Stats::default()),
    });
    match args.rate {
        Some(rate) => open_loop(&rt, &load, &recorder, rate, &args),
        None => closed_loop(&rt, &load, &recorder, &args),
    }

    let (client_cpu, server_cpu) = cpu.join().unwrap_or((None, None));
    let mut stats = std::mem::take(&mut *recorder.stats.lock().expect("stats lock"));
    stats.latencies_us.sort_unstable();
    stats.lags_us.sort_unstable();
    let ok = stats.latencies_us.len() as u64;
    let errors: u64 = stats.errors.values().sum();
    let window = stats
        .last_done
        .map_or(Duration::ZERO, |d| {
            d.saturating_duration_since(recorder.measure_from)
        })
        .max(Duration::from_secs(args.duration));
    let lat = &stats.latencies_us;
    let mean = if lat.is_empty() {
        0.0
    } else {
        lat.iter().sum::<u64>() as f64 / lat.len() as f64
    };
    let line = json!({
        "target": format!("{:?}", args.target).to_lowercase(),
        "scenario": format!("{:?}", args.scenario).to_lowercase(),
        "mode": if args.rate.is_some() { "open-loop" } else { "closed-loop" },
        "rate_target": args.rate,
        "concurrency": if args.rate.is_some() { None } else { Some(args.concurrency) },
        "connections": if args.target == Target::Cdp { Some(args.connections) } else { None },
        "entities": per_call,
        "features": (args.scenario != Scenario::Score).then_some(features.len()),
        "warmup_s": args.warmup,
        "duration_s": args.duration,
        "requests": ok + errors,
        "ok": ok,
        "errors": errors,
        "errors_by_code": stats.errors,
        "error_messages": stats.messages,
        "rps": (ok as f64 / window.as_secs_f64() * 10.0).round() / 10.0,
        "p50_us": percentile(lat, 0.50),
        "p90_us": percentile(lat, 0.90),
        "p99_us": percentile(lat, 0.99),
        "p99_9_us": percentile(lat, 0.999),
        "max_us": lat.last().copied().unwrap_or(0),
        "mean_us": mean.round(),
        "send_lag_p99_us": percentile(&stats.lags_us, 0.99),
        "client_cpu_us_per_request": per_request(client_cpu, ok),
        "server_cpu_us_per_request": per_request(server_cpu, ok),
        "first_answer": first.summary,
    });
    println!("{line}");
    // Idle pooled connections and the watchdog need not be waited for.
    rt.shutdown_timeout(Duration::from_millis(100));
    Ok(())
}
