//! The assistant dialect's connect query (seed 003): `?userId=…[&tenant=…]`
//! with auth off, `?token=…` (or a `bearer.` subprotocol) with auth on.

use std::borrow::Cow;

use super::{id, ConnectError};

/// An assistant connect query that parsed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AssistantConnect {
    /// `userId`.
    pub user_id: Option<String>,
    /// `tenant`.
    pub tenant: Option<String>,
    /// `token`.
    pub token: Option<String>,
}

/// Validates every field present.
pub fn parse_assistant_connect(query: Option<&str>) -> Result<AssistantConnect, ConnectError> {
    let query = query.unwrap_or_default();
    let query = query.strip_prefix('?').unwrap_or(query);
    let mut user_id: Option<Cow<'_, str>> = None;
    let mut tenant: Option<Cow<'_, str>> = None;
    let mut token: Option<Cow<'_, str>> = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let (field, slot) = match key.as_ref() {
            "userId" => ("userId", &mut user_id),
            "tenant" => ("tenant", &mut tenant),
            "token" => ("token", &mut token),
            _ => continue,
        };
        if slot.is_some() {
            return Err(ConnectError::Duplicate { field });
        }
        *slot = Some(value);
    }
    Ok(AssistantConnect {
        user_id: user_id.map(|value| id("userId", Some(value))).transpose()?,
        tenant: tenant.map(|value| id("tenant", Some(value))).transpose()?,
        token: token.map(Cow::into_owned),
    })
}
