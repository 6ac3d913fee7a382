//! Property tests: every seed-000 envelope type round-trips.
//!
//! Client actions: a generated [`ClientCommand`], written as a client might
//! (optional fields absent or `null`, integers as integral floats, timestamps
//! at any UTC offset, unknown fields, no payload where none is needed), must
//! decode back to itself. Server envelopes: generated proto values, encoded,
//! must parse to exactly the `data` object the mapping in `encode.rs` (and the
//! module docs) promise, with no field more or less.

use meno_common::error::ErrorCode;
use meno_proto::session_event::Kind;
use meno_proto::{ChatMessage, LeaseState, PresenceState, PresenceStatus, SessionEvent};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use super::{
    decode, encode_chat_message, encode_error, encode_event, encode_lease, encode_pong,
    encode_snapshot, encode_sync,
};
use crate::codec::{ClientCommand, ErrorEnvelope, Limits};
use crate::time_fmt::{format_unix_ms, parse_unix_ms};

/// One day inside the years 0000..=9999, so any offset can still be written.
const EARLIEST_MS: i64 = -62_167_219_200_000 + 86_400_000;
const LATEST_MS: i64 = 253_402_300_799_999 - 86_400_000;
/// Integers up to here may be written as integral floats (`3.0`).
const MAX_EXACT_FLOAT: i64 = 1 << 53;

// ---------------------------------------------------------------------------
// Client actions: ClientCommand → client JSON → decode.

/// How a client happens to write an envelope; none of it changes the meaning.
#[derive(Debug, Clone)]
struct Style {
    /// Absent optional fields are written as `null` rather than left out.
    nulls: bool,
    /// Integers are written as integral floats where that is exact.
    floats: bool,
    /// Timestamps carry this UTC offset, in minutes.
    offset_minutes: i32,
    /// An unknown field in the payload and at the top level.
    unknown: Option<(String, i64)>,
    /// A payload that would be empty is left out (where the action allows it).
    omit_empty_payload: bool,
}

fn style() -> impl Strategy<Value = Style> {
    (
        any::<bool>(),
        any::<bool>(),
        -1439..=1439i32,
        proptest::option::of(("[a-z]{1,8}", any::<i64>())),
        any::<bool>(),
    )
        .prop_map(
            |(nulls, floats, offset_minutes, unknown, omit_empty_payload)| Style {
                nulls,
                floats,
                offset_minutes,
                // No field of any payload starts with `x`.
                unknown: unknown.map(|(key, value)| (format!("x{key}"), value)),
                omit_empty_payload,
            },
        )
}

impl Style {
    fn timestamp(&self, unix_ms: i64) -> Value {
        let offset = UtcOffset::from_whole_seconds(self.offset_minutes * 60).expect("offset");
        let instant = OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
            .expect("instant")
            .to_offset(offset);
        Value::String(instant.format(&Rfc3339).expect("RFC 3339"))
    }

    fn integer(&self, value: i64) -> Value {
        if self.floats && value.abs() <= MAX_EXACT_FLOAT {
            // Exact: |value| <= 2^53.
            json!(value as f64)
        } else {
            json!(value)
        }
    }

    /// Adds `key` when present, or as `null` in that style.
    fn put(&self, payload: &mut Map<String, Value>, key: &str, value: Option<Value>) {
        match value {
            Some(value) => {
                payload.insert(key.to_owned(), value);
            }
            None if self.nulls => {
                payload.insert(key.to_owned(), Value::Null);
            }
            None => {}
        }
    }
}

/// A client id: any characters, 1..=128 of them.
fn client_id() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9._:@-]{1,24}",
        // Any character the id rule allows (no control or bidi controls).
        proptest::collection::vec(
            any::<char>().prop_filter("the id rule", |c| {
                !c.is_control() && !meno_common::text::is_bidi_control(*c)
            }),
            1..=128
        )
        .prop_map(String::from_iter),
    ]
}

fn instant() -> impl Strategy<Value = i64> {
    EARLIEST_MS..=LATEST_MS
}

/// A JSON value whose floats are exact binary fractions, so they survive any
/// decimal round trip; small enough for the default meta limit.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
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

fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    proptest::collection::btree_map(".{0,12}", json_value(), 0..5)
        .prop_map(|map| map.into_iter().collect())
}

fn client_status() -> impl Strategy<Value = PresenceStatus> {
    prop_oneof![
        Just(PresenceStatus::Online),
        Just(PresenceStatus::Typing),
        Just(PresenceStatus::Speaking),
        Just(PresenceStatus::Muted),
        Just(PresenceStatus::Reconnecting),
    ]
}

fn status_text(status: PresenceStatus) -> &'static str {
    match status {
        PresenceStatus::Online => "online",
        PresenceStatus::Typing => "typing",
        PresenceStatus::Speaking => "speaking",
        PresenceStatus::Muted => "muted",
        PresenceStatus::Reconnecting => "reconnecting",
        PresenceStatus::Offline | PresenceStatus::Unspecified => "offline",
    }
}

fn chat_send() -> impl Strategy<Value = ClientCommand> {
    (
        client_id(),
        any::<String>(),
        proptest::option::of(instant()),
        proptest::option::of(json_object()),
    )
        .prop_map(
            |(message_id, content, created_at_ms, meta)| ClientCommand::ChatSend {
                message_id,
                content,
                created_at_ms,
                meta,
            },
        )
}

fn presence_update() -> impl Strategy<Value = ClientCommand> {
    (
        proptest::option::of(client_status()),
        proptest::option::of(any::<bool>()),
        proptest::option::of(any::<bool>()),
        proptest::option::of(instant()),
        proptest::option::of(json_object()),
    )
        .prop_map(|(status, is_typing, is_speaking, last_seen_ms, extra)| {
            ClientCommand::PresenceUpdate {
                status,
                is_typing,
                is_speaking,
                last_seen_ms,
                extra,
            }
        })
}

fn lease_set() -> impl Strategy<Value = ClientCommand> {
    (
        proptest::option::of(client_id()),
        prop_oneof![0..=100i64, 0..=meno_common::text::MAX_SAFE_INTEGER],
        proptest::option::of(prop_oneof![1..=3_600_000i64, 1..=i64::MAX]),
    )
        .prop_map(
            |(lease_id, step_index, lease_duration_ms)| ClientCommand::LeaseSet {
                lease_id,
                step_index,
                lease_duration_ms,
            },
        )
}

fn client_command() -> impl Strategy<Value = ClientCommand> {
    prop_oneof![
        chat_send(),
        presence_update(),
        proptest::option::of(instant())
            .prop_map(|last_seen_ms| ClientCommand::PresenceHeartbeat { last_seen_ms }),
        lease_set(),
        proptest::option::of(client_id())
            .prop_map(|lease_id| ClientCommand::LeaseRelease { lease_id }),
        Just(ClientCommand::Ping),
        proptest::collection::vec(any::<char>(), 0..2048).prop_map(|token| {
            ClientCommand::AuthRefresh {
                token: String::from_iter(token),
            }
        }),
    ]
}

/// The seed-000 JSON a client sends for `command`, in `style`.
fn to_client_json(command: &ClientCommand, style: &Style) -> String {
    let mut payload = Map::new();
    let p = &mut payload;
    // Whether the action may go without a payload.
    let mut payload_optional = false;
    let action = match command {
        ClientCommand::ChatSend {
            message_id,
            content,
            created_at_ms,
            meta,
        } => {
            style.put(p, "messageId", Some(json!(message_id)));
            style.put(p, "content", Some(json!(content)));
            style.put(p, "createdAt", created_at_ms.map(|ms| style.timestamp(ms)));
            style.put(p, "meta", meta.clone().map(Value::Object));
            "chat.send"
        }
        ClientCommand::PresenceUpdate {
            status,
            is_typing,
            is_speaking,
            last_seen_ms,
            extra,
        } => {
            style.put(p, "status", status.map(|s| json!(status_text(s))));
            style.put(p, "isTyping", is_typing.map(Value::Bool));
            style.put(p, "isSpeaking", is_speaking.map(Value::Bool));
            style.put(p, "lastSeen", last_seen_ms.map(|ms| style.timestamp(ms)));
            style.put(p, "extra", extra.clone().map(Value::Object));
            "presence.update"
        }
        ClientCommand::PresenceHeartbeat { last_seen_ms } => {
            payload_optional = true;
            style.put(p, "lastSeen", last_seen_ms.map(|ms| style.timestamp(ms)));
            "presence.heartbeat"
        }
        ClientCommand::LeaseSet {
            lease_id,
            step_index,
            lease_duration_ms,
        } => {
            style.put(p, "leaseId", lease_id.as_ref().map(|id| json!(id)));
            style.put(p, "stepIndex", Some(style.integer(*step_index)));
            style.put(
                p,
                "leaseDurationMs",
                lease_duration_ms.map(|ms| style.integer(ms)),
            );
            "control.lease.set"
        }
        ClientCommand::LeaseRelease { lease_id } => {
            payload_optional = true;
            // No lease id is written as absent, null, or the empty hint.
            let lease_id = match lease_id {
                Some(id) => Some(json!(id)),
                None if style.floats => Some(json!("")),
                None => None,
            };
            style.put(p, "leaseId", lease_id);
            "control.lease.release"
        }
        ClientCommand::Ping => {
            payload_optional = true;
            "system.ping"
        }
        ClientCommand::AuthRefresh { token } => {
            style.put(p, "token", Some(json!(token)));
            "system.auth.refresh"
        }
        // NexusChat's commands: the seed-000 strategy never makes them.
        ClientCommand::TypedSend { .. }
        | ClientCommand::Typing { .. }
        | ClientCommand::MarkRead { .. }
        | ClientCommand::Signal { .. }
        | ClientCommand::Backend(_)
        | ClientCommand::JoinRoom
        | ClientCommand::LeaveRoom => unreachable!("not a seed-000 command"),
    };
    let mut envelope = Map::new();
    envelope.insert("action".into(), json!(action));
    if let Some((key, value)) = &style.unknown {
        envelope.insert(key.clone(), json!(value));
        payload.insert(key.clone(), json!(value));
    }
    if !(payload_optional && payload.is_empty() && style.omit_empty_payload) {
        envelope.insert("payload".into(), Value::Object(payload));
    }
    Value::Object(envelope).to_string()
}

proptest! {
    #[test]
    fn every_client_action_round_trips(command in client_command(), style in style()) {
        let text = to_client_json(&command, &style);
        prop_assert!(text.len() <= Limits::default().max_envelope_bytes);
        prop_assert_eq!(decode(&text), Ok(command), "sent {}", text);
    }
}

// ---------------------------------------------------------------------------
// Server envelopes: proto values → encode_* → JSON, field by field.

/// Splits an envelope into `type`, `seq` and `data`, checking nothing else is there.
fn parse(text: &str) -> (String, Option<u64>, Value) {
    let value: Value = serde_json::from_str(text).unwrap_or_else(|err| panic!("{err}: {text}"));
    let Value::Object(mut envelope) = value else {
        panic!("not an object: {text}");
    };
    let kind = envelope
        .remove("type")
        .and_then(|kind| kind.as_str().map(str::to_owned))
        .expect("type");
    let seq = envelope.remove("seq").map(|seq| seq.as_u64().expect("seq"));
    let data = envelope.remove("data").expect("data");
    assert!(envelope.is_empty(), "extra keys in {text}");
    (kind, seq, data)
}

/// Any Unix milliseconds, with the edges and the writable range favoured.
fn any_instant() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => instant(),
        1 => any::<i64>(),
        1 => Just(i64::MIN),
        1 => Just(i64::MAX),
    ]
}

fn wire_time(unix_ms: i64) -> Value {
    let text = format_unix_ms(unix_ms);
    // Formatting is exact within the writable range, clamped outside it.
    let clamped = unix_ms.clamp(-62_167_219_200_000, 253_402_300_799_999);
    assert_eq!(
        parse_unix_ms(&text),
        Ok(clamped),
        "{unix_ms} written as {text}"
    );
    assert_eq!(text.len(), "2026-11-23T06:51:42.123Z".len(), "{text}");
    Value::String(text)
}

/// Stored object text, valid or not, paired with what must appear on the wire.
fn stored_json() -> impl Strategy<Value = (String, Option<Value>)> {
    prop_oneof![
        3 => json_object().prop_map(|object| {
            let text = Value::Object(object.clone()).to_string();
            let shown = (!object.is_empty()).then_some(Value::Object(object));
            (text, shown)
        }),
        1 => Just((String::new(), None)),
        1 => Just((String::from("{}"), None)),
        1 => Just((String::from(" { } "), None)),
        1 => Just((String::from("[1,2]"), None)),
        1 => Just((String::from("\"text\""), None)),
        1 => Just((String::from("{not json"), None)),
    ]
}

fn role_code() -> impl Strategy<Value = (i32, &'static str)> {
    prop_oneof![
        Just((0, "observer")),
        Just((1, "student")),
        Just((2, "teacher")),
        Just((3, "observer")),
        Just((4, "teacher")),
        (5..=i32::MAX).prop_map(|code| (code, "observer")),
        (i32::MIN..0).prop_map(|code| (code, "observer")),
    ]
}

fn status_code() -> impl Strategy<Value = (i32, &'static str)> {
    prop_oneof![
        Just((0, "offline")),
        Just((1, "online")),
        Just((2, "typing")),
        Just((3, "speaking")),
        Just((4, "muted")),
        Just((5, "reconnecting")),
        Just((6, "offline")),
        (7..=i32::MAX).prop_map(|code| (code, "offline")),
    ]
}

/// A message and the `data` it must encode to in session "lesson-42".
fn message() -> impl Strategy<Value = (ChatMessage, Value)> {
    (
        (
            "[0-9a-f-]{36}",
            prop_oneof![Just(String::new()), client_id()],
            any::<u64>(),
            ".{0,16}",
            ".{0,16}",
            role_code(),
        ),
        (
            prop_oneof![Just(String::new()), Just("text".to_owned()), "[a-z]{1,8}"],
            any::<String>(),
            stored_json(),
            any_instant(),
        ),
    )
        .prop_map(
            |(
                (id, client_ref, seq, sender_id, sender_name, (role, role_text)),
                (kind, content, (meta_json, meta), created_at_ms),
            )| {
                let mut data = json!({
                    "sessionId": SESSION,
                    "messageId": if client_ref.is_empty() { &id } else { &client_ref },
                    "participantId": sender_id,
                    "participantName": sender_name,
                    "role": role_text,
                    "content": content,
                    "createdAt": wire_time(created_at_ms),
                    "id": id,
                    "kind": if kind.is_empty() { "text" } else { kind.as_str() },
                    "seq": seq,
                });
                if let Some(meta) = meta {
                    data["meta"] = meta;
                }
                let message = ChatMessage {
                    id,
                    client_ref,
                    seq,
                    sender_id,
                    sender_name,
                    sender_role: role,
                    kind,
                    content,
                    meta_json,
                    created_at_ms,
                    message_kind: 0,
                };
                (message, data)
            },
        )
}

/// A presence state and its `data` without `sessionId`.
fn presence() -> impl Strategy<Value = (PresenceState, Value)> {
    (
        (
            client_id(),
            ".{0,16}",
            role_code(),
            status_code(),
            any::<bool>(),
            any::<bool>(),
        ),
        (
            prop_oneof![Just(String::new()), "#[0-9a-f]{6}"],
            any_instant(),
            stored_json(),
        ),
    )
        .prop_map(
            |(
                (participant_id, name, (role, role_text), (status, status_text), typing, speaking),
                (color, last_seen_ms, (extra_json, extra)),
            )| {
                let mut data = json!({
                    "participantId": participant_id,
                    "name": name,
                    "role": role_text,
                    "status": status_text,
                    "isTyping": typing,
                    "isSpeaking": speaking,
                    "lastSeen": wire_time(last_seen_ms),
                });
                if !color.is_empty() {
                    data["color"] = json!(color);
                }
                if let Some(extra) = extra {
                    data["extra"] = extra;
                }
                let state = PresenceState {
                    participant_id,
                    name,
                    role,
                    status,
                    is_typing: typing,
                    is_speaking: speaking,
                    color,
                    last_seen_ms,
                    extra_json,
                };
                (state, data)
            },
        )
}

/// A lease, active (non-empty id) or cleared, and its `data`.
fn lease() -> impl Strategy<Value = (LeaseState, Value)> {
    (
        prop_oneof![Just(String::new()), client_id()],
        prop_oneof![Just(String::new()), client_id()],
        any::<i64>(),
        any_instant(),
        any_instant(),
        any::<u64>(),
    )
        .prop_map(
            |(lease_id, lease_to, step_index, issued_at_ms, expires_at_ms, epoch)| {
                let data = if lease_id.is_empty() {
                    json!({
                        "sessionId": SESSION,
                        "leaseId": null,
                        "leaseTo": null,
                        "stepIndex": step_index,
                        "issuedAt": null,
                        "expiresAt": null,
                        "epoch": epoch,
                    })
                } else {
                    json!({
                        "sessionId": SESSION,
                        "leaseId": lease_id,
                        "leaseTo": if lease_to.is_empty() { Value::Null } else { json!(lease_to) },
                        "stepIndex": step_index,
                        "issuedAt": wire_time(issued_at_ms),
                        "expiresAt": wire_time(expires_at_ms),
                        "epoch": epoch,
                    })
                };
                let lease = LeaseState {
                    lease_id,
                    lease_to,
                    step_index,
                    issued_at_ms,
                    expires_at_ms,
                    epoch,
                };
                (lease, data)
            },
        )
}

const SESSION: &str = "lesson-42";

fn optional_seq() -> impl Strategy<Value = Option<u64>> {
    proptest::option::of(1..=u64::MAX)
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        Just(ErrorCode::InvalidArgument),
        Just(ErrorCode::NotFound),
        Just(ErrorCode::PermissionDenied),
        Just(ErrorCode::Conflict),
        Just(ErrorCode::RateLimited),
        Just(ErrorCode::Unavailable),
        Just(ErrorCode::Internal),
    ]
}

proptest! {
    #[test]
    fn chat_message_maps_back((message, data) in message(), seq in optional_seq()) {
        let encoded = encode_chat_message(SESSION, seq, &message);
        prop_assert_eq!(parse(&encoded), ("chat.message".to_owned(), seq, data.clone()));
        // The same message as a session event: the event's seq, none when 0.
        let event_seq = seq.unwrap_or(0);
        let event = SessionEvent {
            seq: event_seq,
            kind: Some(Kind::ChatMessage(message)),
            ..SessionEvent::default()
        };
        let encoded = encode_event(SESSION, &event).expect("an event with a kind");
        prop_assert_eq!(parse(&encoded), ("chat.message".to_owned(), seq, data));
    }

    #[test]
    fn chat_sync_maps_back(
        messages in proptest::collection::vec(message(), 0..6),
        seq in any::<u64>(),
    ) {
        let (messages, data): (Vec<ChatMessage>, Vec<Value>) = messages.into_iter().unzip();
        let encoded = encode_sync(SESSION, seq, &messages);
        let expected = json!({"sessionId": SESSION, "messages": data});
        prop_assert_eq!(parse(&encoded), ("chat.sync".to_owned(), Some(seq), expected));
    }

    #[test]
    fn presence_snapshot_maps_back(
        participants in proptest::collection::vec(presence(), 0..6),
        seq in any::<u64>(),
    ) {
        let (states, data): (Vec<PresenceState>, Vec<Value>) = participants.into_iter().unzip();
        let encoded = encode_snapshot(SESSION, seq, &states);
        let expected = json!({"sessionId": SESSION, "participants": data});
        prop_assert_eq!(parse(&encoded), ("presence.snapshot".to_owned(), Some(seq), expected));
    }

    #[test]
    fn presence_event_maps_back((state, mut data) in presence(), seq in optional_seq()) {
        data["sessionId"] = json!(SESSION);
        let event = SessionEvent {
            seq: seq.unwrap_or(0),
            kind: Some(Kind::Presence(state)),
            ..SessionEvent::default()
        };
        let encoded = encode_event(SESSION, &event).expect("an event with a kind");
        prop_assert_eq!(parse(&encoded), ("presence.event".to_owned(), seq, data));
    }

    #[test]
    fn lease_state_maps_back((lease, data) in lease(), seq in optional_seq()) {
        let encoded = encode_lease(SESSION, seq, &lease);
        prop_assert_eq!(parse(&encoded), ("control.lease.state".to_owned(), seq, data.clone()));
        let event = SessionEvent {
            seq: seq.unwrap_or(0),
            kind: Some(Kind::Lease(lease)),
            ..SessionEvent::default()
        };
        let encoded = encode_event(SESSION, &event).expect("an event with a kind");
        prop_assert_eq!(parse(&encoded), ("control.lease.state".to_owned(), seq, data));
    }

    #[test]
    fn pong_maps_back(server_time_ms in any_instant()) {
        let expected = json!({"serverTime": wire_time(server_time_ms)});
        prop_assert_eq!(
            parse(&encode_pong(server_time_ms)),
            ("system.pong".to_owned(), None, expected)
        );
    }

    #[test]
    fn error_maps_back(
        code in error_code(),
        message in any::<String>(),
        action in proptest::option::of("[a-z.]{1,24}"),
        retry_after_ms in proptest::option::of(any::<u64>()),
    ) {
        let error = ErrorEnvelope { code, message, action, retry_after_ms };
        let mut expected = json!({
            "code": code.as_str(),
            "message": error.message,
            "retryable": matches!(code, ErrorCode::RateLimited | ErrorCode::Unavailable),
        });
        if let Some(action) = &error.action {
            expected["action"] = json!(action);
        }
        if let Some(after) = retry_after_ms {
            expected["retryAfterMs"] = json!(after);
        }
        prop_assert_eq!(parse(&encode_error(&error)), ("error".to_owned(), None, expected));
    }
}

#[test]
fn an_event_without_a_kind_encodes_to_nothing() {
    assert_eq!(encode_event(SESSION, &SessionEvent::default()), None);
}
