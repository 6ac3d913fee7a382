//! Calls to several core replicas: each session's calls go to the replica
//! that owns it.
//!
//! A call names its session in the `meno-session` metadata
//! ([`SESSION_HEADER`]). The router sends it to the replica last seen owning
//! that session, or else to a seed (`--core`, a list: the Kubernetes Service,
//! or every replica). A replica that does not own the session answers
//! `UNAVAILABLE` with the owner's URL (`meno-owner-url`); the router then
//! remembers the owner and sends the same request there, at most
//! [`MAX_REDIRECTS`] times. A replica that cannot be reached, or does not
//! answer within the call's deadline, is skipped for [`DOWN_FOR`], and its
//! sessions are forgotten (the next call goes to a seed, which knows or
//! takes over the owner). Every change of a session's owner bumps
//! [`Router::moves`], so the hub re-subscribes a session whose stream is on a
//! replica that no longer owns it (a replica frozen mid-stream says nothing).
//!
//! Why redirect and not forward between replicas: a forwarded session would
//! cross two gRPC hops per event; BENCHMARKS.md measures one hop (split
//! against monolithic mode) at about a third of the fan-out's CPU.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use meno_common::sync::lock;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use meno_common::error::OWNER_URL_HEADER;
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::body::Body;
use tonic::transport::Channel;

use super::{parse_grpc_timeout, BoxError};

/// gRPC metadata naming the session a call is for (`tenant/session_id`).
pub const SESSION_HEADER: &str = "meno-session";

/// Redirects followed for one call.
pub(crate) const MAX_REDIRECTS: usize = 3;

/// How long an unreachable or unresponsive replica is skipped.
const DOWN_FOR: Duration = Duration::from_secs(2);

/// How long a call without a deadline (a stream) may take to be answered
/// (its headers): a frozen replica must not hold a subscription forever.
pub(crate) const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// Owners remembered at most (a bridge's active sessions fit many times).
const MAX_ROUTES: usize = 200_000;

/// Where calls go.
#[derive(Debug)]
pub struct Router {
    seeds: Vec<String>,
    next_seed: AtomicUsize,
    ca_pem: Option<Vec<u8>>,
    state: Mutex<State>,
    moves: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct State {
    channels: HashMap<String, Channel>,
    owners: HashMap<String, Arc<str>>,
    down: HashMap<String, Instant>,
}

impl Router {
    /// A router over `seeds` (at least one), trusting `ca_pem` for
    /// `https://` replicas; it dials a replica only when a call needs it.
    pub fn new(seeds: Vec<String>, ca_pem: Option<Vec<u8>>) -> Self {
        Self {
            seeds,
            next_seed: AtomicUsize::new(0),
            ca_pem,
            state: Mutex::default(),
            moves: watch::Sender::new(0),
        }
    }

    /// Bumped whenever a session's owner changes or is forgotten.
    pub fn moves(&self) -> watch::Receiver<u64> {
        self.moves.subscribe()
    }

    /// The replica last seen owning `session` (`tenant/session_id`).
    pub fn owner_of(&self, session: &str) -> Option<Arc<str>> {
        lock(&self.state).owners.get(session).cloned()
    }

    /// A channel to `url`, made once.
    pub(crate) fn channel(&self, url: &str) -> Result<Channel, BoxError> {
        let mut state = lock(&self.state);
        if let Some(channel) = state.channels.get(url) {
            return Ok(channel.clone());
        }
        let channel = super::endpoint(url, self.ca_pem.clone())?.connect_lazy();
        state.channels.insert(url.to_owned(), channel.clone());
        Ok(channel)
    }

    /// Where a call for `session` goes first.
    pub(crate) fn target(&self, session: Option<&str>) -> Arc<str> {
        if let Some(owner) = session.and_then(|session| self.owner_of(session)) {
            return owner;
        }
        self.seed()
    }

    /// The current seed, or the next one not known to be down (any, if all
    /// are). Sticky: calls that name no session (users, backends, the
    /// registry) keep going to one replica until it fails.
    fn seed(&self) -> Arc<str> {
        let now = Instant::now();
        let state = lock(&self.state);
        let start = self.next_seed.load(Ordering::Relaxed);
        let n = self.seeds.len();
        (0..n)
            .map(|i| &self.seeds[(start + i) % n])
            .find(|url| {
                state
                    .down
                    .get(url.as_str())
                    .is_none_or(|until| *until <= now)
            })
            .unwrap_or(&self.seeds[start % n])
            .as_str()
            .into()
    }

    /// `owner` owns `session` now.
    pub(crate) fn learn(&self, session: &str, owner: &str) {
        let mut state = lock(&self.state);
        if state
            .owners
            .get(session)
            .is_some_and(|known| &**known == owner)
        {
            return;
        }
        if state.owners.len() >= MAX_ROUTES {
            state.owners.clear();
        }
        state.owners.insert(session.to_owned(), owner.into());
        drop(state);
        self.moves.send_modify(|n| *n += 1);
    }

    /// `url` failed: skip it for a while and forget what it owned.
    pub(crate) fn failed(&self, url: &str) {
        let current = self.next_seed.load(Ordering::Relaxed);
        if self.seeds[current % self.seeds.len()] == url {
            let _ = self.next_seed.compare_exchange(
                current,
                current + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        let mut state = lock(&self.state);
        state.down.insert(url.to_owned(), Instant::now() + DOWN_FOR);
        let before = state.owners.len();
        state.owners.retain(|_, owner| &**owner != url);
        let forgot = state.owners.len() != before;
        drop(state);
        if forgot {
            self.moves.send_modify(|n| *n += 1);
        }
    }

    /// Sends `request` to the session's owner, following redirects.
    pub(super) async fn call(
        self: Arc<Self>,
        request: http::Request<Body>,
    ) -> Result<http::Response<Body>, BoxError> {
        let session = request
            .headers()
            .get(SESSION_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let deadline = request
            .headers()
            .get("grpc-timeout")
            .and_then(|value| parse_grpc_timeout(value.as_bytes()))
            .unwrap_or(OPEN_TIMEOUT);
        let (parts, body) = request.into_parts();
        let body: Bytes = body.collect().await?.to_bytes();
        let mut url = self.target(session.as_deref());
        let mut retried_elsewhere = false;
        for _ in 0..=MAX_REDIRECTS {
            let mut channel = self.channel(&url)?;
            let attempt = rebuild(&parts, body.clone());
            let sent = async {
                tower::ServiceExt::ready(&mut channel).await?;
                tower::Service::call(&mut channel, attempt).await
            };
            let answered = match tokio::time::timeout(deadline, sent).await {
                Ok(answered) => answered.map_err(BoxError::from),
                Err(_) => {
                    // A frozen replica: its sessions are someone else's
                    // soon; the caller's retry goes elsewhere.
                    self.failed(&url);
                    return Ok(tonic::Status::deadline_exceeded(format!(
                        "core replica {url} did not answer within the call's deadline"
                    ))
                    .into_http());
                }
            };
            let response = match answered {
                Ok(response) => response,
                Err(err) => {
                    self.failed(&url);
                    if retried_elsewhere || self.seeds.len() + usize::from(session.is_some()) < 2 {
                        return Err(err);
                    }
                    retried_elsewhere = true;
                    url = self.seed();
                    continue;
                }
            };
            let owner = response
                .headers()
                .get(OWNER_URL_HEADER)
                .and_then(|value| value.to_str().ok())
                .filter(|owner| **owner != *url)
                .map(str::to_owned);
            match owner {
                Some(owner) => {
                    if let Some(session) = &session {
                        self.learn(session, &owner);
                    }
                    url = owner.into();
                }
                None => {
                    if let Some(session) = &session {
                        if !is_error(&response) {
                            self.learn(session, &url);
                        }
                    }
                    return Ok(response);
                }
            }
        }
        Ok(
            tonic::Status::unavailable("core replicas redirected this call too many times; retry")
                .into_http(),
        )
    }
}

/// Whether a response is a gRPC error (trailers-only, status in headers).
fn is_error(response: &http::Response<Body>) -> bool {
    response
        .headers()
        .get("grpc-status")
        .is_some_and(|status| status.as_bytes() != b"0")
}

fn rebuild(parts: &http::request::Parts, body: Bytes) -> http::Request<Body> {
    let mut request = http::Request::new(Body::new(http_body_util::Full::new(body)));
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    request
}

/// The transport's service face: `poll_ready` is always ready, each call
/// picks its channel.
#[derive(Debug, Clone)]
pub struct Routed(pub Arc<Router>);

impl tower::Service<http::Request<Body>> for Routed {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        Box::pin(Arc::clone(&self.0).call(request))
    }
}
