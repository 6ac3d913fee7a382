//! `BackendService`: backends attach with one bidirectional stream each and
//! bridges submit their clients' text and voice (see `crate::backend`).

use meno_proto::{
    backend_service_server::BackendService, BackendUpstream, BackendWork, SubmitRequest,
    SubmitResponse,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::CoreApi;
use crate::validate;

#[tonic::async_trait]
impl BackendService for CoreApi {
    type AttachStream = ReceiverStream<Result<BackendWork, Status>>;

    async fn attach(
        &self,
        request: Request<Streaming<BackendUpstream>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        Ok(Response::new(
            self.backends.attach(request.into_inner()).await?,
        ))
    }

    async fn submit(
        &self,
        request: Request<SubmitRequest>,
    ) -> Result<Response<SubmitResponse>, Status> {
        let request = request.into_inner();
        validate::submit(&request)?;
        self.backends.submit(request)?;
        Ok(Response::new(SubmitResponse {}))
    }
}
