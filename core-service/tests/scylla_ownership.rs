//! Ownership rows on the real CQL server (migration 0005): replica leases,
//! session takeovers and the fenced seq-block reservation, every write an
//! LWT whose outcome these tests read back.

use meno_core::store::scylla::testing::{migrated_store, unique_prefix};
use meno_core::store::{OwnershipStore, SessionKey, SessionOwner, SessionWrite, Store, StoreError};

fn owner(id: &str, replica_epoch: u64, owner_epoch: u64, seq_mark: u64) -> SessionOwner {
    SessionOwner {
        owner_id: id.to_owned(),
        replica_epoch,
        owner_url: format!("http://{id}"),
        owner_epoch,
        released: false,
        seq_mark,
    }
}

#[tokio::test]
async fn replica_leases_bump_on_register_and_renew_only_while_unexpired() {
    let test = "ownership: replica leases";
    let Some(store) = migrated_store(test, "meno_ownership").await else {
        return;
    };
    let id = unique_prefix("replica");
    let first = store
        .register_replica(&id, "http://a", 10_000)
        .await
        .unwrap();
    let second = store
        .register_replica(&id, "http://a", 10_000)
        .await
        .unwrap();
    assert_eq!(second, first + 1, "registering again bumps the epoch");
    assert!(
        !store
            .renew_replica(&id, first, 20_000, false, 5_000)
            .await
            .unwrap(),
        "a renewal under an old epoch must not apply"
    );
    assert!(store
        .renew_replica(&id, second, 20_000, false, 5_000)
        .await
        .unwrap());
    assert!(
        !store
            .renew_replica(&id, second, 40_000, false, 30_000)
            .await
            .unwrap(),
        "an expired lease (20 s, now 30 s) must not be renewed"
    );
    assert!(store
        .renew_replica(&id, second, 25_000, true, 15_000)
        .await
        .unwrap());
    let lease = store
        .replicas()
        .await
        .unwrap()
        .into_iter()
        .find(|lease| lease.replica_id == id)
        .expect("the lease is listed");
    assert_eq!(
        (lease.epoch, lease.expires_at_ms, lease.leaving),
        (second, 25_000, true)
    );
}

#[tokio::test]
async fn a_takeover_bumps_the_owner_epoch_and_fences_the_old_owners_seq_blocks() {
    let test = "ownership: takeover and fence";
    let Some(store) = migrated_store(test, "meno_ownership").await else {
        return;
    };
    let key = SessionKey::new("t", unique_prefix("owned"));
    assert_eq!(store.session_owner(&key).await.unwrap(), None);
    assert!(store
        .take_session(&key, None, &owner("a", 1, 1, 0))
        .await
        .unwrap());
    assert!(
        !store
            .take_session(&key, None, &owner("b", 1, 1, 0))
            .await
            .unwrap(),
        "a second first take must not apply"
    );
    // The owner reserves a block under its epoch.
    let block = SessionWrite {
        seq_mark: Some(1024),
        fence: Some(1),
        ..SessionWrite::default()
    };
    store.write_session(&key, block).await.unwrap();
    assert_eq!(
        store.session_owner(&key).await.unwrap().unwrap().seq_mark,
        1024
    );

    // b takes over (a's lease expired): epoch 2, a's next block is refused.
    assert!(!store
        .take_session(&key, Some(7), &owner("b", 1, 2, 1024))
        .await
        .unwrap());
    assert!(store
        .take_session(&key, Some(1), &owner("b", 1, 2, 1024))
        .await
        .unwrap());
    let stale = SessionWrite {
        seq_mark: Some(2048),
        fence: Some(1),
        ..SessionWrite::default()
    };
    let refused = store.write_session(&key, stale).await;
    assert!(
        matches!(refused, Err(StoreError::Deposed(_))),
        "{refused:?}"
    );
    let row = store.session_owner(&key).await.unwrap().unwrap();
    assert_eq!(
        (row.owner_id.as_str(), row.owner_epoch, row.seq_mark),
        ("b", 2, 1024)
    );

    assert!(
        !store.release_session(&key, 1).await.unwrap(),
        "a no longer owns it"
    );
    assert!(store.release_session(&key, 2).await.unwrap());
    assert!(store.session_owner(&key).await.unwrap().unwrap().released);
}

fn chat(seq: u64, client_ref: &str, content: &str) -> meno_proto::ChatMessage {
    meno_proto::ChatMessage {
        seq,
        id: format!("msg-{seq}-{client_ref}"),
        client_ref: client_ref.to_owned(),
        sender_id: "ann".to_owned(),
        sender_name: "Ann".to_owned(),
        content: content.to_owned(),
        created_at_ms: 1_700_000_000_000,
        ..meno_proto::ChatMessage::default()
    }
}

fn now_us() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_micros()).unwrap()
}

/// The takeover's void: a deposed owner's batch that lands after the new
/// owner read the history is never seen (its rows carry the time the old
/// owner last held the session), and its client_ref does not block the
/// retry the new owner stores.
#[tokio::test]
async fn a_deposed_owners_late_chat_write_is_voided_by_the_takeover() {
    let test = "ownership: late write voided";
    let Some(store) = migrated_store(test, "meno_ownership").await else {
        return;
    };
    let key = SessionKey::new("t", unique_prefix("voided"));
    let held_at_us = now_us() - 2_000_000;
    // The old owner stored seq 5 while it held the session...
    let stored = SessionWrite {
        messages: vec![chat(5, "r5", "stored before the move")],
        written_at_us: Some(held_at_us),
        ..SessionWrite::default()
    };
    store.write_session(&key, stored).await.unwrap();
    // ...the new owner read the history up to 5 and voids up to the mark,
    // a bucket boundary included...
    store.void_chat(&key, 5, 10_024, now_us()).await.unwrap();
    // ...then the old owner's write of 6, 7 and 10,001 lands.
    let late = SessionWrite {
        messages: vec![
            chat(6, "r6", "late"),
            chat(7, "r7", "late"),
            chat(10_001, "r10001", "late, next bucket"),
        ],
        written_at_us: Some(held_at_us),
        ..SessionWrite::default()
    };
    store.write_session(&key, late).await.unwrap();
    let seqs = |messages: Vec<meno_proto::ChatMessage>| -> Vec<u64> {
        messages.iter().map(|message| message.seq).collect()
    };
    assert_eq!(seqs(store.chat_after(&key, 0, 100).await.unwrap()), vec![5]);
    assert_eq!(
        seqs(store.chat_page(&key, None, 100).await.unwrap()),
        vec![5]
    );
    let r6 = meno_core::store::ChatRef::new("ann", "r6");
    assert!(
        store
            .chat_by_client_refs(&key, std::slice::from_ref(&r6))
            .await
            .unwrap()
            .is_empty(),
        "the voided message is not a duplicate of its retry"
    );

    // The client retries r6; the new owner stores it past the mark, and
    // its index row replaces the late one.
    let retry = SessionWrite {
        messages: vec![chat(10_025, "r6", "retried")],
        written_at_us: Some(now_us()),
        ..SessionWrite::default()
    };
    store.write_session(&key, retry).await.unwrap();
    assert_eq!(
        seqs(store.chat_after(&key, 0, 100).await.unwrap()),
        vec![5, 10_025]
    );
    assert_eq!(
        seqs(store.chat_by_client_refs(&key, &[r6]).await.unwrap()),
        vec![10_025]
    );
    // A write newer than the void is not hidden by it: the void goes by
    // time, not by seq.
    let newer = SessionWrite {
        messages: vec![chat(8, "r8", "after the void")],
        written_at_us: Some(now_us()),
        ..SessionWrite::default()
    };
    store.write_session(&key, newer).await.unwrap();
    assert_eq!(
        seqs(store.chat_after(&key, 0, 100).await.unwrap()),
        vec![5, 8, 10_025]
    );
}
