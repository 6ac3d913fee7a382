//! The Scylla store against a real CQL server (Cassandra 5.0 from
//! `scripts/cassandra`, or ScyllaDB): the conformance suite, the lease LWT
//! under a race, TTLs on the rows written whole, and unavailability.
//!
//! Tests share one server and the keyspace `meno_test`, isolated by unique
//! session ids. Without a server they print "skipped: no CQL server" and
//! pass, unless `MENO_REQUIRE_CQL=1`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use meno_core::store::scylla::testing::{
    migrated_store, test_config, unique_prefix, SHARED_TEST_KEYSPACE,
};
use meno_core::store::scylla::{connect_session, ScyllaConfig};
use meno_core::store::{
    conformance, ChatRef, LeaseWrite, ScyllaStore, SessionKey, SessionWrite, Store, StoreError,
    StoredConnection,
};
use meno_proto::{ChatMessage, ConnectionInfo, LeaseState, PresenceState, ReadPosition};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scylla_store_passes_conformance() {
    let Some(store) = migrated_store("conformance", SHARED_TEST_KEYSPACE).await else {
        return;
    };
    if let Err(failures) = conformance::run_all(&store, &unique_prefix("conformance")).await {
        panic!("scylla store failed conformance:\n{failures}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scylla_store_passes_the_registry_conformance() {
    let Some(store) = migrated_store("registry", SHARED_TEST_KEYSPACE).await else {
        return;
    };
    let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(store);
    if let Err(failures) = conformance::run_registry(store, &unique_prefix("registry")).await {
        panic!("scylla store failed the registry conformance:\n{failures}");
    }
}

fn lease(epoch: u64, holder: &str) -> LeaseState {
    LeaseState {
        lease_id: format!("lease-{epoch}-{holder}"),
        lease_to: holder.to_owned(),
        step_index: 1,
        issued_at_ms: 1_000,
        expires_at_ms: 61_000,
        epoch,
    }
}

fn lease_write(expected_epoch: Option<u64>, state: LeaseState) -> SessionWrite {
    SessionWrite {
        lease: Some(LeaseWrite {
            expected_epoch,
            state,
        }),
        ..SessionWrite::default()
    }
}

/// Two store clients (two driver sessions, as two core processes would
/// have) race to grant each next epoch of one session's lease: exactly one
/// wins every round, and the stored lease is the winner's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_race_never_has_two_winners() {
    let Some(first) = migrated_store("lease race", SHARED_TEST_KEYSPACE).await else {
        return;
    };
    let second = ScyllaStore::connect(first.config().clone()).await.unwrap();
    let key = SessionKey::new("race", unique_prefix("lease"));
    let mut stored_epoch = None;
    for round in 1..=15u64 {
        let (a, b) = tokio::join!(
            first.write_session(&key, lease_write(stored_epoch, lease(round, "a"))),
            second.write_session(&key, lease_write(stored_epoch, lease(round, "b"))),
        );
        let winner = match (&a, &b) {
            (Ok(()), Err(StoreError::Conflict(_))) => "a",
            (Err(StoreError::Conflict(_)), Ok(())) => "b",
            _ => panic!("round {round}: not exactly one winner: {a:?} / {b:?}"),
        };
        let record = first.load_session(&key).await.unwrap();
        assert_eq!(record.lease, Some(lease(round, winner)), "round {round}");
        stored_epoch = Some(round);
    }
}

/// A read position is written `USING TIMESTAMP <seq>`: a write of an older
/// position that lands after a newer one (two cores during a handover)
/// leaves the newer one in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_older_read_position_does_not_overwrite_a_newer_one() {
    let Some(store) = migrated_store("read positions", SHARED_TEST_KEYSPACE).await else {
        return;
    };
    let key = SessionKey::new("reads", unique_prefix("reads"));
    let position = |seq: u64| ReadPosition {
        user_id: "ann".into(),
        message_id: format!("m-{seq}"),
        seq,
        read_at_ms: 1_000 + seq as i64,
    };
    for seq in [9, 3] {
        let write = SessionWrite {
            reads: vec![position(seq)],
            ..SessionWrite::default()
        };
        store.write_session(&key, write).await.unwrap();
    }
    let record = store.load_session(&key).await.unwrap();
    assert_eq!(record.reads, vec![position(9)]);
}

/// Presence and connection rows (and connections by user) are written with
/// a TTL; chat and session rows are not. Asserted with `TTL(col)`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_written_whole_carry_a_ttl() {
    let Some(store) = migrated_store("ttl", SHARED_TEST_KEYSPACE).await else {
        return;
    };
    let key = SessionKey::new("ttl", unique_prefix("ttl"));
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let write = SessionWrite {
        seq_mark: Some(1024),
        messages: vec![ChatMessage {
            seq: 1,
            client_ref: "ref-1".into(),
            content: "kept".into(),
            ..ChatMessage::default()
        }],
        presence: vec![PresenceState {
            participant_id: "ann".into(),
            name: "Ann".into(),
            ..PresenceState::default()
        }],
        connections: vec![StoredConnection {
            info: ConnectionInfo {
                connection_id: "c1".into(),
                participant_id: "ann".into(),
                bridge_id: "b1".into(),
                ..ConnectionInfo::default()
            },
            expires_at_ms: now_ms + 60_000,
        }],
        ..SessionWrite::default()
    };
    store.write_session(&key, write).await.unwrap();

    let config = store.config();
    let session = connect_session(config).await.unwrap();
    let ttl = |table: &str, column: &str, key_clause: &str| {
        format!(
            "SELECT TTL({column}) FROM {}.{table} WHERE tenant = ? AND {key_clause}",
            config.keyspace
        )
    };
    let read_ttl = |cql: String, values: Vec<String>| {
        let session = &session;
        async move {
            let prepared = session.prepare(cql).await.unwrap();
            let rows = session
                .execute_unpaged(&prepared, values)
                .await
                .unwrap()
                .into_rows_result()
                .unwrap();
            rows.single_row::<(Option<i32>,)>().unwrap().0
        }
    };
    let tenant = key.tenant.clone();
    let session_id = key.session_id.clone();

    let presence_ttl = read_ttl(
        ttl(
            &config.tables.presence,
            "name",
            "session_id = ? AND participant_id = ?",
        ),
        vec![tenant.clone(), session_id.clone(), "ann".into()],
    )
    .await;
    let week = 7 * 24 * 3600;
    assert!(
        presence_ttl.is_some_and(|ttl| ttl > week - 120 && ttl <= week),
        "presence TTL {presence_ttl:?}"
    );
    // A connection expiring in 60 s keeps its row 60 s + 10 min of slack.
    for (table, column, clause, values) in [
        (
            &config.tables.connections,
            "bridge_id",
            "session_id = ? AND connection_id = ?",
            vec![tenant.clone(), session_id.clone(), "c1".to_owned()],
        ),
        (
            &config.tables.connections_by_user,
            "bridge_id",
            "user_id = ? AND session_id = ? AND connection_id = ?",
            vec![
                tenant.clone(),
                "ann".to_owned(),
                session_id.clone(),
                "c1".to_owned(),
            ],
        ),
    ] {
        let row_ttl = read_ttl(ttl(table, column, clause), values).await;
        assert!(
            row_ttl.is_some_and(|ttl| ttl > 600 && ttl <= 661),
            "{table} TTL {row_ttl:?}"
        );
    }
    let chat_ttl = read_ttl(
        ttl(
            &config.tables.chat_messages,
            "content",
            "session_id = ? AND bucket = 0 AND seq = 1",
        ),
        vec![tenant.clone(), session_id.clone()],
    )
    .await;
    assert_eq!(chat_ttl, None, "chat history never expires");
    let mark_ttl = read_ttl(
        ttl(&config.tables.sessions, "seq_mark", "session_id = ?"),
        vec![tenant, session_id],
    )
    .await;
    assert_eq!(mark_ttl, None, "the seq mark never expires");
}

/// History across several 10,000-seq buckets, with empty buckets between:
/// newest-first and oldest-first reads cross partitions in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_crosses_buckets_both_ways() {
    let Some(store) = migrated_store("buckets", SHARED_TEST_KEYSPACE).await else {
        return;
    };
    let key = SessionKey::new("buckets", unique_prefix("buckets"));
    let seqs: Vec<u64> = vec![5, 9_999, 10_000, 10_001, 45_000, 45_001, 99_999];
    let messages = seqs
        .iter()
        .map(|&seq| ChatMessage {
            seq,
            client_ref: format!("r{seq}"),
            content: format!("m{seq}"),
            ..ChatMessage::default()
        })
        .collect();
    store
        .write_session(
            &key,
            SessionWrite {
                messages,
                ..SessionWrite::default()
            },
        )
        .await
        .unwrap();
    let got = |page: Vec<ChatMessage>| page.iter().map(|m| m.seq).collect::<Vec<_>>();
    assert_eq!(
        got(store.chat_page(&key, None, 100).await.unwrap()),
        [99_999, 45_001, 45_000, 10_001, 10_000, 9_999, 5]
    );
    assert_eq!(
        got(store.chat_page(&key, Some(45_001), 3).await.unwrap()),
        [45_000, 10_001, 10_000]
    );
    assert_eq!(
        got(store.chat_after(&key, 9_999, 4).await.unwrap()),
        [10_000, 10_001, 45_000, 45_001]
    );
    assert_eq!(got(store.chat_after(&key, 0, 2).await.unwrap()), [5, 9_999]);
    // These messages name no sender: their references are under the empty one.
    let refs = vec![ChatRef::new("", "r45000"), ChatRef::new("", "r5")];
    assert_eq!(
        got(store.chat_by_client_refs(&key, &refs).await.unwrap()),
        [5, 45_000]
    );
}

/// No server at the contact point: the store opens anyway, reports
/// `Unavailable` at once (never hangs), and keeps retrying in the background.
/// Needs no CQL server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_is_unavailable_not_a_hang() {
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = unused.local_addr().unwrap();
    drop(unused);
    let mut config: ScyllaConfig = test_config("meno_unreachable");
    config.nodes = vec![addr.to_string()];
    config.connect_timeout = Duration::from_millis(500);
    let started = Instant::now();
    let store: Arc<dyn Store> = Arc::new(ScyllaStore::open(config).await.unwrap());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "open took {:?}",
        started.elapsed()
    );
    let key = SessionKey::new("", "s");
    let ready = store.check_ready().await;
    assert!(
        matches!(ready, Err(StoreError::Unavailable(_))),
        "{ready:?}"
    );
    let loaded = store.load_session(&key).await;
    assert!(
        matches!(loaded, Err(StoreError::Unavailable(_))),
        "{loaded:?}"
    );
    let written = store
        .write_session(
            &key,
            SessionWrite {
                seq_mark: Some(1),
                ..SessionWrite::default()
            },
        )
        .await;
    assert!(
        matches!(written, Err(StoreError::Unavailable(_))),
        "{written:?}"
    );
}

/// A keyspace without the schema is refused with the fix in the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_core_refuses_a_keyspace_without_the_schema() {
    if !meno_core::store::scylla::testing::cql_available("refuse").await {
        return;
    }
    let config = test_config("meno_never_migrated");
    let refused = ScyllaStore::open(config).await;
    match refused {
        Err(StoreError::Backend(why)) => {
            assert!(why.contains("run `meno-core migrate`"), "{why}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}
