//! Assembles a core: store, registry, the gRPC services with health and
//! reflection, served on TCP or in-process (monolithic mode).

use std::sync::Arc;
use std::time::Duration;

use meno_proto::{
    backend_service_server::BackendServiceServer, chat_service_server::ChatServiceServer,
    connection_service_server::ConnectionServiceServer, direct_service_server::DirectServiceServer,
    event_service_server::EventServiceServer, lease_service_server::LeaseServiceServer,
    presence_service_server::PresenceServiceServer, read_service_server::ReadServiceServer,
    registry_service_server::RegistryServiceServer, user_service_server::UserServiceServer,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::Server;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::clock::Clock;
use crate::config::{CoreArgs, EmbeddedEngine, SessionConfig, StoreKind};
use crate::grpc::CoreApi;
use crate::grpc_auth::RequireBearer;
use crate::registry::SessionRegistry;
use crate::store::{
    EmbeddedStore, FjallStore, MemoryStore, ScyllaStore, Store, StoreError, TracedStore,
};
use crate::user::UserRegistry;

/// How often the readiness watcher asks the store whether it can serve.
const STORE_READINESS_INTERVAL: Duration = Duration::from_secs(1);

/// Opens the store the flags ask for. A Scylla store whose cluster is
/// unreachable opens anyway and connects in the background (the core is
/// NOT_SERVING meanwhile); an older schema or bad settings are errors.
/// Every call is traced ([`TracedStore`]).
pub async fn open_store(args: &CoreArgs) -> Result<Arc<dyn Store>, StoreError> {
    let (store, backend): (Arc<dyn Store>, _) = match args.store {
        StoreKind::Embedded => {
            let (dir, engine) = (args.data_dir.clone(), args.embedded_engine);
            tokio::task::spawn_blocking(move || open_embedded(&dir, engine))
                .await
                .map_err(|err| StoreError::Backend(format!("opening the store: {err}")))??
        }
        StoreKind::Memory => (Arc::new(MemoryStore::new()), "memory"),
        StoreKind::Scylla => {
            let config = args
                .scylla
                .config()
                .map_err(|err| StoreError::Backend(err.to_string()))?;
            (Arc::new(ScyllaStore::open(config).await?), "cassandra")
        }
    };
    Ok(Arc::new(TracedStore::new(store, backend)))
}

/// Opens the embedded store in `dir` on `engine`; `auto` keeps the engine
/// the directory already has (a redb file) and starts a new one on fjall. A
/// directory that holds the other engine's store is refused, never ignored:
/// opening the wrong one would start an empty history beside the real one.
fn open_embedded(
    dir: &std::path::Path,
    engine: EmbeddedEngine,
) -> Result<(Arc<dyn Store>, &'static str), StoreError> {
    let has_redb = dir.join(crate::store::embedded::DB_FILE_NAME).exists();
    let has_fjall = dir.join(crate::store::fjall_store::DIR_NAME).exists();
    let refuse = |wanted: &str, found: &str| {
        StoreError::Backend(format!(
            "--embedded-engine {wanted}: {} holds a {found} store; run with \
             --embedded-engine {found} (or auto) to keep using it",
            dir.display()
        ))
    };
    let use_redb = match engine {
        EmbeddedEngine::Auto if has_redb && has_fjall => {
            return Err(StoreError::Backend(format!(
                "{} holds both a redb and a fjall store: choose one with --embedded-engine",
                dir.display()
            )))
        }
        EmbeddedEngine::Auto => has_redb,
        EmbeddedEngine::Redb if has_fjall && !has_redb => return Err(refuse("redb", "fjall")),
        EmbeddedEngine::Redb => true,
        EmbeddedEngine::Fjall if has_redb && !has_fjall => return Err(refuse("fjall", "redb")),
        EmbeddedEngine::Fjall => false,
    };
    Ok(if use_redb {
        (Arc::new(EmbeddedStore::open(dir)?), "redb")
    } else {
        (Arc::new(FjallStore::open(dir)?), "fjall")
    })
}

/// A running core: its sessions and the switch that drains them.
#[derive(Debug, Clone)]
pub struct Core {
    registry: SessionRegistry,
    health: HealthReporter,
    routes: tonic::service::Routes,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    tls: Option<tonic::transport::ServerTlsConfig>,
}

/// How a core's gRPC port is protected.
#[derive(Debug, Clone, Default)]
pub struct CoreOptions {
    /// Bearer token every `meno.realtime.v1` call must carry.
    pub grpc_token: Option<String>,
    /// TLS for the TCP port.
    pub tls: Option<tonic::transport::ServerTlsConfig>,
    /// Sessions shared with other core replicas (ScyllaDB store only).
    pub ownership: Option<crate::ownership::Ownership>,
}

/// gRPC names of the services a core serves.
const SERVICE_NAMES: [&str; 10] = [
    "meno.realtime.v1.ConnectionService",
    "meno.realtime.v1.ChatService",
    "meno.realtime.v1.PresenceService",
    "meno.realtime.v1.LeaseService",
    "meno.realtime.v1.ReadService",
    "meno.realtime.v1.EventService",
    "meno.realtime.v1.UserService",
    "meno.realtime.v1.DirectService",
    "meno.realtime.v1.RegistryService",
    "meno.realtime.v1.BackendService",
];

impl Core {
    /// A core over `store`, reading time from `clock`, with open gRPC
    /// (no token, no TLS: for loopback and in-process use).
    pub async fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, config: SessionConfig) -> Self {
        Self::with_options(store, clock, config, CoreOptions::default()).await
    }

    /// A core with gRPC authentication and TLS as `options` say.
    pub async fn with_options(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        config: SessionConfig,
        options: CoreOptions,
    ) -> Self {
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let config = Arc::new(config);
        let users = UserRegistry::new(
            Arc::clone(&clock),
            Arc::clone(&config),
            shutdown.clone(),
            tracker.clone(),
        );
        let mut registry = SessionRegistry::new(
            Arc::clone(&store),
            clock,
            config,
            users,
            shutdown.clone(),
            tracker.clone(),
        );
        if let Some(ownership) = options.ownership {
            registry = registry.with_ownership(ownership);
        }
        let (health, health_service) = tonic_health::server::health_reporter();
        let ready = store_ready(store.as_ref()).await;
        set_health(&health, ready).await;
        tracker.spawn(watch_store_readiness(
            store,
            health.clone(),
            ready,
            shutdown.clone(),
        ));
        let api = CoreApi::new(registry.clone());
        let auth = RequireBearer::new(options.grpc_token);
        let mut routes = tonic::service::Routes::new(health_service)
            .add_service(ConnectionServiceServer::with_interceptor(
                api.clone(),
                auth.clone(),
            ))
            .add_service(ChatServiceServer::with_interceptor(
                api.clone(),
                auth.clone(),
            ))
            .add_service(PresenceServiceServer::with_interceptor(
                api.clone(),
                auth.clone(),
            ))
            .add_service(LeaseServiceServer::with_interceptor(
                api.clone(),
                auth.clone(),
            ))
            .add_service(ReadServiceServer::with_interceptor(
                api.clone(),
                auth.clone(),
            ))
            .add_service(EventServiceServer::with_interceptor(
                api.clone(),
                auth.clone(),
            ))
            .add_service(UserServiceServer::with_interceptor(
                api.clone(),
                auth.clone(),
            ))
            .add_service(DirectServiceServer::with_interceptor(
                api.clone(),
                auth.clone(),
            ))
            .add_service(RegistryServiceServer::with_interceptor(
                api.clone(),
                auth.clone(),
            ))
            .add_service(BackendServiceServer::with_interceptor(api, auth));
        match tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(meno_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
        {
            Ok(reflection) => routes = routes.add_service(reflection),
            Err(err) => tracing::warn!(error = %err, "gRPC reflection unavailable"),
        }
        Self {
            registry,
            health,
            routes,
            shutdown,
            tracker,
            tls: options.tls,
        }
    }

    /// The sessions of this core.
    pub fn registry(&self) -> &SessionRegistry {
        &self.registry
    }

    /// The users of this core (their actors and the bridges' user streams).
    pub fn users(&self) -> &UserRegistry {
        self.registry.users()
    }

    /// The gRPC router: every `meno.realtime.v1` service, health, reflection.
    pub fn router(&self) -> tonic::transport::server::Router {
        grpc_server().add_routes(self.routes.clone())
    }

    /// Serves gRPC on `listener` until `stop` is cancelled, then drains.
    pub async fn serve(
        &self,
        listener: TcpListener,
        stop: CancellationToken,
    ) -> Result<(), tonic::transport::Error> {
        // Without TCP_NODELAY, small responses wait out delayed ACKs (~40 ms).
        let incoming = tonic::transport::server::TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .with_keepalive(Some(Duration::from_secs(30)));
        let core = self.clone();
        let mut server = grpc_server();
        if let Some(tls) = &self.tls {
            server = server.tls_config(tls.clone())?;
        }
        server
            .add_routes(self.routes.clone())
            .serve_with_incoming_shutdown(incoming, async move {
                stop.cancelled().await;
                core.begin_drain().await;
            })
            .await
    }

    /// The core's services (with their interceptors) as a tower service, for
    /// a bridge in this process to call without HTTP/2 in between.
    pub fn in_process_routes(&self) -> tonic::service::Routes {
        self.routes.clone().prepare()
    }

    /// A channel to this core over an in-memory transport: the same tonic
    /// client and server code as over TCP, without a socket (tests only:
    /// feature `testing`).
    #[cfg(any(test, feature = "testing"))]
    pub fn in_process_channel(&self) -> tonic::transport::Channel {
        use futures_util::StreamExt as _;
        use tokio_stream::wrappers::UnboundedReceiverStream;
        let (connections, incoming) = tokio::sync::mpsc::unbounded_channel();
        let router = self.router();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let incoming = UnboundedReceiverStream::new(incoming).map(Ok::<_, std::io::Error>);
            if let Err(err) = router
                .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
                .await
            {
                tracing::error!(error = %err, "in-process gRPC server failed");
            }
        });
        let connector = tower::service_fn(move |_: http::Uri| {
            let (client, server) = tokio::io::duplex(256 * 1024);
            let sent = connections.send(server);
            async move {
                sent.map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "in-process core stopped")
                })?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(client))
            }
        });
        tonic::transport::Endpoint::from_static("http://in-process.core")
            .connect_with_connector_lazy(connector)
    }

    /// Stops taking new work: health turns NOT_SERVING and session actors
    /// finish their queued commands, flush what is written behind, and stop.
    pub async fn begin_drain(&self) {
        // No replica routes new sessions here from now on; those owned here
        // are released by their actors once flushed.
        if let Some(ownership) = self.registry.ownership() {
            ownership.leave().await;
        }
        // Cancel first: the readiness watcher then stops flipping health.
        self.shutdown.cancel();
        set_health(&self.health, false).await;
        self.tracker.close();
    }

    /// Waits until every session actor has stopped, at most `deadline`.
    pub async fn drained(&self, deadline: Duration) -> bool {
        let drained = tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_ok();
        if let Some(ownership) = self.registry.ownership() {
            ownership.expire().await;
        }
        drained
    }
}

/// The gRPC server settings shared by TCP and in-process serving; each
/// request runs in a span that continues the caller's trace.
fn grpc_server() -> Server {
    Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .trace_fn(crate::telemetry::propagation::grpc_server_span)
}

/// Sets the overall and every service's health.
async fn set_health(health: &HealthReporter, serving: bool) {
    let status = if serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    health.set_service_status("", status).await;
    for name in SERVICE_NAMES {
        health.set_service_status(name, status).await;
    }
}

/// Whether the store answers its readiness check within the interval.
async fn store_ready(store: &dyn Store) -> bool {
    match tokio::time::timeout(STORE_READINESS_INTERVAL * 5, store.check_ready()).await {
        Ok(Ok(())) => true,
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "store not ready");
            false
        }
        Err(_) => false,
    }
}

/// Polls the store and turns gRPC health (and so the bridge's `/readyz`)
/// NOT_SERVING while it cannot serve, SERVING again when it recovers. Stops,
/// leaving health NOT_SERVING, when the core drains.
async fn watch_store_readiness(
    store: Arc<dyn Store>,
    health: HealthReporter,
    mut ready: bool,
    shutdown: CancellationToken,
) {
    let mut interval = tokio::time::interval(STORE_READINESS_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = interval.tick() => {}
        }
        let now_ready = tokio::select! {
            _ = shutdown.cancelled() => break,
            now_ready = store_ready(store.as_ref()) => now_ready,
        };
        if now_ready != ready {
            if now_ready {
                tracing::info!("store available again: SERVING");
            } else {
                tracing::warn!("store unavailable: NOT_SERVING until it recovers");
            }
            ready = now_ready;
            if shutdown.is_cancelled() {
                break;
            }
            set_health(&health, ready).await;
        }
    }
    set_health(&health, false).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine_of(dir: &std::path::Path, engine: EmbeddedEngine) -> Result<&'static str, String> {
        open_embedded(dir, engine)
            .map(|(_, name)| name)
            .map_err(|err| err.to_string())
    }

    #[test]
    fn a_new_directory_starts_on_fjall_and_keeps_it() {
        let dir = tempfile::TempDir::new().unwrap();
        assert_eq!(engine_of(dir.path(), EmbeddedEngine::Auto), Ok("fjall"));
        assert_eq!(engine_of(dir.path(), EmbeddedEngine::Auto), Ok("fjall"));
        let refused = engine_of(dir.path(), EmbeddedEngine::Redb).unwrap_err();
        assert!(refused.contains("holds a fjall store"), "{refused}");
    }

    #[test]
    fn a_redb_directory_keeps_redb_and_refuses_fjall() {
        let dir = tempfile::TempDir::new().unwrap();
        assert_eq!(engine_of(dir.path(), EmbeddedEngine::Redb), Ok("redb"));
        assert_eq!(engine_of(dir.path(), EmbeddedEngine::Auto), Ok("redb"));
        let refused = engine_of(dir.path(), EmbeddedEngine::Fjall).unwrap_err();
        assert!(refused.contains("holds a redb store"), "{refused}");
    }

    #[test]
    fn a_directory_with_both_engines_must_be_told_which() {
        let dir = tempfile::TempDir::new().unwrap();
        std::fs::write(dir.path().join(crate::store::embedded::DB_FILE_NAME), b"").unwrap();
        std::fs::create_dir(dir.path().join(crate::store::fjall_store::DIR_NAME)).unwrap();
        let refused = engine_of(dir.path(), EmbeddedEngine::Auto).unwrap_err();
        assert!(refused.contains("choose one"), "{refused}");
    }
}
