//! A lake on S3-compatible object storage: `s3s-fs` (crates.io, a real S3
//! server over a folder), started on a free loopback port, holds the lake
//! for a whole ingest → build → materialize → serve run with exactly the
//! answers of a local lake; manifest versions are committed there by
//! conditional puts; a store restarted in the middle of an ingest is
//! finished by the re-run, with nothing lost and nothing twice.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use cdp_core::config::{LakeConfig, S3Config};
use cdp_core::lake::Lake;
use cdp_server::auth::{hash_key, new_key};
use cdp_server::pb;
use cdp_server::pb::feature_service_client::FeatureServiceClient;

use crate::support::{cdp, generate, read_csv, run_ok_with as ok, spawn_until_ready};

const BUCKET: &str = "cdp-lake";
const ACCESS_KEY: &str = "cdp-e2e-access";
const SECRET_KEY: &str = "cdp-e2e-secret-0123456789";

/// A running `s3s-fs` over a temporary folder, killed on drop.
struct S3Server {
    root: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl S3Server {
    /// Starts `s3s-fs` with one bucket, or `None` (after saying so) when it
    /// is not installed and `CDP_REQUIRE_S3` is unset.
    fn start() -> Option<S3Server> {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(BUCKET)).unwrap();
        let mut server = S3Server {
            root,
            port: 0,
            child: None,
        };
        match server.spawn() {
            Ok(()) => Some(server),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                assert!(
                    std::env::var_os("CDP_REQUIRE_S3").is_none(),
                    "CDP_REQUIRE_S3 is set but s3s-fs is not installed (cargo install s3s-fs --features binary)"
                );
                eprintln!("skipping: s3s-fs is not installed");
                None
            }
            Err(e) => panic!("s3s-fs does not start: {e}"),
        }
    }

    /// Spawns the server on `self.port` (0 the first time: any free port)
    /// and waits for the line saying it listens.
    fn spawn(&mut self) -> std::io::Result<()> {
        let mut child = Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(self.root.path())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let port = loop {
            line.clear();
            if lines.read_line(&mut line).unwrap() == 0 {
                let _ = child.kill();
                panic!("s3s-fs exited before listening");
            }
            if let Some(at) = line.split("server is running at http://127.0.0.1:").nth(1) {
                break at.trim().parse::<u16>().expect("a port");
            }
        };
        // keep draining its log so it never blocks on a full pipe
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut lines, &mut std::io::sink());
        });
        self.port = port;
        self.child = Some(child);
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        self.kill();
        self.spawn().expect("s3s-fs restarts");
    }

    fn uri(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}")
    }

    /// The standard AWS variables that point cdp at this server.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
        ]
    }

    fn cdp(&self) -> Command {
        let mut command = cdp();
        command.envs(self.env());
        command
    }

    fn lake(&self, prefix: &str) -> Lake {
        Lake::connect(&LakeConfig {
            uri: self.uri(prefix),
            s3: S3Config {
                endpoint: format!("http://127.0.0.1:{}", self.port),
                access_key_id: ACCESS_KEY.into(),
                secret_access_key: SECRET_KEY.into(),
                allow_http: true,
                ..S3Config::default()
            },
        })
        .unwrap()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Rows of `cdp query SQL` over `lake`, as CSV maps.
fn query(command: Command, lake: &str, sql: &str, dir: &Path) -> Vec<BTreeMap<String, String>> {
    let out = dir.join(format!("q-{}.csv", new_key()));
    let out_arg = out.to_str().unwrap();
    ok(
        command,
        &[
            "query", "--lake", lake, "--format", "csv", "--out", out_arg, sql,
        ],
    );
    read_csv(&out)
}

/// The silver tables a build publishes, as sorted rows.
const SILVER: [(&str, &str); 3] = [
    (
        "identity_map",
        "SELECT source, source_key, unified_id, matched_by FROM silver.identity_map ORDER BY 1, 2, 3",
    ),
    (
        "customer_360",
        "SELECT * FROM silver.customer_360 ORDER BY unified_id",
    ),
    (
        "features",
        "SELECT * FROM silver.features ORDER BY unified_id",
    ),
];

/// The row counts of every bronze table.
const BRONZE: &str = "SELECT 'card_products' AS t, count(*) AS n FROM bronze.card_products \
    UNION ALL SELECT 'customers', count(*) FROM bronze.customers \
    UNION ALL SELECT 'device_events', count(*) FROM bronze.device_events \
    UNION ALL SELECT 'offer_events', count(*) FROM bronze.offer_events \
    UNION ALL SELECT 'social_profiles', count(*) FROM bronze.social_profiles \
    UNION ALL SELECT 'transactions', count(*) FROM bronze.transactions ORDER BY t";

#[test]
fn a_lake_on_s3_builds_materializes_and_serves_what_a_local_lake_does() {
    let Some(s3) = S3Server::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    let truth = generate(&raw, 400, 20, 3, 0.02, &[]);
    let as_of = truth["last_day"].as_str().unwrap().to_string();
    let local = dir.path().join("lake").to_str().unwrap().to_string();
    let remote = s3.uri("prod");
    for lake in [&local, &remote] {
        ok(
            s3.cdp(),
            &["ingest", "--lake", lake, "--source", raw.to_str().unwrap()],
        );
        ok(s3.cdp(), &["build", "--lake", lake, "--as-of", &as_of]);
    }
    let q = |lake: &str, sql: &str| query(s3.cdp(), lake, sql, dir.path());
    assert_eq!(q(&remote, BRONZE), q(&local, BRONZE), "bronze row counts");
    for (table, sql) in SILVER {
        let (ours, theirs) = (q(&remote, sql), q(&local, sql));
        assert!(!ours.is_empty(), "silver.{table} is empty");
        assert_eq!(
            ours.len(),
            theirs.len(),
            "silver.{table}: rows on S3 vs local"
        );
        for (i, (o, t)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(o, t, "silver.{table} row {i} on S3 vs local");
        }
    }
    // the lake lives in the bucket, under its prefix
    let bucket = s3.root.path().join(BUCKET);
    assert!(bucket.join("prod/_manifests/silver.json").is_file());

    // materialize into the lake's embedded online store, serve from S3
    ok(
        s3.cdp(),
        &["materialize", "--lake", &remote, "--as-of", &as_of],
    );
    let key = new_key();
    let config = dir.path().join("cdp.toml");
    std::fs::write(
        &config,
        format!(
            "[[server.api_keys]]\nteam = \"app\"\nkey_sha256 = \"{}\"\nscopes = [\"features\"]\n",
            hash_key(&key)
        ),
    )
    .unwrap();
    let mut command = s3.cdp();
    command
        .args([
            "serve",
            "--json",
            "--lake",
            &remote,
            "--addr",
            "127.0.0.1:0",
        ])
        .args(["--metrics-addr", "127.0.0.1:0", "--config"])
        .arg(&config);
    let (mut server, ready) = spawn_until_ready(command, &dir.path().join("serve.log"));
    let features = q(
        &local,
        "SELECT unified_id, txn_count_30d FROM silver.features ORDER BY unified_id LIMIT 25",
    );
    let answer = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let addr = format!("http://{}", ready["grpc"].as_str().unwrap());
        let mut client = FeatureServiceClient::connect(addr).await.unwrap();
        let mut request = tonic::Request::new(pb::GetOnlineFeaturesRequest {
            entities: features
                .iter()
                .map(|r| pb::CustomerKey {
                    kind: pb::KeyKind::UnifiedId as i32,
                    value: r["unified_id"].clone(),
                })
                .collect(),
            selection: Some(pb::get_online_features_request::Selection::Features(
                pb::FeatureList {
                    names: vec!["txn_count_30d".into()],
                },
            )),
            // judged at the snapshot's cutoff, D+1 00:00 Asia/Shanghai
            at: Some(prost_types::Timestamp {
                seconds: cutoff(&as_of),
                nanos: 0,
            }),
        });
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {key}").parse().unwrap());
        client.get_online_features(request).await
    });
    let _ = server.kill();
    let _ = server.wait();
    let answer = answer
        .expect("GetOnlineFeatures over an S3 lake")
        .into_inner();
    let column = &answer.columns[0];
    for (i, row) in features.iter().enumerate() {
        assert_eq!(answer.unified_ids[i], row["unified_id"]);
        let present = pb::FeatureStatus::Present as i32;
        let expected = if row["txn_count_30d"].is_empty() {
            pb::FeatureStatus::Missing as i32
        } else {
            present
        };
        assert_eq!(column.statuses[i], expected, "{}", row["unified_id"]);
        let got = match column.values[i].kind {
            Some(pb::feature_value::Kind::Int64Value(v)) => v.to_string(),
            None => String::new(),
            ref other => panic!("txn_count_30d as {other:?}"),
        };
        assert_eq!(got, row["txn_count_30d"], "{}", row["unified_id"]);
    }
}

/// Unix seconds of D+1 00:00 in Asia/Shanghai (UTC+8) for date `d`.
fn cutoff(d: &str) -> i64 {
    let day = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
    let next = day.succ_opt().unwrap().and_hms_opt(0, 0, 0).unwrap();
    next.and_utc().timestamp() - 8 * 3_600
}

#[test]
fn manifest_versions_are_committed_by_conditional_puts_on_s3() {
    let Some(s3) = S3Server::start() else { return };
    let lake = s3.lake("commit");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        // exactly one of two writers creates an object
        let first = lake.put_create("x/once.json", "a".into()).await.unwrap();
        let second = lake.put_create("x/once.json", "b".into()).await.unwrap();
        assert_eq!((first, second), (true, false));
        assert_eq!(lake.get("x/once.json").await.unwrap().unwrap(), "a");
        // a stale writer of a manifest is refused, the winner stays current
        lake.publish("silver", &1u32, Some(0)).await.unwrap();
        let stale = lake.publish("silver", &2u32, Some(0)).await.unwrap_err();
        assert!(stale.to_string().contains("another writer"), "{stale}");
        let current = lake.read_manifest::<u32>("silver").await.unwrap().unwrap();
        assert_eq!((current.version, current.body), (1, 1));
    });
}

#[test]
fn an_ingest_whose_store_restarts_is_finished_by_the_rerun_without_duplicates() {
    let Some(mut s3) = S3Server::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    generate(&raw, 1_500, 30, 9, 0.02, &[]);
    let local = dir.path().join("lake").to_str().unwrap().to_string();
    let started = std::time::Instant::now();
    ok(
        s3.cdp(),
        &[
            "ingest",
            "--lake",
            &local,
            "--source",
            raw.to_str().unwrap(),
        ],
    );
    let full_run = started.elapsed();
    let expected = query(s3.cdp(), &local, BRONZE, dir.path());

    for (i, fraction) in [0.2, 0.5, 0.8].into_iter().enumerate() {
        let remote = s3.uri(&format!("restart-{i}"));
        let mut ingest = s3
            .cdp()
            .args([
                "ingest",
                "--lake",
                &remote,
                "--source",
                raw.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // the store dies at a moment spread over what a whole run takes,
        // and comes back on the same port; the run retries or fails
        let mut watcher = ingest.stderr.take().unwrap();
        let log = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = watcher.read_to_string(&mut text);
            text
        });
        std::thread::sleep(full_run.mul_f64(fraction));
        s3.restart();
        let status = ingest.wait().unwrap();
        let log = log.join().unwrap();
        assert!(
            status.success() || log.contains("error"),
            "a failed run says why: {log}"
        );
        ok(
            s3.cdp(),
            &[
                "ingest",
                "--lake",
                &remote,
                "--source",
                raw.to_str().unwrap(),
            ],
        );
        assert_eq!(
            query(s3.cdp(), &remote, BRONZE, dir.path()),
            expected,
            "restarted after {fraction} of a run ({}; first run {})",
            remote,
            if status.success() {
                "finished"
            } else {
                "failed"
            }
        );
    }
}
