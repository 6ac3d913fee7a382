//! The core's settings: one typed struct, built from flags and `MENO_*`
//! environment variables in one place and validated once at start-up.

use std::path::PathBuf;
use std::time::Duration;

mod scylla;

pub use self::scylla::{ConsistencyArg, ScyllaArgs, SerialConsistencyArg};

/// Which `Store` backs the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// Durable, in `--data-dir` (the default).
    Embedded,
    /// In memory: lost on exit; for tests and benchmarks.
    Memory,
    /// ScyllaDB or Apache Cassandra (`--scylla-*` flags).
    Scylla,
}

/// Which engine the embedded store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EmbeddedEngine {
    /// fjall when the data directory has no redb file (`meno.redb`), else
    /// redb: an existing store keeps its engine (the default).
    Auto,
    /// fjall, log-structured (`fjall/` in the data directory).
    Fjall,
    /// redb, a copy-on-write B-tree (`meno.redb` in the data directory).
    Redb,
}

/// How long a call keeps its users busy (seed 004's `user:call:*` TTL).
pub const DEFAULT_CALL_BUSY_TTL: Duration = Duration::from_secs(300);

/// How long a connection registry row lives unless its bridge refreshes it
/// (seed 001's DynamoDB TTL: 10 minutes).
pub const DEFAULT_CONNECTION_REGISTRY_TTL: Duration = Duration::from_secs(600);

/// Work items buffered per attached backend before `Submit` answers
/// "backend busy".
pub const DEFAULT_BACKEND_BUFFER: usize = 256;

/// Session policy and tuning, shared by every session actor.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    /// A connection not refreshed for this long is gone.
    pub presence_ttl: Duration,
    /// After an abnormal close, how long a participant shows `reconnecting`.
    pub reconnect_grace: Duration,
    /// `isTyping` clears itself after this long without renewal.
    pub typing_timeout: Duration,
    /// Lease duration when a request names none.
    pub lease_default_duration: Duration,
    /// Longest lease a request may get.
    pub lease_max_duration: Duration,
    /// Whether observers may send chat messages.
    pub observers_may_chat: bool,
    /// Chat messages sent on connect (`chat.sync`).
    pub history_sync_limit: usize,
    /// Recent events kept for `from_seq` and `lastSeq` resume.
    pub ring_capacity: usize,
    /// Seqs reserved durably at a time.
    pub seq_block: u64,
    /// Commands drained into one batch (one store write).
    pub max_batch: usize,
    /// How often an actor checks TTLs and expiries.
    pub tick_interval: Duration,
    /// An actor with no connections, subscribers or commands stops after this.
    pub idle_timeout: Duration,
    /// How long presence changes may wait before they are written behind.
    pub presence_flush_interval: Duration,
    /// Events buffered per subscriber before it must resync.
    pub subscriber_buffer: usize,
    /// Most chat messages replayed from history on resume.
    pub resume_limit: usize,
    /// Most active sessions one tenant may have on this core.
    pub max_sessions_per_tenant: usize,
    /// How long an offer or an answer keeps a user busy in a call unless
    /// renewed or ended (seed 004: 300 s).
    pub call_busy_ttl: Duration,
    /// User events buffered per bridge stream before the stream is ended.
    pub user_stream_buffer: usize,
    /// How long a connection registry row lives unless refreshed.
    pub connection_registry_ttl: Duration,
    /// Work items buffered per attached backend.
    pub backend_buffer: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            presence_ttl: Duration::from_secs(60),
            reconnect_grace: Duration::from_secs(15),
            typing_timeout: Duration::from_secs(5),
            lease_default_duration: Duration::from_secs(60),
            lease_max_duration: Duration::from_secs(600),
            observers_may_chat: false,
            history_sync_limit: 100,
            ring_capacity: 1024,
            seq_block: 1024,
            max_batch: 256,
            tick_interval: Duration::from_millis(250),
            idle_timeout: Duration::from_secs(120),
            presence_flush_interval: Duration::from_secs(1),
            subscriber_buffer: 4096,
            resume_limit: 1000,
            max_sessions_per_tenant: 10_000,
            call_busy_ttl: DEFAULT_CALL_BUSY_TTL,
            user_stream_buffer: 1024,
            connection_registry_ttl: DEFAULT_CONNECTION_REGISTRY_TTL,
            backend_buffer: DEFAULT_BACKEND_BUFFER,
        }
    }
}

/// Flags of the core, shared by `meno-core` and by `meno-bridge` in
/// monolithic mode (which hosts a core in-process).
#[derive(Debug, Clone, clap::Args)]
pub struct CoreArgs {
    /// Store backend.
    #[arg(long, env = "MENO_STORE", value_enum, default_value = "embedded")]
    pub store: StoreKind,
    /// Directory of the embedded store.
    #[arg(long, env = "MENO_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Engine of the embedded store: `auto` keeps the engine a data
    /// directory already has and starts new ones on fjall.
    #[arg(long, env = "MENO_EMBEDDED_ENGINE", value_enum, default_value = "auto")]
    pub embedded_engine: EmbeddedEngine,
    /// A connection not refreshed for this long is gone (e.g. "60s").
    #[arg(long, env = "MENO_PRESENCE_TTL", default_value = "60s", value_parser = humantime::parse_duration)]
    pub presence_ttl: Duration,
    /// How long a participant shows `reconnecting` after an abnormal close.
    #[arg(long, env = "MENO_RECONNECT_GRACE", default_value = "15s", value_parser = humantime::parse_duration)]
    pub reconnect_grace: Duration,
    /// `isTyping` clears itself after this long without renewal.
    #[arg(long, env = "MENO_TYPING_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub typing_timeout: Duration,
    /// Lease duration when `control.lease.set` names none.
    #[arg(long, env = "MENO_LEASE_DEFAULT_DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub lease_default_duration: Duration,
    /// Longest lease a request may get.
    #[arg(long, env = "MENO_LEASE_MAX_DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    pub lease_max_duration: Duration,
    /// Let observers send chat messages.
    #[arg(long, env = "MENO_OBSERVERS_MAY_CHAT", default_value_t = false)]
    pub observers_may_chat: bool,
    /// Chat messages sent on connect in `chat.sync`.
    #[arg(long, env = "MENO_HISTORY_SYNC_LIMIT", default_value_t = 100)]
    pub history_sync_limit: usize,
    /// Recent events kept per session for resume.
    #[arg(long, env = "MENO_RING_CAPACITY", default_value_t = 1024)]
    pub ring_capacity: usize,
    /// Most active sessions per tenant.
    #[arg(long, env = "MENO_MAX_SESSIONS_PER_TENANT", default_value_t = 10_000)]
    pub max_sessions_per_tenant: usize,
    /// An idle session's actor stops after this long.
    #[arg(long, env = "MENO_SESSION_IDLE_TIMEOUT", default_value = "2m", value_parser = humantime::parse_duration)]
    pub session_idle_timeout: Duration,
    /// How long an offer or answer keeps a user busy in a call (e.g. "300s").
    #[arg(long, env = "MENO_CALL_BUSY_TTL", default_value = "300s", value_parser = humantime::parse_duration)]
    pub call_busy_ttl: Duration,
    /// How long a connection registry row lives unless its bridge refreshes
    /// it (`Touch`), e.g. "10m".
    #[arg(long, env = "MENO_CONNECTION_REGISTRY_TTL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub connection_registry_ttl: Duration,
    /// Work items buffered per attached backend; a full buffer answers
    /// `Submit` with a retryable "backend busy".
    #[arg(long, env = "MENO_BACKEND_BUFFER", default_value_t = DEFAULT_BACKEND_BUFFER)]
    pub backend_buffer: usize,
    /// Settings of `--store scylla`.
    #[command(flatten)]
    pub scylla: ScyllaArgs,
}

pub use meno_common::config::ConfigError;

impl CoreArgs {
    /// Validates the flags and builds the session configuration.
    pub fn session_config(&self) -> Result<SessionConfig, ConfigError> {
        let positive = |setting: &'static str, value: Duration| {
            if value.is_zero() {
                Err(ConfigError {
                    setting,
                    reason: "must be greater than zero".into(),
                })
            } else {
                Ok(value)
            }
        };
        if self.lease_default_duration > self.lease_max_duration {
            return Err(ConfigError {
                setting: "--lease-default-duration",
                reason: "must not exceed --lease-max-duration".into(),
            });
        }
        if self.ring_capacity == 0 {
            return Err(ConfigError {
                setting: "--ring-capacity",
                reason: "must be at least 1".into(),
            });
        }
        if self.backend_buffer == 0 {
            return Err(ConfigError {
                setting: "--backend-buffer",
                reason: "must be at least 1".into(),
            });
        }
        Ok(SessionConfig {
            presence_ttl: positive("--presence-ttl", self.presence_ttl)?,
            reconnect_grace: self.reconnect_grace,
            typing_timeout: positive("--typing-timeout", self.typing_timeout)?,
            lease_default_duration: positive(
                "--lease-default-duration",
                self.lease_default_duration,
            )?,
            lease_max_duration: positive("--lease-max-duration", self.lease_max_duration)?,
            observers_may_chat: self.observers_may_chat,
            history_sync_limit: self.history_sync_limit,
            ring_capacity: self.ring_capacity,
            idle_timeout: positive("--session-idle-timeout", self.session_idle_timeout)?,
            max_sessions_per_tenant: self.max_sessions_per_tenant,
            call_busy_ttl: positive("--call-busy-ttl", self.call_busy_ttl)?,
            connection_registry_ttl: positive(
                "--connection-registry-ttl",
                self.connection_registry_ttl,
            )?,
            backend_buffer: self.backend_buffer,
            ..SessionConfig::default()
        })
    }
}
