//! A span around every store call, whatever the backend: `store.<operation>`
//! with the session, a child of the span that made the call (the actor's
//! batch span, or a gRPC request's). It adds no behaviour of its own.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use meno_proto::{ChatMessage, RegisteredConnection};
use tracing::Instrument;

use super::{
    ChatRef, MessageLocation, RegistryLookup, SessionKey, SessionRecord, SessionWrite, Store,
    StoreError,
};

/// `inner` with each call in a span.
#[derive(Debug)]
pub struct TracedStore {
    inner: Arc<dyn Store>,
    backend: &'static str,
}

impl TracedStore {
    /// Wraps `inner`; `backend` names it in spans (`db.system`).
    pub fn new(inner: Arc<dyn Store>, backend: &'static str) -> Self {
        Self { inner, backend }
    }

    async fn traced<T>(
        &self,
        span: tracing::Span,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let outcome = call.instrument(span.clone()).await;
        if let Err(err) = &outcome {
            span.record("otel.status_code", "ERROR");
            span.record("error", tracing::field::display(err));
        }
        outcome
    }
}

/// One store span; `operation` is a literal so the span name is static.
macro_rules! store_span {
    ($store:expr, $name:literal, $key:expr $(, $field:ident = $value:expr)*) => {
        tracing::info_span!(
            $name,
            db.system = $store.backend,
            session = %$key,
            $($field = $value,)*
            otel.status_code = tracing::field::Empty,
            error = tracing::field::Empty,
        )
    };
}

/// A span of a connection-registry call (keyed by tenant, not session).
macro_rules! registry_span {
    ($store:expr, $name:literal $(, $field:ident = $value:expr)*) => {
        tracing::info_span!(
            $name,
            db.system = $store.backend,
            $($field = $value,)*
            otel.status_code = tracing::field::Empty,
            error = tracing::field::Empty,
        )
    };
}

#[async_trait]
impl Store for TracedStore {
    async fn load_session(&self, key: &SessionKey) -> Result<SessionRecord, StoreError> {
        let span = store_span!(self, "store.load_session", key);
        self.traced(span, self.inner.load_session(key)).await
    }

    async fn write_session(&self, key: &SessionKey, write: SessionWrite) -> Result<(), StoreError> {
        let span = store_span!(
            self,
            "store.write_session",
            key,
            messages = write.messages.len(),
            presence = write.presence.len(),
            reads = write.reads.len(),
            lease = write.lease.is_some()
        );
        self.traced(span, self.inner.write_session(key, write))
            .await
    }

    async fn chat_page(
        &self,
        key: &SessionKey,
        before_seq: Option<u64>,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let span = store_span!(self, "store.chat_page", key, limit = limit);
        self.traced(span, self.inner.chat_page(key, before_seq, limit))
            .await
    }

    async fn chat_after(
        &self,
        key: &SessionKey,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let span = store_span!(self, "store.chat_after", key, after_seq = after_seq);
        self.traced(span, self.inner.chat_after(key, after_seq, limit))
            .await
    }

    async fn chat_by_client_refs(
        &self,
        key: &SessionKey,
        refs: &[ChatRef],
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let span = store_span!(self, "store.chat_by_client_refs", key, refs = refs.len());
        self.traced(span, self.inner.chat_by_client_refs(key, refs))
            .await
    }

    async fn message_location(
        &self,
        tenant: &str,
        message_id: &str,
    ) -> Result<Option<MessageLocation>, StoreError> {
        let span = tracing::info_span!(
            "store.message_location",
            db.system = self.backend,
            tenant = tenant,
            message_id = message_id,
            otel.status_code = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        self.traced(span, self.inner.message_location(tenant, message_id))
            .await
    }

    async fn put_registered(&self, rows: &[RegisteredConnection]) -> Result<(), StoreError> {
        let span = registry_span!(self, "store.put_registered", rows = rows.len());
        self.traced(span, self.inner.put_registered(rows)).await
    }

    async fn registered(
        &self,
        tenant: &str,
        connection_ids: &[String],
    ) -> Result<Vec<RegisteredConnection>, StoreError> {
        let span = registry_span!(
            self,
            "store.registered",
            tenant = tenant,
            connections = connection_ids.len()
        );
        self.traced(span, self.inner.registered(tenant, connection_ids))
            .await
    }

    async fn registered_by(
        &self,
        tenant: &str,
        lookup: &RegistryLookup,
    ) -> Result<Vec<RegisteredConnection>, StoreError> {
        let span = registry_span!(
            self,
            "store.registered_by",
            tenant = tenant,
            lookup = tracing::field::debug(lookup)
        );
        self.traced(span, self.inner.registered_by(tenant, lookup))
            .await
    }

    async fn delete_registered(&self, rows: &[RegisteredConnection]) -> Result<(), StoreError> {
        let span = registry_span!(self, "store.delete_registered", rows = rows.len());
        self.traced(span, self.inner.delete_registered(rows)).await
    }

    async fn session_exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let span = store_span!(self, "store.session_exists", key);
        self.traced(span, self.inner.session_exists(key)).await
    }

    async fn check_ready(&self) -> Result<(), StoreError> {
        // Polled every second by the readiness watcher: not worth a span.
        self.inner.check_ready().await
    }

    fn ownership(&self) -> Option<std::sync::Arc<dyn super::OwnershipStore>> {
        self.inner.ownership()
    }
}
