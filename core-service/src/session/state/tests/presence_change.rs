//! What each presence event says it changed, and whose trace it carries.

use meno_proto::{
    session_event, Actor, PresenceChange, PresenceStatus, PresenceUpdateRequest, Role, SessionEvent,
};

use super::{config, connection, session, T0};
use crate::session::state::SessionState;
use crate::store::SessionRecord;

fn changes(state: &mut SessionState) -> Vec<(PresenceChange, String)> {
    state
        .take_batch()
        .events
        .iter()
        .filter(|event| matches!(event.kind, Some(session_event::Kind::Presence(_))))
        .map(|event: &std::sync::Arc<SessionEvent>| {
            (
                event
                    .presence_change
                    .expect("every presence event says what changed"),
                event.trace_id.clone(),
            )
        })
        .collect()
}

fn change(previous: PresenceStatus, typing_changed: bool) -> PresenceChange {
    PresenceChange {
        previous_status: previous as i32,
        typing_changed,
    }
}

fn typing(is_typing: bool, trace_id: &str) -> PresenceUpdateRequest {
    PresenceUpdateRequest {
        actor: Some(Actor {
            participant_id: "ann".to_owned(),
            trace_id: trace_id.to_owned(),
            ..Actor::default()
        }),
        is_typing: Some(is_typing),
        ..PresenceUpdateRequest::default()
    }
}

#[test]
fn a_first_join_typing_and_a_leave_say_what_they_changed_with_their_trace_ids() {
    let mut state = session(SessionRecord::default());
    state.connect(connection("c1", "ann", Role::Student), "join-1", T0);
    assert_eq!(
        changes(&mut state),
        [(
            change(PresenceStatus::Unspecified, false),
            "join-1".to_owned()
        )],
        "a participant first seen"
    );
    state
        .update_presence(&typing(true, "type-1"), "ann", T0 + 1)
        .expect("ann is here");
    assert_eq!(
        changes(&mut state),
        [(change(PresenceStatus::Online, true), "type-1".to_owned())]
    );
    state.disconnect("c1", true, "leave-1", T0 + 2);
    assert_eq!(
        changes(&mut state),
        [(change(PresenceStatus::Typing, true), "leave-1".to_owned())],
        "leaving clears typing too"
    );
    state.connect(connection("c1", "ann", Role::Student), "", T0 + 3);
    assert_eq!(
        changes(&mut state),
        [(change(PresenceStatus::Offline, false), String::new())],
        "a participant seen before"
    );
}

#[test]
fn a_typing_timeout_is_the_cores_own_event_without_a_trace_id() {
    let mut state = session(SessionRecord::default());
    state.connect(connection("c1", "ann", Role::Student), "join-1", T0);
    state
        .update_presence(&typing(true, "type-1"), "ann", T0)
        .expect("ann is here");
    state.take_batch();
    let timeout = super::super::super::millis(config().typing_timeout);
    state.expire(T0 + timeout);
    assert_eq!(
        changes(&mut state),
        [(change(PresenceStatus::Typing, true), String::new())]
    );
}
