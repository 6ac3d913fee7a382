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

use std::sync::Arc;

use super::Store;

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

// The macros above are in scope in these modules because they come first.
mod chat;
mod concurrency;
mod fixtures;
mod presence;
mod reads;
mod registry;
mod session;

pub use chat::{
    chat_after_pages_oldest_first, chat_page_pages_newest_first, client_ref_is_scoped_by_sender,
    duplicate_client_ref_is_stored_once,
};
pub use concurrency::concurrent_writes_are_all_durable;
pub use presence::{connections_are_upserted_and_removed, presence_is_written_whole_and_removed};
pub use reads::{
    message_ids_are_indexed_with_their_message, read_positions_are_isolated_by_tenant,
    read_positions_are_upserted_and_loaded, session_exists_once_it_has_a_seq_mark,
};
pub use registry::{
    registry_rows_are_deleted_and_moved_with_their_lookups,
    registry_rows_are_listed_by_session_and_user, registry_rows_past_their_expiry_are_not_listed,
};
pub use session::{
    lease_conflict_leaves_batch_unapplied, seq_mark_only_grows, step_and_lease_round_trip,
    tenants_and_sessions_are_isolated, unknown_session_is_default,
};

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
        client_ref_is_scoped_by_sender,
        presence_is_written_whole_and_removed,
        connections_are_upserted_and_removed,
        tenants_and_sessions_are_isolated,
        concurrent_writes_are_all_durable,
        read_positions_are_upserted_and_loaded,
        read_positions_are_isolated_by_tenant,
        message_ids_are_indexed_with_their_message,
        session_exists_once_it_has_a_seq_mark,
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

/// Runs the connection registry's checks (they need a shared store: the
/// registry holds it) under `prefix`; `Err` lists each failed check.
pub async fn run_registry(store: Arc<dyn Store>, prefix: &str) -> Result<(), String> {
    let mut failures = Vec::new();
    macro_rules! run {
        ($($check:ident),+ $(,)?) => {
            $(if let Err(why) = $check(Arc::clone(&store), prefix).await {
                failures.push(format!("{}: {why}", stringify!($check)));
            })+
        };
    }
    run!(
        registry_rows_are_listed_by_session_and_user,
        registry_rows_past_their_expiry_are_not_listed,
        registry_rows_are_deleted_and_moved_with_their_lookups,
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}
