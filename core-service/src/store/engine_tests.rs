//! Tests every embedded engine (redb and fjall) must pass, beyond the
//! conformance suite: restarts, group commit, isolation of a failing request,
//! a second open, a stopped writer. Each engine's tests module invokes
//! `engine_tests!(TheStore)`; the store must have `open(dir)`, `commits()` and
//! a `requests` queue of [`group_commit::WriteRequest`](super::group_commit).

macro_rules! engine_tests {
    ($store:ident) => {
        fn engine_message(seq: u64, client_ref: &str) -> meno_proto::ChatMessage {
            meno_proto::ChatMessage {
                id: format!("id-{seq}"),
                client_ref: client_ref.to_owned(),
                seq,
                content: format!("message {seq}"),
                ..meno_proto::ChatMessage::default()
            }
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn passes_conformance() {
            let dir = tempfile::TempDir::new().unwrap();
            let store = $store::open(dir.path()).unwrap();
            if let Err(failures) = crate::store::conformance::run_all(&store, "engine").await {
                panic!("store failed conformance:\n{failures}");
            }
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn passes_the_registry_conformance() {
            let dir = tempfile::TempDir::new().unwrap();
            let store: std::sync::Arc<dyn crate::store::Store> =
                std::sync::Arc::new($store::open(dir.path()).unwrap());
            if let Err(failures) = crate::store::conformance::run_registry(store, "engine").await {
                panic!("store failed the registry conformance:\n{failures}");
            }
        }

        #[tokio::test]
        async fn everything_survives_a_restart() {
            let dir = tempfile::TempDir::new().unwrap();
            let key = crate::store::SessionKey::new("acme", "lesson-1");
            let write = crate::store::SessionWrite {
                seq_mark: Some(1024),
                step_index: Some(3),
                lease: Some(crate::store::LeaseWrite {
                    expected_epoch: None,
                    state: meno_proto::LeaseState {
                        lease_id: "l1".to_owned(),
                        lease_to: "teacher".to_owned(),
                        epoch: 1,
                        ..meno_proto::LeaseState::default()
                    },
                }),
                messages: vec![engine_message(1, "a"), engine_message(2, "b")],
                presence: vec![meno_proto::PresenceState {
                    participant_id: "teacher".to_owned(),
                    is_speaking: true,
                    ..meno_proto::PresenceState::default()
                }],
                connections: vec![crate::store::StoredConnection {
                    info: meno_proto::ConnectionInfo {
                        connection_id: "c1".to_owned(),
                        ..Default::default()
                    },
                    expires_at_ms: 42,
                }],
                ..crate::store::SessionWrite::default()
            };
            let before = {
                let store = $store::open(dir.path()).unwrap();
                store.write_session(&key, write).await.unwrap();
                store.load_session(&key).await.unwrap()
            };
            assert_eq!(before.seq_mark, 1024, "written state is readable");

            let store = $store::open(dir.path()).unwrap();
            assert_eq!(store.load_session(&key).await.unwrap(), before);
            let history = store.chat_after(&key, 0, 10).await.unwrap();
            assert_eq!(
                history,
                vec![engine_message(1, "a"), engine_message(2, "b")]
            );
            let refs = [crate::store::ChatRef::new("", "b")];
            let found = store.chat_by_client_refs(&key, &refs).await.unwrap();
            assert_eq!(
                found,
                vec![engine_message(2, "b")],
                "the client_ref index survives"
            );
            // The lease epoch survives too: the fencing condition still holds.
            let stale = crate::store::SessionWrite {
                lease: Some(crate::store::LeaseWrite {
                    expected_epoch: None,
                    state: meno_proto::LeaseState::default(),
                }),
                ..crate::store::SessionWrite::default()
            };
            let result = store.write_session(&key, stale).await;
            assert!(
                matches!(result, Err(crate::store::StoreError::Conflict(_))),
                "{result:?}"
            );
        }

        #[tokio::test]
        async fn writes_queued_at_drop_are_committed() {
            let dir = tempfile::TempDir::new().unwrap();
            let key = crate::store::SessionKey::new("", "s");
            let store = $store::open(dir.path()).unwrap();
            let requests = store.requests.clone().unwrap();
            let mut replies = Vec::new();
            for seq in 1..=50 {
                let (reply, replied) = tokio::sync::oneshot::channel();
                let write = crate::store::SessionWrite {
                    messages: vec![engine_message(seq, "")],
                    ..crate::store::SessionWrite::default()
                };
                let key = key.clone();
                requests
                    .send(crate::store::group_commit::WriteRequest {
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
            let store = $store::open(dir.path()).unwrap();
            assert_eq!(store.chat_after(&key, 0, 100).await.unwrap().len(), 50);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn concurrent_writers_share_commits() {
            const WRITERS: u64 = 200;
            let dir = tempfile::TempDir::new().unwrap();
            let store = std::sync::Arc::new($store::open(dir.path()).unwrap());
            let before = store.commits();
            let writes = (0..WRITERS).map(|writer| {
                let store = std::sync::Arc::clone(&store);
                async move {
                    let key = crate::store::SessionKey::new("", format!("group-{writer}"));
                    let write = crate::store::SessionWrite {
                        messages: vec![engine_message(1, "once")],
                        ..crate::store::SessionWrite::default()
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
            let store = std::sync::Arc::new($store::open(dir.path()).unwrap());
            let fenced = crate::store::SessionKey::new("", "fenced");
            let lease = |expected_epoch| crate::store::SessionWrite {
                lease: Some(crate::store::LeaseWrite {
                    expected_epoch,
                    state: meno_proto::LeaseState {
                        epoch: 1,
                        ..meno_proto::LeaseState::default()
                    },
                }),
                ..crate::store::SessionWrite::default()
            };
            store.write_session(&fenced, lease(None)).await.unwrap();

            // Enqueued together, so they very likely share one transaction; whether
            // they do or not, only the stale lease write may fail.
            let stale = store.write_session(&fenced, lease(Some(9)));
            let others = (0..20).map(|n| {
                let key = crate::store::SessionKey::new("", format!("bystander-{n}"));
                let store = std::sync::Arc::clone(&store);
                async move {
                    let write = crate::store::SessionWrite {
                        messages: vec![engine_message(1, "")],
                        ..crate::store::SessionWrite::default()
                    };
                    store.write_session(&key, write).await
                }
            });
            let (stale, others) = tokio::join!(stale, futures_util::future::join_all(others));
            assert!(
                matches!(stale, Err(crate::store::StoreError::Conflict(_))),
                "{stale:?}"
            );
            for (n, result) in others.into_iter().enumerate() {
                assert!(result.is_ok(), "bystander {n}: {result:?}");
                let key = crate::store::SessionKey::new("", format!("bystander-{n}"));
                assert_eq!(store.chat_after(&key, 0, 10).await.unwrap().len(), 1);
            }
        }

        #[tokio::test]
        async fn a_second_open_of_the_same_dir_is_unavailable() {
            let dir = tempfile::TempDir::new().unwrap();
            let _store = $store::open(dir.path()).unwrap();
            let second = $store::open(dir.path());
            assert!(
                matches!(second, Err(crate::store::StoreError::Unavailable(_))),
                "{second:?}"
            );
        }

        #[tokio::test]
        async fn a_stopped_writer_is_unavailable() {
            let dir = tempfile::TempDir::new().unwrap();
            let mut store = $store::open(dir.path()).unwrap();
            // What drop does first: close the queue, so the writer exits.
            store.requests = None;
            let key = crate::store::SessionKey::new("", "s");
            let result = store
                .write_session(
                    &key,
                    crate::store::SessionWrite {
                        seq_mark: Some(1),
                        ..crate::store::SessionWrite::default()
                    },
                )
                .await;
            assert!(
                matches!(result, Err(crate::store::StoreError::Unavailable(_))),
                "{result:?}"
            );
            assert!(store.check_ready().await.is_err());
        }
    };
}

/// After a store's session row and chat row of `default/garbled` were
/// overwritten with bytes that are no protobuf: reads of that session are
/// [`StoreError::Corrupt`], a write that must read its row is rejected alone,
/// and every other session is still served.
#[cfg(test)]
pub(crate) async fn check_a_garbled_session(store: &dyn crate::store::Store) {
    use crate::store::{SessionKey, SessionWrite, StoreError};
    let key = SessionKey::new("", "garbled");
    let loaded = store.load_session(&key).await;
    assert!(matches!(loaded, Err(StoreError::Corrupt(_))), "{loaded:?}");
    let page = store.chat_page(&key, None, 10).await;
    assert!(matches!(page, Err(StoreError::Corrupt(_))), "{page:?}");

    // A write that must read the garbled row is rejected alone...
    let bump = || SessionWrite {
        seq_mark: Some(5),
        ..SessionWrite::default()
    };
    let result = store.write_session(&key, bump()).await;
    assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
    // ...and the store keeps serving everyone else.
    let other = SessionKey::new("", "fine");
    store.write_session(&other, bump()).await.unwrap();
    assert_eq!(store.load_session(&other).await.unwrap().seq_mark, 5);
}
