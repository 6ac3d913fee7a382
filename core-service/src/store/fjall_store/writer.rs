//! The fjall writer thread ([`group_commit`]): each request of a group is
//! checked against the live keyspaces and committed as one atomic batch; the
//! group is then made durable with one `fdatasync`, the durable snapshot is
//! published, and only then is anyone answered. A request whose condition
//! fails (lease epoch) or whose stored row cannot be decoded is rejected
//! alone, before any of its writes are made. A failure of the engine fails
//! the whole group (fjall then refuses every later write until a restart
//! recovers the journal, so nothing of it is ever acknowledged).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use fjall::{Keyspace, PersistMode};
use meno_proto::ChatMessage;
use prost::Message;
use tokio::sync::mpsc;

use super::keys::Key;
use super::{Shared, Spaces};
use crate::store::group_commit::{self, SpanName, WriteRequest};
use crate::store::rows::{decode, ConnectionRow, MessageLocationRow, SessionRow};
use crate::store::{SessionKey, SessionWrite, StoreError};

/// Serves requests until every sender is gone, then returns; what was queued
/// before the channel closed is still committed.
pub(super) fn run(shared: &Shared, queue: mpsc::Receiver<WriteRequest>, commits: &AtomicU64) {
    group_commit::run(queue, SpanName::Fjall, |batch| {
        let outcomes = batch
            .iter()
            .map(|request| apply(shared, &request.key, &request.write))
            .collect::<Result<Vec<_>, StoreError>>()?;
        if outcomes.iter().any(Result::is_ok) {
            // Callers publish as soon as we reply, so the group must be on disk.
            shared.db.persist(PersistMode::SyncData)?;
            shared.publish_durable();
            commits.fetch_add(1, Ordering::Relaxed);
        }
        Ok(outcomes)
    });
}

/// The writes of one request, by keyspace and key; a later write of the same
/// key replaces an earlier one (rows written whole, then deletions).
struct Pending<'s> {
    spaces: &'s Spaces,
    ops: HashMap<Space, HashMap<Vec<u8>, Option<Vec<u8>>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Space {
    Sessions,
    Chat,
    ClientRefs,
    Presence,
    Connections,
    Reads,
    MessageIds,
}

impl<'s> Pending<'s> {
    fn new(spaces: &'s Spaces) -> Self {
        Self {
            spaces,
            ops: HashMap::new(),
        }
    }

    fn keyspace(&self, space: Space) -> &'s Keyspace {
        Self::keyspace_of(self.spaces, space)
    }

    fn keyspace_of(spaces: &'s Spaces, space: Space) -> &'s Keyspace {
        match space {
            Space::Sessions => &spaces.sessions,
            Space::Chat => &spaces.chat,
            Space::ClientRefs => &spaces.client_refs,
            Space::Presence => &spaces.presence,
            Space::Connections => &spaces.connections,
            Space::Reads => &spaces.reads,
            Space::MessageIds => &spaces.message_ids,
        }
    }

    fn insert(&mut self, space: Space, key: Key, value: Vec<u8>) {
        self.ops
            .entry(space)
            .or_default()
            .insert(key.into_bytes(), Some(value));
    }

    fn remove(&mut self, space: Space, key: Key) {
        self.ops
            .entry(space)
            .or_default()
            .insert(key.into_bytes(), None);
    }

    /// Whether `key` is stored or written by this request.
    fn contains(&self, space: Space, key: &Key) -> Result<bool, StoreError> {
        if let Some(pending) = self.ops.get(&space).and_then(|ops| ops.get(key.as_bytes())) {
            return Ok(pending.is_some());
        }
        Ok(self.keyspace(space).contains_key(key)?)
    }

    /// Commits the request's writes as one atomic batch (buffered in the
    /// journal until the group's `fdatasync`).
    fn commit(self, shared: &Shared) -> Result<(), StoreError> {
        let mut batch = shared.db.batch();
        let Pending { spaces, ops } = self;
        for (space, ops) in ops {
            let keyspace = Pending::keyspace_of(spaces, space);
            for (key, value) in ops {
                match value {
                    Some(value) => batch.insert(keyspace, key, value),
                    None => batch.remove(keyspace, key),
                }
            }
        }
        Ok(batch.commit()?)
    }
}

/// Applies one request. The outer error is an engine failure (the group is
/// lost); the inner one rejects this request alone, and is only ever returned
/// before anything of it was written.
fn apply(
    shared: &Shared,
    key: &SessionKey,
    write: &SessionWrite,
) -> Result<Result<(), StoreError>, StoreError> {
    let prefix = match Key::of(&[&key.tenant, &key.session_id]) {
        Ok(prefix) => prefix,
        Err(err) => return Ok(Err(err)),
    };
    match build(shared, key, &prefix, write)? {
        Ok(pending) => pending.commit(shared).map(Ok),
        Err(rejected) => Ok(Err(rejected)),
    }
}

/// The writes of `write`, checked: `Ok(Err(_))` rejects the request.
fn build<'s>(
    shared: &'s Shared,
    key: &SessionKey,
    prefix: &Key,
    write: &SessionWrite,
) -> Result<Result<Pending<'s>, StoreError>, StoreError> {
    let spaces = &shared.spaces;
    let mut pending = Pending::new(spaces);

    // Checks: reads only.
    let touches_session_row = SessionRow::is_touched_by(write);
    // No row and a row without a lease both read as "no lease" (`None`).
    let mut session = SessionRow::default();
    if touches_session_row {
        if let Some(row) = spaces.sessions.get(prefix)? {
            match decode::<SessionRow>(&row, || format!("session row {key}")) {
                Ok(stored) => session = stored,
                Err(err) => return Ok(Err(err)),
            }
        }
    }
    if let Err(conflict) = session.check_lease(key, write) {
        return Ok(Err(conflict));
    }
    let rows = match row_keys(prefix, &key.tenant, write) {
        Ok(rows) => rows,
        Err(err) => return Ok(Err(err)),
    };

    if touches_session_row {
        session.apply(write);
        pending.insert(Space::Sessions, prefix.clone(), session.encode_to_vec());
    }
    for (message, keys) in write.messages.iter().zip(rows.messages) {
        append_message(&mut pending, key, message, keys)?;
    }
    // Rows written whole first, then deletions, as in the memory store.
    for (presence, row_key) in write.presence.iter().zip(rows.presence) {
        pending.insert(Space::Presence, row_key, presence.encode_to_vec());
    }
    for row_key in rows.presence_removed {
        pending.remove(Space::Presence, row_key);
    }
    for (connection, row_key) in write.connections.iter().zip(rows.connections) {
        let row = ConnectionRow::from(connection).encode_to_vec();
        pending.insert(Space::Connections, row_key, row);
    }
    for row_key in rows.connections_removed {
        pending.remove(Space::Connections, row_key);
    }
    for (position, row_key) in write.reads.iter().zip(rows.reads) {
        pending.insert(Space::Reads, row_key, position.encode_to_vec());
    }
    Ok(Ok(pending))
}

/// Every key a request writes, built before anything is written so a key
/// that cannot be built rejects the request whole.
struct RowKeys {
    messages: Vec<MessageKeys>,
    presence: Vec<Key>,
    presence_removed: Vec<Key>,
    connections: Vec<Key>,
    connections_removed: Vec<Key>,
    reads: Vec<Key>,
}

/// The keys of one message's rows.
struct MessageKeys {
    chat: Key,
    /// The (sender, client_ref) index entry, if the message has a client_ref.
    client_ref: Option<Key>,
    /// The (tenant, message id) index entry.
    id: Key,
}

fn row_keys(prefix: &Key, tenant: &str, write: &SessionWrite) -> Result<RowKeys, StoreError> {
    let under = |id: &str| prefix.clone().text(id);
    let messages = write
        .messages
        .iter()
        .map(|message| {
            let client_ref = if message.client_ref.is_empty() {
                None
            } else {
                Some(under(&message.sender_id)?.text(&message.client_ref)?)
            };
            Ok(MessageKeys {
                chat: prefix.clone().seq(message.seq),
                client_ref,
                id: Key::of(&[tenant, &message.id])?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    let all = |ids: &mut dyn Iterator<Item = &str>| ids.map(under).collect::<Result<_, _>>();
    Ok(RowKeys {
        messages,
        presence: all(&mut write.presence.iter().map(|p| p.participant_id.as_str()))?,
        presence_removed: all(&mut write.presence_removed.iter().map(String::as_str))?,
        connections: all(&mut write
            .connections
            .iter()
            .map(|c| c.info.connection_id.as_str()))?,
        connections_removed: all(&mut write.connections_removed.iter().map(String::as_str))?,
        reads: all(&mut write.reads.iter().map(|r| r.user_id.as_str()))?,
    })
}

/// Stores `message` and its index entries, unless its seq or its sender's
/// client_ref is already taken: history is append-only and the first message
/// stored under a reference wins (a retried send is stored once).
fn append_message(
    pending: &mut Pending<'_>,
    key: &SessionKey,
    message: &ChatMessage,
    keys: MessageKeys,
) -> Result<(), StoreError> {
    if pending.contains(Space::Chat, &keys.chat)? {
        return Ok(());
    }
    if let Some(index_key) = keys.client_ref {
        if pending.contains(Space::ClientRefs, &index_key)? {
            return Ok(());
        }
        pending.insert(
            Space::ClientRefs,
            index_key,
            message.seq.to_be_bytes().to_vec(),
        );
    }
    let location = MessageLocationRow {
        session_id: key.session_id.clone(),
        seq: message.seq,
    };
    pending.insert(Space::MessageIds, keys.id, location.encode_to_vec());
    pending.insert(Space::Chat, keys.chat, message.encode_to_vec());
    Ok(())
}
