//! Ownership of sessions among core replicas on CQL (migration 0005): the
//! replicas' liveness leases and each session's owner row, every write a
//! lightweight transaction at the configured serial consistency, every read
//! of a row that decides a takeover at that serial consistency too (so an
//! in-flight Paxos round is finished before it is seen).

use async_trait::async_trait;
use futures_util::future::try_join_all;
use futures_util::TryStreamExt;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::Consistency;
use scylla::value::CqlTimestamp;

use super::config::ScyllaConfig;
use super::error::{corrupt, StoreFailure};
use super::rows::bucket_of;
use super::write::lwt_applied;
use super::{Connected, ScyllaStore};
use crate::store::{OwnershipStore, ReplicaLease, SessionKey, SessionOwner, StoreError};

/// Registration retries when another process bumps the same replica id.
const REGISTER_ATTEMPTS: usize = 5;

const OWNER_COLUMNS: &str = "owner_id, replica_epoch, owner_url, owner_epoch, released, seq_mark";

/// The ownership tables' prepared statements.
#[derive(Debug)]
pub(crate) struct OwnershipStatements {
    select_replica: PreparedStatement,
    insert_replica: PreparedStatement,
    bump_replica: PreparedStatement,
    renew_replica: PreparedStatement,
    select_replicas: PreparedStatement,
    select_owner: PreparedStatement,
    insert_owner: PreparedStatement,
    update_owner: PreparedStatement,
    release_owner: PreparedStatement,
    /// The fenced seq-block reservation (used by `write`).
    pub(crate) fence_seq_mark: PreparedStatement,
}

impl OwnershipStatements {
    pub(crate) async fn prepare(
        session: &Session,
        config: &ScyllaConfig,
    ) -> Result<Self, StoreFailure> {
        let ks = &config.keyspace;
        let (replicas, owners) = (&config.tables.core_replicas, &config.tables.session_owners);
        let serial = match config.serial_consistency {
            scylla::statement::SerialConsistency::Serial => Consistency::Serial,
            scylla::statement::SerialConsistency::LocalSerial => Consistency::LocalSerial,
        };
        // LWT: never retried blindly (the driver cannot know if it applied).
        let lwt = |cql: String| async move {
            let mut statement = session.prepare(cql).await?;
            statement.set_is_idempotent(false);
            statement.set_serial_consistency(Some(config.serial_consistency));
            Ok::<_, StoreFailure>(statement)
        };
        let serial_read = |cql: String| async move {
            let mut statement = session.prepare(cql).await?;
            statement.set_is_idempotent(true);
            statement.set_consistency(serial);
            Ok::<_, StoreFailure>(statement)
        };
        let mut select_replicas = session
            .prepare(format!(
                "SELECT replica_id, epoch, url, expires_at, leaving FROM {ks}.{replicas}"
            ))
            .await?;
        select_replicas.set_is_idempotent(true);
        Ok(Self {
            select_replica: serial_read(format!(
                "SELECT epoch FROM {ks}.{replicas} WHERE replica_id = ?"
            ))
            .await?,
            insert_replica: lwt(format!(
                "INSERT INTO {ks}.{replicas} (replica_id, epoch, url, expires_at, leaving) \
                 VALUES (?, 1, ?, ?, false) IF NOT EXISTS"
            ))
            .await?,
            bump_replica: lwt(format!(
                "UPDATE {ks}.{replicas} SET epoch = ?, url = ?, expires_at = ?, leaving = false \
                 WHERE replica_id = ? IF epoch = ?"
            ))
            .await?,
            renew_replica: lwt(format!(
                "UPDATE {ks}.{replicas} SET expires_at = ?, leaving = ? \
                 WHERE replica_id = ? IF epoch = ? AND expires_at > ?"
            ))
            .await?,
            select_replicas,
            select_owner: serial_read(format!(
                "SELECT {OWNER_COLUMNS} FROM {ks}.{owners} WHERE tenant = ? AND session_id = ?"
            ))
            .await?,
            insert_owner: lwt(format!(
                "INSERT INTO {ks}.{owners} (tenant, session_id, {OWNER_COLUMNS}) \
                 VALUES (?, ?, ?, ?, ?, ?, false, ?) IF NOT EXISTS"
            ))
            .await?,
            update_owner: lwt(format!(
                "UPDATE {ks}.{owners} SET owner_id = ?, replica_epoch = ?, owner_url = ?, \
                 owner_epoch = ?, released = false \
                 WHERE tenant = ? AND session_id = ? IF owner_epoch = ?"
            ))
            .await?,
            release_owner: lwt(format!(
                "UPDATE {ks}.{owners} SET released = true \
                 WHERE tenant = ? AND session_id = ? IF owner_epoch = ?"
            ))
            .await?,
            fence_seq_mark: lwt(format!(
                "UPDATE {ks}.{owners} SET seq_mark = ? \
                 WHERE tenant = ? AND session_id = ? IF owner_epoch = ?"
            ))
            .await?,
        })
    }
}

/// A u64 epoch or seq as a CQL bigint.
pub(crate) fn bigint(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value)
        .map_err(|_| StoreError::Backend(format!("{what} {value} exceeds a bigint")))
}

fn unsigned(value: Option<i64>, what: &str) -> Result<u64, StoreError> {
    let value = value.unwrap_or_default();
    u64::try_from(value).map_err(|_| corrupt(what, format!("negative {value}")))
}

/// A session owner row as selected.
type OwnerRow = (
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<bool>,
    Option<i64>,
);

/// A replica lease row as selected.
type ReplicaRow = (
    String,
    Option<i64>,
    Option<String>,
    Option<CqlTimestamp>,
    Option<bool>,
);

async fn register(
    c: &Connected,
    replica_id: &str,
    url: &str,
    expires_at_ms: i64,
) -> Result<u64, StoreError> {
    let s = &c.statements.ownership;
    let what = format!("replica lease {replica_id}");
    for _ in 0..REGISTER_ATTEMPTS {
        let stored = c
            .session
            .execute_unpaged(&s.select_replica, (replica_id,))
            .await?
            .into_rows_result()
            .map_err(|err| corrupt(&what, err))?
            .maybe_first_row::<(Option<i64>,)>()
            .map_err(|err| corrupt(&what, err))?;
        let expires_at = CqlTimestamp(expires_at_ms);
        let (result, epoch) = match stored {
            None => (
                c.session
                    .execute_unpaged(&s.insert_replica, (replica_id, url, expires_at))
                    .await?,
                1,
            ),
            Some((epoch,)) => {
                let epoch = unsigned(epoch, &what)?;
                let next = epoch + 1;
                (
                    c.session
                        .execute_unpaged(
                            &s.bump_replica,
                            (
                                bigint(next, "replica epoch")?,
                                url,
                                expires_at,
                                replica_id,
                                bigint(epoch, "replica epoch")?,
                            ),
                        )
                        .await?,
                    next,
                )
            }
        };
        if lwt_applied(&what, result)? {
            return Ok(epoch);
        }
    }
    Err(StoreError::Conflict(format!(
        "{what}: {REGISTER_ATTEMPTS} registrations raced with another process of the same id"
    )))
}

#[async_trait]
impl OwnershipStore for ScyllaStore {
    async fn register_replica(
        &self,
        replica_id: &str,
        url: &str,
        expires_at_ms: i64,
    ) -> Result<u64, StoreError> {
        register(&*self.connected()?, replica_id, url, expires_at_ms).await
    }

    async fn renew_replica(
        &self,
        replica_id: &str,
        epoch: u64,
        expires_at_ms: i64,
        leaving: bool,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let c = self.connected()?;
        let result = c
            .session
            .execute_unpaged(
                &c.statements.ownership.renew_replica,
                (
                    CqlTimestamp(expires_at_ms),
                    leaving,
                    replica_id,
                    bigint(epoch, "replica epoch")?,
                    CqlTimestamp(now_ms),
                ),
            )
            .await?;
        lwt_applied(&format!("replica lease {replica_id}"), result)
    }

    async fn replicas(&self) -> Result<Vec<ReplicaLease>, StoreError> {
        let c = self.connected()?;
        let what = "replica leases";
        let rows: Vec<ReplicaRow> = c
            .session
            .execute_iter(c.statements.ownership.select_replicas.clone(), ())
            .await
            .map_err(StoreFailure::from)?
            .rows_stream::<ReplicaRow>()
            .map_err(|err| corrupt(what, err))?
            .try_collect()
            .await
            .map_err(|err| corrupt(what, err))?;
        rows.into_iter()
            .map(|(replica_id, epoch, url, expires_at, leaving)| {
                Ok(ReplicaLease {
                    replica_id,
                    epoch: unsigned(epoch, what)?,
                    url: url.unwrap_or_default(),
                    expires_at_ms: expires_at.map_or(0, |at| at.0),
                    leaving: leaving.unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn session_owner(&self, key: &SessionKey) -> Result<Option<SessionOwner>, StoreError> {
        let c = self.connected()?;
        let what = format!("owner of {key}");
        let row = c
            .session
            .execute_unpaged(
                &c.statements.ownership.select_owner,
                (&key.tenant, &key.session_id),
            )
            .await?
            .into_rows_result()
            .map_err(|err| corrupt(&what, err))?
            .maybe_first_row::<OwnerRow>()
            .map_err(|err| corrupt(&what, err))?;
        row.map(
            |(owner_id, replica_epoch, owner_url, owner_epoch, released, seq_mark)| {
                Ok(SessionOwner {
                    owner_id: owner_id.unwrap_or_default(),
                    replica_epoch: unsigned(replica_epoch, &what)?,
                    owner_url: owner_url.unwrap_or_default(),
                    owner_epoch: unsigned(owner_epoch, &what)?,
                    released: released.unwrap_or_default(),
                    seq_mark: unsigned(seq_mark, &what)?,
                })
            },
        )
        .transpose()
    }

    async fn take_session(
        &self,
        key: &SessionKey,
        expected_owner_epoch: Option<u64>,
        owner: &SessionOwner,
    ) -> Result<bool, StoreError> {
        let c = self.connected()?;
        let s = &c.statements.ownership;
        let replica_epoch = bigint(owner.replica_epoch, "replica epoch")?;
        let owner_epoch = bigint(owner.owner_epoch, "owner epoch")?;
        let result = match expected_owner_epoch {
            None => {
                c.session
                    .execute_unpaged(
                        &s.insert_owner,
                        (
                            &key.tenant,
                            &key.session_id,
                            &owner.owner_id,
                            replica_epoch,
                            &owner.owner_url,
                            owner_epoch,
                            bigint(owner.seq_mark, "seq mark")?,
                        ),
                    )
                    .await?
            }
            Some(expected) => {
                c.session
                    .execute_unpaged(
                        &s.update_owner,
                        (
                            &owner.owner_id,
                            replica_epoch,
                            &owner.owner_url,
                            owner_epoch,
                            &key.tenant,
                            &key.session_id,
                            bigint(expected, "owner epoch")?,
                        ),
                    )
                    .await?
            }
        };
        lwt_applied(&format!("owner of {key}"), result)
    }

    async fn release_session(
        &self,
        key: &SessionKey,
        owner_epoch: u64,
    ) -> Result<bool, StoreError> {
        let c = self.connected()?;
        let result = c
            .session
            .execute_unpaged(
                &c.statements.ownership.release_owner,
                (
                    &key.tenant,
                    &key.session_id,
                    bigint(owner_epoch, "owner epoch")?,
                ),
            )
            .await?;
        lwt_applied(&format!("owner of {key}"), result)
    }

    async fn void_chat(
        &self,
        key: &SessionKey,
        after_seq: u64,
        through_seq: u64,
        at_us: i64,
    ) -> Result<(), StoreError> {
        if through_seq <= after_seq {
            return Ok(());
        }
        let c = self.connected()?;
        let (after, through) = (bigint(after_seq, "seq")?, bigint(through_seq, "seq mark")?);
        // One range tombstone per bucket the seqs span.
        let buckets = bucket_of(after_seq + 1)..=bucket_of(through_seq);
        try_join_all(buckets.map(|bucket| {
            c.session.execute_unpaged(
                &c.statements.void_messages,
                (at_us, &key.tenant, &key.session_id, bucket, after, through),
            )
        }))
        .await?;
        Ok(())
    }
}
