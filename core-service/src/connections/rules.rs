//! What registering, touching and closing do to a registry row, and which
//! rows count as listed or gone, at a given `now`. Pure: the registry reads
//! and writes the rows around these.

use meno_proto::{ConnectionStatus, RegisteredConnection};

/// The tenant a request names (empty: the default one).
pub(crate) fn tenant(tenant: &str) -> String {
    if tenant.is_empty() {
        meno_common::key::DEFAULT_TENANT.to_owned()
    } else {
        tenant.to_owned()
    }
}

/// A row as `Register` writes it: CONNECTED, active now, expiring `ttl_ms`
/// from now. The bridge's `created_at_ms` is kept when it is set and not in
/// the future (the socket may have opened a moment before the call).
pub(crate) fn registered(
    mut row: RegisteredConnection,
    now: i64,
    ttl_ms: i64,
) -> RegisteredConnection {
    row.tenant = tenant(&row.tenant);
    row.status = ConnectionStatus::Connected.into();
    if row.created_at_ms <= 0 || row.created_at_ms > now {
        row.created_at_ms = now;
    }
    row.last_activity_ms = now;
    row.disconnected_at_ms = 0;
    row.expires_at_ms = now.saturating_add(ttl_ms);
    row
}

/// Whether the row has not expired by `now`.
pub(crate) fn is_live(row: &RegisteredConnection, now: i64) -> bool {
    row.expires_at_ms > now
}

fn is_connected(row: &RegisteredConnection) -> bool {
    row.status == i32::from(ConnectionStatus::Connected)
}

/// A touched row, or `None` when it is expired or closed (a touch never
/// revives one). `last_activity_ms` is the bridge's (0: now), never later
/// than now and never earlier than what the row has.
pub(crate) fn touched(
    mut row: RegisteredConnection,
    now: i64,
    last_activity_ms: i64,
    ttl_ms: i64,
) -> Option<RegisteredConnection> {
    if !is_live(&row, now) || !is_connected(&row) {
        return None;
    }
    let activity = if last_activity_ms <= 0 {
        now
    } else {
        last_activity_ms.min(now)
    };
    row.last_activity_ms = row.last_activity_ms.max(activity);
    row.expires_at_ms = now.saturating_add(ttl_ms);
    Some(row)
}

/// A closed row, or `None` when it is expired or already closed. It keeps
/// its expiry: it stays listed, DISCONNECTED, until then.
pub(crate) fn disconnected(
    mut row: RegisteredConnection,
    now: i64,
) -> Option<RegisteredConnection> {
    if !is_live(&row, now) || !is_connected(&row) {
        return None;
    }
    row.status = ConnectionStatus::Disconnected.into();
    row.disconnected_at_ms = now;
    Some(row)
}

/// The rows a list returns: not expired, oldest first (by creation, then id).
pub(crate) fn listed(rows: Vec<RegisteredConnection>, now: i64) -> Vec<RegisteredConnection> {
    let mut rows: Vec<RegisteredConnection> =
        rows.into_iter().filter(|row| is_live(row, now)).collect();
    rows.sort_by(|a, b| {
        (a.created_at_ms, &a.connection_id).cmp(&(b.created_at_ms, &b.connection_id))
    });
    rows
}

/// Whether directed delivery finds the connection gone: expired, closed, or
/// held by a bridge with no live user stream (`bridge_is_live` is asked with
/// the row's `bridge_id`).
pub(crate) fn is_gone(
    row: &RegisteredConnection,
    now: i64,
    bridge_is_live: impl Fn(&str) -> bool,
) -> bool {
    !is_live(row, now) || !is_connected(row) || !bridge_is_live(&row.bridge_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: i64 = 600_000;

    fn row(connection_id: &str) -> RegisteredConnection {
        RegisteredConnection {
            connection_id: connection_id.to_owned(),
            user_id: "ann".into(),
            bridge_id: "b1".into(),
            ..RegisteredConnection::default()
        }
    }

    #[test]
    fn register_writes_a_connected_row_expiring_a_ttl_from_now() {
        let mut stale = row("c1");
        stale.status = ConnectionStatus::Disconnected.into();
        stale.disconnected_at_ms = 5;
        let registered = registered(stale, 1_000, TTL);
        assert_eq!(registered.tenant, "default");
        assert!(is_connected(&registered));
        assert_eq!(registered.created_at_ms, 1_000);
        assert_eq!(registered.last_activity_ms, 1_000);
        assert_eq!(registered.disconnected_at_ms, 0);
        assert_eq!(registered.expires_at_ms, 1_000 + TTL);

        let mut earlier = row("c2");
        earlier.created_at_ms = 900;
        assert_eq!(registered_at(earlier, 1_000).created_at_ms, 900);
        let mut future = row("c3");
        future.created_at_ms = 5_000;
        assert_eq!(registered_at(future, 1_000).created_at_ms, 1_000);
    }

    fn registered_at(row: RegisteredConnection, now: i64) -> RegisteredConnection {
        registered(row, now, TTL)
    }

    #[test]
    fn a_touch_extends_a_live_row_and_never_revives_one() {
        let live = registered_at(row("c1"), 1_000);
        let touched_row = touched(live.clone(), 2_000, 1_500, TTL).expect("live");
        assert_eq!(touched_row.last_activity_ms, 1_500);
        assert_eq!(touched_row.expires_at_ms, 2_000 + TTL);
        let clamped = touched(live.clone(), 2_000, 9_999, TTL).expect("live");
        assert_eq!(
            clamped.last_activity_ms, 2_000,
            "activity is never in the future"
        );
        let older = touched(touched_row.clone(), 3_000, 1_200, TTL).expect("live");
        assert_eq!(older.last_activity_ms, 1_500, "activity never moves back");
        assert!(
            touched(live.clone(), 1_000 + TTL, 0, TTL).is_none(),
            "expired"
        );
        let closed = disconnected(live, 1_500).expect("live");
        assert!(touched(closed, 1_600, 0, TTL).is_none(), "closed");
    }

    #[test]
    fn a_closed_row_keeps_its_expiry_and_stays_listed_until_then() {
        let live = registered_at(row("c1"), 1_000);
        let closed = disconnected(live, 2_000).expect("live");
        assert!(!is_connected(&closed));
        assert_eq!(closed.disconnected_at_ms, 2_000);
        assert_eq!(closed.expires_at_ms, 1_000 + TTL);
        assert!(
            disconnected(closed.clone(), 2_500).is_none(),
            "already closed"
        );
        assert_eq!(listed(vec![closed.clone()], 1_000 + TTL - 1).len(), 1);
        assert!(listed(vec![closed], 1_000 + TTL).is_empty());
    }

    #[test]
    fn lists_are_unexpired_rows_oldest_first() {
        let b = registered_at(row("b"), 2_000);
        let a = registered_at(row("a"), 2_000);
        let old = registered_at(row("z"), 1_000);
        let expired = registered(row("x"), 0, 10);
        let rows = listed(vec![b, expired, a, old], 2_000);
        let ids: Vec<&str> = rows.iter().map(|row| row.connection_id.as_str()).collect();
        assert_eq!(ids, ["z", "a", "b"]);
    }

    #[test]
    fn a_connection_is_gone_when_expired_closed_or_its_bridge_has_no_stream() {
        let live = registered_at(row("c1"), 1_000);
        assert!(!is_gone(&live, 2_000, |bridge| bridge == "b1"));
        assert!(is_gone(&live, 2_000, |_| false), "no live bridge stream");
        assert!(is_gone(&live, 1_000 + TTL, |_| true), "expired");
        let closed = disconnected(live, 2_000).expect("live");
        assert!(is_gone(&closed, 2_000, |_| true), "closed");
    }
}
