//! Reads of the embedded store, each in one redb read transaction (a snapshot:
//! a concurrent group commit is seen whole or not at all). Blocking; the store
//! runs them on the blocking pool.

use std::collections::BTreeSet;
use std::ops::Bound;

use meno_proto::{ChatMessage, PresenceState, ReadPosition};
use redb::{Database, ReadableDatabase};

use super::{CHAT, CHAT_BY_SENDER_REF, CONNECTIONS, MESSAGE_IDS, PRESENCE, READS, SESSIONS};
pub(super) use crate::store::rows::decode_message;
use crate::store::rows::{decode, decode_location, ConnectionRow, SessionRow};
use crate::store::{
    ChatRef, MessageLocation, SessionKey, SessionRecord, StoreError, StoredConnection,
};

pub(super) fn load_session(db: &Database, key: &SessionKey) -> Result<SessionRecord, StoreError> {
    let (tenant, session_id) = (key.tenant.as_str(), key.session_id.as_str());
    let txn = db.begin_read()?;

    let sessions = txn.open_table(SESSIONS)?;
    let session = match sessions.get((tenant, session_id))? {
        Some(row) => SessionRow::decode_of(key, row.value())?,
        None => SessionRow::default(),
    };

    let mut participants = Vec::new();
    let presence = txn.open_table(PRESENCE)?;
    for entry in presence.range((tenant, session_id, "")..)? {
        let (row_key, row) = entry?;
        let (row_tenant, row_session, participant_id) = row_key.value();
        if (row_tenant, row_session) != (tenant, session_id) {
            break;
        }
        participants.push(decode::<PresenceState>(row.value(), || {
            format!("presence row {key}/{participant_id}")
        })?);
    }

    let mut connections = Vec::new();
    let connection_rows = txn.open_table(CONNECTIONS)?;
    for entry in connection_rows.range((tenant, session_id, "")..)? {
        let (row_key, row) = entry?;
        let (row_tenant, row_session, connection_id) = row_key.value();
        if (row_tenant, row_session) != (tenant, session_id) {
            break;
        }
        let row = decode::<ConnectionRow>(row.value(), || {
            format!("connection row {key}/{connection_id}")
        })?;
        connections.push(StoredConnection::from(row));
    }

    let mut reads = Vec::new();
    let read_rows = txn.open_table(READS)?;
    for entry in read_rows.range((tenant, session_id, "")..)? {
        let (row_key, row) = entry?;
        let (row_tenant, row_session, user_id) = row_key.value();
        if (row_tenant, row_session) != (tenant, session_id) {
            break;
        }
        reads.push(decode::<ReadPosition>(row.value(), || {
            format!("read row {key}/{user_id}")
        })?);
    }

    Ok(SessionRecord {
        seq_mark: session.seq_mark,
        step_index: session.step_index,
        lease: session.lease,
        participants,
        connections,
        reads,
    })
}

pub(super) fn session_exists(db: &Database, key: &SessionKey) -> Result<bool, StoreError> {
    let txn = db.begin_read()?;
    let sessions = txn.open_table(SESSIONS)?;
    let Some(row) = sessions.get((key.tenant.as_str(), key.session_id.as_str()))? else {
        return Ok(false);
    };
    let session = SessionRow::decode_of(key, row.value())?;
    Ok(session.seq_mark > 0)
}

pub(super) fn message_location(
    db: &Database,
    tenant: &str,
    message_id: &str,
) -> Result<Option<MessageLocation>, StoreError> {
    let txn = db.begin_read()?;
    let index = txn.open_table(MESSAGE_IDS)?;
    let Some(row) = index.get((tenant, message_id))? else {
        return Ok(None);
    };
    decode_location(tenant, message_id, row.value()).map(Some)
}

pub(super) fn chat_page(
    db: &Database,
    key: &SessionKey,
    before_seq: Option<u64>,
    limit: usize,
) -> Result<Vec<ChatMessage>, StoreError> {
    let (tenant, session_id) = (key.tenant.as_str(), key.session_id.as_str());
    let upper = match before_seq {
        Some(before_seq) => Bound::Excluded((tenant, session_id, before_seq)),
        None => Bound::Included((tenant, session_id, u64::MAX)),
    };
    if limit == 0 || before_seq == Some(0) {
        return Ok(Vec::new());
    }
    let txn = db.begin_read()?;
    let chat = txn.open_table(CHAT)?;
    let range = chat.range((Bound::Included((tenant, session_id, 0)), upper))?;
    let mut page = Vec::with_capacity(limit.min(1024));
    for entry in range.rev().take(limit) {
        let (row_key, row) = entry?;
        page.push(decode_message(key, row_key.value().2, row.value())?);
    }
    Ok(page)
}

pub(super) fn chat_after(
    db: &Database,
    key: &SessionKey,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<ChatMessage>, StoreError> {
    if limit == 0 || after_seq == u64::MAX {
        return Ok(Vec::new());
    }
    let (tenant, session_id) = (key.tenant.as_str(), key.session_id.as_str());
    let txn = db.begin_read()?;
    let chat = txn.open_table(CHAT)?;
    let range = chat.range((tenant, session_id, after_seq + 1)..=(tenant, session_id, u64::MAX))?;
    let mut page = Vec::with_capacity(limit.min(1024));
    for entry in range.take(limit) {
        let (row_key, row) = entry?;
        page.push(decode_message(key, row_key.value().2, row.value())?);
    }
    Ok(page)
}

pub(super) fn chat_by_client_refs(
    db: &Database,
    key: &SessionKey,
    refs: &[ChatRef],
) -> Result<Vec<ChatMessage>, StoreError> {
    let (tenant, session_id) = (key.tenant.as_str(), key.session_id.as_str());
    let txn = db.begin_read()?;
    let index = txn.open_table(CHAT_BY_SENDER_REF)?;
    let mut seqs = BTreeSet::new();
    for reference in refs.iter().filter(|r| !r.client_ref.is_empty()) {
        let index_key = (
            tenant,
            session_id,
            reference.sender_id.as_str(),
            reference.client_ref.as_str(),
        );
        if let Some(seq) = index.get(index_key)? {
            seqs.insert(seq.value());
        }
    }
    let chat = txn.open_table(CHAT)?;
    let mut found = Vec::with_capacity(seqs.len());
    for seq in seqs {
        if let Some(row) = chat.get((tenant, session_id, seq))? {
            found.push(decode_message(key, seq, row.value())?);
        }
    }
    Ok(found)
}
