//! The core's Prometheus metrics, and the tiny HTTP server that exposes them
//! (`--metrics-listen`). Everything registers in the process-wide default
//! registry, so a monolithic bridge's `/metrics` shows the core's too.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::LazyLock;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use prometheus::{
    register_histogram, register_histogram_vec, register_int_counter, register_int_counter_vec,
    register_int_gauge, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge,
};
use tokio_util::sync::CancellationToken;

fn registered<T>(metric: prometheus::Result<T>) -> T {
    // Registration fails only for a duplicate name, a bug caught by any test.
    metric.unwrap_or_else(|err| panic!("metric registration: {err}"))
}

/// Session actors running.
pub static ACTIVE_SESSIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    registered(register_int_gauge!(
        "meno_core_active_sessions",
        "Session actors running on this core"
    ))
});

/// Events published, by kind (chat, presence, lease).
pub static EVENTS_PUBLISHED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    registered(register_int_counter_vec!(
        "meno_core_events_published_total",
        "Session events published to subscribers, by kind",
        &["kind"]
    ))
});

/// Latency of store writes (one per actor batch).
pub static STORE_WRITE_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    registered(register_histogram!(
        "meno_core_store_write_seconds",
        "Latency of one batched store write",
        vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]
    ))
});

/// Store calls that failed.
pub static STORE_ERRORS: LazyLock<IntCounter> = LazyLock::new(|| {
    registered(register_int_counter!(
        "meno_core_store_errors_total",
        "Store calls that failed"
    ))
});

/// Latency of commands, from the gRPC handler to the actor's answer.
pub static COMMAND_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    registered(register_histogram_vec!(
        "meno_core_command_seconds",
        "Latency of session commands (gRPC handler to answer), by command",
        &["command"],
        vec![0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0]
    ))
});

/// Leases granted to a new holder.
pub static LEASE_GRANTS: LazyLock<IntCounter> = LazyLock::new(|| {
    registered(register_int_counter!(
        "meno_core_lease_grants_total",
        "Leases granted to a new holder"
    ))
});

/// Leases that ran out.
pub static LEASE_EXPIRIES: LazyLock<IntCounter> = LazyLock::new(|| {
    registered(register_int_counter!(
        "meno_core_lease_expiries_total",
        "Leases that expired"
    ))
});

/// Connections or reconnect grace periods that ran out.
pub static PRESENCE_EXPIRIES: LazyLock<IntCounter> = LazyLock::new(|| {
    registered(register_int_counter!(
        "meno_core_presence_expiries_total",
        "Connections whose TTL ran out and participants whose reconnect grace ran out"
    ))
});

/// The text exposition of every registered metric.
pub fn render() -> String {
    let families = prometheus::gather();
    prometheus::TextEncoder::new()
        .encode_to_string(&families)
        .unwrap_or_else(|err| format!("# metrics encoding failed: {err}\n"))
}

/// Serves `GET /metrics` on `addr` until `stop` is cancelled.
pub async fn serve(addr: SocketAddr, stop: CancellationToken) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = stop.cancelled() => return Ok(()),
        };
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                |request: hyper::Request<hyper::body::Incoming>| async move {
                    let response = if request.uri().path() == "/metrics" {
                        hyper::Response::builder()
                            .header("content-type", "text/plain; version=0.0.4")
                            .body(Full::new(Bytes::from(render())))
                    } else {
                        hyper::Response::builder()
                            .status(404)
                            .body(Full::new(Bytes::from_static(b"not found\n")))
                    };
                    Ok::<_, Infallible>(response.unwrap_or_default())
                },
            );
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
