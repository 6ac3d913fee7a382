//! Slow consumers: a socket that stops reading is closed with 4008, and the
//! rest of its session keeps receiving every message; a frame larger than
//! the queue's bound still reaches a socket that reads.

use meno_bridge::config::BridgeConfig;
use meno_tests::{in_both_modes, session_id, Client, Mode, Received, System};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const MESSAGES: usize = 2000;

async fn a_socket_that_stops_reading_is_closed_with_4008_while_others_get_everything(mode: Mode) {
    let bridge = BridgeConfig {
        outbound_queue_bytes: 64 * 1024,
        // The sender is a load generator here, not a person.
        rate_limits: meno_bridge::limits::LimitsConfig {
            messages_per_second: 1e6,
            message_burst: 1_000_000,
            ..meno_bridge::limits::LimitsConfig::default()
        },
        // Long enough for the close frame to wait until the test reads again.
        close_timeout: std::time::Duration::from_secs(120),
        ..meno_tests::test_bridge_config()
    };
    let system = System::start_with_bridge(mode, bridge).await;
    let session = session_id("slow");
    let mut ann = system.join(&session, "ann", "teacher").await;
    ann.expect_start().await;
    let query =
        format!("sessionId={session}&participantId=slow&name=Slow&role=student&client=tablet");
    let mut slow =
        Client::connect_with_small_buffer(&system.ws_url(&query), system.bridge_addr).await;
    slow.expect_start().await;
    let mut bob = system.join(&session, "bob", "student").await;
    bob.expect_start().await;
    ann.expect_where("presence.event", |f| f["data"]["participantId"] == "bob")
        .await;

    // Bob reads everything, concurrently; the slow client reads nothing.
    let reader = tokio::spawn(async move {
        let mut contents = Vec::with_capacity(MESSAGES);
        while contents.len() < MESSAGES {
            let frame = bob.recv().await;
            if frame["type"] == "chat.message" {
                contents.push(frame["data"]["messageId"].as_str().unwrap().to_owned());
            }
        }
        contents
    });
    let padding = "x".repeat(8 * 1024);
    for n in 0..MESSAGES {
        ann.chat(&format!("m{n}"), &padding).await;
        ann.expect_where("chat.message", |f| {
            f["data"]["messageId"] == format!("m{n}").as_str()
        })
        .await;
    }
    let received = reader.await.expect("reader");
    let expected: Vec<String> = (0..MESSAGES).map(|n| format!("m{n}")).collect();
    assert_eq!(received, expected, "bob got every message, in order");

    // Once the slow client reads again, it finds the 4008 close after what
    // had already reached its buffers.
    let code = loop {
        match slow.next().await {
            Received::Frame(_) => continue,
            Received::Closed(code) => break code,
            Received::Ended => break None,
        }
    };
    assert_eq!(code, Some(4008), "slow consumer close code");
    ann.expect_where("presence.event", |f| {
        f["data"]["participantId"] == "slow" && f["data"]["status"] == "offline"
    })
    .await;
}

/// A start frame larger than the socket's whole outbound queue (here a
/// `chat.sync` of 20 messages of 8 KiB against a 64 KiB queue; in a join
/// storm, the roster of a room of 6,000) is written whole: the bound is on
/// what waits in the queue, not on one frame. Before, the socket's write
/// buffer had the queue's size and such a socket was dropped without a
/// close frame. It comes as fragments of at most 16 KiB, so that the
/// socket's write buffer never grows to a whole start frame.
async fn a_start_frame_larger_than_the_outbound_queue_is_delivered(mode: Mode) {
    const LARGE: usize = 20;
    let bridge = BridgeConfig {
        outbound_queue_bytes: 64 * 1024,
        ..meno_tests::test_bridge_config()
    };
    let system = System::start_with_bridge(mode, bridge).await;
    let session = session_id("large-start");
    let mut ann = system.join(&session, "ann", "teacher").await;
    ann.expect_start().await;
    let padding = "x".repeat(8 * 1024);
    for n in 0..LARGE {
        ann.chat(&format!("m{n}"), &padding).await;
        ann.expect_where("chat.message", |f| {
            f["data"]["messageId"] == format!("m{n}").as_str()
        })
        .await;
    }
    // Bob takes frames of at most 32 KiB (messages up to 1 MiB): the start
    // frames reach him only as fragments.
    let query =
        format!("sessionId={session}&participantId=bob&name=bob-name&role=student&client=web");
    let small_frames = WebSocketConfig::default()
        .max_frame_size(Some(32 * 1024))
        .max_message_size(Some(1024 * 1024));
    let (ws, _) = tokio_tungstenite::connect_async_with_config(
        system.ws_url(&query),
        Some(small_frames),
        false,
    )
    .await
    .expect("bob connects");
    let mut bob = Client::from_stream(ws);
    let (sync, snapshot) = bob.expect_start().await;
    let ids: Vec<&str> = sync["data"]["messages"]
        .as_array()
        .expect("chat.sync messages")
        .iter()
        .filter_map(|message| message["messageId"].as_str())
        .collect();
    let expected: Vec<String> = (0..LARGE).map(|n| format!("m{n}")).collect();
    assert_eq!(ids, expected, "bob's chat.sync holds every message");
    assert!(
        sync.to_string().len() > 64 * 1024,
        "the start frame is larger than the queue"
    );
    assert_eq!(snapshot["type"], "presence.snapshot");
}

in_both_modes!(
    a_socket_that_stops_reading_is_closed_with_4008_while_others_get_everything,
    a_start_frame_larger_than_the_outbound_queue_is_delivered,
);
