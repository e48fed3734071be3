//! The committed sample in `data/samples/` is what `cdp gen` makes from the
//! arguments recorded in its truth, is small, and validates as its truth says.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use crate::support::{cdp, repo_root, snapshot};

fn decompressed(files: BTreeMap<PathBuf, Vec<u8>>) -> BTreeMap<PathBuf, Vec<u8>> {
    files
        .into_iter()
        .map(|(path, bytes)| {
            if path.extension().is_some_and(|e| e == "gz") {
                let mut out = Vec::new();
                flate2::read::MultiGzDecoder::new(bytes.as_slice())
                    .read_to_end(&mut out)
                    .unwrap();
                (path, out)
            } else {
                (path, bytes)
            }
        })
        .collect()
}

#[test]
fn committed_sample_is_reproducible_small_and_valid() {
    let sample = repo_root().join("data/samples");
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sample.join("_truth/counts.json")).unwrap()).unwrap();
    let g = &truth["generator"];
    let bytes: u64 = snapshot(&sample).values().map(|v| v.len() as u64).sum();
    assert!(bytes < 15_000_000, "sample is {bytes} bytes");

    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = [
        "gen",
        "--out",
        dir.path().to_str().unwrap(),
        "--customers",
        &g["customers"].to_string(),
        "--days",
        &g["days"].to_string(),
        "--seed",
        &g["seed"].to_string(),
        "--dirty-rate",
        &g["dirty_rate"].to_string(),
        "--start",
        g["start"].as_str().unwrap(),
        "--json",
    ]
    .map(String::from)
    .to_vec();
    if g["gzip"].as_bool().unwrap() {
        args.push("--gzip".into());
    }
    let out = cdp().args(&args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Compare content, not compressed bytes: the deflate backend may change
    // with dependency versions while the data stays the same.
    let mut committed = decompressed(snapshot(&sample));
    committed.remove(std::path::Path::new("README.md"));
    assert!(
        committed == decompressed(snapshot(dir.path())),
        "data/samples is stale: regenerate it with the command in data/samples/README.md"
    );

    let report = cdp()
        .args(["validate", "--source", sample.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(report.status.success());
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    for (source, counts) in truth["sources"].as_object().unwrap() {
        assert_eq!(
            report["sources"][source]["rows"], counts["read"],
            "{source}"
        );
        assert_eq!(
            report["sources"][source]["invalid"], counts["quarantined"],
            "{source}"
        );
    }
}
