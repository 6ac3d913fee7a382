//! Seed 001's message types (a backend's `chat_response`, `typing_indicator`,
//! `error` and `system`) as JSON, for the dialects that show them.
//!
//! Seed 000 and the assistant dialect (seed 003) both speak `{type, data}`,
//! and show them as seed 001 writes them: `{"type": "chat_response", "data":
//! {"messageId", "content", "isComplete"}}`, `{"type": "typing_indicator",
//! "data": {"isTyping"}}`, `{"type": "error", "data": {"code", "message",
//! "retryable", "retryAfterMs"?}}` (seed 000's own `error` shape),
//! `{"type": "system", "data": {"message", "level"}}`. NexusChat shows the
//! same data under upper-case events: `CHAT_RESPONSE`, `TYPING_INDICATOR`,
//! `ERROR`, `SYSTEM`.

use meno_proto::{direct_message, DirectMessage};
use serde_json::{json, Map, Value};

/// The `type` and `data` of a direct message; `None` for one without a kind.
pub fn type_and_data(message: &DirectMessage) -> Option<(&'static str, Value)> {
    Some(match message.kind.as_ref()? {
        direct_message::Kind::ChatResponse(chunk) => (
            "chat_response",
            json!({
                "messageId": chunk.message_id,
                "content": chunk.content,
                "isComplete": chunk.is_complete,
            }),
        ),
        direct_message::Kind::TypingIndicator(typing) => {
            ("typing_indicator", json!({ "isTyping": typing.is_typing }))
        }
        direct_message::Kind::Error(error) => {
            let mut data = Map::new();
            data.insert("code".into(), json!(error.code));
            data.insert("message".into(), json!(error.message));
            data.insert("retryable".into(), json!(error.retryable));
            if let Some(after) = error.retry_after_ms {
                data.insert("retryAfterMs".into(), json!(after));
            }
            ("error", Value::Object(data))
        }
        direct_message::Kind::System(notice) => (
            "system",
            json!({
                "message": notice.message,
                "level": if notice.level.is_empty() { "info" } else { notice.level.as_str() },
            }),
        ),
    })
}

/// `{type, data}`: seed 000's and the assistant dialect's envelope.
pub fn encode_typed(message: &DirectMessage) -> Option<String> {
    let (kind, data) = type_and_data(message)?;
    Some(json!({ "type": kind, "data": data }).to_string())
}

/// `{event, traceId, data}`: NexusChat's envelope, the event upper case.
pub fn encode_nexus(trace_id: &str, message: &DirectMessage) -> Option<String> {
    let (kind, data) = type_and_data(message)?;
    Some(
        json!({ "event": kind.to_ascii_uppercase(), "traceId": trace_id, "data": data })
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use meno_proto::{ChatResponse, DirectError, SystemNotice};

    use super::*;

    fn message(kind: direct_message::Kind) -> DirectMessage {
        DirectMessage { kind: Some(kind) }
    }

    #[test]
    fn seed_001_types_in_both_envelopes() {
        let chunk = message(direct_message::Kind::ChatResponse(ChatResponse {
            message_id: "msg-123".into(),
            content: "Hello, world!".into(),
            is_complete: true,
        }));
        let typed: Value = serde_json::from_str(&encode_typed(&chunk).unwrap()).unwrap();
        assert_eq!(
            typed,
            json!({"type": "chat_response", "data": {"messageId": "msg-123", "content": "Hello, world!", "isComplete": true}})
        );
        let nexus: Value = serde_json::from_str(&encode_nexus("t-1", &chunk).unwrap()).unwrap();
        assert_eq!(nexus["event"], "CHAT_RESPONSE");
        assert_eq!(nexus["traceId"], "t-1");
        assert_eq!(nexus["data"], typed["data"]);
    }

    #[test]
    fn errors_and_notices_carry_their_fields() {
        let error = message(direct_message::Kind::Error(DirectError {
            code: "Unavailable".into(),
            message: "the backend went away".into(),
            retryable: true,
            retry_after_ms: Some(1000),
        }));
        let typed: Value = serde_json::from_str(&encode_typed(&error).unwrap()).unwrap();
        assert_eq!(
            typed,
            json!({"type": "error", "data": {"code": "Unavailable", "message": "the backend went away", "retryable": true, "retryAfterMs": 1000}})
        );
        let notice = message(direct_message::Kind::System(SystemNotice {
            message: "maintenance at noon".into(),
            level: String::new(),
        }));
        let typed: Value = serde_json::from_str(&encode_typed(&notice).unwrap()).unwrap();
        assert_eq!(typed["data"]["level"], "info");
        assert!(encode_typed(&DirectMessage { kind: None }).is_none());
    }
}
