//! The connection registry (issue 16; seeds 001 and 003): one row per
//! `(tenant, connection_id)` with the fields of seed 003's `ConnectionInfo`,
//! kept in the store for a TTL (`--connection-registry-ttl`, 10 min by
//! default) that the bridges extend with batched `Touch` calls while the
//! socket lives, and marked DISCONNECTED at its close (kept until the TTL
//! runs out, as seed 003's table keeps it).
//!
//! The registry is not session state: its writes go straight to the store,
//! one call per connect, close or batched refresh, never through a session
//! actor. Its rules (what a register, a touch, a close does to a row, and
//! which rows are listed) are the pure functions of `rules`, decided at the
//! clock's `now`; the store only keeps rows whole and may keep expired ones
//! for a while, so every read filters by time here.
//!
//! A row and the session actors' connection rows are independent: the
//! bridge registers here what it also joins there, and a row found gone by
//! directed delivery is pruned here only.

use std::sync::Arc;
use std::time::Duration;

use meno_proto::RegisteredConnection;

use crate::clock::Clock;
use crate::error::CoreError;
use crate::store::{RegistryLookup, Store};

mod rules;

pub(crate) use rules::is_gone;

/// Keeps the registry's rows in the store by its rules.
#[derive(Debug, Clone)]
pub struct ConnectionRegistry {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    ttl_ms: i64,
}

impl ConnectionRegistry {
    /// A registry in `store`, whose rows live `ttl` unless touched.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, ttl: Duration) -> Self {
        Self {
            store,
            clock,
            ttl_ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// The registry's time.
    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Writes a (validated) connection CONNECTED, expiring a TTL from now;
    /// returns the row as stored.
    pub async fn register(
        &self,
        row: RegisteredConnection,
    ) -> Result<RegisteredConnection, CoreError> {
        let row = rules::registered(row, self.now_ms(), self.ttl_ms);
        self.store
            .put_registered(std::slice::from_ref(&row))
            .await?;
        Ok(row)
    }

    /// Refreshes the CONNECTED, unexpired rows among `connection_ids`: last
    /// activity and TTL. Rows that are gone or closed are left as they are
    /// (a touch never revives one). Returns how many were refreshed.
    pub async fn touch(
        &self,
        tenant: &str,
        connection_ids: &[String],
        last_activity_ms: i64,
    ) -> Result<usize, CoreError> {
        let tenant = rules::tenant(tenant);
        let now = self.now_ms();
        let rows: Vec<RegisteredConnection> = self
            .store
            .registered(&tenant, connection_ids)
            .await?
            .into_iter()
            .filter_map(|row| rules::touched(row, now, last_activity_ms, self.ttl_ms))
            .collect();
        if !rows.is_empty() {
            self.store.put_registered(&rows).await?;
        }
        Ok(rows.len())
    }

    /// Marks a connection DISCONNECTED (kept until its TTL runs out). A
    /// connection unknown, expired or already closed is left alone.
    pub async fn disconnect(&self, tenant: &str, connection_id: &str) -> Result<(), CoreError> {
        let tenant = rules::tenant(tenant);
        let now = self.now_ms();
        let rows = self
            .store
            .registered(&tenant, &[connection_id.to_owned()])
            .await?;
        let closed: Vec<RegisteredConnection> = rows
            .into_iter()
            .filter_map(|row| rules::disconnected(row, now))
            .collect();
        if !closed.is_empty() {
            self.store.put_registered(&closed).await?;
        }
        Ok(())
    }

    /// The unexpired rows of a session or a user (CONNECTED or not), oldest
    /// first.
    pub async fn list(
        &self,
        tenant: &str,
        lookup: &RegistryLookup,
    ) -> Result<Vec<RegisteredConnection>, CoreError> {
        let tenant = rules::tenant(tenant);
        let rows = self.store.registered_by(&tenant, lookup).await?;
        Ok(rules::listed(rows, self.now_ms()))
    }

    /// Every stored row of a user, expired or not (directed delivery prunes
    /// the gone ones).
    pub(crate) async fn rows_of_user(
        &self,
        tenant: &str,
        user_id: &str,
    ) -> Result<Vec<RegisteredConnection>, CoreError> {
        let lookup = RegistryLookup::User(user_id.to_owned());
        Ok(self.store.registered_by(tenant, &lookup).await?)
    }

    /// The stored row of a connection, expired or not.
    pub(crate) async fn row(
        &self,
        tenant: &str,
        connection_id: &str,
    ) -> Result<Option<RegisteredConnection>, CoreError> {
        let rows = self
            .store
            .registered(tenant, &[connection_id.to_owned()])
            .await?;
        Ok(rows.into_iter().next())
    }

    /// Deletes rows found gone.
    pub(crate) async fn prune(&self, rows: &[RegisteredConnection]) -> Result<(), CoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        crate::metrics::REGISTRY_PRUNED.inc_by(rows.len() as u64);
        Ok(self.store.delete_registered(rows).await?)
    }
}
