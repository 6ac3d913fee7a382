//! The single binary with backends: a monolithic `meno-bridge --grpc-listen`
//! serves its in-process core's gRPC API, so a backend attaches to it and
//! answers an assistant-dialect client; a non-loopback address is refused.

use std::time::Duration;

use meno_proto::backend_service_client::BackendServiceClient;
use meno_proto::{backend_upstream, backend_work, BackendHello, BackendKind, BackendUpstream};
use meno_tests::process::{free_addr, Process};
use meno_tests::Client;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_attaches_to_a_monolithic_bridge_and_gets_its_clients_text() {
    let data = tempfile::tempdir().unwrap();
    let (addr, grpc) = (free_addr(), free_addr());
    let args = vec![
        "--listen".to_owned(),
        addr.to_string(),
        "--data-dir".to_owned(),
        data.path().display().to_string(),
        "--grpc-listen".to_owned(),
        grpc.to_string(),
    ];
    let bridge = Process::spawn("meno-bridge", addr, &args);
    bridge.wait_ready().await;

    let mut backends = None;
    for _ in 0..100 {
        match BackendServiceClient::connect(format!("http://{grpc}")).await {
            Ok(client) => {
                backends = Some(client);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let mut backends = backends.expect("the monolithic bridge serves gRPC on --grpc-listen");
    let (upstream, items) = mpsc::channel(4);
    upstream
        .send(BackendUpstream {
            item: Some(backend_upstream::Item::Hello(BackendHello {
                tenant: "default".into(),
                kind: BackendKind::Assistant as i32,
                backend_id: "mono-test".into(),
            })),
        })
        .await
        .unwrap();
    let mut work = backends
        .attach(ReceiverStream::new(items))
        .await
        .unwrap()
        .into_inner();

    let mut client = Client::connect(&format!("ws://{addr}/ws/assistant?userId=u1")).await;
    client
        .send_raw(&json!({"type": "text_message", "data": {"content": "hi"}}).to_string())
        .await;
    let item = tokio::time::timeout(meno_tests::WAIT, work.message())
        .await
        .expect("work in time")
        .unwrap()
        .unwrap();
    let Some(backend_work::Item::Text(text)) = item.item else {
        panic!("expected the client's text, got {item:?}");
    };
    assert_eq!(text.content, "hi");
    drop((upstream, work));
    client.close().await;
    assert!(bridge.terminate().success());
}

#[test]
fn a_grpc_listen_beyond_loopback_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(meno_tests::workspace_binary("meno-bridge"))
        .args([
            "--listen",
            &free_addr().to_string(),
            "--data-dir",
            &data.path().display().to_string(),
            "--grpc-listen",
            "0.0.0.0:0",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--grpc-listen"), "{stderr}");
}
