//! WebRTC signaling over gRPC on an in-process core (memory store, manual
//! clock): users are where ConnectionService.Join put them, a bridge's
//! SubscribeUsers stream gets the users it declared interest in, and Signal
//! relays, rejects or refuses as seed 004 and issue 15 say.

use std::sync::Arc;
use std::time::Duration;

use meno_core::clock::ManualClock;
use meno_core::config::SessionConfig;
use meno_core::server::Core;
use meno_core::store::{MemoryStore, Store};
use meno_proto::{
    connection_service_client::ConnectionServiceClient, signal, signal_request,
    user_service_client::UserServiceClient, user_stream_item, CallEnd, ConnectionInfo, JoinRequest,
    LeaveRequest, SdpSignal, SdpType, SessionRef, SetInterestRequest, SignalRequest,
    SignalResponse, SubscribeUsersRequest, UserRef, UserStreamItem,
};
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

/// Shorter than the presence TTL, so a call lapses while its users stay.
const CALL_BUSY_TTL: Duration = Duration::from_secs(30);

struct Harness {
    clock: ManualClock,
    connections: ConnectionServiceClient<Channel>,
    users: UserServiceClient<Channel>,
    _core: Core,
}

async fn core() -> Harness {
    core_on(
        Arc::new(MemoryStore::new()),
        ManualClock::new(1_700_000_000_000),
    )
    .await
}

async fn core_on(store: Arc<dyn Store>, clock: ManualClock) -> Harness {
    let config = SessionConfig {
        call_busy_ttl: CALL_BUSY_TTL,
        tick_interval: Duration::from_millis(10),
        ..SessionConfig::default()
    };
    let core = Core::new(store, Arc::new(clock.clone()), config).await;
    let channel = core.in_process_channel();
    Harness {
        clock,
        connections: ConnectionServiceClient::new(channel.clone()),
        users: UserServiceClient::new(channel),
        _core: core,
    }
}

fn user_ref(tenant: &str, user_id: &str) -> UserRef {
    UserRef {
        tenant: tenant.to_owned(),
        user_id: user_id.to_owned(),
    }
}

impl Harness {
    /// `user_id` joins `session_id` of `tenant` on connection `c-<user_id>`.
    async fn join(&mut self, tenant: &str, session_id: &str, user_id: &str) {
        self.connections
            .join(JoinRequest {
                session: Some(SessionRef {
                    tenant: tenant.to_owned(),
                    session_id: session_id.to_owned(),
                }),
                connection: Some(ConnectionInfo {
                    connection_id: format!("c-{user_id}"),
                    participant_id: user_id.to_owned(),
                    name: user_id.to_owned(),
                    ..ConnectionInfo::default()
                }),
                ..JoinRequest::default()
            })
            .await
            .expect("join");
    }

    async fn leave(&mut self, tenant: &str, session_id: &str, user_id: &str) {
        self.connections
            .leave(LeaveRequest {
                session: Some(SessionRef {
                    tenant: tenant.to_owned(),
                    session_id: session_id.to_owned(),
                }),
                connection_id: format!("c-{user_id}"),
                graceful: true,
                ..LeaveRequest::default()
            })
            .await
            .expect("leave");
    }

    /// Bridge `bridge_id`'s stream, past `subscribed`, interested in `users`.
    async fn bridge(&mut self, bridge_id: &str, users: &[UserRef]) -> Streaming<UserStreamItem> {
        subscribe(&mut self.users, bridge_id, users).await
    }

    async fn signal(
        &mut self,
        tenant: &str,
        from: &str,
        to: &str,
        kind: signal_request::Kind,
    ) -> Result<SignalResponse, Status> {
        self.users
            .signal(SignalRequest {
                from: Some(user_ref(tenant, from)),
                connection_id: format!("c-{from}"),
                target_id: to.to_owned(),
                trace_id: format!("trace-{from}"),
                kind: Some(kind),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    async fn offer(&mut self, from: &str, to: &str) -> Result<SignalResponse, Status> {
        self.signal("acme", from, to, sdp(SdpType::Offer)).await
    }

    async fn relayed(&mut self, from: &str, to: &str, kind: signal_request::Kind) {
        let response = self.signal("acme", from, to, kind).await.expect("relayed");
        assert_eq!(response.rejected, None);
    }
}

async fn subscribe(
    users: &mut UserServiceClient<Channel>,
    bridge_id: &str,
    interest: &[UserRef],
) -> Streaming<UserStreamItem> {
    let mut stream = users
        .subscribe_users(SubscribeUsersRequest {
            bridge_id: bridge_id.to_owned(),
        })
        .await
        .expect("subscribe")
        .into_inner();
    let first = stream.message().await.expect("an item").expect("open");
    assert!(matches!(
        first.item,
        Some(user_stream_item::Item::Subscribed(_))
    ));
    users
        .set_interest(SetInterestRequest {
            bridge_id: bridge_id.to_owned(),
            add: interest.to_vec(),
            remove: Vec::new(),
            replace: true,
        })
        .await
        .expect("interest");
    stream
}

fn sdp(kind: SdpType) -> signal_request::Kind {
    signal_request::Kind::Sdp(SdpSignal {
        r#type: kind as i32,
        sdp: "v=0".to_owned(),
    })
}

/// The next item on `stream`, a signal event: its user, trace and signal.
async fn next_signal(
    stream: &mut Streaming<UserStreamItem>,
) -> (UserRef, String, signal::Kind, String) {
    let item = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("an event in time")
        .expect("the stream goes on")
        .expect("an item");
    let Some(user_stream_item::Item::Event(event)) = item.item else {
        panic!("an event, got {item:?}");
    };
    let Some(meno_proto::user_event::Kind::Signal(signal)) = event.kind else {
        panic!("a signal");
    };
    (
        event.user.expect("a user"),
        event.trace_id,
        signal.kind.expect("a payload"),
        signal.sender_id,
    )
}

async fn nothing_on(stream: &mut Streaming<UserStreamItem>) {
    let next = tokio::time::timeout(Duration::from_millis(200), stream.message()).await;
    assert!(next.is_err(), "nothing arrives, got {next:?}");
}

#[tokio::test]
async fn an_offer_reaches_the_targets_bridge_with_its_sender_and_trace() {
    let mut core = core().await;
    core.join("acme", "r1", "ann").await;
    core.join("acme", "r1", "bob").await;
    let mut stream = core.bridge("b1", &[user_ref("acme", "bob")]).await;
    core.relayed("ann", "bob", sdp(SdpType::Offer)).await;
    let (user, trace_id, kind, sender_id) = next_signal(&mut stream).await;
    assert_eq!(user, user_ref("acme", "bob"));
    assert_eq!(trace_id, "trace-ann");
    assert_eq!(sender_id, "ann");
    assert!(matches!(kind, signal::Kind::Sdp(sdp) if sdp.r#type() == SdpType::Offer));
    core.relayed("ann", "bob", signal_request::Kind::End(CallEnd {}))
        .await;
    let (_, _, kind, _) = next_signal(&mut stream).await;
    assert!(matches!(kind, signal::Kind::End(_)), "in order");
}

#[tokio::test]
async fn an_offer_to_a_user_in_another_call_is_rejected_and_not_relayed() {
    let mut core = core().await;
    for user in ["ann", "bob", "cid"] {
        core.join("acme", "r1", user).await;
    }
    let mut stream = core.bridge("b1", &[user_ref("acme", "ann")]).await;
    core.relayed("ann", "bob", sdp(SdpType::Offer)).await;
    let rejected = core
        .offer("cid", "ann")
        .await
        .expect("answered")
        .rejected
        .expect("ann calls bob");
    assert_eq!(
        (rejected.caller_id.as_str(), rejected.target_id.as_str()),
        ("cid", "ann")
    );
    assert_eq!(rejected.status, "busy");
    assert!(!rejected.reason.is_empty());
    nothing_on(&mut stream).await;
}

#[tokio::test]
async fn strangers_offline_users_and_oneself_are_refused() {
    let mut core = core().await;
    core.join("acme", "r1", "ann").await;
    core.join("acme", "r1", "bob").await;
    core.join("acme", "r2", "eve").await;
    let stranger = core.offer("eve", "bob").await.expect_err("no shared room");
    assert_eq!(stranger.code(), Code::PermissionDenied);
    let offline = core
        .offer("ann", "dan")
        .await
        .expect_err("dan never joined");
    assert_eq!(offline.code(), Code::NotFound);
    assert!(offline.message().contains("is not connected"));
    let oneself = core.offer("ann", "ann").await.expect_err("oneself");
    assert_eq!(oneself.code(), Code::InvalidArgument);
    core.leave("acme", "r1", "bob").await;
    let gone = core.offer("ann", "bob").await.expect_err("bob left");
    assert_eq!(gone.code(), Code::NotFound);
    let mut request = SignalRequest {
        from: Some(user_ref("acme", "ann")),
        connection_id: "c-eve".to_owned(),
        target_id: "bob".to_owned(),
        kind: Some(sdp(SdpType::Offer)),
        ..SignalRequest::default()
    };
    let borrowed = core
        .users
        .signal(request.clone())
        .await
        .expect_err("not ann's connection");
    assert_eq!(borrowed.code(), Code::PermissionDenied);
    request.kind = Some(sdp(SdpType::Unspecified));
    let malformed = core.users.signal(request).await.expect_err("no type");
    assert_eq!(malformed.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn another_tenants_user_with_the_same_id_gets_nothing() {
    let mut core = core().await;
    core.join("acme", "r1", "ann").await;
    core.join("acme", "r1", "bob").await;
    core.join("other", "r1", "bob").await;
    core.join("other", "r1", "ann").await;
    let mut acme = core.bridge("b1", &[user_ref("acme", "bob")]).await;
    let mut other = core.bridge("b2", &[user_ref("other", "bob")]).await;
    core.relayed("ann", "bob", sdp(SdpType::Offer)).await;
    let (user, _, _, _) = next_signal(&mut acme).await;
    assert_eq!(user.tenant, "acme");
    nothing_on(&mut other).await;
    // Nor is other's bob busy because acme's ann called acme's bob.
    let response = core
        .signal("other", "ann", "bob", sdp(SdpType::Offer))
        .await
        .expect("relayed");
    assert_eq!(response.rejected, None);
}

#[tokio::test]
async fn busy_lapses_after_the_call_busy_ttl() {
    let mut core = core().await;
    for user in ["ann", "bob", "cid"] {
        core.join("acme", "r1", user).await;
    }
    core.relayed("ann", "bob", sdp(SdpType::Offer)).await;
    core.relayed("bob", "ann", sdp(SdpType::Answer)).await;
    core.clock.advance(CALL_BUSY_TTL - Duration::from_millis(1));
    let still = core.offer("cid", "bob").await.expect("answered");
    assert!(still.rejected.is_some(), "bob answered ann: busy");
    core.clock.advance(Duration::from_millis(1));
    let lapsed = core.offer("cid", "bob").await.expect("relayed");
    assert_eq!(lapsed.rejected, None);
    let lapsed = core.offer("cid", "ann").await.expect("relayed");
    assert_eq!(lapsed.rejected, None);
}

#[tokio::test]
async fn leaving_the_last_room_ends_the_users_call() {
    let mut core = core().await;
    for user in ["ann", "bob", "cid"] {
        core.join("acme", "r1", user).await;
    }
    core.relayed("ann", "bob", sdp(SdpType::Offer)).await;
    core.leave("acme", "r1", "ann").await;
    core.join("acme", "r1", "ann").await;
    let response = core.offer("cid", "ann").await.expect("relayed");
    assert_eq!(response.rejected, None, "ann's call ended when she left");
}

#[tokio::test]
async fn a_connection_whose_ttl_runs_out_takes_its_user_offline() {
    let mut core = core().await;
    core.join("acme", "r1", "ann").await;
    core.join("acme", "r1", "bob").await;
    core.clock
        .advance(SessionConfig::default().presence_ttl + Duration::from_secs(1));
    // As a backend (no connection), so only bob's state decides.
    let request = SignalRequest {
        from: Some(user_ref("acme", "ann")),
        target_id: "bob".to_owned(),
        kind: Some(sdp(SdpType::Offer)),
        ..SignalRequest::default()
    };
    for _ in 0..500 {
        match core.users.signal(request.clone()).await {
            Err(status) if status.code() == Code::NotFound => return,
            _ => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    panic!("bob never went offline");
}

#[tokio::test]
async fn a_restarted_core_learns_its_users_from_the_restored_sessions() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(1_700_000_000_000);
    let mut before = core_on(Arc::clone(&store), clock.clone()).await;
    before.join("acme", "r1", "ann").await;
    before.join("acme", "r1", "bob").await;
    before._core.begin_drain().await;
    assert!(before._core.drained(Duration::from_secs(5)).await);
    let mut after = core_on(store, clock).await;
    // Anything that wakes r1 (here a bridge's refresh of another socket)
    // restores its connections, and with them where ann and bob are.
    after
        .connections
        .refresh(meno_proto::RefreshRequest {
            session: Some(SessionRef {
                tenant: "acme".to_owned(),
                session_id: "r1".to_owned(),
            }),
            connections: Vec::new(),
        })
        .await
        .expect("refresh");
    after.relayed("ann", "bob", sdp(SdpType::Offer)).await;
}

#[tokio::test]
async fn set_interest_needs_a_live_stream() {
    let mut core = core().await;
    let err = core
        .users
        .set_interest(SetInterestRequest {
            bridge_id: "b9".to_owned(),
            add: vec![user_ref("acme", "bob")],
            ..SetInterestRequest::default()
        })
        .await
        .expect_err("no stream yet");
    assert_eq!(err.code(), Code::FailedPrecondition);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_are_relayed_over_tcp_too() {
    let mut harness = core().await;
    harness.join("acme", "r1", "ann").await;
    harness.join("acme", "r1", "bob").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let serving = harness._core.clone();
    let serve_stop = stop.clone();
    tokio::spawn(async move { serving.serve(listener, serve_stop).await });
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let mut users = UserServiceClient::new(channel);
    let mut stream = subscribe(&mut users, "tcp-bridge", &[user_ref("acme", "bob")]).await;
    harness.relayed("ann", "bob", sdp(SdpType::Offer)).await;
    let (user, _, _, sender_id) = next_signal(&mut stream).await;
    assert_eq!((user.user_id.as_str(), sender_id.as_str()), ("bob", "ann"));
    stop.cancel();
}
