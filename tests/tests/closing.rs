//! Server-initiated closes are closing handshakes (RFC 6455 §7.1.1): the
//! client receives the close code even when it had sent data the bridge had
//! not read yet. Dropping the TCP connection right after the Close frame
//! would make the kernel answer that unread data with a reset, and the
//! client's kernel would discard what the bridge wrote last, close included.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use meno_bridge::config::BridgeConfig;
use meno_bridge::limits::LimitsConfig;
use meno_tests::{in_both_modes, session_id, Client, Mode, Received, System};
use tokio_tungstenite::tungstenite::Message;

const PING: &str = r#"{"action":"system.ping"}"#;

/// What a flooding client read before its socket ended.
#[derive(Debug, Default)]
struct Read {
    pongs: usize,
    rate_limited: usize,
    other: Vec<String>,
    close_code: Option<u16>,
}

async fn a_client_that_keeps_sending_while_closed_for_rate_limiting_receives_4029(mode: Mode) {
    let bridge = BridgeConfig {
        rate_limits: LimitsConfig {
            // No refill during the test: exactly the burst is served.
            messages_per_second: 0.001,
            message_burst: 40,
            max_rate_violations: 20,
            ..LimitsConfig::default()
        },
        ..meno_tests::test_bridge_config()
    };
    let system = System::start_with_bridge(mode, bridge).await;
    let session = session_id("flood");
    let mut flooder = system.join(&session, "flooder", "student").await;
    flooder.expect_start().await;
    let (mut sink, mut stream) = flooder.into_inner().split();

    // 100 pings at once, then more for as long as the socket takes them:
    // the bridge closes it with data of ours still unread.
    let writer = tokio::spawn(async move {
        let mut sent = 0usize;
        while sink.send(Message::Text(PING.into())).await.is_ok() {
            sent += 1;
            if sent >= 100 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if sent > 5_000 {
                break;
            }
        }
        sent
    });
    let mut read = Read::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let message = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("the socket ended within 30 s");
        match message {
            Some(Ok(Message::Text(text))) => {
                let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
                match (frame["type"].as_str(), frame["data"]["code"].as_str()) {
                    (Some("system.pong"), _) => read.pongs += 1,
                    (Some("error"), Some("RateLimited")) => read.rate_limited += 1,
                    _ => read.other.push(text.to_string()),
                }
            }
            Some(Ok(Message::Close(frame))) => {
                read.close_code = frame.map(|frame| u16::from(frame.code));
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(err)) => panic!("the socket failed instead of closing: {err}; read {read:?}"),
            None => break,
        }
    }
    let sent = writer.await.expect("writer");
    assert!(sent >= 100, "sent {sent}");
    assert_eq!(read.close_code, Some(4029), "close code; read {read:?}");
    assert_eq!(
        read.pongs, 40,
        "one pong per token of the burst; read {read:?}"
    );
    assert_eq!(
        read.rate_limited, 20,
        "an error per violation before the close"
    );
    assert!(read.other.is_empty(), "unexpected frames: {:?}", read.other);
}

async fn a_stalled_reader_that_resumes_within_the_close_timeout_gets_every_frame_then_4008(
    mode: Mode,
) {
    const MESSAGES: usize = 2000;
    let bridge = BridgeConfig {
        outbound_queue_bytes: 64 * 1024,
        rate_limits: LimitsConfig {
            messages_per_second: 1e6,
            message_burst: 1_000_000,
            ..LimitsConfig::default()
        },
        close_timeout: Duration::from_secs(120),
        ..meno_tests::test_bridge_config()
    };
    let system = System::start_with_bridge(mode, bridge).await;
    let session = session_id("stalled");
    let mut ann = system.join(&session, "ann", "teacher").await;
    ann.expect_start().await;
    let query =
        format!("sessionId={session}&participantId=stalled&name=Stalled&role=student&client=web");
    let mut stalled =
        Client::connect_with_small_buffer(&system.ws_url(&query), system.bridge_addr).await;
    stalled.expect_start().await;

    let padding = "x".repeat(8 * 1024);
    for n in 0..MESSAGES {
        ann.chat(&format!("m{n}"), &padding).await;
        ann.expect_where("chat.message", |f| {
            f["data"]["messageId"] == format!("m{n}").as_str()
        })
        .await;
    }
    // The stalled client writes while it does not read: keepalive pings the
    // bridge, closing it as a slow consumer, has not read.
    for _ in 0..10 {
        stalled.send_raw(PING).await;
    }

    let mut received = Vec::new();
    let code = loop {
        match stalled.next().await {
            Received::Frame(frame) if frame["type"] == "chat.message" => {
                received.push(frame["data"]["messageId"].as_str().unwrap().to_owned());
            }
            Received::Frame(_) => {}
            Received::Closed(code) => break code,
            Received::Ended => break None,
        }
    };
    assert_eq!(
        code,
        Some(4008),
        "slow consumer close, after {} messages",
        received.len()
    );
    assert!(
        !received.is_empty(),
        "the frames written before the overflow arrive"
    );
    assert!(
        received.len() < MESSAGES,
        "the socket overflowed before the end"
    );
    let expected: Vec<String> = (0..received.len()).map(|n| format!("m{n}")).collect();
    assert_eq!(
        received, expected,
        "every frame written arrives, in order, none skipped"
    );
}

in_both_modes!(
    a_client_that_keeps_sending_while_closed_for_rate_limiting_receives_4029,
    a_stalled_reader_that_resumes_within_the_close_timeout_gets_every_frame_then_4008,
);
