//! A socket's outbound queue, bounded in bytes.
//!
//! Fan-out pushes already-encoded frames here and never waits: when a socket
//! falls so far behind that its queue would exceed the bound, the queue is
//! marked overflowed and the socket's task closes it with 4008.
//!
//! The same queue carries the socket's signals (resync, drain, overflow), so
//! the socket's task waits on one per-socket channel and polls nothing that
//! other sockets share.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;

/// What waits for a socket's task.
#[derive(Debug)]
pub enum Outbound {
    /// An encoded frame, shared by every socket of the session, with the
    /// event's seq (0: none) for dropping what the socket's snapshot has.
    Frame {
        /// The event's seq.
        seq: u64,
        /// The encoded frame.
        frame: Utf8Bytes,
    },
    /// The session's stream lost events that neither the core's ring nor
    /// this bridge can replay: the socket joins again with its last seq.
    Resync,
    /// The bridge drains: the socket closes once its in-flight call is done.
    Drain,
    /// The queue overflowed: the socket closes as a slow consumer.
    Overflowed,
}

impl Outbound {
    fn bytes(&self) -> usize {
        match self {
            Self::Frame { frame, .. } => frame.len(),
            Self::Resync | Self::Drain | Self::Overflowed => 0,
        }
    }
}

/// The sending side, held by the session's fan-out.
#[derive(Debug, Clone)]
pub struct Outbox {
    sender: mpsc::UnboundedSender<Outbound>,
    queued_bytes: Arc<AtomicUsize>,
    limit_bytes: usize,
    /// Checked on every push: an atomic load, where the token's own
    /// `is_cancelled` takes a mutex (once per socket per event on the fan-out).
    has_overflowed: Arc<AtomicBool>,
    overflowed: CancellationToken,
}

/// The receiving side, held by the socket's task.
#[derive(Debug)]
pub struct OutboxReceiver {
    receiver: mpsc::UnboundedReceiver<Outbound>,
    queued_bytes: Arc<AtomicUsize>,
    overflowed: CancellationToken,
}

/// A queue of at most `limit_bytes` of frames.
pub fn outbox(limit_bytes: usize) -> (Outbox, OutboxReceiver) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    let overflowed = CancellationToken::new();
    (
        Outbox {
            sender,
            queued_bytes: Arc::clone(&queued_bytes),
            limit_bytes,
            has_overflowed: Arc::new(AtomicBool::new(false)),
            overflowed: overflowed.clone(),
        },
        OutboxReceiver {
            receiver,
            queued_bytes,
            overflowed,
        },
    )
}

impl Outbox {
    /// Queues a frame without waiting. Returns false when the socket is
    /// gone or has overflowed (it will be closed; nothing more is queued).
    pub fn push(&self, seq: u64, frame: Utf8Bytes) -> bool {
        if self.has_overflowed.load(Ordering::Relaxed) {
            return false;
        }
        let size = frame.len();
        let before = self.queued_bytes.fetch_add(size, Ordering::AcqRel);
        if before + size > self.limit_bytes {
            self.queued_bytes.fetch_sub(size, Ordering::AcqRel);
            self.has_overflowed.store(true, Ordering::Relaxed);
            self.overflowed.cancel();
            let _ = self.sender.send(Outbound::Overflowed);
            return false;
        }
        self.sender.send(Outbound::Frame { seq, frame }).is_ok()
    }

    /// Queues a signal (never counted against the bound). Returns false
    /// when the socket is gone.
    pub fn signal(&self, signal: Outbound) -> bool {
        self.sender.send(signal).is_ok()
    }
}

impl OutboxReceiver {
    /// Takes up to `limit` queued frames, waiting for at least one.
    /// Returns 0 when every sender is gone.
    pub async fn recv_many(&mut self, buffer: &mut Vec<Outbound>, limit: usize) -> usize {
        let received = self.receiver.recv_many(buffer, limit).await;
        let bytes: usize = buffer.iter().map(Outbound::bytes).sum();
        self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
        received
    }

    /// Cancelled when the queue overflows: the socket is a slow consumer.
    /// (An [`Outbound::Overflowed`] is queued too; the signal is for a task
    /// stuck in a write.)
    pub fn overflow_signal(&self) -> CancellationToken {
        self.overflowed.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn overflow_is_flagged_and_stops_queueing() {
        let (outbox, mut receiver) = outbox(10);
        assert!(outbox.push(1, Utf8Bytes::from_static("12345")));
        assert!(outbox.push(2, Utf8Bytes::from_static("12345")));
        assert!(!outbox.push(3, Utf8Bytes::from_static("1")));
        assert!(!outbox.push(4, Utf8Bytes::from_static("")));
        assert!(receiver.overflow_signal().is_cancelled());
        let mut frames = Vec::new();
        assert_eq!(receiver.recv_many(&mut frames, 10).await, 3);
        assert!(matches!(frames[2], Outbound::Overflowed));
    }

    #[tokio::test]
    async fn signals_pass_a_full_queue_and_take_no_room() {
        let (outbox, mut receiver) = outbox(5);
        assert!(outbox.push(1, Utf8Bytes::from_static("12345")));
        assert!(outbox.signal(Outbound::Drain));
        assert!(outbox.signal(Outbound::Resync));
        let mut queued = Vec::new();
        assert_eq!(receiver.recv_many(&mut queued, 10).await, 3);
        assert!(matches!(queued[1], Outbound::Drain));
        assert!(matches!(queued[2], Outbound::Resync));
        assert!(outbox.push(2, Utf8Bytes::from_static("12345")));
        assert!(!receiver.overflow_signal().is_cancelled());
    }

    #[tokio::test]
    async fn draining_frees_room() {
        let (outbox, mut receiver) = outbox(10);
        assert!(outbox.push(1, Utf8Bytes::from_static("1234567890")));
        let mut frames = Vec::new();
        receiver.recv_many(&mut frames, 10).await;
        assert!(outbox.push(2, Utf8Bytes::from_static("1234567890")));
    }
}
