//! One WebSocket client, from join to leave, in one task.
//!
//! The task reads client frames ([`inbound`]), runs one core call at a time
//! for them (so a client's actions reach the core in the order sent; see
//! [`crate::command`]), writes what the hub queued for it, batching every
//! queued frame into one flush ([`writer`]), pings it ([`keepalive`]) and
//! closes it with a proper handshake ([`close`]). It knows no dialect: the
//! socket's [`Dialect`] decodes and encodes. Bad input gets an `error`
//! envelope and the socket stays usable.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use meno_common::error::{CoreError, ErrorCode};
use meno_common::key::SessionKey;
use meno_proto::ConnectionInfo;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::codec::ErrorEnvelope;
use crate::command::{self, CallFuture, Caller, Outcome};
use crate::config::BridgeConfig;
use crate::core_client::CoreClient;
use crate::dialect::{Admission, Dialect, Reply, RequestTag};
use crate::hub::{AttachError, Hub};
use crate::limits::{ConnectionLimitError, ConnectionPermit};
use crate::outbox::{outbox, Outbound, OutboxReceiver};

pub mod close;
mod inbound;
mod join;
mod keepalive;
mod writer;

pub use close::close_code;
use close::Closing;
use inbound::{Inbound, Reader};
use join::Coverage;
use keepalive::{Keepalive, Tick};
use writer::{Delivery, WriteFailure, Writer};

pub(crate) type Ws = WebSocketStream<TokioIo<Upgraded>>;

/// Who the client is and where from, as the upgrade request said.
#[derive(Debug)]
pub struct Client {
    /// The protocol it speaks.
    pub dialect: &'static dyn Dialect,
    /// Who the connect admitted.
    pub admission: Admission,
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

/// How a socket ended, which decides what others see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The client closed, or the bridge closed it on purpose.
    Closed,
    /// The connection broke: the participant shows `reconnecting` for a while.
    Abnormal,
    /// The bridge closed it (draining, expired token); the client is
    /// expected back, so it gets the reconnect grace period.
    Drained,
}

/// An `error` envelope in the socket's dialect, counted.
pub(crate) fn error_message(dialect: &dyn Dialect, error: &ErrorEnvelope) -> Message {
    crate::metrics::ERRORS_SENT
        .with_label_values(&[error.code.as_str()])
        .inc();
    Message::Text(dialect.encode_error(error))
}

/// Runs one client socket to its end.
///
/// Every idle socket holds this future for its lifetime, so it is kept small
/// (see BENCHMARKS.md, idle memory): the stream and the client's details are
/// boxed (an async fn keeps its arguments twice), the context and the caller
/// are shared behind an `Arc`, and the rare, large awaits (attach, join,
/// rejoin, leave) are boxed, so their state is allocated only while they run
/// instead of being reserved in every socket's future.
pub async fn run(mut ws: Box<Ws>, client: Box<Client>, context: Arc<SocketContext>) {
    let config = &context.config;
    let dialect = client.dialect;
    let timeout = config.close_timeout;
    let _permit = match &client.permit {
        Ok(permit) => permit,
        Err(refused) => {
            let mut err = CoreError::new(ErrorCode::RateLimited, refused.to_string());
            err.retry_after = Some(std::time::Duration::from_secs(5));
            let closing = Closing::new(close_code::RATE_LIMITED, "connection limit");
            refuse(&mut ws, dialect, &err, closing, timeout).await;
            return;
        }
    };
    let admission = &client.admission;
    let client_kind = match admission.client {
        meno_proto::ClientKind::Web => "web",
        meno_proto::ClientKind::Tablet => "tablet",
        meno_proto::ClientKind::Native => "native",
        _ => "other",
    };
    let open = crate::metrics::CONNECTIONS.with_label_values(&[client_kind]);
    open.inc();
    let _open = GaugeGuard(open);
    let caller = Arc::new(Caller {
        context: Arc::clone(&context),
        key: SessionKey::new(admission.tenant.clone(), admission.session_id.clone()),
        connection: ConnectionInfo {
            connection_id: uuid::Uuid::now_v7().to_string(),
            participant_id: admission.user_id.clone(),
            name: admission.name.clone(),
            role: admission.role as i32,
            client: admission.client as i32,
            bridge_id: config.bridge_id.clone(),
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
            connected_at_ms: crate::now_ms(),
        },
        identity: admission.identity.clone(),
    });
    let (outbox, mut outbound) = outbox(config.outbound_queue_bytes);
    let attach = context.hub.attach(
        caller.key.clone(),
        caller.connection.clone(),
        dialect.id(),
        outbox,
    );
    let attached = match Box::pin(attach).await {
        Ok(attached) => attached,
        Err(AttachError(err)) => {
            let closing = match err.code {
                ErrorCode::RateLimited => Closing::new(close_code::RATE_LIMITED, "limit reached"),
                ErrorCode::Unavailable => {
                    Closing::new(close_code::TRY_AGAIN_LATER, "core unavailable")
                }
                _ => Closing::new(close_code::POLICY, "refused"),
            };
            refuse(&mut ws, dialect, &err, closing, timeout).await;
            return;
        }
    };
    let joined = match Box::pin(join::join(&caller, admission.last_seq, "join")).await {
        Ok(joined) => joined,
        Err(err) => {
            let code = if err.code.retryable() {
                close_code::TRY_AGAIN_LATER
            } else {
                close_code::POLICY
            };
            let closing = Closing::new(code, "join refused");
            refuse(&mut ws, dialect, &err, closing, timeout).await;
            return;
        }
    };
    let mut session = Session {
        expires_at_ms: admission
            .identity
            .as_ref()
            .and_then(|identity| identity.expires_at_ms),
        coverage: Coverage::after_join(&joined, admission.last_seq),
        delivery: Delivery::after(joined.snapshot_seq),
        caller: Arc::clone(&caller),
        context: Arc::clone(&context),
        dialect,
    };
    let start: Vec<Message> = dialect
        .encode_start(&caller.key.session_id, &joined)
        .into_iter()
        .map(Message::Text)
        .collect();
    drop(joined);
    let mut writer = Writer::new(outbound.overflow_signal(), config.idle_timeout);
    let exit = match writer.write(&mut ws, start).await {
        Ok(()) => session.serve(&mut ws, &mut outbound, &mut writer).await,
        Err(_) => Exit::ended(Ended::Abnormal),
    };
    drop(attached);
    // A drained socket's client reconnects (to this bridge's successor or
    // another one): it gets the grace period, like a broken connection.
    let leave = join::leave(&caller, exit.ended == Ended::Closed);
    match exit.close {
        // The participant leaves once the Close is written, while the
        // handshake waits for the client's: what others see does not wait
        // on a client that never answers.
        Some((before, closing)) => {
            if exit.stream_failed {
                ws = close::reopen(ws).await;
            }
            Box::pin(close::close_then(&mut ws, before, closing, timeout, leave)).await;
        }
        None => Box::pin(leave).await,
    }
}

/// How the socket's loop ended, and the close it decided on, if any.
struct Exit {
    ended: Ended,
    /// Frames to write before the Close, and the Close.
    close: Option<(Vec<Message>, Closing)>,
    /// The stream failed on the client's frame and reads no more: the close
    /// runs on a new one ([`close::reopen`]).
    stream_failed: bool,
}

impl Exit {
    fn ended(ended: Ended) -> Self {
        Self {
            ended,
            close: None,
            stream_failed: false,
        }
    }
}

/// Sends `err` and closes: the answer to a socket that cannot be served.
async fn refuse(
    ws: &mut Ws,
    dialect: &dyn Dialect,
    err: &CoreError,
    closing: Closing,
    timeout: std::time::Duration,
) {
    let frame = error_message(dialect, &ErrorEnvelope::from_core(err, None));
    close::refuse(ws, vec![frame], closing, timeout).await;
}

/// Decrements a gauge when dropped, however the socket's task ends.
struct GaugeGuard(prometheus::IntGauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A joined socket's state between frames.
struct Session {
    caller: Arc<Caller>,
    context: Arc<SocketContext>,
    dialect: &'static dyn Dialect,
    /// When the token expires, unless refreshed (Unix ms).
    expires_at_ms: Option<i64>,
    coverage: Coverage,
    delivery: Delivery,
}

/// What woke the socket's loop.
enum Woken {
    Expired,
    Tick(Tick),
    Answered((RequestTag, Outcome)),
    Queued(usize),
    Read(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
}

/// What the loop does next.
enum Step {
    Write(Vec<Message>),
    Call(crate::dialect::Request),
    /// Write `before` (may be empty), then close.
    Close {
        before: Vec<Message>,
        closing: Closing,
        ended: Ended,
    },
    /// The client's frame failed the stream: close on a new one.
    Violated(Closing),
    /// The client closed: flush tungstenite's reply and end.
    PeerClosed,
    End(Ended),
}

impl Step {
    fn close(closing: Closing, ended: Ended) -> Self {
        Self::Close {
            before: Vec::new(),
            closing,
            ended,
        }
    }
}

impl Session {
    /// Serves the socket until it ends or decides to close it.
    ///
    /// Everything this loop waits on is the socket's own: its outbox (which
    /// also carries resync, drain and overflow), its reads, its ping timer
    /// and its token's expiry. Nothing shared with other sockets is polled,
    /// so a wake-up costs no lock.
    async fn serve(
        &mut self,
        ws: &mut Ws,
        outbound: &mut OutboxReceiver,
        writer: &mut Writer,
    ) -> Exit {
        let config = Arc::clone(&self.context.config);
        let mut resync_pending = false;
        let mut in_flight: Option<CallFuture> = None;
        // Grown by the first batch: an idle socket holds none.
        let mut queued: Vec<Outbound> = Vec::new();
        let mut keepalive = Keepalive::new(config.ping_interval, config.idle_timeout);
        let mut reader = Reader::new(self.dialect, &config.rate_limits);
        // The token's expiry, if any: one timer, reset when a refresh renews it.
        let expiry = tokio::time::sleep_until(keepalive::expiry_instant(self.expires_at_ms));
        tokio::pin!(expiry);
        loop {
            let step = if in_flight.is_some() {
                None
            } else if self.context.hub.is_draining() {
                // Draining waits for the in-flight call, so its answer is sent.
                Some(Step::close(
                    Closing::new(close_code::GOING_AWAY, "server draining"),
                    Ended::Drained,
                ))
            } else if std::mem::take(&mut resync_pending) {
                Some(Box::pin(self.rejoin()).await)
            } else {
                None
            };
            let step = match step {
                Some(step) => step,
                None => {
                    let woken = tokio::select! {
                        () = &mut expiry, if self.expires_at_ms.is_some() && in_flight.is_none() => Woken::Expired,
                        tick = keepalive.tick() => Woken::Tick(tick),
                        outcome = async { in_flight.as_mut().expect("guarded by is_some").await }, if in_flight.is_some() => Woken::Answered(outcome),
                        received = outbound.recv_many(&mut queued, 256) => Woken::Queued(received),
                        message = ws.next(), if in_flight.is_none() => Woken::Read(message),
                    };
                    match woken {
                        Woken::Expired => Step::close(
                            Closing::new(
                                close_code::UNAUTHORIZED,
                                "token expired; reconnect with a fresh token",
                            ),
                            Ended::Drained,
                        ),
                        Woken::Tick(Tick::Ping) => {
                            Step::Write(vec![Message::Ping(bytes::Bytes::new())])
                        }
                        Woken::Tick(Tick::Dead) => {
                            tracing::debug!(session = %self.caller.key, "socket silent past the idle timeout");
                            Step::End(Ended::Abnormal)
                        }
                        Woken::Answered(outcome) => {
                            in_flight = None;
                            Step::Write(self.answer(outcome, expiry.as_mut()))
                        }
                        Woken::Queued(0) => Step::End(Ended::Closed),
                        Woken::Queued(_) => {
                            let taken = self.delivery.take(&mut queued);
                            resync_pending |= taken.resync;
                            match taken.close {
                                Some(closing) => {
                                    tracing::info!(session = %self.caller.key, "closing a slow consumer");
                                    Step::close(closing, Ended::Closed)
                                }
                                None => Step::Write(taken.frames),
                            }
                        }
                        Woken::Read(message) => {
                            keepalive.heard();
                            let inbound =
                                reader.on_message(message, &config.limits, &config.rate_limits);
                            let ended = inbound.ended();
                            match inbound {
                                Inbound::Answer(frames) => Step::Write(frames),
                                Inbound::Call(request) => Step::Call(request),
                                Inbound::Close(closing) => {
                                    Step::close(closing, ended.unwrap_or(Ended::Closed))
                                }
                                Inbound::Violated(closing) => {
                                    tracing::debug!(session = %self.caller.key, code = closing.code, reason = %closing.reason, "closing a socket that broke the protocol");
                                    Step::Violated(closing)
                                }
                                Inbound::PeerClosed => Step::PeerClosed,
                                Inbound::Broken => Step::End(Ended::Abnormal),
                            }
                        }
                    }
                }
            };
            match step {
                Step::Write(frames) => match writer.write(ws, frames).await {
                    Ok(()) | Err(WriteFailure::Overflowed) => {} // the next turn closes with 4008
                    Err(WriteFailure::Broken) => return Exit::ended(Ended::Abnormal),
                },
                Step::Call(request) => {
                    in_flight = Some(command::dispatch(Arc::clone(&self.caller), request));
                }
                Step::Close {
                    before,
                    closing,
                    ended,
                } => {
                    return Exit {
                        ended,
                        close: Some((before, closing)),
                        stream_failed: false,
                    }
                }
                Step::Violated(closing) => {
                    return Exit {
                        ended: Ended::Closed,
                        close: Some((Vec::new(), closing)),
                        stream_failed: true,
                    }
                }
                Step::PeerClosed => {
                    // tungstenite queued the close reply; flushing sends it.
                    let _ = tokio::time::timeout(config.close_timeout, ws.flush()).await;
                    return Exit::ended(Ended::Closed);
                }
                Step::End(ended) => return Exit::ended(ended),
            }
        }
    }

    /// The frames that answer a finished call, for the sender alone.
    fn answer(
        &mut self,
        (tag, outcome): (RequestTag, Outcome),
        expiry: std::pin::Pin<&mut tokio::time::Sleep>,
    ) -> Vec<Message> {
        let Some(reply) = outcome else {
            return Vec::new();
        };
        match &reply {
            // The client has it already, or gets it in its place.
            Reply::Duplicate(stored) if self.coverage.includes(stored.seq) => return Vec::new(),
            Reply::AuthRefreshed { expires_at_ms } => {
                self.expires_at_ms = Some(*expires_at_ms);
                expiry.reset(keepalive::expiry_instant(self.expires_at_ms));
            }
            Reply::Error(error) => {
                crate::metrics::ERRORS_SENT
                    .with_label_values(&[error.code.as_str()])
                    .inc();
            }
            Reply::Duplicate(_) | Reply::Pong { .. } => {}
        }
        let frame = self
            .dialect
            .encode_reply(&self.caller.key.session_id, &tag, &reply);
        vec![Message::Text(frame)]
    }

    /// Joins again after the session's stream lost events: the core answers
    /// with what this client missed after its last seq (or a fresh snapshot).
    async fn rejoin(&mut self) -> Step {
        let last_seq = self.delivery.floor();
        match join::join(&self.caller, Some(last_seq), "rejoin").await {
            Ok(joined) => {
                self.delivery = Delivery::after(joined.snapshot_seq);
                self.coverage = self.coverage.after_rejoin(&joined);
                let frames = self
                    .dialect
                    .encode_start(&self.caller.key.session_id, &joined);
                Step::Write(frames.into_iter().map(Message::Text).collect())
            }
            Err(err) => {
                // Written before the close, in the same flush.
                let frame = error_message(self.dialect, &ErrorEnvelope::from_core(&err, None));
                Step::Close {
                    before: vec![frame],
                    closing: Closing::new(close_code::TRY_AGAIN_LATER, "cannot rejoin the session"),
                    ended: Ended::Drained,
                }
            }
        }
    }
}
