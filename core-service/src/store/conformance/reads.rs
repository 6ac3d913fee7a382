//! Checks of read positions (upserted whole, loaded with the session, kept
//! apart by tenant), of the message-id index (written with its message and
//! only then, scoped by tenant) and of `session_exists`.

use super::fixtures::OrFail;
use super::fixtures::{by_user, key, load, message_with_id, read_position, seq_mark, write};
use super::CheckResult;
use crate::store::{MessageLocation, SessionKey, SessionWrite, Store};

fn reads(positions: Vec<meno_proto::ReadPosition>) -> SessionWrite {
    SessionWrite {
        reads: positions,
        ..SessionWrite::default()
    }
}

/// Positions come back with the session; a later write of a user's position
/// replaces it whole, and other users' positions stay.
pub async fn read_positions_are_upserted_and_loaded(
    store: &dyn Store,
    prefix: &str,
) -> CheckResult {
    let key = key(prefix, "reads");
    let ann = read_position("ann", "m-3", 3);
    let bob = read_position("bob", "m-5", 5);
    write(store, &key, reads(vec![ann.clone(), bob.clone()])).await?;
    ensure_eq!(
        by_user(load(store, &key).await?.reads),
        vec![ann, bob.clone()],
        "positions after the first write"
    );
    let ann_later = read_position("ann", "m-9", 9);
    write(store, &key, reads(vec![ann_later.clone()])).await?;
    ensure_eq!(
        by_user(load(store, &key).await?.reads),
        vec![ann_later, bob],
        "positions after ann moved"
    );
    ensure_eq!(
        load(store, &self::key(prefix, "reads-other")).await?.reads,
        Vec::new(),
        "positions of another session"
    );
    Ok(())
}

/// The same session id in two tenants has two sets of positions.
pub async fn read_positions_are_isolated_by_tenant(store: &dyn Store, prefix: &str) -> CheckResult {
    let a = SessionKey::new(format!("{prefix}-reads-a"), "room");
    let b = SessionKey::new(format!("{prefix}-reads-b"), "room");
    let in_a = read_position("ann", "m-1", 1);
    let in_b = read_position("ann", "m-2", 2);
    write(store, &a, reads(vec![in_a.clone()])).await?;
    write(store, &b, reads(vec![in_b.clone()])).await?;
    ensure_eq!(load(store, &a).await?.reads, vec![in_a], "positions in {a}");
    ensure_eq!(load(store, &b).await?.reads, vec![in_b], "positions in {b}");
    Ok(())
}

/// A stored message is found by its id in its tenant, and only there; a
/// message not stored (its sender's client_ref was taken) is not indexed.
pub async fn message_ids_are_indexed_with_their_message(
    store: &dyn Store,
    prefix: &str,
) -> CheckResult {
    let key = SessionKey::new(format!("{prefix}-ids"), "room");
    let first = message_with_id(prefix, 4, "ref-1", "first");
    let repeat = message_with_id(prefix, 5, "ref-1", "a retry under a new id");
    write(
        store,
        &key,
        SessionWrite {
            messages: vec![first.clone()],
            ..SessionWrite::default()
        },
    )
    .await?;
    write(
        store,
        &key,
        SessionWrite {
            messages: vec![repeat.clone()],
            ..SessionWrite::default()
        },
    )
    .await?;
    let locate = |tenant: String, id: String| async move {
        store
            .message_location(&tenant, &id)
            .await
            .or_fail(&format!("message_location {tenant}/{id}"))
    };
    ensure_eq!(
        locate(key.tenant.clone(), first.id.clone()).await?,
        Some(MessageLocation {
            session_id: key.session_id.clone(),
            seq: 4
        }),
        "location of a stored message"
    );
    ensure_eq!(
        locate(key.tenant.clone(), repeat.id.clone()).await?,
        None,
        "location of a message refused as a repeat"
    );
    ensure_eq!(
        locate(format!("{prefix}-ids-other"), first.id.clone()).await?,
        None,
        "location of the message asked in another tenant"
    );
    ensure_eq!(
        locate(key.tenant.clone(), format!("{prefix}-never-sent")).await?,
        None,
        "location of an unknown id"
    );
    Ok(())
}

/// A session exists once it has a seq mark, in its own tenant only.
pub async fn session_exists_once_it_has_a_seq_mark(store: &dyn Store, prefix: &str) -> CheckResult {
    let key = SessionKey::new(format!("{prefix}-exists"), "room");
    let other_tenant = SessionKey::new(format!("{prefix}-exists-other"), "room");
    let exists = |key: SessionKey| async move {
        store
            .session_exists(&key)
            .await
            .or_fail(&format!("session_exists {key}"))
    };
    ensure!(!exists(key.clone()).await?, "{key} exists before any write");
    write(store, &key, seq_mark(64)).await?;
    ensure!(
        exists(key.clone()).await?,
        "{key} does not exist after a seq mark"
    );
    ensure!(
        !exists(other_tenant.clone()).await?,
        "{other_tenant} exists because of another tenant's session"
    );
    Ok(())
}
