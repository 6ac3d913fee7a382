//! `presence.update` and `presence.heartbeat`: the sender's own presence.

use meno_common::error::CoreError;
use meno_proto::{HeartbeatRequest, PresenceStatus, PresenceUpdateRequest};
use serde_json::{Map, Value};

use super::{Caller, Outcome};

/// The fields a presence update merges.
#[derive(Debug)]
pub(super) struct Update {
    pub(super) status: Option<PresenceStatus>,
    pub(super) is_typing: Option<bool>,
    pub(super) is_speaking: Option<bool>,
    pub(super) last_seen_ms: Option<i64>,
    pub(super) extra: Option<Map<String, Value>>,
}

pub(super) async fn update(
    caller: &Caller,
    update: Update,
    trace_id: Option<&str>,
) -> Result<Outcome, CoreError> {
    let request = caller.core().session_request(
        &caller.key,
        PresenceUpdateRequest {
            session: caller.session(),
            actor: caller.traced_actor(trace_id),
            status: update.status.map(|status| status as i32),
            is_typing: update.is_typing,
            is_speaking: update.is_speaking,
            last_seen_ms: update.last_seen_ms,
            extra_json: update.extra.map(|extra| Value::Object(extra).to_string()),
        },
    );
    caller
        .core()
        .presence
        .clone()
        .update(request)
        .await
        .map_err(|status| CoreError::from_status(&status))?;
    Ok(None)
}

pub(super) async fn heartbeat(
    caller: &Caller,
    last_seen_ms: Option<i64>,
) -> Result<Outcome, CoreError> {
    let request = caller.core().session_request(
        &caller.key,
        HeartbeatRequest {
            session: caller.session(),
            actor: caller.actor(),
            last_seen_ms,
        },
    );
    caller
        .core()
        .presence
        .clone()
        .heartbeat(request)
        .await
        .map_err(|status| CoreError::from_status(&status))?;
    Ok(None)
}
