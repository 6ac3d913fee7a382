//! `UserService`: per-user delivery and WebRTC signaling, decided by the
//! user actors (see `crate::user`). One user-event stream per bridge id;
//! a bridge declares which users it wants with `SetInterest` on its live
//! stream.

use std::pin::Pin;

use futures_util::Stream;
use meno_proto::{
    user_service_server::UserService, SetInterestRequest, SetInterestResponse, SignalRequest,
    SignalResponse, SubscribeUsersRequest, UserStreamItem,
};
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::{client_span, CoreApi};
use crate::validate;

type UserEventStream = Pin<Box<dyn Stream<Item = Result<UserStreamItem, Status>> + Send>>;

#[tonic::async_trait]
impl UserService for CoreApi {
    type SubscribeUsersStream = UserEventStream;

    async fn subscribe_users(
        &self,
        request: Request<SubscribeUsersRequest>,
    ) -> Result<Response<Self::SubscribeUsersStream>, Status> {
        let bridge_id = request.into_inner().bridge_id;
        validate::id("bridge_id", &bridge_id)?;
        let stream = self.registry.users().subscribe(&bridge_id);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn set_interest(
        &self,
        request: Request<SetInterestRequest>,
    ) -> Result<Response<SetInterestResponse>, Status> {
        let request = request.into_inner();
        let (add, remove) = validate::set_interest(&request)?;
        self.registry
            .users()
            .set_interest(&request.bridge_id, add, remove, request.replace)?;
        Ok(Response::new(SetInterestResponse {}))
    }

    async fn signal(
        &self,
        request: Request<SignalRequest>,
    ) -> Result<Response<SignalResponse>, Status> {
        let request = request.into_inner();
        validate::signal(&request)?;
        let span = client_span(&request.trace_id);
        let response = self
            .registry
            .users()
            .signal(request)
            .instrument(span)
            .await?;
        Ok(Response::new(response))
    }
}
