//! Closing a socket from the server side: the close codes, and the closing
//! handshake of RFC 6455 §7.1.1 done right.
//!
//! After the bridge sends its Close frame it keeps reading, discarding data
//! frames, until the client's Close arrives or `--close-timeout` passes;
//! only then is the TCP connection dropped. Dropping it at once would leave
//! whatever the client had sent unread (a keepalive ping, a queued
//! `chat.send`), and the kernel answers unread data with a reset, which
//! makes the client's kernel discard everything the bridge wrote last: the
//! error envelopes and the close code the client needed to see.
//!
//! A client that broke the protocol (1002, 1007) or sent a message too big
//! (1009) is closed the same way, on a stream opened anew over the same
//! connection ([`reopen`]): tokio-tungstenite ends a stream's reads at its
//! first error, while the connection itself can still carry our Close and
//! the client's.

use std::borrow::Cow;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{Sink, Stream, StreamExt};
use tokio::io::{AsyncRead, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use super::Ws;

/// WebSocket close codes (DESIGN §7).
pub mod close_code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The bridge is draining.
    pub const GOING_AWAY: u16 = 1001;
    /// The client broke the WebSocket protocol (reserved bits, an unmasked
    /// frame, a bad opcode or fragmentation).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text frame, or a Close's reason, that is not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
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

/// A close the bridge decided on: the code and reason the client gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Closing {
    pub(crate) code: u16,
    pub(crate) reason: Cow<'static, str>,
}

impl Closing {
    pub(crate) fn new(code: u16, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }
}

/// A stream to close on after the client's stream failed: a new one over
/// the same connection, with the same settings. tokio-tungstenite answers
/// every read after an error with the end of the stream, though tungstenite
/// can still write: the old stream could send our Close but never read the
/// client's, and the handshake would always wait out its timeout.
///
/// Whatever the old stream had read past the bad frame is lost with it; at
/// worst the new one cannot parse the client's Close, and the connection is
/// dropped at the client's end or the close timeout, as before.
pub(crate) async fn reopen(ws: Box<Ws>) -> Box<Ws> {
    let config = *ws.get_config();
    let io = ws.into_inner();
    Box::new(WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await)
}

/// Writes `frames` and closes with `closing`, then waits for the client's
/// Close (discarding the data frames before it), at most `timeout` in all:
/// the answer to a socket that cannot be served (a cap reached, a join
/// refused). The caller drops the connection afterwards.
pub(crate) async fn refuse(ws: &mut Ws, frames: Vec<Message>, closing: Closing, timeout: Duration) {
    close_then(ws, frames, closing, timeout, async {}).await;
}

/// Writes `frames`, sends `closing`, and once the Close is written runs
/// `after_sent` while it waits for the client's Close, all within
/// `timeout` (`after_sent` always runs, to its end). What others see (the
/// participant leaving) thus waits for the Close to reach the client, as
/// before, but not for a client that never answers it.
pub(crate) async fn close_then(
    ws: &mut Ws,
    frames: Vec<Message>,
    closing: Closing,
    timeout: Duration,
    after_sent: impl std::future::Future<Output = ()>,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    let code = closing.code;
    let frame = CloseFrame {
        code: CloseCode::from(closing.code),
        reason: Utf8Bytes::from(closing.reason.into_owned()),
    };
    let sent = tokio::time::timeout_at(deadline, send_close(ws, frames, frame)).await;
    match sent {
        Ok(Sent::AwaitingReply(reading)) => {
            let reply = tokio::time::timeout_at(deadline, await_reply(ws, reading));
            let (reply, ()) = tokio::join!(reply, after_sent);
            if reply.is_err() {
                tracing::debug!(
                    code,
                    "no Close from the client in time; dropping the connection"
                );
            }
        }
        Ok(Sent::Done) => after_sent.await,
        Err(_) => {
            tracing::debug!(
                code,
                "close frame not written in time; dropping the connection"
            );
            after_sent.await;
        }
    }
}

/// How far sending the Close got.
enum Sent {
    /// Written; the client's Close is still to come, read this way.
    AwaitingReply(Reading),
    /// The handshake is over (the client closed too) or the connection failed.
    Done,
}

/// How the client's bytes are read while the bridge closes.
#[derive(Clone, Copy)]
enum Reading {
    /// As frames, until the client's Close.
    Frames,
    /// As bytes, discarded until the client ends the connection: the stream
    /// failed on a frame it could not parse (after a violation, the new
    /// stream may start in the middle of one), and a connection dropped with
    /// bytes unread would be reset, losing our Close on the client's side.
    Discard,
}

/// Reads and discards the connection's bytes; ready once it has ended.
fn poll_discard(ws: &mut Ws, cx: &mut Context<'_>) -> Poll<()> {
    let mut scratch = [0u8; 1024];
    loop {
        let mut buf = ReadBuf::new(&mut scratch);
        match Pin::new(ws.get_mut()).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(()),
            Poll::Ready(Ok(())) => continue,
            Poll::Ready(Err(_)) => return Poll::Ready(()),
            Poll::Pending => return Poll::Pending,
        }
    }
}

/// Writes `frames` and the Close, reading (and discarding) what the client
/// sends meanwhile: a client that is busy writing to us may only read our
/// frames once we read what it wrote.
async fn send_close(ws: &mut Ws, frames: Vec<Message>, frame: CloseFrame) -> Sent {
    let mut unsent: std::collections::VecDeque<Message> = frames.into();
    unsent.push_back(Message::Close(Some(frame)));
    let mut peer_closed = false;
    let mut reading = Reading::Frames;
    poll_fn(|cx| {
        let mut ws = Pin::new(&mut *ws);
        while !peer_closed && !unsent.is_empty() {
            match ws.as_mut().poll_ready(cx) {
                Poll::Ready(Ok(())) => {
                    let message = unsent.pop_front().expect("checked non-empty");
                    if ws.as_mut().start_send(message).is_err() {
                        // The client closed first: tungstenite answers it.
                        peer_closed = true;
                    }
                }
                Poll::Ready(Err(_)) => return Poll::Ready(Sent::Done),
                Poll::Pending => break,
            }
        }
        if unsent.is_empty() || peer_closed {
            match ws.as_mut().poll_flush(cx) {
                Poll::Ready(Ok(())) if peer_closed => return Poll::Ready(Sent::Done),
                Poll::Ready(Ok(())) => return Poll::Ready(Sent::AwaitingReply(reading)),
                Poll::Ready(Err(_)) => return Poll::Ready(Sent::Done),
                Poll::Pending => {}
            }
        }
        while let Reading::Frames = reading {
            match ws.as_mut().poll_next(cx) {
                // The client's own Close, before ours went out: tungstenite
                // queued the reply, which the flush above sends next turn.
                Poll::Ready(Some(Ok(Message::Close(_)))) => {
                    peer_closed = true;
                    unsent.clear();
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Ready(Some(Ok(_))) => continue,
                Poll::Ready(Some(Err(_))) => reading = Reading::Discard,
                Poll::Ready(None) => return Poll::Ready(Sent::Done),
                Poll::Pending => return Poll::Pending,
            }
        }
        match poll_discard(&mut ws, cx) {
            Poll::Ready(()) => Poll::Ready(Sent::Done),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// Reads until the client's Close (the reply to ours), discarding data
/// frames, or, once frames cannot be read, until the client's end.
async fn await_reply(ws: &mut Ws, reading: Reading) {
    if let Reading::Frames = reading {
        loop {
            match ws.next().await {
                Some(Ok(message)) if message.is_close() => return,
                Some(Ok(_)) => continue,
                Some(Err(_)) => break,
                None => return,
            }
        }
    }
    poll_fn(|cx| poll_discard(ws, cx)).await;
}
