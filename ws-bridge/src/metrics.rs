//! The bridge's Prometheus metrics, served at `/metrics` with everything else
//! in the process registry (in monolithic mode, the core's too).

use std::sync::LazyLock;

use meno_common::metrics::registered;

use prometheus::{
    register_histogram_vec, register_int_counter, register_int_counter_vec, register_int_gauge,
    register_int_gauge_vec, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
};

/// Open WebSocket connections, by client kind.
pub static CONNECTIONS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    registered(register_int_gauge_vec!(
        "meno_bridge_connections",
        "Open WebSocket connections, by client kind",
        &["client"]
    ))
});

/// Event streams open to core replicas.
pub static CORE_STREAMS: LazyLock<IntGauge> = LazyLock::new(|| {
    registered(register_int_gauge!(
        "meno_bridge_core_streams",
        "Event streams open to core replicas: one per replica, or one per session with a core that does not serve SubscribeMany"
    ))
});

/// Sessions with local sockets.
pub static ACTIVE_SESSIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    registered(register_int_gauge!(
        "meno_bridge_active_sessions",
        "Sessions with sockets on this bridge"
    ))
});

/// Frames queued to sockets by the fan-out.
pub static EVENTS_DELIVERED: LazyLock<IntCounter> = LazyLock::new(|| {
    registered(register_int_counter!(
        "meno_bridge_events_delivered_total",
        "Event frames queued to local sockets"
    ))
});

/// Frames not queued because a socket's queue was full.
pub static QUEUE_DROPS: LazyLock<IntCounter> = LazyLock::new(|| {
    registered(register_int_counter!(
        "meno_bridge_queue_drops_total",
        "Frames not queued because the socket's outbound queue overflowed"
    ))
});

/// Sockets closed with 4008.
pub static SLOW_CONSUMER_CLOSES: LazyLock<IntCounter> = LazyLock::new(|| {
    registered(register_int_counter!(
        "meno_bridge_slow_consumer_closes_total",
        "Sockets closed as slow consumers (4008)"
    ))
});

/// Latency of the core calls made for client actions, by action.
pub static CORE_CALL_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    registered(register_histogram_vec!(
        "meno_bridge_core_call_seconds",
        "Latency of gRPC calls to the core for client actions, by action",
        &["action"],
        vec![0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0]
    ))
});

/// `error` envelopes sent, by code.
pub static ERRORS_SENT: LazyLock<IntCounterVec> = LazyLock::new(|| {
    registered(register_int_counter_vec!(
        "meno_bridge_errors_sent_total",
        "Error envelopes sent to clients, by code",
        &["code"]
    ))
});

/// Connections that got no WebSocket, by why: `timeout` (no completed
/// upgrade within `--handshake-timeout`), `connect_rate` (HTTP 429).
pub static HANDSHAKES_REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    registered(register_int_counter_vec!(
        "meno_bridge_handshakes_refused_total",
        "Connections given no WebSocket: handshake timeout or connect rate, by reason",
        &["reason"]
    ))
});
