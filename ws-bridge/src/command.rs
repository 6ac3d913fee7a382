//! What each client command does: one handler per command, in its own file,
//! each one gRPC call to the core (or, for a token refresh, a check here).
//!
//! Handlers are dialect-free: they get the [`Caller`] and the command's
//! fields, and answer with a [`Reply`] for the sender alone or nothing
//! (what others see comes back as session events through the hub). Adding a
//! command is its handler file plus one arm in [`dispatch`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use meno_common::error::CoreError;
use meno_common::key::SessionKey;
use meno_proto::{Actor, ConnectionInfo, SessionRef};
use tracing::{Instrument, Span};

use crate::auth::{Authenticator, Identity};
use crate::codec::{ClientCommand, ErrorEnvelope};
pub use crate::core_client::session_ref;
use crate::core_client::CoreClient;
use crate::dialect::{Reply, RequestTag};
use crate::socket::SocketContext;

mod auth_refresh;
mod backend;
mod chat_send;
mod lease;
mod presence;
mod read;
mod signal;

/// A command's answer for its sender, when it has one.
pub type Outcome = Option<Reply>;

/// A command running: resolves to its request's tag and its answer, errors
/// included.
pub type CallFuture = Pin<Box<dyn Future<Output = (RequestTag, Outcome)> + Send>>;

/// Who runs a command, and against what. Every socket holds one for its
/// lifetime, so it shares the bridge's core clients and settings rather than
/// keeping copies.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The core's clients and the bridge's settings.
    pub context: Arc<SocketContext>,
    /// The session the command is for.
    pub key: SessionKey,
    /// The connection sending it (shared with the hub's entry for the
    /// socket: one copy per connection).
    pub connection: Arc<ConnectionInfo>,
    /// The connection's verified identity (jwt mode).
    pub identity: Option<Identity>,
}

impl Caller {
    /// The core.
    pub fn core(&self) -> &CoreClient {
        &self.context.core
    }

    /// The token verifier (jwt mode), for refreshes.
    pub fn authenticator(&self) -> Option<&Authenticator> {
        self.context.config.auth.as_ref()
    }

    /// The session, as gRPC requests name it.
    pub fn session(&self) -> Option<SessionRef> {
        Some(session_ref(&self.key))
    }

    /// The sender, as gRPC requests name it.
    pub fn actor(&self) -> Option<Actor> {
        self.traced_actor(None)
    }

    /// The sender, with the trace id of the client event it acts on.
    pub fn traced_actor(&self, trace_id: Option<&str>) -> Option<Actor> {
        Some(Actor {
            participant_id: self.connection.participant_id.clone(),
            connection_id: self.connection.connection_id.clone(),
            name: self.connection.name.clone(),
            role: self.connection.role,
            trace_id: trace_id.unwrap_or_default().to_owned(),
        })
    }
}

/// The span of one client action, the root of its trace: the core call made
/// in it carries its context, so the core's and the store's spans join it.
pub fn action_span(action: &'static str, key: &SessionKey, connection: &ConnectionInfo) -> Span {
    tracing::info_span!(
        "ws.action",
        otel.kind = "server",
        action,
        session = %key,
        participant = %connection.participant_id,
        connection = %connection.connection_id,
        client_trace_id = tracing::field::Empty,
    )
}

/// Starts `command`; resolves to what its sender alone gets. `tag`'s trace
/// id goes with the core call, onto the events it causes.
pub fn dispatch(caller: Arc<Caller>, command: ClientCommand, tag: RequestTag) -> CallFuture {
    let action = tag.action;
    let span = action_span(action, &caller.key, &caller.connection);
    if let Some(trace_id) = tag.trace_id.as_deref() {
        meno_common::telemetry::propagation::link_client_trace(&span, trace_id);
    }
    Box::pin(
        async move {
            let _timer = crate::metrics::CORE_CALL_SECONDS
                .with_label_values(&[action])
                .start_timer();
            let trace_id = tag.trace_id.as_deref();
            let answered: Result<Outcome, CoreError> = match command {
                ClientCommand::ChatSend {
                    message_id,
                    content,
                    created_at_ms,
                    meta,
                } => {
                    let message = chat_send::Message {
                        client_ref: message_id,
                        kind: meno_proto::MessageKind::Unspecified,
                        content,
                        created_at_ms,
                        meta,
                    };
                    chat_send::run(&caller, message, trace_id).await
                }
                ClientCommand::TypedSend {
                    client_ref,
                    kind,
                    content,
                    meta,
                } => {
                    let message = chat_send::Message {
                        client_ref,
                        kind,
                        content,
                        created_at_ms: None,
                        meta,
                    };
                    chat_send::run(&caller, message, trace_id).await
                }
                ClientCommand::Typing { is_typing } => {
                    let update = presence::Update {
                        status: None,
                        is_typing: Some(is_typing),
                        is_speaking: None,
                        last_seen_ms: None,
                        extra: None,
                    };
                    presence::update(&caller, update, trace_id).await
                }
                ClientCommand::MarkRead { message_id } => {
                    read::mark(&caller, message_id, trace_id).await
                }
                ClientCommand::Signal { target_id, signal } => {
                    signal::relay(&caller, target_id, signal, trace_id).await
                }
                ClientCommand::Backend(item) => backend::submit(&caller, item, trace_id).await,
                // The socket enters and leaves rooms itself.
                ClientCommand::JoinRoom | ClientCommand::LeaveRoom => Err(CoreError::new(
                    meno_common::error::ErrorCode::InvalidArgument,
                    "a room event needs a roomId",
                )),
                ClientCommand::PresenceUpdate {
                    status,
                    is_typing,
                    is_speaking,
                    last_seen_ms,
                    extra,
                } => {
                    let update = presence::Update {
                        status,
                        is_typing,
                        is_speaking,
                        last_seen_ms,
                        extra,
                    };
                    presence::update(&caller, update, trace_id).await
                }
                ClientCommand::PresenceHeartbeat { last_seen_ms } => {
                    presence::heartbeat(&caller, last_seen_ms).await
                }
                ClientCommand::LeaseSet {
                    lease_id,
                    step_index,
                    lease_duration_ms,
                } => lease::set(&caller, lease_id, step_index, lease_duration_ms).await,
                ClientCommand::LeaseRelease { lease_id } => lease::release(&caller, lease_id).await,
                ClientCommand::Ping => Ok(Some(Reply::Pong {
                    server_time_ms: crate::now_ms(),
                })),
                ClientCommand::AuthRefresh { token } => auth_refresh::run(&caller, &token).await,
            };
            let outcome = answered.unwrap_or_else(|err| {
                Some(Reply::Error(ErrorEnvelope::from_core(&err, Some(action))))
            });
            (tag, outcome)
        }
        .instrument(span),
    )
}
