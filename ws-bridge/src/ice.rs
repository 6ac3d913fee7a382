//! The ICE servers a WebRTC client is given (`GET /api/config/webrtc`), with
//! TURN credentials minted per request the way coturn's `use-auth-secret`
//! (the "TURN REST API") expects: `username = "<expiry unix seconds>:<userId>"`
//! and `credential = base64(HMAC-SHA1(secret, username))`, valid until the
//! expiry. Nothing is stored; the TURN server checks the HMAC with the same
//! secret.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

/// STUN servers when none are configured: the seed's example.
pub const DEFAULT_STUN_URLS: [&str; 2] = [
    "stun:stun1.l.google.com:19302",
    "stun:stun2.l.google.com:19302",
];

/// How long minted TURN credentials are valid by default.
pub const DEFAULT_TURN_CREDENTIAL_TTL: Duration = Duration::from_secs(24 * 3600);

/// Configured ICE servers.
#[derive(Clone, PartialEq, Eq)]
pub struct IceConfig {
    /// `stun:` URLs, given to everyone as they are.
    pub stun_urls: Vec<String>,
    /// `turn:` and `turns:` URLs, given with minted credentials.
    pub turn_urls: Vec<String>,
    /// coturn's `static-auth-secret`.
    pub turn_secret: Option<Vec<u8>>,
    /// How long a minted credential is valid.
    pub credential_ttl: Duration,
}

impl std::fmt::Debug for IceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceConfig")
            .field("stun_urls", &self.stun_urls)
            .field("turn_urls", &self.turn_urls)
            .field(
                "turn_secret",
                &self.turn_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("credential_ttl", &self.credential_ttl)
            .finish()
    }
}

impl Default for IceConfig {
    fn default() -> Self {
        Self {
            stun_urls: DEFAULT_STUN_URLS
                .iter()
                .map(|url| (*url).to_owned())
                .collect(),
            turn_urls: Vec::new(),
            turn_secret: None,
            credential_ttl: DEFAULT_TURN_CREDENTIAL_TTL,
        }
    }
}

/// Why the ICE settings are refused at start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IceConfigError {
    /// A URL is not `stun:`, `turn:` or `turns:`.
    #[error("{0:?} is not a stun:, turn: or turns: URL")]
    Scheme(String),
    /// TURN URLs without a secret to mint credentials with.
    #[error("TURN URLs need --turn-secret-file (coturn's static-auth-secret)")]
    TurnWithoutSecret,
    /// A secret without a TURN URL to use it for.
    #[error("--turn-secret-file is set but --ice-servers names no turn: or turns: URL")]
    SecretWithoutTurn,
    /// The secret file is empty.
    #[error("the TURN secret file is empty")]
    EmptySecret,
}

impl IceConfig {
    /// From `--ice-servers` (URLs; empty: the default STUN servers), the
    /// secret read from `--turn-secret-file`, and the TTL.
    pub fn new(
        urls: &[String],
        turn_secret: Option<Vec<u8>>,
        credential_ttl: Duration,
    ) -> Result<Self, IceConfigError> {
        let mut config = Self {
            credential_ttl,
            turn_secret,
            ..Self::default()
        };
        if let Some(secret) = &mut config.turn_secret {
            // A file written by an editor or `echo` ends with a newline that
            // is not part of the secret.
            while secret.last().is_some_and(|b| matches!(b, b'\n' | b'\r')) {
                secret.pop();
            }
            if secret.is_empty() {
                return Err(IceConfigError::EmptySecret);
            }
        }
        let urls: Vec<&str> = urls
            .iter()
            .map(|url| url.trim())
            .filter(|url| !url.is_empty())
            .collect();
        if !urls.is_empty() {
            config.stun_urls.clear();
        }
        for url in urls {
            let scheme = url
                .split(':')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            match scheme.as_str() {
                "stun" | "stuns" => config.stun_urls.push(url.to_owned()),
                "turn" | "turns" => config.turn_urls.push(url.to_owned()),
                _ => return Err(IceConfigError::Scheme(url.to_owned())),
            }
        }
        match (config.turn_urls.is_empty(), config.turn_secret.is_some()) {
            (false, false) => Err(IceConfigError::TurnWithoutSecret),
            (true, true) => Err(IceConfigError::SecretWithoutTurn),
            _ => Ok(config),
        }
    }

    /// The body of `GET /api/config/webrtc` for `user_id` at `now_s` (Unix
    /// seconds): `{"iceServers": [...]}`, the STUN servers one entry each
    /// (as the seed shows them), the TURN servers in one entry with a
    /// credential.
    pub fn response(&self, user_id: &str, now_s: i64) -> Value {
        let mut servers: Vec<Value> = self
            .stun_urls
            .iter()
            .map(|url| json!({ "urls": [url] }))
            .collect();
        if let Some(secret) = &self.turn_secret {
            let ttl = i64::try_from(self.credential_ttl.as_secs()).unwrap_or(i64::MAX);
            let (username, credential) =
                turn_credential(secret, user_id, now_s.saturating_add(ttl));
            servers.push(json!({
                "urls": self.turn_urls,
                "username": username,
                "credential": credential,
            }));
        }
        json!({ "iceServers": servers })
    }
}

/// coturn's REST-API credential for `user_id`, valid until `expires_at_s`.
pub fn turn_credential(secret: &[u8], user_id: &str, expires_at_s: i64) -> (String, String) {
    let username = format!("{expires_at_s}:{user_id}");
    // HMAC takes a key of any length; this cannot fail.
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(username.as_bytes());
    let credential = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, credential)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_configuration_the_seeds_public_stun_servers_are_given() {
        let body = IceConfig::default().response("u1", 0);
        assert_eq!(
            body,
            json!({"iceServers": [
                {"urls": ["stun:stun1.l.google.com:19302"]},
                {"urls": ["stun:stun2.l.google.com:19302"]}
            ]})
        );
    }

    #[test]
    fn the_credential_matches_rfc_2104_hmac_sha1() {
        // RFC 2202 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let digest = mac.finalize().into_bytes();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
        let (username, _) = turn_credential(b"s", "ann", 1_700_000_000);
        assert_eq!(username, "1700000000:ann");
    }

    #[test]
    fn misconfigurations_are_refused() {
        let urls = |list: &[&str]| list.iter().map(|u| (*u).to_owned()).collect::<Vec<_>>();
        let ttl = DEFAULT_TURN_CREDENTIAL_TTL;
        assert_eq!(
            IceConfig::new(&urls(&["turn:t.test:3478"]), None, ttl),
            Err(IceConfigError::TurnWithoutSecret)
        );
        assert_eq!(
            IceConfig::new(&urls(&["stun:s.test"]), Some(b"x".to_vec()), ttl),
            Err(IceConfigError::SecretWithoutTurn)
        );
        assert!(matches!(
            IceConfig::new(&urls(&["http://x"]), None, ttl),
            Err(IceConfigError::Scheme(_))
        ));
        assert_eq!(
            IceConfig::new(&urls(&["turn:t.test"]), Some(b"\n".to_vec()), ttl),
            Err(IceConfigError::EmptySecret)
        );
        let ok = IceConfig::new(
            &urls(&["stun:s.test:3478", "turns:t.test:5349"]),
            Some(b"secret\n".to_vec()),
            ttl,
        )
        .unwrap();
        assert_eq!(ok.stun_urls, ["stun:s.test:3478"]);
        assert_eq!(ok.turn_secret.as_deref(), Some(&b"secret"[..]));
    }
}
