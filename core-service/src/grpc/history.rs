//! `ChatService.History`: pages of stored chat, newest first, read from the
//! store without the session's actor (every message is stored before it is
//! published, so the store never lags what a client has seen).

use meno_proto::{ChatHistoryRequest, ChatHistoryResponse};

use crate::error::{CoreError, ErrorCode};
use crate::registry::SessionRegistry;
use crate::store::SessionKey;
use crate::validate;

/// A page when the caller names no limit.
const DEFAULT_PAGE: usize = 50;
/// The largest page.
const MAX_PAGE: usize = 500;

/// One page of `request`'s session.
///
/// - `before_message_id` resolves, through the message-id index of the
///   session's tenant, to that message's seq; a message that is unknown, of
///   another tenant or of another session is NOT_FOUND.
/// - `offset` skips that many of the newest messages (at most
///   [`validate::MAX_HISTORY_OFFSET`]): the store reads `offset + limit` and
///   drops the first `offset`.
/// - `must_exist`: the session exists once it has had any event (a join, a
///   message, a lease, a read): the first event of a session reserves a seq
///   block durably before it is published, so "exists" is "its stored seq
///   mark is above zero" ([`crate::store::Store::session_exists`]). A session
///   of another tenant with the same id does not count: the check is keyed
///   by tenant. Without `must_exist`, an unknown session is an empty page.
pub(super) async fn page(
    registry: &SessionRegistry,
    request: ChatHistoryRequest,
) -> Result<ChatHistoryResponse, CoreError> {
    let key = super::session_key(request.session.as_ref())?;
    validate::chat_history(&request)?;
    let store = registry.store();
    if request.must_exist {
        must_exist(registry, &key).await?;
    }
    let limit = match request.limit {
        0 => DEFAULT_PAGE,
        limit => usize::try_from(limit).unwrap_or(usize::MAX).min(MAX_PAGE),
    };
    let before_seq = match &request.before_message_id {
        Some(message_id) => Some(seq_in_session(registry, &key, message_id).await?),
        None => request.before_seq,
    };
    let offset = usize::try_from(request.offset).unwrap_or(usize::MAX);
    let mut messages = store.chat_page(&key, before_seq, offset + limit).await?;
    let full = messages.len() == offset + limit;
    messages.drain(..offset.min(messages.len()));
    crate::message_kind::stamp_all(&mut messages);
    let next_before_seq = full
        .then(|| messages.last().map(|message| message.seq))
        .flatten();
    Ok(ChatHistoryResponse {
        messages,
        next_before_seq,
    })
}

/// NOT_FOUND unless the session was ever created in its tenant (see
/// [`page`]).
pub(super) async fn must_exist(
    registry: &SessionRegistry,
    key: &SessionKey,
) -> Result<(), CoreError> {
    if registry.store().session_exists(key).await? {
        Ok(())
    } else {
        Err(CoreError::new(
            ErrorCode::NotFound,
            format!("room {:?} does not exist", key.session_id),
        ))
    }
}

/// The seq of `message_id` in `key`'s session; NOT_FOUND when it is not
/// there (unknown, or in another session or tenant).
async fn seq_in_session(
    registry: &SessionRegistry,
    key: &SessionKey,
    message_id: &str,
) -> Result<u64, CoreError> {
    registry
        .store()
        .message_location(&key.tenant, message_id)
        .await?
        .filter(|location| location.session_id == key.session_id)
        .map(|location| location.seq)
        .ok_or_else(|| {
            CoreError::new(
                ErrorCode::NotFound,
                format!("message {message_id:?} is not in room {:?}", key.session_id),
            )
        })
}
