//! The connection registry on CQL (migration 0004): the row by connection,
//! and lookup rows by session and by user holding only the key.
//!
//! A put writes the row and its lookup rows whole `USING TTL` (until the
//! row's `expires_at`, plus slack) in one logged batch; a delete removes the
//! three in one logged batch. A lookup read fetches the rows it points at
//! (concurrently, one partition each) and keeps those that still name that
//! session or user: a lookup row left by a connection re-registered
//! elsewhere is ignored, and its TTL collects it. Readers filter by
//! `expires_at` with their own clock.

use futures_util::future::try_join_all;
use futures_util::StreamExt;
use meno_proto::RegisteredConnection;
use scylla::client::session::Session;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;

use super::config::ScyllaConfig;
use super::error::{corrupt, StoreFailure};
use super::rows::connection_ttl_secs;
use super::Connected;
use crate::clock::{Clock, SystemClock};
use crate::store::{RegistryLookup, StoreError};

/// How long a row outlives its `expires_at` before the TTL collects it.
const REGISTRY_TTL_SLACK_SECS: i64 = 60;

const COLUMNS: &str = "tenant, connection_id, user_id, session_id, client, dialect, bridge_id, \
                       ip, user_agent, status, created_at, last_activity, disconnected_at, \
                       expires_at";

/// The registry's prepared statements.
#[derive(Debug)]
pub(crate) struct RegistryStatements {
    insert: PreparedStatement,
    select: PreparedStatement,
    delete: PreparedStatement,
    insert_by_session: PreparedStatement,
    select_by_session: PreparedStatement,
    delete_by_session: PreparedStatement,
    insert_by_user: PreparedStatement,
    select_by_user: PreparedStatement,
    delete_by_user: PreparedStatement,
}

impl RegistryStatements {
    pub(crate) async fn prepare(
        session: &Session,
        config: &ScyllaConfig,
    ) -> Result<Self, StoreFailure> {
        let ks = &config.keyspace;
        let t = &config.tables;
        let prepare = |cql: String| async move {
            let mut statement = session.prepare(cql).await?;
            statement.set_is_idempotent(true);
            Ok::<_, StoreFailure>(statement)
        };
        let (main, by_session, by_user) = (
            &t.connection_registry,
            &t.connection_registry_by_session,
            &t.connection_registry_by_user,
        );
        Ok(Self {
            insert: prepare(format!(
                "INSERT INTO {ks}.{main} ({COLUMNS}) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?"
            ))
            .await?,
            select: prepare(format!(
                "SELECT {COLUMNS} FROM {ks}.{main} WHERE tenant = ? AND connection_id = ?"
            ))
            .await?,
            delete: prepare(format!(
                "DELETE FROM {ks}.{main} WHERE tenant = ? AND connection_id = ?"
            ))
            .await?,
            insert_by_session: prepare(format!(
                "INSERT INTO {ks}.{by_session} (tenant, session_id, connection_id) \
                 VALUES (?, ?, ?) USING TTL ?"
            ))
            .await?,
            select_by_session: prepare(format!(
                "SELECT connection_id FROM {ks}.{by_session} WHERE tenant = ? AND session_id = ?"
            ))
            .await?,
            delete_by_session: prepare(format!(
                "DELETE FROM {ks}.{by_session} WHERE tenant = ? AND session_id = ? \
                 AND connection_id = ?"
            ))
            .await?,
            insert_by_user: prepare(format!(
                "INSERT INTO {ks}.{by_user} (tenant, user_id, connection_id) \
                 VALUES (?, ?, ?) USING TTL ?"
            ))
            .await?,
            select_by_user: prepare(format!(
                "SELECT connection_id FROM {ks}.{by_user} WHERE tenant = ? AND user_id = ?"
            ))
            .await?,
            delete_by_user: prepare(format!(
                "DELETE FROM {ks}.{by_user} WHERE tenant = ? AND user_id = ? \
                 AND connection_id = ?"
            ))
            .await?,
        })
    }
}

type BatchRow<'a> = Box<dyn scylla::serialize::row::SerializeRow + Send + Sync + 'a>;

/// A row of `select`.
type Row = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<i32>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i32>,
    Option<CqlTimestamp>,
    Option<CqlTimestamp>,
    Option<CqlTimestamp>,
    Option<CqlTimestamp>,
);

fn from_row(row: Row) -> RegisteredConnection {
    let (
        tenant,
        connection_id,
        user_id,
        session_id,
        client,
        dialect,
        bridge_id,
        ip,
        user_agent,
        status,
        created_at,
        last_activity,
        disconnected_at,
        expires_at,
    ) = row;
    RegisteredConnection {
        tenant,
        connection_id,
        user_id: user_id.unwrap_or_default(),
        session_id: session_id.unwrap_or_default(),
        client: client.unwrap_or_default(),
        dialect: dialect.unwrap_or_default(),
        bridge_id: bridge_id.unwrap_or_default(),
        ip: ip.unwrap_or_default(),
        user_agent: user_agent.unwrap_or_default(),
        status: status.unwrap_or_default(),
        created_at_ms: created_at.map_or(0, |at| at.0),
        last_activity_ms: last_activity.map_or(0, |at| at.0),
        disconnected_at_ms: disconnected_at.map_or(0, |at| at.0),
        expires_at_ms: expires_at.map_or(0, |at| at.0),
    }
}

/// Writes each row and its lookup rows whole, with the row's TTL.
pub(crate) async fn put(c: &Connected, rows: &[RegisteredConnection]) -> Result<(), StoreError> {
    let now = SystemClock.now_ms();
    let s = &c.statements.registry;
    let writes = rows.iter().map(|row| {
        let ttl = connection_ttl_secs(row.expires_at_ms, now, REGISTRY_TTL_SLACK_SECS);
        let mut batch = Batch::new(BatchType::Logged);
        let mut values: Vec<BatchRow<'_>> = Vec::with_capacity(3);
        batch.append_statement(s.insert.clone());
        values.push(Box::new((
            row.tenant.as_str(),
            row.connection_id.as_str(),
            row.user_id.as_str(),
            row.session_id.as_str(),
            row.client,
            row.dialect.as_str(),
            row.bridge_id.as_str(),
            row.ip.as_str(),
            row.user_agent.as_str(),
            row.status,
            CqlTimestamp(row.created_at_ms),
            CqlTimestamp(row.last_activity_ms),
            CqlTimestamp(row.disconnected_at_ms),
            CqlTimestamp(row.expires_at_ms),
            ttl,
        )));
        if !row.session_id.is_empty() {
            batch.append_statement(s.insert_by_session.clone());
            values.push(Box::new((
                row.tenant.as_str(),
                row.session_id.as_str(),
                row.connection_id.as_str(),
                ttl,
            )));
        }
        batch.append_statement(s.insert_by_user.clone());
        values.push(Box::new((
            row.tenant.as_str(),
            row.user_id.as_str(),
            row.connection_id.as_str(),
            ttl,
        )));
        run(c, batch, values)
    });
    try_join_all(writes).await?;
    Ok(())
}

/// Deletes each row and its lookup rows.
pub(crate) async fn delete(c: &Connected, rows: &[RegisteredConnection]) -> Result<(), StoreError> {
    let s = &c.statements.registry;
    let deletes = rows.iter().map(|row| {
        let mut batch = Batch::new(BatchType::Logged);
        let mut values: Vec<BatchRow<'_>> = Vec::with_capacity(3);
        let (tenant, connection_id) = (row.tenant.as_str(), row.connection_id.as_str());
        batch.append_statement(s.delete.clone());
        values.push(Box::new((tenant, connection_id)));
        if !row.session_id.is_empty() {
            batch.append_statement(s.delete_by_session.clone());
            values.push(Box::new((tenant, row.session_id.as_str(), connection_id)));
        }
        batch.append_statement(s.delete_by_user.clone());
        values.push(Box::new((tenant, row.user_id.as_str(), connection_id)));
        run(c, batch, values)
    });
    try_join_all(deletes).await?;
    Ok(())
}

async fn run(c: &Connected, mut batch: Batch, values: Vec<BatchRow<'_>>) -> Result<(), StoreError> {
    batch.set_is_idempotent(true);
    c.session.batch(&batch, values).await?;
    Ok(())
}

/// The stored rows of `connection_ids` (one partition each, concurrently).
pub(crate) async fn get(
    c: &Connected,
    tenant: &str,
    connection_ids: &[String],
) -> Result<Vec<RegisteredConnection>, StoreError> {
    let reads = connection_ids.iter().map(|connection_id| async move {
        let what = || format!("registry row {tenant}/{connection_id}");
        let result = c
            .session
            .execute_unpaged(&c.statements.registry.select, (tenant, connection_id))
            .await?;
        let rows = result
            .into_rows_result()
            .map_err(|err| corrupt(&what(), err))?;
        let row = rows
            .maybe_first_row::<Row>()
            .map_err(|err| corrupt(&what(), err))?;
        Ok::<_, StoreError>(row.map(from_row))
    });
    Ok(try_join_all(reads).await?.into_iter().flatten().collect())
}

/// The rows a session's or a user's lookup rows point at, if they still
/// name it.
pub(crate) async fn get_by(
    c: &Connected,
    tenant: &str,
    lookup: &RegistryLookup,
) -> Result<Vec<RegisteredConnection>, StoreError> {
    let (statement, owner) = match lookup {
        RegistryLookup::Session(session_id) => {
            (&c.statements.registry.select_by_session, session_id)
        }
        RegistryLookup::User(user_id) => (&c.statements.registry.select_by_user, user_id),
    };
    let what = || format!("registry lookup {tenant}/{lookup:?}");
    let pager = c
        .session
        .execute_iter(statement.clone(), (tenant, owner.as_str()))
        .await?;
    let mut ids = pager
        .rows_stream::<(String,)>()
        .map_err(|err| corrupt(&what(), err))?;
    let mut connection_ids = Vec::new();
    while let Some(row) = ids.next().await {
        let (connection_id,) =
            row.map_err(|err| StoreError::Unavailable(format!("{}: {err}", what())))?;
        connection_ids.push(connection_id);
    }
    let rows = get(c, tenant, &connection_ids).await?;
    Ok(rows
        .into_iter()
        .filter(|row| match lookup {
            RegistryLookup::Session(session_id) => &row.session_id == session_id,
            RegistryLookup::User(user_id) => &row.user_id == user_id,
        })
        .collect())
}
