//! NexusChat rooms seen by a backend over gRPC (split mode, the core on its
//! own port): the room's members (`PresenceService.Snapshot`), typed message
//! kinds (`ChatService.Send` with `message_kind`), and read positions
//! (`ReadService`) that agree with the WebSocket's `READ` and the REST reads.
//! The tenant scopes each of them.
//!
//! Runs on the test store: memory, or the real CQL server with
//! `MENO_TEST_STORE=scylla`.

use std::time::Duration;

use meno_bridge::time_fmt::format_unix_ms;
use meno_proto::chat_service_client::ChatServiceClient;
use meno_proto::presence_service_client::PresenceServiceClient;
use meno_proto::read_service_client::ReadServiceClient;
use meno_proto::{
    Actor, GetReadsRequest, MarkReadRequest, MessageKind, PresenceSnapshotRequest, PresenceStatus,
    ReadPosition, Role, SendChatRequest, SessionRef,
};
use meno_tests::nexus::get_json;
use meno_tests::{session_id, Mode, System};
use serde_json::{json, Value};

const QUIET: Duration = Duration::from_millis(300);

fn tenant(prefix: &str) -> String {
    session_id(prefix).replace('-', "")
}

fn room_ref(tenant: &str, room: &str) -> Option<SessionRef> {
    Some(SessionRef {
        tenant: tenant.to_owned(),
        session_id: room.to_owned(),
    })
}

/// A backend acting on its own behalf as `participant`.
fn service(participant: &str, trace_id: &str) -> Option<Actor> {
    Some(Actor {
        participant_id: participant.to_owned(),
        name: format!("{participant} (service)"),
        role: Role::Service as i32,
        trace_id: trace_id.to_owned(),
        ..Actor::default()
    })
}

/// The online members of a room, as `(userId, userName)`.
async fn online_members(
    presence: &mut PresenceServiceClient<tonic::transport::Channel>,
    tenant: &str,
    room: &str,
) -> Vec<(String, String)> {
    let snapshot = presence
        .snapshot(PresenceSnapshotRequest {
            session: room_ref(tenant, room),
        })
        .await
        .expect("snapshot")
        .into_inner();
    snapshot
        .participants
        .into_iter()
        .filter(|member| member.status() == PresenceStatus::Online)
        .map(|member| (member.participant_id, member.name))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_presence_snapshot_lists_a_rooms_online_nexus_users_of_its_tenant_only() {
    let system = System::start(Mode::Split).await;
    let (acme, umbrella, room) = (tenant("acme"), tenant("umbrella"), session_id("members"));
    let mut presence = PresenceServiceClient::new(system.core_channel().await);
    let ann = system.nexus(&acme, "ann", &[&room]).await;
    let mut bob = system.nexus(&acme, "bob", &[&room]).await;
    let _eve = system.nexus(&umbrella, "eve", &[&room]).await;

    let mut members = online_members(&mut presence, &acme, &room).await;
    members.sort();
    assert_eq!(
        members,
        [
            ("ann".to_owned(), "ann-name".to_owned()),
            ("bob".to_owned(), "bob-name".to_owned())
        ]
    );
    assert_eq!(
        online_members(&mut presence, &umbrella, &room).await,
        [("eve".to_owned(), "eve-name".to_owned())],
        "the same room id in another tenant has its own members"
    );

    ann.close().await;
    bob.expect_where("PRESENCE", |f| {
        f["data"]["userId"] == "ann" && f["data"]["status"] == "offline"
    })
    .await;
    assert_eq!(
        online_members(&mut presence, &acme, &room).await,
        [("bob".to_owned(), "bob-name".to_owned())],
        "a user who left is no longer listed online"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backends_typed_image_reaches_nexus_clients_as_image_and_needs_a_url() {
    let system = System::start(Mode::Split).await;
    let (acme, room) = (tenant("acme"), session_id("typed"));
    let mut ann = system.nexus(&acme, "ann", &[&room]).await;
    let mut bob = system.nexus(&acme, "bob", &[&room]).await;
    ann.expect_where("PRESENCE", |f| f["data"]["userId"] == "bob")
        .await;
    let mut chat = ChatServiceClient::new(system.core_channel().await);
    let image = |client_ref: &str, meta_json: &str| SendChatRequest {
        session: room_ref(&acme, &room),
        actor: service("gallery", "gallery-trace-1"),
        client_ref: client_ref.to_owned(),
        message_kind: MessageKind::Image as i32,
        meta_json: meta_json.to_owned(),
        ..SendChatRequest::default()
    };

    let meta = json!({"url": "https://cdn.test/cat.png", "width": 640});
    let sent = chat
        .send(image("img-1", &meta.to_string()))
        .await
        .expect("an image with a url is accepted")
        .into_inner();
    assert!(!sent.duplicate);
    let stored = sent.message.expect("the stored message");
    assert_eq!(stored.kind, "image");
    assert_eq!(stored.message_kind(), MessageKind::Image);

    let at_ann = ann.expect("NEW_MESSAGE").await;
    assert_eq!(bob.expect("NEW_MESSAGE").await, at_ann);
    assert_eq!(at_ann["traceId"], "gallery-trace-1");
    let data = &at_ann["data"];
    assert_eq!(data["id"], stored.id.as_str());
    assert_eq!(data["roomId"], room.as_str());
    assert_eq!(data["senderId"], "gallery");
    assert_eq!(data["type"], "IMAGE");
    assert_eq!(data["contentMeta"], meta);
    assert_eq!(data["contentText"], Value::Null);

    for (client_ref, meta_json) in [
        ("img-2", ""),
        ("img-3", r#"{"width":640}"#),
        ("img-4", r#"{"url":"ftp://cdn.test/cat.png"}"#),
    ] {
        let refused = chat
            .send(image(client_ref, meta_json))
            .await
            .expect_err(meta_json);
        assert_eq!(
            refused.code(),
            tonic::Code::InvalidArgument,
            "{meta_json:?}: {refused:?}"
        );
    }
    ann.expect_silence(QUIET).await;
    bob.expect_silence(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_positions_over_grpc_match_the_rest_reads_and_another_tenant_finds_none() {
    let system = System::start(Mode::Split).await;
    let (acme, umbrella, room) = (tenant("acme"), tenant("umbrella"), session_id("reads"));
    let mut ann = system.nexus(&acme, "ann", &[&room]).await;
    let mut bob = system.nexus(&acme, "bob", &[&room]).await;
    ann.expect_where("PRESENCE", |f| f["data"]["userId"] == "bob")
        .await;
    let mut ids = Vec::new();
    for n in 0..2 {
        ann.say(&room, &format!("m-{n}"), &format!("message {n}"))
            .await;
        ids.push(
            ann.expect("NEW_MESSAGE").await["data"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        bob.expect("NEW_MESSAGE").await;
    }
    let mut reads = ReadServiceClient::new(system.core_channel().await);
    let grpc_reads = |tenant: &str| GetReadsRequest {
        session: room_ref(tenant, &room),
        must_exist: true,
    };
    let rest_reads = || async {
        let (status, body) = get_json(
            system.bridge_addr,
            &format!("/api/rooms/{room}/reads?tenant={acme}"),
            &[],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        body
    };
    let as_rest = |positions: &[ReadPosition]| -> Value {
        positions
            .iter()
            .map(|read| {
                json!({"userId": read.user_id, "messageId": read.message_id,
                       "readAt": format_unix_ms(read.read_at_ms)})
            })
            .collect()
    };

    // An ACK over the WebSocket, read back over gRPC and REST.
    bob.send("ACK", json!({"messageId": ids[1]})).await;
    let read = ann.expect("READ").await;
    let positions = reads
        .get_reads(grpc_reads(&acme))
        .await
        .expect("get reads")
        .into_inner()
        .reads;
    assert_eq!(positions.len(), 1, "{positions:?}");
    assert_eq!(positions[0].user_id, "bob");
    assert_eq!(positions[0].message_id, ids[1]);
    assert_eq!(
        format_unix_ms(positions[0].read_at_ms),
        read["data"]["readAt"].as_str().unwrap()
    );
    assert_eq!(rest_reads().await, as_rest(&positions));

    // A backend moves carl's position; the room hears READ, REST shows it.
    let marked = reads
        .mark_read(MarkReadRequest {
            session: room_ref(&acme, ""),
            actor: service("carl", "reads-trace-1"),
            message_id: ids[0].clone(),
        })
        .await
        .expect("mark read")
        .into_inner();
    assert!(marked.advanced);
    assert_eq!(marked.session_id, room);
    let carl = ann.expect("READ").await;
    assert_eq!(carl["traceId"], "reads-trace-1");
    assert_eq!(carl["data"]["userId"], "carl");
    assert_eq!(carl["data"]["messageId"], ids[0].as_str());
    let positions = reads
        .get_reads(grpc_reads(&acme))
        .await
        .expect("get reads")
        .into_inner()
        .reads;
    assert_eq!(positions.len(), 2, "{positions:?}");
    assert_eq!(rest_reads().await, as_rest(&positions));

    // Another tenant names acme's message or acme's room id: nothing there.
    let refused = reads
        .get_reads(grpc_reads(&umbrella))
        .await
        .expect_err("umbrella never had this room");
    assert_eq!(refused.code(), tonic::Code::NotFound);
    for session in [room_ref(&umbrella, ""), room_ref(&umbrella, &room)] {
        let refused = reads
            .mark_read(MarkReadRequest {
                session: session.clone(),
                actor: service("eve", ""),
                message_id: ids[1].clone(),
            })
            .await
            .expect_err("acme's message is not umbrella's");
        assert_eq!(refused.code(), tonic::Code::NotFound, "{session:?}");
    }
    ann.expect_silence(QUIET).await;
    assert_eq!(rest_reads().await, as_rest(&positions), "acme's unchanged");
    let refused = reads
        .get_reads(grpc_reads(&umbrella))
        .await
        .expect_err("a refused MarkRead leaves no room behind in umbrella");
    assert_eq!(refused.code(), tonic::Code::NotFound);
}
