//! The event log of one session: seq assignment with durable seq blocks, the
//! ring of recent events that resumes and subscriptions replay from, and the
//! live subscribers a published batch reaches.

use std::collections::VecDeque;
use std::sync::Arc;

use meno_proto::{session_event, PresenceChange, SessionEvent, SessionRef, Target};

use super::batch::Batch;
use super::command::Delivery;
use crate::config::SessionConfig;
use crate::store::{SessionKey, SessionWrite};

#[derive(Debug)]
pub(crate) struct EventLog {
    /// The last seq assigned.
    head_seq: u64,
    /// The highest seq reserved durably.
    seq_mark: u64,
    /// Every event with seq > `ring_floor` is in `ring` or in the batch.
    ring_floor: u64,
    ring: VecDeque<Arc<SessionEvent>>,
    subscribers: Vec<tokio::sync::mpsc::Sender<Delivery>>,
}

impl EventLog {
    /// Seqs continue above the reserved mark, so none is ever reused.
    pub(crate) fn restore(seq_mark: u64) -> Self {
        Self {
            head_seq: seq_mark,
            seq_mark,
            ring_floor: seq_mark,
            ring: VecDeque::new(),
            subscribers: Vec::new(),
        }
    }

    pub(crate) fn head_seq(&self) -> u64 {
        self.head_seq
    }

    /// Publishes a durable batch's events to subscribers and the ring.
    pub(crate) fn publish(&mut self, events: &[Arc<SessionEvent>], config: &SessionConfig) {
        for event in events {
            let kind = match event.kind {
                Some(session_event::Kind::ChatMessage(_)) => "chat",
                Some(session_event::Kind::Presence(_)) => "presence",
                Some(session_event::Kind::Lease(_)) => "lease",
                Some(session_event::Kind::Read(_)) => "read",
                None => "none",
            };
            crate::metrics::EVENTS_PUBLISHED
                .with_label_values(&[kind])
                .inc();
            self.ring.push_back(Arc::clone(event));
            if self.ring.len() > config.ring_capacity {
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

    /// Starts a subscription at the current head (after its batch was
    /// published), replaying from the ring when `from_seq` is given.
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

    /// Events after `last_seq` from the ring and the staged ones, when the
    /// ring still covers them.
    pub(crate) fn events_after(
        &self,
        last_seq: u64,
        staged: &[Arc<SessionEvent>],
    ) -> Option<Vec<SessionEvent>> {
        if last_seq < self.ring_floor || last_seq > self.head_seq {
            return None;
        }
        Some(
            self.ring
                .iter()
                .chain(staged.iter())
                .filter(|event| event.seq > last_seq)
                .map(|event| (**event).clone())
                .collect(),
        )
    }

    /// True while some subscriber's stream is still open.
    pub(crate) fn has_subscribers(&self) -> bool {
        self.subscribers
            .iter()
            .any(|subscriber| !subscriber.is_closed())
    }

    /// Drops subscribers whose streams have ended.
    pub(crate) fn prune_subscribers(&mut self) {
        self.subscribers
            .retain(|subscriber| !subscriber.is_closed());
    }
}

/// Where a decision records what it changed: the events it stages (each
/// with the next seq) and the rows it writes, at the batch's `now`. Every
/// mutating decision of presence, lease and chat takes one.
///
/// A stage made for a caller's action carries that caller's trace id, and
/// every event it stages carries it too: a leave that also releases the
/// lease traces both events to the leave. A stage of the core's own (expiry,
/// timeouts) has none.
pub(crate) struct Stage<'a> {
    log: &'a mut EventLog,
    batch: &'a mut Batch,
    key: &'a SessionKey,
    config: &'a SessionConfig,
    now: i64,
    trace_id: String,
}

impl<'a> Stage<'a> {
    pub(crate) fn new(
        log: &'a mut EventLog,
        batch: &'a mut Batch,
        key: &'a SessionKey,
        config: &'a SessionConfig,
        now: i64,
    ) -> Self {
        Self {
            log,
            batch,
            key,
            config,
            now,
            trace_id: String::new(),
        }
    }

    /// The same stage, stamping `trace_id` on the events it stages.
    pub(crate) fn traced(mut self, trace_id: &str) -> Self {
        trace_id.clone_into(&mut self.trace_id);
        self
    }

    pub(crate) fn now(&self) -> i64 {
        self.now
    }

    pub(crate) fn config(&self) -> &SessionConfig {
        self.config
    }

    /// The seq the next staged event gets.
    pub(crate) fn next_seq(&self) -> u64 {
        self.log.head_seq + 1
    }

    pub(crate) fn head_seq(&self) -> u64 {
        self.log.head_seq
    }

    /// Records that a user's connection came or went, for its user actor.
    pub(crate) fn membership(&mut self, user_id: &str, connection_id: &str, connected: bool) {
        self.batch.memberships.push(super::batch::Membership {
            user_id: user_id.to_owned(),
            connection_id: connection_id.to_owned(),
            connected,
        });
    }

    /// The rows this batch writes.
    pub(crate) fn write(&mut self) -> &mut SessionWrite {
        &mut self.batch.write
    }

    /// Assigns the next seq to an event and stages it for publication,
    /// reserving a new seq block durably when the current one runs out.
    pub(crate) fn event(&mut self, target: Option<Target>, kind: session_event::Kind) -> u64 {
        self.event_with_change(target, kind, None)
    }

    /// [`Stage::event`] for a presence event, with what it changed.
    pub(crate) fn presence_event(
        &mut self,
        state: meno_proto::PresenceState,
        change: PresenceChange,
    ) -> u64 {
        self.event_with_change(None, session_event::Kind::Presence(state), Some(change))
    }

    fn event_with_change(
        &mut self,
        target: Option<Target>,
        kind: session_event::Kind,
        presence_change: Option<PresenceChange>,
    ) -> u64 {
        let log = &mut *self.log;
        log.head_seq += 1;
        if log.head_seq > log.seq_mark {
            log.seq_mark = log.head_seq + self.config.seq_block.max(1) - 1;
            self.batch.write.seq_mark = Some(log.seq_mark);
        }
        self.batch.events.push(Arc::new(SessionEvent {
            session: Some(SessionRef {
                tenant: self.key.tenant.clone(),
                session_id: self.key.session_id.clone(),
            }),
            seq: log.head_seq,
            server_time_ms: self.now,
            target,
            trace_id: self.trace_id.clone(),
            presence_change,
            kind: Some(kind),
        }));
        log.head_seq
    }
}
