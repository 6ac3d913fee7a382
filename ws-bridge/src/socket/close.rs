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

use std::borrow::Cow;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use futures_util::{Sink, Stream, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::Ws;

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
        Ok(Sent::AwaitingReply) => {
            let reply = tokio::time::timeout_at(deadline, await_reply(ws));
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
    /// Written; the client's Close is still to come.
    AwaitingReply,
    /// The handshake is over (the client closed too) or the connection failed.
    Done,
}

/// Writes `frames` and the Close, reading (and discarding) what the client
/// sends meanwhile: a client that is busy writing to us may only read our
/// frames once we read what it wrote.
async fn send_close(ws: &mut Ws, frames: Vec<Message>, frame: CloseFrame) -> Sent {
    let mut unsent: std::collections::VecDeque<Message> = frames.into();
    unsent.push_back(Message::Close(Some(frame)));
    let mut peer_closed = false;
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
                Poll::Ready(Ok(())) => return Poll::Ready(Sent::AwaitingReply),
                Poll::Ready(Err(_)) => return Poll::Ready(Sent::Done),
                Poll::Pending => {}
            }
        }
        loop {
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
                Poll::Ready(Some(Err(_)) | None) => return Poll::Ready(Sent::Done),
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await
}

/// Reads until the client's Close (the reply to ours), discarding data frames.
async fn await_reply(ws: &mut Ws) {
    while let Some(Ok(message)) = ws.next().await {
        if message.is_close() {
            return;
        }
    }
}
