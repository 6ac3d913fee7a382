use meno_proto::{ChatMessage, PresenceChange, ReadPosition, Snapshot};
use serde_json::Value;

use super::*;
use crate::auth::SessionScope;

fn json(frame: &str) -> Value {
    serde_json::from_str(frame).unwrap()
}

fn pending(query: &str) -> Box<dyn PendingConnect> {
    Nexus.connect(Some(query)).unwrap()
}

fn identity(sessions: SessionScope) -> Identity {
    Identity {
        participant_id: "u1".into(),
        name: Some("Ada".into()),
        role: None,
        tenant: Some("acme".into()),
        sessions,
        expires_at_ms: None,
    }
}

fn presence_event(
    previous: PresenceStatus,
    now: PresenceStatus,
    typing_changed: bool,
) -> SessionEvent {
    SessionEvent {
        seq: 7,
        trace_id: "t-1".into(),
        presence_change: Some(PresenceChange {
            previous_status: previous as i32,
            typing_changed,
        }),
        kind: Some(session_event::Kind::Presence(PresenceState {
            participant_id: "u2".into(),
            name: "Bo".into(),
            status: now as i32,
            is_typing: now == PresenceStatus::Typing,
            ..PresenceState::default()
        })),
        ..SessionEvent::default()
    }
}

#[test]
fn with_auth_off_the_query_names_user_tenant_and_rooms() {
    let admitted = pending("userId=u1&userName=Ada&tenant=acme&roomId=r1&roomId=r2")
        .admit(None)
        .unwrap();
    assert_eq!(admitted.tenant, "acme");
    assert_eq!(admitted.user_id, "u1");
    assert_eq!(admitted.name, "Ada");
    assert_eq!(admitted.rooms, ["r1", "r2"]);
    let default_tenant = pending("userId=u1&userName=Ada").admit(None).unwrap();
    assert_eq!(default_tenant.tenant, DEFAULT_TENANT);
    assert!(default_tenant.rooms.is_empty());
    let missing = pending("userId=u1").admit(None).unwrap_err();
    assert_eq!(missing, Refusal::bad_request("missing userName"));
}

#[test]
fn with_a_token_its_claims_win_and_rooms_must_be_granted() {
    let admitted = pending("roomId=r1")
        .admit(Some(identity(SessionScope::Only(vec!["r1".into()]))))
        .unwrap();
    assert_eq!(
        (admitted.tenant.as_str(), admitted.user_id.as_str()),
        ("acme", "u1")
    );
    let not_granted = pending("roomId=r2")
        .admit(Some(identity(SessionScope::Only(vec!["r1".into()]))))
        .unwrap_err();
    assert_eq!(not_granted.status, http::StatusCode::FORBIDDEN);
    let other_user = pending("userId=u9")
        .admit(Some(identity(SessionScope::Any)))
        .unwrap_err();
    assert_eq!(other_user.status, http::StatusCode::UNAUTHORIZED);
    let other_tenant = pending("tenant=evil")
        .admit(Some(identity(SessionScope::Any)))
        .unwrap_err();
    assert_eq!(other_tenant.status, http::StatusCode::UNAUTHORIZED);
}

#[test]
fn a_send_becomes_a_typed_send_for_its_room_with_the_clients_trace_id() {
    let request = Nexus
        .decode(
            r#"{"event":"SEND_MSG","traceId":"abc-1","data":{"roomId":"r1","type":"IMAGE","contentMeta":{"url":"https://x.test/a.png"},"clientRef":"c1"}}"#,
            &Limits::default(),
        )
        .unwrap();
    assert_eq!(request.room.as_deref(), Some("r1"));
    assert_eq!(request.tag.trace_id.as_deref(), Some("abc-1"));
    assert!(matches!(
        request.command,
        ClientCommand::TypedSend { kind: MessageKind::Image, ref client_ref, .. } if client_ref == "c1"
    ));
}

#[test]
fn an_event_without_a_trace_id_gets_a_uuid_v4() {
    let request = Nexus
        .decode(
            r#"{"event":"ACK","data":{"messageId":"m1"}}"#,
            &Limits::default(),
        )
        .unwrap();
    let trace_id = request.tag.trace_id.unwrap();
    let parsed = uuid::Uuid::parse_str(&trace_id).unwrap();
    assert_eq!(parsed.get_version_num(), 4);
    assert_eq!(request.room, None);
}

#[test]
fn a_refused_event_keeps_its_trace_id() {
    let refused = Nexus
        .decode(
            r#"{"event":"SEND_MSG","traceId":"t-9","data":{"roomId":"r1","type":"TEXT"}}"#,
            &Limits::default(),
        )
        .unwrap_err();
    assert_eq!(refused.trace_id.as_deref(), Some("t-9"));
    let frame = json(&Nexus.encode_error(&refused.error, refused.trace_id.as_deref()));
    assert_eq!(frame["event"], "ERROR");
    assert_eq!(frame["traceId"], "t-9");
    assert_eq!(frame["data"]["code"], "InvalidArgument");
}

#[test]
fn coming_online_or_going_offline_is_presence_and_typing_alone_is_typing_for_the_others() {
    let online = presence_event(PresenceStatus::Unspecified, PresenceStatus::Online, false);
    let frame = json(&Nexus.encode_event("r1", &online).unwrap());
    assert_eq!(frame["event"], "PRESENCE");
    assert_eq!(frame["traceId"], "t-1");
    assert_eq!(frame["data"]["status"], "online");
    assert_eq!(frame["data"]["userName"], "Bo");
    assert_eq!(Nexus.hidden_from(&online), None);

    let typing = presence_event(PresenceStatus::Online, PresenceStatus::Typing, true);
    let frame = json(&Nexus.encode_event("r1", &typing).unwrap());
    assert_eq!(frame["event"], "TYPING");
    assert_eq!(frame["data"]["roomId"], "r1");
    assert_eq!(frame["data"]["isTyping"], true);
    assert_eq!(Nexus.hidden_from(&typing), Some("u2"));

    let offline = presence_event(PresenceStatus::Reconnecting, PresenceStatus::Offline, false);
    let frame = json(&Nexus.encode_event("r1", &offline).unwrap());
    assert_eq!(frame["data"]["status"], "offline");

    let reconnecting = presence_event(PresenceStatus::Online, PresenceStatus::Reconnecting, false);
    assert!(Nexus.encode_event("r1", &reconnecting).is_none());
}

#[test]
fn a_read_shows_as_read_and_the_lease_not_at_all() {
    let read = SessionEvent {
        kind: Some(session_event::Kind::Read(ReadPosition {
            user_id: "u2".into(),
            message_id: "m1".into(),
            seq: 3,
            read_at_ms: 0,
        })),
        ..SessionEvent::default()
    };
    let frame = json(&Nexus.encode_event("r1", &read).unwrap());
    assert_eq!(frame["event"], "READ");
    assert_eq!(frame["data"]["messageId"], "m1");
    assert_eq!(frame["data"]["readAt"], "1970-01-01T00:00:00.000Z");
    assert!(uuid::Uuid::parse_str(frame["traceId"].as_str().unwrap()).is_ok());
    let lease = SessionEvent {
        kind: Some(session_event::Kind::Lease(meno_proto::LeaseState::default())),
        ..SessionEvent::default()
    };
    assert!(Nexus.encode_event("r1", &lease).is_none());
}

#[test]
fn room_joined_lists_online_members_and_the_newest_messages_first() {
    let message = |seq: u64| ChatMessage {
        id: format!("m{seq}"),
        seq,
        content: format!("hello {seq}"),
        ..ChatMessage::default()
    };
    let member = |id: &str, status: PresenceStatus| PresenceState {
        participant_id: id.into(),
        name: id.into(),
        status: status as i32,
        ..PresenceState::default()
    };
    let joined = JoinResponse {
        snapshot_seq: 80,
        start: Some(join_response::Start::Snapshot(Snapshot {
            history: (1..=60).map(message).collect(),
            participants: vec![
                member("u1", PresenceStatus::Online),
                member("u3", PresenceStatus::Offline),
            ],
            ..Snapshot::default()
        })),
    };
    let tag = RequestTag {
        action: "JOIN_ROOM",
        trace_id: Some("t-5".into()),
    };
    let frames = Nexus.encode_start("r1", &joined, Some(&tag));
    assert_eq!(frames.len(), 1);
    let frame = json(&frames[0]);
    assert_eq!(frame["event"], "ROOM_JOINED");
    assert_eq!(frame["traceId"], "t-5");
    let members = frame["data"]["members"].as_array().unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["userId"], "u1");
    let last = frame["data"]["lastMessages"].as_array().unwrap();
    assert_eq!(last.len(), ROOM_JOINED_MESSAGES as usize);
    assert_eq!(last[0]["id"], "m60");
    assert_eq!(last[49]["id"], "m11");
}

#[test]
fn a_refusal_names_the_refused_event_and_leaving_answers_room_left() {
    let tag = RequestTag {
        action: "TYPING",
        trace_id: Some("t-2".into()),
    };
    let error = ErrorEnvelope {
        code: ErrorCode::PermissionDenied,
        message: "not in room r9: send JOIN_ROOM first".into(),
        action: None,
        retry_after_ms: None,
    };
    let frame = json(&Nexus.encode_reply("r9", &tag, &Reply::Error(error)));
    assert_eq!(frame["data"]["event"], "TYPING");
    assert_eq!(frame["traceId"], "t-2");
    assert_eq!(frame["data"]["retryable"], false);
    let left = json(&Nexus.encode_reply("r9", &tag, &Reply::RoomLeft));
    assert_eq!(left["event"], "ROOM_LEFT");
    assert_eq!(left["data"]["roomId"], "r9");
}
