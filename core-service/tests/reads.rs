//! Read positions and history over gRPC, on an in-process core (memory
//! store): MarkRead with and without a session, tenant scoping, GetReads,
//! history by message id and offset, and `must_exist`.

use std::sync::Arc;

use meno_core::clock::SystemClock;
use meno_core::config::SessionConfig;
use meno_core::server::Core;
use meno_core::store::{MemoryStore, Store};
use meno_proto::{
    chat_service_client::ChatServiceClient, connection_service_client::ConnectionServiceClient,
    read_service_client::ReadServiceClient, Actor, ChatHistoryRequest, ConnectionInfo,
    GetReadsRequest, JoinRequest, MarkReadRequest, MessageKind, Role, SendChatRequest, SessionRef,
};
use tonic::transport::Channel;
use tonic::Code;

struct Clients {
    chat: ChatServiceClient<Channel>,
    connections: ConnectionServiceClient<Channel>,
    reads: ReadServiceClient<Channel>,
}

async fn core() -> Clients {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let core = Core::new(store, Arc::new(SystemClock), SessionConfig::default()).await;
    let channel = core.in_process_channel();
    Clients {
        chat: ChatServiceClient::new(channel.clone()),
        connections: ConnectionServiceClient::new(channel.clone()),
        reads: ReadServiceClient::new(channel),
    }
}

fn room(tenant: &str, session_id: &str) -> Option<SessionRef> {
    Some(SessionRef {
        tenant: tenant.to_owned(),
        session_id: session_id.to_owned(),
    })
}

fn actor(participant_id: &str, connection_id: &str) -> Option<Actor> {
    Some(Actor {
        participant_id: participant_id.to_owned(),
        connection_id: connection_id.to_owned(),
        trace_id: "trace-1".to_owned(),
        ..Actor::default()
    })
}

/// Joins ann on `c-ann` and sends `count` texts; their ids, oldest first.
async fn room_with_messages(clients: &mut Clients, tenant: &str, count: usize) -> Vec<String> {
    clients
        .connections
        .join(JoinRequest {
            session: room(tenant, "r1"),
            connection: Some(ConnectionInfo {
                connection_id: "c-ann".to_owned(),
                participant_id: "ann".to_owned(),
                name: "Ann".to_owned(),
                role: Role::Student as i32,
                ..ConnectionInfo::default()
            }),
            ..JoinRequest::default()
        })
        .await
        .expect("join");
    let mut ids = Vec::new();
    for n in 0..count {
        let sent = clients
            .chat
            .send(SendChatRequest {
                session: room(tenant, "r1"),
                actor: actor("ann", "c-ann"),
                message_kind: MessageKind::Text as i32,
                content: format!("m{n}"),
                ..SendChatRequest::default()
            })
            .await
            .expect("send")
            .into_inner()
            .message
            .expect("a message");
        assert_eq!(sent.kind, "text");
        assert_eq!(sent.message_kind(), MessageKind::Text);
        ids.push(sent.id);
    }
    ids
}

fn mark(tenant: &str, session_id: &str, who: &str, connection: &str, id: &str) -> MarkReadRequest {
    MarkReadRequest {
        session: room(tenant, session_id),
        actor: actor(who, connection),
        message_id: id.to_owned(),
    }
}

#[tokio::test]
async fn an_ack_without_a_room_finds_it_in_its_tenant_only() {
    let mut clients = core().await;
    let ids = room_with_messages(&mut clients, "acme", 3).await;
    let marked = clients
        .reads
        .mark_read(mark("acme", "", "ann", "", &ids[1]))
        .await
        .expect("found through the message-id index")
        .into_inner();
    assert_eq!(marked.session_id, "r1");
    assert!(marked.advanced);
    let elsewhere = clients
        .reads
        .mark_read(mark("other", "", "ann", "", &ids[1]))
        .await
        .expect_err("another tenant's message");
    assert_eq!(elsewhere.code(), Code::NotFound);
    let back = clients
        .reads
        .mark_read(mark("acme", "r1", "ann", "c-ann", &ids[0]))
        .await
        .expect("an older ACK")
        .into_inner();
    assert!(!back.advanced);
    let stranger = clients
        .reads
        .mark_read(mark("acme", "r1", "ann", "c-other", &ids[2]))
        .await
        .expect_err("c-other is not in r1");
    assert_eq!(stranger.code(), Code::PermissionDenied);
    let reads = clients
        .reads
        .get_reads(GetReadsRequest {
            session: room("acme", "r1"),
            must_exist: true,
        })
        .await
        .expect("reads")
        .into_inner()
        .reads;
    assert_eq!(reads.len(), 1);
    assert_eq!(
        (reads[0].user_id.as_str(), reads[0].message_id.as_str()),
        ("ann", ids[1].as_str())
    );
    let missing = clients
        .reads
        .get_reads(GetReadsRequest {
            session: room("other", "r1"),
            must_exist: true,
        })
        .await
        .expect_err("r1 was never created in tenant other");
    assert_eq!(missing.code(), Code::NotFound);
}

#[tokio::test]
async fn history_pages_by_message_id_and_offset_and_knows_unknown_rooms() {
    let mut clients = core().await;
    let ids = room_with_messages(&mut clients, "acme", 5).await;
    let page = |before_message_id: Option<&str>, offset: u32, limit: u32, tenant: &str| {
        ChatHistoryRequest {
            session: room(tenant, "r1"),
            before_message_id: before_message_id.map(str::to_owned),
            offset,
            limit,
            must_exist: true,
            ..ChatHistoryRequest::default()
        }
    };
    let contents = |messages: Vec<meno_proto::ChatMessage>| -> Vec<String> {
        messages.into_iter().map(|m| m.content).collect()
    };
    let before = clients
        .chat
        .history(page(Some(&ids[3]), 0, 2, "acme"))
        .await
        .expect("history")
        .into_inner();
    assert_eq!(contents(before.messages), ["m2", "m1"]);
    let skipped = clients
        .chat
        .history(page(None, 1, 2, "acme"))
        .await
        .expect("history")
        .into_inner();
    assert_eq!(contents(skipped.messages), ["m3", "m2"]);
    let too_deep = clients
        .chat
        .history(page(None, 10_001, 2, "acme"))
        .await
        .expect_err("offset above 10,000");
    assert_eq!(too_deep.code(), Code::InvalidArgument);
    let unknown_id = clients
        .chat
        .history(page(Some("no-such-message"), 0, 2, "acme"))
        .await
        .expect_err("no such message");
    assert_eq!(unknown_id.code(), Code::NotFound);
    let other_tenant = clients
        .chat
        .history(page(None, 0, 2, "other"))
        .await
        .expect_err("r1 was never created in tenant other");
    assert_eq!(other_tenant.code(), Code::NotFound);
}
