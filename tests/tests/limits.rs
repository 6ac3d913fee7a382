//! Limits: each answered by an `error` envelope while the connection, and
//! every other, keeps working; repeated violations close with 4029.

use std::sync::Arc;
use std::time::Duration;

use meno_bridge::config::BridgeConfig;
use meno_bridge::limits::LimitsConfig;
use meno_tests::{session_id, Client, Mode, Received, System};
use serde_json::json;

async fn start(limits: LimitsConfig) -> System {
    let bridge = BridgeConfig {
        rate_limits: limits,
        ..meno_tests::test_bridge_config()
    };
    System::start_with_bridge(Mode::Monolithic, bridge).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_past_the_rate_gets_rate_limited_errors_and_the_socket_recovers() {
    let system = start(LimitsConfig {
        messages_per_second: 5.0,
        message_burst: 5,
        max_rate_violations: 1000,
        ..LimitsConfig::default()
    })
    .await;
    let session = session_id("rate");
    let mut flood = system.join(&session, "flood", "student").await;
    flood.expect_start().await;
    let mut calm = system.join(&session, "calm", "teacher").await;
    calm.expect_start().await;
    flood.expect("presence.event").await;

    for _ in 0..20 {
        flood.send("system.ping", json!({})).await;
    }
    let (mut pongs, mut limited) = (0, 0);
    for _ in 0..20 {
        let frame = flood.recv().await;
        match frame["type"].as_str().unwrap() {
            "system.pong" => pongs += 1,
            "error" => {
                assert_eq!(frame["data"]["code"], "RateLimited");
                assert_eq!(frame["data"]["retryable"], true);
                assert!(frame["data"]["retryAfterMs"].as_u64().unwrap() > 0);
                limited += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        pongs >= 5 && limited >= 10,
        "{pongs} pongs, {limited} refusals"
    );

    // Another socket in the same session is not affected.
    calm.chat("c1", "unaffected").await;
    assert_eq!(
        calm.expect("chat.message").await["data"]["content"],
        "unaffected"
    );
    // And the flooder works again after waiting.
    tokio::time::sleep(Duration::from_millis(400)).await;
    flood.send("system.ping", json!({})).await;
    flood.expect_where("system.pong", |_| true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_violations_close_with_4029() {
    let system = start(LimitsConfig {
        messages_per_second: 1.0,
        message_burst: 1,
        max_rate_violations: 3,
        ..LimitsConfig::default()
    })
    .await;
    let mut flood = system.join(&session_id("abuse"), "flood", "student").await;
    flood.expect_start().await;
    for _ in 0..10 {
        if !flood.try_send("system.ping", json!({})).await {
            break;
        }
    }
    let code = loop {
        match flood.next().await {
            Received::Frame(_) => continue,
            Received::Closed(code) => break code,
            Received::Ended => break None,
        }
    };
    assert_eq!(code, Some(4029));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_participant_are_capped() {
    let system = start(LimitsConfig {
        max_connections_per_participant: 2,
        ..LimitsConfig::default()
    })
    .await;
    let session = session_id("caps");
    let mut first = system.join(&session, "ann", "student").await;
    first.expect_start().await;
    let mut second = system.join(&session, "ann", "student").await;
    second.expect_start().await;
    let query = format!("sessionId={session}&participantId=ann&name=Ann&role=student&client=web");
    let mut third = Client::connect(&system.ws_url(&query)).await;
    let error = third.expect("error").await;
    assert_eq!(error["data"]["code"], "RateLimited");
    assert!(error["data"]["message"]
        .as_str()
        .unwrap()
        .contains("participant"));
    assert!(matches!(third.next().await, Received::Closed(Some(4029))));
    // The first two keep working, and a slot frees up when one leaves.
    first.send("system.ping", json!({})).await;
    first.expect_where("system.pong", |_| true).await;
    second.close().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut again = Client::connect(&system.ws_url(&query)).await;
    again.expect_start().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_per_tenant_are_capped() {
    let config = meno_core::config::SessionConfig {
        max_sessions_per_tenant: 2,
        ..meno_tests::test_session_config()
    };
    let system = System::start_with(
        Mode::Monolithic,
        Arc::new(meno_core::store::MemoryStore::new()),
        config,
        None,
    )
    .await;
    let mut clients = Vec::new();
    for n in 0..2 {
        let mut client = system
            .join(&session_id(&format!("cap{n}")), "ann", "student")
            .await;
        client.expect_start().await;
        clients.push(client);
    }
    let query = format!(
        "sessionId={}&participantId=ann&name=Ann&role=student&client=web",
        session_id("cap-over")
    );
    let mut over = Client::connect(&system.ws_url(&query)).await;
    let error = over.expect("error").await;
    assert_eq!(error["data"]["code"], "RateLimited");
    assert!(error["data"]["message"]
        .as_str()
        .unwrap()
        .contains("active sessions"));
    clients[0].send("system.ping", json!({})).await;
    clients[0].expect("system.pong").await;
}
