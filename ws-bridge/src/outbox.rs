//! A socket's outbound queue, bounded in bytes.
//!
//! Fan-out pushes already-encoded frames here and never waits: when a socket
//! falls so far behind that its queue would exceed the bound, the queue is
//! marked overflowed and the socket's task closes it with 4008.
//!
//! The same queue carries the socket's signals (resync, drain, overflow), so
//! the socket's task waits on one per-socket channel and polls nothing that
//! other sockets share.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;

use futures_util::task::AtomicWaker;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;

/// The room number of frames from the socket's user channel (directed
/// events): they belong to no room, carry no seq, and are always delivered.
pub const USER_CHANNEL: u32 = u32::MAX;

/// What waits for a socket's task.
#[derive(Debug)]
pub enum Outbound {
    /// An encoded frame, shared by every socket of the session, with the
    /// event's seq (0: none) for dropping what the socket's snapshot has.
    Frame {
        /// Which of the socket's rooms (sessions) it is from: the socket's
        /// own number for its attachment, never reused within the socket.
        room: u32,
        /// The event's seq.
        seq: u64,
        /// The encoded frame.
        frame: Utf8Bytes,
    },
    /// A session's stream lost events that neither the core's ring nor
    /// this bridge can replay: the socket joins that room again with its
    /// last seq.
    Resync {
        /// The room, as in [`Outbound::Frame`].
        room: u32,
    },
    /// The bridge drains: the socket closes once its in-flight call is done.
    Drain,
    /// The queue overflowed: the socket closes as a slow consumer.
    Overflowed,
}

impl Outbound {
    fn bytes(&self) -> usize {
        match self {
            Self::Frame { frame, .. } => frame.len(),
            Self::Resync { .. } | Self::Drain | Self::Overflowed => 0,
        }
    }
}

/// Once drained, a queue that a burst grew past this many entries gives its
/// memory back, so an idle socket does not keep its busiest moment's size.
pub const KEPT_CAPACITY: usize = 8;

/// One allocation per socket, nothing more until something is queued: every
/// idle socket holds one, so it is kept small. (A tokio mpsc channel would
/// allocate its first block of 32 slots, about 2 KiB, up front.)
#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    /// The socket's task, when it waits for the queue.
    waiting_task: AtomicWaker,
    queued_bytes: AtomicUsize,
    /// Checked on every push: an atomic load, where the token's own
    /// `is_cancelled` takes a mutex (once per socket per event on the fan-out).
    has_overflowed: AtomicBool,
    overflowed: CancellationToken,
    /// Live [`Outbox`] handles; at zero the receiver sees the end.
    senders: AtomicUsize,
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Outbound>,
    /// The receiver is gone: nothing more is queued.
    closed: bool,
}

impl Shared {
    /// The queue, even if a holder panicked: its items are still whole.
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn enqueue(&self, item: Outbound) -> bool {
        {
            let mut queue = self.queue();
            if queue.closed {
                return false;
            }
            queue.items.push_back(item);
        }
        self.waiting_task.wake();
        true
    }
}

/// The sending side, held by the session's fan-out.
#[derive(Debug)]
pub struct Outbox {
    shared: Arc<Shared>,
    limit_bytes: usize,
}

/// The receiving side, held by the socket's task.
#[derive(Debug)]
pub struct OutboxReceiver {
    shared: Arc<Shared>,
}

/// A queue of at most `limit_bytes` of frames.
pub fn outbox(limit_bytes: usize) -> (Outbox, OutboxReceiver) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue::default()),
        waiting_task: AtomicWaker::new(),
        queued_bytes: AtomicUsize::new(0),
        has_overflowed: AtomicBool::new(false),
        overflowed: CancellationToken::new(),
        senders: AtomicUsize::new(1),
    });
    (
        Outbox {
            shared: Arc::clone(&shared),
            limit_bytes,
        },
        OutboxReceiver { shared },
    )
}

impl Clone for Outbox {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Self {
            shared: Arc::clone(&self.shared),
            limit_bytes: self.limit_bytes,
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.waiting_task.wake();
        }
    }
}

impl Outbox {
    /// Queues a frame without waiting. Returns false when the socket is
    /// gone or has overflowed (it will be closed; nothing more is queued).
    pub fn push(&self, room: u32, seq: u64, frame: Utf8Bytes) -> bool {
        let shared = &*self.shared;
        if shared.has_overflowed.load(Ordering::Relaxed) {
            return false;
        }
        let size = frame.len();
        let before = shared.queued_bytes.fetch_add(size, Ordering::AcqRel);
        if before + size > self.limit_bytes {
            shared.queued_bytes.fetch_sub(size, Ordering::AcqRel);
            shared.has_overflowed.store(true, Ordering::Relaxed);
            shared.overflowed.cancel();
            shared.enqueue(Outbound::Overflowed);
            return false;
        }
        if shared.enqueue(Outbound::Frame { room, seq, frame }) {
            true
        } else {
            shared.queued_bytes.fetch_sub(size, Ordering::AcqRel);
            false
        }
    }

    /// Queues a signal (never counted against the bound). Returns false
    /// when the socket is gone.
    pub fn signal(&self, signal: Outbound) -> bool {
        self.shared.enqueue(signal)
    }
}

impl OutboxReceiver {
    /// Takes up to `limit` queued frames, waiting for at least one.
    /// Returns 0 when every sender is gone and nothing is left.
    pub async fn recv_many(&mut self, buffer: &mut Vec<Outbound>, limit: usize) -> usize {
        poll_fn(|cx| {
            if let Some(received) = self.take(buffer, limit) {
                return Poll::Ready(received);
            }
            self.shared.waiting_task.register(cx.waker());
            // A push between the first look and the registration woke no
            // one: look again now that a push will.
            match self.take(buffer, limit) {
                Some(received) => Poll::Ready(received),
                None => Poll::Pending,
            }
        })
        .await
    }

    /// What is queued (up to `limit`), `Some(0)` at the end, `None` when
    /// there is nothing yet.
    fn take(&self, buffer: &mut Vec<Outbound>, limit: usize) -> Option<usize> {
        let mut queue = self.shared.queue();
        if queue.items.is_empty() {
            return (self.shared.senders.load(Ordering::Acquire) == 0).then_some(0);
        }
        let count = queue.items.len().min(limit);
        let before = buffer.len();
        buffer.extend(queue.items.drain(..count));
        if queue.items.is_empty() && queue.items.capacity() > KEPT_CAPACITY {
            queue.items = VecDeque::new();
        }
        drop(queue);
        let bytes: usize = buffer[before..].iter().map(Outbound::bytes).sum();
        self.shared.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
        Some(count)
    }

    /// Cancelled when the queue overflows: the socket is a slow consumer.
    /// (An [`Outbound::Overflowed`] is queued too; the signal is for a task
    /// stuck in a write.)
    pub fn overflow_signal(&self) -> CancellationToken {
        self.shared.overflowed.clone()
    }
}

impl Drop for OutboxReceiver {
    fn drop(&mut self) {
        let mut queue = self.shared.queue();
        queue.closed = true;
        queue.items = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn overflow_is_flagged_and_stops_queueing() {
        let (outbox, mut receiver) = outbox(10);
        assert!(outbox.push(0, 1, Utf8Bytes::from_static("12345")));
        assert!(outbox.push(0, 2, Utf8Bytes::from_static("12345")));
        assert!(!outbox.push(0, 3, Utf8Bytes::from_static("1")));
        assert!(!outbox.push(0, 4, Utf8Bytes::from_static("")));
        assert!(receiver.overflow_signal().is_cancelled());
        let mut frames = Vec::new();
        assert_eq!(receiver.recv_many(&mut frames, 10).await, 3);
        assert!(matches!(frames[2], Outbound::Overflowed));
    }

    #[tokio::test]
    async fn signals_pass_a_full_queue_and_take_no_room() {
        let (outbox, mut receiver) = outbox(5);
        assert!(outbox.push(0, 1, Utf8Bytes::from_static("12345")));
        assert!(outbox.signal(Outbound::Drain));
        assert!(outbox.signal(Outbound::Resync { room: 0 }));
        let mut queued = Vec::new();
        assert_eq!(receiver.recv_many(&mut queued, 10).await, 3);
        assert!(matches!(queued[1], Outbound::Drain));
        assert!(matches!(queued[2], Outbound::Resync { room: 0 }));
        assert!(outbox.push(0, 2, Utf8Bytes::from_static("12345")));
        assert!(!receiver.overflow_signal().is_cancelled());
    }

    #[tokio::test]
    async fn draining_frees_room() {
        let (outbox, mut receiver) = outbox(10);
        assert!(outbox.push(0, 1, Utf8Bytes::from_static("1234567890")));
        let mut frames = Vec::new();
        receiver.recv_many(&mut frames, 10).await;
        assert!(outbox.push(0, 2, Utf8Bytes::from_static("1234567890")));
    }

    #[tokio::test]
    async fn the_end_is_seen_once_every_sender_is_gone_and_the_queue_is_empty() {
        let (outbox, mut receiver) = outbox(100);
        let other = outbox.clone();
        assert!(outbox.push(0, 1, Utf8Bytes::from_static("a")));
        drop(outbox);
        let mut queued = Vec::new();
        assert_eq!(receiver.recv_many(&mut queued, 10).await, 1);
        let waiting = tokio::spawn(async move {
            let mut queued = Vec::new();
            receiver.recv_many(&mut queued, 10).await
        });
        tokio::task::yield_now().await;
        drop(other);
        assert_eq!(
            waiting.await.unwrap(),
            0,
            "a waiting receiver is woken by the last drop"
        );
    }

    #[tokio::test]
    async fn a_waiting_receiver_is_woken_by_a_push() {
        let (outbox, mut receiver) = outbox(100);
        let waiting = tokio::spawn(async move {
            let mut queued = Vec::new();
            let received = receiver.recv_many(&mut queued, 10).await;
            (received, queued)
        });
        tokio::task::yield_now().await;
        assert!(outbox.push(0, 7, Utf8Bytes::from_static("x")));
        let (received, queued) = waiting.await.unwrap();
        assert_eq!(received, 1);
        assert!(matches!(queued[0], Outbound::Frame { seq: 7, .. }));
    }

    #[tokio::test]
    async fn nothing_is_queued_once_the_receiver_is_gone() {
        let (outbox, receiver) = outbox(100);
        drop(receiver);
        assert!(!outbox.push(0, 1, Utf8Bytes::from_static("a")));
        assert!(!outbox.signal(Outbound::Drain));
    }

    #[tokio::test]
    async fn at_most_limit_are_taken_and_the_rest_stays_queued() {
        let (outbox, mut receiver) = outbox(100);
        for seq in 1..=5 {
            assert!(outbox.push(0, seq, Utf8Bytes::from_static("ab")));
        }
        let mut queued = Vec::new();
        assert_eq!(receiver.recv_many(&mut queued, 3).await, 3);
        assert_eq!(receiver.recv_many(&mut queued, 3).await, 2);
        let seqs: Vec<u64> = queued
            .iter()
            .map(|item| match item {
                Outbound::Frame { seq, .. } => *seq,
                _ => 0,
            })
            .collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5], "in order, each once");
        // All 10 bytes were taken out again: a full 100 fits.
        assert!(outbox.push(
            0,
            6,
            Utf8Bytes::from(String::from_utf8(vec![b'z'; 100]).unwrap())
        ));
    }
}
