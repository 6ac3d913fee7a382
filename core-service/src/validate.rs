//! Checks of what callers send, before anything reaches a session actor.
//! Limits are the documented ones; each failure names the field.

use meno_common::text::MAX_SAFE_INTEGER;
use meno_proto::{
    Actor, ConnectionInfo, LeaseReleaseRequest, LeaseSetRequest, PresenceUpdateRequest,
    SendChatRequest, SessionRef,
};

use crate::error::CoreError;
use crate::store::SessionKey;

/// Longest id (session, participant, connection, client_ref, tenant).
pub const MAX_ID_LEN: usize = 128;
/// Largest chat content, in bytes.
pub const MAX_CONTENT_BYTES: usize = 64 * 1024;
/// Largest `meta` or `extra` JSON, in bytes.
pub const MAX_META_BYTES: usize = 16 * 1024;
/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 80;

fn id(field: &str, value: &str) -> Result<(), CoreError> {
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

/// A chat message.
pub fn chat_send(request: &SendChatRequest) -> Result<(), CoreError> {
    actor(request.actor.as_ref())?;
    if !request.client_ref.is_empty() {
        id("client_ref", &request.client_ref)?;
    }
    if request.content.len() > MAX_CONTENT_BYTES {
        return Err(CoreError::invalid(format!(
            "content is larger than {MAX_CONTENT_BYTES} bytes"
        )));
    }
    if request.kind.len() > 32 {
        return Err(CoreError::invalid("kind is longer than 32 bytes"));
    }
    json_object("meta", &request.meta_json)
}

/// A presence update.
pub fn presence_update(request: &PresenceUpdateRequest) -> Result<(), CoreError> {
    match &request.extra_json {
        Some(extra) => json_object("extra", extra),
        None => Ok(()),
    }
}
