//! The load side: subscribers that count and time every delivery, and the
//! publishers of each target (gRPC, WebSocket `chat.send`, Centrifugo's HTTP
//! API, the baseline's raw text).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use meno_proto::chat_service_client::ChatServiceClient;
use meno_proto::{Actor, Role, SendChatRequest, SessionRef};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use crate::target::TargetKind;
use crate::wsclient::{self, WsClient};

/// The HTTP API key given to the Centrifugo target.
pub const API_KEY: &str = "bench-api-key";
/// Where a payload's timestamp starts in every target's frames.
const MARK: &[u8] = b"\"content\":\"T";
/// Bytes of chat content per message.
pub const CONTENT_BYTES: usize = 100;

/// Nanoseconds since the harness started (monotonic).
pub fn now_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Content `T<ns>|<index>|xxx…` of exactly [`CONTENT_BYTES`].
pub fn content(index: u64) -> String {
    let mut text = format!("T{}|{}|", now_ns(), index);
    while text.len() < CONTENT_BYTES {
        text.push('x');
    }
    text
}

/// What every subscriber adds to.
#[derive(Debug)]
pub struct Stats {
    /// Latency in microseconds of deliveries in the current window.
    pub latency_us: Mutex<Histogram<u64>>,
    /// Deliveries of messages in the current window.
    pub delivered: AtomicU64,
    /// Every delivery counted since the start.
    pub delivered_all: AtomicU64,
    /// First message index of the current window.
    pub window_start: AtomicU64,
    /// Deliveries per subscriber (all windows).
    pub per_subscriber: Vec<AtomicU64>,
    /// When the last counted delivery arrived (ns).
    pub last_delivery_ns: AtomicU64,
    /// Subscribers that are excluded from the latency histogram (the slow one).
    pub excluded: Vec<AtomicBool>,
}

impl Stats {
    /// Stats for `subscribers` sockets.
    pub fn new(subscribers: usize) -> Arc<Self> {
        Arc::new(Stats {
            latency_us: Mutex::new(Histogram::new_with_bounds(1, 120_000_000, 3).expect("hdr")),
            delivered: AtomicU64::new(0),
            delivered_all: AtomicU64::new(0),
            window_start: AtomicU64::new(0),
            per_subscriber: (0..subscribers).map(|_| AtomicU64::new(0)).collect(),
            last_delivery_ns: AtomicU64::new(0),
            excluded: (0..subscribers).map(|_| AtomicBool::new(false)).collect(),
        })
    }

    /// Starts a new window at message `first_index`.
    pub fn reset_window(&self, first_index: u64) {
        self.window_start.store(first_index, Ordering::SeqCst);
        self.delivered.store(0, Ordering::SeqCst);
        self.latency_us.lock().expect("hist").reset();
    }
}

fn parse_number(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    let mut used = 0;
    for &b in bytes {
        if !b.is_ascii_digit() {
            break;
        }
        value = value.wrapping_mul(10).wrapping_add(u64::from(b - b'0'));
        used += 1;
    }
    (used > 0).then_some((value, used))
}

/// Every `(sent_ns, index)` stamped in `frame` (several per Centrifugo frame).
pub fn scan(frame: &[u8], mut found: impl FnMut(u64, u64)) {
    let mut rest = frame;
    while let Some(at) = memchr::memmem::find(rest, MARK) {
        rest = &rest[at + MARK.len()..];
        let Some((sent, used)) = parse_number(rest) else {
            continue;
        };
        if rest.get(used) != Some(&b'|') {
            continue;
        }
        if let Some((index, _)) = parse_number(&rest[used + 1..]) {
            found(sent, index);
        }
    }
}

/// How a subscriber joins its room.
#[derive(Debug, Clone, Copy)]
pub struct Dialect {
    /// The target kind.
    pub kind: TargetKind,
}

impl Dialect {
    pub(crate) fn path(self, room: &str, subscriber: usize) -> String {
        match self.kind {
            TargetKind::Centrifugo | TargetKind::CentrifugeEngine => {
                "/connection/websocket".to_owned()
            }
            TargetKind::Baseline => format!("/ws?sessionId={room}"),
            _ => format!(
                "/ws?sessionId={room}&participantId=p{subscriber}&name=p{subscriber}&role=student&client=web"
            ),
        }
    }

    /// Joins `room` and returns once live events will arrive.
    pub(crate) async fn join(self, ws: &mut WsClient, room: &str) -> anyhow::Result<()> {
        match self.kind {
            TargetKind::Centrifugo | TargetKind::CentrifugeEngine => {
                ws.send_text(br#"{"id":1,"connect":{}}"#).await?;
                ws.read_until(|m| memchr::memmem::find(m, br#""id":1"#).is_some())
                    .await?;
                let subscribe = format!(r#"{{"id":2,"subscribe":{{"channel":"chat:{room}"}}}}"#);
                ws.send_text(subscribe.as_bytes()).await?;
                ws.read_until(|m| memchr::memmem::find(m, br#""id":2"#).is_some())
                    .await
            }
            TargetKind::Baseline => Ok(()),
            _ => {
                ws.read_until(|m| memchr::memmem::find(m, b"\"presence.snapshot\"").is_some())
                    .await
            }
        }
    }

    /// The text a socket sends to publish `content` in `room` (client path).
    /// Centrifugo: a client publication (its namespace allows them), whose
    /// command id is the low bits of `index` (replies are not awaited: the
    /// publication coming back is the acknowledgement).
    pub fn chat_send(self, room: &str, index: u64, content: &str) -> String {
        match self.kind {
            TargetKind::Baseline => content.to_owned(),
            TargetKind::Centrifugo | TargetKind::CentrifugeEngine => format!(
                r#"{{"id":{},"publish":{{"channel":"chat:{room}","data":{{"content":"{content}"}}}}}}"#,
                (index & 0xffff_ffff) + 10
            ),
            _ => format!(
                r#"{{"action":"chat.send","payload":{{"messageId":"m{index}","content":"{content}"}}}}"#
            ),
        }
    }
}

/// A connected subscriber's handle.
#[derive(Debug)]
pub struct Subscriber {
    /// Its task.
    pub task: JoinHandle<()>,
    /// Texts to send from this socket (client-path publishing).
    pub outgoing: mpsc::UnboundedSender<Vec<u8>>,
    /// Set to stop reading (the slow consumer), cleared to resume.
    pub paused: Arc<AtomicBool>,
    /// The close code the server sent, when it did.
    pub closed_with: Arc<Mutex<Option<Option<u16>>>>,
    /// Messages received after joining, of any kind (pings and presence too).
    pub frames: Arc<AtomicU64>,
}

/// Source addresses 127.0.0.2 … 127.0.0.(1 + count).
pub fn source(index: usize, sources: usize) -> Option<Ipv4Addr> {
    (sources > 0).then(|| Ipv4Addr::new(127, 0, 0, 2 + (index % sources) as u8))
}

/// Connects subscriber `id` to `room` and spawns its reading task; returns
/// once it has joined.
pub async fn subscribe(
    server: SocketAddr,
    source_ip: Option<Ipv4Addr>,
    dialect: Dialect,
    room: String,
    id: usize,
    stats: Arc<Stats>,
) -> anyhow::Result<Subscriber> {
    let mut ws = wsclient::connect(server, source_ip, &dialect.path(&room, id)).await?;
    dialect
        .join(&mut ws, &room)
        .await
        .with_context(|| format!("joining {room}"))?;
    let (outgoing, mut to_send) = mpsc::unbounded_channel::<Vec<u8>>();
    let paused = Arc::new(AtomicBool::new(false));
    let closed_with = Arc::new(Mutex::new(None));
    let frames = Arc::new(AtomicU64::new(0));
    let task = tokio::spawn({
        let paused = Arc::clone(&paused);
        let closed_with = Arc::clone(&closed_with);
        let frames = Arc::clone(&frames);
        let centrifugo = dialect.kind.is_centrifugo();
        async move {
            loop {
                if paused.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                tokio::select! {
                    filled = ws.fill() => {
                        if !matches!(filled, Ok(true)) {
                            *closed_with.lock().expect("closed") = Some(ws.close_code);
                            return;
                        }
                    }
                    text = to_send.recv() => {
                        if let Some(text) = text {
                            ws.queue_text(&text);
                            while let Ok(more) = to_send.try_recv() {
                                ws.queue_text(&more);
                            }
                        }
                    }
                }
                let now = now_ns();
                let window = stats.window_start.load(Ordering::Relaxed);
                let timed = !stats.excluded[id].load(Ordering::Relaxed);
                let mut counted = 0u64;
                let mut in_window = 0u64;
                let mut ping = false;
                let mut received = 0u64;
                let open = {
                    let mut histogram = stats.latency_us.lock().expect("hist");
                    ws.drain(|message| {
                        received += 1;
                        if centrifugo && message == b"{}" {
                            ping = true;
                            return;
                        }
                        scan(message, |sent, index| {
                            counted += 1;
                            if index >= window {
                                in_window += 1;
                                if timed {
                                    let _ =
                                        histogram.record((now.saturating_sub(sent) / 1000).max(1));
                                }
                            }
                        });
                    })
                };
                frames.fetch_add(received, Ordering::Relaxed);
                if ping {
                    ws.queue_text(b"{}");
                }
                if counted > 0 {
                    stats.per_subscriber[id].fetch_add(counted, Ordering::Relaxed);
                    stats.delivered_all.fetch_add(counted, Ordering::Relaxed);
                    stats.delivered.fetch_add(in_window, Ordering::Relaxed);
                    stats.last_delivery_ns.store(now, Ordering::Relaxed);
                }
                if ws.flush_control().await.is_err() || !open {
                    *closed_with.lock().expect("closed") = Some(ws.close_code);
                    return;
                }
            }
        }
    });
    Ok(Subscriber {
        task,
        outgoing,
        paused,
        closed_with,
        frames,
    })
}

/// How messages enter the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PublishPath {
    /// gRPC `ChatService/Send` as a backend (`ROLE_SERVICE`): meno split only.
    Grpc,
    /// A subscriber's own socket: `chat.send` (meno), raw text (baseline).
    Ws,
    /// Centrifugo's HTTP API, keep-alive.
    Http,
}

/// Sends messages to rooms by one path.
#[derive(Debug)]
pub enum Publisher {
    /// gRPC unary calls, at most `in_flight` at once.
    Grpc {
        /// The client.
        client: ChatServiceClient<tonic::transport::Channel>,
        /// Bound on concurrent calls.
        in_flight: Arc<Semaphore>,
        /// Calls that failed.
        errors: Arc<AtomicU64>,
    },
    /// Sockets that publish, per room.
    Ws {
        /// Senders of each room, used round robin.
        senders: Vec<Vec<mpsc::UnboundedSender<Vec<u8>>>>,
        /// Next sender per room.
        next: Vec<usize>,
        /// The dialect of the texts.
        dialect: Dialect,
    },
    /// HTTP/1.1 keep-alive connections taking publish bodies.
    Http {
        /// One queue per connection.
        connections: Vec<mpsc::UnboundedSender<Vec<u8>>>,
        /// Next connection.
        next: usize,
        /// Requests that failed.
        errors: Arc<AtomicU64>,
    },
}

impl Publisher {
    /// A gRPC publisher to the core at `addr`.
    pub async fn grpc(addr: SocketAddr) -> anyhow::Result<Self> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
            .tcp_nodelay(true)
            .connect()
            .await
            .context("connecting to the core")?;
        Ok(Publisher::Grpc {
            client: ChatServiceClient::new(channel),
            in_flight: Arc::new(Semaphore::new(256)),
            errors: Arc::default(),
        })
    }

    /// An HTTP API publisher with `connections` keep-alive connections.
    pub fn http(addr: SocketAddr, connections: usize) -> Self {
        let errors = Arc::new(AtomicU64::new(0));
        let connections = (0..connections)
            .map(|_| {
                let (sender, bodies) = mpsc::unbounded_channel();
                tokio::spawn(http_connection(addr, bodies, Arc::clone(&errors)));
                sender
            })
            .collect();
        Publisher::Http {
            connections,
            next: 0,
            errors,
        }
    }

    /// Failed publishes so far.
    pub fn errors(&self) -> u64 {
        match self {
            Publisher::Grpc { errors, .. } | Publisher::Http { errors, .. } => {
                errors.load(Ordering::Relaxed)
            }
            Publisher::Ws { .. } => 0,
        }
    }

    /// Publishes message `index` to `room` (`room_name` on the wire).
    pub async fn publish(&mut self, room: usize, room_name: &str, index: u64) {
        let text = content(index);
        match self {
            Publisher::Grpc {
                client,
                in_flight,
                errors,
            } => {
                let permit = Arc::clone(in_flight)
                    .acquire_owned()
                    .await
                    .expect("semaphore");
                let mut client = client.clone();
                let errors = Arc::clone(errors);
                let request = SendChatRequest {
                    session: Some(SessionRef {
                        tenant: "default".into(),
                        session_id: room_name.to_owned(),
                    }),
                    actor: Some(Actor {
                        participant_id: "bench-backend".into(),
                        connection_id: String::new(),
                        name: "backend".into(),
                        role: Role::Service as i32,
                        trace_id: String::new(),
                    }),
                    client_ref: format!("m{index}"),
                    kind: String::new(),
                    content: text,
                    meta_json: String::new(),
                    created_at_ms: 0,
                    message_kind: 0,
                };
                tokio::spawn(async move {
                    if client.send(request).await.is_err() {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    drop(permit);
                });
            }
            Publisher::Ws {
                senders,
                next,
                dialect,
            } => {
                let room_senders = &senders[room];
                let sender = &room_senders[next[room] % room_senders.len()];
                next[room] += 1;
                let _ = sender.send(
                    dialect
                        .chat_send(&format!("r{room}"), index, &text)
                        .into_bytes(),
                );
            }
            Publisher::Http {
                connections, next, ..
            } => {
                let body =
                    format!(r#"{{"channel":"chat:{room_name}","data":{{"content":"{text}"}}}}"#);
                let connection = &connections[*next % connections.len()];
                *next += 1;
                let _ = connection.send(body.into_bytes());
            }
        }
    }
}

async fn http_connection(
    addr: SocketAddr,
    mut bodies: mpsc::UnboundedReceiver<Vec<u8>>,
    errors: Arc<AtomicU64>,
) {
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let _ = stream.set_nodelay(true);
    let mut response = vec![0u8; 8192];
    while let Some(body) = bodies.recv().await {
        let mut request = format!(
            "POST /api/publish HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {API_KEY}\r\n\
Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(&body);
        if stream.write_all(&request).await.is_err() {
            errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // Read one response: headers, then Content-Length bytes of body.
        let mut filled = 0;
        loop {
            let Ok(read) = stream.read(&mut response[filled..]).await else {
                errors.fetch_add(1, Ordering::Relaxed);
                return;
            };
            if read == 0 {
                errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
            filled += read;
            let Some(head_end) = memchr::memmem::find(&response[..filled], b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&response[..head_end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse().ok())
                .unwrap_or(0);
            if filled >= head_end + 4 + length {
                if !head.starts_with("http/1.1 200") {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                break;
            }
        }
    }
}
