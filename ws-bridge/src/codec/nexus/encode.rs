//! Server events → NexusChat envelopes `{event, traceId, data}`, and the
//! REST history page.
//!
//! One function per envelope, each producing the final text once; the caller
//! clones it to every socket. Every envelope carries a `traceId`: the one of
//! the client event that caused it, or one the caller made. Stored JSON
//! objects (`meta_json`) are embedded as they are, validated but never
//! re-parsed into a tree.

use meno_proto::{ChatMessage, PresenceState, PresenceStatus, ReadPosition};
use serde::Serialize;
use serde_json::value::RawValue;

use super::{server_event, MessageType, SdpType};
use crate::codec::seed000::raw_object;
use crate::codec::ErrorEnvelope;
use crate::time_fmt::format_unix_ms;

/// Sent if serialization ever failed, which the types below rule out; it keeps
/// every encoder total without a panic.
const SERIALIZATION_FAILED: &str = r#"{"event":"ERROR","traceId":"","data":{"code":"Internal","message":"internal error","retryable":false}}"#;

/// `NEW_MESSAGE`: one message in a room; also the sender-only answer to a
/// repeated `clientRef`.
pub fn encode_new_message(trace_id: &str, room_id: &str, message: &ChatMessage) -> String {
    envelope(
        server_event::NEW_MESSAGE,
        trace_id,
        MessageData::new(room_id, message),
    )
}

/// `TYPING`: `user_id` started or stopped typing in `room_id`.
pub fn encode_typing(trace_id: &str, room_id: &str, user_id: &str, is_typing: bool) -> String {
    envelope(
        server_event::TYPING,
        trace_id,
        TypingData {
            room_id,
            user_id,
            is_typing,
        },
    )
}

/// `PRESENCE`: a user came online or went offline.
pub fn encode_presence(trace_id: &str, state: &PresenceState) -> String {
    envelope(server_event::PRESENCE, trace_id, MemberData::new(state))
}

/// `READ`: `user_id`'s read position in `room_id` is now `message_id`.
pub fn encode_read(
    trace_id: &str,
    room_id: &str,
    user_id: &str,
    message_id: &str,
    read_at_ms: i64,
) -> String {
    envelope(
        server_event::READ,
        trace_id,
        ReadData {
            room_id,
            user_id,
            message_id,
            read_at: format_unix_ms(read_at_ms),
        },
    )
}

/// `ROOM_JOINED`: the room's members (online, as in `PRESENCE`) and its last
/// messages, both in the order given (messages newest first).
pub fn encode_room_joined(
    trace_id: &str,
    room_id: &str,
    members: &[PresenceState],
    last_messages: &[ChatMessage],
) -> String {
    envelope(
        server_event::ROOM_JOINED,
        trace_id,
        RoomJoinedData {
            room_id,
            members: members.iter().map(MemberData::new).collect(),
            last_messages: last_messages
                .iter()
                .map(|message| MessageData::new(room_id, message))
                .collect(),
        },
    )
}

/// `ROOM_LEFT`: the socket is out of `room_id`.
pub fn encode_room_left(trace_id: &str, room_id: &str) -> String {
    envelope(server_event::ROOM_LEFT, trace_id, RoomLeftData { room_id })
}

/// `ERROR`, for the sender only; `event` is the refused event, when known.
pub fn encode_error(trace_id: &str, error: &ErrorEnvelope) -> String {
    envelope(
        server_event::ERROR,
        trace_id,
        ErrorData {
            code: error.code.as_str(),
            message: &error.message,
            retryable: error.code.retryable(),
            retry_after_ms: error.retry_after_ms,
            event: error.action.as_deref(),
        },
    )
}

/// `SIGNAL_SDP`, relayed as received, with who sent it.
pub fn encode_signal_sdp(
    trace_id: &str,
    sender_id: &str,
    target_id: &str,
    sdp_type: SdpType,
    sdp: &str,
) -> String {
    envelope(
        server_event::SIGNAL_SDP,
        trace_id,
        SignalSdpData {
            sender_id,
            target_id,
            sdp_type: sdp_type.wire_name(),
            sdp,
        },
    )
}

/// `SIGNAL_ICE`, relayed as received, with who sent it; `sdpMid` is left
/// out when absent.
pub fn encode_signal_ice(
    trace_id: &str,
    sender_id: &str,
    target_id: &str,
    candidate: &str,
    sdp_mid: Option<&str>,
    sdp_m_line_index: u16,
) -> String {
    envelope(
        server_event::SIGNAL_ICE,
        trace_id,
        SignalIceData {
            sender_id,
            target_id,
            candidate,
            sdp_mid,
            sdp_m_line_index,
        },
    )
}

/// `CALL_END` (ours): `sender_id` ended the call.
pub fn encode_call_end(trace_id: &str, sender_id: &str) -> String {
    envelope(server_event::CALL_END, trace_id, CallEndData { sender_id })
}

/// `CALL_REJECTED`: `target_id` is in another call (status `busy`).
pub fn encode_call_rejected(
    trace_id: &str,
    caller_id: &str,
    target_id: &str,
    reason: &str,
) -> String {
    envelope(
        server_event::CALL_REJECTED,
        trace_id,
        CallRejectedData {
            caller_id,
            target_id,
            status: "busy",
            reason,
        },
    )
}

/// The body of `GET /api/rooms/{roomId}/messages`: a JSON array of the page's
/// messages in the order given (newest first), every field present.
pub fn encode_history_page(room_id: &str, messages: &[ChatMessage]) -> String {
    let rows: Vec<HistoryRow<'_>> = messages
        .iter()
        .map(|message| HistoryRow::new(room_id, message))
        .collect();
    // Cannot fail, as in `envelope`; an empty page is still a valid body.
    serde_json::to_string(&rows).unwrap_or_else(|_| String::from("[]"))
}

/// The body of `GET /api/rooms/{roomId}/reads`: every user's read position,
/// `[{userId, messageId, readAt}]`, in the order given.
pub fn encode_reads(reads: &[ReadPosition]) -> String {
    let rows: Vec<ReadRow<'_>> = reads
        .iter()
        .map(|read| ReadRow {
            user_id: &read.user_id,
            message_id: &read.message_id,
            read_at: format_unix_ms(read.read_at_ms),
        })
        .collect();
    serde_json::to_string(&rows).unwrap_or_else(|_| String::from("[]"))
}

#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "NexusReadRow"))]
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReadRow<'a> {
    user_id: &'a str,
    message_id: &'a str,
    read_at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a, T> {
    event: &'static str,
    trace_id: &'a str,
    data: T,
}

fn envelope<T: Serialize>(event: &'static str, trace_id: &str, data: T) -> String {
    // Cannot fail: every key is a string, the writer is memory, and embedded
    // JSON was validated when borrowed.
    serde_json::to_string(&Envelope {
        event,
        trace_id,
        data,
    })
    .unwrap_or_else(|_| SERIALIZATION_FAILED.to_owned())
}

/// A message as NEW_MESSAGE and ROOM_JOINED show it: every field present,
/// `null` where there is nothing.
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "NexusMessage"))]
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageData<'a> {
    id: &'a str,
    room_id: &'a str,
    sender_id: &'a str,
    #[serde(rename = "type")]
    #[cfg_attr(test, ts(type = "NexusMessageType"))]
    message_type: &'static str,
    content_text: Option<&'a str>,
    #[cfg_attr(test, ts(type = "Record<string, unknown> | null"))]
    content_meta: Option<&'a RawValue>,
    created_at: String,
}

impl<'a> MessageData<'a> {
    fn new(room_id: &'a str, message: &'a ChatMessage) -> Self {
        let message_type = MessageType::from_kind(&message.kind);
        // TEXT always has its text, even empty (a seed-000 client may send
        // that); a media message without a caption has none.
        let content_text = Some(message.content.as_str())
            .filter(|text| message_type == MessageType::Text || !text.is_empty());
        Self {
            id: &message.id,
            room_id,
            sender_id: &message.sender_id,
            message_type: message_type.wire_name(),
            content_text,
            content_meta: raw_object(&message.meta_json),
            created_at: format_unix_ms(message.created_at_ms),
        }
    }
}

/// A message as the REST history shows it: the NEW_MESSAGE fields and
/// `editedAt`, which is always `null` (messages are never edited).
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "NexusHistoryRow"))]
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HistoryRow<'a> {
    #[serde(flatten)]
    message: MessageData<'a>,
    #[cfg_attr(test, ts(type = "null"))]
    edited_at: Option<String>,
}

impl<'a> HistoryRow<'a> {
    fn new(room_id: &'a str, message: &'a ChatMessage) -> Self {
        Self {
            message: MessageData::new(room_id, message),
            edited_at: None,
        }
    }
}

#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "NexusTyping"))]
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TypingData<'a> {
    room_id: &'a str,
    user_id: &'a str,
    is_typing: bool,
}

/// A user as PRESENCE and ROOM_JOINED's `members` show them.
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "NexusMember"))]
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MemberData<'a> {
    user_id: &'a str,
    user_name: &'a str,
    #[cfg_attr(test, ts(type = "\"online\" | \"offline\""))]
    status: &'static str,
}

impl<'a> MemberData<'a> {
    fn new(state: &'a PresenceState) -> Self {
        Self {
            user_id: &state.participant_id,
            user_name: &state.name,
            status: online_or_offline(state.status),
        }
    }
}

#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "NexusRead"))]
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReadData<'a> {
    room_id: &'a str,
    user_id: &'a str,
    message_id: &'a str,
    read_at: String,
}

#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "NexusRoomJoined"))]
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RoomJoinedData<'a> {
    room_id: &'a str,
    members: Vec<MemberData<'a>>,
    last_messages: Vec<MessageData<'a>>,
}

#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "NexusRoomLeft"))]
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RoomLeftData<'a> {
    room_id: &'a str,
}

#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "NexusError"))]
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorData<'a> {
    #[cfg_attr(test, ts(type = "ErrorCode"))]
    code: &'static str,
    message: &'a str,
    retryable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    retry_after_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    event: Option<&'a str>,
}

#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "NexusSignalSdp"))]
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SignalSdpData<'a> {
    sender_id: &'a str,
    target_id: &'a str,
    #[serde(rename = "type")]
    #[cfg_attr(test, ts(type = "NexusSdpType"))]
    sdp_type: &'static str,
    sdp: &'a str,
}

#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "NexusSignalIce"))]
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SignalIceData<'a> {
    sender_id: &'a str,
    target_id: &'a str,
    candidate: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    sdp_mid: Option<&'a str>,
    sdp_m_line_index: u16,
}

#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "NexusCallEnd"))]
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CallEndData<'a> {
    sender_id: &'a str,
}

#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "NexusCallRejected"))]
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CallRejectedData<'a> {
    caller_id: &'a str,
    target_id: &'a str,
    #[cfg_attr(test, ts(type = "\"busy\""))]
    status: &'static str,
    reason: &'a str,
}

/// The TypeScript declarations of every `data` above (`codec::typescript`).
#[cfg(test)]
pub(in crate::codec) fn typescript_declarations(cfg: &ts_rs::Config) -> Vec<String> {
    use ts_rs::TS;
    vec![
        MessageData::decl(cfg),
        HistoryRow::decl(cfg),
        ReadRow::decl(cfg),
        TypingData::decl(cfg),
        MemberData::decl(cfg),
        ReadData::decl(cfg),
        RoomJoinedData::decl(cfg),
        RoomLeftData::decl(cfg),
        ErrorData::decl(cfg),
        SignalSdpData::decl(cfg),
        SignalIceData::decl(cfg),
        CallEndData::decl(cfg),
        CallRejectedData::decl(cfg),
    ]
}

/// Everyone the core holds present is online to NexusChat, which knows only
/// two states; offline or unknown is offline, never claiming presence.
fn online_or_offline(status: i32) -> &'static str {
    match PresenceStatus::try_from(status) {
        Ok(
            PresenceStatus::Online
            | PresenceStatus::Typing
            | PresenceStatus::Speaking
            | PresenceStatus::Muted
            | PresenceStatus::Reconnecting,
        ) => "online",
        Ok(PresenceStatus::Offline | PresenceStatus::Unspecified) | Err(_) => "offline",
    }
}
