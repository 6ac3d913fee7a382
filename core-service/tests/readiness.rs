//! The core's store-readiness watcher: gRPC health follows the store's
//! `check_ready`, NOT_SERVING while it fails and SERVING again when it
//! recovers, and stays NOT_SERVING once the core drains.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use meno_core::clock::SystemClock;
use meno_core::config::SessionConfig;
use meno_core::server::Core;
use meno_core::store::{
    ChatRef, MemoryStore, MessageLocation, RegistryLookup, SessionKey, SessionRecord, SessionWrite,
    Store, StoreError,
};
use meno_proto::{ChatMessage, RegisteredConnection};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// A memory store whose readiness the test switches.
#[derive(Debug, Default)]
struct SwitchedStore {
    inner: MemoryStore,
    down: AtomicBool,
}

#[async_trait]
impl Store for SwitchedStore {
    async fn put_registered(&self, rows: &[RegisteredConnection]) -> Result<(), StoreError> {
        self.inner.put_registered(rows).await
    }
    async fn registered(
        &self,
        tenant: &str,
        connection_ids: &[String],
    ) -> Result<Vec<RegisteredConnection>, StoreError> {
        self.inner.registered(tenant, connection_ids).await
    }
    async fn registered_by(
        &self,
        tenant: &str,
        lookup: &RegistryLookup,
    ) -> Result<Vec<RegisteredConnection>, StoreError> {
        self.inner.registered_by(tenant, lookup).await
    }
    async fn delete_registered(&self, rows: &[RegisteredConnection]) -> Result<(), StoreError> {
        self.inner.delete_registered(rows).await
    }
    async fn load_session(&self, key: &SessionKey) -> Result<SessionRecord, StoreError> {
        self.inner.load_session(key).await
    }
    async fn write_session(&self, key: &SessionKey, write: SessionWrite) -> Result<(), StoreError> {
        self.inner.write_session(key, write).await
    }
    async fn chat_page(
        &self,
        key: &SessionKey,
        before_seq: Option<u64>,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        self.inner.chat_page(key, before_seq, limit).await
    }
    async fn chat_after(
        &self,
        key: &SessionKey,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        self.inner.chat_after(key, after_seq, limit).await
    }
    async fn chat_by_client_refs(
        &self,
        key: &SessionKey,
        refs: &[ChatRef],
    ) -> Result<Vec<ChatMessage>, StoreError> {
        self.inner.chat_by_client_refs(key, refs).await
    }
    async fn message_location(
        &self,
        tenant: &str,
        message_id: &str,
    ) -> Result<Option<MessageLocation>, StoreError> {
        self.inner.message_location(tenant, message_id).await
    }
    async fn check_ready(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("switched off by the test".into()))
        } else {
            Ok(())
        }
    }
}

async fn status(
    health: &mut HealthClient<tonic::transport::Channel>,
    service: &str,
) -> ServingStatus {
    let response = health
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .expect("health check")
        .into_inner();
    ServingStatus::try_from(response.status).expect("known status")
}

/// Polls until `service` reports `expected`; fails after 10 s.
async fn wait_for(
    health: &mut HealthClient<tonic::transport::Channel>,
    service: &str,
    expected: ServingStatus,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = status(health, service).await;
        if now == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{service:?} stayed {now:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_store_readiness() {
    let store = Arc::new(SwitchedStore::default());
    store.down.store(true, Ordering::SeqCst);
    let core = Core::new(
        Arc::clone(&store) as Arc<dyn Store>,
        Arc::new(SystemClock),
        SessionConfig::default(),
    )
    .await;
    // Over TCP: the in-process transport ends with the drain, this does not.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let serving = core.clone();
    let serve_stop = stop.clone();
    tokio::spawn(async move { serving.serve(listener, serve_stop).await });
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let mut health = HealthClient::new(channel);
    assert_eq!(
        status(&mut health, "").await,
        ServingStatus::NotServing,
        "a store that is down at start-up"
    );

    store.down.store(false, Ordering::SeqCst);
    wait_for(&mut health, "", ServingStatus::Serving).await;
    wait_for(
        &mut health,
        "meno.realtime.v1.ChatService",
        ServingStatus::Serving,
    )
    .await;

    store.down.store(true, Ordering::SeqCst);
    wait_for(&mut health, "", ServingStatus::NotServing).await;
    wait_for(
        &mut health,
        "meno.realtime.v1.ChatService",
        ServingStatus::NotServing,
    )
    .await;

    store.down.store(false, Ordering::SeqCst);
    wait_for(&mut health, "", ServingStatus::Serving).await;
    core.begin_drain().await;
    assert_eq!(status(&mut health, "").await, ServingStatus::NotServing);
    assert!(
        core.drained(Duration::from_secs(5)).await,
        "the watcher stops on drain"
    );
    assert_eq!(
        status(&mut health, "").await,
        ServingStatus::NotServing,
        "a recovered store does not undo the drain"
    );
    stop.cancel();
}
