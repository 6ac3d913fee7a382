//! The rooms (sessions) a socket is in, and entering one.
//!
//! A seed-000 socket is in exactly one, for life; a NexusChat socket in any
//! number, joined and left by its own requests. Each room has its own
//! [`Caller`] (the session its calls are for), its own place in the hub (an
//! [`Attached`] that detaches when the room is dropped), and its own
//! [`Coverage`] and [`Delivery`], since seqs are per session. The socket
//! numbers its rooms and never reuses a number, so frames still queued for a
//! room it left are recognised and dropped.

use std::sync::Arc;

use meno_common::error::{CoreError, ErrorCode};
use meno_common::key::SessionKey;
use meno_proto::JoinResponse;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::join::{self, Coverage};
use super::writer::{Deliveries, Delivery};
use crate::command::Caller;
use crate::dialect::{Dialect, RequestTag};
use crate::hub::{AttachError, Attached};
use crate::outbox::Outbox;

/// One room the socket is in.
#[derive(Debug)]
pub(crate) struct Room {
    /// The socket's number for it, in the frames the hub queues.
    pub(crate) number: u32,
    /// Calls for this room.
    pub(crate) caller: Arc<Caller>,
    pub(crate) coverage: Coverage,
    pub(crate) delivery: Delivery,
    /// Detaches from the hub when the room is dropped.
    _attached: Attached,
}

impl Room {
    /// The session id.
    pub(crate) fn session_id(&self) -> &str {
        &self.caller.key.session_id
    }
}

/// Every room a socket is in.
#[derive(Debug)]
pub(crate) struct Rooms {
    rooms: Vec<Room>,
    next_number: u32,
    /// The socket's own handle on its outbox: each room's attachment gets a
    /// clone, and this one keeps the queue open while the socket is in no
    /// room at all.
    outbox: Outbox,
}

impl Rooms {
    /// No room yet; room for `expected` without growing (a `Vec` would
    /// otherwise reserve four at the first, and every idle seed-000 socket
    /// holds its one room for life).
    pub(crate) fn new(outbox: Outbox, expected: usize) -> Self {
        Self {
            rooms: Vec::with_capacity(expected),
            next_number: 0,
            outbox,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.rooms.len()
    }

    pub(crate) fn get(&self, session_id: &str) -> Option<&Room> {
        self.rooms
            .iter()
            .find(|room| room.session_id() == session_id)
    }

    /// The room a seed-000 socket is in (its first).
    pub(crate) fn first(&self) -> Option<&Room> {
        self.rooms.first()
    }

    pub(crate) fn by_number_mut(&mut self, number: u32) -> Option<&mut Room> {
        self.rooms.iter_mut().find(|room| room.number == number)
    }

    /// Leaves the room here (the hub stops queueing its frames); the caller
    /// tells the core.
    pub(crate) fn remove(&mut self, session_id: &str) -> Option<Room> {
        let index = self
            .rooms
            .iter()
            .position(|room| room.session_id() == session_id)?;
        Some(self.rooms.remove(index))
    }

    /// Every room, leaving them all here.
    pub(crate) fn take_all(&mut self) -> Vec<Room> {
        std::mem::take(&mut self.rooms)
    }

    /// A number for a room about to be entered, and the outbox handle its
    /// attachment queues to.
    pub(crate) fn reserve(&mut self) -> (u32, Outbox) {
        let number = self.next_number;
        // Never the user channel's number.
        self.next_number = (self.next_number + 1) % crate::outbox::USER_CHANNEL;
        (number, self.outbox.clone())
    }

    /// Adds a room [`enter`] returned; returns the frames the socket starts
    /// it with.
    pub(crate) fn insert(
        &mut self,
        room: Room,
        joined: &JoinResponse,
        dialect: &dyn Dialect,
        tag: Option<&RequestTag>,
    ) -> Vec<Utf8Bytes> {
        let frames = dialect.encode_start(room.session_id(), joined, tag);
        self.rooms.push(room);
        frames
    }
}

impl Deliveries for Rooms {
    fn delivery(&mut self, number: u32) -> Option<&mut Delivery> {
        self.by_number_mut(number).map(|room| &mut room.delivery)
    }
}

/// Enters `session_id` under the socket's `number` for it: attaches to its
/// fan-out, then joins it on the core (resuming after `last_seq` when
/// given). A join refused detaches again (the `Attached` drops). Boxed by
/// the callers: it runs once per room, and its state should not sit in
/// every socket's future.
pub(crate) async fn enter(
    base: &Arc<Caller>,
    session_id: &str,
    number: u32,
    outbox: Outbox,
    last_seq: Option<u64>,
    dialect: &'static dyn Dialect,
    tag: Option<&RequestTag>,
) -> Result<(Room, JoinResponse), CoreError> {
    // A seed-000 socket's own caller already names its one session: shared,
    // so an idle socket keeps one copy of its connection's details.
    let caller = if base.key.session_id == session_id {
        Arc::clone(base)
    } else {
        Arc::new(Caller {
            context: Arc::clone(&base.context),
            key: SessionKey::new(base.key.tenant.clone(), session_id.to_owned()),
            connection: base.connection.clone(),
            identity: base.identity.clone(),
        })
    };
    let attached = caller
        .context
        .hub
        .attach(
            caller.key.clone(),
            caller.connection.clone(),
            dialect.id(),
            number,
            outbox,
        )
        .await
        .map_err(|AttachError(err)| err)?;
    let trace_id = tag.and_then(|tag| tag.trace_id.as_deref());
    let joined = join::join(&caller, last_seq, "join", trace_id).await?;
    let room = Room {
        number,
        coverage: Coverage::after_join(&joined, last_seq),
        delivery: Delivery::after(joined.snapshot_seq),
        caller,
        _attached: attached,
    };
    Ok((room, joined))
}

/// The close for a socket whose only room could not be entered.
pub(crate) fn refused_close(err: &CoreError) -> super::Closing {
    use super::close_code;
    match err.code {
        ErrorCode::RateLimited => super::Closing::new(close_code::RATE_LIMITED, "limit reached"),
        _ if err.code.retryable() => {
            super::Closing::new(close_code::TRY_AGAIN_LATER, "join refused")
        }
        _ => super::Closing::new(close_code::POLICY, "join refused"),
    }
}
