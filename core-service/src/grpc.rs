//! The gRPC face of the core: validates requests and turns them into session
//! commands. It holds no session state of its own. Chat history
//! (`history`), read positions (`reads`) and per-user delivery and signaling
//! (`users`), directed delivery and the connection registry (`direct`) and
//! backend streams (`backends`) have their own files.

use meno_proto::{
    chat_service_server::ChatService, connection_service_server::ConnectionService,
    lease_service_server::LeaseService, presence_service_server::PresenceService, Actor,
    ChatHistoryRequest, ChatHistoryResponse, HeartbeatRequest, HeartbeatResponse, JoinRequest,
    JoinResponse, LeaseGetRequest, LeaseReleaseRequest, LeaseResponse, LeaseSetRequest,
    LeaveRequest, LeaveResponse, PresenceSnapshotRequest, PresenceSnapshotResponse,
    PresenceUpdateRequest, PresenceUpdateResponse, RefreshRequest, RefreshResponse,
    SendChatRequest, SendChatResponse, SessionRef,
};
use tonic::{Request, Response, Status};

use tracing::Instrument;

use crate::backend::BackendHub;
use crate::connections::ConnectionRegistry;
use crate::direct::DirectDelivery;
use crate::error::CoreError;
use crate::registry::SessionRegistry;
use crate::session::{Command, Reply};
use crate::store::SessionKey;
use crate::validate;

mod backends;
mod direct;
mod events;
mod history;
mod reads;
mod users;

/// Implements every `meno.realtime.v1` service over one registry.
#[derive(Debug, Clone)]
pub struct CoreApi {
    registry: SessionRegistry,
    connections: ConnectionRegistry,
    direct: DirectDelivery,
    backends: BackendHub,
}

impl CoreApi {
    /// The API over `registry`, with the connection registry in its store
    /// and the backends' routing beside it.
    pub fn new(registry: SessionRegistry) -> Self {
        let config = registry.config();
        let connections = ConnectionRegistry::new(
            std::sync::Arc::clone(registry.store()),
            std::sync::Arc::clone(registry.clock()),
            config.connection_registry_ttl,
        );
        let users = registry.users().clone();
        let direct = DirectDelivery::new(connections.clone(), users.clone());
        let backends = BackendHub::new(
            direct.clone(),
            config.backend_buffer,
            users.tracker_handle().clone(),
            users.shutdown_token().clone(),
        );
        Self {
            registry,
            connections,
            direct,
            backends,
        }
    }

    /// Sends the command to its session's actor and wraps the answer.
    async fn dispatch<T>(
        &self,
        key: SessionKey,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<Response<T>, Status> {
        Ok(Response::new(self.registry.call(key, make).await?))
    }
}

fn session_key(session: Option<&SessionRef>) -> Result<SessionKey, CoreError> {
    let session = session.ok_or_else(|| CoreError::invalid("session is required"))?;
    validate::session_ref(session)
}

/// The trace id of whoever acts (empty: none).
fn trace_of(actor: Option<&Actor>) -> &str {
    actor.map_or("", |actor| actor.trace_id.as_str())
}

/// The span a caller's action runs in: when the caller sent its own trace id
/// (seed 004's `traceId`), a child of the request span carrying it as the
/// attribute `client_trace_id`, so the session's batch span and its store
/// calls sit under it; otherwise the request span itself.
fn client_span(trace_id: &str) -> tracing::Span {
    if trace_id.is_empty() {
        return tracing::Span::current();
    }
    tracing::info_span!("core.client_action", client_trace_id = trace_id)
}

#[tonic::async_trait]
impl ConnectionService for CoreApi {
    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinResponse>, Status> {
        let request = request.into_inner();
        let key = session_key(request.session.as_ref())?;
        validate::connection(request.connection.as_ref())?;
        let span = client_span(&request.trace_id);
        self.dispatch(key, |reply| Command::Join { request, reply })
            .instrument(span)
            .await
    }

    async fn leave(
        &self,
        request: Request<LeaveRequest>,
    ) -> Result<Response<LeaveResponse>, Status> {
        let request = request.into_inner();
        let key = session_key(request.session.as_ref())?;
        let span = client_span(&request.trace_id);
        self.dispatch(key, |reply| Command::Leave {
            connection_id: request.connection_id,
            graceful: request.graceful,
            trace_id: request.trace_id,
            reply,
        })
        .instrument(span)
        .await
    }

    async fn refresh(
        &self,
        request: Request<RefreshRequest>,
    ) -> Result<Response<RefreshResponse>, Status> {
        let request = request.into_inner();
        let key = session_key(request.session.as_ref())?;
        for connection in &request.connections {
            validate::connection(Some(connection))?;
        }
        self.dispatch(key, |reply| Command::Refresh {
            connections: request.connections,
            reply,
        })
        .await
    }
}

#[tonic::async_trait]
impl ChatService for CoreApi {
    async fn send(
        &self,
        request: Request<SendChatRequest>,
    ) -> Result<Response<SendChatResponse>, Status> {
        let mut request = request.into_inner();
        let key = session_key(request.session.as_ref())?;
        validate::chat_send(&mut request)?;
        let span = client_span(trace_of(request.actor.as_ref()));
        self.dispatch(key, |reply| Command::SendChat { request, reply })
            .instrument(span)
            .await
    }

    async fn history(
        &self,
        request: Request<ChatHistoryRequest>,
    ) -> Result<Response<ChatHistoryResponse>, Status> {
        Ok(Response::new(
            history::page(&self.registry, request.into_inner()).await?,
        ))
    }
}

#[tonic::async_trait]
impl PresenceService for CoreApi {
    async fn update(
        &self,
        request: Request<PresenceUpdateRequest>,
    ) -> Result<Response<PresenceUpdateResponse>, Status> {
        let request = request.into_inner();
        let key = session_key(request.session.as_ref())?;
        validate::actor(request.actor.as_ref())?;
        validate::presence_update(&request)?;
        let span = client_span(trace_of(request.actor.as_ref()));
        self.dispatch(key, |reply| Command::UpdatePresence { request, reply })
            .instrument(span)
            .await
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let request = request.into_inner();
        let key = session_key(request.session.as_ref())?;
        validate::actor(request.actor.as_ref())?;
        self.dispatch(key, |reply| Command::Heartbeat { request, reply })
            .await
    }

    async fn snapshot(
        &self,
        request: Request<PresenceSnapshotRequest>,
    ) -> Result<Response<PresenceSnapshotResponse>, Status> {
        let key = session_key(request.get_ref().session.as_ref())?;
        self.dispatch(key, |reply| Command::PresenceSnapshot { reply })
            .await
    }
}

#[tonic::async_trait]
impl LeaseService for CoreApi {
    async fn set(
        &self,
        request: Request<LeaseSetRequest>,
    ) -> Result<Response<LeaseResponse>, Status> {
        let request = request.into_inner();
        let key = session_key(request.session.as_ref())?;
        validate::lease_set(&request)?;
        let span = client_span(trace_of(request.actor.as_ref()));
        self.dispatch(key, |reply| Command::SetLease { request, reply })
            .instrument(span)
            .await
    }

    async fn release(
        &self,
        request: Request<LeaseReleaseRequest>,
    ) -> Result<Response<LeaseResponse>, Status> {
        let request = request.into_inner();
        let key = session_key(request.session.as_ref())?;
        validate::lease_release(&request)?;
        let span = client_span(trace_of(request.actor.as_ref()));
        self.dispatch(key, |reply| Command::ReleaseLease { request, reply })
            .instrument(span)
            .await
    }

    async fn get(
        &self,
        request: Request<LeaseGetRequest>,
    ) -> Result<Response<LeaseResponse>, Status> {
        let key = session_key(request.get_ref().session.as_ref())?;
        self.dispatch(key, |reply| Command::GetLease { reply })
            .await
    }
}
