//! The writer thread: group commit for the embedded store.
//!
//! It takes every request queued (up to [`MAX_BATCH`]), applies them in order
//! in one redb write transaction, commits it durably (one fsync for all), and
//! only then replies. A request whose condition fails (lease epoch) or whose
//! stored row cannot be decoded is rejected alone, before any of its writes are
//! made, so it never takes the rest of the batch down with it. A failure of the
//! database itself fails the whole batch: nothing of it was committed.

use std::sync::atomic::{AtomicU64, Ordering};

use meno_proto::ChatMessage;
use prost::Message;
use redb::{Database, Durability, ReadableTable, Table, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use super::rows::{decode, ConnectionRow, MessageLocationRow, SessionRow};
use super::{CHAT, CHAT_BY_SENDER_REF, CONNECTIONS, MESSAGE_IDS, PRESENCE, READS, SESSIONS};
use crate::store::{SessionKey, SessionWrite, StoreError};

/// At most this many requests share one transaction, so one commit stays
/// bounded in size and the first caller in a burst is not starved.
const MAX_BATCH: usize = 1024;

/// One `write_session` call waiting for the writer.
#[derive(Debug)]
pub(super) struct WriteRequest {
    pub(super) key: SessionKey,
    pub(super) write: SessionWrite,
    pub(super) reply: oneshot::Sender<Result<(), StoreError>>,
    /// The caller's span: the commit that serves it joins its trace.
    pub(super) span: tracing::Span,
}

/// Serves requests until every sender is gone, then returns; what was queued
/// before the channel closed is still committed.
pub(super) fn run(db: &Database, mut queue: mpsc::Receiver<WriteRequest>, commits: &AtomicU64) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        commit_batch(db, &mut batch, commits);
    }
}

fn commit_batch(db: &Database, batch: &mut Vec<WriteRequest>, commits: &AtomicU64) {
    let span = commit_span(batch);
    let _entered = span.enter();
    match apply_batch(db, batch) {
        Ok(BatchOutcome {
            outcomes,
            committed,
        }) => {
            if committed {
                commits.fetch_add(1, Ordering::Relaxed);
            }
            for (request, outcome) in batch.drain(..).zip(outcomes) {
                // A caller that stopped waiting is no reason to fail the others.
                let _ = request.reply.send(outcome);
            }
        }
        Err(err) => {
            tracing::error!(error = %err, requests = batch.len(), "store batch failed");
            for request in batch.drain(..) {
                let _ = request.reply.send(Err(same_error(&err)));
            }
        }
    }
}

/// One transaction serves many callers, often of several traces: its span is
/// a child of the first caller's and linked to the others'.
fn commit_span(batch: &[WriteRequest]) -> tracing::Span {
    let mut traced = batch.iter().filter_map(|request| request.span.id());
    let span = tracing::info_span!(
        parent: traced.next(),
        "redb.group_commit",
        requests = batch.len(),
    );
    for other in traced {
        span.follows_from(other);
    }
    span
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
        let touches_session_row =
            write.seq_mark.is_some() || write.step_index.is_some() || write.lease.is_some();
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
        if let Some(lease) = &write.lease {
            let stored_epoch = session.lease.as_ref().map(|stored| stored.epoch);
            if stored_epoch != lease.expected_epoch {
                return Ok(Err(StoreError::Conflict(format!(
                    "lease of {key}: expected epoch {:?}, stored {stored_epoch:?}",
                    lease.expected_epoch
                ))));
            }
        }

        // Writes: from here on only a database failure can stop us.
        if touches_session_row {
            if let Some(seq_mark) = write.seq_mark {
                session.seq_mark = session.seq_mark.max(seq_mark);
            }
            if let Some(step_index) = write.step_index {
                session.step_index = step_index;
            }
            if let Some(lease) = &write.lease {
                session.lease = Some(lease.state.clone());
            }
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

/// The same error again, for every caller of a failed batch.
fn same_error(err: &StoreError) -> StoreError {
    match err {
        StoreError::Unavailable(detail) => StoreError::Unavailable(detail.clone()),
        StoreError::Conflict(detail) => StoreError::Conflict(detail.clone()),
        StoreError::Deposed(detail) => StoreError::Deposed(detail.clone()),
        StoreError::Corrupt(detail) => StoreError::Corrupt(detail.clone()),
        StoreError::Backend(detail) => StoreError::Backend(detail.clone()),
    }
}
