//! The `--scylla-*` flags (each also a `MENO_SCYLLA_*` variable), parsed by
//! clap and turned into a validated [`ScyllaConfig`] in one place.

use std::path::PathBuf;
use std::time::Duration;

use scylla::statement::{Consistency, SerialConsistency};

use super::ConfigError;
use crate::store::scylla::config::{
    DatabaseFlavor, KeyspaceOptions, ReplicationStrategy, ScyllaConfig, TableNames,
};

/// Consistency of plain reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConsistencyArg {
    /// LOCAL_QUORUM (default).
    LocalQuorum,
    /// QUORUM across datacenters.
    Quorum,
    /// EACH_QUORUM (writes).
    EachQuorum,
    /// LOCAL_ONE.
    LocalOne,
    /// ONE.
    One,
    /// ALL.
    All,
}

impl From<ConsistencyArg> for Consistency {
    fn from(arg: ConsistencyArg) -> Self {
        match arg {
            ConsistencyArg::LocalQuorum => Consistency::LocalQuorum,
            ConsistencyArg::Quorum => Consistency::Quorum,
            ConsistencyArg::EachQuorum => Consistency::EachQuorum,
            ConsistencyArg::LocalOne => Consistency::LocalOne,
            ConsistencyArg::One => Consistency::One,
            ConsistencyArg::All => Consistency::All,
        }
    }
}

/// Consistency of the Paxos phase of lightweight transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SerialConsistencyArg {
    /// LOCAL_SERIAL (default).
    LocalSerial,
    /// SERIAL across datacenters.
    Serial,
}

impl From<SerialConsistencyArg> for SerialConsistency {
    fn from(arg: SerialConsistencyArg) -> Self {
        match arg {
            SerialConsistencyArg::LocalSerial => SerialConsistency::LocalSerial,
            SerialConsistencyArg::Serial => SerialConsistency::Serial,
        }
    }
}

/// Settings of the ScyllaDB / Cassandra store (`--store scylla`) and of
/// `meno-core migrate`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScyllaArgs {
    /// Contact points, `host:port`, comma-separated.
    #[arg(
        long,
        env = "MENO_SCYLLA_NODES",
        value_delimiter = ',',
        default_value = "127.0.0.1:9042"
    )]
    pub scylla_nodes: Vec<String>,
    /// Keyspace of every table.
    #[arg(long, env = "MENO_SCYLLA_KEYSPACE", default_value = "meno")]
    pub scylla_keyspace: String,
    /// User name, when the cluster authenticates.
    #[arg(long, env = "MENO_SCYLLA_USER", requires = "scylla_password_file")]
    pub scylla_user: Option<String>,
    /// File holding the password (trailing newline ignored).
    #[arg(long, env = "MENO_SCYLLA_PASSWORD_FILE", requires = "scylla_user")]
    pub scylla_password_file: Option<PathBuf>,
    /// PEM file of the CA of the nodes' certificates; enables TLS.
    #[arg(long, env = "MENO_SCYLLA_TLS_CA")]
    pub scylla_tls_ca: Option<PathBuf>,
    /// Consistency of reads and writes.
    #[arg(
        long,
        env = "MENO_SCYLLA_CONSISTENCY",
        value_enum,
        default_value = "local-quorum"
    )]
    pub scylla_consistency: ConsistencyArg,
    /// Serial consistency of the lease's lightweight transactions.
    #[arg(
        long,
        env = "MENO_SCYLLA_SERIAL_CONSISTENCY",
        value_enum,
        default_value = "local-serial"
    )]
    pub scylla_serial_consistency: SerialConsistencyArg,
    /// Datacenter to route to (token-aware within it); any when absent.
    #[arg(long, env = "MENO_SCYLLA_LOCAL_DC")]
    pub scylla_local_dc: Option<String>,
    /// Deadline of one request, retries included.
    #[arg(long, env = "MENO_SCYLLA_REQUEST_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub scylla_request_timeout: Duration,
    /// Deadline of opening a connection.
    #[arg(long, env = "MENO_SCYLLA_CONNECT_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub scylla_connect_timeout: Duration,
    /// TTL of presence rows: how long a quiet session's roster is kept.
    #[arg(long, env = "MENO_SCYLLA_PRESENCE_ROW_TTL", default_value = "7days", value_parser = humantime::parse_duration)]
    pub scylla_presence_row_ttl: Duration,
    /// Table of sessions (seed 002 SessionTableName).
    #[arg(long, env = "MENO_SCYLLA_TABLE_SESSIONS", default_value = "sessions")]
    pub scylla_table_sessions: String,
    /// Table of control leases.
    #[arg(long, env = "MENO_SCYLLA_TABLE_LEASE", default_value = "lease")]
    pub scylla_table_lease: String,
    /// Table of chat messages (seed 002 ChatTableName).
    #[arg(long, env = "MENO_SCYLLA_TABLE_CHAT", default_value = "chat_messages")]
    pub scylla_table_chat: String,
    /// Table of the chat buckets of each session.
    #[arg(
        long,
        env = "MENO_SCYLLA_TABLE_CHAT_BUCKETS",
        default_value = "chat_buckets"
    )]
    pub scylla_table_chat_buckets: String,
    /// Table of the client_ref dedupe index.
    #[arg(
        long,
        env = "MENO_SCYLLA_TABLE_CHAT_BY_CLIENT_REF",
        default_value = "chat_by_client_ref"
    )]
    pub scylla_table_chat_by_client_ref: String,
    /// Table of the per-sender idempotency index (sender, client_ref) -> seq;
    /// migration 0002 fills it from the client_ref index.
    #[arg(
        long,
        env = "MENO_SCYLLA_TABLE_CHAT_BY_SENDER_REF",
        default_value = "chat_by_sender_ref"
    )]
    pub scylla_table_chat_by_sender_ref: String,
    /// Table of presence (seed 002 PresenceTableName).
    #[arg(long, env = "MENO_SCYLLA_TABLE_PRESENCE", default_value = "presence")]
    pub scylla_table_presence: String,
    /// Table of connections (seed 002 ConnectionsTableName).
    #[arg(
        long,
        env = "MENO_SCYLLA_TABLE_CONNECTIONS",
        default_value = "connections"
    )]
    pub scylla_table_connections: String,
    /// Table of connections by user.
    #[arg(
        long,
        env = "MENO_SCYLLA_TABLE_CONNECTIONS_BY_USER",
        default_value = "connections_by_user"
    )]
    pub scylla_table_connections_by_user: String,
    /// Table of read positions (seed 004's ACK).
    #[arg(
        long,
        env = "MENO_SCYLLA_TABLE_READ_POSITIONS",
        default_value = "read_positions"
    )]
    pub scylla_table_read_positions: String,
    /// Table of the message-id index (tenant, message_id) -> session, seq.
    #[arg(
        long,
        env = "MENO_SCYLLA_TABLE_CHAT_BY_ID",
        default_value = "chat_by_id"
    )]
    pub scylla_table_chat_by_id: String,
    /// Table of the connection registry (issue 16), by connection.
    #[arg(
        long,
        env = "MENO_SCYLLA_TABLE_CONNECTION_REGISTRY",
        default_value = "connection_registry"
    )]
    pub scylla_table_connection_registry: String,
    /// Connection registry lookup by session.
    #[arg(
        long,
        env = "MENO_SCYLLA_TABLE_CONNECTION_REGISTRY_BY_SESSION",
        default_value = "connection_registry_by_session"
    )]
    pub scylla_table_connection_registry_by_session: String,
    /// Connection registry lookup by user.
    #[arg(
        long,
        env = "MENO_SCYLLA_TABLE_CONNECTION_REGISTRY_BY_USER",
        default_value = "connection_registry_by_user"
    )]
    pub scylla_table_connection_registry_by_user: String,
    /// Table of the core replicas' liveness leases (several replicas).
    #[arg(
        long,
        env = "MENO_SCYLLA_TABLE_CORE_REPLICAS",
        default_value = "core_replicas"
    )]
    pub scylla_table_core_replicas: String,
    /// Table of the sessions' owners (several replicas).
    #[arg(
        long,
        env = "MENO_SCYLLA_TABLE_SESSION_OWNERS",
        default_value = "session_owners"
    )]
    pub scylla_table_session_owners: String,
    /// Apply pending migrations at start-up (development; production runs
    /// `meno-core migrate` as a deploy step).
    #[arg(long, env = "MENO_MIGRATE", default_value_t = false)]
    pub migrate: bool,
    /// Create the keyspace when it does not exist (with `migrate`).
    #[arg(long, env = "MENO_CREATE_KEYSPACE", default_value_t = false)]
    pub create_keyspace: bool,
    /// Replication strategy of a created keyspace.
    #[arg(
        long,
        env = "MENO_REPLICATION_STRATEGY",
        value_enum,
        default_value = "simple"
    )]
    pub replication_strategy: ReplicationStrategy,
    /// Datacenter of `--replication-strategy network-topology`.
    #[arg(long, env = "MENO_REPLICATION_DATACENTER")]
    pub replication_datacenter: Option<String>,
    /// Replicas of a created keyspace (per datacenter).
    #[arg(long, env = "MENO_REPLICATION_FACTOR", default_value_t = 1)]
    pub replication_factor: u32,
    /// On ScyllaDB, create the keyspace with tablets (default: vnodes, since
    /// the lease uses LWT).
    #[arg(long, env = "MENO_SCYLLA_TABLETS", default_value_t = false)]
    pub scylla_tablets: bool,
    /// Which database the cluster runs (auto: ask it).
    #[arg(long, env = "MENO_DATABASE_FLAVOR", value_enum, default_value = "auto")]
    pub database_flavor: DatabaseFlavor,
}

impl ScyllaArgs {
    /// The validated store configuration; reads the password file.
    pub fn config(&self) -> Result<ScyllaConfig, ConfigError> {
        let credentials = match (&self.scylla_user, &self.scylla_password_file) {
            (Some(user), Some(file)) => {
                let password = std::fs::read_to_string(file).map_err(|err| ConfigError {
                    setting: "--scylla-password-file",
                    reason: format!("cannot read {}: {err}", file.display()),
                })?;
                Some((
                    user.clone(),
                    password.trim_end_matches(['\r', '\n']).to_owned(),
                ))
            }
            _ => None,
        };
        let config = ScyllaConfig {
            nodes: self
                .scylla_nodes
                .iter()
                .map(|node| node.trim().to_owned())
                .filter(|node| !node.is_empty())
                .collect(),
            keyspace: self.scylla_keyspace.clone(),
            tables: TableNames {
                sessions: self.scylla_table_sessions.clone(),
                lease: self.scylla_table_lease.clone(),
                chat_messages: self.scylla_table_chat.clone(),
                chat_buckets: self.scylla_table_chat_buckets.clone(),
                chat_by_client_ref: self.scylla_table_chat_by_client_ref.clone(),
                chat_by_sender_ref: self.scylla_table_chat_by_sender_ref.clone(),
                presence: self.scylla_table_presence.clone(),
                connections: self.scylla_table_connections.clone(),
                connections_by_user: self.scylla_table_connections_by_user.clone(),
                read_positions: self.scylla_table_read_positions.clone(),
                chat_by_id: self.scylla_table_chat_by_id.clone(),
                connection_registry: self.scylla_table_connection_registry.clone(),
                connection_registry_by_session: self
                    .scylla_table_connection_registry_by_session
                    .clone(),
                connection_registry_by_user: self.scylla_table_connection_registry_by_user.clone(),
                core_replicas: self.scylla_table_core_replicas.clone(),
                session_owners: self.scylla_table_session_owners.clone(),
            },
            credentials,
            tls_ca: self.scylla_tls_ca.clone(),
            consistency: self.scylla_consistency.into(),
            serial_consistency: self.scylla_serial_consistency.into(),
            local_datacenter: self.scylla_local_dc.clone(),
            request_timeout: self.scylla_request_timeout,
            connect_timeout: self.scylla_connect_timeout,
            presence_row_ttl: self.scylla_presence_row_ttl,
            migrate_on_start: self.migrate,
            create_keyspace: self.create_keyspace.then(|| KeyspaceOptions {
                strategy: self.replication_strategy,
                datacenter: self.replication_datacenter.clone(),
                replication_factor: self.replication_factor,
                tablets: self.scylla_tablets,
                flavor: self.database_flavor,
            }),
        };
        config
            .validate()
            .map_err(|(setting, reason)| ConfigError { setting, reason })?;
        if let Some(ca) = &config.tls_ca {
            if !ca.is_file() {
                return Err(ConfigError {
                    setting: "--scylla-tls-ca",
                    reason: format!("{} is not a file", ca.display()),
                });
            }
        }
        Ok(config)
    }
}
