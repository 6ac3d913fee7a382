//! Seed-000 client frames: `decode` and `decode_with` on any text.
//!
//! Besides "never panics", checks that:
//! - `decode` is `decode_with` at the default limits;
//! - every accepted command respects the limits it was checked against, and a
//!   command accepted under tight limits is accepted, unchanged, under looser
//!   ones;
//! - the size limit is exact (a frame of `max_envelope_bytes` is not refused
//!   for its size, one byte less is);
//! - every refusal makes a valid, short `error` envelope;
//! - an accepted command, written back as a client would, decodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meno_bridge::codec::seed000::{decode, decode_with, encode_error};
use meno_bridge::codec::{ClientCommand, ErrorEnvelope, Limits, ProtocolError};
use meno_bridge::time_fmt::{format_unix_ms, parse_unix_ms};
use meno_proto::PresenceStatus;
use serde_json::{json, Map, Value};

/// From tightest to loosest; every field of each is at least the previous one's.
fn ladder() -> [Limits; 4] {
    [
        Limits {
            max_envelope_bytes: 0,
            max_content_bytes: 0,
            max_meta_bytes: 0,
            max_json_depth: 0,
            max_id_len: 0,
        },
        Limits {
            max_envelope_bytes: 256,
            max_content_bytes: 8,
            max_meta_bytes: 16,
            max_json_depth: 3,
            max_id_len: 4,
        },
        Limits::default(),
        Limits {
            max_envelope_bytes: usize::MAX,
            max_content_bytes: usize::MAX,
            max_meta_bytes: usize::MAX,
            max_json_depth: usize::MAX,
            max_id_len: usize::MAX,
        },
    ]
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();

    let by_default = decode(text);
    assert_eq!(by_default, decode_with(text, &Limits::default()));

    let mut accepted: Option<ClientCommand> = None;
    for limits in ladder() {
        let result = decode_with(text, &limits);
        match &result {
            Ok(command) => {
                check_within(command, &limits);
                round_trips(command, &limits);
            }
            Err(error) => check_refusal(error),
        }
        if let Some(before) = &accepted {
            assert_eq!(
                result.as_ref(),
                Ok(before),
                "accepted under tighter limits, not under {limits:?}"
            );
        }
        accepted = result.ok();
    }

    // The size check is exact and comes first.
    let exact = Limits {
        max_envelope_bytes: text.len(),
        ..Limits::default()
    };
    assert!(!matches!(
        decode_with(text, &exact),
        Err(ProtocolError::EnvelopeTooLarge { .. })
    ));
    if let Some(below) = text.len().checked_sub(1) {
        let short = Limits {
            max_envelope_bytes: below,
            ..Limits::default()
        };
        assert_eq!(
            decode_with(text, &short),
            Err(ProtocolError::EnvelopeTooLarge {
                actual: text.len(),
                limit: below
            })
        );
    }
});

fn check_refusal(error: &ProtocolError) {
    let envelope = ErrorEnvelope::from_protocol(error);
    let encoded = encode_error(&envelope);
    let value: Value = serde_json::from_str(&encoded).expect("the error envelope is JSON");
    assert_eq!(value["type"], "error");
    assert_eq!(value["data"]["code"], "InvalidArgument");
    assert_eq!(value["data"]["retryable"], false);
    assert_eq!(value["data"]["message"], error.to_string());
    // Refusals echo a bounded amount of what was sent, never the payload.
    assert!(
        error.to_string().len() <= 1024,
        "message too long: {}",
        error.to_string().len()
    );
}

fn check_within(command: &ClientCommand, limits: &Limits) {
    match command {
        ClientCommand::ChatSend {
            message_id,
            content,
            meta,
            ..
        } => {
            assert!(!message_id.is_empty());
            assert!(message_id.chars().count() <= limits.max_id_len);
            assert!(content.len() <= limits.max_content_bytes);
            if let Some(meta) = meta {
                assert!(compact_len(meta) <= limits.max_meta_bytes);
            }
        }
        ClientCommand::PresenceUpdate { status, extra, .. } => {
            assert!(!matches!(
                status,
                Some(PresenceStatus::Offline | PresenceStatus::Unspecified)
            ));
            if let Some(extra) = extra {
                assert!(compact_len(extra) <= limits.max_meta_bytes);
            }
        }
        ClientCommand::LeaseSet {
            lease_id,
            step_index,
            lease_duration_ms,
        } => {
            assert!(*step_index >= 0);
            assert!(lease_duration_ms.is_none_or(|duration| duration > 0));
            check_lease_id(lease_id.as_deref(), limits);
        }
        ClientCommand::LeaseRelease { lease_id } => check_lease_id(lease_id.as_deref(), limits),
        ClientCommand::AuthRefresh { token } => {
            assert!(token.len() <= 16 * 1024);
        }
        ClientCommand::PresenceHeartbeat { .. } | ClientCommand::Ping => {}
        // Other dialects' commands: seed 000's decoder never makes them.
        other => panic!("seed 000 decoded a command of another dialect: {other:?}"),
    }
}

fn check_lease_id(lease_id: Option<&str>, limits: &Limits) {
    if let Some(id) = lease_id {
        assert!(!id.is_empty());
        assert!(id.chars().count() <= limits.max_id_len);
    }
}

fn compact_len(object: &Map<String, Value>) -> usize {
    serde_json::to_string(object).map_or(usize::MAX, |text| text.len())
}

/// Writes `command` back as a seed-000 client would and decodes it again.
/// Skipped when a timestamp cannot be written back exactly (instants outside
/// the years 0000..=9999 that a client may still reach with an offset).
fn round_trips(command: &ClientCommand, limits: &Limits) {
    let Some(text) = to_client_json(command) else {
        return;
    };
    let unbounded = Limits {
        max_envelope_bytes: usize::MAX,
        ..limits.clone()
    };
    let again = decode_with(&text, &unbounded)
        .unwrap_or_else(|err| panic!("{command:?} written as {text} is refused: {err}"));
    assert!(
        same_command(command, &again),
        "{command:?} came back as {again:?}"
    );
}

fn timestamp(ms: Option<i64>) -> Option<Option<Value>> {
    match ms {
        None => Some(None),
        Some(ms) => {
            let text = format_unix_ms(ms);
            (parse_unix_ms(&text) == Ok(ms)).then(|| Some(Value::String(text)))
        }
    }
}

fn to_client_json(command: &ClientCommand) -> Option<String> {
    let mut payload = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            payload.insert(key.to_owned(), value);
        }
    };
    let action = match command {
        ClientCommand::ChatSend {
            message_id,
            content,
            created_at_ms,
            meta,
        } => {
            put("messageId", Some(json!(message_id)));
            put("content", Some(json!(content)));
            put("createdAt", timestamp(*created_at_ms)?);
            put("meta", meta.clone().map(Value::Object));
            "chat.send"
        }
        ClientCommand::PresenceUpdate {
            status,
            is_typing,
            is_speaking,
            last_seen_ms,
            extra,
        } => {
            let status = status.map(|status| match status {
                PresenceStatus::Online => "online",
                PresenceStatus::Typing => "typing",
                PresenceStatus::Speaking => "speaking",
                PresenceStatus::Muted => "muted",
                PresenceStatus::Reconnecting => "reconnecting",
                PresenceStatus::Offline | PresenceStatus::Unspecified => "offline",
            });
            put("status", status.map(|status| json!(status)));
            put("isTyping", is_typing.map(Value::Bool));
            put("isSpeaking", is_speaking.map(Value::Bool));
            put("lastSeen", timestamp(*last_seen_ms)?);
            put("extra", extra.clone().map(Value::Object));
            "presence.update"
        }
        ClientCommand::PresenceHeartbeat { last_seen_ms } => {
            put("lastSeen", timestamp(*last_seen_ms)?);
            "presence.heartbeat"
        }
        ClientCommand::LeaseSet {
            lease_id,
            step_index,
            lease_duration_ms,
        } => {
            put("leaseId", lease_id.as_ref().map(|id| json!(id)));
            put("stepIndex", Some(json!(step_index)));
            put("leaseDurationMs", lease_duration_ms.map(|ms| json!(ms)));
            "control.lease.set"
        }
        ClientCommand::LeaseRelease { lease_id } => {
            put("leaseId", lease_id.as_ref().map(|id| json!(id)));
            "control.lease.release"
        }
        ClientCommand::Ping => "system.ping",
        ClientCommand::AuthRefresh { token } => {
            put("token", Some(json!(token)));
            "system.auth.refresh"
        }
        // Not seed 000's: nothing to write back.
        _ => return None,
    };
    Some(json!({"action": action, "payload": payload}).to_string())
}

/// Equality, except that floats may differ in the last place: serde_json's
/// default float parser is not guaranteed to round-trip every value exactly.
fn same_command(a: &ClientCommand, b: &ClientCommand) -> bool {
    match (a, b) {
        (
            ClientCommand::ChatSend {
                message_id: id_a,
                content: content_a,
                created_at_ms: at_a,
                meta: meta_a,
            },
            ClientCommand::ChatSend {
                message_id: id_b,
                content: content_b,
                created_at_ms: at_b,
                meta: meta_b,
            },
        ) => id_a == id_b && content_a == content_b && at_a == at_b && same_object(meta_a, meta_b),
        (
            ClientCommand::PresenceUpdate {
                status: s_a,
                is_typing: t_a,
                is_speaking: k_a,
                last_seen_ms: l_a,
                extra: e_a,
            },
            ClientCommand::PresenceUpdate {
                status: s_b,
                is_typing: t_b,
                is_speaking: k_b,
                last_seen_ms: l_b,
                extra: e_b,
            },
        ) => s_a == s_b && t_a == t_b && k_a == k_b && l_a == l_b && same_object(e_a, e_b),
        _ => a == b,
    }
}

fn same_object(a: &Option<Map<String, Value>>, b: &Option<Map<String, Value>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => same_value(&Value::Object(a.clone()), &Value::Object(b.clone())),
        _ => false,
    }
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x == y || ((x - y) / x).abs() < 1e-12,
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_value(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, x)| y.get(key).is_some_and(|y| same_value(x, y)))
        }
        _ => a == b,
    }
}
