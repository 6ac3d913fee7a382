//! NexusChat's `ACK`: the sender read up to a message. The core finds the
//! message's room in the sender's tenant, refuses it unless this connection
//! is in that room, moves the read position forward (never back), stores it
//! and tells the room (`READ`); the sender gets nothing of its own.

use meno_common::error::CoreError;
use meno_proto::MarkReadRequest;

use super::{Caller, Outcome};

pub(super) async fn mark(
    caller: &Caller,
    message_id: String,
    trace_id: Option<&str>,
) -> Result<Outcome, CoreError> {
    // No session id: the message names its room.
    let request = caller.core().session_request(
        &caller.key,
        MarkReadRequest {
            session: Some(meno_proto::SessionRef {
                tenant: caller.key.tenant.clone(),
                session_id: String::new(),
            }),
            actor: caller.traced_actor(trace_id),
            message_id,
        },
    );
    caller
        .core()
        .reads
        .clone()
        .mark_read(request)
        .await
        .map_err(|status| CoreError::from_status(&status))?;
    Ok(None)
}
