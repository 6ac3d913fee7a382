//! fjall-store behaviour beyond the conformance suite and the tests every
//! embedded engine passes (`engine_tests!`): corrupt bytes.

use super::*;

engine_tests!(FjallStore);

#[tokio::test]
async fn bad_bytes_are_corrupt_not_a_panic() {
    let dir = tempfile::TempDir::new().unwrap();
    {
        let store = FjallStore::open(dir.path()).unwrap();
        let spaces = &store.shared.spaces;
        let prefix = keys::Key::of(&["default", "garbled"]).unwrap();
        // Bytes that are no valid protobuf: a field with wire type 7.
        spaces
            .sessions
            .insert(prefix.as_bytes(), [0xff_u8, 0xff, 0xff])
            .unwrap();
        spaces
            .chat
            .insert(prefix.clone().seq(1).as_bytes(), [0x0f_u8])
            .unwrap();
        store
            .shared
            .db
            .persist(fjall::PersistMode::SyncAll)
            .unwrap();
    }
    let store = FjallStore::open(dir.path()).unwrap();
    crate::store::engine_tests::check_a_garbled_session(&store).await;
}

/// A read sees a write only once its group is durable: the snapshot readers
/// use is replaced after the `fdatasync`, not at the batch's commit.
#[tokio::test]
async fn a_batch_committed_but_not_yet_durable_is_not_read() {
    let dir = tempfile::TempDir::new().unwrap();
    let store = FjallStore::open(dir.path()).unwrap();
    let key = SessionKey::new("", "pending");
    let prefix = keys::Key::of(&[&key.tenant, &key.session_id]).unwrap();
    let message = meno_proto::ChatMessage {
        seq: 1,
        content: "not yet".to_owned(),
        ..meno_proto::ChatMessage::default()
    };
    {
        use prost::Message as _;
        let mut batch = store.shared.db.batch();
        batch.insert(
            &store.shared.spaces.chat,
            prefix.clone().seq(1).into_bytes(),
            message.encode_to_vec(),
        );
        batch.commit().unwrap();
    }
    assert!(store.chat_after(&key, 0, 10).await.unwrap().is_empty());
    store.shared.publish_durable();
    assert_eq!(store.chat_after(&key, 0, 10).await.unwrap(), vec![message]);
}
