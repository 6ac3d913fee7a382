//! Prometheus exposition shared by both binaries: every metric registers in
//! the process-wide default registry, so a monolithic bridge's `/metrics`
//! shows the core's too.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

/// A metric's registration, unwrapped: it fails only for a duplicate name,
/// a bug any test catches.
pub fn registered<T>(metric: prometheus::Result<T>) -> T {
    metric.unwrap_or_else(|err| panic!("metric registration: {err}"))
}

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
