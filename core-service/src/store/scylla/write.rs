//! `write_session` on CQL: the fenced lease first, then everything else of the
//! batch concurrently, so one actor batch costs about two round trips however
//! many rows it touches.
//!
//! - The lease is an LWT (`IF NOT EXISTS` / `IF epoch = ?`). Not applied means
//!   another writer moved the epoch: [`StoreError::Conflict`], and nothing of
//!   the batch is written.
//! - Chat messages already stored under their client_ref are dropped (one
//!   concurrent read per reference; with several replicas also one of the
//!   message an index row names, since a deposed owner's late write leaves
//!   an index row whose message the next owner voided). The actor is the
//!   session's only writer, so read-then-write does not race; a deposed
//!   owner's write that lands late is shadowed by the takeover's void
//!   (`written_at_us`).
//! - Chat goes in logged batches of one bucket each, one after the other in
//!   seq order: a batch still in flight after a failure is the newest. Each message goes into a logged batch
//!   with its message-id and client_ref index rows and its bucket row, so
//!   none can exist without the others; large batches are split by size,
//!   never a message.
//! - Read positions share their session's partition: one unlogged batch,
//!   each row `USING TIMESTAMP <seq>` so the furthest position wins.
//! - seq_mark is written `USING TIMESTAMP seq_mark`: the highest mark wins.
//! - Presence and connection rows of a session share its partition: one
//!   unlogged single-partition batch each, whole rows with `USING TTL`, and
//!   deletions in the same batch (same timestamp: a deletion wins).
//! - Connections by user live in other partitions: separate statements.
//!
//! When it returns `Ok`, everything is written at the configured consistency.
//! On `Err` part of it may be written; the actor then reloads the session
//! from the store, which stays consistent because every write is idempotent.

use std::collections::{BTreeSet, HashMap, HashSet};

use futures_util::future::{try_join_all, BoxFuture};
use futures_util::FutureExt;
use meno_proto::ChatMessage;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::value::{CqlValue, Row};
use tracing::Instrument;

use super::error::corrupt;
use super::positions::position_values;
use super::read::{message_at, seqs_by_client_refs};
use super::rows::{
    bucket_of, connection_by_user_values, connection_ttl_secs, connection_values, lease_columns,
    message_values, presence_values, seq_to_cql,
};
use super::Connected;
use crate::clock::{Clock, SystemClock};
use crate::store::{ChatRef, LeaseWrite, SessionKey, SessionWrite, StoreError};

/// A logged batch of chat rows stays under this many bytes of message text
/// (ScyllaDB warns at 128 KiB), unless one message alone is larger.
const CHAT_BATCH_BYTES: usize = 96 * 1024;

/// How long a connection row outlives its `expires_at` before the TTL
/// collects it: room for a late refresh, and for readers' clocks.
const CONNECTION_TTL_SLACK_SECS: i64 = 600;

type BatchRow<'a> = Box<dyn SerializeRow + Send + Sync + 'a>;
type Write<'a> = BoxFuture<'a, Result<(), StoreError>>;

pub(crate) async fn write_session(
    c: &Connected,
    presence_ttl_secs: i32,
    key: &SessionKey,
    write: SessionWrite,
) -> Result<(), StoreError> {
    if let (Some(owner_epoch), Some(seq_mark)) = (write.fence, write.seq_mark) {
        fence_seq_mark(c, key, owner_epoch, seq_mark)
            .instrument(tracing::info_span!(
                "cql.seq_block_lwt",
                db.system = "cassandra"
            ))
            .await?;
    }
    if let Some(lease) = &write.lease {
        write_lease(c, key, lease)
            .instrument(tracing::info_span!(
                "cql.lease_lwt",
                db.system = "cassandra"
            ))
            .await?;
    }
    let messages = new_messages(c, key, &write.messages, write.written_at_us.is_some())
        .instrument(tracing::info_span!(
            "cql.chat_dedupe",
            db.system = "cassandra",
            messages = write.messages.len()
        ))
        .await?;
    let removed_users = if write.connections_removed.is_empty() {
        HashMap::new()
    } else {
        connection_users(c, key, &write.connections_removed).await?
    };

    let mut writes: Vec<Write<'_>> = Vec::new();
    if let Some(seq_mark) = write.seq_mark {
        let seq_mark = seq_to_cql(seq_mark)?;
        writes.push(execute(
            c,
            &c.statements.update_seq_mark,
            (
                seq_mark,
                seq_mark,
                key.tenant.as_str(),
                key.session_id.as_str(),
            ),
        ));
    }
    if let Some(step_index) = write.step_index {
        writes.push(execute(
            c,
            &c.statements.update_step_index,
            (step_index, key.tenant.as_str(), key.session_id.as_str()),
        ));
    }
    let chunks = chunk_by_size(&messages)
        .into_iter()
        .map(|chunk| chat_batch(c, key, chunk, write.written_at_us))
        .collect::<Result<Vec<_>, _>>()?;
    if !chunks.is_empty() {
        // One chunk after the other, in seq order, stopping at the first
        // failure: a chunk that lands late is then always the newest, which
        // a takeover's void covers (it voids above the newest stored seq).
        writes.push(
            async move {
                for chunk in chunks {
                    chunk.await?;
                }
                Ok(())
            }
            .boxed(),
        );
    }
    if !write.presence.is_empty() || !write.presence_removed.is_empty() {
        let mut batch = Batch::new(BatchType::Unlogged);
        let mut values: Vec<BatchRow<'_>> = Vec::new();
        for presence in &write.presence {
            batch.append_statement(c.statements.insert_presence.clone());
            values.push(Box::new(presence_values(key, presence, presence_ttl_secs)));
        }
        for participant_id in &write.presence_removed {
            batch.append_statement(c.statements.delete_presence.clone());
            values.push(Box::new((
                key.tenant.as_str(),
                key.session_id.as_str(),
                participant_id.as_str(),
            )));
        }
        writes.push(run_batch(c, batch, values));
    }
    if !write.connections.is_empty() || !write.connections_removed.is_empty() {
        let now_ms = SystemClock.now_ms();
        let removed: HashSet<&str> = write
            .connections_removed
            .iter()
            .map(String::as_str)
            .collect();
        let mut batch = Batch::new(BatchType::Unlogged);
        let mut values: Vec<BatchRow<'_>> = Vec::new();
        for connection in &write.connections {
            let ttl =
                connection_ttl_secs(connection.expires_at_ms, now_ms, CONNECTION_TTL_SLACK_SECS);
            batch.append_statement(c.statements.insert_connection.clone());
            values.push(Box::new(connection_values(key, connection, ttl)));
            if !removed.contains(connection.info.connection_id.as_str()) {
                writes.push(execute(
                    c,
                    &c.statements.insert_connection_by_user,
                    connection_by_user_values(key, connection, ttl),
                ));
            }
        }
        for connection_id in &write.connections_removed {
            batch.append_statement(c.statements.delete_connection.clone());
            values.push(Box::new((
                key.tenant.as_str(),
                key.session_id.as_str(),
                connection_id.as_str(),
            )));
            if let Some(user_id) = removed_users.get(connection_id) {
                writes.push(execute(
                    c,
                    &c.statements.delete_connection_by_user,
                    (
                        key.tenant.as_str(),
                        user_id.clone(),
                        key.session_id.as_str(),
                        connection_id.as_str(),
                    ),
                ));
            }
        }
        writes.push(run_batch(c, batch, values));
    }
    if !write.reads.is_empty() {
        // One partition: an unlogged batch, each row with its own timestamp.
        let mut batch = Batch::new(BatchType::Unlogged);
        let mut values: Vec<BatchRow<'_>> = Vec::new();
        for position in &write.reads {
            batch.append_statement(c.statements.insert_read_position.clone());
            values.push(Box::new(position_values(key, position)?));
        }
        writes.push(run_batch(c, batch, values));
    }
    let span = tracing::info_span!(
        "cql.write",
        db.system = "cassandra",
        statements = writes.len(),
        chat_messages = messages.len()
    );
    try_join_all(writes).instrument(span).await?;
    Ok(())
}

fn execute<'a, V>(
    c: &'a Connected,
    statement: &'a scylla::statement::prepared::PreparedStatement,
    values: V,
) -> Write<'a>
where
    V: SerializeRow + Send + Sync + 'a,
{
    async move {
        c.session.execute_unpaged(statement, values).await?;
        Ok(())
    }
    .boxed()
}

fn run_batch<'a>(c: &'a Connected, mut batch: Batch, values: Vec<BatchRow<'a>>) -> Write<'a> {
    batch.set_is_idempotent(true);
    async move {
        c.session.batch(&batch, values).await?;
        Ok(())
    }
    .boxed()
}

/// The fenced seq-block reservation; `Conflict` when another owner took the
/// session since (nothing of the batch is written then).
async fn fence_seq_mark(
    c: &Connected,
    key: &SessionKey,
    owner_epoch: u64,
    seq_mark: u64,
) -> Result<(), StoreError> {
    use super::ownership::bigint;
    let result = c
        .session
        .execute_unpaged(
            &c.statements.ownership.fence_seq_mark,
            (
                bigint(seq_mark, "seq mark")?,
                key.tenant.as_str(),
                key.session_id.as_str(),
                bigint(owner_epoch, "owner epoch")?,
            ),
        )
        .await?;
    if lwt_applied(&format!("owner of {key}"), result)? {
        Ok(())
    } else {
        Err(StoreError::Deposed(format!(
            "{key} has another owner than owner epoch {owner_epoch}: this replica was deposed"
        )))
    }
}

/// The lease LWT; `Conflict` when the stored epoch is not the expected one.
async fn write_lease(
    c: &Connected,
    key: &SessionKey,
    lease: &LeaseWrite,
) -> Result<(), StoreError> {
    let (lease_id, lease_to, step_index, issued_at, expires_at, epoch) =
        lease_columns(&lease.state)?;
    let (tenant, session_id) = (key.tenant.as_str(), key.session_id.as_str());
    let result = match lease.expected_epoch {
        None => {
            c.session
                .execute_unpaged(
                    &c.statements.insert_lease,
                    (
                        tenant, session_id, lease_id, lease_to, step_index, issued_at, expires_at,
                        epoch,
                    ),
                )
                .await?
        }
        Some(expected) => {
            let expected = i64::try_from(expected).map_err(|_| {
                StoreError::Backend(format!(
                    "expected lease epoch {expected} exceeds a CQL bigint"
                ))
            })?;
            c.session
                .execute_unpaged(
                    &c.statements.update_lease,
                    (
                        lease_id, lease_to, step_index, issued_at, expires_at, epoch, tenant,
                        session_id, expected,
                    ),
                )
                .await?
        }
    };
    if applied(key, result)? {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!(
            "lease of {key}: expected epoch {:?} is no longer stored",
            lease.expected_epoch
        )))
    }
}

fn applied(
    key: &SessionKey,
    result: scylla::response::query_result::QueryResult,
) -> Result<bool, StoreError> {
    lwt_applied(&format!("lease of {key}"), result)
}

/// Reads an LWT result by its `[applied]` column: Cassandra and ScyllaDB
/// return different other columns, and in different orders.
pub(crate) fn lwt_applied(
    what: &str,
    result: scylla::response::query_result::QueryResult,
) -> Result<bool, StoreError> {
    let what = format!("LWT result of {what}");
    let rows = result
        .into_rows_result()
        .map_err(|err| corrupt(&what, err))?;
    let (index, _) = rows
        .column_specs()
        .get_by_name("[applied]")
        .ok_or_else(|| corrupt(&what, "no [applied] column"))?;
    let row: Row = rows.first_row().map_err(|err| corrupt(&what, err))?;
    match row.columns.get(index) {
        Some(Some(CqlValue::Boolean(applied))) => Ok(*applied),
        other => Err(corrupt(&what, format!("[applied] is {other:?}"))),
    }
}

/// The messages to store: the first of each sender's client_ref in the
/// batch, and only when that reference is not stored yet; empty references
/// never dedupe.
async fn new_messages<'m>(
    c: &Connected,
    key: &SessionKey,
    messages: &'m [ChatMessage],
    owned: bool,
) -> Result<Vec<&'m ChatMessage>, StoreError> {
    let mut seen = HashSet::new();
    let candidates: Vec<(&ChatMessage, Option<ChatRef>)> = messages
        .iter()
        .map(|m| (m, ChatRef::of(m)))
        .filter(|(_, reference)| {
            reference
                .as_ref()
                .is_none_or(|reference| seen.insert(reference.clone()))
        })
        .collect();
    if seen.is_empty() {
        return Ok(candidates.into_iter().map(|(m, _)| m).collect());
    }
    let indexed = seqs_by_client_refs(c, key, &seen).await?;
    let stored: HashSet<ChatRef> = if owned {
        // With several replicas, an index row whose message is not there
        // was written late by a deposed owner and voided with its message:
        // not stored.
        let present = try_join_all(indexed.into_iter().map(|(reference, seq)| async move {
            let found = message_at(c, key, seq).await?;
            let same =
                found.is_some_and(|message| ChatRef::of(&message).as_ref() == Some(reference));
            Ok::<_, StoreError>(same.then(|| reference.clone()))
        }))
        .await?;
        present.into_iter().flatten().collect()
    } else {
        indexed
            .into_iter()
            .map(|(reference, _)| reference.clone())
            .collect()
    };
    Ok(candidates
        .into_iter()
        .filter(|(_, reference)| {
            reference
                .as_ref()
                .is_none_or(|reference| !stored.contains(reference))
        })
        .map(|(m, _)| m)
        .collect())
}

/// Participant ids of connections about to be deleted, so their rows by
/// user can be deleted too.
async fn connection_users(
    c: &Connected,
    key: &SessionKey,
    connection_ids: &[String],
) -> Result<HashMap<String, String>, StoreError> {
    let result = c
        .session
        .execute_unpaged(
            &c.statements.select_connection_users,
            (key.tenant.as_str(), key.session_id.as_str(), connection_ids),
        )
        .await?;
    let what = format!("connections of {key}");
    let rows = result
        .into_rows_result()
        .map_err(|err| corrupt(&what, err))?;
    rows.rows::<(String, Option<String>)>()
        .map_err(|err| corrupt(&what, err))?
        .map(|row| {
            let (connection_id, user_id) = row.map_err(|err| corrupt(&what, err))?;
            Ok((connection_id, user_id.unwrap_or_default()))
        })
        .collect()
}

/// Chunks of at most [`CHAT_BATCH_BYTES`] (unless one message alone is
/// larger), each within one bucket, so each chunk's messages are one
/// partition, applied together.
fn chunk_by_size<'m>(messages: &[&'m ChatMessage]) -> Vec<Vec<&'m ChatMessage>> {
    let mut chunks: Vec<Vec<&ChatMessage>> = Vec::new();
    let mut bytes = 0;
    for message in messages {
        let size = message.content.len() + message.meta_json.len() + 256;
        match chunks.last_mut() {
            Some(chunk)
                if bytes + size <= CHAT_BATCH_BYTES
                    && chunk
                        .last()
                        .is_some_and(|last| bucket_of(last.seq) == bucket_of(message.seq)) =>
            {
                chunk.push(message);
                bytes += size;
            }
            _ => {
                chunks.push(vec![message]);
                bytes = size;
            }
        }
    }
    chunks
}

/// One logged batch: the messages, their message-id and (sender,
/// client_ref) index rows, their buckets; with several replicas, at the
/// time the writer last saw its ownership valid (see `void_chat`).
fn chat_batch<'a>(
    c: &'a Connected,
    key: &'a SessionKey,
    messages: Vec<&'a ChatMessage>,
    written_at_us: Option<i64>,
) -> Result<Write<'a>, StoreError> {
    let mut batch = Batch::new(BatchType::Logged);
    batch.set_timestamp(written_at_us);
    let mut values: Vec<BatchRow<'a>> = Vec::new();
    let mut buckets = BTreeSet::new();
    for message in messages {
        batch.append_statement(c.statements.insert_message.clone());
        values.push(Box::new(message_values(key, message)?));
        if !message.id.is_empty() {
            batch.append_statement(c.statements.insert_message_id.clone());
            values.push(Box::new((
                key.tenant.as_str(),
                message.id.as_str(),
                key.session_id.as_str(),
                seq_to_cql(message.seq)?,
            )));
        }
        if !message.client_ref.is_empty() {
            batch.append_statement(c.statements.insert_client_ref.clone());
            values.push(Box::new((
                key.tenant.as_str(),
                key.session_id.as_str(),
                message.sender_id.as_str(),
                message.client_ref.as_str(),
                seq_to_cql(message.seq)?,
            )));
        }
        buckets.insert(bucket_of(message.seq));
    }
    for bucket in buckets {
        batch.append_statement(c.statements.insert_bucket.clone());
        values.push(Box::new((
            key.tenant.as_str(),
            key.session_id.as_str(),
            bucket,
        )));
    }
    Ok(run_batch(c, batch, values))
}
