//! Checks of what callers send, before anything reaches a session actor.
//! Limits are the documented ones; each failure names the field.

use meno_common::text::MAX_SAFE_INTEGER;
use meno_proto::{
    Actor, ChatHistoryRequest, ConnectionInfo, LeaseReleaseRequest, LeaseSetRequest,
    MarkReadRequest, MessageKind, PresenceUpdateRequest, SendChatRequest, SessionRef,
};

use crate::error::CoreError;
use crate::message_kind;
use crate::store::SessionKey;

/// Longest id (session, participant, connection, client_ref, tenant).
pub const MAX_ID_LEN: usize = 128;
/// Largest chat content, in bytes.
pub const MAX_CONTENT_BYTES: usize = 64 * 1024;
/// Largest `meta` or `extra` JSON, in bytes.
pub const MAX_META_BYTES: usize = 16 * 1024;
/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 80;
/// Most history messages a page may skip (`offset`): deeper pages go by
/// `before_message_id` instead of scanning.
pub const MAX_HISTORY_OFFSET: u32 = 10_000;

pub(crate) fn id(field: &str, value: &str) -> Result<(), CoreError> {
    if value.is_empty() {
        return Err(CoreError::invalid(format!("{field} is required")));
    }
    if value.len() > MAX_ID_LEN {
        return Err(CoreError::invalid(format!(
            "{field} is longer than {MAX_ID_LEN} bytes"
        )));
    }
    meno_common::text::check_id_chars(value)
        .map_err(|why| CoreError::invalid(format!("{field} {why}")))
}

fn json_object(field: &str, value: &str) -> Result<(), CoreError> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > MAX_META_BYTES {
        return Err(CoreError::invalid(format!(
            "{field} is larger than {MAX_META_BYTES} bytes"
        )));
    }
    match serde_json::from_str::<serde_json::Value>(value) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        _ => Err(CoreError::invalid(format!("{field} must be a JSON object"))),
    }
}

/// A session reference; an empty tenant means the default one.
pub fn session_ref(session: &SessionRef) -> Result<SessionKey, CoreError> {
    if !session.tenant.is_empty() {
        id("tenant", &session.tenant)?;
    }
    id("session_id", &session.session_id)?;
    Ok(SessionKey::new(
        session.tenant.clone(),
        session.session_id.clone(),
    ))
}

/// A connection as a bridge registers it.
pub fn connection(connection: Option<&ConnectionInfo>) -> Result<(), CoreError> {
    let connection = connection.ok_or_else(|| CoreError::invalid("connection is required"))?;
    id("connection_id", &connection.connection_id)?;
    id("participant_id", &connection.participant_id)?;
    if connection.name.chars().count() > MAX_NAME_CHARS {
        return Err(CoreError::invalid(format!(
            "name is longer than {MAX_NAME_CHARS} characters"
        )));
    }
    if !connection.name.is_empty() {
        meno_common::text::display_name(&connection.name)
            .map_err(|why| CoreError::invalid(format!("name {why}")))?;
    }
    Ok(())
}

/// A lease request: the step is an integer every client can read back, and
/// a lease id hint follows the id rule.
pub fn lease_set(request: &LeaseSetRequest) -> Result<(), CoreError> {
    actor(request.actor.as_ref())?;
    if request.step_index > MAX_SAFE_INTEGER {
        return Err(CoreError::invalid(format!(
            "step_index must be at most {MAX_SAFE_INTEGER}"
        )));
    }
    if !request.lease_id_hint.is_empty() {
        id("lease_id_hint", &request.lease_id_hint)?;
    }
    Ok(())
}

/// A lease release: the lease id, when given, follows the id rule.
pub fn lease_release(request: &LeaseReleaseRequest) -> Result<(), CoreError> {
    actor(request.actor.as_ref())?;
    if !request.lease_id.is_empty() {
        id("lease_id", &request.lease_id)?;
    }
    Ok(())
}

/// Who acts.
pub fn actor(actor: Option<&Actor>) -> Result<(), CoreError> {
    let actor = actor.ok_or_else(|| CoreError::invalid("actor is required"))?;
    id("actor.participant_id", &actor.participant_id)
}

/// A chat message, normalised: a typed `message_kind` fills `kind`, and a
/// known kind given as a string in any case is stored lower-case. Other
/// strings stay allowed (a backend's own kinds). A known kind's content is
/// checked: TEXT needs content, the media kinds an http(s) `url` in `meta`.
/// An empty kind is seed 000's plain chat and keeps its rules (it is stored
/// as "text", but may carry only `meta`).
pub fn chat_send(request: &mut SendChatRequest) -> Result<(), CoreError> {
    actor(request.actor.as_ref())?;
    if !request.client_ref.is_empty() {
        id("client_ref", &request.client_ref)?;
    }
    if request.content.len() > MAX_CONTENT_BYTES {
        return Err(CoreError::invalid(format!(
            "content is larger than {MAX_CONTENT_BYTES} bytes"
        )));
    }
    let typed = MessageKind::try_from(request.message_kind)
        .map_err(|_| CoreError::invalid("message_kind is not a known kind"))?;
    if let Some(name) = message_kind::name(typed) {
        request.kind = name.to_owned();
    }
    if request.kind.len() > 32 {
        return Err(CoreError::invalid("kind is longer than 32 bytes"));
    }
    let kind = message_kind::parse(&request.kind);
    if let Some(name) = message_kind::name(kind) {
        request.kind = name.to_owned();
    }
    json_object("meta", &request.meta_json)?;
    match kind {
        MessageKind::Unspecified => Ok(()),
        MessageKind::Text if request.content.trim().is_empty() => {
            Err(CoreError::invalid("content is required for a text message"))
        }
        MessageKind::Text => Ok(()),
        MessageKind::Image | MessageKind::Video | MessageKind::Audio | MessageKind::File => {
            media_url(&request.kind, &request.meta_json)
        }
    }
}

/// A media message's `meta.url`: http or https, with a host, and nothing a
/// client could not put in a link (whitespace, control characters).
fn media_url(kind: &str, meta_json: &str) -> Result<(), CoreError> {
    let missing = || CoreError::invalid(format!("meta.url is required for a {kind} message"));
    if meta_json.is_empty() {
        return Err(missing());
    }
    let meta: serde_json::Value = serde_json::from_str(meta_json)
        .map_err(|_| CoreError::invalid("meta must be a JSON object"))?;
    let url = match meta.get("url") {
        None | Some(serde_json::Value::Null) => return Err(missing()),
        Some(serde_json::Value::String(url)) => url,
        Some(_) => return Err(CoreError::invalid("meta.url must be a string")),
    };
    let bad = || {
        CoreError::invalid(
            "meta.url must be an http:// or https:// URL with a host, without spaces",
        )
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &url[8..]
    } else if lower.starts_with("http://") {
        &url[7..]
    } else {
        return Err(bad());
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = if host_port.starts_with('[') {
        host_port
            .split(']')
            .next()
            .unwrap_or_default()
            .trim_start_matches('[')
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok(())
}

/// A read position to set: who reads and which message.
pub fn mark_read(request: &MarkReadRequest) -> Result<(), CoreError> {
    actor(request.actor.as_ref())?;
    id("message_id", &request.message_id)
}

/// Where a history page starts: `before_seq` and `before_message_id` are
/// exclusive, and an offset scan is bounded.
pub fn chat_history(request: &ChatHistoryRequest) -> Result<(), CoreError> {
    if request.before_seq.is_some() && request.before_message_id.is_some() {
        return Err(CoreError::invalid(
            "before_seq and before_message_id are exclusive",
        ));
    }
    if let Some(message_id) = &request.before_message_id {
        id("before_message_id", message_id)?;
    }
    if request.offset > MAX_HISTORY_OFFSET {
        return Err(CoreError::invalid(format!(
            "offset must be at most {MAX_HISTORY_OFFSET}"
        )));
    }
    Ok(())
}

/// A presence update.
pub fn presence_update(request: &PresenceUpdateRequest) -> Result<(), CoreError> {
    match &request.extra_json {
        Some(extra) => json_object("extra", extra),
        None => Ok(()),
    }
}

mod direct;
mod signal;

pub(crate) use direct::{direct_message, registered, submit, tenant, touched};
pub use direct::{
    MAX_AUDIO_FORMAT_BYTES, MAX_IP_CHARS, MAX_TOUCH_CONNECTIONS, MAX_USER_AGENT_BYTES,
    MAX_VOICE_CHUNK_BYTES,
};

pub(crate) use signal::{set_interest, signal, user_ref as user};
pub use signal::{MAX_INTEREST_USERS, MAX_SDP_MID_CHARS, MAX_SDP_M_LINE_INDEX, MAX_SIGNAL_BYTES};

#[cfg(test)]
mod tests;
