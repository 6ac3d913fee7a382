//! Read positions and the message-id index on CQL: the rows, their reads, and
//! the values the writer binds. A position is written `USING TIMESTAMP
//! <seq>` (the furthest position wins, whatever order writes land in); an
//! index row goes into its message's logged batch (see `write`).

use futures_util::StreamExt;
use meno_proto::ReadPosition;
use scylla::value::CqlTimestamp;

use super::error::corrupt;
use super::rows::seq_to_cql;
use super::Connected;
use crate::store::{MessageLocation, SessionKey, StoreError};

/// A row of `select_read_positions`.
type PositionRow = (String, Option<String>, Option<i64>, Option<CqlTimestamp>);

/// Values of `insert_read_position`: the row, then its write timestamp.
pub(crate) type PositionValues<'a> = (&'a str, &'a str, &'a str, &'a str, i64, CqlTimestamp, i64);

pub(crate) fn position_values<'a>(
    key: &'a SessionKey,
    position: &'a ReadPosition,
) -> Result<PositionValues<'a>, StoreError> {
    let seq = seq_to_cql(position.seq)?;
    Ok((
        &key.tenant,
        &key.session_id,
        &position.user_id,
        &position.message_id,
        seq,
        CqlTimestamp(position.read_at_ms),
        seq,
    ))
}

/// Every user's position in the session (one partition, paged).
pub(crate) async fn read_positions(
    c: &Connected,
    key: &SessionKey,
) -> Result<Vec<ReadPosition>, StoreError> {
    let what = || format!("read positions of {key}");
    let pager = c
        .session
        .execute_iter(
            c.statements.select_read_positions.clone(),
            (&key.tenant, &key.session_id),
        )
        .await?;
    let mut rows = pager
        .rows_stream::<PositionRow>()
        .map_err(|err| corrupt(&what(), err))?;
    let mut positions = Vec::new();
    while let Some(row) = rows.next().await {
        let (user_id, message_id, seq, read_at) =
            row.map_err(|err| StoreError::Unavailable(format!("{}: {err}", what())))?;
        let seq = seq.unwrap_or_default();
        let seq = u64::try_from(seq)
            .map_err(|_| corrupt(&what(), format!("negative seq {seq} of {user_id}")))?;
        positions.push(ReadPosition {
            user_id,
            message_id: message_id.unwrap_or_default(),
            seq,
            read_at_ms: read_at.map_or(0, |at| at.0),
        });
    }
    Ok(positions)
}

/// Where `message_id` is in `tenant`.
pub(crate) async fn message_location(
    c: &Connected,
    tenant: &str,
    message_id: &str,
) -> Result<Option<MessageLocation>, StoreError> {
    let what = || format!("message id {tenant}/{message_id}");
    let result = c
        .session
        .execute_unpaged(&c.statements.select_message_id, (tenant, message_id))
        .await?;
    let rows = result
        .into_rows_result()
        .map_err(|err| corrupt(&what(), err))?;
    let Some((session_id, seq)) = rows
        .maybe_first_row::<(Option<String>, Option<i64>)>()
        .map_err(|err| corrupt(&what(), err))?
    else {
        return Ok(None);
    };
    let (Some(session_id), Some(seq)) = (session_id, seq) else {
        return Err(corrupt(&what(), "a column is missing"));
    };
    let seq = u64::try_from(seq).map_err(|_| corrupt(&what(), format!("negative seq {seq}")))?;
    Ok(Some(MessageLocation { session_id, seq }))
}
