//! `chat.send` and NexusChat's `SEND_MSG`: append a message. A repeat of a
//! `client_ref` (by the same sender) is not stored or broadcast again; its
//! sender gets the stored message back.

use meno_common::error::CoreError;
use meno_proto::{MessageKind, SendChatRequest};
use serde_json::{Map, Value};

use super::{Caller, Outcome};
use crate::dialect::Reply;

/// A message to append, as a dialect decoded it.
#[derive(Debug)]
pub(super) struct Message {
    /// The sender's idempotency key; empty: none.
    pub(super) client_ref: String,
    /// The typed kind; unspecified: seed 000's plain chat.
    pub(super) kind: MessageKind,
    pub(super) content: String,
    pub(super) created_at_ms: Option<i64>,
    pub(super) meta: Option<Map<String, Value>>,
}

pub(super) async fn run(
    caller: &Caller,
    message: Message,
    trace_id: Option<&str>,
) -> Result<Outcome, CoreError> {
    let request = caller.core().session_request(
        &caller.key,
        SendChatRequest {
            session: caller.session(),
            actor: caller.traced_actor(trace_id),
            client_ref: message.client_ref,
            kind: String::new(),
            content: message.content,
            meta_json: message
                .meta
                .map(|meta| Value::Object(meta).to_string())
                .unwrap_or_default(),
            created_at_ms: message.created_at_ms.unwrap_or(0),
            message_kind: message.kind as i32,
        },
    );
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
