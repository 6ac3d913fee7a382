//! Typed message kinds: normalised for every caller, checked per kind, and
//! seed 000's untyped chat left as it was.

use meno_proto::{Actor, MessageKind, SendChatRequest};

use super::chat_send;
use crate::error::ErrorCode;

fn send(kind: &str, message_kind: MessageKind, content: &str, meta: &str) -> SendChatRequest {
    SendChatRequest {
        actor: Some(Actor {
            participant_id: "ann".to_owned(),
            ..Actor::default()
        }),
        kind: kind.to_owned(),
        message_kind: message_kind as i32,
        content: content.to_owned(),
        meta_json: meta.to_owned(),
        ..SendChatRequest::default()
    }
}

fn refused(mut request: SendChatRequest) -> String {
    let err = chat_send(&mut request).expect_err("refused");
    assert_eq!(err.code, ErrorCode::InvalidArgument);
    err.message
}

#[test]
fn a_typed_kind_wins_and_known_string_kinds_are_lower_cased() {
    let mut typed = send("sticker", MessageKind::Text, "hi", "");
    chat_send(&mut typed).expect("valid");
    assert_eq!(typed.kind, "text");
    let mut shouted = send(
        "IMAGE",
        MessageKind::Unspecified,
        "",
        r#"{"url":"https://x.io/a.png"}"#,
    );
    chat_send(&mut shouted).expect("valid");
    assert_eq!(shouted.kind, "image");
    let mut own = send("Sticker", MessageKind::Unspecified, "", "");
    chat_send(&mut own).expect("a backend's own kind stays allowed");
    assert_eq!(own.kind, "Sticker");
}

#[test]
fn text_needs_content_but_seed_000s_untyped_chat_keeps_its_rules() {
    assert!(refused(send("", MessageKind::Text, " ", "")).contains("content"));
    assert!(refused(send("TEXT", MessageKind::Unspecified, "", "")).contains("content"));
    let mut untyped = send("", MessageKind::Unspecified, "", r#"{"tags":[]}"#);
    chat_send(&mut untyped).expect("seed 000 may send meta alone");
    assert_eq!(untyped.kind, "", "the actor stores it as text");
}

#[test]
fn media_kinds_need_an_http_url_with_a_host() {
    for good in [
        "https://cdn.example.com/v.mp4",
        "HTTP://example.com",
        "https://user@example.com:8443/a?b#c",
        "http://[::1]:8080/x",
    ] {
        let meta = serde_json::json!({ "url": good, "width": 3 }).to_string();
        let mut request = send("", MessageKind::Video, "", &meta);
        chat_send(&mut request).unwrap_or_else(|err| panic!("{good}: {err:?}"));
    }
    for (meta, why) in [
        ("", "meta.url"),
        (r#"{"size":1}"#, "meta.url"),
        (r#"{"url":7}"#, "meta.url"),
        (r#"{"url":"ftp://example.com/f"}"#, "meta.url"),
        (r#"{"url":"https://"}"#, "meta.url"),
        (r#"{"url":"https:///path"}"#, "meta.url"),
        (r#"{"url":"https://exa mple.com"}"#, "meta.url"),
        (r#"{"url":"https://example.com/\u0007"}"#, "meta.url"),
        (r#"["https://example.com"]"#, "meta"),
    ] {
        let message = refused(send("file", MessageKind::Unspecified, "", meta));
        assert!(message.contains(why), "{meta}: {message}");
    }
}

#[test]
fn an_unknown_typed_kind_is_refused() {
    let mut request = send("", MessageKind::Unspecified, "hi", "");
    request.message_kind = 99;
    assert!(refused(request).contains("message_kind"));
}
