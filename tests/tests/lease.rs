//! The control lease: set, renew, release, expiry, preemption by a teacher,
//! and refusals for observers and for students while another holds it.

use std::time::Duration;

use meno_tests::{in_both_modes, session_id, Client, Mode, System};
use serde_json::{json, Value};

async fn classroom(system: &System, session: &str) -> (Client, Client, Client, Client) {
    let mut teacher = system.join(session, "tina", "teacher").await;
    teacher.expect_start().await;
    let mut sam = system.join(session, "sam", "student").await;
    sam.expect_start().await;
    let mut sue = system.join(session, "sue", "student").await;
    sue.expect_start().await;
    let mut obi = system.join(session, "obi", "observer").await;
    obi.expect_start().await;
    for client in [&mut teacher, &mut sam, &mut sue] {
        client
            .expect_where("presence.event", |f| f["data"]["participantId"] == "obi")
            .await;
    }
    (teacher, sam, sue, obi)
}

async fn lease_state(client: &mut Client) -> Value {
    client.expect("control.lease.state").await["data"].clone()
}

async fn set_renew_release(mode: Mode) {
    let system = System::start(mode).await;
    let session = session_id("lease");
    let (mut teacher, mut sam, _sue, _obi) = classroom(&system, &session).await;
    sam.send(
        "control.lease.set",
        json!({"stepIndex": 2, "leaseId": "sam-lease", "leaseDurationMs": 30000}),
    )
    .await;
    let taken = lease_state(&mut teacher).await;
    assert_eq!(taken["sessionId"], session.as_str());
    assert_eq!(taken["leaseId"], "sam-lease", "the client's hint is used");
    assert_eq!(taken["leaseTo"], "sam");
    assert_eq!(taken["stepIndex"], 2);
    assert_eq!(taken["epoch"], 1);
    assert!(taken["issuedAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(lease_state(&mut sam).await, taken);

    system.advance(Duration::from_secs(10));
    sam.send("control.lease.set", json!({"stepIndex": 3})).await;
    let renewed = lease_state(&mut teacher).await;
    assert_eq!(
        renewed["leaseId"], "sam-lease",
        "renewal keeps the lease id"
    );
    assert_eq!(renewed["epoch"], 1, "and the epoch");
    assert_eq!(renewed["stepIndex"], 3);
    assert_eq!(renewed["issuedAt"], taken["issuedAt"]);
    assert_ne!(renewed["expiresAt"], taken["expiresAt"]);
    lease_state(&mut sam).await;

    sam.send("control.lease.release", json!({"leaseId": "sam-lease"}))
        .await;
    let cleared = lease_state(&mut teacher).await;
    assert_eq!(cleared["leaseId"], Value::Null);
    assert_eq!(cleared["leaseTo"], Value::Null);
    assert_eq!(cleared["issuedAt"], Value::Null);
    assert_eq!(cleared["expiresAt"], Value::Null);
    assert_eq!(cleared["stepIndex"], 3, "the step stays");
    assert_eq!(cleared["epoch"], 1, "the epoch stays");

    // A new joiner sees no lease state while none is active.
    let mut late = system.join(&session, "late", "student").await;
    late.expect_start().await;
    late.expect_silence(Duration::from_millis(200)).await;
}

async fn the_lease_expires_and_the_cleared_state_is_broadcast(mode: Mode) {
    let system = System::start(mode).await;
    let session = session_id("expiry");
    let mut teacher = system.join(&session, "tina", "teacher").await;
    teacher.expect_start().await;
    let mut sam = system.join(&session, "sam", "student").await;
    sam.expect_start().await;
    teacher.expect("presence.event").await;
    // Asking for an hour gets the 10-minute cap.
    sam.send(
        "control.lease.set",
        json!({"stepIndex": 1, "leaseDurationMs": 3_600_000}),
    )
    .await;
    let taken = lease_state(&mut teacher).await;
    lease_state(&mut sam).await;

    // Sam stays connected with heartbeats; only the lease runs out. A socket
    // runs one action at a time, so each pong proves its heartbeat reached
    // the core before the clock moves again.
    for _ in 0..19 {
        system.advance(Duration::from_secs(30));
        for client in [&mut teacher, &mut sam] {
            client.send("presence.heartbeat", json!({})).await;
            client.send("system.ping", json!({})).await;
            client.expect("system.pong").await;
        }
    }
    system.advance(Duration::from_secs(31));
    let cleared = lease_state(&mut teacher).await;
    assert_eq!(cleared["leaseTo"], Value::Null);
    assert_eq!(cleared["epoch"], taken["epoch"]);

    // A late joiner learns nothing of the expired lease.
    let mut late = system.join(&session, "late", "student").await;
    late.expect_start().await;
    late.expect_silence(Duration::from_millis(200)).await;
}

async fn a_teacher_preempts_and_the_epoch_grows(mode: Mode) {
    let system = System::start(mode).await;
    let session = session_id("preempt");
    let (mut teacher, mut sam, _sue, _obi) = classroom(&system, &session).await;
    sam.send("control.lease.set", json!({"stepIndex": 1})).await;
    let first = lease_state(&mut teacher).await;
    assert_eq!(lease_state(&mut sam).await, first);
    teacher
        .send("control.lease.set", json!({"stepIndex": 5}))
        .await;
    let second = lease_state(&mut sam).await;
    assert_eq!(second["leaseTo"], "tina");
    assert_eq!(second["epoch"], 2);
    assert_ne!(second["leaseId"], first["leaseId"]);
    assert_eq!(second["stepIndex"], 5);
}

async fn observers_and_other_students_are_refused(mode: Mode) {
    let system = System::start(mode).await;
    let session = session_id("refuse");
    let (mut teacher, mut sam, mut sue, mut obi) = classroom(&system, &session).await;
    obi.send("control.lease.set", json!({"stepIndex": 1})).await;
    let refused = obi.expect("error").await;
    assert_eq!(refused["data"]["code"], "PermissionDenied");
    assert_eq!(refused["data"]["action"], "control.lease.set");
    assert_eq!(refused["data"]["retryable"], false);

    sam.send("control.lease.set", json!({"stepIndex": 1})).await;
    lease_state(&mut sam).await;
    sue.expect("control.lease.state").await;
    sue.send("control.lease.set", json!({"stepIndex": 9})).await;
    let conflict = sue.expect("error").await;
    assert_eq!(conflict["data"]["code"], "Conflict");
    sue.send("control.lease.release", json!({})).await;
    let denied = sue.expect("error").await;
    assert_eq!(denied["data"]["code"], "PermissionDenied");

    // Refusals went to the sender only.
    teacher.expect("control.lease.state").await;
    teacher.send("system.ping", json!({})).await;
    teacher.expect("system.pong").await;
}

async fn the_lease_is_released_when_its_holder_goes_offline(mode: Mode) {
    let system = System::start(mode).await;
    let session = session_id("holder-offline");
    let (mut teacher, mut sam, _sue, _obi) = classroom(&system, &session).await;
    sam.send("control.lease.set", json!({"stepIndex": 4})).await;
    lease_state(&mut teacher).await;
    lease_state(&mut sam).await;
    sam.close().await;
    teacher
        .expect_where("presence.event", |f| f["data"]["status"] == "offline")
        .await;
    let cleared = lease_state(&mut teacher).await;
    assert_eq!(cleared["leaseTo"], Value::Null);
    assert_eq!(cleared["stepIndex"], 4);
}

in_both_modes!(
    set_renew_release,
    the_lease_expires_and_the_cleared_state_is_broadcast,
    a_teacher_preempts_and_the_epoch_grows,
    observers_and_other_students_are_refused,
    the_lease_is_released_when_its_holder_goes_offline,
);
