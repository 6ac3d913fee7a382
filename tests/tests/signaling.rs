//! WebRTC signaling (seed 004) across bridges: caller and callee on two
//! different bridges of one split core. SDP offers and answers and ICE
//! candidates are relayed in order to every connection of the target user,
//! with the sender's id and trace id; the busy state (300 s TTL) rejects
//! offers to a user in another call; `CALL_END` clears it; nobody else, and
//! no same-named user of another tenant, ever sees a signal.

use std::net::SocketAddr;
use std::time::Duration;

use meno_tests::nexus::NexusClient;
use meno_tests::{session_id, test_bridge_config, Mode, System};
use serde_json::json;

const QUIET: Duration = Duration::from_millis(300);

/// A split system with a second bridge.
async fn two_bridges() -> (System, SocketAddr) {
    let system = System::start(Mode::Split).await;
    let second = system.start_bridge(test_bridge_config()).await;
    (system, second)
}

async fn connect(bridge: SocketAddr, tenant: &str, user: &str, room: &str) -> NexusClient {
    let mut client = NexusClient::connect(&format!(
        "ws://{bridge}/ws/nexus?userId={user}&userName={user}&tenant={tenant}&roomId={room}"
    ))
    .await;
    client.expect("ROOM_JOINED").await;
    client
}

fn tenant(prefix: &str) -> String {
    session_id(prefix)
}

async fn offer(from: &mut NexusClient, to: &str, sdp: &str) -> String {
    from.send(
        "SIGNAL_SDP",
        json!({"targetId": to, "type": "offer", "sdp": sdp}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offer_answer_and_candidates_cross_bridges_in_order() {
    let (system, second) = two_bridges().await;
    let (tenant, room) = (tenant("sig"), session_id("call"));
    let mut ann = connect(system.bridge_addr, &tenant, "ann", &room).await;
    let mut bob = connect(second, &tenant, "bob", &room).await;
    let mut carl = connect(system.bridge_addr, &tenant, "carl", &room).await;

    let trace = offer(&mut ann, "bob", "v=0 offer").await;
    let offered = bob.expect_where("SIGNAL_SDP", |_| true).await;
    assert_eq!(offered["traceId"], trace);
    assert_eq!(
        offered["data"],
        json!({"senderId": "ann", "targetId": "bob", "type": "offer", "sdp": "v=0 offer"})
    );
    bob.send(
        "SIGNAL_SDP",
        json!({"targetId": "ann", "type": "answer", "sdp": "v=0 answer"}),
    )
    .await;
    let answered = ann.expect_where("SIGNAL_SDP", |_| true).await;
    assert_eq!(answered["data"]["type"], "answer");
    assert_eq!(answered["data"]["senderId"], "bob");

    for n in 0..5 {
        ann.send(
            "SIGNAL_ICE",
            json!({"targetId": "bob", "candidate": format!("candidate:{n} from ann"), "sdpMid": "0", "sdpMLineIndex": 0}),
        )
        .await;
        bob.send(
            "SIGNAL_ICE",
            json!({"targetId": "ann", "candidate": format!("candidate:{n} from bob"), "sdpMLineIndex": n}),
        )
        .await;
    }
    for n in 0..5 {
        let at_bob = bob.expect("SIGNAL_ICE").await;
        assert_eq!(
            at_bob["data"]["candidate"],
            format!("candidate:{n} from ann")
        );
        assert_eq!(at_bob["data"]["sdpMid"], "0");
        assert_eq!(at_bob["data"]["senderId"], "ann");
        let at_ann = ann.expect("SIGNAL_ICE").await;
        assert_eq!(
            at_ann["data"]["candidate"],
            format!("candidate:{n} from bob")
        );
        assert_eq!(at_ann["data"]["sdpMLineIndex"], n);
    }
    // The third user in the room saw none of it (presence aside).
    carl.expect_silence_except(QUIET, |frame| frame["event"] == "PRESENCE")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_user_rejects_offers_to_the_caller_only_until_the_call_ends() {
    let (system, second) = two_bridges().await;
    let (tenant, room) = (tenant("busy"), session_id("call"));
    let mut ann = connect(system.bridge_addr, &tenant, "ann", &room).await;
    let mut bob = connect(second, &tenant, "bob", &room).await;
    let mut carl = connect(second, &tenant, "carl", &room).await;
    offer(&mut ann, "bob", "v=0 a").await;
    bob.expect_where("SIGNAL_SDP", |_| true).await;
    bob.send(
        "SIGNAL_SDP",
        json!({"targetId": "ann", "type": "answer", "sdp": "v=0 b"}),
    )
    .await;
    ann.expect_where("SIGNAL_SDP", |_| true).await;

    // bob is in a call with ann: carl's offer is rejected, to carl alone.
    let trace = offer(&mut carl, "bob", "v=0 c").await;
    let rejected = carl.expect_where("CALL_REJECTED", |_| true).await;
    assert_eq!(rejected["traceId"], trace);
    assert_eq!(rejected["data"]["callerId"], "carl");
    assert_eq!(rejected["data"]["targetId"], "bob");
    assert_eq!(rejected["data"]["status"], "busy");
    assert!(rejected["data"]["reason"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));
    let no_signal = |frame: &serde_json::Value| frame["event"] == "PRESENCE";
    bob.expect_silence_except(QUIET, no_signal).await;
    ann.expect_silence_except(QUIET, no_signal).await;
    // ann renegotiating with bob is still relayed.
    offer(&mut ann, "bob", "v=0 renegotiate").await;
    assert_eq!(
        bob.expect_where("SIGNAL_SDP", |_| true).await["data"]["sdp"],
        "v=0 renegotiate"
    );

    // CALL_END clears both; it reaches bob as CALL_END from ann.
    ann.send("CALL_END", json!({"targetId": "bob"})).await;
    let ended = bob.expect_where("CALL_END", |_| true).await;
    assert_eq!(ended["data"], json!({"senderId": "ann"}));
    offer(&mut carl, "bob", "v=0 c again").await;
    let relayed = bob.expect_where("SIGNAL_SDP", |_| true).await;
    assert_eq!(relayed["data"]["senderId"], "carl");
    offer(&mut bob, "ann", "v=0 bob calls ann").await;
    assert_eq!(
        ann.expect_where("SIGNAL_SDP", |_| true).await["data"]["senderId"],
        "bob",
        "ann is free again too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_busy_state_expires_after_its_ttl() {
    // Bridges that refresh their connections every 20 ms of real time, so
    // connections outlive the 60 s presence TTL while the manual clock runs
    // past the 300 s busy TTL.
    let refreshing = meno_bridge::config::BridgeConfig {
        refresh_interval: Duration::from_millis(20),
        ..test_bridge_config()
    };
    let system = System::start_custom(
        Mode::Split,
        meno_tests::test_store().await,
        meno_tests::test_session_config(),
        refreshing.clone(),
        None,
    )
    .await;
    let second = system.start_bridge(refreshing).await;
    let (tenant, room) = (tenant("ttl"), session_id("call"));
    let mut ann = connect(system.bridge_addr, &tenant, "ann", &room).await;
    let mut bob = connect(second, &tenant, "bob", &room).await;
    let mut carl = connect(second, &tenant, "carl", &room).await;
    offer(&mut ann, "bob", "v=0 a").await;
    bob.expect_where("SIGNAL_SDP", |_| true).await;
    bob.send(
        "SIGNAL_SDP",
        json!({"targetId": "ann", "type": "answer", "sdp": "v=0 b"}),
    )
    .await;
    ann.expect_where("SIGNAL_SDP", |_| true).await;
    offer(&mut carl, "bob", "v=0 c").await;
    carl.expect_where("CALL_REJECTED", |_| true).await;

    for _ in 0..7 {
        system.advance(Duration::from_secs(45));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    offer(&mut carl, "bob", "v=0 c later").await;
    let relayed = bob
        .expect_where("SIGNAL_SDP", |frame| frame["data"]["senderId"] == "carl")
        .await;
    assert_eq!(relayed["data"]["sdp"], "v=0 c later");
    // Everyone stayed online throughout: the call ended by its TTL alone.
    for client in [&mut ann, &mut bob, &mut carl] {
        client
            .expect_silence_except(QUIET, |frame| {
                frame["event"] != "PRESENCE" || frame["data"]["status"] == "online"
            })
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_targets_strangers_and_other_tenants_get_nothing() {
    let (system, second) = two_bridges().await;
    let (tenant, other_tenant) = (tenant("iso"), tenant("iso-other"));
    let (room, elsewhere) = (session_id("call"), session_id("elsewhere"));
    let mut ann = connect(system.bridge_addr, &tenant, "ann", &room).await;
    let mut bob = connect(second, &tenant, "bob", &room).await;
    // Same user id, same room id, another tenant.
    let mut other_bob = connect(second, &other_tenant, "bob", &room).await;
    // A user of ann's tenant who shares no room with her.
    let mut stranger = connect(second, &tenant, "stranger", &elsewhere).await;

    let trace = offer(&mut ann, "nobody", "v=0").await;
    let error = ann.expect_where("ERROR", |_| true).await;
    assert_eq!(error["traceId"], trace);
    assert_eq!(error["data"]["code"], "NotFound");
    assert_eq!(error["data"]["event"], "SIGNAL_SDP");

    offer(&mut ann, "stranger", "v=0").await;
    let denied = ann.expect_where("ERROR", |_| true).await;
    assert_eq!(denied["data"]["code"], "PermissionDenied");
    stranger.expect_silence(QUIET).await;

    offer(&mut ann, "bob", "v=0 for bob").await;
    bob.expect_where("SIGNAL_SDP", |_| true).await;
    other_bob
        .expect_silence_except(QUIET, |frame| frame["event"] == "PRESENCE")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_of_the_target_gets_the_signal() {
    let (system, second) = two_bridges().await;
    let (tenant, room) = (tenant("multi"), session_id("call"));
    let mut ann = connect(system.bridge_addr, &tenant, "ann", &room).await;
    let mut bob_here = connect(system.bridge_addr, &tenant, "bob", &room).await;
    let mut bob_there = connect(second, &tenant, "bob", &room).await;
    offer(&mut ann, "bob", "v=0 both").await;
    for bob in [&mut bob_here, &mut bob_there] {
        let offered = bob.expect_where("SIGNAL_SDP", |_| true).await;
        assert_eq!(offered["data"]["sdp"], "v=0 both");
    }
}
