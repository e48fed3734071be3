//! `cdp serve` end to end: a real server process on a free port over a
//! small built, tagged, trained, scored and materialized lake, called
//! through the generated tonic clients (and the Python grpcio client):
//! right answers checked against `cdp query` of the same snapshot, masking
//! by scope, every error status, health, reflection, metrics without
//! customer data, and hot reload under concurrent calls with no failed
//! request.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cdp_server::auth::{hash_key, new_key};
use cdp_server::pb;
use cdp_server::pb::feature_service_client::FeatureServiceClient;
use cdp_server::pb::profile_service_client::ProfileServiceClient;
use cdp_server::pb::scoring_service_client::ScoringServiceClient;
use tonic::Code;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::support::{cdp, copy_dir, read_csv, run_ok, scored_lake, spawn_until_ready};

/// The served date: the last generated day.
const D: &str = crate::support::SCORED_AS_OF;
/// The event time of the snapshot as of D: D+1 00:00 Asia/Shanghai.
const EVENT_TIME: i64 = 1_773_676_800;
/// API keys of the test teams.
struct Keys {
    /// profiles, features, scores and pii.
    all: String,
    /// profiles, features, scores.
    no_pii: String,
    /// features, limited to card_offers_v1.
    offers_only: String,
    /// profiles only.
    profiles_only: String,
}

struct World {
    dir: tempfile::TempDir,
    lake: String,
    config: PathBuf,
    keys: Keys,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        // built on the campaign eves and D, tagged, trained, scored and
        // materialized as of D
        let (_, lake) = scored_lake(dir.path());
        let keys = Keys {
            all: new_key(),
            no_pii: new_key(),
            offers_only: new_key(),
            profiles_only: new_key(),
        };
        let entry = |team: &str, key: &str, scopes: &str, services: &str| {
            format!(
                "[[server.api_keys]]\nteam = \"{team}\"\nkey_sha256 = \"{}\"\nscopes = [{scopes}]\nfeature_services = [{services}]\n\n",
                hash_key(key)
            )
        };
        let config = dir.path().join("cdp.toml");
        let text = [
            "[server]\nreload_interval_ms = 200\n\n".to_string(),
            entry("call-centre", &keys.all, r#""profiles", "features", "scores", "pii""#, ""),
            entry("mobile-app", &keys.no_pii, r#""profiles", "features", "scores""#, ""),
            entry("marketing", &keys.offers_only, r#""features""#, r#""card_offers_v1""#),
            entry("kyc", &keys.profiles_only, r#""profiles""#, ""),
        ]
        .concat();
        std::fs::write(&config, text).unwrap();
        World {
            dir,
            lake,
            config,
            keys,
        }
    })
}

/// A running `cdp serve`, killed on drop.
struct Server {
    child: Child,
    grpc: String,
    metrics: String,
    stderr: PathBuf,
}

impl Server {
    /// Starts `cdp serve` over `lake` on free ports and waits for its ready line.
    fn start(lake: &str, env: &[(&str, &str)]) -> Server {
        let w = world();
        let stderr = w.dir.path().join(format!("serve-{}.log", new_key()));
        let mut command = cdp();
        command
            .args([
                "-v",
                "serve",
                "--json",
                "--lake",
                lake,
                "--addr",
                "127.0.0.1:0",
            ])
            .args(["--metrics-addr", "127.0.0.1:0", "--config"])
            .arg(&w.config)
            .envs(env.iter().copied());
        let (child, ready) = spawn_until_ready(command, &stderr);
        Server {
            child,
            grpc: format!("http://{}", ready["grpc"].as_str().unwrap()),
            metrics: ready["metrics"].as_str().unwrap().to_string(),
            stderr,
        }
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(self.grpc.clone())
            .unwrap()
            .connect()
            .await
            .expect("connects")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `authorization: Bearer KEY` (or nothing).
#[derive(Clone)]
struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    fn new(key: Option<&str>) -> Self {
        Bearer(key.map(|k| format!("Bearer {k}").parse().unwrap()))
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

type Authed = InterceptedService<Channel, Bearer>;

struct Clients {
    profiles: ProfileServiceClient<Authed>,
    features: FeatureServiceClient<Authed>,
    scoring: ScoringServiceClient<Authed>,
}

async fn clients(server: &Server, key: Option<&str>) -> Clients {
    let channel = server.channel().await;
    let bearer = Bearer::new(key);
    Clients {
        profiles: ProfileServiceClient::with_interceptor(channel.clone(), bearer.clone()),
        features: FeatureServiceClient::with_interceptor(channel.clone(), bearer.clone()),
        scoring: ScoringServiceClient::with_interceptor(channel, bearer),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn key(kind: pb::KeyKind, value: &str) -> pb::CustomerKey {
    pb::CustomerKey {
        kind: kind as i32,
        value: value.to_string(),
    }
}

/// `GetProfile` of `key`.
async fn get_profile(
    client: &mut ProfileServiceClient<Authed>,
    key: pb::CustomerKey,
) -> Result<pb::GetProfileResponse, tonic::Status> {
    client
        .get_profile(pb::GetProfileRequest { key: Some(key) })
        .await
        .map(tonic::Response::into_inner)
}

fn any(value: &str) -> pb::CustomerKey {
    key(pb::KeyKind::Unspecified, value)
}

/// Rows of `cdp query SQL` over `lake`, as CSV maps.
fn query(lake: &str, sql: &str) -> Vec<BTreeMap<String, String>> {
    let out = world().dir.path().join(format!("q-{}.csv", new_key()));
    run_ok(&[
        "query",
        "--lake",
        lake,
        "--format",
        "csv",
        "--out",
        out.to_str().unwrap(),
        sql,
    ]);
    read_csv(&out)
}

/// A CSV list cell (`[a, b]`) as items.
fn list(cell: &str) -> Vec<String> {
    let inner = cell.trim().trim_start_matches('[').trim_end_matches(']');
    inner
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[test]
fn profiles_resolve_every_key_and_mask_pii_without_the_scope() {
    let w = world();
    let people = query(
        &w.lake,
        &format!(
            "SELECT * FROM silver.customer_360 WHERE as_of = DATE '{D}' \
             AND cardinality(customer_ids) > 1 AND cardinality(device_ids) > 0 ORDER BY unified_id LIMIT 5"
        ),
    );
    assert!(
        !people.is_empty(),
        "the world has merged people with devices"
    );
    let server = Server::start(&w.lake, &[]);
    runtime().block_on(async {
        let mut masked = clients(&server, Some(&w.keys.no_pii)).await;
        let mut raw = clients(&server, Some(&w.keys.all)).await;
        for person in &people {
            let uid = &person["unified_id"];
            let mut keys = vec![
                key(pb::KeyKind::UnifiedId, uid),
                key(
                    pb::KeyKind::PhoneSha256,
                    &person["phone_sha256"].to_uppercase(),
                ),
                key(pb::KeyKind::EmailSha256, &person["email_sha256"]),
            ];
            keys.extend(
                list(&person["customer_ids"])
                    .iter()
                    .map(|c| key(pb::KeyKind::CustomerId, c)),
            );
            keys.extend(list(&person["customer_ids"]).iter().map(|c| any(c)));
            for k in keys {
                let got = masked
                    .profiles
                    .get_profile(pb::GetProfileRequest {
                        key: Some(k.clone()),
                    })
                    .await
                    .unwrap_or_else(|e| panic!("{k:?}: {e}"))
                    .into_inner();
                let p = got.profile.unwrap();
                assert_eq!(&p.unified_id, uid, "{k:?}");
                assert_eq!(got.snapshot.unwrap().as_of, D);
            }
            let p = get_profile(&mut masked.profiles, any(uid))
                .await
                .unwrap()
                .profile
                .unwrap();
            assert!(p.pii_masked);
            assert_eq!(p.phone, person["phone_masked"]);
            assert_eq!(p.email, person["email_masked"]);
            assert_eq!(p.full_name, person["full_name_masked"]);
            assert_eq!(p.id_number, person["id_number_masked"]);
            assert_eq!(p.primary_customer_id, person["primary_customer_id"]);
            assert_eq!(p.income_band.to_string(), person["income_band"]);
            assert_eq!(p.products, list(&person["products"]));
            assert_eq!(
                p.keys.as_ref().unwrap().customer_ids,
                list(&person["customer_ids"])
            );
            assert_eq!(
                p.keys.as_ref().unwrap().device_ids,
                list(&person["device_ids"])
            );
            assert_eq!(p.tenure_days.to_string(), person["tenure_days"]);
            let tags = p.tags.unwrap();
            assert!(tags.segment >= 0 && !tags.segment_name.is_empty(), "tagged");

            let r = get_profile(&mut raw.profiles, any(uid))
                .await
                .unwrap()
                .profile
                .unwrap();
            assert!(!r.pii_masked);
            for (value, masked, column) in [
                (&r.phone, &p.phone, "phone"),
                (&r.email, &p.email, "email"),
                (&r.full_name, &p.full_name, "full_name"),
                (&r.id_number, &p.id_number, "id_number"),
            ] {
                assert!(!value.contains('*'), "{column} is raw with the pii scope");
                assert_eq!(
                    &cdp_core::pii::mask_for_column(column)(value),
                    masked,
                    "the raw {column} is the one the masked form was made from"
                );
            }
        }

        // a device of several people resolves to nobody
        let shared = query(
            &w.lake,
            &format!(
                "SELECT source_key FROM silver.identity_map WHERE as_of = DATE '{D}' \
                 AND matched_by = 'shared_device' LIMIT 1"
            ),
        );
        if let Some(device) = shared.first() {
            let e = masked
                .profiles
                .get_profile(pb::GetProfileRequest {
                    key: Some(key(pb::KeyKind::DeviceId, &device["source_key"])),
                })
                .await
                .unwrap_err();
            assert_eq!(e.code(), Code::NotFound);
        }

        // batches: unknown keys are not found, order is kept
        let first = &people[0]["unified_id"];
        let batch = masked
            .profiles
            .batch_get_profiles(pb::BatchGetProfilesRequest {
                keys: vec![any("nobody"), any(first), key(pb::KeyKind::CardId, first)],
            })
            .await
            .unwrap()
            .into_inner();
        let found: Vec<bool> = batch.results.iter().map(|r| r.found).collect();
        assert_eq!(found, [false, true, false]);
        assert_eq!(
            &batch.results[1].profile.as_ref().unwrap().unified_id,
            first
        );

        // errors: not found (naming the key's kind, never its value), an
        // empty key, no key, an unknown kind, too many keys
        let bad_kind = pb::CustomerKey {
            kind: 42,
            value: first.clone(),
        };
        for (key, code) in [
            (Some(any("C999999999")), Code::NotFound),
            (Some(any(" ")), Code::InvalidArgument),
            (None, Code::InvalidArgument),
            (Some(bad_kind), Code::InvalidArgument),
        ] {
            let request = pb::GetProfileRequest { key: key.clone() };
            let e = masked.profiles.get_profile(request).await.unwrap_err();
            assert_eq!(e.code(), code, "{key:?}");
            assert!(!e.message().contains("C999999999"), "{}", e.message());
        }
        let e = masked
            .profiles
            .batch_get_profiles(pb::BatchGetProfilesRequest {
                keys: vec![any(first); 1_001],
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().contains("1001"), "{}", e.message());
    });
    let log = server.log();
    for person in &people {
        for column in ["unified_id", "primary_customer_id", "phone_sha256"] {
            assert!(
                !log.contains(&person[column]),
                "the log names no customer ({column})"
            );
        }
    }
}

#[test]
fn online_features_equal_silver_features_with_statuses_and_limits() {
    let w = world();
    let rows = query(
        &w.lake,
        &format!(
            "SELECT * FROM silver.features WHERE as_of = DATE '{D}' ORDER BY unified_id LIMIT 100"
        ),
    );
    let server = Server::start(&w.lake, &[]);
    runtime().block_on(async {
        let mut c = clients(&server, Some(&w.keys.no_pii)).await;
        let mut entities: Vec<pb::CustomerKey> =
            rows.iter().map(|r| any(&r["unified_id"])).collect();
        entities.push(any("nobody"));
        let at = prost_types::Timestamp {
            seconds: EVENT_TIME,
            nanos: 0,
        };
        let got = c
            .features
            .get_online_features(pb::GetOnlineFeaturesRequest {
                entities: entities.clone(),
                selection: Some(pb::get_online_features_request::Selection::FeatureService(
                    "card_offers_v1".into(),
                )),
                at: Some(at),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.unified_ids.len(), 101);
        assert_eq!(got.unified_ids[100], "");
        assert_eq!(got.columns.len(), 16);
        for column in &got.columns {
            assert_eq!(column.values.len(), 101);
            for (i, row) in rows.iter().enumerate() {
                let expected = &row[&column.name];
                let status = pb::FeatureStatus::try_from(column.statuses[i]).unwrap();
                let value = column.values[i].kind.as_ref();
                if expected.is_empty() {
                    assert_eq!(status, pb::FeatureStatus::Missing, "{} null", column.name);
                    assert!(value.is_none());
                    continue;
                }
                assert_eq!(status, pb::FeatureStatus::Present, "{}", column.name);
                assert_eq!(column.event_times[i].seconds, EVENT_TIME);
                use pb::feature_value::Kind;
                match value.unwrap() {
                    Kind::Int64Value(v) => assert_eq!(v.to_string(), *expected, "{}", column.name),
                    Kind::BoolValue(v) => assert_eq!(v.to_string(), *expected, "{}", column.name),
                    Kind::DoubleValue(v) => {
                        let e: f64 = expected.parse().unwrap();
                        assert!(
                            (v - e).abs() <= 1e-9 * e.abs().max(1.0),
                            "{} {v} vs {e}",
                            column.name
                        );
                    }
                    other => panic!("{}: unexpected {other:?}", column.name),
                }
            }
            let unknown = pb::FeatureStatus::try_from(column.statuses[100]).unwrap();
            assert_eq!(unknown, pb::FeatureStatus::Missing);
        }

        // judged now (months after the snapshot), values are expired and withheld
        let now = c
            .features
            .get_online_features(pb::GetOnlineFeaturesRequest {
                entities: entities[..1].to_vec(),
                selection: Some(pb::get_online_features_request::Selection::Features(
                    pb::FeatureList {
                        names: vec!["txn_count_30d".into()],
                    },
                )),
                at: None,
            })
            .await
            .unwrap()
            .into_inner();
        let column = &now.columns[0];
        assert_eq!(
            pb::FeatureStatus::try_from(column.statuses[0]).unwrap(),
            pb::FeatureStatus::Expired
        );
        assert!(column.values[0].kind.is_none());

        // bad requests
        let request = |selection| pb::GetOnlineFeaturesRequest {
            entities: entities[..2].to_vec(),
            selection,
            at: None,
        };
        use pb::get_online_features_request::Selection;
        for (selection, code) in [
            (
                Some(Selection::Features(pb::FeatureList {
                    names: vec!["no_such_feature".into()],
                })),
                Code::InvalidArgument,
            ),
            (
                Some(Selection::FeatureService("no_such_service_v1".into())),
                Code::InvalidArgument,
            ),
            (
                Some(Selection::Features(pb::FeatureList { names: vec![] })),
                Code::InvalidArgument,
            ),
            (None, Code::InvalidArgument),
        ] {
            let e = c
                .features
                .get_online_features(request(selection.clone()))
                .await
                .unwrap_err();
            assert_eq!(e.code(), code, "{selection:?}: {}", e.message());
        }
        let e = c
            .features
            .get_online_features(pb::GetOnlineFeaturesRequest {
                entities: vec![any("x"); 1_001],
                selection: Some(Selection::FeatureService("card_offers_v1".into())),
                at: None,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);

        // a key limited to card_offers_v1
        let mut limited = clients(&server, Some(&w.keys.offers_only)).await;
        let listed = limited
            .features
            .list_feature_services(pb::ListFeatureServicesRequest {})
            .await
            .unwrap()
            .into_inner();
        let names: Vec<&str> = listed.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["card_offers_v1"]);
        assert!(
            limited
                .features
                .get_online_features(request(Some(Selection::FeatureService(
                    "card_offers_v1".into()
                ))))
                .await
                .is_ok()
        );
        for selection in [
            Selection::FeatureService("fraud_signals_v1".into()),
            Selection::Features(pb::FeatureList {
                names: vec!["txn_count_30d".into()],
            }),
        ] {
            let e = limited
                .features
                .get_online_features(request(Some(selection)))
                .await
                .unwrap_err();
            assert_eq!(e.code(), Code::PermissionDenied);
        }
        let e = limited
            .profiles
            .get_profile(pb::GetProfileRequest {
                key: Some(entities[0].clone()),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied);
    });
}

#[test]
fn offer_scores_equal_gold_scores() {
    let w = world();
    let gold = query(
        &w.lake,
        &format!(
            "SELECT unified_id, offer_id, probability, rank, reasons, model_version FROM gold.scores \
             WHERE as_of = DATE '{D}' AND unified_id IN \
             (SELECT DISTINCT unified_id FROM gold.scores WHERE as_of = DATE '{D}' ORDER BY unified_id LIMIT 40) \
             ORDER BY unified_id, rank"
        ),
    );
    let mut expected: BTreeMap<String, Vec<&BTreeMap<String, String>>> = BTreeMap::new();
    for row in &gold {
        expected
            .entry(row["unified_id"].clone())
            .or_default()
            .push(row);
    }
    assert_eq!(expected.len(), 40);
    let server = Server::start(&w.lake, &[]);
    runtime().block_on(async {
        let mut c = clients(&server, Some(&w.keys.no_pii)).await;
        let check = |uid: &str, offers: &[pb::OfferScore]| {
            let want = &expected[uid];
            assert_eq!(offers.len(), want.len(), "{uid}");
            for (got, want) in offers.iter().zip(want) {
                assert_eq!(got.offer_id, want["offer_id"], "{uid}");
                assert_eq!(got.rank.to_string(), want["rank"], "{uid}");
                let p: f64 = want["probability"].parse().unwrap();
                assert!(
                    (got.probability - p).abs() < 1e-9,
                    "{uid} {}: {} vs {p}",
                    got.offer_id,
                    got.probability
                );
                // online scoring may be asked for more reasons than the
                // nightly scores keep (3): those start with the same ones
                let stored = list(&want["reasons"]);
                assert_eq!(
                    got.reasons[..stored.len().min(got.reasons.len())],
                    stored[..],
                    "{uid}"
                );
                assert!(!got.name.is_empty() && !got.tier.is_empty() && !got.category.is_empty());
            }
        };
        // top_reasons 0 is answered from the nightly gold.scores; 4 reasons
        // (more than it keeps) are computed online from the online features
        let mut online_fourth_reasons = 0;
        for uid in expected.keys() {
            for top_reasons in [0, 4] {
                let got = c
                    .scoring
                    .score_offers(pb::ScoreOffersRequest {
                        customer: Some(any(uid)),
                        top_reasons,
                        max_offers: 0,
                    })
                    .await
                    .unwrap()
                    .into_inner();
                assert_eq!(&got.unified_id, uid);
                assert_eq!(got.model_version, expected[uid][0]["model_version"]);
                check(uid, &got.offers);
                if top_reasons == 4 {
                    online_fourth_reasons +=
                        got.offers.iter().filter(|o| o.reasons.len() == 4).count();
                }
            }
        }
        assert!(online_fourth_reasons > 0, "4 reasons were computed online");
        let batch = c
            .scoring
            .batch_score_offers(pb::BatchScoreOffersRequest {
                customers: expected
                    .keys()
                    .map(|u| any(u))
                    .chain([any("nobody")])
                    .collect(),
                top_reasons: 0,
                max_offers: 0,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(batch.results.len(), 41);
        assert!(!batch.results[40].found);
        for r in &batch.results[..40] {
            check(&r.unified_id, &r.offers);
        }
        let uid = expected.keys().next().unwrap();
        let top = c
            .scoring
            .score_offers(pb::ScoreOffersRequest {
                customer: Some(any(uid)),
                top_reasons: 1,
                max_offers: 1,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(top.offers.len(), 1);
        assert_eq!(top.offers[0].rank, 1);
        assert!(top.offers[0].reasons.len() <= 1);
        let e = c
            .scoring
            .score_offers(pb::ScoreOffersRequest {
                customer: Some(any("nobody")),
                top_reasons: 0,
                max_offers: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
        let e = c
            .scoring
            .batch_score_offers(pb::BatchScoreOffersRequest {
                customers: vec![any(uid); 101],
                top_reasons: 0,
                max_offers: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
    });
}

#[test]
fn access_limits_deadlines_health_reflection_and_metrics() {
    let w = world();
    let server = Server::start(&w.lake, &[]);
    let uid = "U0000000001";
    runtime().block_on(async {
        let request = || pb::GetProfileRequest {
            key: Some(any(uid)),
        };
        for key in [None, Some("not-a-key")] {
            let mut c = clients(&server, key).await;
            let e = c.profiles.get_profile(request()).await.unwrap_err();
            assert_eq!(e.code(), Code::Unauthenticated, "{key:?}");
        }
        let mut kyc = clients(&server, Some(&w.keys.profiles_only)).await;
        assert!(kyc.profiles.get_profile(request()).await.is_ok());
        let e = kyc
            .scoring
            .score_offers(pb::ScoreOffersRequest {
                customer: Some(any(uid)),
                top_reasons: 0,
                max_offers: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied);
        assert!(e.message().contains("scores"), "{}", e.message());

        // a deadline already passed is not served: tonic's timeout layer
        // cancels the call (CANCELLED), or the gate finds the answer late
        // (DEADLINE_EXCEEDED)
        let mut late = tonic::Request::new(request());
        late.set_timeout(Duration::from_nanos(1));
        let e = kyc.profiles.get_profile(late).await.unwrap_err();
        assert!(
            matches!(e.code(), Code::DeadlineExceeded | Code::Cancelled),
            "{e}"
        );

        // a request over the size limit (1 MiB) is refused by tonic's decoder
        let e = kyc
            .profiles
            .get_profile(pb::GetProfileRequest {
                key: Some(any(&"x".repeat(2 << 20))),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::OutOfRange, "{e}");
        assert!(e.message().contains("1048576"), "{e}");

        // health and reflection
        let channel = server.channel().await;
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
        for service in ["", "cdp.v1.ProfileService", "cdp.v1.ScoringService"] {
            let status = health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .unwrap()
                .into_inner()
                .status;
            assert_eq!(
                status,
                tonic_health::pb::health_check_response::ServingStatus::Serving as i32
            );
        }
        use tonic_reflection::pb::v1::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        };
        let mut reflection = ServerReflectionClient::new(channel);
        let ask = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut answers = reflection
            .server_reflection_info(futures::stream::iter([ask]))
            .await
            .unwrap()
            .into_inner();
        let answer = answers.message().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
            panic!("a service list");
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        for service in [
            "cdp.v1.ProfileService",
            "cdp.v1.FeatureService",
            "cdp.v1.ScoringService",
            "grpc.health.v1.Health",
        ] {
            assert!(names.iter().any(|n| n == service), "{service} in {names:?}");
        }
    });

    // Prometheus metrics: per method, code and team; no customer data
    let metrics = http_get(&server.metrics);
    for line in [
        r#"cdp_requests_total{method="GetProfile",code="OK",team="kyc"} 1"#,
        r#"cdp_requests_total{method="GetProfile",code="UNAUTHENTICATED",team=""} 2"#,
        r#"cdp_requests_total{method="ScoreOffers",code="PERMISSION_DENIED",team="kyc"} 1"#,
        "cdp_request_duration_seconds_count{method=\"GetProfile\"}",
        "cdp_customers ",
        "cdp_snapshot_age_seconds ",
        "cdp_offer_model_version 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    assert!(!metrics.contains(uid));
    let log = server.log();
    let named: Vec<&str> = log.lines().filter(|l| l.contains(uid)).collect();
    assert!(named.is_empty(), "the log names no customer: {named:?}");
}

/// A server admitting one request at a time, hit by 48 heavy batches over
/// 8 connections: its two worker threads pick up two at once, and the
/// second is refused rather than queued.
#[test]
fn overload_is_refused_with_resource_exhausted() {
    let w = world();
    let server = Server::start(&w.lake, &[("CDP__SERVER__MAX_CONCURRENT_REQUESTS", "1")]);
    let ids: Vec<pb::CustomerKey> = (1..=100).map(|i| any(&format!("U{i:010}"))).collect();
    let codes = runtime().block_on(async {
        let mut connections = Vec::new();
        for _ in 0..8 {
            connections.push(clients(&server, Some(&w.keys.no_pii)).await.scoring);
        }
        let calls = (0..48).map(|i| {
            let mut scoring = connections[i % 8].clone();
            let customers = ids.clone();
            tokio::spawn(async move {
                scoring
                    .batch_score_offers(pb::BatchScoreOffersRequest {
                        customers,
                        // more reasons than the nightly scores keep: scored
                        // online, with TreeSHAP, so each call is heavy
                        top_reasons: 4,
                        max_offers: 0,
                    })
                    .await
                    .map_or_else(|e| e.code(), |_| Code::Ok)
            })
        });
        let mut codes = BTreeMap::new();
        for call in calls.collect::<Vec<_>>() {
            *codes
                .entry(format!("{:?}", call.await.unwrap()))
                .or_insert(0) += 1;
        }
        codes
    });
    assert!(codes.contains_key("ResourceExhausted"), "{codes:?}");
    assert!(codes.contains_key("Ok"), "{codes:?}");
    assert_eq!(codes.len(), 2, "only served or refused: {codes:?}");
}

#[test]
fn a_new_snapshot_and_model_are_picked_up_under_load_without_a_failed_request() {
    let w = world();
    // a lake of its own: this test publishes into it
    let lake = w.dir.path().join(format!("lake-reload-{}", new_key()));
    copy_dir(Path::new(&w.lake), &lake);
    let lake = lake.to_str().unwrap().to_string();
    let server = Server::start(&lake, &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let runtime = runtime();
    let workers: Vec<_> = (0..6)
        .map(|i| {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            let key = w.keys.no_pii.clone();
            let grpc = server.grpc.clone();
            runtime.spawn(async move {
                let channel = Channel::from_shared(grpc).unwrap().connect().await.unwrap();
                let bearer = Bearer::new(Some(&key));
                let mut profiles =
                    ProfileServiceClient::with_interceptor(channel.clone(), bearer.clone());
                let mut scoring =
                    ScoringServiceClient::with_interceptor(channel.clone(), bearer.clone());
                let mut features = FeatureServiceClient::with_interceptor(channel, bearer);
                let mut seen = BTreeMap::<String, u64>::new();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let uid = any(&format!("U{:010}", 1 + (n * 7 + i) % 1_500));
                    let result = match n % 3 {
                        0 => profiles
                            .get_profile(pb::GetProfileRequest { key: Some(uid) })
                            .await
                            .map(|r| r.into_inner().snapshot.unwrap().as_of),
                        1 => scoring
                            .score_offers(pb::ScoreOffersRequest {
                                customer: Some(uid),
                                top_reasons: 3,
                                max_offers: 0,
                            })
                            .await
                            .map(|r| r.into_inner().model_version),
                        _ => features
                            .get_online_features(pb::GetOnlineFeaturesRequest {
                                entities: vec![uid],
                                selection: Some(
                                    pb::get_online_features_request::Selection::FeatureService(
                                        "card_offers_v1".into(),
                                    ),
                                ),
                                at: None,
                            })
                            .await
                            .map(|r| r.into_inner().snapshot.unwrap().as_of),
                    };
                    match result {
                        Ok(v) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            *seen.entry(v).or_default() += 1;
                        }
                        // an unknown customer is an answer, not a failure
                        Err(e) if e.code() == Code::NotFound => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            eprintln!("failed: {e}");
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    // steady load that leaves the publishing commands the cores
                    tokio::time::sleep(Duration::from_millis(4)).await;
                }
                seen
            })
        })
        .collect();

    // publish a new date and a new model while the workers call
    let earlier = "2026-03-15";
    run_ok(&["build", "--lake", &lake, "--as-of", earlier]);
    run_ok(&["materialize", "--lake", &lake, "--as-of", earlier]);
    run_ok(&[
        "train",
        "--lake",
        &lake,
        "--as-of",
        D,
        "--param",
        "num_round=20",
    ]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let served = runtime.block_on(async {
        let mut c = clients(&server, Some(&w.keys.no_pii)).await;
        loop {
            let profile = c
                .profiles
                .get_profile(pb::GetProfileRequest {
                    key: Some(any("U0000000001")),
                })
                .await
                .unwrap()
                .into_inner();
            let model = c
                .scoring
                .score_offers(pb::ScoreOffersRequest {
                    customer: Some(any("U0000000001")),
                    top_reasons: 0,
                    max_offers: 0,
                })
                .await
                .unwrap()
                .into_inner()
                .model_version;
            let as_of = profile.snapshot.unwrap().as_of;
            if (as_of.as_str(), model.as_str()) == (earlier, "v2") || Instant::now() > deadline {
                break (as_of, model);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    // keep calling on the new snapshot for a moment, then stop
    runtime.block_on(async { tokio::time::sleep(Duration::from_millis(500)).await });
    stop.store(true, Ordering::Relaxed);
    let mut seen = BTreeMap::<String, u64>::new();
    for worker in workers {
        for (k, v) in runtime.block_on(worker).unwrap() {
            *seen.entry(k).or_default() += v;
        }
    }
    assert_eq!(
        served,
        (earlier.to_string(), "v2".to_string()),
        "picked up within 120 s"
    );
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "no request failed during the reload"
    );
    assert!(ok.load(Ordering::Relaxed) > 50, "the workers kept calling");
    for answer in [D, earlier, "v1", "v2"] {
        assert!(
            seen.contains_key(answer),
            "answers before and after: {seen:?}"
        );
    }
}

#[test]
fn the_python_grpcio_client_gets_the_same_answers() {
    let w = world();
    let ok = std::process::Command::new("python3")
        .args(["-c", "import grpc, grpc_tools, grpc_health"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CDP_REQUIRE_GRPCIO").is_none(),
            "CDP_REQUIRE_GRPCIO is set but grpcio, grpcio-tools or grpcio-health-checking is missing"
        );
        eprintln!("skipping: python3 lacks grpcio / grpcio-tools / grpcio-health-checking");
        return;
    }
    let server = Server::start(&w.lake, &[]);
    let person = &query(
        &w.lake,
        &format!(
            "SELECT unified_id, primary_customer_id, phone_masked FROM silver.customer_360 \
             WHERE as_of = DATE '{D}' AND unified_id IN (SELECT unified_id FROM gold.scores WHERE as_of = DATE '{D}') \
             ORDER BY unified_id LIMIT 1"
        ),
    )[0];
    let script = crate::support::repo_root().join("examples/python/cdp_client.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .args(["--addr", server.grpc.trim_start_matches("http://")])
        .args([
            "--key",
            &w.keys.no_pii,
            "--customer",
            &person["primary_customer_id"],
        ])
        .args(["--at", &EVENT_TIME.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["health"], "SERVING");
    assert_eq!(got["profile"]["unified_id"], person["unified_id"].as_str());
    assert_eq!(got["profile"]["phone"], person["phone_masked"].as_str());
    assert_eq!(got["profile"]["pii_masked"], true);
    assert_eq!(got["without_key"], "UNAUTHENTICATED");
    assert_eq!(
        got["features"]["txn_count_30d"]["status"],
        "FEATURE_STATUS_PRESENT"
    );
    let gold = query(
        &w.lake,
        &format!(
            "SELECT offer_id, probability FROM gold.scores WHERE as_of = DATE '{D}' \
             AND unified_id = '{}' ORDER BY rank",
            person["unified_id"]
        ),
    );
    let offers = got["offers"].as_array().unwrap();
    assert_eq!(offers.len(), gold.len());
    for (o, g) in offers.iter().zip(&gold) {
        assert_eq!(o["offer_id"], g["offer_id"].as_str());
        let p: f64 = g["probability"].parse().unwrap();
        assert!((o["probability"].as_f64().unwrap() - p).abs() < 1e-9);
    }
}

#[test]
fn serve_refuses_to_start_without_keys_or_with_a_bad_address() {
    let w = world();
    // a folder without the world's cdp.toml (and so without keys)
    let elsewhere = w.dir.path().join("no-config");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let out = cdp()
        .args(["serve", "--lake", &w.lake, "--addr", "127.0.0.1:0"])
        .current_dir(&elsewhere)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("cdp apikey new"), "{err}");
    let out = cdp()
        .args(["serve", "--lake", &w.lake, "--addr", "nowhere", "--config"])
        .arg(&w.config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.addr"));
}

/// `GET url` over plain HTTP/1.0; the body.
fn http_get(url: &str) -> String {
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(stream, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    assert!(
        text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200"),
        "{text}"
    );
    text.split_once("\r\n\r\n").unwrap().1.to_string()
}

#[test]
fn up_builds_the_samples_and_serves_them_with_a_demo_key() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let samples = crate::support::repo_root().join("data/samples");
    let stderr = dir.path().join("up.log");
    let mut command = cdp();
    command
        .args([
            "up",
            "--json",
            "--addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "off",
            "--lake",
        ])
        .arg(&lake)
        .arg("--source")
        .arg(&samples)
        .current_dir(dir.path())
        .current_dir(dir.path());
    let (child, ready) = spawn_until_ready(command, &stderr);
    let server = Server {
        child,
        grpc: format!("http://{}", ready["grpc"].as_str().unwrap()),
        metrics: String::new(),
        stderr,
    };
    assert_eq!(ready["as_of"], "2026-03-01");
    assert_eq!(ready["model"], "v1");
    assert!(ready["customers"].as_u64().unwrap() > 1_900, "{ready}");
    let key = ready["demo_key"].as_str().unwrap().to_string();
    runtime().block_on(async {
        let mut c = clients(&server, Some(&key)).await;
        let p = c
            .profiles
            .get_profile(pb::GetProfileRequest {
                key: Some(any("U0000000001")),
            })
            .await
            .unwrap()
            .into_inner()
            .profile
            .unwrap();
        assert!(p.pii_masked, "the demo key has no pii scope");
        let scored = c
            .scoring
            .batch_score_offers(pb::BatchScoreOffersRequest {
                customers: (1..=20).map(|i| any(&format!("U{i:010}"))).collect(),
                top_reasons: 0,
                max_offers: 0,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(scored.model_version, "v1");
        assert!(scored.results.iter().any(|r| !r.offers.is_empty()));
    });
}

#[test]
fn with_a_certificate_the_server_speaks_tls_only() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    if !made.is_ok_and(|o| o.status.success()) {
        eprintln!("skipping: openssl cannot make a test certificate");
        return;
    }
    let server = Server::start(
        &w.lake,
        &[
            ("CDP__SERVER__TLS_CERT", cert.to_str().unwrap()),
            ("CDP__SERVER__TLS_KEY", key.to_str().unwrap()),
        ],
    );
    let port = server.grpc.rsplit(':').next().unwrap().to_string();
    runtime().block_on(async {
        let pem = std::fs::read(&cert).unwrap();
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(pem))
            .domain_name("localhost");
        let channel = Channel::from_shared(format!("https://localhost:{port}"))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .expect("a TLS connection");
        let mut profiles =
            ProfileServiceClient::with_interceptor(channel, Bearer::new(Some(&w.keys.no_pii)));
        let p = profiles
            .get_profile(pb::GetProfileRequest {
                key: Some(any("U0000000001")),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(p.profile.unwrap().unified_id, "U0000000001");
        // plaintext is not spoken
        let plain = Channel::from_shared(server.grpc.clone())
            .unwrap()
            .connect_lazy();
        let mut plain =
            ProfileServiceClient::with_interceptor(plain, Bearer::new(Some(&w.keys.no_pii)));
        let request = tonic::Request::new(pb::GetProfileRequest {
            key: Some(any("U0000000001")),
        });
        let refused =
            tokio::time::timeout(Duration::from_secs(10), plain.get_profile(request)).await;
        assert!(!matches!(refused, Ok(Ok(_))), "no answer over plaintext");
    });
}
