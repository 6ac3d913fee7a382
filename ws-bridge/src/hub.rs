//! The hub fans session events out to this bridge's sockets.
//!
//! Every session with local sockets streams its events on the bridge's one
//! `SubscribeMany` stream per core replica ([`upstream`]); each event
//! is encoded once per dialect present and the same bytes are queued to every
//! local socket of that dialect. The
//! task reading a stream never waits on a socket, and the hub holds no domain
//! state: only which sockets are here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use meno_common::key::SessionKey;
use meno_proto::{target, ConnectionInfo, RefreshRequest, SessionEvent};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::BridgeConfig;
use crate::core_client::{session_ref, CoreClient};
use crate::dialect::{DialectId, DIALECT_COUNT};
use crate::outbox::{Outbound, Outbox};

mod upstream;
pub mod users;
pub use users::{UserAttached, UserHub};

/// Why a socket could not be attached to its session: the core's refusal.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the core cannot stream this session: {0}")]
pub struct AttachError(pub meno_common::error::CoreError);

/// What a session's upstream stream is doing.
#[derive(Debug, Clone)]
enum Upstream {
    Connecting,
    Live,
    Failed(meno_common::error::CoreError),
}

/// A local socket as the fan-out sees it.
#[derive(Debug)]
struct LocalSocket {
    connection: Arc<ConnectionInfo>,
    dialect: DialectId,
    /// The socket's number for this session (it may be in several).
    room: u32,
    outbox: Outbox,
}

/// One session's local sockets and its upstream stream.
#[derive(Debug)]
struct Fanout {
    key: SessionKey,
    /// `tenant/session_id`, as the router names sessions.
    route_key: String,
    sockets: Mutex<HashMap<u64, LocalSocket>>,
    upstream: watch::Sender<Upstream>,
    /// Where its events come from ([`upstream`]).
    stream: Mutex<upstream::StreamState>,
    stop: CancellationToken,
}

impl Fanout {
    fn sockets(&self) -> MutexGuard<'_, HashMap<u64, LocalSocket>> {
        self.sockets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn stream(&self) -> MutexGuard<'_, upstream::StreamState> {
        self.stream
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Encodes `event` once per dialect (on first need) and queues it to
    /// every socket it is for.
    fn deliver(&self, event: &SessionEvent) {
        let mut encoded: [Option<Option<Utf8Bytes>>; DIALECT_COUNT] = Default::default();
        let mut hidden_from: [Option<Option<&str>>; DIALECT_COUNT] = Default::default();
        let target = event.target.as_ref().and_then(|target| target.to.as_ref());
        let mut delivered = 0;
        for socket in self.sockets().values() {
            let wanted = match target {
                None => true,
                Some(target::To::ConnectionId(id)) => socket.connection.connection_id == *id,
                Some(target::To::UserId(id)) => socket.connection.participant_id == *id,
            };
            let hidden = hidden_from[usize::from(socket.dialect.0)]
                .get_or_insert_with(|| socket.dialect.dialect().hidden_from(event));
            if !wanted || *hidden == Some(socket.connection.participant_id.as_str()) {
                continue;
            }
            let frame = encoded[usize::from(socket.dialect.0)].get_or_insert_with(|| {
                socket
                    .dialect
                    .dialect()
                    .encode_event(&self.key.session_id, event)
            });
            if let Some(frame) = frame {
                if socket.outbox.push(socket.room, event.seq, frame.clone()) {
                    delivered += 1;
                } else {
                    crate::metrics::QUEUE_DROPS.inc();
                }
            }
        }
        crate::metrics::EVENTS_DELIVERED.inc_by(delivered);
    }

    /// Queues `signal` (given the socket's room number) to every local
    /// socket of the session.
    fn signal(&self, signal: impl Fn(u32) -> Outbound) {
        for socket in self.sockets().values() {
            socket.outbox.signal(signal(socket.room));
        }
    }
}

/// Detaches its socket from the hub when dropped.
///
/// When the session's stream lost events that neither the core's ring nor
/// this bridge can replay, the socket's outbox gets [`Outbound::Resync`]: it
/// joins again (with its last seq) to catch up, and stays open.
#[derive(Debug)]
pub struct Attached {
    hub: Hub,
    key: SessionKey,
    socket_id: u64,
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.hub.detach(&self.key, self.socket_id);
    }
}

#[derive(Debug)]
struct HubInner {
    sessions: Mutex<HashMap<SessionKey, Arc<Fanout>>>,
    /// Shared with every session's upstream and refresh tasks, which each
    /// session holds for its lifetime: an `Arc` keeps them small.
    core: Arc<CoreClient>,
    config: Arc<BridgeConfig>,
    next_socket_id: std::sync::atomic::AtomicU64,
    draining: std::sync::atomic::AtomicBool,
    /// The bridge's drain waits for the session tasks too.
    tracker: TaskTracker,
    /// Directed events for the users of local sockets; it stops itself
    /// once the bridge drains and its last socket is gone.
    users: UserHub,
    /// The sessions' event streams.
    upstreams: Arc<upstream::Upstreams>,
}

/// This bridge's sessions and their local sockets.
#[derive(Debug, Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

impl Hub {
    /// A hub streaming from `core`; its session tasks are spawned on
    /// `tracker`, which the bridge's drain waits for.
    pub fn new(core: CoreClient, config: Arc<BridgeConfig>, tracker: TaskTracker) -> Self {
        let core = Arc::new(core);
        let users = UserHub::new(
            Arc::clone(&core),
            config.bridge_id.clone(),
            config.registry_touch_interval,
            tracker.clone(),
            CancellationToken::new(),
        );
        let upstreams =
            upstream::Upstreams::new(Arc::clone(&core), tracker.clone(), config.session_streams);
        Self {
            inner: Arc::new(HubInner {
                sessions: Mutex::default(),
                upstreams,
                core,
                config,
                next_socket_id: std::sync::atomic::AtomicU64::new(1),
                draining: std::sync::atomic::AtomicBool::new(false),
                tracker,
                users,
            }),
        }
    }

    /// The per-user channel.
    pub fn users(&self) -> &UserHub {
        &self.inner.users
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<SessionKey, Arc<Fanout>>> {
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Tells every socket to close once its in-flight call is done; sockets
    /// attached later see [`Hub::is_draining`].
    pub fn drain(&self) {
        self.inner
            .draining
            .store(true, std::sync::atomic::Ordering::Release);
        self.inner.users.begin_drain();
        let fanouts: Vec<Arc<Fanout>> = self.sessions().values().cloned().collect();
        for fanout in fanouts {
            fanout.signal(|_| Outbound::Drain);
        }
    }

    /// Whether the bridge drains: one atomic load, for every socket's loop.
    pub fn is_draining(&self) -> bool {
        self.inner
            .draining
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// How many sessions have local sockets.
    pub fn session_count(&self) -> usize {
        self.sessions().len()
    }

    /// Adds a socket to a session's fan-out and returns once the session's
    /// upstream stream is live, so every event after the socket's join
    /// snapshot reaches its outbox, marked with the socket's `room` number.
    pub async fn attach(
        &self,
        key: SessionKey,
        connection: Arc<ConnectionInfo>,
        dialect: DialectId,
        room: u32,
        outbox: Outbox,
    ) -> Result<Attached, AttachError> {
        let socket_id = self
            .inner
            .next_socket_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let fanout = {
            let mut sessions = self.sessions();
            let fanout = sessions
                .entry(key.clone())
                .or_insert_with(|| {
                    crate::metrics::ACTIVE_SESSIONS.inc();
                    self.start_fanout(key.clone())
                })
                .clone();
            fanout.sockets().insert(
                socket_id,
                LocalSocket {
                    connection,
                    dialect,
                    room,
                    outbox,
                },
            );
            fanout
        };
        let attached = Attached {
            hub: self.clone(),
            key,
            socket_id,
        };
        let mut upstream = fanout.upstream.subscribe();
        let state = upstream
            .wait_for(|state| !matches!(state, Upstream::Connecting))
            .await
            .map(|state| state.clone())
            .unwrap_or_else(|_| {
                Upstream::Failed(meno_common::error::CoreError::unavailable(
                    "the session stream stopped",
                ))
            });
        match state {
            Upstream::Live => Ok(attached),
            Upstream::Failed(reason) => Err(AttachError(reason)),
            Upstream::Connecting => Err(AttachError(meno_common::error::CoreError::unavailable(
                "the session stream stopped",
            ))),
        }
    }

    fn detach(&self, key: &SessionKey, socket_id: u64) {
        let mut sessions = self.sessions();
        let Some(fanout) = sessions.get(key) else {
            return;
        };
        let empty = {
            let mut sockets = fanout.sockets();
            sockets.remove(&socket_id);
            sockets.is_empty()
        };
        if empty {
            fanout.stop.cancel();
            self.inner.upstreams.close(fanout);
            sessions.remove(key);
            crate::metrics::ACTIVE_SESSIONS.dec();
        }
    }

    fn start_fanout(&self, key: SessionKey) -> Arc<Fanout> {
        let (upstream, _) = watch::channel(Upstream::Connecting);
        let fanout = Arc::new(Fanout {
            route_key: format!("{}/{}", key.tenant, key.session_id),
            key,
            sockets: Mutex::default(),
            upstream,
            stream: Mutex::default(),
            stop: CancellationToken::new(),
        });
        self.inner.upstreams.open(&fanout);
        self.inner.tracker.spawn(run_refresh(
            Arc::clone(&fanout),
            Arc::clone(&self.inner.core),
            self.inner.config.refresh_interval,
        ));
        fanout
    }
}

/// Refreshes the TTL of this bridge's connections to the session: one call
/// per session per interval, whatever the number of sockets.
async fn run_refresh(fanout: Arc<Fanout>, core: Arc<CoreClient>, interval: Duration) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = fanout.stop.cancelled() => return,
        }
        let connections: Vec<ConnectionInfo> = fanout
            .sockets()
            .values()
            .map(|socket| ConnectionInfo::clone(&socket.connection))
            .collect();
        if connections.is_empty() {
            continue;
        }
        let request = core.session_request(
            &fanout.key,
            RefreshRequest {
                session: Some(session_ref(&fanout.key)),
                connections,
            },
        );
        if let Err(status) = Box::pin(core.connections.clone().refresh(request)).await {
            tracing::warn!(session = %fanout.key, error = %status, "connection refresh failed");
        }
    }
}
