//! A bridge on per-session streams (what it falls back to when the core does
//! not serve `SubscribeMany`): each session on its own `Subscribe` stream,
//! with the same fan-out as on the shared stream, each ending with its
//! session. (One test in this binary: it reads the bridge's process-wide
//! stream gauge.)

use meno_bridge::config::{BridgeConfig, SessionStreams};
use meno_tests::{session_id, Mode, System};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_session_streams_fan_out_and_end_with_their_session() {
    let system = System::start_with_bridge(
        Mode::Split,
        BridgeConfig {
            session_streams: SessionStreams::PerSession,
            ..meno_tests::test_bridge_config()
        },
    )
    .await;
    let (first, second) = (session_id("alone-a"), session_id("alone-b"));
    let mut ann = system.join(&first, "ann", "teacher").await;
    ann.expect_start().await;
    let mut bob = system.join(&first, "bob", "student").await;
    bob.expect_start().await;
    ann.expect("presence.event").await;
    let mut cem = system.join(&second, "cem", "teacher").await;
    cem.expect_start().await;
    assert_eq!(
        meno_bridge::metrics::CORE_STREAMS.get(),
        2,
        "one stream per session"
    );

    ann.chat("a-1", "to the first").await;
    for client in [&mut ann, &mut bob] {
        let message = client.expect("chat.message").await;
        assert_eq!(message["data"]["content"], "to the first");
        assert_eq!(message["data"]["sessionId"], first.as_str());
    }
    cem.chat("c-1", "to the second").await;
    let message = cem.expect("chat.message").await;
    assert_eq!(message["data"]["content"], "to the second");

    // The last socket of a session leaving ends its stream.
    drop(cem);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while meno_bridge::metrics::CORE_STREAMS.get() != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second session's stream ends with its last socket"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    bob.chat("b-1", "still here").await;
    for client in [&mut ann, &mut bob] {
        let message = client.expect("chat.message").await;
        assert_eq!(message["data"]["content"], "still here");
    }
}
