//! `DirectService` and `RegistryService`: directed delivery for backends
//! (see `crate::direct`) and the connection registry (see
//! `crate::connections`). Both go to the store and the user actors, never
//! to a session actor.

use meno_proto::{
    direct_service_server::DirectService, registry_service_server::RegistryService,
    DisconnectConnectionRequest, DisconnectConnectionResponse, ListBySessionRequest,
    ListByUserRequest, ListConnectionsResponse, RegisterConnectionRequest,
    RegisterConnectionResponse, SendResult, SendToConnectionRequest, SendToUserRequest,
    TouchConnectionsRequest, TouchConnectionsResponse,
};
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::{client_span, CoreApi};
use crate::store::RegistryLookup;
use crate::user::UserKey;
use crate::validate;

#[tonic::async_trait]
impl DirectService for CoreApi {
    async fn send_to_connection(
        &self,
        request: Request<SendToConnectionRequest>,
    ) -> Result<Response<SendResult>, Status> {
        let request = request.into_inner();
        validate::tenant(&request.tenant)?;
        validate::id("connection_id", &request.connection_id)?;
        validate::direct_message(request.message.as_ref())?;
        let tenant = UserKey::new(request.tenant, "").tenant;
        let span = client_span(&request.trace_id);
        let result = self
            .direct
            .to_connection(
                &tenant,
                &request.connection_id,
                &request.trace_id,
                request.message.unwrap_or_default(),
            )
            .instrument(span)
            .await?;
        Ok(Response::new(result))
    }

    async fn send_to_user(
        &self,
        request: Request<SendToUserRequest>,
    ) -> Result<Response<SendResult>, Status> {
        let request = request.into_inner();
        let user = validate::user("user", request.user.as_ref())?;
        validate::direct_message(request.message.as_ref())?;
        let span = client_span(&request.trace_id);
        let result = self
            .direct
            .to_user(
                &user,
                &request.trace_id,
                request.message.unwrap_or_default(),
            )
            .instrument(span)
            .await?;
        Ok(Response::new(result))
    }
}

#[tonic::async_trait]
impl RegistryService for CoreApi {
    async fn register(
        &self,
        request: Request<RegisterConnectionRequest>,
    ) -> Result<Response<RegisterConnectionResponse>, Status> {
        let request = request.into_inner();
        validate::registered(request.connection.as_ref())?;
        self.connections
            .register(request.connection.unwrap_or_default())
            .await?;
        Ok(Response::new(RegisterConnectionResponse {}))
    }

    async fn touch(
        &self,
        request: Request<TouchConnectionsRequest>,
    ) -> Result<Response<TouchConnectionsResponse>, Status> {
        let request = request.into_inner();
        validate::tenant(&request.tenant)?;
        validate::touched(&request.connection_ids)?;
        self.connections
            .touch(
                &request.tenant,
                &request.connection_ids,
                request.last_activity_ms,
            )
            .await?;
        Ok(Response::new(TouchConnectionsResponse {}))
    }

    async fn disconnect(
        &self,
        request: Request<DisconnectConnectionRequest>,
    ) -> Result<Response<DisconnectConnectionResponse>, Status> {
        let request = request.into_inner();
        validate::tenant(&request.tenant)?;
        validate::id("connection_id", &request.connection_id)?;
        // The voice sessions it left open end at their backends first: a
        // failed registry write must not keep them.
        self.backends
            .connection_closed(&request.tenant, &request.connection_id);
        self.connections
            .disconnect(&request.tenant, &request.connection_id)
            .await?;
        Ok(Response::new(DisconnectConnectionResponse {}))
    }

    async fn list_by_session(
        &self,
        request: Request<ListBySessionRequest>,
    ) -> Result<Response<ListConnectionsResponse>, Status> {
        let request = request.into_inner();
        validate::tenant(&request.tenant)?;
        validate::id("session_id", &request.session_id)?;
        let connections = self
            .connections
            .list(
                &request.tenant,
                &RegistryLookup::Session(request.session_id),
            )
            .await?;
        Ok(Response::new(ListConnectionsResponse { connections }))
    }

    async fn list_by_user(
        &self,
        request: Request<ListByUserRequest>,
    ) -> Result<Response<ListConnectionsResponse>, Status> {
        let request = request.into_inner();
        let user = validate::user("user", request.user.as_ref())?;
        let connections = self
            .connections
            .list(&user.tenant, &RegistryLookup::User(user.user_id))
            .await?;
        Ok(Response::new(ListConnectionsResponse { connections }))
    }
}
