//! Authentication at the edge: JWT on every upgrade (query or subprotocol),
//! claims that the query may not contradict, key rotation by `kid`, expiry
//! while connected, session and tenant scopes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use meno_bridge::auth::{Authenticator, ClaimNames, JwtConfig, KeySource};
use meno_bridge::config::BridgeConfig;
use meno_tests::{http_get, session_id, Client, Mode, Received, System};
use serde_json::{json, Value};

const SECRET: &[u8] = b"a-test-secret-of-at-least-32-bytes!!";

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

fn jwt_config(keys: KeySource) -> JwtConfig {
    JwtConfig {
        keys,
        issuer: Some("https://issuer.test".into()),
        audience: Some("meno".into()),
        leeway: Duration::ZERO,
        claims: ClaimNames::default(),
        role_map: HashMap::from([("teachers".to_owned(), meno_proto::Role::Teacher)]),
        jwks_refresh: Duration::from_secs(300),
    }
}

async fn start(keys: KeySource) -> System {
    let bridge = BridgeConfig {
        auth: Some(Authenticator::new(jwt_config(keys))),
        allowed_origins: vec!["https://app.test".into()],
        ..meno_tests::test_bridge_config()
    };
    System::start_custom(
        Mode::Split,
        Arc::new(meno_core::store::MemoryStore::new()),
        meno_tests::test_session_config(),
        bridge,
        None,
    )
    .await
}

fn claims(sub: &str, sessions: Value) -> Value {
    json!({
        "sub": sub,
        "sessions": sessions,
        "role": "student",
        "name": format!("{sub} from the token"),
        "iss": "https://issuer.test",
        "aud": "meno",
        "exp": now() + 600,
    })
}

fn hs256(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn url(system: &System, session: &str, token: &str, extra: &str) -> String {
    system.ws_url(&format!(
        "sessionId={session}&client=web&token={token}{extra}"
    ))
}

async fn status(system: &System, session: &str, token: &str, extra: &str) -> (u16, String) {
    http_get(
        system.bridge_addr,
        &format!("/ws?sessionId={session}&client=web&token={token}{extra}"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_token_connects_with_the_identity_of_its_claims() {
    let system = start(KeySource::Hs256Secret(SECRET.to_vec())).await;
    let session = session_id("jwt");
    let token = hs256(&claims("ann", json!([session])));
    let mut ann = Client::connect(&url(&system, &session, &token, "")).await;
    let (_, snapshot) = ann.expect_start().await;
    let me = &snapshot["data"]["participants"][0];
    assert_eq!(me["participantId"], "ann");
    assert_eq!(me["name"], "ann from the token");
    assert_eq!(me["role"], "student");
    // The query may repeat the claims.
    let same = "&participantId=ann&role=student";
    let mut again = Client::connect(&url(&system, &session, &token, same)).await;
    again.expect_start().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_with_401_and_a_reason() {
    let system = start(KeySource::Hs256Secret(SECRET.to_vec())).await;
    let session = session_id("bad-jwt");
    let good = claims("ann", json!([session]));
    let forged = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &good,
        &EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes"),
    )
    .unwrap();
    let mut expired = good.clone();
    expired["exp"] = json!(now() - 10);
    let mut audience = good.clone();
    audience["aud"] = json!("someone-else");
    let mut issuer = good.clone();
    issuer["iss"] = json!("https://evil.test");
    let cases = [
        (forged, "", "invalid token"),
        (hs256(&expired), "", "invalid token"),
        (hs256(&audience), "", "invalid token"),
        (hs256(&issuer), "", "invalid token"),
        (
            hs256(&good),
            "&participantId=bob",
            "participantId contradicts",
        ),
        (hs256(&good), "&role=teacher", "role contradicts"),
        ("not.a.jwt".to_owned(), "", "invalid token"),
    ];
    for (token, extra, reason) in cases {
        let (code, body) = status(&system, &session, &token, extra).await;
        assert_eq!(code, 401, "{extra} {body}");
        assert!(body.contains(reason), "{body:?} should say {reason:?}");
    }
    let (code, body) = http_get(
        system.bridge_addr,
        &format!("/ws?sessionId={session}&client=web&participantId=ann&name=Ann&role=student"),
    )
    .await;
    assert_eq!(code, 401, "no token: {body}");
    assert!(body.contains("missing token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_session_a_cannot_join_session_b() {
    let system = start(KeySource::Hs256Secret(SECRET.to_vec())).await;
    let (a, b) = (session_id("a"), session_id("b"));
    let token = hs256(&claims("ann", json!([a])));
    let (code, body) = status(&system, &b, &token, "").await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("does not grant session"));
    // "*" grants every session of the tenant.
    let any = hs256(&claims("ann", json!("*")));
    let mut ann = Client::connect(&url(&system, &b, &any, "")).await;
    ann.expect_start().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_isolated() {
    let system = start(KeySource::Hs256Secret(SECRET.to_vec())).await;
    let session = session_id("shared-name");
    let mut in_one = claims("ann", json!("*"));
    in_one["tenant"] = json!("school-one");
    let mut in_two = claims("bob", json!("*"));
    in_two["tenant"] = json!("school-two");
    in_two["role"] = json!(["teachers"]);
    let mut ann = Client::connect(&url(&system, &session, &hs256(&in_one), "")).await;
    ann.expect_start().await;
    let mut bob = Client::connect(&url(&system, &session, &hs256(&in_two), "")).await;
    let (_, snapshot) = bob.expect_start().await;
    let participants = snapshot["data"]["participants"].as_array().unwrap();
    assert_eq!(
        participants.len(),
        1,
        "bob sees only his tenant: {participants:?}"
    );
    assert_eq!(
        participants[0]["role"], "teacher",
        "cognito-style group mapped"
    );
    bob.chat("b1", "tenant two only").await;
    bob.expect("chat.message").await;
    ann.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_can_come_in_sec_websocket_protocol() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let system = start(KeySource::Hs256Secret(SECRET.to_vec())).await;
    let session = session_id("subprotocol");
    let token = hs256(&claims("ann", json!([session])));
    let mut request = system
        .ws_url(&format!("sessionId={session}&client=web"))
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        format!("meno.v1, bearer.{token}").parse().unwrap(),
    );
    let (ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "meno.v1");
    let mut ann = Client::from_stream(ws);
    ann.expect_start().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_browser_origins_are_refused() {
    let system = start(KeySource::Hs256Secret(SECRET.to_vec())).await;
    let session = session_id("origin");
    let token = hs256(&claims("ann", json!([session])));
    let upgrade = |origin: &'static str| {
        let session = session.clone();
        let token = token.clone();
        let addr = system.bridge_addr;
        async move {
            meno_tests::http_get_with(
                addr,
                &format!("/ws?sessionId={session}&client=web&token={token}"),
                &[("Origin", origin)],
            )
            .await
        }
    };
    let (code, body) = upgrade("https://evil.test").await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("origin"));
    let (code, _) = upgrade("https://app.test").await;
    assert_eq!(code, 101);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_token_closes_with_4001_unless_refreshed() {
    let system = start(KeySource::Hs256Secret(SECRET.to_vec())).await;
    let session = session_id("expiry");
    let mut short = claims("ann", json!([session]));
    short["exp"] = json!(now() + 2);
    let mut ann = Client::connect(&url(&system, &session, &hs256(&short), "")).await;
    ann.expect_start().await;
    let code = loop {
        match ann.next().await {
            Received::Frame(_) => continue,
            Received::Closed(code) => break code,
            Received::Ended => break None,
        }
    };
    assert_eq!(code, Some(4001));

    let mut bob_claims = claims("bob", json!([session]));
    bob_claims["exp"] = json!(now() + 2);
    let mut bob = Client::connect(&url(&system, &session, &hs256(&bob_claims), "")).await;
    bob.expect_start().await;
    let mut longer = bob_claims.clone();
    longer["exp"] = json!(now() + 600);
    bob.send("system.auth.refresh", json!({"token": hs256(&longer)}))
        .await;
    let refreshed = bob.expect_where("system.auth.refreshed", |_| true).await;
    assert!(refreshed["data"]["expiresAt"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    // A token for someone else is refused and changes nothing.
    let other = hs256(&claims("mallory", json!([session])));
    bob.send("system.auth.refresh", json!({"token": other}))
        .await;
    let refused = bob.expect("error").await;
    assert_eq!(refused["data"]["code"], "PermissionDenied");
    // Past the first token's expiry bob is still served. Ann's presence may
    // still change meanwhile (her leave can reach the core after bob joined):
    // that is the only thing bob may see.
    bob.expect_silence_except(Duration::from_secs(3), |frame| {
        frame["type"] == "presence.event" && frame["data"]["participantId"] == "ann"
    })
    .await;
    bob.send("system.ping", json!({})).await;
    bob.expect("system.pong").await;
}

fn es256_key(kid: &str) -> (EncodingKey, Value) {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let raw = pair.public_key_raw();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
        "x": b64.encode(&raw[1..33]), "y": b64.encode(&raw[33..65]),
    });
    (EncodingKey::from_ec_der(&pair.serialize_der()), jwk)
}

fn es256(claims: &Value, kid: &str, key: &EncodingKey) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_keys_rotate_by_kid() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    let (old_key, old_jwk) = es256_key("2026-old");
    std::fs::write(&jwks, json!({"keys": [old_jwk]}).to_string()).unwrap();
    let system = start(KeySource::JwksFile(jwks.clone())).await;
    let session = session_id("jwks");
    let claims = claims("ann", json!([session]));
    let mut ann = Client::connect(&url(
        &system,
        &session,
        &es256(&claims, "2026-old", &old_key),
        "",
    ))
    .await;
    ann.expect_start().await;

    // The issuer rotates: the new key replaces the old one.
    let (new_key, new_jwk) = es256_key("2026-new");
    std::fs::write(&jwks, json!({"keys": [new_jwk]}).to_string()).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut again = Client::connect(&url(
        &system,
        &session,
        &es256(&claims, "2026-new", &new_key),
        "",
    ))
    .await;
    again.expect_start().await;
    let (code, body) = status(&system, &session, &es256(&claims, "2026-old", &old_key), "").await;
    assert_eq!(code, 401, "the retired key no longer works: {body}");
    // A token signed by a key that is not in the set at all.
    let (rogue, _) = es256_key("2026-new");
    let (code, _) = status(&system, &session, &es256(&claims, "2026-new", &rogue), "").await;
    assert_eq!(code, 401);
}
