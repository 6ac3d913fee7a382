//! A client that breaks the WebSocket protocol gets a Close frame with the
//! code RFC 6455 names (1007 for bytes that are not UTF-8 where text is due,
//! 1002 for the rest), not a dropped connection, and leaves its session as
//! one that closed on purpose: others see it `offline` at once, not
//! `reconnecting`, and a lease it held is released.

use std::time::Duration;

use meno_bridge::config::BridgeConfig;
use meno_tests::raw::{self, Ending, RawSocket, FIN, OP_CLOSE, OP_TEXT, RSV1};
use meno_tests::{in_both_modes, session_id, Mode, System, WAIT};
use serde_json::Value;

const PING: &str = r#"{"action":"system.ping"}"#;

/// What the violator does wrong.
#[derive(Debug, Clone, Copy)]
enum Violation {
    InvalidUtf8Text,
    Rsv1WithoutExtension,
    UnmaskedFrame,
    InvalidUtf8CloseReason,
}

impl Violation {
    async fn commit(self, socket: &mut RawSocket) {
        match self {
            Self::InvalidUtf8Text => {
                socket
                    .write_frame(FIN | OP_TEXT, true, b"{\"action\":\"\xff\xfe\"}")
                    .await;
            }
            Self::Rsv1WithoutExtension => {
                socket
                    .write_frame(FIN | RSV1 | OP_TEXT, true, PING.as_bytes())
                    .await;
            }
            Self::UnmaskedFrame => {
                socket
                    .write_frame(FIN | OP_TEXT, false, PING.as_bytes())
                    .await
            }
            Self::InvalidUtf8CloseReason => {
                socket
                    .write_frame(FIN | OP_CLOSE, true, b"\x03\xe8bye \xc3\x28")
                    .await;
            }
        }
    }

    fn expected_code(self) -> u16 {
        match self {
            Self::InvalidUtf8Text | Self::InvalidUtf8CloseReason => 1007,
            Self::Rsv1WithoutExtension | Self::UnmaskedFrame => 1002,
        }
    }
}

fn is_vic(frame: &Value) -> bool {
    frame["type"] == "presence.event" && frame["data"]["participantId"] == "vic"
}

async fn start(mode: Mode) -> System {
    let bridge = BridgeConfig {
        // Far longer than the test waits: a connection dropped within the
        // wait was dropped because the client's Close was read, not by this.
        close_timeout: Duration::from_secs(60),
        ..meno_tests::test_bridge_config()
    };
    System::start_with_bridge(mode, bridge).await
}

/// Ann watches; vic joins by hand, optionally takes the lease, and breaks
/// the protocol.
async fn a_violation_closes_with_its_code_and_the_violator_goes_offline(
    mode: Mode,
    violation: Violation,
    takes_the_lease: bool,
) {
    let system = start(mode).await;
    let session = session_id("violation");
    let mut ann = system.join(&session, "ann", "teacher").await;
    ann.expect_start().await;
    let mut vic = RawSocket::connect(
        system.bridge_addr,
        &format!("/ws?sessionId={session}&participantId=vic&name=Vic&role=student&client=web"),
    )
    .await;
    ann.expect_where("presence.event", is_vic).await;
    if takes_the_lease {
        vic.send_text(r#"{"action":"control.lease.set","payload":{"stepIndex":4}}"#)
            .await;
        let taken = ann.expect("control.lease.state").await;
        assert_eq!(taken["data"]["leaseTo"], "vic");
    }
    // Vic's socket works until then.
    vic.send_text(PING).await;
    loop {
        let frame = vic.read_frame().await.expect("vic's socket is open");
        if frame
            .json()
            .is_some_and(|json| json["type"] == "system.pong")
        {
            break;
        }
    }

    violation.commit(&mut vic).await;
    let (close, _) = vic.read_until_close().await;
    let close =
        close.unwrap_or_else(|| panic!("{violation:?}: the connection ended without a Close"));
    assert_eq!(
        close.close_code(),
        Some(violation.expected_code()),
        "{violation:?}: close payload {:?}",
        String::from_utf8_lossy(&close.payload)
    );

    let presence = ann.expect_where("presence.event", is_vic).await;
    assert_eq!(
        presence["data"]["status"], "offline",
        "{violation:?}: a deliberate close, not a broken connection"
    );
    if takes_the_lease {
        let cleared = ann.expect("control.lease.state").await;
        assert_eq!(cleared["data"]["leaseTo"], Value::Null, "{violation:?}");
    }

    // The closing handshake completes: vic answers (or, its own Close sent
    // already, closes its side), and the bridge drops the connection then,
    // not at its close timeout.
    if matches!(violation, Violation::InvalidUtf8CloseReason) {
        use tokio::io::AsyncWriteExt;
        vic.stream
            .shutdown()
            .await
            .expect("shut down the write side");
    } else {
        vic.write_frame(FIN | OP_CLOSE, true, &close.payload[..2])
            .await;
    }
    let ending = raw::wait_for_close(&mut vic.stream, WAIT).await;
    assert!(
        matches!(ending, Ending::Closed(_)),
        "{violation:?}: the connection is closed (not reset) after the client's Close: {ending:?}"
    );

    // Ann is unaffected.
    ann.send("system.ping", serde_json::json!({})).await;
    ann.expect_where("system.pong", |_| true).await;
}

async fn invalid_utf8_in_a_text_frame_closes_with_1007(mode: Mode) {
    a_violation_closes_with_its_code_and_the_violator_goes_offline(
        mode,
        Violation::InvalidUtf8Text,
        false,
    )
    .await;
}

async fn rsv1_without_an_extension_closes_with_1002_and_releases_the_lease(mode: Mode) {
    a_violation_closes_with_its_code_and_the_violator_goes_offline(
        mode,
        Violation::Rsv1WithoutExtension,
        true,
    )
    .await;
}

async fn an_unmasked_client_frame_closes_with_1002(mode: Mode) {
    a_violation_closes_with_its_code_and_the_violator_goes_offline(
        mode,
        Violation::UnmaskedFrame,
        false,
    )
    .await;
}

async fn a_close_with_an_invalid_utf8_reason_is_answered_with_1007(mode: Mode) {
    a_violation_closes_with_its_code_and_the_violator_goes_offline(
        mode,
        Violation::InvalidUtf8CloseReason,
        true,
    )
    .await;
}

/// The violator does not stop to read: the frames after the bad one are
/// never parsed, but they are read and discarded, so the bridge does not
/// drop the connection with them unread (which would reset it, and the
/// client's kernel would throw away the Close before the client read it).
async fn a_violator_that_keeps_writing_still_receives_its_close(mode: Mode) {
    let system = start(mode).await;
    let session = session_id("violation-flood");
    let mut ann = system.join(&session, "ann", "teacher").await;
    ann.expect_start().await;
    let mut vic = RawSocket::connect(
        system.bridge_addr,
        &format!("/ws?sessionId={session}&participantId=vic&name=Vic&role=student&client=web"),
    )
    .await;
    ann.expect_where("presence.event", is_vic).await;
    let mut burst = raw::encode_frame(FIN | RSV1 | OP_TEXT, true, PING.as_bytes());
    for _ in 0..2000 {
        burst.extend(raw::encode_frame(FIN | OP_TEXT, true, PING.as_bytes()));
    }
    vic.write_raw(&burst).await;
    let (close, _) = vic.read_until_close().await;
    let close = close.expect("the Close arrives, not a reset");
    assert_eq!(close.close_code(), Some(1002));
    let presence = ann.expect_where("presence.event", is_vic).await;
    assert_eq!(presence["data"]["status"], "offline");
    use tokio::io::AsyncWriteExt;
    vic.stream
        .shutdown()
        .await
        .expect("shut down the write side");
    // Everything vic wrote was read: the connection ends with a FIN.
    let ending = raw::wait_for_close(&mut vic.stream, WAIT).await;
    assert!(matches!(ending, Ending::Closed(_)), "{ending:?}");
}

/// Still a broken connection, not a violation: vic drops TCP mid-frame.
async fn a_connection_dropped_mid_frame_still_shows_reconnecting(mode: Mode) {
    let system = start(mode).await;
    let session = session_id("mid-frame");
    let mut ann = system.join(&session, "ann", "teacher").await;
    ann.expect_start().await;
    let mut vic = RawSocket::connect(
        system.bridge_addr,
        &format!("/ws?sessionId={session}&participantId=vic&name=Vic&role=student&client=web"),
    )
    .await;
    ann.expect_where("presence.event", is_vic).await;
    // A masked header announcing 100 bytes, then only 3 of them.
    use tokio::io::AsyncWriteExt;
    vic.stream
        .write_all(&[FIN | OP_TEXT, 0x80 | 100, 1, 2, 3, 4, b'a', b'b', b'c'])
        .await
        .unwrap();
    drop(vic);
    let presence = ann.expect_where("presence.event", is_vic).await;
    assert_eq!(presence["data"]["status"], "reconnecting");
}

in_both_modes!(
    invalid_utf8_in_a_text_frame_closes_with_1007,
    rsv1_without_an_extension_closes_with_1002_and_releases_the_lease,
    an_unmasked_client_frame_closes_with_1002,
    a_close_with_an_invalid_utf8_reason_is_answered_with_1007,
    a_violator_that_keeps_writing_still_receives_its_close,
    a_connection_dropped_mid_frame_still_shows_reconnecting,
);
