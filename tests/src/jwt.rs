//! HS256 tokens for tests of `--auth jwt` that are not about the JWT
//! checks themselves: a bridge configuration that verifies them, and tokens
//! that name a user and a tenant.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use meno_bridge::auth::{Authenticator, ClaimNames, JwtConfig, KeySource};
use meno_bridge::config::BridgeConfig;
use serde_json::{json, Value};

const SECRET: &[u8] = b"a-shared-test-secret-of-32-bytes-or-more";

/// [`crate::test_bridge_config`] with `--auth jwt`, HS256 under the tests'
/// secret, no issuer or audience required.
pub fn jwt_bridge_config() -> BridgeConfig {
    BridgeConfig {
        auth: Some(Authenticator::new(JwtConfig {
            keys: KeySource::Hs256Secret(SECRET.to_vec()),
            issuer: None,
            audience: None,
            leeway: Duration::ZERO,
            claims: ClaimNames::default(),
            role_map: HashMap::new(),
            jwks_refresh: Duration::from_secs(300),
        })),
        ..crate::test_bridge_config()
    }
}

/// A token for `sub` in `tenant`, valid for ten minutes and granting no
/// session, that [`jwt_bridge_config`] accepts.
pub fn token(sub: &str, tenant: &str) -> String {
    signed(&json!({"sub": sub, "tenant": tenant, "sessions": [], "exp": in_ten_minutes()}))
}

/// `claims` signed as [`jwt_bridge_config`] expects.
pub fn signed(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

/// An `exp` claim ten minutes from now.
pub fn in_ten_minutes() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600
}
