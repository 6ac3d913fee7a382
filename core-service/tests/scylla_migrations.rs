//! `meno-core migrate` against a real CQL server: apply, re-apply (no-op),
//! refusal of a changed template, two runs at once, and the serving check.
//! Each test works in a keyspace of its own, dropped at the end.

use meno_core::store::scylla::schema::{self, Migration, SchemaError};
use meno_core::store::scylla::testing::{cql_available, test_config, unique_prefix};
use meno_core::store::scylla::{connect_session, migrate, ScyllaConfig};
use meno_core::store::{ChatRef, ScyllaStore, SessionKey, Store, StoreError};
use scylla::client::session::Session;

async fn fresh_keyspace(test: &str) -> Option<(ScyllaConfig, Session)> {
    if !cql_available(test).await {
        return None;
    }
    let keyspace = unique_prefix("mig").replace('-', "_");
    let keyspace: String = keyspace.chars().take(48).collect();
    let config = test_config(&keyspace);
    let session = connect_session(&config).await.unwrap();
    Some((config, session))
}

async fn drop_keyspace(session: &Session, keyspace: &str) {
    let _ = session
        .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), ())
        .await;
}

async fn tables(session: &Session, keyspace: &str) -> Vec<String> {
    let rows = session
        .query_unpaged(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?",
            (keyspace,),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    let mut names: Vec<String> = rows
        .rows::<(String,)>()
        .unwrap()
        .map(|row| row.unwrap().0)
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_applies_once_then_is_a_no_op() {
    let Some((config, session)) = fresh_keyspace("apply").await else {
        return;
    };
    let bundled = schema::bundled();
    let first = migrate(&session, &config, &bundled).await.unwrap();
    assert!(first.created_keyspace);
    let labels: Vec<String> = bundled.iter().map(Migration::label).collect();
    assert_eq!(first.applied, labels);
    let mut expected: Vec<String> = config
        .tables
        .placeholders()
        .iter()
        .map(|(_, name)| (*name).to_owned())
        .chain(["schema_migrations".into(), "schema_migrations_lock".into()])
        .collect();
    expected.sort();
    assert_eq!(tables(&session, &config.keyspace).await, expected);

    let second = migrate(&session, &config, &bundled).await.unwrap();
    assert!(!second.created_keyspace);
    assert!(
        second.applied.is_empty(),
        "re-apply applied {:?}",
        second.applied
    );
    assert_eq!(second.already_applied, labels);

    // A core now accepts the keyspace and serves from it.
    let store = ScyllaStore::connect(config.clone()).await.unwrap();
    store.check_ready().await.unwrap();
    drop_keyspace(&session, &config.keyspace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_template_is_refused_and_nothing_is_applied() {
    let Some((config, session)) = fresh_keyspace("changed").await else {
        return;
    };
    let v1 = Migration::new(
        1,
        "first",
        "CREATE TABLE IF NOT EXISTS {{keyspace}}.t1 (a int PRIMARY KEY);",
    );
    migrate(&session, &config, std::slice::from_ref(&v1))
        .await
        .unwrap();

    let edited = Migration::new(
        1,
        "first",
        "CREATE TABLE IF NOT EXISTS {{keyspace}}.t1 (a int PRIMARY KEY, b int);",
    );
    let v2 = Migration::new(
        2,
        "second",
        "CREATE TABLE IF NOT EXISTS {{keyspace}}.t2 (a int PRIMARY KEY);",
    );
    let refused = migrate(&session, &config, &[edited, v2]).await;
    match refused {
        Err(SchemaError::Changed {
            version: 1,
            applied,
            bundled,
            ..
        }) => {
            assert_eq!(applied, v1.checksum());
            assert_ne!(applied, bundled);
        }
        other => panic!("expected Changed, got {other:?}"),
    }
    assert!(
        !tables(&session, &config.keyspace)
            .await
            .contains(&"t2".to_owned()),
        "a later migration was applied after the refusal"
    );
    // The lock was released: an unchanged run goes through at once.
    let v2 = Migration::new(
        2,
        "second",
        "CREATE TABLE IF NOT EXISTS {{keyspace}}.t2 (a int PRIMARY KEY);",
    );
    let report = migrate(&session, &config, &[v1, v2]).await.unwrap();
    assert_eq!(report.applied, ["0002_second"]);
    drop_keyspace(&session, &config.keyspace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_runs_apply_each_migration_once() {
    let Some((config, session)) = fresh_keyspace("concurrent").await else {
        return;
    };
    let other = connect_session(&config).await.unwrap();
    let bundled = schema::bundled();
    let (a, b) = tokio::join!(
        migrate(&session, &config, &bundled),
        migrate(&other, &config, &bundled)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let labels: Vec<String> = bundled.iter().map(Migration::label).collect();
    let mut applied = [a.applied.clone(), b.applied.clone()].concat();
    applied.sort();
    assert_eq!(applied, labels, "applied by both or neither: {a:?} {b:?}");
    assert!(
        a.already_applied == labels || b.already_applied == labels,
        "the loser saw them applied: {a:?} {b:?}"
    );
    schema::check(&session, &config, &bundled).await.unwrap();
    drop_keyspace(&session, &config.keyspace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_core_refuses_an_older_schema_and_migrate_on_start_fixes_it() {
    let Some((config, session)) = fresh_keyspace("older").await else {
        return;
    };
    let bundled = schema::bundled();
    // The keyspace exists, with an older schema: none of the bundled migrations.
    let older = Migration::new(
        0,
        "older",
        "CREATE TABLE IF NOT EXISTS {{keyspace}}.old (a int PRIMARY KEY);",
    );
    migrate(&session, &config, &[older]).await.unwrap();
    match ScyllaStore::open(config.clone()).await {
        Err(StoreError::Backend(why)) => {
            assert!(why.contains("older than this binary"), "{why}");
            assert!(why.contains("0001_initial"), "{why}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let mut dev = config.clone();
    dev.migrate_on_start = true;
    let store = ScyllaStore::open(dev).await.unwrap();
    store.check_ready().await.unwrap();
    schema::check(&session, &config, &bundled).await.unwrap();
    drop_keyspace(&session, &config.keyspace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_without_create_keyspace_names_the_fix() {
    let Some((mut config, session)) = fresh_keyspace("missing").await else {
        return;
    };
    config.create_keyspace = None;
    let refused = migrate(&session, &config, &schema::bundled()).await;
    assert!(
        matches!(refused, Err(SchemaError::KeyspaceMissing(_))),
        "{refused:?}"
    );
    assert!(refused
        .unwrap_err()
        .to_string()
        .contains("--create-keyspace"));
}

/// A keyspace from before per-sender idempotency (0001 only, messages
/// indexed by client_ref alone): migrate applies 0002 and copies each index
/// row under its message's sender, so a retry of an old message still
/// dedupes, and the same reference from someone else does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_0002_moves_the_client_ref_index_under_its_senders() {
    let Some((config, session)) = fresh_keyspace("sender_refs").await else {
        return;
    };
    let bundled = schema::bundled();
    migrate(&session, &config, &bundled[..1]).await.unwrap();
    let ks = &config.keyspace;
    for (seq, sender, client_ref) in [(1_i64, "ann", "m-1"), (2, "bob", "m-2")] {
        session
            .query_unpaged(
                format!(
                    "INSERT INTO {ks}.chat_messages (tenant, session_id, bucket, seq, id, \
                     client_ref, sender_id, content) VALUES ('t', 's', 0, ?, ?, ?, ?, 'old')"
                ),
                (seq, format!("id-{seq}"), client_ref, sender),
            )
            .await
            .unwrap();
        session
            .query_unpaged(
                format!(
                    "INSERT INTO {ks}.chat_by_client_ref (tenant, session_id, client_ref, seq) \
                     VALUES ('t', 's', ?, ?)"
                ),
                (client_ref, seq),
            )
            .await
            .unwrap();
    }
    let report = migrate(&session, &config, &bundled).await.unwrap();
    assert_eq!(
        report.applied,
        [
            "0002_chat_by_sender_ref",
            "0003_read_positions",
            "0004_connection_registry",
            "0005_ownership"
        ]
    );
    let store = ScyllaStore::connect(config.clone()).await.unwrap();
    let key = SessionKey::new("t", "s");
    let found = store
        .chat_by_client_refs(
            &key,
            &[
                ChatRef::new("ann", "m-1"),
                ChatRef::new("bob", "m-2"),
                ChatRef::new("bob", "m-1"),
            ],
        )
        .await
        .unwrap();
    let mut seqs: Vec<u64> = found.iter().map(|message| message.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, [1, 2]);
    drop_keyspace(&session, &config.keyspace).await;
}
