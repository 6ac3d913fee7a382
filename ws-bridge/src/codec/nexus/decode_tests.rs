//! Golden tests for NexusChat client envelopes: each event as the seed shows
//! it, with its placeholders (`"uuid"`, `"string"`, `boolean`) filled in, and
//! our JOIN_ROOM and LEAVE_ROOM. Refusals are in `refusal_tests`.

use serde_json::{json, Map, Value};

use super::{decode, MessageType, NexusCommand, NexusError, NexusRequest, SdpType};

const TRACE: &str = "5f0c2a9e-3b1d-4c7a-9e2f-8d6b4a1c0e37";
const ROOM: &str = "2b7e1516-28ae-4d2a-a6f7-15880949cf4f";
const USER: &str = "0d4c6a3e-9b1f-4f3a-8c2e-7a5b9d1e6f20";

fn ok(envelope: Value) -> NexusRequest {
    match decode(&envelope.to_string()) {
        Ok(request) => request,
        Err(refusal) => panic!("{envelope} was refused: {refusal}"),
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// The seed's envelope `{event, traceId, data}` around `data`.
fn envelope(event: &str, data: Value) -> Value {
    json!({"event": event, "traceId": TRACE, "data": data})
}

#[test]
fn the_seeds_envelope_example_keeps_its_trace_id_even_when_refused() {
    // The seed's example, verbatim but for its `/* ... */` comment.
    let text = r#"{
      "event": "EVENT_TYPE",
      "traceId": "uuid",
      "data": { }
    }"#;
    let refusal = decode(text).expect_err("EVENT_TYPE is a placeholder");
    assert_eq!(refusal.trace_id.as_deref(), Some("uuid"));
    assert_eq!(
        refusal.error,
        NexusError::UnknownEvent {
            event: "EVENT_TYPE".into()
        }
    );
}

#[test]
fn send_msg_text() {
    let request = ok(envelope(
        "SEND_MSG",
        json!({
            "roomId": ROOM,
            "type": "TEXT",
            "contentText": "Hello, room",
            "clientRef": "9a1f3c5e-7b2d-4e6f-8a0c-1d3e5f7a9b2c"
        }),
    ));
    assert_eq!(
        request,
        NexusRequest {
            event: "SEND_MSG",
            trace_id: Some(TRACE.into()),
            command: NexusCommand::SendMessage {
                room_id: ROOM.into(),
                message_type: MessageType::Text,
                content_text: Some("Hello, room".into()),
                content_meta: None,
                client_ref: Some("9a1f3c5e-7b2d-4e6f-8a0c-1d3e5f7a9b2c".into()),
            },
        }
    );
}

#[test]
fn send_msg_every_media_type_with_its_meta() {
    for (name, message_type) in [
        ("IMAGE", MessageType::Image),
        ("VIDEO", MessageType::Video),
        ("AUDIO", MessageType::Audio),
        ("FILE", MessageType::File),
    ] {
        let meta = json!({
            "url": "https://cdn.example.com/media/1.bin",
            "width": 640, "height": 480, "mimeType": "application/octet-stream"
        });
        let request = ok(envelope(
            "SEND_MSG",
            json!({"roomId": ROOM, "type": name, "contentMeta": meta}),
        ));
        assert_eq!(
            request.command,
            NexusCommand::SendMessage {
                room_id: ROOM.into(),
                message_type,
                content_text: None,
                content_meta: Some(object(meta)),
                client_ref: None,
            },
            "{name}"
        );
        assert_eq!(message_type.wire_name(), name);
        assert_eq!(MessageType::from_kind(message_type.kind()), message_type);
    }
}

#[test]
fn send_msg_media_with_a_caption_and_text_with_meta() {
    let request = ok(envelope(
        "SEND_MSG",
        json!({
            "roomId": ROOM, "type": "IMAGE", "contentText": "the whiteboard",
            "contentMeta": {"url": "HTTP://10.0.0.7:8080/a.png?x=1"}
        }),
    ));
    assert!(matches!(
        request.command,
        NexusCommand::SendMessage { content_text: Some(ref text), .. } if text == "the whiteboard"
    ));
    let request = ok(envelope(
        "SEND_MSG",
        json!({"roomId": ROOM, "type": "TEXT", "contentText": "hi", "contentMeta": {"mentions": [USER]}}),
    ));
    assert!(matches!(
        request.command,
        NexusCommand::SendMessage {
            content_meta: Some(_),
            ..
        }
    ));
}

#[test]
fn send_msg_nulls_empties_and_unknown_fields() {
    let request = ok(json!({
        "event": "SEND_MSG",
        "traceId": null,
        "requestId": 7,
        "data": {
            "roomId": ROOM, "type": "TEXT", "contentText": "x",
            "contentMeta": null, "clientRef": "", "extra": {"a": 1}
        }
    }));
    assert_eq!(request.trace_id, None);
    assert_eq!(
        request.command,
        NexusCommand::SendMessage {
            room_id: ROOM.into(),
            message_type: MessageType::Text,
            content_text: Some("x".into()),
            content_meta: None,
            client_ref: None,
        }
    );
}

#[test]
fn typing() {
    for is_typing in [true, false] {
        let request = ok(envelope(
            "TYPING",
            json!({"roomId": ROOM, "isTyping": is_typing}),
        ));
        assert_eq!(request.event, "TYPING");
        assert_eq!(
            request.command,
            NexusCommand::Typing {
                room_id: ROOM.into(),
                is_typing
            }
        );
    }
}

#[test]
fn ack() {
    let request = ok(envelope(
        "ACK",
        json!({"messageId": "0193a4c2-7f00-7abc-8def-0123456789ab"}),
    ));
    assert_eq!(
        request.command,
        NexusCommand::Ack {
            message_id: "0193a4c2-7f00-7abc-8def-0123456789ab".into()
        }
    );
}

#[test]
fn join_and_leave_room() {
    let request = ok(envelope("JOIN_ROOM", json!({"roomId": ROOM})));
    assert_eq!(
        request.command,
        NexusCommand::JoinRoom {
            room_id: ROOM.into()
        }
    );
    // Any id seed 000 accepts is a room id, not only UUIDs.
    let request = ok(envelope("LEAVE_ROOM", json!({"roomId": "lesson-42"})));
    assert_eq!(request.event, "LEAVE_ROOM");
    assert_eq!(
        request.command,
        NexusCommand::LeaveRoom {
            room_id: "lesson-42".into()
        }
    );
}

#[test]
fn signal_sdp_each_type() {
    for (name, sdp_type) in [
        ("offer", SdpType::Offer),
        ("answer", SdpType::Answer),
        ("rollback", SdpType::Rollback),
    ] {
        let sdp = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\n";
        let request = ok(envelope(
            "SIGNAL_SDP",
            json!({"targetId": USER, "type": name, "sdp": sdp}),
        ));
        assert_eq!(
            request.command,
            NexusCommand::SignalSdp {
                target_id: USER.into(),
                sdp_type,
                sdp: sdp.into()
            }
        );
    }
}

#[test]
fn signal_ice_with_and_without_sdp_mid() {
    let candidate = "candidate:842163049 1 udp 1677729535 203.0.113.7 3478 typ srflx";
    let request = ok(envelope(
        "SIGNAL_ICE",
        json!({"targetId": USER, "candidate": candidate, "sdpMid": "0", "sdpMLineIndex": 0}),
    ));
    assert_eq!(
        request.command,
        NexusCommand::SignalIce {
            target_id: USER.into(),
            candidate: candidate.into(),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: 0,
        }
    );
    let request = ok(envelope(
        "SIGNAL_ICE",
        json!({"targetId": USER, "candidate": candidate, "sdpMLineIndex": 65535}),
    ));
    assert!(matches!(
        request.command,
        NexusCommand::SignalIce {
            sdp_mid: None,
            sdp_m_line_index: 65535,
            ..
        }
    ));
}

#[test]
fn call_end_names_the_other_user() {
    let request = ok(envelope("CALL_END", json!({"targetId": USER})));
    assert_eq!(
        request.command,
        NexusCommand::CallEnd {
            target_id: USER.into()
        }
    );
}

#[test]
fn a_sane_trace_id_is_kept_and_any_other_is_dropped() {
    let with_trace = |trace: Value| {
        ok(json!({"event": "JOIN_ROOM", "traceId": trace, "data": {"roomId": ROOM}})).trace_id
    };
    assert_eq!(with_trace(json!(TRACE)).as_deref(), Some(TRACE));
    assert_eq!(
        with_trace(json!(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ))
        .as_deref(),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    );
    assert_eq!(
        with_trace(json!("x".repeat(128))).map(|t| t.len()),
        Some(128)
    );
    for insane in [
        json!(""),
        json!(7),
        json!({"id": TRACE}),
        json!("x".repeat(129)),
        json!("line\nbreak"),
        json!("a\u{202E}b"),
    ] {
        assert_eq!(with_trace(insane.clone()), None, "{insane}");
    }
    let request = ok(json!({"event": "JOIN_ROOM", "data": {"roomId": ROOM}}));
    assert_eq!(request.trace_id, None);
}
