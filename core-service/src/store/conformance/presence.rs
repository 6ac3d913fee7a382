//! Checks of the rows written whole: presence and connections.

use meno_proto::{PresenceState, PresenceStatus};

use super::fixtures::{connection, key, load, presence, write};
use super::CheckResult;
use crate::store::{SessionKey, SessionWrite, Store, StoredConnection};

/// Presence rows are replaced whole (no field survives from the old row) and
/// deleted on request.
pub async fn presence_is_written_whole_and_removed(store: &dyn Store, prefix: &str) -> CheckResult {
    let key = key(prefix, "presence");
    let alice = presence("alice", "Alice", true);
    let bob = presence("bob", "Bob", false);
    let written = SessionWrite {
        presence: vec![alice, bob.clone()],
        ..SessionWrite::default()
    };
    write(store, &key, written).await?;

    let alice_again = PresenceState {
        participant_id: "alice".to_owned(),
        status: PresenceStatus::Online as i32,
        last_seen_ms: 2_000,
        ..PresenceState::default()
    };
    let rewrite = SessionWrite {
        presence: vec![alice_again.clone()],
        ..SessionWrite::default()
    };
    write(store, &key, rewrite).await?;
    ensure_eq!(
        participants(store, &key).await?,
        vec![alice_again.clone(), bob],
        "rewritten"
    );

    let removed = SessionWrite {
        presence_removed: vec!["bob".to_owned(), "never-there".to_owned()],
        ..SessionWrite::default()
    };
    write(store, &key, removed).await?;
    ensure_eq!(
        participants(store, &key).await?,
        vec![alice_again],
        "after removal"
    );
    Ok(())
}

/// Connection rows are upserted by connection id and deleted on request;
/// `load_session` returns them whatever their expiry (the caller filters).
pub async fn connections_are_upserted_and_removed(store: &dyn Store, prefix: &str) -> CheckResult {
    let key = key(prefix, "connections");
    let expired = connection("c1", "bridge-1", 1);
    let live = connection("c2", "bridge-1", i64::MAX);
    let written = SessionWrite {
        connections: vec![expired, live.clone()],
        ..Default::default()
    };
    write(store, &key, written).await?;

    let refreshed = connection("c1", "bridge-2", 120_000);
    let refresh = SessionWrite {
        connections: vec![refreshed.clone()],
        ..Default::default()
    };
    write(store, &key, refresh).await?;
    ensure_eq!(
        connections(store, &key).await?,
        vec![refreshed.clone(), live],
        "refreshed"
    );

    let removed = SessionWrite {
        connections_removed: vec!["c2".to_owned(), "never-there".to_owned()],
        ..SessionWrite::default()
    };
    write(store, &key, removed).await?;
    ensure_eq!(
        connections(store, &key).await?,
        vec![refreshed],
        "after removal"
    );
    Ok(())
}

async fn participants(store: &dyn Store, key: &SessionKey) -> Result<Vec<PresenceState>, String> {
    let mut participants = load(store, key).await?.participants;
    participants.sort_by(|a, b| a.participant_id.cmp(&b.participant_id));
    Ok(participants)
}

async fn connections(store: &dyn Store, key: &SessionKey) -> Result<Vec<StoredConnection>, String> {
    let mut connections = load(store, key).await?.connections;
    connections.sort_by(|a, b| a.info.connection_id.cmp(&b.info.connection_id));
    Ok(connections)
}
