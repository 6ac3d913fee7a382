//! Writing to a socket: what the hub queued, in seq order and each once,
//! batched into one flush, under the slow-consumer rule.
//!
//! A write that has to wait gives up when the outbox overflows meanwhile
//! (the socket then closes with 4008) or when the socket takes no bytes for
//! the idle timeout (it is dead). It never waits forever on one client.

use std::time::Duration;

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::close::{close_code, Closing};
use super::Ws;
use crate::outbox::{Outbound, KEPT_CAPACITY};

/// Why a write did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteFailure {
    /// The outbound queue overflowed while the socket would not take bytes.
    Overflowed,
    /// The connection failed, or took no bytes for the whole idle timeout.
    Broken,
}

/// Writes that give up on a slow consumer or a dead socket.
#[derive(Debug)]
pub(crate) struct Writer {
    overflowed: CancellationToken,
    write_timeout: Duration,
}

impl Writer {
    pub(crate) fn new(overflowed: CancellationToken, write_timeout: Duration) -> Self {
        Self {
            overflowed,
            write_timeout,
        }
    }

    /// Feeds every message, then flushes once (an empty batch just flushes,
    /// which sends tungstenite's queued pong replies).
    pub(crate) async fn write(
        &mut self,
        ws: &mut Ws,
        messages: Vec<Message>,
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
}

/// What the socket's outbox held, sorted out.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Taken {
    /// Frames to write, in order.
    pub(crate) frames: Vec<Message>,
    /// The session's stream lost events: rejoin once no call is in flight.
    pub(crate) resync: bool,
    /// The outbox overflowed: close as a slow consumer.
    pub(crate) close: Option<Closing>,
}

/// Which of the hub's frames this socket still needs: everything after the
/// last seq it has (its snapshot's, then each event's), each once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Delivery {
    floor: u64,
}

impl Delivery {
    /// Delivery after a snapshot (or resume) current to `snapshot_seq`.
    pub(crate) fn after(snapshot_seq: u64) -> Self {
        Self {
            floor: snapshot_seq,
        }
    }

    /// The last seq this client has.
    pub(crate) fn floor(self) -> u64 {
        self.floor
    }

    /// Sorts out what the outbox held; `queued` is left empty (and gives back
    /// what a burst grew it to, like the outbox).
    pub(crate) fn take(&mut self, queued: &mut Vec<Outbound>) -> Taken {
        let mut taken = Taken::default();
        for outbound in queued.drain(..) {
            match outbound {
                Outbound::Frame { seq, frame } if seq > self.floor => {
                    self.floor = seq;
                    taken.frames.push(Message::Text(frame));
                }
                Outbound::Frame { .. } => {}
                Outbound::Resync => taken.resync = true,
                // Seen by the socket's loop, once no call is in flight.
                Outbound::Drain => {}
                Outbound::Overflowed => {
                    crate::metrics::SLOW_CONSUMER_CLOSES.inc();
                    taken.close = Some(Closing::new(close_code::SLOW_CONSUMER, "slow consumer"));
                }
            }
        }
        if queued.capacity() > KEPT_CAPACITY {
            *queued = Vec::new();
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use tokio_tungstenite::tungstenite::Utf8Bytes;

    use super::*;

    fn frame(seq: u64) -> Outbound {
        Outbound::Frame {
            seq,
            frame: Utf8Bytes::from(format!("event {seq}")),
        }
    }

    #[test]
    fn frames_at_or_below_the_floor_are_dropped_and_the_rest_come_once_in_order() {
        let mut delivery = Delivery::after(10);
        let mut queued = vec![frame(9), frame(10), frame(11), frame(11), frame(12)];
        let taken = delivery.take(&mut queued);
        let texts: Vec<String> = taken
            .frames
            .iter()
            .map(|message| message.to_text().unwrap().to_owned())
            .collect();
        assert_eq!(texts, ["event 11", "event 12"]);
        assert_eq!(delivery.floor(), 12);
        assert!(queued.is_empty());
    }

    #[test]
    fn an_overflow_closes_with_4008_and_a_resync_is_noted() {
        let mut delivery = Delivery::after(0);
        let mut queued = vec![Outbound::Resync, Outbound::Drain, Outbound::Overflowed];
        let taken = delivery.take(&mut queued);
        assert!(taken.resync);
        assert_eq!(
            taken.close.map(|closing| closing.code),
            Some(close_code::SLOW_CONSUMER)
        );
    }

    #[test]
    fn a_buffer_a_burst_grew_is_given_back() {
        let mut delivery = Delivery::after(0);
        let mut queued: Vec<Outbound> = (1..=100).map(frame).collect();
        delivery.take(&mut queued);
        assert_eq!(queued.capacity(), 0);
    }
}
