//! Checks of per-user requests: user references, bridge interest, and
//! WebRTC signals (seed 004's SIGNAL_SDP, SIGNAL_ICE and our CALL_END).

use meno_proto::{signal_request, SdpType, SetInterestRequest, SignalRequest, UserRef};

use super::id;
use crate::error::CoreError;
use crate::user::UserKey;

/// Largest SDP or ICE candidate, in bytes.
pub const MAX_SIGNAL_BYTES: usize = 16 * 1024;
/// Longest `sdp_mid`, in characters.
pub const MAX_SDP_MID_CHARS: usize = 128;
/// Largest `sdp_m_line_index` (an SDP has at most this many media lines).
pub const MAX_SDP_M_LINE_INDEX: u32 = 65_535;
/// Most users one `SetInterest` may name.
pub const MAX_INTEREST_USERS: usize = 100_000;

/// A user reference; an empty tenant means the default one.
pub(crate) fn user_ref(field: &str, user: Option<&UserRef>) -> Result<UserKey, CoreError> {
    let user = user.ok_or_else(|| CoreError::invalid(format!("{field} is required")))?;
    if !user.tenant.is_empty() {
        id(&format!("{field}.tenant"), &user.tenant)?;
    }
    id(&format!("{field}.user_id"), &user.user_id)?;
    Ok(UserKey::new(user.tenant.clone(), user.user_id.clone()))
}

/// A bridge's interest: its id and the users it names.
pub(crate) fn set_interest(
    request: &SetInterestRequest,
) -> Result<(Vec<UserKey>, Vec<UserKey>), CoreError> {
    id("bridge_id", &request.bridge_id)?;
    if request.add.len() + request.remove.len() > MAX_INTEREST_USERS {
        return Err(CoreError::invalid(format!(
            "add and remove name more than {MAX_INTEREST_USERS} users"
        )));
    }
    let keys = |field: &str, users: &[UserRef]| {
        users
            .iter()
            .map(|user| user_ref(field, Some(user)))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok((keys("add", &request.add)?, keys("remove", &request.remove)?))
}

/// A signal: who sends it to whom, and a payload within the limits. A
/// rollback may carry an empty SDP (browsers send none).
pub(crate) fn signal(request: &SignalRequest) -> Result<(), CoreError> {
    user_ref("from", request.from.as_ref())?;
    if !request.connection_id.is_empty() {
        id("connection_id", &request.connection_id)?;
    }
    id("target_id", &request.target_id)?;
    if !request.trace_id.is_empty() {
        id("trace_id", &request.trace_id)?;
    }
    match &request.kind {
        None => Err(CoreError::invalid("one of sdp, ice or end is required")),
        Some(signal_request::Kind::Sdp(sdp)) => {
            let kind = SdpType::try_from(sdp.r#type).unwrap_or(SdpType::Unspecified);
            if kind == SdpType::Unspecified {
                return Err(CoreError::invalid(
                    "sdp.type must be offer, answer or rollback",
                ));
            }
            if sdp.sdp.is_empty() && kind != SdpType::Rollback {
                return Err(CoreError::invalid("sdp.sdp is required"));
            }
            payload("sdp.sdp", &sdp.sdp)
        }
        Some(signal_request::Kind::Ice(ice)) => {
            if ice.candidate.is_empty() {
                return Err(CoreError::invalid("ice.candidate is required"));
            }
            payload("ice.candidate", &ice.candidate)?;
            if let Some(mid) = &ice.sdp_mid {
                if mid.chars().count() > MAX_SDP_MID_CHARS {
                    return Err(CoreError::invalid(format!(
                        "ice.sdp_mid is longer than {MAX_SDP_MID_CHARS} characters"
                    )));
                }
            }
            if ice.sdp_m_line_index > MAX_SDP_M_LINE_INDEX {
                return Err(CoreError::invalid(format!(
                    "ice.sdp_m_line_index must be at most {MAX_SDP_M_LINE_INDEX}"
                )));
            }
            Ok(())
        }
        Some(signal_request::Kind::End(_)) => Ok(()),
    }
}

fn payload(field: &str, value: &str) -> Result<(), CoreError> {
    if value.len() > MAX_SIGNAL_BYTES {
        return Err(CoreError::invalid(format!(
            "{field} is larger than {MAX_SIGNAL_BYTES} bytes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use meno_proto::{CallEnd, IceSignal, SdpSignal};

    use super::*;

    fn request(kind: signal_request::Kind) -> SignalRequest {
        SignalRequest {
            from: Some(UserRef {
                tenant: String::new(),
                user_id: "ann".to_owned(),
            }),
            connection_id: "c1".to_owned(),
            target_id: "bob".to_owned(),
            trace_id: "t1".to_owned(),
            kind: Some(kind),
        }
    }

    fn sdp(kind: SdpType, body: &str) -> signal_request::Kind {
        signal_request::Kind::Sdp(SdpSignal {
            r#type: kind as i32,
            sdp: body.to_owned(),
        })
    }

    fn ice(candidate: &str, mid: Option<&str>, index: u32) -> signal_request::Kind {
        signal_request::Kind::Ice(IceSignal {
            candidate: candidate.to_owned(),
            sdp_mid: mid.map(str::to_owned),
            sdp_m_line_index: index,
        })
    }

    fn refused(request: &SignalRequest) -> String {
        signal(request).expect_err("refused").message
    }

    #[test]
    fn well_formed_signals_pass() {
        signal(&request(sdp(SdpType::Offer, "v=0"))).expect("offer");
        signal(&request(sdp(SdpType::Rollback, ""))).expect("a rollback without sdp");
        signal(&request(ice("candidate:1", Some("0"), 65_535))).expect("ice");
        signal(&request(signal_request::Kind::End(CallEnd {}))).expect("end");
    }

    #[test]
    fn each_limit_names_its_field() {
        assert!(refused(&request(sdp(SdpType::Unspecified, "v=0"))).contains("sdp.type"));
        assert!(refused(&request(sdp(SdpType::Offer, ""))).contains("sdp.sdp"));
        let huge = "a".repeat(MAX_SIGNAL_BYTES + 1);
        assert!(refused(&request(sdp(SdpType::Answer, &huge))).contains("sdp.sdp"));
        assert!(refused(&request(ice("", None, 0))).contains("ice.candidate"));
        assert!(refused(&request(ice(&huge, None, 0))).contains("ice.candidate"));
        let mid = "m".repeat(MAX_SDP_MID_CHARS + 1);
        assert!(refused(&request(ice("c", Some(&mid), 0))).contains("ice.sdp_mid"));
        assert!(refused(&request(ice("c", None, 65_536))).contains("sdp_m_line_index"));
    }

    #[test]
    fn ids_follow_the_id_rule() {
        let mut bad = request(sdp(SdpType::Offer, "v=0"));
        bad.target_id = "bo\u{202E}b".to_owned();
        assert!(refused(&bad).contains("target_id"));
        let mut bad = request(sdp(SdpType::Offer, "v=0"));
        bad.target_id.clear();
        assert!(refused(&bad).contains("target_id is required"));
        let mut bad = request(sdp(SdpType::Offer, "v=0"));
        bad.from = None;
        assert!(refused(&bad).contains("from"));
        let mut bad = request(sdp(SdpType::Offer, "v=0"));
        bad.kind = None;
        assert!(refused(&bad).contains("sdp, ice or end"));
    }
}
