//! Server events → seed-000 envelopes `{type, seq?, data}`.
//!
//! One function per envelope, each producing the final text once; the caller
//! wraps it into a frame and clones that to every socket. Stored JSON objects
//! (`meta_json`, `extra_json`) are embedded as they are, validated but never
//! re-parsed into a tree.

use std::fmt;

use meno_proto::session_event::Kind;
use meno_proto::{ChatMessage, LeaseState, PresenceState, PresenceStatus, Role, SessionEvent};
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use super::envelope_type;
use crate::codec::ErrorEnvelope;
use crate::time_fmt::{format_unix_ms, WireTime};

/// Sent if serialization ever failed, which the types below rule out; it keeps
/// every encoder total without a panic.
const SERIALIZATION_FAILED: &str =
    r#"{"type":"error","data":{"code":"Internal","message":"internal error","retryable":false}}"#;

/// Encodes one session event as the envelope seed-000 clients expect, with the
/// event's `seq`. `None` for an event without a kind (from a newer core).
pub fn encode_event(session_id: &str, event: &SessionEvent) -> Option<String> {
    let seq = Some(event.seq).filter(|seq| *seq != 0);
    match event.kind.as_ref()? {
        Kind::ChatMessage(message) => Some(encode_chat_message(session_id, seq, message)),
        Kind::Presence(state) => Some(to_json(&Envelope {
            kind: envelope_type::PRESENCE_EVENT,
            seq,
            data: PresenceData::new(Some(session_id), state),
        })),
        Kind::Lease(lease) => Some(encode_lease(session_id, seq, lease)),
        // Seed 000 has no read receipts: its clients skip that seq.
        Kind::Read(_) => None,
    }
}

/// `chat.message`: one message; also the sender-only answer to a repeated send.
pub fn encode_chat_message(session_id: &str, seq: Option<u64>, message: &ChatMessage) -> String {
    to_json(&Envelope {
        kind: envelope_type::CHAT_MESSAGE,
        seq,
        data: ChatMessageData::new(session_id, message),
    })
}

/// `chat.sync`: history in the order given (oldest first), current to `seq`.
pub fn encode_sync(session_id: &str, seq: u64, messages: &[ChatMessage]) -> String {
    to_json(&Envelope {
        kind: envelope_type::CHAT_SYNC,
        seq: Some(seq),
        data: SyncData {
            session_id,
            messages: messages
                .iter()
                .map(|message| ChatMessageData::new(session_id, message))
                .collect(),
        },
    })
}

/// `presence.snapshot`: the whole roster, current to `seq`.
pub fn encode_snapshot(session_id: &str, seq: u64, participants: &[PresenceState]) -> String {
    to_json(&Envelope {
        kind: envelope_type::PRESENCE_SNAPSHOT,
        seq: Some(seq),
        data: SnapshotData {
            session_id,
            participants: participants
                .iter()
                .map(|state| PresenceData::new(None, state))
                .collect(),
        },
    })
}

/// `control.lease.state`; a cleared lease (empty `lease_id`) has `leaseId`,
/// `leaseTo`, `issuedAt` and `expiresAt` null.
pub fn encode_lease(session_id: &str, seq: Option<u64>, lease: &LeaseState) -> String {
    let active = !lease.lease_id.is_empty();
    to_json(&Envelope {
        kind: envelope_type::LEASE_STATE,
        seq,
        data: LeaseData {
            session_id,
            lease_id: non_empty(&lease.lease_id),
            lease_to: non_empty(&lease.lease_to).filter(|_| active),
            step_index: lease.step_index,
            issued_at: active.then(|| format_unix_ms(lease.issued_at_ms)),
            expires_at: active.then(|| format_unix_ms(lease.expires_at_ms)),
            epoch: lease.epoch,
        },
    })
}

/// `system.pong` with the server's time.
pub fn encode_pong(server_time_ms: i64) -> String {
    to_json(&Envelope {
        kind: envelope_type::PONG,
        seq: None,
        data: PongData {
            server_time: format_unix_ms(server_time_ms),
        },
    })
}

/// `system.auth.refreshed`: the connection's new token was accepted.
pub fn encode_auth_refreshed(expires_at_ms: i64) -> String {
    to_json(&Envelope {
        kind: envelope_type::AUTH_REFRESHED,
        seq: None,
        data: AuthRefreshedData {
            expires_at: format_unix_ms(expires_at_ms),
        },
    })
}

/// `error`, for the sender only.
pub fn encode_error(error: &ErrorEnvelope) -> String {
    to_json(&Envelope {
        kind: envelope_type::ERROR,
        seq: None,
        data: ErrorData {
            code: error.code.as_str(),
            message: &error.message,
            action: error.action.as_deref(),
            retryable: error.code.retryable(),
            retry_after_ms: error.retry_after_ms,
        },
    })
}

#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "Seed000AuthRefreshed"))]
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AuthRefreshedData {
    expires_at: String,
}

#[derive(Serialize)]
struct Envelope<T> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    data: T,
}

#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "Seed000ChatMessage"))]
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChatMessageData<'a> {
    session_id: &'a str,
    message_id: &'a str,
    participant_id: &'a str,
    participant_name: &'a str,
    #[cfg_attr(test, ts(type = "Seed000Role"))]
    role: &'static str,
    content: &'a str,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional, type = "Record<string, unknown>"))]
    meta: Option<&'a RawValue>,
    id: &'a str,
    kind: &'a str,
    seq: u64,
}

impl<'a> ChatMessageData<'a> {
    fn new(session_id: &'a str, message: &'a ChatMessage) -> Self {
        Self {
            session_id,
            message_id: non_empty(&message.client_ref).unwrap_or(&message.id),
            participant_id: &message.sender_id,
            participant_name: &message.sender_name,
            role: role_name(message.sender_role),
            content: &message.content,
            created_at: format_unix_ms(message.created_at_ms),
            meta: raw_object(&message.meta_json),
            id: &message.id,
            kind: non_empty(&message.kind).unwrap_or("text"),
            seq: message.seq,
        }
    }
}

#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "Seed000ChatSync"))]
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SyncData<'a> {
    session_id: &'a str,
    messages: Vec<ChatMessageData<'a>>,
}

/// One participant; `sessionId` only in `presence.event`, where it stands
/// alone (the snapshot says it once, as the seed shows).
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "Seed000Presence"))]
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PresenceData<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    session_id: Option<&'a str>,
    participant_id: &'a str,
    name: &'a str,
    #[cfg_attr(test, ts(type = "Seed000Role"))]
    role: &'static str,
    #[cfg_attr(test, ts(type = "Seed000PresenceStatus"))]
    status: &'static str,
    is_typing: bool,
    is_speaking: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    color: Option<&'a str>,
    #[cfg_attr(test, ts(type = "string"))]
    last_seen: WireTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional, type = "Record<string, unknown>"))]
    extra: Option<&'a RawValue>,
}

impl<'a> PresenceData<'a> {
    fn new(session_id: Option<&'a str>, state: &'a PresenceState) -> Self {
        Self {
            session_id,
            participant_id: &state.participant_id,
            name: &state.name,
            role: role_name(state.role),
            status: status_name(state.status),
            is_typing: state.is_typing,
            is_speaking: state.is_speaking,
            color: non_empty(&state.color),
            last_seen: WireTime::new(state.last_seen_ms),
            extra: raw_object(&state.extra_json),
        }
    }
}

#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "Seed000PresenceSnapshot"))]
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotData<'a> {
    session_id: &'a str,
    participants: Vec<PresenceData<'a>>,
}

/// Null fields stay in the output: a cleared lease says so explicitly.
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "Seed000LeaseState"))]
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LeaseData<'a> {
    session_id: &'a str,
    lease_id: Option<&'a str>,
    lease_to: Option<&'a str>,
    step_index: i64,
    issued_at: Option<String>,
    expires_at: Option<String>,
    epoch: u64,
}

#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "Seed000Pong"))]
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PongData {
    server_time: String,
}

#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "Seed000Error"))]
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorData<'a> {
    #[cfg_attr(test, ts(type = "ErrorCode"))]
    code: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    action: Option<&'a str>,
    retryable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    retry_after_ms: Option<u64>,
}

/// The TypeScript declarations of every `data` above (`codec::typescript`).
#[cfg(test)]
pub(in crate::codec) fn typescript_declarations(cfg: &ts_rs::Config) -> Vec<String> {
    use ts_rs::TS;
    vec![
        ChatMessageData::decl(cfg),
        SyncData::decl(cfg),
        PresenceData::decl(cfg),
        SnapshotData::decl(cfg),
        LeaseData::decl(cfg),
        PongData::decl(cfg),
        AuthRefreshedData::decl(cfg),
        ErrorData::decl(cfg),
    ]
}

fn to_json<T: Serialize>(envelope: &T) -> String {
    // Cannot fail: every key is a string, the writer is memory, and embedded
    // JSON was validated when borrowed.
    serde_json::to_string(envelope).unwrap_or_else(|_| SERIALIZATION_FAILED.to_owned())
}

fn non_empty(text: &str) -> Option<&str> {
    Some(text).filter(|text| !text.is_empty())
}

/// Stored object text to embed; empty, `{}`, or anything that is not a JSON
/// object (the core stores only objects, so that would be corruption) is left
/// out rather than breaking the envelope.
///
/// `RawValue` alone checks only the grammar: it lets through a lone surrogate
/// escape (`"\ud800"`) or a number out of `f64` range (`1e400`), which strict
/// parsers (serde_json, Go, Java) refuse, breaking the whole envelope for
/// them. So the text is also read as [`serde_json::Value`] would read it,
/// without building the tree.
pub(in crate::codec) fn raw_object(json: &str) -> Option<&RawValue> {
    if json.is_empty() {
        return None;
    }
    let raw = serde_json::from_str::<&RawValue>(json).ok()?;
    let text = raw.get();
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    if inner.trim().is_empty() {
        return None;
    }
    serde_json::from_str::<StrictJson>(text).ok()?;
    Some(raw)
}

/// Any JSON value, read with the checks `serde_json::Value` makes (string
/// escapes, number range) and then dropped.
struct StrictJson;

impl<'de> Deserialize<'de> for StrictJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictJsonVisitor)
    }
}

struct StrictJsonVisitor;

impl<'de> Visitor<'de> for StrictJsonVisitor {
    type Value = StrictJson;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<StrictJson, E> {
        Ok(StrictJson)
    }

    fn visit_i64<E>(self, _: i64) -> Result<StrictJson, E> {
        Ok(StrictJson)
    }

    fn visit_u64<E>(self, _: u64) -> Result<StrictJson, E> {
        Ok(StrictJson)
    }

    fn visit_f64<E>(self, _: f64) -> Result<StrictJson, E> {
        Ok(StrictJson)
    }

    fn visit_str<E>(self, _: &str) -> Result<StrictJson, E> {
        Ok(StrictJson)
    }

    fn visit_unit<E>(self) -> Result<StrictJson, E> {
        Ok(StrictJson)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrictJson, A::Error> {
        while seq.next_element::<StrictJson>()?.is_some() {}
        Ok(StrictJson)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictJson, A::Error> {
        while map.next_entry::<StrictJson, StrictJson>()?.is_some() {}
        Ok(StrictJson)
    }
}

fn role_name(role: i32) -> &'static str {
    match Role::try_from(role) {
        Ok(Role::Student) => "student",
        Ok(Role::Teacher | Role::Service) => "teacher",
        Ok(Role::Observer | Role::Unspecified) | Err(_) => "observer",
    }
}

fn status_name(status: i32) -> &'static str {
    match PresenceStatus::try_from(status) {
        Ok(PresenceStatus::Online) => "online",
        Ok(PresenceStatus::Typing) => "typing",
        Ok(PresenceStatus::Speaking) => "speaking",
        Ok(PresenceStatus::Muted) => "muted",
        Ok(PresenceStatus::Reconnecting) => "reconnecting",
        Ok(PresenceStatus::Offline | PresenceStatus::Unspecified) | Err(_) => "offline",
    }
}
