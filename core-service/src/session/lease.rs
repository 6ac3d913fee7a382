//! The control lease: who drives the shared step, for how long, and the
//! fencing epoch that grows with every new holder.
//!
//! Policy (DESIGN §2): teachers take the lease at any time (preempting);
//! students when it is free, expired or already theirs; observers never. The
//! holder or a teacher may release. Lease changes are durable before they are
//! published.

use meno_proto::{session_event, LeaseReleaseRequest, LeaseSetRequest, LeaseState, Role};

use super::events::Stage;
use super::millis;
use crate::error::CoreError;
use crate::store::LeaseWrite;

#[derive(Debug)]
pub(crate) struct Lease {
    state: LeaseState,
    step_index: i64,
    /// The epoch of the lease row last written (for the conditional write),
    /// `None` if none ever was.
    stored_epoch: Option<u64>,
}

impl Lease {
    pub(crate) fn restore(stored: Option<LeaseState>, step_index: i64) -> Self {
        let stored_epoch = stored.as_ref().map(|lease| lease.epoch);
        let mut state = stored.unwrap_or_default();
        state.step_index = step_index;
        Self {
            state,
            step_index,
            stored_epoch,
        }
    }

    pub(crate) fn state(&self) -> &LeaseState {
        &self.state
    }

    pub(crate) fn active(&self) -> bool {
        !self.state.lease_id.is_empty()
    }

    fn live_at(&self, now: i64) -> bool {
        self.active() && self.state.expires_at_ms > now
    }

    /// Stages a durable lease change and its `control.lease.state` event.
    fn stage(&mut self, next: LeaseState, stage: &mut Stage<'_>) -> u64 {
        let write = stage.write();
        write.lease = Some(LeaseWrite {
            expected_epoch: self.stored_epoch,
            state: next.clone(),
        });
        if next.step_index != self.step_index {
            write.step_index = Some(next.step_index);
        }
        self.stored_epoch = Some(next.epoch);
        self.step_index = next.step_index;
        self.state = next.clone();
        stage.event(None, session_event::Kind::Lease(next))
    }

    fn cleared(&self) -> LeaseState {
        LeaseState {
            step_index: self.step_index,
            epoch: self.state.epoch,
            ..LeaseState::default()
        }
    }

    /// `control.lease.set`: take, renew or preempt the lease. `role` is the
    /// role the requester acts with, `None` when it may not act here.
    pub(crate) fn set(
        &mut self,
        request: &LeaseSetRequest,
        participant_id: &str,
        role: Option<Role>,
        stage: &mut Stage<'_>,
    ) -> Result<(LeaseState, u64), CoreError> {
        let role = acting(participant_id, role)?;
        if role == Role::Observer {
            return Err(CoreError::denied("observers may not take the lease"));
        }
        if request.step_index < 0 {
            return Err(CoreError::invalid("stepIndex must not be negative"));
        }
        let config = stage.config();
        let duration = match request.duration_ms {
            0 => millis(config.lease_default_duration),
            ms if ms < 0 => return Err(CoreError::invalid("leaseDurationMs must be positive")),
            ms => ms.min(millis(config.lease_max_duration)),
        };
        let now = stage.now();
        let live = self.live_at(now);
        let next = if live && self.state.lease_to == participant_id {
            LeaseState {
                step_index: request.step_index,
                expires_at_ms: now + duration,
                ..self.state.clone()
            }
        } else if live && role != Role::Teacher && role != Role::Service {
            let until = std::time::UNIX_EPOCH
                + std::time::Duration::from_millis(
                    u64::try_from(self.state.expires_at_ms).unwrap_or(0),
                );
            return Err(CoreError::conflict(format!(
                "the lease is held by {:?} until {}",
                self.state.lease_to,
                humantime::format_rfc3339_millis(until)
            )));
        } else {
            let hint = request.lease_id_hint.trim();
            let lease_id = if hint.is_empty() || hint == self.state.lease_id || hint.len() > 128 {
                uuid::Uuid::now_v7().to_string()
            } else {
                hint.to_owned()
            };
            crate::metrics::LEASE_GRANTS.inc();
            LeaseState {
                lease_id,
                lease_to: participant_id.to_owned(),
                step_index: request.step_index,
                issued_at_ms: now,
                expires_at_ms: now + duration,
                epoch: self.state.epoch + 1,
            }
        };
        let seq = self.stage(next.clone(), stage);
        Ok((next, seq))
    }

    /// `control.lease.release`: the holder or a teacher clears the lease.
    pub(crate) fn release(
        &mut self,
        request: &LeaseReleaseRequest,
        participant_id: &str,
        role: Option<Role>,
        stage: &mut Stage<'_>,
    ) -> Result<(LeaseState, u64), CoreError> {
        let role = acting(participant_id, role)?;
        if !self.live_at(stage.now()) {
            return Ok((self.state.clone(), stage.head_seq()));
        }
        if !request.lease_id.is_empty() && request.lease_id != self.state.lease_id {
            return Err(CoreError::conflict(format!(
                "lease {:?} is not the current lease",
                request.lease_id
            )));
        }
        if self.state.lease_to != participant_id && role != Role::Teacher && role != Role::Service {
            return Err(CoreError::denied(
                "only the holder or a teacher may release the lease",
            ));
        }
        let cleared = self.cleared();
        let seq = self.stage(cleared.clone(), stage);
        Ok((cleared, seq))
    }

    /// Clears an expired lease, broadcasting the cleared state.
    pub(crate) fn expire(&mut self, stage: &mut Stage<'_>) {
        if self.active() && self.state.expires_at_ms <= stage.now() {
            crate::metrics::LEASE_EXPIRIES.inc();
            let cleared = self.cleared();
            self.stage(cleared, stage);
        }
    }

    /// The holder went offline: the lease is released.
    pub(crate) fn release_held_by(&mut self, participant_id: &str, stage: &mut Stage<'_>) {
        if self.active() && self.state.lease_to == participant_id {
            let cleared = self.cleared();
            self.stage(cleared, stage);
        }
    }
}

/// The role a lease request acts with, or why it may not act at all.
fn acting(participant_id: &str, role: Option<Role>) -> Result<Role, CoreError> {
    role.ok_or_else(|| {
        CoreError::denied(format!(
            "participant {participant_id:?} is not in this session"
        ))
    })
}
