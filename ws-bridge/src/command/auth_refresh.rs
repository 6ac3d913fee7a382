//! `system.auth.refresh`: a new token must be valid and name the same
//! participant, tenant and session scope as the connection. The socket
//! moves its expiry when the answer is [`Reply::AuthRefreshed`].

use meno_common::error::CoreError;
use meno_common::key::DEFAULT_TENANT;

use super::{Caller, Outcome};
use crate::dialect::Reply;

pub(super) async fn run(caller: &Caller, token: &str) -> Result<Outcome, CoreError> {
    let (Some(authenticator), Some(current)) = (caller.authenticator(), &caller.identity) else {
        return Err(CoreError::invalid("authentication is off on this server"));
    };
    let renewed = authenticator
        .verify(token)
        .await
        .map_err(|err| CoreError::denied(err.to_string()))?;
    let tenant = renewed.tenant.as_deref().unwrap_or(DEFAULT_TENANT);
    if renewed.participant_id != current.participant_id
        || tenant != caller.key.tenant
        || !renewed.sessions.allows(&caller.key.session_id)
    {
        return Err(CoreError::denied(
            "the new token is for another participant, tenant or session",
        ));
    }
    let Some(expires_at_ms) = renewed.expires_at_ms else {
        return Err(CoreError::invalid("the new token has no exp"));
    };
    Ok(Some(Reply::AuthRefreshed { expires_at_ms }))
}
