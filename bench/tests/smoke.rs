//! A few seconds of the harness with tiny numbers, so it keeps working: meno
//! (both publish paths) and baseline, plus Centrifugo's stand-in when its
//! binary is already built. No timing assertions: deliveries and losses only.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_meno-load"))
        .parent()
        .expect("binary directory")
        .to_path_buf()
}

/// Builds a workspace binary beside meno-load when it is missing.
fn ensure_binary(name: &str) {
    let dir = bin_dir();
    if dir.join(name).exists() {
        return;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(["build", "--bin", name]);
    if dir.ends_with("release") {
        command.arg("--release");
    }
    assert!(
        command.status().expect("cargo build").success(),
        "building {name}"
    );
}

fn run(scenario: &str, targets: &str, extra: &[&str]) -> serde_json::Value {
    let out = tempfile_path(&format!("{scenario}-{}", targets.replace(',', "-")));
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let status = Command::new(env!("CARGO_BIN_EXE_meno-load"))
        .args(["run", "--scenario", scenario, "--targets", targets])
        .args([
            "--target-cpu",
            "0",
            "--load-cpu",
            &(cpus - 1).min(1).to_string(),
        ])
        .args(extra)
        .arg("--json")
        .arg(&out)
        .status()
        .expect("run meno-load");
    assert!(status.success(), "meno-load {scenario} failed");
    let text = std::fs::read_to_string(&out).expect("results json");
    let _ = std::fs::remove_file(&out);
    serde_json::from_str(&text).expect("valid json")
}

fn tempfile_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "meno-load-smoke-{name}-{}.json",
        std::process::id()
    ))
}

fn assert_delivered_without_loss(document: &serde_json::Value) {
    let results = document["results"].as_array().expect("results");
    assert!(!results.is_empty());
    for result in results {
        let target = &result["target"];
        assert!(
            result.get("error").is_none(),
            "{target}: {}",
            result["error"]
        );
        for step in result["result"]["steps"].as_array().expect("steps") {
            assert!(
                step["delivered"].as_u64().unwrap_or(0) > 0,
                "{target}: nothing delivered"
            );
            assert_eq!(
                step["losses"].as_u64(),
                Some(0),
                "{target}: losses in {step}"
            );
        }
    }
}

#[test]
fn fanout_smoke_meno_and_baseline() {
    ensure_binary("meno-bridge");
    let mut targets = String::from("meno,baseline");
    if bin_dir().join("centrifuge-server").exists() {
        targets.push_str(",centrifuge-engine");
    }
    let document = run(
        "fanout",
        &targets,
        &["--subscribers", "10", "--rates", "20", "--step", "1s"],
    );
    assert_delivered_without_loss(&document);
}

#[test]
fn fanout_smoke_meno_split_over_grpc() {
    ensure_binary("meno-bridge");
    ensure_binary("meno-core");
    let document = run(
        "fanout",
        "meno-split",
        &[
            "--publish",
            "grpc",
            "--subscribers",
            "10",
            "--rates",
            "20",
            "--step",
            "1s",
        ],
    );
    assert_delivered_without_loss(&document);
}
