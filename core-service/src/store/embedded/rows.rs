//! The bytes of the embedded store's rows: prost messages, so a row can grow a
//! field without a migration. Decoding never panics; bad bytes are
//! [`StoreError::Corrupt`] naming the row.

use meno_proto::{ConnectionInfo, LeaseState};
use prost::Message;

use crate::store::{StoreError, StoredConnection};

/// The `sessions` row: everything about a session that is one value.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct SessionRow {
    /// The highest seq reserved so far.
    #[prost(uint64, tag = "1")]
    pub(super) seq_mark: u64,
    /// The shared step.
    #[prost(int64, tag = "2")]
    pub(super) step_index: i64,
    /// The last lease written; absent if never written.
    #[prost(message, optional, tag = "3")]
    pub(super) lease: Option<LeaseState>,
}

/// The `connections` row: the connection and when it expires.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct ConnectionRow {
    /// The connection as its bridge registered it.
    #[prost(message, optional, tag = "1")]
    pub(super) info: Option<ConnectionInfo>,
    /// Unix milliseconds after which the connection is gone.
    #[prost(int64, tag = "2")]
    pub(super) expires_at_ms: i64,
}

impl From<&StoredConnection> for ConnectionRow {
    fn from(connection: &StoredConnection) -> Self {
        Self {
            info: Some(connection.info.clone()),
            expires_at_ms: connection.expires_at_ms,
        }
    }
}

impl From<ConnectionRow> for StoredConnection {
    fn from(row: ConnectionRow) -> Self {
        Self {
            info: row.info.unwrap_or_default(),
            expires_at_ms: row.expires_at_ms,
        }
    }
}

/// The `message_ids` row: where a message is within its tenant.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct MessageLocationRow {
    /// The session holding the message.
    #[prost(string, tag = "1")]
    pub(super) session_id: String,
    /// Its seq there.
    #[prost(uint64, tag = "2")]
    pub(super) seq: u64,
}

/// Decodes a row of type `M`; `what` names the row in the error.
pub(super) fn decode<M: Message + Default>(
    bytes: &[u8],
    what: impl FnOnce() -> String,
) -> Result<M, StoreError> {
    M::decode(bytes).map_err(|err| StoreError::Corrupt(format!("{}: {err}", what())))
}
