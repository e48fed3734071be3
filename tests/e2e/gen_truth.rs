//! `cdp gen` output breaks the contracts exactly where its truth says, and
//! its counts reconcile with an independent de-duplication.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use cdp_core::contract::Contracts;
use cdp_core::rawfile::for_each_record;

use crate::support::{data_files, generate, read_csv, run_ok, snapshot};

#[test]
fn same_arguments_give_byte_identical_files_and_another_seed_does_not() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    generate(a.path(), 300, 12, 5, 0.05, &["--gzip"]);
    generate(b.path(), 300, 12, 5, 0.05, &["--gzip"]);
    generate(c.path(), 300, 12, 6, 0.05, &["--gzip"]);
    let (sa, sb, sc) = (snapshot(a.path()), snapshot(b.path()), snapshot(c.path()));
    assert_eq!(sa.len(), 5 * 12 + 1 + 5, "data files and the truth sidecar");
    assert!(sa == sb, "same seed, different bytes");
    let differing = sa.iter().filter(|(k, v)| sc.get(*k) != Some(*v)).count();
    assert!(
        differing > 50,
        "another seed changed only {differing} files"
    );
}

/// For each dirty rate: the validator flags exactly the planted rows, with
/// the planted reason; duplicates recounted by key match the truth.
#[test]
fn violations_and_duplicates_are_exactly_the_planted_ones() {
    for rate in [0.0, 0.02, 0.1] {
        let dir = tempfile::tempdir().unwrap();
        let summary = generate(dir.path(), 400, 15, 11, rate, &[]);
        let report = dir.path().join("violations.csv");
        run_ok(&[
            "validate",
            "--source",
            dir.path().to_str().unwrap(),
            "--violations",
            report.to_str().unwrap(),
        ]);

        let planted: BTreeMap<(String, String), String> =
            read_csv(&dir.path().join("_truth/dirty.csv"))
                .into_iter()
                .filter(|r| !r["reason"].is_empty())
                .map(|r| ((r["file"].clone(), r["line"].clone()), r["reason"].clone()))
                .collect();
        let found: BTreeMap<(String, String), String> = read_csv(&report)
            .into_iter()
            .map(|r| ((r["file"].clone(), r["line"].clone()), r["reason"].clone()))
            .collect();
        assert_eq!(found, planted, "rate {rate}");
        if rate == 0.0 {
            assert!(planted.is_empty());
        } else {
            let reasons: BTreeSet<&String> = planted.values().collect();
            assert!(reasons.len() >= 10, "rate {rate}: only {reasons:?}");
        }

        let truth: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("_truth/counts.json")).unwrap())
                .unwrap();
        assert_eq!(truth["sources"], summary["sources"]);
        let bad: HashSet<(String, u64)> = found
            .keys()
            .map(|(f, l)| (f.clone(), l.parse().unwrap()))
            .collect();
        for contract in Contracts::embedded().iter() {
            let mut seen = HashSet::new();
            let (mut read, mut dups, mut quarantined) = (0u64, 0u64, 0u64);
            for path in data_files(dir.path()) {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if !contract.matches_file(&name) {
                    continue;
                }
                read += for_each_record(&path, contract, |raw, _| {
                    if bad.contains(&(name.clone(), raw.line)) {
                        quarantined += 1;
                    } else if !seen.insert(key_of(contract, raw.text)) {
                        dups += 1;
                    }
                })
                .unwrap();
            }
            let t = &truth["sources"][&contract.source];
            assert_eq!(t["read"], read, "{} read", contract.source);
            assert_eq!(t["duplicates"], dups, "{} duplicates", contract.source);
            assert_eq!(
                t["quarantined"], quarantined,
                "{} quarantined",
                contract.source
            );
            assert_eq!(
                t["accepted"],
                read - dups - quarantined,
                "{} accepted",
                contract.source
            );
        }
    }
}

/// The de-duplication key of a valid raw record.
fn key_of(contract: &cdp_core::contract::Contract, text: &[u8]) -> Vec<String> {
    match contract.format {
        cdp_core::contract::Format::Csv => {
            let mut r = csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(text);
            let rec = r.records().next().unwrap().unwrap();
            contract
                .key
                .iter()
                .map(|k| rec[contract.field_index(k).unwrap()].to_string())
                .collect()
        }
        cdp_core::contract::Format::Ndjson => {
            let v: serde_json::Value = serde_json::from_slice(text).unwrap();
            contract.key.iter().map(|k| v[k].to_string()).collect()
        }
    }
}
