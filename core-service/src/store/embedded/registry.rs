//! The connection registry in the embedded store: rows by `(tenant,
//! connection_id)` in `registry`, lookup entries in `registry_by_session`
//! and `registry_by_user`. A put or a delete is one write transaction of its
//! own (per connect, close or batched refresh, so group commit would buy
//! little); it waits for the group-commit writer's transaction, never the
//! other way round for long.
//!
//! A put removes the lookup entries of the row it replaces, in the same
//! transaction, so the lookups never point at a row that moved.

use meno_proto::RegisteredConnection;
use prost::Message as _;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::store::rows::decode_registered;
use crate::store::{RegistryLookup, StoreError};

pub(super) const REGISTRY: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("registry");
pub(super) const REGISTRY_BY_SESSION: TableDefinition<(&str, &str, &str), ()> =
    TableDefinition::new("registry_by_session");
pub(super) const REGISTRY_BY_USER: TableDefinition<(&str, &str, &str), ()> =
    TableDefinition::new("registry_by_user");

/// Creates the tables (at open).
pub(super) fn create_tables(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(REGISTRY)?;
    txn.open_table(REGISTRY_BY_SESSION)?;
    txn.open_table(REGISTRY_BY_USER)?;
    Ok(())
}

/// Writes `rows` whole (or, with `delete`, removes them) with their lookup
/// entries, durably, in one transaction.
pub(super) fn write(
    db: &Database,
    rows: &[RegisteredConnection],
    delete: bool,
) -> Result<(), StoreError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    {
        let mut registry = txn.open_table(REGISTRY)?;
        let mut by_session = txn.open_table(REGISTRY_BY_SESSION)?;
        let mut by_user = txn.open_table(REGISTRY_BY_USER)?;
        for row in rows {
            let (tenant, connection_id) = (row.tenant.as_str(), row.connection_id.as_str());
            let previous = match registry.get((tenant, connection_id))? {
                Some(bytes) => Some(decode_registered(tenant, connection_id, bytes.value())?),
                None => None,
            };
            if let Some(previous) = previous {
                by_session.remove((tenant, previous.session_id.as_str(), connection_id))?;
                by_user.remove((tenant, previous.user_id.as_str(), connection_id))?;
            }
            if delete {
                registry.remove((tenant, connection_id))?;
                continue;
            }
            registry.insert((tenant, connection_id), row.encode_to_vec().as_slice())?;
            if !row.session_id.is_empty() {
                by_session.insert((tenant, row.session_id.as_str(), connection_id), ())?;
            }
            by_user.insert((tenant, row.user_id.as_str(), connection_id), ())?;
        }
    }
    txn.commit()?;
    Ok(())
}

/// The stored rows of `connection_ids`.
pub(super) fn get(
    db: &Database,
    tenant: &str,
    connection_ids: &[String],
) -> Result<Vec<RegisteredConnection>, StoreError> {
    let txn = db.begin_read()?;
    let registry = txn.open_table(REGISTRY)?;
    let mut found = Vec::new();
    for connection_id in connection_ids {
        if let Some(bytes) = registry.get((tenant, connection_id.as_str()))? {
            found.push(decode_registered(tenant, connection_id, bytes.value())?);
        }
    }
    Ok(found)
}

/// The rows a session's or a user's lookup entries point at.
pub(super) fn get_by(
    db: &Database,
    tenant: &str,
    lookup: &RegistryLookup,
) -> Result<Vec<RegisteredConnection>, StoreError> {
    let txn = db.begin_read()?;
    let (index, owner) = match lookup {
        RegistryLookup::Session(session_id) => (txn.open_table(REGISTRY_BY_SESSION)?, session_id),
        RegistryLookup::User(user_id) => (txn.open_table(REGISTRY_BY_USER)?, user_id),
    };
    let registry = txn.open_table(REGISTRY)?;
    let mut found = Vec::new();
    for entry in index.range((tenant, owner.as_str(), "")..)? {
        let (entry_key, _) = entry?;
        let (entry_tenant, entry_owner, connection_id) = entry_key.value();
        if (entry_tenant, entry_owner) != (tenant, owner.as_str()) {
            break;
        }
        if let Some(bytes) = registry.get((tenant, connection_id))? {
            found.push(decode_registered(tenant, connection_id, bytes.value())?);
        }
    }
    Ok(found)
}
