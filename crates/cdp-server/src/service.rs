//! The tonic services of `cdp.v1`. Every call passes one gate,
//! [`Gate::call`]: a request id, authentication, the method's scope, the
//! concurrency limit, the served snapshot, then the handler; the outcome is
//! counted and timed per method and team, and errors become status codes in
//! [`crate::error`]. Logs name the method, team, code and latency, never a
//! customer.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use cdp_store::online::{self, Lookup, OnlineStore, Status as ValueStatus, Value};
use cdp_store::services::FeatureServices;
use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;
use tonic::{Request, Response, Status};
use tracing::{Instrument, debug, info_span};

use crate::auth::{ApiKeys, Caller, Scope};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::pb;
use crate::scoring::Scored;
use crate::state::Serving;

/// Most keys in one `BatchGetProfiles`.
pub const MAX_PROFILES: usize = 1_000;
/// Most customers in one `BatchScoreOffers`.
pub const MAX_SCORED_CUSTOMERS: usize = 100;

/// What every service shares.
#[derive(Debug, Clone)]
pub struct Gate {
    inner: Arc<GateInner>,
}

#[derive(Debug)]
struct GateInner {
    keys: ApiKeys,
    current: Arc<ArcSwapOption<Serving>>,
    online: Arc<dyn OnlineStore>,
    services: FeatureServices,
    limiter: Arc<Semaphore>,
    limit: usize,
    metrics: Arc<Metrics>,
    top_reasons: usize,
}

/// One admitted call: who calls, and what is served.
struct Call {
    caller: Arc<Caller>,
    serving: Arc<Serving>,
}

impl Gate {
    /// The gate of a server.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        keys: ApiKeys,
        current: Arc<ArcSwapOption<Serving>>,
        online: Arc<dyn OnlineStore>,
        services: FeatureServices,
        limit: usize,
        metrics: Arc<Metrics>,
        top_reasons: usize,
    ) -> Self {
        Gate {
            inner: Arc::new(GateInner {
                keys,
                current,
                online,
                services,
                limiter: Arc::new(Semaphore::new(limit)),
                limit,
                metrics,
                top_reasons,
            }),
        }
    }

    /// Admits `request` to `method` (which needs `scope`) and runs `handler`.
    async fn call<M, R, F, Fut>(
        &self,
        method: &'static str,
        scope: Scope,
        request: Request<M>,
        handler: F,
    ) -> Result<Response<R>, Status>
    where
        F: FnOnce(Call, M) -> Fut,
        Fut: Future<Output = Result<R>>,
    {
        let g = &self.inner;
        let request_id = request
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= 64)
            .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_string);
        let authorization = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let caller = match g.keys.authenticate(authorization) {
            Ok(c) => c,
            Err(e) => {
                g.metrics.refused(method, e.code());
                return Err(e.into());
            }
        };
        let Ok(_permit) = g.limiter.clone().try_acquire_owned() else {
            g.metrics.refused(method, tonic::Code::ResourceExhausted);
            return Err(Error::Overloaded { limit: g.limit }.into());
        };
        let deadline = Deadline::of(request.metadata());
        let span = info_span!("rpc", method, team = %caller.team, request_id = %request_id);
        let started = Instant::now();
        g.metrics.started();
        let outcome = async {
            caller.require(scope)?;
            let serving = g.current.load_full().ok_or_else(|| Error::NotReady {
                reason: "no snapshot is served yet; run `cdp build` and `cdp materialize`".into(),
            })?;
            let call = Call {
                caller: caller.clone(),
                serving,
            };
            let answer = handler(call, request.into_inner()).await?;
            // an answer after the caller gave up is not an answer
            deadline.check()?;
            Ok(answer)
        }
        .instrument(span.clone())
        .await;
        let code = outcome.as_ref().err().map_or(tonic::Code::Ok, Error::code);
        g.metrics
            .finished(method, &caller.team, code, started.elapsed());
        span.in_scope(
            || debug!(code = ?code, micros = started.elapsed().as_micros() as u64, "done"),
        );
        let mut response = Response::new(outcome.map_err(Status::from)?);
        if let Ok(v) = request_id.parse() {
            response.metadata_mut().insert("x-request-id", v);
        }
        Ok(response)
    }

    fn online(&self) -> &dyn OnlineStore {
        self.inner.online.as_ref()
    }
}

/// The caller's deadline, from the `grpc-timeout` header.
#[derive(Debug, Clone, Copy)]
struct Deadline {
    at: Option<(Instant, Duration)>,
}

impl Deadline {
    /// The deadline a request's metadata sets (none: the server's default,
    /// which tonic enforces).
    fn of(metadata: &tonic::metadata::MetadataMap) -> Self {
        let budget = metadata
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout);
        Deadline {
            at: budget.map(|b| (Instant::now() + b, b)),
        }
    }

    /// DEADLINE_EXCEEDED once it has passed.
    fn check(&self) -> Result<()> {
        match self.at {
            Some((at, budget)) if Instant::now() > at => Err(Error::DeadlineExceeded {
                budget_micros: budget.as_micros(),
            }),
            _ => Ok(()),
        }
    }
}

/// A `grpc-timeout` value: up to 8 digits and a unit (H, M, S, m, u, n).
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The snapshot reference of what was served.
fn snapshot_ref(serving: &Serving) -> pb::SnapshotRef {
    let (as_of, event_time) = match &serving.online {
        Some(info) => (info.as_of, info.event_time),
        None => (serving.as_of, serving.event_time),
    };
    pb::SnapshotRef {
        as_of: as_of.to_string(),
        run: serving.run.clone(),
        event_time: Some(timestamp(event_time)),
    }
}

fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

fn check_len(field: &str, len: usize, max: usize) -> Result<()> {
    if len == 0 {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if len > max {
        return Err(Error::invalid(field, format!("{len} items; at most {max}")));
    }
    Ok(())
}

#[tonic::async_trait]
impl pb::profile_service_server::ProfileService for Gate {
    async fn get_profile(
        &self,
        request: Request<pb::GetProfileRequest>,
    ) -> Result<Response<pb::GetProfileResponse>, Status> {
        self.call(
            "GetProfile",
            Scope::Profiles,
            request,
            |call, req| async move {
                let profiles = &call.serving.profiles;
                let row = profiles.require(req.key.as_ref(), "key")?;
                Ok(pb::GetProfileResponse {
                    profile: Some(profiles.profile(row, call.caller.has(Scope::Pii))),
                    snapshot: Some(snapshot_ref(&call.serving)),
                })
            },
        )
        .await
    }

    async fn batch_get_profiles(
        &self,
        request: Request<pb::BatchGetProfilesRequest>,
    ) -> Result<Response<pb::BatchGetProfilesResponse>, Status> {
        self.call(
            "BatchGetProfiles",
            Scope::Profiles,
            request,
            |call, req| async move {
                check_len("keys", req.keys.len(), MAX_PROFILES)?;
                let profiles = &call.serving.profiles;
                let pii = call.caller.has(Scope::Pii);
                let results = req
                    .keys
                    .into_iter()
                    .enumerate()
                    .map(|(i, key)| {
                        let row = profiles.resolve(Some(&key), &format!("keys[{i}]"))?;
                        Ok(pb::ProfileResult {
                            found: row.is_some(),
                            profile: row.map(|r| profiles.profile(r, pii)),
                            key: Some(key),
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(pb::BatchGetProfilesResponse {
                    results,
                    snapshot: Some(snapshot_ref(&call.serving)),
                })
            },
        )
        .await
    }
}

#[tonic::async_trait]
impl pb::feature_service_server::FeatureService for Gate {
    async fn get_online_features(
        &self,
        request: Request<pb::GetOnlineFeaturesRequest>,
    ) -> Result<Response<pb::GetOnlineFeaturesResponse>, Status> {
        self.call(
            "GetOnlineFeatures",
            Scope::Features,
            request,
            |call, req| async move {
                check_len("entities", req.entities.len(), online::MAX_ENTITIES)?;
                let features = match req.selection {
                    Some(pb::get_online_features_request::Selection::Features(list)) => {
                        if call.caller.limited_to_services() {
                            return Err(Error::FeatureDenied {
                                team: call.caller.team.clone(),
                                what:
                                    "features outside its feature services; name a feature_service"
                                        .into(),
                            });
                        }
                        if list.names.is_empty() {
                            return Err(Error::invalid("features.names", "must not be empty"));
                        }
                        list.names
                    }
                    Some(pb::get_online_features_request::Selection::FeatureService(name)) => {
                        let service = self.inner.services.get(&name)?;
                        call.caller.may_read_service(&service.name)?;
                        service.features.clone()
                    }
                    None => {
                        return Err(Error::invalid(
                            "selection",
                            "name `features` or a `feature_service`",
                        ));
                    }
                };
                let profiles = &call.serving.profiles;
                let unified_ids = req
                    .entities
                    .iter()
                    .enumerate()
                    .map(|(i, key)| {
                        let row = profiles.resolve(Some(key), &format!("entities[{i}]"))?;
                        Ok(row.map_or_else(String::new, |r| profiles.unified_id(r).to_string()))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let at = match req.at {
                    Some(t) => DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
                        .ok_or_else(|| Error::invalid("at", "not a valid timestamp"))?,
                    None => Utc::now(),
                };
                let got = self
                    .online()
                    .get(&Lookup::new(&unified_ids, &features).at(at))
                    .await?;
                Ok(pb::GetOnlineFeaturesResponse {
                    unified_ids,
                    columns: got.columns.into_iter().map(column).collect(),
                    snapshot: Some(snapshot_ref(&call.serving)),
                })
            },
        )
        .await
    }

    async fn list_feature_services(
        &self,
        request: Request<pb::ListFeatureServicesRequest>,
    ) -> Result<Response<pb::ListFeatureServicesResponse>, Status> {
        self.call(
            "ListFeatureServices",
            Scope::Features,
            request,
            |call, _| async move {
                let services = self
                    .inner
                    .services
                    .services()
                    .iter()
                    .filter(|s| call.caller.may_read_service(&s.name).is_ok())
                    .map(|s| pb::FeatureServiceInfo {
                        name: s.name.clone(),
                        description: s.description.clone(),
                        owner: s.owner.clone(),
                        features: s.features.clone(),
                    })
                    .collect();
                Ok(pb::ListFeatureServicesResponse { services })
            },
        )
        .await
    }
}

/// One online feature column as the protocol sends it.
fn column(c: online::FeatureColumn) -> pb::FeatureColumn {
    pb::FeatureColumn {
        name: c.name,
        r#type: c.ty.name().to_string(),
        values: c.values.into_iter().map(value).collect(),
        statuses: c
            .status
            .iter()
            .map(|s| match s {
                ValueStatus::Present => pb::FeatureStatus::Present,
                ValueStatus::Missing => pb::FeatureStatus::Missing,
                ValueStatus::Expired => pb::FeatureStatus::Expired,
            } as i32)
            .collect(),
        event_times: c
            .event_time
            .iter()
            .map(|t| t.map(timestamp).unwrap_or_default())
            .collect(),
    }
}

fn value(v: Value) -> pb::FeatureValue {
    use pb::feature_value::Kind;
    let kind = match v {
        Value::Null => None,
        Value::Bool(b) => Some(Kind::BoolValue(b)),
        Value::Int(i) => Some(Kind::Int64Value(i)),
        Value::Float(f) => Some(Kind::DoubleValue(f)),
        Value::Text(s) => Some(Kind::StringValue(s)),
        Value::Date(d) => Some(Kind::DateValue(d.to_string())),
        Value::List(values) => Some(Kind::StringListValue(pb::StringList { values })),
    };
    pb::FeatureValue { kind }
}

#[tonic::async_trait]
impl pb::scoring_service_server::ScoringService for Gate {
    async fn score_offers(
        &self,
        request: Request<pb::ScoreOffersRequest>,
    ) -> Result<Response<pb::ScoreOffersResponse>, Status> {
        self.call(
            "ScoreOffers",
            Scope::Scores,
            request,
            |call, req| async move {
                let row = call
                    .serving
                    .profiles
                    .require(req.customer.as_ref(), "customer")?;
                let mut scored = self
                    .score(&call.serving, &[row], req.top_reasons, req.max_offers)
                    .await?;
                Ok(pb::ScoreOffersResponse {
                    unified_id: call.serving.profiles.unified_id(row).to_string(),
                    offers: scored.pop().unwrap_or_default(),
                    model_version: scorer_version(&call.serving),
                    snapshot: Some(snapshot_ref(&call.serving)),
                })
            },
        )
        .await
    }

    async fn batch_score_offers(
        &self,
        request: Request<pb::BatchScoreOffersRequest>,
    ) -> Result<Response<pb::BatchScoreOffersResponse>, Status> {
        self.call(
            "BatchScoreOffers",
            Scope::Scores,
            request,
            |call, req| async move {
                check_len("customers", req.customers.len(), MAX_SCORED_CUSTOMERS)?;
                let profiles = &call.serving.profiles;
                let rows = req
                    .customers
                    .iter()
                    .enumerate()
                    .map(|(i, key)| profiles.resolve(Some(key), &format!("customers[{i}]")))
                    .collect::<Result<Vec<_>>>()?;
                let found: Vec<usize> = rows.iter().flatten().copied().collect();
                let mut scored = self
                    .score(&call.serving, &found, req.top_reasons, req.max_offers)
                    .await?
                    .into_iter();
                let results = req
                    .customers
                    .into_iter()
                    .zip(rows)
                    .map(|(key, row)| match row {
                        Some(r) => pb::CustomerOffers {
                            customer: Some(key),
                            found: true,
                            unified_id: profiles.unified_id(r).to_string(),
                            offers: scored.next().unwrap_or_default(),
                        },
                        None => pb::CustomerOffers {
                            customer: Some(key),
                            found: false,
                            ..Default::default()
                        },
                    })
                    .collect();
                Ok(pb::BatchScoreOffersResponse {
                    results,
                    model_version: scorer_version(&call.serving),
                    snapshot: Some(snapshot_ref(&call.serving)),
                })
            },
        )
        .await
    }
}

fn scorer_version(serving: &Serving) -> String {
    serving
        .scorer
        .as_ref()
        .map_or_else(String::new, |s| s.version().to_string())
}

impl Gate {
    /// Scores the people of `rows`: one list of offers per row, in order.
    async fn score(
        &self,
        serving: &Serving,
        rows: &[usize],
        top_reasons: u32,
        max_offers: u32,
    ) -> Result<Vec<Vec<pb::OfferScore>>> {
        let scorer = serving.scorer.as_ref().ok_or_else(|| Error::NotReady {
            reason: "no offer model yet; run `cdp train`".into(),
        })?;
        let online = serving.online.as_ref().ok_or_else(|| Error::NotReady {
            reason: "no features materialized yet; run `cdp materialize`".into(),
        })?;
        let top = if top_reasons == 0 {
            self.inner.top_reasons
        } else {
            (top_reasons as usize).min(20)
        };
        // the nightly scores of this date and model, when every person asked
        // for is answered by them
        if let Some(precomputed) = &serving.precomputed {
            let looked_up: Option<Vec<Vec<pb::OfferScore>>> = rows
                .iter()
                .map(|&r| {
                    let uid = serving.profiles.unified_id(r);
                    scorer
                        .lookup(precomputed, uid, top, max_offers as usize)
                        .map(|s| s.into_iter().map(offer).collect())
                })
                .collect();
            if let Some(answer) = looked_up {
                return Ok(answer);
            }
        }
        let ids: Vec<String> = rows
            .iter()
            .map(|&r| serving.profiles.unified_id(r).to_string())
            .collect();
        // the model reads the snapshot's values as they were when it was
        // built, exactly as `cdp score` does: TTLs are judged at its cutoff
        let got = self
            .online()
            .get(&Lookup::new(&ids, scorer.online_features()).at(online.event_time))
            .await?;
        rows.iter()
            .enumerate()
            .map(|(i, &row)| {
                let values: Vec<&Value> = got.columns.iter().map(|c| &c.values[i]).collect();
                let scored = scorer.score(
                    &values,
                    serving.profiles.income_band(row),
                    &serving.profiles.products(row),
                    top,
                    max_offers as usize,
                )?;
                Ok(scored.into_iter().map(offer).collect())
            })
            .collect()
    }
}

fn offer(s: Scored) -> pb::OfferScore {
    pb::OfferScore {
        offer_id: s.offer_id,
        name: s.name,
        tier: s.tier,
        category: s.category,
        probability: s.probability,
        rank: s.rank,
        reasons: s.reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_with_their_units() {
        assert_eq!(parse_grpc_timeout("1n"), Some(Duration::from_nanos(1)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        for bad in ["", "m", "123456789S", "5x", "-1S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }
}
