//! Writing to a socket: what the hub queued, in seq order and each once,
//! batched into one flush, under the slow-consumer rule.
//!
//! A write that has to wait gives up when the outbox overflows meanwhile
//! (the socket then closes with 4008) or when the socket takes no bytes for
//! the idle timeout (it is dead). It never waits forever on one client.

use std::time::Duration;

use bytes::Bytes;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::close::{close_code, Closing};
use super::Ws;
use crate::outbox::{Outbound, KEPT_CAPACITY, USER_CHANNEL};

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
                match message {
                    // Written by the socket's `Wire`: the fan-out's bytes,
                    // behind a header, not a copy per socket.
                    Message::Text(text) => ws.get_mut().push_text(Bytes::from(text)),
                    message => ws.feed(message).await?,
                }
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
    /// Rooms whose stream lost events: each rejoins once no call is in flight.
    pub(crate) resync: Vec<u32>,
    /// The outbox overflowed: close as a slow consumer.
    pub(crate) close: Option<Closing>,
}

/// Which of the hub's frames of one room this socket still needs:
/// everything after the last seq it has (its snapshot's, then each
/// event's), each once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Delivery {
    floor: u64,
    /// The room's stream lost events after `floor`: nothing more of the room
    /// is written until the socket has joined again from `floor` (the rejoin
    /// replaces this delivery). Events the hub's new stream brings meanwhile
    /// lie beyond the gap; admitting them would raise the floor past it, and
    /// the rejoin would then start after the very events it must replay.
    resyncing: bool,
}

impl Delivery {
    /// Delivery after a snapshot (or resume) current to `snapshot_seq`.
    pub(crate) fn after(snapshot_seq: u64) -> Self {
        Self {
            floor: snapshot_seq,
            resyncing: false,
        }
    }

    /// The last seq this client has.
    pub(crate) fn floor(self) -> u64 {
        self.floor
    }

    /// Holds the room's frames until the socket has rejoined from the floor.
    pub(crate) fn hold_for_resync(&mut self) {
        self.resyncing = true;
    }

    /// Whether the frame of `seq` is still needed; if so, it is now had.
    /// Nothing is while the room waits for its rejoin, which replays it.
    pub(crate) fn admits(&mut self, seq: u64) -> bool {
        let needed = !self.resyncing && seq > self.floor;
        if needed {
            self.floor = seq;
        }
        needed
    }
}

/// Finds a room's [`Delivery`] by the socket's number for it.
pub(crate) trait Deliveries {
    /// `None`: the socket is no longer in that room.
    fn delivery(&mut self, room: u32) -> Option<&mut Delivery>;
}

impl Deliveries for Vec<(u32, Delivery)> {
    fn delivery(&mut self, room: u32) -> Option<&mut Delivery> {
        self.iter_mut()
            .find(|(number, _)| *number == room)
            .map(|(_, delivery)| delivery)
    }
}

/// Sorts out what the outbox held; `queued` is left empty (and gives back
/// what a burst grew it to, like the outbox). Frames of a room the socket
/// left are dropped.
pub(crate) fn take(queued: &mut Vec<Outbound>, rooms: &mut impl Deliveries) -> Taken {
    let mut taken = Taken::default();
    for outbound in queued.drain(..) {
        match outbound {
            Outbound::Frame { room, frame, .. } if room == USER_CHANNEL => {
                taken.frames.push(Message::Text(frame));
            }
            Outbound::Frame { room, seq, frame } => {
                if rooms
                    .delivery(room)
                    .is_some_and(|delivery| delivery.admits(seq))
                {
                    taken.frames.push(Message::Text(frame));
                }
            }
            Outbound::Resync { room } => {
                if let Some(delivery) = rooms.delivery(room) {
                    delivery.hold_for_resync();
                }
                if !taken.resync.contains(&room) {
                    taken.resync.push(room);
                }
            }
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

#[cfg(test)]
mod tests {
    use tokio_tungstenite::tungstenite::Utf8Bytes;

    use super::*;

    fn frame(room: u32, seq: u64) -> Outbound {
        Outbound::Frame {
            room,
            seq,
            frame: Utf8Bytes::from(format!("room {room} event {seq}")),
        }
    }

    fn texts(taken: &Taken) -> Vec<String> {
        taken
            .frames
            .iter()
            .map(|message| message.to_text().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn frames_at_or_below_the_floor_are_dropped_and_the_rest_come_once_in_order() {
        let mut rooms = vec![(0, Delivery::after(10))];
        let mut queued = vec![
            frame(0, 9),
            frame(0, 10),
            frame(0, 11),
            frame(0, 11),
            frame(0, 12),
        ];
        let taken = take(&mut queued, &mut rooms);
        assert_eq!(texts(&taken), ["room 0 event 11", "room 0 event 12"]);
        assert_eq!(rooms[0].1.floor(), 12);
        assert!(queued.is_empty());
    }

    #[test]
    fn each_room_has_its_own_floor_and_a_left_room_gets_nothing() {
        let mut rooms = vec![(1, Delivery::after(5)), (2, Delivery::after(100))];
        let mut queued = vec![frame(1, 6), frame(2, 100), frame(2, 101), frame(3, 7)];
        let taken = take(&mut queued, &mut rooms);
        assert_eq!(texts(&taken), ["room 1 event 6", "room 2 event 101"]);
    }

    #[test]
    fn an_overflow_closes_with_4008_and_a_resync_is_noted_once_per_room() {
        let mut queued = vec![
            Outbound::Resync { room: 4 },
            Outbound::Drain,
            Outbound::Resync { room: 4 },
            Outbound::Overflowed,
        ];
        let taken = take(&mut queued, &mut Vec::new());
        assert_eq!(taken.resync, [4]);
        assert_eq!(
            taken.close.map(|closing| closing.code),
            Some(close_code::SLOW_CONSUMER)
        );
    }

    /// The scale-out defect of issue 17: after a resync signal the hub's new
    /// stream brings events beyond the gap; had they been written, the floor
    /// would pass the gap and the rejoin (from the floor) would skip it.
    #[test]
    fn after_a_resync_signal_the_room_waits_for_its_rejoin_from_the_old_floor() {
        let mut rooms = vec![(0, Delivery::after(10)), (1, Delivery::after(50))];
        let mut queued = vec![
            frame(0, 11),
            Outbound::Resync { room: 0 },
            frame(0, 20),
            frame(1, 51),
        ];
        let taken = take(&mut queued, &mut rooms);
        assert_eq!(texts(&taken), ["room 0 event 11", "room 1 event 51"]);
        assert_eq!(taken.resync, [0]);
        assert_eq!(rooms[0].1.floor(), 11, "the rejoin starts after 11");
        // Later batches, before the rejoin ran, are held too.
        let taken = take(&mut vec![frame(0, 21)], &mut rooms);
        assert!(taken.frames.is_empty());
        assert_eq!(rooms[0].1.floor(), 11);
        // The rejoin's answer (current to 21) replaces the delivery.
        rooms[0].1 = Delivery::after(21);
        let taken = take(&mut vec![frame(0, 21), frame(0, 22)], &mut rooms);
        assert_eq!(texts(&taken), ["room 0 event 22"]);
    }

    #[test]
    fn a_buffer_a_burst_grew_is_given_back() {
        let mut queued: Vec<Outbound> = (1..=100).map(|seq| frame(0, seq)).collect();
        take(&mut queued, &mut vec![(0, Delivery::after(0))]);
        assert_eq!(queued.capacity(), 0);
    }
}
