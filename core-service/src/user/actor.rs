//! The user actor: one task per active user, the only writer of its state.
//! It applies its messages in order at the clock's `now`, relays signals to
//! the bridges interested in the user, and retires as soon as nothing keeps
//! it (no connection, no interested bridge; a user with no connection is in
//! no call). It owns nothing durable, so stopping loses nothing a session
//! actor would not tell it again.
//!
//! It must never wait on anything but its inbox: not on a bridge (deliveries
//! are `try_send`), not on another user (sends are unbounded).

use meno_proto::{
    signal, signal_request, user_event, user_stream_item, CallRejected, SignalRequest,
    SignalResponse, UserEvent, UserStreamItem,
};
use tokio::sync::mpsc;

use super::call::{Effect, Step, BUSY_STATUS};
use super::command::SignalReply;
use super::registry::UserRegistry;
use super::state::UserState;
use super::{UserCommand, UserKey};
use crate::error::{CoreError, ErrorCode};
use crate::session::millis;

/// Messages applied between two retirement checks.
const MAX_BATCH: usize = 256;

/// Starts the actor of `key`.
pub(super) fn spawn(
    key: UserKey,
    actor_id: u64,
    registry: UserRegistry,
) -> mpsc::UnboundedSender<Box<UserCommand>> {
    let (sender, receiver) = mpsc::unbounded_channel();
    let tracker = registry.tracker().clone();
    tracker.spawn(run(key, actor_id, registry, receiver));
    sender
}

async fn run(
    key: UserKey,
    actor_id: u64,
    registry: UserRegistry,
    mut inbox: mpsc::UnboundedReceiver<Box<UserCommand>>,
) {
    let mut state = UserState::default();
    let mut queued = Vec::new();
    loop {
        tokio::select! {
            received = inbox.recv_many(&mut queued, MAX_BATCH) => {
                if received == 0 {
                    break;
                }
                let now = registry.clock().now_ms();
                state.expire(now);
                for command in queued.drain(..) {
                    apply(&key, &mut state, &registry, *command, now);
                }
                if state.is_idle() && registry.retire(&key, actor_id, &inbox) {
                    return;
                }
            }
            _ = registry.shutdown().cancelled() => {
                inbox.close();
                while let Ok(command) = inbox.try_recv() {
                    command.fail(CoreError::unavailable("the core is shutting down"));
                }
                break;
            }
        }
    }
    registry.forget(&key, actor_id);
}

/// Applies one message to the user's state.
pub(super) fn apply(
    key: &UserKey,
    state: &mut UserState,
    registry: &UserRegistry,
    command: UserCommand,
    now: i64,
) {
    match command {
        UserCommand::Membership {
            session_id,
            connection_id,
            connected,
        } => state.membership(&session_id, &connection_id, connected),
        UserCommand::Interest {
            bridge_id,
            interested,
        } => state.set_interest(&bridge_id, interested),
        UserCommand::Direct {
            connection_id,
            trace_id,
            message,
        } => {
            let event = UserStreamItem {
                item: Some(user_stream_item::Item::Event(UserEvent {
                    user: Some(key.to_ref()),
                    connection_id,
                    trace_id,
                    kind: Some(user_event::Kind::Direct(*message)),
                })),
            };
            for bridge_id in state.interested() {
                registry.deliver(bridge_id, event.clone());
            }
        }
        UserCommand::Send { request, reply } => {
            if !request.connection_id.is_empty() && !state.has_connection(&request.connection_id) {
                let err = CoreError::denied(format!(
                    "connection {:?} is not a connection of user {:?}",
                    request.connection_id, key.user_id
                ));
                let _ = reply.send(Err(err));
                return;
            }
            let target = key.peer(&request.target_id);
            let sender_sessions = state.session_ids();
            registry.tell(
                &target,
                UserCommand::Deliver {
                    request,
                    sender_sessions,
                    reply,
                },
            );
        }
        UserCommand::Deliver {
            request,
            sender_sessions,
            reply,
        } => deliver(key, state, registry, *request, &sender_sessions, reply, now),
        UserCommand::Settle {
            target_id,
            effect,
            reply,
        } => {
            let ttl_ms = millis(registry.config().call_busy_ttl);
            state.apply_call(effect, &target_id, now, ttl_ms);
            let _ = reply.send(Ok(SignalResponse::default()));
        }
    }
}

/// Step 2 of a signal, at the target `key`: decide, relay, and hand the
/// sender's part back to the sender's actor.
fn deliver(
    key: &UserKey,
    state: &mut UserState,
    registry: &UserRegistry,
    request: SignalRequest,
    sender_sessions: &[String],
    reply: SignalReply,
    now: i64,
) {
    let sender_id = request.from.unwrap_or_default().user_id;
    let decided = decide(key, state, &sender_id, sender_sessions, request.kind, now);
    let kind = match decided {
        Decision::Refused(err) => {
            let _ = reply.send(Err(err));
            return;
        }
        Decision::Rejected(rejected) => {
            crate::metrics::CALLS_REJECTED.inc();
            let response = SignalResponse {
                rejected: Some(rejected),
            };
            let _ = reply.send(Ok(response));
            return;
        }
        Decision::Relay(kind) => kind,
    };
    let step = Step::of(&kind);
    crate::metrics::SIGNALS_RELAYED
        .with_label_values(&[step.name()])
        .inc();
    let event = UserStreamItem {
        item: Some(user_stream_item::Item::Event(UserEvent {
            user: Some(key.to_ref()),
            connection_id: String::new(),
            trace_id: request.trace_id,
            kind: Some(user_event::Kind::Signal(meno_proto::Signal {
                sender_id: sender_id.clone(),
                target_id: key.user_id.clone(),
                kind: Some(relayed(kind)),
            })),
        })),
    };
    for bridge_id in state.interested() {
        registry.deliver(bridge_id, event.clone());
    }
    let ttl_ms = millis(registry.config().call_busy_ttl);
    state.apply_call(step.target_effect(), &sender_id, now, ttl_ms);
    match step.sender_effect() {
        Effect::None => {
            let _ = reply.send(Ok(SignalResponse::default()));
        }
        effect => registry.tell(
            &key.peer(&sender_id),
            UserCommand::Settle {
                target_id: key.user_id.clone(),
                effect,
                reply,
            },
        ),
    }
}

/// What the target's actor makes of a signal.
#[derive(Debug)]
enum Decision {
    /// An error for the sender; nothing relayed.
    Refused(CoreError),
    /// An offer to a user in another call; nothing relayed.
    Rejected(CallRejected),
    /// Relay it.
    Relay(signal_request::Kind),
}

/// The target's checks, in the contract's order: connected, a session in
/// common, not the sender itself, and for an offer, not in another call.
fn decide(
    key: &UserKey,
    state: &UserState,
    sender_id: &str,
    sender_sessions: &[String],
    kind: Option<signal_request::Kind>,
    now: i64,
) -> Decision {
    let target_id = &key.user_id;
    if !state.is_connected() {
        return Decision::Refused(CoreError::new(
            ErrorCode::NotFound,
            format!("user {target_id:?} is not connected"),
        ));
    }
    if !state.shares_a_session(sender_sessions) {
        return Decision::Refused(CoreError::denied(format!(
            "user {sender_id:?} shares no room with user {target_id:?}"
        )));
    }
    if sender_id == target_id {
        return Decision::Refused(CoreError::invalid("a user cannot signal themself"));
    }
    let Some(kind) = kind else {
        return Decision::Refused(CoreError::invalid("a signal needs sdp, ice or end"));
    };
    if Step::of(&kind) == Step::Offer && !state.call().admits_offer_from(sender_id, now) {
        return Decision::Rejected(CallRejected {
            caller_id: sender_id.to_owned(),
            target_id: target_id.clone(),
            status: BUSY_STATUS.to_owned(),
            reason: format!("user {target_id:?} is in another call"),
        });
    }
    Decision::Relay(kind)
}

/// The relayed form of a signal's payload.
fn relayed(kind: signal_request::Kind) -> signal::Kind {
    match kind {
        signal_request::Kind::Sdp(sdp) => signal::Kind::Sdp(sdp),
        signal_request::Kind::Ice(ice) => signal::Kind::Ice(ice),
        signal_request::Kind::End(end) => signal::Kind::End(end),
    }
}

#[cfg(test)]
mod tests;
