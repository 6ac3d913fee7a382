//! The embedded [`Store`]: one redb file (`meno.redb`) in a data directory,
//! durable across restarts, with group commit.
//!
//! All writes go through one writer thread (`writer`) that applies every
//! queued batch in one redb write transaction and one fsync, so concurrent
//! sessions share the cost of the disk round trip. Reads run on redb read
//! transactions on the blocking pool (`reads`) and never wait for the writer.
//! Rows are prost-encoded (`rows`); bad bytes become [`StoreError::Corrupt`],
//! never a panic.
//!
//! Tables, all keyed by `(tenant, session_id, ...)` so a session's rows are
//! adjacent and one tenant never sees another's:
//! - `sessions` (tenant, session_id) -> seq_mark, step_index, lease
//! - `chat` (tenant, session_id, seq) -> `ChatMessage`
//! - `chat_by_sender_ref` (tenant, session_id, sender_id, client_ref) -> seq,
//!   written in the same transaction as the message (a file from before
//!   per-sender idempotency has `chat_by_client_ref` (tenant, session_id,
//!   client_ref) instead: `open` moves it over once, see [`upgrade`])
//! - `presence` (tenant, session_id, participant_id) -> `PresenceState`
//! - `connections` (tenant, session_id, connection_id) -> connection + expiry
//! - `reads` (tenant, session_id, user_id) -> `ReadPosition`
//! - `message_ids` (tenant, message_id) -> session_id, seq: the one table not
//!   keyed by session, written in the same transaction as its message (a file
//!   from before this table gets it filled from `chat` at open, once, see
//!   [`index_message_ids`])
//! - `registry` (tenant, connection_id) -> `RegisteredConnection`, with
//!   `registry_by_session` and `registry_by_user` lookups (see `registry`)

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use async_trait::async_trait;
use meno_proto::{ChatMessage, RegisteredConnection};
use redb::{Database, TableDefinition};
use tokio::sync::mpsc;

use super::group_commit;
use super::rows;
use super::{
    ChatRef, MessageLocation, RegistryLookup, SessionKey, SessionRecord, SessionWrite, Store,
    StoreError,
};

mod reads;
mod registry;
#[cfg(test)]
mod tests;
mod writer;

/// The database file inside the data directory.
pub const DB_FILE_NAME: &str = "meno.redb";

const SESSIONS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("sessions");
const CHAT: TableDefinition<(&str, &str, u64), &[u8]> = TableDefinition::new("chat");
const CHAT_BY_SENDER_REF: TableDefinition<(&str, &str, &str, &str), u64> =
    TableDefinition::new("chat_by_sender_ref");
/// The index before idempotency was scoped by sender; only [`upgrade`] reads it.
const CHAT_BY_CLIENT_REF: TableDefinition<(&str, &str, &str), u64> =
    TableDefinition::new("chat_by_client_ref");
const PRESENCE: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("presence");
const CONNECTIONS: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("connections");
const READS: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("reads");
const MESSAGE_IDS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("message_ids");

/// A [`Store`] in a redb file, with one writer thread doing group commit.
#[derive(Debug)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    /// `None` once dropping: closing the channel is what stops the writer.
    requests: Option<mpsc::Sender<group_commit::WriteRequest>>,
    writer: Option<JoinHandle<()>>,
    commits: Arc<AtomicU64>,
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir`, creating the directory and
    /// `meno.redb` inside it, and starts the writer thread.
    ///
    /// Blocks on file I/O; call it at start-up, not on a busy runtime thread.
    /// Fails with [`StoreError::Unavailable`] when another process (or another
    /// `EmbeddedStore`) has the same directory open.
    pub fn open(dir: &Path) -> Result<EmbeddedStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|err| {
            StoreError::Unavailable(format!("cannot create data dir {}: {err}", dir.display()))
        })?;
        let db = Database::create(dir.join(DB_FILE_NAME))?;
        create_tables(&db)?;
        let db = Arc::new(db);
        let commits = Arc::new(AtomicU64::new(0));
        let (requests, queue) = mpsc::channel(group_commit::QUEUE_CAPACITY);
        let writer = std::thread::Builder::new()
            .name("meno-store-writer".to_owned())
            .spawn({
                let db = Arc::clone(&db);
                let commits = Arc::clone(&commits);
                move || writer::run(&db, queue, &commits)
            })
            .map_err(|err| StoreError::Backend(format!("cannot start store writer: {err}")))?;
        Ok(EmbeddedStore {
            db,
            requests: Some(requests),
            writer: Some(writer),
            commits,
        })
    }

    /// How many write transactions the writer has committed since open; fewer
    /// than the `write_session` calls when group commit is doing its job.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Runs a read (or a registry write, which has its own transaction) on
    /// the blocking pool, since redb may touch the disk.
    async fn read<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || read(&db))
            .await
            .map_err(|err| StoreError::Unavailable(format!("store read task failed: {err}")))?
    }
}

/// Creates every table once, so read transactions never meet a missing one.
fn create_tables(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    txn.open_table(SESSIONS)?;
    txn.open_table(CHAT)?;
    txn.open_table(CHAT_BY_SENDER_REF)?;
    txn.open_table(PRESENCE)?;
    txn.open_table(CONNECTIONS)?;
    txn.open_table(READS)?;
    registry::create_tables(&txn)?;
    index_message_ids(&txn)?;
    upgrade(&txn)?;
    txn.commit()?;
    Ok(())
}

/// Creates `message_ids` and, in a file from before it, fills it from every
/// stored message, so ACKs and history cursors work on old messages too. In
/// the table-creation transaction: a crash leaves the old file as it was.
fn index_message_ids(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    use prost::Message as _;
    use redb::{ReadableTable as _, TableHandle as _};
    let exists = txn
        .list_tables()?
        .any(|table| table.name() == MESSAGE_IDS.name());
    let mut index = txn.open_table(MESSAGE_IDS)?;
    if exists {
        return Ok(());
    }
    let chat = txn.open_table(CHAT)?;
    let mut indexed = 0_u64;
    for entry in chat.iter()? {
        let (row_key, row) = entry?;
        let (tenant, session_id, seq) = row_key.value();
        let key = SessionKey::new(tenant, session_id);
        let message = reads::decode_message(&key, seq, row.value())?;
        if message.id.is_empty() {
            continue;
        }
        let location = rows::MessageLocationRow {
            session_id: session_id.to_owned(),
            seq,
        };
        index.insert(
            (tenant, message.id.as_str()),
            location.encode_to_vec().as_slice(),
        )?;
        indexed += 1;
    }
    if indexed > 0 {
        tracing::info!(indexed, "embedded store: stored messages indexed by id");
    }
    Ok(())
}

/// Moves a client_ref index from before per-sender idempotency into
/// `chat_by_sender_ref`, keyed by each message's sender, and drops it. Runs in
/// the same transaction as table creation: a crash leaves the old file as it
/// was, and the next open does it again.
fn upgrade(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    use redb::{ReadableTable as _, TableHandle as _};
    let exists = txn
        .list_tables()?
        .any(|table| table.name() == CHAT_BY_CLIENT_REF.name());
    if !exists {
        return Ok(());
    }
    let mut moved = 0_u64;
    {
        let old = txn.open_table(CHAT_BY_CLIENT_REF)?;
        let chat = txn.open_table(CHAT)?;
        let mut new = txn.open_table(CHAT_BY_SENDER_REF)?;
        for entry in old.iter()? {
            let (row_key, seq) = entry?;
            let (tenant, session_id, client_ref) = row_key.value();
            let seq = seq.value();
            let Some(row) = chat.get((tenant, session_id, seq))? else {
                continue;
            };
            let key = SessionKey::new(tenant, session_id);
            let message = reads::decode_message(&key, seq, row.value())?;
            new.insert(
                (tenant, session_id, message.sender_id.as_str(), client_ref),
                seq,
            )?;
            moved += 1;
        }
    }
    txn.delete_table(CHAT_BY_CLIENT_REF)?;
    tracing::info!(moved, "embedded store: chat index now keyed by sender");
    Ok(())
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        // Closing the channel lets the writer commit what is already queued and
        // exit; joining it means the file is released (and the directory can be
        // reopened) once the last reader is done.
        self.requests = None;
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!("embedded store writer thread panicked");
            }
        }
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    /// Connections are returned whatever their `expires_at_ms`: the caller
    /// filters by its own clock, so expiry is tested with a manual clock.
    async fn load_session(&self, key: &SessionKey) -> Result<SessionRecord, StoreError> {
        let key = key.clone();
        self.read(move |db| reads::load_session(db, &key)).await
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
        self.read(move |db| reads::chat_page(db, &key, before_seq, limit))
            .await
    }

    async fn chat_after(
        &self,
        key: &SessionKey,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let key = key.clone();
        self.read(move |db| reads::chat_after(db, &key, after_seq, limit))
            .await
    }

    /// Found messages come back in seq order, each once.
    async fn chat_by_client_refs(
        &self,
        key: &SessionKey,
        refs: &[ChatRef],
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let key = key.clone();
        let refs = refs.to_vec();
        self.read(move |db| reads::chat_by_client_refs(db, &key, &refs))
            .await
    }

    async fn message_location(
        &self,
        tenant: &str,
        message_id: &str,
    ) -> Result<Option<MessageLocation>, StoreError> {
        let (tenant, message_id) = (tenant.to_owned(), message_id.to_owned());
        self.read(move |db| reads::message_location(db, &tenant, &message_id))
            .await
    }

    async fn put_registered(&self, rows: &[RegisteredConnection]) -> Result<(), StoreError> {
        let rows = rows.to_vec();
        self.read(move |db| registry::write(db, &rows, false)).await
    }

    async fn registered(
        &self,
        tenant: &str,
        connection_ids: &[String],
    ) -> Result<Vec<RegisteredConnection>, StoreError> {
        let (tenant, connection_ids) = (tenant.to_owned(), connection_ids.to_vec());
        self.read(move |db| registry::get(db, &tenant, &connection_ids))
            .await
    }

    async fn registered_by(
        &self,
        tenant: &str,
        lookup: &RegistryLookup,
    ) -> Result<Vec<RegisteredConnection>, StoreError> {
        let (tenant, lookup) = (tenant.to_owned(), lookup.clone());
        self.read(move |db| registry::get_by(db, &tenant, &lookup))
            .await
    }

    async fn delete_registered(&self, rows: &[RegisteredConnection]) -> Result<(), StoreError> {
        let rows = rows.to_vec();
        self.read(move |db| registry::write(db, &rows, true)).await
    }

    async fn session_exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let key = key.clone();
        self.read(move |db| reads::session_exists(db, &key)).await
    }

    async fn check_ready(&self) -> Result<(), StoreError> {
        match &self.requests {
            Some(requests) if !requests.is_closed() => Ok(()),
            _ => Err(group_commit::writer_gone()),
        }
    }
}

impl From<redb::Error> for StoreError {
    fn from(err: redb::Error) -> Self {
        match err {
            redb::Error::Corrupted(detail) => StoreError::Corrupt(detail),
            // Another holder of the file, or a database that an earlier I/O
            // failure closed: nothing to do here but wait for an operator.
            err @ (redb::Error::DatabaseAlreadyOpen
            | redb::Error::DatabaseClosed
            | redb::Error::PreviousIo) => StoreError::Unavailable(err.to_string()),
            err => StoreError::Backend(err.to_string()),
        }
    }
}

/// redb has one error type per operation; all of them convert into
/// `redb::Error`, and from there into ours, so `?` works everywhere.
macro_rules! store_error_from_redb {
    ($($redb_error:ty),+ $(,)?) => {
        $(impl From<$redb_error> for StoreError {
            fn from(err: $redb_error) -> Self {
                StoreError::from(redb::Error::from(err))
            }
        })+
    };
}

store_error_from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError,
);
