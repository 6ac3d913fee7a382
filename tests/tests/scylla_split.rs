//! The seed-000 scenarios in split mode (core on its own gRPC port) on the
//! Scylla store, against a real CQL server: chat fan-out and dedupe, history
//! paging, the lease, resume across a core restart, presence expiry.
//!
//! Skipped ("skipped: no CQL server") without a server, unless
//! `MENO_REQUIRE_CQL=1`. `MENO_TEST_STORE=scylla` runs every other e2e file on
//! the same store too.

use std::sync::Arc;
use std::time::Duration;

use meno_core::store::ScyllaStore;
use meno_proto::{chat_service_client::ChatServiceClient, ChatHistoryRequest, SessionRef};
use meno_tests::{scylla_test_store, seq, session_id, test_session_config, Client, Mode, System};
use serde_json::{json, Value};

async fn split_system(test: &str) -> Option<(System, ScyllaStore)> {
    let store = scylla_test_store(test).await?;
    let system = System::start_with(
        Mode::Split,
        Arc::new(store.clone()),
        test_session_config(),
        None,
    )
    .await;
    Some((system, store))
}

fn message_ids(sync: &Value) -> Vec<String> {
    sync["data"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["messageId"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_fans_out_and_a_resend_is_stored_once() {
    let Some((system, _store)) = split_system("fan-out").await else {
        return;
    };
    let session = session_id("scylla-chat");
    let mut ann = system.join(&session, "ann", "teacher").await;
    ann.expect_start().await;
    let mut bob = system.join(&session, "bob", "student").await;
    bob.expect_start().await;
    ann.expect_where("presence.event", |f| f["data"]["participantId"] == "bob")
        .await;

    bob.send(
        "chat.send",
        json!({"messageId": "b-1", "content": "hello", "meta": {"tags": ["q"]}}),
    )
    .await;
    let at_ann = ann.expect("chat.message").await;
    let at_bob = bob.expect("chat.message").await;
    assert_eq!(at_ann, at_bob, "the same event for every socket");
    assert_eq!(at_ann["data"]["content"], "hello");
    assert_eq!(at_ann["data"]["meta"], json!({"tags": ["q"]}));

    // Bob already has b-1 on this socket: no second copy, for anyone.
    bob.send("chat.send", json!({"messageId": "b-1", "content": "retry"}))
        .await;
    bob.expect_silence(Duration::from_millis(300)).await;
    ann.expect_silence(Duration::from_millis(100)).await;

    let mut cem = system.join(&session, "cem", "student").await;
    let (sync, _) = cem.expect_start().await;
    assert_eq!(message_ids(&sync), ["b-1"], "stored once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_newest_first_over_grpc() {
    let Some((system, _store)) = split_system("history").await else {
        return;
    };
    let session = session_id("scylla-history");
    let mut ann = system.join(&session, "ann", "teacher").await;
    ann.expect_start().await;
    for n in 0..7 {
        ann.chat(&format!("m{n}"), &format!("message {n}")).await;
        ann.expect("chat.message").await;
    }
    let addr = system.core_addr.expect("split mode has a core address");
    let mut chat = ChatServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
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
        [vec!["m6", "m5", "m4"], vec!["m3", "m2", "m1"], vec!["m0"]]
    );
}

async fn lease_state(client: &mut Client) -> Value {
    client.expect("control.lease.state").await["data"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_is_granted_refused_preempted_and_released() {
    let Some((system, store)) = split_system("lease").await else {
        return;
    };
    let session = session_id("scylla-lease");
    let mut tina = system.join(&session, "tina", "teacher").await;
    tina.expect_start().await;
    let mut sam = system.join(&session, "sam", "student").await;
    sam.expect_start().await;
    let mut sue = system.join(&session, "sue", "student").await;
    sue.expect_start().await;
    for client in [&mut tina, &mut sam] {
        client
            .expect_where("presence.event", |f| f["data"]["participantId"] == "sue")
            .await;
    }

    sam.send(
        "control.lease.set",
        json!({"stepIndex": 2, "leaseId": "sam-lease"}),
    )
    .await;
    let taken = lease_state(&mut tina).await;
    assert_eq!(taken["leaseTo"], "sam");
    assert_eq!(taken["epoch"], 1);
    lease_state(&mut sam).await;
    lease_state(&mut sue).await;

    sue.send("control.lease.set", json!({"stepIndex": 5})).await;
    let refused = sue.expect("error").await;
    assert_eq!(refused["data"]["code"], "Conflict", "{refused}");

    tina.send("control.lease.set", json!({"stepIndex": 4}))
        .await;
    let preempted = lease_state(&mut sam).await;
    assert_eq!(preempted["leaseTo"], "tina");
    assert_eq!(preempted["epoch"], 2, "a new holder gets the next epoch");
    lease_state(&mut tina).await;
    lease_state(&mut sue).await;

    tina.send("control.lease.release", json!({})).await;
    let cleared = lease_state(&mut sam).await;
    assert_eq!(cleared["leaseId"], Value::Null);
    assert_eq!(cleared["epoch"], 2);

    // What the LWT wrote is what a fresh load reads.
    let key = meno_core::store::SessionKey::new("", &session);
    let stored = meno_core::store::Store::load_session(&store, &key)
        .await
        .unwrap();
    let lease = stored.lease.expect("lease row written");
    assert_eq!((lease.epoch, lease.lease_id.as_str()), (2, ""));
    assert_eq!(stored.step_index, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_core_resumes_from_the_store_and_never_reuses_a_seq() {
    let Some((first, store)) = split_system("restart").await else {
        return;
    };
    let session = session_id("scylla-restart");
    let mut ann = first.join(&session, "ann", "teacher").await;
    ann.expect_start().await;
    let mut seqs = Vec::new();
    for n in 0..5 {
        ann.chat(&format!("m{n}"), &format!("message {n}")).await;
        seqs.push(seq(&ann.expect("chat.message").await));
    }
    drop(ann);
    drop(first);

    // Another core and bridge on the same keyspace: nothing in memory.
    let second =
        System::start_with(Mode::Split, Arc::new(store), test_session_config(), None).await;
    let query = format!(
        "sessionId={session}&participantId=ann&name=ann-name&role=teacher&client=web&lastSeq={}",
        seqs[1]
    );
    let mut ann = Client::connect(&second.ws_url(&query)).await;
    let mut replayed = Vec::new();
    loop {
        let frame = ann.recv().await;
        match frame["type"].as_str().unwrap() {
            "chat.message" => replayed.push(seq(&frame)),
            "presence.snapshot" => break,
            other => panic!("unexpected {other}: {frame}"),
        }
    }
    assert_eq!(
        replayed,
        seqs[2..],
        "missed messages replayed from the store, once"
    );
    ann.chat("after", "after the restart").await;
    let after = seq(&ann.expect_where("chat.message", |_| true).await);
    assert!(after > seqs[4], "seq {after} reused after {seqs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abnormal_close_goes_offline_after_the_grace_period() {
    let Some((system, _store)) = split_system("grace").await else {
        return;
    };
    let session = session_id("scylla-grace");
    let mut ann = system.join(&session, "ann", "teacher").await;
    ann.expect_start().await;
    let mut bob = system.join(&session, "bob", "student").await;
    bob.expect_start().await;
    ann.expect_where("presence.event", |f| f["data"]["participantId"] == "bob")
        .await;
    bob.drop_connection();
    let reconnecting = ann.expect("presence.event").await;
    assert_eq!(reconnecting["data"]["status"], "reconnecting");
    system.advance(Duration::from_secs(14));
    ann.expect_silence(Duration::from_millis(200)).await;
    system.advance(Duration::from_secs(2));
    let offline = ann.expect("presence.event").await;
    assert_eq!(offline["data"]["participantId"], "bob");
    assert_eq!(offline["data"]["status"], "offline");
}
