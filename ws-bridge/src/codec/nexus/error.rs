//! Why the NexusChat codec refuses a client frame, in words for the client's
//! developer, and the `ERROR` envelope that says so.

use meno_common::error::ErrorCode;
use meno_common::text::TextError;

use crate::codec::ErrorEnvelope;

/// A client envelope refused before it reaches the core.
///
/// The `Display` text is the `message` of the `ERROR` envelope, written for
/// the client's developer: it names the field and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NexusError {
    /// The frame is larger than `max_envelope_bytes`.
    #[error("envelope is {actual} bytes, over the limit of {limit}")]
    EnvelopeTooLarge {
        /// Size of the frame.
        actual: usize,
        /// The limit.
        limit: usize,
    },
    /// Arrays and objects nest deeper than `max_json_depth`.
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
    /// No `event` field.
    #[error("missing `event`")]
    MissingEvent,
    /// `event` is not a string.
    #[error("`event` must be a string, got {found}")]
    EventNotString {
        /// The JSON type found.
        found: &'static str,
    },
    /// `event` names nothing a client may send.
    #[error(
        "unknown event {event:?}: expected SEND_MSG, TYPING, ACK, JOIN_ROOM, LEAVE_ROOM, SIGNAL_SDP, SIGNAL_ICE or CALL_END"
    )]
    UnknownEvent {
        /// The event as sent, cut to a bounded length.
        event: String,
    },
    /// `data` is absent or null.
    #[error("missing `data`")]
    MissingData {
        /// The event.
        event: &'static str,
    },
    /// `data` is present but not an object.
    #[error("`data` must be an object, got {found}")]
    DataNotObject {
        /// The event.
        event: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// A required field is absent or null.
    #[error("missing `data.{field}`")]
    MissingField {
        /// The event.
        event: &'static str,
        /// The field's wire path below `data`.
        field: &'static str,
    },
    /// A field has the wrong JSON type.
    #[error("`data.{field}` must be {expected}, got {found}")]
    WrongType {
        /// The event.
        event: &'static str,
        /// The field's wire path below `data`.
        field: &'static str,
        /// What the field must be ("a string", "a boolean").
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// A string is not one of the names the field allows.
    #[error("`data.{field}` {value:?} is not one of {allowed}")]
    NotOneOf {
        /// The event.
        event: &'static str,
        /// The field's wire path below `data`.
        field: &'static str,
        /// The value as sent, cut to a bounded length.
        value: String,
        /// The names allowed, for the message.
        allowed: &'static str,
    },
    /// A field the message's `type` needs is absent, null or empty.
    #[error("`data.{field}` is required for type {message_type}")]
    RequiredForType {
        /// The event.
        event: &'static str,
        /// The field's wire path below `data`.
        field: &'static str,
        /// The type's wire name.
        message_type: &'static str,
    },
    /// A media URL that is not http or https.
    #[error("`data.{field}` must be an http:// or https:// URL with a host")]
    InvalidUrl {
        /// The event.
        event: &'static str,
        /// The field's wire path below `data`.
        field: &'static str,
    },
    /// A required string is empty.
    #[error("`data.{field}` must not be empty")]
    Empty {
        /// The event.
        event: &'static str,
        /// The field's wire path below `data`.
        field: &'static str,
    },
    /// A field is larger than its limit.
    #[error("`data.{field}` is {actual} {unit}, over the limit of {limit}")]
    TooLong {
        /// The event.
        event: &'static str,
        /// The field's wire path below `data`.
        field: &'static str,
        /// Its size.
        actual: usize,
        /// The limit.
        limit: usize,
        /// What is counted: "bytes" or "characters".
        unit: &'static str,
    },
    /// An id breaks the id rule.
    #[error("`data.{field}` {why}")]
    InvalidText {
        /// The event.
        event: &'static str,
        /// The field's wire path below `data`.
        field: &'static str,
        /// Which rule it breaks.
        why: TextError,
    },
    /// A number is outside the range the field allows.
    #[error("`data.{field}` must be {expected}, got {value}")]
    OutOfRange {
        /// The event.
        event: &'static str,
        /// The field's wire path below `data`.
        field: &'static str,
        /// The allowed range.
        expected: &'static str,
        /// The number as sent.
        value: String,
    },
}

impl NexusError {
    /// Every codec refusal is the client's to fix.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::InvalidArgument
    }

    /// The event the refused envelope named, when it got that far.
    pub fn event(&self) -> Option<&str> {
        match self {
            Self::EnvelopeTooLarge { .. }
            | Self::TooDeep { .. }
            | Self::MalformedJson { .. }
            | Self::NotAnObject { .. }
            | Self::MissingEvent
            | Self::EventNotString { .. } => None,
            Self::UnknownEvent { event } => Some(event),
            Self::MissingData { event }
            | Self::DataNotObject { event, .. }
            | Self::MissingField { event, .. }
            | Self::WrongType { event, .. }
            | Self::NotOneOf { event, .. }
            | Self::RequiredForType { event, .. }
            | Self::InvalidUrl { event, .. }
            | Self::Empty { event, .. }
            | Self::TooLong { event, .. }
            | Self::InvalidText { event, .. }
            | Self::OutOfRange { event, .. } => Some(event),
        }
    }

    /// The `ERROR` envelope's content; its `action` is the `event`.
    pub fn envelope(&self) -> ErrorEnvelope {
        ErrorEnvelope {
            code: self.code(),
            message: self.to_string(),
            action: self.event().map(str::to_owned),
            retry_after_ms: None,
        }
    }
}

impl crate::codec::fields::FieldError for NexusError {
    fn missing(event: &'static str, field: &'static str) -> Self {
        Self::MissingField { event, field }
    }

    fn wrong_type(
        event: &'static str,
        field: &'static str,
        expected: &'static str,
        found: &'static str,
    ) -> Self {
        Self::WrongType {
            event,
            field,
            expected,
            found,
        }
    }

    fn empty(event: &'static str, field: &'static str) -> Self {
        Self::Empty { event, field }
    }

    fn too_long(
        event: &'static str,
        field: &'static str,
        actual: usize,
        limit: usize,
        unit: &'static str,
    ) -> Self {
        Self::TooLong {
            event,
            field,
            actual,
            limit,
            unit,
        }
    }

    fn invalid_text(
        event: &'static str,
        field: &'static str,
        why: meno_common::text::TextError,
    ) -> Self {
        Self::InvalidText { event, field, why }
    }
}
