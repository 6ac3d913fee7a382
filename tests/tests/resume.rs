//! Resume: a client reconnecting with `lastSeq` gets exactly what it missed,
//! in order, without gaps or duplicates.

use std::time::Duration;

use meno_tests::{in_both_modes, seq, session_id, Client, Mode, System};
use serde_json::Value;

async fn reconnect(system: &System, session: &str, last_seq: u64) -> Client {
    let query = format!(
        "sessionId={session}&participantId=bob&name=bob-name&role=student&client=tablet&lastSeq={last_seq}"
    );
    Client::connect(&system.ws_url(&query)).await
}

async fn last_seq_resumes_without_gaps_or_duplicates(mode: Mode) {
    let system = System::start(mode).await;
    let session = session_id("resume");
    let mut ann = system.join(&session, "ann", "teacher").await;
    ann.expect_start().await;
    let mut bob = system.join(&session, "bob", "student").await;
    bob.expect_start().await;
    ann.expect("presence.event").await;
    ann.chat("m0", "seen by bob").await;
    ann.expect("chat.message").await;
    let last_seen = seq(&bob.expect("chat.message").await);
    bob.close().await;

    for n in 1..=3 {
        ann.chat(&format!("m{n}"), &format!("missed {n}")).await;
    }
    ann.expect_where("chat.message", |f| f["data"]["messageId"] == "m3")
        .await;

    let mut bob = reconnect(&system, &session, last_seen).await;
    let mut frames: Vec<Value> = Vec::new();
    // Missed: bob's own offline event, three messages, then bob's return.
    while frames
        .last()
        .is_none_or(|f| f["data"]["status"] != "online")
    {
        frames.push(bob.recv().await);
    }
    let seqs: Vec<u64> = frames.iter().map(seq).collect();
    assert!(
        seqs.windows(2).all(|pair| pair[0] < pair[1]),
        "in order: {seqs:?}"
    );
    assert!(seqs[0] > last_seen, "nothing already seen: {seqs:?}");
    assert!(
        frames.iter().all(|f| f["type"] != "chat.sync"),
        "a resume, not a sync"
    );
    let missed: Vec<&str> = frames
        .iter()
        .filter(|f| f["type"] == "chat.message")
        .map(|f| f["data"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(missed, ["missed 1", "missed 2", "missed 3"]);

    ann.chat("m4", "live again").await;
    let live = bob.expect("chat.message").await;
    assert_eq!(live["data"]["content"], "live again");
    assert_eq!(seq(&live), seqs.last().unwrap() + 1);
}

async fn a_last_seq_from_the_future_gets_a_fresh_sync(mode: Mode) {
    let system = System::start(mode).await;
    let session = session_id("future");
    let mut ann = system.join(&session, "ann", "teacher").await;
    ann.expect_start().await;
    ann.chat("m1", "hello").await;
    ann.expect("chat.message").await;
    let mut bob = reconnect(&system, &session, 1_000_000).await;
    let (sync, _) = bob.expect_start().await;
    assert_eq!(sync["data"]["messages"].as_array().unwrap().len(), 1);
    bob.expect_silence(Duration::from_millis(200)).await;
}

async fn a_resume_older_than_the_ring_replays_chat_from_history(mode: Mode) {
    let config = meno_core::config::SessionConfig {
        ring_capacity: 4,
        ..meno_tests::test_session_config()
    };
    let store = std::sync::Arc::new(meno_core::store::MemoryStore::new());
    let system = System::start_with(mode, store, config, None).await;
    let session = session_id("ring");
    let mut ann = system.join(&session, "ann", "teacher").await;
    let (sync, _) = ann.expect_start().await;
    let start = seq(&sync);
    for n in 1..=10 {
        ann.chat(&format!("m{n}"), &format!("message {n}")).await;
        ann.expect("chat.message").await;
    }
    let mut bob = reconnect(&system, &session, start).await;
    let mut chat = Vec::new();
    let snapshot = loop {
        let frame = bob.recv().await;
        match frame["type"].as_str().unwrap() {
            "chat.message" => chat.push(frame["data"]["messageId"].as_str().unwrap().to_owned()),
            "presence.snapshot" => break frame,
            other => panic!("unexpected {other}: {frame}"),
        }
    };
    let expected: Vec<String> = (1..=10).map(|n| format!("m{n}")).collect();
    assert_eq!(chat, expected, "every missed message, once, in order");
    let participants = snapshot["data"]["participants"].as_array().unwrap();
    assert!(participants
        .iter()
        .any(|p| p["participantId"] == "bob" && p["status"] == "online"));
    bob.expect("control.lease.state").await;
}

in_both_modes!(
    last_seq_resumes_without_gaps_or_duplicates,
    a_last_seq_from_the_future_gets_a_fresh_sync,
    a_resume_older_than_the_ring_replays_chat_from_history,
);
