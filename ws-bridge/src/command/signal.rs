//! NexusChat's `SIGNAL_SDP`, `SIGNAL_ICE` and `CALL_END`: relayed by the core
//! to every connection of the target user, whichever bridge holds them. The
//! sender hears back only when the target is busy (`CALL_REJECTED`) or the
//! relay is refused (`ERROR`: `NotFound` for a user with no connection,
//! `PermissionDenied` for one who shares no room with the sender).

use meno_common::error::CoreError;
use meno_proto::{signal_request, SignalRequest, UserRef};

use super::{Caller, Outcome};
use crate::dialect::Reply;

pub(super) async fn relay(
    caller: &Caller,
    target_id: String,
    signal: signal_request::Kind,
    trace_id: Option<&str>,
) -> Result<Outcome, CoreError> {
    let request = caller.core().request(SignalRequest {
        from: Some(UserRef {
            tenant: caller.key.tenant.clone(),
            user_id: caller.connection.participant_id.clone(),
        }),
        connection_id: caller.connection.connection_id.clone(),
        target_id,
        trace_id: trace_id.unwrap_or_default().to_owned(),
        kind: Some(signal),
    });
    let response = caller
        .core()
        .users
        .clone()
        .signal(request)
        .await
        .map_err(|status| CoreError::from_status(&status))?
        .into_inner();
    Ok(response.rejected.map(Reply::CallRejected))
}
