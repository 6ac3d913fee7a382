//! Directed delivery for backends (seed 001's MessageSender) and the
//! connection registry (seeds 001, 003), across two bridges of one split
//! core: a message to one connection reaches exactly that socket, one to a
//! user reaches every socket of that user and no one else's, a registered
//! connection that is gone is pruned and reported, and the registry answers
//! by session and by user until its TTL runs out, with the client's address
//! from `X-Forwarded-For` only behind a trusted proxy.

use std::net::SocketAddr;
use std::time::Duration;

use meno_proto::direct_service_client::DirectServiceClient;
use meno_proto::registry_service_client::RegistryServiceClient;
use meno_proto::{
    direct_message, ConnectionStatus, DirectMessage, ListBySessionRequest, ListByUserRequest,
    RegisterConnectionRequest, RegisteredConnection, SendToConnectionRequest, SendToUserRequest,
    SystemNotice, UserRef,
};
use meno_tests::nexus::NexusClient;
use meno_tests::{session_id, test_bridge_config, Client, Mode, System};
use serde_json::json;

const QUIET: Duration = Duration::from_millis(300);

fn notice(text: &str) -> DirectMessage {
    DirectMessage {
        kind: Some(direct_message::Kind::System(SystemNotice {
            message: text.to_owned(),
            level: String::new(),
        })),
    }
}

async fn clients(
    system: &System,
) -> (
    DirectServiceClient<tonic::transport::Channel>,
    RegistryServiceClient<tonic::transport::Channel>,
) {
    let url = format!("http://{}", system.core_addr.unwrap());
    (
        DirectServiceClient::connect(url.clone()).await.unwrap(),
        RegistryServiceClient::connect(url).await.unwrap(),
    )
}

async fn by_user(
    registry: &mut RegistryServiceClient<tonic::transport::Channel>,
    tenant: &str,
    user: &str,
) -> Vec<RegisteredConnection> {
    registry
        .list_by_user(ListByUserRequest {
            user: Some(UserRef {
                tenant: tenant.to_owned(),
                user_id: user.to_owned(),
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .connections
}

/// The user's rows once there are `count` of them: a socket registers
/// itself just after its upgrade, so a test may ask before it has.
async fn rows_of(
    registry: &mut RegistryServiceClient<tonic::transport::Channel>,
    tenant: &str,
    user: &str,
    count: usize,
) -> Vec<RegisteredConnection> {
    let deadline = tokio::time::Instant::now() + meno_tests::WAIT;
    loop {
        let rows = by_user(registry, tenant, user).await;
        if rows.len() == count || tokio::time::Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn assistant(bridge: SocketAddr, tenant: &str, user: &str) -> Client {
    Client::connect(&format!(
        "ws://{bridge}/ws/assistant?userId={user}&tenant={tenant}"
    ))
    .await
}

async fn nexus(bridge: SocketAddr, tenant: &str, user: &str, room: &str) -> NexusClient {
    let mut client = NexusClient::connect(&format!(
        "ws://{bridge}/ws/nexus?userId={user}&userName={user}&tenant={tenant}&roomId={room}"
    ))
    .await;
    client.expect("ROOM_JOINED").await;
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_or_every_connection_of_a_user_and_no_one_else() {
    let system = System::start(Mode::Split).await;
    let second = system.start_bridge(test_bridge_config()).await;
    let (tenant, other_tenant, room) = (session_id("t"), session_id("o"), session_id("room"));
    let mut u1_here = nexus(system.bridge_addr, &tenant, "u1", &room).await;
    let mut u1_there = assistant(second, &tenant, "u1").await;
    let mut u2 = assistant(system.bridge_addr, &tenant, "u2").await;
    let mut u1_elsewhere = assistant(second, &other_tenant, "u1").await;
    let (mut direct, mut registry) = clients(&system).await;

    let rows = rows_of(&mut registry, &tenant, "u1", 2).await;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    // The other users' sockets are registered too before anything is sent.
    assert_eq!(rows_of(&mut registry, &tenant, "u2", 1).await.len(), 1);
    assert_eq!(
        rows_of(&mut registry, &other_tenant, "u1", 1).await.len(),
        1
    );
    let assistant_row = rows.iter().find(|row| row.dialect == "assistant").unwrap();

    let sent = direct
        .send_to_connection(SendToConnectionRequest {
            tenant: tenant.clone(),
            connection_id: assistant_row.connection_id.clone(),
            message: Some(notice("just you")),
            trace_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((sent.reached, sent.pruned.len()), (1, 0));
    let frame = u1_there.expect("system").await;
    assert_eq!(
        frame["data"],
        json!({"message": "just you", "level": "info"})
    );
    u1_here
        .expect_silence_except(QUIET, |frame| frame["event"] == "PRESENCE")
        .await;

    let sent = direct
        .send_to_user(SendToUserRequest {
            user: Some(UserRef {
                tenant: tenant.clone(),
                user_id: "u1".into(),
            }),
            message: Some(notice("all of you")),
            trace_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((sent.reached, sent.pruned.len()), (2, 0));
    assert_eq!(
        u1_there.expect("system").await["data"]["message"],
        "all of you"
    );
    let at_nexus = u1_here.expect_where("SYSTEM", |_| true).await;
    assert_eq!(at_nexus["data"]["message"], "all of you");
    u2.expect_silence(QUIET).await;
    u1_elsewhere.expect_silence(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gone_connection_is_pruned_and_reported_without_failing_the_others() {
    let system = System::start(Mode::Split).await;
    let tenant = session_id("t");
    let mut live = assistant(system.bridge_addr, &tenant, "u1").await;
    let (mut direct, mut registry) = clients(&system).await;
    assert_eq!(rows_of(&mut registry, &tenant, "u1", 1).await.len(), 1);
    // A row left by a bridge that no longer exists.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    registry
        .register(RegisterConnectionRequest {
            connection: Some(RegisteredConnection {
                tenant: tenant.clone(),
                connection_id: "ghost-connection".into(),
                user_id: "u1".into(),
                bridge_id: "a-bridge-that-died".into(),
                dialect: "assistant".into(),
                status: ConnectionStatus::Connected as i32,
                created_at_ms: now,
                last_activity_ms: now,
                ..RegisteredConnection::default()
            }),
        })
        .await
        .unwrap();
    assert_eq!(rows_of(&mut registry, &tenant, "u1", 2).await.len(), 2);

    let sent = direct
        .send_to_user(SendToUserRequest {
            user: Some(UserRef {
                tenant: tenant.clone(),
                user_id: "u1".into(),
            }),
            message: Some(notice("hello")),
            trace_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sent.reached, 1);
    assert_eq!(sent.pruned, ["ghost-connection"]);
    assert_eq!(live.expect("system").await["data"]["message"], "hello");
    let rows = by_user(&mut registry, &tenant, "u1").await;
    assert_eq!(rows.len(), 1, "the gone one is pruned: {rows:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_lists_by_session_and_by_user_until_its_ttl_runs_out() {
    let system = System::start(Mode::Split).await;
    let (tenant, room) = (session_id("t"), session_id("room"));
    let client = nexus(system.bridge_addr, &tenant, "ann", &room).await;
    let (_, mut registry) = clients(&system).await;
    rows_of(&mut registry, &tenant, "ann", 1).await;
    let rows = registry
        .list_by_session(ListBySessionRequest {
            tenant: tenant.clone(),
            session_id: room.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .connections;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let row = &rows[0];
    assert_eq!(row.user_id, "ann");
    assert_eq!(row.session_id, room);
    assert_eq!(row.dialect, "nexus");
    assert_eq!(row.ip, "127.0.0.1");
    assert_eq!(row.status(), ConnectionStatus::Connected);
    assert!(!row.connection_id.is_empty() && !row.bridge_id.is_empty());
    assert!(row.created_at_ms > 0 && row.last_activity_ms > 0);
    assert_eq!(row.disconnected_at_ms, 0);
    assert_eq!(by_user(&mut registry, &tenant, "ann").await, rows);

    client.close().await;
    // Closed: kept, marked DISCONNECTED, until the TTL.
    let mut closed = Vec::new();
    for _ in 0..50 {
        closed = by_user(&mut registry, &tenant, "ann").await;
        if closed
            .first()
            .is_some_and(|row| row.status() == ConnectionStatus::Disconnected)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].status(), ConnectionStatus::Disconnected);
    assert!(closed[0].disconnected_at_ms > 0);

    system.advance(Duration::from_secs(11 * 60));
    assert!(by_user(&mut registry, &tenant, "ann").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_believes_x_forwarded_for_only_from_a_trusted_proxy() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let system = System::start(Mode::Split).await;
    let behind_proxy = system
        .start_bridge(meno_bridge::config::BridgeConfig {
            trusted_proxies: meno_bridge::client_ip::TrustedProxies::parse(&[
                "127.0.0.1".to_owned(),
                "10.0.0.0/8".to_owned(),
            ])
            .unwrap(),
            ..test_bridge_config()
        })
        .await;
    let tenant = session_id("t");
    let (_, mut registry) = clients(&system).await;
    // The same headers to a bridge that trusts its peer and to one that
    // does not (the first bridge has no --trusted-proxies).
    let mut sockets = Vec::new();
    for (bridge, user) in [(behind_proxy, "proxied"), (system.bridge_addr, "direct")] {
        let mut request = format!("ws://{bridge}/ws/assistant?userId={user}&tenant={tenant}")
            .into_client_request()
            .unwrap();
        let headers = request.headers_mut();
        headers.insert("X-Forwarded-For", "203.0.113.7, 10.1.2.3".parse().unwrap());
        headers.insert("User-Agent", "meno-test/1.0 (registry)".parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        sockets.push(ws);
    }
    for (user, ip) in [("proxied", "203.0.113.7"), ("direct", "127.0.0.1")] {
        let rows = rows_of(&mut registry, &tenant, user, 1).await;
        assert_eq!(rows.len(), 1, "{rows:#?}");
        assert_eq!(rows[0].ip, ip, "{user}");
        assert_eq!(rows[0].user_agent, "meno-test/1.0 (registry)");
        assert_eq!(rows[0].dialect, "assistant");
    }
}
