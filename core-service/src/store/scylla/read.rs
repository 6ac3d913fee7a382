//! Reads of the Scylla store. A session's record comes from five
//! single-partition reads run concurrently; chat history walks the session's
//! non-empty buckets (newest first or oldest first) and pages inside each
//! with a seq cursor and a bounded `LIMIT`, so no read is unbounded.

use std::collections::BTreeSet;

use futures_util::future::try_join_all;
use futures_util::StreamExt;
use meno_proto::ChatMessage;

use super::error::corrupt;
use super::rows::{
    bucket_of, connection_from_row, lease_from_row, message_from_row, presence_from_row,
    seq_to_cql, ConnectionRow, LeaseRow, MessageRow, PresenceRow,
};
use super::Connected;
use crate::store::{ChatRef, SessionKey, SessionRecord, StoreError};

/// Most rows asked of one chat query.
const PAGE_ROWS: usize = 500;
/// Most bucket ids asked of one bucket query.
const BUCKETS_PER_QUERY: i32 = 64;

pub(crate) async fn load_session(
    c: &Connected,
    key: &SessionKey,
) -> Result<SessionRecord, StoreError> {
    let ((seq_mark, step_index), lease, participants, connections, reads) = tokio::try_join!(
        session_row(c, key),
        lease(c, key),
        presence(c, key),
        connections(c, key),
        super::positions::read_positions(c, key)
    )?;
    Ok(SessionRecord {
        seq_mark,
        step_index,
        lease,
        participants,
        connections,
        reads,
    })
}

pub(crate) async fn session_exists(c: &Connected, key: &SessionKey) -> Result<bool, StoreError> {
    Ok(session_row(c, key).await?.0 > 0)
}

async fn session_row(c: &Connected, key: &SessionKey) -> Result<(u64, i64), StoreError> {
    let result = c
        .session
        .execute_unpaged(&c.statements.select_session, (&key.tenant, &key.session_id))
        .await?;
    let rows = result
        .into_rows_result()
        .map_err(|err| corrupt(&format!("session row {key}"), err))?;
    let row = rows
        .maybe_first_row::<(Option<i64>, Option<i64>)>()
        .map_err(|err| corrupt(&format!("session row {key}"), err))?;
    let (seq_mark, step_index) = row.unwrap_or_default();
    let seq_mark = seq_mark.unwrap_or_default();
    let seq_mark = u64::try_from(seq_mark).map_err(|_| {
        corrupt(
            &format!("session row {key}"),
            format!("seq_mark {seq_mark}"),
        )
    })?;
    Ok((seq_mark, step_index.unwrap_or_default()))
}

async fn lease(
    c: &Connected,
    key: &SessionKey,
) -> Result<Option<meno_proto::LeaseState>, StoreError> {
    let result = c
        .session
        .execute_unpaged(&c.statements.select_lease, (&key.tenant, &key.session_id))
        .await?;
    let rows = result
        .into_rows_result()
        .map_err(|err| corrupt(&format!("lease row {key}"), err))?;
    rows.maybe_first_row::<LeaseRow>()
        .map_err(|err| corrupt(&format!("lease row {key}"), err))?
        .map(|row| lease_from_row(key, row))
        .transpose()
}

async fn presence(
    c: &Connected,
    key: &SessionKey,
) -> Result<Vec<meno_proto::PresenceState>, StoreError> {
    let pager = c
        .session
        .execute_iter(
            c.statements.select_presence.clone(),
            (&key.tenant, &key.session_id),
        )
        .await?;
    let mut rows = pager
        .rows_stream::<PresenceRow>()
        .map_err(|err| corrupt(&format!("presence of {key}"), err))?;
    let mut participants = Vec::new();
    while let Some(row) = rows.next().await {
        let row =
            row.map_err(|err| StoreError::Unavailable(format!("presence of {key}: {err}")))?;
        participants.push(presence_from_row(row));
    }
    Ok(participants)
}

async fn connections(
    c: &Connected,
    key: &SessionKey,
) -> Result<Vec<crate::store::StoredConnection>, StoreError> {
    let pager = c
        .session
        .execute_iter(
            c.statements.select_connections.clone(),
            (&key.tenant, &key.session_id),
        )
        .await?;
    let mut rows = pager
        .rows_stream::<ConnectionRow>()
        .map_err(|err| corrupt(&format!("connections of {key}"), err))?;
    let mut connections = Vec::new();
    while let Some(row) = rows.next().await {
        let row =
            row.map_err(|err| StoreError::Unavailable(format!("connections of {key}: {err}")))?;
        connections.push(connection_from_row(row));
    }
    Ok(connections)
}

/// Which way a history read walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    NewestFirst,
    OldestFirst,
}

/// Up to `limit` messages from seq `from` (inclusive) in `direction`.
async fn walk_history(
    c: &Connected,
    key: &SessionKey,
    from: i64,
    direction: Direction,
    limit: usize,
) -> Result<Vec<ChatMessage>, StoreError> {
    let mut found = Vec::with_capacity(limit.min(PAGE_ROWS));
    let Ok(from_seq) = u64::try_from(from) else {
        return Ok(found);
    };
    let mut next_bucket = Some(bucket_of(from_seq));
    while let Some(bucket_cursor) = next_bucket {
        let buckets = buckets(c, key, bucket_cursor, direction).await?;
        let Some(&last_bucket) = buckets.last() else {
            break;
        };
        for bucket in buckets {
            let mut seq_cursor = from;
            loop {
                let want = (limit - found.len()).min(PAGE_ROWS);
                let page = messages_page(c, key, bucket, seq_cursor, direction, want).await?;
                let exhausted = page.len() < want;
                if let Some(last) = page.last() {
                    let last_seq = seq_to_cql(last.seq)?;
                    seq_cursor = match direction {
                        Direction::NewestFirst => last_seq - 1,
                        Direction::OldestFirst => last_seq.saturating_add(1),
                    };
                }
                found.extend(page);
                if found.len() >= limit {
                    return Ok(found);
                }
                if exhausted || seq_cursor < 0 {
                    break;
                }
            }
        }
        next_bucket = match direction {
            Direction::NewestFirst => last_bucket.checked_sub(1).filter(|b| *b >= 0),
            Direction::OldestFirst => last_bucket.checked_add(1),
        };
    }
    Ok(found)
}

async fn buckets(
    c: &Connected,
    key: &SessionKey,
    from: i64,
    direction: Direction,
) -> Result<Vec<i64>, StoreError> {
    let statement = match direction {
        Direction::NewestFirst => &c.statements.select_buckets_down,
        Direction::OldestFirst => &c.statements.select_buckets_up,
    };
    let result = c
        .session
        .execute_unpaged(
            statement,
            (&key.tenant, &key.session_id, from, BUCKETS_PER_QUERY),
        )
        .await?;
    let rows = result
        .into_rows_result()
        .map_err(|err| corrupt(&format!("chat buckets of {key}"), err))?;
    rows.rows::<(i64,)>()
        .map_err(|err| corrupt(&format!("chat buckets of {key}"), err))?
        .map(|row| {
            row.map(|(bucket,)| bucket)
                .map_err(|err| corrupt(&format!("chat buckets of {key}"), err))
        })
        .collect()
}

async fn messages_page(
    c: &Connected,
    key: &SessionKey,
    bucket: i64,
    seq_cursor: i64,
    direction: Direction,
    want: usize,
) -> Result<Vec<ChatMessage>, StoreError> {
    let statement = match direction {
        Direction::NewestFirst => &c.statements.select_messages_before,
        Direction::OldestFirst => &c.statements.select_messages_after,
    };
    let want = i32::try_from(want).unwrap_or(i32::MAX);
    let result = c
        .session
        .execute_unpaged(
            statement,
            (&key.tenant, &key.session_id, bucket, seq_cursor, want),
        )
        .await?;
    decode_messages(key, result)
}

fn decode_messages(
    key: &SessionKey,
    result: scylla::response::query_result::QueryResult,
) -> Result<Vec<ChatMessage>, StoreError> {
    let rows = result
        .into_rows_result()
        .map_err(|err| corrupt(&format!("chat of {key}"), err))?;
    rows.rows::<MessageRow>()
        .map_err(|err| corrupt(&format!("chat of {key}"), err))?
        .map(|row| {
            let row = row.map_err(|err| corrupt(&format!("chat of {key}"), err))?;
            message_from_row(key, row)
        })
        .collect()
}

pub(crate) async fn chat_page(
    c: &Connected,
    key: &SessionKey,
    before_seq: Option<u64>,
    limit: usize,
) -> Result<Vec<ChatMessage>, StoreError> {
    if limit == 0 || before_seq == Some(0) {
        return Ok(Vec::new());
    }
    let newest = before_seq.map_or(u64::MAX, |before| before - 1);
    let newest = i64::try_from(newest).unwrap_or(i64::MAX);
    walk_history(c, key, newest, Direction::NewestFirst, limit).await
}

pub(crate) async fn chat_after(
    c: &Connected,
    key: &SessionKey,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<ChatMessage>, StoreError> {
    let Some(first) = after_seq.checked_add(1) else {
        return Ok(Vec::new());
    };
    let Ok(first) = i64::try_from(first) else {
        return Ok(Vec::new());
    };
    if limit == 0 {
        return Ok(Vec::new());
    }
    walk_history(c, key, first, Direction::OldestFirst, limit).await
}

/// The seqs stored under `refs` (empty client_refs ignored).
pub(crate) async fn seqs_by_client_refs<'r>(
    c: &Connected,
    key: &SessionKey,
    refs: impl IntoIterator<Item = &'r ChatRef>,
) -> Result<Vec<(&'r ChatRef, i64)>, StoreError> {
    let distinct: BTreeSet<&ChatRef> = refs
        .into_iter()
        .filter(|r| !r.client_ref.is_empty())
        .collect();
    let lookups = distinct.into_iter().map(|reference| async move {
        let what = || {
            format!(
                "client_ref {} of {} in {key}",
                reference.client_ref, reference.sender_id
            )
        };
        let result = c
            .session
            .execute_unpaged(
                &c.statements.select_client_ref,
                (
                    &key.tenant,
                    &key.session_id,
                    &reference.sender_id,
                    &reference.client_ref,
                ),
            )
            .await?;
        let rows = result
            .into_rows_result()
            .map_err(|err| corrupt(&what(), err))?;
        let seq = rows
            .maybe_first_row::<(Option<i64>,)>()
            .map_err(|err| corrupt(&what(), err))?
            .and_then(|(seq,)| seq);
        Ok::<_, StoreError>(seq.map(|seq| (reference, seq)))
    });
    Ok(try_join_all(lookups).await?.into_iter().flatten().collect())
}

/// The message stored at `seq`, if any.
pub(crate) async fn message_at(
    c: &Connected,
    key: &SessionKey,
    seq: i64,
) -> Result<Option<ChatMessage>, StoreError> {
    let bucket = u64::try_from(seq).map(bucket_of).unwrap_or(0);
    let result = c
        .session
        .execute_unpaged(
            &c.statements.select_message,
            (&key.tenant, &key.session_id, bucket, seq),
        )
        .await?;
    Ok(decode_messages(key, result)?.into_iter().next())
}

pub(crate) async fn chat_by_client_refs(
    c: &Connected,
    key: &SessionKey,
    refs: &[ChatRef],
) -> Result<Vec<ChatMessage>, StoreError> {
    let seqs: BTreeSet<i64> = seqs_by_client_refs(c, key, refs)
        .await?
        .into_iter()
        .map(|(_, seq)| seq)
        .collect();
    let fetches = seqs.into_iter().map(|seq| message_at(c, key, seq));
    Ok(try_join_all(fetches).await?.into_iter().flatten().collect())
}
