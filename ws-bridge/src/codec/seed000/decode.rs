//! Seed-000 client envelopes → [`ClientCommand`].
//!
//! Checks run from cheapest to dearest: size, then nesting depth on the raw
//! text, then parsing, then each field in the seed's order, so the error names
//! the first thing wrong. Nothing here may panic or recurse on client input.

use meno_common::text::MAX_SAFE_INTEGER;
use serde_json::{Map, Number, Value};

use super::action;
use crate::codec::{ClientCommand, Limits, ProtocolError};
use crate::time_fmt;
use meno_proto::PresenceStatus;

/// How much of a client's unknown action or status is echoed back: enough to
/// recognise a typo, not enough to reflect a payload.
const ECHO_CHARS: usize = 64;

/// Largest integer every JSON encoder writes exactly (2^53, JavaScript's
/// `Number.MAX_SAFE_INTEGER + 1`).
const MAX_EXACT_FLOAT_INTEGER: f64 = 9_007_199_254_740_992.0;

/// Decodes one client frame with the default [`Limits`].
pub fn decode(text: &str) -> Result<ClientCommand, ProtocolError> {
    decode_with(text, &Limits::default())
}

/// Decodes one client frame, checked against `limits`.
pub fn decode_with(text: &str, limits: &Limits) -> Result<ClientCommand, ProtocolError> {
    decode_request(text, limits).map(|(_, command)| command)
}

/// Decodes one client frame, checked against `limits`, with the action it
/// named (echoed in the `error` that answers a refusal by the core).
pub fn decode_request(
    text: &str,
    limits: &Limits,
) -> Result<(&'static str, ClientCommand), ProtocolError> {
    if text.len() > limits.max_envelope_bytes {
        return Err(ProtocolError::EnvelopeTooLarge {
            actual: text.len(),
            limit: limits.max_envelope_bytes,
        });
    }
    // serde_json would stop at 128 levels on its own; ours is stricter and is
    // checked before any tree is built.
    if nests_deeper_than(text, limits.max_json_depth) {
        return Err(ProtocolError::TooDeep {
            limit: limits.max_json_depth,
        });
    }
    let envelope = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(envelope)) => envelope,
        Ok(other) => {
            return Err(ProtocolError::NotAnObject {
                found: json_type(&other),
            })
        }
        Err(err) => {
            return Err(ProtocolError::MalformedJson {
                reason: err.to_string(),
            })
        }
    };
    let (action, parse, payload) = split_envelope(envelope)?;
    parse(action, payload, limits).map(|command| (action, command))
}

/// Parses one action's payload into its command.
type Parse = fn(&'static str, Payload, &Limits) -> Result<ClientCommand, ProtocolError>;

/// Every client action of seed 000 and its parser: adding an action is one
/// row here (and its parser).
const ACTIONS: [(&str, Parse); 7] = [
    (action::CHAT_SEND, |action, payload, limits| {
        chat_send(Fields::required(action, payload)?, limits)
    }),
    (action::PRESENCE_UPDATE, |action, payload, limits| {
        presence_update(Fields::required(action, payload)?, limits)
    }),
    (action::PRESENCE_HEARTBEAT, |action, payload, _| {
        Ok(ClientCommand::PresenceHeartbeat {
            last_seen_ms: Fields::optional(action, payload).timestamp("lastSeen")?,
        })
    }),
    (action::LEASE_SET, |action, payload, limits| {
        lease_set(Fields::required(action, payload)?, limits)
    }),
    (action::LEASE_RELEASE, |action, payload, limits| {
        Ok(ClientCommand::LeaseRelease {
            lease_id: Fields::optional(action, payload).lease_id(limits)?,
        })
    }),
    (action::PING, |_, _, _| Ok(ClientCommand::Ping)),
    (action::AUTH_REFRESH, |action, payload, _| {
        auth_refresh(Fields::required(action, payload)?)
    }),
];

fn auth_refresh(mut fields: Fields) -> Result<ClientCommand, ProtocolError> {
    let token = fields.required_string("token")?;
    if token.len() > MAX_TOKEN_BYTES {
        return Err(fields.too_long("token", token.len(), MAX_TOKEN_BYTES, "bytes"));
    }
    Ok(ClientCommand::AuthRefresh { token })
}

/// A payload object, absent when the client sent none (or `null`).
type Payload = Option<Map<String, Value>>;

/// Splits `{action, payload}` into a known action and an optional payload
/// object; every other top-level key is ignored.
fn split_envelope(
    mut envelope: Map<String, Value>,
) -> Result<(&'static str, Parse, Payload), ProtocolError> {
    let (action, parse) = match envelope.get("action") {
        None | Some(Value::Null) => return Err(ProtocolError::MissingAction),
        Some(Value::String(name)) => known_action(name)?,
        Some(other) => {
            return Err(ProtocolError::ActionNotString {
                found: json_type(other),
            })
        }
    };
    let payload = match envelope.remove("payload") {
        None | Some(Value::Null) => None,
        Some(Value::Object(payload)) => Some(payload),
        Some(other) => {
            return Err(ProtocolError::PayloadNotObject {
                action,
                found: json_type(&other),
            })
        }
    };
    Ok((action, parse, payload))
}

/// Longest access token accepted by `system.auth.refresh`.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

fn known_action(name: &str) -> Result<(&'static str, Parse), ProtocolError> {
    ACTIONS
        .into_iter()
        .find(|(known, _)| *known == name)
        .ok_or_else(|| ProtocolError::UnknownAction { action: clip(name) })
}

fn chat_send(mut fields: Fields, limits: &Limits) -> Result<ClientCommand, ProtocolError> {
    let message_id = fields.required_string("messageId")?;
    fields.check_id("messageId", &message_id, limits)?;
    let content = fields.required_string("content")?;
    if content.len() > limits.max_content_bytes {
        return Err(fields.too_long("content", content.len(), limits.max_content_bytes, "bytes"));
    }
    Ok(ClientCommand::ChatSend {
        message_id,
        content,
        created_at_ms: fields.timestamp("createdAt")?,
        meta: fields.object("meta", limits)?,
    })
}

fn presence_update(mut fields: Fields, limits: &Limits) -> Result<ClientCommand, ProtocolError> {
    let status = match fields.string("status")? {
        None => None,
        Some(status) => {
            Some(
                client_status(&status).ok_or_else(|| ProtocolError::InvalidStatus {
                    action: fields.name,
                    value: clip(&status),
                })?,
            )
        }
    };
    Ok(ClientCommand::PresenceUpdate {
        status,
        is_typing: fields.boolean("isTyping")?,
        is_speaking: fields.boolean("isSpeaking")?,
        last_seen_ms: fields.timestamp("lastSeen")?,
        extra: fields.object("extra", limits)?,
    })
}

/// The statuses a client may set; `offline` is reached by disconnecting.
fn client_status(status: &str) -> Option<PresenceStatus> {
    match status {
        "online" => Some(PresenceStatus::Online),
        "typing" => Some(PresenceStatus::Typing),
        "speaking" => Some(PresenceStatus::Speaking),
        "muted" => Some(PresenceStatus::Muted),
        "reconnecting" => Some(PresenceStatus::Reconnecting),
        _ => None,
    }
}

fn lease_set(mut fields: Fields, limits: &Limits) -> Result<ClientCommand, ProtocolError> {
    let lease_id = fields.lease_id(limits)?;
    let step_index = fields
        .integer("stepIndex")?
        .ok_or(ProtocolError::MissingField {
            action: fields.name,
            field: "stepIndex",
        })?;
    if !(0..=MAX_SAFE_INTEGER).contains(&step_index) {
        return Err(fields.out_of_range(
            "stepIndex",
            "between 0 and 9007199254740991 (2^53 - 1)",
            step_index,
        ));
    }
    let lease_duration_ms = fields.integer("leaseDurationMs")?;
    if let Some(duration) = lease_duration_ms.filter(|duration| *duration <= 0) {
        return Err(fields.out_of_range("leaseDurationMs", "positive", duration));
    }
    Ok(ClientCommand::LeaseSet {
        lease_id,
        step_index,
        lease_duration_ms,
    })
}

/// A payload being taken apart: the shared readers, and seed 000's own.
type Fields = crate::codec::fields::Fields<ProtocolError>;

impl Fields {
    fn required(action: &'static str, payload: Payload) -> Result<Self, ProtocolError> {
        payload
            .map(|map| Self::new(action, map))
            .ok_or(ProtocolError::MissingPayload { action })
    }

    fn optional(action: &'static str, payload: Payload) -> Self {
        Self::new(action, payload.unwrap_or_default())
    }

    fn integer(&mut self, field: &'static str) -> Result<Option<i64>, ProtocolError> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::Number(number)) => self.integer_from(field, &number).map(Some),
            Some(other) => Err(self.wrong_type(field, "an integer", &other)),
        }
    }

    fn integer_from(&self, field: &'static str, number: &Number) -> Result<i64, ProtocolError> {
        if let Some(integer) = number.as_i64() {
            return Ok(integer);
        }
        if number.is_u64() {
            return Err(self.out_of_range(field, "at most 9223372036854775807", number));
        }
        match number.as_f64() {
            Some(float) if float.fract() == 0.0 && float.abs() <= MAX_EXACT_FLOAT_INTEGER => {
                // Exact: integral and within 2^53, so the cast loses nothing.
                Ok(float as i64)
            }
            Some(float) if float.fract() == 0.0 => {
                Err(self.out_of_range(field, "within ±9007199254740992", number))
            }
            _ => Err(ProtocolError::WrongType {
                action: self.name,
                field,
                expected: "an integer",
                found: "a number with a fraction",
            }),
        }
    }

    fn timestamp(&mut self, field: &'static str) -> Result<Option<i64>, ProtocolError> {
        let Some(text) = self.string(field)? else {
            return Ok(None);
        };
        time_fmt::parse_unix_ms(&text)
            .map(Some)
            .map_err(|err| ProtocolError::InvalidTimestamp {
                action: self.name,
                field,
                reason: err.to_string(),
            })
    }

    /// The optional `leaseId` hint; an empty one is no hint.
    fn lease_id(&mut self, limits: &Limits) -> Result<Option<String>, ProtocolError> {
        let lease_id = self.string("leaseId")?.filter(|id| !id.is_empty());
        if let Some(id) = &lease_id {
            self.check_id("leaseId", id, limits)?;
        }
        Ok(lease_id)
    }

    fn out_of_range(
        &self,
        field: &'static str,
        expected: &'static str,
        value: impl ToString,
    ) -> ProtocolError {
        ProtocolError::OutOfRange {
            action: self.name,
            field,
            expected,
            value: value.to_string(),
        }
    }
}

/// Whether arrays and objects in `text` nest deeper than `limit`, by one pass
/// over the bytes that skips string contents. Malformed text is left to the
/// parser; this only has to be right for text that parses.
pub(in crate::codec) fn nests_deeper_than(text: &str, limit: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in text.as_bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Size of `object` as compact JSON, counted without building the string.
pub(in crate::codec) fn compact_json_len(object: &Map<String, Value>) -> usize {
    let mut counter = ByteCounter(0);
    match serde_json::to_writer(&mut counter, object) {
        Ok(()) => counter.0,
        // Cannot happen for a `Map` (string keys, infallible writer); counting
        // it as oversize refuses rather than lets through.
        Err(_) => usize::MAX,
    }
}

struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub(in crate::codec) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(in crate::codec) fn clip(text: &str) -> String {
    text.chars().take(ECHO_CHARS).collect()
}
