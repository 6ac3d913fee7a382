//! Golden tests for NexusChat server envelopes: each event the seed names,
//! compared with the seed's example with its placeholders filled in from the
//! inputs, and our READ, ROOM_JOINED, ROOM_LEFT and ERROR.

use std::time::Duration;

use meno_common::error::{CoreError, ErrorCode};
use meno_proto::{ChatMessage, PresenceState, PresenceStatus, ReadPosition, Role};
use serde_json::{json, Value};

use super::{
    decode, encode_call_end, encode_call_rejected, encode_error, encode_history_page,
    encode_new_message, encode_presence, encode_read, encode_reads, encode_room_joined,
    encode_room_left, encode_signal_ice, encode_signal_sdp, encode_typing, SdpType,
};
use crate::codec::ErrorEnvelope;

const TRACE: &str = "5f0c2a9e-3b1d-4c7a-9e2f-8d6b4a1c0e37";
const ROOM: &str = "2b7e1516-28ae-4d2a-a6f7-15880949cf4f";
const USER: &str = "0d4c6a3e-9b1f-4f3a-8c2e-7a5b9d1e6f20";
const PEER: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
const MESSAGE_ID: &str = "0193a4c2-7f00-7abc-8def-0123456789ab";
/// 2026-11-23T06:51:42.123Z
const T: i64 = 1_795_416_702_123;
const T_WIRE: &str = "2026-11-23T06:51:42.123Z";

fn parsed(text: &str) -> Value {
    match serde_json::from_str(text) {
        Ok(value) => value,
        Err(err) => panic!("not JSON ({err}): {text}"),
    }
}

/// The seed's envelope around `data`.
fn envelope(event: &str, data: Value) -> Value {
    json!({"event": event, "traceId": TRACE, "data": data})
}

fn message(kind: &str, content: &str, meta_json: &str) -> ChatMessage {
    ChatMessage {
        id: MESSAGE_ID.into(),
        client_ref: "9a1f3c5e-7b2d-4e6f-8a0c-1d3e5f7a9b2c".into(),
        seq: 42,
        sender_id: USER.into(),
        sender_name: "Ada".into(),
        sender_role: Role::Student.into(),
        kind: kind.into(),
        content: content.into(),
        meta_json: meta_json.into(),
        created_at_ms: T,
        message_kind: 0,
    }
}

fn member(user_id: &str, name: &str, status: PresenceStatus) -> PresenceState {
    PresenceState {
        participant_id: user_id.into(),
        name: name.into(),
        role: Role::Student.into(),
        status: status.into(),
        is_typing: false,
        is_speaking: false,
        color: "#1e88e5".into(),
        last_seen_ms: T,
        extra_json: r#"{"device":"web"}"#.into(),
    }
}

#[test]
fn new_message_text_in_the_seeds_shape() {
    let text = encode_new_message(TRACE, ROOM, &message("text", "Hello, \"room\"\n🎓", ""));
    assert!(
        text.starts_with(&format!(
            r#"{{"event":"NEW_MESSAGE","traceId":"{TRACE}","data":{{"id":"#
        )),
        "{text}"
    );
    assert_eq!(
        parsed(&text),
        envelope(
            "NEW_MESSAGE",
            json!({
                "id": MESSAGE_ID,
                "roomId": ROOM,
                "senderId": USER,
                "type": "TEXT",
                "contentText": "Hello, \"room\"\n🎓",
                "contentMeta": null,
                "createdAt": T_WIRE
            })
        )
    );
}

#[test]
fn new_message_each_media_type_with_its_meta() {
    for (kind, name) in [
        ("image", "IMAGE"),
        ("video", "VIDEO"),
        ("audio", "AUDIO"),
        ("file", "FILE"),
    ] {
        let meta = r#"{"url":"https://cdn.example.com/1.bin","width":640,"height":480}"#;
        let data = &parsed(&encode_new_message(TRACE, ROOM, &message(kind, "", meta)))["data"];
        assert_eq!(data["type"], json!(name));
        assert_eq!(data["contentText"], Value::Null, "no caption");
        assert_eq!(
            data["contentMeta"],
            json!({"url": "https://cdn.example.com/1.bin", "width": 640, "height": 480})
        );
        let captioned = parsed(&encode_new_message(
            TRACE,
            ROOM,
            &message(kind, "look", meta),
        ));
        assert_eq!(captioned["data"]["contentText"], json!("look"));
    }
}

#[test]
fn seed_000_chat_and_unknown_kinds_show_as_text() {
    for kind in ["", "text", "TEXT", "poll"] {
        let data = &parsed(&encode_new_message(TRACE, ROOM, &message(kind, "", "")))["data"];
        assert_eq!(data["type"], json!("TEXT"), "{kind:?}");
        // TEXT always has its text, even the empty text a seed-000 client may send.
        assert_eq!(data["contentText"], json!(""));
    }
}

#[test]
fn empty_or_corrupt_meta_is_null() {
    for meta_json in ["", "{}", "[1]", "{\"a\":", r#"{"a":"\ud800"}"#] {
        let data = &parsed(&encode_new_message(
            TRACE,
            ROOM,
            &message("text", "x", meta_json),
        ))["data"];
        assert_eq!(data["contentMeta"], Value::Null, "{meta_json}");
    }
}

#[test]
fn typing() {
    for is_typing in [true, false] {
        assert_eq!(
            parsed(&encode_typing(TRACE, ROOM, USER, is_typing)),
            envelope(
                "TYPING",
                json!({"roomId": ROOM, "userId": USER, "isTyping": is_typing})
            )
        );
    }
}

#[test]
fn presence_online_and_offline() {
    assert_eq!(
        parsed(&encode_presence(
            TRACE,
            &member(USER, "Ada Lovelace", PresenceStatus::Online)
        )),
        envelope(
            "PRESENCE",
            json!({"userId": USER, "userName": "Ada Lovelace", "status": "online"})
        )
    );
    for (status, wire) in [
        (PresenceStatus::Typing, "online"),
        (PresenceStatus::Speaking, "online"),
        (PresenceStatus::Muted, "online"),
        (PresenceStatus::Reconnecting, "online"),
        (PresenceStatus::Offline, "offline"),
        (PresenceStatus::Unspecified, "offline"),
    ] {
        let text = encode_presence(TRACE, &member(USER, "Ada", status));
        assert_eq!(parsed(&text)["data"]["status"], json!(wire), "{status:?}");
    }
    let unknown = PresenceState {
        status: 99,
        ..member(USER, "Ada", PresenceStatus::Online)
    };
    assert_eq!(
        parsed(&encode_presence(TRACE, &unknown))["data"]["status"],
        json!("offline")
    );
}

#[test]
fn read() {
    assert_eq!(
        parsed(&encode_read(TRACE, ROOM, USER, MESSAGE_ID, T)),
        envelope(
            "READ",
            json!({"roomId": ROOM, "userId": USER, "messageId": MESSAGE_ID, "readAt": T_WIRE})
        )
    );
}

#[test]
fn room_joined_with_members_and_last_messages_in_the_order_given() {
    let newest = ChatMessage {
        id: "0193a4c2-7f00-7abc-8def-0123456789ff".into(),
        created_at_ms: T + 1,
        ..message("image", "", r#"{"url":"https://x/y.png"}"#)
    };
    let older = message("text", "hi", "");
    let text = encode_room_joined(
        TRACE,
        ROOM,
        &[
            member(USER, "Ada", PresenceStatus::Online),
            member(PEER, "Grace", PresenceStatus::Typing),
        ],
        &[newest.clone(), older.clone()],
    );
    let message_data =
        |message: &ChatMessage| parsed(&encode_new_message(TRACE, ROOM, message))["data"].clone();
    assert_eq!(
        parsed(&text),
        envelope(
            "ROOM_JOINED",
            json!({
                "roomId": ROOM,
                "members": [
                    {"userId": USER, "userName": "Ada", "status": "online"},
                    {"userId": PEER, "userName": "Grace", "status": "online"}
                ],
                "lastMessages": [message_data(&newest), message_data(&older)]
            })
        )
    );
    assert_eq!(
        parsed(&encode_room_joined(TRACE, ROOM, &[], &[])),
        envelope(
            "ROOM_JOINED",
            json!({"roomId": ROOM, "members": [], "lastMessages": []})
        )
    );
}

#[test]
fn room_left() {
    assert_eq!(
        parsed(&encode_room_left(TRACE, ROOM)),
        envelope("ROOM_LEFT", json!({"roomId": ROOM}))
    );
}

#[test]
fn error_from_a_codec_refusal_names_the_event() {
    let refusal = decode(&json!({"event": "ACK", "traceId": TRACE, "data": {}}).to_string())
        .expect_err("no messageId");
    let trace_id = refusal.trace_id.clone().expect("kept");
    assert_eq!(
        parsed(&encode_error(&trace_id, &refusal.envelope())),
        envelope(
            "ERROR",
            json!({
                "code": "InvalidArgument",
                "message": "missing `data.messageId`",
                "retryable": false,
                "event": "ACK"
            })
        )
    );
}

#[test]
fn error_from_the_core_keeps_code_and_retry_hint() {
    let mut err = CoreError::new(ErrorCode::RateLimited, "slow down");
    err.retry_after = Some(Duration::from_millis(1500));
    assert_eq!(
        parsed(&encode_error(
            TRACE,
            &ErrorEnvelope::from_core(&err, Some("SEND_MSG"))
        )),
        envelope(
            "ERROR",
            json!({
                "code": "RateLimited",
                "message": "slow down",
                "retryable": true,
                "retryAfterMs": 1500,
                "event": "SEND_MSG"
            })
        )
    );
    let internal = CoreError::internal("redb: table corrupt");
    assert_eq!(
        parsed(&encode_error(
            TRACE,
            &ErrorEnvelope::from_core(&internal, None)
        )),
        envelope(
            "ERROR",
            json!({"code": "Internal", "message": "internal error", "retryable": false})
        )
    );
}

#[test]
fn signal_sdp_relayed() {
    for sdp_type in [SdpType::Offer, SdpType::Answer, SdpType::Rollback] {
        assert_eq!(
            parsed(&encode_signal_sdp(TRACE, USER, PEER, sdp_type, "v=0\r\n")),
            envelope(
                "SIGNAL_SDP",
                json!({"senderId": USER, "targetId": PEER, "type": sdp_type.wire_name(), "sdp": "v=0\r\n"})
            )
        );
    }
}

#[test]
fn signal_ice_relayed() {
    let candidate = "candidate:842163049 1 udp 1677729535 203.0.113.7 3478 typ srflx";
    assert_eq!(
        parsed(&encode_signal_ice(
            TRACE,
            USER,
            PEER,
            candidate,
            Some("0"),
            0
        )),
        envelope(
            "SIGNAL_ICE",
            json!({"senderId": USER, "targetId": PEER, "candidate": candidate, "sdpMid": "0", "sdpMLineIndex": 0})
        )
    );
    assert_eq!(
        parsed(&encode_signal_ice(TRACE, USER, PEER, candidate, None, 1)),
        envelope(
            "SIGNAL_ICE",
            json!({"senderId": USER, "targetId": PEER, "candidate": candidate, "sdpMLineIndex": 1})
        )
    );
}

#[test]
fn call_end_relayed_with_its_sender() {
    assert_eq!(
        parsed(&encode_call_end(TRACE, USER)),
        envelope("CALL_END", json!({"senderId": USER}))
    );
}

#[test]
fn call_rejected_busy() {
    assert_eq!(
        parsed(&encode_call_rejected(
            TRACE,
            USER,
            PEER,
            "the user is in another call"
        )),
        envelope(
            "CALL_REJECTED",
            json!({
                "callerId": USER,
                "targetId": PEER,
                "status": "busy",
                "reason": "the user is in another call"
            })
        )
    );
}

#[test]
fn history_page_as_the_seed_shows_it() {
    let page = encode_history_page(ROOM, &[message("text", "string", "")]);
    // The seed's example; only `createdAt` differs: ours carries its zone
    // and milliseconds (`2024-01-01T00:00:00` in the seed).
    let mut expected = json!([{
        "id": "uuid",
        "roomId": "uuid",
        "senderId": "uuid",
        "type": "TEXT",
        "contentText": "string",
        "contentMeta": null,
        "createdAt": "2024-01-01T00:00:00",
        "editedAt": null
    }]);
    expected[0]["id"] = json!(MESSAGE_ID);
    expected[0]["roomId"] = json!(ROOM);
    expected[0]["senderId"] = json!(USER);
    expected[0]["createdAt"] = json!(T_WIRE);
    assert_eq!(parsed(&page), expected);
    // Key order as the seed writes it, `editedAt` last.
    assert!(page.ends_with(&format!(r#""createdAt":"{T_WIRE}","editedAt":null}}]"#)));
}

#[test]
fn history_page_keeps_the_order_given_and_meta() {
    let newest = ChatMessage {
        id: "m-2".into(),
        ..message("file", "", r#"{"url":"https://x/a.pdf","name":"a.pdf"}"#)
    };
    let page = parsed(&encode_history_page(ROOM, &[newest, message("", "hi", "")]));
    assert_eq!(page[0]["id"], json!("m-2"));
    assert_eq!(page[0]["type"], json!("FILE"));
    assert_eq!(page[0]["contentText"], Value::Null);
    assert_eq!(
        page[0]["contentMeta"],
        json!({"url": "https://x/a.pdf", "name": "a.pdf"})
    );
    assert_eq!(page[1]["id"], json!(MESSAGE_ID));
    assert_eq!(page[1]["editedAt"], Value::Null);
    assert_eq!(encode_history_page(ROOM, &[]), "[]");
}

#[test]
fn reads_body_lists_each_position_in_the_order_given_without_seq() {
    let position = |user_id: &str, message_id: &str, read_at_ms: i64| ReadPosition {
        user_id: user_id.into(),
        message_id: message_id.into(),
        seq: 42,
        read_at_ms,
    };
    let body = encode_reads(&[
        position(USER, MESSAGE_ID, T),
        position(PEER, "m-1", 1_795_416_702_000),
    ]);
    assert_eq!(
        body,
        format!(
            r#"[{{"userId":"{USER}","messageId":"{MESSAGE_ID}","readAt":"{T_WIRE}"}},{{"userId":"{PEER}","messageId":"m-1","readAt":"2026-11-23T06:51:42.000Z"}}]"#
        )
    );
    assert_eq!(encode_reads(&[]), "[]");
}
