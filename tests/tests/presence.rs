//! Presence: updates, typing that clears itself, reconnecting then offline,
//! heartbeat and TTL — every expiry driven by the manual clock.

use std::time::Duration;

use meno_tests::{in_both_modes, session_id, Client, Mode, System};
use serde_json::{json, Value};

async fn pair(system: &System, session: &str) -> (Client, Client) {
    let mut ann = system.join(session, "ann", "teacher").await;
    ann.expect_start().await;
    let mut bob = system.join(session, "bob", "student").await;
    bob.expect_start().await;
    ann.expect_where("presence.event", |f| f["data"]["participantId"] == "bob")
        .await;
    (ann, bob)
}

fn is_bob(frame: &Value) -> bool {
    frame["data"]["participantId"] == "bob"
}

async fn an_update_is_broadcast_as_the_full_state(mode: Mode) {
    let system = System::start(mode).await;
    let session = session_id("presence");
    let (mut ann, mut bob) = pair(&system, &session).await;
    bob.send(
        "presence.update",
        json!({"isSpeaking": true, "extra": {"color": "#00ff00", "cursor": [1, 2]}}),
    )
    .await;
    for client in [&mut ann, &mut bob] {
        let event = client.expect("presence.event").await;
        let data = &event["data"];
        assert_eq!(data["sessionId"], session.as_str());
        assert_eq!(data["participantId"], "bob");
        assert_eq!(data["name"], "bob-name");
        assert_eq!(data["role"], "student");
        assert_eq!(data["status"], "speaking");
        assert_eq!(data["isSpeaking"], true);
        assert_eq!(data["isTyping"], false);
        assert_eq!(data["color"], "#00ff00", "extra.color wins");
        assert_eq!(data["extra"], json!({"color": "#00ff00", "cursor": [1, 2]}));
        assert!(data["lastSeen"].as_str().unwrap().ends_with('Z'));
    }
    // extra is replaced whole, not merged.
    bob.send(
        "presence.update",
        json!({"status": "muted", "isSpeaking": false, "extra": {"mic": "off"}}),
    )
    .await;
    let event = ann.expect("presence.event").await;
    assert_eq!(event["data"]["status"], "muted");
    assert_eq!(event["data"]["extra"], json!({"mic": "off"}));
    assert_ne!(
        event["data"]["color"], "#00ff00",
        "color falls back to the derived one"
    );
}

async fn typing_shows_and_clears_itself_after_the_timeout(mode: Mode) {
    let system = System::start(mode).await;
    let session = session_id("typing");
    let (mut ann, mut bob) = pair(&system, &session).await;
    bob.send("presence.update", json!({"isTyping": true})).await;
    let typing = ann.expect("presence.event").await;
    assert_eq!(typing["data"]["status"], "typing");
    assert_eq!(typing["data"]["isTyping"], true);
    bob.expect("presence.event").await;

    system.advance(Duration::from_secs(4));
    ann.expect_silence(Duration::from_millis(200)).await;
    system.advance(Duration::from_secs(2));
    let cleared = ann.expect("presence.event").await;
    assert!(is_bob(&cleared));
    assert_eq!(cleared["data"]["isTyping"], false);
    assert_eq!(cleared["data"]["status"], "online");
}

async fn an_abnormal_close_shows_reconnecting_then_offline(mode: Mode) {
    let system = System::start(mode).await;
    let session = session_id("grace");
    let (mut ann, bob) = pair(&system, &session).await;
    bob.drop_connection();
    let reconnecting = ann.expect("presence.event").await;
    assert!(is_bob(&reconnecting));
    assert_eq!(reconnecting["data"]["status"], "reconnecting");

    system.advance(Duration::from_secs(14));
    ann.expect_silence(Duration::from_millis(200)).await;
    system.advance(Duration::from_secs(2));
    let offline = ann.expect("presence.event").await;
    assert!(is_bob(&offline));
    assert_eq!(offline["data"]["status"], "offline");
}

async fn reconnecting_within_the_grace_period_returns_online(mode: Mode) {
    let system = System::start(mode).await;
    let session = session_id("regrace");
    let (mut ann, bob) = pair(&system, &session).await;
    bob.drop_connection();
    ann.expect_where("presence.event", |f| f["data"]["status"] == "reconnecting")
        .await;
    system.advance(Duration::from_secs(5));
    let mut bob = system.join(&session, "bob", "student").await;
    bob.expect_start().await;
    let back = ann.expect("presence.event").await;
    assert_eq!(back["data"]["status"], "online");
    system.advance(Duration::from_secs(20));
    ann.expect_silence(Duration::from_millis(200)).await;
}

async fn a_normal_close_goes_offline_at_once(mode: Mode) {
    let system = System::start(mode).await;
    let session = session_id("bye");
    let (mut ann, bob) = pair(&system, &session).await;
    bob.close().await;
    let offline = ann.expect("presence.event").await;
    assert!(is_bob(&offline));
    assert_eq!(offline["data"]["status"], "offline");
}

async fn heartbeats_keep_a_connection_past_its_ttl(mode: Mode) {
    let system = System::start(mode).await;
    let session = session_id("heartbeat");
    let (mut ann, mut bob) = pair(&system, &session).await;
    // The test bridge refreshes hourly, so only heartbeats extend the TTL.
    for _ in 0..3 {
        system.advance(Duration::from_secs(40));
        for client in [&mut ann, &mut bob] {
            client.send("presence.heartbeat", json!({})).await;
            client.send("system.ping", json!({})).await;
            client.expect("system.pong").await;
        }
    }
    ann.expect_silence(Duration::from_millis(200)).await;

    // Without heartbeats the TTL runs out and bob goes offline.
    system.advance(Duration::from_secs(30));
    ann.send("presence.heartbeat", json!({})).await;
    // A socket runs one action at a time: the pong proves the heartbeat
    // reached the core before the clock moves again.
    ann.send("system.ping", json!({})).await;
    ann.expect("system.pong").await;
    system.advance(Duration::from_secs(31));
    let offline = ann.expect("presence.event").await;
    assert!(is_bob(&offline));
    assert_eq!(offline["data"]["status"], "offline");
}

async fn bad_presence_fields_are_refused(mode: Mode) {
    let system = System::start(mode).await;
    let session = session_id("badpresence");
    let (_ann, mut bob) = pair(&system, &session).await;
    bob.send("presence.update", json!({"status": "offline"}))
        .await;
    let error = bob.expect("error").await;
    assert_eq!(error["data"]["code"], "InvalidArgument");
    bob.send("presence.update", json!({"extra": "not an object"}))
        .await;
    bob.expect("error").await;
}

in_both_modes!(
    an_update_is_broadcast_as_the_full_state,
    typing_shows_and_clears_itself_after_the_timeout,
    an_abnormal_close_shows_reconnecting_then_offline,
    reconnecting_within_the_grace_period_returns_online,
    a_normal_close_goes_offline_at_once,
    heartbeats_keep_a_connection_past_its_ttl,
    bad_presence_fields_are_refused,
);
