//! One sample of every envelope, both ways, made by the real codecs: server
//! samples are the encoders' output, client samples are built from
//! [`super::wire`]'s types and must decode. `tsc` then checks each sample
//! against the generated union it belongs to (`satisfies`, with excess
//! property checks), so a declaration that drifts from its codec fails CI.

use meno_common::error::ErrorCode;
use meno_proto::{
    direct_message, session_event, ChatMessage, ChatResponse, DirectError, DirectMessage,
    LeaseState, PresenceState, PresenceStatus, ReadPosition, Role, SessionEvent, SystemNotice,
    TypingIndicator,
};
use serde::Serialize;
use serde_json::{json, Value};

use super::wire;
use crate::codec::nexus::SdpType;
use crate::codec::{assistant, direct, nexus, seed000, ErrorEnvelope, Limits};

/// The samples of one dialect.
#[derive(Debug, Default)]
pub(super) struct Samples {
    pub(super) server: Vec<Value>,
    pub(super) client: Vec<Value>,
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("an encoder wrote JSON")
}

fn to_value(envelope: impl Serialize) -> Value {
    serde_json::to_value(envelope).expect("a wire type serializes")
}

fn message() -> ChatMessage {
    ChatMessage {
        id: "0190f0a4-0000-7000-8000-000000000001".into(),
        client_ref: "m-1".into(),
        seq: 7,
        sender_id: "ann".into(),
        sender_name: "Ann".into(),
        sender_role: Role::Teacher.into(),
        kind: "text".into(),
        content: "hello".into(),
        meta_json: r#"{"tags":["a"]}"#.into(),
        created_at_ms: 1_795_000_000_123,
        ..Default::default()
    }
}

fn presence() -> PresenceState {
    PresenceState {
        participant_id: "ann".into(),
        name: "Ann".into(),
        role: Role::Teacher.into(),
        status: PresenceStatus::Online.into(),
        is_typing: true,
        color: "#ff0000".into(),
        last_seen_ms: 1_795_000_000_123,
        extra_json: r#"{"hand":true}"#.into(),
        ..Default::default()
    }
}

fn lease(active: bool) -> LeaseState {
    LeaseState {
        lease_id: if active { "l-1".into() } else { String::new() },
        lease_to: if active { "ann".into() } else { String::new() },
        step_index: 3,
        issued_at_ms: 1_795_000_000_000,
        expires_at_ms: 1_795_000_030_000,
        epoch: 2,
    }
}

fn error(action: Option<&str>, retry_after_ms: Option<u64>) -> ErrorEnvelope {
    ErrorEnvelope {
        code: ErrorCode::RateLimited,
        message: "slow down".into(),
        action: action.map(str::to_owned),
        retry_after_ms,
    }
}

fn direct_messages() -> Vec<DirectMessage> {
    [
        direct_message::Kind::ChatResponse(ChatResponse {
            message_id: "r-1".into(),
            content: "Hi".into(),
            is_complete: true,
        }),
        direct_message::Kind::TypingIndicator(TypingIndicator { is_typing: true }),
        direct_message::Kind::Error(DirectError {
            code: "Unavailable".into(),
            message: "the backend went away".into(),
            retryable: true,
            retry_after_ms: Some(1000),
        }),
        direct_message::Kind::System(SystemNotice {
            message: "maintenance at noon".into(),
            level: String::new(),
        }),
    ]
    .into_iter()
    .map(|kind| DirectMessage { kind: Some(kind) })
    .collect()
}

/// Seed 000: `{type, seq?, data}` out, `{action, payload}` in.
pub(super) fn seed000() -> Samples {
    let event = SessionEvent {
        seq: 9,
        kind: Some(session_event::Kind::Presence(presence())),
        ..Default::default()
    };
    let mut server = vec![
        seed000::encode_chat_message("s1", Some(7), &message()),
        seed000::encode_sync("s1", 9, &[message()]),
        seed000::encode_snapshot("s1", 9, &[presence()]),
        seed000::encode_event("s1", &event).expect("presence shows in seed 000"),
        seed000::encode_lease("s1", Some(9), &lease(true)),
        seed000::encode_lease("s1", None, &lease(false)),
        seed000::encode_pong(1_795_000_000_123),
        seed000::encode_auth_refreshed(1_795_000_900_000),
        seed000::encode_error(&error(Some("chat.send"), Some(1500))),
        seed000::encode_error(&error(None, None)),
    ];
    server.extend(direct_messages().iter().filter_map(direct::encode_typed));
    let client = vec![
        json!({"action": "chat.send", "payload": to_value(wire::ChatSend {
            message_id: "m-1".into(),
            content: "hello".into(),
            created_at: Some("2026-11-23T06:51:42.123Z".into()),
            meta: Some(json!({"tags": ["a"]})),
        })}),
        json!({"action": "presence.update", "payload": to_value(wire::PresenceUpdate {
            status: Some("typing"),
            is_typing: Some(true),
            is_speaking: Some(false),
            last_seen: Some("2026-11-23T06:51:42.123Z".into()),
            extra: Some(json!({"hand": true})),
        })}),
        json!({"action": "presence.heartbeat", "payload": to_value(wire::PresenceHeartbeat {
            last_seen: None,
        })}),
        json!({"action": "control.lease.set", "payload": to_value(wire::LeaseSet {
            lease_id: Some("l-1".into()),
            step_index: 3,
            lease_duration_ms: Some(30_000),
        })}),
        json!({"action": "control.lease.release", "payload": to_value(wire::LeaseRelease {
            lease_id: Some("l-1".into()),
        })}),
        json!({"action": "system.ping"}),
        json!({"action": "system.auth.refresh", "payload": to_value(wire::AuthRefresh {
            token: "eyJ.x.y".into(),
        })}),
    ];
    for envelope in &client {
        let decoded = seed000::decode_with(&envelope.to_string(), &Limits::default());
        assert!(decoded.is_ok(), "{envelope} must decode: {decoded:?}");
    }
    Samples {
        server: server.iter().map(|text| parse(text)).collect(),
        client,
    }
}

/// NexusChat: `{event, traceId, data}` both ways.
pub(super) fn nexus() -> Samples {
    let mut media = message();
    media.kind = "image".into();
    media.content = String::new();
    let read = ReadPosition {
        user_id: "bob".into(),
        message_id: "0190f0a4-0000-7000-8000-000000000001".into(),
        seq: 8,
        read_at_ms: 1_795_000_000_500,
    };
    let mut server = vec![
        nexus::encode_new_message("t-1", "r1", &message()),
        nexus::encode_new_message("t-1", "r1", &media),
        nexus::encode_typing("t-1", "r1", "ann", true),
        nexus::encode_presence("t-1", &presence()),
        nexus::encode_read("t-1", "r1", "bob", &read.message_id, read.read_at_ms),
        nexus::encode_room_joined("t-1", "r1", &[presence()], &[message()]),
        nexus::encode_room_left("t-1", "r1"),
        nexus::encode_error("t-1", &error(Some("SEND_MSG"), Some(1500))),
        nexus::encode_signal_sdp("t-1", "ann", "bob", SdpType::Offer, "v=0"),
        nexus::encode_signal_ice("t-1", "ann", "bob", "candidate:1", Some("0"), 0),
        nexus::encode_call_end("t-1", "ann"),
        nexus::encode_call_rejected("t-1", "ann", "bob", "in another call"),
    ];
    server.extend(
        direct_messages()
            .iter()
            .filter_map(|message| direct::encode_nexus("t-1", message)),
    );
    let envelope =
        |event: &str, data: Value| json!({"event": event, "traceId": "t-1", "data": data});
    let client = vec![
        envelope(
            "SEND_MSG",
            to_value(wire::SendMsg {
                room_id: "r1".into(),
                message_type: "TEXT",
                content_text: Some("hello".into()),
                content_meta: None,
                client_ref: Some("c-1".into()),
            }),
        ),
        envelope(
            "SEND_MSG",
            to_value(wire::SendMsg {
                room_id: "r1".into(),
                message_type: "IMAGE",
                content_text: None,
                content_meta: Some(json!({"url": "https://example.com/a.png"})),
                client_ref: None,
            }),
        ),
        envelope(
            "TYPING",
            to_value(wire::TypingRequest {
                room_id: "r1".into(),
                is_typing: true,
            }),
        ),
        envelope(
            "ACK",
            to_value(wire::Ack {
                message_id: "0190f0a4".into(),
            }),
        ),
        envelope(
            "JOIN_ROOM",
            to_value(wire::RoomRequest {
                room_id: "r1".into(),
            }),
        ),
        envelope(
            "LEAVE_ROOM",
            to_value(wire::RoomRequest {
                room_id: "r1".into(),
            }),
        ),
        envelope(
            "SIGNAL_SDP",
            to_value(wire::SignalSdpRequest {
                target_id: "bob".into(),
                sdp_type: "offer",
                sdp: "v=0".into(),
            }),
        ),
        envelope(
            "SIGNAL_ICE",
            to_value(wire::SignalIceRequest {
                target_id: "bob".into(),
                candidate: "candidate:1".into(),
                sdp_mid: Some("0".into()),
                sdp_m_line_index: 0,
            }),
        ),
        envelope(
            "CALL_END",
            to_value(wire::CallEndRequest {
                target_id: "bob".into(),
            }),
        ),
    ];
    for envelope in &client {
        let decoded = nexus::decode_with(&envelope.to_string(), &Limits::default());
        assert!(decoded.is_ok(), "{envelope} must decode: {decoded:?}");
    }
    Samples {
        server: server.iter().map(|text| parse(text)).collect(),
        client,
    }
}

/// The assistant dialect: `{type, data}` both ways.
pub(super) fn assistant() -> Samples {
    let mut server = vec![
        assistant::encode_pong(),
        assistant::encode_error(&error(Some("voice_data"), Some(1500))),
    ];
    server.extend(direct_messages().iter().filter_map(direct::encode_typed));
    let client = vec![
        json!({"type": "ping"}),
        json!({"type": "text_message", "data": to_value(wire::TextMessage {
            content: "hello".into(),
            session_id: Some("chat-1".into()),
        })}),
        json!({"type": "voice_start", "data": to_value(wire::VoiceStart {
            audio_format: "pcm16".into(),
            session_id: "v-1".into(),
        })}),
        json!({"type": "voice_data", "data": to_value(wire::VoiceData {
            audio_data: "AAEC".into(),
            session_id: "v-1".into(),
        })}),
        json!({"type": "voice_end", "data": to_value(wire::VoiceEnd { session_id: "v-1".into() })}),
    ];
    for envelope in &client {
        let decoded = assistant::decode(&envelope.to_string(), &Limits::default());
        assert!(decoded.is_ok(), "{envelope} must decode: {decoded:?}");
    }
    Samples {
        server: server.iter().map(|text| parse(text)).collect(),
        client,
    }
}
