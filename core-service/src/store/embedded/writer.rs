//! The redb writer thread ([`group_commit`]): it applies a batch in order in
//! one redb write transaction and commits it durably (one fsync for all). A
//! request whose condition fails (lease epoch) or whose stored row cannot be
//! decoded is rejected alone, before any of its writes are made, so it never
//! takes the rest of the batch down with it. A failure of the database itself
//! fails the whole batch: nothing of it was committed.

use std::sync::atomic::{AtomicU64, Ordering};

use meno_proto::ChatMessage;
use prost::Message;
use redb::{Database, Durability, ReadableTable, Table, WriteTransaction};
use tokio::sync::mpsc;

use super::{CHAT, CHAT_BY_SENDER_REF, CONNECTIONS, MESSAGE_IDS, PRESENCE, READS, SESSIONS};
use crate::store::group_commit::{self, SpanName, WriteRequest};
use crate::store::rows::{decode, ConnectionRow, MessageLocationRow, SessionRow};
use crate::store::{SessionKey, SessionWrite, StoreError};

/// Serves requests until every sender is gone, then returns; what was queued
/// before the channel closed is still committed.
pub(super) fn run(db: &Database, queue: mpsc::Receiver<WriteRequest>, commits: &AtomicU64) {
    group_commit::run(queue, SpanName::Redb, |batch| {
        let BatchOutcome {
            outcomes,
            committed,
        } = apply_batch(db, batch)?;
        if committed {
            commits.fetch_add(1, Ordering::Relaxed);
        }
        Ok(outcomes)
    });
}

struct BatchOutcome {
    /// One per request, in order: `Ok` if applied, else why it was rejected.
    outcomes: Vec<Result<(), StoreError>>,
    /// False when every request was rejected and nothing was committed.
    committed: bool,
}

fn apply_batch(db: &Database, batch: &[WriteRequest]) -> Result<BatchOutcome, StoreError> {
    let mut txn = db.begin_write()?;
    // Callers publish as soon as we reply, so the commit must be on disk.
    txn.set_durability(Durability::Immediate)?;
    let outcomes = {
        let mut tables = Tables::open(&txn)?;
        batch
            .iter()
            .map(|request| tables.apply(&request.key, &request.write))
            .collect::<Result<Vec<_>, StoreError>>()?
    };
    let committed = outcomes.iter().any(Result::is_ok);
    if committed {
        txn.commit()?;
    } else {
        txn.abort()?;
    }
    Ok(BatchOutcome {
        outcomes,
        committed,
    })
}

type PairKey = (&'static str, &'static str);
type TripleKey = (&'static str, &'static str, &'static str);
type QuadKey = (&'static str, &'static str, &'static str, &'static str);
type SeqKey = (&'static str, &'static str, u64);

/// The tables of one write transaction.
struct Tables<'txn> {
    sessions: Table<'txn, PairKey, &'static [u8]>,
    chat: Table<'txn, SeqKey, &'static [u8]>,
    client_refs: Table<'txn, QuadKey, u64>,
    presence: Table<'txn, TripleKey, &'static [u8]>,
    connections: Table<'txn, TripleKey, &'static [u8]>,
    reads: Table<'txn, TripleKey, &'static [u8]>,
    message_ids: Table<'txn, PairKey, &'static [u8]>,
}

impl<'txn> Tables<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            sessions: txn.open_table(SESSIONS)?,
            chat: txn.open_table(CHAT)?,
            client_refs: txn.open_table(CHAT_BY_SENDER_REF)?,
            presence: txn.open_table(PRESENCE)?,
            connections: txn.open_table(CONNECTIONS)?,
            reads: txn.open_table(READS)?,
            message_ids: txn.open_table(MESSAGE_IDS)?,
        })
    }

    /// Applies one request. The outer error is a database failure (the batch
    /// is lost); the inner one rejects this request alone, and is only ever
    /// returned before anything of it was written.
    fn apply(
        &mut self,
        key: &SessionKey,
        write: &SessionWrite,
    ) -> Result<Result<(), StoreError>, StoreError> {
        let (tenant, session_id) = (key.tenant.as_str(), key.session_id.as_str());

        // Checks: reads only.
        let touches_session_row = SessionRow::is_touched_by(write);
        // No row and a row without a lease both read as "no lease" (`None`).
        let mut session = SessionRow::default();
        if touches_session_row {
            if let Some(row) = self.sessions.get((tenant, session_id))? {
                match decode::<SessionRow>(row.value(), || format!("session row {key}")) {
                    Ok(stored) => session = stored,
                    Err(err) => return Ok(Err(err)),
                }
            }
        }
        if let Err(conflict) = session.check_lease(key, write) {
            return Ok(Err(conflict));
        }

        // Writes: from here on only a database failure can stop us.
        if touches_session_row {
            session.apply(write);
            self.sessions
                .insert((tenant, session_id), session.encode_to_vec().as_slice())?;
        }
        for message in &write.messages {
            self.append_message(tenant, session_id, message)?;
        }
        // Rows written whole first, then deletions, as in the memory store.
        for presence in &write.presence {
            let row_key = (tenant, session_id, presence.participant_id.as_str());
            self.presence
                .insert(row_key, presence.encode_to_vec().as_slice())?;
        }
        for participant_id in &write.presence_removed {
            self.presence
                .remove((tenant, session_id, participant_id.as_str()))?;
        }
        for connection in &write.connections {
            let row_key = (tenant, session_id, connection.info.connection_id.as_str());
            let row = ConnectionRow::from(connection).encode_to_vec();
            self.connections.insert(row_key, row.as_slice())?;
        }
        for connection_id in &write.connections_removed {
            self.connections
                .remove((tenant, session_id, connection_id.as_str()))?;
        }
        for position in &write.reads {
            let row_key = (tenant, session_id, position.user_id.as_str());
            self.reads
                .insert(row_key, position.encode_to_vec().as_slice())?;
        }
        Ok(Ok(()))
    }

    /// Stores `message` and its index entries, unless its seq or its sender's
    /// client_ref is already taken: history is append-only and the first
    /// message stored under a reference wins (a retried send is stored once).
    fn append_message(
        &mut self,
        tenant: &str,
        session_id: &str,
        message: &ChatMessage,
    ) -> Result<(), StoreError> {
        let row_key = (tenant, session_id, message.seq);
        if self.chat.get(row_key)?.is_some() {
            return Ok(());
        }
        if !message.client_ref.is_empty() {
            let index_key = (
                tenant,
                session_id,
                message.sender_id.as_str(),
                message.client_ref.as_str(),
            );
            if self.client_refs.get(index_key)?.is_some() {
                return Ok(());
            }
            self.client_refs.insert(index_key, message.seq)?;
        }
        let location = MessageLocationRow {
            session_id: session_id.to_owned(),
            seq: message.seq,
        };
        self.message_ids.insert(
            (tenant, message.id.as_str()),
            location.encode_to_vec().as_slice(),
        )?;
        self.chat
            .insert(row_key, message.encode_to_vec().as_slice())?;
        Ok(())
    }
}
