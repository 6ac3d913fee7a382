//! `ReadService`: read positions (seed 004's ACK and READ), decided by the
//! session's actor. A MarkRead that names no session finds it through the
//! message-id index of its tenant, so a message of another tenant is
//! NOT_FOUND, never another tenant's room.

use meno_proto::{
    read_service_server::ReadService, GetReadsRequest, GetReadsResponse, MarkReadRequest,
    MarkReadResponse,
};
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::{client_span, session_key, trace_of, CoreApi};
use crate::error::{CoreError, ErrorCode};
use crate::session::Command;
use crate::store::SessionKey;
use crate::validate;

#[tonic::async_trait]
impl ReadService for CoreApi {
    async fn mark_read(
        &self,
        request: Request<MarkReadRequest>,
    ) -> Result<Response<MarkReadResponse>, Status> {
        let request = request.into_inner();
        validate::mark_read(&request)?;
        let session = request.session.clone().unwrap_or_default();
        let (key, stored_seq) = if session.session_id.is_empty() {
            let (key, seq) = self.locate(&session.tenant, &request.message_id).await?;
            (key, Some(seq))
        } else {
            (validate::session_ref(&session)?, None)
        };
        let span = client_span(trace_of(request.actor.as_ref()));
        self.dispatch(key, |reply| Command::MarkRead {
            request,
            stored_seq,
            reply,
        })
        .instrument(span)
        .await
    }

    /// With `must_exist`, NOT_FOUND for a session never created in the
    /// tenant (the rule of `ChatService.History`); otherwise an unknown
    /// session has no positions.
    async fn get_reads(
        &self,
        request: Request<GetReadsRequest>,
    ) -> Result<Response<GetReadsResponse>, Status> {
        let request = request.into_inner();
        let key = session_key(request.session.as_ref())?;
        if request.must_exist {
            super::history::must_exist(&self.registry, &key).await?;
        }
        self.dispatch(key, |reply| Command::GetReads { reply })
            .await
    }
}

impl CoreApi {
    /// The session of `message_id` in `tenant`, and the message's seq there.
    async fn locate(&self, tenant: &str, message_id: &str) -> Result<(SessionKey, u64), CoreError> {
        let tenant_key = validate::session_ref(&meno_proto::SessionRef {
            tenant: tenant.to_owned(),
            session_id: "-".to_owned(),
        })?;
        let location = self
            .registry
            .store()
            .message_location(&tenant_key.tenant, message_id)
            .await?
            .ok_or_else(|| {
                CoreError::new(
                    ErrorCode::NotFound,
                    format!("message {message_id:?} does not exist"),
                )
            })?;
        Ok((
            SessionKey::new(tenant_key.tenant, location.session_id),
            location.seq,
        ))
    }
}
