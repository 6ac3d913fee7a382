//! Read positions (seed 004's ACK): forward only, by connection or backend,
//! durable and published with the ACK's trace id.

use meno_proto::{session_event, Actor, MarkReadRequest, ReadPosition, Role};

use super::{chat, connection, session, T0};
use crate::error::ErrorCode;
use crate::session::state::SessionState;
use crate::store::SessionRecord;

fn ack(participant_id: &str, connection_id: &str, message_id: &str) -> MarkReadRequest {
    MarkReadRequest {
        actor: Some(Actor {
            participant_id: participant_id.to_owned(),
            connection_id: connection_id.to_owned(),
            trace_id: format!("trace-{message_id}"),
            ..Actor::default()
        }),
        message_id: message_id.to_owned(),
        ..MarkReadRequest::default()
    }
}

/// A session where ann (on c1) sent three messages; their ids, oldest first.
fn with_three_messages() -> (SessionState, Vec<String>) {
    let mut state = session(SessionRecord::default());
    state.connect(connection("c1", "ann", Role::Student), "", T0);
    let ids = (0..3)
        .map(|n| {
            state
                .send_chat(chat("ann", &format!("r{n}"), "hi"), None, T0)
                .expect("sent")
                .message
                .expect("a message")
                .id
        })
        .collect();
    state.take_batch();
    (state, ids)
}

#[test]
fn a_read_position_moves_forward_is_written_and_published_with_the_trace_id() {
    let (mut state, ids) = with_three_messages();
    let response = state
        .mark_read(&ack("ann", "c1", &ids[1]), None, T0 + 5)
        .expect("ann reads in her room");
    assert!(response.advanced);
    assert_eq!(response.session_id, "s");
    let position = response.position.expect("a position");
    assert_eq!(position.message_id, ids[1]);
    assert_eq!(position.read_at_ms, T0 + 5);
    let batch = state.take_batch();
    assert_eq!(batch.write.reads, vec![position.clone()], "durable");
    assert_eq!(batch.events.len(), 1);
    assert_eq!(batch.events[0].trace_id, format!("trace-{}", ids[1]));
    assert!(matches!(
        &batch.events[0].kind,
        Some(session_event::Kind::Read(read)) if *read == position
    ));
    assert_eq!(state.reads(), vec![position]);
}

#[test]
fn a_read_position_never_moves_back_and_an_older_ack_publishes_nothing() {
    let (mut state, ids) = with_three_messages();
    state
        .mark_read(&ack("ann", "c1", &ids[2]), None, T0)
        .expect("read");
    state.take_batch();
    for older in [&ids[0], &ids[2]] {
        let response = state
            .mark_read(&ack("ann", "c1", older), None, T0 + 1)
            .expect("an older ACK is no error");
        assert!(!response.advanced);
        assert_eq!(
            response.position.map(|p| p.message_id),
            Some(ids[2].clone()),
            "the position stays"
        );
        let batch = state.take_batch();
        assert!(batch.events.is_empty() && batch.write.reads.is_empty());
    }
}

#[test]
fn a_connection_not_in_the_room_is_refused_and_a_backend_may_set_any_user() {
    let (mut state, ids) = with_three_messages();
    let refused = state
        .mark_read(&ack("ann", "c9", &ids[0]), None, T0)
        .expect_err("c9 is not in this room");
    assert_eq!(refused.code, ErrorCode::PermissionDenied);
    assert!(
        refused.message.contains("not in room"),
        "{}",
        refused.message
    );
    let borrowed = state
        .mark_read(&ack("bob", "c1", &ids[0]), None, T0)
        .expect_err("c1 is ann's connection");
    assert_eq!(borrowed.code, ErrorCode::PermissionDenied);
    let backend = state
        .mark_read(&ack("carol", "", &ids[0]), None, T0)
        .expect("a backend sets carol's position");
    assert!(backend.advanced);
    assert_eq!(state.reads()[0].user_id, "carol");
}

#[test]
fn an_unknown_message_is_not_found_unless_the_store_located_it_here() {
    let (mut state, _) = with_three_messages();
    let unknown = state
        .mark_read(&ack("ann", "c1", "old-message"), None, T0)
        .expect_err("not recent, not located");
    assert_eq!(unknown.code, ErrorCode::NotFound);
    let located = state
        .mark_read(&ack("ann", "c1", "old-message"), Some(1), T0)
        .expect("the store has it at seq 1");
    assert_eq!(located.position.map(|p| p.seq), Some(1));
}

#[test]
fn stored_positions_come_back_with_the_session() {
    let stored = ReadPosition {
        user_id: "ann".to_owned(),
        message_id: "m-7".to_owned(),
        seq: 7,
        read_at_ms: 1,
    };
    let mut state = session(SessionRecord {
        seq_mark: 10,
        reads: vec![stored.clone()],
        ..SessionRecord::default()
    });
    assert_eq!(state.reads(), vec![stored]);
    let response = state
        .mark_read(&ack("ann", "", "m-3"), Some(3), T0)
        .expect("an older message");
    assert!(!response.advanced, "7 stays ahead of 3");
}
