//! Bad input: every kind gets an `error` envelope to the sender alone, and the
//! socket keeps working.

use std::time::Duration;

use meno_tests::{in_both_modes, session_id, Mode, System};
use serde_json::json;

async fn each_kind_of_bad_input_gets_an_error_and_the_socket_still_works(mode: Mode) {
    let system = System::start(mode).await;
    let session = session_id("bad-input");
    let mut ann = system.join(&session, "ann", "teacher").await;
    ann.expect_start().await;
    let mut bob = system.join(&session, "bob", "student").await;
    bob.expect_start().await;
    ann.expect("presence.event").await;

    let too_long = "x".repeat(20 * 1024);
    let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
    let cases: Vec<(String, Option<&str>)> = vec![
        ("{not json".into(), None),
        ("[1,2,3]".into(), None),
        (json!({"payload": {}}).to_string(), None),
        (json!({"action": "chat.delete", "payload": {}}).to_string(), Some("chat.delete")),
        (json!({"action": "chat.send"}).to_string(), Some("chat.send")),
        (json!({"action": "chat.send", "payload": {"messageId": "m", "content": 42}}).to_string(), Some("chat.send")),
        (json!({"action": "chat.send", "payload": {"content": "no id"}}).to_string(), Some("chat.send")),
        (json!({"action": "chat.send", "payload": {"messageId": "m", "content": too_long}}).to_string(), Some("chat.send")),
        (json!({"action": "chat.send", "payload": {"messageId": "m", "content": "x", "createdAt": "yesterday"}}).to_string(), Some("chat.send")),
        (json!({"action": "chat.send", "payload": {"messageId": "m", "content": "x", "meta": [1]}}).to_string(), Some("chat.send")),
        (json!({"action": "control.lease.set", "payload": {"stepIndex": "two"}}).to_string(), Some("control.lease.set")),
        (json!({"action": "control.lease.set", "payload": {"stepIndex": -1}}).to_string(), Some("control.lease.set")),
        (json!({"action": "presence.update", "payload": {"isTyping": "yes"}}).to_string(), Some("presence.update")),
        (json!({"action": "chat.send", "payload": {"messageId": "m", "content": "x", "meta": {"d": serde_json::from_str::<serde_json::Value>(&deep).unwrap()}}}).to_string(), None),
    ];
    for (frame, action) in &cases {
        bob.send_raw(frame).await;
        let error = bob.expect("error").await;
        let data = &error["data"];
        assert_eq!(data["code"], "InvalidArgument", "for {frame}: {error}");
        assert_eq!(data["retryable"], false);
        assert!(!data["message"].as_str().unwrap().is_empty());
        if let Some(action) = action {
            assert_eq!(data["action"], *action, "for {frame}");
        }
    }
    // A binary frame is refused the same way.
    bob.send_binary(b"{}").await;
    let error = bob.expect("error").await;
    assert_eq!(error["data"]["code"], "InvalidArgument");

    // Still usable, and nobody else heard any of it.
    bob.chat("ok-1", "still here").await;
    let message = bob.expect("chat.message").await;
    assert_eq!(message["data"]["content"], "still here");
    let seen = ann.expect("chat.message").await;
    assert_eq!(seen["data"]["messageId"], "ok-1");
    ann.expect_silence(Duration::from_millis(200)).await;
}

async fn ping_gets_a_pong_with_or_without_payload(mode: Mode) {
    let system = System::start(mode).await;
    let mut ann = system.join(&session_id("ping"), "ann", "student").await;
    ann.expect_start().await;
    for frame in [
        json!({"action": "system.ping"}),
        json!({"action": "system.ping", "payload": {}}),
    ] {
        ann.send_raw(&frame.to_string()).await;
        let pong = ann.expect("system.pong").await;
        assert!(pong["data"]["serverTime"].as_str().unwrap().ends_with('Z'));
    }
}

async fn observers_may_not_chat_by_default(mode: Mode) {
    let system = System::start(mode).await;
    let mut obi = system
        .join(&session_id("observer"), "obi", "observer")
        .await;
    obi.expect_start().await;
    obi.chat("o-1", "hello?").await;
    let error = obi.expect("error").await;
    assert_eq!(error["data"]["code"], "PermissionDenied");
    assert_eq!(error["data"]["action"], "chat.send");
}

in_both_modes!(
    each_kind_of_bad_input_gets_an_error_and_the_socket_still_works,
    ping_gets_a_pong_with_or_without_payload,
    observers_may_not_chat_by_default,
);
