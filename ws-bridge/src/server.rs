//! The bridge's HTTP face: the WebSocket upgrade on the configured path,
//! `/healthz`, `/readyz` and the demo page; and the drain on shutdown.
//!
//! A connection has `--handshake-timeout` from its accept to become a
//! WebSocket (the TLS handshake, the request headers, the upgrade itself);
//! one that has not by then is dropped, so a client that sends half a
//! request, or nothing, holds nothing for long. Until then it holds a place
//! under the per-IP and per-bridge caps ([`ConnectionSlot`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{token_from_request, AuthError};
use crate::config::BridgeConfig;
use crate::core_client::CoreClient;
use crate::dialect::{self, Admission, Dialect, PendingConnect, Refusal};
use crate::hub::Hub;
use crate::limits::{ConnectRateLimiter, ConnectionLimiter, ConnectionSlot};
use crate::socket::{self, Client, SocketContext};

const DEMO_PAGE: &str = include_str!("demo.html");
/// The TypeScript client package's browser build, which the demo page imports
/// (`clients/typescript`; `npm run build` there writes it).
const CLIENT_MODULE: &str = include_str!("../../clients/typescript/dist/client.js");

/// A connection that did not become a WebSocket in time, at `stage`.
fn handshake_timed_out(stage: &'static str) {
    crate::metrics::HANDSHAKES_REFUSED
        .with_label_values(&["timeout"])
        .inc();
    tracing::debug!(
        stage,
        "no completed upgrade within the handshake timeout; dropping the connection"
    );
}

/// A bridge ready to serve: its core client, hub and settings.
#[derive(Clone)]
pub struct Bridge {
    context: Arc<SocketContext>,
    tracker: TaskTracker,
    draining: CancellationToken,
    limiter: ConnectionLimiter,
    connect_rate: ConnectRateLimiter,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// One accepted TCP connection, as its requests see it.
#[derive(Debug)]
struct Accepted {
    peer: SocketAddr,
    /// Its place under the connection caps until it is upgraded.
    slot: ConnectionSlot,
    /// When it must have become a WebSocket.
    handshake_deadline: Instant,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("context", &self.context)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

type HttpResponse = Response<Full<Bytes>>;

/// A certificate or key that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("TLS: {0}")]
pub struct TlsError(String);

fn refused(refusal: &Refusal) -> HttpResponse {
    text(refusal.status, format!("{}\n", refusal.reason))
}

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
        // One tracker for every task the bridge spawns: connections, sockets
        // and the hub's per-session streams, so the drain waits for all.
        let tracker = TaskTracker::new();
        let hub = Hub::new(core.clone(), Arc::clone(&config), tracker.clone());
        let draining = CancellationToken::new();
        let limiter = ConnectionLimiter::new(Arc::new(config.rate_limits.clone()));
        let connect_rate = ConnectRateLimiter::new(
            config.rate_limits.connects_per_second_per_ip,
            config.rate_limits.connect_burst_per_ip,
        );
        Self {
            limiter,
            connect_rate,
            tls: None,
            context: Arc::new(SocketContext { core, hub, config }),
            tracker,
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
        self.context.hub.drain();
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
        let accepted = Arc::new(Accepted {
            peer,
            slot: self.limiter.accept(peer.ip()),
            handshake_deadline: Instant::now() + self.context.config.handshake_timeout,
        });
        let bridge = self.clone();
        let tls = self.tls.clone();
        self.tracker.spawn(async move {
            match tls {
                None => bridge.serve_http(stream, accepted).await,
                Some(acceptor) => {
                    let handshake = tokio::time::timeout_at(
                        accepted.handshake_deadline,
                        acceptor.accept(stream),
                    );
                    match handshake.await {
                        Ok(Ok(stream)) => bridge.serve_http(stream, accepted).await,
                        Ok(Err(err)) => tracing::debug!(error = %err, "TLS handshake failed"),
                        Err(_) => handshake_timed_out("TLS handshake"),
                    }
                }
            }
        });
    }

    /// Serves HTTP on one connection until it is upgraded, ends, or its
    /// handshake deadline passes (then it is dropped, whatever it was
    /// doing: reading headers, a body, or waiting on a keep-alive).
    async fn serve_http<I>(self, io: I, accepted: Arc<Accepted>)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let draining = self.draining.clone();
        let deadline = accepted.handshake_deadline;
        let header_read_timeout = self.context.config.handshake_timeout;
        let service = hyper::service::service_fn(move |request| {
            let bridge = self.clone();
            let accepted = Arc::clone(&accepted);
            async move { Ok::<_, Infallible>(bridge.handle(request, &accepted).await) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        tokio::pin!(connection);
        let served = tokio::select! {
            served = connection.as_mut() => served,
            _ = draining.cancelled() => {
                // Idle keep-alive connections close now instead of holding
                // the drain until its deadline.
                connection.as_mut().graceful_shutdown();
                match tokio::time::timeout_at(deadline, connection).await {
                    Ok(served) => served,
                    Err(_) => return handshake_timed_out("HTTP connection"),
                }
            }
            () = tokio::time::sleep_until(deadline) => return handshake_timed_out("HTTP connection"),
        };
        if let Err(err) = served {
            if err.is_timeout() {
                handshake_timed_out("request headers");
            } else {
                tracing::debug!(error = %err, "http connection ended with an error");
            }
        }
    }

    /// Serves https/wss with this certificate chain and key (PEM files).
    pub fn with_tls(
        mut self,
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> Result<Self, TlsError> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|err| TlsError(format!("{}: {err}", cert.display())))?;
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|err| TlsError(format!("{}: {err}", key.display())))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| TlsError(err.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|err| TlsError(err.to_string()))?;
        self.tls = Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)));
        Ok(self)
    }

    async fn handle(&self, request: Request<Incoming>, accepted: &Accepted) -> HttpResponse {
        let path = request.uri().path();
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "only GET is served\n");
        }
        let protocols = request
            .headers()
            .get(header::SEC_WEBSOCKET_PROTOCOL)
            .and_then(|value| value.to_str().ok());
        if let Some(dialect) = dialect::select(path, &self.context.config.ws_path, protocols) {
            return self.upgrade(dialect, request, accepted).await;
        }
        if crate::rest::is_rest_path(path) {
            return crate::rest::handle(
                &self.context,
                path,
                request.uri().query(),
                request.headers(),
            )
            .await;
        }
        match path {
            "/healthz" => text(StatusCode::OK, "ok\n"),
            "/metrics" => {
                let mut response = text(StatusCode::OK, meno_common::metrics::render());
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                response
            }
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
            "/meno-client.js" => {
                let mut response = text(StatusCode::OK, CLIENT_MODULE);
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/javascript; charset=utf-8"),
                );
                response
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    /// Validates the connect rate, the handshake, the origin, the token and
    /// the dialect's connect query, then upgrades. Every refusal is an HTTP
    /// status with a one-line reason, before any WebSocket exists; the
    /// connection caps answer after the upgrade, with an `error` envelope
    /// and 4029, as the cheapest place to say which cap it was.
    async fn upgrade(
        &self,
        dialect: &'static dyn Dialect,
        mut request: Request<Incoming>,
        accepted: &Accepted,
    ) -> HttpResponse {
        let peer = accepted.peer;
        if self.draining.is_cancelled() {
            return text(StatusCode::SERVICE_UNAVAILABLE, "draining\n");
        }
        // First, before the query is parsed or a token verified: reconnect
        // churn costs the bridge nothing more, and the core nothing at all.
        if let Err(wait) = self
            .connect_rate
            .try_connect(peer.ip(), std::time::Instant::now())
        {
            return self.too_many_connects(wait);
        }
        let pending = match dialect.connect(request.uri().query()) {
            Ok(pending) => pending,
            Err(refusal) => return refused(&refusal),
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
        if let Err(refusal) = self.check_origin(headers) {
            return *refusal;
        }
        let protocols = headers
            .get(header::SEC_WEBSOCKET_PROTOCOL)
            .and_then(|value| value.to_str().ok());
        let (token, protocol) = token_from_request(pending.token(), protocols);
        // The dialect's own subprotocol is answered only when offered: a
        // client that offered none must get none back (RFC 6455 4.1).
        let offered_dialect = dialect.subprotocol().filter(|own| {
            protocols.is_some_and(|offered| offered.split(',').any(|p| p.trim() == *own))
        });
        let protocol = offered_dialect.map(str::to_owned).or(protocol);
        let admission = match self.admit(pending, token).await {
            Ok(admission) => admission,
            Err(refusal) => return refused(&refusal),
        };
        let user_agent: String = headers
            .get(header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .chars()
            .take(256)
            .collect();
        let permit = accepted.slot.upgrade(&admission.tenant, &admission.user_id);
        let client = Box::new(Client {
            dialect,
            admission,
            permit,
            ip: self
                .context
                .config
                .trusted_proxies
                .client_ip(
                    peer.ip(),
                    headers
                        .get_all("x-forwarded-for")
                        .iter()
                        .filter_map(|value| value.to_str().ok()),
                )
                .to_string(),
            user_agent,
        });
        let context = Arc::clone(&self.context);
        let deadline = accepted.handshake_deadline;
        let upgrade = hyper::upgrade::on(&mut request);
        // Every idle socket holds its read buffer: the dialect's size
        // (`Dialect::read_buffer_bytes`). tungstenite hands every frame it writes to
        // the socket's `Wire` at once (a write buffer of 0), where it joins
        // the writer's frames in order; the write buffer has no cap of its
        // own (the default): the outbox bounds what waits for a socket.
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(dialect.read_buffer_bytes())
            .write_buffer_size(0)
            .max_message_size(Some(context.config.max_message_bytes))
            .max_frame_size(Some(context.config.max_message_bytes));
        self.tracker.spawn(async move {
            // The upgrade completes once the 101 is written; a client that
            // never lets it complete is dropped at the handshake deadline.
            let Ok(upgraded) = tokio::time::timeout_at(deadline, upgrade).await else {
                return handshake_timed_out("upgrade");
            };
            match upgraded {
                Ok(upgraded) => {
                    let ws = WebSocketStream::from_raw_socket(
                        socket::wire::Wire::new(TokioIo::new(upgraded)),
                        Role::Server,
                        Some(ws_config),
                    )
                    .await;
                    socket::run(Box::new(ws), client, context).await;
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
        if let Some(protocol) = protocol.and_then(|p| HeaderValue::from_str(&p).ok()) {
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
        }
        response
    }

    /// HTTP 429: `Retry-After` in whole seconds, rounded up.
    fn too_many_connects(&self, wait: Duration) -> HttpResponse {
        crate::metrics::HANDSHAKES_REFUSED
            .with_label_values(&["connect_rate"])
            .inc();
        let limits = &self.context.config.rate_limits;
        let retry_after = wait.as_secs_f64().ceil().max(1.0) as u64;
        let mut response = text(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many connects from this address (at most {} per second, burst {}); retry after {retry_after} s\n",
                limits.connects_per_second_per_ip, limits.connect_burst_per_ip
            ),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        response
    }

    /// Cross-site WebSocket hijacking: with an allow-list, a browser origin
    /// not on it is refused. Non-browser clients send no Origin.
    fn check_origin(&self, headers: &http::HeaderMap) -> Result<(), Box<HttpResponse>> {
        let allowed = &self.context.config.allowed_origins;
        if allowed.is_empty() {
            return Ok(());
        }
        match headers
            .get(header::ORIGIN)
            .and_then(|value| value.to_str().ok())
        {
            Some(origin)
                if !allowed
                    .iter()
                    .any(|allowed| allowed == origin.trim_end_matches('/')) =>
            {
                Err(Box::new(text(
                    StatusCode::FORBIDDEN,
                    format!("origin {origin} is not allowed\n"),
                )))
            }
            _ => Ok(()),
        }
    }

    /// Decides who connects: the dialect binds the query alone (auth none),
    /// or the verified token's identity (auth jwt).
    async fn admit(
        &self,
        pending: Box<dyn PendingConnect>,
        token: Option<String>,
    ) -> Result<Admission, Refusal> {
        let Some(auth) = &self.context.config.auth else {
            return pending.admit(None);
        };
        let token = token.ok_or_else(|| Refusal::unauthorized(AuthError::Missing.to_string()))?;
        let identity = auth
            .verify(&token)
            .await
            .map_err(|err| Refusal::unauthorized(err.to_string()))?;
        pending.admit(Some(identity))
    }
}
