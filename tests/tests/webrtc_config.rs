//! `GET /api/config/webrtc`: the configured ICE servers, and TURN credentials
//! minted per request the way coturn's `use-auth-secret` checks them, for
//! the token's subject in jwt mode.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use meno_bridge::config::BridgeConfig;
use meno_bridge::ice::IceConfig;
use meno_tests::jwt::{jwt_bridge_config, token};
use meno_tests::nexus::get_json;
use meno_tests::{test_bridge_config, Mode, System};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_configuration_the_seeds_public_stun_servers_are_served() {
    let system = System::start(Mode::Monolithic).await;
    let (status, body) = get_json(system.bridge_addr, "/api/config/webrtc", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"iceServers": [
            {"urls": ["stun:stun1.l.google.com:19302"]},
            {"urls": ["stun:stun2.l.google.com:19302"]}
        ]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_credential_is_the_hmac_of_its_expiry_and_user_under_the_secret() {
    let secret = b"coturn-static-auth-secret";
    let ttl = Duration::from_secs(3600);
    let urls = vec![
        "stun:stun.example.test:3478".to_owned(),
        "turn:turn.example.test:3478?transport=udp".to_owned(),
        "turns:turn.example.test:5349".to_owned(),
    ];
    let bridge = BridgeConfig {
        ice: IceConfig::new(&urls, Some(secret.to_vec()), ttl).unwrap(),
        ..test_bridge_config()
    };
    let system = System::start_with_bridge(Mode::Monolithic, bridge).await;
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (status, body) = get_json(system.bridge_addr, "/api/config/webrtc?userId=ann", &[]).await;
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(status, 200, "{body}");
    let servers = body["iceServers"].as_array().unwrap();
    assert_eq!(servers[0], json!({"urls": ["stun:stun.example.test:3478"]}));
    let turn = &servers[1];
    assert_eq!(
        turn["urls"],
        json!([
            "turn:turn.example.test:3478?transport=udp",
            "turns:turn.example.test:5349"
        ])
    );
    let username = turn["username"].as_str().unwrap();
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, "ann");
    let expiry: u64 = expiry.parse().unwrap();
    assert!(
        (before + ttl.as_secs()..=after + ttl.as_secs()).contains(&expiry),
        "expiry {expiry} is now + {} s",
        ttl.as_secs()
    );
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret).unwrap();
    mac.update(username.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(turn["credential"], expected.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_jwt_auth_the_credential_needs_a_bearer_token_and_names_its_subject() {
    let urls = vec!["turn:turn.example.test:3478".to_owned()];
    let bridge = BridgeConfig {
        ice: IceConfig::new(&urls, Some(b"secret".to_vec()), Duration::from_secs(60)).unwrap(),
        ..jwt_bridge_config()
    };
    let system = System::start_with_bridge(Mode::Monolithic, bridge).await;
    let path = "/api/config/webrtc";

    let (status, body) = get_json(system.bridge_addr, path, &[]).await;
    assert_eq!(status, 401, "no token: {body}");
    let (status, body) = get_json(
        system.bridge_addr,
        path,
        &[("Authorization", "Bearer not.a.jwt")],
    )
    .await;
    assert_eq!(status, 401, "a bad token: {body}");

    // The query cannot pick whose credential is minted.
    let bearer = format!("Bearer {}", token("ann", "acme"));
    let (status, body) = get_json(
        system.bridge_addr,
        &format!("{path}?userId=mallory"),
        &[("Authorization", &bearer)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let username = body["iceServers"][0]["username"].as_str().unwrap();
    assert!(username.ends_with(":ann"), "{username}");
}
