//! `cdp build` on an Apache DataFusion Ballista cluster: a scheduler and two
//! executors, each its own `cdp cluster` process on loopback, build exactly
//! the silver tables the in-process engine builds; an executor killed in the
//! middle of a build either has its tasks run elsewhere or fails the build
//! with nothing published, and the lake is whole either way. `cdp offers`
//! and `cdp historical` on the cluster give the files they give in process.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    cdp, copy_dir, generate, read_csv, repo_root, run_ok, run_ok_with, spawn_until_ready,
};

/// A scheduler and its executors, killed on drop.
struct Cluster {
    scheduler: Child,
    addr: String,
    executors: Vec<Child>,
    logs: tempfile::TempDir,
}

impl Cluster {
    /// Starts a scheduler and `executors` executors over `lake`, and waits
    /// until the scheduler says they all joined (`/readyz`).
    fn start(lake: &Path, executors: usize) -> Cluster {
        let logs = tempfile::tempdir().unwrap();
        let mut command = cdp();
        command.args([
            "cluster",
            "scheduler",
            "--lake",
            lake.to_str().unwrap(),
            "--addr",
            "127.0.0.1:0",
            "--min-executors",
            &executors.to_string(),
            "--executor-timeout",
            "2",
            "--json",
        ]);
        let (scheduler, ready) = spawn_until_ready(command, &logs.path().join("scheduler.log"));
        let addr = ready["scheduler"].as_str().unwrap().to_string();
        let mut cluster = Cluster {
            scheduler,
            addr,
            executors: Vec::new(),
            logs,
        };
        for i in 0..executors {
            let log = std::fs::File::create(cluster.logs.path().join(format!("executor-{i}.log")))
                .unwrap();
            let work = cluster.logs.path().join(format!("work-{i}"));
            std::fs::create_dir_all(&work).unwrap();
            let child = cdp()
                .args([
                    "cluster",
                    "executor",
                    "--lake",
                    lake.to_str().unwrap(),
                    "--scheduler",
                    &cluster.addr,
                    "--flight-port",
                    &free_port().to_string(),
                    "--grpc-port",
                    &free_port().to_string(),
                    "--tasks",
                    "2",
                    "--heartbeat",
                    "1",
                    "--work-dir",
                    work.to_str().unwrap(),
                ])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("cdp cluster executor starts");
            cluster.executors.push(child);
        }
        cluster.wait_ready();
        cluster
    }

    /// Polls `GET /readyz` until the scheduler counts every executor.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = http_status(&self.addr, "/readyz")
                && status == 200
            {
                return;
            }
            for (i, executor) in self.executors.iter_mut().enumerate() {
                if let Some(status) = executor.try_wait().unwrap() {
                    panic!(
                        "executor {i} exited ({status}): {}",
                        self.log(&format!("executor-{i}.log"))
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "the executors did not join: {}",
                self.log("scheduler.log")
            );
            std::thread::park_timeout(Duration::from_millis(100));
        }
    }

    fn engine(&self) -> String {
        format!("ballista://{}", self.addr)
    }

    /// `cdp build` of `lake` as of `as_of` on this cluster, with `--json`.
    fn build(&self, lake: &Path, as_of: &str) -> Command {
        let mut command = cdp();
        command.args([
            "build",
            "--lake",
            lake.to_str().unwrap(),
            "--as-of",
            as_of,
            "--engine",
            &self.engine(),
            "--json",
        ]);
        command
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.logs.path().join(name)).unwrap_or_default()
    }

    /// SIGKILL, as when a machine is lost.
    fn kill_executor(&mut self, i: usize) {
        let _ = self.executors[i].kill();
        let _ = self.executors[i].wait();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.executors.iter_mut().chain([&mut self.scheduler]) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The status of `GET path` on `addr` (HTTP/1.1), `None` when nothing answers.
fn http_status(addr: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

/// The silver tables a build publishes, as sorted rows.
const SILVER: [(&str, &str); 3] = [
    (
        "identity_map",
        "SELECT * FROM silver.identity_map ORDER BY source, source_key, unified_id",
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

/// Every silver table of `lake`, as CSV rows.
fn silver(lake: &Path, dir: &Path) -> BTreeMap<&'static str, Vec<BTreeMap<String, String>>> {
    SILVER
        .iter()
        .map(|(table, sql)| {
            let out = dir.join(format!("{table}-{}.csv", std::process::id()));
            let out_arg = out.to_str().unwrap();
            run_ok(&[
                "query",
                "--lake",
                lake.to_str().unwrap(),
                "--format",
                "csv",
                "--out",
                out_arg,
                sql,
            ]);
            let rows = read_csv(&out);
            std::fs::remove_file(&out).unwrap();
            (*table, rows)
        })
        .collect()
}

/// A generated bank ingested into `dir/lake`; returns the lake, a copy of it
/// built in process as of the last day (the reference), and that day.
fn lakes(dir: &Path) -> (PathBuf, PathBuf, String) {
    let raw = dir.join("raw");
    let truth = generate(&raw, 300, 20, 11, 0.02, &[]);
    let as_of = truth["last_day"].as_str().unwrap().to_string();
    let lake = dir.join("lake");
    run_ok(&[
        "ingest",
        "--lake",
        lake.to_str().unwrap(),
        "--source",
        raw.to_str().unwrap(),
    ]);
    let reference = dir.join("reference");
    copy_dir(&lake, &reference);
    run_ok(&[
        "build",
        "--lake",
        reference.to_str().unwrap(),
        "--as-of",
        &as_of,
    ]);
    (lake, reference, as_of)
}

fn assert_same_silver(lake: &Path, reference: &Path, dir: &Path) {
    let got = silver(lake, dir);
    let want = silver(reference, dir);
    for (table, rows) in &want {
        assert!(!rows.is_empty(), "silver.{table} is empty");
        assert_eq!(
            got[table].len(),
            rows.len(),
            "silver.{table}: row counts differ"
        );
        for (i, (g, w)) in got[table].iter().zip(rows).enumerate() {
            assert_eq!(g, w, "silver.{table} row {i} differs");
        }
    }
}

/// Folders a build left in the lake's scratch space, besides the shared
/// small tables.
fn leftover_scratch(lake: &Path) -> Vec<String> {
    match std::fs::read_dir(lake.join("_scratch")) {
        Err(_) => Vec::new(),
        Ok(entries) => entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name != "tables")
            .collect(),
    }
}

#[test]
fn a_ballista_cluster_builds_the_silver_tables_the_in_process_engine_builds() {
    let dir = tempfile::tempdir().unwrap();
    let (lake, reference, as_of) = lakes(dir.path());
    let cluster = Cluster::start(&lake, 2);
    let out = run_ok_with(cluster.build(&lake, &as_of), &[]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(report["persons"].as_u64().unwrap() > 0, "{report}");
    assert_same_silver(&lake, &reference, dir.path());
    assert_eq!(leftover_scratch(&lake), Vec::<String>::new());
}

#[test]
fn an_executor_killed_mid_build_is_survived_or_fails_the_build_with_nothing_published() {
    let dir = tempfile::tempdir().unwrap();
    let (lake, reference, as_of) = lakes(dir.path());
    let mut cluster = Cluster::start(&lake, 2);
    let stderr = dir.path().join("build.err");
    let mut build = cluster
        .build(&lake, &as_of)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    // The identity map is written before the cluster runs the customer 360
    // and the features: kill an executor once it is there.
    let identity = lake.join(format!("silver/identity_map/as_of={as_of}"));
    let deadline = Instant::now() + Duration::from_secs(300);
    while !identity.exists() && build.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the build never got going");
        std::thread::park_timeout(Duration::from_millis(20));
    }
    cluster.kill_executor(0);
    let status = loop {
        if let Some(status) = build.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = build.kill();
            panic!(
                "the build hangs after losing an executor: {}",
                cluster.log("scheduler.log")
            );
        }
        std::thread::park_timeout(Duration::from_millis(50));
    };
    let published = lake.join("_manifests/silver.json");
    if status.success() {
        eprintln!("the build survived the lost executor");
        // the lost executor's tasks ran on the other one
        assert_same_silver(&lake, &reference, dir.path());
    } else {
        let message = std::fs::read_to_string(&stderr).unwrap();
        assert!(message.starts_with("error: "), "{message}");
        assert!(
            !published.exists(),
            "a failed build published silver: {message}"
        );
        eprintln!("the build failed cleanly: {message}");
        // the survivor finishes the night's build on its own
        run_ok_with(cluster.build(&lake, &as_of), &[]);
        assert_same_silver(&lake, &reference, dir.path());
    }
    assert_eq!(leftover_scratch(&lake), Vec::<String>::new());
}

#[test]
fn offer_lists_and_training_sets_made_on_the_cluster_equal_those_made_in_process() {
    let world = crate::audience::world();
    let lake = Path::new(&world.lake);
    let cluster = Cluster::start(lake, 2);
    let engines = [
        ("local".to_string(), "local"),
        (cluster.engine(), "cluster"),
    ];

    // an offer list with a suppression list file, its run record's funnel
    let audience = repo_root().join("pipelines/audiences/travel_card.toml");
    let lists: Vec<(Vec<u8>, serde_json::Value)> = engines
        .iter()
        .map(|(engine, name)| {
            let out = crate::audience::fresh(&format!("{name}.csv"));
            let record = run_ok(&[
                "offers",
                "--lake",
                &world.lake,
                "--audience",
                audience.to_str().unwrap(),
                "--as-of",
                crate::audience::D,
                "--out",
                out.to_str().unwrap(),
                "--engine",
                engine,
                "--json",
            ]);
            let record: serde_json::Value = serde_json::from_str(&record).unwrap();
            (std::fs::read(&out).unwrap(), record["funnel"].clone())
        })
        .collect();
    assert!(lists[0].0.len() > 200, "{} bytes", lists[0].0.len());
    assert_eq!(lists[1].1, lists[0].1, "the funnels differ");
    assert!(lists[1].0 == lists[0].0, "the lists differ");

    // a training set: every customer at three instants
    let customers = run_ok(&[
        "query",
        "--lake",
        &world.lake,
        "--format",
        "csv",
        "SELECT DISTINCT source_key FROM silver.identity_map \
         WHERE source = 'customers' ORDER BY source_key",
    ]);
    let entities = crate::audience::fresh("entities.csv");
    let mut text = String::from("customer_id,event_timestamp\n");
    for customer in customers.lines().skip(1) {
        for ts in [
            "2026-03-17T09:30:00+08:00",
            "2026-03-16T23:59:59+08:00",
            "2026-02-01T00:00:00Z",
        ] {
            text.push_str(&format!("{customer},{ts}\n"));
        }
    }
    std::fs::write(&entities, text).unwrap();
    let sets: Vec<Vec<u8>> = engines
        .iter()
        .map(|(engine, name)| {
            let out = crate::audience::fresh(&format!("{name}-train.csv"));
            run_ok(&[
                "historical",
                "--lake",
                &world.lake,
                "--entities",
                entities.to_str().unwrap(),
                "--service",
                "card_offers_v1",
                "--out",
                out.to_str().unwrap(),
                "--engine",
                engine,
            ]);
            std::fs::read(&out).unwrap()
        })
        .collect();
    assert!(sets[0].len() > 10_000, "{} bytes", sets[0].len());
    assert!(sets[1] == sets[0], "the training sets differ");
    assert_eq!(leftover_scratch(lake), Vec::<String>::new());
}
