//! CQL rows <-> the core's types. Encoding never writes a null: a value the
//! message does not have is `Unset` in an INSERT of a new row (no cell, no
//! tombstone), and rows written whole (presence, connections, the lease)
//! carry every column, empty strings included, so nothing survives from the
//! row they replace. Decoding never panics: a value out of range is
//! [`StoreError::Corrupt`] naming the row.

use meno_proto::{ChatMessage, ConnectionInfo, LeaseState, PresenceState};
use scylla::value::{CqlTimestamp, MaybeUnset};

use super::error::corrupt;
use crate::store::{SessionKey, StoreError, StoredConnection};

/// Seqs per chat partition: bucket = seq / CHAT_BUCKET_SEQS. Baked into
/// stored data (see migrations/0001_initial.cql): never change it in place.
pub(crate) const CHAT_BUCKET_SEQS: u64 = 10_000;

/// The chat partition of `seq`.
pub(crate) fn bucket_of(seq: u64) -> i64 {
    // seq / 10_000 < i64::MAX for every u64.
    i64::try_from(seq / CHAT_BUCKET_SEQS).unwrap_or(i64::MAX)
}

/// A seq as CQL `bigint`; seqs above `i64::MAX` are never assigned.
pub(crate) fn seq_to_cql(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| StoreError::Backend(format!("seq {seq} exceeds a CQL bigint")))
}

fn seq_from_cql(seq: i64, what: &dyn Fn() -> String) -> Result<u64, StoreError> {
    u64::try_from(seq).map_err(|_| corrupt(&what(), format!("negative seq {seq}")))
}

fn unset_if_empty(value: &str) -> MaybeUnset<&str> {
    if value.is_empty() {
        MaybeUnset::Unset
    } else {
        MaybeUnset::Set(value)
    }
}

/// Values of `insert_message`.
pub(crate) type MessageValues<'a> = (
    &'a str,
    &'a str,
    i64,
    i64,
    MaybeUnset<&'a str>,
    MaybeUnset<&'a str>,
    MaybeUnset<&'a str>,
    MaybeUnset<&'a str>,
    i32,
    MaybeUnset<&'a str>,
    MaybeUnset<&'a str>,
    MaybeUnset<&'a str>,
    CqlTimestamp,
);

pub(crate) fn message_values<'a>(
    key: &'a SessionKey,
    message: &'a ChatMessage,
) -> Result<MessageValues<'a>, StoreError> {
    Ok((
        &key.tenant,
        &key.session_id,
        bucket_of(message.seq),
        seq_to_cql(message.seq)?,
        unset_if_empty(&message.id),
        unset_if_empty(&message.client_ref),
        unset_if_empty(&message.sender_id),
        unset_if_empty(&message.sender_name),
        message.sender_role,
        unset_if_empty(&message.kind),
        unset_if_empty(&message.content),
        unset_if_empty(&message.meta_json),
        CqlTimestamp(message.created_at_ms),
    ))
}

/// A row of `CHAT_COLUMNS`.
pub(crate) type MessageRow = (
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i32>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<CqlTimestamp>,
);

pub(crate) fn message_from_row(
    key: &SessionKey,
    row: MessageRow,
) -> Result<ChatMessage, StoreError> {
    let (
        seq,
        id,
        client_ref,
        sender_id,
        sender_name,
        sender_role,
        kind,
        content,
        meta_json,
        created_at,
    ) = row;
    let seq = seq_from_cql(seq, &|| format!("chat row {key}#{seq}"))?;
    Ok(ChatMessage {
        id: id.unwrap_or_default(),
        client_ref: client_ref.unwrap_or_default(),
        seq,
        sender_id: sender_id.unwrap_or_default(),
        sender_name: sender_name.unwrap_or_default(),
        sender_role: sender_role.unwrap_or_default(),
        kind: kind.clone().unwrap_or_default(),
        content: content.unwrap_or_default(),
        meta_json: meta_json.unwrap_or_default(),
        created_at_ms: created_at.map_or(0, |at| at.0),
        // Derived, not stored: `kind` is the stored truth.
        message_kind: crate::message_kind::parse(kind.as_deref().unwrap_or_default()) as i32,
    })
}

/// The lease columns after the key (`insert_lease`'s and, with the expected
/// epoch appended, `update_lease`'s values).
pub(crate) fn lease_columns(
    lease: &LeaseState,
) -> Result<(&str, &str, i64, CqlTimestamp, CqlTimestamp, i64), StoreError> {
    let epoch = i64::try_from(lease.epoch).map_err(|_| {
        StoreError::Backend(format!("lease epoch {} exceeds a CQL bigint", lease.epoch))
    })?;
    Ok((
        &lease.lease_id,
        &lease.lease_to,
        lease.step_index,
        CqlTimestamp(lease.issued_at_ms),
        CqlTimestamp(lease.expires_at_ms),
        epoch,
    ))
}

/// A row of `select_lease`.
pub(crate) type LeaseRow = (
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<CqlTimestamp>,
    Option<CqlTimestamp>,
    Option<i64>,
);

pub(crate) fn lease_from_row(key: &SessionKey, row: LeaseRow) -> Result<LeaseState, StoreError> {
    let (lease_id, lease_to, step_index, issued_at, expires_at, epoch) = row;
    let epoch = epoch.unwrap_or_default();
    Ok(LeaseState {
        lease_id: lease_id.unwrap_or_default(),
        lease_to: lease_to.unwrap_or_default(),
        step_index: step_index.unwrap_or_default(),
        issued_at_ms: issued_at.map_or(0, |at| at.0),
        expires_at_ms: expires_at.map_or(0, |at| at.0),
        epoch: u64::try_from(epoch).map_err(|_| {
            corrupt(
                &format!("lease row {key}"),
                format!("negative epoch {epoch}"),
            )
        })?,
    })
}

/// Values of `insert_presence`: every column, and the row's TTL.
pub(crate) type PresenceValues<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    i32,
    i32,
    bool,
    bool,
    &'a str,
    CqlTimestamp,
    &'a str,
    i32,
);

pub(crate) fn presence_values<'a>(
    key: &'a SessionKey,
    presence: &'a PresenceState,
    ttl_secs: i32,
) -> PresenceValues<'a> {
    (
        &key.tenant,
        &key.session_id,
        &presence.participant_id,
        &presence.name,
        presence.role,
        presence.status,
        presence.is_typing,
        presence.is_speaking,
        &presence.color,
        CqlTimestamp(presence.last_seen_ms),
        &presence.extra_json,
        ttl_secs,
    )
}

/// A row of `select_presence`.
pub(crate) type PresenceRow = (
    String,
    Option<String>,
    Option<i32>,
    Option<i32>,
    Option<bool>,
    Option<bool>,
    Option<String>,
    Option<CqlTimestamp>,
    Option<String>,
);

pub(crate) fn presence_from_row(row: PresenceRow) -> PresenceState {
    let (participant_id, name, role, status, is_typing, is_speaking, color, last_seen, extra_json) =
        row;
    PresenceState {
        participant_id,
        name: name.unwrap_or_default(),
        role: role.unwrap_or_default(),
        status: status.unwrap_or_default(),
        is_typing: is_typing.unwrap_or_default(),
        is_speaking: is_speaking.unwrap_or_default(),
        color: color.unwrap_or_default(),
        last_seen_ms: last_seen.map_or(0, |at| at.0),
        extra_json: extra_json.unwrap_or_default(),
    }
}

/// Values of `insert_connection`: every column, and the row's TTL.
pub(crate) type ConnectionValues<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    i32,
    i32,
    &'a str,
    &'a str,
    &'a str,
    CqlTimestamp,
    CqlTimestamp,
    i32,
);

pub(crate) fn connection_values<'a>(
    key: &'a SessionKey,
    connection: &'a StoredConnection,
    ttl_secs: i32,
) -> ConnectionValues<'a> {
    let info = &connection.info;
    (
        &key.tenant,
        &key.session_id,
        &info.connection_id,
        &info.participant_id,
        &info.name,
        info.role,
        info.client,
        &info.bridge_id,
        &info.ip,
        &info.user_agent,
        CqlTimestamp(info.connected_at_ms),
        CqlTimestamp(connection.expires_at_ms),
        ttl_secs,
    )
}

/// Values of `insert_connection_by_user`.
pub(crate) fn connection_by_user_values<'a>(
    key: &'a SessionKey,
    connection: &'a StoredConnection,
    ttl_secs: i32,
) -> (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    i32,
    CqlTimestamp,
    i32,
) {
    let info = &connection.info;
    (
        &key.tenant,
        &info.participant_id,
        &key.session_id,
        &info.connection_id,
        &info.bridge_id,
        info.client,
        CqlTimestamp(connection.expires_at_ms),
        ttl_secs,
    )
}

/// A row of `select_connections`.
pub(crate) type ConnectionRow = (
    String,
    Option<String>,
    Option<String>,
    Option<i32>,
    Option<i32>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<CqlTimestamp>,
    Option<CqlTimestamp>,
);

pub(crate) fn connection_from_row(row: ConnectionRow) -> StoredConnection {
    let (
        connection_id,
        participant_id,
        name,
        role,
        client,
        bridge_id,
        ip,
        user_agent,
        connected_at,
        expires_at,
    ) = row;
    StoredConnection {
        info: ConnectionInfo {
            connection_id,
            participant_id: participant_id.unwrap_or_default(),
            name: name.unwrap_or_default(),
            role: role.unwrap_or_default(),
            client: client.unwrap_or_default(),
            bridge_id: bridge_id.unwrap_or_default(),
            ip: ip.unwrap_or_default(),
            user_agent: user_agent.unwrap_or_default(),
            connected_at_ms: connected_at.map_or(0, |at| at.0),
        },
        expires_at_ms: expires_at.map_or(0, |at| at.0),
    }
}

/// Longest TTL of a connection row: bridges refresh every ~20 s, so a day is
/// plenty, and it keeps expirations far from Cassandra's 2038 limit.
const MAX_CONNECTION_TTL_SECS: i64 = 24 * 3600;

/// TTL of a connection row: until it expires, plus `slack` so a bridge that
/// refreshes a little late does not lose the row; at most a day. The row's
/// `expires_at` is what readers go by; the TTL only collects it.
pub(crate) fn connection_ttl_secs(expires_at_ms: i64, now_ms: i64, slack_secs: i64) -> i32 {
    let remaining_secs = expires_at_ms.saturating_sub(now_ms).max(0).div_euclid(1000) + 1;
    let remaining_secs = remaining_secs.min(MAX_CONNECTION_TTL_SECS);
    i32::try_from(remaining_secs.saturating_add(slack_secs).max(1)).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_ten_thousand_seqs() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(9_999), 0);
        assert_eq!(bucket_of(10_000), 1);
        assert_eq!(
            bucket_of(u64::MAX),
            i64::try_from(u64::MAX / 10_000).unwrap()
        );
    }

    #[test]
    fn connection_ttl_covers_expiry_plus_slack_within_cql_bounds() {
        assert_eq!(connection_ttl_secs(61_000, 1_000, 600), 661);
        assert_eq!(
            connection_ttl_secs(1, 1_000_000, 600),
            601,
            "expired: slack only"
        );
        assert_eq!(
            connection_ttl_secs(i64::MAX, 0, 600),
            86_400 + 600,
            "capped"
        );
    }

    #[test]
    fn empty_strings_are_unset_in_new_rows() {
        let key = SessionKey::new("t", "s");
        let message = ChatMessage {
            seq: 12_345,
            ..ChatMessage::default()
        };
        let values = message_values(&key, &message).unwrap();
        assert_eq!(values.2, 1, "bucket");
        assert!(matches!(values.5, MaybeUnset::Unset), "client_ref");
        assert!(matches!(values.11, MaybeUnset::Unset), "meta_json");
        let too_big = ChatMessage {
            seq: u64::MAX,
            ..ChatMessage::default()
        };
        assert!(message_values(&key, &too_big).is_err());
    }
}
