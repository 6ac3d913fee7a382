//! One session's state, composed of its parts: the event log, presence, the
//! lease and chat, each owning its fields. The composition is where they
//! meet: a participant going offline releases the lease it held, a chat
//! message is stamped with its sender's presence, a snapshot gathers all.
//!
//! Everything here is synchronous and takes `now` as an argument: the actor
//! owns the clock and the store; this module only decides. A batch stages
//! events (with their seqs) and writes; the actor persists the writes and only
//! then publishes the events and sends the replies.

use crate::ownership::Owned;
use std::sync::Arc;

use meno_proto::{
    Actor, ChatMessage, ConnectionInfo, HeartbeatRequest, JoinResponse, LeaseReleaseRequest,
    LeaseSetRequest, LeaseState, MarkReadRequest, MarkReadResponse, PresenceState,
    PresenceUpdateRequest, ReadPosition, SendChatRequest, SendChatResponse, SessionEvent,
    SessionRef,
};

use super::batch::{Batch, Subscription};
use super::chat::Chat;
use super::command::Delivery;
use super::events::{EventLog, Stage};
use super::lease::Lease;
use super::presence::Presence;
use super::reads::Reads;
use crate::config::SessionConfig;
use crate::error::CoreError;
use crate::store::{ChatRef, SessionKey, SessionRecord};

/// When a client may retry a call for a connection being re-registered: a
/// bridge rejoins its sockets within about a second of a core restart.
const REJOIN_RETRY_AFTER: std::time::Duration = std::time::Duration::from_millis(500);

/// Stages into the state's batch at `now`: borrows only the log, the batch,
/// the key and the config, so the parts stay free to decide.
macro_rules! stage {
    ($state:ident, $now:expr) => {
        Stage::new(
            &mut $state.events,
            &mut $state.batch,
            &$state.key,
            &$state.config,
            $now,
        )
    };
    ($state:ident, $now:expr, $trace_id:expr) => {
        stage!($state, $now).traced($trace_id)
    };
}

/// The trace id of whoever acts (empty: none).
fn trace_of(actor: Option<&Actor>) -> &str {
    actor.map_or("", |actor| actor.trace_id.as_str())
}

/// One session's state, owned by its actor.
#[derive(Debug)]
pub(crate) struct SessionState {
    key: SessionKey,
    config: Arc<SessionConfig>,
    events: EventLog,
    presence: Presence,
    lease: Lease,
    chat: Chat,
    reads: Reads,
    batch: Batch,
    /// With several core replicas: the ownership this actor writes under.
    owned: Option<Owned>,
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
        Self {
            events: EventLog::restore(record.seq_mark),
            lease: Lease::restore(record.lease, record.step_index),
            chat: Chat::restore(recent_chat, config.history_sync_limit),
            presence: Presence::restore(record.participants, record.connections, &config, now),
            reads: Reads::restore(record.reads),
            batch: Batch::default(),
            owned: None,
            key,
            config,
        }
    }

    /// Writes from now on are under `owned` (several core replicas).
    pub(crate) fn set_owned(&mut self, owned: Option<Owned>) {
        self.owned = owned;
    }

    /// The ownership this actor writes under, if replicas share sessions.
    pub(crate) fn owned(&self) -> Option<Owned> {
        self.owned
    }

    pub(crate) fn key(&self) -> &SessionKey {
        &self.key
    }

    pub(crate) fn config(&self) -> &SessionConfig {
        &self.config
    }

    pub(crate) fn head_seq(&self) -> u64 {
        self.events.head_seq()
    }

    pub(crate) fn session_ref(&self) -> SessionRef {
        SessionRef {
            tenant: self.key.tenant.clone(),
            session_id: self.key.session_id.clone(),
        }
    }

    /// Queues a reply to be sent once the batch is durable (or failed).
    pub(crate) fn defer_reply<T: Send + Sync + 'static>(
        &mut self,
        reply: super::Reply<T>,
        result: Result<T, CoreError>,
    ) {
        self.batch.defer_reply(reply, result);
    }

    /// Starts `subscription` once the current batch is published.
    pub(crate) fn subscribe_after_batch(&mut self, subscription: Subscription) {
        self.batch.subscriptions.push(subscription);
    }

    /// Takes the finished batch; the caller persists and publishes it.
    pub(crate) fn take_batch(&mut self) -> Batch {
        std::mem::take(&mut self.batch)
    }

    /// Publishes a durable batch's events to subscribers and the ring.
    pub(crate) fn publish(&mut self, events: &[Arc<SessionEvent>]) {
        self.events.publish(events, &self.config);
    }

    /// Starts a subscription at the current head.
    pub(crate) fn subscribe(
        &mut self,
        from_seq: Option<u64>,
        deliveries: tokio::sync::mpsc::Sender<Delivery>,
    ) {
        self.events.subscribe(from_seq, deliveries);
    }

    /// Events after `last_seq` from the ring and the current batch, when the
    /// ring still covers them.
    pub(crate) fn events_after(&self, last_seq: u64) -> Option<Vec<SessionEvent>> {
        self.events.events_after(last_seq, &self.batch.events)
    }

    /// Chat messages staged in the current batch (not yet in the store).
    pub(crate) fn staged_chat(&self) -> impl Iterator<Item = &ChatMessage> {
        self.batch.staged_chat()
    }

    /// Whether a recent message carries this sender's client_ref.
    pub(crate) fn knows_client_ref(&self, reference: &ChatRef) -> bool {
        self.chat.knows_ref(reference)
    }

    /// Everything a new connection needs, current to the head seq.
    pub(crate) fn snapshot(&self) -> meno_proto::Snapshot {
        meno_proto::Snapshot {
            history: self.chat.recent().cloned().collect(),
            participants: self.presence.list(),
            lease_active: self.lease.active(),
            lease: Some(self.lease.state().clone()),
        }
    }

    pub(crate) fn presence_list(&self) -> Vec<PresenceState> {
        self.presence.list()
    }

    pub(crate) fn lease_state(&self) -> LeaseState {
        self.lease.state().clone()
    }

    pub(crate) fn full_join_response(&self) -> JoinResponse {
        JoinResponse {
            snapshot_seq: self.head_seq(),
            start: Some(meno_proto::join_response::Start::Snapshot(self.snapshot())),
        }
    }

    /// Every registered connection: its id and its participant's.
    pub(crate) fn connections(&self) -> impl Iterator<Item = (&str, &str)> {
        self.presence.connections()
    }

    /// True when nothing keeps the actor alive.
    pub(crate) fn is_idle(&self) -> bool {
        !self.presence.has_connections() && !self.events.has_subscribers() && !self.lease.active()
    }

    /// Drops subscribers whose streams have ended.
    pub(crate) fn prune_subscribers(&mut self) {
        self.events.prune_subscribers();
    }

    /// A bridge acts for a client through the connection it holds. One this
    /// session does not know (the core restarted and the bridge has not
    /// rejoined it yet, or its TTL ran out while the bridge was cut off) is a
    /// fault of ours the bridge is repairing: a retryable `Unavailable`, never
    /// a refusal a client would drop its message for. A backend acting
    /// without a connection is judged by its participant alone.
    fn check_connection(&self, actor: Option<&Actor>) -> Result<(), CoreError> {
        let connection_id = actor.map_or("", |actor| actor.connection_id.as_str());
        if connection_id.is_empty() || self.presence.has_connection(connection_id) {
            return Ok(());
        }
        let mut err = CoreError::unavailable(format!(
            "connection {connection_id:?} is not registered in this session yet \
             (the bridge is re-registering it); retry"
        ));
        err.retry_after = Some(REJOIN_RETRY_AFTER);
        Err(err)
    }

    /// Registers a connection and marks its participant online.
    pub(crate) fn connect(&mut self, info: ConnectionInfo, trace_id: &str, now: i64) {
        let mut stage = stage!(self, now, trace_id);
        self.presence.connect(info, &mut stage);
    }

    /// Removes a connection; a participant left offline loses the lease.
    pub(crate) fn disconnect(
        &mut self,
        connection_id: &str,
        graceful: bool,
        trace_id: &str,
        now: i64,
    ) {
        let mut stage = stage!(self, now, trace_id);
        if let Some(offline) = self
            .presence
            .disconnect(connection_id, graceful, &mut stage)
        {
            self.lease.release_held_by(&offline, &mut stage);
        }
    }

    /// Extends the TTL of a bridge's connections, registering unknown ones.
    pub(crate) fn refresh(&mut self, connections: Vec<ConnectionInfo>, now: i64) -> u32 {
        let mut stage = stage!(self, now);
        self.presence.refresh(connections, &mut stage)
    }

    pub(crate) fn update_presence(
        &mut self,
        request: &PresenceUpdateRequest,
        participant_id: &str,
        now: i64,
    ) -> Result<PresenceState, CoreError> {
        self.check_connection(request.actor.as_ref())?;
        let mut stage = stage!(self, now, trace_of(request.actor.as_ref()));
        self.presence.update(request, participant_id, &mut stage)
    }

    pub(crate) fn heartbeat(
        &mut self,
        request: &HeartbeatRequest,
        participant_id: &str,
        now: i64,
    ) -> Result<(), CoreError> {
        self.check_connection(request.actor.as_ref())?;
        let mut stage = stage!(self, now);
        self.presence.heartbeat(request, participant_id, &mut stage)
    }

    /// Expires presence (connections, grace periods, typing) and then the
    /// lease: a holder gone offline and an expired lease both clear it.
    pub(crate) fn expire(&mut self, now: i64) {
        let mut stage = stage!(self, now);
        for offline in self.presence.expire(&mut stage) {
            self.lease.release_held_by(&offline, &mut stage);
        }
        self.lease.expire(&mut stage);
    }

    /// `chat.send`, stamped with the sender's name and role from presence.
    pub(crate) fn send_chat(
        &mut self,
        request: SendChatRequest,
        stored_duplicate: Option<ChatMessage>,
        now: i64,
    ) -> Result<SendChatResponse, CoreError> {
        if stored_duplicate.is_none() {
            self.check_connection(request.actor.as_ref())?;
        }
        let sender = request
            .actor
            .as_ref()
            .and_then(|actor| self.presence.sender_identity(&actor.participant_id));
        let mut stage = stage!(self, now, trace_of(request.actor.as_ref()));
        self.chat
            .send(request, sender, stored_duplicate, &mut stage)
    }

    pub(crate) fn set_lease(
        &mut self,
        request: &LeaseSetRequest,
        participant_id: &str,
        claimed_role: meno_proto::Role,
        now: i64,
    ) -> Result<(LeaseState, u64), CoreError> {
        self.check_connection(request.actor.as_ref())?;
        let role = self.presence.role_of(participant_id, claimed_role);
        let mut stage = stage!(self, now, trace_of(request.actor.as_ref()));
        self.lease.set(request, participant_id, role, &mut stage)
    }

    pub(crate) fn release_lease(
        &mut self,
        request: &LeaseReleaseRequest,
        participant_id: &str,
        claimed_role: meno_proto::Role,
        now: i64,
    ) -> Result<(LeaseState, u64), CoreError> {
        self.check_connection(request.actor.as_ref())?;
        let role = self.presence.role_of(participant_id, claimed_role);
        let mut stage = stage!(self, now, trace_of(request.actor.as_ref()));
        self.lease
            .release(request, participant_id, role, &mut stage)
    }

    /// The seq of a recent message, by its server id (older ones are looked
    /// up in the store before the batch is decided).
    pub(crate) fn recent_message_seq(&self, message_id: &str) -> Option<u64> {
        self.chat.seq_of(message_id)
    }

    /// Every user's read position, ordered by user id.
    pub(crate) fn reads(&self) -> Vec<ReadPosition> {
        self.reads.list()
    }

    /// An ACK: moves the actor's read position to `request.message_id`
    /// (never backwards). `stored_seq` is the message's seq in this session
    /// as the store has it, when it is not among the recent messages. A
    /// caller acting through a connection must have it in this session; a
    /// backend without one may move any user's position (the actor's
    /// participant id names the user).
    pub(crate) fn mark_read(
        &mut self,
        request: &MarkReadRequest,
        stored_seq: Option<u64>,
        now: i64,
    ) -> Result<MarkReadResponse, CoreError> {
        let actor = request.actor.clone().unwrap_or_default();
        if !actor.connection_id.is_empty()
            && self
                .presence
                .participant_of_connection(&actor.connection_id)
                != Some(actor.participant_id.as_str())
        {
            return Err(CoreError::denied(format!(
                "this connection is not in room {:?}",
                self.key.session_id
            )));
        }
        let seq = self
            .recent_message_seq(&request.message_id)
            .or(stored_seq)
            .ok_or_else(|| {
                CoreError::new(
                    crate::error::ErrorCode::NotFound,
                    format!(
                        "message {:?} is not in room {:?}",
                        request.message_id, self.key.session_id
                    ),
                )
            })?;
        let mut stage = stage!(self, now, &actor.trace_id);
        let (position, advanced) =
            self.reads
                .mark(&actor.participant_id, &request.message_id, seq, &mut stage);
        Ok(MarkReadResponse {
            session_id: self.key.session_id.clone(),
            position: Some(position),
            advanced,
        })
    }

    pub(crate) fn presence_flush_due(&self, now: i64) -> bool {
        self.presence.flush_due(now, &self.config)
    }

    /// Stages every presence row changed since the last flush.
    pub(crate) fn stage_presence_flush(&mut self, now: i64) {
        let mut stage = stage!(self, now);
        self.presence.stage_flush(&mut stage);
    }
}

#[cfg(test)]
mod tests;
