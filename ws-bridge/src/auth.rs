//! Who may connect: JWT validation for WebSocket upgrades, and the identity a
//! valid token grants (participant, name, role, tenant, sessions).
//!
//! Keys come from a shared HS256 secret or from a JWKS (file or URL), looked
//! up by `kid`; an unknown `kid` triggers one reload, so key rotation needs no
//! restart. This module never trusts the connect query over the token: the
//! caller refuses queries that contradict the identity returned here.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use meno_proto::Role;
use serde_json::Value;
use tokio::sync::Mutex;

/// Where verification keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A shared HS256 secret.
    Hs256Secret(Vec<u8>),
    /// A JWKS document in a file, re-read when an unknown `kid` shows up.
    JwksFile(PathBuf),
    /// A JWKS document at a URL, cached and refreshed.
    JwksUrl(String),
}

/// Names of the claims that carry identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    /// The participant (user) id.
    pub subject: String,
    /// The sessions the token may join: a list, a single id, or `"*"`.
    pub sessions: String,
    /// The role (a string, or a list such as `cognito:groups`).
    pub role: String,
    /// The display name.
    pub name: String,
    /// The tenant.
    pub tenant: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self {
            subject: "sub".into(),
            sessions: "sessions".into(),
            role: "role".into(),
            name: "name".into(),
            tenant: "tenant".into(),
        }
    }
}

/// JWT settings.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// Verification keys.
    pub keys: KeySource,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud`, when set.
    pub audience: Option<String>,
    /// Clock-skew leeway for `exp` and `nbf`.
    pub leeway: Duration,
    /// Claim names.
    pub claims: ClaimNames,
    /// Claim values mapped to roles (e.g. `teachers` → teacher); values not
    /// listed must be a role name themselves.
    pub role_map: HashMap<String, Role>,
    /// How long a fetched JWKS is used before it is fetched again.
    pub jwks_refresh: Duration,
}

/// The sessions a token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionScope {
    /// Any session of the tenant.
    Any,
    /// Only these.
    Only(Vec<String>),
}

impl SessionScope {
    /// Whether `session_id` is granted.
    pub fn allows(&self, session_id: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Only(sessions) => sessions.iter().any(|granted| granted == session_id),
        }
    }
}

/// What a valid token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The participant id (`sub`).
    pub participant_id: String,
    /// Display name, when the token has one.
    pub name: Option<String>,
    /// Role, when the token has one.
    pub role: Option<Role>,
    /// Tenant, when the token has one.
    pub tenant: Option<String>,
    /// Sessions granted.
    pub sessions: SessionScope,
    /// Unix milliseconds at which the token expires.
    pub expires_at_ms: Option<i64>,
}

/// Why a token was refused; the text is the one-line reason sent back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token in the `token` parameter nor in `Sec-WebSocket-Protocol`.
    #[error(
        "missing token: pass it as ?token= or as a Sec-WebSocket-Protocol entry \"bearer.<token>\""
    )]
    Missing,
    /// The token is malformed, badly signed, expired, or for someone else.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// No key could be found for the token.
    #[error("no key for this token: {0}")]
    UnknownKey(String),
    /// A claim is missing or of the wrong shape.
    #[error("invalid claim {claim}: {reason}")]
    Claim {
        /// The claim's name.
        claim: String,
        /// What is wrong with it.
        reason: String,
    },
}

#[derive(Debug, Default)]
struct KeyCache {
    by_kid: HashMap<String, (Algorithm, DecodingKey)>,
    fetched_at: Option<Instant>,
}

/// Verifies tokens; cheap to clone and share.
#[derive(Debug, Clone)]
pub struct Authenticator {
    config: Arc<JwtConfig>,
    cache: Arc<Mutex<KeyCache>>,
    http: reqwest::Client,
}

/// The shortest time between two JWKS reloads caused by unknown `kid`s.
const MIN_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

impl Authenticator {
    /// An authenticator for `config`. Keys are loaded on first use.
    pub fn new(config: JwtConfig) -> Self {
        // reqwest is built without a default TLS backend; ring is the one
        // this binary uses everywhere. Installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            config: Arc::new(config),
            cache: Arc::default(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
        }
    }

    /// Validates `token` and returns the identity it grants.
    pub async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|err| AuthError::Invalid(err.to_string()))?;
        let (algorithm, key) = self.key_for(header.alg, header.kid.as_deref()).await?;
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.config.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", self.config.claims.subject.as_str()]);
        match &self.config.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        if let Some(issuer) = &self.config.issuer {
            validation.set_issuer(&[issuer]);
        }
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|err| AuthError::Invalid(err.to_string()))?;
        self.identity(&data.claims)
    }

    async fn key_for(
        &self,
        algorithm: Algorithm,
        kid: Option<&str>,
    ) -> Result<(Algorithm, DecodingKey), AuthError> {
        let url = match &self.config.keys {
            KeySource::Hs256Secret(secret) => {
                if algorithm != Algorithm::HS256 {
                    return Err(AuthError::Invalid(format!(
                        "algorithm {algorithm:?} is not accepted; expected HS256"
                    )));
                }
                return Ok((Algorithm::HS256, DecodingKey::from_secret(secret)));
            }
            KeySource::JwksFile(_) => None,
            KeySource::JwksUrl(url) => Some(url.clone()),
        };
        if !matches!(algorithm, Algorithm::RS256 | Algorithm::ES256) {
            return Err(AuthError::Invalid(format!(
                "algorithm {algorithm:?} is not accepted; expected RS256 or ES256"
            )));
        }
        let kid = kid.ok_or_else(|| AuthError::UnknownKey("the token has no kid".into()))?;
        let mut cache = self.cache.lock().await;
        let stale = cache
            .fetched_at
            .is_none_or(|at| url.is_some() && at.elapsed() >= self.config.jwks_refresh);
        let unknown = !cache.by_kid.contains_key(kid)
            && cache
                .fetched_at
                .is_none_or(|at| at.elapsed() >= MIN_RELOAD_INTERVAL);
        if stale || unknown {
            match self.load_keys().await {
                Ok(keys) => {
                    cache.by_kid = keys;
                    cache.fetched_at = Some(Instant::now());
                }
                // Keep serving the keys we have; a key server hiccup must not
                // lock everyone out.
                Err(err) => tracing::warn!(error = %err, "cannot load the JWKS"),
            }
        }
        match cache.by_kid.get(kid) {
            Some((expected, key)) if *expected == algorithm => Ok((algorithm, key.clone())),
            Some((expected, _)) => Err(AuthError::Invalid(format!(
                "key {kid:?} is for {expected:?}, the token says {algorithm:?}"
            ))),
            None => Err(AuthError::UnknownKey(format!("kid {kid:?}"))),
        }
    }

    async fn load_keys(&self) -> Result<HashMap<String, (Algorithm, DecodingKey)>, String> {
        let text = match &self.config.keys {
            KeySource::JwksFile(path) => tokio::fs::read_to_string(path)
                .await
                .map_err(|err| format!("{}: {err}", path.display()))?,
            KeySource::JwksUrl(url) => self
                .http
                .get(url)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|err| format!("{url}: {err}"))?
                .text()
                .await
                .map_err(|err| format!("{url}: {err}"))?,
            KeySource::Hs256Secret(_) => return Ok(HashMap::new()),
        };
        let set: JwkSet = serde_json::from_str(&text).map_err(|err| format!("bad JWKS: {err}"))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            let algorithm = match &jwk.algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                _ => continue,
            };
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(kid, (algorithm, key));
                }
                Err(err) => tracing::warn!(kid, error = %err, "skipping an unusable JWK"),
            }
        }
        Ok(keys)
    }

    fn identity(&self, claims: &Value) -> Result<Identity, AuthError> {
        identity_from_claims(&self.config, claims)
    }
}

/// The identity that verified `claims` grant under `config`: the claim names
/// and role map are read from it, the keys are not.
///
/// This is the claim mapping of [`Authenticator::verify`], without the
/// signature and time checks; it is pure (no I/O, no clock) so that tests and
/// fuzz targets can call it on any JSON. Never call it on claims that were
/// not verified: it trusts them.
pub fn identity_from_claims(config: &JwtConfig, claims: &Value) -> Result<Identity, AuthError> {
    let names = &config.claims;
    let claim_error = |claim: &str, reason: &str| AuthError::Claim {
        claim: claim.to_owned(),
        reason: reason.to_owned(),
    };
    let participant_id = claims
        .get(&names.subject)
        .and_then(Value::as_str)
        .filter(|sub| !sub.is_empty() && sub.len() <= 128 && !sub.chars().any(char::is_control))
        .ok_or_else(|| {
            claim_error(
                &names.subject,
                "must be a non-empty string of at most 128 bytes",
            )
        })?
        .to_owned();
    let sessions = match claims.get(&names.sessions) {
        Some(Value::String(star)) if star == "*" => SessionScope::Any,
        Some(Value::String(one)) => SessionScope::Only(vec![one.clone()]),
        Some(Value::Array(list)) => SessionScope::Only(
            list.iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| claim_error(&names.sessions, "must hold strings"))?,
        ),
        Some(_) => {
            return Err(claim_error(
                &names.sessions,
                "must be a list of session ids or \"*\"",
            ))
        }
        None => return Err(claim_error(&names.sessions, "is required")),
    };
    let role = match claims.get(&names.role) {
        None => None,
        Some(Value::String(value)) => Some(
            map_role(&config.role_map, value)
                .ok_or_else(|| claim_error(&names.role, "names no known role"))?,
        ),
        Some(Value::Array(values)) => Some(
            values
                .iter()
                .filter_map(Value::as_str)
                .filter_map(|value| map_role(&config.role_map, value))
                // Several groups: the most capable role wins.
                .max_by_key(|role| match role {
                    Role::Teacher => 3,
                    Role::Student => 2,
                    _ => 1,
                })
                .ok_or_else(|| claim_error(&names.role, "names no known role"))?,
        ),
        Some(_) => return Err(claim_error(&names.role, "must be a string or a list")),
    };
    let text = |claim: &str| claims.get(claim).and_then(Value::as_str).map(str::to_owned);
    let expires_at_ms = claims
        .get("exp")
        .and_then(Value::as_i64)
        .map(|exp| exp.saturating_mul(1000));
    Ok(Identity {
        participant_id,
        // A name claim that breaks the display-name rule is ignored (the
        // user cannot fix their token): the participant id is shown instead.
        name: text(&names.name).filter(|name| meno_common::text::display_name(name).is_ok()),
        role,
        tenant: text(&names.tenant).filter(|tenant| !tenant.is_empty()),
        sessions,
        expires_at_ms,
    })
}

/// The role a claim value names: through `role_map` first, else by its own name.
fn map_role(role_map: &HashMap<String, Role>, value: &str) -> Option<Role> {
    if let Some(role) = role_map.get(value) {
        return Some(*role);
    }
    match value {
        "student" => Some(Role::Student),
        "teacher" => Some(Role::Teacher),
        "observer" => Some(Role::Observer),
        _ => None,
    }
}

/// The token of an upgrade request: the `token` query parameter, or a
/// `Sec-WebSocket-Protocol` entry `bearer.<token>`. Returns the token and the
/// subprotocol to answer with, if any.
pub fn token_from_request(
    query_token: Option<&str>,
    protocols: Option<&str>,
) -> (Option<String>, Option<String>) {
    let offered: Vec<&str> = protocols
        .map(|header| header.split(',').map(str::trim).collect())
        .unwrap_or_default();
    let from_protocol = offered
        .iter()
        .find_map(|entry| entry.strip_prefix("bearer."))
        .map(str::to_owned);
    // Browsers require the server to pick one of the offered protocols.
    let selected = offered
        .iter()
        .find(|entry| **entry == SUBPROTOCOL)
        .or_else(|| offered.iter().find(|entry| entry.starts_with("bearer.")))
        .map(|entry| (*entry).to_owned());
    (query_token.map(str::to_owned).or(from_protocol), selected)
}

/// The subprotocol clients may offer beside their `bearer.<token>` entry.
pub const SUBPROTOCOL: &str = "meno.v1";

/// Parses `value=role,value=role` (e.g. `teachers=teacher,students=student`).
pub fn parse_role_map(text: &str) -> Result<HashMap<String, Role>, String> {
    let mut map = HashMap::new();
    for pair in text
        .split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
    {
        let (value, role) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?} is not value=role"))?;
        let role = match role.trim() {
            "student" => Role::Student,
            "teacher" => Role::Teacher,
            "observer" => Role::Observer,
            other => return Err(format!("{other:?} is not student, teacher or observer")),
        };
        map.insert(value.trim().to_owned(), role);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comes_from_the_query_or_a_bearer_subprotocol() {
        assert_eq!(
            token_from_request(Some("q"), None),
            (Some("q".into()), None)
        );
        assert_eq!(
            token_from_request(None, Some("meno.v1, bearer.abc")),
            (Some("abc".into()), Some("meno.v1".into()))
        );
        assert_eq!(
            token_from_request(None, Some("bearer.abc")),
            (Some("abc".into()), Some("bearer.abc".into()))
        );
        assert_eq!(token_from_request(None, Some("chat")), (None, None));
    }

    fn config(role_map: &str) -> JwtConfig {
        JwtConfig {
            keys: KeySource::Hs256Secret(b"unused".to_vec()),
            issuer: None,
            audience: None,
            leeway: Duration::ZERO,
            claims: ClaimNames::default(),
            role_map: parse_role_map(role_map).unwrap(),
            jwks_refresh: Duration::from_secs(300),
        }
    }

    #[test]
    fn claims_map_to_an_identity() {
        let claims = serde_json::json!({
            "sub": "p_7", "sessions": ["s-1", "s-2"], "role": ["students", "teachers", "x"],
            "name": "Ada", "tenant": "acme", "exp": 1_795_416_702,
        });
        let identity = identity_from_claims(&config("teachers=teacher"), &claims).unwrap();
        assert_eq!(
            identity,
            Identity {
                participant_id: "p_7".into(),
                name: Some("Ada".into()),
                role: Some(Role::Teacher),
                tenant: Some("acme".into()),
                sessions: SessionScope::Only(vec!["s-1".into(), "s-2".into()]),
                expires_at_ms: Some(1_795_416_702_000),
            }
        );
        let any = serde_json::json!({"sub": "p", "sessions": "*", "name": " ", "tenant": ""});
        let identity = identity_from_claims(&config(""), &any).unwrap();
        assert_eq!(identity.sessions, SessionScope::Any);
        assert_eq!(
            (identity.name, identity.tenant, identity.role),
            (None, None, None)
        );
    }

    #[test]
    fn bad_claims_name_the_claim() {
        for (claims, claim) in [
            (serde_json::json!({"sessions": "*"}), "sub"),
            (serde_json::json!({"sub": "", "sessions": "*"}), "sub"),
            (serde_json::json!({"sub": "a\nb", "sessions": "*"}), "sub"),
            (serde_json::json!({"sub": "p"}), "sessions"),
            (serde_json::json!({"sub": "p", "sessions": [1]}), "sessions"),
            (
                serde_json::json!({"sub": "p", "sessions": "*", "role": "admin"}),
                "role",
            ),
            (
                serde_json::json!({"sub": "p", "sessions": "*", "role": 1}),
                "role",
            ),
        ] {
            match identity_from_claims(&config(""), &claims) {
                Err(AuthError::Claim { claim: named, .. }) => assert_eq!(named, claim, "{claims}"),
                other => panic!("{claims} gave {other:?}"),
            }
        }
    }

    #[test]
    fn role_maps_parse_and_refuse_unknown_roles() {
        let map = parse_role_map("teachers=teacher, students=student").unwrap();
        assert_eq!(map.get("teachers"), Some(&Role::Teacher));
        assert!(parse_role_map("admins=admin").is_err());
        assert!(parse_role_map("nonsense").is_err());
    }
}
