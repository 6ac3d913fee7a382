//! The control lease: who drives the shared step, for how long, and the
//! fencing epoch that grows with every new holder.
//!
//! Policy (DESIGN §2): teachers take the lease at any time (preempting);
//! students when it is free, expired or already theirs; observers never. The
//! holder or a teacher may release. Lease changes are durable before they are
//! published.

use meno_proto::{session_event, LeaseReleaseRequest, LeaseSetRequest, LeaseState, Role};

use super::millis;
use super::state::SessionState;
use crate::error::CoreError;
use crate::store::LeaseWrite;

impl SessionState {
    pub(crate) fn lease_active(&self) -> bool {
        !self.lease.lease_id.is_empty()
    }

    fn lease_live_at(&self, now: i64) -> bool {
        self.lease_active() && self.lease.expires_at_ms > now
    }

    /// Stages a durable lease change and its `control.lease.state` event.
    fn stage_lease(&mut self, next: LeaseState, now: i64) -> u64 {
        self.batch.write.lease = Some(LeaseWrite {
            expected_epoch: self.lease_stored_epoch,
            state: next.clone(),
        });
        if next.step_index != self.step_index {
            self.batch.write.step_index = Some(next.step_index);
        }
        self.lease_stored_epoch = Some(next.epoch);
        self.step_index = next.step_index;
        self.lease = next.clone();
        self.stage_event(now, None, session_event::Kind::Lease(next))
    }

    fn cleared_lease(&self) -> LeaseState {
        LeaseState {
            step_index: self.step_index,
            epoch: self.lease.epoch,
            ..LeaseState::default()
        }
    }

    /// The role a lease request acts with, or why it may not act at all.
    fn acting_role(&self, participant_id: &str, claimed_role: Role) -> Result<Role, CoreError> {
        self.role_of(participant_id, claimed_role).ok_or_else(|| {
            CoreError::denied(format!(
                "participant {participant_id:?} is not in this session"
            ))
        })
    }

    /// `control.lease.set`: take, renew or preempt the lease.
    pub(crate) fn set_lease(
        &mut self,
        request: &LeaseSetRequest,
        participant_id: &str,
        claimed_role: Role,
        now: i64,
    ) -> Result<(LeaseState, u64), CoreError> {
        let role = self.acting_role(participant_id, claimed_role)?;
        if role == Role::Observer {
            return Err(CoreError::denied("observers may not take the lease"));
        }
        if request.step_index < 0 {
            return Err(CoreError::invalid("stepIndex must not be negative"));
        }
        let duration = match request.duration_ms {
            0 => millis(self.config.lease_default_duration),
            ms if ms < 0 => return Err(CoreError::invalid("leaseDurationMs must be positive")),
            ms => ms.min(millis(self.config.lease_max_duration)),
        };
        let live = self.lease_live_at(now);
        let next = if live && self.lease.lease_to == participant_id {
            LeaseState {
                step_index: request.step_index,
                expires_at_ms: now + duration,
                ..self.lease.clone()
            }
        } else if live && role != Role::Teacher && role != Role::Service {
            let until = std::time::UNIX_EPOCH
                + std::time::Duration::from_millis(
                    u64::try_from(self.lease.expires_at_ms).unwrap_or(0),
                );
            return Err(CoreError::conflict(format!(
                "the lease is held by {:?} until {}",
                self.lease.lease_to,
                humantime::format_rfc3339_millis(until)
            )));
        } else {
            let hint = request.lease_id_hint.trim();
            let lease_id = if hint.is_empty() || hint == self.lease.lease_id || hint.len() > 128 {
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
                epoch: self.lease.epoch + 1,
            }
        };
        let seq = self.stage_lease(next.clone(), now);
        Ok((next, seq))
    }

    /// `control.lease.release`: the holder or a teacher clears the lease.
    pub(crate) fn release_lease(
        &mut self,
        request: &LeaseReleaseRequest,
        participant_id: &str,
        claimed_role: Role,
        now: i64,
    ) -> Result<(LeaseState, u64), CoreError> {
        let role = self.acting_role(participant_id, claimed_role)?;
        if !self.lease_live_at(now) {
            return Ok((self.lease.clone(), self.head_seq));
        }
        if !request.lease_id.is_empty() && request.lease_id != self.lease.lease_id {
            return Err(CoreError::conflict(format!(
                "lease {:?} is not the current lease",
                request.lease_id
            )));
        }
        if self.lease.lease_to != participant_id && role != Role::Teacher && role != Role::Service {
            return Err(CoreError::denied(
                "only the holder or a teacher may release the lease",
            ));
        }
        let cleared = self.cleared_lease();
        let seq = self.stage_lease(cleared.clone(), now);
        Ok((cleared, seq))
    }

    /// Clears an expired lease, broadcasting the cleared state.
    pub(crate) fn expire_lease(&mut self, now: i64) {
        if self.lease_active() && self.lease.expires_at_ms <= now {
            crate::metrics::LEASE_EXPIRIES.inc();
            let cleared = self.cleared_lease();
            self.stage_lease(cleared, now);
        }
    }

    /// The holder went offline: the lease is released.
    pub(crate) fn release_lease_of_offline(&mut self, participant_id: &str, now: i64) {
        if self.lease_active() && self.lease.lease_to == participant_id {
            let cleared = self.cleared_lease();
            self.stage_lease(cleared, now);
        }
    }
}
