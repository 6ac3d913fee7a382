//! Which backends are attached and where each piece of work goes: the
//! routing state of `BackendHub`, synchronous and never awaiting (a full
//! buffer is answered at once, never waited for).
//!
//! Per `(tenant, kind)` the attached backends are kept in attach order with
//! a round-robin cursor. A text goes to the next backend whose buffer has
//! room (a full one is skipped; all full is "backend busy"). A voice
//! session's start picks a backend the same way and the session stays on it
//! (data and end go to that backend, whose stream is FIFO, so chunks arrive
//! in the order submitted); its end forgets it.
//!
//! In flight, for the errors a backend's departure causes: its voice
//! sessions (start to end), and per connection the texts it got since its
//! last reply to that connection (any reply, even a partial chunk, clears
//! it: we do not know which text a reply answers).

use std::collections::{HashMap, HashSet};

use meno_proto::{backend_work, BackendKind, BackendWork};
use tokio::sync::mpsc::{self, error::TrySendError};
use tonic::Status;

use crate::error::{CoreError, ErrorCode};
use crate::user::UserKey;

/// Where work for one backend is queued (the `Attach` response stream).
pub(crate) type Outbox = mpsc::Sender<Result<BackendWork, Status>>;

/// Voice sessions one client connection may have open at once.
pub(crate) const MAX_VOICE_SESSIONS_PER_CONNECTION: usize = 4;

/// How long a refused submit should wait before trying again.
pub(crate) const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// A voice session: client-chosen ids are scoped by the connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct VoiceKey {
    tenant: String,
    connection_id: String,
    voice_session_id: String,
}

#[derive(Debug)]
struct Attached {
    tenant: String,
    kind: BackendKind,
    outbox: Outbox,
    /// Connection id -> user id, with texts unanswered.
    texts: HashMap<String, String>,
    /// Its voice sessions, with their users.
    voice: HashMap<VoiceKey, String>,
}

#[derive(Debug, Default)]
struct Group {
    members: Vec<u64>,
    cursor: usize,
}

/// The attached backends and the voice sessions they hold.
#[derive(Debug, Default)]
pub(crate) struct Pools {
    next_id: u64,
    groups: HashMap<(String, i32), Group>,
    backends: HashMap<u64, Attached>,
    voice: HashMap<VoiceKey, u64>,
    /// The next `chunk_index` of each voice session: its chunks are
    /// numbered 0, 1, 2, ... as they are queued, so a backend sees a gap
    /// if one is ever lost.
    voice_chunks: HashMap<VoiceKey, u64>,
}

/// A connection that had work in flight on a backend that went away.
pub(crate) type Stranded = (UserKey, String);

fn kind_name(kind: BackendKind) -> &'static str {
    match kind {
        BackendKind::Voice => "voice",
        BackendKind::Assistant | BackendKind::Unspecified => "assistant",
    }
}

fn retryable(message: String) -> CoreError {
    let mut err = CoreError::unavailable(message);
    err.retry_after = Some(RETRY_AFTER);
    err
}

impl Pools {
    /// Adds a backend of `tenant` and `kind`; returns its id.
    pub(crate) fn attach(&mut self, tenant: &str, kind: BackendKind, outbox: Outbox) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.groups
            .entry((tenant.to_owned(), kind.into()))
            .or_default()
            .members
            .push(id);
        let attached = Attached {
            tenant: tenant.to_owned(),
            kind,
            outbox,
            texts: HashMap::new(),
            voice: HashMap::new(),
        };
        self.backends.insert(id, attached);
        id
    }

    /// Removes backend `id`; returns the connections that had work in
    /// flight on it (each once). Its voice sessions are forgotten.
    pub(crate) fn detach(&mut self, id: u64) -> Vec<Stranded> {
        let Some(attached) = self.backends.remove(&id) else {
            return Vec::new();
        };
        let group_key = (attached.tenant.clone(), i32::from(attached.kind));
        if let Some(group) = self.groups.get_mut(&group_key) {
            group.members.retain(|member| *member != id);
            if group.members.is_empty() {
                self.groups.remove(&group_key);
            }
        }
        let mut seen = HashSet::new();
        let mut stranded = Vec::new();
        for (voice, user_id) in attached.voice {
            self.voice.remove(&voice);
            self.voice_chunks.remove(&voice);
            if seen.insert(voice.connection_id.clone()) {
                let user = UserKey::new(attached.tenant.clone(), user_id);
                stranded.push((user, voice.connection_id));
            }
        }
        for (connection_id, user_id) in attached.texts {
            if seen.insert(connection_id.clone()) {
                let user = UserKey::new(attached.tenant.clone(), user_id);
                stranded.push((user, connection_id));
            }
        }
        stranded.sort();
        stranded
    }

    /// Backend `id` answered `connection_id`: its texts there are settled.
    pub(crate) fn replied(&mut self, id: u64, connection_id: &str) {
        if let Some(attached) = self.backends.get_mut(&id) {
            attached.texts.remove(connection_id);
        }
    }

    /// Queues `work` (validated, tenant filled in) on the right backend.
    pub(crate) fn route(&mut self, work: BackendWork) -> Result<(), CoreError> {
        let user = work.user.clone().unwrap_or_default();
        let voice_key = |voice_session_id: &str| VoiceKey {
            tenant: user.tenant.clone(),
            connection_id: work.connection_id.clone(),
            voice_session_id: voice_session_id.to_owned(),
        };
        match &work.item {
            Some(backend_work::Item::Text(_)) | None => {
                let connection_id = work.connection_id.clone();
                let id = self.round_robin(&user.tenant, BackendKind::Assistant, work)?;
                if let Some(attached) = self.backends.get_mut(&id) {
                    attached.texts.insert(connection_id, user.user_id.clone());
                }
                Ok(())
            }
            Some(backend_work::Item::VoiceStart(start)) => {
                let key = voice_key(&start.voice_session_id);
                if self.voice_sessions_of(&key.tenant, &key.connection_id)
                    >= MAX_VOICE_SESSIONS_PER_CONNECTION
                {
                    return Err(CoreError::new(
                        ErrorCode::RateLimited,
                        format!(
                            "a connection may have at most {MAX_VOICE_SESSIONS_PER_CONNECTION} voice sessions open; end one first"
                        ),
                    ));
                }
                if self.voice.contains_key(&key) {
                    return Err(CoreError::conflict(format!(
                        "voice session {:?} is already started",
                        start.voice_session_id
                    )));
                }
                let id = self.round_robin(&user.tenant, BackendKind::Voice, work)?;
                if let Some(attached) = self.backends.get_mut(&id) {
                    attached.voice.insert(key.clone(), user.user_id.clone());
                }
                self.voice.insert(key, id);
                Ok(())
            }
            Some(backend_work::Item::VoiceData(data)) => {
                let key = voice_key(&data.voice_session_id);
                let index = self.voice_chunks.get(&key).copied().unwrap_or(0);
                let mut work = work;
                if let Some(backend_work::Item::VoiceData(data)) = work.item.as_mut() {
                    data.chunk_index = index;
                }
                // A chunk refused (a full buffer) takes no number.
                self.sticky(&key, work)?;
                self.voice_chunks.insert(key, index + 1);
                Ok(())
            }
            Some(backend_work::Item::VoiceEnd(end)) => {
                let key = voice_key(&end.voice_session_id);
                let id = self.sticky(&key, work).map(|()| self.voice.remove(&key))?;
                self.voice_chunks.remove(&key);
                if let Some(attached) = id.and_then(|id| self.backends.get_mut(&id)) {
                    attached.voice.remove(&key);
                }
                Ok(())
            }
        }
    }

    /// Queues `work` on the next backend of the group with room.
    fn round_robin(
        &mut self,
        tenant: &str,
        kind: BackendKind,
        mut work: BackendWork,
    ) -> Result<u64, CoreError> {
        let no_backend = || {
            retryable(format!(
                "no {} backend is attached for tenant {tenant:?}",
                kind_name(kind)
            ))
        };
        let group = self
            .groups
            .get_mut(&(tenant.to_owned(), kind.into()))
            .ok_or_else(no_backend)?;
        let count = group.members.len();
        for step in 0..count {
            let index = (group.cursor + step) % count;
            let id = group.members[index];
            let Some(attached) = self.backends.get(&id) else {
                continue;
            };
            match attached.outbox.try_send(Ok(work)) {
                Ok(()) => {
                    group.cursor = (index + 1) % count;
                    return Ok(id);
                }
                Err(TrySendError::Full(back) | TrySendError::Closed(back)) => {
                    work = back.unwrap_or_default();
                }
            }
        }
        Err(retryable(format!(
            "backend busy: every {} backend of tenant {tenant:?} has a full buffer",
            kind_name(kind)
        )))
    }

    /// Queues voice work on the backend holding its session.
    /// A client connection closed: its voice sessions end (the backend
    /// holding each gets a `voice_end`, best effort: a full buffer drops it
    /// and the backend learns nothing more of that session) and nothing of
    /// it is kept. Returns how many voice sessions it had open.
    pub(crate) fn connection_closed(&mut self, tenant: &str, connection_id: &str) -> usize {
        let open: Vec<(VoiceKey, u64)> = self
            .voice
            .iter()
            .filter(|(key, _)| key.tenant == tenant && key.connection_id == connection_id)
            .map(|(key, id)| (key.clone(), *id))
            .collect();
        for (key, id) in &open {
            self.voice.remove(key);
            self.voice_chunks.remove(key);
            let Some(attached) = self.backends.get_mut(id) else {
                continue;
            };
            let user_id = attached.voice.remove(key).unwrap_or_default();
            let end = BackendWork {
                user: Some(meno_proto::UserRef {
                    tenant: tenant.to_owned(),
                    user_id,
                }),
                connection_id: connection_id.to_owned(),
                trace_id: String::new(),
                item: Some(backend_work::Item::VoiceEnd(meno_proto::VoiceEnd {
                    voice_session_id: key.voice_session_id.clone(),
                })),
            };
            let _ = attached.outbox.try_send(Ok(end));
        }
        for attached in self.backends.values_mut() {
            if attached.tenant == tenant {
                attached.texts.remove(connection_id);
            }
        }
        open.len()
    }

    /// How many voice sessions `connection_id` (of `tenant`) has open.
    fn voice_sessions_of(&self, tenant: &str, connection_id: &str) -> usize {
        self.voice
            .keys()
            .filter(|key| key.tenant == tenant && key.connection_id == connection_id)
            .count()
    }

    fn sticky(&mut self, key: &VoiceKey, work: BackendWork) -> Result<(), CoreError> {
        let not_found = || {
            CoreError::new(
                ErrorCode::NotFound,
                format!(
                    "voice session {:?} is not started on this connection (or has ended)",
                    key.voice_session_id
                ),
            )
        };
        let id = *self.voice.get(key).ok_or_else(not_found)?;
        let attached = self.backends.get(&id).ok_or_else(not_found)?;
        match attached.outbox.try_send(Ok(work)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(retryable(format!(
                "backend busy: the voice backend of session {:?} has a full buffer",
                key.voice_session_id
            ))),
            Err(TrySendError::Closed(_)) => Err(retryable(
                "the voice backend of this session went away".to_owned(),
            )),
        }
    }
}

#[cfg(test)]
mod tests;
