//! OpenTelemetry traces: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, the real
//! binaries export one trace per WebSocket action, from the bridge's action
//! span through the core's gRPC request and session batch down to the store
//! commit, with W3C context carried across the gRPC hop.

use std::net::SocketAddr;
use std::time::Duration;

use meno_tests::otlp::{OtlpReceiver, ReceivedSpan};
use meno_tests::process::{free_addr, Process};
use meno_tests::{session_id, Client};
use serde_json::json;

/// The spans of one `chat.send`, parent to child.
#[derive(Debug)]
struct ChatTrace {
    action: ReceivedSpan,
    request: ReceivedSpan,
    batch: ReceivedSpan,
    write: ReceivedSpan,
    commit: ReceivedSpan,
}

/// The chat.send trace, once every span of it has arrived.
fn chat_send_trace(spans: &[ReceivedSpan]) -> Option<ChatTrace> {
    let child = |parent: &ReceivedSpan, name: &str| {
        spans
            .iter()
            .find(|span| span.name == name && span.is_child_of(parent))
            .cloned()
    };
    let action = spans
        .iter()
        .find(|span| span.name == "ws.action" && span.attribute("action") == Some("chat.send"))?
        .clone();
    // gRPC server spans are named after the method, as OpenTelemetry's
    // conventions have it.
    let request = child(&action, "meno.realtime.v1.ChatService/Send")?;
    let batch = child(&request, "session.batch")?;
    let write = child(&batch, "store.write_session")?;
    let commit = child(&write, "fjall.group_commit")?;
    Some(ChatTrace {
        action,
        request,
        batch,
        write,
        commit,
    })
}

fn exporting_to(receiver: &OtlpReceiver, schedule_delay: Duration) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
        (
            "OTEL_BSP_SCHEDULE_DELAY",
            schedule_delay.as_millis().to_string(),
        ),
    ]
}

async fn send_one_chat(bridge: SocketAddr, session: &str) {
    let mut ann = Client::connect(&format!(
        "ws://{bridge}/ws?sessionId={session}&participantId=ann&name=ann&role=teacher&client=web"
    ))
    .await;
    ann.expect_start().await;
    ann.send("chat.send", json!({"messageId": "m-1", "content": "hello"}))
        .await;
    ann.expect_where("chat.message", |frame| frame["data"]["messageId"] == "m-1")
        .await;
    ann.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_send_is_one_trace_from_the_websocket_to_the_store() {
    let receiver = OtlpReceiver::start().await;
    let env = exporting_to(&receiver, Duration::from_millis(50));
    let data = tempfile::tempdir().unwrap();
    let core_addr = free_addr();
    let data_dir = data.path().display().to_string();
    let _core = Process::core_with_env(core_addr, &["--data-dir", &data_dir], &env).await;
    let bridge_addr = free_addr();
    let _bridge = Process::bridge_with_env(bridge_addr, core_addr, &env).await;
    let session = session_id("traced");

    send_one_chat(bridge_addr, &session).await;

    let trace = receiver.wait_for(chat_send_trace).await;
    assert_eq!(trace.action.service, "meno-bridge");
    assert!(
        trace.action.parent_span_id.is_empty(),
        "the action starts the trace"
    );
    let session_attribute = format!("default/{session}");
    assert_eq!(
        trace.action.attribute("session"),
        Some(session_attribute.as_str())
    );
    assert_eq!(trace.request.service, "meno-core");
    assert_eq!(trace.request.attribute("rpc.system"), Some("grpc"));
    assert_eq!(trace.request.attribute("rpc.method"), Some("Send"));
    for span in [&trace.batch, &trace.write, &trace.commit] {
        assert_eq!(span.service, "meno-core", "{span:?}");
        assert_eq!(span.trace_id, trace.action.trace_id, "{span:?}");
    }
    assert_eq!(trace.write.attribute("db.system"), Some("fjall"));
    assert_eq!(trace.write.attribute("messages"), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monolithic_bridge_sends_its_last_spans_when_it_stops() {
    let receiver = OtlpReceiver::start().await;
    // Far longer than the test: only the flush on exit can deliver them.
    let env = exporting_to(&receiver, Duration::from_secs(600));
    let data = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let args = vec![
        "--listen".to_owned(),
        addr.to_string(),
        "--data-dir".to_owned(),
        data.path().display().to_string(),
    ];
    let bridge = Process::spawn_with_env("meno-bridge", addr, &args, &env);
    bridge.wait_ready().await;

    send_one_chat(addr, &session_id("traced-mono")).await;
    assert!(bridge.terminate().success());

    let trace = receiver.wait_for(chat_send_trace).await;
    for span in [&trace.request, &trace.batch, &trace.write, &trace.commit] {
        assert_eq!(span.service, "meno-bridge", "one process: {span:?}");
        assert_eq!(span.trace_id, trace.action.trace_id, "{span:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nexus_client_trace_id_is_recorded_on_and_linked_from_the_server_trace() {
    let receiver = OtlpReceiver::start().await;
    let env = exporting_to(&receiver, Duration::from_millis(50));
    let data = tempfile::tempdir().unwrap();
    let core_addr = free_addr();
    let data_dir = data.path().display().to_string();
    let _core = Process::core_with_env(core_addr, &["--data-dir", &data_dir], &env).await;
    let bridge_addr = free_addr();
    let _bridge = Process::bridge_with_env(bridge_addr, core_addr, &env).await;
    let room = session_id("traced-nexus");
    let mut nina = meno_tests::nexus::NexusClient::connect(&format!(
        "ws://{bridge_addr}/ws/nexus?userId=nina&userName=Nina&roomId={room}"
    ))
    .await;
    nina.expect("ROOM_JOINED").await;
    let client_trace = "4bf92f35-77b3-4da6-a3ce-929d0e0e4736";
    nina.send_raw(
        &json!({"event": "SEND_MSG", "traceId": client_trace,
                "data": {"roomId": room, "type": "TEXT", "contentText": "traced"}})
        .to_string(),
    )
    .await;
    let message = nina.expect("NEW_MESSAGE").await;
    assert_eq!(message["traceId"], client_trace, "the broadcast carries it");

    let action = receiver
        .wait_for(|spans| {
            spans
                .iter()
                .find(|span| {
                    span.name == "ws.action" && span.attribute("action") == Some("SEND_MSG")
                })
                .cloned()
        })
        .await;
    assert_eq!(action.attribute("client_trace_id"), Some(client_trace));
    let expected: Vec<u8> = (0..16)
        .map(|i| {
            let hex = client_trace.replace('-', "");
            u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).unwrap()
        })
        .collect();
    assert_eq!(
        action.linked_trace_ids,
        vec![expected],
        "linked to the client's trace"
    );
    let request = receiver
        .wait_for(|spans| {
            spans
                .iter()
                .find(|span| {
                    span.name == "meno.realtime.v1.ChatService/Send" && span.is_child_of(&action)
                })
                .cloned()
        })
        .await;
    assert_eq!(request.service, "meno-core");
}
