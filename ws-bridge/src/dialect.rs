//! The dialect seam: one WebSocket client protocol per module behind one trait.
//!
//! A [`Dialect`] owns everything a client protocol decides: how it is
//! selected at upgrade (a path under `--ws-path`, or a subprotocol), how its
//! connect parameters become an [`Admission`] (identity and the session to
//! join), how its frames decode into [`ClientCommand`]s, and how events and
//! replies encode into its frames. The socket loop, limits, outbox,
//! keepalive, drain and closing handshake know no dialect; the hub encodes
//! each event once per dialect present and shares the bytes.
//!
//! A dialect must never touch a socket, call the core or hold state: it is
//! a pure translation, so each one is tested (and fuzzed) on its own.
//! Today's dialects: [`seed000`] (one session per socket) and [`nexus`]
//! (seed 004's NexusChat: many rooms per socket).

use http::StatusCode;
use meno_proto::{ClientKind, JoinResponse, Role, SessionEvent, UserEvent};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::auth::Identity;
use crate::codec::{ClientCommand, ErrorEnvelope, Limits, ProtocolError};

pub mod assistant;
pub mod nexus;
pub mod seed000;

/// Every dialect this bridge speaks, in the order selection tries them; a
/// dialect's [`DialectId`] is its index here.
pub static DIALECTS: [&dyn Dialect; 3] = [&seed000::Seed000, &nexus::Nexus, &assistant::Assistant];

/// How many dialects there are: the hub keeps one encoding slot for each.
pub const DIALECT_COUNT: usize = DIALECTS.len();

/// A dialect's index in [`DIALECTS`], small enough for every socket to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DialectId(pub u8);

impl DialectId {
    /// The dialect itself.
    pub fn dialect(self) -> &'static dyn Dialect {
        DIALECTS[usize::from(self.0)]
    }
}

/// One WebSocket client protocol.
pub trait Dialect: Send + Sync + std::fmt::Debug + 'static {
    /// Its index in [`DIALECTS`].
    fn id(&self) -> DialectId;

    /// Its name in logs and metrics.
    fn name(&self) -> &'static str;

    /// The path, relative to `--ws-path`, that selects it: `""` is the
    /// WebSocket path itself.
    fn path_suffix(&self) -> &'static str;

    /// A `Sec-WebSocket-Protocol` entry that selects it on any dialect path.
    fn subprotocol(&self) -> Option<&'static str> {
        None
    }

    /// Validates the connect query (HTTP 400 on a bad one), before any
    /// token is verified.
    fn connect(&self, query: Option<&str>) -> Result<Box<dyn PendingConnect>, Refusal>;

    /// Whether a socket may be in several sessions (rooms) at once, joined
    /// and left by its own requests; otherwise it is in exactly the one
    /// session its connect names, for its whole life.
    fn multi_room(&self) -> bool {
        false
    }

    /// Whether a repeated send is answered with the stored message even
    /// when this socket has already been sent it (NexusChat's contract);
    /// otherwise such a repeat is silent, as the client has the message
    /// (seed 000).
    fn echoes_every_duplicate(&self) -> bool {
        false
    }

    /// Decodes one client text frame.
    fn decode(&self, text: &str, limits: &Limits) -> Result<Request, Undecodable>;

    /// Encodes one session event, once for every socket of this dialect;
    /// `None` for an event this dialect does not show.
    fn encode_event(&self, session_id: &str, event: &SessionEvent) -> Option<Utf8Bytes>;

    /// The user an encoded event must not reach, when the dialect shows it to
    /// the others only (NexusChat's TYPING): the hub skips that user's
    /// sockets of this dialect.
    fn hidden_from<'a>(&self, _event: &'a SessionEvent) -> Option<&'a str> {
        None
    }

    /// The socket's read buffer, in bytes. Every idle socket holds one, and
    /// a client frame larger than it is read this many bytes at a time: the
    /// chat dialects' frames are small (a `chat.send` is a few hundred bytes).
    fn read_buffer_bytes(&self) -> usize {
        512
    }

    /// Whether this dialect's sockets get events addressed to their user
    /// (the per-user channel: WebRTC signals); a socket of a dialect that
    /// shows none is not registered there.
    fn receives_user_events(&self) -> bool {
        false
    }

    /// Encodes one event addressed to a user, once for every socket of this
    /// dialect; `None` for an event this dialect does not show.
    fn encode_user_event(&self, _event: &UserEvent) -> Option<Utf8Bytes> {
        None
    }

    /// The frames a socket starts with after joining a session: a snapshot,
    /// or what it missed since its `lastSeq`. `tag`: the request that asked
    /// for the join, if one did.
    fn encode_start(
        &self,
        session_id: &str,
        joined: &JoinResponse,
        tag: Option<&RequestTag>,
    ) -> Vec<Utf8Bytes>;

    /// The answer to one request of this socket, for it alone.
    fn encode_reply(&self, session_id: &str, tag: &RequestTag, reply: &Reply) -> Utf8Bytes;

    /// A refusal that answers no request it could decode (a connect refused
    /// after the upgrade, a frame that did not decode, a rate limit); with
    /// the client's trace id when it could be read.
    fn encode_error(&self, error: &ErrorEnvelope, trace_id: Option<&str>) -> Utf8Bytes;
}

/// A client frame a dialect could not decode: the refusal, and the trace id
/// to answer it with when the frame carried a sane one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecodable {
    /// The `error` to send.
    pub error: ErrorEnvelope,
    /// The client's trace id, when it could be read.
    pub trace_id: Option<String>,
}

impl From<ProtocolError> for Undecodable {
    fn from(error: ProtocolError) -> Self {
        Self {
            error: ErrorEnvelope::from_protocol(&error),
            trace_id: None,
        }
    }
}

/// A connect query that parsed: it may carry a token, and binds an identity
/// once the token (if any) is verified.
pub trait PendingConnect: Send + std::fmt::Debug {
    /// The access token the query carries, if any.
    fn token(&self) -> Option<&str>;

    /// Who connects: from the query alone (`identity` is `None`: auth off),
    /// or from the verified token, which the query may repeat but not
    /// contradict.
    fn admit(self: Box<Self>, identity: Option<Identity>) -> Result<Admission, Refusal>;
}

/// A connect refused before the upgrade: an HTTP status and a one-line reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {reason}")]
pub struct Refusal {
    /// 400, 401 or 403.
    pub status: StatusCode,
    /// For the client's developer.
    pub reason: String,
}

impl Refusal {
    /// A 400: the query is malformed.
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, reason)
    }

    /// A 401: the token is missing, invalid, or contradicted.
    pub fn unauthorized(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, reason)
    }

    /// A 403: the token does not grant this.
    pub fn forbidden(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, reason)
    }

    fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
        }
    }
}

/// Who a connect admits, whatever the dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The tenant: the token's, or the default one.
    pub tenant: String,
    /// The user's id within the tenant (seed 000's participantId).
    pub user_id: String,
    /// Display name.
    pub name: String,
    /// Role in the session.
    pub role: Role,
    /// Web, tablet or native.
    pub client: ClientKind,
    /// The sessions joined at connect: exactly one for a single-room
    /// dialect; any number (none included) for a multi-room one.
    pub rooms: Vec<String>,
    /// Resume after this seq, when the client has seen events before.
    pub last_seq: Option<u64>,
    /// The verified token's identity (jwt mode).
    pub identity: Option<Identity>,
}

/// One decoded client frame: what to do, and what the dialect needs to
/// answer it.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The command, dialect-free.
    pub command: ClientCommand,
    /// How replies to it are labelled.
    pub tag: RequestTag,
    /// The session (room) it is for; `None`: the socket's only session, or,
    /// for a command that names no room (NexusChat's ACK), the core finds it.
    pub room: Option<String>,
}

/// What a dialect keeps of a request to label its answer: seed 000 echoes
/// the action in an `error`; NexusChat also answers with the request's
/// trace id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTag {
    /// The action's wire name.
    pub action: &'static str,
    /// The client's trace id (or one the bridge made for it), copied to the
    /// replies and to the events the request causes; `None` in dialects
    /// without one.
    pub trace_id: Option<std::sync::Arc<str>>,
}

impl RequestTag {
    /// A tag without a trace id.
    pub fn action(action: &'static str) -> Self {
        Self {
            action,
            trace_id: None,
        }
    }
}

/// The answer to one request, for its sender alone, before a dialect
/// encodes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The answer to a ping.
    Pong {
        /// Unix ms.
        server_time_ms: i64,
    },
    /// A repeated `chat.send`: the message stored the first time.
    Duplicate(meno_proto::ChatMessage),
    /// A renewed token was accepted.
    AuthRefreshed {
        /// When the new token expires (Unix ms).
        expires_at_ms: i64,
    },
    /// The socket left a room (NexusChat's `LEAVE_ROOM`).
    RoomLeft,
    /// A call offer was refused: the target is busy (NexusChat's
    /// `CALL_REJECTED`).
    CallRejected(meno_proto::CallRejected),
    /// The request was refused.
    Error(ErrorEnvelope),
}

/// The dialect a WebSocket upgrade asks for: by its path under `ws_path`,
/// or, on any dialect's path, by an offered subprotocol. `None`: the path is
/// not a WebSocket path.
pub fn select(
    path: &str,
    ws_path: &str,
    offered_protocols: Option<&str>,
) -> Option<&'static dyn Dialect> {
    let suffix = path.strip_prefix(ws_path)?;
    let by_path = DIALECTS
        .iter()
        .copied()
        .find(|dialect| dialect.path_suffix() == suffix)?;
    let by_protocol = offered_protocols.and_then(|header| {
        header.split(',').map(str::trim).find_map(|offered| {
            DIALECTS
                .iter()
                .copied()
                .find(|dialect| dialect.subprotocol() == Some(offered))
        })
    });
    Some(by_protocol.unwrap_or(by_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dialect_sits_at_its_own_index() {
        for (index, dialect) in DIALECTS.iter().enumerate() {
            assert_eq!(usize::from(dialect.id().0), index, "{}", dialect.name());
        }
    }

    #[test]
    fn the_ws_path_itself_selects_seed_000() {
        let dialect = select("/ws", "/ws", None).unwrap();
        assert_eq!(dialect.name(), "seed000");
        let staged = select("/prod", "/prod", Some("meno.v1, bearer.abc")).unwrap();
        assert_eq!(staged.name(), "seed000");
    }

    #[test]
    fn the_nexus_path_or_subprotocol_selects_nexus_chat() {
        assert_eq!(select("/ws/nexus", "/ws", None).unwrap().name(), "nexus");
        assert_eq!(
            select("/prod/nexus", "/prod", None).unwrap().name(),
            "nexus"
        );
        assert_eq!(
            select("/ws", "/ws", Some("bearer.abc, nexus.v1"))
                .unwrap()
                .name(),
            "nexus"
        );
    }

    #[test]
    fn other_paths_select_nothing() {
        assert!(select("/", "/ws", None).is_none());
        assert!(select("/wsx", "/ws", None).is_none());
        assert!(select("/ws/", "/ws", None).is_none());
        assert!(select("/ws/unknown", "/ws", None).is_none());
        assert!(select("/healthz", "/ws", None).is_none());
    }
}
