//! Builders and helpers shared by the checks.

use meno_proto::{ChatMessage, ClientKind, ConnectionInfo, LeaseState, PresenceState};
use meno_proto::{MessageKind, PresenceStatus, ReadPosition, Role};

use super::CheckResult;
use crate::store::{
    ChatRef, LeaseWrite, SessionKey, SessionRecord, SessionWrite, Store, StoreError,
    StoredConnection, DEFAULT_TENANT,
};

/// Maps a store error to a check failure naming the call.
pub(super) trait OrFail<T> {
    fn or_fail(self, call: &str) -> Result<T, String>;
}

impl<T> OrFail<T> for Result<T, StoreError> {
    fn or_fail(self, call: &str) -> Result<T, String> {
        self.map_err(|err| format!("{call} failed: {err}"))
    }
}

pub(super) fn key(prefix: &str, name: &str) -> SessionKey {
    SessionKey::new(DEFAULT_TENANT, format!("{prefix}-{name}"))
}

pub(super) async fn load(store: &dyn Store, key: &SessionKey) -> Result<SessionRecord, String> {
    store
        .load_session(key)
        .await
        .or_fail(&format!("load_session {key}"))
}

pub(super) async fn write(store: &dyn Store, key: &SessionKey, batch: SessionWrite) -> CheckResult {
    store
        .write_session(key, batch)
        .await
        .or_fail(&format!("write_session {key}"))
}

pub(super) fn seq_mark(seq_mark: u64) -> SessionWrite {
    SessionWrite {
        seq_mark: Some(seq_mark),
        ..SessionWrite::default()
    }
}

pub(super) fn messages(messages: Vec<ChatMessage>) -> SessionWrite {
    SessionWrite {
        messages,
        ..SessionWrite::default()
    }
}

pub(super) fn lease_write(expected_epoch: Option<u64>, state: LeaseState) -> SessionWrite {
    SessionWrite {
        lease: Some(LeaseWrite {
            expected_epoch,
            state,
        }),
        ..SessionWrite::default()
    }
}

pub(super) fn seqs(messages: &[ChatMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

pub(super) fn contents(messages: &[ChatMessage]) -> Vec<String> {
    messages.iter().map(|m| m.content.clone()).collect()
}

/// The reference `message` stores a client_ref under (its sender is alice).
pub(super) fn alice_refs(client_refs: &[&str]) -> Vec<ChatRef> {
    client_refs
        .iter()
        .map(|client_ref| ChatRef::new("alice", *client_ref))
        .collect()
}

pub(super) fn message(seq: u64, client_ref: &str, content: &str) -> ChatMessage {
    ChatMessage {
        id: format!("0190-{seq:08}"),
        client_ref: client_ref.to_owned(),
        seq,
        sender_id: "alice".to_owned(),
        sender_name: "Alice".to_owned(),
        sender_role: Role::Student as i32,
        kind: "text".to_owned(),
        content: content.to_owned(),
        meta_json: r#"{"lang":"en"}"#.to_owned(),
        created_at_ms: 1_700_000_000_000 + i64::try_from(seq).unwrap_or(0),
        message_kind: MessageKind::Text as i32,
    }
}

/// `message` with a server id unique to `prefix` (the shared fixture ids
/// repeat across sessions; the message-id index is per tenant).
pub(super) fn message_with_id(
    prefix: &str,
    seq: u64,
    client_ref: &str,
    content: &str,
) -> ChatMessage {
    ChatMessage {
        id: format!("{prefix}-msg-{seq}-{client_ref}"),
        ..message(seq, client_ref, content)
    }
}

pub(super) fn read_position(user_id: &str, message_id: &str, seq: u64) -> ReadPosition {
    ReadPosition {
        user_id: user_id.to_owned(),
        message_id: message_id.to_owned(),
        seq,
        read_at_ms: 1_700_000_000_000 + i64::try_from(seq).unwrap_or(0),
    }
}

/// Read positions sorted by user (the trait promises no order).
pub(super) fn by_user(mut positions: Vec<ReadPosition>) -> Vec<ReadPosition> {
    positions.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    positions
}

pub(super) fn presence(participant_id: &str, name: &str, is_typing: bool) -> PresenceState {
    PresenceState {
        participant_id: participant_id.to_owned(),
        name: name.to_owned(),
        role: Role::Teacher as i32,
        status: PresenceStatus::Typing as i32,
        is_typing,
        is_speaking: true,
        color: "#ff8800".to_owned(),
        last_seen_ms: 1_000,
        extra_json: r#"{"hand":"raised"}"#.to_owned(),
    }
}

pub(super) fn connection(
    connection_id: &str,
    bridge_id: &str,
    expires_at_ms: i64,
) -> StoredConnection {
    StoredConnection {
        info: ConnectionInfo {
            connection_id: connection_id.to_owned(),
            participant_id: "alice".to_owned(),
            name: "Alice".to_owned(),
            role: Role::Student as i32,
            client: ClientKind::Tablet as i32,
            bridge_id: bridge_id.to_owned(),
            ip: "203.0.113.7".to_owned(),
            user_agent: "conformance".to_owned(),
            connected_at_ms: 1_000,
        },
        expires_at_ms,
    }
}

pub(super) fn lease(epoch: u64, lease_to: &str, step_index: i64) -> LeaseState {
    LeaseState {
        lease_id: format!("lease-{epoch}"),
        lease_to: lease_to.to_owned(),
        step_index,
        issued_at_ms: 1_000,
        expires_at_ms: 61_000,
        epoch,
    }
}
