//! The ScyllaDB [`Store`] (also runs on Apache Cassandra 5.0), on the `scylla`
//! driver: prepared statements only, token-aware routing, configurable
//! consistency (`LOCAL_QUORUM`, `LOCAL_SERIAL` for LWT), a client-side
//! monotonic timestamp per write.
//!
//! It owns the driver session and its connection state, nothing else: the
//! session actor decides every write. Parts:
//! - `config`: names, consistency, timeouts; `schema`: the migration templates
//!   and the serving check; `migrate`: `meno-core migrate`;
//! - `statements`: every prepared statement; `rows`: CQL rows <-> core types;
//! - `positions`: read positions and the message-id index; `registry`: the
//!   connection registry (migration 0004);
//! - `read` and `write`: the [`Store`] methods; `error`: driver errors as
//!   [`StoreError`]s (anything transient is `Unavailable`).
//!
//! Availability: [`ScyllaStore::open`] connects at once when it can. When the
//! cluster is unreachable it returns a store that answers `Unavailable` (so
//! gRPC callers get `UNAVAILABLE` and readiness is NOT_SERVING) while a task
//! retries with backoff and logs each failure; once connected, the driver
//! itself reconnects to nodes that go away and come back. Every request has a
//! deadline (`request_timeout`), so nothing hangs. A schema older than this
//! binary is refused at start-up (run `meno-core migrate`), unless
//! `migrate_on_start` applies it.

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use meno_proto::{ChatMessage, RegisteredConnection};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::policies::timestamp_generator::MonotonicTimestampGenerator;
use tokio::sync::watch;

use super::{
    ChatRef, MessageLocation, RegistryLookup, SessionKey, SessionRecord, SessionWrite, Store,
    StoreError,
};
use error::StoreFailure;
use statements::Statements;

mod backfill;
pub mod config;
mod error;
pub mod migrate;
mod ownership;
mod positions;
mod read;
mod registry;
mod rows;
pub mod schema;
mod statements;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod write;

pub use config::{ScyllaConfig, TableNames};
pub use migrate::{migrate, MigrationReport};
pub use schema::{Migration, SchemaError};

/// First and longest wait between connection attempts.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(15);

/// A driver session with the store's statements prepared on it.
#[derive(Debug)]
pub(crate) struct Connected {
    pub(crate) session: Session,
    pub(crate) statements: Statements,
}

/// Where the store stands with its cluster.
#[derive(Debug, Clone)]
enum Connection {
    /// Not connected yet; why the last attempt failed.
    Connecting(String),
    Ready(Arc<Connected>),
}

/// A [`Store`] in a ScyllaDB or Cassandra keyspace. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ScyllaStore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: ScyllaConfig,
    connection: watch::Sender<Connection>,
}

/// Why a connection attempt failed.
#[derive(Debug)]
enum ConnectError {
    /// The cluster could not be reached or answered with a transient error.
    Unreachable(String),
    /// Configuration or schema: retrying will not fix it.
    Refused(String),
}

impl From<StoreFailure> for ConnectError {
    fn from(failure: StoreFailure) -> Self {
        match failure {
            StoreFailure::Transient(why) => ConnectError::Unreachable(why),
            StoreFailure::Permanent(why) => ConnectError::Refused(why),
        }
    }
}

impl From<SchemaError> for ConnectError {
    fn from(err: SchemaError) -> Self {
        match err {
            SchemaError::Unavailable(why) => ConnectError::Unreachable(why),
            other => ConnectError::Refused(other.to_string()),
        }
    }
}

/// Opens a driver session on the configured cluster (used by the store and
/// by `meno-core migrate`).
pub async fn connect_session(config: &ScyllaConfig) -> Result<Session, StoreError> {
    build_session(config).await.map_err(StoreError::from)
}

async fn build_session(config: &ScyllaConfig) -> Result<Session, StoreFailure> {
    let mut routing = DefaultPolicy::builder().token_aware(true);
    if let Some(datacenter) = &config.local_datacenter {
        routing = routing
            .prefer_datacenter(datacenter.clone())
            .permit_dc_failover(false);
    }
    let profile = ExecutionProfile::builder()
        .consistency(config.consistency)
        .serial_consistency(Some(config.serial_consistency))
        .request_timeout(Some(config.request_timeout))
        .load_balancing_policy(routing.build())
        .build();
    let mut builder = SessionBuilder::new()
        .known_nodes(&config.nodes)
        .connection_timeout(config.connect_timeout)
        .default_execution_profile_handle(profile.into_handle())
        .timestamp_generator(Arc::new(MonotonicTimestampGenerator::new()))
        .keyspaces_to_fetch([config.keyspace.clone()]);
    if let Some((user, password)) = &config.credentials {
        builder = builder.user(user, password);
    }
    if let Some(ca) = &config.tls_ca {
        builder = builder.tls_context(Some(tls_context(ca)?));
    }
    // Building resolves names and opens the control connection; bound it, as
    // an unroutable address could otherwise hold start-up for long.
    let deadline = config.connect_timeout * 3;
    match tokio::time::timeout(deadline, builder.build()).await {
        Ok(session) => Ok(session?),
        Err(_) => Err(StoreFailure::Transient(format!(
            "no connection to {} within {deadline:?}",
            config.nodes.join(",")
        ))),
    }
}

fn tls_context(ca: &std::path::Path) -> Result<openssl::ssl::SslContext, StoreFailure> {
    use openssl::ssl::{SslContextBuilder, SslMethod, SslVerifyMode};
    let refused = |err: openssl::error::ErrorStack| {
        StoreFailure::Permanent(format!("TLS with CA {}: {err}", ca.display()))
    };
    let mut context = SslContextBuilder::new(SslMethod::tls()).map_err(refused)?;
    context.set_ca_file(ca).map_err(refused)?;
    context.set_verify(SslVerifyMode::PEER);
    Ok(context.build())
}

async fn connect_once(config: &ScyllaConfig) -> Result<Connected, ConnectError> {
    let session = build_session(config).await?;
    let bundled = schema::bundled();
    if config.migrate_on_start {
        let report = migrate::migrate(&session, config, &bundled).await?;
        if !report.applied.is_empty() {
            tracing::info!(applied = ?report.applied, "migrations applied at start-up");
        }
    }
    schema::check(&session, config, &bundled).await?;
    let statements = Statements::prepare(&session, config).await?;
    Ok(Connected {
        session,
        statements,
    })
}

impl ScyllaStore {
    /// Connects to the cluster and checks the schema. When the cluster cannot
    /// be reached, returns a store that is unavailable until a background
    /// task connects (with backoff); a refused configuration or an older
    /// schema is an error at once.
    pub async fn open(config: ScyllaConfig) -> Result<Self, StoreError> {
        match connect_once(&config).await {
            Ok(connected) => {
                tracing::info!(nodes = %config.nodes.join(","), keyspace = %config.keyspace, "connected to the CQL cluster");
                Ok(Self::with(config, Connection::Ready(Arc::new(connected))))
            }
            Err(ConnectError::Refused(why)) => Err(StoreError::Backend(why)),
            Err(ConnectError::Unreachable(why)) => {
                tracing::warn!(
                    nodes = %config.nodes.join(","),
                    error = %why,
                    "CQL cluster unreachable: serving NOT_SERVING and retrying"
                );
                let store = Self::with(config, Connection::Connecting(why));
                tokio::spawn(keep_connecting(Arc::downgrade(&store.shared)));
                Ok(store)
            }
        }
    }

    /// Connects now or fails: for tests and tools that need the cluster.
    pub async fn connect(config: ScyllaConfig) -> Result<Self, StoreError> {
        match connect_once(&config).await {
            Ok(connected) => Ok(Self::with(config, Connection::Ready(Arc::new(connected)))),
            Err(ConnectError::Unreachable(why)) => Err(StoreError::Unavailable(why)),
            Err(ConnectError::Refused(why)) => Err(StoreError::Backend(why)),
        }
    }

    fn with(config: ScyllaConfig, connection: Connection) -> Self {
        let (connection, _) = watch::channel(connection);
        Self {
            shared: Arc::new(Shared { config, connection }),
        }
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &ScyllaConfig {
        &self.shared.config
    }

    fn connected(&self) -> Result<Arc<Connected>, StoreError> {
        match &*self.shared.connection.borrow() {
            Connection::Ready(connected) => Ok(Arc::clone(connected)),
            Connection::Connecting(why) => Err(StoreError::Unavailable(format!(
                "not connected to the CQL cluster yet: {why}"
            ))),
        }
    }

    fn presence_ttl_secs(&self) -> i32 {
        i32::try_from(self.shared.config.presence_row_ttl.as_secs()).unwrap_or(i32::MAX)
    }
}

/// Retries connecting with exponential backoff until it succeeds or the
/// store is dropped.
async fn keep_connecting(shared: Weak<Shared>) {
    let mut delay = RETRY_FIRST;
    let mut attempt = 1u32;
    loop {
        tokio::time::sleep(delay).await;
        let Some(store) = shared.upgrade() else {
            return;
        };
        attempt += 1;
        match connect_once(&store.config).await {
            Ok(connected) => {
                tracing::info!(attempt, "connected to the CQL cluster: store available");
                store
                    .connection
                    .send_replace(Connection::Ready(Arc::new(connected)));
                return;
            }
            Err(ConnectError::Unreachable(why)) => {
                tracing::warn!(attempt, retry_in = ?delay, error = %why, "CQL cluster still unreachable");
                store.connection.send_replace(Connection::Connecting(why));
            }
            Err(ConnectError::Refused(why)) => {
                tracing::error!(attempt, retry_in = ?RETRY_MAX, error = %why, "CQL cluster refuses this core");
                store.connection.send_replace(Connection::Connecting(why));
                delay = RETRY_MAX;
            }
        }
        delay = (delay * 2).min(RETRY_MAX);
    }
}

#[async_trait]
impl Store for ScyllaStore {
    /// Connections are returned whatever their `expires_at_ms` (until their
    /// TTL collects them): the caller filters by its own clock.
    async fn load_session(&self, key: &SessionKey) -> Result<SessionRecord, StoreError> {
        read::load_session(&*self.connected()?, key).await
    }

    async fn write_session(&self, key: &SessionKey, write: SessionWrite) -> Result<(), StoreError> {
        if write.is_empty() {
            return Ok(());
        }
        let connected = self.connected()?;
        write::write_session(&connected, self.presence_ttl_secs(), key, write).await
    }

    async fn chat_page(
        &self,
        key: &SessionKey,
        before_seq: Option<u64>,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        read::chat_page(&*self.connected()?, key, before_seq, limit).await
    }

    async fn chat_after(
        &self,
        key: &SessionKey,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        read::chat_after(&*self.connected()?, key, after_seq, limit).await
    }

    /// Found messages come back in seq order, each once.
    async fn chat_by_client_refs(
        &self,
        key: &SessionKey,
        refs: &[ChatRef],
    ) -> Result<Vec<ChatMessage>, StoreError> {
        read::chat_by_client_refs(&*self.connected()?, key, refs).await
    }

    async fn message_location(
        &self,
        tenant: &str,
        message_id: &str,
    ) -> Result<Option<MessageLocation>, StoreError> {
        positions::message_location(&*self.connected()?, tenant, message_id).await
    }

    async fn put_registered(&self, rows: &[RegisteredConnection]) -> Result<(), StoreError> {
        registry::put(&*self.connected()?, rows).await
    }

    async fn registered(
        &self,
        tenant: &str,
        connection_ids: &[String],
    ) -> Result<Vec<RegisteredConnection>, StoreError> {
        registry::get(&*self.connected()?, tenant, connection_ids).await
    }

    async fn registered_by(
        &self,
        tenant: &str,
        lookup: &RegistryLookup,
    ) -> Result<Vec<RegisteredConnection>, StoreError> {
        registry::get_by(&*self.connected()?, tenant, lookup).await
    }

    async fn delete_registered(&self, rows: &[RegisteredConnection]) -> Result<(), StoreError> {
        registry::delete(&*self.connected()?, rows).await
    }

    /// One read of the session row: a session with a seq mark exists.
    async fn session_exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        read::session_exists(&*self.connected()?, key).await
    }

    fn ownership(&self) -> Option<Arc<dyn super::OwnershipStore>> {
        Some(Arc::new(self.clone()))
    }

    /// One read of the sessions table at the configured consistency, within
    /// the request deadline.
    async fn check_ready(&self) -> Result<(), StoreError> {
        let connected = self.connected()?;
        let probe = connected
            .session
            .execute_unpaged(&connected.statements.probe, ("", ""));
        match tokio::time::timeout(self.shared.config.request_timeout, probe).await {
            Ok(result) => result.map(drop).map_err(StoreError::from),
            Err(_) => Err(StoreError::Unavailable(format!(
                "readiness probe took over {:?}",
                self.shared.config.request_timeout
            ))),
        }
    }
}
