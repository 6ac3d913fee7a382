//! The embedded [`Store`] on fjall, a log-structured engine: a directory
//! (`fjall/` in the data directory), durable across restarts, with group
//! commit.
//!
//! Why a second embedded engine: redb updates its B-trees copy-on-write, page
//! by page, in every commit, and that CPU, not the disk, bounded durable chat
//! at about 40 % of the memory store's rate (BENCHMARKS.md, issue 18). fjall
//! appends each commit to a journal and keeps recent rows in memtables, so a
//! durable write costs a journal append and one `fdatasync` per group.
//!
//! - **Writes** go through one writer thread ([`group_commit`]): each request
//!   is checked against the live keyspaces (the writer is their only writer),
//!   committed as one atomic fjall batch, and the whole group is then made
//!   durable with one `fdatasync` before anyone is answered.
//! - **Reads** use the snapshot the writer publishes after each durable
//!   group, so a reader never sees a write that a crash could still take
//!   back (as with redb's committed transactions).
//! - **The connection registry** is soft state written by the bridges: its
//!   rows are written and made durable by the caller (each row one atomic
//!   batch), under a lock, and read live.
//!
//! Keyspaces mirror redb's tables (see [`super::embedded`]); keys are built by
//! [`keys::Key`], rows are the same prost rows ([`super::rows`]).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;

use async_trait::async_trait;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, Snapshot};
use meno_proto::{ChatMessage, RegisteredConnection};
use tokio::sync::mpsc;

use super::group_commit::{self, WriteRequest};
use super::{
    ChatRef, MessageLocation, RegistryLookup, SessionKey, SessionRecord, SessionWrite, Store,
    StoreError,
};

mod keys;
mod reads;
mod registry;
#[cfg(test)]
mod tests;
mod writer;

/// The store's directory inside the data directory.
pub const DIR_NAME: &str = "fjall";

/// The keyspaces, one per redb table of the other engine.
#[derive(Clone)]
struct Spaces {
    sessions: Keyspace,
    chat: Keyspace,
    client_refs: Keyspace,
    presence: Keyspace,
    connections: Keyspace,
    reads: Keyspace,
    message_ids: Keyspace,
    registry: Keyspace,
    registry_by_session: Keyspace,
    registry_by_user: Keyspace,
}

/// Each keyspace's memtable is flushed to a sorted file at this size (fjall's
/// default is 64 MiB): smaller memtables are cheaper to search, and ten
/// keyspaces hold at most about 160 MiB unflushed, where the default allows
/// 640 (fjall 3's bound on all memtables together is not implemented yet).
const MEMTABLE_BYTES: u64 = 16 * 1024 * 1024;

impl Spaces {
    fn open(db: &Database) -> Result<Self, StoreError> {
        let options = || KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_BYTES);
        let open = |name: &str| db.keyspace(name, options);
        Ok(Self {
            sessions: open("sessions")?,
            chat: open("chat")?,
            client_refs: open("chat_by_sender_ref")?,
            presence: open("presence")?,
            connections: open("connections")?,
            reads: open("reads")?,
            message_ids: open("message_ids")?,
            registry: open("registry")?,
            registry_by_session: open("registry_by_session")?,
            registry_by_user: open("registry_by_user")?,
        })
    }
}

/// What readers and the writer share.
struct Shared {
    db: Database,
    spaces: Spaces,
    /// The newest durable view: replaced by the writer after each group
    /// commit's `fdatasync`, before anyone is answered.
    durable: RwLock<Snapshot>,
    /// Serializes registry writes (each reads the row it replaces).
    registry_writes: Mutex<()>,
}

impl Shared {
    fn snapshot(&self) -> Snapshot {
        self.durable
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn publish_durable(&self) {
        let snapshot = self.db.snapshot();
        *self.durable.write().unwrap_or_else(PoisonError::into_inner) = snapshot;
    }
}

/// A [`Store`] in a fjall directory, with one writer thread doing group commit.
pub struct FjallStore {
    shared: Arc<Shared>,
    /// `None` once dropping: closing the channel is what stops the writer.
    requests: Option<mpsc::Sender<WriteRequest>>,
    writer: Option<JoinHandle<()>>,
    commits: Arc<AtomicU64>,
}

impl std::fmt::Debug for FjallStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallStore")
            .field("commits", &self.commits())
            .finish_non_exhaustive()
    }
}

impl FjallStore {
    /// Opens (or creates) the store in `dir` (its `fjall/` directory), and
    /// starts the writer thread. Recovery replays the journal: a batch torn by
    /// a crash was never acknowledged and is dropped whole.
    ///
    /// Blocks on file I/O; call it at start-up, not on a busy runtime thread.
    /// Fails with [`StoreError::Unavailable`] when another process has the
    /// same directory open.
    pub fn open(dir: &Path) -> Result<FjallStore, StoreError> {
        let path = dir.join(DIR_NAME);
        std::fs::create_dir_all(&path).map_err(|err| {
            StoreError::Unavailable(format!("cannot create data dir {}: {err}", path.display()))
        })?;
        let db = Database::builder(&path)
            .manual_journal_persist(true)
            .open()?;
        let spaces = Spaces::open(&db)?;
        let shared = Arc::new(Shared {
            durable: RwLock::new(db.snapshot()),
            db,
            spaces,
            registry_writes: Mutex::new(()),
        });
        let commits = Arc::new(AtomicU64::new(0));
        let (requests, queue) = mpsc::channel(group_commit::QUEUE_CAPACITY);
        let writer = std::thread::Builder::new()
            .name("meno-store-writer".to_owned())
            .spawn({
                let shared = Arc::clone(&shared);
                let commits = Arc::clone(&commits);
                move || writer::run(&shared, queue, &commits)
            })
            .map_err(|err| StoreError::Backend(format!("cannot start store writer: {err}")))?;
        Ok(FjallStore {
            shared,
            requests: Some(requests),
            writer: Some(writer),
            commits,
        })
    }

    /// How many durable group commits the writer has made since open; fewer
    /// than the `write_session` calls when group commit is doing its job.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Runs a point read here, on the caller's thread: a few lookups in
    /// memtables and (behind bloom filters) cached SST blocks, cheaper than
    /// the blocking pool's thread hand-off, which cost about five times the
    /// read itself in the chat benchmark's profile. Scans use [`Self::read`].
    fn lookup<T>(
        &self,
        read: impl FnOnce(&Shared) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        read(&self.shared)
    }

    /// Runs a read on the blocking pool (a scan may touch the disk).
    async fn read<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Shared) -> Result<T, StoreError> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || read(&shared))
            .await
            .map_err(|err| StoreError::Unavailable(format!("store read task failed: {err}")))?
    }
}

impl Drop for FjallStore {
    fn drop(&mut self) {
        // Closing the channel lets the writer commit what is already queued
        // and exit; joining it means the directory can be reopened once the
        // last reader is done.
        self.requests = None;
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!("embedded store writer thread panicked");
            }
        }
    }
}

#[async_trait]
impl Store for FjallStore {
    /// Connections are returned whatever their `expires_at_ms`: the caller
    /// filters by its own clock.
    async fn load_session(&self, key: &SessionKey) -> Result<SessionRecord, StoreError> {
        let key = key.clone();
        self.read(move |shared| reads::load_session(shared, &key))
            .await
    }

    async fn write_session(&self, key: &SessionKey, write: SessionWrite) -> Result<(), StoreError> {
        group_commit::submit(self.requests.as_ref(), key, write).await
    }

    async fn chat_page(
        &self,
        key: &SessionKey,
        before_seq: Option<u64>,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let key = key.clone();
        self.read(move |shared| reads::chat_page(shared, &key, before_seq, limit))
            .await
    }

    async fn chat_after(
        &self,
        key: &SessionKey,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let key = key.clone();
        self.read(move |shared| reads::chat_after(shared, &key, after_seq, limit))
            .await
    }

    /// Found messages come back in seq order, each once.
    async fn chat_by_client_refs(
        &self,
        key: &SessionKey,
        refs: &[ChatRef],
    ) -> Result<Vec<ChatMessage>, StoreError> {
        self.lookup(|shared| reads::chat_by_client_refs(shared, key, refs))
    }

    async fn message_location(
        &self,
        tenant: &str,
        message_id: &str,
    ) -> Result<Option<MessageLocation>, StoreError> {
        self.lookup(|shared| reads::message_location(shared, tenant, message_id))
    }

    async fn put_registered(&self, rows: &[RegisteredConnection]) -> Result<(), StoreError> {
        let rows = rows.to_vec();
        self.read(move |shared| registry::write(shared, &rows, false))
            .await
    }

    async fn registered(
        &self,
        tenant: &str,
        connection_ids: &[String],
    ) -> Result<Vec<RegisteredConnection>, StoreError> {
        let (tenant, connection_ids) = (tenant.to_owned(), connection_ids.to_vec());
        self.read(move |shared| registry::get(shared, &tenant, &connection_ids))
            .await
    }

    async fn registered_by(
        &self,
        tenant: &str,
        lookup: &RegistryLookup,
    ) -> Result<Vec<RegisteredConnection>, StoreError> {
        let (tenant, lookup) = (tenant.to_owned(), lookup.clone());
        self.read(move |shared| registry::get_by(shared, &tenant, &lookup))
            .await
    }

    async fn delete_registered(&self, rows: &[RegisteredConnection]) -> Result<(), StoreError> {
        let rows = rows.to_vec();
        self.read(move |shared| registry::write(shared, &rows, true))
            .await
    }

    async fn session_exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.lookup(|shared| reads::session_exists(shared, key))
    }

    async fn check_ready(&self) -> Result<(), StoreError> {
        match &self.requests {
            Some(requests) if !requests.is_closed() => Ok(()),
            _ => Err(group_commit::writer_gone()),
        }
    }
}

impl From<fjall::Error> for StoreError {
    fn from(err: fjall::Error) -> Self {
        match err {
            // Another holder of the directory, or a database that an earlier
            // I/O failure poisoned: nothing to do here but wait for an
            // operator (fjall asks for a restart, which recovers the journal).
            err @ (fjall::Error::Locked | fjall::Error::Poisoned) => {
                StoreError::Unavailable(err.to_string())
            }
            err @ (fjall::Error::JournalRecovery(_)
            | fjall::Error::InvalidTrailer
            | fjall::Error::InvalidTag(_)
            | fjall::Error::Decompress(_)
            | fjall::Error::Unrecoverable) => StoreError::Corrupt(err.to_string()),
            err => StoreError::Backend(err.to_string()),
        }
    }
}
