//! What a user actor can be told. Every send to a user actor is unbounded
//! and never waits, so session actors and other user actors can tell a user
//! something in the middle of their own work.

use meno_proto::{DirectMessage, SignalRequest, SignalResponse};
use tokio::sync::oneshot;

use super::call::Effect;
use crate::error::CoreError;

/// Where a signal's outcome goes: the `Signal` RPC awaiting it.
pub(crate) type SignalReply = oneshot::Sender<Result<SignalResponse, CoreError>>;

/// A message to one user's actor.
#[derive(Debug)]
pub(crate) enum UserCommand {
    /// A session actor registered (`connected`) or removed one of the user's
    /// connections, durably.
    Membership {
        session_id: String,
        connection_id: String,
        connected: bool,
    },
    /// A bridge wants (or no longer wants) this user's events.
    Interest { bridge_id: String, interested: bool },
    /// A backend's message for one of the user's connections (empty
    /// `connection_id`: every one): relayed to the interested bridges.
    Direct {
        connection_id: String,
        trace_id: String,
        message: Box<DirectMessage>,
    },
    /// Step 1 of a signal, at its sender's actor (see the module doc of
    /// `user`).
    Send {
        request: Box<SignalRequest>,
        reply: SignalReply,
    },
    /// Step 2, at the target's actor, with the sessions the sender is in.
    Deliver {
        request: Box<SignalRequest>,
        sender_sessions: Vec<String>,
        reply: SignalReply,
    },
    /// Step 3, back at the sender's actor: the signal was relayed to
    /// `target_id`; apply its effect on the sender and answer.
    Settle {
        target_id: String,
        effect: Effect,
        reply: SignalReply,
    },
}

impl UserCommand {
    /// Answers the command with `err` without running it.
    pub(crate) fn fail(self, err: CoreError) {
        match self {
            Self::Send { reply, .. } | Self::Deliver { reply, .. } | Self::Settle { reply, .. } => {
                // The caller may have given up waiting.
                let _ = reply.send(Err(err));
            }
            Self::Membership { .. } | Self::Interest { .. } | Self::Direct { .. } => {}
        }
    }
}
