//! A user's call state (seed 004's `user:call:{user_id}`): busy with whom,
//! until when, and what each kind of signal does to it. Synchronous, at a
//! given `now`; the user actor owns the clock.
//!
//! The rules: an offer to a user busy with someone other than the caller is
//! rejected; a relayed offer makes the caller busy with the target, an answer
//! makes its sender (the callee) busy with the target; a rollback frees its
//! sender and a call end frees both users, each only from a call with the
//! other; the busy flag lapses after its TTL and when the user's last
//! connection goes.

use meno_proto::{signal_request, SdpType};

/// What a signal is, for the call rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Offer,
    Answer,
    Rollback,
    Candidate,
    End,
}

/// What a relayed signal does to one of its two users' call state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Nothing.
    None,
    /// Busy with the other user, for the TTL from now.
    Busy,
    /// Free, if the call was with the other user.
    Free,
}

impl Step {
    /// The step of a (validated) signal.
    pub(crate) fn of(kind: &signal_request::Kind) -> Self {
        match kind {
            signal_request::Kind::Sdp(sdp) => match sdp.r#type() {
                SdpType::Offer => Self::Offer,
                SdpType::Answer => Self::Answer,
                // Validation refuses UNSPECIFIED; treat it as the harmless kind.
                SdpType::Rollback | SdpType::Unspecified => Self::Rollback,
            },
            signal_request::Kind::Ice(_) => Self::Candidate,
            signal_request::Kind::End(_) => Self::End,
        }
    }

    /// A short name, for metrics.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Offer => "offer",
            Self::Answer => "answer",
            Self::Rollback => "rollback",
            Self::Candidate => "candidate",
            Self::End => "end",
        }
    }

    /// What the signal does to its sender.
    pub(crate) fn sender_effect(self) -> Effect {
        match self {
            Self::Offer | Self::Answer => Effect::Busy,
            Self::Rollback | Self::End => Effect::Free,
            Self::Candidate => Effect::None,
        }
    }

    /// What the signal does to its target.
    pub(crate) fn target_effect(self) -> Effect {
        match self {
            Self::End => Effect::Free,
            _ => Effect::None,
        }
    }
}

/// Whom a user is in a call with, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Busy {
    with: String,
    until_ms: i64,
}

/// One user's call state.
#[derive(Debug, Default)]
pub(crate) struct CallState {
    busy: Option<Busy>,
}

impl CallState {
    /// The user this one is in a call with at `now`, if any. A lapsed flag
    /// counts as none even before `expire` drops it.
    pub(crate) fn busy_with(&self, now: i64) -> Option<&str> {
        self.busy
            .as_ref()
            .filter(|busy| busy.until_ms > now)
            .map(|busy| busy.with.as_str())
    }

    /// Whether an offer from `caller` may ring this user: not in a call, or
    /// in one with the caller (a renegotiation).
    pub(crate) fn admits_offer_from(&self, caller: &str, now: i64) -> bool {
        self.busy_with(now).is_none_or(|with| with == caller)
    }

    /// Applies a signal's effect on this user, whose peer is `other`.
    pub(crate) fn apply(&mut self, effect: Effect, other: &str, now: i64, ttl_ms: i64) {
        match effect {
            Effect::None => {}
            Effect::Busy => {
                self.busy = Some(Busy {
                    with: other.to_owned(),
                    until_ms: now.saturating_add(ttl_ms),
                });
            }
            Effect::Free => {
                if self.busy.as_ref().is_some_and(|busy| busy.with == other) {
                    self.busy = None;
                }
            }
        }
    }

    /// Frees the user whatever the call (the last connection went).
    pub(crate) fn clear(&mut self) {
        self.busy = None;
    }

    /// Drops a flag whose TTL ran out.
    pub(crate) fn expire(&mut self, now: i64) {
        if self.busy.as_ref().is_some_and(|busy| busy.until_ms <= now) {
            self.busy = None;
        }
    }
}

/// The seed's `status` of a rejected offer.
pub(crate) const BUSY_STATUS: &str = "busy";

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: i64 = 300_000;

    fn sdp(kind: SdpType) -> signal_request::Kind {
        signal_request::Kind::Sdp(meno_proto::SdpSignal {
            r#type: kind as i32,
            sdp: "v=0".to_owned(),
        })
    }

    #[test]
    fn each_signal_kind_has_its_step() {
        assert_eq!(Step::of(&sdp(SdpType::Offer)), Step::Offer);
        assert_eq!(Step::of(&sdp(SdpType::Answer)), Step::Answer);
        assert_eq!(Step::of(&sdp(SdpType::Rollback)), Step::Rollback);
        let end = signal_request::Kind::End(meno_proto::CallEnd {});
        assert_eq!(Step::of(&end), Step::End);
        assert_eq!(Step::End.target_effect(), Effect::Free);
        assert_eq!(Step::Offer.target_effect(), Effect::None);
        assert_eq!(Step::Candidate.sender_effect(), Effect::None);
    }

    #[test]
    fn busy_lasts_for_the_ttl_and_not_a_millisecond_more() {
        let mut call = CallState::default();
        call.apply(Effect::Busy, "bob", 1_000, TTL);
        assert_eq!(call.busy_with(1_000 + TTL - 1), Some("bob"));
        assert_eq!(call.busy_with(1_000 + TTL), None);
        call.expire(1_000 + TTL);
        assert_eq!(call.busy_with(0), None, "expire drops the lapsed flag");
    }

    #[test]
    fn only_the_peer_of_the_call_may_ring_a_busy_user() {
        let mut call = CallState::default();
        assert!(call.admits_offer_from("carol", 0));
        call.apply(Effect::Busy, "bob", 0, TTL);
        assert!(call.admits_offer_from("bob", 10), "renegotiation");
        assert!(!call.admits_offer_from("carol", 10));
        assert!(call.admits_offer_from("carol", TTL), "lapsed");
    }

    #[test]
    fn freeing_from_another_call_changes_nothing() {
        let mut call = CallState::default();
        call.apply(Effect::Busy, "bob", 0, TTL);
        call.apply(Effect::Free, "carol", 1, TTL);
        assert_eq!(call.busy_with(1), Some("bob"));
        call.apply(Effect::Free, "bob", 2, TTL);
        assert_eq!(call.busy_with(2), None);
    }

    #[test]
    fn a_renewed_call_runs_from_the_renewal() {
        let mut call = CallState::default();
        call.apply(Effect::Busy, "bob", 0, TTL);
        call.apply(Effect::Busy, "bob", 100_000, TTL);
        assert_eq!(call.busy_with(TTL + 50_000), Some("bob"));
    }
}
