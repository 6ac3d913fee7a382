//! `meno-core migrate`: create the keyspace if asked, then apply the pending
//! templates in order, each recorded with its checksum in `schema_migrations`.
//!
//! Safe to run twice (applied versions are skipped; every template uses
//! `IF NOT EXISTS`, so a run interrupted half-way is finished by the next) and
//! from several processes at once: a lock row taken with an LWT
//! (`INSERT ... IF NOT EXISTS USING TTL`) lets one run apply while the others
//! wait, then find nothing left to do. A crashed holder's lock expires with
//! its TTL. A changed template is refused before anything is applied.
//!
//! DDL runs as plain (unprepared) statements, since CQL schema changes take
//! no bind values; the lock and the records are prepared statements.

use std::time::{Duration, Instant};

use scylla::client::session::Session;
use scylla::statement::Statement;
use scylla::value::{CqlTimestamp, CqlValue, Row};

use super::config::{DatabaseFlavor, KeyspaceOptions, ReplicationStrategy, ScyllaConfig};
use super::schema::{
    applied, names_parameter, pending, Migration, SchemaError, MIGRATIONS_LOCK_TABLE,
    MIGRATIONS_TABLE,
};
use crate::clock::{Clock, SystemClock};

/// A held lock expires after this long, should its holder die.
const LOCK_TTL_SECS: i32 = 300;
/// How long a run waits for another run's lock.
const LOCK_WAIT: Duration = Duration::from_secs(LOCK_TTL_SECS as u64 + 30);
/// How often a waiting run tries the lock again.
const LOCK_POLL: Duration = Duration::from_millis(250);
/// Schema changes can be slow on a busy cluster; allow them more than a read.
const DDL_TIMEOUT: Duration = Duration::from_secs(120);

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Whether the keyspace was created by this run (`false` if it existed).
    pub created_keyspace: bool,
    /// Migrations applied by this run, as `0001_initial`.
    pub applied: Vec<String>,
    /// Migrations found already applied.
    pub already_applied: Vec<String>,
}

/// Applies `migrations` (normally [`super::schema::bundled`]) to the
/// configured keyspace.
pub async fn migrate(
    session: &Session,
    config: &ScyllaConfig,
    migrations: &[Migration],
) -> Result<MigrationReport, SchemaError> {
    let mut report = MigrationReport::default();
    let keyspace = config.keyspace.as_str();
    let exists = keyspace_exists(session, keyspace).await?;
    match (&config.create_keyspace, exists) {
        (_, true) => {}
        (Some(options), false) => {
            create_keyspace(session, keyspace, options).await?;
            report.created_keyspace = true;
        }
        (None, false) => return Err(SchemaError::KeyspaceMissing(keyspace.to_owned())),
    }
    for ddl in [
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.{MIGRATIONS_TABLE} (version int PRIMARY KEY, \
             name text, checksum text, names text, applied_at timestamp)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.{MIGRATIONS_LOCK_TABLE} (name text PRIMARY KEY, \
             owner text, acquired_at timestamp)"
        ),
    ] {
        run_ddl(session, &ddl).await?;
    }

    let lock = Lock::acquire(session, config).await?;
    let outcome = apply_pending(session, config, migrations, &mut report).await;
    lock.release(session).await;
    outcome.map(|()| report)
}

async fn apply_pending(
    session: &Session,
    config: &ScyllaConfig,
    migrations: &[Migration],
    report: &mut MigrationReport,
) -> Result<(), SchemaError> {
    let keyspace = config.keyspace.as_str();
    let applied = applied(session, keyspace).await?;
    let pending = pending(config, migrations, &applied)?;
    report.already_applied = migrations
        .iter()
        .filter(|m| applied.contains_key(&m.version))
        .map(Migration::label)
        .collect();
    let mut record = session
        .prepare(format!(
            "INSERT INTO {keyspace}.{MIGRATIONS_TABLE} (version, name, checksum, names, applied_at) \
             VALUES (?, ?, ?, ?, ?)"
        ))
        .await
        .map_err(|err| SchemaError::from(super::error::StoreFailure::from(err)))?;
    record.set_consistency(config.consistency);
    for migration in pending {
        let names = names_parameter(config, migration);
        let statements = migration.render(keyspace, &config.tables)?;
        tracing::info!(migration = %migration.label(), statements = statements.len(), "applying migration");
        for statement in &statements {
            run_ddl(session, statement).await?;
        }
        if migration.label() == super::backfill::SENDER_REFS_MIGRATION {
            super::backfill::sender_refs(session, config).await?;
        }
        session
            .execute_unpaged(
                &record,
                (
                    migration.version,
                    &migration.name,
                    migration.checksum(),
                    &names,
                    CqlTimestamp(SystemClock.now_ms()),
                ),
            )
            .await?;
        report.applied.push(migration.label());
    }
    Ok(())
}

async fn run_ddl(session: &Session, cql: &str) -> Result<(), SchemaError> {
    let mut statement = Statement::new(cql.to_owned());
    statement.set_request_timeout(Some(DDL_TIMEOUT));
    session
        .query_unpaged(statement, ())
        .await
        .map_err(|err| match SchemaError::from(err) {
            SchemaError::Database(why) => SchemaError::Database(format!("{why}\n  in: {cql}")),
            other => other,
        })?;
    Ok(())
}

async fn keyspace_exists(session: &Session, keyspace: &str) -> Result<bool, SchemaError> {
    let result = session
        .query_unpaged(
            "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = ?",
            (keyspace,),
        )
        .await?;
    let rows = result
        .into_rows_result()
        .map_err(|err| SchemaError::Database(err.to_string()))?;
    Ok(rows.rows_num() > 0)
}

/// ScyllaDB has `system.versions`; Cassandra has not.
async fn is_scylladb(session: &Session) -> bool {
    session
        .query_unpaged("SELECT version FROM system.versions", ())
        .await
        .is_ok()
}

/// The `CREATE KEYSPACE` statement for `options` on a ScyllaDB or not.
pub fn create_keyspace_cql(keyspace: &str, options: &KeyspaceOptions, scylladb: bool) -> String {
    let replication = match options.strategy {
        ReplicationStrategy::Simple => format!(
            "{{'class': 'SimpleStrategy', 'replication_factor': {}}}",
            options.replication_factor
        ),
        ReplicationStrategy::NetworkTopology => format!(
            "{{'class': 'NetworkTopologyStrategy', '{}': {}}}",
            options.datacenter.as_deref().unwrap_or_default(),
            options.replication_factor
        ),
    };
    let mut cql =
        format!("CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication}");
    if scylladb {
        // The lease is written with LWT, which tablets support only on recent
        // ScyllaDB releases: vnodes unless the operator asks for tablets.
        cql.push_str(if options.tablets {
            " AND tablets = {'enabled': true}"
        } else {
            " AND tablets = {'enabled': false}"
        });
    }
    cql
}

async fn create_keyspace(
    session: &Session,
    keyspace: &str,
    options: &KeyspaceOptions,
) -> Result<(), SchemaError> {
    let scylladb = match options.flavor {
        DatabaseFlavor::Scylladb => true,
        DatabaseFlavor::Cassandra => false,
        DatabaseFlavor::Auto => is_scylladb(session).await,
    };
    let cql = create_keyspace_cql(keyspace, options, scylladb);
    tracing::info!(%keyspace, scylladb, "creating keyspace: {cql}");
    run_ddl(session, &cql).await
}

/// The migration lock, held by one run at a time.
#[derive(Debug)]
struct Lock {
    owner: String,
    keyspace: String,
}

impl Lock {
    async fn acquire(session: &Session, config: &ScyllaConfig) -> Result<Self, SchemaError> {
        let keyspace = config.keyspace.clone();
        let owner = uuid::Uuid::now_v7().to_string();
        let mut take = session
            .prepare(format!(
                "INSERT INTO {keyspace}.{MIGRATIONS_LOCK_TABLE} (name, owner, acquired_at) \
                 VALUES ('schema', ?, ?) IF NOT EXISTS USING TTL {LOCK_TTL_SECS}"
            ))
            .await
            .map_err(|err| SchemaError::from(super::error::StoreFailure::from(err)))?;
        take.set_serial_consistency(Some(config.serial_consistency));
        let started = Instant::now();
        let mut waiting_logged = false;
        loop {
            let result = session
                .execute_unpaged(&take, (&owner, CqlTimestamp(SystemClock.now_ms())))
                .await?;
            if lwt_applied(result)? {
                return Ok(Self { owner, keyspace });
            }
            if started.elapsed() > LOCK_WAIT {
                return Err(SchemaError::LockTimeout(keyspace));
            }
            if !waiting_logged {
                tracing::info!(%keyspace, "another migrate holds the lock: waiting");
                waiting_logged = true;
            }
            tokio::time::sleep(LOCK_POLL).await;
        }
    }

    /// Best effort: a lock that cannot be released expires with its TTL.
    async fn release(self, session: &Session) {
        let released = async {
            let release = session
                .prepare(format!(
                    "DELETE FROM {}.{MIGRATIONS_LOCK_TABLE} WHERE name = 'schema' IF owner = ?",
                    self.keyspace
                ))
                .await
                .map_err(|err| err.to_string())?;
            session
                .execute_unpaged(&release, (&self.owner,))
                .await
                .map_err(|err| err.to_string())
        };
        if let Err(err) = released.await {
            tracing::warn!(error = %err, "could not release the migration lock; it expires by itself");
        }
    }
}

fn lwt_applied(result: scylla::response::query_result::QueryResult) -> Result<bool, SchemaError> {
    let rows = result
        .into_rows_result()
        .map_err(|err| SchemaError::Database(err.to_string()))?;
    let (index, _) = rows
        .column_specs()
        .get_by_name("[applied]")
        .ok_or_else(|| SchemaError::Database("LWT result without [applied]".into()))?;
    let row: Row = rows
        .first_row()
        .map_err(|err| SchemaError::Database(err.to_string()))?;
    Ok(matches!(
        row.columns.get(index),
        Some(Some(CqlValue::Boolean(true)))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tablets_are_disabled_on_scylladb_only() {
        let options = KeyspaceOptions::default();
        assert_eq!(
            create_keyspace_cql("ks", &options, false),
            "CREATE KEYSPACE IF NOT EXISTS ks WITH replication = \
             {'class': 'SimpleStrategy', 'replication_factor': 1}"
        );
        let nts = KeyspaceOptions {
            strategy: ReplicationStrategy::NetworkTopology,
            datacenter: Some("dc1".into()),
            replication_factor: 3,
            ..KeyspaceOptions::default()
        };
        assert_eq!(
            create_keyspace_cql("ks", &nts, true),
            "CREATE KEYSPACE IF NOT EXISTS ks WITH replication = \
             {'class': 'NetworkTopologyStrategy', 'dc1': 3} AND tablets = {'enabled': false}"
        );
        let tablets = KeyspaceOptions {
            tablets: true,
            ..nts
        };
        assert!(create_keyspace_cql("ks", &tablets, true).ends_with("{'enabled': true}"));
    }
}
