//! Layered configuration: built-in defaults, then `cdp.toml`, then
//! `CDP__SECTION__KEY` environment variables; validated once, at start.
//!
//! The binary reads the environment and hands it in, so no library looks at
//! process state on its own:
//!
//! ```
//! use cdp_core::config::Config;
//!
//! let env = [("CDP__LAKE__URI".to_string(), "/data/lake".to_string())];
//! let config = Config::load(None, env).unwrap();
//! assert_eq!(config.lake.uri, "/data/lake");
//! assert_eq!(config.time.timezone, "Asia/Shanghai");
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

use crate::error::{Error, Result};
use crate::time::{BusinessCalendar, DEFAULT_TIMEZONE};

/// Prefix of configuration environment variables.
pub const ENV_PREFIX: &str = "CDP__";

/// The config file read from the working directory when none is named.
pub const DEFAULT_FILE: &str = "cdp.toml";

/// All of cdp's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the lake lives.
    pub lake: LakeConfig,
    /// Business time.
    pub time: TimeConfig,
    /// Logging.
    pub log: LogConfig,
    /// The query engine (`cdp build`, `cdp query`).
    pub engine: EngineConfig,
    /// Customer tags (`cdp tag`).
    pub tagger: TaggerConfig,
    /// Offer-propensity models (`cdp train`, `cdp score`).
    pub offers: OffersConfig,
    /// The online feature store (`cdp materialize`, `cdp serve`).
    pub online: OnlineConfig,
    /// The gRPC server (`cdp serve`, `cdp up`).
    pub server: ServerConfig,
    /// The nightly run (`cdp refresh`): schedule, lock and quality gate.
    pub refresh: RefreshConfig,
    /// What the lake keeps (`cdp refresh`, `cdp gc`).
    pub retention: RetentionConfig,
}

/// `[refresh]`: the nightly run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RefreshConfig {
    /// Retrain the offer model when the current one was fitted this many
    /// days or more before the date refreshed (0: only with `--retrain`,
    /// or when there is no model yet).
    pub retrain_every_days: u32,
    /// A refresh holds the lake's lock for this long and renews it while it
    /// runs; a refresh that died is taken over once its lease ran out.
    pub lock_lease_seconds: u64,
    /// The quality gate: a check over its threshold stops the publish.
    pub quality: QualityConfig,
}

impl Default for RefreshConfig {
    fn default() -> Self {
        Self {
            retrain_every_days: 7,
            lock_lease_seconds: 300,
            quality: QualityConfig::default(),
        }
    }
}

/// `[refresh.quality]`: data-quality thresholds of `cdp refresh`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QualityConfig {
    /// Largest share of a source's rows quarantined in one ingest.
    pub max_quarantine_share: f64,
    /// Persons in the new snapshot over persons in the previous one: the
    /// lowest ratio accepted.
    pub min_persons_ratio: f64,
    /// The highest ratio accepted.
    pub max_persons_ratio: f64,
    /// Largest rise of a feature's null rate against the previous snapshot.
    pub max_null_rate_increase: f64,
    /// A feature whose population stability index against the previous
    /// snapshot reaches this is a warning.
    pub psi_warning: f64,
    /// ... and this fails the gate.
    pub max_psi: f64,
    /// The comparisons with the previous snapshot (persons, null rates,
    /// drift) fail the gate only when it is at most this many days older;
    /// against an older one they are warnings (a lake refreshed after a
    /// gap drifts by more than a night).
    pub max_gap_days: u32,
}

impl Default for QualityConfig {
    fn default() -> Self {
        Self {
            max_quarantine_share: 0.05,
            min_persons_ratio: 0.9,
            max_persons_ratio: 1.5,
            max_null_rate_increase: 0.10,
            psi_warning: 0.1,
            max_psi: 1.0,
            max_gap_days: 3,
        }
    }
}

impl RefreshConfig {
    /// Checks the settings (called by [`Config::validate`]).
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &'static str, value: String, reason: &str| Error::ConfigValue {
            key,
            value,
            reason: reason.into(),
        };
        if self.lock_lease_seconds < 10 {
            return Err(bad(
                "refresh.lock_lease_seconds",
                self.lock_lease_seconds.to_string(),
                "must be at least 10",
            ));
        }
        let q = &self.quality;
        for (key, value) in [
            (
                "refresh.quality.max_quarantine_share",
                q.max_quarantine_share,
            ),
            (
                "refresh.quality.max_null_rate_increase",
                q.max_null_rate_increase,
            ),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(bad(key, value.to_string(), "must be a share in 0..=1"));
            }
        }
        if !(q.min_persons_ratio > 0.0 && q.min_persons_ratio <= 1.0 && q.max_persons_ratio >= 1.0)
        {
            return Err(bad(
                "refresh.quality.min_persons_ratio",
                format!("{}..{}", q.min_persons_ratio, q.max_persons_ratio),
                "needs 0 < min_persons_ratio <= 1 <= max_persons_ratio",
            ));
        }
        if !(q.psi_warning > 0.0 && q.max_psi >= q.psi_warning) {
            return Err(bad(
                "refresh.quality.max_psi",
                format!("warning {} / fail {}", q.psi_warning, q.max_psi),
                "needs 0 < psi_warning <= max_psi",
            ));
        }
        Ok(())
    }
}

/// `[retention]`: what the lake keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Silver and gold snapshots kept (the newest dates), besides the
    /// released one and any a running server holds. Training pairs each
    /// past offer with the snapshot before it was sent, and offers are
    /// labelled 30 days after sending: keep more than 30 +
    /// `[offers] max_feature_age_days` days of snapshots.
    pub keep_snapshots: usize,
    /// Model versions kept per kind (the newest), besides the current and
    /// the released ones.
    pub keep_models: usize,
    /// Run records kept (the newest).
    pub keep_runs: usize,
    /// A file no manifest names is deleted only once it is this old, so a
    /// stage still writing is never cut short.
    pub grace_minutes: u64,
    /// A running server's pin counts while renewed within this many seconds.
    pub pin_lease_seconds: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            keep_snapshots: 45,
            keep_models: 5,
            keep_runs: 100,
            grace_minutes: 60,
            pin_lease_seconds: 600,
        }
    }
}

impl RetentionConfig {
    /// Checks the settings (called by [`Config::validate`]).
    pub fn validate(&self) -> Result<()> {
        for (key, value) in [
            ("retention.keep_snapshots", self.keep_snapshots),
            ("retention.keep_models", self.keep_models),
            ("retention.keep_runs", self.keep_runs),
        ] {
            if value == 0 {
                return Err(Error::ConfigValue {
                    key,
                    value: "0".into(),
                    reason: "must be at least 1".into(),
                });
            }
        }
        if self.pin_lease_seconds == 0 {
            return Err(Error::ConfigValue {
                key: "retention.pin_lease_seconds",
                value: "0".into(),
                reason: "must be at least 1".into(),
            });
        }
        Ok(())
    }
}

/// The scopes an API key may hold.
pub const SCOPES: [&str; 4] = ["profiles", "features", "scores", "pii"];

/// `[server]`: the gRPC server of `cdp serve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// gRPC listen address (`cdp serve --addr` overrides it).
    pub addr: String,
    /// Prometheus metrics listen address (`GET /metrics`); empty: none.
    pub metrics_addr: String,
    /// Requests served at once; one more is refused with RESOURCE_EXHAUSTED.
    pub max_concurrent_requests: usize,
    /// Largest request message accepted, in bytes.
    pub max_request_bytes: usize,
    /// Deadline of a request that carries none, in milliseconds.
    pub default_timeout_ms: u64,
    /// How often the server looks for a newly published snapshot or model.
    pub reload_interval_ms: u64,
    /// PEM certificate chain; with `tls_key`, the server speaks TLS only.
    pub tls_cert: String,
    /// PEM private key of `tls_cert`.
    pub tls_key: String,
    /// The API keys: who may call, with which scopes.
    pub api_keys: Vec<ApiKeyConfig>,
}

/// One API key, bound to a team (`[[server.api_keys]]`). The key itself is
/// never stored, only its SHA-256 (`cdp apikey new` makes both).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// The team the key belongs to (shown in logs and metrics).
    pub team: String,
    /// SHA-256 hex of the key a caller sends as `authorization: Bearer KEY`.
    pub key_sha256: String,
    /// Any of `profiles`, `features`, `scores`, `pii`.
    pub scopes: Vec<String>,
    /// Feature services the key may read; empty: any feature or service.
    #[serde(default)]
    pub feature_services: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:50051".into(),
            metrics_addr: "127.0.0.1:9464".into(),
            max_concurrent_requests: 512,
            max_request_bytes: 1 << 20,
            default_timeout_ms: 5_000,
            reload_interval_ms: 2_000,
            tls_cert: String::new(),
            tls_key: String::new(),
            api_keys: Vec::new(),
        }
    }
}

impl ServerConfig {
    /// Checks the settings (called by [`Config::validate`]).
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &'static str, value: String, reason: &str| Error::ConfigValue {
            key,
            value,
            reason: reason.into(),
        };
        if self.addr.parse::<std::net::SocketAddr>().is_err() {
            return Err(bad(
                "server.addr",
                self.addr.clone(),
                "must be HOST:PORT, e.g. 127.0.0.1:50051",
            ));
        }
        if !self.metrics_addr.is_empty()
            && self.metrics_addr.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(bad(
                "server.metrics_addr",
                self.metrics_addr.clone(),
                "must be HOST:PORT or empty",
            ));
        }
        if !(1..=1_000_000).contains(&self.max_concurrent_requests) {
            return Err(bad(
                "server.max_concurrent_requests",
                self.max_concurrent_requests.to_string(),
                "must be 1 to 1000000",
            ));
        }
        if !(1024..=(64 << 20)).contains(&self.max_request_bytes) {
            return Err(bad(
                "server.max_request_bytes",
                self.max_request_bytes.to_string(),
                "must be 1 KiB to 64 MiB",
            ));
        }
        if self.default_timeout_ms == 0 {
            return Err(bad(
                "server.default_timeout_ms",
                "0".into(),
                "must be positive",
            ));
        }
        if self.reload_interval_ms < 10 {
            return Err(bad(
                "server.reload_interval_ms",
                self.reload_interval_ms.to_string(),
                "must be at least 10",
            ));
        }
        if self.tls_cert.is_empty() != self.tls_key.is_empty() {
            return Err(bad(
                "server.tls_cert",
                self.tls_cert.clone(),
                "tls_cert and tls_key go together",
            ));
        }
        for (i, key) in self.api_keys.iter().enumerate() {
            let name = format!("api_keys[{i}] (team {:?})", key.team);
            if key.team.trim().is_empty() {
                return Err(bad("server.api_keys", name, "team must not be empty"));
            }
            if key.key_sha256.len() != 64 || !key.key_sha256.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Err(bad(
                    "server.api_keys",
                    name,
                    "key_sha256 must be 64 hex digits (`cdp apikey new` makes one)",
                ));
            }
            if key.scopes.is_empty() {
                return Err(bad(
                    "server.api_keys",
                    name,
                    "scopes must name at least one of profiles, features, scores, pii",
                ));
            }
            if let Some(scope) = key.scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
                return Err(bad(
                    "server.api_keys",
                    format!("{name}: {scope}"),
                    "unknown scope; expected profiles, features, scores or pii",
                ));
            }
        }
        Ok(())
    }
}

/// `[online]`: where online features live and how they are written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OnlineConfig {
    /// `embedded` (snapshots in the lake, memory-mapped by the reader; no
    /// server) or a Redis URL, `redis://[:password@]host:port/db`;
    /// `cdp materialize --online` overrides it.
    pub backend: String,
    /// Entities per pipelined Redis batch.
    pub batch_size: usize,
    /// Redis batches in flight at once while materializing.
    pub pipelines: usize,
    /// Prefix of every Redis key (`<prefix>:e:<unified_id>`, `<prefix>:meta`).
    pub key_prefix: String,
    /// A Redis key expires this many days after its longest feature TTL,
    /// counted from the last materialization that confirmed it.
    pub key_grace_days: u32,
    /// Redis connect and response timeout for lookups, in milliseconds.
    pub redis_timeout_ms: u64,
    /// Embedded snapshots kept in the lake, the current one included.
    pub keep_snapshots: usize,
}

impl Default for OnlineConfig {
    fn default() -> Self {
        Self {
            backend: "embedded".into(),
            batch_size: 1000,
            pipelines: 4,
            key_prefix: "cdp".into(),
            key_grace_days: 1,
            redis_timeout_ms: 1000,
            keep_snapshots: 3,
        }
    }
}

impl OnlineConfig {
    /// Checks the settings (called by [`Config::validate`]).
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &'static str, value: String, reason: &str| Error::ConfigValue {
            key,
            value,
            reason: reason.into(),
        };
        let backend = self.backend.trim();
        if !(backend == "embedded"
            || backend.starts_with("redis://")
            || backend.starts_with("rediss://"))
        {
            return Err(bad(
                "online.backend",
                without_credentials(backend),
                "must be `embedded` or a redis://host:port/db URL",
            ));
        }
        if !(1..=100_000).contains(&self.batch_size) {
            return Err(bad(
                "online.batch_size",
                self.batch_size.to_string(),
                "must be in 1..=100000",
            ));
        }
        if !(1..=64).contains(&self.pipelines) {
            return Err(bad(
                "online.pipelines",
                self.pipelines.to_string(),
                "must be in 1..=64",
            ));
        }
        if self.key_prefix.is_empty()
            || !self
                .key_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c))
        {
            return Err(bad(
                "online.key_prefix",
                self.key_prefix.clone(),
                "must be letters, digits, `_`, `-`, `.` or `:`",
            ));
        }
        if self.redis_timeout_ms == 0 {
            return Err(bad(
                "online.redis_timeout_ms",
                "0".into(),
                "must be at least 1",
            ));
        }
        if self.keep_snapshots == 0 {
            return Err(bad(
                "online.keep_snapshots",
                "0".into(),
                "must be at least 1 (the current snapshot)",
            ));
        }
        Ok(())
    }
}

/// `[offers]`: how `cdp train` builds its training set and fits the
/// offer-propensity model, and how `cdp score` explains scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OffersConfig {
    /// The learner `cdp train` uses without `--algo`: `gbdt`,
    /// `random-forest` or `logistic`.
    pub algo: String,
    /// Learner parameters by XGBoost's names (`eta`, `max_depth`,
    /// `num_round`, `early_stopping_rounds`, …), as text; `--param`
    /// overrides them one by one. Numbers and booleans are taken as text.
    #[serde(deserialize_with = "params_as_text")]
    pub params: BTreeMap<String, String>,
    /// An offer is paired with the feature snapshot of the latest built
    /// day at or before the day before it was sent, no older than this
    /// many days; offers without one are left out (and counted).
    pub max_feature_age_days: u32,
    /// Share of the labelled offers, the newest, held out as the test set.
    pub test_share: f64,
    /// Share of the labelled offers, the newest before the test set, used
    /// for early stopping.
    pub valid_share: f64,
    /// Fewest labelled offers (with features) `cdp train` fits on.
    pub min_rows: usize,
    /// Reasons (largest positive contributions) kept with each score.
    pub top_reasons: usize,
}

impl Default for OffersConfig {
    fn default() -> Self {
        Self {
            algo: "gbdt".into(),
            params: [
                ("num_round", "200"),
                ("max_depth", "6"),
                ("eta", "0.1"),
                ("early_stopping_rounds", "20"),
                ("seed", "42"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            max_feature_age_days: 7,
            test_share: 0.15,
            valid_share: 0.15,
            min_rows: 200,
            top_reasons: 3,
        }
    }
}

/// A table of parameters whose values may be strings, numbers or booleans.
fn params_as_text<'de, D>(
    deserializer: D,
) -> std::result::Result<BTreeMap<String, String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Int(i64),
        Float(f64),
        Bool(bool),
    }
    let map = BTreeMap::<String, Scalar>::deserialize(deserializer)?;
    Ok(map
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                Scalar::Text(s) => s,
                Scalar::Int(i) => i.to_string(),
                Scalar::Float(f) => f.to_string(),
                Scalar::Bool(b) => b.to_string(),
            };
            (k, text)
        })
        .collect())
}

impl OffersConfig {
    /// Checks the settings (called by [`Config::validate`]).
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &'static str, value: String, reason: &str| Error::ConfigValue {
            key,
            value,
            reason: reason.into(),
        };
        if !["gbdt", "random-forest", "logistic"].contains(&self.algo.as_str()) {
            return Err(bad(
                "offers.algo",
                self.algo.clone(),
                "must be gbdt, random-forest or logistic",
            ));
        }
        for (key, share) in [
            ("offers.test_share", self.test_share),
            ("offers.valid_share", self.valid_share),
        ] {
            if !(share > 0.0 && share < 0.5) {
                return Err(bad(key, share.to_string(), "must be in (0, 0.5)"));
            }
        }
        if self.min_rows < 10 {
            return Err(bad(
                "offers.min_rows",
                self.min_rows.to_string(),
                "must be at least 10",
            ));
        }
        Ok(())
    }
}

/// The numeric features of `silver.features` the tagger reads by default:
/// recency, frequency and monetary value, spend by category, channel and
/// foreign mix, digital activity, age, income, holdings and social reach.
pub const DEFAULT_TAGGER_FEATURES: [&str; 31] = [
    "txn_count_30d",
    "txn_count_90d",
    "spend_90d",
    "avg_ticket_90d",
    "max_ticket_90d",
    "days_since_last_txn",
    "active_days_30d",
    "distinct_merchants_90d",
    "grocery_share_90d",
    "dining_share_90d",
    "travel_share_90d",
    "retail_share_90d",
    "digital_share_90d",
    "transport_share_90d",
    "entertainment_share_90d",
    "pos_share_90d",
    "online_share_90d",
    "foreign_share_90d",
    "foreign_spend_90d",
    "foreign_currency_share_90d",
    "atm_count_90d",
    "transfer_count_90d",
    "distinct_devices_90d",
    "logins_30d",
    "payment_auths_30d",
    "digital_active_days_30d",
    "days_since_last_login",
    "age_years",
    "income_band",
    "product_count",
    "social_followers",
];

/// `[tagger]`: how `cdp tag` standardises features, reduces them with PCA
/// and segments customers with k-means. A fitted tagger keeps the settings
/// it was fitted with; these apply to the next fit (`cdp tag --refit`, or
/// the first run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaggerConfig {
    /// Numeric features of `silver.features` (integer, decimal, float or
    /// boolean) the tagger reads.
    pub features: Vec<String>,
    /// Features (glob patterns) whose missing value means "never", such as
    /// `days_since_*` recency: filled with the fit-time maximum. Every other
    /// missing value is filled with the fit-time median.
    pub fill_with_max: Vec<String>,
    /// Share of the total variance the kept principal components explain,
    /// in (0, 1]: the fewest components whose cumulative share exceeds it.
    pub variance_target: f64,
    /// At most this many principal components.
    pub max_components: usize,
    /// Number of segments: `"auto"` (the best silhouette on a sample among
    /// `min_segments..=max_segments`) or a fixed number.
    pub segments: Segments,
    /// Fewest segments `"auto"` considers.
    pub min_segments: usize,
    /// Most segments `"auto"` considers.
    pub max_segments: usize,
    /// Customers sampled to score silhouettes.
    pub silhouette_sample: usize,
    /// Seed of every random choice (samples, k-means++): same data, same seed,
    /// same tagger.
    pub seed: u64,
    /// Population stability index above which drift is reported as a warning.
    pub psi_warning: f64,
    /// A customer carries a theme's tag ("traveller", "digital-first") when
    /// their PCA profile stands this many standard deviations out on it.
    pub tag_threshold: f64,
}

impl Default for TaggerConfig {
    fn default() -> Self {
        Self {
            features: DEFAULT_TAGGER_FEATURES.map(String::from).to_vec(),
            fill_with_max: vec!["days_since_*".into()],
            variance_target: 0.85,
            max_components: 10,
            segments: Segments::Auto,
            min_segments: 4,
            max_segments: 10,
            silhouette_sample: 3000,
            seed: 42,
            psi_warning: 0.2,
            tag_threshold: 1.0,
        }
    }
}

impl TaggerConfig {
    /// Checks the settings (called by [`Config::validate`]).
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &'static str, value: String, reason: &str| Error::ConfigValue {
            key,
            value,
            reason: reason.into(),
        };
        let mut seen = std::collections::BTreeSet::new();
        if let Some(dup) = self.features.iter().find(|f| !seen.insert(f.as_str())) {
            return Err(bad("tagger.features", dup.clone(), "is listed twice"));
        }
        if self.features.len() < 2 || self.features.iter().any(|f| f.trim().is_empty()) {
            return Err(bad(
                "tagger.features",
                format!("{:?}", self.features),
                "must name at least two features of silver.features",
            ));
        }
        for pattern in &self.fill_with_max {
            globset::Glob::new(pattern)
                .map_err(|e| bad("tagger.fill_with_max", pattern.clone(), &e.to_string()))?;
        }
        if !(self.variance_target > 0.0 && self.variance_target <= 1.0) {
            return Err(bad(
                "tagger.variance_target",
                self.variance_target.to_string(),
                "must be in (0, 1]",
            ));
        }
        if self.max_components == 0 {
            return Err(bad(
                "tagger.max_components",
                "0".into(),
                "must be at least 1",
            ));
        }
        if let Segments::Fixed(k) = self.segments
            && k < 2
        {
            return Err(bad(
                "tagger.segments",
                k.to_string(),
                "must be \"auto\" or at least 2",
            ));
        }
        if self.min_segments < 2 || self.min_segments > self.max_segments {
            return Err(bad(
                "tagger.min_segments",
                format!("{}..={}", self.min_segments, self.max_segments),
                "must satisfy 2 <= min_segments <= max_segments",
            ));
        }
        if self.silhouette_sample < 100 {
            return Err(bad(
                "tagger.silhouette_sample",
                self.silhouette_sample.to_string(),
                "must be at least 100",
            ));
        }
        if !(self.psi_warning > 0.0 && self.psi_warning.is_finite()) {
            return Err(bad(
                "tagger.psi_warning",
                self.psi_warning.to_string(),
                "must be a positive number",
            ));
        }
        if !(self.tag_threshold > 0.0 && self.tag_threshold.is_finite()) {
            return Err(bad(
                "tagger.tag_threshold",
                self.tag_threshold.to_string(),
                "must be a positive number",
            ));
        }
        Ok(())
    }
}

/// `uri` with the user and password of its authority hidden, for messages.
fn without_credentials(uri: &str) -> String {
    match (uri.find("://"), uri.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &uri[..scheme], &uri[at..])
        }
        _ => uri.to_string(),
    }
}

/// How many segments the tagger makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segments {
    /// Chosen by silhouette on a sample.
    Auto,
    /// Exactly this many.
    Fixed(usize),
}

impl Serialize for Segments {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Segments::Auto => s.serialize_str("auto"),
            Segments::Fixed(k) => s.serialize_u64(*k as u64),
        }
    }
}

impl<'de> Deserialize<'de> for Segments {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(k) => Ok(Segments::Fixed(k as usize)),
            Raw::Text(t) if t.trim().eq_ignore_ascii_case("auto") => Ok(Segments::Auto),
            Raw::Text(t) => t.trim().parse::<usize>().map(Segments::Fixed).map_err(|_| {
                serde::de::Error::custom(format!(
                    "segments must be \"auto\" or a number, not {t:?}"
                ))
            }),
        }
    }
}

/// `[engine]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Memory the engine may hold before it spills to disk: `auto` (half of
    /// this machine's memory, at most 8 GiB) or a size such as `4GiB`, `512MiB`.
    pub memory_limit: String,
    /// Parallel partitions per query; 0 means one per CPU core.
    pub target_partitions: usize,
    /// Where spill files go; empty means the system temporary folder.
    pub spill_dir: String,
    /// Where `cdp build`, `cdp historical` and `cdp offers` run their query
    /// plans: empty (or `local`) in this process, or `ballista://host:port`
    /// on that Apache DataFusion Ballista scheduler and its executors
    /// (`cdp cluster scheduler`, `cdp cluster executor`). `--engine` overrides it.
    pub cluster: String,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            memory_limit: "auto".into(),
            target_partitions: 0,
            spill_dir: String::new(),
            cluster: String::new(),
        }
    }
}

impl EngineConfig {
    /// The Ballista scheduler to run plans on (`host:port`), or `None` to
    /// run them in this process.
    pub fn scheduler(&self) -> Result<Option<String>> {
        parse_engine(&self.cluster)
    }

    /// The memory limit in bytes (`auto` resolved against `total_memory`).
    pub fn memory_limit_bytes(&self, total_memory: Option<u64>) -> Result<u64> {
        let text = self.memory_limit.trim();
        if text.eq_ignore_ascii_case("auto") {
            let half = total_memory.unwrap_or(8 << 30) / 2;
            return Ok(half.clamp(256 << 20, 8 << 30));
        }
        parse_size(text).ok_or_else(|| Error::ConfigValue {
            key: "engine.memory_limit",
            value: self.memory_limit.clone(),
            reason: "must be `auto` or a size such as `4GiB`, `512MiB`, `2000000000`".into(),
        })
    }
}

/// Parses an engine choice: empty or `local` (in process), or
/// `ballista://host:port` (a Ballista scheduler; the port defaults to 50050).
pub fn parse_engine(text: &str) -> Result<Option<String>> {
    let text = text.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("local") {
        return Ok(None);
    }
    let bad = |reason: &str| Error::ConfigValue {
        key: "engine.cluster",
        value: text.to_string(),
        reason: reason.into(),
    };
    let rest = text
        .strip_prefix("ballista://")
        .ok_or_else(|| bad("must be `local` or `ballista://host:port`"))?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse::<u16>()
                .map_err(|_| bad("the port must be a number in 1..=65535"))?,
        ),
        None => (rest, 50050),
    };
    if host.is_empty() || host.contains('/') || port == 0 {
        return Err(bad("must be `ballista://host:port`"));
    }
    Ok(Some(format!("{host}:{port}")))
}

/// Parses `4GiB`, `512MiB`, `64KiB`, `1GB`, or plain bytes.
fn parse_size(text: &str) -> Option<u64> {
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    let bytes = number * scale as f64;
    (bytes >= 1.0).then_some(bytes as u64)
}

/// `[lake]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LakeConfig {
    /// A local folder or an object-store URL (`file:///…`, `s3://bucket/prefix`).
    pub uri: String,
    /// `[lake.s3]`: how to reach an `s3://` lake.
    pub s3: S3Config,
}

impl Default for LakeConfig {
    fn default() -> Self {
        Self {
            uri: "./lake".into(),
            s3: S3Config::default(),
        }
    }
}

/// `[lake.s3]`: an `s3://bucket/prefix` lake on AWS S3 or any S3-compatible
/// store (MinIO, Ceph, R2, s3s-fs). Values left empty after `cdp.toml` and
/// `CDP__LAKE__S3__*` come from the standard AWS environment variables
/// (`AWS_ENDPOINT_URL`, `AWS_REGION` or `AWS_DEFAULT_REGION`,
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
/// `AWS_ALLOW_HTTP`); without keys, the instance or web-identity
/// credentials of the machine are used. The store must support conditional
/// writes (`If-None-Match: *`): a manifest version is committed by a
/// create-only put, never by a rename.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// Endpoint of an S3-compatible store, e.g. `http://127.0.0.1:9000`;
    /// empty: AWS.
    pub endpoint: String,
    /// Region; empty: `us-east-1`.
    pub region: String,
    /// Access key id; empty: the machine's credentials.
    pub access_key_id: String,
    /// Secret access key (prefer the environment to the file).
    pub secret_access_key: String,
    /// Session token of temporary credentials.
    pub session_token: String,
    /// Allow a plain `http://` endpoint (a store on loopback).
    pub allow_http: bool,
}

impl std::fmt::Debug for S3Config {
    /// Credentials never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &str| if v.is_empty() { "" } else { "***" };
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &hidden(&self.access_key_id))
            .field("secret_access_key", &hidden(&self.secret_access_key))
            .field("session_token", &hidden(&self.session_token))
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

impl S3Config {
    /// Fills the values still empty from the standard AWS variables among `env`.
    fn fill_from_aws_env(&mut self, env: &[(String, String)]) {
        let var = |name: &str| {
            env.iter()
                .find(|(k, v)| k == name && !v.is_empty())
                .map(|(_, v)| v.clone())
        };
        let fill = |slot: &mut String, names: &[&str]| {
            if slot.is_empty()
                && let Some(value) = names.iter().find_map(|n| var(n))
            {
                *slot = value;
            }
        };
        fill(
            &mut self.endpoint,
            &["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"],
        );
        fill(&mut self.region, &["AWS_REGION", "AWS_DEFAULT_REGION"]);
        fill(&mut self.access_key_id, &["AWS_ACCESS_KEY_ID"]);
        fill(&mut self.secret_access_key, &["AWS_SECRET_ACCESS_KEY"]);
        fill(&mut self.session_token, &["AWS_SESSION_TOKEN"]);
        if !self.allow_http
            && var("AWS_ALLOW_HTTP").is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
        {
            self.allow_http = true;
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |key: &'static str, value: String, reason: &str| Error::ConfigValue {
            key,
            value,
            reason: reason.into(),
        };
        if !self.endpoint.is_empty() {
            let url = url::Url::parse(&self.endpoint).map_err(|e| {
                bad(
                    "lake.s3.endpoint",
                    self.endpoint.clone(),
                    &format!("not a URL: {e}"),
                )
            })?;
            if url.scheme() == "http" && !self.allow_http {
                return Err(bad(
                    "lake.s3.endpoint",
                    self.endpoint.clone(),
                    "plain http needs lake.s3.allow_http = true",
                ));
            }
        }
        if self.access_key_id.is_empty() != self.secret_access_key.is_empty() {
            return Err(bad(
                "lake.s3.access_key_id",
                String::new(),
                "set both access_key_id and secret_access_key, or neither",
            ));
        }
        Ok(())
    }
}

/// `[time]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeConfig {
    /// IANA time zone of the bank's business day.
    pub timezone: String,
}

impl Default for TimeConfig {
    fn default() -> Self {
        Self {
            timezone: DEFAULT_TIMEZONE.into(),
        }
    }
}

impl TimeConfig {
    /// The business calendar for this time zone (validated at load).
    pub fn calendar(&self) -> Result<BusinessCalendar> {
        BusinessCalendar::new(&self.timezone)
    }
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `cdp_ingest=debug,info`.
    pub level: String,
    /// `text` for people, `json` for log collectors.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "warn".into(),
            format: LogFormat::Text,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Config {
    /// Loads defaults, then `file` (or `./cdp.toml` when `file` is `None`
    /// and it exists), then the `CDP__SECTION__KEY` variables among `env`,
    /// and validates the result.
    pub fn load<I>(file: Option<&Path>, env: I) -> Result<Config>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut merged = match Value::try_from(Config::default()) {
            Ok(Value::Table(t)) => t,
            _ => Table::new(),
        };
        let default_file = PathBuf::from(DEFAULT_FILE);
        let file = match file {
            Some(path) => Some(path),
            None => default_file.exists().then_some(default_file.as_path()),
        };
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
                path: path.into(),
                source,
            })?;
            let table: Table = toml::from_str(&text).map_err(|source| Error::ConfigParse {
                path: path.into(),
                source: Box::new(source),
            })?;
            merge(&mut merged, table);
        }
        type Vars = Vec<(String, String)>;
        let (mut vars, aws): (Vars, Vars) = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX) || k.starts_with("AWS_"))
            .partition(|(k, _)| k.starts_with(ENV_PREFIX));
        vars.sort();
        for (var, value) in vars {
            apply_env(&mut merged, &var, &value)?;
        }
        let mut config: Config =
            Value::Table(merged)
                .try_into()
                .map_err(|source| Error::ConfigShape {
                    source: Box::new(source),
                })?;
        config.lake.s3.fill_from_aws_env(&aws);
        config.validate()?;
        Ok(config)
    }

    /// Checks values that deserialize but make no sense.
    pub fn validate(&self) -> Result<()> {
        if self.lake.uri.trim().is_empty() {
            return Err(Error::ConfigValue {
                key: "lake.uri",
                value: self.lake.uri.clone(),
                reason: "must name a folder or an object-store URL".into(),
            });
        }
        if self.lake.uri.starts_with("s3://") {
            // only then: stray AWS variables must not stop a local lake
            self.lake.s3.validate()?;
        }
        BusinessCalendar::new(&self.time.timezone).map_err(|e| Error::ConfigValue {
            key: "time.timezone",
            value: self.time.timezone.clone(),
            reason: e.to_string(),
        })?;
        self.engine.memory_limit_bytes(None)?;
        self.engine.scheduler()?;
        self.tagger.validate()?;
        self.offers.validate()?;
        self.online.validate()?;
        self.server.validate()?;
        self.refresh.validate()?;
        self.retention.validate()?;
        if self.log.level.trim().is_empty() {
            return Err(Error::ConfigValue {
                key: "log.level",
                value: self.log.level.clone(),
                reason: "must be a tracing filter such as `info`".into(),
            });
        }
        Ok(())
    }
}

/// Deep-merges `over` into `base`: tables merge, anything else replaces.
fn merge(base: &mut Table, over: Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Sets `CDP__SECTION__KEY=value` into the table. The value is read as a
/// TOML literal when it is one (`true`, `42`, `1.5`, `["a"]`), else as text.
fn apply_env(table: &mut Table, var: &str, raw: &str) -> Result<()> {
    let path: Vec<String> = var[ENV_PREFIX.len()..]
        .split("__")
        .map(str::to_lowercase)
        .collect();
    if path.iter().any(String::is_empty) {
        return Err(Error::ConfigEnv {
            var: var.into(),
            reason: "expected CDP__SECTION__KEY with non-empty parts",
        });
    }
    let value = toml::from_str::<Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.into()));
    let (last, sections) = path.split_last().expect("at least one part");
    let mut node = table;
    for section in sections {
        let entry = node
            .entry(section.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        node = match entry {
            Value::Table(t) => t,
            _ => {
                return Err(Error::ConfigEnv {
                    var: var.into(),
                    reason: "a section in its name is a plain setting",
                });
            }
        };
    }
    node.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagger_segments_are_auto_or_a_number() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.tagger.segments, Segments::Auto);
        assert_eq!(c.tagger.features.len(), DEFAULT_TAGGER_FEATURES.len());
        let c = Config::load(
            None,
            env(&[
                ("CDP__TAGGER__SEGMENTS", "7"),
                ("CDP__TAGGER__FEATURES", r#"["spend_90d", "age_years"]"#),
            ]),
        )
        .unwrap();
        assert_eq!(c.tagger.segments, Segments::Fixed(7));
        assert_eq!(c.tagger.features, ["spend_90d", "age_years"]);
        let err = Config::load(None, env(&[("CDP__TAGGER__SEGMENTS", "1")])).unwrap_err();
        assert!(err.to_string().contains("tagger.segments"), "{err}");
        let err =
            Config::load(None, env(&[("CDP__TAGGER__FEATURES", r#"["a", "a"]"#)])).unwrap_err();
        assert!(err.to_string().contains("listed twice"), "{err}");
    }

    #[test]
    fn offer_params_take_numbers_as_text_and_bad_shares_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cdp.toml");
        std::fs::write(
            &file,
            "[offers]\nparams = { eta = 0.05, max_depth = 4, objective = \"binary:logistic\" }\n",
        )
        .unwrap();
        let c = Config::load(Some(&file), env(&[])).unwrap();
        assert_eq!(c.offers.params["eta"], "0.05");
        assert_eq!(c.offers.params["max_depth"], "4");
        assert_eq!(c.offers.params["objective"], "binary:logistic");
        let err = Config::load(None, env(&[("CDP__OFFERS__TEST_SHARE", "0.7")])).unwrap_err();
        assert!(err.to_string().contains("offers.test_share"), "{err}");
        let err = Config::load(None, env(&[("CDP__OFFERS__ALGO", "svm")])).unwrap_err();
        assert!(err.to_string().contains("offers.algo"), "{err}");
    }

    #[test]
    fn server_keys_come_from_the_environment_and_are_validated() {
        let hash = "ab".repeat(32);
        let keys = format!(
            "[{{team = \"app\", key_sha256 = \"{hash}\", scopes = [\"profiles\", \"pii\"]}}]"
        );
        let c = Config::load(None, env(&[("CDP__SERVER__API_KEYS", &keys)])).unwrap();
        assert_eq!(c.server.api_keys.len(), 1);
        assert_eq!(c.server.api_keys[0].scopes, ["profiles", "pii"]);
        assert!(c.server.api_keys[0].feature_services.is_empty());
        for (var, value, wanted) in [
            ("CDP__SERVER__ADDR", "nowhere", "server.addr"),
            ("CDP__SERVER__METRICS_ADDR", "x:y", "server.metrics_addr"),
            (
                "CDP__SERVER__MAX_CONCURRENT_REQUESTS",
                "0",
                "max_concurrent_requests",
            ),
            ("CDP__SERVER__TLS_CERT", "cert.pem", "tls_key go together"),
            (
                "CDP__SERVER__API_KEYS",
                "[{team = \"app\", key_sha256 = \"secret\", scopes = [\"profiles\"]}]",
                "64 hex digits",
            ),
            (
                "CDP__SERVER__API_KEYS",
                &keys.replace("pii", "admin"),
                "unknown scope",
            ),
        ] {
            let e = Config::load(None, env(&[(var, value)]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(wanted), "{var}={value}: {e}");
            assert!(!e.contains("secret"), "a key is never repeated: {e}");
        }
    }

    #[test]
    fn online_backend_is_embedded_or_redis_and_passwords_stay_hidden() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.online.backend, "embedded");
        let c = Config::load(
            None,
            env(&[
                ("CDP__ONLINE__BACKEND", "redis://cache:6379/1"),
                ("CDP__ONLINE__BATCH_SIZE", "500"),
            ]),
        )
        .unwrap();
        assert_eq!(c.online.backend, "redis://cache:6379/1");
        assert_eq!(c.online.batch_size, 500);
        let err = Config::load(
            None,
            env(&[("CDP__ONLINE__BACKEND", "memcache://:s3cret@x")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("online.backend") && !err.contains("s3cret"),
            "{err}"
        );
        let err = Config::load(None, env(&[("CDP__ONLINE__KEY_PREFIX", "a b")])).unwrap_err();
        assert!(err.to_string().contains("online.key_prefix"), "{err}");
    }

    #[test]
    fn s3_settings_come_from_cdp_variables_then_the_standard_aws_ones() {
        let c = Config::load(
            None,
            env(&[
                ("CDP__LAKE__URI", "s3://lake/prod"),
                ("CDP__LAKE__S3__REGION", "cn-north-1"),
                ("AWS_REGION", "us-west-2"),
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
                ("AWS_ALLOW_HTTP", "true"),
                ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
                ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI"),
            ]),
        )
        .unwrap();
        let s3 = &c.lake.s3;
        assert_eq!(s3.region, "cn-north-1", "cdp's own setting wins");
        assert_eq!(s3.endpoint, "http://127.0.0.1:9000");
        assert!(s3.allow_http);
        assert_eq!(s3.access_key_id, "AKIDEXAMPLE");
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("wJalrXUtnFEMI") && !shown.contains("AKIDEXAMPLE"),
            "{shown}"
        );

        let s3 = ("CDP__LAKE__URI", "s3://lake/prod");
        let err = Config::load(
            None,
            env(&[s3, ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("allow_http"), "{err}");
        let half = ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE");
        let err = Config::load(None, env(&[s3, half])).unwrap_err();
        assert!(err.to_string().contains("secret_access_key"), "{err}");
        Config::load(None, env(&[half])).expect("a local lake ignores the AWS settings");
    }

    #[test]
    fn memory_limits_parse_and_auto_resolves_to_half_capped() {
        let mut engine = EngineConfig::default();
        assert_eq!(engine.memory_limit_bytes(Some(24 << 30)).unwrap(), 8 << 30);
        assert_eq!(engine.memory_limit_bytes(Some(4 << 30)).unwrap(), 2 << 30);
        engine.memory_limit = "512MiB".into();
        assert_eq!(engine.memory_limit_bytes(None).unwrap(), 512 << 20);
        engine.memory_limit = "1.5GiB".into();
        assert_eq!(engine.memory_limit_bytes(None).unwrap(), 3 << 29);
        assert_eq!(parse_engine("").unwrap(), None);
        assert_eq!(parse_engine("local").unwrap(), None);
        assert_eq!(
            parse_engine("ballista://10.0.0.5:50050")
                .unwrap()
                .as_deref(),
            Some("10.0.0.5:50050")
        );
        assert_eq!(
            parse_engine("ballista://scheduler").unwrap().as_deref(),
            Some("scheduler:50050")
        );
        for bad in [
            "spark://x:1",
            "ballista://:1",
            "ballista://h:port",
            "ballista://h:0",
        ] {
            let err = parse_engine(bad).unwrap_err().to_string();
            assert!(err.contains("engine.cluster"), "{bad}: {err}");
        }
        engine.memory_limit = "lots".into();
        let err = engine.memory_limit_bytes(None).unwrap_err().to_string();
        assert!(err.contains("engine.memory_limit"), "{err}");
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_then_file_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cdp.toml");
        std::fs::write(
            &file,
            "[lake]\nuri = \"/from/file\"\n[log]\nlevel = \"debug\"\n",
        )
        .unwrap();

        let c = Config::load(Some(&file), env(&[])).unwrap();
        assert_eq!(c.lake.uri, "/from/file");
        assert_eq!(c.log.level, "debug");
        assert_eq!(c.time.timezone, "Asia/Shanghai");

        let c = Config::load(
            Some(&file),
            env(&[
                ("CDP__LAKE__URI", "s3://bank/lake"),
                ("CDP__LOG__FORMAT", "json"),
                ("OTHER", "ignored"),
            ]),
        )
        .unwrap();
        assert_eq!(c.lake.uri, "s3://bank/lake");
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.log.level, "debug");
    }

    #[test]
    fn mistakes_are_named() {
        let err = Config::load(None, env(&[("CDP__LAKE__URL", "x")])).unwrap_err();
        assert!(err.to_string().contains("unknown field `url`"), "{err}");

        let err = Config::load(None, env(&[("CDP__TIME__TIMEZONE", "Mars/Base")])).unwrap_err();
        assert!(err.to_string().contains("time.timezone"), "{err}");

        let err = Config::load(None, env(&[("CDP__LAKE__URI__X", "1")])).unwrap_err();
        assert!(err.to_string().contains("CDP__LAKE__URI__X"), "{err}");

        let err = Config::load(None, env(&[("CDP__LAKE__URI", "42")])).unwrap_err();
        assert!(err.to_string().contains("invalid type"), "{err}");

        let missing = Path::new("/definitely/not/here/cdp.toml");
        let err = Config::load(Some(missing), env(&[])).unwrap_err();
        assert!(err.to_string().contains("/definitely/not/here"), "{err}");

        let err = Config::load(None, env(&[("CDP__TAGGER__VARIANCE_TARGET", "1.5")])).unwrap_err();
        assert!(err.to_string().contains("tagger.variance_target"), "{err}");

        let err = Config::load(None, env(&[("CDP__TAGGER__SEGMENTS", "many")])).unwrap_err();
        assert!(err.to_string().contains("auto"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "[lake\n").unwrap();
        let err = Config::load(Some(&file), env(&[])).unwrap_err();
        assert!(err.to_string().contains("bad.toml"), "{err}");
    }
}
