//! `meno-core` refuses replica settings that would break a session's
//! guarantees, before it opens any store, and says why.

use std::process::Command;

fn refused(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_meno-core"))
        .args(["--listen", "127.0.0.1:1"])
        .args(args)
        .output()
        .expect("run meno-core");
    assert!(
        !output.status.success(),
        "meno-core {args:?} must refuse to start"
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn several_replicas_need_the_cql_store() {
    for store in ["memory", "embedded"] {
        let stderr = refused(&["--store", store, "--peers", "http://127.0.0.1:1"]);
        assert!(
            stderr.contains("several core replicas need --store scylla"),
            "{store}: {stderr}"
        );
    }
}

#[test]
fn several_replicas_refuse_reads_below_a_quorum() {
    for consistency in ["one", "local-one"] {
        let stderr = refused(&[
            "--store",
            "scylla",
            "--scylla-consistency",
            consistency,
            "--peers",
            "http://127.0.0.1:1",
        ]);
        assert!(
            stderr.contains("must read every acknowledged message"),
            "{consistency}: {stderr}"
        );
    }
}
