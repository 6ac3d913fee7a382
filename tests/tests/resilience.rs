//! Bridge ↔ core failure: when the core dies and comes back, the bridge keeps
//! its sockets open, answers actions meanwhile with a retryable error, and
//! catches every socket up without gaps or duplicates.

use meno_tests::process::{free_addr, Process};
use meno_tests::{session_id, Client};
use serde_json::Value;

fn messages(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .filter(|f| f["type"] == "chat.message")
        .map(|f| f["data"]["messageId"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_core_crash_keeps_sockets_open_and_loses_nothing() {
    let data = tempfile::tempdir().unwrap();
    let core_addr = free_addr();
    let core = Process::core(core_addr, data.path()).await;
    let bridge_addr = free_addr();
    let bridge = Process::bridge_with_env(bridge_addr, core_addr, &[]).await;

    let session = session_id("core-crash");
    let url = |who: &str| {
        format!(
            "ws://{bridge_addr}/ws?sessionId={session}&participantId={who}&name={who}&role=teacher&client=web"
        )
    };
    let mut ann = Client::connect(&url("ann")).await;
    ann.expect_start().await;
    let mut bob = Client::connect(&url("bob")).await;
    bob.expect_start().await;
    ann.chat("before", "before the crash").await;
    ann.expect_where("chat.message", |f| f["data"]["messageId"] == "before")
        .await;
    let mut seen_by_bob = vec![bob.expect_where("chat.message", |_| true).await];

    core.kill();
    // Meanwhile: a retryable error, and the socket stays open.
    ann.chat("during", "while the core is down").await;
    let error = ann.expect_where("error", |_| true).await;
    assert_eq!(error["data"]["code"], "Unavailable");
    assert_eq!(error["data"]["retryable"], true);

    let _core = Process::core(core_addr, data.path()).await;
    // The bridge notices, resubscribes, and the sockets rejoin in place:
    // each gets the current state again, on the same socket.
    ann.expect_where("presence.snapshot", |_| true).await;
    bob.expect_where("presence.snapshot", |_| true).await;
    ann.chat("after", "after the restart").await;
    ann.expect_where("chat.message", |f| f["data"]["messageId"] == "after")
        .await;
    loop {
        let frame = bob.recv().await;
        let done = frame["type"] == "chat.message" && frame["data"]["messageId"] == "after";
        seen_by_bob.push(frame);
        if done {
            break;
        }
    }
    assert_eq!(
        messages(&seen_by_bob),
        ["before", "after"],
        "each once, in order"
    );
    drop(bridge);
}
