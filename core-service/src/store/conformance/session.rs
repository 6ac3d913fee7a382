//! Checks of the session row: defaults, seq_mark, step, the fenced lease,
//! and isolation between tenants and sessions.

use meno_proto::LeaseState;

use super::fixtures::{alice_refs, contents, seq_mark, seqs, OrFail};
use super::fixtures::{connection, key, lease, lease_write, load, message, presence, write};
use super::fixtures::{message_with_id, read_position};
use super::CheckResult;
use crate::store::{LeaseWrite, SessionKey, SessionRecord, SessionWrite, Store, StoreError};

/// A session never written reads as the default record with no history, and
/// an empty batch changes nothing.
pub async fn unknown_session_is_default(store: &dyn Store, prefix: &str) -> CheckResult {
    let key = key(prefix, "unknown");
    store.check_ready().await.or_fail("check_ready")?;
    ensure_eq!(
        load(store, &key).await?,
        SessionRecord::default(),
        "unknown session"
    );
    store
        .write_session(&key, SessionWrite::default())
        .await
        .or_fail("empty write")?;
    ensure_eq!(
        load(store, &key).await?,
        SessionRecord::default(),
        "after empty write"
    );
    let page = store.chat_page(&key, None, 10).await.or_fail("chat_page")?;
    ensure!(page.is_empty(), "chat_page of unknown session: {page:?}");
    let after = store.chat_after(&key, 0, 10).await.or_fail("chat_after")?;
    ensure!(after.is_empty(), "chat_after of unknown session: {after:?}");
    let refs = alice_refs(&["r"]);
    let found = store
        .chat_by_client_refs(&key, &refs)
        .await
        .or_fail("refs")?;
    ensure!(
        found.is_empty(),
        "chat_by_client_refs of unknown session: {found:?}"
    );
    Ok(())
}

/// `seq_mark` keeps the largest value ever written; writes that do not name
/// it leave it alone.
pub async fn seq_mark_only_grows(store: &dyn Store, prefix: &str) -> CheckResult {
    let key = key(prefix, "seq-mark");
    for (written, expected) in [(1024, 1024), (512, 1024), (2048, 2048), (0, 2048)] {
        write(store, &key, seq_mark(written)).await?;
        ensure_eq!(
            load(store, &key).await?.seq_mark,
            expected,
            "after seq_mark {written}"
        );
    }
    let others = SessionWrite {
        step_index: Some(4),
        messages: vec![message(1, "", "hello")],
        ..SessionWrite::default()
    };
    write(store, &key, others).await?;
    let record = load(store, &key).await?;
    ensure_eq!(record.seq_mark, 2048, "seq_mark after a write without one");
    ensure_eq!(record.step_index, 4, "step_index");
    Ok(())
}

/// Step and lease come back exactly as written, a cleared lease included.
pub async fn step_and_lease_round_trip(store: &dyn Store, prefix: &str) -> CheckResult {
    let key = key(prefix, "step-lease");
    write(
        store,
        &key,
        SessionWrite {
            step_index: Some(-3),
            ..SessionWrite::default()
        },
    )
    .await?;
    let record = load(store, &key).await?;
    ensure_eq!(record.step_index, -3, "step_index");
    ensure_eq!(record.lease, None, "lease never written");
    ensure_eq!(record.seq_mark, 0, "seq_mark never written");

    let held = lease(1, "alice", 7);
    write(store, &key, lease_write(None, held.clone())).await?;
    let record = load(store, &key).await?;
    ensure_eq!(record.lease, Some(held), "held lease");
    ensure_eq!(record.step_index, -3, "step_index after a lease write");

    let cleared = LeaseState {
        step_index: 7,
        epoch: 2,
        ..LeaseState::default()
    };
    write(store, &key, lease_write(Some(1), cleared.clone())).await?;
    ensure_eq!(
        load(store, &key).await?.lease,
        Some(cleared),
        "cleared lease"
    );
    Ok(())
}

/// A lease write whose expected epoch is stale fails with `Conflict`, and
/// nothing else of its batch is applied.
pub async fn lease_conflict_leaves_batch_unapplied(store: &dyn Store, prefix: &str) -> CheckResult {
    let key = key(prefix, "lease-conflict");
    let setup = SessionWrite {
        seq_mark: Some(10),
        step_index: Some(1),
        lease: Some(LeaseWrite {
            expected_epoch: None,
            state: lease(1, "alice", 1),
        }),
        messages: vec![message(1, "m1", "kept")],
        presence: vec![presence("p1", "Alice", false)],
        connections: vec![connection("c1", "bridge-1", 90_000)],
        ..SessionWrite::default()
    };
    write(store, &key, setup).await?;
    let before = load(store, &key).await?;

    for stale in [None, Some(7), Some(0)] {
        let rejected = SessionWrite {
            seq_mark: Some(20),
            step_index: Some(2),
            lease: Some(LeaseWrite {
                expected_epoch: stale,
                state: lease(2, "bob", 2),
            }),
            messages: vec![message_with_id(prefix, 2, "m2", "must not be stored")],
            presence: vec![presence("p2", "Bob", true)],
            presence_removed: vec!["p1".to_owned()],
            connections: vec![connection("c2", "bridge-2", 90_000)],
            connections_removed: vec!["c1".to_owned()],
            reads: vec![read_position("bob", "0190-00000001", 1)],
            fence: None,
            written_at_us: None,
        };
        let result = store.write_session(&key, rejected).await;
        ensure!(
            matches!(result, Err(StoreError::Conflict(_))),
            "expected epoch {stale:?} against stored 1 gave {result:?}, not Conflict"
        );
        ensure_eq!(
            load(store, &key).await?,
            before,
            "record after a conflict ({stale:?})"
        );
        let indexed = store
            .message_location(&key.tenant, &message_with_id(prefix, 2, "m2", "").id)
            .await
            .or_fail("message_location")?;
        ensure_eq!(
            indexed,
            None,
            "message id index after a conflict ({stale:?})"
        );
        let history = store.chat_after(&key, 0, 10).await.or_fail("chat_after")?;
        ensure_eq!(
            seqs(&history),
            vec![1],
            "history after a conflict ({stale:?})"
        );
        let refs = alice_refs(&["m2"]);
        let found = store
            .chat_by_client_refs(&key, &refs)
            .await
            .or_fail("refs")?;
        ensure!(
            found.is_empty(),
            "client_ref of a rejected message indexed: {found:?}"
        );
    }

    let fresh = self::key(prefix, "lease-conflict-fresh");
    let result = store
        .write_session(&fresh, lease_write(Some(1), lease(2, "bob", 0)))
        .await;
    ensure!(
        matches!(result, Err(StoreError::Conflict(_))),
        "expected epoch 1 on a session without lease gave {result:?}, not Conflict"
    );
    ensure_eq!(
        load(store, &fresh).await?,
        SessionRecord::default(),
        "after conflict"
    );

    let next = lease(2, "bob", 1);
    write(store, &key, lease_write(Some(1), next.clone())).await?;
    ensure_eq!(
        load(store, &key).await?.lease,
        Some(next),
        "lease after the right epoch"
    );
    Ok(())
}

/// The same session id in two tenants, and session ids that prefix each
/// other, share nothing.
pub async fn tenants_and_sessions_are_isolated(store: &dyn Store, prefix: &str) -> CheckResult {
    let keys = [
        SessionKey::new(format!("{prefix}-tenant-a"), "room"),
        SessionKey::new(format!("{prefix}-tenant-b"), "room"),
        SessionKey::new(format!("{prefix}-tenant-a"), "room-2"),
        SessionKey::new(format!("{prefix}-tenant-a"), "roo"),
    ];
    for (index, key) in (1u64..).zip(&keys) {
        let name = key.to_string();
        let written = SessionWrite {
            seq_mark: Some(index * 100),
            // Every session takes its first lease: a lease elsewhere is no conflict.
            lease: Some(LeaseWrite {
                expected_epoch: None,
                state: lease(1, &name, 0),
            }),
            messages: vec![message(1, "same-ref", &name)],
            presence: vec![presence("p", &name, false)],
            connections: vec![connection("c", &name, 90_000)],
            ..SessionWrite::default()
        };
        write(store, key, written).await?;
    }
    for (index, key) in (1u64..).zip(&keys) {
        let name = key.to_string();
        let record = load(store, key).await?;
        ensure_eq!(record.seq_mark, index * 100, "seq_mark of {key}");
        ensure_eq!(
            record.lease.map(|l| l.lease_to),
            Some(name.clone()),
            "lease of {key}"
        );
        let names: Vec<_> = record.participants.iter().map(|p| p.name.clone()).collect();
        ensure_eq!(names, vec![name.clone()], "participants of {key}");
        let bridges: Vec<_> = record
            .connections
            .iter()
            .map(|c| c.info.bridge_id.clone())
            .collect();
        ensure_eq!(bridges, vec![name.clone()], "connections of {key}");
        let history = store.chat_page(key, None, 10).await.or_fail("chat_page")?;
        ensure_eq!(contents(&history), vec![name.clone()], "history of {key}");
        let refs = alice_refs(&["same-ref"]);
        let found = store
            .chat_by_client_refs(key, &refs)
            .await
            .or_fail("refs")?;
        ensure_eq!(contents(&found), vec![name], "client_ref lookup in {key}");
    }
    Ok(())
}
