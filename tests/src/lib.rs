//! Harness for the end-to-end tests: a real core and bridge on loopback
//! sockets (in this process, or as real binaries), and WebSocket clients that
//! speak the seed-000 wire format.
#![forbid(unsafe_code)]
#![allow(missing_docs)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use meno_bridge::config::BridgeConfig;
use meno_bridge::core_client::CoreClient;
use meno_bridge::server::Bridge;
use meno_core::clock::{Clock, ManualClock};
use meno_core::config::SessionConfig;
use meno_core::server::Core;
use meno_core::store::{FjallStore, MemoryStore, ScyllaStore, Store};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

pub mod examples;
pub mod faults;
pub mod jwt;
pub mod nexus;
pub mod otlp;
pub mod process;
pub mod raw;

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(10);

/// Monolithic (core in the bridge's process, in-memory transport) or split
/// (core on its own TCP port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Monolithic,
    Split,
}

/// A running system: core + bridge, with a manual clock.
#[derive(Debug)]
pub struct System {
    pub bridge_addr: SocketAddr,
    pub core_addr: Option<SocketAddr>,
    pub clock: ManualClock,
    pub core: Core,
    stop: CancellationToken,
    _data: Option<tempfile::TempDir>,
}

/// Session policy for tests: fast ticks, so manual-clock expiries show at once.
pub fn test_session_config() -> SessionConfig {
    SessionConfig {
        tick_interval: Duration::from_millis(10),
        ..SessionConfig::default()
    }
}

/// Bridge settings for tests: refreshes far apart, so only what a test does
/// extends a connection's TTL on the manual clock.
pub fn test_bridge_config() -> BridgeConfig {
    BridgeConfig {
        refresh_interval: Duration::from_secs(3600),
        ..BridgeConfig::default()
    }
}

/// The store of [`System::start`]: the memory store, or with
/// `MENO_TEST_STORE=scylla` the Scylla store on the shared test keyspace of
/// the CQL server at `MENO_CQL_NODES` (so every scenario also runs on CQL).
pub async fn test_store() -> Arc<dyn Store> {
    match std::env::var("MENO_TEST_STORE").as_deref() {
        Ok("scylla") => Arc::new(
            scylla_test_store("MENO_TEST_STORE=scylla")
                .await
                .unwrap_or_else(|| {
                    panic!(
                        "MENO_TEST_STORE=scylla but no CQL server at {:?}",
                        meno_core::store::scylla::testing::cql_nodes()
                    )
                }),
        ),
        Ok("memory") | Err(_) => Arc::new(MemoryStore::new()),
        Ok(other) => panic!("MENO_TEST_STORE={other}: expected memory or scylla"),
    }
}

/// A Scylla store on the shared, migrated test keyspace; `None` when no CQL
/// server answers (and `MENO_REQUIRE_CQL` is not set).
pub async fn scylla_test_store(test: &str) -> Option<ScyllaStore> {
    meno_core::store::scylla::testing::migrated_store(
        test,
        meno_core::store::scylla::testing::SHARED_TEST_KEYSPACE,
    )
    .await
}

impl System {
    /// A system on the [`test_store`] (memory unless `MENO_TEST_STORE` says).
    pub async fn start(mode: Mode) -> Self {
        Self::start_with(mode, test_store().await, test_session_config(), None).await
    }

    /// A system on the embedded store (its default engine, fjall) in a fresh
    /// directory.
    pub async fn start_embedded(mode: Mode) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(FjallStore::open(dir.path()).expect("open embedded store"));
        Self::start_with(mode, store, test_session_config(), Some(dir)).await
    }

    /// A system on the memory store with these bridge settings.
    pub async fn start_with_bridge(mode: Mode, bridge_config: BridgeConfig) -> Self {
        Self::start_custom(
            mode,
            Arc::new(MemoryStore::new()),
            test_session_config(),
            bridge_config,
            None,
        )
        .await
    }

    pub async fn start_with(
        mode: Mode,
        store: Arc<dyn Store>,
        config: SessionConfig,
        data: Option<tempfile::TempDir>,
    ) -> Self {
        Self::start_custom(mode, store, config, test_bridge_config(), data).await
    }

    pub async fn start_custom(
        mode: Mode,
        store: Arc<dyn Store>,
        config: SessionConfig,
        bridge_config: BridgeConfig,
        data: Option<tempfile::TempDir>,
    ) -> Self {
        Self::start_full(mode, store, config, bridge_config, data, None).await
    }

    /// Everything configurable; `tls` is a PEM certificate and key for wss.
    pub async fn start_full(
        mode: Mode,
        store: Arc<dyn Store>,
        config: SessionConfig,
        bridge_config: BridgeConfig,
        data: Option<tempfile::TempDir>,
        tls: Option<(&Path, &Path)>,
    ) -> Self {
        if std::env::var_os("RUST_LOG").is_some() {
            meno_core::telemetry::init(false);
        }
        let clock = ManualClock::new(1_790_000_000_000);
        let core = Core::new(store, Arc::new(clock.clone()) as Arc<dyn Clock>, config).await;
        let stop = CancellationToken::new();
        let (core_client, core_addr) = match mode {
            Mode::Monolithic => (
                CoreClient::in_process(core.in_process_routes(), bridge_config.core_timeout),
                None,
            ),
            Mode::Split => {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind core");
                let addr = listener.local_addr().expect("core addr");
                let serving = core.clone();
                let stop = stop.clone();
                tokio::spawn(async move { serving.serve(listener, stop).await });
                let client =
                    CoreClient::connect_lazy(&format!("http://{addr}"), bridge_config.core_timeout)
                        .expect("core client");
                (client, Some(addr))
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind bridge");
        let bridge_addr = listener.local_addr().expect("bridge addr");
        let mut bridge = Bridge::new(core_client, bridge_config);
        if let Some((cert, key)) = tls {
            bridge = bridge.with_tls(cert, key).expect("TLS certificate and key");
        }
        let bridge_stop = stop.clone();
        tokio::spawn(async move {
            bridge
                .serve(listener, bridge_stop, Duration::from_secs(5))
                .await
        });
        Self {
            bridge_addr,
            core_addr,
            clock,
            core,
            stop,
            _data: data,
        }
    }

    /// Starts another bridge on the same core (split mode only) and returns
    /// its address; it stops with the system.
    pub async fn start_bridge(&self, bridge_config: BridgeConfig) -> SocketAddr {
        let core_addr = self.core_addr.expect("a second bridge needs a split core");
        let client =
            CoreClient::connect_lazy(&format!("http://{core_addr}"), bridge_config.core_timeout)
                .expect("core client");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind bridge");
        let addr = listener.local_addr().expect("bridge addr");
        let bridge = Bridge::new(client, bridge_config);
        let stop = self.stop.clone();
        tokio::spawn(async move { bridge.serve(listener, stop, Duration::from_secs(5)).await });
        addr
    }

    /// The WebSocket URL with a seed-000 query.
    pub fn ws_url(&self, query: &str) -> String {
        format!("ws://{}/ws?{query}", self.bridge_addr)
    }

    /// Connects a participant and reads its start frames (`chat.sync`,
    /// `presence.snapshot`, and the lease when one is active).
    pub async fn join(&self, session: &str, participant: &str, role: &str) -> Client {
        let query = format!(
            "sessionId={session}&participantId={participant}&name={participant}-name&role={role}&client=web"
        );
        Client::connect(&self.ws_url(&query)).await
    }

    /// A gRPC channel to the core: over TCP in split mode, in process when
    /// monolithic.
    pub async fn core_channel(&self) -> tonic::transport::Channel {
        match self.core_addr {
            Some(addr) => tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .expect("core URL")
                .connect()
                .await
                .expect("core reachable"),
            None => self.core.in_process_channel(),
        }
    }

    /// Moves the manual clock.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

impl Drop for System {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A JSON WebSocket client: seed 000's by default (a frame's kind is its
/// `type`); other dialects name the kind field and check every frame.
#[derive(Debug)]
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The field naming a frame's kind: `type`, or NexusChat's `event`.
    kind_field: &'static str,
    /// Asserted of every frame received.
    check: fn(&Value),
}

/// What the next read of a socket brought.
#[derive(Debug)]
pub enum Received {
    Frame(Value),
    Closed(Option<u16>),
    Ended,
}

impl Client {
    pub async fn connect(url: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .unwrap_or_else(|err| panic!("connect {url}: {err}"));
        Self::over(ws)
    }

    /// Wraps an already connected WebSocket.
    pub fn from_stream(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Self {
        Self::over(ws)
    }

    fn over(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Self {
        Self {
            ws,
            kind_field: "type",
            check: |_| {},
        }
    }

    /// The same socket, reading frames whose kind is `kind_field` and
    /// asserting `check` of each.
    pub fn speaking(mut self, kind_field: &'static str, check: fn(&Value)) -> Self {
        self.kind_field = kind_field;
        self.check = check;
        self
    }

    /// The WebSocket itself, for a test that reads and writes at once.
    pub fn into_inner(self) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        self.ws
    }

    /// Connects with a tiny kernel receive buffer, so a client that stops
    /// reading backs up into the server quickly.
    pub async fn connect_with_small_buffer(url: &str, addr: SocketAddr) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let stream = socket.connect(addr).await.expect("connect");
        let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
            .await
            .unwrap_or_else(|err| panic!("connect {url}: {err}"));
        Self::over(ws)
    }

    /// The next frame, close or end, failing the test after [`WAIT`].
    pub async fn next(&mut self) -> Received {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let message = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("nothing within {WAIT:?}"));
            return match message {
                Some(Ok(Message::Text(text))) => {
                    Received::Frame(serde_json::from_str(&text).expect("server sent JSON"))
                }
                Some(Ok(Message::Close(frame))) => {
                    Received::Closed(frame.map(|frame: CloseFrame| u16::from(frame.code)))
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => Received::Ended,
            };
        }
    }

    /// Sends a frame; false when the socket is already closed.
    pub async fn try_send(&mut self, action: &str, payload: Value) -> bool {
        let text = json!({"action": action, "payload": payload}).to_string();
        self.ws.send(Message::Text(text.into())).await.is_ok()
    }

    /// Sends `{action, payload}`.
    pub async fn send(&mut self, action: &str, payload: Value) {
        self.send_raw(&json!({"action": action, "payload": payload}).to_string())
            .await;
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("send frame");
    }

    pub async fn send_binary(&mut self, bytes: &[u8]) {
        self.ws
            .send(Message::Binary(bytes.to_vec().into()))
            .await
            .expect("send frame");
    }

    pub async fn chat(&mut self, message_id: &str, content: &str) {
        self.send(
            "chat.send",
            json!({"messageId": message_id, "content": content}),
        )
        .await;
    }

    /// The next JSON frame, failing the test after [`WAIT`].
    pub async fn recv(&mut self) -> Value {
        match self.try_recv(WAIT).await {
            Some(value) => value,
            None => panic!("no frame within {WAIT:?}"),
        }
    }

    /// The next JSON frame within `wait`, or `None`.
    pub async fn try_recv(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()?;
            match message {
                Some(Ok(Message::Text(text))) => {
                    let frame: Value = serde_json::from_str(&text).expect("server sent JSON");
                    (self.check)(&frame);
                    return Some(frame);
                }
                Some(Ok(Message::Close(frame))) => panic!("closed by server: {frame:?}"),
                Some(Ok(_)) => continue,
                Some(Err(err)) => panic!("socket error: {err}"),
                None => panic!("socket ended"),
            }
        }
    }

    /// The next frame, asserting its type.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let frame = self.recv().await;
        assert_eq!(frame[self.kind_field], kind, "expected {kind}, got {frame}");
        frame
    }

    /// Reads start frames: `chat.sync` then `presence.snapshot`.
    pub async fn expect_start(&mut self) -> (Value, Value) {
        let sync = self.expect("chat.sync").await;
        let snapshot = self.expect("presence.snapshot").await;
        (sync, snapshot)
    }

    /// Skips frames until one of `kind` satisfies `matches`.
    pub async fn expect_where(&mut self, kind: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(frame) = self.try_recv(left).await else {
                panic!("no {kind} matching within {WAIT:?}; saw {seen:#?}");
            };
            if frame[self.kind_field] == kind && matches(&frame) {
                return frame;
            }
            seen.push(frame);
        }
    }

    /// Asserts that nothing arrives for `quiet`.
    pub async fn expect_silence(&mut self, quiet: Duration) {
        self.expect_silence_except(quiet, |_| false).await;
    }

    /// Asserts that for `quiet` nothing arrives but frames `allowed` accepts
    /// (which may come, or not).
    pub async fn expect_silence_except(
        &mut self,
        quiet: Duration,
        allowed: impl Fn(&Value) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + quiet;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(frame) = self.try_recv(left).await else {
                return;
            };
            if !allowed(&frame) {
                panic!("expected no frame, got {frame}");
            }
        }
    }

    /// Waits for the server to close the socket; returns the close code.
    pub async fn expect_close(&mut self) -> Option<u16> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await {
                Err(_) => panic!("socket not closed within {WAIT:?}"),
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return frame.map(|frame: CloseFrame| u16::from(frame.code))
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_)) | None) => return None,
            }
        }
    }

    /// Closes with a close frame (a graceful leave).
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        while let Some(Ok(_)) = self.ws.next().await {}
    }

    /// Drops the TCP connection without a close frame (an abnormal close).
    pub fn drop_connection(self) {
        drop(self);
    }
}

/// A fresh, unique session id, so tests never share state, not even with an
/// earlier run against the same database.
pub fn session_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static RUN: OnceLock<u128> = OnceLock::new();
    let run = RUN.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    });
    format!(
        "{prefix}-{}-{run:x}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The `seq` of a frame.
pub fn seq(frame: &Value) -> u64 {
    frame["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("no seq in {frame}"))
}

/// A raw HTTP GET with WebSocket upgrade headers, returning status and body.
pub async fn http_get(addr: SocketAddr, path_and_query: &str) -> (u16, String) {
    http_get_with(addr, path_and_query, &[]).await
}

/// Like [`http_get`], with extra headers.
pub async fn http_get_with(
    addr: SocketAddr,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let request = format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(WAIT, stream.read(&mut buffer))
            .await
            .expect("response in time")
            .expect("read");
        if read == 0 {
            break;
        }
        response.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&response);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head.lines().find_map(|line| {
                line.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
            });
            if head.starts_with("HTTP/1.1 101") || length.is_some_and(|length| body.len() >= length)
            {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status code");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Path of a workspace binary next to the test executable, built if needed.
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile dir")
        .to_path_buf();
    let path = profile_dir.join(name);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut command = std::process::Command::new(cargo);
        // From the tests crate a bare `--bin` looks in this package only;
        // each binary lives in the package of the same name.
        command.args(["build", "-p", name, "--bin", name]);
        if profile_dir.ends_with("release") {
            command.arg("--release");
        }
        let status = command.status().expect("run cargo build");
        assert!(
            status.success(),
            "cargo build -p {name} --bin {name} failed"
        );
    }
    path
}

/// Runs each named `async fn scenario(mode: Mode)` as two tests: monolithic
/// and split.
#[macro_export]
macro_rules! in_both_modes {
    ($($scenario:ident),* $(,)?) => {
        mod monolithic {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::Mode::Monolithic).await
                }
            )*
        }
        mod split {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::Mode::Split).await
                }
            )*
        }
    };
}
