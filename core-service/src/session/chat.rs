//! Chat: idempotent by client_ref, durable before it is published.

use meno_proto::{session_event, ChatMessage, Role, SendChatRequest, SendChatResponse};

use super::state::SessionState;
use crate::error::CoreError;

/// The kind of a message that names none.
const DEFAULT_KIND: &str = "text";

impl SessionState {
    /// `chat.send`: a repeat of a known client_ref returns the stored message
    /// and publishes nothing; a new one gets a seq, a UUIDv7 and a time.
    pub(crate) fn send_chat(
        &mut self,
        request: SendChatRequest,
        stored_duplicate: Option<ChatMessage>,
        now: i64,
    ) -> Result<SendChatResponse, CoreError> {
        if let Some(known) = stored_duplicate.or_else(|| {
            (!request.client_ref.is_empty())
                .then(|| self.recent_refs.get(&request.client_ref).cloned())
                .flatten()
        }) {
            return Ok(SendChatResponse {
                message: Some(known),
                duplicate: true,
            });
        }
        let actor = request.actor.unwrap_or_default();
        let (sender_name, sender_role) = match self.sender_identity(&actor.participant_id) {
            Some(identity) => identity,
            None if actor.role() == Role::Service => (actor.name.clone(), actor.role()),
            None => {
                return Err(CoreError::denied(format!(
                    "participant {:?} is not in this session",
                    actor.participant_id
                )))
            }
        };
        if sender_role == Role::Observer && !self.config.observers_may_chat {
            return Err(CoreError::denied("observers may not send chat messages"));
        }
        // A client's creation time is kept unless it lies in the future.
        let created_at_ms = match request.created_at_ms {
            ms if ms > 0 && ms <= now => ms,
            _ => now,
        };
        let mut message = ChatMessage {
            id: uuid::Uuid::now_v7().to_string(),
            client_ref: request.client_ref,
            seq: 0,
            sender_id: actor.participant_id,
            sender_name,
            sender_role: sender_role as i32,
            kind: if request.kind.is_empty() {
                DEFAULT_KIND.to_owned()
            } else {
                request.kind
            },
            content: request.content,
            meta_json: request.meta_json,
            created_at_ms,
        };
        message.seq = self.head_seq + 1;
        let seq = self.stage_event(now, None, session_event::Kind::ChatMessage(message.clone()));
        debug_assert_eq!(seq, message.seq);
        self.batch.write.messages.push(message.clone());
        self.remember_chat(message.clone());
        Ok(SendChatResponse {
            message: Some(message),
            duplicate: false,
        })
    }
}
