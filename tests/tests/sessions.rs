//! Sessions: isolated from one another; idle ones stop and come back from the
//! store.

use std::time::Duration;

use meno_core::config::SessionConfig;
use meno_tests::{in_both_modes, session_id, Mode, System};
use serde_json::json;

async fn two_sessions_are_isolated(mode: Mode) {
    let system = System::start(mode).await;
    let (one, two) = (session_id("one"), session_id("two"));
    let mut ann = system.join(&one, "ann", "teacher").await;
    ann.expect_start().await;
    let mut bob = system.join(&two, "bob", "teacher").await;
    let (_, snapshot) = bob.expect_start().await;
    assert_eq!(
        snapshot["data"]["participants"].as_array().unwrap().len(),
        1
    );

    ann.chat("a-1", "in one").await;
    ann.send("control.lease.set", json!({"stepIndex": 7})).await;
    ann.send("presence.update", json!({"isTyping": true})).await;
    ann.expect("chat.message").await;
    ann.expect("control.lease.state").await;
    ann.expect("presence.event").await;
    bob.expect_silence(Duration::from_millis(300)).await;

    // Same participant id in both sessions: still two separate presences.
    let mut ann_in_two = system.join(&two, "ann", "student").await;
    let (sync, _) = ann_in_two.expect_start().await;
    assert_eq!(sync["data"]["messages"], json!([]));
    ann_in_two.expect_silence(Duration::from_millis(200)).await;
}

async fn an_idle_session_stops_and_is_rebuilt_from_the_store(mode: Mode) {
    let config = SessionConfig {
        idle_timeout: Duration::from_secs(120),
        ..meno_tests::test_session_config()
    };
    let store = std::sync::Arc::new(meno_core::store::MemoryStore::new());
    let system = System::start_with(mode, store, config, None).await;
    let session = session_id("idle");
    let mut ann = system.join(&session, "ann", "teacher").await;
    ann.expect_start().await;
    ann.chat("m1", "before the nap").await;
    let first = ann.expect("chat.message").await;
    ann.close().await;

    system.advance(Duration::from_secs(121));
    let deadline = tokio::time::Instant::now() + meno_tests::WAIT;
    while system.core.registry().active_sessions() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the idle actor did not stop"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut bob = system.join(&session, "bob", "student").await;
    let (sync, snapshot) = bob.expect_start().await;
    let messages = sync["data"]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["content"], "before the nap");
    let ann_state = snapshot["data"]["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["participantId"] == "ann")
        .cloned()
        .expect("ann's presence was written behind and restored");
    assert_eq!(ann_state["status"], "offline");
    assert!(
        meno_tests::seq(&snapshot) > meno_tests::seq(&first),
        "seqs continue"
    );
}

in_both_modes!(
    two_sessions_are_isolated,
    an_idle_session_stops_and_is_rebuilt_from_the_store,
);
