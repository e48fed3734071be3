//! Command-line behaviour: teaching help, one-line errors, nothing overwritten.

use crate::support::{cdp, generate, run_err, run_ok};

#[test]
fn help_teaches_by_example() {
    let top = run_ok(&["--help"]);
    assert!(top.contains("cdp gen --out"), "{top}");
    let gen_help = run_ok(&["gen", "--help"]);
    assert!(
        gen_help.contains("Examples:") && gen_help.contains("--dirty-rate"),
        "{gen_help}"
    );
    let validate_help = run_ok(&["validate", "--help"]);
    assert!(validate_help.contains("--violations"), "{validate_help}");
    let build_help = run_ok(&["build", "--help"]);
    assert!(build_help.contains("D+1 00:00"), "{build_help}");
    let query_help = run_ok(&["query", "--help"]);
    assert!(query_help.contains("silver.features"), "{query_help}");
}

#[test]
fn the_feature_registry_lists_and_describes_declared_features() {
    let list: serde_json::Value =
        serde_json::from_str(&run_ok(&["features", "list", "--json"])).unwrap();
    let features = list.as_array().unwrap();
    assert!(features.len() >= 40, "{} features", features.len());
    for f in features {
        for key in [
            "name",
            "entity",
            "type",
            "description",
            "owner",
            "ttl_days",
            "tags",
        ] {
            assert!(!f[key].is_null(), "{key} missing in {f}");
        }
    }
    let families: std::collections::BTreeSet<&str> = features
        .iter()
        .map(|f| f["family"].as_str().unwrap())
        .collect();
    assert!(families.len() >= 6, "{families:?}");
    let text = run_ok(&["features", "describe", "spend_30d"]);
    assert!(text.contains("CNY") && text.contains("SELECT"), "{text}");
    assert!(
        text.contains("pipelines/features/transactions.sql"),
        "{text}"
    );
}

#[test]
fn bad_input_gets_a_one_line_reason_and_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for (args, expect) in [
        (vec!["gen", "--out", d, "--dirty-rate", "0.9"], "dirty-rate"),
        (vec!["gen", "--out", d, "--customers", "0"], "customers"),
        (
            vec!["validate", "--source", "/no/such/folder"],
            "/no/such/folder",
        ),
        (
            vec!["build", "--as-of", "2026-01-31", "--lake", d],
            "run `cdp ingest` first",
        ),
        (
            vec!["build", "--as-of", "2026-02-30", "--lake", d],
            "--as-of",
        ),
        (
            vec!["query", "--lake", d, "SELECT nope FROM silver.features"],
            "query failed",
        ),
        (
            vec!["query", "--lake", d, "SELECT 1", "--format", "parquet"],
            "--out",
        ),
        (
            vec!["features", "describe", "no_such_feature"],
            "no_such_feature",
        ),
        (
            vec!["--lake", d, "build", "--as-of", "2026-01-31"],
            "run `cdp ingest` first",
        ),
    ] {
        let out = run_err(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expect), "{stderr}");
    }
    let out = cdp()
        .args(["--config", "/no/cdp.toml", "validate", "--source", d])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/cdp.toml"));
}

#[test]
fn a_folder_with_files_is_not_overwritten_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("notes.txt");
    std::fs::write(&keep, "mine").unwrap();
    let out = run_err(&[
        "gen",
        "--out",
        dir.path().to_str().unwrap(),
        "--customers",
        "50",
        "--days",
        "2",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    generate(dir.path(), 50, 2, 1, 0.0, &["--force"]);
    generate(dir.path(), 50, 3, 1, 0.0, &["--force"]);
    assert_eq!(std::fs::read_to_string(&keep).unwrap(), "mine");
    let days = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("transactions_")
        })
        .count();
    assert_eq!(days, 3, "files of the earlier run were replaced");
}

#[test]
fn a_broken_file_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 60, 2, 1, 0.0, &[]);
    let broken = dir.path().join("transactions_2026-01-02.csv");
    std::fs::write(&broken, "id,amount\n1,2\n").unwrap();
    let out = run_err(&["validate", "--source", dir.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("transactions_2026-01-02.csv") && stderr.contains("missing columns"),
        "{stderr}"
    );
}

/// The Kubernetes example's `cdp.toml` and Secret are a configuration cdp
/// accepts (the manifests themselves are schema-checked by `.ci/run`).
#[test]
fn the_deployment_example_configures_cdp() {
    let root = crate::support::repo_root().join("deploy/k8s");
    let embedded = |file: &str, marker: &str| -> Vec<String> {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let mut lines = text.lines().skip_while(|l| !l.contains(marker));
        let first = lines
            .next()
            .unwrap_or_else(|| panic!("{file}: no {marker}"));
        if first.trim_end().ends_with('|') {
            // a block: the lines indented deeper than the key
            let indent = first.len() - first.trim_start().len();
            lines
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .map(|l| l.trim_start().to_string())
                .collect()
        } else {
            let value = first.split_once(": ").unwrap().1.trim();
            vec![value.trim_matches('\'').to_string()]
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cdp.toml");
    std::fs::write(&config, embedded("config.yaml", "cdp.toml: |").join("\n")).unwrap();
    let keys = embedded("secrets.example.yaml", "CDP__SERVER__API_KEYS:").remove(0);
    let mut command = cdp();
    command
        .env(
            "CDP__SERVER__API_KEYS",
            keys.replace("replace-with-64-hex", &"ab".repeat(32)),
        )
        .env("AWS_ACCESS_KEY_ID", "example")
        .env("AWS_SECRET_ACCESS_KEY", "example");
    let config = config.to_str().unwrap();
    crate::support::run_ok_with(command, &["--config", config, "features", "list", "--json"]);
}
