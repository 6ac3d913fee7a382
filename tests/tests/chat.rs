//! Chat: fan-out to everyone including the sender, idempotent resend, and
//! history stored once.

use std::time::Duration;

use meno_proto::{chat_service_client::ChatServiceClient, ChatHistoryRequest, SessionRef};
use meno_tests::{in_both_modes, seq, session_id, Mode, System};
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
    let system = System::start(mode).await;
    let session = session_id("dedupe");
    let mut ann = system.join(&session, "ann", "teacher").await;
    ann.expect_start().await;
    let mut bob = system.join(&session, "bob", "student").await;
    bob.expect_start().await;
    ann.expect("presence.event").await;

    ann.chat("same-id", "once").await;
    let first = ann.expect("chat.message").await;
    assert_eq!(bob.expect("chat.message").await, first);

    // The resend: the sender alone gets the stored message back.
    ann.chat("same-id", "once, retried").await;
    let echo = ann.expect("chat.message").await;
    assert_eq!(echo["data"], first["data"], "the stored message, unchanged");
    bob.expect_silence(Duration::from_millis(300)).await;

    ann.chat("next-id", "after").await;
    let next = bob.expect("chat.message").await;
    assert_eq!(
        next["data"]["content"], "after",
        "bob saw no duplicate before this"
    );
    assert!(seq(&next) > seq(&first));

    let mut carl = system.join(&session, "carl", "student").await;
    let (sync, _) = carl.expect_start().await;
    let ids: Vec<&str> = sync["data"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["messageId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["same-id", "next-id"], "stored once");
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
    let channel = match system.core_addr {
        Some(addr) => tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap(),
        None => system.core.in_process_channel(),
    };
    let mut chat = ChatServiceClient::new(channel);
    let mut before_seq = None;
    let mut pages = Vec::new();
    loop {
        let page = chat
            .history(ChatHistoryRequest {
                session: Some(SessionRef {
                    tenant: String::new(),
                    session_id: session.clone(),
                }),
                before_seq,
                limit: 3,
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
    history_is_paged_newest_first_over_grpc,
);
