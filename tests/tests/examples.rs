//! The examples of `examples/` prove the backend API from outside: real
//! `meno-core` and `meno-bridge` processes (embedded store in a temporary
//! directory), the example backends as processes of their own, and
//! assistant-dialect WebSocket clients (`/ws/assistant?userId=…`).
//!
//! - the Rust assistant (`examples/assistant-backend`) streams its answer to
//!   a `text_message` as ordered `chat_response` chunks under one message id,
//!   `isComplete` on the last only, to the asking connection alone; it
//!   attaches again after the core restarts;
//! - the Python voice backend (`examples/python-voice-backend`, grpcio with
//!   code generated from `proto/` as it starts) writes the audio of each
//!   voice session byte for byte and in order, answers at `voice_end`, and
//!   exits cleanly on SIGTERM. Skipped only when python3 cannot import
//!   grpcio and `MENO_REQUIRE_PYTHON_GRPC` is unset.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use meno_tests::examples::{python_grpc_available, Example, REQUIRE_PYTHON_GRPC};
use meno_tests::process::{free_addr, Process};
use meno_tests::Client;
use serde_json::{json, Value};

/// How long a backend may take to attach (the Python one generates its gRPC
/// code first).
const ATTACH_WAIT: Duration = Duration::from_secs(60);
/// How long a reply may take.
const REPLY_WAIT: Duration = Duration::from_secs(15);

/// A core (embedded store in a temporary directory) and a bridge in front of
/// it, as processes.
struct Deployment {
    data: tempfile::TempDir,
    core: Option<Process>,
    core_addr: SocketAddr,
    _bridge: Process,
    bridge_addr: SocketAddr,
}

impl Deployment {
    async fn start() -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let core_addr = free_addr();
        let core = start_core(core_addr, &data).await;
        let bridge_addr = free_addr();
        let bridge = Process::bridge(bridge_addr, core_addr, &[]).await;
        Self {
            data,
            core: Some(core),
            core_addr,
            _bridge: bridge,
            bridge_addr,
        }
    }

    /// `kill -9` the core, then start it again on the same address and data.
    async fn restart_core(&mut self) {
        self.core.take().expect("a running core").kill();
        self.core = Some(start_core(self.core_addr, &self.data).await);
    }

    /// An assistant-dialect client of `user`.
    async fn client(&self, user: &str) -> Client {
        Client::connect(&format!(
            "ws://{}/ws/assistant?userId={user}",
            self.bridge_addr
        ))
        .await
    }
}

async fn start_core(addr: SocketAddr, data: &tempfile::TempDir) -> Process {
    let data_dir = data.path().display().to_string();
    Process::core(addr, &["--store", "embedded", "--data-dir", &data_dir]).await
}

/// Sends `{type, data}`.
async fn send(client: &mut Client, kind: &str, data: Value) {
    client
        .send_raw(&json!({ "type": kind, "data": data }).to_string())
        .await;
}

/// The next frame within [`REPLY_WAIT`].
async fn next_frame(client: &mut Client, waiting_for: &str) -> Value {
    client
        .try_recv(REPLY_WAIT)
        .await
        .unwrap_or_else(|| panic!("no frame within {REPLY_WAIT:?} while waiting for {waiting_for}"))
}

/// Whether `frame` is the retryable "no backend attached" error, which a
/// client may see while a backend is still attaching.
fn is_unavailable(frame: &Value) -> bool {
    frame["type"] == "error"
        && frame["data"]["code"] == "Unavailable"
        && frame["data"]["retryable"] == true
}

/// Sends a `text_message` and returns every `chat_response` chunk of the
/// answer, through the one with `isComplete`. A retryable `Unavailable`
/// (the backend not attached yet, e.g. just after a core restart) is
/// retried for a while, as a client would; any other frame fails the test.
async fn ask(client: &mut Client, content: &str) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + ATTACH_WAIT;
    'attempt: loop {
        send(
            client,
            "text_message",
            json!({"content": content, "sessionId": "chat-1"}),
        )
        .await;
        let mut chunks = Vec::new();
        loop {
            let frame = next_frame(client, "a chat_response").await;
            if chunks.is_empty() && is_unavailable(&frame) {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "still no assistant backend after {ATTACH_WAIT:?}: {frame}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue 'attempt;
            }
            assert_eq!(frame["type"], "chat_response", "unexpected frame {frame}");
            let complete = frame["data"]["isComplete"]
                .as_bool()
                .unwrap_or_else(|| panic!("isComplete is not a boolean in {frame}"));
            chunks.push(frame);
            if complete {
                return chunks;
            }
        }
    }
}

/// Asserts the shape of a streamed answer and returns its message id.
fn assert_streamed(chunks: &[Value], expected: &str) -> String {
    assert!(
        chunks.len() >= 2,
        "the answer should come in several chunks, got {chunks:#?}"
    );
    let message_id = chunks[0]["data"]["messageId"]
        .as_str()
        .expect("messageId is a string")
        .to_owned();
    assert_eq!(message_id.len(), 36, "a UUID message id: {message_id}");
    assert_eq!(message_id.matches('-').count(), 4, "a UUID: {message_id}");
    let last = chunks.len() - 1;
    for (index, chunk) in chunks.iter().enumerate() {
        assert_eq!(
            chunk["data"]["messageId"], message_id,
            "every chunk under one message id: {chunks:#?}"
        );
        assert_eq!(
            chunk["data"]["isComplete"],
            index == last,
            "isComplete on the last chunk only: {chunks:#?}"
        );
    }
    let text: String = chunks
        .iter()
        .map(|chunk| chunk["data"]["content"].as_str().expect("content"))
        .collect();
    assert_eq!(
        text, expected,
        "the chunks, in order, make the answer: {chunks:#?}"
    );
    message_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_assistant_streams_each_answer_in_chunks_to_the_asking_connection() {
    let system = Deployment::start().await;
    let mut assistant = Example::assistant(system.core_addr, "default");
    let attached = assistant.wait_attached(ATTACH_WAIT).await;
    assert!(attached.contains("assistant"), "{attached}");

    let mut ann = system.client("u1").await;
    let mut bob = system.client("u2").await;

    let first = ask(&mut ann, "hello from the test").await;
    let first_id = assert_streamed(&first, "You said: hello from the test");

    // Two users asking at once each get their own answer, and nothing else.
    let (ann_chunks, bob_chunks) = tokio::join!(
        ask(&mut ann, "what is   the   step?"),
        ask(&mut bob, "bonjour"),
    );
    let ann_id = assert_streamed(&ann_chunks, "You said: what is   the   step?");
    let bob_id = assert_streamed(&bob_chunks, "You said: bonjour");
    assert_ne!(ann_id, first_id, "each answer has its own message id");
    assert_ne!(ann_id, bob_id);
    ann.expect_silence(Duration::from_millis(300)).await;
    bob.expect_silence(Duration::from_millis(300)).await;

    assert!(assistant.is_running());
    let status = assistant.terminate(Duration::from_secs(10)).await;
    assert!(
        status.success(),
        "the assistant exits cleanly on SIGTERM: {status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_assistant_attaches_again_after_the_core_restarts() {
    let mut system = Deployment::start().await;
    let mut assistant = Example::assistant(system.core_addr, "default");
    assistant.wait_attached(ATTACH_WAIT).await;
    let mut ann = system.client("u1").await;
    assert_streamed(&ask(&mut ann, "before").await, "You said: before");
    drop(ann);

    system.restart_core().await;
    assistant.wait_attached(ATTACH_WAIT).await;

    let mut ann = system.client("u1").await;
    assert_streamed(&ask(&mut ann, "after").await, "You said: after");
}

/// Deterministic, varied bytes (xorshift), so a reordered, dropped or
/// doubled chunk shows.
fn audio(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Waits until the core hands voice to the backend: a probe session (start
/// and end, no audio) is tried again while the core answers that no voice
/// backend is attached yet (the backend prints its line once the stream is
/// open, a moment before the core has read its hello), and its answer is
/// read: "received 0 bytes".
async fn wait_until_voice_is_taken(client: &mut Client) {
    let deadline = tokio::time::Instant::now() + ATTACH_WAIT;
    for attempt in 0.. {
        let probe = format!("probe-{attempt}");
        send(
            client,
            "voice_start",
            json!({"audioFormat": "webm", "sessionId": probe}),
        )
        .await;
        send(client, "voice_end", json!({"sessionId": probe})).await;
        let frame = next_frame(client, "the answer to a probe voice session").await;
        if is_unavailable(&frame) {
            // The start was refused, so the end is too.
            let end = next_frame(client, "the refusal of the probe's end").await;
            assert_eq!(end["type"], "error", "unexpected frame {end}");
            assert!(
                tokio::time::Instant::now() < deadline,
                "still no voice backend after {ATTACH_WAIT:?}: {frame}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        assert_eq!(frame["type"], "chat_response", "unexpected frame {frame}");
        assert_eq!(
            frame["data"]["content"], "received 0 bytes of webm audio",
            "{frame}"
        );
        return;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_voice_backend_writes_the_audio_in_order_and_answers() {
    if !python_grpc_available() {
        eprintln!(
            "SKIPPED: python3 cannot import grpc and grpc_tools (pip install grpcio grpcio-tools); \
             set {REQUIRE_PYTHON_GRPC}=1 to make this a failure"
        );
        return;
    }
    let system = Deployment::start().await;
    let work = tempfile::tempdir().expect("temp dir");
    let out_dir = work.path().join("voice");
    let stubs_dir = work.path().join("stubs");
    let mut backend = Example::python_voice(system.core_addr, "default", &out_dir, &stubs_dir);
    let attached = backend.wait_attached(ATTACH_WAIT).await;
    assert!(attached.contains("voice"), "{attached}");
    assert!(
        stubs_dir
            .join("meno/realtime/v1/realtime_pb2_grpc.py")
            .exists(),
        "the gRPC code was generated from proto/ into {}",
        stubs_dir.display()
    );

    let mut ann = system.client("u1").await;
    wait_until_voice_is_taken(&mut ann).await;
    // Two voice sessions of one socket, interleaved; chunk sizes from one
    // byte to the dialect's largest (32 KiB). Under the default message
    // burst of the bridge (40).
    let sizes = [
        1usize,
        700,
        32 * 1024,
        4096,
        3,
        15_000,
        8192,
        1,
        20_000,
        512,
    ];
    let sessions = [("voice-a", "webm"), ("voice-b", "pcm16")];
    let mut sent: Vec<Vec<u8>> = vec![Vec::new(), Vec::new()];
    for (voice_id, format) in sessions {
        send(
            &mut ann,
            "voice_start",
            json!({"audioFormat": format, "sessionId": voice_id}),
        )
        .await;
    }
    for (index, size) in sizes.iter().enumerate() {
        for (which, (voice_id, _)) in sessions.iter().enumerate() {
            let chunk = audio(
                (index * 2 + which) as u64 + 1,
                size.saturating_sub(which).max(1),
            );
            sent[which].extend_from_slice(&chunk);
            let encoded = base64::engine::general_purpose::STANDARD.encode(&chunk);
            send(
                &mut ann,
                "voice_data",
                json!({"audioData": encoded, "sessionId": voice_id}),
            )
            .await;
        }
    }
    for (voice_id, _) in sessions {
        send(&mut ann, "voice_end", json!({"sessionId": voice_id})).await;
    }

    // One answer per voice session, in the order they ended.
    for (which, (voice_id, format)) in sessions.iter().enumerate() {
        let frame = next_frame(&mut ann, "the voice backend's answer").await;
        assert_eq!(frame["type"], "chat_response", "unexpected frame {frame}");
        assert_eq!(
            frame["data"]["content"],
            format!("received {} bytes of {format} audio", sent[which].len()),
            "{voice_id}: {frame}"
        );
        assert_eq!(frame["data"]["isComplete"], true, "{frame}");
        let written = std::fs::read(out_dir.join(format!("{voice_id}.{format}")))
            .unwrap_or_else(|err| panic!("{voice_id}: no file: {err}"));
        assert_eq!(
            written.len(),
            sent[which].len(),
            "{voice_id}: bytes written"
        );
        assert!(
            written == sent[which],
            "{voice_id}: the file differs from the audio sent (first difference at byte {:?})",
            written
                .iter()
                .zip(&sent[which])
                .position(|(left, right)| left != right)
        );
    }
    ann.expect_silence(Duration::from_millis(300)).await;

    let status = backend.terminate(Duration::from_secs(10)).await;
    assert!(
        status.success(),
        "the voice backend exits cleanly on SIGTERM: {status}"
    );
}
