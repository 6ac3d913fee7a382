//! The bridge's settings: flags and `MENO_*` variables, parsed and validated
//! in one place.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use meno_common::config::ConfigError;

use crate::auth::{Authenticator, ClaimNames, JwtConfig, KeySource};
use crate::codec::Limits;
use crate::limits::LimitsConfig;

/// How upgrades are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// Trust the connect query (seed 000's behaviour; local development).
    None,
    /// Require a valid JWT on every upgrade.
    Jwt,
}

/// The edge's command line: every flag of `meno-bridge` but the in-process
/// core's, which the binary adds in a monolithic build.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "meno-bridge",
    version,
    about = "meno-realtime ws-bridge: the WebSocket edge."
)]
pub struct BridgeArgs {
    /// HTTP/WebSocket listen address.
    #[arg(long, env = "MENO_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The core's gRPC URL (e.g. http://core:50051). Absent: monolithic mode
    /// (the core in this process), where the build includes it.
    #[arg(long, env = "MENO_CORE")]
    pub core: Option<String>,
    /// The WebSocket path (seed-002 clients connect to wss://host/<stage>).
    #[arg(long, env = "MENO_WS_PATH", default_value = "/ws")]
    pub ws_path: String,
    /// Bytes queued for one socket before it is closed as a slow consumer (4008).
    #[arg(long, env = "MENO_OUTBOUND_QUEUE_BYTES", default_value_t = 1024 * 1024)]
    pub outbound_queue_bytes: usize,
    /// How often the bridge refreshes its connections' TTL, per session.
    #[arg(long, env = "MENO_REFRESH_INTERVAL", default_value = "20s", value_parser = humantime::parse_duration)]
    pub refresh_interval: Duration,
    /// Deadline of each call to the core (seed 002's handler timeout).
    #[arg(long, env = "MENO_CORE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub core_timeout: Duration,
    /// How often the bridge pings each socket.
    #[arg(long, env = "MENO_PING_INTERVAL", default_value = "20s", value_parser = humantime::parse_duration)]
    pub ping_interval: Duration,
    /// A socket from which nothing (not even a pong) arrives for this long is
    /// considered dead: its participant goes `reconnecting`, then `offline`.
    #[arg(long, env = "MENO_IDLE_TIMEOUT", default_value = "50s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// How long a closing handshake may take before the TCP connection is dropped.
    #[arg(long, env = "MENO_CLOSE_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub close_timeout: Duration,
    /// Longest time from accept to a completed WebSocket upgrade (TLS
    /// handshake and request headers included); a connection without a
    /// WebSocket by then is closed.
    #[arg(long, env = "MENO_HANDSHAKE_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub handshake_timeout: Duration,
    /// Largest client envelope answered with an error rather than a close.
    #[arg(long, env = "MENO_MAX_ENVELOPE_BYTES", default_value_t = 64 * 1024)]
    pub max_envelope_bytes: usize,
    /// Largest WebSocket message read at all; larger ones close with 1009.
    #[arg(long, env = "MENO_MAX_MESSAGE_BYTES", default_value_t = 1024 * 1024)]
    pub max_message_bytes: usize,
    /// Longest wait for sockets and in-flight calls on SIGTERM/SIGINT.
    #[arg(long, env = "MENO_DRAIN_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// Authentication of upgrades: `none` trusts the query, `jwt` requires a token.
    #[arg(long, env = "MENO_AUTH", value_enum, default_value = "none")]
    pub auth: AuthMode,
    /// File holding the HS256 secret (jwt mode).
    #[arg(long, env = "MENO_JWT_HS256_SECRET_FILE")]
    pub jwt_hs256_secret_file: Option<PathBuf>,
    /// File holding a JWKS with RS256/ES256 keys (jwt mode), re-read on an unknown `kid`.
    #[arg(long, env = "MENO_JWT_JWKS_FILE")]
    pub jwt_jwks_file: Option<PathBuf>,
    /// URL of a JWKS (Cognito, Auth0, Keycloak), cached and refreshed.
    #[arg(long, env = "MENO_JWT_JWKS_URL")]
    pub jwt_jwks_url: Option<String>,
    /// How long a fetched JWKS is used before it is fetched again.
    #[arg(long, env = "MENO_JWT_JWKS_REFRESH", default_value = "5m", value_parser = humantime::parse_duration)]
    pub jwt_jwks_refresh: Duration,
    /// Required `iss`.
    #[arg(long, env = "MENO_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required `aud`.
    #[arg(long, env = "MENO_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Clock-skew leeway for `exp` and `nbf`.
    #[arg(long, env = "MENO_JWT_LEEWAY", default_value = "30s", value_parser = humantime::parse_duration)]
    pub jwt_leeway: Duration,
    /// Claim holding the participant id.
    #[arg(long, env = "MENO_JWT_CLAIM_SUBJECT", default_value = "sub")]
    pub jwt_claim_subject: String,
    /// Claim holding the allowed session ids (a list, one id, or "*").
    #[arg(long, env = "MENO_JWT_CLAIM_SESSIONS", default_value = "sessions")]
    pub jwt_claim_sessions: String,
    /// Claim holding the role (a string, or a list such as cognito:groups).
    #[arg(long, env = "MENO_JWT_CLAIM_ROLE", default_value = "role")]
    pub jwt_claim_role: String,
    /// Claim holding the display name.
    #[arg(long, env = "MENO_JWT_CLAIM_NAME", default_value = "name")]
    pub jwt_claim_name: String,
    /// Claim holding the tenant.
    #[arg(long, env = "MENO_JWT_CLAIM_TENANT", default_value = "tenant")]
    pub jwt_claim_tenant: String,
    /// Role mapping of claim values, e.g. "teachers=teacher,students=student".
    #[arg(long, env = "MENO_JWT_ROLE_MAP", default_value = "")]
    pub jwt_role_map: String,
    /// Browser origins allowed to open WebSockets (comma-separated); empty: any.
    #[arg(long, env = "MENO_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// PEM certificate chain: serve https/wss.
    #[arg(long, env = "MENO_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "MENO_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// File holding the bearer token the bridge presents to the core.
    #[arg(long, env = "MENO_GRPC_TOKEN_FILE")]
    pub grpc_token_file: Option<PathBuf>,
    /// PEM CA certificate to trust for an https:// --core.
    #[arg(long, env = "MENO_CORE_TLS_CA")]
    pub core_tls_ca: Option<PathBuf>,
    /// Largest chat content, in bytes.
    #[arg(long, env = "MENO_MAX_CONTENT_BYTES", default_value_t = 16 * 1024)]
    pub max_content_bytes: usize,
    /// Largest `meta`/`extra` JSON, in bytes.
    #[arg(long, env = "MENO_MAX_META_BYTES", default_value_t = 8 * 1024)]
    pub max_meta_bytes: usize,
    /// Deepest JSON nesting of a client envelope.
    #[arg(long, env = "MENO_MAX_JSON_DEPTH", default_value_t = 16)]
    pub max_json_depth: usize,
    /// Sustained client messages per second per connection.
    #[arg(long, env = "MENO_MESSAGES_PER_SECOND", default_value_t = 20.0)]
    pub messages_per_second: f64,
    /// Client messages a connection may send in a burst.
    #[arg(long, env = "MENO_MESSAGE_BURST", default_value_t = 40)]
    pub message_burst: u32,
    /// Open connections per participant.
    #[arg(
        long,
        env = "MENO_MAX_CONNECTIONS_PER_PARTICIPANT",
        default_value_t = 10
    )]
    pub max_connections_per_participant: usize,
    /// Open connections per client IP.
    #[arg(long, env = "MENO_MAX_CONNECTIONS_PER_IP", default_value_t = 1000)]
    pub max_connections_per_ip: usize,
    /// Open connections on this bridge.
    #[arg(long, env = "MENO_MAX_CONNECTIONS", default_value_t = 18_000)]
    pub max_connections: usize,
    /// Sustained WebSocket upgrades per second per client IP (0: no limit);
    /// more are refused with HTTP 429 and Retry-After.
    #[arg(long, env = "MENO_CONNECTS_PER_SECOND_PER_IP", default_value_t = 20.0)]
    pub connects_per_second_per_ip: f64,
    /// Upgrades one client IP may make in a burst above that rate.
    #[arg(long, env = "MENO_CONNECT_BURST_PER_IP", default_value_t = 100)]
    pub connect_burst_per_ip: u32,
    /// Proxies (addresses or CIDR ranges, comma-separated) whose
    /// `X-Forwarded-For` names the client's address; from any other peer
    /// the header is ignored.
    #[arg(long, env = "MENO_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
    /// How often the bridge refreshes its sockets in the connection
    /// registry (their TTL is the core's `--connection-registry-ttl`).
    #[arg(long, env = "MENO_REGISTRY_TOUCH_INTERVAL", default_value = "2m", value_parser = humantime::parse_duration)]
    pub registry_touch_interval: Duration,
    /// ICE servers for `GET /api/config/webrtc`, comma-separated `stun:`,
    /// `turn:` and `turns:` URLs (default: the seed's public STUN servers).
    #[arg(long, env = "MENO_ICE_SERVERS", value_delimiter = ',')]
    pub ice_servers: Vec<String>,
    /// A file holding coturn's `static-auth-secret`: TURN credentials are
    /// minted per request with it (`use-auth-secret`).
    #[arg(long, env = "MENO_TURN_SECRET_FILE")]
    pub turn_secret_file: Option<std::path::PathBuf>,
    /// How long a minted TURN credential is valid.
    #[arg(long, env = "MENO_TURN_CREDENTIAL_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub turn_credential_ttl: Duration,
    /// This bridge's id in connection rows (default: a random one).
    #[arg(long, env = "MENO_BRIDGE_ID")]
    pub bridge_id: Option<String>,
    /// Log as JSON lines.
    #[arg(long, env = "MENO_LOG_JSON", default_value_t = false)]
    pub log_json: bool,
    /// OTLP trace export.
    #[command(flatten)]
    pub traces: meno_common::telemetry::TraceArgs,
}

/// What the bridge's tasks read: validated, shared.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// The WebSocket path.
    pub ws_path: String,
    /// Per-socket outbound queue bound, in bytes.
    pub outbound_queue_bytes: usize,
    /// Connection refresh interval.
    pub refresh_interval: Duration,
    /// Deadline of unary calls to the core.
    pub core_timeout: Duration,
    /// Server ping interval.
    pub ping_interval: Duration,
    /// Silence after which a socket is dead.
    pub idle_timeout: Duration,
    /// Longest closing handshake.
    pub close_timeout: Duration,
    /// Longest time from accept to a completed upgrade.
    pub handshake_timeout: Duration,
    /// Envelope limits.
    pub limits: Limits,
    /// tungstenite's hard message limit.
    pub max_message_bytes: usize,
    /// This bridge's id.
    pub bridge_id: String,
    /// The token verifier in jwt mode; `None`: the query is trusted.
    pub auth: Option<Authenticator>,
    /// Allowed browser origins; empty: any.
    pub allowed_origins: Vec<String>,
    /// Message rate and connection caps.
    pub rate_limits: LimitsConfig,
    /// ICE servers and TURN credentials for `/api/config/webrtc`.
    pub ice: crate::ice::IceConfig,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: crate::client_ip::TrustedProxies,
    /// Registry refresh interval.
    pub registry_touch_interval: Duration,
    /// How sessions stream their events from the core (no flag: a core
    /// without `SubscribeMany` switches the bridge to per-session streams).
    pub session_streams: SessionStreams,
}

/// How a bridge's sessions stream their events from the core.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SessionStreams {
    /// One `SubscribeMany` stream per core replica for every session.
    #[default]
    Shared,
    /// A `Subscribe` stream per session: what a core older than
    /// `SubscribeMany` serves.
    PerSession,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        Self {
            ws_path: "/ws".into(),
            outbound_queue_bytes: 1024 * 1024,
            refresh_interval: Duration::from_secs(20),
            core_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(50),
            close_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(5),
            limits: Limits::default(),
            max_message_bytes: 1024 * 1024,
            bridge_id: format!("bridge-{}", uuid::Uuid::now_v7().simple()),
            auth: None,
            allowed_origins: Vec::new(),
            rate_limits: LimitsConfig::default(),
            ice: crate::ice::IceConfig::default(),
            trusted_proxies: crate::client_ip::TrustedProxies::default(),
            registry_touch_interval: Duration::from_secs(120),
            session_streams: SessionStreams::Shared,
        }
    }
}

impl BridgeArgs {
    /// Validates the flags into a [`BridgeConfig`].
    pub fn bridge_config(&self) -> Result<BridgeConfig, ConfigError> {
        let invalid = |setting: &'static str, reason: &str| ConfigError {
            setting,
            reason: reason.to_owned(),
        };
        if !self.ws_path.starts_with('/') {
            return Err(invalid("--ws-path", "must start with '/'"));
        }
        if self.outbound_queue_bytes < 4096 {
            return Err(invalid("--outbound-queue-bytes", "must be at least 4096"));
        }
        if self.refresh_interval.is_zero() {
            return Err(invalid("--refresh-interval", "must be greater than zero"));
        }
        if self.ping_interval.is_zero() || self.idle_timeout <= self.ping_interval {
            return Err(invalid(
                "--idle-timeout",
                "must be longer than --ping-interval (which must be positive)",
            ));
        }
        if self.max_envelope_bytes > self.max_message_bytes {
            return Err(invalid(
                "--max-envelope-bytes",
                "must not exceed --max-message-bytes",
            ));
        }
        if self.handshake_timeout.is_zero() {
            return Err(invalid("--handshake-timeout", "must be greater than zero"));
        }
        if !self.connects_per_second_per_ip.is_finite() || self.connects_per_second_per_ip < 0.0 {
            return Err(invalid(
                "--connects-per-second-per-ip",
                "must be a number, 0 (no limit) or more",
            ));
        }
        if self.connects_per_second_per_ip > 0.0 && self.connect_burst_per_ip == 0 {
            return Err(invalid(
                "--connect-burst-per-ip",
                "must be at least 1 when --connects-per-second-per-ip is set",
            ));
        }
        if self.turn_credential_ttl.is_zero() {
            return Err(invalid(
                "--turn-credential-ttl",
                "must be greater than zero",
            ));
        }
        let turn_secret = match &self.turn_secret_file {
            Some(path) => Some(std::fs::read(path).map_err(|err| ConfigError {
                setting: "--turn-secret-file",
                reason: format!("cannot read {}: {err}", path.display()),
            })?),
            None => None,
        };
        let ice =
            crate::ice::IceConfig::new(&self.ice_servers, turn_secret, self.turn_credential_ttl)
                .map_err(|err| ConfigError {
                    setting: "--ice-servers",
                    reason: err.to_string(),
                })?;
        let trusted_proxies = crate::client_ip::TrustedProxies::parse(&self.trusted_proxies)
            .map_err(|reason| ConfigError {
                setting: "--trusted-proxies",
                reason,
            })?;
        if self.registry_touch_interval.is_zero() {
            return Err(invalid(
                "--registry-touch-interval",
                "must be greater than zero",
            ));
        }
        let defaults = BridgeConfig::default();
        Ok(BridgeConfig {
            ws_path: self.ws_path.clone(),
            outbound_queue_bytes: self.outbound_queue_bytes,
            refresh_interval: self.refresh_interval,
            core_timeout: self.core_timeout,
            ping_interval: self.ping_interval,
            idle_timeout: self.idle_timeout,
            close_timeout: self.close_timeout,
            handshake_timeout: self.handshake_timeout,
            limits: Limits {
                max_envelope_bytes: self.max_envelope_bytes,
                max_content_bytes: self.max_content_bytes,
                max_meta_bytes: self.max_meta_bytes,
                max_json_depth: self.max_json_depth,
                ..Limits::default()
            },
            max_message_bytes: self.max_message_bytes,
            bridge_id: self.bridge_id.clone().unwrap_or(defaults.bridge_id),
            auth: self.authenticator()?,
            allowed_origins: self
                .allowed_origins
                .iter()
                .map(|origin| origin.trim().trim_end_matches('/').to_owned())
                .filter(|origin| !origin.is_empty())
                .collect(),
            rate_limits: LimitsConfig {
                messages_per_second: self.messages_per_second,
                message_burst: self.message_burst,
                max_connections_per_participant: self.max_connections_per_participant,
                max_connections_per_ip: self.max_connections_per_ip,
                max_connections: self.max_connections,
                connects_per_second_per_ip: self.connects_per_second_per_ip,
                connect_burst_per_ip: self.connect_burst_per_ip,
                ..LimitsConfig::default()
            },
            ice,
            trusted_proxies,
            registry_touch_interval: self.registry_touch_interval,
            session_streams: SessionStreams::Shared,
        })
    }

    fn authenticator(&self) -> Result<Option<Authenticator>, ConfigError> {
        let invalid = |setting: &'static str, reason: String| ConfigError { setting, reason };
        if self.auth == AuthMode::None {
            return Ok(None);
        }
        let keys =
            match (
                &self.jwt_hs256_secret_file,
                &self.jwt_jwks_file,
                &self.jwt_jwks_url,
            ) {
                (Some(path), None, None) => {
                    let secret = std::fs::read(path).map_err(|err| {
                        invalid(
                            "--jwt-hs256-secret-file",
                            format!("{}: {err}", path.display()),
                        )
                    })?;
                    let secret = secret.trim_ascii().to_vec();
                    if secret.len() < 32 {
                        return Err(invalid(
                            "--jwt-hs256-secret-file",
                            "the secret must be at least 32 bytes".into(),
                        ));
                    }
                    KeySource::Hs256Secret(secret)
                }
                (None, Some(path), None) => KeySource::JwksFile(path.clone()),
                (None, None, Some(url)) => KeySource::JwksUrl(url.clone()),
                _ => return Err(invalid(
                    "--auth jwt",
                    "give exactly one of --jwt-hs256-secret-file, --jwt-jwks-file, --jwt-jwks-url"
                        .into(),
                )),
            };
        let role_map = crate::auth::parse_role_map(&self.jwt_role_map)
            .map_err(|reason| invalid("--jwt-role-map", reason))?;
        Ok(Some(Authenticator::new(JwtConfig {
            keys,
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            leeway: self.jwt_leeway,
            claims: ClaimNames {
                subject: self.jwt_claim_subject.clone(),
                sessions: self.jwt_claim_sessions.clone(),
                role: self.jwt_claim_role.clone(),
                name: self.jwt_claim_name.clone(),
                tenant: self.jwt_claim_tenant.clone(),
            },
            role_map,
            jwks_refresh: self.jwt_jwks_refresh,
        })))
    }
}
