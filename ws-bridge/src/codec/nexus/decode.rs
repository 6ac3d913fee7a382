//! NexusChat client envelopes → [`NexusRequest`].
//!
//! Checks run from cheapest to dearest: size, then nesting depth on the raw
//! text, then parsing, then `traceId` (so every later refusal can carry it),
//! then `event`, then each field in the seed's order, so the error names the
//! first thing wrong. Nothing here may panic or recurse on client input.

use serde_json::{Map, Value};

use super::{client_event, MessageType, NexusCommand, NexusError, NexusRefusal, NexusRequest};
use super::{SdpType, MESSAGE_TYPE_NAMES};
use crate::codec::seed000::{clip, json_type, nests_deeper_than};
use crate::codec::Limits;

/// Decodes one client frame with the default [`Limits`].
pub fn decode(text: &str) -> Result<NexusRequest, NexusRefusal> {
    decode_with(text, &Limits::default())
}

/// Decodes one client frame, checked against `limits`.
pub fn decode_with(text: &str, limits: &Limits) -> Result<NexusRequest, NexusRefusal> {
    let untraced = |error| NexusRefusal {
        trace_id: None,
        error,
    };
    if text.len() > limits.max_envelope_bytes {
        return Err(untraced(NexusError::EnvelopeTooLarge {
            actual: text.len(),
            limit: limits.max_envelope_bytes,
        }));
    }
    if nests_deeper_than(text, limits.max_json_depth) {
        return Err(untraced(NexusError::TooDeep {
            limit: limits.max_json_depth,
        }));
    }
    let mut envelope = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(envelope)) => envelope,
        Ok(other) => {
            return Err(untraced(NexusError::NotAnObject {
                found: json_type(&other),
            }))
        }
        Err(err) => {
            return Err(untraced(NexusError::MalformedJson {
                reason: err.to_string(),
            }))
        }
    };
    let trace_id = sane_trace_id(envelope.remove("traceId"), limits);
    match split_envelope(envelope).and_then(|(event, parse, data)| {
        parse(Fields::new(event, data), limits).map(|command| (event, command))
    }) {
        Ok((event, command)) => Ok(NexusRequest {
            event,
            trace_id,
            command,
        }),
        Err(error) => Err(NexusRefusal { trace_id, error }),
    }
}

/// The client's `traceId` when it is one worth echoing; anything else is
/// dropped silently (the caller makes one), as tracing must never refuse.
fn sane_trace_id(value: Option<Value>, limits: &Limits) -> Option<String> {
    match value {
        Some(Value::String(id))
            if !id.is_empty()
                && id.chars().count() <= limits.max_id_len
                && meno_common::text::check_id_chars(&id).is_ok() =>
        {
            Some(id)
        }
        _ => None,
    }
}

/// Parses one event's `data` into its command.
type Parse = fn(Fields, &Limits) -> Result<NexusCommand, NexusError>;

/// Every client event and its parser: adding an event is one row here (and
/// its parser).
const EVENTS: [(&str, Parse); 8] = [
    (client_event::SEND_MSG, send_message),
    (client_event::TYPING, |mut fields, limits| {
        Ok(NexusCommand::Typing {
            room_id: fields.required_id("roomId", limits)?,
            is_typing: fields.required_boolean("isTyping")?,
        })
    }),
    (client_event::ACK, |mut fields, limits| {
        Ok(NexusCommand::Ack {
            message_id: fields.required_id("messageId", limits)?,
        })
    }),
    (client_event::JOIN_ROOM, |mut fields, limits| {
        Ok(NexusCommand::JoinRoom {
            room_id: fields.required_id("roomId", limits)?,
        })
    }),
    (client_event::LEAVE_ROOM, |mut fields, limits| {
        Ok(NexusCommand::LeaveRoom {
            room_id: fields.required_id("roomId", limits)?,
        })
    }),
    (client_event::SIGNAL_SDP, signal_sdp),
    (client_event::SIGNAL_ICE, signal_ice),
    (client_event::CALL_END, |mut fields, limits| {
        Ok(NexusCommand::CallEnd {
            target_id: fields.required_id("targetId", limits)?,
        })
    }),
];

/// Splits `{event, data}` into a known event and its `data` object; every
/// other top-level key is ignored.
fn split_envelope(
    mut envelope: Map<String, Value>,
) -> Result<(&'static str, Parse, Map<String, Value>), NexusError> {
    let (event, parse) = match envelope.get("event") {
        None | Some(Value::Null) => return Err(NexusError::MissingEvent),
        Some(Value::String(name)) => known_event(name)?,
        Some(other) => {
            return Err(NexusError::EventNotString {
                found: json_type(other),
            })
        }
    };
    match envelope.remove("data") {
        None | Some(Value::Null) => Err(NexusError::MissingData { event }),
        Some(Value::Object(data)) => Ok((event, parse, data)),
        Some(other) => Err(NexusError::DataNotObject {
            event,
            found: json_type(&other),
        }),
    }
}

fn known_event(name: &str) -> Result<(&'static str, Parse), NexusError> {
    EVENTS
        .into_iter()
        .find(|(known, _)| *known == name)
        .ok_or_else(|| NexusError::UnknownEvent { event: clip(name) })
}

fn send_message(mut fields: Fields, limits: &Limits) -> Result<NexusCommand, NexusError> {
    let room_id = fields.required_id("roomId", limits)?;
    let type_name = fields.required_string("type")?;
    let message_type =
        MessageType::from_wire_name(&type_name).ok_or_else(|| NexusError::NotOneOf {
            event: fields.name,
            field: "type",
            value: clip(&type_name),
            allowed: MESSAGE_TYPE_NAMES,
        })?;
    let content_text = fields
        .string("contentText")?
        .filter(|text| !text.is_empty());
    if let Some(text) = &content_text {
        if text.len() > limits.max_content_bytes {
            return Err(fields.too_long(
                "contentText",
                text.len(),
                limits.max_content_bytes,
                "bytes",
            ));
        }
    }
    let content_meta = fields.object("contentMeta", limits)?;
    if message_type == MessageType::Text && content_text.is_none() {
        return Err(fields.required_for(message_type, "contentText"));
    }
    if message_type.is_media() {
        let meta = content_meta
            .as_ref()
            .ok_or_else(|| fields.required_for(message_type, "contentMeta"))?;
        media_url(&fields, meta, message_type)?;
    }
    let client_ref = fields.string("clientRef")?.filter(|id| !id.is_empty());
    if let Some(id) = &client_ref {
        fields.check_id("clientRef", id, limits)?;
    }
    Ok(NexusCommand::SendMessage {
        room_id,
        message_type,
        content_text,
        content_meta,
        client_ref,
    })
}

/// Checks `contentMeta.url` of a media message: a string, http or https.
fn media_url(
    fields: &Fields,
    meta: &Map<String, Value>,
    message_type: MessageType,
) -> Result<(), NexusError> {
    const FIELD: &str = "contentMeta.url";
    match meta.get("url") {
        None | Some(Value::Null) => Err(fields.required_for(message_type, FIELD)),
        Some(Value::String(url)) if is_http_url(url) => Ok(()),
        Some(Value::String(_)) => Err(NexusError::InvalidUrl {
            event: fields.name,
            field: FIELD,
        }),
        Some(other) => Err(fields.wrong_type(FIELD, "a string", other)),
    }
}

/// `http://` or `https://` (scheme in any case), then a non-empty host, and
/// no whitespace or control characters anywhere. Anything finer (ports,
/// IDNA) is for whoever fetches the URL.
fn is_http_url(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    (scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"))
        && host_end > 0
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn signal_sdp(mut fields: Fields, limits: &Limits) -> Result<NexusCommand, NexusError> {
    let target_id = fields.required_id("targetId", limits)?;
    let type_name = fields.required_string("type")?;
    let sdp_type = SdpType::from_wire_name(&type_name).ok_or_else(|| NexusError::NotOneOf {
        event: fields.name,
        field: "type",
        value: clip(&type_name),
        allowed: "offer, answer, rollback",
    })?;
    let sdp = fields.required_text("sdp", limits.max_content_bytes)?;
    Ok(NexusCommand::SignalSdp {
        target_id,
        sdp_type,
        sdp,
    })
}

fn signal_ice(mut fields: Fields, limits: &Limits) -> Result<NexusCommand, NexusError> {
    let target_id = fields.required_id("targetId", limits)?;
    let candidate = fields.required_text("candidate", limits.max_content_bytes)?;
    let sdp_mid = match fields.string("sdpMid")? {
        Some(mid) if mid.chars().count() > limits.max_id_len => {
            return Err(fields.too_long(
                "sdpMid",
                mid.chars().count(),
                limits.max_id_len,
                "characters",
            ))
        }
        mid => mid,
    };
    let sdp_m_line_index = match fields.take("sdpMLineIndex") {
        None => {
            return Err(NexusError::MissingField {
                event: fields.name,
                field: "sdpMLineIndex",
            })
        }
        Some(Value::Number(number)) => number
            .as_u64()
            .and_then(|index| u16::try_from(index).ok())
            .ok_or_else(|| NexusError::OutOfRange {
                event: fields.name,
                field: "sdpMLineIndex",
                expected: "an integer from 0 to 65535",
                value: number.to_string(),
            })?,
        Some(other) => return Err(fields.wrong_type("sdpMLineIndex", "an integer", &other)),
    };
    Ok(NexusCommand::SignalIce {
        target_id,
        candidate,
        sdp_mid,
        sdp_m_line_index,
    })
}

/// A `data` object being taken apart: the shared readers, and NexusChat's own.
type Fields = crate::codec::fields::Fields<NexusError>;

impl Fields {
    /// A required, non-empty string of at most `limit` bytes.
    fn required_text(&mut self, field: &'static str, limit: usize) -> Result<String, NexusError> {
        let text = self.required_string(field)?;
        if text.is_empty() {
            return Err(NexusError::Empty {
                event: self.name,
                field,
            });
        }
        if text.len() > limit {
            return Err(self.too_long(field, text.len(), limit, "bytes"));
        }
        Ok(text)
    }

    /// A required id by the id rule and `max_id_len`.
    fn required_id(&mut self, field: &'static str, limits: &Limits) -> Result<String, NexusError> {
        let id = self.required_string(field)?;
        self.check_id(field, &id, limits)?;
        Ok(id)
    }

    fn required_boolean(&mut self, field: &'static str) -> Result<bool, NexusError> {
        self.boolean(field)?.ok_or(NexusError::MissingField {
            event: self.name,
            field,
        })
    }

    fn required_for(&self, message_type: MessageType, field: &'static str) -> NexusError {
        NexusError::RequiredForType {
            event: self.name,
            field,
            message_type: message_type.wire_name(),
        }
    }
}
