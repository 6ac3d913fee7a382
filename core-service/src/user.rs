//! Users (DESIGN §3 "Directed delivery"): one actor per `(tenant, user_id)`,
//! the only writer of that user's state, as a session's actor is of its
//! session's. A user's state is where the user is connected (learnt from the
//! session actors), which bridges want the user's events (`SetInterest`),
//! and the user's call (busy, with whom, until when).
//!
//! A user actor does no I/O and never awaits anything but its own inbox: it
//! hands events to the bridges' bounded streams without waiting (a bridge
//! that falls behind loses its stream, see `bridges`), and it talks to other
//! user actors only by unbounded, non-blocking sends. So no actor can stall
//! another, and a session actor's batch never waits on a user.
//!
//! ## A signal's path, and why its busy decisions are race-free
//!
//! `Signal` from A to B visits the actors in turn, each deciding only on its
//! own state, and the reply travels with the message:
//!
//! 1. **A's actor** checks that the sending connection is A's, takes the set
//!    of sessions A is connected in, and forwards the signal to B's actor.
//! 2. **B's actor** decides everything about B at one instant: B connected
//!    (else NOT_FOUND), a session in common with A (else PERMISSION_DENIED),
//!    not A itself (INVALID_ARGUMENT), and for an offer, B not busy with
//!    someone other than A (else the reply is `CallRejected` and nothing is
//!    relayed). It relays the signal to B's interested bridges, applies what
//!    the signal does to B (`CallEnd` frees B if B was in a call with A), and
//!    hands A's part back to A's actor.
//! 3. **A's actor** applies what the signal does to A (an offer or an answer
//!    makes A busy with B, a rollback or a `CallEnd` frees A if A was with B)
//!    and answers the caller. A signal that changes nothing for A (an ICE
//!    candidate) is answered by B's actor.
//!
//! Every busy flag is read and written by its owner's actor only, between
//! two of its messages, so each decision sees a consistent state; the caller
//! is answered only after both parts are applied, so a client's next signal
//! sees its previous one's effect. A user's events leave its actor in the
//! order it decides them, and each bridge stream is FIFO, so every bridge
//! sees a user's signals in order.

use meno_proto::UserRef;

mod actor;
mod bridges;
mod call;
mod command;
mod registry;
mod state;

pub(crate) use command::UserCommand;
pub use registry::UserRegistry;

/// The key of everything user-scoped: a user of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct UserKey {
    pub(crate) tenant: String,
    pub(crate) user_id: String,
}

impl UserKey {
    /// A key for `user_id` in `tenant` (an empty tenant means the default).
    pub(crate) fn new(tenant: impl Into<String>, user_id: impl Into<String>) -> Self {
        let tenant = tenant.into();
        Self {
            tenant: if tenant.is_empty() {
                meno_common::key::DEFAULT_TENANT.to_owned()
            } else {
                tenant
            },
            user_id: user_id.into(),
        }
    }

    /// Another user of the same tenant.
    pub(crate) fn peer(&self, user_id: &str) -> Self {
        Self {
            tenant: self.tenant.clone(),
            user_id: user_id.to_owned(),
        }
    }

    pub(crate) fn to_ref(&self) -> UserRef {
        UserRef {
            tenant: self.tenant.clone(),
            user_id: self.user_id.clone(),
        }
    }
}

impl std::fmt::Display for UserKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.tenant, self.user_id)
    }
}
