//! The bridge's handle on the core: one transport (a tonic channel over TCP,
//! or, in monolithic mode, the core's services called in-process) and a client
//! per service, each unary call with a deadline.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use meno_common::grpc_auth::BearerToken;
use meno_common::key::SessionKey;
use meno_proto::{
    backend_service_client::BackendServiceClient, chat_service_client::ChatServiceClient,
    connection_service_client::ConnectionServiceClient, event_service_client::EventServiceClient,
    lease_service_client::LeaseServiceClient, presence_service_client::PresenceServiceClient,
    read_service_client::ReadServiceClient, registry_service_client::RegistryServiceClient,
    user_service_client::UserServiceClient, SessionRef,
};
use tonic::body::Body;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tracing::Instrument;

pub use router::{Router, SESSION_HEADER};
pub(crate) use router::{MAX_REDIRECTS, OPEN_TIMEOUT};

mod router;

/// HTTP/2 pings on every connection to a core: a core that stops answering
/// (paused, cut off) is given up after the interval plus the timeout.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The channel every client uses: the transport plus [`CallMetadata`].
pub type CoreChannel = InterceptedService<CoreTransport, CallMetadata>;

/// Any error of a call's transport.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How calls reach the core.
///
/// In monolithic mode the core's services are called directly: the same
/// gRPC requests, interceptors and handlers, without HTTP/2 framing, an
/// in-memory pipe and the two connection tasks in between.
#[derive(Debug, Clone)]
pub enum CoreTransport {
    /// A tonic channel to a core process.
    Remote(Channel),
    /// The core's routes in this process.
    Local(tonic::service::Routes),
    /// Core replicas, each session's calls sent to its owner.
    Routed(router::Routed),
}

impl tower::Service<http::Request<Body>> for CoreTransport {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Self::Remote(channel) => channel.poll_ready(cx).map_err(Into::into),
            Self::Local(routes) => {
                tower::Service::<http::Request<Body>>::poll_ready(routes, cx).map_err(Into::into)
            }
            Self::Routed(routed) => routed.poll_ready(cx),
        }
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        match self {
            Self::Routed(routed) => routed.call(request),
            Self::Remote(channel) => {
                let call = channel.call(request);
                Box::pin(async move { call.await.map_err(Into::into) })
            }
            Self::Local(routes) => {
                // Over HTTP/2 the server enforces `grpc-timeout`; here the
                // caller does, for the time until the response's headers
                // (all of a unary call).
                let deadline = request
                    .headers()
                    .get("grpc-timeout")
                    .and_then(|value| parse_grpc_timeout(value.as_bytes()));
                // The core's request span, as its TCP server would open it.
                let span = meno_common::telemetry::propagation::in_process_server_span(
                    request.uri().path(),
                );
                let call = routes.call(request);
                Box::pin(
                    async move {
                        let response = match deadline {
                            None => call.await,
                            Some(deadline) => match tokio::time::timeout(deadline, call).await {
                                Ok(response) => response,
                                Err(_) => Ok(tonic::Status::deadline_exceeded(
                                    "the core did not answer within the call's deadline",
                                )
                                .into_http()),
                            },
                        };
                        response.map_err(Into::into)
                    }
                    .instrument(span),
                )
            }
        }
    }
}

/// A `grpc-timeout` header value (`<digits><unit>`, the unit one of
/// `HMSmun`), per the gRPC-over-HTTP/2 spec.
fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let amount: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(amount.checked_mul(3600)?),
        b'M' => Duration::from_secs(amount.checked_mul(60)?),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// What every call carries besides its message: the bearer token, and the
/// trace context of the span it is made in (W3C `traceparent`), so the
/// core's work joins the WebSocket action's trace.
#[derive(Debug, Clone, Default)]
pub struct CallMetadata {
    token: BearerToken,
}

impl tonic::service::Interceptor for CallMetadata {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let mut request = self.token.call(request)?;
        meno_common::telemetry::propagation::inject_current(request.metadata_mut());
        Ok(request)
    }
}

/// Names `key`'s session in the request's metadata ([`SESSION_HEADER`]),
/// for the router to send it to the session's owner.
pub fn name_session<T>(request: &mut tonic::Request<T>, key: &SessionKey) {
    if let Ok(value) = format!("{}/{}", key.tenant, key.session_id).parse() {
        request.metadata_mut().insert(SESSION_HEADER, value);
    }
}

fn endpoint(
    url: &str,
    ca_pem: Option<Vec<u8>>,
) -> Result<tonic::transport::Endpoint, tonic::transport::Error> {
    let mut endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())?;
    if let Some(ca) = ca_pem {
        endpoint = endpoint.tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(ca)),
        )?;
    }
    Ok(endpoint
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .tcp_nodelay(true))
}

/// A session, as gRPC requests name it.
pub fn session_ref(key: &SessionKey) -> SessionRef {
    SessionRef {
        tenant: key.tenant.clone(),
        session_id: key.session_id.clone(),
    }
}

/// Clients of every core service over one channel.
#[derive(Debug, Clone)]
pub struct CoreClient {
    /// Join, leave, refresh.
    pub connections: ConnectionServiceClient<CoreChannel>,
    /// Chat send and history.
    pub chat: ChatServiceClient<CoreChannel>,
    /// Presence update, heartbeat, snapshot.
    pub presence: PresenceServiceClient<CoreChannel>,
    /// Lease set, release, get.
    pub lease: LeaseServiceClient<CoreChannel>,
    /// Read positions.
    pub reads: ReadServiceClient<CoreChannel>,
    /// Per-user events and signaling.
    pub users: UserServiceClient<CoreChannel>,
    /// The tenant's backends (assistant, voice).
    pub backends: BackendServiceClient<CoreChannel>,
    /// The connection registry.
    pub registry: RegistryServiceClient<CoreChannel>,
    /// Session event streams.
    pub events: EventServiceClient<CoreChannel>,
    /// Health, for `/readyz`.
    pub health: tonic_health::pb::health_client::HealthClient<CoreTransport>,
    transport: CoreTransport,
    metadata: CallMetadata,
    timeout: Duration,
}

impl CoreClient {
    /// Clients over `channel`; unary calls time out after `timeout`.
    pub fn new(channel: Channel, timeout: Duration) -> Self {
        Self::with_token(channel, timeout, BearerToken::default())
    }

    /// Clients of a core in this process: its services are called directly.
    /// `routes` are the core's (`meno_core::server::Core::in_process_routes`, in a monolithic build).
    pub fn in_process(routes: tonic::service::Routes, timeout: Duration) -> Self {
        Self::over(
            CoreTransport::Local(routes),
            timeout,
            BearerToken::default(),
        )
    }

    /// Clients over `channel` that present `token` with every call.
    pub fn with_token(channel: Channel, timeout: Duration, token: BearerToken) -> Self {
        Self::over(CoreTransport::Remote(channel), timeout, token)
    }

    fn over(transport: CoreTransport, timeout: Duration, token: BearerToken) -> Self {
        let metadata = CallMetadata { token };
        let intercepted = InterceptedService::new(transport.clone(), metadata.clone());
        Self {
            connections: ConnectionServiceClient::new(intercepted.clone()),
            chat: ChatServiceClient::new(intercepted.clone()),
            presence: PresenceServiceClient::new(intercepted.clone()),
            lease: LeaseServiceClient::new(intercepted.clone()),
            reads: ReadServiceClient::new(intercepted.clone()),
            users: UserServiceClient::new(intercepted.clone()),
            backends: BackendServiceClient::new(intercepted.clone()),
            registry: RegistryServiceClient::new(intercepted.clone()),
            events: EventServiceClient::new(intercepted),
            health: tonic_health::pb::health_client::HealthClient::new(transport.clone()),
            transport,
            metadata,
            timeout,
        }
    }

    /// The event service of the core replica at `url` (with a router; the
    /// client's only core without one, whatever `url` says).
    pub fn events_at(&self, url: &str) -> Result<EventServiceClient<CoreChannel>, BoxError> {
        match &self.transport {
            CoreTransport::Routed(routed) => {
                let channel = routed.0.channel(url)?;
                Ok(EventServiceClient::new(InterceptedService::new(
                    CoreTransport::Remote(channel),
                    self.metadata.clone(),
                )))
            }
            _ => Ok(self.events.clone()),
        }
    }

    /// A connection to a core at `url`, established lazily and re-established
    /// by tonic when it drops.
    pub fn connect_lazy(url: &str, timeout: Duration) -> Result<Self, tonic::transport::Error> {
        Self::connect_lazy_with(url, timeout, BearerToken::default(), None)
    }

    /// Clients of the core replicas at `urls` (comma-separated seeds; one
    /// URL may be a Service in front of several), each session's calls sent
    /// to its owner ([`Router`]). With a token and, for `https://`, the CA
    /// certificate (PEM) to trust. Nothing is dialled until a call needs it.
    pub fn connect_lazy_with(
        urls: &str,
        timeout: Duration,
        token: BearerToken,
        ca_pem: Option<Vec<u8>>,
    ) -> Result<Self, tonic::transport::Error> {
        let seeds: Vec<String> = urls
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(str::to_owned)
            .collect();
        // Every seed must parse now: a typo is a start-up error.
        for seed in seeds
            .iter()
            .chain(seeds.is_empty().then_some(&urls.to_owned()))
        {
            endpoint(seed, ca_pem.clone())?;
        }
        let router = Arc::new(Router::new(seeds, ca_pem));
        Ok(Self::over(
            CoreTransport::Routed(router::Routed(router)),
            timeout,
            token,
        ))
    }

    /// The router, when this client calls core replicas over the network.
    pub fn router(&self) -> Option<&Arc<Router>> {
        match &self.transport {
            CoreTransport::Routed(routed) => Some(&routed.0),
            _ => None,
        }
    }

    /// A unary request carrying the call deadline.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
        request
    }

    /// A unary request for `key`'s session: with several core replicas it
    /// goes to the session's owner.
    pub fn session_request<T>(&self, key: &SessionKey, message: T) -> tonic::Request<T> {
        let mut request = self.request(message);
        name_session(&mut request, key);
        request
    }

    /// Whether the core answers its health check with SERVING.
    pub async fn is_serving(&self) -> bool {
        let request = self.request(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        });
        matches!(
            self.health.clone().check(request).await,
            Ok(response) if response.get_ref().status
                == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_per_the_spec() {
        assert_eq!(parse_grpc_timeout(b"10S"), Some(Duration::from_secs(10)));
        assert_eq!(
            parse_grpc_timeout(b"250m"),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_grpc_timeout(b"2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout(b"7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse_grpc_timeout(b"S"), None);
        assert_eq!(parse_grpc_timeout(b"10s"), None);
        assert_eq!(parse_grpc_timeout(b"123456789S"), None);
        assert_eq!(parse_grpc_timeout(b"-1S"), None);
        assert_eq!(parse_grpc_timeout(b""), None);
    }
}
