//! What a batch of commands needs from the store before the actor can decide
//! it: stored duplicates of client_refs beyond the recent window, stored chat
//! for a resume the ring no longer covers, and the seqs of ACKed messages
//! that are not recent. Reads only; every message read is stamped with its
//! typed kind.

use std::collections::HashMap;

use meno_proto::{ChatMessage, JoinRequest, SendChatRequest};

use super::command::Command;
use super::state::SessionState;
use crate::error::CoreError;
use crate::registry::ActorContext;
use crate::store::ChatRef;

/// What a batch needs from the store before it can be decided.
#[derive(Debug, Default)]
pub(super) struct Prefetched {
    /// Stored messages by sender and client_ref, for dedupe beyond the
    /// recent window.
    pub(super) duplicates: HashMap<ChatRef, ChatMessage>,
    /// Stored chat after a `lastSeq` the ring no longer covers.
    pub(super) resume_chat: HashMap<u64, Vec<ChatMessage>>,
    /// Seqs in this session of messages ACKed by id that are not recent.
    pub(super) message_seqs: HashMap<String, u64>,
}

pub(super) async fn prefetch(
    state: &SessionState,
    context: &ActorContext,
    commands: &[Command],
) -> Result<Prefetched, CoreError> {
    let mut prefetched = Prefetched::default();
    let unknown_refs: Vec<ChatRef> = commands
        .iter()
        .filter_map(|command| match command {
            Command::SendChat { request, .. } => chat_ref(request),
            _ => None,
        })
        .filter(|reference| !state.knows_client_ref(reference))
        .collect();
    if !unknown_refs.is_empty() {
        for message in context
            .store
            .chat_by_client_refs(state.key(), &unknown_refs)
            .await?
        {
            if let Some(reference) = ChatRef::of(&message) {
                let mut message = message;
                crate::message_kind::stamp(&mut message);
                prefetched.duplicates.insert(reference, message);
            }
        }
    }
    for command in commands {
        if let Command::Join {
            request:
                JoinRequest {
                    last_seq: Some(last_seq),
                    ..
                },
            ..
        } = command
        {
            let last_seq = *last_seq;
            if last_seq <= state.head_seq()
                && state.events_after(last_seq).is_none()
                && !prefetched.resume_chat.contains_key(&last_seq)
            {
                let mut chat = context
                    .store
                    .chat_after(state.key(), last_seq, context.config.resume_limit + 1)
                    .await?;
                crate::message_kind::stamp_all(&mut chat);
                prefetched.resume_chat.insert(last_seq, chat);
            }
        }
    }
    for command in commands {
        let Command::MarkRead {
            request,
            stored_seq: None,
            ..
        } = command
        else {
            continue;
        };
        let message_id = request.message_id.as_str();
        if state.recent_message_seq(message_id).is_some()
            || prefetched.message_seqs.contains_key(message_id)
        {
            continue;
        }
        let located = context
            .store
            .message_location(&state.key().tenant, message_id)
            .await?;
        // A message of another session of the tenant is not in this one.
        if let Some(location) = located.filter(|l| l.session_id == state.key().session_id) {
            prefetched
                .message_seqs
                .insert(message_id.to_owned(), location.seq);
        }
    }
    Ok(prefetched)
}

/// The idempotency key of a `chat.send`: its sender's client_ref.
pub(super) fn chat_ref(request: &SendChatRequest) -> Option<ChatRef> {
    let sender_id = request
        .actor
        .as_ref()
        .map(|actor| actor.participant_id.as_str());
    (!request.client_ref.is_empty())
        .then(|| ChatRef::new(sender_id.unwrap_or_default(), request.client_ref.clone()))
}
