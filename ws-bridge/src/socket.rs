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
use crate::command::Caller;
use crate::config::BridgeConfig;
use crate::core_client::CoreClient;
use crate::dialect::{Admission, Dialect, Reply};
use crate::hub::Hub;
use crate::limits::{ConnectionLimitError, ConnectionPermit};
use crate::outbox::{outbox, Outbound, OutboxReceiver};

pub mod close;
mod inbound;
mod join;
mod keepalive;
mod rooms;
mod route;
pub mod wire;
mod writer;

pub use close::close_code;
use close::Closing;
use inbound::{Inbound, Reader};
use keepalive::{Keepalive, Tick};
use rooms::{Room, Rooms};
use route::{Answer, Answered, InFlight, Routed};
use writer::{Delivery, WriteFailure, Writer};

pub(crate) type Ws = WebSocketStream<wire::Wire<TokioIo<Upgraded>>>;

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
pub(crate) fn error_message(
    dialect: &dyn Dialect,
    error: &ErrorEnvelope,
    trace_id: Option<&str>,
) -> Message {
    crate::metrics::ERRORS_SENT
        .with_label_values(&[error.code.as_str()])
        .inc();
    Message::Text(dialect.encode_error(error, trace_id))
}

/// Runs one client socket to its end.
///
/// Every idle socket holds this future for its lifetime, so it is kept small
/// (see BENCHMARKS.md, idle memory): the stream and the client's details are
/// boxed (an async fn keeps its arguments twice), the context and the caller
/// are shared behind an `Arc`, and the rare, large awaits (admission with its
/// attach, joins and refusals; rejoin; leave) are boxed, so their state is
/// allocated only while they run instead of being reserved in every socket's
/// future.
pub async fn run(mut ws: Box<Ws>, client: Box<Client>, context: Arc<SocketContext>) {
    // Boxed: admission's awaits (attach, enter, register, a refusal) and
    // what they return are held only while it runs, not reserved in every
    // socket's task for its life beside `serve`'s. `admitted` is used in
    // place: its fields moved out into locals would be held twice.
    let Some(mut admitted) = Box::pin(admit(&mut ws, &client, &context)).await else {
        return;
    };
    let start = std::mem::take(&mut admitted.start);
    let mut writer = Writer::new(
        admitted.outbound.overflow_signal(),
        context.config.idle_timeout,
    );
    let exit = match writer.write(&mut ws, start).await {
        Ok(()) => {
            let outbound = &mut admitted.outbound;
            admitted.session.serve(&mut ws, outbound, &mut writer).await
        }
        Err(_) => Exit::ended(Ended::Abnormal),
    };
    // Boxed: what the end holds (the exit, the rooms left, the close) would
    // otherwise be reserved beside `serve`'s state for the socket's life.
    Box::pin(end(ws, admitted.session, admitted.user_channel, exit)).await;
}

/// Ends a socket: leaves its rooms (and the one it was entering), drops its
/// user channel and registry row, and writes the close it decided on.
async fn end(
    mut ws: Box<Ws>,
    mut session: Session,
    user_channel: Option<crate::hub::users::UserAttached>,
    exit: Exit,
) {
    let timeout = session.context.config.close_timeout;
    let left = session.rooms.take_all();
    // Out of the user channel first: its registry refresh must not write the
    // row back after the disconnect below.
    drop(user_channel);
    // A drained socket's client reconnects (to this bridge's successor or
    // another one): it gets the grace period, like a broken connection.
    let graceful = exit.ended == Ended::Closed;
    let base = session.base;
    // A room being entered or left when the socket ended may be joined on
    // the core already: it is left too (a leave of a connection the session
    // does not have changes nothing).
    let unsettled = session.unsettled.take().map(|session_id| {
        Arc::new(Caller {
            context: Arc::clone(&base.context),
            key: SessionKey::new(base.key.tenant.clone(), session_id),
            connection: base.connection.clone(),
            identity: None,
        })
    });
    let leave = Box::pin(async move {
        let leaves = left
            .iter()
            .map(|room| &room.caller)
            .chain(unsettled.iter())
            .map(|caller| join::leave(caller, graceful, None));
        futures_util::future::join_all(leaves).await;
        crate::registry::disconnect(
            &base.context.core,
            &base.key.tenant,
            &base.connection.connection_id,
        )
        .await;
    });
    match exit.close {
        // The participant leaves once the Close is written, while the
        // handshake waits for the client's: what others see does not wait
        // on a client that never answers.
        Some((before, closing)) => {
            if exit.stream_failed {
                ws = close::reopen(ws).await;
            }
            close::close_then(&mut ws, before, closing, timeout, leave).await;
        }
        None => leave.await,
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

/// A socket admitted: the state `run` serves it with.
struct Admitted {
    _open: GaugeGuard,
    session: Session,
    outbound: OutboxReceiver,
    user_channel: Option<crate::hub::users::UserAttached>,
    /// The frames it starts with (its rooms' joins, a room refused).
    start: Vec<Message>,
}

/// Admits a socket: counts it, attaches its user channel, enters the rooms
/// named at connect and registers the connection; `None` once it has been
/// refused (and closed).
async fn admit(ws: &mut Ws, client: &Client, context: &Arc<SocketContext>) -> Option<Admitted> {
    let config = &context.config;
    let dialect = client.dialect;
    let timeout = config.close_timeout;
    if let Err(refused) = &client.permit {
        let mut err = CoreError::new(ErrorCode::RateLimited, refused.to_string());
        err.retry_after = Some(std::time::Duration::from_secs(5));
        let closing = Closing::new(close_code::RATE_LIMITED, "connection limit");
        refuse(ws, dialect, &err, closing, timeout).await;
        return None;
    }
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
    // The socket's calls that name no room (NexusChat's ACK) go out under
    // its tenant alone; each room has its own caller. A single-room socket's
    // caller names its session and is its room's caller too.
    let home = if dialect.multi_room() {
        String::new()
    } else {
        admission.rooms.first().cloned().unwrap_or_default()
    };
    let base = Arc::new(Caller {
        context: Arc::clone(context),
        key: SessionKey::new(admission.tenant.clone(), home),
        connection: Arc::new(ConnectionInfo {
            connection_id: uuid::Uuid::now_v7().to_string(),
            participant_id: admission.user_id.clone(),
            name: admission.name.clone(),
            role: admission.role as i32,
            client: admission.client as i32,
            bridge_id: config.bridge_id.clone(),
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
            connected_at_ms: crate::now_ms(),
        }),
        identity: admission.identity.clone(),
    });
    let (outbox, outbound) = outbox(config.outbound_queue_bytes);
    // Events addressed to the user (signals) come on the user channel, for
    // the dialects that show them; registered before any room is entered,
    // so nothing sent to the user once it is in a room can miss the socket.
    let user_channel = if dialect.receives_user_events() {
        let attach = context.hub.users().attach(
            &admission.tenant,
            &admission.user_id,
            &base.connection.connection_id,
            dialect.id(),
            outbox.clone(),
        );
        match Box::pin(attach).await {
            Ok(attached) => Some(attached),
            Err(err) => {
                let closing = Closing::new(close_code::TRY_AGAIN_LATER, "core unavailable");
                refuse(ws, dialect, &err, closing, timeout).await;
                return None;
            }
        }
    } else {
        None
    };
    let mut rooms = Rooms::new(outbox, admission.rooms.len());
    let mut start: Vec<Message> = Vec::new();
    for session_id in &admission.rooms {
        let (number, room_outbox) = rooms.reserve();
        let entered = rooms::enter(
            &base,
            session_id,
            number,
            room_outbox,
            admission.last_seq,
            dialect,
            None,
        );
        match Box::pin(entered).await {
            Ok((room, joined)) => start.extend(
                rooms
                    .insert(room, &joined, dialect, None)
                    .into_iter()
                    .map(Message::Text),
            ),
            Err(err) if !dialect.multi_room() => {
                refuse(ws, dialect, &err, rooms::refused_close(&err), timeout).await;
                return None;
            }
            // A room named at connect that cannot be entered is refused on
            // its own; the socket and its other rooms stay.
            Err(err) => {
                let mut error = ErrorEnvelope::from_core(&err, None);
                error.message = format!("cannot enter room {session_id}: {}", error.message);
                start.push(error_message(dialect, &error, None));
            }
        }
    }
    // Registered once admitted: a socket refused above leaves no row behind.
    Box::pin(crate::registry::register(
        &context.core,
        &admission.tenant,
        &base.connection,
        dialect.name(),
        admission.rooms.first().map_or("", String::as_str),
    ))
    .await;
    let session = Session {
        unsettled: None,
        entering: false,
        expires_at_ms: admission
            .identity
            .as_ref()
            .and_then(|identity| identity.expires_at_ms),
        rooms,
        base,
        context: Arc::clone(context),
        dialect,
    };
    Some(Admitted {
        _open,
        session,
        outbound,
        user_channel,
        start,
    })
}

/// Sends `err` and closes: the answer to a socket that cannot be served.
async fn refuse(
    ws: &mut Ws,
    dialect: &dyn Dialect,
    err: &CoreError,
    closing: Closing,
    timeout: std::time::Duration,
) {
    let frame = error_message(dialect, &ErrorEnvelope::from_core(err, None), None);
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
    /// The room being entered or left by the call in flight, if any: the
    /// socket does not read its queue while it enters one (the room's first
    /// frames would find no delivery floor yet), and leaves it if it ends
    /// meanwhile.
    unsettled: Option<String>,
    /// `unsettled` is being entered.
    entering: bool,
    /// Calls that name no room.
    base: Arc<Caller>,
    rooms: Rooms,
    context: Arc<SocketContext>,
    dialect: &'static dyn Dialect,
    /// When the token expires, unless refreshed (Unix ms).
    expires_at_ms: Option<i64>,
}

/// What woke the socket's loop.
enum Woken {
    Expired,
    Tick(Tick),
    Answered(Answered),
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
        // Rooms whose stream lost events, to rejoin once no call is in flight.
        let mut resync_pending: Vec<u32> = Vec::new();
        let mut in_flight: Option<InFlight> = None;
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
            } else if let Some(room) = resync_pending.pop() {
                Some(Box::pin(self.rejoin(room)).await)
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
                        received = outbound.recv_many(&mut queued, 256), if !self.entering => Woken::Queued(received),
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
                            tracing::debug!(connection = %self.base.connection.connection_id, "socket silent past the idle timeout");
                            Step::End(Ended::Abnormal)
                        }
                        Woken::Answered(answered) => {
                            in_flight = None;
                            Step::Write(self.answer(answered, expiry.as_mut()))
                        }
                        Woken::Queued(0) => Step::End(Ended::Closed),
                        Woken::Queued(_) => {
                            let taken = writer::take(&mut queued, &mut self.rooms);
                            for room in taken.resync {
                                if !resync_pending.contains(&room) {
                                    resync_pending.push(room);
                                }
                            }
                            match taken.close {
                                Some(closing) => {
                                    tracing::info!(connection = %self.base.connection.connection_id, "closing a slow consumer");
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
                                    tracing::debug!(connection = %self.base.connection.connection_id, code = closing.code, reason = %closing.reason, "closing a socket that broke the protocol");
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
                Step::Call(request) => match self.route(request) {
                    Routed::Call(call) => in_flight = Some(call),
                    Routed::Refused(frame) => match writer.write(ws, vec![frame]).await {
                        Ok(()) | Err(WriteFailure::Overflowed) => {}
                        Err(WriteFailure::Broken) => return Exit::ended(Ended::Abnormal),
                    },
                },
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
        answered: Answered,
        expiry: std::pin::Pin<&mut tokio::time::Sleep>,
    ) -> Vec<Message> {
        let Answered { tag, room, outcome } = answered;
        // One call at a time: whatever it entered or left is settled now.
        self.unsettled = None;
        self.entering = false;
        let reply = match outcome {
            Answer::Reply(None) => return Vec::new(),
            Answer::Reply(Some(reply)) => reply,
            Answer::Entered(entered) => match *entered {
                Ok((entered, joined)) => {
                    let frames = self
                        .rooms
                        .insert(entered, &joined, self.dialect, Some(&tag));
                    return frames.into_iter().map(Message::Text).collect();
                }
                Err(err) => Reply::Error(ErrorEnvelope::from_core(&err, Some(tag.action))),
            },
        };
        match &reply {
            // The client has it already, or gets it in its place.
            Reply::Duplicate(stored)
                if !self.dialect.echoes_every_duplicate()
                    && room
                        .as_deref()
                        .and_then(|room| self.rooms.get(room))
                        .or_else(|| self.rooms.first())
                        .is_some_and(|room| room.coverage.includes(stored.seq)) =>
            {
                return Vec::new()
            }
            Reply::AuthRefreshed { expires_at_ms } => {
                self.expires_at_ms = Some(*expires_at_ms);
                expiry.reset(keepalive::expiry_instant(self.expires_at_ms));
            }
            Reply::Error(error) => {
                crate::metrics::ERRORS_SENT
                    .with_label_values(&[error.code.as_str()])
                    .inc();
            }
            Reply::Duplicate(_) | Reply::Pong { .. } | Reply::RoomLeft | Reply::CallRejected(_) => {
            }
        }
        let session_id = room
            .as_deref()
            .or_else(|| self.rooms.first().map(Room::session_id))
            .unwrap_or_default();
        let frame = self.dialect.encode_reply(session_id, &tag, &reply);
        vec![Message::Text(frame)]
    }

    /// Joins a room again after its stream lost events: the core answers
    /// with what this client missed after its last seq (or a fresh snapshot).
    async fn rejoin(&mut self, number: u32) -> Step {
        let Some(room) = self.rooms.by_number_mut(number) else {
            return Step::Write(Vec::new()); // left meanwhile
        };
        let last_seq = room.delivery.floor();
        match join::join(&room.caller, Some(last_seq), "rejoin", None).await {
            Ok(joined) => {
                room.delivery = Delivery::after(joined.snapshot_seq);
                room.coverage = room.coverage.after_rejoin(&joined);
                let frames = self.dialect.encode_start(room.session_id(), &joined, None);
                Step::Write(frames.into_iter().map(Message::Text).collect())
            }
            Err(err) => {
                // Written before the close, in the same flush.
                let frame =
                    error_message(self.dialect, &ErrorEnvelope::from_core(&err, None), None);
                Step::Close {
                    before: vec![frame],
                    closing: Closing::new(close_code::TRY_AGAIN_LATER, "cannot rejoin the session"),
                    ended: Ended::Drained,
                }
            }
        }
    }
}
