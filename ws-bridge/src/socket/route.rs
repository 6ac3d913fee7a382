//! Which room a decoded request is for, and what runs for it.
//!
//! A request that names no room goes to the socket's only session (seed 000)
//! or, in a multi-room dialect, out under the socket's tenant (NexusChat's
//! ACK: the core finds the message's room and checks this connection is in
//! it). A request for a room the socket is not in is refused here. Entering
//! and leaving a room are the socket's own: the call attaches or detaches it
//! in the hub as well as telling the core.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use meno_common::error::{CoreError, ErrorCode};
use meno_proto::JoinResponse;
use tokio_tungstenite::tungstenite::Message;

use super::rooms::{self, Room};
use super::{join, Session};
use crate::codec::{ClientCommand, ErrorEnvelope};
use crate::command::{self, Outcome};
use crate::connect::nexus::MAX_ROOMS_PER_SOCKET;
use crate::dialect::{Reply, Request, RequestTag};

/// A request running, one at a time per socket.
pub(super) type InFlight = Pin<Box<dyn Future<Output = Answered> + Send>>;

/// A finished request: what to answer its sender with.
pub(super) struct Answered {
    pub(super) tag: RequestTag,
    /// The room it was for, when it named one.
    pub(super) room: Option<String>,
    pub(super) outcome: Answer,
}

/// What a finished request produced.
pub(super) enum Answer {
    /// A command's answer (or none).
    Reply(Outcome),
    /// A room was entered (the socket adds it) or could not be. Boxed: a
    /// socket's loop holds answers inline, and entering is rare.
    Entered(Box<Result<(Room, JoinResponse), CoreError>>),
}

/// What the socket does with a request.
pub(super) enum Routed {
    /// Runs it.
    Call(InFlight),
    /// Refuses it at once, with this frame.
    Refused(Message),
}

impl Session {
    /// Routes one decoded request.
    pub(super) fn route(&mut self, request: Request) -> Routed {
        let Request { command, tag, room } = request;
        match (command, room) {
            (ClientCommand::JoinRoom, Some(room)) => self.join_room(room, tag),
            (ClientCommand::LeaveRoom, Some(room)) => self.leave_room(room, tag),
            (command, Some(room)) => match self.rooms.get(&room) {
                Some(joined) => {
                    let caller = Arc::clone(&joined.caller);
                    self.call(caller, command, tag, Some(room))
                }
                None => self.refuse(
                    &tag,
                    ErrorCode::PermissionDenied,
                    format!("not in room {room}: send JOIN_ROOM first"),
                ),
            },
            (command, None) => {
                let caller = if self.dialect.multi_room() {
                    Arc::clone(&self.base)
                } else {
                    match self.rooms.first() {
                        Some(room) => Arc::clone(&room.caller),
                        None => Arc::clone(&self.base),
                    }
                };
                self.call(caller, command, tag, None)
            }
        }
    }

    fn call(
        &self,
        caller: Arc<command::Caller>,
        command: ClientCommand,
        tag: RequestTag,
        room: Option<String>,
    ) -> Routed {
        let call = command::dispatch(caller, command, tag);
        Routed::Call(Box::pin(async move {
            let (tag, outcome) = call.await;
            Answered {
                tag,
                room,
                outcome: Answer::Reply(outcome),
            }
        }))
    }

    fn join_room(&mut self, room: String, tag: RequestTag) -> Routed {
        if self.rooms.get(&room).is_some() {
            return self.refuse(&tag, ErrorCode::Conflict, format!("already in room {room}"));
        }
        if self.rooms.len() >= MAX_ROOMS_PER_SOCKET {
            return self.refuse(
                &tag,
                ErrorCode::InvalidArgument,
                format!(
                    "a connection may be in at most {MAX_ROOMS_PER_SOCKET} rooms; leave one first"
                ),
            );
        }
        if let Some(identity) = &self.base.identity {
            if !identity.sessions.allows(&room) {
                return self.refuse(
                    &tag,
                    ErrorCode::PermissionDenied,
                    format!("the token does not grant room {room}"),
                );
            }
        }
        let (number, outbox) = self.rooms.reserve();
        self.unsettled = Some(room.clone());
        self.entering = true;
        let base = Arc::clone(&self.base);
        let dialect = self.dialect;
        Routed::Call(Box::pin(async move {
            let trace = tag.clone();
            let entered =
                rooms::enter(&base, &room, number, outbox, None, dialect, Some(&trace)).await;
            Answered {
                tag,
                room: Some(room),
                outcome: Answer::Entered(Box::new(entered)),
            }
        }))
    }

    fn leave_room(&mut self, room: String, tag: RequestTag) -> Routed {
        let Some(left) = self.rooms.remove(&room) else {
            return self.refuse(&tag, ErrorCode::NotFound, format!("not in room {room}"));
        };
        self.unsettled = Some(room.clone());
        Routed::Call(Box::pin(async move {
            join::leave(&left.caller, true, tag.trace_id.as_deref()).await;
            drop(left);
            Answered {
                tag,
                room: Some(room),
                outcome: Answer::Reply(Some(Reply::RoomLeft)),
            }
        }))
    }

    fn refuse(&self, tag: &RequestTag, code: ErrorCode, message: String) -> Routed {
        let error = ErrorEnvelope::from_core(&CoreError::new(code, message), Some(tag.action));
        let frame = self
            .dialect
            .encode_reply("", tag, &Reply::Error(error.clone()));
        crate::metrics::ERRORS_SENT
            .with_label_values(&[error.code.as_str()])
            .inc();
        Routed::Refused(Message::Text(frame))
    }
}
