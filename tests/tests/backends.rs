//! Seed 003's assistant dialect and the backends behind it: a client's text
//! and voice reach the tenant's attached backend in order, byte for byte;
//! the backend's replies reach the originating connection as seed 001's
//! `chat_response` chunks; without a backend, or with one that does not keep
//! up, the client gets a retryable `error` at once and memory stays bounded.
//! With `--auth jwt` the token, not the query, says who the client is.

use std::time::Duration;

use base64::Engine;
use meno_bridge::codec::assistant::MAX_AUDIO_CHUNK_BYTES;
use meno_proto::backend_service_client::BackendServiceClient;
use meno_proto::{
    backend_upstream, backend_work, direct_message, BackendHello, BackendKind, BackendReply,
    BackendUpstream, BackendWork, ChatResponse, DirectMessage,
};
use meno_tests::jwt::{jwt_bridge_config, token};
use meno_tests::{session_id, test_bridge_config, Client, Mode, System};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

/// A backend attached over gRPC: its work stream, and a sender for replies.
struct FakeBackend {
    work: Streaming<BackendWork>,
    replies: mpsc::Sender<BackendUpstream>,
}

async fn attach(system: &System, tenant: &str, kind: BackendKind) -> FakeBackend {
    let addr = system.core_addr.expect("backends attach to a split core");
    let mut client = BackendServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let (replies, upstream) = mpsc::channel(64);
    replies
        .send(BackendUpstream {
            item: Some(backend_upstream::Item::Hello(BackendHello {
                tenant: tenant.to_owned(),
                kind: kind as i32,
                backend_id: format!("test-{}", session_id("backend")),
            })),
        })
        .await
        .unwrap();
    let work = client
        .attach(ReceiverStream::new(upstream))
        .await
        .unwrap()
        .into_inner();
    // The core answers Attach once the backend is in its pool: work sent
    // from now on reaches it.
    FakeBackend { work, replies }
}

impl FakeBackend {
    async fn next(&mut self) -> BackendWork {
        tokio::time::timeout(meno_tests::WAIT, self.work.message())
            .await
            .expect("work in time")
            .expect("stream ok")
            .expect("stream open")
    }

    async fn reply(&self, to: &BackendWork, message_id: &str, content: &str, is_complete: bool) {
        let user = to.user.clone().unwrap_or_default();
        self.replies
            .send(BackendUpstream {
                item: Some(backend_upstream::Item::Reply(BackendReply {
                    connection_id: to.connection_id.clone(),
                    user_id: user.user_id,
                    trace_id: to.trace_id.clone(),
                    message: Some(DirectMessage {
                        kind: Some(direct_message::Kind::ChatResponse(ChatResponse {
                            message_id: message_id.to_owned(),
                            content: content.to_owned(),
                            is_complete,
                        })),
                    }),
                })),
            })
            .await
            .unwrap();
    }
}

async fn assistant_client(system: &System, tenant: &str, user: &str) -> Client {
    Client::connect(&format!(
        "ws://{}/ws/assistant?userId={user}&tenant={tenant}",
        system.bridge_addr
    ))
    .await
}

async fn send(client: &mut Client, kind: &str, data: serde_json::Value) {
    client
        .send_raw(&json!({"type": kind, "data": data}).to_string())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_reaches_the_assistant_backend_and_its_streamed_reply_arrives_in_order() {
    let system = System::start(Mode::Split).await;
    let tenant = session_id("tenant");
    let mut backend = attach(&system, &tenant, BackendKind::Assistant).await;
    let mut client = assistant_client(&system, &tenant, "u1").await;
    send(&mut client, "ping", json!({})).await;
    assert_eq!(client.recv().await, json!({"type": "pong"}));

    send(
        &mut client,
        "text_message",
        json!({"content": "Hello, AI!", "sessionId": "chat-session-123"}),
    )
    .await;
    let work = backend.next().await;
    let Some(backend_work::Item::Text(text)) = &work.item else {
        panic!("expected text, got {work:?}");
    };
    assert_eq!(text.content, "Hello, AI!");
    assert_eq!(text.session_id, "chat-session-123");
    assert_eq!(work.user.as_ref().unwrap().user_id, "u1");
    assert_eq!(work.user.as_ref().unwrap().tenant, tenant);

    let chunks = ["Hel", "lo ", "there", "!"];
    for (index, chunk) in chunks.iter().enumerate() {
        backend
            .reply(&work, "reply-1", chunk, index == chunks.len() - 1)
            .await;
    }
    for (index, chunk) in chunks.iter().enumerate() {
        let frame = client.expect("chat_response").await;
        assert_eq!(frame["data"]["messageId"], "reply-1");
        assert_eq!(frame["data"]["content"], *chunk);
        assert_eq!(frame["data"]["isComplete"], index == chunks.len() - 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voice_reaches_the_voice_backend_byte_for_byte_and_in_order() {
    let system = System::start(Mode::Split).await;
    let tenant = session_id("tenant");
    let mut backend = attach(&system, &tenant, BackendKind::Voice).await;
    let mut client = assistant_client(&system, &tenant, "u1").await;
    send(
        &mut client,
        "voice_start",
        json!({"audioFormat": "webm", "sessionId": "voice-1"}),
    )
    .await;
    let chunks: Vec<Vec<u8>> = (0..20u8)
        .map(|n| (0..=255u8).map(|b| b ^ n).collect())
        .collect();
    for chunk in &chunks {
        let audio = base64::engine::general_purpose::STANDARD.encode(chunk);
        send(
            &mut client,
            "voice_data",
            json!({"audioData": audio, "sessionId": "voice-1"}),
        )
        .await;
    }
    send(&mut client, "voice_end", json!({"sessionId": "voice-1"})).await;

    let Some(backend_work::Item::VoiceStart(start)) = backend.next().await.item else {
        panic!("expected voice_start first");
    };
    assert_eq!(
        (start.voice_session_id.as_str(), start.audio_format.as_str()),
        ("voice-1", "webm")
    );
    let mut received = Vec::new();
    loop {
        match backend.next().await.item {
            Some(backend_work::Item::VoiceData(data)) => {
                assert_eq!(data.voice_session_id, "voice-1");
                assert_eq!(data.chunk_index, received.len() as u64, "numbered in order");
                received.push(data.audio);
            }
            Some(backend_work::Item::VoiceEnd(end)) => {
                assert_eq!(end.voice_session_id, "voice-1");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(received, chunks, "every chunk, in order, byte for byte");
    client.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_backend_the_client_gets_a_retryable_error_at_once() {
    let system = System::start(Mode::Monolithic).await;
    let tenant = session_id("tenant");
    let mut client = assistant_client(&system, &tenant, "u1").await;
    send(&mut client, "text_message", json!({"content": "anyone?"})).await;
    let error = client.expect("error").await;
    assert_eq!(error["data"]["code"], "Unavailable");
    assert_eq!(error["data"]["retryable"], true);
    assert_eq!(error["data"]["type"], "text_message");
    // Voice data of a session never started, and bad input: errors, and the
    // socket stays usable.
    send(
        &mut client,
        "voice_data",
        json!({"audioData": "AAAA", "sessionId": "never-started"}),
    )
    .await;
    let error = client.expect("error").await;
    assert!(
        matches!(
            error["data"]["code"].as_str(),
            Some("NotFound" | "Unavailable")
        ),
        "{error}"
    );
    send(
        &mut client,
        "voice_data",
        json!({"audioData": "not base64!", "sessionId": "v"}),
    )
    .await;
    assert_eq!(
        client.expect("error").await["data"]["code"],
        "InvalidArgument"
    );
    send(&mut client, "ping", json!({})).await;
    assert_eq!(client.recv().await, json!({"type": "pong"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_does_not_keep_up_costs_bounded_memory_and_the_client_hears_it() {
    let bridge = meno_bridge::config::BridgeConfig {
        rate_limits: meno_bridge::limits::LimitsConfig {
            messages_per_second: 100_000.0,
            message_burst: 100_000,
            ..meno_bridge::limits::LimitsConfig::default()
        },
        ..test_bridge_config()
    };
    let system = System::start_custom(
        Mode::Split,
        meno_tests::test_store().await,
        meno_tests::test_session_config(),
        bridge,
        None,
    )
    .await;
    let tenant = session_id("tenant");
    // Attached, and never reads its work.
    let _stalled = attach(&system, &tenant, BackendKind::Voice).await;
    let mut client = assistant_client(&system, &tenant, "u1").await;
    send(
        &mut client,
        "voice_start",
        json!({"audioFormat": "pcm16", "sessionId": "voice-slow"}),
    )
    .await;
    let audio = base64::engine::general_purpose::STANDARD.encode(vec![7u8; 16 * 1024]);
    let mut refused = None;
    for sent in 0..2_000 {
        send(
            &mut client,
            "voice_data",
            json!({"audioData": audio, "sessionId": "voice-slow"}),
        )
        .await;
        if let Some(frame) = client.try_recv(Duration::from_millis(5)).await {
            refused = Some((sent, frame));
            break;
        }
    }
    let (sent, error) = refused.expect("the client is told the backend cannot keep up");
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["data"]["retryable"], true);
    assert!(
        sent < 1_500,
        "refused after {sent} chunks of 16 KiB: the core's buffer is bounded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_mid_session_ends_its_voice_session_at_the_backend() {
    let system = System::start(Mode::Split).await;
    let tenant = session_id("tenant");
    let mut backend = attach(&system, &tenant, BackendKind::Voice).await;
    let mut client = assistant_client(&system, &tenant, "u1").await;
    send(
        &mut client,
        "voice_start",
        json!({"audioFormat": "webm", "sessionId": "left-open"}),
    )
    .await;
    send(
        &mut client,
        "voice_data",
        json!({"audioData": "AAEC", "sessionId": "left-open"}),
    )
    .await;
    assert!(matches!(
        backend.next().await.item,
        Some(backend_work::Item::VoiceStart(_))
    ));
    assert!(matches!(
        backend.next().await.item,
        Some(backend_work::Item::VoiceData(_))
    ));
    client.close().await;
    let Some(backend_work::Item::VoiceEnd(end)) = backend.next().await.item else {
        panic!("the backend is told the voice session ended");
    };
    assert_eq!(end.voice_session_id, "left-open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_jwt_auth_the_token_names_the_user_and_the_query_may_not_contradict_it() {
    let system = System::start_with_bridge(Mode::Split, jwt_bridge_config()).await;
    let tenant = session_id("tenant");
    let mut backend = attach(&system, &tenant, BackendKind::Assistant).await;
    let ann = token("ann", &tenant);
    for (query, status, reason) in [
        ("userId=ann".to_owned(), 401, "missing token"),
        (format!("token={ann}&userId=bob"), 401, "userId contradicts"),
        (
            format!("token={ann}&tenant=umbrella"),
            401,
            "tenant contradicts",
        ),
        // The query may repeat the token's identity.
        (format!("token={ann}&userId=ann&tenant={tenant}"), 101, ""),
    ] {
        let (got, body) =
            meno_tests::http_get(system.bridge_addr, &format!("/ws/assistant?{query}")).await;
        assert_eq!(got, status, "{query}: {body}");
        assert!(body.contains(reason), "{body:?} should say {reason:?}");
    }

    let mut client = Client::connect(&format!(
        "ws://{}/ws/assistant?token={ann}",
        system.bridge_addr
    ))
    .await;
    send(&mut client, "text_message", json!({"content": "who am I?"})).await;
    let work = backend.next().await;
    let user = work.user.expect("work names its user");
    assert_eq!(
        (user.tenant.as_str(), user.user_id.as_str()),
        (tenant.as_str(), "ann")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subprotocol_selects_the_dialect_and_refused_voice_leaves_the_socket_usable() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let system = System::start(Mode::Split).await;
    let tenant = session_id("tenant");
    let mut backend = attach(&system, &tenant, BackendKind::Voice).await;
    // The ordinary path, not /ws/assistant: the subprotocol decides.
    let mut request = system
        .ws_url(&format!("userId=u1&tenant={tenant}"))
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "assistant.v1".parse().unwrap());
    let (ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers()["Sec-WebSocket-Protocol"], "assistant.v1");
    let mut client = Client::from_stream(ws);
    send(&mut client, "ping", json!({})).await;
    assert_eq!(client.recv().await, json!({"type": "pong"}));

    send(
        &mut client,
        "voice_start",
        json!({"audioFormat": "pcm16", "sessionId": "voice-1"}),
    )
    .await;
    let at_limit = vec![1u8; MAX_AUDIO_CHUNK_BYTES];
    let over_limit = vec![2u8; MAX_AUDIO_CHUNK_BYTES + 1];
    for audio in [&over_limit, &at_limit] {
        let audio = base64::engine::general_purpose::STANDARD.encode(audio);
        send(
            &mut client,
            "voice_data",
            json!({"audioData": audio, "sessionId": "voice-1"}),
        )
        .await;
    }
    let error = client.expect("error").await;
    assert_eq!(error["data"]["code"], "InvalidArgument", "{error}");
    assert_eq!(error["data"]["type"], "voice_data");
    send(
        &mut client,
        "voice_data",
        json!({"audioData": "AAAA", "sessionId": "voice-2"}),
    )
    .await;
    let error = client.expect("error").await;
    assert_eq!(error["data"]["code"], "NotFound", "{error}");
    assert_eq!(error["data"]["type"], "voice_data");
    send(&mut client, "ping", json!({})).await;
    assert_eq!(client.recv().await, json!({"type": "pong"}));

    send(&mut client, "voice_end", json!({"sessionId": "voice-1"})).await;
    // The backend saw the start, the chunk at the limit and the end: nothing
    // of what was refused.
    assert!(matches!(
        backend.next().await.item,
        Some(backend_work::Item::VoiceStart(_))
    ));
    let Some(backend_work::Item::VoiceData(data)) = backend.next().await.item else {
        panic!("expected the chunk at the limit");
    };
    assert_eq!(data.audio, at_limit);
    assert!(matches!(
        backend.next().await.item,
        Some(backend_work::Item::VoiceEnd(_))
    ));
}
