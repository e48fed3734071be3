//! Running `cdp` and reading what it wrote.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

/// The `cdp` binary under test.
pub fn cdp() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cdp"));
    cmd.env_remove("CDP_LAKE").env("RUST_BACKTRACE", "0");
    cmd
}

/// Runs `cdp ARGS`, asserting success; returns stdout.
pub fn run_ok(args: &[&str]) -> String {
    run_ok_with(cdp(), args)
}

/// Runs `command ARGS` (a [`cdp`] with its own environment), asserting
/// success; returns stdout.
pub fn run_ok_with(mut command: Command, args: &[&str]) -> String {
    let out = command.args(args).output().expect("cdp runs");
    assert!(
        out.status.success(),
        "cdp {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Runs `cdp ARGS`, asserting failure; returns the output.
pub fn run_err(args: &[&str]) -> Output {
    let out = cdp().args(args).output().expect("cdp runs");
    assert!(!out.status.success(), "cdp {args:?} should fail");
    out
}

/// Generates a data set into `dir` and returns the `--json` summary.
pub fn generate(
    dir: &Path,
    customers: u32,
    days: u32,
    seed: u64,
    rate: f64,
    extra: &[&str],
) -> serde_json::Value {
    let (c, d, s, r) = (
        customers.to_string(),
        days.to_string(),
        seed.to_string(),
        rate.to_string(),
    );
    let mut args = vec![
        "gen",
        "--out",
        dir.to_str().unwrap(),
        "--customers",
        &c,
        "--days",
        &d,
        "--seed",
        &s,
        "--dirty-rate",
        &r,
        "--json",
    ];
    args.extend_from_slice(extra);
    serde_json::from_str(&run_ok(&args)).expect("gen --json prints JSON")
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Rows of a CSV file (plain or .gz) as maps from column to value.
pub fn read_csv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let reader = cdp_core::rawfile::open(path).unwrap();
    let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
    let headers = csv.headers().unwrap().clone();
    csv.byte_records()
        .map(|r| {
            let r = r.unwrap();
            let cells = r
                .iter()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .chain(std::iter::repeat(String::new()));
            headers.iter().map(String::from).zip(cells).collect()
        })
        .collect()
}

/// Data files of a generated folder, sorted by name.
pub fn data_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Every file under `dir` (recursively) with its bytes.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

/// The days before the first six weekly campaigns of a generated bank
/// (campaigns go out on day 3 and every 7 days after): the snapshots
/// `cdp train` takes features from.
pub const CAMPAIGN_EVES: [&str; 6] = [
    "2026-01-03",
    "2026-01-10",
    "2026-01-17",
    "2026-01-24",
    "2026-01-31",
    "2026-02-07",
];

/// The as-of date of [`scored_lake`]: the last generated day.
pub const SCORED_AS_OF: &str = "2026-03-16";

/// A scored lake of one's own in `dir/lake`, a copy of the one this test
/// run builds once (under the target's temporary folder) from a bank
/// generated into its `raw` folder (2,000 customers, 75 days, seed 11,
/// 1 % dirt): ingested, built on the campaign eves and on
/// [`SCORED_AS_OF`], then tagged, trained, scored and materialized as of
/// that day. Returns the (shared, read-only) raw folder and the copy.
pub fn scored_lake(dir: &Path) -> (PathBuf, String) {
    static MASTER: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    let (raw, master) = MASTER.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-scored-lake");
        match std::fs::remove_dir_all(&root) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("cannot clear {}: {e}", root.display()),
        }
        let raw = root.join("raw");
        let lake = root.join("lake");
        let lake_arg = lake.to_str().unwrap();
        generate(&raw, 2_000, 75, 11, 0.01, &[]);
        run_ok(&[
            "ingest",
            "--lake",
            lake_arg,
            "--source",
            raw.to_str().unwrap(),
        ]);
        for d in CAMPAIGN_EVES.iter().chain([&SCORED_AS_OF]) {
            run_ok(&["build", "--lake", lake_arg, "--as-of", d]);
        }
        for stage in ["tag", "train", "score", "materialize"] {
            run_ok(&[stage, "--lake", lake_arg, "--as-of", SCORED_AS_OF]);
        }
        (raw, lake)
    });
    let lake = dir.join("lake");
    copy_dir(master, &lake);
    (raw.clone(), lake.to_str().unwrap().to_string())
}

/// Spawns `command` (a `cdp … --json` that serves), its stderr into
/// `stderr`, and waits for its JSON ready line on stdout.
pub fn spawn_until_ready(mut command: Command, stderr: &Path) -> (Child, serde_json::Value) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .expect("cdp starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready = serde_json::from_str(&line).unwrap_or_else(|_| {
        let _ = child.kill();
        panic!(
            "no ready line; stderr: {}",
            std::fs::read_to_string(stderr).unwrap_or_default()
        )
    });
    (child, ready)
}

/// Copies folder `from` into `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
