//! The bridge's handle on the core: one tonic channel (TCP, or in-memory in
//! monolithic mode) and a client per service, each unary call with a deadline.

use std::time::Duration;

use meno_proto::{
    chat_service_client::ChatServiceClient, connection_service_client::ConnectionServiceClient,
    event_service_client::EventServiceClient, lease_service_client::LeaseServiceClient,
    presence_service_client::PresenceServiceClient,
};
use tonic::transport::Channel;

/// Clients of every core service over one channel.
#[derive(Debug, Clone)]
pub struct CoreClient {
    /// Join, leave, refresh.
    pub connections: ConnectionServiceClient<Channel>,
    /// Chat send and history.
    pub chat: ChatServiceClient<Channel>,
    /// Presence update, heartbeat, snapshot.
    pub presence: PresenceServiceClient<Channel>,
    /// Lease set, release, get.
    pub lease: LeaseServiceClient<Channel>,
    /// Session event streams.
    pub events: EventServiceClient<Channel>,
    /// Health, for `/readyz`.
    pub health: tonic_health::pb::health_client::HealthClient<Channel>,
    timeout: Duration,
}

impl CoreClient {
    /// Clients over `channel`; unary calls time out after `timeout`.
    pub fn new(channel: Channel, timeout: Duration) -> Self {
        Self {
            connections: ConnectionServiceClient::new(channel.clone()),
            chat: ChatServiceClient::new(channel.clone()),
            presence: PresenceServiceClient::new(channel.clone()),
            lease: LeaseServiceClient::new(channel.clone()),
            events: EventServiceClient::new(channel.clone()),
            health: tonic_health::pb::health_client::HealthClient::new(channel),
            timeout,
        }
    }

    /// A connection to a core at `url`, established lazily and re-established
    /// by tonic when it drops.
    pub fn connect_lazy(url: &str, timeout: Duration) -> Result<Self, tonic::transport::Error> {
        let channel = tonic::transport::Endpoint::from_shared(url.to_owned())?
            .connect_timeout(Duration::from_secs(5))
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(20))
            .keep_alive_while_idle(true)
            .tcp_nodelay(true)
            .connect_lazy();
        Ok(Self::new(channel, timeout))
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
