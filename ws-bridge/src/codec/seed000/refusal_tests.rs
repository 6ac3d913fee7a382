//! One test per kind of bad client input: each is refused with an error that
//! names the field and what was expected, and never reaches the core.

use meno_common::error::ErrorCode;
use serde_json::{json, Value};

use super::{decode, decode_with};
use crate::codec::{ClientCommand, ErrorEnvelope, Limits, ProtocolError};

fn err(envelope: &str) -> ProtocolError {
    match decode(envelope) {
        Ok(command) => panic!("{envelope} was accepted as {command:?}"),
        Err(err) => err,
    }
}

fn err_json(envelope: Value) -> ProtocolError {
    err(&envelope.to_string())
}

#[test]
fn malformed_json() {
    for text in [
        "",
        "{",
        r#"{"action":"system.ping""#,
        "{action: 'x'}",
        "nul",
    ] {
        let error = err(text);
        assert!(
            matches!(error, ProtocolError::MalformedJson { .. }),
            "{text}: {error:?}"
        );
        assert!(error.to_string().starts_with("malformed JSON: "));
        assert_eq!(error.action(), None);
    }
}

#[test]
fn not_an_object() {
    assert_eq!(err("[]"), ProtocolError::NotAnObject { found: "an array" });
    assert_eq!(
        err(r#""chat.send""#).to_string(),
        "envelope must be a JSON object, got a string"
    );
    assert_eq!(err("null"), ProtocolError::NotAnObject { found: "null" });
}

#[test]
fn missing_action() {
    assert_eq!(err(r#"{"payload":{}}"#), ProtocolError::MissingAction);
    assert_eq!(err(r#"{"action":null}"#), ProtocolError::MissingAction);
    assert_eq!(err("{}").to_string(), "missing `action`");
}

#[test]
fn action_not_a_string() {
    assert_eq!(
        err(r#"{"action":7}"#).to_string(),
        "`action` must be a string, got a number"
    );
}

#[test]
fn unknown_action_is_echoed_clipped() {
    let error = err(r#"{"action":"chat.delete","payload":{}}"#);
    assert_eq!(error.to_string(), r#"unknown action "chat.delete""#);
    assert_eq!(error.action(), Some("chat.delete"));
    let long = "x".repeat(10_000);
    let error = err_json(json!({"action": long}));
    assert_eq!(error.action().map(str::len), Some(64));
}

#[test]
fn missing_payload() {
    for action in ["chat.send", "presence.update", "control.lease.set"] {
        let error = err_json(json!({"action": action}));
        assert_eq!(error, ProtocolError::MissingPayload { action });
        assert_eq!(error.to_string(), "missing `payload`");
        assert_eq!(err_json(json!({"action": action, "payload": null})), error);
    }
}

#[test]
fn payload_not_an_object() {
    assert_eq!(
        err(r#"{"action":"chat.send","payload":"hi"}"#).to_string(),
        "`payload` must be an object, got a string"
    );
    assert_eq!(
        err(r#"{"action":"system.ping","payload":[]}"#),
        ProtocolError::PayloadNotObject {
            action: "system.ping",
            found: "an array"
        }
    );
}

#[test]
fn missing_required_fields() {
    let cases = [
        (
            json!({"action": "chat.send", "payload": {"content": "x"}}),
            "messageId",
        ),
        (
            json!({"action": "chat.send", "payload": {"messageId": "m"}}),
            "content",
        ),
        (
            json!({"action": "chat.send", "payload": {"messageId": "m", "content": null}}),
            "content",
        ),
        (
            json!({"action": "control.lease.set", "payload": {"leaseId": "l"}}),
            "stepIndex",
        ),
    ];
    for (envelope, field) in cases {
        let error = err_json(envelope);
        assert!(matches!(error, ProtocolError::MissingField { field: f, .. } if f == field));
        assert_eq!(error.to_string(), format!("missing `payload.{field}`"));
    }
}

#[test]
fn wrong_field_types() {
    let cases = [
        (
            json!({"action": "chat.send", "payload": {"messageId": "m", "content": 5}}),
            "`payload.content` must be a string, got a number",
        ),
        (
            json!({"action": "chat.send", "payload": {"messageId": true, "content": "x"}}),
            "`payload.messageId` must be a string, got a boolean",
        ),
        (
            json!({"action": "chat.send", "payload": {"messageId": "m", "content": "x", "meta": [1]}}),
            "`payload.meta` must be an object, got an array",
        ),
        (
            json!({"action": "chat.send", "payload": {"messageId": "m", "content": "x", "createdAt": 1_795_416_702_123_i64}}),
            "`payload.createdAt` must be a string, got a number",
        ),
        (
            json!({"action": "presence.update", "payload": {"isTyping": "yes"}}),
            "`payload.isTyping` must be a boolean, got a string",
        ),
        (
            json!({"action": "presence.update", "payload": {"isSpeaking": 1}}),
            "`payload.isSpeaking` must be a boolean, got a number",
        ),
        (
            json!({"action": "presence.update", "payload": {"status": 1}}),
            "`payload.status` must be a string, got a number",
        ),
        (
            json!({"action": "presence.update", "payload": {"extra": "red"}}),
            "`payload.extra` must be an object, got a string",
        ),
        (
            json!({"action": "control.lease.set", "payload": {"stepIndex": "3"}}),
            "`payload.stepIndex` must be an integer, got a string",
        ),
        (
            json!({"action": "control.lease.set", "payload": {"stepIndex": 1.5}}),
            "`payload.stepIndex` must be an integer, got a number with a fraction",
        ),
        (
            json!({"action": "control.lease.set", "payload": {"stepIndex": 1, "leaseDurationMs": "60s"}}),
            "`payload.leaseDurationMs` must be an integer, got a string",
        ),
        (
            json!({"action": "control.lease.release", "payload": {"leaseId": 9}}),
            "`payload.leaseId` must be a string, got a number",
        ),
    ];
    for (envelope, message) in cases {
        let error = err_json(envelope.clone());
        assert!(
            matches!(error, ProtocolError::WrongType { .. }),
            "{envelope}"
        );
        assert_eq!(error.to_string(), message);
        assert_eq!(error.action(), envelope["action"].as_str());
    }
}

#[test]
fn bad_timestamps() {
    for bad in [
        "yesterday",
        "2026-11-23",
        "2026-11-23T06:51:42",
        "2026-02-30T00:00:00Z",
    ] {
        let error = err_json(json!({"action": "presence.heartbeat", "payload": {"lastSeen": bad}}));
        assert!(
            matches!(
                error,
                ProtocolError::InvalidTimestamp {
                    field: "lastSeen",
                    ..
                }
            ),
            "{bad}: {error:?}"
        );
        assert!(error
            .to_string()
            .starts_with("`payload.lastSeen` must be an ISO-8601 timestamp"));
    }
    let error = err_json(
        json!({"action": "chat.send", "payload": {"messageId": "m", "content": "x", "createdAt": "now"}}),
    );
    assert!(matches!(
        error,
        ProtocolError::InvalidTimestamp {
            action: "chat.send",
            field: "createdAt",
            ..
        }
    ));
}

#[test]
fn statuses_clients_may_not_set() {
    let error = err_json(json!({"action": "presence.update", "payload": {"status": "offline"}}));
    assert_eq!(
        error.to_string(),
        r#"`payload.status` "offline" is not one of online, typing, speaking, muted, reconnecting"#
    );
    assert!(matches!(
        err_json(json!({"action": "presence.update", "payload": {"status": "Online"}})),
        ProtocolError::InvalidStatus { .. }
    ));
}

#[test]
fn empty_message_id() {
    let error =
        err_json(json!({"action": "chat.send", "payload": {"messageId": "", "content": "x"}}));
    assert_eq!(error.to_string(), "`payload.messageId` must not be empty");
}

#[test]
fn ids_over_the_limit() {
    let longest = "é".repeat(128);
    assert!(decode(
        &json!({"action": "chat.send", "payload": {"messageId": longest, "content": "x"}})
            .to_string()
    )
    .is_ok());
    let error = err_json(
        json!({"action": "chat.send", "payload": {"messageId": "é".repeat(129), "content": "x"}}),
    );
    assert_eq!(
        error.to_string(),
        "`payload.messageId` is 129 characters, over the limit of 128"
    );
    let error = err_json(
        json!({"action": "control.lease.release", "payload": {"leaseId": "l".repeat(129)}}),
    );
    assert!(matches!(
        error,
        ProtocolError::TooLong {
            field: "leaseId",
            ..
        }
    ));
}

#[test]
fn content_over_the_limit_counts_bytes() {
    let limits = Limits {
        max_content_bytes: 8,
        ..Limits::default()
    };
    let fits = json!({"action": "chat.send", "payload": {"messageId": "m", "content": "éééé"}});
    assert!(decode_with(&fits.to_string(), &limits).is_ok());
    let over = json!({"action": "chat.send", "payload": {"messageId": "m", "content": "ééééx"}});
    assert_eq!(
        decode_with(&over.to_string(), &limits).map_err(|e| e.to_string()),
        Err("`payload.content` is 9 bytes, over the limit of 8".into())
    );
    let default_over = json!({"action": "chat.send", "payload": {"messageId": "m", "content": "a".repeat(16 * 1024 + 1)}});
    assert!(matches!(
        err_json(default_over),
        ProtocolError::TooLong {
            field: "content",
            ..
        }
    ));
}

#[test]
fn meta_and_extra_over_the_limit() {
    let limits = Limits {
        max_meta_bytes: 18,
        ..Limits::default()
    };
    // Compact size is what counts, not the whitespace the client sent.
    let fits = r#"{"action":"chat.send","payload":{"messageId":"m","content":"x","meta":{ "k" :  "0123456789" }}}"#;
    assert!(decode_with(fits, &limits).is_ok());
    let over = json!({"action": "chat.send", "payload": {"messageId": "m", "content": "x", "meta": {"k": "0123456789a"}}});
    assert_eq!(
        decode_with(&over.to_string(), &limits).map_err(|e| e.to_string()),
        Err("`payload.meta` is 19 bytes, over the limit of 18".into())
    );
    let over = json!({"action": "presence.update", "payload": {"extra": {"k": "0123456789a"}}});
    assert!(matches!(
        decode_with(&over.to_string(), &limits),
        Err(ProtocolError::TooLong { field: "extra", .. })
    ));
}

#[test]
fn envelope_over_the_limit() {
    let limits = Limits {
        max_envelope_bytes: 32,
        ..Limits::default()
    };
    assert!(decode_with(r#"{"action":"system.ping"}"#, &limits).is_ok());
    let error = decode_with(
        &format!(r#"{{"action":"system.ping","x":"{}"}}"#, "a".repeat(64)),
        &limits,
    );
    assert_eq!(
        error,
        Err(ProtocolError::EnvelopeTooLarge {
            actual: 95,
            limit: 32
        })
    );
}

#[test]
fn nesting_over_the_limit() {
    let nested = |depth: usize| {
        format!(
            r#"{{"action":"system.ping","payload":{{"x":{}1{}}}}}"#,
            "[".repeat(depth - 2),
            "]".repeat(depth - 2)
        )
    };
    assert_eq!(decode(&nested(16)), Ok(ClientCommand::Ping));
    assert_eq!(
        decode(&nested(17)),
        Err(ProtocolError::TooDeep { limit: 16 })
    );
    // Brackets inside strings are text, not nesting.
    let in_string = format!(
        r#"{{"action":"system.ping","payload":{{"x":"{}\"["}}}}"#,
        "[".repeat(100)
    );
    assert_eq!(decode(&in_string), Ok(ClientCommand::Ping));
    // Far beyond serde_json's own recursion limit: refused without recursing.
    assert_eq!(
        decode(&"[".repeat(60_000)),
        Err(ProtocolError::TooDeep { limit: 16 })
    );
}

#[test]
fn negative_step_index() {
    let error = err_json(json!({"action": "control.lease.set", "payload": {"stepIndex": -1}}));
    assert_eq!(
        error.to_string(),
        "`payload.stepIndex` must be between 0 and 9007199254740991 (2^53 - 1), got -1"
    );
    let error =
        err_json(json!({"action": "control.lease.set", "payload": {"stepIndex": u64::MAX}}));
    assert!(matches!(
        error,
        ProtocolError::OutOfRange {
            field: "stepIndex",
            ..
        }
    ));
    let error = err(r#"{"action":"control.lease.set","payload":{"stepIndex":1e300}}"#);
    assert!(matches!(
        error,
        ProtocolError::OutOfRange {
            field: "stepIndex",
            ..
        }
    ));
}

#[test]
fn non_positive_lease_duration() {
    for bad in [0, -5] {
        let error = err_json(
            json!({"action": "control.lease.set", "payload": {"stepIndex": 1, "leaseDurationMs": bad}}),
        );
        assert_eq!(
            error.to_string(),
            format!("`payload.leaseDurationMs` must be positive, got {bad}")
        );
    }
}

#[test]
fn every_refusal_is_invalid_argument() {
    let error = err_json(json!({"action": "control.lease.set", "payload": {"stepIndex": -1}}));
    let envelope = ErrorEnvelope::from_protocol(&error);
    assert_eq!(envelope.code, ErrorCode::InvalidArgument);
    assert_eq!(envelope.action.as_deref(), Some("control.lease.set"));
}
