//! Seed 000 behind the seam: `GET <ws-path>?sessionId&participantId&name&role&client`,
//! `{action, payload}` in, `{type, seq?, data}` out.
//!
//! The wire format itself is [`crate::codec::seed000`] and the query
//! [`crate::connect`]; this module binds them to the [`Dialect`] trait and
//! owns the connect rules: the query alone with auth off, the token's claims
//! (which the query may repeat but not contradict) with auth on.

use meno_common::key::DEFAULT_TENANT;
use meno_proto::{join_response, user_event, JoinResponse, SessionEvent, UserEvent};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{
    Admission, Dialect, DialectId, PendingConnect, Refusal, Reply, Request, RequestTag, Undecodable,
};
use crate::auth::Identity;
use crate::codec::{direct, seed000, ErrorEnvelope, Limits};
use crate::connect::{parse_connect_fields, ConnectFields, MAX_NAME_CHARS};

/// The seed-000 dialect.
#[derive(Debug, Clone, Copy)]
pub struct Seed000;

impl Dialect for Seed000 {
    fn id(&self) -> DialectId {
        DialectId(0)
    }

    fn name(&self) -> &'static str {
        "seed000"
    }

    fn path_suffix(&self) -> &'static str {
        ""
    }

    fn connect(&self, query: Option<&str>) -> Result<Box<dyn PendingConnect>, Refusal> {
        parse_connect_fields(query)
            .map(|fields| Box::new(Connect(fields)) as Box<dyn PendingConnect>)
            .map_err(|err| Refusal::bad_request(err.to_string()))
    }

    fn decode(&self, text: &str, limits: &Limits) -> Result<Request, Undecodable> {
        let (action, command) = seed000::decode_request(text, limits)?;
        Ok(Request {
            command,
            tag: RequestTag::action(action),
            room: None,
        })
    }

    fn encode_event(&self, session_id: &str, event: &SessionEvent) -> Option<Utf8Bytes> {
        seed000::encode_event(session_id, event).map(Utf8Bytes::from)
    }

    fn encode_start(
        &self,
        session_id: &str,
        joined: &JoinResponse,
        _tag: Option<&RequestTag>,
    ) -> Vec<Utf8Bytes> {
        let seq = joined.snapshot_seq;
        let mut frames = Vec::new();
        match &joined.start {
            Some(join_response::Start::Resume(resume)) => {
                frames.extend(
                    resume
                        .events
                        .iter()
                        .filter_map(|event| seed000::encode_event(session_id, event)),
                );
                if let Some(state) = resume.state.as_ref().filter(|_| resume.has_state) {
                    frames.push(seed000::encode_snapshot(
                        session_id,
                        seq,
                        &state.participants,
                    ));
                    if let Some(lease) = &state.lease {
                        frames.push(seed000::encode_lease(session_id, Some(seq), lease));
                    }
                }
            }
            Some(join_response::Start::Snapshot(snapshot)) => {
                frames.push(seed000::encode_sync(session_id, seq, &snapshot.history));
                frames.push(seed000::encode_snapshot(
                    session_id,
                    seq,
                    &snapshot.participants,
                ));
                if let Some(lease) = snapshot.lease.as_ref().filter(|_| snapshot.lease_active) {
                    frames.push(seed000::encode_lease(session_id, Some(seq), lease));
                }
            }
            None => {}
        }
        frames.into_iter().map(Utf8Bytes::from).collect()
    }

    fn encode_reply(&self, session_id: &str, tag: &RequestTag, reply: &Reply) -> Utf8Bytes {
        Utf8Bytes::from(match reply {
            Reply::Pong { server_time_ms } => seed000::encode_pong(*server_time_ms),
            Reply::Duplicate(stored) => {
                seed000::encode_chat_message(session_id, Some(stored.seq), stored)
            }
            Reply::AuthRefreshed { expires_at_ms } => {
                seed000::encode_auth_refreshed(*expires_at_ms)
            }
            Reply::Error(error) => {
                let mut error = error.clone();
                error.action.get_or_insert_with(|| tag.action.to_owned());
                seed000::encode_error(&error)
            }
            // Not a seed-000 request: a socket is in its one session for life.
            Reply::RoomLeft | Reply::CallRejected(_) => seed000::encode_error(&ErrorEnvelope {
                code: meno_common::error::ErrorCode::Internal,
                message: "not a seed-000 reply".into(),
                action: Some(tag.action.to_owned()),
                retry_after_ms: None,
            }),
        })
    }

    fn receives_user_events(&self) -> bool {
        true
    }

    /// A backend's message (seed 001) in seed 001's own `{type, data}`
    /// shape; signals are NexusChat's and not shown.
    fn encode_user_event(&self, event: &UserEvent) -> Option<Utf8Bytes> {
        match event.kind.as_ref()? {
            user_event::Kind::Direct(message) => direct::encode_typed(message).map(Utf8Bytes::from),
            user_event::Kind::Signal(_) => None,
        }
    }

    fn encode_error(&self, error: &ErrorEnvelope, _trace_id: Option<&str>) -> Utf8Bytes {
        Utf8Bytes::from(seed000::encode_error(error))
    }
}

/// A seed-000 query that parsed.
#[derive(Debug)]
struct Connect(ConnectFields);

impl PendingConnect for Connect {
    fn token(&self) -> Option<&str> {
        self.0.token.as_deref()
    }

    fn admit(self: Box<Self>, identity: Option<Identity>) -> Result<Admission, Refusal> {
        let fields = self.0;
        let Some(identity) = identity else {
            let missing = |field| Refusal::bad_request(format!("missing {field}"));
            return Ok(Admission {
                tenant: DEFAULT_TENANT.to_owned(),
                user_id: fields
                    .participant_id
                    .ok_or_else(|| missing("participantId"))?,
                name: fields.name.ok_or_else(|| missing("name"))?,
                role: fields.role.ok_or_else(|| missing("role"))?,
                client: fields.client,
                rooms: vec![fields.session_id],
                last_seq: fields.last_seq,
                identity: None,
            });
        };
        if !identity.sessions.allows(&fields.session_id) {
            return Err(Refusal::forbidden(format!(
                "the token does not grant session {}",
                fields.session_id
            )));
        }
        if fields
            .participant_id
            .as_ref()
            .is_some_and(|id| *id != identity.participant_id)
        {
            return Err(Refusal::unauthorized(
                "participantId contradicts the token's subject",
            ));
        }
        if let (Some(asked), Some(granted)) = (fields.role, identity.role) {
            if asked != granted {
                return Err(Refusal::unauthorized("role contradicts the token's role"));
            }
        }
        if let (Some(asked), Some(granted)) = (&fields.name, &identity.name) {
            if asked != granted.trim() {
                return Err(Refusal::unauthorized("name contradicts the token's name"));
            }
        }
        let role = identity.role.or(fields.role).ok_or_else(|| {
            Refusal::unauthorized("no role: neither the token nor the query gives one")
        })?;
        let name = identity
            .name
            .clone()
            .or(fields.name)
            .unwrap_or_else(|| identity.participant_id.clone());
        Ok(Admission {
            tenant: identity
                .tenant
                .clone()
                .unwrap_or_else(|| DEFAULT_TENANT.to_owned()),
            user_id: identity.participant_id.clone(),
            name: name.trim().chars().take(MAX_NAME_CHARS).collect(),
            role,
            client: fields.client,
            rooms: vec![fields.session_id],
            last_seq: fields.last_seq,
            identity: Some(identity),
        })
    }
}

#[cfg(test)]
mod tests {
    use meno_proto::Role;

    use super::*;
    use crate::auth::SessionScope;

    fn identity(sessions: SessionScope) -> Identity {
        Identity {
            participant_id: "ann".into(),
            name: Some(" Ann ".into()),
            role: Some(Role::Teacher),
            tenant: Some("school".into()),
            sessions,
            expires_at_ms: Some(1),
        }
    }

    fn pending(query: &str) -> Box<dyn PendingConnect> {
        Seed000.connect(Some(query)).unwrap()
    }

    #[test]
    fn with_auth_off_the_query_is_the_identity() {
        let admitted = pending("sessionId=s1&participantId=p1&name=Pat&role=student&client=web")
            .admit(None)
            .unwrap();
        assert_eq!(admitted.tenant, DEFAULT_TENANT);
        assert_eq!(admitted.user_id, "p1");
        assert_eq!(admitted.role, Role::Student);
        let refused = pending("sessionId=s1&name=Pat&role=student&client=web")
            .admit(None)
            .unwrap_err();
        assert_eq!(refused, Refusal::bad_request("missing participantId"));
    }

    #[test]
    fn with_a_token_its_claims_win_and_may_not_be_contradicted() {
        let admitted = pending("sessionId=s1&client=web")
            .admit(Some(identity(SessionScope::Any)))
            .unwrap();
        assert_eq!(
            (
                admitted.tenant.as_str(),
                admitted.user_id.as_str(),
                admitted.name.as_str()
            ),
            ("school", "ann", "Ann")
        );
        let contradicted = pending("sessionId=s1&client=web&participantId=bob")
            .admit(Some(identity(SessionScope::Any)))
            .unwrap_err();
        assert_eq!(contradicted.status, http::StatusCode::UNAUTHORIZED);
        let out_of_scope = pending("sessionId=s2&client=web")
            .admit(Some(identity(SessionScope::Only(vec!["s1".into()]))))
            .unwrap_err();
        assert_eq!(out_of_scope.status, http::StatusCode::FORBIDDEN);
    }

    #[test]
    fn a_refusal_by_the_core_names_the_action_that_was_refused() {
        let error = ErrorEnvelope {
            code: meno_common::error::ErrorCode::Conflict,
            message: "someone else holds the lease".into(),
            action: None,
            retry_after_ms: None,
        };
        let tag = RequestTag::action(seed000::action::LEASE_SET);
        let frame = Seed000.encode_reply("s1", &tag, &Reply::Error(error));
        let json: serde_json::Value = serde_json::from_str(&frame).unwrap();
        assert_eq!(json["data"]["action"], "control.lease.set");
        assert_eq!(json["data"]["code"], "Conflict");
    }
}
