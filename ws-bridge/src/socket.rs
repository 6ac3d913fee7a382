//! One WebSocket client, from join to leave, in one task.
//!
//! The task reads client frames, runs one core call at a time for them (so a
//! client's actions reach the core in the order sent), and writes what the
//! hub queued for it, batching every queued frame into one flush. Bad input
//! gets an `error` envelope and the socket stays usable.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use meno_core::error::{CoreError, ErrorCode};
use meno_core::store::SessionKey;
use meno_proto::{
    join_response, Actor, ConnectionInfo, HeartbeatRequest, JoinRequest, JoinResponse,
    LeaseReleaseRequest, LeaseSetRequest, LeaveRequest, PresenceUpdateRequest, SendChatRequest,
    SessionRef,
};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span};

use crate::auth::Identity;
use crate::codec::{seed000, ClientCommand, ErrorEnvelope};
use crate::config::BridgeConfig;
use crate::connect::ConnectParams;
use crate::core_client::CoreClient;
use crate::hub::{AttachError, Hub};
use crate::limits::{ConnectionLimitError, ConnectionPermit, TokenBucket};
use crate::outbox::{outbox, Outbound};

type Ws = WebSocketStream<TokioIo<Upgraded>>;
type CallFuture = Pin<Box<dyn Future<Output = CallOutcome> + Send>>;

/// WebSocket close codes (DESIGN §7).
pub mod close_code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The bridge is draining.
    pub const GOING_AWAY: u16 = 1001;
    /// Policy violation.
    pub const POLICY: u16 = 1008;
    /// Message too big.
    pub const TOO_BIG: u16 = 1009;
    /// The core failed; reconnect later.
    pub const INTERNAL: u16 = 1011;
    /// The core is unavailable; reconnect later.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// The token expired and was not renewed.
    pub const UNAUTHORIZED: u16 = 4001;
    /// The socket's outbound queue overflowed.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// Repeated rate-limit violations, or a connection cap.
    pub const RATE_LIMITED: u16 = 4029;
}

/// Who the client is and where from, as the upgrade request said.
#[derive(Debug)]
pub struct Client {
    /// The validated seed-000 query (identity from the token in jwt mode).
    pub params: ConnectParams,
    /// The tenant: the token's, or the default one.
    pub tenant: String,
    /// The verified token's identity (jwt mode).
    pub identity: Option<Identity>,
    /// The connection's slot under the connection caps, or why there is none.
    pub permit: Result<ConnectionPermit, ConnectionLimitError>,
    /// Peer address.
    pub ip: String,
    /// `User-Agent`, truncated.
    pub user_agent: String,
}

/// What the socket's task shares with the rest of the bridge.
#[derive(Debug, Clone)]
pub struct SocketContext {
    /// The core.
    pub core: CoreClient,
    /// Session fan-out.
    pub hub: Hub,
    /// Settings.
    pub config: Arc<BridgeConfig>,
}

fn now_ms() -> i64 {
    use meno_core::clock::Clock;
    meno_core::clock::SystemClock.now_ms()
}

/// The span of one client action, the root of its trace: the core call made
/// in it carries its context, so the core's and the store's spans join it.
fn action_span(action: &'static str, key: &SessionKey, connection: &ConnectionInfo) -> Span {
    tracing::info_span!(
        "ws.action",
        otel.kind = "server",
        action,
        session = %key,
        participant = %connection.participant_id,
        connection = %connection.connection_id,
    )
}

fn close_frame(code: u16, reason: &str) -> CloseFrame {
    CloseFrame {
        code: CloseCode::from(code),
        reason: Utf8Bytes::from(reason.to_owned()),
    }
}

fn error_frame(err: &CoreError, action: Option<&str>) -> Utf8Bytes {
    crate::metrics::ERRORS_SENT
        .with_label_values(&[err.code.as_str()])
        .inc();
    Utf8Bytes::from(seed000::encode_error(&ErrorEnvelope::from_core(
        err, action,
    )))
}

/// Runs one client socket to its end.
///
/// Every idle socket holds this future for its lifetime, so it is kept small
/// (see BENCHMARKS.md, idle memory): the stream and the client's details are
/// boxed (an async fn keeps its arguments twice), the context is shared
/// behind an `Arc`, and the rare, large awaits (attach, join, rejoin, leave)
/// are boxed, so their state is allocated only while they run instead of
/// being reserved in every socket's future.
pub async fn run(mut ws: Box<Ws>, client: Box<Client>, context: Arc<SocketContext>) {
    let _permit = match client.permit {
        Ok(permit) => permit,
        Err(refused) => {
            let mut err = CoreError::new(ErrorCode::RateLimited, refused.to_string());
            err.retry_after = Some(std::time::Duration::from_secs(5));
            let _ = ws.feed(Message::Text(error_frame(&err, None))).await;
            close(
                &mut ws,
                close_code::RATE_LIMITED,
                "connection limit",
                &context.config,
            )
            .await;
            return;
        }
    };
    let params = &client.params;
    let client_kind = match params.client {
        meno_proto::ClientKind::Web => "web",
        meno_proto::ClientKind::Tablet => "tablet",
        meno_proto::ClientKind::Native => "native",
        _ => "other",
    };
    let open = crate::metrics::CONNECTIONS.with_label_values(&[client_kind]);
    open.inc();
    let _open = GaugeGuard(open);
    let key = SessionKey::new(client.tenant.clone(), params.session_id.clone());
    let connection = ConnectionInfo {
        connection_id: uuid::Uuid::now_v7().to_string(),
        participant_id: params.participant_id.clone(),
        name: params.name.clone(),
        role: params.role as i32,
        client: params.client as i32,
        bridge_id: context.config.bridge_id.clone(),
        ip: client.ip.clone(),
        user_agent: client.user_agent.clone(),
        connected_at_ms: now_ms(),
    };
    let (outbox, mut outbound) = outbox(context.config.outbound_queue_bytes);
    let attached = match Box::pin(context.hub.attach(key.clone(), connection.clone(), outbox)).await
    {
        Ok(attached) => attached,
        Err(AttachError(err)) => {
            let _ = ws.feed(Message::Text(error_frame(&err, None))).await;
            let (code, reason) = match err.code {
                ErrorCode::RateLimited => (close_code::RATE_LIMITED, "limit reached"),
                ErrorCode::Unavailable => (close_code::TRY_AGAIN_LATER, "core unavailable"),
                _ => (close_code::POLICY, "refused"),
            };
            close(&mut ws, code, reason, &context.config).await;
            return;
        }
    };
    let join = JoinRequest {
        session: Some(session_ref(&key)),
        connection: Some(connection.clone()),
        last_seq: params.last_seq,
        history_limit: 0,
    };
    let joined = match Box::pin(
        context
            .core
            .connections
            .clone()
            .join(context.core.request(join))
            .instrument(action_span("join", &key, &connection)),
    )
    .await
    {
        Ok(response) => response.into_inner(),
        Err(status) => {
            let err = CoreError::from_status(&status);
            let _ = ws.feed(Message::Text(error_frame(&err, None))).await;
            let code = if err.code.retryable() {
                close_code::TRY_AGAIN_LATER
            } else {
                close_code::POLICY
            };
            close(&mut ws, code, "join refused", &context.config).await;
            return;
        }
    };
    let snapshot_seq = joined.snapshot_seq;
    let coverage = Coverage::after_join(&joined, params.last_seq);
    let mut session = Session {
        key,
        connection,
        context: Arc::clone(&context),
        expires_at_ms: client.identity.as_ref().and_then(|id| id.expires_at_ms),
        identity: client.identity,
    };
    let start = write_frames(&mut ws, session.start_frames(joined));
    let ended = match tokio::time::timeout(context.config.idle_timeout, start).await {
        Ok(Ok(())) => {
            session
                .serve(&mut ws, &mut outbound, snapshot_seq, coverage)
                .await
        }
        Ok(Err(_)) | Err(_) => Ended::Abnormal,
    };
    drop(attached);
    let leave = LeaveRequest {
        session: Some(session_ref(&session.key)),
        connection_id: session.connection.connection_id.clone(),
        // A drained socket's client reconnects (to this bridge's successor or
        // another one): it gets the grace period, like a broken connection.
        graceful: ended == Ended::Closed,
    };
    if let Err(status) = Box::pin(
        context
            .core
            .connections
            .clone()
            .leave(context.core.request(leave))
            .instrument(action_span("leave", &session.key, &session.connection)),
    )
    .await
    {
        tracing::debug!(error = %status, "leave failed; the connection will expire");
    }
}

/// How a socket ended, which decides what others see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The client closed, or the bridge closed it on purpose.
    Closed,
    /// The connection broke: the participant shows `reconnecting` for a while.
    Abnormal,
    /// The bridge closed it (draining, expired token); the client is
    /// expected back, so it gets the reconnect grace period.
    Drained,
}

struct Session {
    key: SessionKey,
    connection: ConnectionInfo,
    context: Arc<SocketContext>,
    /// The verified identity (jwt mode), against which refreshes are checked.
    identity: Option<Identity>,
    /// When the token expires, unless refreshed (Unix ms).
    expires_at_ms: Option<i64>,
}

/// What a core call produced for the sender.
struct CallOutcome {
    /// Frames for the sender alone (errors, a duplicate's stored message).
    frames: Vec<Utf8Bytes>,
    /// A renewed token's expiry.
    renewed_expiry_ms: Option<i64>,
    /// The seq of the stored message a repeated `chat.send` got back.
    echoed_seq: Option<u64>,
}

impl From<Vec<Utf8Bytes>> for CallOutcome {
    fn from(frames: Vec<Utf8Bytes>) -> Self {
        Self {
            frames,
            renewed_expiry_ms: None,
            echoed_seq: None,
        }
    }
}

fn session_ref(key: &SessionKey) -> SessionRef {
    SessionRef {
        tenant: key.tenant.clone(),
        session_id: key.session_id.clone(),
    }
}

async fn write_frames(ws: &mut Ws, frames: Vec<Utf8Bytes>) -> Result<(), WsError> {
    if frames.is_empty() {
        return Ok(());
    }
    for frame in frames {
        ws.feed(Message::Text(frame)).await?;
    }
    ws.flush().await
}

/// Why a write did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteFailure {
    /// The outbound queue overflowed while the socket would not take bytes.
    Overflowed,
    /// The connection failed, or took no bytes for the whole idle timeout.
    Broken,
}

/// Writes that give up when the socket is a slow consumer or is dead, so a
/// stuck client never holds its task forever.
struct Writer<'a> {
    overflowed: &'a CancellationToken,
    write_timeout: std::time::Duration,
}

impl Writer<'_> {
    async fn write(
        &mut self,
        ws: &mut Ws,
        messages: impl IntoIterator<Item = Message>,
    ) -> Result<(), WriteFailure> {
        let write = async {
            for message in messages {
                ws.feed(message).await?;
            }
            ws.flush().await
        };
        tokio::pin!(write);
        // Most writes finish at once, the kernel having room: only a write
        // that has to wait arms the timer and watches for an overflow.
        let first = tokio::select! {
            biased;
            written = &mut write => Some(written),
            () = std::future::ready(()) => None,
        };
        let written = match first {
            Some(written) => written,
            // Boxed: the timer and the cancellation wait exist only while a
            // write waits, not in every idle socket's future.
            None => {
                Box::pin(async {
                    tokio::select! {
                        written = tokio::time::timeout(self.write_timeout, write) => {
                            written.map_err(|_| WriteFailure::Broken)
                        }
                        _ = self.overflowed.cancelled() => Err(WriteFailure::Overflowed),
                    }
                })
                .await?
            }
        };
        written.map_err(|_| WriteFailure::Broken)
    }

    async fn write_text(
        &mut self,
        ws: &mut Ws,
        frames: Vec<Utf8Bytes>,
    ) -> Result<(), WriteFailure> {
        self.write(ws, frames.into_iter().map(Message::Text)).await
    }
}

/// The seqs from which on this socket has been given every event, or will
/// be: everything after its start (a resume from `lastSeq`, or the oldest
/// message of its `chat.sync`) arrives in order, each once. A repeated
/// `chat.send` whose stored message lies in that range gets no separate
/// copy: the client has it already, or is about to get it in its place, and
/// a second copy would be a duplicate (and, ahead of its turn, out of order).
/// Older messages still come back to the sender, as the acknowledgement of
/// a message it never saw on this socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Coverage {
    from_seq: u64,
}

impl Coverage {
    /// After the socket's first join, with the client's `lastSeq`.
    fn after_join(joined: &JoinResponse, last_seq: Option<u64>) -> Self {
        Self::of_snapshot(joined).unwrap_or(Self {
            from_seq: last_seq.unwrap_or(joined.snapshot_seq).saturating_add(1),
        })
    }

    /// A fresh snapshot starts the coverage again at its oldest message; a
    /// resume (`None`) continues it.
    fn of_snapshot(joined: &JoinResponse) -> Option<Self> {
        match &joined.start {
            Some(join_response::Start::Snapshot(snapshot)) => Some(Self {
                from_seq: snapshot.history.first().map_or_else(
                    || joined.snapshot_seq.saturating_add(1),
                    |oldest| oldest.seq,
                ),
            }),
            _ => None,
        }
    }

    fn after_rejoin(self, rejoined: Option<Self>) -> Self {
        rejoined.unwrap_or(self)
    }

    fn includes(self, seq: u64) -> bool {
        seq >= self.from_seq
    }
}

/// Decrements a gauge when dropped, however the socket's task ends.
struct GaugeGuard(prometheus::IntGauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// When a token expiring at `expires_at_ms` (Unix ms) runs out, on tokio's
/// clock; far in the future when there is no expiry.
fn expiry_instant(expires_at_ms: Option<i64>) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    match expires_at_ms {
        Some(at) => {
            let left = u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0);
            now + std::time::Duration::from_millis(left)
        }
        None => now + std::time::Duration::from_secs(86_400 * 365),
    }
}

/// `system.auth.refresh`: a new token must be valid and name the same
/// participant, tenant and session scope as the connection.
struct Refresh {
    authenticator: Option<crate::auth::Authenticator>,
    identity: Option<Identity>,
    session_id: String,
    tenant: String,
}

impl Refresh {
    async fn check(self, token: &str) -> CallOutcome {
        let action = Some(seed000::action::AUTH_REFRESH);
        let refuse = |err: CoreError| CallOutcome::from(vec![error_frame(&err, action)]);
        let (Some(authenticator), Some(current)) = (self.authenticator, self.identity) else {
            return refuse(CoreError::invalid("authentication is off on this server"));
        };
        let renewed = match authenticator.verify(token).await {
            Ok(renewed) => renewed,
            Err(err) => return refuse(CoreError::denied(err.to_string())),
        };
        let tenant = renewed
            .tenant
            .clone()
            .unwrap_or_else(|| meno_core::store::DEFAULT_TENANT.to_owned());
        if renewed.participant_id != current.participant_id
            || tenant != self.tenant
            || !renewed.sessions.allows(&self.session_id)
        {
            return refuse(CoreError::denied(
                "the new token is for another participant, tenant or session",
            ));
        }
        let Some(expires_at_ms) = renewed.expires_at_ms else {
            return refuse(CoreError::invalid("the new token has no exp"));
        };
        let confirmation = serde_json::json!({
            "type": "system.auth.refreshed",
            "data": {"expiresAt": crate::time_fmt::format_unix_ms(expires_at_ms)},
        });
        CallOutcome {
            frames: vec![Utf8Bytes::from(confirmation.to_string())],
            renewed_expiry_ms: Some(expires_at_ms),
            echoed_seq: None,
        }
    }
}

/// Sends a close frame, giving the handshake at most the close timeout.
async fn close(ws: &mut Ws, code: u16, reason: &str, config: &BridgeConfig) {
    let frame = close_frame(code, reason);
    if tokio::time::timeout(config.close_timeout, ws.close(Some(frame)))
        .await
        .is_err()
    {
        tracing::debug!(code, "close handshake timed out; dropping the connection");
    }
}

impl Session {
    /// The frames a socket starts with: a snapshot (`chat.sync`,
    /// `presence.snapshot`, the lease when active) or what it missed.
    fn start_frames(&self, joined: JoinResponse) -> Vec<Utf8Bytes> {
        let session_id = &self.key.session_id;
        let seq = joined.snapshot_seq;
        let mut frames = Vec::new();
        match joined.start {
            Some(join_response::Start::Resume(resume)) => {
                frames.extend(
                    resume
                        .events
                        .iter()
                        .filter_map(|event| seed000::encode_event(session_id, event)),
                );
                if let Some(state) = resume.state.filter(|_| resume.has_state) {
                    frames.push(seed000::encode_snapshot(
                        session_id,
                        seq,
                        &state.participants,
                    ));
                    if let Some(lease) = &state.lease {
                        frames.push(seed000::encode_lease(session_id, Some(seq), lease));
                    }
                }
            }
            Some(join_response::Start::Snapshot(snapshot)) => {
                frames.push(seed000::encode_sync(session_id, seq, &snapshot.history));
                frames.push(seed000::encode_snapshot(
                    session_id,
                    seq,
                    &snapshot.participants,
                ));
                if snapshot.lease_active {
                    if let Some(lease) = &snapshot.lease {
                        frames.push(seed000::encode_lease(session_id, Some(seq), lease));
                    }
                }
            }
            None => {}
        }
        frames.into_iter().map(Utf8Bytes::from).collect()
    }

    async fn serve(
        &mut self,
        ws: &mut Ws,
        outbound: &mut crate::outbox::OutboxReceiver,
        snapshot_seq: u64,
        mut coverage: Coverage,
    ) -> Ended {
        // Everything this loop waits on is the socket's own: its outbox (which
        // also carries resync, drain and overflow), its reads, its ping timer
        // and its token's expiry. Nothing shared with other sockets is polled,
        // so a wake-up costs no lock.
        let config = Arc::clone(&self.context.config);
        // The last seq this client has: events at or below it are not sent.
        let mut floor = snapshot_seq;
        let mut resync_pending = false;
        let mut in_flight: Option<CallFuture> = None;
        // Grown by the first batch: an idle socket holds none.
        let mut queued: Vec<Outbound> = Vec::new();
        let overflowed = outbound.overflow_signal();
        let mut pings = tokio::time::interval_at(
            tokio::time::Instant::now() + config.ping_interval,
            config.ping_interval,
        );
        pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = tokio::time::Instant::now();
        // The token's expiry, if any: one timer, reset when a refresh renews it.
        let expiry = tokio::time::sleep_until(expiry_instant(self.expires_at_ms));
        tokio::pin!(expiry);
        let mut sink = Writer {
            overflowed: &overflowed,
            write_timeout: config.idle_timeout,
        };
        let limits = &config.rate_limits;
        let mut bucket = TokenBucket::new(limits.messages_per_second, limits.message_burst);
        let mut rate_violations = 0u32;
        let mut protocol_violations = 0u32;
        loop {
            // Draining waits for the in-flight call, so its answer is sent.
            if in_flight.is_none() && self.context.hub.is_draining() {
                close(ws, close_code::GOING_AWAY, "server draining", &config).await;
                return Ended::Drained;
            }
            if resync_pending && in_flight.is_none() {
                resync_pending = false;
                let written = match Box::pin(self.rejoin(floor)).await {
                    Ok((frames, snapshot_seq, rejoined)) => {
                        floor = snapshot_seq;
                        coverage = coverage.after_rejoin(rejoined);
                        sink.write_text(ws, frames).await
                    }
                    Err(err) => {
                        let _ = sink.write_text(ws, vec![error_frame(&err, None)]).await;
                        close(
                            ws,
                            close_code::TRY_AGAIN_LATER,
                            "cannot rejoin the session",
                            &config,
                        )
                        .await;
                        return Ended::Drained;
                    }
                };
                if written == Err(WriteFailure::Broken) {
                    return Ended::Abnormal;
                }
                continue;
            }
            let written = tokio::select! {
                _ = &mut expiry, if self.expires_at_ms.is_some() && in_flight.is_none() => {
                    close(ws, close_code::UNAUTHORIZED, "token expired; reconnect with a fresh token", &config).await;
                    return Ended::Drained;
                }
                _ = pings.tick() => {
                    if last_heard.elapsed() >= config.idle_timeout {
                        tracing::debug!(session = %self.key, participant = %self.connection.participant_id, "socket silent past the idle timeout");
                        return Ended::Abnormal;
                    }
                    sink.write(ws, [Message::Ping(bytes::Bytes::new())]).await
                }
                outcome = async { in_flight.as_mut().expect("guarded by is_some").await }, if in_flight.is_some() => {
                    in_flight = None;
                    if let Some(expires_at_ms) = outcome.renewed_expiry_ms {
                        self.expires_at_ms = Some(expires_at_ms);
                        expiry.as_mut().reset(expiry_instant(self.expires_at_ms));
                    }
                    let frames = match outcome.echoed_seq {
                        Some(seq) if coverage.includes(seq) => Vec::new(),
                        _ => outcome.frames,
                    };
                    sink.write_text(ws, frames).await
                }
                received = outbound.recv_many(&mut queued, 256) => {
                    if received == 0 {
                        return Ended::Closed;
                    }
                    let mut frames = Vec::new();
                    for outbound in queued.drain(..) {
                        match outbound {
                            Outbound::Frame { seq, frame } if seq > floor => {
                                floor = seq;
                                frames.push(Message::Text(frame));
                            }
                            Outbound::Frame { .. } => {}
                            Outbound::Resync => resync_pending = true,
                            // Seen at the top of the loop, once no call is in flight.
                            Outbound::Drain => {}
                            Outbound::Overflowed => {
                                tracing::info!(session = %self.key, "closing a slow consumer");
                                crate::metrics::SLOW_CONSUMER_CLOSES.inc();
                                close(ws, close_code::SLOW_CONSUMER, "slow consumer", &config).await;
                                return Ended::Closed;
                            }
                        }
                    }
                    // Like the outbox, give back what a burst grew it to.
                    if queued.capacity() > crate::outbox::KEPT_CAPACITY {
                        queued = Vec::new();
                    }
                    sink.write(ws, frames).await
                }
                message = ws.next(), if in_flight.is_none() => {
                    last_heard = tokio::time::Instant::now();
                    match message {
                        Some(Ok(Message::Text(text))) => {
                            if let Err(wait) = bucket.try_take(std::time::Instant::now()) {
                                rate_violations += 1;
                                if rate_violations > limits.max_rate_violations {
                                    close(ws, close_code::RATE_LIMITED, "rate limit exceeded repeatedly", &config).await;
                                    return Ended::Closed;
                                }
                                let mut err = CoreError::new(ErrorCode::RateLimited, format!(
                                    "more than {} messages per second (burst {}); slow down",
                                    limits.messages_per_second, limits.message_burst
                                ));
                                err.retry_after = Some(wait);
                                sink.write_text(ws, vec![error_frame(&err, None)]).await
                            } else {
                                rate_violations = 0;
                                match seed000::decode_with(&text, &config.limits) {
                                    Ok(ClientCommand::Ping) => {
                                        protocol_violations = 0;
                                        let pong = Utf8Bytes::from(seed000::encode_pong(now_ms()));
                                        sink.write_text(ws, vec![pong]).await
                                    }
                                    Ok(command) => {
                                        protocol_violations = 0;
                                        in_flight = Some(self.dispatch(command));
                                        Ok(())
                                    }
                                    Err(err) => {
                                        protocol_violations += 1;
                                        if protocol_violations > limits.max_protocol_violations {
                                            close(ws, close_code::POLICY, "too many invalid messages", &config).await;
                                            return Ended::Closed;
                                        }
                                        crate::metrics::ERRORS_SENT.with_label_values(&[err.code().as_str()]).inc();
                                        let frame = Utf8Bytes::from(seed000::encode_error(&ErrorEnvelope::from_protocol(&err)));
                                        sink.write_text(ws, vec![frame]).await
                                    }
                                }
                            }
                        }
                        Some(Ok(Message::Binary(_))) => {
                            let err = CoreError::invalid("binary frames are not supported; send JSON text");
                            sink.write_text(ws, vec![error_frame(&err, None)]).await
                        }
                        Some(Ok(Message::Close(_))) => {
                            // tungstenite queued the close reply; flushing sends it.
                            let _ = tokio::time::timeout(config.close_timeout, ws.flush()).await;
                            return Ended::Closed;
                        }
                        // Pongs only prove liveness; a ping's reply goes out with the next flush.
                        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
                            sink.write(ws, []).await
                        }
                        Some(Err(WsError::Capacity(err))) => {
                            let reason = format!("message too big: {err}");
                            close(ws, close_code::TOO_BIG, &reason, &config).await;
                            return Ended::Closed;
                        }
                        Some(Err(_)) | None => return Ended::Abnormal,
                    }
                }
            };
            match written {
                Ok(()) => {}
                Err(WriteFailure::Overflowed) => {} // the next turn closes with 4008
                Err(WriteFailure::Broken) => return Ended::Abnormal,
            }
        }
    }

    /// Joins again after the session's stream lost events: the core answers
    /// with what this client missed after `last_seq` (or a fresh snapshot).
    async fn rejoin(
        &self,
        last_seq: u64,
    ) -> Result<(Vec<Utf8Bytes>, u64, Option<Coverage>), CoreError> {
        let join = JoinRequest {
            session: Some(session_ref(&self.key)),
            connection: Some(self.connection.clone()),
            last_seq: Some(last_seq),
            history_limit: 0,
        };
        let joined = self
            .context
            .core
            .connections
            .clone()
            .join(self.context.core.request(join))
            .instrument(action_span("rejoin", &self.key, &self.connection))
            .await
            .map_err(|status| CoreError::from_status(&status))?
            .into_inner();
        let snapshot_seq = joined.snapshot_seq;
        let coverage = Coverage::of_snapshot(&joined);
        Ok((self.start_frames(joined), snapshot_seq, coverage))
    }

    fn actor(&self) -> Actor {
        Actor {
            participant_id: self.connection.participant_id.clone(),
            connection_id: self.connection.connection_id.clone(),
            name: self.connection.name.clone(),
            role: self.connection.role,
        }
    }

    /// Starts the core call for a client action; resolves to the frames the
    /// sender alone should get (errors, a duplicate's stored message).
    fn dispatch(&self, command: ClientCommand) -> CallFuture {
        let core = self.context.core.clone();
        let session = Some(session_ref(&self.key));
        let session_id = self.key.session_id.clone();
        let actor = Some(self.actor());
        let action = seed000::action_of(&command);
        let span = action_span(action, &self.key, &self.connection);
        let refresh = Refresh {
            authenticator: self.context.config.auth.clone(),
            identity: self.identity.clone(),
            session_id: self.key.session_id.clone(),
            tenant: self.key.tenant.clone(),
        };
        Box::pin(
            async move {
                let _timer = crate::metrics::CORE_CALL_SECONDS
                    .with_label_values(&[action])
                    .start_timer();
                let mut echoed_seq = None;
                let outcome: Result<Vec<Utf8Bytes>, tonic::Status> = match command {
                    ClientCommand::ChatSend {
                        message_id,
                        content,
                        created_at_ms,
                        meta,
                    } => {
                        let request = core.request(SendChatRequest {
                            session,
                            actor,
                            client_ref: message_id,
                            kind: String::new(),
                            content,
                            meta_json: meta
                                .map(|meta| serde_json::Value::Object(meta).to_string())
                                .unwrap_or_default(),
                            created_at_ms: created_at_ms.unwrap_or(0),
                        });
                        core.chat.clone().send(request).await.map(|response| {
                            let response = response.into_inner();
                            match response.message.filter(|_| response.duplicate) {
                                Some(stored) => {
                                    echoed_seq = Some(stored.seq);
                                    vec![Utf8Bytes::from(seed000::encode_chat_message(
                                        &session_id,
                                        Some(stored.seq),
                                        &stored,
                                    ))]
                                }
                                None => Vec::new(),
                            }
                        })
                    }
                    ClientCommand::PresenceUpdate {
                        status,
                        is_typing,
                        is_speaking,
                        last_seen_ms,
                        extra,
                    } => {
                        let request = core.request(PresenceUpdateRequest {
                            session,
                            actor,
                            status: status.map(|status| status as i32),
                            is_typing,
                            is_speaking,
                            last_seen_ms,
                            extra_json: extra
                                .map(|extra| serde_json::Value::Object(extra).to_string()),
                        });
                        core.presence
                            .clone()
                            .update(request)
                            .await
                            .map(|_| Vec::new())
                    }
                    ClientCommand::PresenceHeartbeat { last_seen_ms } => {
                        let request = core.request(HeartbeatRequest {
                            session,
                            actor,
                            last_seen_ms,
                        });
                        core.presence
                            .clone()
                            .heartbeat(request)
                            .await
                            .map(|_| Vec::new())
                    }
                    ClientCommand::LeaseSet {
                        lease_id,
                        step_index,
                        lease_duration_ms,
                    } => {
                        let request = core.request(LeaseSetRequest {
                            session,
                            actor,
                            lease_id_hint: lease_id.unwrap_or_default(),
                            step_index,
                            duration_ms: lease_duration_ms.unwrap_or(0),
                        });
                        core.lease.clone().set(request).await.map(|_| Vec::new())
                    }
                    ClientCommand::LeaseRelease { lease_id } => {
                        let request = core.request(LeaseReleaseRequest {
                            session,
                            actor,
                            lease_id: lease_id.unwrap_or_default(),
                        });
                        core.lease
                            .clone()
                            .release(request)
                            .await
                            .map(|_| Vec::new())
                    }
                    ClientCommand::Ping => {
                        Ok(vec![Utf8Bytes::from(seed000::encode_pong(now_ms()))])
                    }
                    ClientCommand::AuthRefresh { token } => return refresh.check(&token).await,
                };
                let mut outcome = CallOutcome::from(outcome.unwrap_or_else(|status| {
                    vec![error_frame(&CoreError::from_status(&status), Some(action))]
                }));
                outcome.echoed_seq = echoed_seq;
                outcome
            }
            .instrument(span),
        )
    }
}
