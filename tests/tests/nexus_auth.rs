//! NexusChat with `--auth jwt`: the token's `sub`, `name`, `tenant` and
//! `sessions` are the identity and the rooms it may enter, on the WebSocket
//! and on the REST reads; the token's tenant keeps a seed-000 client out of
//! another tenant's room of the same id.
//!
//! Runs on the test store: memory, or the real CQL server with
//! `MENO_TEST_STORE=scylla`.

use std::time::Duration;

use meno_tests::jwt::{in_ten_minutes, jwt_bridge_config, signed};
use meno_tests::nexus::{get_json, NexusClient};
use meno_tests::{http_get, session_id, Client, Mode, System};
use serde_json::{json, Value};

async fn start() -> System {
    System::start_custom(
        Mode::Split,
        meno_tests::test_store().await,
        meno_tests::test_session_config(),
        jwt_bridge_config(),
        None,
    )
    .await
}

fn token(sub: &str, tenant: &str, rooms: &[&str]) -> String {
    signed(&json!({
        "sub": sub, "name": format!("{sub} (token)"), "tenant": tenant,
        "sessions": rooms, "exp": in_ten_minutes(),
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_names_the_user_its_tenant_and_the_rooms_it_may_enter() {
    let system = start().await;
    let (granted, other) = (session_id("granted"), session_id("not-granted"));
    let ann = token("ann", "acme", &[&granted]);

    let mut client =
        NexusClient::connect(&system.nexus_url(&format!("token={ann}&roomId={granted}"))).await;
    let joined = client.expect("ROOM_JOINED").await;
    assert_eq!(joined["data"]["members"][0]["userId"], "ann");
    assert_eq!(joined["data"]["members"][0]["userName"], "ann (token)");

    client.send("JOIN_ROOM", json!({"roomId": other})).await;
    let refused = client.expect("ERROR").await;
    assert_eq!(refused["data"]["code"], "PermissionDenied");
    assert_eq!(refused["data"]["event"], "JOIN_ROOM");

    for (query, status) in [
        (format!("roomId={granted}"), 401),
        (format!("token={ann}&roomId={other}"), 403),
        (format!("token={ann}&userId=bob"), 401),
        (format!("token={ann}&tenant=umbrella"), 401),
    ] {
        let (got, body) = http_get(system.bridge_addr, &format!("/ws/nexus?{query}")).await;
        assert_eq!(got, status, "{query}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_reads_need_a_token_that_grants_the_room_and_another_tenants_room_is_404() {
    let system = start().await;
    let room = session_id("rest-jwt");
    let ann = token("ann", "acme", &[&room]);
    let mut client =
        NexusClient::connect(&system.nexus_url(&format!("token={ann}&roomId={room}"))).await;
    client.expect("ROOM_JOINED").await;
    client.say(&room, "c-1", "hello").await;
    client.expect("NEW_MESSAGE").await;

    let path = format!("/api/rooms/{room}/messages");
    let bearer = format!("Bearer {ann}");
    let (status, page) = get_json(system.bridge_addr, &path, &[("Authorization", &bearer)]).await;
    assert_eq!(status, 200);
    assert_eq!(page[0]["contentText"], "hello");

    let (status, body) = get_json(system.bridge_addr, &path, &[]).await;
    assert_eq!(status, 401, "{body}");
    let not_granted = format!("Bearer {}", token("ann", "acme", &["elsewhere"]));
    let (status, _) = get_json(
        system.bridge_addr,
        &path,
        &[("Authorization", &not_granted)],
    )
    .await;
    assert_eq!(status, 403);
    // The same room id in another tenant was never created there.
    let eve = format!("Bearer {}", token("eve", "umbrella", &[&room]));
    let (status, body) = get_json(system.bridge_addr, &path, &[("Authorization", &eve)]).await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = get_json(
        system.bridge_addr,
        &format!("/api/rooms/{room}/reads"),
        &[("Authorization", &eve)],
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_000_client_of_another_tenant_in_the_same_room_id_shares_no_chat() {
    let system = start().await;
    let room = session_id("cross-tenant-dialects");
    let seed_000 = |sub: &str, tenant: &str| {
        system.ws_url(&format!(
            "sessionId={room}&role=student&client=web&token={}",
            token(sub, tenant, &[&room])
        ))
    };
    let ann = token("ann", "acme", &[&room]);
    let mut ann =
        NexusClient::connect(&system.nexus_url(&format!("token={ann}&roomId={room}"))).await;
    ann.expect("ROOM_JOINED").await;
    // Same tenant, other dialect: the control that shows the room is shared.
    let mut sam = Client::connect(&seed_000("sam", "acme")).await;
    sam.expect_start().await;
    ann.expect_where("PRESENCE", |f| f["data"]["userId"] == "sam")
        .await;
    let mut bob = Client::connect(&seed_000("bob", "umbrella")).await;
    let (sync, snapshot) = bob.expect_start().await;
    assert_eq!(sync["data"]["messages"], json!([]), "{sync}");
    let participants: Vec<&Value> = snapshot["data"]["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["participantId"])
        .collect();
    assert_eq!(participants, [&json!("bob")], "{snapshot}");

    ann.say(&room, "a-1", "acme only").await;
    ann.expect("NEW_MESSAGE").await;
    let at_sam = sam.expect("chat.message").await;
    assert_eq!(at_sam["data"]["content"], "acme only");
    bob.expect_silence(Duration::from_millis(300)).await;

    bob.chat("b-1", "umbrella only").await;
    bob.expect("chat.message").await;
    ann.expect_silence(Duration::from_millis(300)).await;
    sam.expect_silence(Duration::from_millis(300)).await;
}
