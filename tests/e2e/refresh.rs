//! `cdp refresh`, `cdp runs`, `cdp gc`: the nightly job, on a bank whose
//! last day arrives as a drop of its own.
//!
//! The base lake holds 75 days (ingested, built on the campaign eves, then
//! refreshed and released as of 2026-03-16); the drop holds day 76,
//! 2026-03-17, as the bank would deliver it overnight.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use cdp_server::auth::{hash_key, new_key};
use cdp_server::pb;
use cdp_server::pb::profile_service_client::ProfileServiceClient;
use tonic::transport::Channel;

use crate::support::{CAMPAIGN_EVES, cdp, copy_dir, generate, run_ok, spawn_until_ready};

/// The pause of each caller between two calls.
const PACE: Duration = Duration::from_millis(4);

/// The released day of the base lake.
const BASE_DAY: &str = "2026-03-16";
/// The day of the drop.
const NEW_DAY: &str = "2026-03-17";

struct Base {
    dir: tempfile::TempDir,
    lake: PathBuf,
    drop: PathBuf,
    config: PathBuf,
    key: String,
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        generate(&raw, 2_000, 76, 11, 0.01, &[]);
        // day 76 becomes tonight's drop
        let drop = dir.path().join("drop");
        std::fs::create_dir_all(&drop).unwrap();
        for entry in std::fs::read_dir(&raw).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            if name.contains(&format!("_{NEW_DAY}")) {
                std::fs::rename(&path, drop.join(&name)).unwrap();
            }
        }
        std::fs::copy(
            raw.join("card_products.csv"),
            drop.join("card_products.csv"),
        )
        .unwrap();

        let key = new_key();
        let config = dir.path().join("cdp.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nreload_interval_ms = 100\n\n[[server.api_keys]]\nteam = \"app\"\n\
                 key_sha256 = \"{}\"\nscopes = [\"profiles\", \"features\", \"scores\"]\n",
                hash_key(&key)
            ),
        )
        .unwrap();
        let lake = dir.path().join("lake");
        let l = lake.to_str().unwrap();
        run_ok(&["ingest", "--lake", l, "--source", raw.to_str().unwrap()]);
        for d in CAMPAIGN_EVES {
            run_ok(&["build", "--lake", l, "--as-of", d]);
        }
        let out = refresh_cmd(&lake, &config, BASE_DAY, None, &["--retrain"])
            .output()
            .unwrap();
        assert!(out.status.success(), "base refresh: {}", text(&out));
        Base {
            dir,
            lake,
            drop,
            config,
            key,
        }
    })
}

/// A copy of the base lake, for a test that writes.
fn lake_copy(name: &str) -> PathBuf {
    let b = base();
    let to = b.dir.path().join(format!("{name}-{}", new_key()));
    copy_dir(&b.lake, &to);
    to
}

fn refresh_cmd(
    lake: &Path,
    config: &Path,
    as_of: &str,
    source: Option<&Path>,
    extra: &[&str],
) -> Command {
    let mut c = cdp();
    c.args([
        "refresh",
        "--lake",
        lake.to_str().unwrap(),
        "--as-of",
        as_of,
    ])
    .arg("--config")
    .arg(config)
    .args(extra);
    if let Some(source) = source {
        c.arg("--source").arg(source);
    }
    c
}

/// Tonight's refresh of `lake` (with the drop, retraining).
fn tonight(lake: &Path) -> Command {
    let b = base();
    refresh_cmd(lake, &b.config, NEW_DAY, Some(&b.drop), &["--retrain"])
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json_file(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn release(lake: &Path) -> serde_json::Value {
    json_file(&lake.join("_manifests/release.json"))
}

fn runs(lake: &Path) -> Vec<serde_json::Value> {
    let out = cdp()
        .args(["runs", "list", "--json", "--lake", lake.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Everything a night produces, as text: the new date's silver and gold
/// tables (sorted), the release's date and model, the online snapshot's
/// bytes.
fn outputs(lake: &Path) -> BTreeMap<String, String> {
    let l = lake.to_str().unwrap();
    let mut out = BTreeMap::new();
    for (table, order) in [
        (
            "silver.identity_map",
            "source, source_key, unified_id, matched_by",
        ),
        ("silver.customer_360", "unified_id"),
        ("silver.features", "unified_id"),
        ("gold.tags", "unified_id"),
        ("gold.scores", "unified_id, offer_id"),
        ("gold.offer_labels", "offer_event_id"),
    ] {
        let sql = format!("SELECT * FROM {table} WHERE as_of = DATE '{NEW_DAY}' ORDER BY {order}");
        let csv = run_ok(&["query", "--lake", l, "--format", "csv", &sql]);
        assert!(csv.lines().count() > 1, "{table} is empty");
        out.insert(table.to_string(), csv);
    }
    let r = release(lake);
    out.insert(
        "release".into(),
        format!(
            "{} {} {}",
            r["body"]["as_of"], r["body"]["model"], r["body"]["tagger"]
        ),
    );
    let online = json_file(&lake.join(format!(
        "_manifests/online/embedded/v{:010}.json",
        r["body"]["online"].as_u64().unwrap()
    )));
    // the snapshot's values are silver.features' (compared above); its
    // files' row order follows the build's partitions
    out.insert(
        "online".into(),
        format!(
            "{} {} rows, {} features",
            online["body"]["as_of"],
            online["body"]["rows"],
            online["body"]["features"].as_array().unwrap().len()
        ),
    );
    out
}

/// The uninterrupted night: its outputs and the seconds of each stage.
struct Reference {
    outputs: BTreeMap<String, String>,
    seconds: BTreeMap<String, f64>,
    lake: PathBuf,
}

fn reference() -> &'static Reference {
    static REFERENCE: OnceLock<Reference> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let lake = lake_copy("reference");
        let out = tonight(&lake).arg("--json").output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let records: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let seconds = records[0]["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().to_string(),
                    s["seconds"].as_f64().unwrap(),
                )
            })
            .collect();
        Reference {
            outputs: outputs(&lake),
            seconds,
            lake,
        }
    })
}

#[test]
fn a_refresh_publishes_the_night_and_a_rerun_skips_every_stage() {
    let r = reference();
    let released = release(&r.lake);
    assert_eq!(released["body"]["as_of"], NEW_DAY);
    assert_eq!(released["version"], 2, "the base night was release 1");
    assert_eq!(
        released["body"]["model"], "v2",
        "--retrain fits a new model"
    );

    let records = runs(&r.lake);
    let night = &records[0];
    assert_eq!(night["as_of"], NEW_DAY);
    assert_eq!(night["status"], "succeeded");
    let stages: Vec<(&str, &str)> = night["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    let names: Vec<&str> = stages.iter().map(|s| s.0).collect();
    assert_eq!(names, cdp_refresh::pipeline::STAGES);
    assert!(stages.iter().all(|s| s.1 == "done"), "{stages:?}");
    let checks = night["checks"].as_array().unwrap();
    for name in [
        "ingest.transactions.quarantine_share",
        "ingest.transactions.reconciliation",
        "build.persons_ratio",
        "build.reconciliation",
        "build.null_rate.txn_count_30d",
        "drift.psi.spend_30d",
    ] {
        let check = checks
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name}"));
        assert_ne!(check["outcome"], "fail", "{check}");
    }
    assert!(night["drift"].as_array().unwrap().len() >= 20);
    assert!(night["stages"][0]["rows_in"].as_u64().unwrap() > 1_000);

    // the same night again: nothing to do, nothing published
    let again = lake_copy("again");
    copy_dir(&r.lake, &again);
    let out = tonight(&again).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let records = runs(&again);
    let rerun = &records[0];
    assert_ne!(rerun["run"], night["run"]);
    for stage in rerun["stages"].as_array().unwrap() {
        let expected = if stage["name"] == "quality" {
            "done"
        } else {
            "skipped"
        };
        assert_eq!(stage["status"], expected, "{stage}");
    }
    assert_eq!(release(&again)["version"], 2);
    assert_eq!(outputs(&again), r.outputs);

    // cdp runs show, by a prefix of the id
    let id = night["run"].as_str().unwrap();
    let shown = run_ok(&[
        "runs",
        "show",
        &id[..id.len() - 2],
        "--lake",
        again.to_str().unwrap(),
    ]);
    assert!(
        shown.contains(&format!("refresh {id} as of {NEW_DAY}: succeeded")),
        "{shown}"
    );
    assert!(shown.contains("drift (PSI"), "{shown}");
}

/// Calls `cdp serve` while a refresh is killed: counts failures and
/// records each answer's snapshot date.
struct Callers {
    stop: Arc<AtomicBool>,
    failed: Arc<AtomicU64>,
    ok: Arc<AtomicU64>,
    seen: Arc<Mutex<BTreeMap<String, u64>>>,
    runtime: tokio::runtime::Runtime,
}

impl Callers {
    fn start(grpc: &str, key: &str) -> Callers {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let c = Callers {
            stop: Arc::new(AtomicBool::new(false)),
            failed: Arc::new(AtomicU64::new(0)),
            ok: Arc::new(AtomicU64::new(0)),
            seen: Arc::new(Mutex::new(BTreeMap::new())),
            runtime,
        };
        for i in 0..2u64 {
            let (stop, failed, ok, seen) = (
                c.stop.clone(),
                c.failed.clone(),
                c.ok.clone(),
                c.seen.clone(),
            );
            let grpc = grpc.to_string();
            let bearer: tonic::metadata::MetadataValue<_> =
                format!("Bearer {key}").parse().unwrap();
            c.runtime.spawn(async move {
                let channel = Channel::from_shared(grpc).unwrap().connect().await.unwrap();
                let mut profiles = ProfileServiceClient::with_interceptor(
                    channel,
                    move |mut r: tonic::Request<()>| {
                        r.metadata_mut().insert("authorization", bearer.clone());
                        Ok(r)
                    },
                );
                let mut n = i;
                while !stop.load(Ordering::Relaxed) {
                    n += 2;
                    let key = pb::CustomerKey {
                        kind: pb::KeyKind::Unspecified as i32,
                        value: format!("U{:010}", 1 + n % 1_500),
                    };
                    match profiles
                        .get_profile(pb::GetProfileRequest { key: Some(key) })
                        .await
                    {
                        Ok(r) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            let as_of = r.into_inner().snapshot.unwrap().as_of;
                            *seen.lock().unwrap().entry(as_of).or_default() += 1;
                        }
                        Err(e) if e.code() == tonic::Code::NotFound => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            eprintln!("failed: {e}");
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    // a steady few hundred calls a second, not a flood
                    // that starves the refresh of the cores
                    tokio::time::sleep(PACE).await;
                }
            });
        }
        c
    }

    /// The date served now, asked once.
    fn served(&self, grpc: &str, key: &str) -> String {
        let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {key}").parse().unwrap();
        self.runtime.block_on(async {
            let channel = Channel::from_shared(grpc.to_string())
                .unwrap()
                .connect()
                .await
                .unwrap();
            let mut profiles =
                ProfileServiceClient::with_interceptor(channel, move |mut r: tonic::Request<()>| {
                    r.metadata_mut().insert("authorization", bearer.clone());
                    Ok(r)
                });
            let key = pb::CustomerKey {
                kind: pb::KeyKind::Unspecified as i32,
                value: "U0000000001".into(),
            };
            profiles
                .get_profile(pb::GetProfileRequest { key: Some(key) })
                .await
                .unwrap()
                .into_inner()
                .snapshot
                .unwrap()
                .as_of
        })
    }
}

impl Drop for Callers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn a_refresh_killed_in_any_stage_leaves_the_previous_release_serving_and_its_rerun_matches() {
    let b = base();
    let r = reference();
    // every stage but the read-only quality gate
    for stage in cdp_refresh::pipeline::STAGES
        .into_iter()
        .filter(|s| *s != "quality")
    {
        let lake = lake_copy(&format!("killed-in-{stage}"));
        let l = lake.to_str().unwrap();
        let log = lake.with_extension("serve.log");
        let mut serve = cdp();
        serve
            .args(["serve", "--json", "--lake", l, "--addr", "127.0.0.1:0"])
            .args(["--metrics-addr", "off", "--config"])
            .arg(&b.config);
        let (mut server, ready) = spawn_until_ready(serve, &log);
        let grpc = format!("http://{}", ready["grpc"].as_str().unwrap());
        assert_eq!(ready["as_of"], BASE_DAY);
        let callers = Callers::start(&grpc, &b.key);

        // kill the refresh halfway through `stage` (by the reference run's time)
        let mut child = tonight(&lake)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = format!("{NEW_DAY} {stage}: started");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut reached = false;
        for line in lines.by_ref() {
            if line.unwrap().ends_with(&started) {
                reached = true;
                break;
            }
        }
        assert!(reached, "the refresh never reached {stage}");
        let halfway = r.seconds.get(stage).copied().unwrap_or(0.0) / 2.0;
        std::thread::sleep(Duration::from_secs_f64(halfway.min(5.0)));
        child.kill().unwrap();
        child.wait().unwrap();
        drop(lines);

        let released = release(&lake)["body"]["as_of"]
            .as_str()
            .unwrap()
            .to_string();
        if stage != "publish" {
            assert_eq!(released, BASE_DAY, "killed in {stage}: the release moved");
        }
        // the server serves the release, whatever the killed run left behind
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while callers.served(&grpc, &b.key) != released {
            assert!(
                std::time::Instant::now() < deadline,
                "killed in {stage}: the server does not serve the release of {released}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let record = &runs(&lake)[0];
        if stage == "publish" {
            // the release swap takes a millisecond: the kill may land after it
            assert_ne!(record["status"], "failed", "killed in {stage}: {record}");
        } else {
            assert_eq!(record["status"], "running", "killed in {stage}: {record}");
        }

        // the re-run finishes the night, exactly as if nothing happened
        let out = tonight(&lake).output().unwrap();
        assert!(out.status.success(), "re-run after {stage}: {}", text(&out));
        let rerun = &runs(&lake)[0];
        let skipped = rerun["stages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == "skipped")
            .count();
        eprintln!("killed in {stage}: the re-run skipped {skipped} stages");
        let outputs = outputs(&lake);
        for (name, value) in &r.outputs {
            let got = outputs.get(name);
            assert!(
                got == Some(value),
                "killed in {stage}: {name} differs from the uninterrupted night{}",
                if value.len() < 200 {
                    format!(": {got:?}, not {value:?}")
                } else {
                    String::new()
                }
            );
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while callers.served(&grpc, &b.key) != NEW_DAY {
            assert!(
                std::time::Instant::now() < deadline,
                "the new release is not served"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        callers.stop.store(true, Ordering::Relaxed);
        let (ok, failed) = (
            callers.ok.load(Ordering::Relaxed),
            callers.failed.load(Ordering::Relaxed),
        );
        drop(callers);
        let _ = server.kill();
        let _ = server.wait();
        assert!(ok > 0, "no call answered");
        assert_eq!(failed, 0, "killed in {stage}: {failed} calls failed");
    }
}

#[test]
fn a_broken_source_fails_the_quality_gate_and_publishes_nothing() {
    let b = base();
    let lake = lake_copy("broken");
    // tonight's transactions arrive with every amount missing
    let drop = lake.with_extension("drop");
    copy_dir(&b.drop, &drop);
    let file = drop.join(format!("transactions_{NEW_DAY}.csv"));
    // bytes, not text: the generator plants badly encoded rows too
    let raw = std::fs::read(&file).unwrap();
    let mut lines = raw.split(|b| *b == b'\n');
    let header = lines.next().unwrap().to_vec();
    let amount = header
        .split(|b| *b == b',')
        .position(|c| c == b"amount")
        .unwrap();
    let mut broken = header.clone();
    for line in lines.filter(|l| !l.is_empty()) {
        broken.push(b'\n');
        let cells: Vec<&[u8]> = line
            .split(|b| *b == b',')
            .enumerate()
            .map(|(i, c)| if i == amount { &b""[..] } else { c })
            .collect();
        broken.extend(cells.join(&b',').iter());
    }
    broken.push(b'\n');
    std::fs::write(&file, broken).unwrap();
    let before = release(&lake);

    let out = refresh_cmd(&lake, &b.config, NEW_DAY, Some(&drop), &[])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("quality gate failed"), "{stderr}");
    assert!(
        stderr.contains("ingest.transactions.quarantine_share"),
        "{stderr}"
    );
    assert_eq!(release(&lake), before, "nothing published");
    let record = &runs(&lake)[0];
    assert_eq!(record["status"], "gate_failed");
    let last = record["stages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["name"].as_str(), last["status"].as_str()),
        (Some("quality"), Some("failed"))
    );
    let failed: Vec<&str> = record["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["outcome"] == "fail")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        failed.contains(&"ingest.transactions.quarantine_share"),
        "{failed:?}"
    );
    // the online store was not touched
    assert!(
        !lake
            .join("_manifests/online/embedded/v0000000002.json")
            .exists()
    );
}

#[test]
fn only_one_refresh_holds_the_lock_and_a_dead_ones_lease_is_taken_over() {
    let b = base();
    let lake = lake_copy("locked");
    let lease = |expires: chrono::DateTime<chrono::Utc>| {
        serde_json::json!({
            "number": 99, "run": "20261207T010000Z-other1", "host": "batch-7", "pid": 4242,
            "acquired_at": chrono::Utc::now(), "expires_at": expires, "released": false,
        })
        .to_string()
    };
    let path = lake.join("_locks/refresh/0000000099.json");
    std::fs::write(
        &path,
        lease(chrono::Utc::now() + chrono::Duration::hours(1)),
    )
    .unwrap();
    let out = refresh_cmd(&lake, &b.config, BASE_DAY, None, &[])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("locked by refresh run 20261207T010000Z-other1 (host batch-7, pid 4242)"),
        "{stderr}"
    );

    // that refresh died: once its lease ran out, the next one takes over
    std::fs::write(
        &path,
        lease(chrono::Utc::now() - chrono::Duration::seconds(1)),
    )
    .unwrap();
    let out = refresh_cmd(&lake, &b.config, BASE_DAY, None, &[])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(lake.join("_locks/refresh/0000000100.json").exists());
}

#[test]
fn retention_keeps_the_release_the_pinned_and_the_newest_snapshots() {
    let b = base();
    let lake = lake_copy("retention");
    let l = lake.to_str().unwrap();
    let bronze_before = crate::support::snapshot(&lake.join("bronze")).len();
    // a server somewhere still serves 2026-01-10
    std::fs::create_dir_all(lake.join("_serving")).unwrap();
    std::fs::write(
        lake.join("_serving/serve-test.json"),
        serde_json::json!({
            "instance": "serve-test", "host": "app-3", "pid": 7, "as_of": "2026-01-10",
            "silver_run": "r", "model": null, "online_folder": null,
            "heartbeat_at": chrono::Utc::now(),
        })
        .to_string(),
    )
    .unwrap();
    let gc = |dry: bool| {
        let mut c = cdp();
        c.args(["gc", "--json", "--lake", l])
            .arg("--config")
            .arg(&b.config)
            .env("CDP__RETENTION__KEEP_SNAPSHOTS", "2")
            .env("CDP__RETENTION__GRACE_MINUTES", "0");
        if dry {
            c.arg("--dry-run");
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let dry = gc(true);
    assert!(dry["files_deleted"].as_u64().unwrap() > 0, "{dry}");
    assert!(
        lake.join("silver/features/as_of=2026-01-03").exists(),
        "a dry run deletes nothing"
    );

    let report = gc(false);
    assert_eq!(report["files_deleted"], dry["files_deleted"]);
    assert_eq!(report["pinned_dates"], serde_json::json!(["2026-01-10"]));
    let silver = json_file(&lake.join("_manifests/silver.json"));
    let kept: Vec<&String> = silver["body"]["snapshots"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(kept, ["2026-01-10", "2026-02-07", BASE_DAY]);
    let files = |date: &str| {
        let dir = lake.join(format!("silver/features/as_of={date}"));
        if dir.exists() {
            crate::support::snapshot(&dir).len()
        } else {
            0
        }
    };
    assert_eq!(files("2026-01-03"), 0);
    assert!(files("2026-01-10") > 0 && files(BASE_DAY) > 0);
    assert_eq!(
        crate::support::snapshot(&lake.join("bronze")).len(),
        bronze_before,
        "bronze is never deleted"
    );
    // what is left still serves and queries
    run_ok(&[
        "query",
        "--lake",
        l,
        &format!("SELECT count(*) FROM gold.scores WHERE as_of = DATE '{BASE_DAY}'"),
    ]);
}

#[test]
fn a_backfill_refreshes_each_date_in_order_without_taking_serving_back() {
    let b = base();
    let lake = lake_copy("backfill");
    let out = cdp()
        .args(["refresh", "--lake", lake.to_str().unwrap(), "--json"])
        .args(["--from", "2026-03-14", "--to", "2026-03-15", "--config"])
        .arg(&b.config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let records: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dates: Vec<&str> = records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["as_of"].as_str().unwrap())
        .collect();
    assert_eq!(dates, ["2026-03-14", "2026-03-15"]);
    let silver = json_file(&lake.join("_manifests/silver.json"));
    for d in dates {
        assert!(
            silver["body"]["snapshots"].get(d).is_some(),
            "{d} not built"
        );
    }
    // serving stays on the later release
    assert_eq!(release(&lake)["body"]["as_of"], BASE_DAY);
    let publish = records[1]["stages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(publish["status"], "skipped", "{publish}");

    // a range that ends before it starts is refused
    let err = crate::support::run_err(&["refresh", "--from", "2026-03-15", "--to", "2026-03-14"]);
    assert!(String::from_utf8_lossy(&err.stderr).contains("is after --to"));
}
