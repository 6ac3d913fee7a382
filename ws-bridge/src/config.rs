//! The bridge's settings: flags and `MENO_*` variables, parsed and validated
//! in one place.

use std::net::SocketAddr;
use std::time::Duration;

use meno_core::config::CoreArgs;

use crate::codec::Limits;

/// `meno-bridge` command line.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "meno-bridge",
    version,
    about = "meno-realtime ws-bridge: the WebSocket edge. \
Without --core it hosts the core in the same process (monolithic mode)."
)]
pub struct BridgeArgs {
    /// HTTP/WebSocket listen address.
    #[arg(long, env = "MENO_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The core's gRPC URL (e.g. http://core:50051). Absent: monolithic mode.
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
    /// Largest client envelope answered with an error rather than a close.
    #[arg(long, env = "MENO_MAX_ENVELOPE_BYTES", default_value_t = 64 * 1024)]
    pub max_envelope_bytes: usize,
    /// Largest WebSocket message read at all; larger ones close with 1009.
    #[arg(long, env = "MENO_MAX_MESSAGE_BYTES", default_value_t = 1024 * 1024)]
    pub max_message_bytes: usize,
    /// Longest wait for sockets and in-flight calls on SIGTERM/SIGINT.
    #[arg(long, env = "MENO_DRAIN_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// This bridge's id in connection rows (default: a random one).
    #[arg(long, env = "MENO_BRIDGE_ID")]
    pub bridge_id: Option<String>,
    /// Log as JSON lines.
    #[arg(long, env = "MENO_LOG_JSON", default_value_t = false)]
    pub log_json: bool,
    /// Settings of the in-process core (monolithic mode only).
    #[command(flatten)]
    pub core_args: CoreArgs,
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
    /// Envelope limits.
    pub limits: Limits,
    /// tungstenite's hard message limit.
    pub max_message_bytes: usize,
    /// This bridge's id.
    pub bridge_id: String,
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
            limits: Limits::default(),
            max_message_bytes: 1024 * 1024,
            bridge_id: format!("bridge-{}", uuid::Uuid::now_v7().simple()),
        }
    }
}

impl BridgeArgs {
    /// Validates the flags into a [`BridgeConfig`].
    pub fn bridge_config(&self) -> Result<BridgeConfig, meno_core::config::ConfigError> {
        let invalid = |setting: &'static str, reason: &str| meno_core::config::ConfigError {
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
        let defaults = BridgeConfig::default();
        Ok(BridgeConfig {
            ws_path: self.ws_path.clone(),
            outbound_queue_bytes: self.outbound_queue_bytes,
            refresh_interval: self.refresh_interval,
            core_timeout: self.core_timeout,
            ping_interval: self.ping_interval,
            idle_timeout: self.idle_timeout,
            close_timeout: self.close_timeout,
            limits: Limits {
                max_envelope_bytes: self.max_envelope_bytes,
                ..Limits::default()
            },
            max_message_bytes: self.max_message_bytes,
            bridge_id: self.bridge_id.clone().unwrap_or(defaults.bridge_id),
        })
    }
}
