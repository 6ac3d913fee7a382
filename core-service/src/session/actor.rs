//! The session actor: one task per active session, the only writer of its
//! state. It drains queued commands in batches, persists each batch's writes
//! in one store call, and only then publishes the batch's events in seq order
//! and answers the callers.
//!
//! It must never publish anything that was not stored, and never wait on a
//! subscriber: a subscriber that falls behind is told to resync.

use std::sync::Arc;

use meno_proto::{
    join_response, session_event, ChatMessage, GetReadsResponse, HeartbeatResponse, JoinRequest,
    JoinResponse, LeaseResponse, LeaveResponse, PresenceSnapshotResponse, PresenceUpdateResponse,
    RefreshResponse, SessionEvent,
};
use tokio::sync::mpsc;

use tracing::Instrument;

use super::batch::Subscription;
use super::command::{Command, Envelope};
use super::millis;
use super::prefetch::{chat_ref, prefetch, Prefetched};
use super::state::SessionState;
use crate::error::CoreError;
use crate::registry::ActorContext;
use crate::store::SessionKey;
use tokio_util::sync::CancellationToken;

/// The batch buffer an actor keeps between batches; one that a burst grew
/// larger is dropped after its batch.
const KEPT_BATCH_CAPACITY: usize = 32;

/// Starts the actor of `key`; it loads the session from the store first.
/// `handoff`, when cancelled, makes the actor flush, release the session to
/// another core replica and stop.
pub(crate) fn spawn_actor(
    key: SessionKey,
    actor_id: u64,
    context: ActorContext,
    handoff: CancellationToken,
) -> mpsc::Sender<Envelope> {
    let (sender, receiver) = mpsc::channel(context.config.max_batch * 8);
    let tracker = context.tracker.clone();
    tracker.spawn(run(key, actor_id, context, receiver, handoff));
    sender
}

async fn run(
    key: SessionKey,
    actor_id: u64,
    context: ActorContext,
    mut commands: mpsc::Receiver<Envelope>,
    handoff: CancellationToken,
) {
    let mut state = match load(&key, &context).await {
        Ok(state) => state,
        Err(err) => {
            if err.owner_url.is_some() {
                tracing::debug!(session = %key, error = %err, "session owned elsewhere");
            } else {
                tracing::warn!(session = %key, error = %err, "session could not be loaded");
            }
            context.forget(&key, actor_id);
            commands.close();
            while let Some(envelope) = commands.recv().await {
                (*envelope.command).fail(err.clone());
            }
            return;
        }
    };
    tracing::debug!(session = %key, head_seq = state.head_seq(), "session actor started");
    let mut tick = tokio::time::interval(context.config.tick_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // Grown by the batches that need it and given back after a large one:
    // every session holds this for its lifetime, most of it idle.
    let mut queued = Vec::new();
    let mut last_activity_ms = context.clock.now_ms();
    loop {
        tokio::select! {
            received = commands.recv_many(&mut queued, context.config.max_batch) => {
                if received == 0 {
                    break;
                }
                last_activity_ms = context.clock.now_ms();
                if let Err(err) = process(&mut state, &context, queued.drain(..)).await {
                    stop_after_failure(&key, actor_id, &context, commands, err).await;
                    return;
                }
                if queued.capacity() > KEPT_BATCH_CAPACITY {
                    queued = Vec::new();
                }
            }
            _ = tick.tick() => {
                let now = context.clock.now_ms();
                state.expire(now);
                state.prune_subscribers();
                if state.presence_flush_due(now) {
                    state.stage_presence_flush(now);
                }
                if let Err(err) = commit(&mut state, &context).await {
                    stop_after_failure(&key, actor_id, &context, commands, err).await;
                    return;
                }
                let idle_for = now - last_activity_ms;
                if state.is_idle() && idle_for >= millis(context.config.idle_timeout) {
                    retire(&key, actor_id, &context, &mut state, commands).await;
                    return;
                }
            }
            _ = handoff.cancelled() => {
                tracing::info!(session = %key, "handing the session to another core replica");
                crate::metrics::SESSIONS_RELEASED.inc();
                retire(&key, actor_id, &context, &mut state, commands).await;
                return;
            }
            _ = context.shutdown.cancelled() => {
                drain_for_shutdown(&mut state, &context, commands).await;
                return;
            }
        }
    }
    flush_presence(&mut state, &context).await;
}

async fn load(key: &SessionKey, context: &ActorContext) -> Result<SessionState, CoreError> {
    let owned = match &context.ownership {
        Some(ownership) => Some(ownership.acquire(key).await?),
        None => None,
    };
    let mut record = context.store.load_session(key).await?;
    if let Some(owned) = &owned {
        // Blocks reserved by earlier owners are recorded on the owner row.
        record.seq_mark = record.seq_mark.max(owned.seq_mark);
    }
    let loaded_at = context.clock.now_ms();
    // Connections that ran out while no actor watched them (the last one
    // stopped after a failed write): their users may still count them.
    context.tell_users(
        key,
        record
            .connections
            .iter()
            .filter(|connection| connection.expires_at_ms <= loaded_at)
            .map(|connection| {
                (
                    connection.info.participant_id.as_str(),
                    connection.info.connection_id.as_str(),
                    false,
                )
            }),
    );
    let mut recent = context
        .store
        .chat_page(key, None, context.config.history_sync_limit)
        .await?;
    recent.reverse();
    if let (Some(ownership), Some(owned)) = (&context.ownership, &owned) {
        if owned.in_doubt {
            // An earlier owner's write may still be in flight: void the
            // seqs it reserved and did not store, so such a write never
            // shows (its callers were not acknowledged, and retry here).
            // The newest stored message is read on its own: `recent` may
            // be empty by configuration.
            let newest = context.store.chat_page(key, None, 1).await?;
            let stored_up_to = newest.first().map_or(0, |message| message.seq);
            ownership
                .void_unstored(key, stored_up_to, record.seq_mark)
                .await?;
        }
    }
    // The same instant as above: each stored connection is either told gone
    // or restored.
    let now = loaded_at;
    let mut state = SessionState::restore(
        key.clone(),
        Arc::clone(&context.config),
        record,
        recent,
        now,
    );
    state.set_owned(owned);
    // The users' actors may have forgotten these (a restart, a failed
    // write): telling them again is harmless, they count by connection id.
    context.tell_users(
        key,
        state
            .connections()
            .map(|(connection_id, user_id)| (user_id, connection_id, true)),
    );
    Ok(state)
}

async fn process(
    state: &mut SessionState,
    context: &ActorContext,
    envelopes: impl Iterator<Item = Envelope>,
) -> Result<(), CoreError> {
    let (commands, callers): (Vec<Command>, Vec<tracing::Span>) = envelopes
        .map(|envelope| (*envelope.command, envelope.span))
        .unzip();
    let span = batch_span(state.key(), &callers);
    process_batch(state, context, commands)
        .instrument(span)
        .await
}

/// The span of one batch: a child of its first traced caller's request span,
/// linked to the other callers' (one store write serves them all).
fn batch_span(key: &SessionKey, callers: &[tracing::Span]) -> tracing::Span {
    let mut traced = callers.iter().filter_map(tracing::Span::id);
    let span = tracing::info_span!(
        parent: traced.next(),
        "session.batch",
        session = %key,
        commands = callers.len(),
    );
    for other in traced {
        span.follows_from(other);
    }
    span
}

async fn process_batch(
    state: &mut SessionState,
    context: &ActorContext,
    commands: Vec<Command>,
) -> Result<(), CoreError> {
    let prefetched = match prefetch(state, context, &commands).await {
        Ok(prefetched) => prefetched,
        Err(err) => {
            for command in commands {
                command.fail(err.clone());
            }
            return Err(err);
        }
    };
    let now = context.clock.now_ms();
    for command in commands {
        apply(state, command, &prefetched, now);
    }
    if state.presence_flush_due(now) {
        state.stage_presence_flush(now);
    }
    commit(state, context).await
}

fn apply(state: &mut SessionState, command: Command, prefetched: &Prefetched, now: i64) {
    match command {
        Command::Join { request, reply } => {
            let result = join(state, request, prefetched, now);
            state.defer_reply(reply, result);
        }
        Command::Leave {
            connection_id,
            graceful,
            trace_id,
            reply,
        } => {
            state.disconnect(&connection_id, graceful, &trace_id, now);
            state.defer_reply(reply, Ok(LeaveResponse {}));
        }
        Command::Refresh { connections, reply } => {
            let restored = state.refresh(connections, now);
            state.defer_reply(reply, Ok(RefreshResponse { restored }));
        }
        Command::SendChat { request, reply } => {
            let stored = chat_ref(&request)
                .and_then(|reference| prefetched.duplicates.get(&reference).cloned());
            let result = state.send_chat(request, stored, now);
            state.defer_reply(reply, result);
        }
        Command::UpdatePresence { request, reply } => {
            let participant_id = request.actor.clone().unwrap_or_default().participant_id;
            let result = state
                .update_presence(&request, &participant_id, now)
                .map(|presence| PresenceUpdateResponse {
                    state: Some(presence),
                });
            state.defer_reply(reply, result);
        }
        Command::Heartbeat { request, reply } => {
            let participant_id = request.actor.clone().unwrap_or_default().participant_id;
            let result = state
                .heartbeat(&request, &participant_id, now)
                .map(|()| HeartbeatResponse {});
            state.defer_reply(reply, result);
        }
        Command::PresenceSnapshot { reply } => {
            let response = PresenceSnapshotResponse {
                seq: state.head_seq(),
                participants: state.presence_list(),
            };
            state.defer_reply(reply, Ok(response));
        }
        Command::SetLease { request, reply } => {
            let actor = request.actor.clone().unwrap_or_default();
            let result = state
                .set_lease(&request, &actor.participant_id, actor.role(), now)
                .map(|(lease, seq)| lease_response(lease, seq));
            state.defer_reply(reply, result);
        }
        Command::ReleaseLease { request, reply } => {
            let actor = request.actor.clone().unwrap_or_default();
            let result = state
                .release_lease(&request, &actor.participant_id, actor.role(), now)
                .map(|(lease, seq)| lease_response(lease, seq));
            state.defer_reply(reply, result);
        }
        Command::GetLease { reply } => {
            let response = lease_response(state.lease_state(), state.head_seq());
            state.defer_reply(reply, Ok(response));
        }
        Command::Subscribe {
            from_seq,
            deliveries,
            reply,
        } => state.subscribe_after_batch(Subscription {
            from_seq,
            deliveries,
            reply,
        }),
        Command::MarkRead {
            request,
            stored_seq,
            reply,
        } => {
            let stored_seq =
                stored_seq.or_else(|| prefetched.message_seqs.get(&request.message_id).copied());
            let result = state.mark_read(&request, stored_seq, now);
            state.defer_reply(reply, result);
        }
        Command::GetReads { reply } => {
            let response = GetReadsResponse {
                reads: state.reads(),
            };
            state.defer_reply(reply, Ok(response));
        }
    }
}

fn lease_response(lease: meno_proto::LeaseState, seq: u64) -> LeaseResponse {
    LeaseResponse {
        active: !lease.lease_id.is_empty(),
        lease: Some(lease),
        seq,
    }
}

fn join(
    state: &mut SessionState,
    request: JoinRequest,
    prefetched: &Prefetched,
    now: i64,
) -> Result<JoinResponse, CoreError> {
    let connection = request.connection.unwrap_or_default();
    if connection.connection_id.is_empty() || connection.participant_id.is_empty() {
        return Err(CoreError::invalid(
            "a join needs a connection id and a participant id",
        ));
    }
    state.connect(connection, &request.trace_id, now);
    let Some(last_seq) = request.last_seq else {
        let mut response = state.full_join_response();
        if let Some(join_response::Start::Snapshot(snapshot)) = &mut response.start {
            let wanted = usize::try_from(request.history_limit).unwrap_or(usize::MAX);
            if wanted > 0 && wanted < snapshot.history.len() {
                snapshot.history.drain(..snapshot.history.len() - wanted);
            }
        }
        return Ok(response);
    };
    if let Some(events) = state.events_after(last_seq) {
        return Ok(JoinResponse {
            snapshot_seq: state.head_seq(),
            start: Some(join_response::Start::Resume(meno_proto::Resume {
                events,
                state: None,
                has_state: false,
            })),
        });
    }
    // The ring no longer covers `last_seq` (a restart, or a long absence):
    // replay the chat from the store and replace presence and lease by the
    // current state; beyond the resume limit, start over with a snapshot.
    match prefetched.resume_chat.get(&last_seq) {
        Some(stored) if stored.len() <= state.config().resume_limit => {
            let stored_up_to = stored.last().map_or(last_seq, |message| message.seq);
            let staged: Vec<ChatMessage> = state
                .staged_chat()
                .filter(|message| message.seq > stored_up_to)
                .cloned()
                .collect();
            let session = state.session_ref();
            let events = stored
                .iter()
                .chain(staged.iter())
                .map(|message| SessionEvent {
                    session: Some(session.clone()),
                    seq: message.seq,
                    server_time_ms: message.created_at_ms,
                    target: None,
                    trace_id: String::new(),
                    presence_change: None,
                    kind: Some(session_event::Kind::ChatMessage(message.clone())),
                })
                .collect();
            let mut current = state.snapshot();
            current.history.clear();
            Ok(JoinResponse {
                snapshot_seq: state.head_seq(),
                start: Some(join_response::Start::Resume(meno_proto::Resume {
                    events,
                    state: Some(current),
                    has_state: true,
                })),
            })
        }
        _ => Ok(state.full_join_response()),
    }
}

/// Persists the current batch, then publishes its events, answers its
/// callers and starts its subscriptions. On a store failure nothing is
/// published and every caller gets the error.
async fn commit(state: &mut SessionState, context: &ActorContext) -> Result<(), CoreError> {
    let mut batch = state.take_batch();
    // Read before the ownership check: the chat rows' timestamp is then
    // earlier than any moment another replica may take the session over.
    let checked_at_us = crate::ownership::wall_clock_us();
    let deposed = match (&context.ownership, state.owned()) {
        (Some(ownership), Some(owned)) if !ownership.holds(&owned) => true,
        (_, Some(owned)) => {
            if batch.write.seq_mark.is_some() {
                batch.write.fence = Some(owned.owner_epoch);
            }
            batch.write.written_at_us = Some(checked_at_us);
            false
        }
        _ => false,
    };
    let written = if deposed {
        Err(CoreError::unavailable(format!(
            "this core replica's ownership of {} lapsed; retry",
            state.key()
        )))
    } else if batch.write.is_empty() {
        Ok(())
    } else {
        let timer = crate::metrics::STORE_WRITE_SECONDS.start_timer();
        let written = context
            .store
            .write_session(state.key(), batch.write)
            .await
            .map_err(CoreError::from);
        timer.observe_duration();
        if written.is_err() {
            crate::metrics::STORE_ERRORS.inc();
        }
        written
    };
    let written = match (written, &context.ownership, state.owned()) {
        // The lease was checked before the write; a write that outlived it
        // may have landed after another replica took the session over, and
        // that replica's void then hides its chat. In doubt, so not
        // acknowledged: the callers retry, and their client_refs find the
        // messages that did land.
        (Ok(()), Some(ownership), Some(owned)) if !ownership.holds(&owned) => {
            crate::metrics::OWNERSHIP_LATE_WRITES.inc();
            tracing::warn!(
                session = %state.key(),
                "a batch's write finished after this replica's ownership lapsed; \
                 its callers are told to retry"
            );
            Err(CoreError::unavailable(format!(
                "this core replica's ownership of {} lapsed during the write; retry",
                state.key()
            )))
        }
        (written, _, _) => written,
    };
    match written {
        Ok(()) => {
            context.tell_users(
                state.key(),
                batch.memberships.iter().map(|change| {
                    (
                        change.user_id.as_str(),
                        change.connection_id.as_str(),
                        change.connected,
                    )
                }),
            );
            state.publish(&batch.events);
            for reply in batch.replies {
                reply(None);
            }
            for subscription in batch.subscriptions {
                state.subscribe(subscription.from_seq, subscription.deliveries);
                let _ = subscription.reply.send(Ok(()));
            }
            Ok(())
        }
        Err(err) => {
            for reply in batch.replies {
                reply(Some(&err));
            }
            for subscription in batch.subscriptions {
                let _ = subscription.reply.send(Err(err.clone()));
            }
            Err(err)
        }
    }
}

async fn flush_presence(state: &mut SessionState, context: &ActorContext) {
    state.stage_presence_flush(context.clock.now_ms());
    if let Err(err) = commit(state, context).await {
        tracing::warn!(session = %state.key(), error = %err, "presence flush failed");
    }
}

/// The in-memory state may be ahead of the store after a failed write: drop
/// it, so the next command rebuilds the session from what is durable.
async fn stop_after_failure(
    key: &SessionKey,
    actor_id: u64,
    context: &ActorContext,
    mut commands: mpsc::Receiver<Envelope>,
    err: CoreError,
) {
    tracing::warn!(session = %key, error = %err, "store write failed; session actor restarts");
    context.forget(key, actor_id);
    commands.close();
    while let Some(envelope) = commands.recv().await {
        (*envelope.command).fail(err.clone());
    }
}

/// Stops an idle actor. Its state is flushed first, and commands that raced
/// with the stop are handed to the actor that replaces it.
async fn retire(
    key: &SessionKey,
    actor_id: u64,
    context: &ActorContext,
    state: &mut SessionState,
    mut commands: mpsc::Receiver<Envelope>,
) {
    flush_presence(state, context).await;
    release(state, context).await;
    context.forget(key, actor_id);
    commands.close();
    while let Some(envelope) = commands.recv().await {
        context.forward(key.clone(), envelope).await;
    }
    tracing::debug!(session = %key, "idle session actor stopped");
}

/// Finishes queued commands, flushes what is written behind, and stops.
async fn drain_for_shutdown(
    state: &mut SessionState,
    context: &ActorContext,
    mut commands: mpsc::Receiver<Envelope>,
) {
    commands.close();
    let mut queued = Vec::new();
    while commands
        .recv_many(&mut queued, context.config.max_batch)
        .await
        > 0
    {
        if process(state, context, queued.drain(..)).await.is_err() {
            break;
        }
    }
    flush_presence(state, context).await;
    release(state, context).await;
}

/// Gives the session up to the next core replica, once everything is
/// flushed (several replicas only; nothing while the ownership lapsed).
async fn release(state: &SessionState, context: &ActorContext) {
    if let (Some(ownership), Some(owned)) = (&context.ownership, state.owned()) {
        if ownership.holds(&owned) {
            ownership.release(state.key(), &owned).await;
        }
    }
}

impl Command {
    /// Answers the command with `err` without running it.
    pub(crate) fn fail(self, err: CoreError) {
        match self {
            Command::Join { reply, .. } => drop(reply.send(Err(err))),
            Command::Leave { reply, .. } => drop(reply.send(Err(err))),
            Command::Refresh { reply, .. } => drop(reply.send(Err(err))),
            Command::SendChat { reply, .. } => drop(reply.send(Err(err))),
            Command::UpdatePresence { reply, .. } => drop(reply.send(Err(err))),
            Command::Heartbeat { reply, .. } => drop(reply.send(Err(err))),
            Command::PresenceSnapshot { reply } => drop(reply.send(Err(err))),
            Command::SetLease { reply, .. } => drop(reply.send(Err(err))),
            Command::ReleaseLease { reply, .. } => drop(reply.send(Err(err))),
            Command::GetLease { reply } => drop(reply.send(Err(err))),
            Command::Subscribe { reply, .. } => drop(reply.send(Err(err))),
            Command::MarkRead { reply, .. } => drop(reply.send(Err(err))),
            Command::GetReads { reply } => drop(reply.send(Err(err))),
        }
    }
}
