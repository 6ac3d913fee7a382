//! `control.lease.set` and `control.lease.release`: the control lease. The
//! rules (who may take it, for how long) are the core's.

use meno_common::error::CoreError;
use meno_proto::{LeaseReleaseRequest, LeaseSetRequest};

use super::{Caller, Outcome};

pub(super) async fn set(
    caller: &Caller,
    lease_id: Option<String>,
    step_index: i64,
    lease_duration_ms: Option<i64>,
) -> Result<Outcome, CoreError> {
    let request = caller.core().session_request(
        &caller.key,
        LeaseSetRequest {
            session: caller.session(),
            actor: caller.actor(),
            lease_id_hint: lease_id.unwrap_or_default(),
            step_index,
            duration_ms: lease_duration_ms.unwrap_or(0),
        },
    );
    caller
        .core()
        .lease
        .clone()
        .set(request)
        .await
        .map_err(|status| CoreError::from_status(&status))?;
    Ok(None)
}

pub(super) async fn release(
    caller: &Caller,
    lease_id: Option<String>,
) -> Result<Outcome, CoreError> {
    let request = caller.core().session_request(
        &caller.key,
        LeaseReleaseRequest {
            session: caller.session(),
            actor: caller.actor(),
            lease_id: lease_id.unwrap_or_default(),
        },
    );
    caller
        .core()
        .lease
        .clone()
        .release(request)
        .await
        .map_err(|status| CoreError::from_status(&status))?;
    Ok(None)
}
