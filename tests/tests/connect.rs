//! Connect: the seed-000 query is validated before the upgrade, and a valid
//! connect starts with `chat.sync` and `presence.snapshot`.

use meno_tests::{http_get, in_both_modes, session_id, Mode, System};

async fn each_bad_field_is_refused_with_400_and_a_reason(mode: Mode) {
    let system = System::start(mode).await;
    let good = "sessionId=s1&participantId=p1&name=Ann&role=student&client=web";
    let (status, _) = http_get(system.bridge_addr, &format!("/ws?{good}")).await;
    assert_eq!(status, 101, "the valid query upgrades");
    let cases = [
        (
            "participantId=p1&name=Ann&role=student&client=web",
            "sessionId",
        ),
        (
            "sessionId=s1&name=Ann&role=student&client=web",
            "participantId",
        ),
        (
            "sessionId=s1&participantId=p1&role=student&client=web",
            "name",
        ),
        ("sessionId=s1&participantId=p1&name=Ann&client=web", "role"),
        (
            "sessionId=s1&participantId=p1&name=Ann&role=student",
            "client",
        ),
        (
            "sessionId=s1&participantId=p1&name=Ann&role=admin&client=web",
            "role",
        ),
        (
            "sessionId=s1&participantId=p1&name=Ann&role=student&client=fridge",
            "client",
        ),
        (
            "sessionId=s%201&participantId=p1&name=Ann&role=student&client=web",
            "sessionId",
        ),
        (
            "sessionId=s1&participantId=p%2F1&name=Ann&role=student&client=web",
            "participantId",
        ),
        (
            "sessionId=s1&participantId=p1&name=%20%20&role=student&client=web",
            "name",
        ),
        (
            "sessionId=s1&participantId=p1&name=Ann&role=student&client=web&lastSeq=-3",
            "lastSeq",
        ),
        (
            "sessionId=s1&sessionId=s2&participantId=p1&name=Ann&role=student&client=web",
            "sessionId",
        ),
    ];
    let too_long = format!(
        "sessionId={}&participantId=p1&name=Ann&role=student&client=web",
        "s".repeat(129)
    );
    for (query, field) in cases
        .iter()
        .map(|(query, field)| (query.to_string(), *field))
        .chain([(too_long, "sessionId")])
    {
        let (status, body) = http_get(system.bridge_addr, &format!("/ws?{query}")).await;
        assert_eq!(status, 400, "{query} must be refused, got {status} {body}");
        assert!(
            body.contains(field),
            "reason for {query} names {field}: {body:?}"
        );
        assert_eq!(
            body.trim_end().lines().count(),
            1,
            "one-line reason: {body:?}"
        );
    }
}

async fn a_new_socket_gets_sync_then_snapshot_then_live_events(mode: Mode) {
    let system = System::start(mode).await;
    let session = session_id("sync");
    let mut ann = system.join(&session, "ann", "teacher").await;
    let (sync, snapshot) = ann.expect_start().await;
    assert_eq!(sync["data"]["sessionId"], session.as_str());
    assert_eq!(sync["data"]["messages"], serde_json::json!([]));
    let participants = snapshot["data"]["participants"].as_array().unwrap();
    assert_eq!(participants.len(), 1);
    assert_eq!(participants[0]["participantId"], "ann");
    assert_eq!(participants[0]["status"], "online");
    assert_eq!(participants[0]["role"], "teacher");

    ann.chat("m1", "first").await;
    ann.expect("chat.message").await;
    ann.chat("m2", "second").await;
    ann.expect("chat.message").await;

    let mut bob = system.join(&session, "bob", "student").await;
    let (sync, snapshot) = bob.expect_start().await;
    let contents: Vec<&str> = sync["data"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| message["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["first", "second"], "history oldest first");
    assert_eq!(
        snapshot["data"]["participants"].as_array().unwrap().len(),
        2
    );
    assert_eq!(sync["seq"], snapshot["seq"]);

    // Bob's own arrival is already in his snapshot: the next frame he gets is
    // live, after the snapshot's seq.
    ann.chat("m3", "third").await;
    let live = bob.expect("chat.message").await;
    assert_eq!(live["data"]["content"], "third");
    assert!(meno_tests::seq(&live) > meno_tests::seq(&snapshot));
}

async fn health_endpoints_answer(mode: Mode) {
    let system = System::start(mode).await;
    let (status, _) = http_get(system.bridge_addr, "/healthz").await;
    assert_eq!(status, 200);
    let (status, body) = http_get(system.bridge_addr, "/readyz").await;
    assert_eq!(status, 200, "{body}");
}

in_both_modes!(
    each_bad_field_is_refused_with_400_and_a_reason,
    a_new_socket_gets_sync_then_snapshot_then_live_events,
    health_endpoints_answer,
);
