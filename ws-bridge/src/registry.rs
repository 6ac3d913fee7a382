//! The bridge's part in the connection registry (seeds 001, 003): each
//! socket is registered at connect, refreshed in batches while it lives, and
//! reported closed at its end. The registry serves backends (who is
//! connected, from where, since when); a failed registry call is logged and
//! never refuses or closes a socket, since the session and user channels,
//! not the registry, carry the socket's traffic.

use std::collections::HashMap;
use std::time::Duration;

use meno_proto::{
    ConnectionInfo, ConnectionStatus, DisconnectConnectionRequest, RegisterConnectionRequest,
    RegisteredConnection, TouchConnectionsRequest,
};
use tokio_util::sync::CancellationToken;

use crate::core_client::CoreClient;

/// Connections refreshed per call (the core accepts up to 10,000).
pub const TOUCH_BATCH: usize = 1_000;

/// Registers a socket that just connected.
pub async fn register(
    core: &CoreClient,
    tenant: &str,
    connection: &ConnectionInfo,
    dialect: &str,
    first_session: &str,
) {
    let now = crate::now_ms();
    let row = RegisteredConnection {
        tenant: tenant.to_owned(),
        connection_id: connection.connection_id.clone(),
        user_id: connection.participant_id.clone(),
        session_id: first_session.to_owned(),
        client: connection.client,
        dialect: dialect.to_owned(),
        bridge_id: connection.bridge_id.clone(),
        ip: connection.ip.clone(),
        user_agent: connection.user_agent.clone(),
        status: ConnectionStatus::Connected as i32,
        created_at_ms: connection.connected_at_ms,
        last_activity_ms: now,
        disconnected_at_ms: 0,
        expires_at_ms: 0,
    };
    let request = core.request(RegisterConnectionRequest {
        connection: Some(row),
    });
    if let Err(status) = core.registry.clone().register(request).await {
        tracing::warn!(error = %status, "cannot register the connection in the registry");
    }
}

/// Reports a socket closed.
pub async fn disconnect(core: &CoreClient, tenant: &str, connection_id: &str) {
    let request = core.request(DisconnectConnectionRequest {
        tenant: tenant.to_owned(),
        connection_id: connection_id.to_owned(),
    });
    if let Err(status) = core.registry.clone().disconnect(request).await {
        tracing::debug!(error = %status, "cannot mark the connection closed in the registry");
    }
}

/// Refreshes every live socket's registry row each `interval`, one call per
/// tenant; `live` lists the sockets held now, by tenant.
pub async fn touch_loop(
    core: std::sync::Arc<CoreClient>,
    interval: Duration,
    stop: CancellationToken,
    live: impl Fn() -> HashMap<String, Vec<String>>,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return,
        }
        let now = crate::now_ms();
        for (tenant, connection_ids) in live() {
            // The core takes a bounded batch per call.
            for batch in connection_ids.chunks(TOUCH_BATCH) {
                let request = core.request(TouchConnectionsRequest {
                    tenant: tenant.clone(),
                    connection_ids: batch.to_vec(),
                    last_activity_ms: now,
                });
                if let Err(status) = Box::pin(core.registry.clone().touch(request)).await {
                    tracing::warn!(error = %status, "connection registry refresh failed");
                }
            }
        }
    }
}
