//! Checks of the connection registry's rows, through the registry's own
//! rules on a manual clock (the store keeps rows whole; expiry is decided
//! on read): rows found by connection, session and user with every field,
//! touched and closed, not listed once past `expires_at`, and deleted with
//! their lookups.

use std::sync::Arc;
use std::time::Duration;

use meno_proto::{ClientKind, ConnectionStatus, RegisteredConnection};

use super::CheckResult;
use crate::clock::{Clock, ManualClock, SystemClock};
use crate::connections::ConnectionRegistry;
use crate::store::{RegistryLookup, Store};

const TTL: Duration = Duration::from_secs(600);

/// A registry over `store` on a manual clock standing at the real time
/// (CQL collects rows by its own clock; the registry goes by this one).
fn registry(store: &Arc<dyn Store>) -> (ConnectionRegistry, ManualClock) {
    let clock = ManualClock::new(SystemClock.now_ms());
    let registry = ConnectionRegistry::new(Arc::clone(store), Arc::new(clock.clone()), TTL);
    (registry, clock)
}

fn row(tenant: &str, connection_id: &str, user_id: &str, session_id: &str) -> RegisteredConnection {
    RegisteredConnection {
        tenant: tenant.to_owned(),
        connection_id: connection_id.to_owned(),
        user_id: user_id.to_owned(),
        session_id: session_id.to_owned(),
        client: ClientKind::Web.into(),
        dialect: "assistant".into(),
        bridge_id: "bridge-1".into(),
        ip: "203.0.113.7".into(),
        user_agent: "test/1.0".into(),
        ..RegisteredConnection::default()
    }
}

fn ids(rows: &[RegisteredConnection]) -> Vec<&str> {
    rows.iter().map(|row| row.connection_id.as_str()).collect()
}

async fn list(
    registry: &ConnectionRegistry,
    tenant: &str,
    lookup: RegistryLookup,
) -> Result<Vec<RegisteredConnection>, String> {
    registry
        .list(tenant, &lookup)
        .await
        .map_err(|err| format!("list {lookup:?} failed: {err}"))
}

macro_rules! call {
    ($what:literal, $call:expr) => {
        $call
            .await
            .map_err(|err| format!("{} failed: {err}", $what))?
    };
}

/// Rows come back whole by session and by user (oldest first), touched and
/// closed as the rules say, and only in their tenant.
pub async fn registry_rows_are_listed_by_session_and_user(
    store: Arc<dyn Store>,
    prefix: &str,
) -> CheckResult {
    let tenant = format!("{prefix}-reg");
    let other_tenant = format!("{prefix}-reg-other");
    let (registry, clock) = registry(&store);
    let first = call!(
        "register c1",
        registry.register(row(&tenant, "c1", "ann", "s1"))
    );
    clock.advance(Duration::from_millis(5));
    let second = call!(
        "register c2",
        registry.register(row(&tenant, "c2", "ann", "s2"))
    );
    call!(
        "register c3",
        registry.register(row(&tenant, "c3", "bob", "s1"))
    );
    call!(
        "register elsewhere",
        registry.register(row(&other_tenant, "c4", "ann", "s1"))
    );
    call!(
        "register no session",
        registry.register(row(&tenant, "c5", "cat", ""))
    );

    let by_user = list(&registry, &tenant, RegistryLookup::User("ann".into())).await?;
    ensure_eq!(by_user, vec![first.clone(), second], "ann's rows");
    let by_session = list(&registry, &tenant, RegistryLookup::Session("s1".into())).await?;
    ensure_eq!(ids(&by_session), vec!["c1", "c3"], "rows of session s1");
    let cat = list(&registry, &tenant, RegistryLookup::User("cat".into())).await?;
    ensure_eq!(ids(&cat), vec!["c5"], "a row without a session, by user");

    clock.advance(Duration::from_secs(30));
    let touched_at = clock.now_ms();
    let touched = call!(
        "touch",
        registry.touch(
            &tenant,
            &["c1".to_owned(), "missing".to_owned()],
            touched_at
        )
    );
    ensure_eq!(touched, 1, "rows touched");
    call!("disconnect c3", registry.disconnect(&tenant, "c3"));
    let by_session = list(&registry, &tenant, RegistryLookup::Session("s1".into())).await?;
    let c1 = &by_session[0];
    ensure_eq!(c1.last_activity_ms, touched_at, "c1's last activity");
    ensure_eq!(
        c1.expires_at_ms,
        touched_at + 600_000,
        "c1's extended expiry"
    );
    ensure_eq!(c1.created_at_ms, first.created_at_ms, "c1's creation");
    let c3 = &by_session[1];
    ensure_eq!(
        c3.status,
        i32::from(ConnectionStatus::Disconnected),
        "c3 after its close"
    );
    ensure_eq!(c3.disconnected_at_ms, touched_at, "c3's close time");
    Ok(())
}

/// Past `expires_at` a row is not listed and a touch does not revive it;
/// a touched row outlives the others.
pub async fn registry_rows_past_their_expiry_are_not_listed(
    store: Arc<dyn Store>,
    prefix: &str,
) -> CheckResult {
    let tenant = format!("{prefix}-reg-ttl");
    let (registry, clock) = registry(&store);
    call!(
        "register c1",
        registry.register(row(&tenant, "c1", "ann", "s1"))
    );
    call!(
        "register c2",
        registry.register(row(&tenant, "c2", "ann", "s1"))
    );
    clock.advance(TTL / 2);
    call!("touch c2", registry.touch(&tenant, &["c2".to_owned()], 0));
    clock.advance(TTL / 2);
    let by_user = list(&registry, &tenant, RegistryLookup::User("ann".into())).await?;
    ensure_eq!(ids(&by_user), vec!["c2"], "rows a TTL after c1's register");
    let revived = call!("touch c1", registry.touch(&tenant, &["c1".to_owned()], 0));
    ensure_eq!(revived, 0, "an expired row touched");
    clock.advance(TTL);
    let by_session = list(&registry, &tenant, RegistryLookup::Session("s1".into())).await?;
    ensure!(
        by_session.is_empty(),
        "rows listed after both expired: {by_session:?}"
    );
    Ok(())
}

/// A deleted row is gone by connection, session and user; a row registered
/// again under another session and user is listed only under the new ones.
pub async fn registry_rows_are_deleted_and_moved_with_their_lookups(
    store: Arc<dyn Store>,
    prefix: &str,
) -> CheckResult {
    let tenant = format!("{prefix}-reg-del");
    let (registry, _clock) = registry(&store);
    let c1 = call!(
        "register c1",
        registry.register(row(&tenant, "c1", "ann", "s1"))
    );
    call!(
        "register c2",
        registry.register(row(&tenant, "c2", "ann", "s1"))
    );
    call!("prune c1", registry.prune(std::slice::from_ref(&c1)));
    let found = call!("row c1", registry.row(&tenant, "c1"));
    ensure!(found.is_none(), "c1 after its deletion: {found:?}");
    let by_user = list(&registry, &tenant, RegistryLookup::User("ann".into())).await?;
    ensure_eq!(ids(&by_user), vec!["c2"], "ann's rows after c1's deletion");

    call!(
        "register c2 again",
        registry.register(row(&tenant, "c2", "bob", "s2"))
    );
    let ann = list(&registry, &tenant, RegistryLookup::User("ann".into())).await?;
    ensure!(ann.is_empty(), "ann's rows after c2 moved to bob: {ann:?}");
    let s1 = list(&registry, &tenant, RegistryLookup::Session("s1".into())).await?;
    ensure!(s1.is_empty(), "rows of s1 after c2 moved to s2: {s1:?}");
    let bob = list(&registry, &tenant, RegistryLookup::User("bob".into())).await?;
    ensure_eq!(ids(&bob), vec!["c2"], "bob's rows");
    Ok(())
}
