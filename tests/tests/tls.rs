//! wss from a real client, and TLS plus a bearer token on the core's gRPC.

use std::sync::Arc;

use meno_core::server::{Core, CoreOptions};
use meno_proto::{
    presence_service_client::PresenceServiceClient, PresenceSnapshotRequest, SessionRef,
};
use meno_tests::{session_id, Mode, System};

fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("self-signed certificate");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_joins_over_wss() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let system = System::start_full(
        Mode::Monolithic,
        Arc::new(meno_core::store::MemoryStore::new()),
        meno_tests::test_session_config(),
        meno_tests::test_bridge_config(),
        None,
        Some((&cert, &key)),
    )
    .await;
    let url = format!(
        "wss://127.0.0.1:{}/ws?sessionId={}&participantId=py&name=Py&role=student&client=native",
        system.bridge_addr.port(),
        session_id("wss")
    );
    let output = tokio::process::Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/python/wss_client.py"))
        .arg(&url)
        .arg(&cert)
        .output()
        .await
        .expect("run python3");
    assert!(
        output.status.success(),
        "wss client failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_needs_the_token_and_speaks_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let tls =
        tonic::transport::ServerTlsConfig::new().identity(tonic::transport::Identity::from_pem(
            std::fs::read(&cert).unwrap(),
            std::fs::read(&key).unwrap(),
        ));
    let core = Core::with_options(
        Arc::new(meno_core::store::MemoryStore::new()),
        Arc::new(meno_core::clock::SystemClock),
        meno_tests::test_session_config(),
        CoreOptions {
            grpc_token: Some("a-token-for-backends".into()),
            tls: Some(tls),
            ownership: None,
        },
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let serving = core.clone();
    let serve_stop = stop.clone();
    tokio::spawn(async move { serving.serve(listener, serve_stop).await });

    let channel =
        tonic::transport::Endpoint::from_shared(format!("https://localhost:{}", addr.port()))
            .unwrap()
            .tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(
                        std::fs::read(&cert).unwrap(),
                    ))
                    .domain_name("localhost"),
            )
            .unwrap()
            .connect()
            .await
            .expect("TLS connect");
    let request = || PresenceSnapshotRequest {
        session: Some(SessionRef {
            tenant: String::new(),
            session_id: session_id("grpc-auth"),
        }),
    };
    let refused = PresenceServiceClient::new(channel.clone())
        .snapshot(request())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    let token = meno_core::grpc_auth::BearerToken::new(Some("wrong-token-of-length")).unwrap();
    let mut wrong = PresenceServiceClient::with_interceptor(channel.clone(), token);
    assert_eq!(
        wrong.snapshot(request()).await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );

    let token = meno_core::grpc_auth::BearerToken::new(Some("a-token-for-backends")).unwrap();
    let mut allowed = PresenceServiceClient::with_interceptor(channel, token);
    let snapshot = allowed
        .snapshot(request())
        .await
        .expect("authenticated call")
        .into_inner();
    assert!(snapshot.participants.is_empty());
    stop.cancel();
}
