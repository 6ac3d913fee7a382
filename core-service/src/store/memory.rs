//! An in-memory [`Store`] for tests and benches.
//!
//! It owns nothing but its own maps and keeps exactly the semantics of the
//! embedded store (both pass [`conformance`](super::conformance)); it must never
//! be used where data has to survive a restart.
//!
//! The `Mutex` guards the store's own tables, not domain state: the session
//! actor still decides every write, this only keeps concurrent batches atomic.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use meno_proto::{ChatMessage, LeaseState, PresenceState, ReadPosition, RegisteredConnection};

use super::{
    ChatRef, MessageLocation, RegistryLookup, SessionKey, SessionRecord, SessionWrite, Store,
    StoreError, StoredConnection,
};

/// A [`Store`] that keeps everything in process memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
}

/// Everything, under one lock: a message and its index entries are one write.
#[derive(Debug, Default)]
struct Tables {
    sessions: BTreeMap<SessionKey, SessionData>,
    /// (tenant, message id) -> where the message is.
    message_ids: HashMap<(String, String), MessageLocation>,
    /// The connection registry: (tenant, connection_id) -> row.
    registered: BTreeMap<(String, String), RegisteredConnection>,
}

/// One session's rows, shaped like the embedded store's tables.
#[derive(Debug, Default)]
struct SessionData {
    seq_mark: u64,
    step_index: i64,
    lease: Option<LeaseState>,
    chat: BTreeMap<u64, ChatMessage>,
    /// (sender, client_ref) -> seq; an empty client_ref has no entry.
    client_refs: HashMap<ChatRef, u64>,
    presence: BTreeMap<String, PresenceState>,
    connections: BTreeMap<String, StoredConnection>,
    /// Read positions by user id.
    reads: BTreeMap<String, ReadPosition>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn tables(&self) -> Result<MutexGuard<'_, Tables>, StoreError> {
        // A poisoned lock means a panic mid-write; the maps may be half-updated,
        // so refuse to serve rather than hand out possibly torn state.
        self.tables
            .lock()
            .map_err(|_| StoreError::Backend("memory store lock poisoned".to_owned()))
    }
}

impl SessionData {
    /// Applies `write` after the caller checked its lease condition; each
    /// message stored gets its entry in `message_ids` (of the session's
    /// tenant) in the same call, under the same lock.
    fn apply(
        &mut self,
        key: &SessionKey,
        write: SessionWrite,
        message_ids: &mut HashMap<(String, String), MessageLocation>,
    ) {
        if let Some(seq_mark) = write.seq_mark {
            self.seq_mark = self.seq_mark.max(seq_mark);
        }
        if let Some(step_index) = write.step_index {
            self.step_index = step_index;
        }
        if let Some(lease) = write.lease {
            self.lease = Some(lease.state);
        }
        for message in write.messages {
            // History is append-only and a sender's client_ref deduplicates:
            // the first message stored under a seq or a reference wins.
            let reference = ChatRef::of(&message);
            if self.chat.contains_key(&message.seq)
                || reference
                    .as_ref()
                    .is_some_and(|reference| self.client_refs.contains_key(reference))
            {
                continue;
            }
            if let Some(reference) = reference {
                self.client_refs.insert(reference, message.seq);
            }
            message_ids.insert(
                (key.tenant.clone(), message.id.clone()),
                MessageLocation {
                    session_id: key.session_id.clone(),
                    seq: message.seq,
                },
            );
            self.chat.insert(message.seq, message);
        }
        // Rows written whole first, then deletions, as in the embedded store.
        for presence in write.presence {
            self.presence
                .insert(presence.participant_id.clone(), presence);
        }
        for participant_id in &write.presence_removed {
            self.presence.remove(participant_id);
        }
        for connection in write.connections {
            self.connections
                .insert(connection.info.connection_id.clone(), connection);
        }
        for connection_id in &write.connections_removed {
            self.connections.remove(connection_id);
        }
        for position in write.reads {
            self.reads.insert(position.user_id.clone(), position);
        }
    }
}

/// The conflict a lease write meets when `stored_epoch` is not what it expects.
fn lease_conflict(
    key: &SessionKey,
    expected_epoch: Option<u64>,
    stored_epoch: Option<u64>,
) -> StoreError {
    StoreError::Conflict(format!(
        "lease of {key}: expected epoch {expected_epoch:?}, stored {stored_epoch:?}"
    ))
}

#[async_trait]
impl Store for MemoryStore {
    /// Connections are returned whatever their `expires_at_ms`: the caller
    /// filters by its own clock.
    async fn load_session(&self, key: &SessionKey) -> Result<SessionRecord, StoreError> {
        let tables = self.tables()?;
        let Some(data) = tables.sessions.get(key) else {
            return Ok(SessionRecord::default());
        };
        Ok(SessionRecord {
            seq_mark: data.seq_mark,
            step_index: data.step_index,
            lease: data.lease.clone(),
            participants: data.presence.values().cloned().collect(),
            connections: data.connections.values().cloned().collect(),
            reads: data.reads.values().cloned().collect(),
        })
    }

    async fn write_session(&self, key: &SessionKey, write: SessionWrite) -> Result<(), StoreError> {
        if write.is_empty() {
            return Ok(());
        }
        let mut tables = self.tables()?;
        let Tables {
            sessions,
            message_ids,
            ..
        } = &mut *tables;
        if let Some(lease) = &write.lease {
            let stored_epoch = sessions
                .get(key)
                .and_then(|data| data.lease.as_ref())
                .map(|stored| stored.epoch);
            if stored_epoch != lease.expected_epoch {
                return Err(lease_conflict(key, lease.expected_epoch, stored_epoch));
            }
        }
        sessions
            .entry(key.clone())
            .or_default()
            .apply(key, write, message_ids);
        Ok(())
    }

    async fn chat_page(
        &self,
        key: &SessionKey,
        before_seq: Option<u64>,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let tables = self.tables()?;
        let Some(data) = tables.sessions.get(key) else {
            return Ok(Vec::new());
        };
        let page = match before_seq {
            Some(before_seq) => data.chat.range(..before_seq),
            None => data.chat.range(..),
        };
        Ok(page.rev().take(limit).map(|(_, m)| m.clone()).collect())
    }

    async fn chat_after(
        &self,
        key: &SessionKey,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let tables = self.tables()?;
        let Some(data) = tables.sessions.get(key) else {
            return Ok(Vec::new());
        };
        let Some(first) = after_seq.checked_add(1) else {
            return Ok(Vec::new());
        };
        Ok(data
            .chat
            .range(first..)
            .take(limit)
            .map(|(_, m)| m.clone())
            .collect())
    }

    /// Found messages come back in seq order, each once.
    async fn chat_by_client_refs(
        &self,
        key: &SessionKey,
        refs: &[ChatRef],
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let tables = self.tables()?;
        let Some(data) = tables.sessions.get(key) else {
            return Ok(Vec::new());
        };
        let seqs: BTreeSet<u64> = refs
            .iter()
            .filter(|reference| !reference.client_ref.is_empty())
            .filter_map(|reference| data.client_refs.get(reference).copied())
            .collect();
        Ok(seqs
            .iter()
            .filter_map(|seq| data.chat.get(seq).cloned())
            .collect())
    }

    async fn message_location(
        &self,
        tenant: &str,
        message_id: &str,
    ) -> Result<Option<MessageLocation>, StoreError> {
        let tables = self.tables()?;
        Ok(tables
            .message_ids
            .get(&(tenant.to_owned(), message_id.to_owned()))
            .cloned())
    }

    async fn put_registered(&self, rows: &[RegisteredConnection]) -> Result<(), StoreError> {
        let mut tables = self.tables()?;
        for row in rows {
            let key = (row.tenant.clone(), row.connection_id.clone());
            tables.registered.insert(key, row.clone());
        }
        Ok(())
    }

    async fn registered(
        &self,
        tenant: &str,
        connection_ids: &[String],
    ) -> Result<Vec<RegisteredConnection>, StoreError> {
        let tables = self.tables()?;
        Ok(connection_ids
            .iter()
            .filter_map(|id| tables.registered.get(&(tenant.to_owned(), id.clone())))
            .cloned()
            .collect())
    }

    /// A scan of the tenant's rows: the memory store is for tests.
    async fn registered_by(
        &self,
        tenant: &str,
        lookup: &RegistryLookup,
    ) -> Result<Vec<RegisteredConnection>, StoreError> {
        let tables = self.tables()?;
        let from = (tenant.to_owned(), String::new());
        Ok(tables
            .registered
            .range(from..)
            .take_while(|((row_tenant, _), _)| row_tenant == tenant)
            .map(|(_, row)| row)
            .filter(|row| match lookup {
                RegistryLookup::Session(session_id) => &row.session_id == session_id,
                RegistryLookup::User(user_id) => &row.user_id == user_id,
            })
            .cloned()
            .collect())
    }

    async fn delete_registered(&self, rows: &[RegisteredConnection]) -> Result<(), StoreError> {
        let mut tables = self.tables()?;
        for row in rows {
            let key = (row.tenant.clone(), row.connection_id.clone());
            tables.registered.remove(&key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance;

    #[tokio::test]
    async fn memory_store_passes_conformance() {
        let store = MemoryStore::new();
        if let Err(failures) = conformance::run_all(&store, "memory").await {
            panic!("memory store failed conformance:\n{failures}");
        }
    }

    #[tokio::test]
    async fn memory_store_passes_the_registry_conformance() {
        let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(MemoryStore::new());
        if let Err(failures) = conformance::run_registry(store, "memory").await {
            panic!("memory store failed the registry conformance:\n{failures}");
        }
    }
}
