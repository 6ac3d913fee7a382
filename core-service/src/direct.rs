//! Directed delivery for backends (issue 16, seed 001's MessageSender):
//! a message to one connection, or to every connection of a user, across
//! sessions and bridges.
//!
//! The registry says where a user's connections are; the user's actor does
//! the delivery (`UserEvent.direct` to every bridge interested in the user,
//! in the order the actor gets them), so a directed message never touches a
//! session actor. Before delivering, each registry row is judged: a row that
//! is expired, DISCONNECTED, or held by a bridge with no live user stream is
//! **gone** (seed 001's 410 Gone) and is deleted from the registry without
//! failing the send to the others.
//!
//! What the caller learns (`SendResult`):
//! - `SendToConnection`: `reached` is 1 when the row is live (the event
//!   names the connection, and the bridge holding it writes it to that one
//!   socket), else 0 and `pruned` names the connection: a row found gone is
//!   deleted, and a connection with no row at all is reported the same way
//!   (it is gone; there was nothing to delete).
//! - `SendToUser`: `reached` is the number of the user's live rows; one
//!   event with an empty `connection_id` goes to the user's actor (every
//!   interested bridge writes it to all of the user's sockets), and only
//!   when at least one row is live. `pruned` lists the gone rows, deleted.
//!
//! A live row is a promise as good as the bridge's stream: a bridge whose
//! stream ends after the check loses the message, as a socket closing
//! mid-send would.

use meno_proto::{DirectMessage, RegisteredConnection, SendResult};

use crate::connections::{is_gone, ConnectionRegistry};
use crate::error::CoreError;
use crate::user::{UserKey, UserRegistry};

/// Sends backends' messages to connections and users.
#[derive(Debug, Clone)]
pub(crate) struct DirectDelivery {
    connections: ConnectionRegistry,
    users: UserRegistry,
}

impl DirectDelivery {
    pub(crate) fn new(connections: ConnectionRegistry, users: UserRegistry) -> Self {
        Self { connections, users }
    }

    /// Splits rows into the live ones and the gone ones (see the module doc).
    fn judge(
        &self,
        rows: Vec<RegisteredConnection>,
    ) -> (Vec<RegisteredConnection>, Vec<RegisteredConnection>) {
        let now = self.connections.now_ms();
        rows.into_iter()
            .partition(|row| !is_gone(row, now, |bridge| self.users.bridge_is_live(bridge)))
    }

    /// Sends `message` to one connection of `tenant` (validated).
    pub(crate) async fn to_connection(
        &self,
        tenant: &str,
        connection_id: &str,
        trace_id: &str,
        message: DirectMessage,
    ) -> Result<SendResult, CoreError> {
        let Some(row) = self.connections.row(tenant, connection_id).await? else {
            return Ok(SendResult {
                reached: 0,
                pruned: vec![connection_id.to_owned()],
            });
        };
        let (live, gone) = self.judge(vec![row]);
        self.connections.prune(&gone).await?;
        if let Some(row) = live.first() {
            let user = UserKey::new(tenant, row.user_id.clone());
            self.users.direct(&user, connection_id, trace_id, message);
        }
        Ok(SendResult {
            reached: u32::try_from(live.len()).unwrap_or(u32::MAX),
            pruned: gone.into_iter().map(|row| row.connection_id).collect(),
        })
    }

    /// Sends `message` to every live connection of `user` (validated).
    pub(crate) async fn to_user(
        &self,
        user: &UserKey,
        trace_id: &str,
        message: DirectMessage,
    ) -> Result<SendResult, CoreError> {
        let rows = self
            .connections
            .rows_of_user(&user.tenant, &user.user_id)
            .await?;
        let (live, gone) = self.judge(rows);
        self.connections.prune(&gone).await?;
        if !live.is_empty() {
            self.users.direct(user, "", trace_id, message);
        }
        let mut pruned: Vec<String> = gone.into_iter().map(|row| row.connection_id).collect();
        pruned.sort_unstable();
        Ok(SendResult {
            reached: u32::try_from(live.len()).unwrap_or(u32::MAX),
            pruned,
        })
    }

    /// Hands a backend's reply to the user's actor, for one connection,
    /// with no registry lookup (the backend names the user).
    pub(crate) fn reply(
        &self,
        user: &UserKey,
        connection_id: &str,
        trace_id: &str,
        message: DirectMessage,
    ) {
        self.users.direct(user, connection_id, trace_id, message);
    }
}
