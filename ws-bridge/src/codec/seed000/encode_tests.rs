//! Golden tests for seed-000 server envelopes: exact JSON for each envelope
//! in the seed, in the shapes DESIGN §4 fixes.

use std::time::Duration;

use meno_common::error::{CoreError, ErrorCode};
use meno_proto::session_event::Kind;
use meno_proto::{ChatMessage, LeaseState, PresenceState, PresenceStatus, Role, SessionEvent};
use serde_json::{json, Value};

use super::{
    encode_chat_message, encode_error, encode_event, encode_lease, encode_pong, encode_snapshot,
    encode_sync,
};
use crate::codec::{ErrorEnvelope, ProtocolError};

const SESSION: &str = "lesson-42";
/// 2026-11-23T06:51:42.123Z
const T: i64 = 1_795_416_702_123;

fn parsed(text: &str) -> Value {
    match serde_json::from_str(text) {
        Ok(value) => value,
        Err(err) => panic!("not JSON ({err}): {text}"),
    }
}

fn message() -> ChatMessage {
    ChatMessage {
        id: "0193a4c2-7f00-7abc-8def-0123456789ab".into(),
        client_ref: "m-1".into(),
        seq: 42,
        sender_id: "p_7".into(),
        sender_name: "Ada".into(),
        sender_role: Role::Student.into(),
        kind: "text".into(),
        content: "Hello, \"class\"\n🎓".into(),
        meta_json: r#"{"tags":["q"],"attachments":[{"url":"https://x/y.png"}]}"#.into(),
        created_at_ms: T,
        message_kind: 0,
    }
}

fn message_data() -> Value {
    json!({
        "sessionId": SESSION,
        "messageId": "m-1",
        "participantId": "p_7",
        "participantName": "Ada",
        "role": "student",
        "content": "Hello, \"class\"\n🎓",
        "createdAt": "2026-11-23T06:51:42.123Z",
        "meta": {"tags": ["q"], "attachments": [{"url": "https://x/y.png"}]},
        "id": "0193a4c2-7f00-7abc-8def-0123456789ab",
        "kind": "text",
        "seq": 42
    })
}

fn presence(participant_id: &str, status: PresenceStatus) -> PresenceState {
    PresenceState {
        participant_id: participant_id.into(),
        name: "Ada".into(),
        role: Role::Teacher.into(),
        status: status.into(),
        is_typing: status == PresenceStatus::Typing,
        is_speaking: false,
        color: "#1e88e5".into(),
        last_seen_ms: T,
        extra_json: String::new(),
    }
}

fn event(seq: u64, kind: Kind) -> SessionEvent {
    SessionEvent {
        seq,
        server_time_ms: T,
        kind: Some(kind),
        ..SessionEvent::default()
    }
}

#[test]
fn chat_message_from_an_event() {
    let text = encode_event(SESSION, &event(42, Kind::ChatMessage(message()))).expect("encoded");
    assert!(
        text.starts_with(r#"{"type":"chat.message","seq":42,"data":{"#),
        "{text}"
    );
    assert_eq!(
        parsed(&text),
        json!({"type": "chat.message", "seq": 42, "data": message_data()})
    );
}

#[test]
fn chat_message_without_client_ref_meta_or_kind() {
    let backend = ChatMessage {
        client_ref: String::new(),
        meta_json: String::new(),
        kind: String::new(),
        sender_role: Role::Service.into(),
        ..message()
    };
    let mut data = message_data();
    data["messageId"] = json!("0193a4c2-7f00-7abc-8def-0123456789ab");
    data["role"] = json!("teacher");
    if let Some(object) = data.as_object_mut() {
        object.remove("meta");
    }
    // The sender-only answer to a repeated send carries no seq of its own.
    assert_eq!(
        parsed(&encode_chat_message(SESSION, None, &backend)),
        json!({"type": "chat.message", "data": data})
    );
}

#[test]
fn empty_or_corrupt_meta_is_left_out() {
    for meta_json in [
        "{}",
        "{ }",
        "[1]",
        "\"x\"",
        "{\"unterminated\":",
        "not json",
    ] {
        let stored = ChatMessage {
            meta_json: meta_json.into(),
            ..message()
        };
        let value = parsed(&encode_chat_message(SESSION, Some(1), &stored));
        assert!(value["data"].get("meta").is_none(), "{meta_json}: {value}");
    }
}

/// Found by `fuzz/fuzz_targets/encode.rs`: `RawValue` accepted these, and the
/// whole envelope became unreadable to strict JSON parsers (serde_json among
/// them: "lone leading surrogate in hex escape").
#[test]
fn stored_json_that_strict_parsers_refuse_is_left_out() {
    for json in [
        r#"{"\udc00":1}"#,
        r#"{"a":"\ud800"}"#,
        r#"{"a":["x\ud83c"]}"#,
        r#"{"a":1e400}"#,
        r#"{"a":{"b":-1e400}}"#,
    ] {
        let stored = ChatMessage {
            meta_json: json.into(),
            ..message()
        };
        let value = parsed(&encode_chat_message(SESSION, Some(1), &stored));
        assert!(value["data"].get("meta").is_none(), "{json}: {value}");
        let state = PresenceState {
            extra_json: json.into(),
            ..PresenceState::default()
        };
        let value = parsed(&encode_snapshot(SESSION, 1, &[state]));
        assert!(
            value["data"]["participants"][0].get("extra").is_none(),
            "{json}: {value}"
        );
    }
    // A valid surrogate pair and large but finite numbers still go through.
    let stored = ChatMessage {
        meta_json: r#"{"a":"\ud83c\udf93","b":1e308,"c":18446744073709551616}"#.into(),
        ..message()
    };
    let value = parsed(&encode_chat_message(SESSION, Some(1), &stored));
    assert_eq!(value["data"]["meta"]["a"], "🎓");
}

#[test]
fn chat_sync_oldest_first() {
    let second = ChatMessage {
        id: "0193a4c2-7f01-7abc-8def-0123456789ab".into(),
        client_ref: "m-2".into(),
        seq: 43,
        content: "second".into(),
        meta_json: String::new(),
        ..message()
    };
    let text = encode_sync(SESSION, 50, &[message(), second]);
    let mut second_data = message_data();
    second_data["messageId"] = json!("m-2");
    second_data["id"] = json!("0193a4c2-7f01-7abc-8def-0123456789ab");
    second_data["seq"] = json!(43);
    second_data["content"] = json!("second");
    if let Some(object) = second_data.as_object_mut() {
        object.remove("meta");
    }
    assert_eq!(
        parsed(&text),
        json!({
            "type": "chat.sync",
            "seq": 50,
            "data": {"sessionId": SESSION, "messages": [message_data(), second_data]}
        })
    );
    assert_eq!(
        parsed(&encode_sync(SESSION, 0, &[])),
        json!({"type": "chat.sync", "seq": 0, "data": {"sessionId": SESSION, "messages": []}})
    );
}

#[test]
fn presence_snapshot() {
    let with_extra = PresenceState {
        extra_json: r##"{"color":"#1e88e5","cursor":{"x":1}}"##.into(),
        ..presence("t_1", PresenceStatus::Typing)
    };
    let observer = PresenceState {
        participant_id: "o_2".into(),
        name: "Obi".into(),
        role: Role::Observer.into(),
        status: PresenceStatus::Offline.into(),
        color: String::new(),
        last_seen_ms: 0,
        ..PresenceState::default()
    };
    assert_eq!(
        parsed(&encode_snapshot(SESSION, 51, &[with_extra, observer])),
        json!({
            "type": "presence.snapshot",
            "seq": 51,
            "data": {
                "sessionId": SESSION,
                "participants": [
                    {
                        "participantId": "t_1",
                        "name": "Ada",
                        "role": "teacher",
                        "status": "typing",
                        "isTyping": true,
                        "isSpeaking": false,
                        "color": "#1e88e5",
                        "lastSeen": "2026-11-23T06:51:42.123Z",
                        "extra": {"color": "#1e88e5", "cursor": {"x": 1}}
                    },
                    {
                        "participantId": "o_2",
                        "name": "Obi",
                        "role": "observer",
                        "status": "offline",
                        "isTyping": false,
                        "isSpeaking": false,
                        "lastSeen": "1970-01-01T00:00:00.000Z"
                    }
                ]
            }
        })
    );
}

#[test]
fn presence_event_is_the_full_state() {
    let text = encode_event(
        SESSION,
        &event(52, Kind::Presence(presence("t_1", PresenceStatus::Online))),
    )
    .expect("encoded");
    assert_eq!(
        parsed(&text),
        json!({
            "type": "presence.event",
            "seq": 52,
            "data": {
                "sessionId": SESSION,
                "participantId": "t_1",
                "name": "Ada",
                "role": "teacher",
                "status": "online",
                "isTyping": false,
                "isSpeaking": false,
                "color": "#1e88e5",
                "lastSeen": "2026-11-23T06:51:42.123Z"
            }
        })
    );
}

#[test]
fn every_status_and_role_has_its_wire_name() {
    let cases = [
        (PresenceStatus::Online, "online"),
        (PresenceStatus::Typing, "typing"),
        (PresenceStatus::Speaking, "speaking"),
        (PresenceStatus::Muted, "muted"),
        (PresenceStatus::Reconnecting, "reconnecting"),
        (PresenceStatus::Offline, "offline"),
        (PresenceStatus::Unspecified, "offline"),
    ];
    for (status, name) in cases {
        let value = parsed(&encode_snapshot(SESSION, 1, &[presence("p", status)]));
        assert_eq!(value["data"]["participants"][0]["status"], json!(name));
    }
    let roles = [
        (i32::from(Role::Student), "student"),
        (i32::from(Role::Teacher), "teacher"),
        (i32::from(Role::Observer), "observer"),
        (i32::from(Role::Service), "teacher"),
        (i32::from(Role::Unspecified), "observer"),
        (99, "observer"),
    ];
    for (role, name) in roles {
        let state = PresenceState {
            role,
            status: 99,
            ..presence("p", PresenceStatus::Online)
        };
        let value = parsed(&encode_snapshot(SESSION, 1, &[state]));
        assert_eq!(value["data"]["participants"][0]["role"], json!(name));
        assert_eq!(value["data"]["participants"][0]["status"], json!("offline"));
    }
}

#[test]
fn lease_state_active() {
    let lease = LeaseState {
        lease_id: "lease-a".into(),
        lease_to: "t_1".into(),
        step_index: 3,
        issued_at_ms: T,
        expires_at_ms: T + 60_000,
        epoch: 7,
    };
    let text = encode_event(SESSION, &event(53, Kind::Lease(lease))).expect("encoded");
    assert_eq!(
        parsed(&text),
        json!({
            "type": "control.lease.state",
            "seq": 53,
            "data": {
                "sessionId": SESSION,
                "leaseId": "lease-a",
                "leaseTo": "t_1",
                "stepIndex": 3,
                "issuedAt": "2026-11-23T06:51:42.123Z",
                "expiresAt": "2026-11-23T06:52:42.123Z",
                "epoch": 7
            }
        })
    );
}

#[test]
fn lease_state_cleared_has_nulls() {
    let cleared = LeaseState {
        step_index: 3,
        epoch: 7,
        ..LeaseState::default()
    };
    assert_eq!(
        parsed(&encode_lease(SESSION, Some(54), &cleared)),
        json!({
            "type": "control.lease.state",
            "seq": 54,
            "data": {
                "sessionId": SESSION,
                "leaseId": null,
                "leaseTo": null,
                "stepIndex": 3,
                "issuedAt": null,
                "expiresAt": null,
                "epoch": 7
            }
        })
    );
}

#[test]
fn system_pong() {
    assert_eq!(
        parsed(&encode_pong(T)),
        json!({"type": "system.pong", "data": {"serverTime": "2026-11-23T06:51:42.123Z"}})
    );
}

#[test]
fn error_from_a_protocol_error() {
    let error = ProtocolError::MissingField {
        action: "chat.send",
        field: "content",
    };
    assert_eq!(
        parsed(&encode_error(&ErrorEnvelope::from_protocol(&error))),
        json!({
            "type": "error",
            "data": {
                "code": "InvalidArgument",
                "message": "missing `payload.content`",
                "action": "chat.send",
                "retryable": false
            }
        })
    );
    let malformed = ProtocolError::MalformedJson {
        reason: "EOF while parsing an object at line 1 column 1".into(),
    };
    assert_eq!(
        parsed(&encode_error(&ErrorEnvelope::from_protocol(&malformed))),
        json!({
            "type": "error",
            "data": {
                "code": "InvalidArgument",
                "message": "malformed JSON: EOF while parsing an object at line 1 column 1",
                "retryable": false
            }
        })
    );
}

#[test]
fn error_from_the_core_with_a_retry_hint() {
    let mut limited = CoreError::new(ErrorCode::RateLimited, "too many messages");
    limited.retry_after = Some(Duration::from_millis(2500));
    assert_eq!(
        parsed(&encode_error(&ErrorEnvelope::from_core(
            &limited,
            Some("chat.send")
        ))),
        json!({
            "type": "error",
            "data": {
                "code": "RateLimited",
                "message": "too many messages",
                "action": "chat.send",
                "retryable": true,
                "retryAfterMs": 2500
            }
        })
    );
    let conflict = CoreError::conflict("the lease is held by t_1");
    assert_eq!(
        parsed(&encode_error(&ErrorEnvelope::from_core(
            &conflict,
            Some("control.lease.set")
        ))),
        json!({
            "type": "error",
            "data": {
                "code": "Conflict",
                "message": "the lease is held by t_1",
                "action": "control.lease.set",
                "retryable": false
            }
        })
    );
}

#[test]
fn an_event_without_a_kind_is_not_encoded() {
    assert_eq!(encode_event(SESSION, &SessionEvent::default()), None);
}

#[test]
fn zero_seq_is_left_out() {
    let text = encode_event(SESSION, &event(0, Kind::ChatMessage(message()))).expect("encoded");
    assert!(parsed(&text).get("seq").is_none());
}

#[test]
fn session_ids_and_content_are_escaped() {
    let hostile = ChatMessage {
        content: "</script>\"}\u{0}\u{2028}".into(),
        sender_name: "\\\"".into(),
        ..message()
    };
    let value = parsed(&encode_chat_message("a\"b", Some(1), &hostile));
    assert_eq!(value["data"]["sessionId"], json!("a\"b"));
    assert_eq!(value["data"]["content"], json!("</script>\"}\u{0}\u{2028}"));
    assert_eq!(value["data"]["participantName"], json!("\\\""));
}
