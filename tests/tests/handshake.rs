//! The HTTP handshake is bounded: a connection that does not become a
//! WebSocket within `--handshake-timeout` of its accept is closed, it holds
//! a place under the per-IP cap while it lasts, health checks are answered
//! meanwhile, and upgrades from one address are limited in rate (429 with
//! `Retry-After`, before the core hears of them).

use std::time::Duration;

use meno_bridge::config::BridgeConfig;
use meno_bridge::limits::LimitsConfig;
use meno_tests::raw::{self, Ending};
use meno_tests::{http_get, session_id, Client, Mode, Received, System, WAIT};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);

async fn start(handshake_timeout: Duration, limits: LimitsConfig) -> System {
    let bridge = BridgeConfig {
        handshake_timeout,
        rate_limits: limits,
        ..meno_tests::test_bridge_config()
    };
    System::start_with_bridge(Mode::Monolithic, bridge).await
}

fn query(session: &str, participant: &str) -> String {
    format!("sessionId={session}&participantId={participant}&name={participant}&role=student&client=web")
}

/// A connection that sent the first half of an upgrade request's head.
async fn half_open(system: &System, session: &str) -> TcpStream {
    let mut stream = TcpStream::connect(system.bridge_addr)
        .await
        .expect("connect");
    let request = raw::upgrade_request(
        system.bridge_addr,
        &format!("/ws?{}", query(session, "slow")),
    );
    stream
        .write_all(&request.as_bytes()[..request.len() / 2])
        .await
        .expect("write half a request");
    stream
}

/// Upgrades until one is admitted (the bridge notices closed connections
/// a moment after the client closes them).
async fn upgrade_once_admitted(system: &System, query: &str) -> Client {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut client = Client::connect(&system.ws_url(query)).await;
        match client.next().await {
            Received::Frame(frame) if frame["type"] == "chat.sync" => {
                client.expect("presence.snapshot").await;
                return client;
            }
            Received::Frame(frame) if frame["type"] == "error" => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "still refused after {WAIT:?}: {frame}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_with_half_a_request_or_nothing_is_closed_at_the_handshake_timeout() {
    let system = start(HANDSHAKE_TIMEOUT, LimitsConfig::default()).await;
    let mut half = half_open(&system, &session_id("half")).await;
    let mut silent = TcpStream::connect(system.bridge_addr)
        .await
        .expect("connect");
    let bound = HANDSHAKE_TIMEOUT + Duration::from_secs(4);
    let (half, silent) = tokio::join!(
        raw::wait_for_close(&mut half, bound),
        raw::wait_for_close(&mut silent, bound),
    );
    for (what, ending) in [("half a request", half), ("nothing", silent)] {
        let Some(after) = ending.after() else {
            panic!("a connection that sent {what} was still open after {bound:?}");
        };
        // Not closed for another reason, at once: it was given its time.
        assert!(
            after >= HANDSHAKE_TIMEOUT / 2,
            "a connection that sent {what} was closed after {after:?} only"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_count_against_the_per_ip_cap_until_they_close() {
    const CAP: usize = 3;
    // Long enough that the bridge does not close them during the test.
    let system = start(
        Duration::from_secs(60),
        LimitsConfig {
            max_connections_per_ip: CAP,
            ..LimitsConfig::default()
        },
    )
    .await;
    let session = session_id("half-cap");
    let mut held = Vec::new();
    for _ in 0..CAP {
        held.push(half_open(&system, &session).await);
    }
    let mut over = Client::connect(&system.ws_url(&query(&session, "ann"))).await;
    let error = over.expect("error").await;
    assert_eq!(error["data"]["code"], "RateLimited");
    assert!(
        error["data"]["message"]
            .as_str()
            .unwrap()
            .contains("address"),
        "the per-IP cap: {error}"
    );
    assert!(matches!(over.next().await, Received::Closed(Some(4029))));

    // Once they close, their places are free again.
    drop(held);
    let mut ann = upgrade_once_admitted(&system, &query(&session, "ann")).await;
    ann.send("system.ping", serde_json::json!({})).await;
    ann.expect("system.pong").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_socket_holds_one_place_not_two() {
    const CAP: usize = 2;
    let system = start(
        Duration::from_secs(60),
        LimitsConfig {
            max_connections_per_ip: CAP,
            ..LimitsConfig::default()
        },
    )
    .await;
    let session = session_id("one-place");
    let mut ann = system.join(&session, "ann", "student").await;
    ann.expect_start().await;
    let mut bob = system.join(&session, "bob", "student").await;
    bob.expect_start().await;
    let mut over = Client::connect(&system.ws_url(&query(&session, "cy"))).await;
    assert_eq!(over.expect("error").await["data"]["code"], "RateLimited");
    bob.close().await;
    upgrade_once_admitted(&system, &query(&session, "cy")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_answered_while_half_open_connections_are_held() {
    let system = start(
        Duration::from_secs(60),
        LimitsConfig {
            max_connections_per_ip: 10,
            ..LimitsConfig::default()
        },
    )
    .await;
    let session = session_id("half-health");
    let mut held = Vec::new();
    for _ in 0..50 {
        held.push(half_open(&system, &session).await);
    }
    assert_eq!(http_get(system.bridge_addr, "/healthz").await.0, 200);
    assert_eq!(http_get(system.bridge_addr, "/readyz").await.0, 200);
    // They are still open: the answers did not wait for them to go.
    for stream in &mut held {
        assert_eq!(
            raw::wait_for_close(stream, Duration::from_millis(1)).await,
            Ending::Open
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_past_the_connect_rate_get_429_with_retry_after_before_any_join() {
    const BURST: u32 = 3;
    let system = start(
        HANDSHAKE_TIMEOUT,
        LimitsConfig {
            // No refill to speak of during the test: exactly the burst.
            connects_per_second_per_ip: 0.1,
            connect_burst_per_ip: BURST,
            ..LimitsConfig::default()
        },
    )
    .await;
    let session = session_id("connect-rate");
    let mut ann = system.join(&session, "ann", "teacher").await;
    ann.expect_start().await;
    for n in 1..BURST {
        let mut client = system
            .join(&session, &format!("student{n}"), "student")
            .await;
        client.expect_start().await;
    }
    let mut stream = TcpStream::connect(system.bridge_addr)
        .await
        .expect("connect");
    let request = raw::upgrade_request(
        system.bridge_addr,
        &format!("/ws?{}", query(&session, "dan")),
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write the request");
    let head = raw::read_head(&mut stream).await;
    assert_eq!(head.status, 429, "{head:?}");
    let retry_after: u64 = head
        .header("retry-after")
        .expect("a Retry-After header")
        .parse()
        .expect("Retry-After in seconds");
    assert!(
        (1..=10).contains(&retry_after),
        "one token at 0.1/s: {retry_after}"
    );
    // The core never heard of dan: no presence for him reaches the session.
    ann.expect_silence_except(Duration::from_millis(300), |frame| {
        frame["type"] == "presence.event" && frame["data"]["participantId"] != "dan"
    })
    .await;
    // Plain HTTP is not counted against the rate.
    assert_eq!(http_get(system.bridge_addr, "/healthz").await.0, 200);
}
