//! NexusChat (seed 004) behind the seam: `GET <ws-path>/nexus` or the
//! subprotocol `nexus.v1`, `{event, traceId, data}` both ways, many rooms per
//! socket.
//!
//! The wire format is [`crate::codec::nexus`] and the query
//! [`crate::connect::nexus`]; this module binds them to the [`Dialect`]
//! trait and owns what is NexusChat's own: the connect rules (query identity
//! with auth off; the token's `sub`, `name`, `tenant` and `sessions` with
//! auth on), the trace id every answer carries (the client's, or a UUIDv4
//! made here), and how core events show: a chat message as `NEW_MESSAGE`, a
//! presence event as `PRESENCE` when the user came online or went offline and
//! as `TYPING` (to the others only) when only typing changed, a read as
//! `READ`; the lease is seed 000's and does not show.

use std::sync::Arc;

use meno_common::error::ErrorCode;
use meno_common::key::DEFAULT_TENANT;
use meno_proto::{
    join_response, session_event, signal, signal_request, user_event, CallEnd, ClientKind,
    IceSignal, JoinResponse, MessageKind, PresenceState, PresenceStatus, Role, SdpSignal,
    SdpType as ProtoSdpType, SessionEvent, UserEvent,
};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{
    Admission, Dialect, DialectId, PendingConnect, Refusal, Reply, Request, RequestTag, Undecodable,
};
use crate::auth::Identity;
use crate::codec::nexus::{self, MessageType, NexusCommand, SdpType};
use crate::codec::{direct, ClientCommand, ErrorEnvelope, Limits};
use crate::connect::nexus::{parse_nexus_connect, NexusConnect};
use crate::connect::MAX_NAME_CHARS;

/// The NexusChat dialect.
#[derive(Debug, Clone, Copy)]
pub struct Nexus;

/// How many of a room's newest messages `ROOM_JOINED` carries.
pub const ROOM_JOINED_MESSAGES: u32 = 50;

/// A trace id for an answer the client's event gave none for.
fn new_trace_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Dialect for Nexus {
    fn id(&self) -> DialectId {
        DialectId(1)
    }

    fn name(&self) -> &'static str {
        "nexus"
    }

    fn path_suffix(&self) -> &'static str {
        "/nexus"
    }

    fn subprotocol(&self) -> Option<&'static str> {
        Some("nexus.v1")
    }

    fn multi_room(&self) -> bool {
        true
    }

    fn echoes_every_duplicate(&self) -> bool {
        true
    }

    fn connect(&self, query: Option<&str>) -> Result<Box<dyn PendingConnect>, Refusal> {
        parse_nexus_connect(query)
            .map(|fields| Box::new(Connect(fields)) as Box<dyn PendingConnect>)
            .map_err(|err| Refusal::bad_request(err.to_string()))
    }

    fn decode(&self, text: &str, limits: &Limits) -> Result<Request, Undecodable> {
        let decoded = nexus::decode_with(text, limits).map_err(|refusal| Undecodable {
            error: refusal.envelope(),
            trace_id: refusal.trace_id,
        })?;
        let trace_id: Arc<str> = decoded.trace_id.unwrap_or_else(new_trace_id).into();
        let tag = RequestTag {
            action: decoded.event,
            trace_id: Some(Arc::clone(&trace_id)),
        };
        let (command, room) = match decoded.command {
            NexusCommand::SendMessage {
                room_id,
                message_type,
                content_text,
                content_meta,
                client_ref,
            } => (
                ClientCommand::TypedSend {
                    client_ref: client_ref.unwrap_or_default(),
                    kind: message_kind(message_type),
                    content: content_text.unwrap_or_default(),
                    meta: content_meta,
                },
                Some(room_id),
            ),
            NexusCommand::Typing { room_id, is_typing } => {
                (ClientCommand::Typing { is_typing }, Some(room_id))
            }
            NexusCommand::Ack { message_id } => (ClientCommand::MarkRead { message_id }, None),
            NexusCommand::JoinRoom { room_id } => (ClientCommand::JoinRoom, Some(room_id)),
            NexusCommand::LeaveRoom { room_id } => (ClientCommand::LeaveRoom, Some(room_id)),
            NexusCommand::SignalSdp {
                target_id,
                sdp_type,
                sdp,
            } => {
                let sdp = SdpSignal {
                    r#type: proto_sdp_type(sdp_type) as i32,
                    sdp,
                };
                let signal = signal_request::Kind::Sdp(sdp);
                (ClientCommand::Signal { target_id, signal }, None)
            }
            NexusCommand::SignalIce {
                target_id,
                candidate,
                sdp_mid,
                sdp_m_line_index,
            } => {
                let ice = IceSignal {
                    candidate,
                    sdp_mid,
                    sdp_m_line_index: u32::from(sdp_m_line_index),
                };
                let signal = signal_request::Kind::Ice(ice);
                (ClientCommand::Signal { target_id, signal }, None)
            }
            NexusCommand::CallEnd { target_id } => {
                let signal = signal_request::Kind::End(CallEnd {});
                (ClientCommand::Signal { target_id, signal }, None)
            }
        };
        Ok(Request { command, tag, room })
    }

    fn encode_event(&self, session_id: &str, event: &SessionEvent) -> Option<Utf8Bytes> {
        let trace_id = || {
            if event.trace_id.is_empty() {
                new_trace_id()
            } else {
                event.trace_id.clone()
            }
        };
        let frame = match event.kind.as_ref()? {
            session_event::Kind::ChatMessage(message) => {
                nexus::encode_new_message(&trace_id(), session_id, message)
            }
            session_event::Kind::Presence(state) => match presence_shows_as(event, state)? {
                PresenceShows::Status => nexus::encode_presence(&trace_id(), state),
                PresenceShows::Typing => nexus::encode_typing(
                    &trace_id(),
                    session_id,
                    &state.participant_id,
                    state.is_typing,
                ),
            },
            session_event::Kind::Read(read) => nexus::encode_read(
                &trace_id(),
                session_id,
                &read.user_id,
                &read.message_id,
                read.read_at_ms,
            ),
            session_event::Kind::Lease(_) => return None,
        };
        Some(Utf8Bytes::from(frame))
    }

    fn receives_user_events(&self) -> bool {
        true
    }

    fn encode_user_event(&self, event: &UserEvent) -> Option<Utf8Bytes> {
        let trace_id = if event.trace_id.is_empty() {
            new_trace_id()
        } else {
            event.trace_id.clone()
        };
        let signal = match event.kind.as_ref()? {
            user_event::Kind::Signal(signal) => signal,
            user_event::Kind::Direct(message) => {
                return direct::encode_nexus(&trace_id, message).map(Utf8Bytes::from)
            }
        };
        let (sender, target) = (signal.sender_id.as_str(), signal.target_id.as_str());
        let frame = match signal.kind.as_ref()? {
            signal::Kind::Sdp(sdp) => {
                let sdp_type = match sdp.r#type() {
                    ProtoSdpType::Offer => SdpType::Offer,
                    ProtoSdpType::Answer => SdpType::Answer,
                    ProtoSdpType::Rollback => SdpType::Rollback,
                    ProtoSdpType::Unspecified => return None,
                };
                nexus::encode_signal_sdp(&trace_id, sender, target, sdp_type, &sdp.sdp)
            }
            signal::Kind::Ice(ice) => nexus::encode_signal_ice(
                &trace_id,
                sender,
                target,
                &ice.candidate,
                ice.sdp_mid.as_deref(),
                u16::try_from(ice.sdp_m_line_index).ok()?,
            ),
            signal::Kind::End(_) => nexus::encode_call_end(&trace_id, sender),
        };
        Some(Utf8Bytes::from(frame))
    }

    fn hidden_from<'a>(&self, event: &'a SessionEvent) -> Option<&'a str> {
        match event.kind.as_ref()? {
            session_event::Kind::Presence(state)
                if presence_shows_as(event, state) == Some(PresenceShows::Typing) =>
            {
                Some(&state.participant_id)
            }
            _ => None,
        }
    }

    fn encode_start(
        &self,
        session_id: &str,
        joined: &JoinResponse,
        tag: Option<&RequestTag>,
    ) -> Vec<Utf8Bytes> {
        let trace_id = tag
            .and_then(|tag| tag.trace_id.as_deref())
            .map_or_else(new_trace_id, str::to_owned);
        let room_joined = |participants: &[PresenceState], history: &[meno_proto::ChatMessage]| {
            let members: Vec<PresenceState> = participants
                .iter()
                .filter(|member| is_online(member.status()))
                .cloned()
                .collect();
            // The snapshot is oldest first; ROOM_JOINED shows the newest first.
            let newest_first: Vec<meno_proto::ChatMessage> = history
                .iter()
                .rev()
                .take(ROOM_JOINED_MESSAGES as usize)
                .cloned()
                .collect();
            Utf8Bytes::from(nexus::encode_room_joined(
                &trace_id,
                session_id,
                &members,
                &newest_first,
            ))
        };
        match &joined.start {
            Some(join_response::Start::Snapshot(snapshot)) => {
                vec![room_joined(&snapshot.participants, &snapshot.history)]
            }
            Some(join_response::Start::Resume(resume)) => {
                let mut frames: Vec<Utf8Bytes> = resume
                    .events
                    .iter()
                    .filter_map(|event| self.encode_event(session_id, event))
                    .collect();
                if let Some(state) = resume.state.as_ref().filter(|_| resume.has_state) {
                    frames.push(room_joined(&state.participants, &[]));
                }
                frames
            }
            None => Vec::new(),
        }
    }

    fn encode_reply(&self, session_id: &str, tag: &RequestTag, reply: &Reply) -> Utf8Bytes {
        let trace_id = tag
            .trace_id
            .as_deref()
            .map_or_else(new_trace_id, str::to_owned);
        Utf8Bytes::from(match reply {
            Reply::Duplicate(stored) => nexus::encode_new_message(&trace_id, session_id, stored),
            Reply::RoomLeft => nexus::encode_room_left(&trace_id, session_id),
            Reply::CallRejected(rejected) => nexus::encode_call_rejected(
                &trace_id,
                &rejected.caller_id,
                &rejected.target_id,
                &rejected.reason,
            ),
            Reply::Error(error) => {
                let mut error = error.clone();
                error.action.get_or_insert_with(|| tag.action.to_owned());
                nexus::encode_error(&trace_id, &error)
            }
            // NexusChat has neither: its keepalive is the WebSocket ping, and
            // a token is only read at connect.
            Reply::Pong { .. } | Reply::AuthRefreshed { .. } => nexus::encode_error(
                &trace_id,
                &ErrorEnvelope {
                    code: ErrorCode::Internal,
                    message: "not a NexusChat reply".into(),
                    action: Some(tag.action.to_owned()),
                    retry_after_ms: None,
                },
            ),
        })
    }

    fn encode_error(&self, error: &ErrorEnvelope, trace_id: Option<&str>) -> Utf8Bytes {
        let trace_id = trace_id.map_or_else(new_trace_id, str::to_owned);
        Utf8Bytes::from(nexus::encode_error(&trace_id, error))
    }
}

/// The contract's SDP type of a NexusChat one.
fn proto_sdp_type(sdp_type: SdpType) -> ProtoSdpType {
    match sdp_type {
        SdpType::Offer => ProtoSdpType::Offer,
        SdpType::Answer => ProtoSdpType::Answer,
        SdpType::Rollback => ProtoSdpType::Rollback,
    }
}

/// The stored kind of a NexusChat `type`.
fn message_kind(message_type: MessageType) -> MessageKind {
    match message_type {
        MessageType::Text => MessageKind::Text,
        MessageType::Image => MessageKind::Image,
        MessageType::Video => MessageKind::Video,
        MessageType::Audio => MessageKind::Audio,
        MessageType::File => MessageKind::File,
    }
}

/// Online as NexusChat knows it: any present state, reconnecting included.
fn is_online(status: PresenceStatus) -> bool {
    !matches!(
        status,
        PresenceStatus::Offline | PresenceStatus::Unspecified
    )
}

/// Which NexusChat event a presence event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PresenceShows {
    /// The user came online or went offline: `PRESENCE`.
    Status,
    /// Only typing changed: `TYPING`.
    Typing,
}

/// A presence event shows as `PRESENCE` when it crosses online/offline, else
/// as `TYPING` when typing changed, else not at all (speaking, color, extra
/// are seed 000's).
fn presence_shows_as(event: &SessionEvent, state: &PresenceState) -> Option<PresenceShows> {
    let change = event.presence_change.unwrap_or_default();
    if is_online(change.previous_status()) != is_online(state.status()) {
        Some(PresenceShows::Status)
    } else if change.typing_changed {
        Some(PresenceShows::Typing)
    } else {
        None
    }
}

/// A NexusChat query that parsed.
#[derive(Debug)]
struct Connect(NexusConnect);

impl PendingConnect for Connect {
    fn token(&self) -> Option<&str> {
        self.0.token.as_deref()
    }

    fn admit(self: Box<Self>, identity: Option<Identity>) -> Result<Admission, Refusal> {
        let fields = self.0;
        let Some(identity) = identity else {
            let missing = |field| Refusal::bad_request(format!("missing {field}"));
            return Ok(Admission {
                tenant: fields.tenant.unwrap_or_else(|| DEFAULT_TENANT.to_owned()),
                user_id: fields.user_id.ok_or_else(|| missing("userId"))?,
                name: fields.user_name.ok_or_else(|| missing("userName"))?,
                role: Role::Student,
                client: ClientKind::Web,
                rooms: fields.rooms,
                last_seq: None,
                identity: None,
            });
        };
        if fields
            .user_id
            .as_ref()
            .is_some_and(|id| *id != identity.participant_id)
        {
            return Err(Refusal::unauthorized(
                "userId contradicts the token's subject",
            ));
        }
        let tenant = identity
            .tenant
            .clone()
            .unwrap_or_else(|| DEFAULT_TENANT.to_owned());
        if fields.tenant.as_ref().is_some_and(|asked| *asked != tenant) {
            return Err(Refusal::unauthorized(
                "tenant contradicts the token's tenant",
            ));
        }
        if let Some(room) = fields
            .rooms
            .iter()
            .find(|room| !identity.sessions.allows(room))
        {
            return Err(Refusal::forbidden(format!(
                "the token does not grant room {room}"
            )));
        }
        let name = identity
            .name
            .as_deref()
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(|name| name.chars().take(MAX_NAME_CHARS).collect())
            .or(fields.user_name)
            .unwrap_or_else(|| identity.participant_id.clone());
        Ok(Admission {
            tenant,
            user_id: identity.participant_id.clone(),
            name,
            role: identity.role.unwrap_or(Role::Student),
            client: ClientKind::Web,
            rooms: fields.rooms,
            last_seq: None,
            identity: Some(identity),
        })
    }
}

#[cfg(test)]
mod tests;
