//! HS256 tokens for tests of `--auth jwt` that are not about the JWT
//! checks themselves: a bridge configuration that verifies them, and tokens
//! that name a user and a tenant.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use meno_bridge::auth::{Authenticator, ClaimNames, JwtConfig, KeySource};
use meno_bridge::config::BridgeConfig;
use serde_json::json;

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
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": sub, "tenant": tenant, "sessions": [], "exp": exp}),
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}
