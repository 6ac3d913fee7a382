//! What a [`ScyllaStore`](super::ScyllaStore) needs to know about its cluster:
//! contact points, credentials, consistency, timeouts, and the names of the
//! keyspace and of every table (seed 002 passes table names as parameters).
//!
//! Plain data, validated on construction of its parts; the flags that fill it
//! live in `crate::config`. Names are checked here because they are pasted
//! into CQL: only `[A-Za-z][A-Za-z0-9_]{0,47}` is accepted.

use std::time::Duration;

use scylla::statement::{Consistency, SerialConsistency};

/// Table names, each a CQL identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    /// Session rows: step index and reserved seq mark.
    pub sessions: String,
    /// Lease rows, written only with LWT.
    pub lease: String,
    /// Chat messages in bounded partitions `((tenant, session_id, bucket), seq)`.
    pub chat_messages: String,
    /// Which chat buckets of a session hold messages, newest first.
    pub chat_buckets: String,
    /// client_ref -> seq: the index before idempotency was scoped by sender,
    /// no longer written; migration 0002 copies it into `chat_by_sender_ref`.
    pub chat_by_client_ref: String,
    /// (sender_id, client_ref) -> seq, written in the same logged batch as
    /// the message.
    pub chat_by_sender_ref: String,
    /// Presence rows, written whole with a TTL.
    pub presence: String,
    /// Connection rows per session, written whole with a TTL.
    pub connections: String,
    /// The same connections keyed by user, for directed delivery.
    pub connections_by_user: String,
    /// Read positions: ((tenant, session_id), user_id) -> message id, seq.
    pub read_positions: String,
    /// (tenant, message_id) -> session_id, seq, written in the same logged
    /// batch as the message.
    pub chat_by_id: String,
    /// The connection registry: ((tenant, connection_id)) -> the row,
    /// written whole with a TTL.
    pub connection_registry: String,
    /// Registry lookup ((tenant, session_id), connection_id).
    pub connection_registry_by_session: String,
    /// Registry lookup ((tenant, user_id), connection_id).
    pub connection_registry_by_user: String,
    /// Core replicas' liveness leases (migration 0005), LWT only.
    pub core_replicas: String,
    /// Each session's owner and fenced seq mark (migration 0005), LWT only.
    pub session_owners: String,
}

impl Default for TableNames {
    fn default() -> Self {
        Self {
            sessions: "sessions".into(),
            lease: "lease".into(),
            chat_messages: "chat_messages".into(),
            chat_buckets: "chat_buckets".into(),
            chat_by_client_ref: "chat_by_client_ref".into(),
            chat_by_sender_ref: "chat_by_sender_ref".into(),
            presence: "presence".into(),
            connections: "connections".into(),
            connections_by_user: "connections_by_user".into(),
            read_positions: "read_positions".into(),
            chat_by_id: "chat_by_id".into(),
            connection_registry: "connection_registry".into(),
            connection_registry_by_session: "connection_registry_by_session".into(),
            connection_registry_by_user: "connection_registry_by_user".into(),
            core_replicas: "core_replicas".into(),
            session_owners: "session_owners".into(),
        }
    }
}

impl TableNames {
    /// `(placeholder, name)` for every table, as the migration templates
    /// name them (`{{table.sessions}}`).
    pub fn placeholders(&self) -> [(&'static str, &str); 16] {
        [
            ("sessions", &self.sessions),
            ("lease", &self.lease),
            ("chat_messages", &self.chat_messages),
            ("chat_buckets", &self.chat_buckets),
            ("chat_by_client_ref", &self.chat_by_client_ref),
            ("chat_by_sender_ref", &self.chat_by_sender_ref),
            ("presence", &self.presence),
            ("connections", &self.connections),
            ("connections_by_user", &self.connections_by_user),
            ("read_positions", &self.read_positions),
            ("chat_by_id", &self.chat_by_id),
            ("connection_registry", &self.connection_registry),
            (
                "connection_registry_by_session",
                &self.connection_registry_by_session,
            ),
            (
                "connection_registry_by_user",
                &self.connection_registry_by_user,
            ),
            ("core_replicas", &self.core_replicas),
            ("session_owners", &self.session_owners),
        ]
    }

    /// Checks every name; `Err` names the table whose name is unusable.
    pub fn validate(&self) -> Result<(), String> {
        for (table, name) in self.placeholders() {
            validate_identifier(name).map_err(|why| format!("table {table}: {why}"))?;
        }
        // Unquoted CQL names are case-insensitive.
        let mut names: Vec<String> = self
            .placeholders()
            .iter()
            .map(|(_, name)| name.to_ascii_lowercase())
            .collect();
        names.sort_unstable();
        if names.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err("two tables have the same name".into());
        }
        Ok(())
    }
}

/// How `migrate` creates a keyspace that does not exist yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyspaceOptions {
    /// `SimpleStrategy` or `NetworkTopologyStrategy`.
    pub strategy: ReplicationStrategy,
    /// The datacenter of `NetworkTopologyStrategy`.
    pub datacenter: Option<String>,
    /// Replicas (per datacenter with `NetworkTopologyStrategy`).
    pub replication_factor: u32,
    /// Tablets on ScyllaDB: off unless asked, since the lease uses LWT.
    pub tablets: bool,
    /// Which database it is, or `Auto` to ask it.
    pub flavor: DatabaseFlavor,
}

impl Default for KeyspaceOptions {
    fn default() -> Self {
        Self {
            strategy: ReplicationStrategy::Simple,
            datacenter: None,
            replication_factor: 1,
            tablets: false,
            flavor: DatabaseFlavor::Auto,
        }
    }
}

/// A keyspace replication strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplicationStrategy {
    /// `SimpleStrategy`: one local node or a test cluster.
    Simple,
    /// `NetworkTopologyStrategy`: production.
    NetworkTopology,
}

/// Which CQL database the cluster runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DatabaseFlavor {
    /// Ask the cluster (`system.versions` exists only on ScyllaDB).
    Auto,
    /// ScyllaDB.
    Scylladb,
    /// Apache Cassandra.
    Cassandra,
}

/// Everything a [`ScyllaStore`](super::ScyllaStore) and `migrate` need.
#[derive(Debug, Clone)]
pub struct ScyllaConfig {
    /// Contact points, `host:port`.
    pub nodes: Vec<String>,
    /// The keyspace of every table.
    pub keyspace: String,
    /// Table names.
    pub tables: TableNames,
    /// User and password, when the cluster authenticates.
    pub credentials: Option<(String, String)>,
    /// PEM file of the CA that signs the nodes' certificates: TLS when set.
    pub tls_ca: Option<std::path::PathBuf>,
    /// Consistency of reads and writes.
    pub consistency: Consistency,
    /// Consistency of the Paxos phase of lightweight transactions.
    pub serial_consistency: SerialConsistency,
    /// Datacenter to prefer (token-aware routing within it).
    pub local_datacenter: Option<String>,
    /// Deadline of one request, retries included.
    pub request_timeout: Duration,
    /// Deadline of opening a connection.
    pub connect_timeout: Duration,
    /// TTL of presence rows: how long a quiet session's roster is kept.
    pub presence_row_ttl: Duration,
    /// Apply pending migrations when the store connects (development).
    pub migrate_on_start: bool,
    /// How `migrate` creates the keyspace, when asked to.
    pub create_keyspace: Option<KeyspaceOptions>,
}

impl ScyllaConfig {
    /// Defaults for one local node at `127.0.0.1:9042` and `keyspace`.
    pub fn local(keyspace: impl Into<String>) -> Self {
        Self {
            nodes: vec!["127.0.0.1:9042".into()],
            keyspace: keyspace.into(),
            tables: TableNames::default(),
            credentials: None,
            tls_ca: None,
            consistency: Consistency::LocalQuorum,
            serial_consistency: SerialConsistency::LocalSerial,
            local_datacenter: None,
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            presence_row_ttl: Duration::from_secs(7 * 24 * 3600),
            migrate_on_start: false,
            create_keyspace: None,
        }
    }

    /// Checks names and numbers; `Err` says which setting is unusable.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.nodes.is_empty() {
            return Err(("--scylla-nodes", "names no node".into()));
        }
        validate_identifier(&self.keyspace).map_err(|why| ("--scylla-keyspace", why))?;
        self.tables
            .validate()
            .map_err(|why| ("--scylla-table-*", why))?;
        if self.presence_row_ttl.as_secs() == 0 || self.presence_row_ttl.as_secs() > MAX_TTL_SECS {
            return Err((
                "--scylla-presence-row-ttl",
                format!("must be between 1s and {MAX_TTL_SECS}s"),
            ));
        }
        if let Some(options) = &self.create_keyspace {
            if options.replication_factor == 0 {
                return Err(("--replication-factor", "must be at least 1".into()));
            }
            if options.strategy == ReplicationStrategy::NetworkTopology {
                let datacenter = options.datacenter.as_deref().unwrap_or_default();
                validate_datacenter(datacenter).map_err(|why| ("--replication-datacenter", why))?;
            }
        }
        Ok(())
    }
}

/// The longest row TTL accepted: a year (CQL allows 20 years, but Cassandra
/// refuses expirations past 2038).
pub const MAX_TTL_SECS: u64 = 365 * 24 * 3600;

/// Accepts what can be pasted unquoted into CQL as a keyspace or table name.
pub fn validate_identifier(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !starts_with_letter
        || name.len() > 48
        || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(format!(
            "{name:?} is not a CQL name: a letter, then up to 47 letters, digits or '_'"
        ));
    }
    Ok(())
}

/// Datacenter names go into a quoted string of the replication map.
fn validate_datacenter(name: &str) -> Result<(), String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(format!(
            "{name:?}: NetworkTopologyStrategy needs a datacenter name of letters, digits, '_', '-', '.'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_that_could_inject_cql_are_refused() {
        for bad in ["", "1abc", "a-b", "a b", "a;DROP", "x\"y", &"a".repeat(49)] {
            assert!(validate_identifier(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "meno", "Chat_2", &"a".repeat(48)] {
            assert!(validate_identifier(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn duplicate_table_names_are_refused() {
        let tables = TableNames {
            presence: "Sessions".into(),
            ..TableNames::default()
        };
        assert!(tables.validate().is_err());
        assert!(TableNames::default().validate().is_ok());
    }

    #[test]
    fn network_topology_needs_a_datacenter() {
        let mut config = ScyllaConfig::local("meno");
        config.create_keyspace = Some(KeyspaceOptions {
            strategy: ReplicationStrategy::NetworkTopology,
            ..KeyspaceOptions::default()
        });
        assert_eq!(
            config.validate().map_err(|e| e.0),
            Err("--replication-datacenter")
        );
        if let Some(options) = config.create_keyspace.as_mut() {
            options.datacenter = Some("dc-1".into());
        }
        assert!(config.validate().is_ok());
    }
}
