//! `cdp ingest`: bronze equals what the generator says it should be, runs
//! are idempotent and incremental, a killed run is finished by the next,
//! valid edge cases pass and broken files are reported.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;

use polars::prelude::*;

use crate::support::{cdp, data_files, generate, read_csv, run_err};

/// Runs `cdp ingest` and returns its JSON report.
fn ingest(source: &Path, lake: &Path) -> serde_json::Value {
    let out = cdp()
        .args([
            "ingest",
            "--json",
            "--source",
            source.to_str().unwrap(),
            "--lake",
            lake.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn manifest(lake: &Path, source: &str) -> serde_json::Value {
    let text = std::fs::read(lake.join(format!("_manifests/bronze/{source}.json"))).unwrap();
    serde_json::from_slice(&text).unwrap()
}

fn read_parquet(path: &Path) -> DataFrame {
    ParquetReader::new(std::fs::File::open(path).unwrap())
        .finish()
        .unwrap()
}

/// All rows of a source's bronze (or quarantine) files, as the manifest names them.
fn table(lake: &Path, source: &str, kind: &str) -> DataFrame {
    let m = manifest(lake, source);
    let mut frames = m["body"][kind]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| read_parquet(&lake.join(p["path"].as_str().unwrap())));
    let mut df = frames.next().unwrap_or_default();
    for f in frames {
        df.vstack_mut_owned(f).unwrap();
    }
    df
}

fn strings(df: &DataFrame, column: &str) -> Vec<String> {
    let c = df.column(column).unwrap().cast(&DataType::String).unwrap();
    c.str()
        .unwrap()
        .iter()
        .map(|v| v.unwrap_or("").to_string())
        .collect()
}

const SOURCES: [&str; 6] = [
    "card_products",
    "customers",
    "device_events",
    "offer_events",
    "social_profiles",
    "transactions",
];

#[test]
fn counts_bronze_and_quarantine_equal_the_generator_truth() {
    for rate in [0.0, 0.03, 0.15] {
        let (raw, lake) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let truth = generate(raw.path(), 150, 6, 21, rate, &["--gzip"]);
        let report = ingest(raw.path(), lake.path());
        let planted: BTreeSet<(String, i64, String)> =
            read_csv(&raw.path().join("_truth/dirty.csv"))
                .into_iter()
                .filter(|r| !r["reason"].is_empty())
                .map(|r| {
                    (
                        r["file"].clone(),
                        r["line"].parse().unwrap(),
                        r["reason"].clone(),
                    )
                })
                .collect();
        let mut quarantined = BTreeSet::new();
        for source in SOURCES {
            let (got, want) = (&report["sources"][source], &truth["sources"][source]);
            for k in ["read", "accepted", "duplicates", "quarantined"] {
                assert_eq!(got[k], want[k], "rate {rate}: {source} {k}");
            }
            let bronze = table(lake.path(), source, "parts");
            assert_eq!(
                bronze.height() as u64,
                want["accepted"].as_u64().unwrap(),
                "{source} bronze rows"
            );
            if want["quarantined"].as_u64().unwrap() > 0 {
                let q = table(lake.path(), source, "quarantine");
                let lines = q.column("_line").unwrap().i64().unwrap().clone();
                for ((file, line), (reason, text)) in strings(&q, "_file")
                    .into_iter()
                    .zip(lines.into_no_null_iter())
                    .zip(strings(&q, "reason").into_iter().zip(strings(&q, "text")))
                {
                    assert!(!text.is_empty(), "{file}:{line} keeps its text");
                    quarantined.insert((file, line, reason));
                }
            }
        }
        assert_eq!(
            quarantined, planted,
            "rate {rate}: quarantine = planted rows, with their reasons"
        );
    }
}

fn copy_files(from: &Path, to: &Path, keep: impl Fn(&str) -> bool) {
    std::fs::create_dir_all(to).unwrap();
    for f in data_files(from) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if keep(&name) {
            std::fs::copy(&f, to.join(&name)).unwrap();
        }
    }
}

#[test]
fn rerunning_adds_nothing_and_a_new_day_adds_exactly_its_rows() {
    let (raw, src, lake) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let truth = generate(raw.path(), 150, 5, 8, 0.05, &[]);
    let last_day = "2026-01-05";
    copy_files(raw.path(), src.path(), |n| !n.contains(last_day));
    let first = ingest(src.path(), lake.path());
    let again = ingest(src.path(), lake.path());
    for source in SOURCES {
        assert_eq!(again["sources"][source]["read"], 0, "{source}");
        assert_eq!(again["sources"][source]["files"], 0, "{source}");
    }
    copy_files(raw.path(), src.path(), |n| n.contains(last_day));
    let second = ingest(src.path(), lake.path());

    // what the truth says the last day's files hold
    let dirty = read_csv(&raw.path().join("_truth/dirty.csv"));
    for source in SOURCES.iter().filter(|s| **s != "card_products") {
        let file = data_files(raw.path())
            .into_iter()
            .find(|f| {
                let n = f.file_name().unwrap().to_string_lossy().into_owned();
                n.starts_with(&format!("{source}_")) && n.contains(last_day)
            })
            .unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let contract = cdp_core::contract::Contracts::embedded()
            .get(source)
            .unwrap();
        let read = cdp_core::rawfile::for_each_record(&file, contract, |_, _| {}).unwrap();
        let in_file = dirty.iter().filter(|r| r["file"] == name);
        let dups = in_file.clone().filter(|r| r["kind"] == "duplicate").count() as u64;
        let bad = in_file.filter(|r| !r["reason"].is_empty()).count() as u64;
        let got = &second["sources"][source];
        assert_eq!(got["read"], read, "{source}");
        assert_eq!(got["duplicates"], dups, "{source}");
        assert_eq!(got["quarantined"], bad, "{source}");
        let total = first["sources"][source]["accepted"].as_u64().unwrap()
            + got["accepted"].as_u64().unwrap();
        assert_eq!(
            total, truth["sources"][source]["accepted"],
            "{source} accepted over both runs"
        );
        assert_eq!(
            table(lake.path(), source, "parts").height() as u64,
            total,
            "{source} bronze rows"
        );
    }
}

/// Bronze content independent of run ids and file names: sorted lines of
/// (file, line) per source.
fn bronze_content(lake: &Path) -> BTreeMap<String, Vec<(String, i64)>> {
    SOURCES
        .iter()
        .map(|s| {
            let df = table(lake, s, "parts");
            let lines = df.column("_line").unwrap().i64().unwrap().clone();
            let mut rows: Vec<(String, i64)> = strings(&df, "_file")
                .into_iter()
                .zip(lines.into_no_null_iter())
                .collect();
            rows.sort();
            (s.to_string(), rows)
        })
        .collect()
}

#[test]
fn a_run_killed_at_any_moment_is_finished_by_the_next() {
    let raw = tempfile::tempdir().unwrap();
    generate(raw.path(), 800, 8, 4, 0.02, &[]);
    let reference = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    ingest(raw.path(), reference.path());
    let full_run = started.elapsed();
    let expected = bronze_content(reference.path());
    let mut partial_states = 0;
    // kill at moments spread over what a whole run takes on this machine
    for fraction in [0.05, 0.2, 0.4, 0.6, 0.8] {
        let delay = full_run.mul_f64(fraction);
        let lake = tempfile::tempdir().unwrap();
        let mut child = cdp()
            .args([
                "ingest",
                "--json",
                "--source",
                raw.path().to_str().unwrap(),
                "--lake",
                lake.path().to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        let published = SOURCES
            .iter()
            .filter(|s| {
                lake.path()
                    .join(format!("_manifests/bronze/{s}.json"))
                    .exists()
            })
            .count();
        if !status.success() && published < SOURCES.len() {
            partial_states += 1;
        }
        ingest(raw.path(), lake.path());
        assert_eq!(
            bronze_content(lake.path()),
            expected,
            "killed after {delay:?}"
        );
    }
    assert!(
        partial_states >= 2,
        "only {partial_states} kills landed mid-run"
    );
}

#[test]
fn valid_edge_cases_are_accepted_and_typed() {
    let (src, lake) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let header = "txn_id,customer_id,card_id,ts,amount,currency,mcc,merchant_id,merchant_name,channel,country,status\n";
    let rows = "T1,C100000001,K1,2026-01-15T23:59:59+08:00,12.5,CNY,5812,M1,\"Wang's \"\"Golden\"\" Dumplings, Ltd\",pos,CN,approved\n\
        T2,C100000001,K1,2026-01-15T16:00:00Z,-3,CNY,5812,M1,,pos,CN,approved\n\
        T3,C100000002,K2,2026-01-15T11:30:00-05:00,5400,JPY,5812,M2,海底捞火锅,pos,JP,declined\r\n";
    std::fs::write(
        src.path().join("transactions_a.csv"),
        format!("{header}{rows}"),
    )
    .unwrap();
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(src.path().join("transactions_b.csv.gz")).unwrap(),
        flate2::Compression::default(),
    );
    std::io::Write::write_all(&mut gz, format!("{header}T4,C100000003,K3,2026-01-16T08:00:00+08:00,1,CNY,5411,M3,Café,pos,CN,approved\n").as_bytes()).unwrap();
    gz.finish().unwrap();
    let report = ingest(src.path(), lake.path());
    let t = &report["sources"]["transactions"];
    assert_eq!(
        (t["read"].as_u64(), t["accepted"].as_u64()),
        (Some(4), Some(4)),
        "{report}"
    );

    let df = table(lake.path(), "transactions", "parts")
        .sort(["txn_id"], SortMultipleOptions::default())
        .unwrap();
    assert_eq!(
        strings(&df, "merchant_name"),
        ["Wang's \"Golden\" Dumplings, Ltd", "", "海底捞火锅", "Café"]
    );
    assert_eq!(
        strings(&df, "amount"),
        ["12.50", "-3.00", "5400.00", "1.00"]
    );
    assert_eq!(
        strings(&df, "dt"),
        ["2026-01-15", "2026-01-16", "2026-01-16", "2026-01-16"]
    );
    assert!(
        df.column("ts").unwrap().dtype().to_string().contains("UTC"),
        "{:?}",
        df.column("ts").unwrap().dtype()
    );
    assert!(
        lake.path()
            .join("bronze/transactions/dt=2026-01-16")
            .is_dir()
    );
}

#[test]
fn a_broken_file_is_reported_by_path_and_the_rest_still_ingests() {
    let (src, lake) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    generate(src.path(), 60, 2, 1, 0.0, &[]);
    std::fs::write(
        src.path().join("transactions_2026-01-03.csv.gz"),
        b"not gzip at all",
    )
    .unwrap();
    std::fs::write(
        src.path().join("offer_events_2026-01-03.csv"),
        "id,when\n1,2\n",
    )
    .unwrap();
    let out = run_err(&[
        "ingest",
        "--source",
        src.path().to_str().unwrap(),
        "--lake",
        lake.path().to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("transactions_2026-01-03.csv.gz"),
        "{stderr}"
    );
    assert!(
        stderr.contains("offer_events_2026-01-03.csv") && stderr.contains("missing columns"),
        "{stderr}"
    );
    let bronze = table(lake.path(), "transactions", "parts");
    assert!(bronze.height() > 0, "the good files are in");
}
