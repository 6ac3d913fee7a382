//! Every statement the store runs, prepared once per session of the driver.
//!
//! Prepared statements only: values are always bound (never pasted into CQL),
//! partition keys are bound so routing is token-aware, and each statement is
//! marked idempotent or not, which tells the driver whether it may retry or
//! speculate. Plain statements run at the configured consistency
//! (`LOCAL_QUORUM` by default); lease statements are LWT with the configured
//! serial consistency (`LOCAL_SERIAL`), and the lease is read at that serial
//! consistency too, so an in-flight Paxos round is finished before it is seen.

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::Consistency;

use super::config::ScyllaConfig;
use super::error::StoreFailure;

/// Columns of a chat message row, in the order every chat SELECT names them.
pub(crate) const CHAT_COLUMNS: &str = "seq, id, client_ref, sender_id, sender_name, sender_role, \
                                        kind, content, meta_json, created_at";

/// The prepared statements of one driver session.
#[derive(Debug)]
pub(crate) struct Statements {
    pub(crate) probe: PreparedStatement,
    pub(crate) select_session: PreparedStatement,
    pub(crate) update_seq_mark: PreparedStatement,
    pub(crate) update_step_index: PreparedStatement,
    pub(crate) select_lease: PreparedStatement,
    pub(crate) insert_lease: PreparedStatement,
    pub(crate) update_lease: PreparedStatement,
    pub(crate) insert_message: PreparedStatement,
    pub(crate) insert_bucket: PreparedStatement,
    pub(crate) insert_client_ref: PreparedStatement,
    pub(crate) select_client_ref: PreparedStatement,
    pub(crate) select_buckets_down: PreparedStatement,
    pub(crate) select_buckets_up: PreparedStatement,
    pub(crate) select_messages_before: PreparedStatement,
    pub(crate) select_messages_after: PreparedStatement,
    pub(crate) select_message: PreparedStatement,
    /// A range tombstone over a bucket's seqs (a takeover voids the seqs an
    /// earlier owner may still write late).
    pub(crate) void_messages: PreparedStatement,
    pub(crate) select_presence: PreparedStatement,
    pub(crate) insert_presence: PreparedStatement,
    pub(crate) delete_presence: PreparedStatement,
    pub(crate) select_connections: PreparedStatement,
    pub(crate) select_connection_users: PreparedStatement,
    pub(crate) insert_connection: PreparedStatement,
    pub(crate) delete_connection: PreparedStatement,
    pub(crate) insert_connection_by_user: PreparedStatement,
    pub(crate) delete_connection_by_user: PreparedStatement,
    pub(crate) insert_message_id: PreparedStatement,
    pub(crate) select_message_id: PreparedStatement,
    pub(crate) insert_read_position: PreparedStatement,
    pub(crate) select_read_positions: PreparedStatement,
    /// The connection registry's (migration 0004).
    pub(crate) registry: super::registry::RegistryStatements,
    /// Replica leases and session owners (migration 0005).
    pub(crate) ownership: super::ownership::OwnershipStatements,
}

impl Statements {
    /// Prepares everything against `session`.
    pub(crate) async fn prepare(
        session: &Session,
        config: &ScyllaConfig,
    ) -> Result<Self, StoreFailure> {
        let ks = &config.keyspace;
        let t = &config.tables;
        let session_key = "tenant = ? AND session_id = ?";
        let prepare = |cql: String, idempotent: bool| async move {
            let mut statement = session.prepare(cql).await?;
            statement.set_is_idempotent(idempotent);
            Ok::<_, StoreFailure>(statement)
        };
        let mut select_lease = prepare(
            format!(
                "SELECT lease_id, lease_to, step_index, issued_at, expires_at, epoch \
                 FROM {ks}.{} WHERE {session_key}",
                t.lease
            ),
            true,
        )
        .await?;
        select_lease.set_consistency(match config.serial_consistency {
            scylla::statement::SerialConsistency::Serial => Consistency::Serial,
            scylla::statement::SerialConsistency::LocalSerial => Consistency::LocalSerial,
        });
        let mut insert_lease = prepare(
            format!(
                "INSERT INTO {ks}.{} (tenant, session_id, lease_id, lease_to, step_index, \
                 issued_at, expires_at, epoch) VALUES (?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS",
                t.lease
            ),
            false,
        )
        .await?;
        insert_lease.set_serial_consistency(Some(config.serial_consistency));
        let mut update_lease = prepare(
            format!(
                "UPDATE {ks}.{} SET lease_id = ?, lease_to = ?, step_index = ?, issued_at = ?, \
                 expires_at = ?, epoch = ? WHERE {session_key} IF epoch = ?",
                t.lease
            ),
            false,
        )
        .await?;
        update_lease.set_serial_consistency(Some(config.serial_consistency));

        Ok(Self {
            probe: prepare(
                format!(
                    "SELECT seq_mark FROM {ks}.{} WHERE {session_key}",
                    t.sessions
                ),
                true,
            )
            .await?,
            select_session: prepare(
                format!(
                    "SELECT seq_mark, step_index FROM {ks}.{} WHERE {session_key}",
                    t.sessions
                ),
                true,
            )
            .await?,
            update_seq_mark: prepare(
                format!(
                    "UPDATE {ks}.{} USING TIMESTAMP ? SET seq_mark = ? WHERE {session_key}",
                    t.sessions
                ),
                true,
            )
            .await?,
            update_step_index: prepare(
                format!(
                    "UPDATE {ks}.{} SET step_index = ? WHERE {session_key}",
                    t.sessions
                ),
                true,
            )
            .await?,
            select_lease,
            insert_lease,
            update_lease,
            insert_message: prepare(
                format!(
                    "INSERT INTO {ks}.{} (tenant, session_id, bucket, {CHAT_COLUMNS}) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    t.chat_messages
                ),
                true,
            )
            .await?,
            insert_bucket: prepare(
                format!(
                    "INSERT INTO {ks}.{} (tenant, session_id, bucket) VALUES (?, ?, ?)",
                    t.chat_buckets
                ),
                true,
            )
            .await?,
            insert_client_ref: prepare(
                format!(
                    "INSERT INTO {ks}.{} (tenant, session_id, sender_id, client_ref, seq) \
                     VALUES (?, ?, ?, ?, ?)",
                    t.chat_by_sender_ref
                ),
                true,
            )
            .await?,
            select_client_ref: prepare(
                format!(
                    "SELECT seq FROM {ks}.{} WHERE {session_key} AND sender_id = ? \
                     AND client_ref = ?",
                    t.chat_by_sender_ref
                ),
                true,
            )
            .await?,
            select_buckets_down: prepare(
                format!(
                    "SELECT bucket FROM {ks}.{} WHERE {session_key} AND bucket <= ? \
                     ORDER BY bucket DESC LIMIT ?",
                    t.chat_buckets
                ),
                true,
            )
            .await?,
            select_buckets_up: prepare(
                format!(
                    "SELECT bucket FROM {ks}.{} WHERE {session_key} AND bucket >= ? \
                     ORDER BY bucket ASC LIMIT ?",
                    t.chat_buckets
                ),
                true,
            )
            .await?,
            select_messages_before: prepare(
                format!(
                    "SELECT {CHAT_COLUMNS} FROM {ks}.{} WHERE {session_key} AND bucket = ? \
                     AND seq <= ? ORDER BY seq DESC LIMIT ?",
                    t.chat_messages
                ),
                true,
            )
            .await?,
            select_messages_after: prepare(
                format!(
                    "SELECT {CHAT_COLUMNS} FROM {ks}.{} WHERE {session_key} AND bucket = ? \
                     AND seq >= ? ORDER BY seq ASC LIMIT ?",
                    t.chat_messages
                ),
                true,
            )
            .await?,
            select_message: prepare(
                format!(
                    "SELECT {CHAT_COLUMNS} FROM {ks}.{} WHERE {session_key} AND bucket = ? \
                     AND seq = ?",
                    t.chat_messages
                ),
                true,
            )
            .await?,
            void_messages: prepare(
                format!(
                    "DELETE FROM {ks}.{} USING TIMESTAMP ? WHERE {session_key} \
                     AND bucket = ? AND seq > ? AND seq <= ?",
                    t.chat_messages
                ),
                true,
            )
            .await?,
            select_presence: prepare(
                format!(
                    "SELECT participant_id, name, role, status, is_typing, is_speaking, color, \
                     last_seen, extra_json FROM {ks}.{} WHERE {session_key}",
                    t.presence
                ),
                true,
            )
            .await?,
            insert_presence: prepare(
                format!(
                    "INSERT INTO {ks}.{} (tenant, session_id, participant_id, name, role, status, \
                     is_typing, is_speaking, color, last_seen, extra_json) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?",
                    t.presence
                ),
                true,
            )
            .await?,
            delete_presence: prepare(
                format!(
                    "DELETE FROM {ks}.{} WHERE {session_key} AND participant_id = ?",
                    t.presence
                ),
                true,
            )
            .await?,
            select_connections: prepare(
                format!(
                    "SELECT connection_id, participant_id, name, role, client, bridge_id, ip, \
                     user_agent, connected_at, expires_at FROM {ks}.{} WHERE {session_key}",
                    t.connections
                ),
                true,
            )
            .await?,
            select_connection_users: prepare(
                format!(
                    "SELECT connection_id, participant_id FROM {ks}.{} WHERE {session_key} \
                     AND connection_id IN ?",
                    t.connections
                ),
                true,
            )
            .await?,
            insert_connection: prepare(
                format!(
                    "INSERT INTO {ks}.{} (tenant, session_id, connection_id, participant_id, name, \
                     role, client, bridge_id, ip, user_agent, connected_at, expires_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?",
                    t.connections
                ),
                true,
            )
            .await?,
            delete_connection: prepare(
                format!(
                    "DELETE FROM {ks}.{} WHERE {session_key} AND connection_id = ?",
                    t.connections
                ),
                true,
            )
            .await?,
            insert_connection_by_user: prepare(
                format!(
                    "INSERT INTO {ks}.{} (tenant, user_id, session_id, connection_id, bridge_id, \
                     client, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ?",
                    t.connections_by_user
                ),
                true,
            )
            .await?,
            delete_connection_by_user: prepare(
                format!(
                    "DELETE FROM {ks}.{} WHERE tenant = ? AND user_id = ? AND session_id = ? \
                     AND connection_id = ?",
                    t.connections_by_user
                ),
                true,
            )
            .await?,
            insert_message_id: prepare(
                format!(
                    "INSERT INTO {ks}.{} (tenant, message_id, session_id, seq) VALUES (?, ?, ?, ?)",
                    t.chat_by_id
                ),
                true,
            )
            .await?,
            select_message_id: prepare(
                format!(
                    "SELECT session_id, seq FROM {ks}.{} WHERE tenant = ? AND message_id = ?",
                    t.chat_by_id
                ),
                true,
            )
            .await?,
            // The timestamp is the message's seq: the furthest position wins.
            insert_read_position: prepare(
                format!(
                    "INSERT INTO {ks}.{} (tenant, session_id, user_id, message_id, seq, read_at) \
                     VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?",
                    t.read_positions
                ),
                true,
            )
            .await?,
            select_read_positions: prepare(
                format!(
                    "SELECT user_id, message_id, seq, read_at FROM {ks}.{} WHERE {session_key}",
                    t.read_positions
                ),
                true,
            )
            .await?,
            registry: super::registry::RegistryStatements::prepare(session, config).await?,
            ownership: super::ownership::OwnershipStatements::prepare(session, config).await?,
        })
    }
}
