//! The connection registry in the fjall store: rows by `(tenant,
//! connection_id)` in `registry`, lookup entries in `registry_by_session` and
//! `registry_by_user`. Each row's put or delete is one atomic batch with its
//! lookup entries (the old row's entries removed in it, so a lookup never
//! points at a row that moved); a call's batches are made durable together
//! before it returns. Writes are serialized by a lock and read live.

use fjall::PersistMode;
use meno_proto::RegisteredConnection;
use prost::Message as _;

use super::keys::{trailing_text, Key};
use super::Shared;
use crate::store::rows::decode_registered;
use crate::store::{RegistryLookup, StoreError};

/// Writes `rows` whole (or, with `delete`, removes them) with their lookup
/// entries, durably.
pub(super) fn write(
    shared: &Shared,
    rows: &[RegisteredConnection],
    delete: bool,
) -> Result<(), StoreError> {
    let spaces = &shared.spaces;
    let _serialized = shared
        .registry_writes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for row in rows {
        let (tenant, connection_id) = (row.tenant.as_str(), row.connection_id.as_str());
        let row_key = Key::of(&[tenant, connection_id])?.into_bytes();
        let by_session = Key::of(&[tenant, &row.session_id, connection_id])?.into_bytes();
        let by_user = Key::of(&[tenant, &row.user_id, connection_id])?.into_bytes();
        let mut batch = shared.db.batch();
        // The old row's lookups go, unless the new row keeps them: two writes
        // of one key in a batch have no order, so each key is written once.
        if let Some(bytes) = spaces.registry.get(&row_key)? {
            let previous = decode_registered(tenant, connection_id, &bytes)?;
            let old_session = Key::of(&[tenant, &previous.session_id, connection_id])?.into_bytes();
            let old_user = Key::of(&[tenant, &previous.user_id, connection_id])?.into_bytes();
            let kept_session = !delete && !row.session_id.is_empty() && old_session == by_session;
            if !kept_session {
                batch.remove(&spaces.registry_by_session, old_session);
            }
            if delete || old_user != by_user {
                batch.remove(&spaces.registry_by_user, old_user);
            }
        }
        if delete {
            batch.remove(&spaces.registry, row_key);
        } else {
            batch.insert(&spaces.registry, row_key, row.encode_to_vec());
            if !row.session_id.is_empty() {
                batch.insert(&spaces.registry_by_session, by_session, []);
            }
            batch.insert(&spaces.registry_by_user, by_user, []);
        }
        batch.commit()?;
    }
    shared.db.persist(PersistMode::SyncData)?;
    Ok(())
}

/// The stored rows of `connection_ids`.
pub(super) fn get(
    shared: &Shared,
    tenant: &str,
    connection_ids: &[String],
) -> Result<Vec<RegisteredConnection>, StoreError> {
    let mut found = Vec::new();
    for connection_id in connection_ids {
        let row_key = Key::of(&[tenant, connection_id])?;
        if let Some(bytes) = shared.spaces.registry.get(&row_key)? {
            found.push(decode_registered(tenant, connection_id, &bytes)?);
        }
    }
    Ok(found)
}

/// The rows a session's or a user's lookup entries point at.
pub(super) fn get_by(
    shared: &Shared,
    tenant: &str,
    lookup: &RegistryLookup,
) -> Result<Vec<RegisteredConnection>, StoreError> {
    let spaces = &shared.spaces;
    let (index, owner) = match lookup {
        RegistryLookup::Session(session_id) => (&spaces.registry_by_session, session_id),
        RegistryLookup::User(user_id) => (&spaces.registry_by_user, user_id),
    };
    let prefix = Key::of(&[tenant, owner])?;
    let mut found = Vec::new();
    for entry in index.prefix(&prefix) {
        let entry_key = entry.key()?;
        let Some(connection_id) = trailing_text(&entry_key, prefix.as_bytes()) else {
            return Err(StoreError::Corrupt(format!(
                "registry lookup entry of {tenant}/{owner} is malformed"
            )));
        };
        let row_key = Key::of(&[tenant, connection_id])?;
        if let Some(bytes) = spaces.registry.get(&row_key)? {
            found.push(decode_registered(tenant, connection_id, &bytes)?);
        }
    }
    Ok(found)
}
