//! The in-memory state of one session and the batch being built from it.
//!
//! Everything here is synchronous and takes `now` as an argument: the actor
//! owns the clock and the store; this module only decides. A batch stages
//! events (with their seqs) and writes; the actor persists the writes and only
//! then publishes the events and sends the replies.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use meno_proto::{
    session_event, ChatMessage, JoinResponse, LeaseState, PresenceState, SessionEvent, SessionRef,
    Target,
};

use super::command::Delivery;
use super::presence::Participant;
use crate::config::SessionConfig;
use crate::error::CoreError;
use crate::store::{SessionKey, SessionRecord, SessionWrite, StoredConnection};

type DeferredReply = Box<dyn FnOnce(Option<&CoreError>) + Send + Sync>;

/// A subscription waiting for its batch to be published.
pub(crate) struct Subscription {
    pub(crate) from_seq: Option<u64>,
    pub(crate) deliveries: tokio::sync::mpsc::Sender<Delivery>,
    pub(crate) reply: super::Reply<()>,
}

/// What one batch of commands produced, waiting for its store write.
#[derive(Default)]
pub(crate) struct Batch {
    pub(crate) write: SessionWrite,
    pub(crate) events: Vec<Arc<SessionEvent>>,
    pub(crate) replies: Vec<DeferredReply>,
    /// Subscriptions start after this batch's events are published, so their
    /// head seq is exact.
    pub(crate) subscriptions: Vec<Subscription>,
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

/// One session's state, owned by its actor.
#[derive(Debug)]
pub(crate) struct SessionState {
    pub(crate) key: SessionKey,
    pub(crate) config: Arc<SessionConfig>,
    /// The last seq assigned.
    pub(crate) head_seq: u64,
    /// The highest seq reserved durably.
    seq_mark: u64,
    /// Every event with seq > `ring_floor` is in `ring` or in the batch.
    ring_floor: u64,
    ring: VecDeque<Arc<SessionEvent>>,
    pub(crate) step_index: i64,
    pub(crate) lease: LeaseState,
    /// Whether a lease row was ever written (for the conditional write).
    pub(crate) lease_stored_epoch: Option<u64>,
    pub(crate) participants: BTreeMap<String, Participant>,
    pub(crate) connections: HashMap<String, StoredConnection>,
    /// The newest chat messages, oldest first, for `chat.sync` and dedupe.
    pub(crate) recent_chat: VecDeque<ChatMessage>,
    pub(crate) recent_refs: HashMap<String, ChatMessage>,
    pub(crate) subscribers: Vec<tokio::sync::mpsc::Sender<Delivery>>,
    pub(crate) last_presence_flush_ms: i64,
    pub(crate) batch: Batch,
}

impl SessionState {
    /// Rebuilds a session from what the store holds. Seqs continue above the
    /// reserved mark, so none is ever reused.
    pub(crate) fn restore(
        key: SessionKey,
        config: Arc<SessionConfig>,
        record: SessionRecord,
        recent_chat: Vec<ChatMessage>,
        now: i64,
    ) -> Self {
        let head_seq = record.seq_mark;
        let mut state = Self {
            key,
            config,
            head_seq,
            seq_mark: record.seq_mark,
            ring_floor: head_seq,
            ring: VecDeque::new(),
            step_index: record.step_index,
            lease_stored_epoch: record.lease.as_ref().map(|lease| lease.epoch),
            lease: record.lease.unwrap_or_default(),
            participants: BTreeMap::new(),
            connections: HashMap::new(),
            recent_chat: VecDeque::new(),
            recent_refs: HashMap::new(),
            subscribers: Vec::new(),
            last_presence_flush_ms: now,
            batch: Batch::default(),
        };
        state.lease.step_index = state.step_index;
        for message in recent_chat {
            state.remember_chat(message);
        }
        for presence in record.participants {
            state.participants.insert(
                presence.participant_id.clone(),
                Participant::restored(presence),
            );
        }
        for connection in record.connections {
            if connection.expires_at_ms > now {
                state
                    .connections
                    .insert(connection.info.connection_id.clone(), connection);
            }
        }
        // Participants restored without a live connection are offline: their
        // bridges will re-register live connections with their next refresh.
        state.settle_restored_presence(now);
        state
    }

    pub(crate) fn session_ref(&self) -> SessionRef {
        SessionRef {
            tenant: self.key.tenant.clone(),
            session_id: self.key.session_id.clone(),
        }
    }

    /// Assigns the next seq to an event and stages it for publication,
    /// reserving a new seq block durably when the current one runs out.
    pub(crate) fn stage_event(
        &mut self,
        now: i64,
        target: Option<Target>,
        kind: session_event::Kind,
    ) -> u64 {
        self.head_seq += 1;
        if self.head_seq > self.seq_mark {
            self.seq_mark = self.head_seq + self.config.seq_block.max(1) - 1;
            self.batch.write.seq_mark = Some(self.seq_mark);
        }
        self.batch.events.push(Arc::new(SessionEvent {
            session: Some(self.session_ref()),
            seq: self.head_seq,
            server_time_ms: now,
            target,
            kind: Some(kind),
        }));
        self.head_seq
    }

    /// Queues a reply to be sent once the batch is durable (or failed).
    pub(crate) fn defer_reply<T: Send + Sync + 'static>(
        &mut self,
        reply: super::Reply<T>,
        result: Result<T, CoreError>,
    ) {
        self.batch.replies.push(Box::new(move |failure| {
            let outcome = match failure {
                Some(err) => Err(err.clone()),
                None => result,
            };
            // The caller may have given up waiting; nothing to do then.
            let _ = reply.send(outcome);
        }));
    }

    pub(crate) fn remember_chat(&mut self, message: ChatMessage) {
        if !message.client_ref.is_empty() {
            self.recent_refs
                .insert(message.client_ref.clone(), message.clone());
        }
        self.recent_chat.push_back(message);
        let keep = self.config.history_sync_limit.max(1);
        while self.recent_chat.len() > keep {
            if let Some(old) = self.recent_chat.pop_front() {
                self.recent_refs.remove(&old.client_ref);
            }
        }
    }

    /// Takes the finished batch; the caller persists and publishes it.
    pub(crate) fn take_batch(&mut self) -> Batch {
        std::mem::take(&mut self.batch)
    }

    /// Publishes a durable batch's events to subscribers and the ring.
    pub(crate) fn publish(&mut self, events: &[Arc<SessionEvent>]) {
        for event in events {
            let kind = match event.kind {
                Some(session_event::Kind::ChatMessage(_)) => "chat",
                Some(session_event::Kind::Presence(_)) => "presence",
                Some(session_event::Kind::Lease(_)) => "lease",
                None => "none",
            };
            crate::metrics::EVENTS_PUBLISHED
                .with_label_values(&[kind])
                .inc();
            self.ring.push_back(Arc::clone(event));
            if self.ring.len() > self.config.ring_capacity {
                if let Some(evicted) = self.ring.pop_front() {
                    self.ring_floor = evicted.seq;
                }
            }
        }
        if events.is_empty() {
            return;
        }
        let head_seq = self.head_seq;
        self.subscribers.retain(|subscriber| {
            for event in events {
                // Keep one slot for the resync notice, so a lagging
                // subscriber learns where to restart instead of stalling us.
                if subscriber.capacity() <= 1 {
                    let _ = subscriber.try_send(Delivery::Resync {
                        from_seq: event.seq,
                        head_seq,
                    });
                    return false;
                }
                if subscriber
                    .try_send(Delivery::Event(Arc::clone(event)))
                    .is_err()
                {
                    return false;
                }
            }
            true
        });
    }

    /// Starts a subscription after the current batch has been published.
    pub(crate) fn subscribe(
        &mut self,
        from_seq: Option<u64>,
        deliveries: tokio::sync::mpsc::Sender<Delivery>,
    ) {
        let head_seq = self.head_seq;
        let backlog: Vec<Arc<SessionEvent>> = match from_seq {
            None => Vec::new(),
            Some(from) if from >= self.ring_floor && from <= head_seq => self
                .ring
                .iter()
                .filter(|event| event.seq > from)
                .cloned()
                .collect(),
            Some(from) => {
                let _ = deliveries.try_send(Delivery::Resync {
                    from_seq: from.saturating_add(1),
                    head_seq,
                });
                return;
            }
        };
        if deliveries
            .try_send(Delivery::Subscribed { head_seq })
            .is_err()
        {
            return;
        }
        for event in backlog {
            if deliveries.capacity() <= 1 {
                let _ = deliveries.try_send(Delivery::Resync {
                    from_seq: event.seq,
                    head_seq,
                });
                return;
            }
            let _ = deliveries.try_send(Delivery::Event(event));
        }
        self.subscribers.push(deliveries);
    }

    /// Events after `last_seq` from the ring and the current batch, when the
    /// ring still covers them.
    pub(crate) fn events_after(&self, last_seq: u64) -> Option<Vec<SessionEvent>> {
        if last_seq < self.ring_floor || last_seq > self.head_seq {
            return None;
        }
        Some(
            self.ring
                .iter()
                .chain(self.batch.events.iter())
                .filter(|event| event.seq > last_seq)
                .map(|event| (**event).clone())
                .collect(),
        )
    }

    /// Chat messages staged in the current batch (not yet in the store).
    pub(crate) fn staged_chat(&self) -> impl Iterator<Item = &ChatMessage> {
        self.batch
            .events
            .iter()
            .filter_map(|event| match &event.kind {
                Some(session_event::Kind::ChatMessage(message)) => Some(message),
                _ => None,
            })
    }

    /// Everything a new connection needs, current to `head_seq`.
    pub(crate) fn snapshot(&self) -> meno_proto::Snapshot {
        meno_proto::Snapshot {
            history: self.recent_chat.iter().cloned().collect(),
            participants: self.presence_list(),
            lease_active: self.lease_active(),
            lease: Some(self.lease.clone()),
        }
    }

    pub(crate) fn presence_list(&self) -> Vec<PresenceState> {
        self.participants
            .values()
            .map(|participant| participant.state.clone())
            .collect()
    }

    pub(crate) fn full_join_response(&self) -> JoinResponse {
        JoinResponse {
            snapshot_seq: self.head_seq,
            start: Some(meno_proto::join_response::Start::Snapshot(self.snapshot())),
        }
    }

    /// True when nothing keeps the actor alive.
    pub(crate) fn is_idle(&self) -> bool {
        self.connections.is_empty()
            && self
                .subscribers
                .iter()
                .all(|subscriber| subscriber.is_closed())
            && !self.lease_active()
    }

    /// Drops subscribers whose streams have ended.
    pub(crate) fn prune_subscribers(&mut self) {
        self.subscribers
            .retain(|subscriber| !subscriber.is_closed());
    }

    /// Stages every presence row changed since the last flush.
    pub(crate) fn stage_presence_flush(&mut self, now: i64) {
        for participant in self.participants.values_mut() {
            if participant.dirty {
                participant.dirty = false;
                self.batch.write.presence.push(participant.state.clone());
            }
        }
        self.last_presence_flush_ms = now;
    }

    pub(crate) fn presence_flush_due(&self, now: i64) -> bool {
        now - self.last_presence_flush_ms >= super::millis(self.config.presence_flush_interval)
            && self
                .participants
                .values()
                .any(|participant| participant.dirty)
    }
}
