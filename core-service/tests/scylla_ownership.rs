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
