//! The Jupyter notebooks of `notebooks/` executed top to bottom with
//! nbclient against a small built, tagged, trained, scored and materialized
//! lake, with a real `cdp serve` for their gRPC part: a cell that raises
//! fails the test, so the notebooks cannot rot. Skipped when python3 lacks
//! nbclient, nbformat, ipykernel, polars or matplotlib, unless
//! `CDP_REQUIRE_JUPYTER` is set (`.ci/run` sets it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Instant;

use crate::support::{cdp, repo_root, run_ok, scored_lake, spawn_until_ready};

/// Executes the notebook `argv[1]` in a kernel started in `argv[3]` (as
/// Jupyter does: the notebook's folder) and writes it, outputs and all, to
/// `argv[2]`, also when a cell raised (then exits non-zero with the error).
const RUNNER: &str = r#"
import sys
import nbformat
from nbclient import NotebookClient

source, executed, folder = sys.argv[1:4]
nb = nbformat.read(source, as_version=4)
try:
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": folder}}).execute()
finally:
    nbformat.write(nb, executed)
"#;

/// Whether `python3 -c "import MODULES"` succeeds.
fn python_has(modules: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The notebooks of the repository, in order.
fn notebooks() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(repo_root().join("notebooks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ipynb"))
        .collect();
    found.sort();
    assert!(found.len() >= 4, "notebooks/ holds {found:?}");
    found
}

/// `text` without ANSI colour sequences (IPython colours its tracebacks).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ parameters… final letter
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A `cdp serve` child, killed on drop.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cdp serve` over `lake` on a free port with a new key holding the
/// profiles, features and scores scopes; returns the server, its address
/// and the key.
fn serve(dir: &Path, lake: &str) -> (Served, String, String) {
    let key: serde_json::Value = serde_json::from_str(&run_ok(&[
        "apikey",
        "new",
        "--team",
        "notebooks",
        "--scopes",
        "profiles,features,scores",
        "--json",
    ]))
    .unwrap();
    let config = dir.join("cdp.toml");
    std::fs::write(
        &config,
        format!(
            "[[server.api_keys]]\nteam = \"notebooks\"\nkey_sha256 = \"{}\"\nscopes = [\"profiles\", \"features\", \"scores\"]\n",
            key["key_sha256"].as_str().unwrap()
        ),
    )
    .unwrap();
    let mut command = cdp();
    command
        .args(["serve", "--json", "--lake", lake, "--addr", "127.0.0.1:0"])
        .args(["--metrics-addr", "off", "--config"])
        .arg(&config);
    let (child, ready) = spawn_until_ready(command, &dir.join("serve.log"));
    let addr = ready["grpc"].as_str().unwrap().to_string();
    (
        Served(child),
        addr,
        key["key"].as_str().unwrap().to_string(),
    )
}

#[test]
fn every_notebook_runs_top_to_bottom_against_a_lake_and_a_server() {
    if !python_has("nbclient, nbformat, ipykernel, polars, matplotlib") {
        assert!(
            std::env::var_os("CDP_REQUIRE_JUPYTER").is_none(),
            "CDP_REQUIRE_JUPYTER is set but python3 lacks nbclient, nbformat, ipykernel, polars or matplotlib"
        );
        eprintln!(
            "skipping: python3 lacks nbclient / nbformat / ipykernel / polars / matplotlib (pip install -r notebooks/requirements.txt)"
        );
        return;
    }
    let grpcio = python_has("grpc, grpc_tools, grpc_health");
    assert!(
        grpcio || std::env::var_os("CDP_REQUIRE_GRPCIO").is_none(),
        "CDP_REQUIRE_GRPCIO is set but grpcio, grpcio-tools or grpcio-health-checking is missing"
    );
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (_, lake) = scored_lake(dir.path());
    eprintln!("lake built in {:.0} s", started.elapsed().as_secs_f64());
    // without grpcio the notebook skips its gRPC part, as without a server
    let server = grpcio.then(|| serve(dir.path(), &lake));
    if server.is_none() {
        eprintln!(
            "python3 lacks grpcio / grpcio-tools / grpcio-health-checking: the gRPC part is skipped"
        );
    }
    let work = dir.path().join("work");
    let executed = dir.path().join("executed");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&executed).unwrap();

    for notebook in notebooks() {
        let name = notebook.file_name().unwrap().to_str().unwrap().to_string();
        let at = Instant::now();
        let mut command = Command::new("python3");
        command
            .args(["-c", RUNNER])
            .arg(&notebook)
            .arg(executed.join(&name))
            .arg(notebook.parent().unwrap())
            .current_dir(&work)
            .env("CDP_LAKE", &lake)
            .env("CDP_BIN", env!("CARGO_BIN_EXE_cdp"))
            .env("CDP_OUT", work.join("offers"))
            // headless, and the figures are rendered into the outputs
            .env("MPLBACKEND", "module://matplotlib_inline.backend_inline")
            // no __pycache__ next to cdp_lake.py in the repository
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env_remove("CDP_AUDIENCE")
            .env_remove("CDP_GRPC_ADDR")
            .env_remove("CDP_API_KEY");
        if let Some((_, addr, key)) = &server {
            command.env("CDP_GRPC_ADDR", addr).env("CDP_API_KEY", key);
        }
        let out = command.output().expect("python3 runs");
        assert!(
            out.status.success(),
            "{name} failed:\n{}",
            strip_ansi(&String::from_utf8_lossy(&out.stderr))
        );
        let text = std::fs::read_to_string(executed.join(&name)).unwrap();
        assert!(text.contains("image/png"), "{name} drew no figure");
        eprintln!("{name}: {:.1} s", at.elapsed().as_secs_f64());
    }

    // the offer list went where CDP_OUT said, with its run record
    assert!(work.join("offers/list.parquet").is_file());
    assert!(work.join("offers/list.run.json").is_file());
    // the gRPC part really ran, and its answers matched the lake
    let grpc = std::fs::read_to_string(executed.join("04_offer_list_and_grpc.ipynb")).unwrap();
    if server.is_some() {
        assert!(grpc.contains("gRPC: SERVING"), "no health check");
        assert!(
            grpc.contains("ScoreOffers equals gold.scores"),
            "no ScoreOffers"
        );
    }
    // and Python XGBoost, when installed, predicted gold.scores
    if python_has("xgboost") {
        let model = std::fs::read_to_string(executed.join("03_offer_model.ipynb")).unwrap();
        assert!(model.contains("recomputed in Python"), "no XGBoost check");
    }
    eprintln!("notebooks: {:.0} s in all", started.elapsed().as_secs_f64());
}

#[test]
fn notebooks_are_committed_without_outputs() {
    for notebook in notebooks() {
        let nb: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&notebook).unwrap()).unwrap();
        for cell in nb["cells"].as_array().unwrap() {
            if cell["cell_type"] == "code" {
                assert!(
                    cell["outputs"].as_array().unwrap().is_empty()
                        && cell["execution_count"].is_null(),
                    "{} has outputs: clear them (jupyter nbconvert --clear-output --inplace)",
                    notebook.display()
                );
            }
        }
    }
}
