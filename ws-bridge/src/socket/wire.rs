//! The socket's transport under tungstenite. Reads pass through. Every
//! write joins one queue of byte segments, written with `writev` on flush:
//! tungstenite's own frames (control frames, and what the close paths send)
//! as it writes them, and the writer's text frames as a header plus the
//! payload the fan-out encoded once for every socket, never copied.
//!
//! Why: tungstenite formats each message into a per-socket buffer (a copy
//! of every payload for every socket), and that buffer keeps the capacity
//! of the largest batch the socket ever wrote for the rest of its life.
//! tungstenite is configured to hand every frame over at once (a write
//! buffer of 0), so its frames and the writer's stay in order.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A text message longer than this goes out as fragments of this size,
/// which clients with a frame limit (tungstenite's default is 16 MiB, some
/// set far less) reassemble.
pub(crate) const FRAGMENT_BYTES: usize = 16 * 1024;

/// Segments written at most per `writev`.
const MAX_SLICES: usize = 64;

/// The queue's capacity kept once it is empty (segments).
const KEPT_SEGMENTS: usize = 8;

const OPCODE_TEXT: u8 = 0x1;
const OPCODE_CONTINUATION: u8 = 0x0;

/// A socket's transport: `io`, with the queue of what waits to be written.
#[derive(Debug)]
pub struct Wire<S> {
    io: S,
    queue: VecDeque<Bytes>,
}

impl<S> Wire<S> {
    pub fn new(io: S) -> Self {
        Self {
            io,
            queue: VecDeque::new(),
        }
    }

    /// Queues `text` as a text message: one frame, or fragments of
    /// [`FRAGMENT_BYTES`] (a fragment may end inside a UTF-8 sequence:
    /// receivers check the reassembled message).
    pub(crate) fn push_text(&mut self, text: Bytes) {
        let count = text.len().div_ceil(FRAGMENT_BYTES).max(1);
        for index in 0..count {
            let start = index * FRAGMENT_BYTES;
            let end = (start + FRAGMENT_BYTES).min(text.len());
            let opcode = if index == 0 {
                OPCODE_TEXT
            } else {
                OPCODE_CONTINUATION
            };
            let last = index + 1 == count;
            self.queue.push_back(header(opcode, last, end - start));
            if end > start {
                self.queue.push_back(text.slice(start..end));
            }
        }
    }
}

/// A server frame's header (servers do not mask).
fn header(opcode: u8, last: bool, len: usize) -> Bytes {
    let first = if last { 0x80 | opcode } else { opcode };
    let mut header = Vec::with_capacity(10);
    header.push(first);
    match len {
        0..=125 => header.push(len as u8),
        126..=0xFFFF => {
            header.push(126);
            header.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            header.push(127);
            header.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    Bytes::from(header)
}

impl<S: AsyncRead + Unpin> AsyncRead for Wire<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> Wire<S> {
    /// Writes the queue until it is empty or the socket has no room.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.queue.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut count = 0;
            for (slot, segment) in slices.iter_mut().zip(self.queue.iter()) {
                *slot = IoSlice::new(segment);
                count += 1;
            }
            let written = std::task::ready!(
                Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..count])
            )?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.consume(written);
        }
        if self.queue.capacity() > KEPT_SEGMENTS {
            self.queue.shrink_to(KEPT_SEGMENTS);
        }
        Poll::Ready(Ok(()))
    }

    fn consume(&mut self, mut written: usize) {
        while written > 0 {
            let Some(front) = self.queue.front_mut() else {
                return;
            };
            if written < front.len() {
                front.advance(written);
                return;
            }
            written -= front.len();
            self.queue.pop_front();
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Wire<S> {
    /// Takes all of `buf` at once: it joins the queue, written on flush.
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // Only non-empty segments: a write of nothing must not read as a
        // socket that takes no bytes.
        if !buf.is_empty() {
            self.get_mut().queue.push_back(Bytes::copy_from_slice(buf));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let wire = self.get_mut();
        std::task::ready!(wire.poll_drain(cx))?;
        Pin::new(&mut wire.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let wire = self.get_mut();
        std::task::ready!(wire.poll_drain(cx))?;
        Pin::new(&mut wire.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(wire: &Wire<()>) -> Vec<u8> {
        wire.queue
            .iter()
            .flat_map(|segment| segment.to_vec())
            .collect()
    }

    #[test]
    fn a_short_text_is_one_final_frame() {
        let mut wire = Wire::new(());
        wire.push_text(Bytes::from_static(b"hi"));
        assert_eq!(frames(&wire), b"\x81\x02hi");
    }

    #[test]
    fn lengths_take_the_spec_encodings() {
        for (len, head) in [
            (125, vec![0x81, 125]),
            (126, vec![0x81, 126, 0, 126]),
            (FRAGMENT_BYTES, vec![0x81, 126, 0x40, 0]),
        ] {
            let mut wire = Wire::new(());
            wire.push_text(Bytes::from(vec![b'a'; len]));
            let bytes = frames(&wire);
            assert_eq!(&bytes[..head.len()], &head[..], "len {len}");
            assert_eq!(bytes.len(), head.len() + len);
        }
        assert_eq!(
            &header(OPCODE_TEXT, true, 70_000)[..],
            &[0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]
        );
    }

    #[test]
    fn a_long_text_goes_as_a_text_frame_and_continuations() {
        let mut wire = Wire::new(());
        wire.push_text(Bytes::from(vec![b'x'; FRAGMENT_BYTES * 2 + 1]));
        let segments: Vec<&Bytes> = wire.queue.iter().collect();
        assert_eq!(segments.len(), 6);
        assert_eq!(segments[0][0], 0x01, "text, not final");
        assert_eq!(segments[2][0], 0x00, "continuation, not final");
        assert_eq!(
            &segments[4][..],
            &[0x80, 1],
            "final continuation of one byte"
        );
    }

    #[tokio::test]
    async fn an_empty_write_queues_nothing() {
        use tokio::io::AsyncWriteExt;
        let (client, _server) = tokio::io::duplex(64);
        let mut wire = Wire::new(client);
        assert_eq!(wire.write(b"").await.unwrap(), 0);
        assert!(wire.queue.is_empty());
        wire.flush().await.unwrap();
    }

    #[test]
    fn an_empty_text_is_a_header_alone() {
        let mut wire = Wire::new(());
        wire.push_text(Bytes::new());
        assert_eq!(frames(&wire), b"\x81\x00");
    }

    #[tokio::test]
    async fn a_client_with_a_small_frame_limit_reassembles_a_long_text() {
        use futures_util::StreamExt;
        use tokio::io::AsyncWriteExt;
        use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
        use tokio_tungstenite::tungstenite::Message;
        let (server, client) = tokio::io::duplex(1024);
        let text = "é-".repeat(FRAGMENT_BYTES); // 3 bytes each: splits inside a char
        let mut wire = Wire::new(server);
        wire.push_text(Bytes::from(text.clone()));
        let config = WebSocketConfig::default().max_frame_size(Some(32 * 1024));
        let mut client =
            tokio_tungstenite::WebSocketStream::from_raw_socket(client, Role::Client, Some(config))
                .await;
        let writing = tokio::spawn(async move {
            wire.flush().await.unwrap();
            wire
        });
        let message = client
            .next()
            .await
            .expect("a message")
            .expect("valid frames");
        assert_eq!(message, Message::text(text));
        drop(writing.await.unwrap());
    }

    #[tokio::test]
    async fn flush_writes_everything_in_order_and_keeps_little() {
        use tokio::io::AsyncWriteExt;
        let (client, mut server) = tokio::io::duplex(64);
        let mut wire = Wire::new(client);
        for _ in 0..100 {
            wire.push_text(Bytes::from_static(b"abc"));
        }
        wire.write_all(b"tail").await.unwrap();
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut server, &mut all)
                .await
                .unwrap();
            all
        });
        wire.flush().await.unwrap();
        assert!(wire.queue.capacity() <= KEPT_SEGMENTS);
        wire.shutdown().await.unwrap();
        drop(wire);
        let all = reader.await.unwrap();
        let mut expected = b"\x81\x03abc".repeat(100);
        expected.extend_from_slice(b"tail");
        assert_eq!(all, expected);
    }
}
