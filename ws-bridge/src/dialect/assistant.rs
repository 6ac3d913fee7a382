//! The assistant dialect (seed 003) behind the seam: `GET <ws-path>/assistant`
//! or the subprotocol `assistant.v1`, `{type, data}` both ways.
//!
//! A socket of this dialect is in no session: its text and voice go to the
//! tenant's backends ([`crate::command`]'s backend handler), and what the
//! backends answer comes back on the user channel as seed 001's message
//! types. Identity: `?userId=` (and `tenant`) with auth off; the token's
//! `sub` and `tenant` with auth on (the query may repeat, not contradict).

use std::sync::Arc;

use meno_common::error::ErrorCode;
use meno_common::key::DEFAULT_TENANT;
use meno_proto::{user_event, ClientKind, JoinResponse, Role, SessionEvent, UserEvent};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{
    Admission, Dialect, DialectId, PendingConnect, Refusal, Reply, Request, RequestTag, Undecodable,
};
use crate::auth::Identity;
use crate::codec::assistant::{self, AssistantCommand};
use crate::codec::{direct, BackendItem, ClientCommand, ErrorEnvelope, Limits};
use crate::connect::assistant::{parse_assistant_connect, AssistantConnect};

/// The assistant dialect.
#[derive(Debug, Clone, Copy)]
pub struct Assistant;

impl Dialect for Assistant {
    fn id(&self) -> DialectId {
        DialectId(2)
    }

    fn name(&self) -> &'static str {
        "assistant"
    }

    fn path_suffix(&self) -> &'static str {
        "/assistant"
    }

    fn subprotocol(&self) -> Option<&'static str> {
        Some("assistant.v1")
    }

    /// In no session at all; a multi-room socket may be in none.
    fn multi_room(&self) -> bool {
        true
    }

    fn connect(&self, query: Option<&str>) -> Result<Box<dyn PendingConnect>, Refusal> {
        parse_assistant_connect(query)
            .map(|fields| Box::new(Connect(fields)) as Box<dyn PendingConnect>)
            .map_err(|err| Refusal::bad_request(err.to_string()))
    }

    fn decode(&self, text: &str, limits: &Limits) -> Result<Request, Undecodable> {
        let command = assistant::decode(text, limits).map_err(|err| Undecodable {
            error: err.envelope(),
            trace_id: None,
        })?;
        let (action, command) = match command {
            AssistantCommand::Ping => ("ping", ClientCommand::Ping),
            AssistantCommand::Text {
                content,
                session_id,
            } => (
                "text_message",
                ClientCommand::Backend(BackendItem::Text {
                    content,
                    session_id,
                }),
            ),
            AssistantCommand::VoiceStart {
                voice_session_id,
                audio_format,
            } => (
                "voice_start",
                ClientCommand::Backend(BackendItem::VoiceStart {
                    voice_session_id,
                    audio_format,
                }),
            ),
            AssistantCommand::VoiceData {
                voice_session_id,
                audio,
            } => (
                "voice_data",
                ClientCommand::Backend(BackendItem::VoiceData {
                    voice_session_id,
                    audio,
                }),
            ),
            AssistantCommand::VoiceEnd { voice_session_id } => (
                "voice_end",
                ClientCommand::Backend(BackendItem::VoiceEnd { voice_session_id }),
            ),
        };
        // The backend's answers carry a trace id of their own; this one
        // links the bridge's span and the core's work to it.
        let trace_id: Arc<str> = uuid::Uuid::new_v4().to_string().into();
        Ok(Request {
            command,
            tag: RequestTag {
                action,
                trace_id: Some(trace_id),
            },
            room: None,
        })
    }

    fn encode_event(&self, _session_id: &str, _event: &SessionEvent) -> Option<Utf8Bytes> {
        None
    }

    /// Voice arrives in base64 chunks of a few KiB: fewer reads per chunk.
    fn read_buffer_bytes(&self) -> usize {
        1024
    }

    fn receives_user_events(&self) -> bool {
        true
    }

    fn encode_user_event(&self, event: &UserEvent) -> Option<Utf8Bytes> {
        match event.kind.as_ref()? {
            user_event::Kind::Direct(message) => direct::encode_typed(message).map(Utf8Bytes::from),
            user_event::Kind::Signal(_) => None,
        }
    }

    fn encode_start(
        &self,
        _session_id: &str,
        _joined: &JoinResponse,
        _tag: Option<&RequestTag>,
    ) -> Vec<Utf8Bytes> {
        Vec::new()
    }

    fn encode_reply(&self, _session_id: &str, tag: &RequestTag, reply: &Reply) -> Utf8Bytes {
        Utf8Bytes::from(match reply {
            Reply::Pong { .. } => assistant::encode_pong(),
            Reply::Error(error) => {
                let mut error = error.clone();
                error.action.get_or_insert_with(|| tag.action.to_owned());
                assistant::encode_error(&error)
            }
            Reply::Duplicate(_)
            | Reply::AuthRefreshed { .. }
            | Reply::RoomLeft
            | Reply::CallRejected(_) => assistant::encode_error(&ErrorEnvelope {
                code: ErrorCode::Internal,
                message: "not an assistant reply".into(),
                action: Some(tag.action.to_owned()),
                retry_after_ms: None,
            }),
        })
    }

    fn encode_error(&self, error: &ErrorEnvelope, _trace_id: Option<&str>) -> Utf8Bytes {
        Utf8Bytes::from(assistant::encode_error(error))
    }
}

/// An assistant query that parsed.
#[derive(Debug)]
struct Connect(AssistantConnect);

impl PendingConnect for Connect {
    fn token(&self) -> Option<&str> {
        self.0.token.as_deref()
    }

    fn admit(self: Box<Self>, identity: Option<Identity>) -> Result<Admission, Refusal> {
        let fields = self.0;
        let Some(identity) = identity else {
            let user_id = fields
                .user_id
                .ok_or_else(|| Refusal::bad_request("missing userId"))?;
            return Ok(Admission {
                tenant: fields.tenant.unwrap_or_else(|| DEFAULT_TENANT.to_owned()),
                name: user_id.clone(),
                user_id,
                role: Role::Student,
                client: ClientKind::Web,
                rooms: Vec::new(),
                last_seq: None,
                identity: None,
            });
        };
        if fields
            .user_id
            .as_ref()
            .is_some_and(|id| *id != identity.participant_id)
        {
            return Err(Refusal::unauthorized(
                "userId contradicts the token's subject",
            ));
        }
        let tenant = identity
            .tenant
            .clone()
            .unwrap_or_else(|| DEFAULT_TENANT.to_owned());
        if fields.tenant.as_ref().is_some_and(|asked| *asked != tenant) {
            return Err(Refusal::unauthorized(
                "tenant contradicts the token's tenant",
            ));
        }
        Ok(Admission {
            tenant,
            user_id: identity.participant_id.clone(),
            name: identity
                .name
                .clone()
                .unwrap_or_else(|| identity.participant_id.clone()),
            role: identity.role.unwrap_or(Role::Student),
            client: ClientKind::Web,
            rooms: Vec::new(),
            last_seq: None,
            identity: Some(identity),
        })
    }
}

#[cfg(test)]
mod tests {
    use meno_proto::{direct_message, ChatResponse, DirectMessage};
    use serde_json::{json, Value};

    use super::*;

    #[test]
    fn a_backend_reply_shows_as_seed_001_writes_it() {
        let event = UserEvent {
            kind: Some(user_event::Kind::Direct(DirectMessage {
                kind: Some(direct_message::Kind::ChatResponse(ChatResponse {
                    message_id: "m1".into(),
                    content: "Hel".into(),
                    is_complete: false,
                })),
            })),
            ..UserEvent::default()
        };
        let frame: Value =
            serde_json::from_str(&Assistant.encode_user_event(&event).unwrap()).unwrap();
        assert_eq!(
            frame,
            json!({"type": "chat_response", "data": {"messageId": "m1", "content": "Hel", "isComplete": false}})
        );
    }

    #[test]
    fn the_query_identity_needs_a_user_id_with_auth_off() {
        let pending = Assistant.connect(Some("userId=user123")).unwrap();
        let admitted = pending.admit(None).unwrap();
        assert_eq!(admitted.user_id, "user123");
        assert!(admitted.rooms.is_empty());
        let refused = Assistant
            .connect(Some(""))
            .unwrap()
            .admit(None)
            .unwrap_err();
        assert_eq!(refused, Refusal::bad_request("missing userId"));
    }

    #[test]
    fn voice_data_decodes_to_bytes_for_the_backend() {
        let request = Assistant
            .decode(
                r#"{"type":"voice_data","data":{"audioData":"AAEC","sessionId":"v1"}}"#,
                &Limits::default(),
            )
            .unwrap();
        assert_eq!(
            request.command,
            ClientCommand::Backend(BackendItem::VoiceData {
                voice_session_id: "v1".into(),
                audio: vec![0, 1, 2]
            })
        );
        assert_eq!(request.tag.action, "voice_data");
    }
}
