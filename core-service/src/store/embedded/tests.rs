//! Embedded-store behaviour beyond the conformance suite: restarts, group
//! commit, isolation of a failing request, corrupt bytes, a stopped writer.

use std::sync::Arc;

use meno_proto::{ChatMessage, LeaseState, PresenceState};
use redb::Database;

use super::*;
use crate::store::{conformance, ChatRef, LeaseWrite, StoredConnection};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_passes_conformance() {
    let dir = tempfile::TempDir::new().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    if let Err(failures) = conformance::run_all(&store, "embedded").await {
        panic!("embedded store failed conformance:\n{failures}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_passes_the_registry_conformance() {
    let dir = tempfile::TempDir::new().unwrap();
    let store: std::sync::Arc<dyn Store> =
        std::sync::Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    if let Err(failures) = conformance::run_registry(store, "embedded").await {
        panic!("embedded store failed the registry conformance:\n{failures}");
    }
}

#[tokio::test]
async fn everything_survives_a_restart() {
    let dir = tempfile::TempDir::new().unwrap();
    let key = SessionKey::new("acme", "lesson-1");
    let write = SessionWrite {
        seq_mark: Some(1024),
        step_index: Some(3),
        lease: Some(LeaseWrite {
            expected_epoch: None,
            state: LeaseState {
                lease_id: "l1".to_owned(),
                lease_to: "teacher".to_owned(),
                epoch: 1,
                ..LeaseState::default()
            },
        }),
        messages: vec![message(1, "a"), message(2, "b")],
        presence: vec![PresenceState {
            participant_id: "teacher".to_owned(),
            is_speaking: true,
            ..PresenceState::default()
        }],
        connections: vec![StoredConnection {
            info: meno_proto::ConnectionInfo {
                connection_id: "c1".to_owned(),
                ..Default::default()
            },
            expires_at_ms: 42,
        }],
        ..SessionWrite::default()
    };
    let before = {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store.write_session(&key, write).await.unwrap();
        store.load_session(&key).await.unwrap()
    };
    assert_eq!(before.seq_mark, 1024, "written state is readable");

    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.load_session(&key).await.unwrap(), before);
    let history = store.chat_after(&key, 0, 10).await.unwrap();
    assert_eq!(history, vec![message(1, "a"), message(2, "b")]);
    let refs = [ChatRef::new("", "b")];
    let found = store.chat_by_client_refs(&key, &refs).await.unwrap();
    assert_eq!(
        found,
        vec![message(2, "b")],
        "the client_ref index survives"
    );
    // The lease epoch survives too: the fencing condition still holds.
    let stale = SessionWrite {
        lease: Some(LeaseWrite {
            expected_epoch: None,
            state: LeaseState::default(),
        }),
        ..SessionWrite::default()
    };
    let result = store.write_session(&key, stale).await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
}

#[tokio::test]
async fn writes_queued_at_drop_are_committed() {
    let dir = tempfile::TempDir::new().unwrap();
    let key = SessionKey::new("", "s");
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let requests = store.requests.clone().unwrap();
    let mut replies = Vec::new();
    for seq in 1..=50 {
        let (reply, replied) = oneshot::channel();
        let write = SessionWrite {
            messages: vec![message(seq, "")],
            ..SessionWrite::default()
        };
        let key = key.clone();
        requests
            .send(writer::WriteRequest {
                key,
                write,
                reply,
                span: tracing::Span::none(),
            })
            .await
            .unwrap();
        replies.push(replied);
    }
    drop(requests);
    drop(store);
    for replied in replies {
        replied.await.unwrap().unwrap();
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.chat_after(&key, 0, 100).await.unwrap().len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_share_commits() {
    const WRITERS: u64 = 200;
    let dir = tempfile::TempDir::new().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let before = store.commits();
    let writes = (0..WRITERS).map(|writer| {
        let store = Arc::clone(&store);
        async move {
            let key = SessionKey::new("", format!("group-{writer}"));
            let write = SessionWrite {
                messages: vec![message(1, "once")],
                ..SessionWrite::default()
            };
            store.write_session(&key, write).await
        }
    });
    for result in futures_util::future::join_all(writes).await {
        result.unwrap();
    }
    let commits = store.commits() - before;
    assert!(commits >= 1, "nothing was committed");
    assert!(
        commits < WRITERS / 2,
        "{WRITERS} concurrent writes took {commits} commits: no group commit"
    );
}

#[tokio::test]
async fn a_conflict_in_a_group_fails_alone() {
    let dir = tempfile::TempDir::new().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let fenced = SessionKey::new("", "fenced");
    let lease = |expected_epoch| SessionWrite {
        lease: Some(LeaseWrite {
            expected_epoch,
            state: LeaseState {
                epoch: 1,
                ..LeaseState::default()
            },
        }),
        ..SessionWrite::default()
    };
    store.write_session(&fenced, lease(None)).await.unwrap();

    // Enqueued together, so they very likely share one transaction; whether
    // they do or not, only the stale lease write may fail.
    let stale = store.write_session(&fenced, lease(Some(9)));
    let others = (0..20).map(|n| {
        let key = SessionKey::new("", format!("bystander-{n}"));
        let store = Arc::clone(&store);
        async move {
            let write = SessionWrite {
                messages: vec![message(1, "")],
                ..SessionWrite::default()
            };
            store.write_session(&key, write).await
        }
    });
    let (stale, others) = tokio::join!(stale, futures_util::future::join_all(others));
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    for (n, result) in others.into_iter().enumerate() {
        assert!(result.is_ok(), "bystander {n}: {result:?}");
        let key = SessionKey::new("", format!("bystander-{n}"));
        assert_eq!(store.chat_after(&key, 0, 10).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn a_second_open_of_the_same_dir_is_unavailable() {
    let dir = tempfile::TempDir::new().unwrap();
    let _store = EmbeddedStore::open(dir.path()).unwrap();
    let second = EmbeddedStore::open(dir.path());
    assert!(
        matches!(second, Err(StoreError::Unavailable(_))),
        "{second:?}"
    );
}

#[tokio::test]
async fn bad_bytes_are_corrupt_not_a_panic() {
    let dir = tempfile::TempDir::new().unwrap();
    let key = SessionKey::new("", "garbled");
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
    let loaded = store.load_session(&key).await;
    assert!(matches!(loaded, Err(StoreError::Corrupt(_))), "{loaded:?}");
    let page = store.chat_page(&key, None, 10).await;
    assert!(matches!(page, Err(StoreError::Corrupt(_))), "{page:?}");

    // A write that must read the garbled row is rejected alone...
    let bump = SessionWrite {
        seq_mark: Some(5),
        ..SessionWrite::default()
    };
    let result = store.write_session(&key, bump).await;
    assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
    // ...and the store keeps serving everyone else.
    let other = SessionKey::new("", "fine");
    store
        .write_session(
            &other,
            SessionWrite {
                seq_mark: Some(5),
                ..SessionWrite::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(store.load_session(&other).await.unwrap().seq_mark, 5);
}

#[tokio::test]
async fn a_stopped_writer_is_unavailable() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    // What drop does first: close the queue, so the writer exits.
    store.requests = None;
    let key = SessionKey::new("", "s");
    let result = store
        .write_session(
            &key,
            SessionWrite {
                seq_mark: Some(1),
                ..SessionWrite::default()
            },
        )
        .await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert!(store.check_ready().await.is_err());
}
