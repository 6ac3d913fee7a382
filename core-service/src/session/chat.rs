//! Chat: idempotent by the sender's client_ref (the same reference from two
//! senders names two messages), durable before it is published. The newest
//! messages stay in memory for `chat.sync`, snapshots and dedupe.

use std::collections::{HashMap, VecDeque};

use meno_proto::{session_event, ChatMessage, Role, SendChatRequest, SendChatResponse};

use super::events::Stage;
use crate::error::CoreError;
use crate::store::ChatRef;

/// The kind of a message that names none.
const DEFAULT_KIND: &str = "text";

#[derive(Debug, Default)]
pub(crate) struct Chat {
    /// The newest messages, oldest first.
    recent: VecDeque<ChatMessage>,
    /// The recent messages by sender and client_ref.
    refs: HashMap<ChatRef, ChatMessage>,
}

impl Chat {
    /// Rebuilds the window from the newest stored messages, oldest first.
    pub(crate) fn restore(messages: Vec<ChatMessage>, keep: usize) -> Self {
        let mut chat = Self::default();
        for mut message in messages {
            crate::message_kind::stamp(&mut message);
            chat.remember(message, keep);
        }
        chat
    }

    /// The recent messages, oldest first.
    pub(crate) fn recent(&self) -> impl Iterator<Item = &ChatMessage> {
        self.recent.iter()
    }

    /// Whether a recent message carries this reference (else the store may).
    pub(crate) fn knows_ref(&self, reference: &ChatRef) -> bool {
        self.refs.contains_key(reference)
    }

    /// The seq of a recent message, by its server id.
    pub(crate) fn seq_of(&self, message_id: &str) -> Option<u64> {
        self.recent
            .iter()
            .rev()
            .find(|message| message.id == message_id)
            .map(|message| message.seq)
    }

    fn remember(&mut self, message: ChatMessage, keep: usize) {
        if let Some(reference) = ChatRef::of(&message) {
            self.refs.insert(reference, message.clone());
        }
        self.recent.push_back(message);
        while self.recent.len() > keep.max(1) {
            if let Some(reference) = self.recent.pop_front().as_ref().and_then(ChatRef::of) {
                self.refs.remove(&reference);
            }
        }
    }

    /// `chat.send`: a repeat of a known client_ref returns the stored message
    /// and publishes nothing; a new one gets a seq, a UUIDv7 and a time.
    /// `sender` is the connected sender's display name and role, if any.
    pub(crate) fn send(
        &mut self,
        request: SendChatRequest,
        sender: Option<(String, Role)>,
        stored_duplicate: Option<ChatMessage>,
        stage: &mut Stage<'_>,
    ) -> Result<SendChatResponse, CoreError> {
        let typed = crate::message_kind::name(request.message_kind());
        let actor = request.actor.unwrap_or_default();
        if let Some(known) = stored_duplicate.or_else(|| {
            (!request.client_ref.is_empty())
                .then(|| ChatRef::new(actor.participant_id.as_str(), request.client_ref.as_str()))
                .and_then(|reference| self.refs.get(&reference).cloned())
        }) {
            return Ok(SendChatResponse {
                message: Some(known),
                duplicate: true,
            });
        }
        let (sender_name, sender_role) = match sender {
            Some(identity) => identity,
            None if actor.role() == Role::Service => (actor.name.clone(), actor.role()),
            None => {
                return Err(CoreError::denied(format!(
                    "participant {:?} is not in this session",
                    actor.participant_id
                )))
            }
        };
        if sender_role == Role::Observer && !stage.config().observers_may_chat {
            return Err(CoreError::denied("observers may not send chat messages"));
        }
        let now = stage.now();
        // A client's creation time is kept unless it lies in the future.
        let created_at_ms = match request.created_at_ms {
            ms if ms > 0 && ms <= now => ms,
            _ => now,
        };
        let mut message = ChatMessage {
            id: uuid::Uuid::now_v7().to_string(),
            client_ref: request.client_ref,
            seq: stage.next_seq(),
            sender_id: actor.participant_id,
            sender_name,
            sender_role: sender_role as i32,
            kind: match typed {
                Some(typed) => typed.to_owned(),
                None if request.kind.is_empty() => DEFAULT_KIND.to_owned(),
                None => request.kind,
            },
            content: request.content,
            meta_json: request.meta_json,
            created_at_ms,
            message_kind: 0,
        };
        crate::message_kind::stamp(&mut message);
        let seq = stage.event(None, session_event::Kind::ChatMessage(message.clone()));
        debug_assert_eq!(seq, message.seq);
        stage.write().messages.push(message.clone());
        self.remember(message.clone(), stage.config().history_sync_limit);
        Ok(SendChatResponse {
            message: Some(message),
            duplicate: false,
        })
    }
}
