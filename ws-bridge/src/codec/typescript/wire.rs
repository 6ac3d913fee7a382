//! The wire shapes the codecs read or build without a Rust type of their own:
//! every client envelope's payload (the decoders read a JSON tree field by
//! field) and seed 001's direct messages and the assistant dialect's error
//! (built with `json!`). Each is checked against the real codec by
//! [`super::samples`]: client samples must decode, server samples must
//! match these declarations under `tsc`.

use serde::Serialize;
use ts_rs::{Config, TS};

/// `chat.send`.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "Seed000ChatSend")]
pub(super) struct ChatSend {
    /// The client's idempotency key: the same id twice is one message.
    pub(super) message_id: String,
    pub(super) content: String,
    /// ISO-8601, UTC with milliseconds: `2026-11-23T06:51:42.123Z`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub(super) created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "Record<string, unknown>")]
    pub(super) meta: Option<serde_json::Value>,
}

/// `presence.update`: the fields given are merged into the sender's presence.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "Seed000PresenceUpdate")]
pub(super) struct PresenceUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "Seed000SettableStatus")]
    pub(super) status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub(super) is_typing: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub(super) is_speaking: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub(super) last_seen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "Record<string, unknown>")]
    pub(super) extra: Option<serde_json::Value>,
}

/// `presence.heartbeat`.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "Seed000PresenceHeartbeat")]
pub(super) struct PresenceHeartbeat {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub(super) last_seen: Option<String>,
}

/// `control.lease.set`.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "Seed000LeaseSet")]
pub(super) struct LeaseSet {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub(super) lease_id: Option<String>,
    /// Zero or more.
    pub(super) step_index: i64,
    /// Positive; the core applies its default and cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub(super) lease_duration_ms: Option<i64>,
}

/// `control.lease.release`.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "Seed000LeaseRelease")]
pub(super) struct LeaseRelease {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub(super) lease_id: Option<String>,
}

/// `system.auth.refresh`.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "Seed000AuthRefresh")]
pub(super) struct AuthRefresh {
    pub(super) token: String,
}

/// `SEND_MSG`.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "NexusSendMsg")]
pub(super) struct SendMsg {
    pub(super) room_id: String,
    #[serde(rename = "type")]
    #[ts(type = "NexusMessageType")]
    pub(super) message_type: &'static str,
    /// Required for TEXT; a caption otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub(super) content_text: Option<String>,
    /// Required for media, with an http(s) `url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "Record<string, unknown>")]
    pub(super) content_meta: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub(super) client_ref: Option<String>,
}

/// NexusChat's client `TYPING`.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "NexusTypingRequest")]
pub(super) struct TypingRequest {
    pub(super) room_id: String,
    pub(super) is_typing: bool,
}

/// `ACK`.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "NexusAck")]
pub(super) struct Ack {
    pub(super) message_id: String,
}

/// `JOIN_ROOM` and `LEAVE_ROOM`.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "NexusRoomRequest")]
pub(super) struct RoomRequest {
    pub(super) room_id: String,
}

/// NexusChat's client `SIGNAL_SDP`.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "NexusSignalSdpRequest")]
pub(super) struct SignalSdpRequest {
    pub(super) target_id: String,
    #[serde(rename = "type")]
    #[ts(type = "NexusSdpType")]
    pub(super) sdp_type: &'static str,
    pub(super) sdp: String,
}

/// NexusChat's client `SIGNAL_ICE`.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "NexusSignalIceRequest")]
pub(super) struct SignalIceRequest {
    pub(super) target_id: String,
    pub(super) candidate: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub(super) sdp_mid: Option<String>,
    /// 0..=65535.
    pub(super) sdp_m_line_index: u16,
}

/// NexusChat's client `CALL_END`.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "NexusCallEndRequest")]
pub(super) struct CallEndRequest {
    pub(super) target_id: String,
}

/// `text_message`.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "AssistantTextMessage")]
pub(super) struct TextMessage {
    pub(super) content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub(super) session_id: Option<String>,
}

/// `voice_start`; `sessionId` is the voice session's own id.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "AssistantVoiceStart")]
pub(super) struct VoiceStart {
    pub(super) audio_format: String,
    pub(super) session_id: String,
}

/// `voice_data`: base64, standard alphabet.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "AssistantVoiceData")]
pub(super) struct VoiceData {
    pub(super) audio_data: String,
    pub(super) session_id: String,
}

/// `voice_end`.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "AssistantVoiceEnd")]
pub(super) struct VoiceEnd {
    pub(super) session_id: String,
}

/// The assistant dialect's `error`.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "AssistantError")]
pub(super) struct AssistantError {
    #[ts(type = "ErrorCode")]
    pub(super) code: &'static str,
    pub(super) message: String,
    pub(super) retryable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub(super) retry_after_ms: Option<u64>,
    /// The refused message type, when it was a known one.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub(super) refused_type: Option<String>,
}

/// Seed 001's `chat_response`: one chunk of a backend's answer.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "DirectChatResponse")]
pub(super) struct ChatResponse {
    pub(super) message_id: String,
    pub(super) content: String,
    /// The last chunk of this `messageId`.
    pub(super) is_complete: bool,
}

/// Seed 001's `typing_indicator`.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "DirectTypingIndicator")]
pub(super) struct TypingIndicator {
    pub(super) is_typing: bool,
}

/// Seed 001's `error`, from a backend: its `code` is the backend's word.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "DirectError")]
pub(super) struct DirectError {
    pub(super) code: String,
    pub(super) message: String,
    pub(super) retryable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub(super) retry_after_ms: Option<u64>,
}

/// Seed 001's `system` notice.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "DirectSystem")]
pub(super) struct SystemNotice {
    pub(super) message: String,
    /// `info` when the backend gave none.
    pub(super) level: String,
}

/// Seed 000's client payloads.
pub(super) fn seed000_declarations(cfg: &Config) -> Vec<String> {
    vec![
        ChatSend::decl(cfg),
        PresenceUpdate::decl(cfg),
        PresenceHeartbeat::decl(cfg),
        LeaseSet::decl(cfg),
        LeaseRelease::decl(cfg),
        AuthRefresh::decl(cfg),
    ]
}

/// NexusChat's client `data`.
pub(super) fn nexus_declarations(cfg: &Config) -> Vec<String> {
    vec![
        SendMsg::decl(cfg),
        TypingRequest::decl(cfg),
        Ack::decl(cfg),
        RoomRequest::decl(cfg),
        SignalSdpRequest::decl(cfg),
        SignalIceRequest::decl(cfg),
        CallEndRequest::decl(cfg),
    ]
}

/// The assistant dialect's client `data` and its `error`.
pub(super) fn assistant_declarations(cfg: &Config) -> Vec<String> {
    vec![
        TextMessage::decl(cfg),
        VoiceStart::decl(cfg),
        VoiceData::decl(cfg),
        VoiceEnd::decl(cfg),
        AssistantError::decl(cfg),
    ]
}

/// Seed 001's messages, which every dialect shows.
pub(super) fn direct_declarations(cfg: &Config) -> Vec<String> {
    vec![
        ChatResponse::decl(cfg),
        TypingIndicator::decl(cfg),
        DirectError::decl(cfg),
        SystemNotice::decl(cfg),
    ]
}
