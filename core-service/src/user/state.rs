//! One user's state, owned by its actor: the connections the user has in
//! each session (as the session actors report them), the bridges interested
//! in the user, and the call. Synchronous, at a given `now`.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::call::{CallState, Effect};

/// One user's state.
#[derive(Debug, Default)]
pub(crate) struct UserState {
    /// Session id → the user's connections in it. A connection may be in
    /// several sessions (a NexusChat socket joins many rooms).
    sessions: HashMap<String, HashSet<String>>,
    /// Bridge ids whose streams get this user's events.
    interested: BTreeSet<String>,
    call: CallState,
}

impl UserState {
    /// Records that `connection_id` joined or left `session_id`. A user whose
    /// last connection goes is in no call any more.
    pub(crate) fn membership(&mut self, session_id: &str, connection_id: &str, connected: bool) {
        if connected {
            self.sessions
                .entry(session_id.to_owned())
                .or_default()
                .insert(connection_id.to_owned());
            return;
        }
        if let Some(connections) = self.sessions.get_mut(session_id) {
            connections.remove(connection_id);
            if connections.is_empty() {
                self.sessions.remove(session_id);
            }
        }
        if self.sessions.is_empty() {
            self.call.clear();
        }
    }

    /// Whether the user has any connection.
    pub(crate) fn is_connected(&self) -> bool {
        !self.sessions.is_empty()
    }

    /// Whether `connection_id` is one of the user's, in any session.
    pub(crate) fn has_connection(&self, connection_id: &str) -> bool {
        self.sessions
            .values()
            .any(|connections| connections.contains(connection_id))
    }

    /// The sessions the user has connections in.
    pub(crate) fn session_ids(&self) -> Vec<String> {
        self.sessions.keys().cloned().collect()
    }

    /// How many of the user's connections are in `session_id`.
    #[cfg(test)]
    pub(crate) fn connections_in(&self, session_id: &str) -> usize {
        self.sessions.get(session_id).map_or(0, HashSet::len)
    }

    /// Whether the user is connected in one of `sessions`.
    pub(crate) fn shares_a_session(&self, sessions: &[String]) -> bool {
        sessions
            .iter()
            .any(|session_id| self.sessions.contains_key(session_id))
    }

    /// Adds or removes a bridge that gets this user's events.
    pub(crate) fn set_interest(&mut self, bridge_id: &str, interested: bool) {
        if interested {
            self.interested.insert(bridge_id.to_owned());
        } else {
            self.interested.remove(bridge_id);
        }
    }

    /// The bridges that get this user's events.
    pub(crate) fn interested(&self) -> impl Iterator<Item = &str> {
        self.interested.iter().map(String::as_str)
    }

    /// The user's call.
    pub(crate) fn call(&self) -> &CallState {
        &self.call
    }

    /// Applies a signal's effect on this user's call, whose peer is `other`.
    /// A user with no connection is in no call, so it is never made busy.
    pub(crate) fn apply_call(&mut self, effect: Effect, other: &str, now: i64, ttl_ms: i64) {
        if effect == Effect::Busy && !self.is_connected() {
            return;
        }
        self.call.apply(effect, other, now, ttl_ms);
    }

    /// Drops what lapsed by `now`.
    pub(crate) fn expire(&mut self, now: i64) {
        self.call.expire(now);
    }

    /// True when nothing keeps the actor alive: no connection (so no call)
    /// and no interested bridge.
    pub(crate) fn is_idle(&self) -> bool {
        self.sessions.is_empty() && self.interested.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: i64 = 300_000;

    #[test]
    fn connections_are_counted_per_session_and_by_id() {
        let mut user = UserState::default();
        user.membership("r1", "c1", true);
        user.membership("r1", "c1", true);
        user.membership("r1", "c2", true);
        user.membership("r2", "c1", true);
        assert_eq!(
            user.connections_in("r1"),
            2,
            "a repeat is the same connection"
        );
        assert_eq!(user.connections_in("r2"), 1);
        assert!(user.has_connection("c2"));
        user.membership("r1", "c2", false);
        assert!(!user.has_connection("c2"));
        user.membership("r1", "c1", false);
        assert_eq!(user.connections_in("r1"), 0);
        assert!(user.is_connected(), "still in r2");
        assert!(user.shares_a_session(&["r9".to_owned(), "r2".to_owned()]));
        assert!(!user.shares_a_session(&["r1".to_owned()]));
    }

    #[test]
    fn a_user_whose_last_connection_goes_is_no_longer_busy() {
        let mut user = UserState::default();
        user.membership("r1", "c1", true);
        user.membership("r2", "c1", true);
        user.apply_call(Effect::Busy, "bob", 0, TTL);
        user.membership("r1", "c1", false);
        assert_eq!(
            user.call().busy_with(1),
            Some("bob"),
            "still connected in r2"
        );
        user.membership("r2", "c1", false);
        assert_eq!(user.call().busy_with(1), None);
        assert!(user.is_idle());
    }

    #[test]
    fn a_user_without_a_connection_is_never_made_busy() {
        let mut user = UserState::default();
        user.apply_call(Effect::Busy, "bob", 0, TTL);
        assert_eq!(user.call().busy_with(1), None);
    }

    #[test]
    fn an_interested_bridge_keeps_the_user_alive() {
        let mut user = UserState::default();
        user.set_interest("b1", true);
        assert!(!user.is_idle());
        assert_eq!(user.interested().collect::<Vec<_>>(), ["b1"]);
        user.set_interest("b1", false);
        assert!(user.is_idle());
    }
}
