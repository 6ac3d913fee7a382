//! Seed-000 server envelopes: every `encode_*` on arbitrary proto values.
//!
//! Besides "never panics", checks that every envelope is one JSON object with
//! the right `type` and `seq`, and that the fields a client reads map back to
//! the proto values (stored `meta_json` / `extra_json` embedded as the same
//! object, or left out when empty or not an object).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use meno_bridge::codec::seed000::{
    encode_chat_message, encode_error, encode_event, encode_lease, encode_pong, encode_snapshot,
    encode_sync,
};
use meno_bridge::codec::ErrorEnvelope;
use meno_bridge::time_fmt::format_unix_ms;
use meno_common::error::ErrorCode;
use meno_proto::session_event::Kind;
use meno_proto::{ChatMessage, LeaseState, PresenceState, SessionEvent};
use serde_json::Value;

/// A stored JSON object: arbitrary text, or an object built from pairs (so
/// the valid case is reached often).
#[derive(Arbitrary, Debug)]
enum StoredJson {
    Text(String),
    Pairs(Vec<(String, String)>),
    Nested(Vec<(String, Vec<i64>)>),
    /// Text at the edges of what a JSON parser accepts.
    Edge(u8),
}

const EDGES: &[&str] = &[
    "",
    "{}",
    " { } ",
    " {\"a\":1} ",
    "{\"a\":1,\"a\":2}",
    "{\"a\":-0}",
    "{\"a\":1e400}",
    "{\"a\":-1e400}",
    "{\"a\":\"\\ud800\"}",
    "{\"\\udc00\":1}",
    "{\"a\":\"\\ud83c\\udf93\"}",
    "{\"a\":[1,{\"b\":null}]}",
    "[1]",
    "\"text\"",
    "{\"a\":1}x",
    "{\"a\":\"\u{7}\"}",
];

impl StoredJson {
    fn text(&self) -> String {
        match self {
            Self::Text(text) => text.clone(),
            Self::Pairs(pairs) => Value::Object(
                pairs
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            )
            .to_string(),
            Self::Nested(pairs) => Value::Object(
                pairs
                    .iter()
                    .map(|(k, v)| (k.clone(), v.iter().copied().map(Value::from).collect()))
                    .collect(),
            )
            .to_string(),
            Self::Edge(index) => EDGES[usize::from(*index) % EDGES.len()].to_owned(),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Message {
    id: String,
    client_ref: String,
    seq: u64,
    sender_id: String,
    sender_name: String,
    sender_role: i32,
    kind: String,
    content: String,
    meta: StoredJson,
    created_at_ms: i64,
}

impl Message {
    fn proto(&self) -> ChatMessage {
        ChatMessage {
            id: self.id.clone(),
            client_ref: self.client_ref.clone(),
            seq: self.seq,
            sender_id: self.sender_id.clone(),
            sender_name: self.sender_name.clone(),
            sender_role: self.sender_role,
            kind: self.kind.clone(),
            content: self.content.clone(),
            meta_json: self.meta.text(),
            created_at_ms: self.created_at_ms,
            message_kind: 0,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Presence {
    participant_id: String,
    name: String,
    role: i32,
    status: i32,
    is_typing: bool,
    is_speaking: bool,
    color: String,
    last_seen_ms: i64,
    extra: StoredJson,
}

impl Presence {
    fn proto(&self) -> PresenceState {
        PresenceState {
            participant_id: self.participant_id.clone(),
            name: self.name.clone(),
            role: self.role,
            status: self.status,
            is_typing: self.is_typing,
            is_speaking: self.is_speaking,
            color: self.color.clone(),
            last_seen_ms: self.last_seen_ms,
            extra_json: self.extra.text(),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Lease {
    lease_id: String,
    lease_to: String,
    step_index: i64,
    issued_at_ms: i64,
    expires_at_ms: i64,
    epoch: u64,
}

impl Lease {
    fn proto(&self) -> LeaseState {
        LeaseState {
            lease_id: self.lease_id.clone(),
            lease_to: self.lease_to.clone(),
            step_index: self.step_index,
            issued_at_ms: self.issued_at_ms,
            expires_at_ms: self.expires_at_ms,
            epoch: self.epoch,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum EventKind {
    None,
    Chat(Message),
    Presence(Presence),
    Lease(Lease),
}

#[derive(Arbitrary, Debug)]
enum Input {
    Chat {
        session_id: String,
        seq: Option<u64>,
        message: Message,
    },
    Sync {
        session_id: String,
        seq: u64,
        messages: Vec<Message>,
    },
    Snapshot {
        session_id: String,
        seq: u64,
        participants: Vec<Presence>,
    },
    Event {
        session_id: String,
        seq: u64,
        server_time_ms: i64,
        kind: EventKind,
    },
    Lease {
        session_id: String,
        seq: Option<u64>,
        lease: Lease,
    },
    Pong(i64),
    Error {
        code: u8,
        message: String,
        action: Option<String>,
        retry_after_ms: Option<u64>,
    },
}

fuzz_target!(|input: Input| {
    match input {
        Input::Chat {
            session_id,
            seq,
            message,
        } => {
            let message = message.proto();
            let data = envelope(
                &encode_chat_message(&session_id, seq, &message),
                "chat.message",
                seq,
            );
            check_message(&data, &session_id, &message);
        }
        Input::Sync {
            session_id,
            seq,
            messages,
        } => {
            let messages: Vec<ChatMessage> = messages.iter().map(Message::proto).collect();
            let data = envelope(
                &encode_sync(&session_id, seq, &messages),
                "chat.sync",
                Some(seq),
            );
            assert_eq!(data["sessionId"], session_id.as_str());
            let listed = data["messages"].as_array().expect("messages is a list");
            assert_eq!(listed.len(), messages.len());
            for (data, message) in listed.iter().zip(&messages) {
                check_message(data, &session_id, message);
            }
        }
        Input::Snapshot {
            session_id,
            seq,
            participants,
        } => {
            let states: Vec<PresenceState> = participants.iter().map(Presence::proto).collect();
            let data = envelope(
                &encode_snapshot(&session_id, seq, &states),
                "presence.snapshot",
                Some(seq),
            );
            assert_eq!(data["sessionId"], session_id.as_str());
            let listed = data["participants"]
                .as_array()
                .expect("participants is a list");
            assert_eq!(listed.len(), states.len());
            for (data, state) in listed.iter().zip(&states) {
                assert!(data.get("sessionId").is_none());
                check_presence(data, state);
            }
        }
        Input::Event {
            session_id,
            seq,
            server_time_ms,
            kind,
        } => {
            let kind = match &kind {
                EventKind::None => None,
                EventKind::Chat(message) => Some(Kind::ChatMessage(message.proto())),
                EventKind::Presence(state) => Some(Kind::Presence(state.proto())),
                EventKind::Lease(lease) => Some(Kind::Lease(lease.proto())),
            };
            let event = SessionEvent {
                seq,
                server_time_ms,
                kind: kind.clone(),
                ..SessionEvent::default()
            };
            let encoded = encode_event(&session_id, &event);
            let seq = Some(seq).filter(|seq| *seq != 0);
            match (kind, encoded) {
                (None, None) => {}
                (Some(Kind::ChatMessage(message)), Some(text)) => {
                    let data = envelope(&text, "chat.message", seq);
                    check_message(&data, &session_id, &message);
                }
                (Some(Kind::Presence(state)), Some(text)) => {
                    let data = envelope(&text, "presence.event", seq);
                    assert_eq!(data["sessionId"], session_id.as_str());
                    check_presence(&data, &state);
                }
                (Some(Kind::Lease(lease)), Some(text)) => {
                    let data = envelope(&text, "control.lease.state", seq);
                    check_lease(&data, &session_id, &lease);
                }
                (kind, text) => panic!("{kind:?} encoded as {text:?}"),
            }
        }
        Input::Lease {
            session_id,
            seq,
            lease,
        } => {
            let lease = lease.proto();
            let data = envelope(
                &encode_lease(&session_id, seq, &lease),
                "control.lease.state",
                seq,
            );
            check_lease(&data, &session_id, &lease);
        }
        Input::Pong(server_time_ms) => {
            let data = envelope(&encode_pong(server_time_ms), "system.pong", None);
            assert_eq!(data["serverTime"], format_unix_ms(server_time_ms).as_str());
        }
        Input::Error {
            code,
            message,
            action,
            retry_after_ms,
        } => {
            let codes = ErrorCode::ALL;
            let code = codes[usize::from(code) % codes.len()];
            let error = ErrorEnvelope {
                code,
                message,
                action,
                retry_after_ms,
            };
            let data = envelope(&encode_error(&error), "error", None);
            assert_eq!(data["code"], code.as_str());
            assert_eq!(data["message"], error.message.as_str());
            assert_eq!(data["retryable"], code.retryable());
            assert_eq!(
                data.get("action").and_then(Value::as_str),
                error.action.as_deref()
            );
            assert_eq!(
                data.get("retryAfterMs").and_then(Value::as_u64),
                retry_after_ms
            );
        }
    }
});

/// Parses one envelope, checks `type` and `seq`, and returns its `data`.
fn envelope(text: &str, kind: &str, seq: Option<u64>) -> Value {
    let mut value: Value =
        serde_json::from_str(text).unwrap_or_else(|err| panic!("not JSON ({err}): {text}"));
    assert_eq!(value["type"], kind, "{text}");
    assert_eq!(value.get("seq").and_then(Value::as_u64), seq, "{text}");
    assert!(value.get("seq").is_none_or(Value::is_u64), "{text}");
    value["data"].take()
}

fn non_empty(text: &str) -> Option<&str> {
    Some(text).filter(|text| !text.is_empty())
}

/// What a stored object should look like on the wire: the same object, or
/// absent when empty or not an object.
fn stored(json: &str) -> Option<Value> {
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(object)) if !object.is_empty() => Some(Value::Object(object)),
        _ => None,
    }
}

fn role_name(role: i32) -> &'static str {
    match role {
        1 => "student",
        2 | 4 => "teacher",
        _ => "observer",
    }
}

fn status_name(status: i32) -> &'static str {
    match status {
        1 => "online",
        2 => "typing",
        3 => "speaking",
        4 => "muted",
        5 => "reconnecting",
        _ => "offline",
    }
}

fn check_message(data: &Value, session_id: &str, message: &ChatMessage) {
    assert_eq!(data["sessionId"], session_id);
    assert_eq!(
        data["messageId"],
        non_empty(&message.client_ref).unwrap_or(&message.id)
    );
    assert_eq!(data["participantId"], message.sender_id.as_str());
    assert_eq!(data["participantName"], message.sender_name.as_str());
    assert_eq!(data["role"], role_name(message.sender_role));
    assert_eq!(data["content"], message.content.as_str());
    assert_eq!(
        data["createdAt"],
        format_unix_ms(message.created_at_ms).as_str()
    );
    assert_eq!(data.get("meta").cloned(), stored(&message.meta_json));
    assert_eq!(data["id"], message.id.as_str());
    assert_eq!(data["kind"], non_empty(&message.kind).unwrap_or("text"));
    assert_eq!(data["seq"].as_u64(), Some(message.seq));
}

fn check_presence(data: &Value, state: &PresenceState) {
    assert_eq!(data["participantId"], state.participant_id.as_str());
    assert_eq!(data["name"], state.name.as_str());
    assert_eq!(data["role"], role_name(state.role));
    assert_eq!(data["status"], status_name(state.status));
    assert_eq!(data["isTyping"], state.is_typing);
    assert_eq!(data["isSpeaking"], state.is_speaking);
    assert_eq!(
        data.get("color").and_then(Value::as_str),
        non_empty(&state.color)
    );
    assert_eq!(
        data["lastSeen"],
        format_unix_ms(state.last_seen_ms).as_str()
    );
    assert_eq!(data.get("extra").cloned(), stored(&state.extra_json));
}

fn check_lease(data: &Value, session_id: &str, lease: &LeaseState) {
    let active = !lease.lease_id.is_empty();
    assert_eq!(data["sessionId"], session_id);
    assert_eq!(data["stepIndex"].as_i64(), Some(lease.step_index));
    assert_eq!(data["epoch"].as_u64(), Some(lease.epoch));
    // Cleared or not, every field is present; a cleared lease's are null.
    for key in ["leaseId", "leaseTo", "issuedAt", "expiresAt"] {
        assert!(data.get(key).is_some(), "{key} missing: {data}");
    }
    if active {
        assert_eq!(data["leaseId"], lease.lease_id.as_str());
        assert_eq!(
            data["leaseTo"].as_str(),
            non_empty(&lease.lease_to),
            "{data}"
        );
        assert_eq!(
            data["issuedAt"],
            format_unix_ms(lease.issued_at_ms).as_str()
        );
        assert_eq!(
            data["expiresAt"],
            format_unix_ms(lease.expires_at_ms).as_str()
        );
    } else {
        for key in ["leaseId", "leaseTo", "issuedAt", "expiresAt"] {
            assert!(data[key].is_null(), "{key} of a cleared lease: {data}");
        }
    }
}
