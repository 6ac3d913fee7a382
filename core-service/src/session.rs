//! A session: its actor (the only writer of its state), the commands it
//! accepts and the domain rules it applies. The state is split by concern:
//! `events` (seqs, ring, subscribers), `presence`, `lease`, `chat` and `reads` each own
//! their fields and decide synchronously at a given `now`; `state` composes
//! them, `batch` holds what a batch produced until it is durable, and
//! `actor` drives it all against the store.
//!
//! Nothing outside this module mutates session state; callers send a
//! [`Command`] and await the reply.

mod actor;
mod batch;
mod chat;
mod command;
mod events;
mod lease;
mod prefetch;
mod presence;
mod reads;
mod state;

pub(crate) use actor::spawn_actor;
pub(crate) use command::{Command, Delivery, Envelope, Reply};

/// Milliseconds of a duration, saturating.
pub(crate) fn millis(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
