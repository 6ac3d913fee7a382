//! NexusChat (seed 004) clients on the same core: `/ws/nexus`, rooms, typed
//! messages and their validation, idempotent `clientRef`, typing and its
//! timeout, presence with its TTL, read receipts (`ACK` → `READ`), the REST
//! history and reads, tenancy, and chat across dialects.
//!
//! Every scenario runs monolithic and split on the test store (memory, or
//! the real CQL server with `MENO_TEST_STORE=scylla`) and on the embedded
//! store.

use std::time::Duration;

use meno_tests::nexus::{get_json, NexusClient};
use meno_tests::{session_id, Mode, System};
use serde_json::{json, Value};

/// Runs each scenario monolithic and split on the test store, and
/// monolithic on the embedded store.
macro_rules! scenarios {
    ($($scenario:ident),* $(,)?) => {
        mod monolithic {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(meno_tests::System::start(meno_tests::Mode::Monolithic).await).await
                }
            )*
        }
        mod split {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(meno_tests::System::start(meno_tests::Mode::Split).await).await
                }
            )*
        }
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(meno_tests::System::start_embedded(meno_tests::Mode::Monolithic).await).await
                }
            )*
        }
    };
}

scenarios!(
    every_message_type_is_validated_and_broadcast_to_the_room_sender_included,
    a_repeated_client_ref_is_stored_once_and_only_its_sender_hears_it_again,
    typing_reaches_the_others_and_clears_itself_after_the_timeout,
    presence_shows_the_first_connection_and_the_last_one_leaving_or_expiring,
    an_ack_is_stored_broadcast_as_read_and_never_moves_back,
    rest_pages_by_offset_and_by_cursor_and_lists_reads,
    a_client_in_two_rooms_gets_each_rooms_events_and_leaves_one,
    tenants_and_rooms_do_not_see_each_other_through_any_door,
    seed_000_and_nexus_clients_chat_across_dialects,
);

const QUIET: Duration = Duration::from_millis(300);

fn tenant(prefix: &str) -> String {
    session_id(prefix).replace('-', "")
}

async fn every_message_type_is_validated_and_broadcast_to_the_room_sender_included(system: System) {
    let (tenant, room) = (tenant("t"), session_id("types"));
    let mut ann = system.nexus(&tenant, "ann", &[&room]).await;
    let mut bob = system.nexus(&tenant, "bob", &[&room]).await;
    ann.expect_where("PRESENCE", |f| f["data"]["userId"] == "bob")
        .await;

    let trace = ann.say(&room, "c-1", "hello").await;
    let at_ann = ann.expect("NEW_MESSAGE").await;
    let at_bob = bob.expect("NEW_MESSAGE").await;
    assert_eq!(at_ann, at_bob, "one encoding for the whole room");
    assert_eq!(at_ann["traceId"], trace);
    let data = &at_ann["data"];
    assert!(uuid_like(&data["id"]), "server id: {data}");
    assert_eq!(data["roomId"], room.as_str());
    assert_eq!(data["senderId"], "ann");
    assert_eq!(data["type"], "TEXT");
    assert_eq!(data["contentText"], "hello");
    assert_eq!(data["contentMeta"], Value::Null);
    assert!(data["createdAt"].as_str().unwrap().ends_with('Z'));

    for kind in ["IMAGE", "VIDEO", "AUDIO", "FILE"] {
        let meta = json!({"url": format!("https://cdn.test/{kind}.bin"), "size": 12});
        ann.send(
            "SEND_MSG",
            json!({"roomId": room, "type": kind, "contentMeta": meta}),
        )
        .await;
        let shown = bob.expect("NEW_MESSAGE").await;
        assert_eq!(shown["data"]["type"], kind);
        assert_eq!(shown["data"]["contentMeta"], meta);
        assert_eq!(shown["data"]["contentText"], Value::Null);
        ann.expect("NEW_MESSAGE").await;
    }

    let refused = [
        json!({"roomId": room, "type": "TEXT"}),
        json!({"roomId": room, "type": "TEXT", "contentText": ""}),
        json!({"roomId": room, "type": "IMAGE"}),
        json!({"roomId": room, "type": "IMAGE", "contentMeta": {"width": 3}}),
        json!({"roomId": room, "type": "VIDEO", "contentMeta": {"url": "ftp://x.test/v"}}),
        json!({"roomId": room, "type": "STICKER", "contentText": "x"}),
    ];
    for data in refused {
        let trace = ann.send("SEND_MSG", data.clone()).await;
        let error = ann.expect("ERROR").await;
        assert_eq!(error["traceId"], trace, "{data}");
        assert_eq!(error["data"]["code"], "InvalidArgument", "{data}: {error}");
        assert_eq!(error["data"]["retryable"], false);
        assert_eq!(error["data"]["event"], "SEND_MSG");
    }
    bob.expect_silence(QUIET).await;
    // The socket stays usable.
    ann.say(&room, "c-2", "still here").await;
    assert_eq!(
        bob.expect("NEW_MESSAGE").await["data"]["contentText"],
        "still here"
    );
}

async fn a_repeated_client_ref_is_stored_once_and_only_its_sender_hears_it_again(system: System) {
    let (tenant, room) = (tenant("t"), session_id("dedupe"));
    let mut ann = system.nexus(&tenant, "ann", &[&room]).await;
    let mut bob = system.nexus(&tenant, "bob", &[&room]).await;
    ann.expect_where("PRESENCE", |f| f["data"]["userId"] == "bob")
        .await;
    ann.say(&room, "same-ref", "first").await;
    let first = ann.expect("NEW_MESSAGE").await;
    bob.expect("NEW_MESSAGE").await;

    let again = ann.say(&room, "same-ref", "second try").await;
    let echoed = ann.expect("NEW_MESSAGE").await;
    assert_eq!(echoed["traceId"], again);
    assert_eq!(
        echoed["data"], first["data"],
        "the stored message, unchanged"
    );
    bob.expect_silence(QUIET).await;

    // Another sender's identical clientRef is another message.
    bob.say(&room, "same-ref", "bob's own").await;
    let bobs = ann.expect("NEW_MESSAGE").await;
    assert_ne!(bobs["data"]["id"], first["data"]["id"]);
    assert_eq!(bobs["data"]["contentText"], "bob's own");

    let (status, page) = get_json(
        system.bridge_addr,
        &format!("/api/rooms/{room}/messages?tenant={tenant}"),
        &[],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(page.as_array().unwrap().len(), 2, "{page}");
}

async fn typing_reaches_the_others_and_clears_itself_after_the_timeout(system: System) {
    let (tenant, room) = (tenant("t"), session_id("typing"));
    let mut ann = system.nexus(&tenant, "ann", &[&room]).await;
    let mut bob = system.nexus(&tenant, "bob", &[&room]).await;
    ann.expect_where("PRESENCE", |f| f["data"]["userId"] == "bob")
        .await;

    let trace = ann
        .send("TYPING", json!({"roomId": room, "isTyping": true}))
        .await;
    let typing = bob.expect("TYPING").await;
    assert_eq!(typing["traceId"], trace);
    assert_eq!(
        typing["data"],
        json!({"roomId": room, "userId": "ann", "isTyping": true})
    );
    ann.expect_silence(QUIET).await;

    system.advance(Duration::from_secs(6));
    let cleared = bob.expect("TYPING").await;
    assert_eq!(
        cleared["data"],
        json!({"roomId": room, "userId": "ann", "isTyping": false})
    );
    ann.expect_silence(QUIET).await;
}

async fn presence_shows_the_first_connection_and_the_last_one_leaving_or_expiring(system: System) {
    let (tenant, room) = (tenant("t"), session_id("presence"));
    let mut ann = system.nexus(&tenant, "ann", &[&room]).await;
    let bob = system.nexus(&tenant, "bob", &[&room]).await;
    let online = ann.expect("PRESENCE").await;
    assert_eq!(
        online["data"],
        json!({"userId": "bob", "userName": "bob-name", "status": "online"})
    );
    // A second connection of bob's changes nothing for ann.
    let bob_again = system.nexus(&tenant, "bob", &[&room]).await;
    ann.expect_silence(QUIET).await;
    bob_again.close().await;
    ann.expect_silence(QUIET).await;
    bob.close().await;
    let offline = ann.expect("PRESENCE").await;
    assert_eq!(offline["data"]["status"], "offline");
    assert_eq!(offline["data"]["userId"], "bob");

    // A connection nobody refreshes expires with its TTL (60 s).
    let carl = system.nexus(&tenant, "carl", &[&room]).await;
    ann.expect_where("PRESENCE", |f| f["data"]["userId"] == "carl")
        .await;
    system.advance(Duration::from_secs(61));
    let expired = ann
        .expect_where("PRESENCE", |f| f["data"]["userId"] == "carl")
        .await;
    assert_eq!(expired["data"]["status"], "offline");
    drop(carl);
}

async fn an_ack_is_stored_broadcast_as_read_and_never_moves_back(system: System) {
    let (tenant, room) = (tenant("t"), session_id("reads"));
    let mut ann = system.nexus(&tenant, "ann", &[&room]).await;
    let mut bob = system.nexus(&tenant, "bob", &[&room]).await;
    ann.expect_where("PRESENCE", |f| f["data"]["userId"] == "bob")
        .await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ann.say(&room, &format!("m-{n}"), &format!("message {n}"))
            .await;
        ids.push(ann.expect("NEW_MESSAGE").await["data"]["id"].clone());
        bob.expect("NEW_MESSAGE").await;
    }

    let trace = bob.send("ACK", json!({"messageId": ids[1]})).await;
    let read = ann.expect("READ").await;
    assert_eq!(read["traceId"], trace);
    assert_eq!(read["data"]["roomId"], room.as_str());
    assert_eq!(read["data"]["userId"], "bob");
    assert_eq!(read["data"]["messageId"], ids[1]);
    assert!(read["data"]["readAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(bob.expect("READ").await["data"], read["data"]);

    // Back to an older message: nothing moves, nothing is said.
    bob.send("ACK", json!({"messageId": ids[0]})).await;
    ann.expect_silence(QUIET).await;
    bob.expect_silence(QUIET).await;

    let (status, reads) = get_json(
        system.bridge_addr,
        &format!("/api/rooms/{room}/reads?tenant={tenant}"),
        &[],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(reads.as_array().unwrap().len(), 1, "{reads}");
    assert_eq!(reads[0]["userId"], "bob");
    assert_eq!(reads[0]["messageId"], ids[1]);
    assert_eq!(reads[0]["readAt"], read["data"]["readAt"]);

    // Unknown message, and a message of a room this socket is not in.
    bob.send("ACK", json!({"messageId": "no-such-message"}))
        .await;
    assert_eq!(bob.expect("ERROR").await["data"]["code"], "NotFound");
    let other = session_id("reads-other");
    let mut carl = system.nexus(&tenant, "carl", &[&other]).await;
    carl.say(&other, "c-1", "elsewhere").await;
    let elsewhere = carl.expect("NEW_MESSAGE").await["data"]["id"].clone();
    bob.send("ACK", json!({"messageId": elsewhere})).await;
    assert_eq!(
        bob.expect("ERROR").await["data"]["code"],
        "PermissionDenied"
    );
}

async fn rest_pages_by_offset_and_by_cursor_and_lists_reads(system: System) {
    let (tenant, room) = (tenant("t"), session_id("rest"));
    let mut ann = system.nexus(&tenant, "ann", &[&room]).await;
    let mut ids = Vec::new();
    for n in 0..7 {
        ann.say(&room, &format!("r-{n}"), &format!("text {n}"))
            .await;
        ids.push(ann.expect("NEW_MESSAGE").await["data"]["id"].clone());
    }
    let newest_first: Vec<Value> = ids.iter().rev().cloned().collect();
    let get = |query: String| {
        let addr = system.bridge_addr;
        let room = room.clone();
        async move { get_json(addr, &format!("/api/rooms/{room}/messages?{query}"), &[]).await }
    };
    let page_ids = |page: &Value| -> Vec<Value> {
        page.as_array()
            .unwrap()
            .iter()
            .map(|row| row["id"].clone())
            .collect()
    };

    let (status, first) = get(format!("tenant={tenant}&page=0&size=3")).await;
    assert_eq!(status, 200);
    assert_eq!(page_ids(&first), newest_first[0..3]);
    let row = &first[0];
    for field in [
        "id",
        "roomId",
        "senderId",
        "type",
        "contentText",
        "contentMeta",
        "createdAt",
        "editedAt",
    ] {
        assert!(row.get(field).is_some(), "{field} missing in {row}");
    }
    assert_eq!(row["contentMeta"], Value::Null);
    assert_eq!(row["editedAt"], Value::Null);
    assert_eq!(row["type"], "TEXT");
    let (_, second) = get(format!("tenant={tenant}&page=1&size=3")).await;
    assert_eq!(page_ids(&second), newest_first[3..6]);
    let (_, default_size) = get(format!("tenant={tenant}")).await;
    assert_eq!(page_ids(&default_size), newest_first);

    let cursor = newest_first[3].as_str().unwrap().to_owned();
    let (status, older) = get(format!("tenant={tenant}&before={cursor}&size=2")).await;
    assert_eq!(status, 200);
    assert_eq!(page_ids(&older), newest_first[4..6]);

    let (status, largest) = get(format!("tenant={tenant}&size=200")).await;
    assert_eq!(status, 200, "{largest}");
    assert_eq!(page_ids(&largest), newest_first);
    let (status, refused) = get(format!("tenant={tenant}&size=201")).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["code"], "InvalidArgument");
    let (status, _) = get(format!("tenant={tenant}&before=no-such-id")).await;
    assert_eq!(status, 404);
    let (status, reads) = get_json(
        system.bridge_addr,
        &format!("/api/rooms/{room}/reads?tenant={tenant}"),
        &[],
    )
    .await;
    assert_eq!((status, reads), (200, json!([])));
}

async fn a_client_in_two_rooms_gets_each_rooms_events_and_leaves_one(system: System) {
    let (tenant, red, blue) = (tenant("t"), session_id("red"), session_id("blue"));
    let mut ann = system.nexus(&tenant, "ann", &[&red]).await;
    let trace = ann.send("JOIN_ROOM", json!({"roomId": blue})).await;
    let joined = ann.expect("ROOM_JOINED").await;
    assert_eq!(joined["traceId"], trace);
    assert_eq!(joined["data"]["roomId"], blue.as_str());
    assert_eq!(joined["data"]["members"][0]["userId"], "ann");

    let mut bob = system.nexus(&tenant, "bob", &[&red, &blue]).await;
    ann.expect_where("PRESENCE", |f| f["data"]["userId"] == "bob")
        .await;
    bob.say(&red, "b-red", "to red").await;
    bob.say(&blue, "b-blue", "to blue").await;
    let first = ann.expect_where("NEW_MESSAGE", |_| true).await;
    let second = ann.expect_where("NEW_MESSAGE", |_| true).await;
    assert_eq!(first["data"]["roomId"], red.as_str());
    assert_eq!(second["data"]["roomId"], blue.as_str());
    let history = system.nexus(&tenant, "carl", &[]).await;
    drop(history);

    let trace = ann.send("LEAVE_ROOM", json!({"roomId": blue})).await;
    let left = ann
        .expect_where("ROOM_LEFT", |f| f["data"]["roomId"] == blue.as_str())
        .await;
    assert_eq!(left["traceId"], trace);
    bob.say(&blue, "b-blue-2", "ann is gone").await;
    bob.say(&red, "b-red-2", "ann is here").await;
    let next = ann.expect_where("NEW_MESSAGE", |_| true).await;
    assert_eq!(next["data"]["roomId"], red.as_str(), "nothing from blue");

    ann.say(&blue, "a-blue", "not in blue").await;
    let refused = ann.expect("ERROR").await;
    assert_eq!(refused["data"]["code"], "PermissionDenied");
    assert_eq!(refused["data"]["event"], "SEND_MSG");
    ann.send("TYPING", json!({"roomId": blue, "isTyping": true}))
        .await;
    assert_eq!(
        ann.expect("ERROR").await["data"]["code"],
        "PermissionDenied"
    );

    // A joiner sees the newest messages first.
    let mut dan = NexusClient::connect(&system.nexus_url(&format!(
        "userId=dan&userName=Dan&tenant={tenant}&roomId={red}"
    )))
    .await;
    let dan_joined = dan.expect("ROOM_JOINED").await;
    let last = dan_joined["data"]["lastMessages"].as_array().unwrap();
    assert_eq!(last[0]["contentText"], "ann is here");
    assert_eq!(last[1]["contentText"], "to red");
}

async fn tenants_and_rooms_do_not_see_each_other_through_any_door(system: System) {
    let room = session_id("shared-name");
    let (acme, umbrella) = (tenant("acme"), tenant("umbrella"));
    let mut ann = system.nexus(&acme, "ann", &[&room]).await;
    let mut eve = system.nexus(&umbrella, "ann", &[&room]).await;
    ann.say(&room, "a-1", "acme only").await;
    let message = ann.expect("NEW_MESSAGE").await;
    eve.expect_silence(QUIET).await;

    // Eve's ACK of acme's message finds nothing in her tenant.
    eve.send("ACK", json!({"messageId": message["data"]["id"]}))
        .await;
    assert_eq!(eve.expect("ERROR").await["data"]["code"], "NotFound");
    ann.expect_silence(QUIET).await;

    let (status, page) = get_json(
        system.bridge_addr,
        &format!("/api/rooms/{room}/messages?tenant={umbrella}"),
        &[],
    )
    .await;
    assert_eq!(status, 200, "umbrella has this room too (eve is in it)");
    assert_eq!(page, json!([]));
    // A room only acme ever used: umbrella's query identity finds no room.
    let acme_only = session_id("acme-only");
    ann.send("JOIN_ROOM", json!({"roomId": acme_only})).await;
    ann.expect_where("ROOM_JOINED", |f| f["data"]["roomId"] == acme_only.as_str())
        .await;
    ann.say(&acme_only, "a-2", "acme's own room").await;
    ann.expect("NEW_MESSAGE").await;
    let (status, page) = get_json(
        system.bridge_addr,
        &format!("/api/rooms/{acme_only}/messages?tenant={acme}&userId=ann"),
        &[],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(page[0]["contentText"], "acme's own room");
    for endpoint in ["messages", "reads"] {
        let (status, body) = get_json(
            system.bridge_addr,
            &format!("/api/rooms/{acme_only}/{endpoint}?tenant={umbrella}&userId=ann"),
            &[],
        )
        .await;
        assert_eq!(status, 404, "{endpoint}: {body}");
        assert_eq!(body["code"], "NotFound", "{endpoint}: {body}");
    }

    let never = session_id("never-created");
    let (status, body) = get_json(
        system.bridge_addr,
        &format!("/api/rooms/{never}/messages?tenant={umbrella}"),
        &[],
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = get_json(
        system.bridge_addr,
        &format!("/api/rooms/{never}/reads?tenant={umbrella}"),
        &[],
    )
    .await;
    assert_eq!(status, 404);

    // Over gRPC the tenant scopes the same way.
    if let Some(addr) = system.core_addr {
        use meno_proto::chat_service_client::ChatServiceClient;
        use meno_proto::{ChatHistoryRequest, SessionRef};
        let mut chat = ChatServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let page = |tenant: &str| ChatHistoryRequest {
            session: Some(SessionRef {
                tenant: tenant.to_owned(),
                session_id: room.clone(),
            }),
            limit: 10,
            ..ChatHistoryRequest::default()
        };
        let acme_page = chat.history(page(&acme)).await.unwrap().into_inner();
        assert_eq!(acme_page.messages.len(), 1);
        let umbrella_page = chat.history(page(&umbrella)).await.unwrap().into_inner();
        assert!(umbrella_page.messages.is_empty());
        let mut must_exist = page(&umbrella);
        must_exist.session.as_mut().unwrap().session_id = never.clone();
        must_exist.must_exist = true;
        let refused = chat.history(must_exist).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::NotFound);
    }
}

async fn seed_000_and_nexus_clients_chat_across_dialects(system: System) {
    let room = session_id("cross");
    let mut nexus = system.nexus("default", "nina", &[&room]).await;
    let mut seed = system.join(&room, "sam", "student").await;
    seed.expect_start().await;
    nexus
        .expect_where("PRESENCE", |f| f["data"]["userId"] == "sam")
        .await;

    seed.chat("s-1", "from seed 000").await;
    let shown = nexus.expect("NEW_MESSAGE").await;
    assert_eq!(shown["data"]["type"], "TEXT");
    assert_eq!(shown["data"]["contentText"], "from seed 000");
    assert_eq!(shown["data"]["senderId"], "sam");
    seed.expect("chat.message").await;

    nexus
        .send(
            "SEND_MSG",
            json!({"roomId": room, "type": "IMAGE", "contentText": "a cat",
                   "contentMeta": {"url": "https://cdn.test/cat.png"}, "clientRef": "n-1"}),
        )
        .await;
    let at_seed = seed.expect("chat.message").await;
    assert_eq!(at_seed["data"]["content"], "a cat");
    assert_eq!(at_seed["data"]["participantId"], "nina");
    assert_eq!(at_seed["data"]["messageId"], "n-1");
    assert_eq!(at_seed["data"]["kind"], "image");
    assert_eq!(
        at_seed["data"]["meta"],
        json!({"url": "https://cdn.test/cat.png"})
    );
    let at_nexus = nexus.expect("NEW_MESSAGE").await;
    assert_eq!(at_nexus["data"]["contentText"], "a cat");
}

fn uuid_like(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|id| id.len() == 36 && id.chars().filter(|c| *c == '-').count() == 4)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_connect_is_refused_before_the_upgrade_and_the_subprotocol_selects_nexus() {
    let system = System::start(Mode::Monolithic).await;
    for (query, status) in [
        ("userName=Ann", 400),
        ("userId=ann", 400),
        ("userId=a%20b&userName=Ann", 400),
        ("userId=ann&userName=Ann&roomId=", 400),
    ] {
        let (got, body) =
            meno_tests::http_get(system.bridge_addr, &format!("/ws/nexus?{query}")).await;
        assert_eq!(got, status, "{query}: {body}");
    }
    let room = session_id("subprotocol");
    let url = system.ws_url(&format!("userId=ann&userName=Ann&roomId={room}"));
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
            .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "nexus.v1".parse().unwrap());
    let (ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(
        response.headers()["Sec-WebSocket-Protocol"],
        "nexus.v1",
        "the bridge answers with the dialect's subprotocol"
    );
    let mut client = NexusClient::from_stream(ws);
    assert_eq!(
        client.expect("ROOM_JOINED").await["data"]["roomId"],
        room.as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_a_busy_room_misses_nothing_between_its_snapshot_and_the_live_stream() {
    // No message-rate limit: the talker sends as fast as it can.
    let bridge = meno_bridge::config::BridgeConfig {
        rate_limits: meno_bridge::limits::LimitsConfig {
            messages_per_second: 1_000_000.0,
            message_burst: 1_000_000,
            ..meno_bridge::limits::LimitsConfig::default()
        },
        ..meno_tests::test_bridge_config()
    };
    let system = System::start_custom(
        Mode::Split,
        meno_tests::test_store().await,
        meno_tests::test_session_config(),
        bridge,
        None,
    )
    .await;
    let (tenant, room, home) = (tenant("t"), session_id("busy"), session_id("home"));
    let mut talker = system.nexus(&tenant, "talker", &[&room]).await;
    let mut joiner = system.nexus(&tenant, "joiner", &[&home]).await;
    let total: usize = 400;
    let talking_room = room.clone();
    let sending = tokio::spawn(async move {
        for n in 0..total {
            talker
                .say(&talking_room, &format!("c-{n}"), &format!("{n}"))
                .await;
        }
        talker
    });
    // Join while the room is busy.
    tokio::time::sleep(Duration::from_millis(30)).await;
    joiner.send("JOIN_ROOM", json!({"roomId": room})).await;
    let joined = joiner.expect_where("ROOM_JOINED", |_| true).await;
    let mut seen: Vec<usize> = joined["data"]["lastMessages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|message| message["contentText"].as_str().unwrap().parse().unwrap())
        .collect();
    while seen.last().copied() != Some(total - 1) {
        let message = joiner.expect_where("NEW_MESSAGE", |_| true).await;
        seen.push(
            message["data"]["contentText"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap(),
        );
    }
    let first = seen[0];
    assert_eq!(
        seen,
        (first..total).collect::<Vec<_>>(),
        "every message after the snapshot's oldest, once, in order"
    );
    drop(sending.await.unwrap());
}
