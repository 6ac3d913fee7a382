//! The NexusChat dialect (`shared/seeds/004_*.txt`, issue 14): clients send
//! `{event, traceId?, data}` envelopes and receive `{event, traceId, data}`.
//!
//! This module owns the exact wire names of that contract and the choices
//! made where the seed is silent. It decodes one client frame into a
//! [`NexusRequest`] (or a [`NexusRefusal`] that still carries the client's
//! `traceId`) and encodes one server envelope into a `String`, once per
//! event. Like every codec it must never touch a socket, the core, a clock or
//! shared state, decide policy (who may enter a room), or panic on client
//! input.
//!
//! **The mapping to seed 000** (one core, two envelopes):
//!
//! | NexusChat | seed 000 / core (`ChatMessage`) |
//! |---|---|
//! | `roomId` | `sessionId` (the session of the same tenant) |
//! | `id` | `id` (the server's message id) |
//! | `clientRef` | `messageId` (`client_ref`) |
//! | `senderId` | `participantId` (`sender_id`) |
//! | `contentText` | `content` |
//! | `contentMeta` | `meta` (`meta_json`) |
//! | `type` TEXT, IMAGE, VIDEO, AUDIO, FILE | `kind` `text`, `image`, `video`, `audio`, `file` |
//! | `createdAt` | `createdAt` (`created_at_ms`) |
//! | `userId`, `userName` (PRESENCE) | `participantId`, `name` |
//!
//! **Choices the seed leaves open**, written down here:
//! - `null` for an optional field means absent; unknown fields (top level and
//!   in `data`) are ignored. `data` is required for every client event.
//! - `traceId` is kept when it is a non-empty string of at most
//!   [`Limits::max_id_len`](super::Limits) characters that follows the id
//!   rule ([`meno_common::text::check_id_chars`]); anything else (absent,
//!   not a string, too long, control characters) is dropped without a
//!   refusal, and the caller makes one (UUIDv4). It is read before anything
//!   else in the envelope, so a refused event still gets its own `traceId`
//!   back in the `ERROR`; only a frame too large, too deep, not JSON or
//!   not a JSON object has none.
//! - Ids (`roomId`, `clientRef`, `messageId`, `targetId`) need not be UUIDs:
//!   any id seed 000 accepts, by the id rule and `max_id_len` (characters).
//!   An empty `clientRef` means none; an empty `contentText` means none, so
//!   TEXT refuses it. A whitespace-only `contentText` is not empty.
//! - `type` is upper case on the wire, exactly as the seed writes it; it is
//!   stored as the lower-case `kind`. A stored kind the dialect does not know
//!   (from a backend) and seed-000 chat (`text` or empty) show as TEXT.
//! - Media types need `contentMeta.url`: `http://` or `https://` (scheme in
//!   any case), a non-empty host, no whitespace or control characters. TEXT
//!   may carry a `contentMeta` too; media may carry a caption in
//!   `contentText`. Sizes are seed 000's (`max_content_bytes`,
//!   `max_meta_bytes`, `max_json_depth`).
//! - Server messages always carry every field of the seed's shape:
//!   `contentText` is a string for TEXT (possibly empty, from a seed-000
//!   client) and `null` for media without a caption; `contentMeta` is
//!   `null` when absent. The REST history page adds `editedAt`, always
//!   `null` (messages are never edited).
//! - Every timestamp (`createdAt`, `readAt`) is seed 000's wire format, UTC
//!   with milliseconds and `Z` (`2026-11-23T06:51:42.123Z`), also in the REST
//!   page, where the seed's example shows a zone-less time: an instant
//!   without a zone would be ambiguous.
//! - PRESENCE `status` is `offline` only for a core state that is offline or
//!   unknown; typing, speaking, muted and reconnecting are `online`.
//! - `ROOM_JOINED.lastMessages`, `members` and the REST page are encoded in
//!   the order given; callers pass messages newest first and members online.
//! - `ERROR.data` is seed 000's `error` data with `event` in place of
//!   `action`: `code` is one of seed 000's code names.
//! - WebRTC signaling: `SIGNAL_SDP` and `SIGNAL_ICE` are decoded
//!   (`sdpMLineIndex` 0..=65535, `sdp` and `candidate` non-empty and up to
//!   `max_content_bytes`, `sdpMid` up to `max_id_len` characters); their
//!   relays are the seed's shape plus `senderId` (a callee must know who
//!   calls). The seed leaves the end-call signal TBD: ours is
//!   `CALL_END {targetId}`, relayed as `CALL_END {senderId}`.

use serde_json::{Map, Value};

use super::ErrorEnvelope;

mod decode;
mod encode;
mod error;

#[cfg(test)]
mod decode_tests;
#[cfg(test)]
mod encode_tests;
#[cfg(test)]
mod proptest_tests;
#[cfg(test)]
mod refusal_tests;

pub use decode::{decode, decode_with};
#[cfg(test)]
pub(in crate::codec) use encode::typescript_declarations;
pub use encode::{
    encode_call_end, encode_call_rejected, encode_error, encode_history_page, encode_new_message,
    encode_presence, encode_read, encode_reads, encode_room_joined, encode_room_left,
    encode_signal_ice, encode_signal_sdp, encode_typing,
};
pub use error::NexusError;

/// The client events of NexusChat (`event`).
pub mod client_event {
    /// Send a message to a room.
    pub const SEND_MSG: &str = "SEND_MSG";
    /// Start or stop typing in a room.
    pub const TYPING: &str = "TYPING";
    /// A message was read.
    pub const ACK: &str = "ACK";
    /// Enter a room (ours, not the seed's).
    pub const JOIN_ROOM: &str = "JOIN_ROOM";
    /// Leave a room (ours, not the seed's).
    pub const LEAVE_ROOM: &str = "LEAVE_ROOM";
    /// A WebRTC SDP offer, answer or rollback for one user.
    pub const SIGNAL_SDP: &str = "SIGNAL_SDP";
    /// A WebRTC ICE candidate for one user.
    pub const SIGNAL_ICE: &str = "SIGNAL_ICE";
    /// End a call with one user (ours: the seed leaves it TBD).
    pub const CALL_END: &str = "CALL_END";
}

/// The server events of NexusChat (`event`).
pub mod server_event {
    /// One message in a room.
    pub const NEW_MESSAGE: &str = "NEW_MESSAGE";
    /// Someone started or stopped typing.
    pub const TYPING: &str = "TYPING";
    /// Someone came online or went offline.
    pub const PRESENCE: &str = "PRESENCE";
    /// Someone's read position moved (ours).
    pub const READ: &str = "READ";
    /// The answer to JOIN_ROOM, and to each room named at connect (ours).
    pub const ROOM_JOINED: &str = "ROOM_JOINED";
    /// The answer to LEAVE_ROOM (ours).
    pub const ROOM_LEFT: &str = "ROOM_LEFT";
    /// A relayed SDP signal.
    pub const SIGNAL_SDP: &str = "SIGNAL_SDP";
    /// A relayed ICE candidate.
    pub const SIGNAL_ICE: &str = "SIGNAL_ICE";
    /// A call offer to a busy user.
    pub const CALL_REJECTED: &str = "CALL_REJECTED";
    /// The other user ended the call (ours).
    pub const CALL_END: &str = "CALL_END";
    /// A refusal, to the sender only.
    pub const ERROR: &str = "ERROR";
}

/// The `type` names a client may send, for refusals.
const MESSAGE_TYPE_NAMES: &str = "TEXT, IMAGE, VIDEO, AUDIO, FILE";

/// A message's `type`, stored as the core's `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Text in `contentText`.
    Text,
    /// An image at `contentMeta.url`.
    Image,
    /// A video at `contentMeta.url`.
    Video,
    /// Audio at `contentMeta.url`.
    Audio,
    /// Any other file at `contentMeta.url`.
    File,
}

impl MessageType {
    /// Every type, in the seed's order.
    pub const ALL: [Self; 5] = [
        Self::Text,
        Self::Image,
        Self::Video,
        Self::Audio,
        Self::File,
    ];

    /// The wire name (`TEXT`).
    pub fn wire_name(self) -> &'static str {
        match self {
            Self::Text => "TEXT",
            Self::Image => "IMAGE",
            Self::Video => "VIDEO",
            Self::Audio => "AUDIO",
            Self::File => "FILE",
        }
    }

    /// The stored `kind` (`text`), which seed-000 clients see as `kind`.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Image => "image",
            Self::Video => "video",
            Self::Audio => "audio",
            Self::File => "file",
        }
    }

    /// The type a client names, exactly as the seed spells it.
    pub fn from_wire_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.wire_name() == name)
    }

    /// The type a stored `kind` shows as: seed-000 chat (`text`, empty) and
    /// kinds this dialect does not know are TEXT.
    pub fn from_kind(kind: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|known| known.kind().eq_ignore_ascii_case(kind))
            .unwrap_or(Self::Text)
    }

    /// Whether the type needs `contentMeta.url`.
    pub fn is_media(self) -> bool {
        self != Self::Text
    }
}

/// A WebRTC session description's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SdpType {
    /// Starts a call (the seed marks the caller busy).
    Offer,
    /// Accepts one.
    Answer,
    /// Undoes an offer.
    Rollback,
}

impl SdpType {
    /// The wire name (`offer`).
    pub fn wire_name(self) -> &'static str {
        match self {
            Self::Offer => "offer",
            Self::Answer => "answer",
            Self::Rollback => "rollback",
        }
    }

    /// The type a client names.
    pub fn from_wire_name(name: &str) -> Option<Self> {
        [Self::Offer, Self::Answer, Self::Rollback]
            .into_iter()
            .find(|kind| kind.wire_name() == name)
    }
}

/// What a NexusChat client asked for, decoded and validated.
#[derive(Debug, Clone, PartialEq)]
pub enum NexusCommand {
    /// `SEND_MSG`: append a message to a room (seed 000's `chat.send`).
    SendMessage {
        /// The room (session) id.
        room_id: String,
        /// The message type; decides what is required.
        message_type: MessageType,
        /// The text: always present for TEXT; an optional caption otherwise.
        content_text: Option<String>,
        /// Structured extras; for media, an object with an http(s) `url`.
        content_meta: Option<Map<String, Value>>,
        /// The client's idempotency key (stored `client_ref`).
        client_ref: Option<String>,
    },
    /// `TYPING`: start or stop typing in a room.
    Typing {
        /// The room.
        room_id: String,
        /// Whether the user is typing.
        is_typing: bool,
    },
    /// `ACK`: the user read up to this message.
    Ack {
        /// The server's id of the message.
        message_id: String,
    },
    /// `JOIN_ROOM`: enter a room.
    JoinRoom {
        /// The room.
        room_id: String,
    },
    /// `LEAVE_ROOM`: leave a room.
    LeaveRoom {
        /// The room.
        room_id: String,
    },
    /// `SIGNAL_SDP`: relay a session description to one user.
    SignalSdp {
        /// The recipient's user id.
        target_id: String,
        /// Offer, answer or rollback.
        sdp_type: SdpType,
        /// The SDP text, relayed as is.
        sdp: String,
    },
    /// `SIGNAL_ICE`: relay an ICE candidate to one user.
    SignalIce {
        /// The recipient's user id.
        target_id: String,
        /// The candidate line, relayed as is.
        candidate: String,
        /// The media stream identification, when sent.
        sdp_mid: Option<String>,
        /// The media line index.
        sdp_m_line_index: u16,
    },
    /// `CALL_END` (ours): end the call with one user.
    CallEnd {
        /// The other user.
        target_id: String,
    },
}

/// One decoded client frame.
#[derive(Debug, Clone, PartialEq)]
pub struct NexusRequest {
    /// The event's wire name, echoed in an `ERROR` that refuses it later.
    pub event: &'static str,
    /// The client's `traceId` when sane; `None`: the caller makes one.
    pub trace_id: Option<String>,
    /// What to do.
    pub command: NexusCommand,
}

/// A client frame refused by the codec, with the `traceId` to answer it with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct NexusRefusal {
    /// The client's `traceId` when it could be read and was sane.
    pub trace_id: Option<String>,
    /// What was wrong.
    pub error: NexusError,
}

impl NexusRefusal {
    /// The `ERROR` envelope's content.
    pub fn envelope(&self) -> ErrorEnvelope {
        self.error.envelope()
    }
}
