//! The `Store` trait: everything the core keeps durably, and nothing else.
//!
//! A store never decides anything: the session actor is the only writer of a
//! session's state and hands the store whole, already-decided writes. Every
//! implementation must pass [`conformance`].

use std::sync::Arc;

use async_trait::async_trait;
use meno_proto::{
    ChatMessage, ConnectionInfo, LeaseState, PresenceState, ReadPosition, RegisteredConnection,
};

/// The suite every store must pass (tests only: feature `testing`).
#[cfg(any(test, feature = "testing"))]
pub mod conformance;
#[cfg(test)]
#[macro_use]
mod engine_tests;
pub mod embedded;
pub mod fjall_store;
mod group_commit;
pub mod memory;
mod rows;
pub mod scylla;
pub mod traced;

pub use self::scylla::ScyllaStore;
pub use embedded::EmbeddedStore;
pub use fjall_store::FjallStore;
pub use memory::MemoryStore;
pub use traced::TracedStore;

pub use meno_common::key::{SessionKey, DEFAULT_TENANT};

/// The idempotency key of a chat message within its session: the sender and
/// the sender's own reference. The same client_ref from two senders names two
/// messages, so nobody can block another's message by guessing its id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChatRef {
    /// The participant (or backend) that sent the message.
    pub sender_id: String,
    /// The sender's reference (seed 000's `messageId`).
    pub client_ref: String,
}

impl ChatRef {
    /// A reference from its parts.
    pub fn new(sender_id: impl Into<String>, client_ref: impl Into<String>) -> Self {
        Self {
            sender_id: sender_id.into(),
            client_ref: client_ref.into(),
        }
    }

    /// The key `message` is stored under, if it has a client_ref.
    pub fn of(message: &ChatMessage) -> Option<Self> {
        (!message.client_ref.is_empty())
            .then(|| Self::new(message.sender_id.clone(), message.client_ref.clone()))
    }
}

/// A connection row: written whole, with the time it expires unless refreshed.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredConnection {
    /// The connection as the bridge registered it.
    pub info: ConnectionInfo,
    /// Unix milliseconds after which the connection is considered gone.
    pub expires_at_ms: i64,
}

/// A session's durable state as the actor needs it to start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionRecord {
    /// The highest seq reserved so far; a new actor starts above it.
    pub seq_mark: u64,
    /// The shared step.
    pub step_index: i64,
    /// The last lease written, active or cleared; `None` if never written.
    pub lease: Option<LeaseState>,
    /// Presence rows as last written behind.
    pub participants: Vec<PresenceState>,
    /// Connection rows as stored, expired or not: the caller filters by time.
    pub connections: Vec<StoredConnection>,
    /// Every user's read position, in any order.
    pub reads: Vec<ReadPosition>,
}

/// Where a message is, found by its server id within a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageLocation {
    /// The session holding it.
    pub session_id: String,
    /// Its seq there.
    pub seq: u64,
}

/// A conditional lease write: applied only when the stored lease still has
/// `expected_epoch` (`None`: no lease row yet). Fences a deposed writer.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseWrite {
    /// The epoch the writer believes is stored.
    pub expected_epoch: Option<u64>,
    /// The new lease state.
    pub state: LeaseState,
}

/// One batch of already-decided writes for one session, applied atomically
/// where the backend allows and in any case before the events it produced are
/// published.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionWrite {
    /// A new reserved seq mark (only ever grows).
    pub seq_mark: Option<u64>,
    /// A new step index.
    pub step_index: Option<i64>,
    /// A lease change.
    pub lease: Option<LeaseWrite>,
    /// New chat messages, each with its (sender, client_ref) index entry and
    /// its (tenant, message id) index entry, written atomically with it. A
    /// message not stored (its seq or its sender's client_ref is taken) gets
    /// neither.
    pub messages: Vec<ChatMessage>,
    /// Presence rows written whole (the latest state per participant).
    pub presence: Vec<PresenceState>,
    /// Presence rows to delete.
    pub presence_removed: Vec<String>,
    /// Connection rows written whole.
    pub connections: Vec<StoredConnection>,
    /// Connection rows to delete, by connection id.
    pub connections_removed: Vec<String>,
    /// Read positions written whole (upserts, by user id).
    pub reads: Vec<ReadPosition>,
    /// With several core replicas: the writer's `owner_epoch`. A new
    /// `seq_mark` is then reserved only while the session's ownership row
    /// still has that epoch (`StoreError::Deposed` otherwise, and nothing
    /// of the batch is written): a deposed owner stops within one block.
    pub fence: Option<u64>,
    /// With several core replicas: the wall-clock time (µs since the epoch)
    /// at which the writer last saw its ownership valid. The chat rows are
    /// written with it as their timestamp, so a write that lands after
    /// another replica took the session over is shadowed by that replica's
    /// [`OwnershipStore::void_chat`], which it writes later.
    pub written_at_us: Option<i64>,
}

impl SessionWrite {
    /// True when the batch writes nothing.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// Which rows of the connection registry to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryLookup {
    /// The connections that joined this session at connect.
    Session(String),
    /// The connections of this user.
    User(String),
}

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached or is shutting down; retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A conditional write found another writer's state.
    #[error("store conflict: {0}")]
    Conflict(String),
    /// A fenced write found that another core replica owns the session now.
    #[error("deposed: {0}")]
    Deposed(String),
    /// Stored bytes could not be decoded.
    #[error("store data corrupt: {0}")]
    Corrupt(String),
    /// Any other backend failure.
    #[error("store error: {0}")]
    Backend(String),
}

/// Durable state of sessions. Implementations are cheap to share (`Arc`).
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// The session's state, or the default record if it was never written.
    async fn load_session(&self, key: &SessionKey) -> Result<SessionRecord, StoreError>;

    /// Applies one batch. When it returns `Ok`, the writes are durable.
    async fn write_session(&self, key: &SessionKey, write: SessionWrite) -> Result<(), StoreError>;

    /// Up to `limit` messages with seq < `before_seq` (all when `None`),
    /// newest first.
    async fn chat_page(
        &self,
        key: &SessionKey,
        before_seq: Option<u64>,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError>;

    /// Up to `limit` messages with seq > `after_seq`, oldest first.
    async fn chat_after(
        &self,
        key: &SessionKey,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError>;

    /// The stored messages whose (sender, client_ref) is among `refs`;
    /// references with an empty client_ref are ignored.
    async fn chat_by_client_refs(
        &self,
        key: &SessionKey,
        refs: &[ChatRef],
    ) -> Result<Vec<ChatMessage>, StoreError>;

    /// Where the message with server id `message_id` is in `tenant`; `None`
    /// when no stored message of that tenant has it.
    async fn message_location(
        &self,
        tenant: &str,
        message_id: &str,
    ) -> Result<Option<MessageLocation>, StoreError>;

    /// Whether the session was ever created: any event it ever had reserved
    /// a seq block durably before it was published, so a session with no
    /// seq mark has had nothing (no join, no message, no lease, no read).
    async fn session_exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        Ok(self.load_session(key).await?.seq_mark > 0)
    }

    /// Writes connection registry rows whole, keyed by `(tenant,
    /// connection_id)`, with their lookup entries by session (when the row
    /// has one) and by user. A row may be collected once its
    /// `expires_at_ms` has passed; readers filter by their own clock.
    async fn put_registered(&self, rows: &[RegisteredConnection]) -> Result<(), StoreError>;

    /// The registry rows of `connection_ids` in `tenant` that are stored,
    /// expired or not, in any order.
    async fn registered(
        &self,
        tenant: &str,
        connection_ids: &[String],
    ) -> Result<Vec<RegisteredConnection>, StoreError>;

    /// The registry rows of a session or a user in `tenant`, expired or not,
    /// in any order. A row is listed only under the session and user it has
    /// now (a lookup entry left from an earlier write of it is ignored).
    async fn registered_by(
        &self,
        tenant: &str,
        lookup: &RegistryLookup,
    ) -> Result<Vec<RegisteredConnection>, StoreError>;

    /// Deletes registry rows and their lookup entries (as the rows name
    /// them: tenant, connection, session, user).
    async fn delete_registered(&self, rows: &[RegisteredConnection]) -> Result<(), StoreError>;

    /// Ok when the backend can serve; used by readiness and health.
    async fn check_ready(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Ownership of sessions among several core replicas, when this store
    /// can hold it (ScyllaDB: LWT); `None` for single-replica stores.
    fn ownership(&self) -> Option<Arc<dyn OwnershipStore>> {
        None
    }
}

/// A core replica's liveness lease, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaLease {
    /// The replica's stable id (`--replica-id`).
    pub replica_id: String,
    /// Bumped by every registration: a lease of an older epoch is void.
    pub epoch: u64,
    /// Where bridges and other replicas reach it (`--advertise-url`).
    pub url: String,
    /// Unix milliseconds after which it is dead unless renewed.
    pub expires_at_ms: i64,
    /// It is draining: it keeps what it owns until released, takes nothing.
    pub leaving: bool,
}

/// Who owns a session, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOwner {
    /// The owning replica's id.
    pub owner_id: String,
    /// The replica epoch the ownership was taken under.
    pub replica_epoch: u64,
    /// The owner's URL, for redirects.
    pub owner_url: String,
    /// Bumped by every takeover; seq-block reservations are fenced by it.
    pub owner_epoch: u64,
    /// The owner gave it up (handoff): anyone may take it at once.
    pub released: bool,
    /// The highest seq an owner reserved under this row.
    pub seq_mark: u64,
}

/// Ownership rows (migration 0005), every write a lightweight transaction.
#[async_trait]
pub trait OwnershipStore: Send + Sync + std::fmt::Debug + 'static {
    /// Registers `replica_id` under a new epoch (the stored one plus one),
    /// live until `expires_at_ms`; returns the epoch.
    async fn register_replica(
        &self,
        replica_id: &str,
        url: &str,
        expires_at_ms: i64,
    ) -> Result<u64, StoreError>;

    /// Moves the lease's expiry to `expires_at_ms` (and sets `leaving`) if
    /// it still has `epoch` and has not expired at `now_ms`; false when not.
    async fn renew_replica(
        &self,
        replica_id: &str,
        epoch: u64,
        expires_at_ms: i64,
        leaving: bool,
        now_ms: i64,
    ) -> Result<bool, StoreError>;

    /// Every replica lease stored, expired or not.
    async fn replicas(&self) -> Result<Vec<ReplicaLease>, StoreError>;

    /// The session's ownership row, read at serial consistency.
    async fn session_owner(&self, key: &SessionKey) -> Result<Option<SessionOwner>, StoreError>;

    /// Writes `owner` (with its `owner_epoch` already bumped) if the row
    /// still has `expected_owner_epoch` (`None`: no row yet); false when not.
    async fn take_session(
        &self,
        key: &SessionKey,
        expected_owner_epoch: Option<u64>,
        owner: &SessionOwner,
    ) -> Result<bool, StoreError>;

    /// Marks the session released if its row still has `owner_epoch`.
    async fn release_session(&self, key: &SessionKey, owner_epoch: u64)
        -> Result<bool, StoreError>;

    /// Voids the chat seqs in `(after_seq, through_seq]` as of `at_us`
    /// (a write timestamp): a new owner calls it once it has read the
    /// stored history, over the seqs an earlier owner reserved but had not
    /// stored. A write of that owner still in flight carries an older
    /// timestamp ([`SessionWrite::written_at_us`]), so it never shows.
    async fn void_chat(
        &self,
        key: &SessionKey,
        after_seq: u64,
        through_seq: u64,
        at_us: i64,
    ) -> Result<(), StoreError>;
}
