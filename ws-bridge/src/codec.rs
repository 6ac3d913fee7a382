//! WebSocket dialects: what a client frame means and how a server event looks.
//!
//! This module owns the vocabulary every dialect shares: the decoded
//! [`ClientCommand`], the [`Limits`] a frame is checked against, the
//! [`ProtocolError`] for bad input, and the [`ErrorEnvelope`] sent back for any
//! refusal. Each dialect ([`seed000`], [`nexus`]) is a submodule with a pure
//! `decode` and one `encode_*` function per server envelope.
//!
//! Codecs must never touch sockets, the core, clocks or shared state, and must
//! never panic on client input: bad input becomes a [`ProtocolError`], which
//! the connection answers with an `error` envelope to the sender only.

use meno_common::error::{CoreError, ErrorCode};
use meno_proto::PresenceStatus;
use serde_json::{Map, Value};

pub mod assistant;
pub mod direct;
mod fields;
pub mod nexus;
pub mod seed000;
#[cfg(test)]
mod typescript;

/// Limits a client envelope is checked against before anything reaches the core.
///
/// They bound what one frame can cost the bridge and the store; the defaults
/// are generous for chat and presence and can be raised by configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole envelope, in bytes. Checked first, so nothing larger is
    /// parsed. Kept below tungstenite's own `max_message_size`, which closes
    /// the socket instead of answering.
    pub max_envelope_bytes: usize,
    /// Largest chat `content`, in UTF-8 bytes.
    pub max_content_bytes: usize,
    /// Largest `meta` (chat) or `extra` (presence) object, in bytes of compact JSON.
    pub max_meta_bytes: usize,
    /// Deepest nesting of arrays and objects in the whole envelope; the
    /// envelope itself is depth 1.
    pub max_json_depth: usize,
    /// Longest client-chosen id (`messageId`, `leaseId`), in characters.
    pub max_id_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_envelope_bytes: 64 * 1024,
            max_content_bytes: 16 * 1024,
            max_meta_bytes: 8 * 1024,
            max_json_depth: 16,
            max_id_len: 128,
        }
    }
}

/// What a client asked for, decoded and validated, independent of the dialect
/// it came in. Timestamps are Unix milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientCommand {
    /// Append a chat message.
    ChatSend {
        /// The client's idempotency key (becomes the stored `client_ref`).
        message_id: String,
        /// The message text; may be empty (an attachment-only message carries
        /// its payload in `meta`), whether that is allowed is the core's policy.
        content: String,
        /// The client's creation time; the core fills it when absent.
        created_at_ms: Option<i64>,
        /// Structured extras (attachments, tags); absent when not sent.
        meta: Option<Map<String, Value>>,
    },
    /// Merge fields into the sender's presence.
    PresenceUpdate {
        /// Only `online`, `typing`, `speaking`, `muted` or `reconnecting`:
        /// clients go offline by disconnecting.
        status: Option<PresenceStatus>,
        /// Whether the participant is typing.
        is_typing: Option<bool>,
        /// Whether the participant is speaking.
        is_speaking: Option<bool>,
        /// The client's notion of last activity.
        last_seen_ms: Option<i64>,
        /// Replaces the stored `extra` whole when present.
        extra: Option<Map<String, Value>>,
    },
    /// Keep the sender's presence alive.
    PresenceHeartbeat {
        /// The client's notion of last activity; the core uses now when absent.
        last_seen_ms: Option<i64>,
    },
    /// Take or renew the control lease and set the step.
    LeaseSet {
        /// The client's preferred lease id for a new lease.
        lease_id: Option<String>,
        /// The shared step the holder drives; never negative.
        step_index: i64,
        /// Requested duration, positive; the core applies its default and cap.
        lease_duration_ms: Option<i64>,
    },
    /// Give the control lease up.
    LeaseRelease {
        /// The lease the client believes it holds.
        lease_id: Option<String>,
    },
    /// Keepalive; answered with a pong carrying the server time.
    Ping,
    /// A fresh access token for this connection (`system.auth.refresh`).
    AuthRefresh {
        /// The new token; it must name the same participant and tenant.
        token: String,
    },
    /// Append a typed message (NexusChat's `SEND_MSG`): the kind is stored,
    /// and the core checks what it requires.
    TypedSend {
        /// The client's idempotency key; empty: none.
        client_ref: String,
        /// The stored kind (`text`, `image`, `video`, `audio`, `file`).
        kind: meno_proto::MessageKind,
        /// The text, or a media message's caption; may be empty.
        content: String,
        /// Structured extras; a media message's `url` lives here.
        meta: Option<Map<String, Value>>,
    },
    /// Start or stop typing (NexusChat's `TYPING`).
    Typing {
        /// Whether the sender types.
        is_typing: bool,
    },
    /// The sender read up to this message (NexusChat's `ACK`); the core
    /// finds its room.
    MarkRead {
        /// The server's id of the message.
        message_id: String,
    },
    /// Relay a WebRTC signal to another user (NexusChat's `SIGNAL_SDP`,
    /// `SIGNAL_ICE` and our `CALL_END`).
    Signal {
        /// The user it is for.
        target_id: String,
        /// The SDP, the candidate, or the end of the call.
        signal: meno_proto::signal_request::Kind,
    },
    /// Hand a client's text or voice to the tenant's backends (the
    /// assistant dialect, seed 003).
    Backend(BackendItem),
    /// Enter the request's room (NexusChat's `JOIN_ROOM`).
    JoinRoom,
    /// Leave the request's room (NexusChat's `LEAVE_ROOM`).
    LeaveRoom,
}

/// What the assistant dialect hands to a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendItem {
    /// Text for the assistant backend.
    Text {
        /// The text.
        content: String,
        /// The client's chat session id, empty when none.
        session_id: String,
    },
    /// A voice session starts.
    VoiceStart {
        /// Its id.
        voice_session_id: String,
        /// Its audio format.
        audio_format: String,
    },
    /// One chunk of audio.
    VoiceData {
        /// The voice session.
        voice_session_id: String,
        /// The bytes.
        audio: Vec<u8>,
    },
    /// A voice session ends.
    VoiceEnd {
        /// The voice session.
        voice_session_id: String,
    },
}

/// A client envelope the bridge refuses before it reaches the core.
///
/// The `Display` text is the `message` of the `error` envelope, written for the
/// client's developer: it names the field and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The frame is larger than [`Limits::max_envelope_bytes`].
    #[error("envelope is {actual} bytes, over the limit of {limit}")]
    EnvelopeTooLarge {
        /// Size of the frame.
        actual: usize,
        /// The limit.
        limit: usize,
    },
    /// Arrays and objects nest deeper than [`Limits::max_json_depth`].
    #[error("JSON nests deeper than {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// The frame is not JSON.
    #[error("malformed JSON: {reason}")]
    MalformedJson {
        /// The parser's complaint, with line and column.
        reason: String,
    },
    /// The frame is JSON but not an object.
    #[error("envelope must be a JSON object, got {found}")]
    NotAnObject {
        /// The JSON type found.
        found: &'static str,
    },
    /// No `action` field.
    #[error("missing `action`")]
    MissingAction,
    /// `action` is not a string.
    #[error("`action` must be a string, got {found}")]
    ActionNotString {
        /// The JSON type found.
        found: &'static str,
    },
    /// `action` names nothing this dialect knows.
    #[error("unknown action {action:?}")]
    UnknownAction {
        /// The action as sent, cut to a bounded length.
        action: String,
    },
    /// A payload is required for this action and is absent or null.
    #[error("missing `payload`")]
    MissingPayload {
        /// The action.
        action: &'static str,
    },
    /// `payload` is present but not an object.
    #[error("`payload` must be an object, got {found}")]
    PayloadNotObject {
        /// The action.
        action: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// A required payload field is absent or null.
    #[error("missing `payload.{field}`")]
    MissingField {
        /// The action.
        action: &'static str,
        /// The field's wire name.
        field: &'static str,
    },
    /// A payload field has the wrong JSON type.
    #[error("`payload.{field}` must be {expected}, got {found}")]
    WrongType {
        /// The action.
        action: &'static str,
        /// The field's wire name.
        field: &'static str,
        /// What the field must be ("a string", "an integer").
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// A timestamp field is a string but not RFC 3339.
    #[error("`payload.{field}` must be an ISO-8601 timestamp such as 2026-11-23T06:51:42.123Z: {reason}")]
    InvalidTimestamp {
        /// The action.
        action: &'static str,
        /// The field's wire name.
        field: &'static str,
        /// Why it did not parse.
        reason: String,
    },
    /// `status` is a string outside what clients may set.
    #[error(
        "`payload.status` {value:?} is not one of online, typing, speaking, muted, reconnecting"
    )]
    InvalidStatus {
        /// The action.
        action: &'static str,
        /// The status as sent, cut to a bounded length.
        value: String,
    },
    /// A string field is empty where it must not be.
    #[error("`payload.{field}` must not be empty")]
    Empty {
        /// The action.
        action: &'static str,
        /// The field's wire name.
        field: &'static str,
    },
    /// A field is larger than its limit.
    #[error("`payload.{field}` is {actual} {unit}, over the limit of {limit}")]
    TooLong {
        /// The action.
        action: &'static str,
        /// The field's wire name.
        field: &'static str,
        /// Its size.
        actual: usize,
        /// The limit.
        limit: usize,
        /// What is counted: "bytes" or "characters".
        unit: &'static str,
    },
    /// A text field breaks the rule for its kind (ids, names).
    #[error("`payload.{field}` {why}")]
    InvalidText {
        /// The action.
        action: &'static str,
        /// The field's wire name.
        field: &'static str,
        /// Which rule it breaks.
        why: meno_common::text::TextError,
    },
    /// A number is outside the range the field allows.
    #[error("`payload.{field}` must be {expected}, got {value}")]
    OutOfRange {
        /// The action.
        action: &'static str,
        /// The field's wire name.
        field: &'static str,
        /// The allowed range ("zero or more", "positive").
        expected: &'static str,
        /// The number as sent.
        value: String,
    },
}

impl ProtocolError {
    /// Every protocol error is the client's to fix.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::InvalidArgument
    }

    /// The action the refused envelope named, when it got that far.
    pub fn action(&self) -> Option<&str> {
        match self {
            Self::EnvelopeTooLarge { .. }
            | Self::TooDeep { .. }
            | Self::MalformedJson { .. }
            | Self::NotAnObject { .. }
            | Self::MissingAction
            | Self::ActionNotString { .. } => None,
            Self::UnknownAction { action } => Some(action),
            Self::MissingPayload { action }
            | Self::PayloadNotObject { action, .. }
            | Self::MissingField { action, .. }
            | Self::WrongType { action, .. }
            | Self::InvalidTimestamp { action, .. }
            | Self::InvalidStatus { action, .. }
            | Self::Empty { action, .. }
            | Self::TooLong { action, .. }
            | Self::InvalidText { action, .. }
            | Self::OutOfRange { action, .. } => Some(action),
        }
    }
}

/// An `error` envelope for the sender only: what went wrong, with a retry hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorEnvelope {
    /// The kind of failure; also decides `retryable`.
    pub code: ErrorCode,
    /// For the client's developer.
    pub message: String,
    /// The action that was refused, when known.
    pub action: Option<String>,
    /// How long to wait before retrying, when the refusal says so.
    pub retry_after_ms: Option<u64>,
}

impl ErrorEnvelope {
    /// The answer to an envelope the codec refused.
    pub fn from_protocol(err: &ProtocolError) -> Self {
        Self {
            code: err.code(),
            message: err.to_string(),
            action: err.action().map(str::to_owned),
            retry_after_ms: None,
        }
    }

    /// The answer to a refusal by the core (or by the bridge in its name).
    ///
    /// `Internal` errors go out without their detail, which may name storage
    /// internals; whoever calls this logs the original.
    pub fn from_core(err: &CoreError, action: Option<&str>) -> Self {
        let message = match err.code {
            ErrorCode::Internal => String::from("internal error"),
            _ => err.message.clone(),
        };
        Self {
            code: err.code,
            message,
            action: action.map(str::to_owned),
            retry_after_ms: err
                .retry_after
                .map(|after| u64::try_from(after.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn protocol_errors_are_invalid_argument_and_keep_the_action() {
        let err = ProtocolError::MissingField {
            action: "chat.send",
            field: "content",
        };
        assert_eq!(err.code(), ErrorCode::InvalidArgument);
        assert_eq!(err.action(), Some("chat.send"));
        let envelope = ErrorEnvelope::from_protocol(&err);
        assert_eq!(envelope.message, "missing `payload.content`");
        assert_eq!(envelope.action.as_deref(), Some("chat.send"));
        assert_eq!(envelope.retry_after_ms, None);
    }

    #[test]
    fn core_errors_keep_code_and_retry_hint() {
        let mut err = CoreError::new(ErrorCode::RateLimited, "slow down");
        err.retry_after = Some(Duration::from_millis(1500));
        let envelope = ErrorEnvelope::from_core(&err, Some("chat.send"));
        assert_eq!(envelope.code, ErrorCode::RateLimited);
        assert_eq!(envelope.message, "slow down");
        assert_eq!(envelope.action.as_deref(), Some("chat.send"));
        assert_eq!(envelope.retry_after_ms, Some(1500));
    }

    #[test]
    fn internal_errors_hide_their_detail() {
        let err = CoreError::internal("redb: table chat_by_seq corrupt at page 12");
        let envelope = ErrorEnvelope::from_core(&err, None);
        assert_eq!(envelope.code, ErrorCode::Internal);
        assert_eq!(envelope.message, "internal error");
    }
}
