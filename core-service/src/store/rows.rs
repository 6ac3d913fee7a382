//! The bytes of the embedded stores' rows (redb and fjall): prost messages, so a row can grow a
//! field without a migration. Decoding never panics; bad bytes are
//! [`StoreError::Corrupt`] naming the row.

use meno_proto::{ChatMessage, ConnectionInfo, LeaseState, RegisteredConnection};
use prost::Message;

use crate::store::{MessageLocation, SessionKey, SessionWrite, StoreError, StoredConnection};

/// The `sessions` row: everything about a session that is one value.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct SessionRow {
    /// The highest seq reserved so far.
    #[prost(uint64, tag = "1")]
    pub(crate) seq_mark: u64,
    /// The shared step.
    #[prost(int64, tag = "2")]
    pub(crate) step_index: i64,
    /// The last lease written; absent if never written.
    #[prost(message, optional, tag = "3")]
    pub(crate) lease: Option<LeaseState>,
}

impl SessionRow {
    /// Decodes `key`'s session row.
    pub(crate) fn decode_of(key: &SessionKey, bytes: &[u8]) -> Result<Self, StoreError> {
        decode(bytes, || format!("session row {key}"))
    }

    /// Whether `write` changes the session row.
    pub(crate) fn is_touched_by(write: &SessionWrite) -> bool {
        write.seq_mark.is_some() || write.step_index.is_some() || write.lease.is_some()
    }

    /// `write`'s lease condition against this row (no row and a row without
    /// a lease both read as "no lease"): a conflict rejects the write.
    pub(crate) fn check_lease(
        &self,
        key: &SessionKey,
        write: &SessionWrite,
    ) -> Result<(), StoreError> {
        let Some(lease) = &write.lease else {
            return Ok(());
        };
        let stored_epoch = self.lease.as_ref().map(|stored| stored.epoch);
        if stored_epoch != lease.expected_epoch {
            return Err(StoreError::Conflict(format!(
                "lease of {key}: expected epoch {:?}, stored {stored_epoch:?}",
                lease.expected_epoch
            )));
        }
        Ok(())
    }

    /// Applies `write`'s session fields (the seq mark only ever grows).
    pub(crate) fn apply(&mut self, write: &SessionWrite) {
        if let Some(seq_mark) = write.seq_mark {
            self.seq_mark = self.seq_mark.max(seq_mark);
        }
        if let Some(step_index) = write.step_index {
            self.step_index = step_index;
        }
        if let Some(lease) = &write.lease {
            self.lease = Some(lease.state.clone());
        }
    }
}

/// The `connections` row: the connection and when it expires.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ConnectionRow {
    /// The connection as its bridge registered it.
    #[prost(message, optional, tag = "1")]
    pub(crate) info: Option<ConnectionInfo>,
    /// Unix milliseconds after which the connection is gone.
    #[prost(int64, tag = "2")]
    pub(crate) expires_at_ms: i64,
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
pub(crate) struct MessageLocationRow {
    /// The session holding the message.
    #[prost(string, tag = "1")]
    pub(crate) session_id: String,
    /// Its seq there.
    #[prost(uint64, tag = "2")]
    pub(crate) seq: u64,
}

/// Decodes a row of type `M`; `what` names the row in the error.
pub(crate) fn decode<M: Message + Default>(
    bytes: &[u8],
    what: impl FnOnce() -> String,
) -> Result<M, StoreError> {
    M::decode(bytes).map_err(|err| StoreError::Corrupt(format!("{}: {err}", what())))
}

/// Decodes the chat row of `key`'s message `seq`.
pub(crate) fn decode_message(
    key: &SessionKey,
    seq: u64,
    bytes: &[u8],
) -> Result<ChatMessage, StoreError> {
    decode(bytes, || format!("chat row {key}#{seq}"))
}

/// Decodes the registry row of `tenant`'s `connection_id`.
pub(crate) fn decode_registered(
    tenant: &str,
    connection_id: &str,
    bytes: &[u8],
) -> Result<RegisteredConnection, StoreError> {
    decode(bytes, || format!("registry row {tenant}/{connection_id}"))
}

/// Decodes the `message_ids` row of `tenant`'s `message_id`.
pub(crate) fn decode_location(
    tenant: &str,
    message_id: &str,
    bytes: &[u8],
) -> Result<MessageLocation, StoreError> {
    let row: MessageLocationRow =
        decode(bytes, || format!("message id row {tenant}/{message_id}"))?;
    Ok(MessageLocation {
        session_id: row.session_id,
        seq: row.seq,
    })
}
