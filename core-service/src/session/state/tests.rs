//! The composed decisions: where presence, lease, chat and the event log meet.

use std::sync::Arc;

use meno_proto::{
    session_event, Actor, ConnectionInfo, LeaseSetRequest, PresenceStatus, Role, SendChatRequest,
};

use super::SessionState;
use crate::config::SessionConfig;
use crate::error::ErrorCode;
use crate::store::{SessionKey, SessionRecord};

const T0: i64 = 1_000_000;

fn config() -> SessionConfig {
    SessionConfig {
        seq_block: 4,
        ..SessionConfig::default()
    }
}

fn session(record: SessionRecord) -> SessionState {
    SessionState::restore(
        SessionKey::new("t", "s"),
        Arc::new(config()),
        record,
        Vec::new(),
        T0,
    )
}

fn connection(connection_id: &str, participant_id: &str, role: Role) -> ConnectionInfo {
    ConnectionInfo {
        connection_id: connection_id.to_owned(),
        participant_id: participant_id.to_owned(),
        name: format!("{participant_id} name"),
        role: role as i32,
        ..ConnectionInfo::default()
    }
}

fn chat(participant_id: &str, client_ref: &str, content: &str) -> SendChatRequest {
    SendChatRequest {
        actor: Some(Actor {
            participant_id: participant_id.to_owned(),
            ..Actor::default()
        }),
        client_ref: client_ref.to_owned(),
        content: content.to_owned(),
        ..SendChatRequest::default()
    }
}

fn take_lease(state: &mut SessionState, participant_id: &str, now: i64) {
    let request = LeaseSetRequest {
        step_index: 1,
        ..LeaseSetRequest::default()
    };
    state
        .set_lease(&request, participant_id, Role::Student, now)
        .expect("the free lease is granted");
}

#[test]
fn seqs_continue_above_the_stored_mark_and_reserve_blocks() {
    let mut state = session(SessionRecord {
        seq_mark: 10,
        ..SessionRecord::default()
    });
    assert_eq!(state.head_seq(), 10);
    state.connect(connection("c1", "ann", Role::Student), "", T0);
    let batch = state.take_batch();
    assert_eq!(batch.events[0].seq, 11);
    // The first seq above the mark reserves a block of `seq_block`.
    assert_eq!(batch.write.seq_mark, Some(14));
    for n in 0..3 {
        state
            .send_chat(chat("ann", &format!("m{n}"), "hi"), None, T0)
            .expect("ann is connected");
    }
    let batch = state.take_batch();
    let seqs: Vec<u64> = batch.events.iter().map(|event| event.seq).collect();
    assert_eq!(seqs, [12, 13, 14]);
    assert_eq!(batch.write.seq_mark, None, "14 was already reserved");
    state
        .send_chat(chat("ann", "m3", "hi"), None, T0)
        .expect("ann is connected");
    assert_eq!(state.take_batch().write.seq_mark, Some(18));
}

#[test]
fn a_holder_that_goes_offline_loses_the_lease() {
    let mut state = session(SessionRecord::default());
    state.connect(connection("c1", "ann", Role::Student), "", T0);
    take_lease(&mut state, "ann", T0);
    state.take_batch();
    state.disconnect("c1", true, "", T0 + 1);
    let batch = state.take_batch();
    let kinds: Vec<&session_event::Kind> = batch
        .events
        .iter()
        .filter_map(|event| event.kind.as_ref())
        .collect();
    assert!(matches!(
        kinds.as_slice(),
        [session_event::Kind::Presence(presence), session_event::Kind::Lease(lease)]
            if presence.status() == PresenceStatus::Offline && lease.lease_id.is_empty()
    ));
    assert!(state.lease_state().lease_id.is_empty());
    assert!(state.is_idle(), "no connection, no lease, no subscriber");
    assert!(batch.write.lease.is_some(), "the release is durable");
}

#[test]
fn an_abnormal_close_keeps_the_lease_through_the_grace_period() {
    let mut state = session(SessionRecord::default());
    state.connect(connection("c1", "ann", Role::Student), "", T0);
    take_lease(&mut state, "ann", T0);
    state.take_batch();
    state.disconnect("c1", false, "", T0 + 1);
    assert_eq!(
        state.presence_list()[0].status(),
        PresenceStatus::Reconnecting
    );
    assert!(!state.lease_state().lease_id.is_empty());
    let grace = super::super::millis(config().reconnect_grace);
    state.expire(T0 + 1 + grace);
    assert_eq!(state.presence_list()[0].status(), PresenceStatus::Offline);
    assert!(state.lease_state().lease_id.is_empty(), "released at last");
}

#[test]
fn an_expired_connection_takes_its_participant_offline_and_the_lease_with_it() {
    let mut state = session(SessionRecord::default());
    state.connect(connection("c1", "ann", Role::Student), "", T0);
    take_lease(&mut state, "ann", T0);
    let ttl = super::super::millis(config().presence_ttl);
    state.expire(T0 + ttl);
    assert_eq!(state.presence_list()[0].status(), PresenceStatus::Offline);
    assert!(state.lease_state().lease_id.is_empty());
}

#[test]
fn chat_is_stamped_from_presence_and_refused_to_strangers() {
    let mut state = session(SessionRecord::default());
    state.connect(connection("c1", "ann", Role::Teacher), "", T0);
    let sent = state
        .send_chat(chat("ann", "r1", "hello"), None, T0)
        .expect("ann is connected")
        .message
        .expect("a message");
    assert_eq!(sent.sender_name, "ann name");
    assert_eq!(sent.sender_role, Role::Teacher as i32);
    let refused = state
        .send_chat(chat("bob", "r2", "hello"), None, T0)
        .expect_err("bob is not in the session");
    assert_eq!(refused.code, ErrorCode::PermissionDenied);
}

#[test]
fn a_repeated_client_ref_returns_the_first_message_and_stages_nothing() {
    let mut state = session(SessionRecord::default());
    state.connect(connection("c1", "ann", Role::Student), "", T0);
    let first = state
        .send_chat(chat("ann", "r1", "first"), None, T0)
        .expect("sent");
    state.take_batch();
    let again = state
        .send_chat(chat("ann", "r1", "second"), None, T0 + 5)
        .expect("a duplicate is not an error");
    assert!(again.duplicate);
    assert_eq!(again.message, first.message);
    assert!(state.take_batch().events.is_empty());
    assert_eq!(state.snapshot().history.len(), 1);
}

#[test]
fn a_resume_sees_staged_events_too() {
    let mut state = session(SessionRecord::default());
    state.connect(connection("c1", "ann", Role::Student), "", T0);
    let published = state.take_batch();
    state.publish(&published.events);
    state
        .send_chat(chat("ann", "r1", "staged"), None, T0)
        .expect("sent");
    let events = state.events_after(0).expect("the ring covers seq 0");
    assert_eq!(events.len(), 2, "the join's presence and the staged chat");
    assert!(state.events_after(state.head_seq() + 1).is_none());
}

#[test]
fn a_call_through_an_unregistered_connection_is_retryable() {
    // After a core restart the bridge's sockets are unknown until it rejoins
    // them: their calls must not be refused for good.
    let mut state = session(SessionRecord::default());
    let mut request = chat("ann", "r1", "hello");
    if let Some(actor) = request.actor.as_mut() {
        actor.connection_id = "c1".to_owned();
    }
    let err = state
        .send_chat(request.clone(), None, T0)
        .expect_err("c1 is not registered");
    assert_eq!(err.code, ErrorCode::Unavailable);
    assert!(err.code.retryable() && err.retry_after.is_some());
    // Once the bridge re-registers c1 the same call goes through.
    state.refresh(vec![connection("c1", "ann", Role::Student)], T0 + 1);
    state.send_chat(request, None, T0 + 2).expect("c1 is back");
    // A backend acting without a connection is judged by its participant.
    let refused = state
        .send_chat(chat("bob", "r2", "hi"), None, T0 + 3)
        .expect_err("bob is nobody here");
    assert_eq!(refused.code, ErrorCode::PermissionDenied);
}

#[test]
fn another_socket_of_an_online_participant_publishes_no_presence() {
    let mut state = session(SessionRecord::default());
    state.connect(connection("c1", "ann", Role::Student), "", T0);
    assert_eq!(state.take_batch().events.len(), 1, "ann comes online");
    state.connect(connection("c2", "ann", Role::Student), "", T0 + 10);
    assert!(
        state.take_batch().events.is_empty(),
        "nothing visible changed"
    );
    state.disconnect("c1", true, "", T0 + 20);
    assert!(state.take_batch().events.is_empty(), "c2 keeps ann online");
}

#[test]
fn a_stored_connection_without_its_presence_row_restores_its_participant() {
    let stored = crate::store::StoredConnection {
        info: connection("c1", "ann", Role::Teacher),
        expires_at_ms: T0 + 60_000,
    };
    let mut state = session(SessionRecord {
        connections: vec![stored],
        ..SessionRecord::default()
    });
    let presence = state.presence_list();
    assert_eq!(presence.len(), 1);
    assert_eq!(presence[0].status(), PresenceStatus::Online);
    let mut request = chat("ann", "r1", "after the restart");
    if let Some(actor) = request.actor.as_mut() {
        actor.connection_id = "c1".to_owned();
    }
    let sent = state.send_chat(request, None, T0).expect("ann is here");
    assert_eq!(
        sent.message.expect("a message").sender_role,
        Role::Teacher as i32
    );
}

#[test]
fn a_chat_message_and_the_lease_it_releases_carry_their_callers_trace_ids() {
    let mut state = session(SessionRecord::default());
    state.connect(connection("c1", "ann", Role::Student), "", T0);
    take_lease(&mut state, "ann", T0);
    state.take_batch();
    let mut request = chat("ann", "r1", "hello");
    if let Some(actor) = request.actor.as_mut() {
        actor.trace_id = "trace-chat".to_owned();
    }
    state.send_chat(request, None, T0).expect("sent");
    let batch = state.take_batch();
    assert_eq!(batch.events[0].trace_id, "trace-chat");
    state.disconnect("c1", true, "trace-leave", T0 + 1);
    let traces: Vec<String> = state
        .take_batch()
        .events
        .iter()
        .map(|event| event.trace_id.clone())
        .collect();
    assert_eq!(
        traces,
        ["trace-leave", "trace-leave"],
        "offline, then the lease"
    );
}

mod presence_change;
mod reads;
