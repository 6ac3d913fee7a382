//! What a session actor can be asked to do.

use std::sync::Arc;

use meno_proto::{
    ConnectionInfo, GetReadsResponse, HeartbeatRequest, HeartbeatResponse, JoinRequest,
    JoinResponse, LeaseReleaseRequest, LeaseResponse, LeaseSetRequest, LeaveResponse,
    MarkReadRequest, MarkReadResponse, PresenceSnapshotResponse, PresenceUpdateRequest,
    PresenceUpdateResponse, RefreshResponse, SendChatRequest, SendChatResponse, SessionEvent,
};
use tokio::sync::{mpsc, oneshot};

use crate::error::CoreError;

/// Where an actor sends a command's outcome.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, CoreError>>;

/// One item for a subscriber.
#[derive(Debug, Clone)]
pub(crate) enum Delivery {
    /// The subscription is live; events after `head_seq` follow.
    Subscribed { head_seq: u64 },
    /// The next event, in seq order.
    Event(Arc<SessionEvent>),
    /// The subscriber cannot be served from `from_seq` on; it must resync.
    Resync { from_seq: u64, head_seq: u64 },
}

/// A command on its way to an actor, with the span of the request that sent
/// it: the actor's work for it, store calls included, joins that trace.
#[derive(Debug)]
pub(crate) struct Envelope {
    /// Boxed: an actor's channel allocates slots in blocks of 32, and a
    /// `Command` inline would make every session's first block ~9 KiB.
    pub(crate) command: Box<Command>,
    pub(crate) span: tracing::Span,
}

/// A request to a session actor.
#[derive(Debug)]
pub(crate) enum Command {
    Join {
        request: JoinRequest,
        reply: Reply<JoinResponse>,
    },
    Leave {
        connection_id: String,
        graceful: bool,
        trace_id: String,
        reply: Reply<LeaveResponse>,
    },
    Refresh {
        connections: Vec<ConnectionInfo>,
        reply: Reply<RefreshResponse>,
    },
    SendChat {
        request: SendChatRequest,
        reply: Reply<SendChatResponse>,
    },
    UpdatePresence {
        request: PresenceUpdateRequest,
        reply: Reply<PresenceUpdateResponse>,
    },
    Heartbeat {
        request: HeartbeatRequest,
        reply: Reply<HeartbeatResponse>,
    },
    PresenceSnapshot {
        reply: Reply<PresenceSnapshotResponse>,
    },
    SetLease {
        request: LeaseSetRequest,
        reply: Reply<LeaseResponse>,
    },
    ReleaseLease {
        request: LeaseReleaseRequest,
        reply: Reply<LeaseResponse>,
    },
    GetLease {
        reply: Reply<LeaseResponse>,
    },
    Subscribe {
        from_seq: Option<u64>,
        deliveries: mpsc::Sender<Delivery>,
        reply: Reply<()>,
    },
    /// An ACK; `stored_seq` is the message's seq when the caller already
    /// looked it up (a MarkRead without a session id).
    MarkRead {
        request: MarkReadRequest,
        stored_seq: Option<u64>,
        reply: Reply<MarkReadResponse>,
    },
    GetReads {
        reply: Reply<GetReadsResponse>,
    },
}

impl Command {
    /// A short name, for metrics.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Command::Join { .. } => "join",
            Command::Leave { .. } => "leave",
            Command::Refresh { .. } => "refresh",
            Command::SendChat { .. } => "chat_send",
            Command::UpdatePresence { .. } => "presence_update",
            Command::Heartbeat { .. } => "heartbeat",
            Command::PresenceSnapshot { .. } => "presence_snapshot",
            Command::SetLease { .. } => "lease_set",
            Command::ReleaseLease { .. } => "lease_release",
            Command::GetLease { .. } => "lease_get",
            Command::Subscribe { .. } => "subscribe",
            Command::MarkRead { .. } => "mark_read",
            Command::GetReads { .. } => "get_reads",
        }
    }
}
