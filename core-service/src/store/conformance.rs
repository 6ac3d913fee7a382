//! The conformance suite: what every [`Store`] must do, as checks any backend
//! runs against itself.
//!
//! Each check takes a store and a `prefix` and touches only sessions whose ids
//! (and, for the isolation check, tenants) start with that prefix, so several
//! runs can share one database (one Cassandra for every test). A check returns
//! `Err` naming what behaved wrongly; [`run_all`] runs them all and reports
//! every failure, not just the first.
//!
//! Orders the trait does not promise (participants, connections, the result of
//! `chat_by_client_refs`) are sorted here before comparing.

use futures_util::future::join_all;
use meno_proto::{ChatMessage, ClientKind, ConnectionInfo, LeaseState, PresenceState};
use meno_proto::{PresenceStatus, Role};

use super::{
    LeaseWrite, SessionKey, SessionRecord, SessionWrite, Store, StoreError, StoredConnection,
    DEFAULT_TENANT,
};

/// The outcome of one check: `Err` says what the store did wrong.
pub type CheckResult = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(format!($($why)+));
        }
    };
}

macro_rules! ensure_eq {
    ($actual:expr, $expected:expr, $($why:tt)+) => {{
        let (actual, expected) = (&$actual, &$expected);
        if actual != expected {
            return Err(format!(
                "{}\n  actual:   {actual:?}\n  expected: {expected:?}",
                format!($($why)+)
            ));
        }
    }};
}

/// Runs every check against `store` with sessions under `prefix`; `Err` lists
/// each failed check with its reason.
pub async fn run_all(store: &dyn Store, prefix: &str) -> Result<(), String> {
    let mut failures = Vec::new();
    macro_rules! run {
        ($($check:ident),+ $(,)?) => {
            $(if let Err(why) = $check(store, prefix).await {
                failures.push(format!("{}: {why}", stringify!($check)));
            })+
        };
    }
    run!(
        unknown_session_is_default,
        seq_mark_only_grows,
        step_and_lease_round_trip,
        lease_conflict_leaves_batch_unapplied,
        chat_page_pages_newest_first,
        chat_after_pages_oldest_first,
        duplicate_client_ref_is_stored_once,
        presence_is_written_whole_and_removed,
        connections_are_upserted_and_removed,
        tenants_and_sessions_are_isolated,
        concurrent_writes_are_all_durable,
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

/// A session never written reads as the default record with no history, and
/// an empty batch changes nothing.
pub async fn unknown_session_is_default(store: &dyn Store, prefix: &str) -> CheckResult {
    let key = key(prefix, "unknown");
    store.check_ready().await.or_fail("check_ready")?;
    ensure_eq!(
        load(store, &key).await?,
        SessionRecord::default(),
        "unknown session"
    );
    store
        .write_session(&key, SessionWrite::default())
        .await
        .or_fail("empty write")?;
    ensure_eq!(
        load(store, &key).await?,
        SessionRecord::default(),
        "after empty write"
    );
    let page = store.chat_page(&key, None, 10).await.or_fail("chat_page")?;
    ensure!(page.is_empty(), "chat_page of unknown session: {page:?}");
    let after = store.chat_after(&key, 0, 10).await.or_fail("chat_after")?;
    ensure!(after.is_empty(), "chat_after of unknown session: {after:?}");
    let refs = ["r".to_owned()];
    let found = store
        .chat_by_client_refs(&key, &refs)
        .await
        .or_fail("refs")?;
    ensure!(
        found.is_empty(),
        "chat_by_client_refs of unknown session: {found:?}"
    );
    Ok(())
}

/// `seq_mark` keeps the largest value ever written; writes that do not name
/// it leave it alone.
pub async fn seq_mark_only_grows(store: &dyn Store, prefix: &str) -> CheckResult {
    let key = key(prefix, "seq-mark");
    for (written, expected) in [(1024, 1024), (512, 1024), (2048, 2048), (0, 2048)] {
        write(store, &key, seq_mark(written)).await?;
        ensure_eq!(
            load(store, &key).await?.seq_mark,
            expected,
            "after seq_mark {written}"
        );
    }
    let others = SessionWrite {
        step_index: Some(4),
        messages: vec![message(1, "", "hello")],
        ..SessionWrite::default()
    };
    write(store, &key, others).await?;
    let record = load(store, &key).await?;
    ensure_eq!(record.seq_mark, 2048, "seq_mark after a write without one");
    ensure_eq!(record.step_index, 4, "step_index");
    Ok(())
}

/// Step and lease come back exactly as written, a cleared lease included.
pub async fn step_and_lease_round_trip(store: &dyn Store, prefix: &str) -> CheckResult {
    let key = key(prefix, "step-lease");
    write(
        store,
        &key,
        SessionWrite {
            step_index: Some(-3),
            ..SessionWrite::default()
        },
    )
    .await?;
    let record = load(store, &key).await?;
    ensure_eq!(record.step_index, -3, "step_index");
    ensure_eq!(record.lease, None, "lease never written");
    ensure_eq!(record.seq_mark, 0, "seq_mark never written");

    let held = lease(1, "alice", 7);
    write(store, &key, lease_write(None, held.clone())).await?;
    let record = load(store, &key).await?;
    ensure_eq!(record.lease, Some(held), "held lease");
    ensure_eq!(record.step_index, -3, "step_index after a lease write");

    let cleared = LeaseState {
        step_index: 7,
        epoch: 2,
        ..LeaseState::default()
    };
    write(store, &key, lease_write(Some(1), cleared.clone())).await?;
    ensure_eq!(
        load(store, &key).await?.lease,
        Some(cleared),
        "cleared lease"
    );
    Ok(())
}

/// A lease write whose expected epoch is stale fails with `Conflict`, and
/// nothing else of its batch is applied.
pub async fn lease_conflict_leaves_batch_unapplied(store: &dyn Store, prefix: &str) -> CheckResult {
    let key = key(prefix, "lease-conflict");
    let setup = SessionWrite {
        seq_mark: Some(10),
        step_index: Some(1),
        lease: Some(LeaseWrite {
            expected_epoch: None,
            state: lease(1, "alice", 1),
        }),
        messages: vec![message(1, "m1", "kept")],
        presence: vec![presence("p1", "Alice", false)],
        connections: vec![connection("c1", "bridge-1", 90_000)],
        ..SessionWrite::default()
    };
    write(store, &key, setup).await?;
    let before = load(store, &key).await?;

    for stale in [None, Some(7), Some(0)] {
        let rejected = SessionWrite {
            seq_mark: Some(20),
            step_index: Some(2),
            lease: Some(LeaseWrite {
                expected_epoch: stale,
                state: lease(2, "bob", 2),
            }),
            messages: vec![message(2, "m2", "must not be stored")],
            presence: vec![presence("p2", "Bob", true)],
            presence_removed: vec!["p1".to_owned()],
            connections: vec![connection("c2", "bridge-2", 90_000)],
            connections_removed: vec!["c1".to_owned()],
        };
        let result = store.write_session(&key, rejected).await;
        ensure!(
            matches!(result, Err(StoreError::Conflict(_))),
            "expected epoch {stale:?} against stored 1 gave {result:?}, not Conflict"
        );
        ensure_eq!(
            load(store, &key).await?,
            before,
            "record after a conflict ({stale:?})"
        );
        let history = store.chat_after(&key, 0, 10).await.or_fail("chat_after")?;
        ensure_eq!(
            seqs(&history),
            vec![1],
            "history after a conflict ({stale:?})"
        );
        let refs = ["m2".to_owned()];
        let found = store
            .chat_by_client_refs(&key, &refs)
            .await
            .or_fail("refs")?;
        ensure!(
            found.is_empty(),
            "client_ref of a rejected message indexed: {found:?}"
        );
    }

    let fresh = self::key(prefix, "lease-conflict-fresh");
    let result = store
        .write_session(&fresh, lease_write(Some(1), lease(2, "bob", 0)))
        .await;
    ensure!(
        matches!(result, Err(StoreError::Conflict(_))),
        "expected epoch 1 on a session without lease gave {result:?}, not Conflict"
    );
    ensure_eq!(
        load(store, &fresh).await?,
        SessionRecord::default(),
        "after conflict"
    );

    let next = lease(2, "bob", 1);
    write(store, &key, lease_write(Some(1), next.clone())).await?;
    ensure_eq!(
        load(store, &key).await?.lease,
        Some(next),
        "lease after the right epoch"
    );
    Ok(())
}

/// `chat_page` pages newest first with a `before_seq` cursor, over gaps in
/// seq, and honours `limit`.
pub async fn chat_page_pages_newest_first(store: &dyn Store, prefix: &str) -> CheckResult {
    let key = key(prefix, "chat-page");
    let all = write_history(store, &key).await?;
    let mut newest_first = all.clone();
    newest_first.reverse();

    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .chat_page(&key, cursor, 10)
            .await
            .or_fail("chat_page")?;
        ensure!(page.len() <= 10, "page of {} over limit 10", page.len());
        let Some(last) = page.last() else { break };
        cursor = Some(last.seq);
        pages.push(page);
        ensure!(pages.len() <= 4, "paging does not end");
    }
    ensure_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![10, 10, 5],
        "page sizes"
    );
    ensure_eq!(pages.concat(), newest_first, "pages, concatenated");

    let cases = [
        (Some(31), 3, vec![30, 28, 26]),
        (Some(2), 10, vec![]),
        (Some(0), 10, vec![]),
    ];
    for (before_seq, limit, expected) in cases {
        let page = store
            .chat_page(&key, before_seq, limit)
            .await
            .or_fail("chat_page")?;
        ensure_eq!(
            seqs(&page),
            expected,
            "chat_page before {before_seq:?} limit {limit}"
        );
    }
    let empty = store.chat_page(&key, None, 0).await.or_fail("chat_page")?;
    ensure!(
        empty.is_empty(),
        "limit 0 returned {} messages",
        empty.len()
    );
    let everything = store
        .chat_page(&key, None, 1000)
        .await
        .or_fail("chat_page")?;
    ensure_eq!(everything, newest_first, "limit above the count");
    Ok(())
}

/// `chat_after` pages oldest first from a seq, over gaps, honouring `limit`.
pub async fn chat_after_pages_oldest_first(store: &dyn Store, prefix: &str) -> CheckResult {
    let key = key(prefix, "chat-after");
    let all = write_history(store, &key).await?;

    let mut pages = Vec::new();
    let mut cursor = 0;
    loop {
        let page = store
            .chat_after(&key, cursor, 10)
            .await
            .or_fail("chat_after")?;
        let Some(last) = page.last() else { break };
        cursor = last.seq;
        pages.push(page);
        ensure!(pages.len() <= 4, "paging does not end");
    }
    ensure_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![10, 10, 5],
        "page sizes"
    );
    ensure_eq!(pages.concat(), all, "pages, concatenated");

    let cases = [
        (31, 3, vec![32, 34, 36]),
        (50, 10, vec![]),
        (u64::MAX, 10, vec![]),
    ];
    for (after_seq, limit, expected) in cases {
        let page = store
            .chat_after(&key, after_seq, limit)
            .await
            .or_fail("chat_after")?;
        ensure_eq!(
            seqs(&page),
            expected,
            "chat_after {after_seq} limit {limit}"
        );
    }
    let empty = store.chat_after(&key, 0, 0).await.or_fail("chat_after")?;
    ensure!(
        empty.is_empty(),
        "limit 0 returned {} messages",
        empty.len()
    );
    Ok(())
}

/// A message whose client_ref is already stored is not stored again (the
/// first wins, in one batch or across batches); an empty client_ref never
/// deduplicates; `chat_by_client_refs` finds each stored message once.
pub async fn duplicate_client_ref_is_stored_once(store: &dyn Store, prefix: &str) -> CheckResult {
    let key = key(prefix, "client-ref");
    write(store, &key, messages(vec![message(1, "r1", "first")])).await?;
    write(store, &key, messages(vec![message(2, "r1", "retry")])).await?;
    let batch = vec![
        message(3, "r2", "first"),
        message(4, "r2", "retry"),
        message(5, "", "no ref"),
        message(6, "", "no ref"),
    ];
    write(store, &key, messages(batch)).await?;

    let history = store.chat_after(&key, 0, 100).await.or_fail("chat_after")?;
    ensure_eq!(seqs(&history), vec![1, 3, 5, 6], "stored seqs");
    let refs: Vec<String> = ["r2", "r1", "unknown", "", "r1"].map(str::to_owned).into();
    let mut found = store
        .chat_by_client_refs(&key, &refs)
        .await
        .or_fail("refs")?;
    found.sort_by_key(|m| m.seq);
    ensure_eq!(
        found,
        vec![message(1, "r1", "first"), message(3, "r2", "first")],
        "found"
    );
    Ok(())
}

/// Presence rows are replaced whole (no field survives from the old row) and
/// deleted on request.
pub async fn presence_is_written_whole_and_removed(store: &dyn Store, prefix: &str) -> CheckResult {
    let key = key(prefix, "presence");
    let alice = presence("alice", "Alice", true);
    let bob = presence("bob", "Bob", false);
    let written = SessionWrite {
        presence: vec![alice, bob.clone()],
        ..SessionWrite::default()
    };
    write(store, &key, written).await?;

    let alice_again = PresenceState {
        participant_id: "alice".to_owned(),
        status: PresenceStatus::Online as i32,
        last_seen_ms: 2_000,
        ..PresenceState::default()
    };
    let rewrite = SessionWrite {
        presence: vec![alice_again.clone()],
        ..SessionWrite::default()
    };
    write(store, &key, rewrite).await?;
    ensure_eq!(
        participants(store, &key).await?,
        vec![alice_again.clone(), bob],
        "rewritten"
    );

    let removed = SessionWrite {
        presence_removed: vec!["bob".to_owned(), "never-there".to_owned()],
        ..SessionWrite::default()
    };
    write(store, &key, removed).await?;
    ensure_eq!(
        participants(store, &key).await?,
        vec![alice_again],
        "after removal"
    );
    Ok(())
}

/// Connection rows are upserted by connection id and deleted on request;
/// `load_session` returns them whatever their expiry (the caller filters).
pub async fn connections_are_upserted_and_removed(store: &dyn Store, prefix: &str) -> CheckResult {
    let key = key(prefix, "connections");
    let expired = connection("c1", "bridge-1", 1);
    let live = connection("c2", "bridge-1", i64::MAX);
    let written = SessionWrite {
        connections: vec![expired, live.clone()],
        ..Default::default()
    };
    write(store, &key, written).await?;

    let refreshed = connection("c1", "bridge-2", 120_000);
    let refresh = SessionWrite {
        connections: vec![refreshed.clone()],
        ..Default::default()
    };
    write(store, &key, refresh).await?;
    ensure_eq!(
        connections(store, &key).await?,
        vec![refreshed.clone(), live],
        "refreshed"
    );

    let removed = SessionWrite {
        connections_removed: vec!["c2".to_owned(), "never-there".to_owned()],
        ..SessionWrite::default()
    };
    write(store, &key, removed).await?;
    ensure_eq!(
        connections(store, &key).await?,
        vec![refreshed],
        "after removal"
    );
    Ok(())
}

/// The same session id in two tenants, and session ids that prefix each
/// other, share nothing.
pub async fn tenants_and_sessions_are_isolated(store: &dyn Store, prefix: &str) -> CheckResult {
    let keys = [
        SessionKey::new(format!("{prefix}-tenant-a"), "room"),
        SessionKey::new(format!("{prefix}-tenant-b"), "room"),
        SessionKey::new(format!("{prefix}-tenant-a"), "room-2"),
        SessionKey::new(format!("{prefix}-tenant-a"), "roo"),
    ];
    for (index, key) in (1u64..).zip(&keys) {
        let name = key.to_string();
        let written = SessionWrite {
            seq_mark: Some(index * 100),
            // Every session takes its first lease: a lease elsewhere is no conflict.
            lease: Some(LeaseWrite {
                expected_epoch: None,
                state: lease(1, &name, 0),
            }),
            messages: vec![message(1, "same-ref", &name)],
            presence: vec![presence("p", &name, false)],
            connections: vec![connection("c", &name, 90_000)],
            ..SessionWrite::default()
        };
        write(store, key, written).await?;
    }
    for (index, key) in (1u64..).zip(&keys) {
        let name = key.to_string();
        let record = load(store, key).await?;
        ensure_eq!(record.seq_mark, index * 100, "seq_mark of {key}");
        ensure_eq!(
            record.lease.map(|l| l.lease_to),
            Some(name.clone()),
            "lease of {key}"
        );
        let names: Vec<_> = record.participants.iter().map(|p| p.name.clone()).collect();
        ensure_eq!(names, vec![name.clone()], "participants of {key}");
        let bridges: Vec<_> = record
            .connections
            .iter()
            .map(|c| c.info.bridge_id.clone())
            .collect();
        ensure_eq!(bridges, vec![name.clone()], "connections of {key}");
        let history = store.chat_page(key, None, 10).await.or_fail("chat_page")?;
        ensure_eq!(contents(&history), vec![name.clone()], "history of {key}");
        let refs = ["same-ref".to_owned()];
        let found = store
            .chat_by_client_refs(key, &refs)
            .await
            .or_fail("refs")?;
        ensure_eq!(contents(&found), vec![name], "client_ref lookup in {key}");
    }
    Ok(())
}

/// 200 concurrent writers, 5 sequential batches each, half on sessions of
/// their own and half on one shared session: every write is readable after.
pub async fn concurrent_writes_are_all_durable(store: &dyn Store, prefix: &str) -> CheckResult {
    const WRITERS: u64 = 200;
    const WRITES: u64 = 5;
    let shared = key(prefix, "concurrent-shared");
    let own = |writer: u64| key(prefix, &format!("concurrent-{writer}"));
    let run_writer = |writer: u64| {
        let (key, shared) = (own(writer), shared.clone());
        async move {
            for n in 0..WRITES {
                let (key, seq) = if writer % 2 == 0 {
                    (&key, n + 1)
                } else {
                    (&shared, writer * WRITES + n + 1)
                };
                let batch = SessionWrite {
                    seq_mark: Some(seq),
                    messages: vec![message(seq, &format!("w{writer}-{n}"), "concurrent")],
                    presence: vec![presence(&format!("p{writer}"), "Writer", n % 2 == 0)],
                    ..SessionWrite::default()
                };
                store
                    .write_session(key, batch)
                    .await
                    .or_fail(&format!("writer {writer}"))?;
            }
            Ok::<(), String>(())
        }
    };
    for result in join_all((0..WRITERS).map(run_writer)).await {
        result?;
    }

    for writer in (0..WRITERS).step_by(2) {
        let key = own(writer);
        let history = store.chat_after(&key, 0, 100).await.or_fail("chat_after")?;
        ensure_eq!(
            seqs(&history),
            (1..=WRITES).collect::<Vec<_>>(),
            "history of {key}"
        );
        ensure_eq!(
            load(store, &key).await?.seq_mark,
            WRITES,
            "seq_mark of {key}"
        );
    }
    let mut history = Vec::new();
    loop {
        let after = history.last().map_or(0, |m: &ChatMessage| m.seq);
        let page = store
            .chat_after(&shared, after, 128)
            .await
            .or_fail("chat_after")?;
        if page.is_empty() {
            break;
        }
        history.extend(page);
    }
    let expected: Vec<u64> = (1..WRITERS)
        .step_by(2)
        .flat_map(|writer| (0..WRITES).map(move |n| writer * WRITES + n + 1))
        .collect();
    ensure_eq!(seqs(&history), expected, "shared history");
    let record = load(store, &shared).await?;
    ensure_eq!(
        record.seq_mark,
        expected.last().copied().unwrap_or(0),
        "shared seq_mark"
    );
    ensure_eq!(
        record.participants.len(),
        (WRITERS / 2) as usize,
        "shared participants"
    );
    Ok(())
}

/// Maps a store error to a check failure naming the call.
trait OrFail<T> {
    fn or_fail(self, call: &str) -> Result<T, String>;
}

impl<T> OrFail<T> for Result<T, StoreError> {
    fn or_fail(self, call: &str) -> Result<T, String> {
        self.map_err(|err| format!("{call} failed: {err}"))
    }
}

fn key(prefix: &str, name: &str) -> SessionKey {
    SessionKey::new(DEFAULT_TENANT, format!("{prefix}-{name}"))
}

async fn load(store: &dyn Store, key: &SessionKey) -> Result<SessionRecord, String> {
    store
        .load_session(key)
        .await
        .or_fail(&format!("load_session {key}"))
}

async fn write(store: &dyn Store, key: &SessionKey, batch: SessionWrite) -> CheckResult {
    store
        .write_session(key, batch)
        .await
        .or_fail(&format!("write_session {key}"))
}

async fn participants(store: &dyn Store, key: &SessionKey) -> Result<Vec<PresenceState>, String> {
    let mut participants = load(store, key).await?.participants;
    participants.sort_by(|a, b| a.participant_id.cmp(&b.participant_id));
    Ok(participants)
}

async fn connections(store: &dyn Store, key: &SessionKey) -> Result<Vec<StoredConnection>, String> {
    let mut connections = load(store, key).await?.connections;
    connections.sort_by(|a, b| a.info.connection_id.cmp(&b.info.connection_id));
    Ok(connections)
}

/// Writes 25 messages with seqs 2, 4, .., 50 (gaps on purpose) in three
/// batches, newest batch first; returns them oldest first.
async fn write_history(store: &dyn Store, key: &SessionKey) -> Result<Vec<ChatMessage>, String> {
    let all: Vec<ChatMessage> = (1..=25)
        .map(|n| message(n * 2, &format!("h{n}"), &format!("message {n}")))
        .collect();
    for chunk in all.rchunks(10) {
        write(store, key, messages(chunk.to_vec())).await?;
    }
    Ok(all)
}

fn seq_mark(seq_mark: u64) -> SessionWrite {
    SessionWrite {
        seq_mark: Some(seq_mark),
        ..SessionWrite::default()
    }
}

fn messages(messages: Vec<ChatMessage>) -> SessionWrite {
    SessionWrite {
        messages,
        ..SessionWrite::default()
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

fn seqs(messages: &[ChatMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

fn contents(messages: &[ChatMessage]) -> Vec<String> {
    messages.iter().map(|m| m.content.clone()).collect()
}

fn message(seq: u64, client_ref: &str, content: &str) -> ChatMessage {
    ChatMessage {
        id: format!("0190-{seq:08}"),
        client_ref: client_ref.to_owned(),
        seq,
        sender_id: "alice".to_owned(),
        sender_name: "Alice".to_owned(),
        sender_role: Role::Student as i32,
        kind: "text".to_owned(),
        content: content.to_owned(),
        meta_json: r#"{"lang":"en"}"#.to_owned(),
        created_at_ms: 1_700_000_000_000 + i64::try_from(seq).unwrap_or(0),
    }
}

fn presence(participant_id: &str, name: &str, is_typing: bool) -> PresenceState {
    PresenceState {
        participant_id: participant_id.to_owned(),
        name: name.to_owned(),
        role: Role::Teacher as i32,
        status: PresenceStatus::Typing as i32,
        is_typing,
        is_speaking: true,
        color: "#ff8800".to_owned(),
        last_seen_ms: 1_000,
        extra_json: r#"{"hand":"raised"}"#.to_owned(),
    }
}

fn connection(connection_id: &str, bridge_id: &str, expires_at_ms: i64) -> StoredConnection {
    StoredConnection {
        info: ConnectionInfo {
            connection_id: connection_id.to_owned(),
            participant_id: "alice".to_owned(),
            name: "Alice".to_owned(),
            role: Role::Student as i32,
            client: ClientKind::Tablet as i32,
            bridge_id: bridge_id.to_owned(),
            ip: "203.0.113.7".to_owned(),
            user_agent: "conformance".to_owned(),
            connected_at_ms: 1_000,
        },
        expires_at_ms,
    }
}

fn lease(epoch: u64, lease_to: &str, step_index: i64) -> LeaseState {
    LeaseState {
        lease_id: format!("lease-{epoch}"),
        lease_to: lease_to.to_owned(),
        step_index,
        issued_at_ms: 1_000,
        expires_at_ms: 61_000,
        epoch,
    }
}
