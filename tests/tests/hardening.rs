//! Regressions from the adversarial probe (issue 13), over real sockets:
//! idempotency scoped by sender, one id rule, display names, integers a
//! client must read back, and presence events only for visible changes.

use std::time::Duration;

use meno_tests::{http_get, in_both_modes, session_id, Mode, System};
use serde_json::json;

const QUIET: Duration = Duration::from_millis(400);

/// Another participant's `messageId` does not swallow yours: the same id
/// from two senders is two messages; each sender's retry still dedupes.
async fn the_same_message_id_from_two_senders_is_two_messages(mode: Mode) {
    let system = System::start(mode).await;
    let session = session_id("ref-by-sender");
    let mut ann = system.join(&session, "ann", "student").await;
    ann.expect_start().await;
    let mut bob = system.join(&session, "bob", "teacher").await;
    bob.expect_start().await;
    ann.expect("presence.event").await;

    ann.chat("msg-1", "from ann").await;
    let first = bob.expect("chat.message").await;
    assert_eq!(first["data"]["content"], "from ann");
    ann.expect("chat.message").await;

    bob.chat("msg-1", "from bob").await;
    let second = bob.expect("chat.message").await;
    assert_eq!(second["data"]["content"], "from bob", "bob is acknowledged");
    assert_eq!(second["data"]["participantId"], "bob");
    assert_ne!(second["data"]["seq"], first["data"]["seq"]);
    let seen_by_ann = ann.expect("chat.message").await;
    assert_eq!(seen_by_ann["data"]["content"], "from bob");

    // Bob's retry of his own id is a duplicate: stored once, not broadcast
    // (his socket already has the message, so that copy was the answer).
    bob.chat("msg-1", "from bob, again").await;
    bob.expect_silence(QUIET).await;
    ann.expect_silence(QUIET).await;

    let mut carol = system.join(&session, "carol", "student").await;
    let (sync, _) = carol.expect_start().await;
    let history: Vec<&str> = sync["data"]["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["content"].as_str().expect("content"))
        .collect();
    assert_eq!(history, ["from ann", "from bob"]);
}

/// Every client-supplied id follows one rule: a `leaseId` with control or
/// bidirectional characters is refused like such a `messageId`, and nothing
/// is broadcast.
async fn ids_with_control_characters_are_refused_everywhere(mode: Mode) {
    let system = System::start(mode).await;
    let session = session_id("id-rule");
    let mut ann = system.join(&session, "ann", "teacher").await;
    ann.expect_start().await;
    let mut bob = system.join(&session, "bob", "student").await;
    bob.expect_start().await;
    ann.expect("presence.event").await;
    for bad in ["\u{0}", "a\nb", "lease\u{202E}1"] {
        for (action, payload) in [
            ("control.lease.set", json!({"stepIndex": 1, "leaseId": bad})),
            ("chat.send", json!({"messageId": bad, "content": "x"})),
        ] {
            ann.send(action, payload).await;
            let error = ann.expect("error").await;
            assert_eq!(
                error["data"]["code"], "InvalidArgument",
                "{action} {bad:?}: {error}"
            );
            assert_eq!(error["data"]["action"], action);
        }
    }
    bob.expect_silence(QUIET).await;
    ann.send(
        "control.lease.set",
        json!({"stepIndex": 1, "leaseId": "lease-1"}),
    )
    .await;
    let granted = bob.expect("control.lease.state").await;
    assert_eq!(granted["data"]["leaseId"], "lease-1");
}

/// `stepIndex` is broadcast to JavaScript clients: at most 2^53 - 1.
async fn step_index_is_capped_at_the_largest_safe_integer(mode: Mode) {
    let system = System::start(mode).await;
    let session = session_id("safe-integer");
    let mut ann = system.join(&session, "ann", "teacher").await;
    ann.expect_start().await;
    for too_big in [9_007_199_254_740_992_i64, i64::MAX] {
        ann.send("control.lease.set", json!({"stepIndex": too_big}))
            .await;
        let error = ann.expect("error").await;
        assert_eq!(
            error["data"]["code"], "InvalidArgument",
            "{too_big}: {error}"
        );
    }
    ann.send(
        "control.lease.set",
        json!({"stepIndex": 9_007_199_254_740_991_i64}),
    )
    .await;
    let state = ann.expect("control.lease.state").await;
    assert_eq!(state["data"]["stepIndex"], 9_007_199_254_740_991_i64);
}

/// A display name must show something and must not reorder the text around
/// it: only zero-width characters, or a bidi override, is refused before
/// the upgrade; a zero-width joiner inside an emoji sequence is kept.
async fn invisible_or_reordering_names_are_refused(mode: Mode) {
    let system = System::start(mode).await;
    let session = session_id("names");
    for (name, why) in [
        ("%E2%80%8B%E2%80%8D%EF%BB%BF", "zero-width only"),
        ("ann%E2%80%AEgnp.exe", "a right-to-left override"),
        ("%E2%81%A6x%E2%81%A9", "bidi isolates"),
    ] {
        let query =
            format!("sessionId={session}&participantId=ann&name={name}&role=student&client=web");
        let (status, body) = http_get(system.bridge_addr, &format!("/ws?{query}")).await;
        assert_eq!(status, 400, "{why}: {body}");
        assert!(body.contains("name"), "{why}: {body}");
    }
    // man, zero-width joiner, woman: one visible emoji.
    let family = "%F0%9F%91%A8%E2%80%8D%F0%9F%91%A9";
    let query =
        format!("sessionId={session}&participantId=ann&name={family}&role=student&client=web");
    let mut ann = meno_tests::Client::connect(&system.ws_url(&query)).await;
    let (_, presence) = ann.expect_start().await;
    let me = &presence["data"]["participants"][0];
    assert_eq!(me["name"], "\u{1F468}\u{200D}\u{1F469}");
}

/// A second socket of a participant already online changes nothing anyone
/// sees: no presence event; nor does closing one of two sockets.
async fn another_socket_of_an_online_participant_is_silent(mode: Mode) {
    let system = System::start(mode).await;
    let session = session_id("second-socket");
    let mut ann = system.join(&session, "ann", "teacher").await;
    ann.expect_start().await;
    let mut bob = system.join(&session, "bob", "student").await;
    bob.expect_start().await;
    let online = ann.expect("presence.event").await;
    assert_eq!(online["data"]["status"], "online");

    let mut bob_tablet = system.join(&session, "bob", "student").await;
    bob_tablet.expect_start().await;
    ann.expect_silence(QUIET).await;
    bob_tablet.close().await;
    ann.expect_silence(QUIET).await;
    bob.send("presence.update", json!({"status": "muted"}))
        .await;
    let muted = ann.expect("presence.event").await;
    assert_eq!(
        muted["data"]["status"], "muted",
        "a visible change still publishes"
    );
}

in_both_modes!(
    the_same_message_id_from_two_senders_is_two_messages,
    ids_with_control_characters_are_refused_everywhere,
    step_index_is_capped_at_the_largest_safe_integer,
    invisible_or_reordering_names_are_refused,
    another_socket_of_an_online_participant_is_silent,
);
