//! Golden tests for seed-000 client envelopes: each action as the seed shows
//! it. Refusals are in `refusal_tests`, the never-panics sweep in
//! `robustness_tests`.

use meno_proto::PresenceStatus;
use serde_json::{json, Map, Value};

use super::{decode, decode_request};
use crate::codec::ClientCommand;
use crate::codec::Limits;

/// 2026-11-23T06:51:42.123Z
const T: i64 = 1_795_416_702_123;

fn ok(envelope: Value) -> ClientCommand {
    match decode(&envelope.to_string()) {
        Ok(command) => command,
        Err(err) => panic!("{envelope} was refused: {err}"),
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

// ---- the six actions ----

#[test]
fn chat_send() {
    let envelope = json!({
        "action": "chat.send",
        "payload": {
            "messageId": "m-1",
            "content": "Hello, class",
            "createdAt": "2026-11-23T06:51:42.123Z",
            "meta": {"attachments": [{"url": "https://x/y.png"}], "tags": ["q"]}
        }
    });
    let command = ok(envelope.clone());
    assert_eq!(
        command,
        ClientCommand::ChatSend {
            message_id: "m-1".into(),
            content: "Hello, class".into(),
            created_at_ms: Some(T),
            meta: Some(object(
                json!({"attachments": [{"url": "https://x/y.png"}], "tags": ["q"]})
            )),
        }
    );
    let (action, _) = decode_request(&envelope.to_string(), &Limits::default()).unwrap();
    assert_eq!(action, "chat.send");
}

#[test]
fn chat_send_minimal_with_nulls_and_unknown_fields() {
    let command = ok(json!({
        "action": "chat.send",
        "requestId": 7,
        "payload": {"messageId": "m-2", "content": "", "createdAt": null, "meta": null, "extra": 1}
    }));
    assert_eq!(
        command,
        ClientCommand::ChatSend {
            message_id: "m-2".into(),
            content: String::new(),
            created_at_ms: None,
            meta: None,
        }
    );
}

#[test]
fn presence_update() {
    let command = ok(json!({
        "action": "presence.update",
        "payload": {
            "status": "typing",
            "isTyping": true,
            "isSpeaking": false,
            "lastSeen": "2026-11-23T07:51:42.123+01:00",
            "extra": {"color": "#ff8800", "cursor": {"x": 1, "y": 2}}
        }
    }));
    assert_eq!(
        command,
        ClientCommand::PresenceUpdate {
            status: Some(PresenceStatus::Typing),
            is_typing: Some(true),
            is_speaking: Some(false),
            last_seen_ms: Some(T),
            extra: Some(object(
                json!({"color": "#ff8800", "cursor": {"x": 1, "y": 2}})
            )),
        }
    );
    for (text, status) in [
        ("online", PresenceStatus::Online),
        ("speaking", PresenceStatus::Speaking),
        ("muted", PresenceStatus::Muted),
        ("reconnecting", PresenceStatus::Reconnecting),
    ] {
        let command = ok(json!({"action": "presence.update", "payload": {"status": text}}));
        assert!(
            matches!(command, ClientCommand::PresenceUpdate { status: Some(s), .. } if s == status)
        );
    }
    assert_eq!(
        ok(json!({"action": "presence.update", "payload": {}})),
        ClientCommand::PresenceUpdate {
            status: None,
            is_typing: None,
            is_speaking: None,
            last_seen_ms: None,
            extra: None,
        }
    );
}

#[test]
fn presence_heartbeat() {
    assert_eq!(
        ok(
            json!({"action": "presence.heartbeat", "payload": {"lastSeen": "2026-11-23T06:51:42.123Z"}})
        ),
        ClientCommand::PresenceHeartbeat {
            last_seen_ms: Some(T)
        }
    );
    for envelope in [
        json!({"action": "presence.heartbeat", "payload": {}}),
        json!({"action": "presence.heartbeat"}),
        json!({"action": "presence.heartbeat", "payload": null}),
    ] {
        assert_eq!(
            ok(envelope),
            ClientCommand::PresenceHeartbeat { last_seen_ms: None }
        );
    }
}

#[test]
fn control_lease_set() {
    assert_eq!(
        ok(json!({
            "action": "control.lease.set",
            "payload": {"leaseId": "lease-a", "stepIndex": 3, "leaseDurationMs": 30000}
        })),
        ClientCommand::LeaseSet {
            lease_id: Some("lease-a".into()),
            step_index: 3,
            lease_duration_ms: Some(30_000),
        }
    );
    assert_eq!(
        ok(json!({"action": "control.lease.set", "payload": {"stepIndex": 0, "leaseId": ""}})),
        ClientCommand::LeaseSet {
            lease_id: None,
            step_index: 0,
            lease_duration_ms: None,
        }
    );
}

#[test]
fn integral_floats_count_as_integers() {
    let command = decode(
        r#"{"action":"control.lease.set","payload":{"stepIndex":2.0,"leaseDurationMs":6e4}}"#,
    );
    assert_eq!(
        command,
        Ok(ClientCommand::LeaseSet {
            lease_id: None,
            step_index: 2,
            lease_duration_ms: Some(60_000),
        })
    );
}

#[test]
fn control_lease_release() {
    assert_eq!(
        ok(json!({"action": "control.lease.release", "payload": {"leaseId": "lease-a"}})),
        ClientCommand::LeaseRelease {
            lease_id: Some("lease-a".into())
        }
    );
    assert_eq!(
        ok(json!({"action": "control.lease.release"})),
        ClientCommand::LeaseRelease { lease_id: None }
    );
}

#[test]
fn system_ping_with_or_without_payload() {
    for text in [
        r#"{"action":"system.ping"}"#,
        r#"{"action":"system.ping","payload":{}}"#,
        r#"{"action":"system.ping","payload":null}"#,
        r#"{"action":"system.ping","payload":{"clientTime":1}}"#,
        " \n{ \"payload\" : {} , \"action\" : \"system.ping\" }\n",
    ] {
        assert_eq!(decode(text), Ok(ClientCommand::Ping), "{text}");
    }
}

/// An integral float below 2^53 is read exactly: JSON numbers are parsed
/// with correct rounding (`float_roundtrip`), or this one comes out with a
/// fraction and a valid `stepIndex` is refused.
#[test]
fn an_integral_float_is_read_exactly() {
    let text = r#"{"action":"control.lease.set","payload":{"stepIndex":1855880165362031.0}}"#;
    assert_eq!(
        decode(text),
        Ok(ClientCommand::LeaseSet {
            lease_id: None,
            step_index: 1_855_880_165_362_031,
            lease_duration_ms: None,
        })
    );
}
