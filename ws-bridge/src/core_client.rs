//! The bridge's handle on the core: one tonic channel (TCP, or in-memory in
//! monolithic mode) and a client per service, each unary call with a deadline.

use std::time::Duration;

use meno_core::grpc_auth::BearerToken;
use meno_proto::{
    chat_service_client::ChatServiceClient, connection_service_client::ConnectionServiceClient,
    event_service_client::EventServiceClient, lease_service_client::LeaseServiceClient,
    presence_service_client::PresenceServiceClient,
};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// The channel every client uses: the transport plus [`CallMetadata`].
pub type CoreChannel = InterceptedService<Channel, CallMetadata>;

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
        meno_core::telemetry::propagation::inject_current(request.metadata_mut());
        Ok(request)
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
    /// Session event streams.
    pub events: EventServiceClient<CoreChannel>,
    /// Health, for `/readyz`.
    pub health: tonic_health::pb::health_client::HealthClient<Channel>,
    timeout: Duration,
}

impl CoreClient {
    /// Clients over `channel`; unary calls time out after `timeout`.
    pub fn new(channel: Channel, timeout: Duration) -> Self {
        Self::with_token(channel, timeout, BearerToken::default())
    }

    /// Clients over `channel` that present `token` with every call.
    pub fn with_token(channel: Channel, timeout: Duration, token: BearerToken) -> Self {
        let intercepted = InterceptedService::new(channel.clone(), CallMetadata { token });
        Self {
            connections: ConnectionServiceClient::new(intercepted.clone()),
            chat: ChatServiceClient::new(intercepted.clone()),
            presence: PresenceServiceClient::new(intercepted.clone()),
            lease: LeaseServiceClient::new(intercepted.clone()),
            events: EventServiceClient::new(intercepted),
            health: tonic_health::pb::health_client::HealthClient::new(channel),
            timeout,
        }
    }

    /// A connection to a core at `url`, established lazily and re-established
    /// by tonic when it drops.
    pub fn connect_lazy(url: &str, timeout: Duration) -> Result<Self, tonic::transport::Error> {
        Ok(Self::new(
            Self::endpoint(url, None)?.connect_lazy(),
            timeout,
        ))
    }

    /// Like [`CoreClient::connect_lazy`], with a token and, for `https://`,
    /// the CA certificate (PEM) to trust.
    pub fn connect_lazy_with(
        url: &str,
        timeout: Duration,
        token: BearerToken,
        ca_pem: Option<Vec<u8>>,
    ) -> Result<Self, tonic::transport::Error> {
        let channel = Self::endpoint(url, ca_pem)?.connect_lazy();
        Ok(Self::with_token(channel, timeout, token))
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
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(20))
            .keep_alive_while_idle(true)
            .tcp_nodelay(true))
    }

    /// A unary request carrying the call deadline.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
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
