//! Restarts of the real binary on the embedded store: history survives, and
//! no seq is ever reused, after SIGTERM and after `kill -9`.

use meno_tests::process::{free_addr, Process};
use meno_tests::{seq, session_id, Client};

fn url(process: &Process, session: &str, participant: &str, last_seq: Option<u64>) -> String {
    let resume = last_seq
        .map(|s| format!("&lastSeq={s}"))
        .unwrap_or_default();
    format!(
        "ws://{}/ws?sessionId={session}&participantId={participant}&name={participant}&role=student&client=web{resume}",
        process.addr
    )
}

async fn chat_then_restart(hard: bool) {
    let data = tempfile::tempdir().unwrap();
    let session = session_id(if hard { "kill9" } else { "sigterm" });
    let addr = free_addr();
    let process = Process::monolithic(addr, data.path()).await;
    let mut ann = Client::connect(&url(&process, &session, "ann", None)).await;
    ann.expect_start().await;
    let mut seqs = Vec::new();
    for n in 0..5 {
        ann.chat(&format!("m{n}"), &format!("message {n}")).await;
        seqs.push(seq(&ann.expect("chat.message").await));
    }
    let second = seqs[1];
    if hard {
        process.kill();
    } else {
        assert!(process.terminate().success(), "clean exit on SIGTERM");
    }

    let process = Process::monolithic(addr, data.path()).await;
    let mut bob = Client::connect(&url(&process, &session, "bob", None)).await;
    let (sync, _) = bob.expect_start().await;
    let history: Vec<(String, u64)> = sync["data"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["messageId"].as_str().unwrap().to_owned(),
                m["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, u64)> = (0..5).map(|n| format!("m{n}")).zip(seqs.clone()).collect();
    assert_eq!(history, expected, "every acknowledged message survived");

    bob.chat("after", "after the restart").await;
    let after = seq(&bob.expect("chat.message").await);
    assert!(
        after > *seqs.last().unwrap(),
        "seq {after} reused after {seqs:?}"
    );

    // A client that saw up to the second message resumes from the store.
    let mut ann = Client::connect(&url(&process, &session, "ann", Some(second))).await;
    let mut replayed = Vec::new();
    loop {
        let frame = ann.recv().await;
        match frame["type"].as_str().unwrap() {
            "chat.message" => {
                replayed.push(frame["data"]["messageId"].as_str().unwrap().to_owned())
            }
            "presence.snapshot" => break,
            other => panic!("unexpected {other}: {frame}"),
        }
    }
    assert_eq!(replayed, ["m2", "m3", "m4", "after"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_seqs_survive_sigterm() {
    chat_then_restart(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_seqs_survive_kill_9() {
    chat_then_restart(true).await;
}
