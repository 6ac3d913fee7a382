//! The assistant dialect (seed 003, the AIrium voice/text handler): clients
//! send `{type, data}` routed like API Gateway's `$default`, and receive seed
//! 001's message types in the same `{type, data}` shape.
//!
//! | client `type` | `data` | goes to |
//! |---|---|---|
//! | `ping` | anything or nothing | answered `{"type":"pong"}` by the bridge |
//! | `text_message` | `{content, sessionId?}` | the tenant's assistant backend |
//! | `voice_start` | `{audioFormat, sessionId}` | the tenant's voice backend |
//! | `voice_data` | `{audioData (base64), sessionId}` | the backend that got the start |
//! | `voice_end` | `{sessionId}` | that backend |
//!
//! Seed 003's `sessionId` in voice messages is the voice session's own id.
//! The codec checks sizes, types and base64 (standard alphabet, padding
//! optional); a decoded audio chunk is at most [`MAX_AUDIO_CHUNK_BYTES`].
//! Whether a voice session was started is the core's to say. Like every
//! codec this one never touches a socket or the core and never panics.

use base64::Engine;
use serde_json::{json, Map, Value};

use super::seed000::{clip, json_type, nests_deeper_than};
use super::{ErrorEnvelope, Limits};
use meno_common::error::ErrorCode;

/// The largest decoded `audioData` of one `voice_data`, in bytes (its base64
/// text is a third larger, within the envelope limit).
pub const MAX_AUDIO_CHUNK_BYTES: usize = 32 * 1024;

/// What an assistant-dialect client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssistantCommand {
    /// `ping`.
    Ping,
    /// `text_message`: text for the assistant backend.
    Text {
        /// The text.
        content: String,
        /// The client's chat session id, empty when none.
        session_id: String,
    },
    /// `voice_start`.
    VoiceStart {
        /// The voice session's id.
        voice_session_id: String,
        /// E.g. `webm`, `pcm16`.
        audio_format: String,
    },
    /// `voice_data`: one chunk, decoded.
    VoiceData {
        /// The voice session's id.
        voice_session_id: String,
        /// The audio bytes.
        audio: Vec<u8>,
    },
    /// `voice_end`.
    VoiceEnd {
        /// The voice session's id.
        voice_session_id: String,
    },
}

/// A client frame refused, with the `type` it named when known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AssistantError {
    /// The refused `type`, when it was a known one.
    pub kind: Option<&'static str>,
    /// For the client's developer, naming the field.
    pub message: String,
}

impl AssistantError {
    fn new(kind: Option<&'static str>, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// The `error` envelope's content.
    pub fn envelope(&self) -> ErrorEnvelope {
        ErrorEnvelope {
            code: ErrorCode::InvalidArgument,
            message: self.message.clone(),
            action: self.kind.map(str::to_owned),
            retry_after_ms: None,
        }
    }
}

/// The client `type`s, in the seed's order.
pub const TYPES: [&str; 5] = [
    "voice_start",
    "voice_data",
    "voice_end",
    "text_message",
    "ping",
];

/// Decodes one client frame.
pub fn decode(text: &str, limits: &Limits) -> Result<AssistantCommand, AssistantError> {
    if text.len() > limits.max_envelope_bytes {
        return Err(AssistantError::new(
            None,
            format!(
                "message is {} bytes, over the limit of {}",
                text.len(),
                limits.max_envelope_bytes
            ),
        ));
    }
    if nests_deeper_than(text, limits.max_json_depth) {
        return Err(AssistantError::new(
            None,
            format!("JSON nests deeper than {} levels", limits.max_json_depth),
        ));
    }
    let mut envelope = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(envelope)) => envelope,
        Ok(other) => {
            return Err(AssistantError::new(
                None,
                format!("message must be a JSON object, got {}", json_type(&other)),
            ))
        }
        Err(err) => return Err(AssistantError::new(None, format!("malformed JSON: {err}"))),
    };
    let kind = match envelope.remove("type") {
        Some(Value::String(kind)) => kind,
        None | Some(Value::Null) => return Err(AssistantError::new(None, "missing `type`")),
        Some(other) => {
            return Err(AssistantError::new(
                None,
                format!("`type` must be a string, got {}", json_type(&other)),
            ))
        }
    };
    let Some(kind) = TYPES.iter().copied().find(|known| *known == kind) else {
        return Err(AssistantError::new(
            None,
            format!(
                "unknown type {:?}: expected {}",
                clip(&kind),
                TYPES.join(", ")
            ),
        ));
    };
    if kind == "ping" {
        return Ok(AssistantCommand::Ping);
    }
    let mut data = match envelope.remove("data") {
        Some(Value::Object(data)) => Fields { kind, data },
        None | Some(Value::Null) => return Err(AssistantError::new(Some(kind), "missing `data`")),
        Some(other) => {
            return Err(AssistantError::new(
                Some(kind),
                format!("`data` must be an object, got {}", json_type(&other)),
            ))
        }
    };
    Ok(match kind {
        "text_message" => AssistantCommand::Text {
            content: data.text("content", limits.max_content_bytes, true)?,
            session_id: data.id("sessionId", limits, false)?,
        },
        "voice_start" => AssistantCommand::VoiceStart {
            audio_format: data.text("audioFormat", 64, true)?,
            voice_session_id: data.id("sessionId", limits, true)?,
        },
        "voice_data" => {
            let encoded = data.text("audioData", usize::MAX, true)?;
            let audio = decode_audio(&encoded).map_err(|reason| {
                AssistantError::new(
                    Some(kind),
                    format!("`data.audioData` is not base64: {reason}"),
                )
            })?;
            if audio.len() > MAX_AUDIO_CHUNK_BYTES {
                return Err(AssistantError::new(
                    Some(kind),
                    format!(
                        "`data.audioData` is {} bytes, over the limit of {MAX_AUDIO_CHUNK_BYTES} per chunk",
                        audio.len()
                    ),
                ));
            }
            AssistantCommand::VoiceData {
                voice_session_id: data.id("sessionId", limits, true)?,
                audio,
            }
        }
        _ => AssistantCommand::VoiceEnd {
            voice_session_id: data.id("sessionId", limits, true)?,
        },
    })
}

/// Standard base64, with or without padding.
fn decode_audio(text: &str) -> Result<Vec<u8>, String> {
    let trimmed = text.trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed)
        .map_err(|err| err.to_string())
}

/// A message's `data`, read field by field.
struct Fields {
    kind: &'static str,
    data: Map<String, Value>,
}

impl Fields {
    fn text(
        &mut self,
        field: &'static str,
        max_bytes: usize,
        required: bool,
    ) -> Result<String, AssistantError> {
        let kind = Some(self.kind);
        match self.data.remove(field) {
            Some(Value::String(text)) if text.is_empty() && required => Err(AssistantError::new(
                kind,
                format!("`data.{field}` must not be empty"),
            )),
            Some(Value::String(text)) if text.len() > max_bytes => Err(AssistantError::new(
                kind,
                format!(
                    "`data.{field}` is {} bytes, over the limit of {max_bytes}",
                    text.len()
                ),
            )),
            Some(Value::String(text)) => Ok(text),
            None | Some(Value::Null) if required => {
                Err(AssistantError::new(kind, format!("missing `data.{field}`")))
            }
            None | Some(Value::Null) => Ok(String::new()),
            Some(other) => Err(AssistantError::new(
                kind,
                format!("`data.{field}` must be a string, got {}", json_type(&other)),
            )),
        }
    }

    fn id(
        &mut self,
        field: &'static str,
        limits: &Limits,
        required: bool,
    ) -> Result<String, AssistantError> {
        let id = self.text(field, usize::MAX, required)?;
        if id.is_empty() {
            return Ok(id);
        }
        let chars = id.chars().count();
        if chars > limits.max_id_len {
            return Err(AssistantError::new(
                Some(self.kind),
                format!(
                    "`data.{field}` is {chars} characters, at most {}",
                    limits.max_id_len
                ),
            ));
        }
        meno_common::text::check_id_chars(&id)
            .map_err(|err| AssistantError::new(Some(self.kind), format!("`data.{field}` {err}")))?;
        Ok(id)
    }
}

/// `{"type": "pong"}`, exactly as seed 003 answers a ping.
pub fn encode_pong() -> String {
    String::from(r#"{"type":"pong"}"#)
}

/// `{"type": "error", "data": {code, message, retryable, retryAfterMs?, type?}}`,
/// `type` naming the refused message type when known.
pub fn encode_error(error: &ErrorEnvelope) -> String {
    let mut data = Map::new();
    data.insert("code".into(), json!(error.code.as_str()));
    data.insert("message".into(), json!(error.message));
    data.insert("retryable".into(), json!(error.code.retryable()));
    if let Some(after) = error.retry_after_ms {
        data.insert("retryAfterMs".into(), json!(after));
    }
    if let Some(kind) = &error.action {
        data.insert("type".into(), json!(kind));
    }
    json!({ "type": "error", "data": data }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> AssistantCommand {
        decode(text, &Limits::default()).unwrap()
    }

    fn refused(text: &str) -> String {
        decode(text, &Limits::default()).unwrap_err().message
    }

    #[test]
    fn the_seeds_examples_decode() {
        assert_eq!(
            ok(
                r#"{"type":"voice_start","data":{"audioFormat":"webm","sessionId":"voice-session-123"}}"#
            ),
            AssistantCommand::VoiceStart {
                voice_session_id: "voice-session-123".into(),
                audio_format: "webm".into()
            }
        );
        assert_eq!(
            ok(
                r#"{"type":"voice_data","data":{"audioData":"aGVsbG8=","sessionId":"voice-session-123"}}"#
            ),
            AssistantCommand::VoiceData {
                voice_session_id: "voice-session-123".into(),
                audio: b"hello".to_vec()
            }
        );
        assert_eq!(
            ok(r#"{"type":"voice_end","data":{"sessionId":"voice-session-123"}}"#),
            AssistantCommand::VoiceEnd {
                voice_session_id: "voice-session-123".into()
            }
        );
        assert_eq!(
            ok(
                r#"{"type":"text_message","data":{"content":"Hello, AI!","sessionId":"chat-session-123"}}"#
            ),
            AssistantCommand::Text {
                content: "Hello, AI!".into(),
                session_id: "chat-session-123".into()
            }
        );
        assert_eq!(ok(r#"{"type":"ping"}"#), AssistantCommand::Ping);
        assert_eq!(encode_pong(), r#"{"type":"pong"}"#);
    }

    #[test]
    fn bad_input_is_refused_naming_the_field() {
        assert_eq!(
            refused(r#"{"type":"voice_data","data":{"audioData":"%%%","sessionId":"v"}}"#)
                .split(':')
                .next(),
            Some("`data.audioData` is not base64")
        );
        let big =
            base64::engine::general_purpose::STANDARD.encode(vec![0u8; MAX_AUDIO_CHUNK_BYTES + 1]);
        assert!(refused(&format!(
            r#"{{"type":"voice_data","data":{{"audioData":"{big}","sessionId":"v"}}}}"#
        ))
        .contains("over the limit of 32768"));
        assert_eq!(
            refused(r#"{"type":"text_message","data":{}}"#),
            "missing `data.content`"
        );
        assert!(refused(r#"{"type":"dance"}"#).starts_with("unknown type \"dance\""));
        assert_eq!(refused(r#"{"data":{}}"#), "missing `type`");
        assert!(refused("[1]").contains("JSON object"));
        let error = decode(r#"{"type":"voice_end","data":{}}"#, &Limits::default()).unwrap_err();
        assert_eq!(error.kind, Some("voice_end"));
        let frame: Value = serde_json::from_str(&encode_error(&error.envelope())).unwrap();
        assert_eq!(frame["data"]["type"], "voice_end");
        assert_eq!(frame["data"]["code"], "InvalidArgument");
    }
}
