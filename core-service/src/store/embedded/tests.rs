//! Embedded-store behaviour beyond the conformance suite: restarts, group
//! commit, isolation of a failing request, corrupt bytes, a stopped writer.

use meno_proto::ChatMessage;
use redb::Database;

use super::*;
use crate::store::ChatRef;

fn message(seq: u64, client_ref: &str) -> ChatMessage {
    ChatMessage {
        id: format!("id-{seq}"),
        client_ref: client_ref.to_owned(),
        seq,
        content: format!("message {seq}"),
        ..ChatMessage::default()
    }
}

/// A file from before the message-id index: its messages are indexed at
/// open, so an ACK of an old message finds it.
#[tokio::test]
async fn an_old_file_gets_its_messages_indexed_by_id_at_open() {
    use prost::Message as _;
    let dir = tempfile::TempDir::new().unwrap();
    {
        let db = Database::create(dir.path().join(DB_FILE_NAME)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut chat = txn.open_table(CHAT).unwrap();
            chat.insert(("t", "s", 7), message(7, "").encode_to_vec().as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let location = store.message_location("t", "id-7").await.unwrap();
    assert_eq!(
        location,
        Some(crate::store::MessageLocation {
            session_id: "s".to_owned(),
            seq: 7
        })
    );
    assert_eq!(store.message_location("other", "id-7").await.unwrap(), None);
}

/// A file written before idempotency was scoped by sender: its client_ref
/// index is moved under each message's sender at open, once, and dropped.
#[tokio::test]
async fn an_old_client_ref_index_is_moved_under_its_senders() {
    use prost::Message as _;
    use redb::{ReadableDatabase as _, TableHandle as _};
    let dir = tempfile::TempDir::new().unwrap();
    {
        let db = Database::create(dir.path().join(DB_FILE_NAME)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut chat = txn.open_table(CHAT).unwrap();
            let mut index = txn.open_table(CHAT_BY_CLIENT_REF).unwrap();
            for (seq, sender) in [(1, "ann"), (2, "bob")] {
                let message = ChatMessage {
                    sender_id: sender.to_owned(),
                    ..message(seq, &format!("ref-{sender}"))
                };
                chat.insert(("t", "s", seq), message.encode_to_vec().as_slice())
                    .unwrap();
                index
                    .insert(("t", "s", message.client_ref.as_str()), seq)
                    .unwrap();
            }
        }
        txn.commit().unwrap();
    }
    let key = SessionKey::new("t", "s");
    for reopen in 0..2 {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let found = store
            .chat_by_client_refs(
                &key,
                &[
                    ChatRef::new("ann", "ref-ann"),
                    ChatRef::new("bob", "ref-bob"),
                    ChatRef::new("bob", "ref-ann"),
                ],
            )
            .await
            .unwrap();
        let seqs: Vec<u64> = found.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [1, 2], "open #{reopen}");
        let txn = store.db.begin_read().unwrap();
        let names: Vec<String> = txn
            .list_tables()
            .unwrap()
            .map(|table| table.name().to_owned())
            .collect();
        assert!(
            !names.contains(&"chat_by_client_ref".to_owned()),
            "{names:?}"
        );
    }
}

#[tokio::test]
async fn bad_bytes_are_corrupt_not_a_panic() {
    let dir = tempfile::TempDir::new().unwrap();
    drop(EmbeddedStore::open(dir.path()).unwrap());
    {
        // Bytes that are no valid protobuf: a field with wire type 7.
        let db = Database::create(dir.path().join(DB_FILE_NAME)).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(SESSIONS)
            .unwrap()
            .insert(("default", "garbled"), [0xff_u8, 0xff, 0xff].as_slice())
            .unwrap();
        txn.open_table(CHAT)
            .unwrap()
            .insert(("default", "garbled", 1), [0x0f_u8].as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    crate::store::engine_tests::check_a_garbled_session(&store).await;
}

engine_tests!(EmbeddedStore);
