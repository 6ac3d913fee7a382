//! Presence and connections: who is in the session, in which state, and for
//! how long (TTL, reconnect grace, typing timeout).
//!
//! Presence is published at once and written behind, coalesced per
//! participant: a keystroke never waits for a disk. A decision that takes a
//! participant offline says so, and the session releases the lease that
//! participant held.

use meno_proto::{
    ConnectionInfo, HeartbeatRequest, PresenceChange, PresenceState, PresenceStatus,
    PresenceUpdateRequest, Role,
};

use std::collections::{BTreeMap, HashMap};

use super::events::Stage;
use super::millis;
use crate::config::SessionConfig;
use crate::error::CoreError;
use crate::store::StoredConnection;
use color::{color_from_extra, derived_color};

mod color;

/// A participant as the actor tracks it.
#[derive(Debug, Clone)]
struct Participant {
    /// What clients see.
    state: PresenceState,
    /// The status the participant chose (online, speaking, muted, ...),
    /// shown whenever it is connected and not typing.
    chosen_status: PresenceStatus,
    /// When `isTyping` clears itself unless renewed.
    typing_until_ms: Option<i64>,
    /// When a `reconnecting` participant goes `offline`.
    offline_at_ms: Option<i64>,
    /// Changed since the last write-behind flush.
    dirty: bool,
}

impl Participant {
    fn restored(state: PresenceState) -> Self {
        let chosen_status = match state.status() {
            status @ (PresenceStatus::Speaking | PresenceStatus::Muted) => status,
            _ => PresenceStatus::Online,
        };
        Self {
            state,
            chosen_status,
            typing_until_ms: None,
            offline_at_ms: None,
            dirty: false,
        }
    }

    /// The status to show, derived from choice, typing and connectivity.
    fn derive_status(&mut self, connected: bool) {
        let status = if !connected {
            if self.offline_at_ms.is_some() {
                PresenceStatus::Reconnecting
            } else {
                PresenceStatus::Offline
            }
        } else if self.state.is_typing {
            PresenceStatus::Typing
        } else if self.state.is_speaking && self.chosen_status == PresenceStatus::Online {
            PresenceStatus::Speaking
        } else {
            self.chosen_status
        };
        self.state.set_status(status);
    }
}

/// What a presence event changed: the status before (`UNSPECIFIED` for a
/// participant first seen) and whether typing flipped (a participant first
/// seen typing counts as a change).
fn change_from(before: Option<&PresenceState>, after: &PresenceState) -> PresenceChange {
    PresenceChange {
        previous_status: before.map_or(PresenceStatus::Unspecified as i32, |before| before.status),
        typing_changed: before.map_or(after.is_typing, |before| {
            before.is_typing != after.is_typing
        }),
    }
}

/// Who is in the session and through which connections.
#[derive(Debug)]
pub(crate) struct Presence {
    participants: BTreeMap<String, Participant>,
    connections: HashMap<String, StoredConnection>,
    last_flush_ms: i64,
}

impl Presence {
    /// Rebuilds presence from the stored rows. Participants restored without
    /// a live connection get the reconnect grace period to come back before
    /// they go offline: their bridges re-register live connections with
    /// their next refresh.
    pub(crate) fn restore(
        participants: Vec<PresenceState>,
        connections: Vec<StoredConnection>,
        config: &SessionConfig,
        now: i64,
    ) -> Self {
        let mut presence = Self {
            participants: participants
                .into_iter()
                .map(|state| (state.participant_id.clone(), Participant::restored(state)))
                .collect(),
            connections: connections
                .into_iter()
                .filter(|connection| connection.expires_at_ms > now)
                .map(|connection| (connection.info.connection_id.clone(), connection))
                .collect(),
            last_flush_ms: now,
        };
        // A connection stored before its participant's row was written
        // behind (the core stopped within a flush interval of the join): the
        // participant is rebuilt from the connection, so its calls are served.
        for connection in presence.connections.values() {
            let info = &connection.info;
            presence
                .participants
                .entry(info.participant_id.clone())
                .or_insert_with(|| {
                    let mut participant = Participant::restored(PresenceState {
                        participant_id: info.participant_id.clone(),
                        name: info.name.clone(),
                        role: info.role,
                        color: derived_color(&info.participant_id),
                        last_seen_ms: now,
                        ..PresenceState::default()
                    });
                    participant.dirty = true;
                    participant
                });
        }
        let grace = millis(config.reconnect_grace);
        let ids: Vec<String> = presence.participants.keys().cloned().collect();
        for id in ids {
            let connected = presence.is_connected(&id);
            if let Some(participant) = presence.participants.get_mut(&id) {
                let was_present = participant.state.status() != PresenceStatus::Offline;
                if !connected && was_present && grace > 0 {
                    participant.offline_at_ms = Some(now + grace);
                }
                participant.state.is_typing = false;
                participant.derive_status(connected);
            }
        }
        presence
    }

    fn is_connected(&self, participant_id: &str) -> bool {
        self.connections
            .values()
            .any(|connection| connection.info.participant_id == participant_id)
    }

    /// Every registered connection: its id and its participant's.
    pub(crate) fn connections(&self) -> impl Iterator<Item = (&str, &str)> {
        self.connections.values().map(|connection| {
            (
                connection.info.connection_id.as_str(),
                connection.info.participant_id.as_str(),
            )
        })
    }

    /// Whether `connection_id` is registered here.
    pub(crate) fn has_connection(&self, connection_id: &str) -> bool {
        self.connections.contains_key(connection_id)
    }

    /// The participant a registered connection belongs to.
    pub(crate) fn participant_of_connection(&self, connection_id: &str) -> Option<&str> {
        self.connections
            .get(connection_id)
            .map(|connection| connection.info.participant_id.as_str())
    }

    /// True while some connection is registered.
    pub(crate) fn has_connections(&self) -> bool {
        !self.connections.is_empty()
    }

    /// Every participant's presence, by participant id.
    pub(crate) fn list(&self) -> Vec<PresenceState> {
        self.participants
            .values()
            .map(|participant| participant.state.clone())
            .collect()
    }

    /// Re-derives a participant's status and, if anything visible changed,
    /// stages a `presence.event`. True when the participant went offline.
    /// `lastSeen` alone is no change: another socket of a participant already
    /// online, or a touch, publishes nothing (the time is written behind).
    fn settle(
        &mut self,
        participant_id: &str,
        before: Option<PresenceState>,
        stage: &mut Stage<'_>,
    ) -> bool {
        let connected = self.is_connected(participant_id);
        let Some(participant) = self.participants.get_mut(participant_id) else {
            return false;
        };
        participant.derive_status(connected);
        if let Some(before) = &before {
            let seen_moved = before.last_seen_ms != participant.state.last_seen_ms;
            let same = PresenceState {
                last_seen_ms: participant.state.last_seen_ms,
                ..before.clone()
            } == participant.state;
            if same {
                participant.dirty |= seen_moved;
                return false;
            }
        }
        participant.dirty = true;
        let state = participant.state.clone();
        let offline = state.status() == PresenceStatus::Offline;
        stage.presence_event(state, change_from(before.as_ref(), &participant.state));
        offline
    }

    /// Registers a connection and marks its participant online.
    pub(crate) fn connect(&mut self, info: ConnectionInfo, stage: &mut Stage<'_>) {
        let now = stage.now();
        let participant_id = info.participant_id.clone();
        let before = self
            .participants
            .get(&participant_id)
            .map(|participant| participant.state.clone());
        let participant = self
            .participants
            .entry(participant_id.clone())
            .or_insert_with(|| {
                Participant::restored(PresenceState {
                    participant_id: participant_id.clone(),
                    color: derived_color(&participant_id),
                    ..PresenceState::default()
                })
            });
        participant.state.name = info.name.clone();
        participant.state.role = info.role;
        participant.state.last_seen_ms = now;
        participant.offline_at_ms = None;
        let connection = StoredConnection {
            expires_at_ms: now + millis(stage.config().presence_ttl),
            info,
        };
        stage.write().connections.push(connection.clone());
        stage.membership(&participant_id, &connection.info.connection_id, true);
        self.connections
            .insert(connection.info.connection_id.clone(), connection);
        // A participant that just connected is not offline.
        self.settle(&participant_id, before, stage);
    }

    /// Removes a connection. An abnormal close leaves the participant
    /// `reconnecting` for the grace period. Returns the participant when it
    /// went offline.
    pub(crate) fn disconnect(
        &mut self,
        connection_id: &str,
        graceful: bool,
        stage: &mut Stage<'_>,
    ) -> Option<String> {
        let connection = self.connections.remove(connection_id)?;
        stage
            .write()
            .connections_removed
            .push(connection_id.to_owned());
        let participant_id = connection.info.participant_id;
        stage.membership(&participant_id, connection_id, false);
        if self.is_connected(&participant_id) {
            return None;
        }
        let now = stage.now();
        let grace = millis(stage.config().reconnect_grace);
        let participant = self.participants.get_mut(&participant_id)?;
        let before = participant.state.clone();
        participant.state.is_typing = false;
        participant.typing_until_ms = None;
        participant.offline_at_ms = (!graceful && grace > 0).then_some(now + grace);
        participant.state.last_seen_ms = now;
        self.settle(&participant_id, Some(before), stage)
            .then_some(participant_id)
    }

    /// Extends the TTL of a bridge's connections; unknown ones (after a core
    /// restart) are registered again. Returns how many were.
    pub(crate) fn refresh(
        &mut self,
        connections: Vec<ConnectionInfo>,
        stage: &mut Stage<'_>,
    ) -> u32 {
        let expires_at_ms = stage.now() + millis(stage.config().presence_ttl);
        let mut restored = 0;
        for info in connections {
            match self.connections.get_mut(&info.connection_id) {
                Some(known) => {
                    known.expires_at_ms = expires_at_ms;
                    stage.write().connections.push(known.clone());
                }
                None => {
                    restored += 1;
                    self.connect(info, stage);
                }
            }
        }
        restored
    }

    fn participant_for_update(&self, participant_id: &str) -> Result<(), CoreError> {
        if self.participants.contains_key(participant_id) && self.is_connected(participant_id) {
            Ok(())
        } else {
            Err(CoreError::new(
                crate::error::ErrorCode::NotFound,
                format!("participant {participant_id:?} is not connected to this session"),
            ))
        }
    }

    /// Applies a `presence.update`: fields merge, `extra` is replaced whole.
    pub(crate) fn update(
        &mut self,
        request: &PresenceUpdateRequest,
        participant_id: &str,
        stage: &mut Stage<'_>,
    ) -> Result<PresenceState, CoreError> {
        self.participant_for_update(participant_id)?;
        let now = stage.now();
        let typing_timeout = millis(stage.config().typing_timeout);
        let Some(participant) = self.participants.get_mut(participant_id) else {
            return Err(CoreError::internal("participant vanished"));
        };
        let before = participant.state.clone();
        let mut is_typing = request.is_typing;
        match request.status.map(PresenceStatus::try_from) {
            None => {}
            Some(Ok(PresenceStatus::Typing)) => is_typing = Some(is_typing.unwrap_or(true)),
            Some(Ok(
                status @ (PresenceStatus::Online
                | PresenceStatus::Speaking
                | PresenceStatus::Muted
                | PresenceStatus::Reconnecting),
            )) => {
                // "reconnecting" is the server's to say; from a client it
                // means no more than being here.
                participant.chosen_status = if status == PresenceStatus::Reconnecting {
                    PresenceStatus::Online
                } else {
                    status
                };
                if status == PresenceStatus::Online && request.is_typing.is_none() {
                    is_typing = Some(false);
                }
            }
            Some(_) => {
                return Err(CoreError::invalid(
                    "status must be online, typing, speaking, muted or reconnecting",
                ))
            }
        }
        if let Some(typing) = is_typing {
            participant.state.is_typing = typing;
            participant.typing_until_ms = typing.then_some(now + typing_timeout);
        }
        if let Some(speaking) = request.is_speaking {
            participant.state.is_speaking = speaking;
        }
        if let Some(extra) = &request.extra_json {
            participant.state.extra_json = extra.clone();
            participant.state.color = color_from_extra(extra)
                .unwrap_or_else(|| derived_color(&participant.state.participant_id));
        }
        participant.state.last_seen_ms = request
            .last_seen_ms
            .filter(|seen| *seen <= now)
            .unwrap_or(now);
        participant.dirty = true;
        // Still connected: an update never takes anyone offline.
        self.settle(participant_id, Some(before), stage);
        self.participants
            .get(participant_id)
            .map(|participant| participant.state.clone())
            .ok_or_else(|| CoreError::internal("participant vanished"))
    }

    /// Applies a `presence.heartbeat`: touches the TTLs, publishes nothing.
    pub(crate) fn heartbeat(
        &mut self,
        request: &HeartbeatRequest,
        participant_id: &str,
        stage: &mut Stage<'_>,
    ) -> Result<(), CoreError> {
        self.participant_for_update(participant_id)?;
        let now = stage.now();
        let expires_at_ms = now + millis(stage.config().presence_ttl);
        for connection in self.connections.values_mut() {
            if connection.info.participant_id == participant_id {
                connection.expires_at_ms = expires_at_ms;
                stage.write().connections.push(connection.clone());
            }
        }
        if let Some(participant) = self.participants.get_mut(participant_id) {
            participant.state.last_seen_ms = request
                .last_seen_ms
                .filter(|seen| *seen <= now)
                .unwrap_or(now);
            participant.dirty = true;
        }
        Ok(())
    }

    /// Expires connections, reconnect grace periods and typing indicators.
    /// Returns the participants that went offline.
    pub(crate) fn expire(&mut self, stage: &mut Stage<'_>) -> Vec<String> {
        let now = stage.now();
        let expired: Vec<String> = self
            .connections
            .values()
            .filter(|connection| connection.expires_at_ms <= now)
            .map(|connection| connection.info.connection_id.clone())
            .collect();
        crate::metrics::PRESENCE_EXPIRIES.inc_by(expired.len() as u64);
        // A connection whose bridge stopped refreshing it: that bridge is
        // gone, so there is nothing to wait for.
        let mut offline: Vec<String> = expired
            .iter()
            .filter_map(|connection_id| self.disconnect(connection_id, true, stage))
            .collect();
        let due: Vec<String> = self
            .participants
            .iter()
            .filter(|(_, participant)| {
                participant.offline_at_ms.is_some_and(|at| at <= now)
                    || participant.typing_until_ms.is_some_and(|at| at <= now)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for participant_id in due {
            let Some(participant) = self.participants.get_mut(&participant_id) else {
                continue;
            };
            let before = participant.state.clone();
            if participant.offline_at_ms.is_some_and(|at| at <= now) {
                participant.offline_at_ms = None;
                crate::metrics::PRESENCE_EXPIRIES.inc();
            }
            if participant.typing_until_ms.is_some_and(|at| at <= now) {
                participant.typing_until_ms = None;
                participant.state.is_typing = false;
            }
            if self.settle(&participant_id, Some(before), stage) {
                offline.push(participant_id);
            }
        }
        offline
    }

    /// The role of a connected participant, or `Service` for a backend.
    pub(crate) fn role_of(&self, participant_id: &str, claimed: Role) -> Option<Role> {
        match self.participants.get(participant_id) {
            Some(participant) if self.is_connected(participant_id) => {
                Some(participant.state.role())
            }
            // Only a backend acting as itself may act without a connection.
            _ if claimed == Role::Service => Some(claimed),
            _ => None,
        }
    }

    /// The display name and role to stamp on a participant's message.
    pub(crate) fn sender_identity(&self, participant_id: &str) -> Option<(String, Role)> {
        self.participants
            .get(participant_id)
            .filter(|_| self.is_connected(participant_id))
            .map(|participant| (participant.state.name.clone(), participant.state.role()))
    }

    /// Whether rows changed since the last flush are due to be written.
    pub(crate) fn flush_due(&self, now: i64, config: &SessionConfig) -> bool {
        now - self.last_flush_ms >= millis(config.presence_flush_interval)
            && self
                .participants
                .values()
                .any(|participant| participant.dirty)
    }

    /// Stages every presence row changed since the last flush.
    pub(crate) fn stage_flush(&mut self, stage: &mut Stage<'_>) {
        for participant in self.participants.values_mut() {
            if participant.dirty {
                participant.dirty = false;
                stage.write().presence.push(participant.state.clone());
            }
        }
        self.last_flush_ms = stage.now();
    }
}
