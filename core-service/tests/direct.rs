//! Directed delivery and the connection registry over gRPC on an
//! in-process core (memory store, manual clock): a bridge registers its
//! sockets, holds a SubscribeUsers stream as `<bridge_id>#<instance>`, and
//! gets a backend's message as a `UserEvent.direct`; rows that are gone are
//! pruned and reported.

use std::sync::Arc;
use std::time::Duration;

use meno_core::clock::ManualClock;
use meno_core::config::SessionConfig;
use meno_core::server::Core;
use meno_core::store::MemoryStore;
use meno_proto::{
    direct_message, direct_service_client::DirectServiceClient,
    registry_service_client::RegistryServiceClient, user_event,
    user_service_client::UserServiceClient, user_stream_item, ChatResponse, ConnectionStatus,
    DirectError, DirectMessage, DisconnectConnectionRequest, ListBySessionRequest,
    ListByUserRequest, RegisterConnectionRequest, RegisteredConnection, SendResult,
    SendToConnectionRequest, SendToUserRequest, SetInterestRequest, SubscribeUsersRequest,
    TouchConnectionsRequest, UserEvent, UserRef, UserStreamItem,
};
use tonic::transport::Channel;
use tonic::{Code, Streaming};

const TTL: Duration = Duration::from_secs(600);

struct Harness {
    clock: ManualClock,
    direct: DirectServiceClient<Channel>,
    registry: RegistryServiceClient<Channel>,
    users: UserServiceClient<Channel>,
    _core: Core,
}

async fn core() -> Harness {
    let clock = ManualClock::new(1_700_000_000_000);
    let config = SessionConfig {
        connection_registry_ttl: TTL,
        ..SessionConfig::default()
    };
    let core = Core::new(
        Arc::new(MemoryStore::new()),
        Arc::new(clock.clone()),
        config,
    )
    .await;
    let channel = core.in_process_channel();
    Harness {
        clock,
        direct: DirectServiceClient::new(channel.clone()),
        registry: RegistryServiceClient::new(channel.clone()),
        users: UserServiceClient::new(channel),
        _core: core,
    }
}

fn user(user_id: &str) -> UserRef {
    UserRef {
        tenant: "acme".to_owned(),
        user_id: user_id.to_owned(),
    }
}

fn chunk(content: &str) -> DirectMessage {
    DirectMessage {
        kind: Some(direct_message::Kind::ChatResponse(ChatResponse {
            message_id: "reply-1".to_owned(),
            content: content.to_owned(),
            is_complete: true,
        })),
    }
}

impl Harness {
    /// Registers `connection_id` of `user_id` in session `s1`, held by
    /// bridge `bridge_id`.
    async fn register(&mut self, connection_id: &str, user_id: &str, bridge_id: &str) {
        self.registry
            .register(RegisterConnectionRequest {
                connection: Some(RegisteredConnection {
                    tenant: "acme".to_owned(),
                    connection_id: connection_id.to_owned(),
                    user_id: user_id.to_owned(),
                    session_id: "s1".to_owned(),
                    dialect: "assistant".to_owned(),
                    bridge_id: bridge_id.to_owned(),
                    ip: "203.0.113.9".to_owned(),
                    user_agent: "test".to_owned(),
                    ..RegisteredConnection::default()
                }),
            })
            .await
            .expect("register");
    }

    /// A bridge's user stream (SubscribeUsers id `stream_id`), past
    /// `subscribed`, interested in `users`.
    async fn bridge(&mut self, stream_id: &str, users: &[&str]) -> Streaming<UserStreamItem> {
        let mut stream = self
            .users
            .subscribe_users(SubscribeUsersRequest {
                bridge_id: stream_id.to_owned(),
            })
            .await
            .expect("subscribe")
            .into_inner();
        stream.message().await.expect("subscribed").expect("open");
        self.users
            .set_interest(SetInterestRequest {
                bridge_id: stream_id.to_owned(),
                add: users.iter().map(|id| user(id)).collect(),
                remove: Vec::new(),
                replace: true,
            })
            .await
            .expect("interest");
        stream
    }

    async fn send_to_connection(
        &mut self,
        connection_id: &str,
        message: DirectMessage,
    ) -> SendResult {
        self.direct
            .send_to_connection(SendToConnectionRequest {
                tenant: "acme".to_owned(),
                connection_id: connection_id.to_owned(),
                message: Some(message),
                trace_id: "trace-1".to_owned(),
            })
            .await
            .expect("send to connection")
            .into_inner()
    }

    async fn send_to_user(&mut self, user_id: &str, message: DirectMessage) -> SendResult {
        self.direct
            .send_to_user(SendToUserRequest {
                user: Some(user(user_id)),
                message: Some(message),
                trace_id: String::new(),
            })
            .await
            .expect("send to user")
            .into_inner()
    }

    async fn by_user(&mut self, user_id: &str) -> Vec<RegisteredConnection> {
        self.registry
            .list_by_user(ListByUserRequest {
                user: Some(user(user_id)),
            })
            .await
            .expect("list by user")
            .into_inner()
            .connections
    }

    async fn by_session(&mut self, session_id: &str) -> Vec<RegisteredConnection> {
        self.registry
            .list_by_session(ListBySessionRequest {
                tenant: "acme".to_owned(),
                session_id: session_id.to_owned(),
            })
            .await
            .expect("list by session")
            .into_inner()
            .connections
    }
}

async fn next_event(stream: &mut Streaming<UserStreamItem>) -> UserEvent {
    let item = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("an event in time")
        .expect("the stream goes on")
        .expect("an item");
    let Some(user_stream_item::Item::Event(event)) = item.item else {
        panic!("an event, got {item:?}");
    };
    event
}

fn direct_of(event: &UserEvent) -> &DirectMessage {
    match &event.kind {
        Some(user_event::Kind::Direct(message)) => message,
        other => panic!("a direct message, got {other:?}"),
    }
}

async fn nothing_on(stream: &mut Streaming<UserStreamItem>) {
    let next = tokio::time::timeout(Duration::from_millis(200), stream.message()).await;
    assert!(next.is_err(), "nothing arrives, got {next:?}");
}

fn ids(rows: &[RegisteredConnection]) -> Vec<&str> {
    rows.iter().map(|row| row.connection_id.as_str()).collect()
}

#[tokio::test]
async fn send_to_connection_reaches_the_bridge_holding_it_for_that_connection() {
    let mut core = core().await;
    core.register("c1", "ann", "bridge-a").await;
    let mut stream = core.bridge("bridge-a#7", &["ann"]).await;
    let result = core.send_to_connection("c1", chunk("hello")).await;
    assert_eq!(result.reached, 1);
    assert!(result.pruned.is_empty());
    let event = next_event(&mut stream).await;
    assert_eq!(event.user, Some(user("ann")));
    assert_eq!(event.connection_id, "c1");
    assert_eq!(event.trace_id, "trace-1");
    assert_eq!(direct_of(&event), &chunk("hello"));
}

#[tokio::test]
async fn send_to_user_reaches_every_live_row_and_prunes_the_gone_ones() {
    let mut core = core().await;
    core.register("c1", "ann", "bridge-a").await;
    core.register("c2", "ann", "bridge-b").await;
    core.register("c3", "ann", "bridge-dead").await;
    core.register("c4", "ann", "bridge-a").await;
    core.register("c5", "bob", "bridge-a").await;
    core.registry
        .disconnect(DisconnectConnectionRequest {
            tenant: "acme".to_owned(),
            connection_id: "c4".to_owned(),
        })
        .await
        .expect("disconnect");
    let mut on_a = core.bridge("bridge-a#1", &["ann", "bob"]).await;
    let mut on_b = core.bridge("bridge-b#1", &["ann"]).await;

    let result = core.send_to_user("ann", chunk("to all")).await;
    assert_eq!(result.reached, 2, "c1 and c2");
    assert_eq!(result.pruned, ["c3", "c4"]);
    for stream in [&mut on_a, &mut on_b] {
        let event = next_event(stream).await;
        assert_eq!(event.user, Some(user("ann")));
        assert_eq!(event.connection_id, "", "every socket of the user");
        assert_eq!(direct_of(&event), &chunk("to all"));
    }
    nothing_on(&mut on_a).await;
    assert_eq!(
        ids(&core.by_user("ann").await),
        ["c1", "c2"],
        "pruned rows are gone"
    );
    assert_eq!(ids(&core.by_user("bob").await), ["c5"], "bob's row stays");
}

#[tokio::test]
async fn a_connection_whose_bridge_has_no_live_stream_is_pruned_and_reported() {
    let mut core = core().await;
    core.register("c1", "ann", "bridge-a").await;
    let result = core.send_to_connection("c1", chunk("lost")).await;
    assert_eq!((result.reached, result.pruned), (0, vec!["c1".to_owned()]));
    assert!(core.by_session("s1").await.is_empty());

    let unknown = core.send_to_connection("never", chunk("lost")).await;
    assert_eq!(unknown.reached, 0);
    assert_eq!(
        unknown.pruned,
        ["never"],
        "a connection with no row is gone too"
    );

    let nobody = core.send_to_user("ann", chunk("lost")).await;
    assert_eq!((nobody.reached, nobody.pruned.len()), (0, 0));
}

#[tokio::test]
async fn a_bridge_whose_stream_ended_loses_its_connections() {
    let mut core = core().await;
    core.register("c1", "ann", "bridge-a").await;
    let stream = core.bridge("bridge-a#1", &["ann"]).await;
    drop(stream);
    // The core learns of the hang-up when the in-process HTTP/2 stream
    // closes; wait for that rather than for a fixed time.
    for _ in 0..500 {
        if core._core.users().bridge_streams() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let result = core.send_to_connection("c1", chunk("late")).await;
    assert_eq!((result.reached, result.pruned), (0, vec!["c1".to_owned()]));
}

#[tokio::test]
async fn registry_rows_have_their_fields_and_expire_after_the_ttl_unless_touched() {
    let mut core = core().await;
    let registered_at = 1_700_000_000_000;
    core.register("c1", "ann", "bridge-a").await;
    core.register("c2", "ann", "bridge-a").await;
    let rows = core.by_session("s1").await;
    assert_eq!(ids(&rows), ["c1", "c2"]);
    let c1 = &rows[0];
    assert_eq!(c1.status, i32::from(ConnectionStatus::Connected));
    assert_eq!(
        (c1.user_id.as_str(), c1.ip.as_str()),
        ("ann", "203.0.113.9")
    );
    assert_eq!(c1.created_at_ms, registered_at);
    assert_eq!(c1.expires_at_ms, registered_at + 600_000);

    core.clock.advance(TTL / 2);
    core.registry
        .touch(TouchConnectionsRequest {
            tenant: "acme".to_owned(),
            connection_ids: vec!["c2".to_owned()],
            last_activity_ms: 0,
        })
        .await
        .expect("touch");
    core.clock.advance(TTL / 2);
    let rows = core.by_user("ann").await;
    assert_eq!(ids(&rows), ["c2"], "c1 expired, c2 was touched");
    assert_eq!(rows[0].last_activity_ms, registered_at + 300_000);
}

#[tokio::test]
async fn bad_requests_are_invalid_argument() {
    let mut core = core().await;
    let bad_code = DirectMessage {
        kind: Some(direct_message::Kind::Error(DirectError {
            code: "Teapot".to_owned(),
            message: "x".to_owned(),
            retryable: false,
            retry_after_ms: None,
        })),
    };
    let too_big = chunk(&"x".repeat(64 * 1024 + 1));
    for message in [DirectMessage::default(), bad_code, too_big] {
        let status = core
            .direct
            .send_to_user(SendToUserRequest {
                user: Some(user("ann")),
                message: Some(message),
                trace_id: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }
    let status = core
        .registry
        .register(RegisterConnectionRequest {
            connection: Some(RegisteredConnection {
                connection_id: "c1".to_owned(),
                ..RegisteredConnection::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("user_id"), "{status:?}");
}
