//! Backend streams over gRPC: a fake backend attaches to an in-process core
//! (and over TCP), a bridge submits its clients' text and voice, and the
//! backend's replies reach the bridge's user stream as `UserEvent.direct`.

use std::sync::Arc;
use std::time::Duration;

use meno_core::clock::SystemClock;
use meno_core::config::SessionConfig;
use meno_core::server::Core;
use meno_core::store::MemoryStore;
use meno_proto::{
    backend_service_client::BackendServiceClient, backend_upstream, backend_work, direct_message,
    submit_request, user_event, user_service_client::UserServiceClient, user_stream_item,
    BackendHello, BackendKind, BackendReply, BackendUpstream, BackendWork, ChatResponse,
    DirectMessage, SetInterestRequest, SubmitRequest, SubscribeUsersRequest, TextMessage,
    UserEvent, UserRef, UserStreamItem, VoiceData, VoiceEnd, VoiceStart,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

async fn core_with(backend_buffer: usize) -> (Core, Channel) {
    let config = SessionConfig {
        backend_buffer,
        ..SessionConfig::default()
    };
    let core = Core::new(Arc::new(MemoryStore::new()), Arc::new(SystemClock), config).await;
    let channel = core.in_process_channel();
    (core, channel)
}

/// A backend attached with `hello`: where it sends replies, what it gets.
struct FakeBackend {
    upstream: mpsc::Sender<BackendUpstream>,
    work: Streaming<BackendWork>,
}

async fn attach(channel: Channel, kind: BackendKind, backend_id: &str) -> FakeBackend {
    let (upstream, items) = mpsc::channel(16);
    let hello = backend_upstream::Item::Hello(BackendHello {
        tenant: "acme".to_owned(),
        kind: kind.into(),
        backend_id: backend_id.to_owned(),
    });
    upstream
        .send(BackendUpstream { item: Some(hello) })
        .await
        .unwrap();
    let work = BackendServiceClient::new(channel)
        .attach(ReceiverStream::new(items))
        .await
        .expect("attach")
        .into_inner();
    let backend = FakeBackend { upstream, work };
    // The hello is handled by a task of the core: wait until it routes.
    tokio::time::sleep(Duration::from_millis(50)).await;
    backend
}

impl FakeBackend {
    async fn next(&mut self) -> BackendWork {
        tokio::time::timeout(Duration::from_secs(5), self.work.message())
            .await
            .expect("work in time")
            .expect("the stream goes on")
            .expect("an item")
    }

    async fn reply(&self, connection_id: &str, user_id: &str, message: DirectMessage) {
        let reply = backend_upstream::Item::Reply(BackendReply {
            connection_id: connection_id.to_owned(),
            user_id: user_id.to_owned(),
            message: Some(message),
            trace_id: "t-reply".to_owned(),
        });
        self.upstream
            .send(BackendUpstream { item: Some(reply) })
            .await
            .unwrap();
    }
}

fn submit(connection_id: &str, item: submit_request::Item) -> SubmitRequest {
    SubmitRequest {
        user: Some(UserRef {
            tenant: "acme".to_owned(),
            user_id: "ann".to_owned(),
        }),
        connection_id: connection_id.to_owned(),
        trace_id: String::new(),
        item: Some(item),
    }
}

fn text(content: &str) -> submit_request::Item {
    submit_request::Item::Text(TextMessage {
        content: content.to_owned(),
        session_id: "chat-1".to_owned(),
    })
}

fn content_of(work: &BackendWork) -> &str {
    match &work.item {
        Some(backend_work::Item::Text(text)) => &text.content,
        other => panic!("a text, got {other:?}"),
    }
}

async fn bridge(channel: Channel, user_id: &str) -> Streaming<UserStreamItem> {
    let mut users = UserServiceClient::new(channel);
    let mut stream = users
        .subscribe_users(SubscribeUsersRequest {
            bridge_id: "bridge-a#1".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    stream.message().await.unwrap().unwrap();
    users
        .set_interest(SetInterestRequest {
            bridge_id: "bridge-a#1".to_owned(),
            add: vec![UserRef {
                tenant: "acme".to_owned(),
                user_id: user_id.to_owned(),
            }],
            remove: Vec::new(),
            replace: true,
        })
        .await
        .unwrap();
    stream
}

async fn next_direct(stream: &mut Streaming<UserStreamItem>) -> (UserEvent, DirectMessage) {
    let item = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("an event in time")
        .unwrap()
        .unwrap();
    let Some(user_stream_item::Item::Event(event)) = item.item else {
        panic!("an event, got {item:?}");
    };
    let Some(user_event::Kind::Direct(message)) = event.kind.clone() else {
        panic!("a direct message, got {event:?}");
    };
    (event, message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn texts_reach_the_assistant_backend_in_order() {
    let (_core, channel) = core_with(256).await;
    let mut backend = attach(channel.clone(), BackendKind::Assistant, "assistant-1").await;
    let mut bridge_client = BackendServiceClient::new(channel);
    for n in 0..20 {
        bridge_client
            .submit(submit("c1", text(&format!("q{n}"))))
            .await
            .expect("submit");
    }
    for n in 0..20 {
        let work = backend.next().await;
        assert_eq!(content_of(&work), format!("q{n}"));
        assert_eq!(work.connection_id, "c1");
        assert_eq!(work.user.as_ref().unwrap().user_id, "ann");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voice_chunks_reach_the_voice_backend_byte_for_byte_in_order() {
    let (_core, channel) = core_with(256).await;
    let mut backend = attach(channel.clone(), BackendKind::Voice, "voice-1").await;
    let mut bridge_client = BackendServiceClient::new(channel);
    let chunks: Vec<Vec<u8>> = (0..16_u32)
        .map(|n| {
            (0..1000_u32)
                .map(|i| ((n * 31 + i * 7) % 256) as u8)
                .collect()
        })
        .collect();
    let start = submit_request::Item::VoiceStart(VoiceStart {
        voice_session_id: "v1".to_owned(),
        audio_format: "webm".to_owned(),
    });
    bridge_client.submit(submit("c1", start)).await.unwrap();
    for (index, audio) in chunks.iter().enumerate() {
        let data = submit_request::Item::VoiceData(VoiceData {
            voice_session_id: "v1".to_owned(),
            audio: audio.clone(),
            chunk_index: index as u64,
        });
        bridge_client.submit(submit("c1", data)).await.unwrap();
    }
    let end = submit_request::Item::VoiceEnd(VoiceEnd {
        voice_session_id: "v1".to_owned(),
    });
    bridge_client.submit(submit("c1", end)).await.unwrap();

    assert!(matches!(
        backend.next().await.item,
        Some(backend_work::Item::VoiceStart(_))
    ));
    let mut received = Vec::new();
    for _ in &chunks {
        match backend.next().await.item {
            Some(backend_work::Item::VoiceData(data)) => received.push(data.audio),
            other => panic!("voice data, got {other:?}"),
        }
    }
    assert_eq!(received, chunks);
    assert!(matches!(
        backend.next().await.item,
        Some(backend_work::Item::VoiceEnd(_))
    ));
    let after_end = VoiceData {
        voice_session_id: "v1".to_owned(),
        audio: vec![1],
        chunk_index: 99,
    };
    let status = bridge_client
        .submit(submit("c1", submit_request::Item::VoiceData(after_end)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn no_backend_attached_is_unavailable_at_once() {
    let (_core, channel) = core_with(256).await;
    let status = BackendServiceClient::new(channel)
        .submit(submit("c1", text("anyone?")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("acme") && status.message().contains("assistant"),
        "{status:?}"
    );
}

#[tokio::test]
async fn an_attach_that_does_not_start_with_hello_is_invalid_argument() {
    let (_core, channel) = core_with(256).await;
    let (upstream, items) = mpsc::channel(1);
    let reply = backend_upstream::Item::Reply(BackendReply::default());
    upstream
        .send(BackendUpstream { item: Some(reply) })
        .await
        .unwrap();
    // Refused before the work stream opens: the core reads the hello first.
    let status: Status = BackendServiceClient::new(channel)
        .attach(ReceiverStream::new(items))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_reach_the_bridge_for_the_originating_connection() {
    let (_core, channel) = core_with(256).await;
    let mut stream = bridge(channel.clone(), "ann").await;
    let mut backend = attach(channel.clone(), BackendKind::Assistant, "assistant-1").await;
    BackendServiceClient::new(channel)
        .submit(submit("c1", text("hello")))
        .await
        .unwrap();
    let work = backend.next().await;
    for (n, (content, is_complete)) in [("Hel", false), ("lo!", true)].into_iter().enumerate() {
        let message = DirectMessage {
            kind: Some(direct_message::Kind::ChatResponse(ChatResponse {
                message_id: "r1".to_owned(),
                content: content.to_owned(),
                is_complete,
            })),
        };
        backend
            .reply(&work.connection_id, "ann", message.clone())
            .await;
        let (event, received) = next_direct(&mut stream).await;
        assert_eq!(event.connection_id, "c1", "chunk {n}");
        assert_eq!(event.trace_id, "t-reply");
        assert_eq!(received, message);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_goes_away_errors_its_work_and_the_next_takes_new_work() {
    let (_core, channel) = core_with(256).await;
    let mut stream = bridge(channel.clone(), "ann").await;
    let mut first = attach(channel.clone(), BackendKind::Assistant, "first").await;
    let mut second = attach(channel.clone(), BackendKind::Assistant, "second").await;
    let mut bridge_client = BackendServiceClient::new(channel);
    bridge_client
        .submit(submit("c1", text("q1")))
        .await
        .unwrap();
    assert_eq!(content_of(&first.next().await), "q1");
    drop(first);
    let (event, message) = next_direct(&mut stream).await;
    assert_eq!(event.connection_id, "c1");
    let Some(direct_message::Kind::Error(error)) = message.kind else {
        panic!("an error, got {message:?}");
    };
    assert_eq!(error.code, "Unavailable");
    assert!(error.retryable);
    assert_eq!(error.message, "the backend went away");
    for n in 2..5 {
        bridge_client
            .submit(submit("c1", text(&format!("q{n}"))))
            .await
            .unwrap();
        assert_eq!(content_of(&second.next().await), format!("q{n}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_does_not_read_makes_submits_busy_not_memory() {
    let (_core, channel) = core_with(4).await;
    let _stalled = attach(channel.clone(), BackendKind::Assistant, "stalled").await;
    let mut bridge_client = BackendServiceClient::new(channel);
    let big = "x".repeat(60 * 1024);
    let mut busy = None;
    for _ in 0..200 {
        match bridge_client.submit(submit("c1", text(&big))).await {
            Ok(_) => {}
            Err(status) => {
                busy = Some(status);
                break;
            }
        }
    }
    let status = busy.expect("a full buffer refuses work");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains("backend busy"), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_attaches_over_tcp() {
    let (core, _) = core_with(256).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let serving = core.clone();
    let serve_stop = stop.clone();
    tokio::spawn(async move { serving.serve(listener, serve_stop).await });
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let mut backend = attach(channel.clone(), BackendKind::Assistant, "tcp").await;
    BackendServiceClient::new(channel)
        .submit(submit("c1", text("over tcp")))
        .await
        .unwrap();
    assert_eq!(content_of(&backend.next().await), "over tcp");
    stop.cancel();
}
