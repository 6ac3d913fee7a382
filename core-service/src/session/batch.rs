//! What one batch of commands produced, waiting for its store write: the
//! write itself, the events to publish, the replies to send and the
//! subscriptions to start once it is durable.

use std::sync::Arc;

use meno_proto::{session_event, ChatMessage, SessionEvent};

use super::command::Delivery;
use crate::error::CoreError;
use crate::store::SessionWrite;

type DeferredReply = Box<dyn FnOnce(Option<&CoreError>) + Send + Sync>;

/// A subscription waiting for its batch to be published.
pub(crate) struct Subscription {
    pub(crate) from_seq: Option<u64>,
    pub(crate) deliveries: tokio::sync::mpsc::Sender<Delivery>,
    pub(crate) reply: super::Reply<()>,
}

#[derive(Default)]
pub(crate) struct Batch {
    pub(crate) write: SessionWrite,
    pub(crate) events: Vec<Arc<SessionEvent>>,
    pub(crate) replies: Vec<DeferredReply>,
    /// Subscriptions start after this batch's events are published, so their
    /// head seq is exact.
    pub(crate) subscriptions: Vec<Subscription>,
    /// Connections registered or removed, told to their users' actors once
    /// the batch is durable.
    pub(crate) memberships: Vec<Membership>,
}

/// A connection of a user that came (`connected`) or went.
#[derive(Debug)]
pub(crate) struct Membership {
    pub(crate) user_id: String,
    pub(crate) connection_id: String,
    pub(crate) connected: bool,
}

impl Batch {
    /// Queues a reply to be sent once the batch is durable (or failed).
    pub(crate) fn defer_reply<T: Send + Sync + 'static>(
        &mut self,
        reply: super::Reply<T>,
        result: Result<T, CoreError>,
    ) {
        self.replies.push(Box::new(move |failure| {
            let outcome = match failure {
                Some(err) => Err(err.clone()),
                None => result,
            };
            // The caller may have given up waiting; nothing to do then.
            let _ = reply.send(outcome);
        }));
    }

    /// Chat messages staged in this batch (not yet in the store).
    pub(crate) fn staged_chat(&self) -> impl Iterator<Item = &ChatMessage> {
        self.events.iter().filter_map(|event| match &event.kind {
            Some(session_event::Kind::ChatMessage(message)) => Some(message),
            _ => None,
        })
    }
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("write", &self.write)
            .field("events", &self.events.len())
            .field("replies", &self.replies.len())
            .finish()
    }
}
