//! The keys every service shares: a session is named by its tenant and id.

/// The key of everything session-scoped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey {
    /// Tenant; `"default"` unless authentication says otherwise.
    pub tenant: String,
    /// The canonical session id (seed 000 `sessionId`).
    pub session_id: String,
}

impl SessionKey {
    /// A key for `session_id` in `tenant` (an empty tenant means `"default"`).
    pub fn new(tenant: impl Into<String>, session_id: impl Into<String>) -> Self {
        let tenant = tenant.into();
        Self {
            tenant: if tenant.is_empty() {
                DEFAULT_TENANT.to_owned()
            } else {
                tenant
            },
            session_id: session_id.into(),
        }
    }
}

impl std::fmt::Display for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.tenant, self.session_id)
    }
}

/// The tenant of requests that name none.
pub const DEFAULT_TENANT: &str = "default";
