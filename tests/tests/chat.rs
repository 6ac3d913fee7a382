//! Chat: fan-out to everyone including the sender, idempotent resend (each
//! message once per socket, in order), and history stored once.

use std::time::Duration;

use meno_proto::{chat_service_client::ChatServiceClient, ChatHistoryRequest, SessionRef};
use meno_tests::{in_both_modes, seq, session_id, Client, Mode, System};
use serde_json::json;

async fn a_message_reaches_every_socket_including_the_sender(mode: Mode) {
    let system = System::start(mode).await;
    let session = session_id("fanout");
    let mut ann = system.join(&session, "ann", "teacher").await;
    ann.expect_start().await;
    let mut bob = system.join(&session, "bob", "student").await;
    bob.expect_start().await;
    let mut cem = system.join(&session, "cem", "observer").await;
    cem.expect_start().await;
    ann.expect_where("presence.event", |f| f["data"]["participantId"] == "cem")
        .await;
    bob.expect_where("presence.event", |f| f["data"]["participantId"] == "cem")
        .await;

    bob.send(
        "chat.send",
        json!({"messageId": "b-1", "content": "hello", "meta": {"tags": ["q"]}}),
    )
    .await;
    for client in [&mut ann, &mut bob, &mut cem] {
        let message = client.expect("chat.message").await;
        let data = &message["data"];
        assert_eq!(data["sessionId"], session.as_str());
        assert_eq!(data["messageId"], "b-1");
        assert_eq!(data["participantId"], "bob");
        assert_eq!(data["participantName"], "bob-name");
        assert_eq!(data["role"], "student");
        assert_eq!(data["content"], "hello");
        assert_eq!(data["meta"], json!({"tags": ["q"]}));
        assert!(data["createdAt"].as_str().unwrap().ends_with('Z'));
    }
}

async fn a_resend_is_stored_once_and_not_broadcast_again(mode: Mode) {
    let config = meno_core::config::SessionConfig {
        history_sync_limit: 1,
        ..meno_tests::test_session_config()
    };
    let system = System::start_with(mode, meno_tests::test_store().await, config, None).await;
    let session = session_id("dedupe");
    let mut ann = system.join(&session, "ann", "teacher").await;
    ann.expect_start().await;
    let mut bob = system.join(&session, "bob", "student").await;
    bob.expect_start().await;
    ann.expect("presence.event").await;

    ann.chat("same-id", "once").await;
    let first = ann.expect("chat.message").await;
    assert_eq!(bob.expect("chat.message").await, first);

    // The resend of a message this socket already has: no second copy,
    // for the sender either (its acknowledgement was the first one).
    ann.chat("same-id", "once, retried").await;
    ann.expect_silence(Duration::from_millis(300)).await;
    bob.expect_silence(Duration::from_millis(300)).await;

    ann.chat("next-id", "after").await;
    let next = bob.expect("chat.message").await;
    assert_eq!(
        next["data"]["content"], "after",
        "bob saw no duplicate before this"
    );
    assert!(seq(&next) > seq(&first));
    assert_eq!(ann.expect("chat.message").await, next);

    // A new socket whose chat.sync no longer holds the message: the resend
    // is acknowledged with the stored message, to the sender alone.
    let mut ann_again = system.join(&session, "ann", "teacher").await;
    let (sync, _) = ann_again.expect_start().await;
    let synced: Vec<&str> = sync["data"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["messageId"].as_str().unwrap())
        .collect();
    assert_eq!(synced, ["next-id"]);
    ann_again.chat("same-id", "retried from elsewhere").await;
    let echo = ann_again.expect_where("chat.message", |_| true).await;
    assert_eq!(echo["data"], first["data"], "the stored message, unchanged");
    assert_eq!(seq(&echo), seq(&first), "with its original seq");
    ann_again.chat("last-id", "the end").await;
    for client in [&mut ann, &mut bob, &mut ann_again] {
        let frame = client.expect_where("chat.message", |_| true).await;
        assert_eq!(
            frame["data"]["messageId"], "last-id",
            "no copy of the resend"
        );
    }

    let history = chat_history(&system, &session).await;
    assert_eq!(history, ["same-id", "next-id", "last-id"], "stored once");
}

/// A sender that retries a message whose answer it has not seen (its
/// connection dropped right after sending) gets it once, in its turn, from
/// the resume: the resend is not answered with a second copy.
async fn a_resend_after_a_reconnect_is_delivered_once_in_order(mode: Mode) {
    let system = System::start(mode).await;
    let session = session_id("resend-resume");
    let mut ann = system.join(&session, "ann", "teacher").await;
    ann.expect_start().await;
    let mut bob = system.join(&session, "bob", "student").await;
    bob.expect_start().await;
    let last_seen = seq(&ann.expect("presence.event").await);
    ann.chat("a-1", "in doubt").await;
    ann.drop_connection();
    let a1 = seq(&bob.expect_where("chat.message", |_| true).await);
    bob.chat("b-1", "while ann is away").await;
    let b1 = seq(&bob
        .expect_where("chat.message", |f| f["data"]["messageId"] == "b-1")
        .await);

    let query = format!(
        "sessionId={session}&participantId=ann&name=ann-name&role=teacher&client=web&lastSeq={last_seen}"
    );
    let mut ann = Client::connect(&system.ws_url(&query)).await;
    // The resend goes out at once, before the resume is read.
    ann.chat("a-1", "in doubt").await;
    let mut chat_seen = Vec::new();
    while let Some(frame) = ann.try_recv(Duration::from_millis(500)).await {
        if frame["type"] == "chat.message" {
            let id = frame["data"]["messageId"].as_str().unwrap().to_owned();
            chat_seen.push((seq(&frame), id));
        }
    }
    assert_eq!(
        chat_seen,
        [(a1, "a-1".to_owned()), (b1, "b-1".to_owned())],
        "each once, in seq order"
    );
}

fn session_ref(session: &str) -> SessionRef {
    SessionRef {
        tenant: String::new(),
        session_id: session.to_owned(),
    }
}

async fn channel(system: &System) -> tonic::transport::Channel {
    match system.core_addr {
        Some(addr) => tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap(),
        None => system.core.in_process_channel(),
    }
}

/// The session's stored messageIds, oldest first.
async fn chat_history(system: &System, session: &str) -> Vec<String> {
    let mut chat = ChatServiceClient::new(channel(system).await);
    let page = chat
        .history(ChatHistoryRequest {
            session: Some(session_ref(session)),
            before_seq: None,
            limit: 500,
            ..ChatHistoryRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    page.messages
        .iter()
        .rev()
        .map(|m| m.client_ref.clone())
        .collect()
}

async fn history_is_paged_newest_first_over_grpc(mode: Mode) {
    let system = System::start(mode).await;
    let session = session_id("history");
    let mut ann = system.join(&session, "ann", "teacher").await;
    ann.expect_start().await;
    for n in 0..7 {
        ann.chat(&format!("m{n}"), &format!("message {n}")).await;
        ann.expect("chat.message").await;
    }
    let mut chat = ChatServiceClient::new(channel(&system).await);
    let mut before_seq = None;
    let mut pages = Vec::new();
    loop {
        let page = chat
            .history(ChatHistoryRequest {
                session: Some(session_ref(&session)),
                before_seq,
                limit: 3,
                ..ChatHistoryRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages.push(
            page.messages
                .iter()
                .map(|m| m.client_ref.clone())
                .collect::<Vec<_>>(),
        );
        match page.next_before_seq {
            Some(next) => before_seq = Some(next),
            None => break,
        }
    }
    assert_eq!(
        pages,
        [vec!["m6", "m5", "m4"], vec!["m3", "m2", "m1"], vec!["m0"],]
    );
}

in_both_modes!(
    a_message_reaches_every_socket_including_the_sender,
    a_resend_is_stored_once_and_not_broadcast_again,
    a_resend_after_a_reconnect_is_delivered_once_in_order,
    history_is_paged_newest_first_over_grpc,
);
