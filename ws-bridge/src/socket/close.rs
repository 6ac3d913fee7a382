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

use futures_util::{Sink, SinkExt, Stream};
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

/// Sends `closing` after whatever is queued, then waits for the client's
/// Close (discarding the data frames before it), at most `timeout` in all.
/// The caller drops the connection afterwards.
pub(crate) async fn close(ws: &mut Ws, closing: Closing, timeout: Duration) {
    let frame = CloseFrame {
        code: CloseCode::from(closing.code),
        reason: Utf8Bytes::from(closing.reason.into_owned()),
    };
    if tokio::time::timeout(timeout, handshake(ws, frame))
        .await
        .is_err()
    {
        tracing::debug!(
            code = closing.code,
            "close handshake timed out; dropping the connection"
        );
    }
}

async fn handshake(ws: &mut Ws, frame: CloseFrame) {
    let mut unsent = Some(frame);
    let mut peer_closed = false;
    // Writing and reading are driven together: a client that is busy
    // writing to us may only read our Close once we read what it wrote.
    poll_fn(|cx| {
        let mut ws = Pin::new(&mut *ws);
        if unsent.is_some() {
            match ws.as_mut().poll_ready(cx) {
                Poll::Ready(Ok(())) => {
                    let frame = unsent.take();
                    if ws.as_mut().start_send(Message::Close(frame)).is_err() {
                        // The client closed first: tungstenite answers it.
                        peer_closed = true;
                    }
                }
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Pending => {}
            }
        }
        if unsent.is_none() || peer_closed {
            match ws.as_mut().poll_flush(cx) {
                Poll::Ready(Ok(())) if peer_closed => return Poll::Ready(()),
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(())) | Poll::Pending => {}
            }
        }
        loop {
            match ws.as_mut().poll_next(cx) {
                // The client's Close: as a reply the handshake is complete;
                // as its own, tungstenite queued our reply, flushed above
                // on the next turn.
                Poll::Ready(Some(Ok(Message::Close(_)))) => {
                    if unsent.is_none() && !peer_closed {
                        return Poll::Ready(());
                    }
                    peer_closed = true;
                    unsent = None;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Ready(Some(Ok(_))) => continue,
                Poll::Ready(Some(Err(_)) | None) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await;
}

/// Writes `frames` and closes with `closing`: the answer to a socket that
/// cannot be served (a cap reached, a join refused).
pub(crate) async fn refuse(ws: &mut Ws, frames: Vec<Message>, closing: Closing, timeout: Duration) {
    for frame in frames {
        if ws.feed(frame).await.is_err() {
            return;
        }
    }
    close(ws, closing, timeout).await;
}
