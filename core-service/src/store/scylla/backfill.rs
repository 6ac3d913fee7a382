//! Data a migration moves, beyond its DDL.
//!
//! Migration 0002 scopes chat idempotency by sender: it creates
//! `chat_by_sender_ref`, and this copies every row of the old
//! `chat_by_client_ref` into it under its message's sender. Rows are
//! upserts, so a run interrupted half-way is finished by the next; the old
//! table is left in place, no longer written or read.

use futures_util::StreamExt;
use scylla::client::session::Session;
use scylla::statement::Statement;

use super::config::ScyllaConfig;
use super::rows::bucket_of;
use super::schema::SchemaError;

/// The migration after whose DDL [`sender_refs`] runs, by its label.
pub(crate) const SENDER_REFS_MIGRATION: &str = "0002_chat_by_sender_ref";

/// Rows read per page of the old index.
const PAGE_SIZE: i32 = 1000;

/// Copies the client_ref index into the per-sender index.
pub(crate) async fn sender_refs(
    session: &Session,
    config: &ScyllaConfig,
) -> Result<(), SchemaError> {
    let ks = config.keyspace.as_str();
    let tables = &config.tables;
    let database = |err: &dyn std::fmt::Display| SchemaError::Database(format!("backfill: {err}"));
    let mut sender = session
        .prepare(format!(
            "SELECT sender_id FROM {ks}.{} WHERE tenant = ? AND session_id = ? AND bucket = ? \
             AND seq = ?",
            tables.chat_messages
        ))
        .await
        .map_err(|err| database(&err))?;
    sender.set_consistency(config.consistency);
    let mut insert = session
        .prepare(format!(
            "INSERT INTO {ks}.{} (tenant, session_id, sender_id, client_ref, seq) \
             VALUES (?, ?, ?, ?, ?)",
            tables.chat_by_sender_ref
        ))
        .await
        .map_err(|err| database(&err))?;
    insert.set_consistency(config.consistency);
    let mut scan = Statement::new(format!(
        "SELECT tenant, session_id, client_ref, seq FROM {ks}.{}",
        tables.chat_by_client_ref
    ));
    scan.set_page_size(PAGE_SIZE);
    scan.set_consistency(config.consistency);
    let mut rows = session
        .query_iter(scan, ())
        .await
        .map_err(|err| database(&err))?
        .rows_stream::<(String, String, String, Option<i64>)>()
        .map_err(|err| database(&err))?;
    let mut moved = 0_u64;
    while let Some(row) = rows.next().await {
        let (tenant, session_id, client_ref, seq) = row.map_err(|err| database(&err))?;
        let Some(seq) = seq else { continue };
        let bucket = u64::try_from(seq).map(bucket_of).unwrap_or(0);
        let found = session
            .execute_unpaged(&sender, (&tenant, &session_id, bucket, seq))
            .await
            .map_err(|err| database(&err))?
            .into_rows_result()
            .map_err(|err| database(&err))?
            .maybe_first_row::<(Option<String>,)>()
            .map_err(|err| database(&err))?;
        // An index row without its message cannot dedupe anything.
        let Some((sender_id,)) = found else { continue };
        session
            .execute_unpaged(
                &insert,
                (
                    &tenant,
                    &session_id,
                    sender_id.unwrap_or_default(),
                    &client_ref,
                    seq,
                ),
            )
            .await
            .map_err(|err| database(&err))?;
        moved += 1;
    }
    tracing::info!(
        moved,
        "chat index copied into {}",
        tables.chat_by_sender_ref
    );
    Ok(())
}
