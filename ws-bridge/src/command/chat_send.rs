//! `chat.send`: append a message. A repeat of a `client_ref` is not stored or
//! broadcast again; its sender gets the stored message back.

use meno_common::error::CoreError;
use meno_proto::SendChatRequest;
use serde_json::{Map, Value};

use super::{Caller, Outcome};
use crate::dialect::Reply;

pub(super) async fn run(
    caller: &Caller,
    message_id: String,
    content: String,
    created_at_ms: Option<i64>,
    meta: Option<Map<String, Value>>,
) -> Result<Outcome, CoreError> {
    let request = caller.core().request(SendChatRequest {
        session: caller.session(),
        actor: caller.actor(),
        client_ref: message_id,
        kind: String::new(),
        content,
        meta_json: meta
            .map(|meta| Value::Object(meta).to_string())
            .unwrap_or_default(),
        created_at_ms: created_at_ms.unwrap_or(0),
    });
    let response = caller
        .core()
        .chat
        .clone()
        .send(request)
        .await
        .map_err(|status| CoreError::from_status(&status))?
        .into_inner();
    Ok(response
        .message
        .filter(|_| response.duplicate)
        .map(Reply::Duplicate))
}
