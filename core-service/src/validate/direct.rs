//! Checks of issue 16's requests: connection registry rows, directed
//! messages (seed 001's kinds) and the work a bridge submits to backends.

use meno_proto::{
    direct_message, submit_request, DirectMessage, RegisteredConnection, SubmitRequest,
};

use super::{id, MAX_CONTENT_BYTES, MAX_ID_LEN};
use crate::error::{CoreError, ErrorCode};

/// Longest ip address text (an IPv6 address with a zone fits).
pub const MAX_IP_CHARS: usize = 64;
/// Longest user agent kept in the registry, in bytes.
pub const MAX_USER_AGENT_BYTES: usize = 512;
/// Most connection ids one `Touch` may name.
pub const MAX_TOUCH_CONNECTIONS: usize = 10_000;
/// Largest voice chunk a backend gets, in bytes (the bridge's own limit on
/// a client's chunk is lower).
pub const MAX_VOICE_CHUNK_BYTES: usize = 1024 * 1024;
/// Longest `audio_format`, in bytes.
pub const MAX_AUDIO_FORMAT_BYTES: usize = 64;

/// The codes a `DirectError` may carry: the names of [`ErrorCode`].
const ERROR_CODES: [ErrorCode; 7] = ErrorCode::ALL;

/// A tenant field: empty means the default tenant.
pub(crate) fn tenant(value: &str) -> Result<(), CoreError> {
    if value.is_empty() {
        return Ok(());
    }
    id("tenant", value)
}

fn bounded(field: &str, value: &str, max_bytes: usize) -> Result<(), CoreError> {
    if value.len() > max_bytes {
        return Err(CoreError::invalid(format!(
            "{field} is longer than {max_bytes} bytes"
        )));
    }
    Ok(())
}

/// A connection as a bridge registers it.
pub(crate) fn registered(row: Option<&RegisteredConnection>) -> Result<(), CoreError> {
    let row = row.ok_or_else(|| CoreError::invalid("connection is required"))?;
    tenant(&row.tenant)?;
    id("connection.connection_id", &row.connection_id)?;
    id("connection.user_id", &row.user_id)?;
    id("connection.bridge_id", &row.bridge_id)?;
    if !row.session_id.is_empty() {
        id("connection.session_id", &row.session_id)?;
    }
    bounded("connection.dialect", &row.dialect, MAX_ID_LEN)?;
    bounded("connection.ip", &row.ip, MAX_IP_CHARS)?;
    bounded(
        "connection.user_agent",
        &row.user_agent,
        MAX_USER_AGENT_BYTES,
    )
}

/// The connection ids of one `Touch`.
pub(crate) fn touched(connection_ids: &[String]) -> Result<(), CoreError> {
    if connection_ids.len() > MAX_TOUCH_CONNECTIONS {
        return Err(CoreError::invalid(format!(
            "connection_ids names more than {MAX_TOUCH_CONNECTIONS} connections"
        )));
    }
    connection_ids
        .iter()
        .try_for_each(|connection_id| id("connection_ids[]", connection_id))
}

/// A message for clients (seed 001's types).
pub(crate) fn direct_message(message: Option<&DirectMessage>) -> Result<(), CoreError> {
    let kind = message
        .and_then(|message| message.kind.as_ref())
        .ok_or_else(|| {
            CoreError::invalid("message needs chat_response, typing_indicator, error or system")
        })?;
    match kind {
        direct_message::Kind::ChatResponse(chunk) => {
            id("message.chat_response.message_id", &chunk.message_id)?;
            bounded(
                "message.chat_response.content",
                &chunk.content,
                MAX_CONTENT_BYTES,
            )
        }
        direct_message::Kind::TypingIndicator(_) => Ok(()),
        direct_message::Kind::Error(error) => {
            if !ERROR_CODES.iter().any(|code| code.as_str() == error.code) {
                let names: Vec<&str> = ERROR_CODES.iter().map(|code| code.as_str()).collect();
                return Err(CoreError::invalid(format!(
                    "message.error.code must be one of {}",
                    names.join(", ")
                )));
            }
            bounded("message.error.message", &error.message, MAX_CONTENT_BYTES)
        }
        direct_message::Kind::System(notice) => {
            if !matches!(notice.level.as_str(), "" | "info" | "warning") {
                return Err(CoreError::invalid(
                    "message.system.level must be \"info\" or \"warning\"",
                ));
            }
            bounded("message.system.message", &notice.message, MAX_CONTENT_BYTES)
        }
    }
}

/// Work a bridge submits for the tenant's backends.
pub(crate) fn submit(request: &SubmitRequest) -> Result<(), CoreError> {
    super::signal::user_ref("user", request.user.as_ref())?;
    id("connection_id", &request.connection_id)?;
    bounded("trace_id", &request.trace_id, MAX_ID_LEN)?;
    let item = request.item.as_ref().ok_or_else(|| {
        CoreError::invalid("item needs text, voice_start, voice_data or voice_end")
    })?;
    match item {
        submit_request::Item::Text(text) => {
            if text.content.is_empty() {
                return Err(CoreError::invalid("text.content is required"));
            }
            bounded("text.content", &text.content, MAX_CONTENT_BYTES)?;
            if !text.session_id.is_empty() {
                id("text.session_id", &text.session_id)?;
            }
            Ok(())
        }
        submit_request::Item::VoiceStart(start) => {
            id("voice_start.voice_session_id", &start.voice_session_id)?;
            bounded(
                "voice_start.audio_format",
                &start.audio_format,
                MAX_AUDIO_FORMAT_BYTES,
            )
        }
        submit_request::Item::VoiceData(data) => {
            id("voice_data.voice_session_id", &data.voice_session_id)?;
            if data.audio.len() > MAX_VOICE_CHUNK_BYTES {
                return Err(CoreError::invalid(format!(
                    "voice_data.audio is larger than {MAX_VOICE_CHUNK_BYTES} bytes"
                )));
            }
            Ok(())
        }
        submit_request::Item::VoiceEnd(end) => {
            id("voice_end.voice_session_id", &end.voice_session_id)
        }
    }
}

#[cfg(test)]
mod tests {
    use meno_proto::{ChatResponse, DirectError, SystemNotice, TypingIndicator};

    use super::*;

    fn message(kind: direct_message::Kind) -> DirectMessage {
        DirectMessage { kind: Some(kind) }
    }

    #[test]
    fn a_direct_message_needs_a_kind_and_bounded_fields() {
        assert!(direct_message(None).is_err());
        assert!(direct_message(Some(&DirectMessage { kind: None })).is_err());
        let typing = message(direct_message::Kind::TypingIndicator(TypingIndicator {
            is_typing: true,
        }));
        assert!(direct_message(Some(&typing)).is_ok());
        let chunk = |message_id: &str, content: String| {
            message(direct_message::Kind::ChatResponse(ChatResponse {
                message_id: message_id.to_owned(),
                content,
                is_complete: false,
            }))
        };
        assert!(direct_message(Some(&chunk("m-1", "hi".into()))).is_ok());
        assert!(direct_message(Some(&chunk("", "hi".into()))).is_err());
        let too_big = "x".repeat(MAX_CONTENT_BYTES + 1);
        assert!(direct_message(Some(&chunk("m-1", too_big))).is_err());
    }

    #[test]
    fn an_error_code_is_one_of_the_error_code_names() {
        let error = |code: &str| {
            message(direct_message::Kind::Error(DirectError {
                code: code.to_owned(),
                message: "x".into(),
                retryable: true,
                retry_after_ms: None,
            }))
        };
        assert!(direct_message(Some(&error("Unavailable"))).is_ok());
        assert!(direct_message(Some(&error("unavailable"))).is_err());
        assert!(direct_message(Some(&error(""))).is_err());
        let system = |level: &str| {
            message(direct_message::Kind::System(SystemNotice {
                message: "x".into(),
                level: level.to_owned(),
            }))
        };
        assert!(direct_message(Some(&system(""))).is_ok());
        assert!(direct_message(Some(&system("warning"))).is_ok());
        assert!(direct_message(Some(&system("panic"))).is_err());
    }
}
