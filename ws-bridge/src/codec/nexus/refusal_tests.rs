//! One test per kind of bad client input: each is refused with an error that
//! names the event and the field and says what was expected, and keeps the
//! client's `traceId` for the `ERROR` that answers it.

use meno_common::error::ErrorCode;
use meno_common::text::TextError;
use serde_json::{json, Value};

use super::{decode, decode_with, NexusError};
use crate::codec::Limits;

const TRACE: &str = "5f0c2a9e-3b1d-4c7a-9e2f-8d6b4a1c0e37";
const ROOM: &str = "2b7e1516-28ae-4d2a-a6f7-15880949cf4f";

fn err(text: &str) -> NexusError {
    match decode(text) {
        Ok(request) => panic!("{text} was accepted as {request:?}"),
        Err(refusal) => refusal.error,
    }
}

/// Refuses `data` of `event`, checking that the trace id came back.
fn refused(event: &str, data: Value) -> NexusError {
    let text = json!({"event": event, "traceId": TRACE, "data": data}).to_string();
    match decode(&text) {
        Ok(request) => panic!("{text} was accepted as {request:?}"),
        Err(refusal) => {
            assert_eq!(refusal.trace_id.as_deref(), Some(TRACE), "{text}");
            refusal.error
        }
    }
}

fn message(event: &str, data: Value) -> String {
    refused(event, data).to_string()
}

#[test]
fn frames_that_are_not_envelopes_carry_no_trace_id() {
    for text in ["", "{", r#"{"event":"ACK""#, "{event: 'ACK'}"] {
        let refusal = decode(text).expect_err(text);
        assert!(
            matches!(refusal.error, NexusError::MalformedJson { .. }),
            "{text}"
        );
        assert_eq!(refusal.trace_id, None);
        assert_eq!(refusal.error.event(), None);
    }
    assert_eq!(err("[]"), NexusError::NotAnObject { found: "an array" });
    assert_eq!(
        err(r#""SEND_MSG""#).to_string(),
        "envelope must be a JSON object, got a string"
    );
}

#[test]
fn size_and_depth_are_checked_before_parsing() {
    let limits = Limits {
        max_envelope_bytes: 64,
        max_json_depth: 3,
        ..Limits::default()
    };
    let big = format!(
        r#"{{"event":"ACK","data":{{"messageId":"{}"}}}}"#,
        "m".repeat(64)
    );
    assert_eq!(
        decode_with(&big, &limits).expect_err("too big").error,
        NexusError::EnvelopeTooLarge {
            actual: big.len(),
            limit: 64
        }
    );
    let deep = r#"{"event":"ACK","data":{"a":[[1]]}}"#;
    let refusal = decode_with(deep, &limits).expect_err("too deep");
    assert_eq!(refusal.error, NexusError::TooDeep { limit: 3 });
    assert_eq!(refusal.error.to_string(), "JSON nests deeper than 3 levels");
}

#[test]
fn event_missing_not_a_string_or_unknown() {
    assert_eq!(err(r#"{"data":{}}"#), NexusError::MissingEvent);
    assert_eq!(err(r#"{"event":null}"#).to_string(), "missing `event`");
    assert_eq!(
        err(r#"{"event":7}"#).to_string(),
        "`event` must be a string, got a number"
    );
    let unknown = refused("NEW_MESSAGE", json!({}));
    assert_eq!(
        unknown.to_string(),
        "unknown event \"NEW_MESSAGE\": expected SEND_MSG, TYPING, ACK, JOIN_ROOM, LEAVE_ROOM, SIGNAL_SDP, SIGNAL_ICE or CALL_END"
    );
    assert_eq!(unknown.event(), Some("NEW_MESSAGE"));
    // Event names are case-sensitive, as the seed writes them.
    assert!(matches!(
        refused("send_msg", json!({})),
        NexusError::UnknownEvent { .. }
    ));
    let long = "E".repeat(1000);
    assert_eq!(
        refused(&long, json!({})),
        NexusError::UnknownEvent {
            event: "E".repeat(64)
        }
    );
}

#[test]
fn data_missing_or_not_an_object() {
    for text in [r#"{"event":"TYPING"}"#, r#"{"event":"TYPING","data":null}"#] {
        assert_eq!(err(text), NexusError::MissingData { event: "TYPING" });
    }
    let error = err(r#"{"event":"ACK","data":"m-1"}"#);
    assert_eq!(error.to_string(), "`data` must be an object, got a string");
    assert_eq!(error.event(), Some("ACK"));
}

#[test]
fn every_required_field_is_named_when_missing() {
    for (event, data, field) in [
        (
            "SEND_MSG",
            json!({"type": "TEXT", "contentText": "x"}),
            "roomId",
        ),
        (
            "SEND_MSG",
            json!({"roomId": ROOM, "contentText": "x"}),
            "type",
        ),
        ("TYPING", json!({"isTyping": true}), "roomId"),
        (
            "TYPING",
            json!({"roomId": ROOM, "isTyping": null}),
            "isTyping",
        ),
        ("ACK", json!({}), "messageId"),
        ("JOIN_ROOM", json!({"room": ROOM}), "roomId"),
        ("LEAVE_ROOM", json!({"roomId": null}), "roomId"),
        (
            "SIGNAL_SDP",
            json!({"type": "offer", "sdp": "v=0"}),
            "targetId",
        ),
        ("SIGNAL_SDP", json!({"targetId": "u", "sdp": "v=0"}), "type"),
        (
            "SIGNAL_SDP",
            json!({"targetId": "u", "type": "offer"}),
            "sdp",
        ),
        (
            "SIGNAL_ICE",
            json!({"targetId": "u", "sdpMLineIndex": 0}),
            "candidate",
        ),
        (
            "SIGNAL_ICE",
            json!({"targetId": "u", "candidate": "c"}),
            "sdpMLineIndex",
        ),
    ] {
        let error = refused(event, data);
        assert_eq!(error, NexusError::MissingField { event, field }, "{event}");
        assert_eq!(error.to_string(), format!("missing `data.{field}`"));
        assert_eq!(error.event(), Some(event));
    }
}

#[test]
fn wrong_types_name_the_field_and_what_was_expected() {
    for (event, data, expected) in [
        (
            "SEND_MSG",
            json!({"roomId": 7, "type": "TEXT"}),
            "`data.roomId` must be a string, got a number",
        ),
        (
            "SEND_MSG",
            json!({"roomId": ROOM, "type": ["TEXT"]}),
            "`data.type` must be a string, got an array",
        ),
        (
            "SEND_MSG",
            json!({"roomId": ROOM, "type": "TEXT", "contentText": 1}),
            "`data.contentText` must be a string, got a number",
        ),
        (
            "SEND_MSG",
            json!({"roomId": ROOM, "type": "IMAGE", "contentMeta": "https://x/y.png"}),
            "`data.contentMeta` must be an object, got a string",
        ),
        (
            "SEND_MSG",
            json!({"roomId": ROOM, "type": "IMAGE", "contentMeta": {"url": ["https://x/y"]}}),
            "`data.contentMeta.url` must be a string, got an array",
        ),
        (
            "SEND_MSG",
            json!({"roomId": ROOM, "type": "TEXT", "contentText": "x", "clientRef": 5}),
            "`data.clientRef` must be a string, got a number",
        ),
        (
            "TYPING",
            json!({"roomId": ROOM, "isTyping": "true"}),
            "`data.isTyping` must be a boolean, got a string",
        ),
        (
            "ACK",
            json!({"messageId": {"id": "m"}}),
            "`data.messageId` must be a string, got an object",
        ),
        (
            "SIGNAL_ICE",
            json!({"targetId": "u", "candidate": "c", "sdpMid": 0, "sdpMLineIndex": 0}),
            "`data.sdpMid` must be a string, got a number",
        ),
        (
            "SIGNAL_ICE",
            json!({"targetId": "u", "candidate": "c", "sdpMLineIndex": "0"}),
            "`data.sdpMLineIndex` must be an integer, got a string",
        ),
    ] {
        assert_eq!(message(event, data), expected);
    }
}

#[test]
fn type_must_be_one_of_the_seeds_names() {
    for name in ["text", "GIF", "", "Text"] {
        assert_eq!(
            message(
                "SEND_MSG",
                json!({"roomId": ROOM, "type": name, "contentText": "x"})
            ),
            format!("`data.type` {name:?} is not one of TEXT, IMAGE, VIDEO, AUDIO, FILE")
        );
    }
    assert_eq!(
        message(
            "SIGNAL_SDP",
            json!({"targetId": "u", "type": "pranswer", "sdp": "v=0"})
        ),
        "`data.type` \"pranswer\" is not one of offer, answer, rollback"
    );
}

#[test]
fn text_needs_non_empty_content_text() {
    for data in [
        json!({"roomId": ROOM, "type": "TEXT"}),
        json!({"roomId": ROOM, "type": "TEXT", "contentText": null}),
        json!({"roomId": ROOM, "type": "TEXT", "contentText": ""}),
        json!({"roomId": ROOM, "type": "TEXT", "contentMeta": {"url": "https://x/y"}}),
    ] {
        let error = refused("SEND_MSG", data);
        assert_eq!(
            error,
            NexusError::RequiredForType {
                event: "SEND_MSG",
                field: "contentText",
                message_type: "TEXT"
            }
        );
        assert_eq!(
            error.to_string(),
            "`data.contentText` is required for type TEXT"
        );
    }
}

#[test]
fn media_needs_content_meta_with_an_http_url() {
    for name in ["IMAGE", "VIDEO", "AUDIO", "FILE"] {
        assert_eq!(
            message(
                "SEND_MSG",
                json!({"roomId": ROOM, "type": name, "contentText": "x"})
            ),
            format!("`data.contentMeta` is required for type {name}")
        );
        assert_eq!(
            message(
                "SEND_MSG",
                json!({"roomId": ROOM, "type": name, "contentMeta": {"size": 3}})
            ),
            format!("`data.contentMeta.url` is required for type {name}")
        );
    }
    for url in [
        "",
        "cdn.example.com/a.png",
        "ftp://cdn.example.com/a.png",
        "javascript://alert(1)//",
        "data:image/png;base64,AAAA",
        "https://",
        "https:///a.png",
        "https://cdn.example.com/a b.png",
        "https://cdn.example.com/\n",
    ] {
        let error = refused(
            "SEND_MSG",
            json!({"roomId": ROOM, "type": "IMAGE", "contentMeta": {"url": url}}),
        );
        assert_eq!(
            error,
            NexusError::InvalidUrl {
                event: "SEND_MSG",
                field: "contentMeta.url"
            },
            "{url:?}"
        );
    }
    assert_eq!(
        refused(
            "SEND_MSG",
            json!({"roomId": ROOM, "type": "FILE", "contentMeta": {"url": "ftp://x/y"}})
        )
        .to_string(),
        "`data.contentMeta.url` must be an http:// or https:// URL with a host"
    );
}

#[test]
fn ids_follow_the_id_rule_and_length_limit() {
    type Data = fn(&str) -> Value;
    let cases: [(&str, &str, Data); 8] = [
        (
            "SEND_MSG",
            "roomId",
            |id: &str| json!({"roomId": id, "type": "TEXT", "contentText": "x"}),
        ),
        (
            "SEND_MSG",
            "clientRef",
            |id: &str| json!({"roomId": ROOM, "type": "TEXT", "contentText": "x", "clientRef": id}),
        ),
        (
            "TYPING",
            "roomId",
            |id: &str| json!({"roomId": id, "isTyping": true}),
        ),
        ("ACK", "messageId", |id: &str| json!({"messageId": id})),
        ("JOIN_ROOM", "roomId", |id: &str| json!({"roomId": id})),
        ("LEAVE_ROOM", "roomId", |id: &str| json!({"roomId": id})),
        (
            "SIGNAL_SDP",
            "targetId",
            |id: &str| json!({"targetId": id, "type": "offer", "sdp": "v=0"}),
        ),
        (
            "SIGNAL_ICE",
            "targetId",
            |id: &str| json!({"targetId": id, "candidate": "c", "sdpMLineIndex": 0}),
        ),
    ];
    for (event, field, data) in cases {
        assert_eq!(
            refused(event, data(&"é".repeat(129))),
            NexusError::TooLong {
                event,
                field,
                actual: 129,
                limit: 128,
                unit: "characters"
            },
            "{event}.{field}"
        );
        assert_eq!(
            refused(event, data("a\u{0}b")),
            NexusError::InvalidText {
                event,
                field,
                why: TextError::ControlChars
            }
        );
        assert_eq!(
            refused(event, data("a\u{202E}b")).to_string(),
            format!("`data.{field}` contains bidirectional control characters")
        );
        if field != "clientRef" {
            assert_eq!(
                refused(event, data("")).to_string(),
                format!("`data.{field}` must not be empty")
            );
        }
        // The longest allowed id is accepted.
        let longest = "é".repeat(128);
        assert!(decode(&json!({"event": event, "data": data(&longest)}).to_string()).is_ok());
    }
}

#[test]
fn content_sizes_are_seed_000s() {
    let limits = Limits {
        max_content_bytes: 8,
        max_meta_bytes: 24,
        ..Limits::default()
    };
    let refuse = |data: Value| {
        let text = json!({"event": "SEND_MSG", "data": data}).to_string();
        decode_with(&text, &limits)
            .expect_err(&text)
            .error
            .to_string()
    };
    assert_eq!(
        refuse(json!({"roomId": ROOM, "type": "TEXT", "contentText": "ééééé"})),
        "`data.contentText` is 10 bytes, over the limit of 8"
    );
    assert_eq!(
        refuse(
            json!({"roomId": ROOM, "type": "IMAGE", "contentMeta": {"url": "https://cdn.example.com/"}})
        ),
        "`data.contentMeta` is 34 bytes, over the limit of 24"
    );
    let sdp = json!({"event": "SIGNAL_SDP", "data": {"targetId": "u", "type": "offer", "sdp": "v=0 123456"}});
    assert_eq!(
        decode_with(&sdp.to_string(), &limits)
            .expect_err("sdp")
            .error
            .to_string(),
        "`data.sdp` is 10 bytes, over the limit of 8"
    );
}

#[test]
fn signaling_numbers_and_empties() {
    for index in [json!(-1), json!(65536), json!(1.5), json!(1e10)] {
        let error = refused(
            "SIGNAL_ICE",
            json!({"targetId": "u", "candidate": "c", "sdpMLineIndex": index}),
        );
        assert!(
            matches!(
                error,
                NexusError::OutOfRange {
                    field: "sdpMLineIndex",
                    ..
                }
            ),
            "{index}"
        );
        assert_eq!(
            error.to_string(),
            format!("`data.sdpMLineIndex` must be an integer from 0 to 65535, got {index}")
        );
    }
    assert_eq!(
        message(
            "SIGNAL_SDP",
            json!({"targetId": "u", "type": "offer", "sdp": ""})
        ),
        "`data.sdp` must not be empty"
    );
    assert_eq!(
        message(
            "SIGNAL_ICE",
            json!({"targetId": "u", "candidate": "", "sdpMLineIndex": 0})
        ),
        "`data.candidate` must not be empty"
    );
}

#[test]
fn fields_are_checked_in_the_seeds_order() {
    // Both roomId and type are wrong: roomId, the seed's first field, is named.
    assert!(matches!(
        refused("SEND_MSG", json!({"roomId": 1, "type": 2})),
        NexusError::WrongType {
            field: "roomId",
            ..
        }
    ));
}

#[test]
fn refusals_become_invalid_argument_error_envelopes_with_the_event() {
    let refusal =
        decode(&json!({"event": "TYPING", "traceId": TRACE, "data": {"roomId": ROOM}}).to_string())
            .expect_err("no isTyping");
    let envelope = refusal.envelope();
    assert_eq!(envelope.code, ErrorCode::InvalidArgument);
    assert_eq!(envelope.message, "missing `data.isTyping`");
    assert_eq!(envelope.action.as_deref(), Some("TYPING"));
    assert_eq!(envelope.retry_after_ms, None);
    assert_eq!(err("{}").envelope().action, None);
}
