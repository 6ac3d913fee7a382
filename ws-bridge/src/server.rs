//! The bridge's HTTP face: the WebSocket upgrade on the configured path,
//! `/healthz`, `/readyz` and the demo page; and the drain on shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::BridgeConfig;
use crate::connect::parse_connect_query;
use crate::core_client::CoreClient;
use crate::hub::Hub;
use crate::socket::{self, Client, SocketContext};

const DEMO_PAGE: &str = include_str!("demo.html");

/// A bridge ready to serve: its core client, hub and settings.
#[derive(Debug, Clone)]
pub struct Bridge {
    context: SocketContext,
    tracker: TaskTracker,
    draining: CancellationToken,
}

type HttpResponse = Response<Full<Bytes>>;

fn text(status: StatusCode, body: impl Into<Bytes>) -> HttpResponse {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

impl Bridge {
    /// A bridge talking to `core`.
    pub fn new(core: CoreClient, config: BridgeConfig) -> Self {
        let config = Arc::new(config);
        let hub = Hub::new(core.clone(), Arc::clone(&config));
        let draining = CancellationToken::new();
        Self {
            context: SocketContext {
                core,
                hub,
                config,
                drain: draining.clone(),
            },
            tracker: TaskTracker::new(),
            draining,
        }
    }

    /// Serves HTTP on `listener` until `stop` is cancelled, then drains:
    /// stops accepting, closes every socket with 1001 once its in-flight
    /// call has finished, and waits for them at most `drain_timeout`.
    pub async fn serve(
        &self,
        listener: TcpListener,
        stop: CancellationToken,
        drain_timeout: Duration,
    ) {
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => self.spawn_connection(stream, peer),
                    Err(err) => {
                        // Out of file descriptors and the like: back off
                        // instead of spinning.
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                _ = stop.cancelled() => break,
            }
        }
        drop(listener);
        self.draining.cancel();
        self.tracker.close();
        if tokio::time::timeout(drain_timeout, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("drain deadline passed with sockets still open");
        }
    }

    fn spawn_connection(&self, stream: tokio::net::TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        // TCP keepalive finds peers that vanished without a FIN even when the
        // WebSocket pings cannot be written.
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(30))
            .with_interval(Duration::from_secs(10))
            .with_retries(3);
        if let Err(err) = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive) {
            tracing::debug!(error = %err, "cannot enable TCP keepalive");
        }
        let bridge = self.clone();
        let draining = self.draining.clone();
        self.tracker.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let bridge = bridge.clone();
                async move { Ok::<_, Infallible>(bridge.handle(request, peer).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(connection);
            let served = tokio::select! {
                served = connection.as_mut() => served,
                _ = draining.cancelled() => {
                    // Idle keep-alive connections close now instead of
                    // holding the drain until its deadline.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = served {
                tracing::debug!(error = %err, "http connection ended with an error");
            }
        });
    }

    async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> HttpResponse {
        let path = request.uri().path();
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "only GET is served\n");
        }
        if path == self.context.config.ws_path {
            return self.upgrade(request, peer);
        }
        match path {
            "/healthz" => text(StatusCode::OK, "ok\n"),
            "/readyz" => {
                if self.draining.is_cancelled() {
                    text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
                } else if self.context.core.is_serving().await {
                    text(StatusCode::OK, "ready\n")
                } else {
                    text(StatusCode::SERVICE_UNAVAILABLE, "core not serving\n")
                }
            }
            "/" | "/index.html" => {
                let mut response = text(StatusCode::OK, DEMO_PAGE);
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
                response
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    /// Validates the seed-000 query and the handshake, then upgrades.
    fn upgrade(&self, mut request: Request<Incoming>, peer: SocketAddr) -> HttpResponse {
        if self.draining.is_cancelled() {
            return text(StatusCode::SERVICE_UNAVAILABLE, "draining\n");
        }
        let params = match parse_connect_query(request.uri().query()) {
            Ok(params) => params,
            Err(err) => return text(StatusCode::BAD_REQUEST, format!("{err}\n")),
        };
        let headers = request.headers();
        let is_upgrade = headers
            .get(header::UPGRADE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.eq_ignore_ascii_case("websocket"));
        let version_ok = headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|value| value == "13");
        let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
            return text(
                StatusCode::BAD_REQUEST,
                "not a WebSocket handshake: missing Sec-WebSocket-Key\n",
            );
        };
        if !is_upgrade || !version_ok {
            return text(
                StatusCode::BAD_REQUEST,
                "not a WebSocket handshake: expected Upgrade: websocket and Sec-WebSocket-Version: 13\n",
            );
        }
        let accept = derive_accept_key(key.as_bytes());
        let user_agent: String = headers
            .get(header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .chars()
            .take(256)
            .collect();
        let client = Client {
            params,
            ip: peer.ip().to_string(),
            user_agent,
        };
        let context = self.context.clone();
        let upgrade = hyper::upgrade::on(&mut request);
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(16 * 1024)
            .max_write_buffer_size(context.config.outbound_queue_bytes.max(64 * 1024))
            .max_message_size(Some(context.config.max_message_bytes))
            .max_frame_size(Some(context.config.max_message_bytes));
        self.tracker.spawn(async move {
            match upgrade.await {
                Ok(upgraded) => {
                    let ws = WebSocketStream::from_raw_socket(
                        TokioIo::new(upgraded),
                        Role::Server,
                        Some(ws_config),
                    )
                    .await;
                    socket::run(ws, client, context).await;
                }
                Err(err) => tracing::debug!(error = %err, "upgrade failed"),
            }
        });
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Ok(accept) = HeaderValue::from_str(&accept) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        response
    }
}
