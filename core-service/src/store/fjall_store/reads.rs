//! Reads of the fjall store, each on the newest durable snapshot (a group
//! commit is seen whole, and only once it is on disk). Blocking; the store
//! runs them on the blocking pool.

use std::collections::BTreeSet;

use fjall::{Keyspace, Readable, Snapshot};
use meno_proto::{ChatMessage, PresenceState, ReadPosition};

use super::keys::{trailing_seq, Key};
use super::Shared;
use crate::store::rows::{decode, decode_location, decode_message, ConnectionRow, SessionRow};
use crate::store::{
    ChatRef, MessageLocation, SessionKey, SessionRecord, StoreError, StoredConnection,
};

fn session_prefix(key: &SessionKey) -> Result<Key, StoreError> {
    Key::of(&[&key.tenant, &key.session_id])
}

/// Every row under `prefix` in `keyspace`, decoded as `M`.
fn rows_under<M: prost::Message + Default>(
    snapshot: &Snapshot,
    keyspace: &Keyspace,
    prefix: &Key,
    what: impl Fn() -> String,
) -> Result<Vec<M>, StoreError> {
    let mut rows = Vec::new();
    for entry in snapshot.prefix(keyspace, prefix) {
        let (_, row) = entry.into_inner()?;
        rows.push(decode::<M>(&row, &what)?);
    }
    Ok(rows)
}

pub(super) fn load_session(shared: &Shared, key: &SessionKey) -> Result<SessionRecord, StoreError> {
    let spaces = &shared.spaces;
    let prefix = session_prefix(key)?;
    let snapshot = shared.snapshot();
    let session = match snapshot.get(&spaces.sessions, &prefix)? {
        Some(row) => SessionRow::decode_of(key, &row)?,
        None => SessionRow::default(),
    };
    let participants: Vec<PresenceState> =
        rows_under(&snapshot, &spaces.presence, &prefix, || {
            format!("presence row of {key}")
        })?;
    let connections: Vec<ConnectionRow> =
        rows_under(&snapshot, &spaces.connections, &prefix, || {
            format!("connection row of {key}")
        })?;
    let reads: Vec<ReadPosition> = rows_under(&snapshot, &spaces.reads, &prefix, || {
        format!("read row of {key}")
    })?;
    Ok(SessionRecord {
        seq_mark: session.seq_mark,
        step_index: session.step_index,
        lease: session.lease,
        participants,
        connections: connections
            .into_iter()
            .map(StoredConnection::from)
            .collect(),
        reads,
    })
}

pub(super) fn session_exists(shared: &Shared, key: &SessionKey) -> Result<bool, StoreError> {
    let prefix = session_prefix(key)?;
    let Some(row) = shared.snapshot().get(&shared.spaces.sessions, &prefix)? else {
        return Ok(false);
    };
    let session = SessionRow::decode_of(key, &row)?;
    Ok(session.seq_mark > 0)
}

pub(super) fn message_location(
    shared: &Shared,
    tenant: &str,
    message_id: &str,
) -> Result<Option<MessageLocation>, StoreError> {
    let index_key = Key::of(&[tenant, message_id])?;
    let Some(row) = shared
        .snapshot()
        .get(&shared.spaces.message_ids, &index_key)?
    else {
        return Ok(None);
    };
    decode_location(tenant, message_id, &row).map(Some)
}

/// Decodes a chat entry of `key`'s session.
fn chat_entry(key: &SessionKey, entry: fjall::Guard) -> Result<ChatMessage, StoreError> {
    let (row_key, row) = entry.into_inner()?;
    let seq = trailing_seq(&row_key)
        .ok_or_else(|| StoreError::Corrupt(format!("chat key of {key} has no seq")))?;
    decode_message(key, seq, &row)
}

pub(super) fn chat_page(
    shared: &Shared,
    key: &SessionKey,
    before_seq: Option<u64>,
    limit: usize,
) -> Result<Vec<ChatMessage>, StoreError> {
    if limit == 0 || before_seq == Some(0) {
        return Ok(Vec::new());
    }
    let prefix = session_prefix(key)?;
    let low = prefix.clone().seq(0);
    let snapshot = shared.snapshot();
    let range = match before_seq {
        Some(before_seq) => snapshot.range(&shared.spaces.chat, low..prefix.seq(before_seq)),
        None => snapshot.range(&shared.spaces.chat, low..=prefix.seq(u64::MAX)),
    };
    let mut page = Vec::with_capacity(limit.min(1024));
    for entry in range.rev().take(limit) {
        page.push(chat_entry(key, entry)?);
    }
    Ok(page)
}

pub(super) fn chat_after(
    shared: &Shared,
    key: &SessionKey,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<ChatMessage>, StoreError> {
    if limit == 0 || after_seq == u64::MAX {
        return Ok(Vec::new());
    }
    let prefix = session_prefix(key)?;
    let low = prefix.clone().seq(after_seq + 1);
    let snapshot = shared.snapshot();
    let range = snapshot.range(&shared.spaces.chat, low..=prefix.seq(u64::MAX));
    let mut page = Vec::with_capacity(limit.min(1024));
    for entry in range.take(limit) {
        page.push(chat_entry(key, entry)?);
    }
    Ok(page)
}

pub(super) fn chat_by_client_refs(
    shared: &Shared,
    key: &SessionKey,
    refs: &[ChatRef],
) -> Result<Vec<ChatMessage>, StoreError> {
    let spaces = &shared.spaces;
    let prefix = session_prefix(key)?;
    let snapshot = shared.snapshot();
    let mut seqs = BTreeSet::new();
    for reference in refs.iter().filter(|r| !r.client_ref.is_empty()) {
        let index_key = prefix
            .clone()
            .text(&reference.sender_id)?
            .text(&reference.client_ref)?;
        if let Some(seq) = snapshot.get(&spaces.client_refs, &index_key)? {
            let seq = <[u8; 8]>::try_from(&*seq).map_err(|_| {
                StoreError::Corrupt(format!("client_ref entry of {key} is not a seq"))
            })?;
            seqs.insert(u64::from_be_bytes(seq));
        }
    }
    let mut found = Vec::with_capacity(seqs.len());
    for seq in seqs {
        if let Some(row) = snapshot.get(&spaces.chat, prefix.clone().seq(seq))? {
            found.push(decode_message(key, seq, &row)?);
        }
    }
    Ok(found)
}
