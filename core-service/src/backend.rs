//! Backend streams (issue 16, seed 003's assistant and voice processing):
//! external backends attach over gRPC (`BackendService.Attach`, one
//! bidirectional stream each), receive the work of their tenant and kind,
//! and answer with messages for the connection the work came from.
//!
//! **How several backends share the work.** Backends are grouped by
//! `(tenant, kind)`. Each text message goes to the next backend of the
//! tenant's assistant group in round-robin order, skipping one whose buffer
//! is full; a voice session is placed the same way on a voice backend at its
//! `voice_start`, and its data and end follow it there, in submit order.
//! Nothing else is shared: a backend keeps no state the core knows about,
//! and a new backend takes new work at once.
//!
//! **Bounded.** Each backend has an outbound buffer of `--backend-buffer`
//! work items (256 by default). A submit never waits: no backend of the kind
//! → `UNAVAILABLE` naming the tenant and kind; every buffer full → the
//! retryable `UNAVAILABLE` "backend busy" (both with retry-after 1 s). The
//! bridge turns either into a retryable `error` for the client.
//!
//! **Replies** go to the user's actor as a `UserEvent.direct` for the
//! connection, like `SendToConnection` but with no registry lookup (the
//! backend names the user, who is taken to be of the backend's tenant).
//!
//! **A backend that goes away** (its stream ends, fails, or breaks the
//! contract): each connection with work in flight on it — its voice
//! sessions, and texts it got since its last reply to that connection —
//! gets a `DirectMessage.error {code: "Unavailable", retryable: true,
//! message: "the backend went away"}`; its voice sessions are forgotten (the
//! next chunk of one is NOT_FOUND); new work goes to the remaining backends.
//!
//! The routing state (`pool`) sits behind a `Mutex`: it is not domain state
//! of a session or a user, every operation on it is short and synchronous,
//! and it is never held across an await.

use std::sync::{Arc, Mutex, MutexGuard};

use meno_proto::{
    backend_upstream, backend_work, direct_message, submit_request, BackendHello, BackendKind,
    BackendUpstream, BackendWork, DirectError, DirectMessage, SubmitRequest,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Status, Streaming};

use crate::direct::DirectDelivery;
use crate::error::CoreError;
use crate::user::UserKey;
use crate::validate;

mod pool;

use pool::Pools;

/// What a backend's departure tells the clients it was working for.
pub(crate) const BACKEND_GONE_MESSAGE: &str = "the backend went away";

/// The attached backends of every tenant, and the work routed to them.
/// How long an `Attach` may take to send its `hello`.
const HELLO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Clone)]
pub(crate) struct BackendHub {
    pools: Arc<Mutex<Pools>>,
    direct: DirectDelivery,
    buffer: usize,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl BackendHub {
    pub(crate) fn new(
        direct: DirectDelivery,
        buffer: usize,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            pools: Arc::default(),
            direct,
            buffer: buffer.max(1),
            tracker,
            shutdown,
        }
    }

    fn pools(&self) -> MutexGuard<'_, Pools> {
        // A poisoned lock means a panic mid-update elsewhere; the maps hold
        // only channels and ids, still usable.
        self.pools
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A client connection closed: its voice sessions end at their backends
    /// and the pools forget it.
    pub(crate) fn connection_closed(&self, tenant: &str, connection_id: &str) {
        let ended = self.pools().connection_closed(tenant, connection_id);
        if ended > 0 {
            tracing::debug!(
                tenant,
                connection_id,
                ended,
                "voice sessions of a closed connection ended"
            );
        }
    }

    /// Routes a validated `Submit` to a backend, without waiting.
    pub(crate) fn submit(&self, request: SubmitRequest) -> Result<(), CoreError> {
        let user = request.user.unwrap_or_default();
        let user = UserKey::new(user.tenant, user.user_id).to_ref();
        let item = request.item.map(|item| match item {
            submit_request::Item::Text(text) => backend_work::Item::Text(text),
            submit_request::Item::VoiceStart(start) => backend_work::Item::VoiceStart(start),
            submit_request::Item::VoiceData(data) => backend_work::Item::VoiceData(data),
            submit_request::Item::VoiceEnd(end) => backend_work::Item::VoiceEnd(end),
        });
        let work = BackendWork {
            user: Some(user),
            connection_id: request.connection_id,
            trace_id: request.trace_id,
            item,
        };
        let routed = self.pools().route(work);
        if routed.is_err() {
            crate::metrics::BACKEND_WORK_REFUSED.inc();
        }
        routed
    }

    /// Serves one `Attach`: reads and checks the backend's `hello` and
    /// enters the backend in its pool before answering, so a backend whose
    /// `Attach` returned is already given work; then the work stream is fed
    /// until the backend hangs up, breaks the contract, or the core drains.
    pub(crate) async fn attach(
        &self,
        mut upstream: Streaming<BackendUpstream>,
    ) -> Result<ReceiverStream<Result<BackendWork, Status>>, Status> {
        let first = tokio::select! {
            () = self.shutdown.cancelled() => {
                return Err(Status::unavailable("the core is shutting down"));
            }
            () = tokio::time::sleep(HELLO_TIMEOUT) => {
                return Err(Status::deadline_exceeded(format!(
                    "no hello within {} s of Attach",
                    HELLO_TIMEOUT.as_secs()
                )));
            }
            first = upstream.message() => first,
        };
        let hello = hello(first)?;
        let (outbox, work) = mpsc::channel(self.buffer);
        let tenant = UserKey::new(hello.tenant.clone(), "").tenant;
        let kind = BackendKind::try_from(hello.kind).unwrap_or_default();
        let id = self.pools().attach(&tenant, kind, outbox.clone());
        self.tracker
            .spawn(self.clone().serve(upstream, outbox, hello, tenant, id));
        Ok(ReceiverStream::new(work))
    }

    async fn serve(
        self,
        mut upstream: Streaming<BackendUpstream>,
        outbox: pool::Outbox,
        hello: BackendHello,
        tenant: String,
        id: u64,
    ) {
        let kind = BackendKind::try_from(hello.kind).unwrap_or_default();
        tracing::info!(
            tenant,
            backend = hello.backend_id,
            ?kind,
            "backend attached"
        );
        let ended = loop {
            let item = tokio::select! {
                () = self.shutdown.cancelled() => {
                    break Some(Status::unavailable("the core is shutting down"));
                }
                () = outbox.closed() => break None,
                item = upstream.message() => item,
            };
            match item {
                Ok(Some(BackendUpstream {
                    item: Some(backend_upstream::Item::Reply(reply)),
                })) => {
                    if let Err(err) = self.reply(id, &tenant, reply) {
                        break Some(Status::from(err));
                    }
                }
                Ok(Some(_)) => {
                    break Some(Status::invalid_argument(
                        "after hello, a backend sends only replies",
                    ));
                }
                Ok(None) | Err(_) => break None,
            }
        };
        let stranded = self.pools().detach(id);
        tracing::info!(
            tenant,
            backend = hello.backend_id,
            stranded = stranded.len(),
            "backend detached"
        );
        if let Some(status) = ended {
            let _ = outbox.try_send(Err(status));
        }
        for (user, connection_id) in stranded {
            self.direct.reply(&user, &connection_id, "", gone_error());
        }
    }

    /// Delivers one reply of backend `id` (of `tenant`).
    fn reply(
        &self,
        id: u64,
        tenant: &str,
        reply: meno_proto::BackendReply,
    ) -> Result<(), CoreError> {
        validate::id("reply.connection_id", &reply.connection_id)?;
        validate::id("reply.user_id", &reply.user_id)?;
        validate::direct_message(reply.message.as_ref())?;
        self.pools().replied(id, &reply.connection_id);
        let user = UserKey::new(tenant, reply.user_id);
        self.direct.reply(
            &user,
            &reply.connection_id,
            &reply.trace_id,
            reply.message.unwrap_or_default(),
        );
        Ok(())
    }
}

/// The hello a stream must start with, validated.
fn hello(first: Result<Option<BackendUpstream>, Status>) -> Result<BackendHello, Status> {
    let Ok(Some(BackendUpstream {
        item: Some(backend_upstream::Item::Hello(hello)),
    })) = first
    else {
        return Err(Status::invalid_argument(
            "the first item of Attach must be hello {tenant, kind, backend_id}",
        ));
    };
    validate::tenant(&hello.tenant)?;
    validate::id("hello.backend_id", &hello.backend_id)?;
    match BackendKind::try_from(hello.kind) {
        Ok(BackendKind::Assistant | BackendKind::Voice) => Ok(hello),
        _ => Err(Status::invalid_argument(
            "hello.kind must be BACKEND_KIND_ASSISTANT or BACKEND_KIND_VOICE",
        )),
    }
}

/// The error a client gets when the backend working for it goes away.
fn gone_error() -> DirectMessage {
    DirectMessage {
        kind: Some(direct_message::Kind::Error(DirectError {
            code: crate::error::ErrorCode::Unavailable.as_str().to_owned(),
            message: BACKEND_GONE_MESSAGE.to_owned(),
            retryable: true,
            retry_after_ms: None,
        })),
    }
}
