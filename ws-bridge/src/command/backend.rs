//! The assistant dialect's `text_message` and `voice_*`: handed to the
//! tenant's backends through the core (`BackendService.Submit`). The backend
//! answers later, addressed to this connection, on the user channel; a
//! refusal (no backend attached, a backend busy, a voice session not started)
//! comes back at once as an `error`.

use meno_common::error::CoreError;
use meno_proto::{
    submit_request, SubmitRequest, TextMessage, UserRef, VoiceData, VoiceEnd, VoiceStart,
};

use super::{Caller, Outcome};
use crate::codec::BackendItem;

pub(super) async fn submit(
    caller: &Caller,
    item: BackendItem,
    trace_id: Option<&str>,
) -> Result<Outcome, CoreError> {
    let item = match item {
        BackendItem::Text {
            content,
            session_id,
        } => submit_request::Item::Text(TextMessage {
            content,
            session_id,
        }),
        BackendItem::VoiceStart {
            voice_session_id,
            audio_format,
        } => submit_request::Item::VoiceStart(VoiceStart {
            voice_session_id,
            audio_format,
        }),
        BackendItem::VoiceData {
            voice_session_id,
            audio,
        } => submit_request::Item::VoiceData(VoiceData {
            voice_session_id,
            audio,
            chunk_index: 0,
        }),
        BackendItem::VoiceEnd { voice_session_id } => {
            submit_request::Item::VoiceEnd(VoiceEnd { voice_session_id })
        }
    };
    let request = caller.core().request(SubmitRequest {
        user: Some(UserRef {
            tenant: caller.key.tenant.clone(),
            user_id: caller.connection.participant_id.clone(),
        }),
        connection_id: caller.connection.connection_id.clone(),
        trace_id: trace_id.unwrap_or_default().to_owned(),
        item: Some(item),
    });
    caller
        .core()
        .backends
        .clone()
        .submit(request)
        .await
        .map_err(|status| CoreError::from_status(&status))?;
    Ok(None)
}
