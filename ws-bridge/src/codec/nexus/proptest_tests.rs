//! Property tests: every NexusChat client event round-trips through
//! `decode`, and a decoded SEND_MSG, stored as the core stores it, comes back
//! out of NEW_MESSAGE and the REST page with the same type, text and meta.

use meno_proto::ChatMessage;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::{
    decode, encode_history_page, encode_new_message, MessageType, NexusCommand, NexusRequest,
    SdpType,
};
use crate::time_fmt::format_unix_ms;

/// An id by the id rule: 1..=128 characters, no control or bidi controls.
fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9._:@-]{1,36}",
        proptest::collection::vec(
            any::<char>().prop_filter("the id rule", |c| {
                !c.is_control() && !meno_common::text::is_bidi_control(*c)
            }),
            1..=128
        )
        .prop_map(String::from_iter),
    ]
}

/// A JSON value whose floats are exact binary fractions, so they survive any
/// decimal round trip; small enough for the default meta limit.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1_000_000i32..1_000_000).prop_map(|n| Value::from(f64::from(n) / 8.0)),
        ".{0,16}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// `contentMeta` for `message_type`: media get an http(s) `url`.
fn content_meta(message_type: MessageType) -> impl Strategy<Value = Option<Map<String, Value>>> {
    let object = proptest::collection::btree_map("[a-tv-z][a-z]{0,7}", json_value(), 0..4)
        .prop_map(|map| map.into_iter().collect::<Map<String, Value>>());
    let url = (
        "https?|HTTPS?",
        "[a-z0-9.-]{1,20}(:[0-9]{1,5})?",
        "(/[A-Za-z0-9._~%-]{0,12}){0,3}",
    )
        .prop_map(|(scheme, host, path)| format!("{scheme}://{host}{path}"));
    (object, url, any::<bool>()).prop_map(move |(mut object, url, with_meta)| {
        if message_type.is_media() {
            object.insert("url".into(), Value::String(url));
            Some(object)
        } else {
            with_meta.then_some(object)
        }
    })
}

fn send_message() -> impl Strategy<Value = NexusCommand> {
    proptest::sample::select(MessageType::ALL.to_vec()).prop_flat_map(|message_type| {
        let text = if message_type.is_media() {
            proptest::option::of(".{1,64}").boxed()
        } else {
            ".{1,64}".prop_map(Some).boxed()
        };
        (
            id(),
            text,
            content_meta(message_type),
            proptest::option::of(id()),
        )
            .prop_map(move |(room_id, content_text, content_meta, client_ref)| {
                NexusCommand::SendMessage {
                    room_id,
                    message_type,
                    content_text,
                    content_meta,
                    client_ref,
                }
            })
    })
}

fn command() -> impl Strategy<Value = NexusCommand> {
    prop_oneof![
        3 => send_message(),
        1 => (id(), any::<bool>()).prop_map(|(room_id, is_typing)| NexusCommand::Typing { room_id, is_typing }),
        1 => id().prop_map(|message_id| NexusCommand::Ack { message_id }),
        1 => id().prop_map(|room_id| NexusCommand::JoinRoom { room_id }),
        1 => id().prop_map(|room_id| NexusCommand::LeaveRoom { room_id }),
        1 => id().prop_map(|target_id| NexusCommand::CallEnd { target_id }),
        1 => (
            id(),
            proptest::sample::select(vec![SdpType::Offer, SdpType::Answer, SdpType::Rollback]),
            ".{1,200}",
        )
            .prop_map(|(target_id, sdp_type, sdp)| NexusCommand::SignalSdp { target_id, sdp_type, sdp }),
        1 => (id(), ".{1,100}", proptest::option::of(".{0,8}"), any::<u16>()).prop_map(
            |(target_id, candidate, sdp_mid, sdp_m_line_index)| NexusCommand::SignalIce {
                target_id,
                candidate,
                sdp_mid,
                sdp_m_line_index,
            }
        ),
    ]
}

/// The event name and `data` a client would send for `command`; absent
/// optional fields are left out, or written `null` when `nulls`.
fn to_client(command: &NexusCommand, nulls: bool) -> (&'static str, Value) {
    let optional = |value: Option<Value>| match value {
        Some(value) => Some(value),
        None => nulls.then_some(Value::Null),
    };
    let mut data = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            data.insert(key.to_owned(), value);
        }
    };
    let event = match command.clone() {
        NexusCommand::SendMessage {
            room_id,
            message_type,
            content_text,
            content_meta,
            client_ref,
        } => {
            put("roomId", Some(json!(room_id)));
            put("type", Some(json!(message_type.wire_name())));
            put("contentText", optional(content_text.map(Value::String)));
            put("contentMeta", optional(content_meta.map(Value::Object)));
            put("clientRef", optional(client_ref.map(Value::String)));
            "SEND_MSG"
        }
        NexusCommand::Typing { room_id, is_typing } => {
            put("roomId", Some(json!(room_id)));
            put("isTyping", Some(json!(is_typing)));
            "TYPING"
        }
        NexusCommand::Ack { message_id } => {
            put("messageId", Some(json!(message_id)));
            "ACK"
        }
        NexusCommand::JoinRoom { room_id } => {
            put("roomId", Some(json!(room_id)));
            "JOIN_ROOM"
        }
        NexusCommand::LeaveRoom { room_id } => {
            put("roomId", Some(json!(room_id)));
            "LEAVE_ROOM"
        }
        NexusCommand::SignalSdp {
            target_id,
            sdp_type,
            sdp,
        } => {
            put("targetId", Some(json!(target_id)));
            put("type", Some(json!(sdp_type.wire_name())));
            put("sdp", Some(json!(sdp)));
            "SIGNAL_SDP"
        }
        NexusCommand::SignalIce {
            target_id,
            candidate,
            sdp_mid,
            sdp_m_line_index,
        } => {
            put("targetId", Some(json!(target_id)));
            put("candidate", Some(json!(candidate)));
            put("sdpMid", optional(sdp_mid.map(Value::String)));
            put("sdpMLineIndex", Some(json!(sdp_m_line_index)));
            "SIGNAL_ICE"
        }
        NexusCommand::CallEnd { target_id } => {
            put("targetId", Some(json!(target_id)));
            "CALL_END"
        }
    };
    (event, Value::Object(data))
}

proptest! {
    #[test]
    fn every_client_event_round_trips(
        command in command(),
        trace_id in proptest::option::of(id()),
        nulls in any::<bool>(),
        unknown in proptest::option::of(("x[a-z]{0,8}", any::<i64>())),
    ) {
        let (event, mut data) = to_client(&command, nulls);
        let mut envelope = json!({"event": event, "data": data.clone()});
        if let Some(trace_id) = &trace_id {
            envelope["traceId"] = json!(trace_id);
        }
        if let Some((key, value)) = unknown {
            data[&key] = json!(value);
            envelope["data"] = data;
            envelope[&key] = json!(value);
        }
        let text = envelope.to_string();
        prop_assert_eq!(
            decode(&text),
            Ok(NexusRequest { event, trace_id, command }),
            "sent {}", text
        );
    }

    #[test]
    fn a_sent_message_comes_back_as_sent(
        command in send_message(),
        message_id in id(),
        sender_id in id(),
        created_at_ms in -62_167_219_200_000i64..=253_402_300_799_999,
    ) {
        let (_, data) = to_client(&command, false);
        let text = json!({"event": "SEND_MSG", "data": data.clone()}).to_string();
        let NexusCommand::SendMessage { room_id, message_type, content_text, content_meta, client_ref } =
            decode(&text).expect("decodes").command
        else {
            panic!("not a SEND_MSG: {text}");
        };
        // Stored as the core stores a seed-000 chat.send, by the mapping.
        let stored = ChatMessage {
            id: message_id.clone(),
            client_ref: client_ref.unwrap_or_default(),
            sender_id: sender_id.clone(),
            kind: message_type.kind().into(),
            content: content_text.clone().unwrap_or_default(),
            meta_json: content_meta.clone().map(|meta| Value::Object(meta).to_string()).unwrap_or_default(),
            created_at_ms,
            ..ChatMessage::default()
        };
        let shown_meta = content_meta.filter(|meta| !meta.is_empty()).map(Value::Object);
        let expected = json!({
            "id": message_id,
            "roomId": room_id,
            "senderId": sender_id,
            "type": message_type.wire_name(),
            "contentText": content_text,
            "contentMeta": shown_meta,
            "createdAt": format_unix_ms(created_at_ms),
        });
        let new_message: Value = serde_json::from_str(&encode_new_message("t", &room_id, &stored)).expect("JSON");
        prop_assert_eq!(&new_message["data"], &expected);
        let page: Value = serde_json::from_str(&encode_history_page(&room_id, &[stored])).expect("JSON");
        let mut row = expected;
        row["editedAt"] = Value::Null;
        prop_assert_eq!(&page, &json!([row]));
    }
}
