//! Helpers for tests that need a real CQL server (one shared Cassandra or
//! ScyllaDB): where it is (`MENO_CQL_NODES`, default `127.0.0.1:9042`), and
//! whether its absence skips the test or fails it (`MENO_REQUIRE_CQL=1`, as
//! in CI). Test code only; nothing in the service calls it.

use super::config::{KeyspaceOptions, ScyllaConfig};
use super::{connect_session, migrate, schema, ScyllaStore};

/// The shared keyspace of tests that isolate themselves by session ids.
pub const SHARED_TEST_KEYSPACE: &str = "meno_test";

/// Contact points from `MENO_CQL_NODES`.
pub fn cql_nodes() -> Vec<String> {
    std::env::var("MENO_CQL_NODES")
        .unwrap_or_else(|_| "127.0.0.1:9042".into())
        .split(',')
        .map(|node| node.trim().to_owned())
        .filter(|node| !node.is_empty())
        .collect()
}

/// Whether a missing CQL server fails tests (`MENO_REQUIRE_CQL=1`).
pub fn cql_required() -> bool {
    std::env::var("MENO_REQUIRE_CQL").is_ok_and(|value| value == "1" || value == "true")
}

/// A config for `keyspace` on the test cluster, creating the keyspace (one
/// replica) when migrating.
pub fn test_config(keyspace: &str) -> ScyllaConfig {
    let mut config = ScyllaConfig::local(keyspace);
    config.nodes = cql_nodes();
    config.create_keyspace = Some(KeyspaceOptions::default());
    config
}

/// True when a CQL server answers; otherwise prints why the test is skipped,
/// or panics when `MENO_REQUIRE_CQL=1`.
pub async fn cql_available(test: &str) -> bool {
    let mut config = test_config(SHARED_TEST_KEYSPACE);
    config.connect_timeout = std::time::Duration::from_secs(2);
    match connect_session(&config).await {
        Ok(_) => true,
        Err(err) if cql_required() => {
            panic!(
                "{test}: MENO_REQUIRE_CQL=1 but no CQL server at {:?}: {err}",
                config.nodes
            )
        }
        Err(err) => {
            eprintln!(
                "{test}: skipped: no CQL server at {:?} ({err}); run scripts/cassandra start",
                config.nodes
            );
            false
        }
    }
}

/// A store on `keyspace`, migrated (keyspace created if needed); `None`
/// (test skipped) when no CQL server answers.
pub async fn migrated_store(test: &str, keyspace: &str) -> Option<ScyllaStore> {
    if !cql_available(test).await {
        return None;
    }
    let config = test_config(keyspace);
    let session = connect_session(&config)
        .await
        .unwrap_or_else(|err| panic!("{test}: connect: {err}"));
    migrate(&session, &config, &schema::bundled())
        .await
        .unwrap_or_else(|err| panic!("{test}: migrate {keyspace}: {err}"));
    Some(
        ScyllaStore::connect(config)
            .await
            .unwrap_or_else(|err| panic!("{test}: open store: {err}")),
    )
}

/// A prefix no earlier run used, for session ids in a shared keyspace.
pub fn unique_prefix(name: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{name}-{nanos:x}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
