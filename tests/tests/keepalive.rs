//! Keepalive: the bridge pings; a socket from which nothing arrives for the
//! idle timeout is dead, and its participant goes reconnecting, then offline.

use std::time::Duration;

use meno_bridge::config::BridgeConfig;
use meno_tests::{in_both_modes, session_id, Mode, System};

const PING_INTERVAL: Duration = Duration::from_millis(100);
const IDLE_TIMEOUT: Duration = Duration::from_millis(400);

async fn a_half_open_client_goes_reconnecting_then_offline(mode: Mode) {
    let bridge = BridgeConfig {
        ping_interval: PING_INTERVAL,
        idle_timeout: IDLE_TIMEOUT,
        ..meno_tests::test_bridge_config()
    };
    let system = System::start_with_bridge(mode, bridge).await;
    let session = session_id("half-open");
    let mut ann = system.join(&session, "ann", "teacher").await;
    ann.expect_start().await;
    let mut bob = system.join(&session, "bob", "student").await;
    bob.expect_start().await;
    ann.expect("presence.event").await;

    // Ann keeps reading (and so answering pings) for several idle timeouts:
    // a live client is never mistaken for a dead one.
    ann.send("presence.heartbeat", serde_json::json!({})).await;
    let paused_at = tokio::time::Instant::now();
    // From here bob's socket is never polled: no pongs, no reads.
    let reconnecting = ann
        .expect_where("presence.event", |f| f["data"]["participantId"] == "bob")
        .await;
    assert_eq!(reconnecting["data"]["status"], "reconnecting");
    assert!(
        paused_at.elapsed() >= IDLE_TIMEOUT - PING_INTERVAL,
        "declared dead after {:?}, before the idle timeout",
        paused_at.elapsed()
    );
    system.advance(Duration::from_secs(16));
    let offline = ann.expect("presence.event").await;
    assert_eq!(offline["data"]["participantId"], "bob");
    assert_eq!(offline["data"]["status"], "offline");
    ann.expect_silence(IDLE_TIMEOUT * 2).await;
    drop(bob);
}

in_both_modes!(a_half_open_client_goes_reconnecting_then_offline);
