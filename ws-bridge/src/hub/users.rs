//! The per-user channel at the edge: events addressed to a user (WebRTC
//! signals today, backend replies later) for the sockets this bridge holds.
//!
//! One server stream per bridge (`UserService.SubscribeUsers`) carries the
//! events of every user the bridge declared interest in; the interest is the
//! set of users with a local socket of a dialect that shows user events. One
//! task owns the stream and the interest: it subscribes first, declares the
//! whole interest (`replace`) each time the stream is (re)established, and
//! then applies changes in the order sockets come and go, so a user's
//! interest is never removed after a newer socket of theirs asked for it. A
//! socket's attach waits until its user's interest is declared, so a signal
//! sent after the callee's socket is ready reaches it. Like the session
//! fan-out, the task reading the stream never waits on a socket: it queues
//! encoded frames to each socket's bounded outbox.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use meno_common::error::CoreError;
use meno_proto::{user_stream_item, SetInterestRequest, SubscribeUsersRequest, UserEvent, UserRef};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::core_client::CoreClient;
use crate::dialect::{DialectId, DIALECT_COUNT};
use crate::outbox::{Outbox, USER_CHANNEL};

/// A user of a tenant, as the channel keys it.
type UserKey = (String, String);

/// Whether a user's interest is declared: `None` while the first socket's
/// declaration is on its way, then its outcome.
type Declared = watch::Sender<Option<Result<(), CoreError>>>;

/// A user's local sockets and the state of its interest.
#[derive(Debug)]
struct UserEntry {
    sockets: Vec<UserSocket>,
    /// While the first socket's declaration is on its way: later sockets
    /// wait on it. `None` once declared (an idle user keeps no channel).
    declaring: Option<Declared>,
}

/// A local socket of a user.
#[derive(Debug)]
struct UserSocket {
    socket_id: u64,
    connection_id: String,
    dialect: DialectId,
    outbox: Outbox,
}

/// A request to the channel's task: sync the interest of these users with
/// the sockets now held, and say when it is done.
#[derive(Debug)]
struct InterestChange {
    users: Vec<UserKey>,
    done: Option<oneshot::Sender<Result<(), CoreError>>>,
}

#[derive(Debug)]
struct Inner {
    users: Mutex<HashMap<UserKey, UserEntry>>,
    changes: mpsc::UnboundedSender<InterestChange>,
    /// Taken by the first attach, which starts the task.
    pending: Mutex<Option<mpsc::UnboundedReceiver<InterestChange>>>,
    core: Arc<CoreClient>,
    bridge_id: String,
    tracker: TaskTracker,
    stop: CancellationToken,
    next_socket_id: std::sync::atomic::AtomicU64,
    registry_touch_interval: Duration,
    draining: std::sync::atomic::AtomicBool,
}

/// This bridge's users with local sockets, and their event stream.
#[derive(Debug, Clone)]
pub struct UserHub {
    inner: Arc<Inner>,
}

/// Detaches its socket from the user channel when dropped.
#[derive(Debug)]
pub struct UserAttached {
    hub: UserHub,
    key: UserKey,
    socket_id: u64,
}

impl Drop for UserAttached {
    fn drop(&mut self) {
        self.hub.detach(&self.key, self.socket_id);
    }
}

impl UserHub {
    /// A channel to `core` for the bridge `bridge_id`; its task is spawned
    /// on `tracker` at the first attach and ends when `stop` is cancelled.
    pub fn new(
        core: Arc<CoreClient>,
        bridge_id: String,
        registry_touch_interval: Duration,
        tracker: TaskTracker,
        stop: CancellationToken,
    ) -> Self {
        let (changes, pending) = mpsc::unbounded_channel();
        // The core keeps one stream per id and a newer one replaces the
        // older: two bridges given the same `--bridge-id` by mistake must not
        // take each other's stream in turn, so each process adds its own
        // instance to the id.
        let instance = uuid::Uuid::new_v4().simple().to_string();
        let bridge_id = format!("{bridge_id}#{}", &instance[..12]);
        Self {
            inner: Arc::new(Inner {
                users: Mutex::default(),
                changes,
                pending: Mutex::new(Some(pending)),
                core,
                bridge_id,
                tracker,
                stop,
                next_socket_id: std::sync::atomic::AtomicU64::new(1),
                registry_touch_interval,
                draining: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    fn users(&self) -> MutexGuard<'_, HashMap<UserKey, UserEntry>> {
        self.inner
            .users
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a socket of `user_id` (in `tenant`); returns once the user's
    /// events reach this bridge.
    pub async fn attach(
        &self,
        tenant: &str,
        user_id: &str,
        connection_id: &str,
        dialect: DialectId,
        outbox: Outbox,
    ) -> Result<UserAttached, CoreError> {
        self.start();
        let key = (tenant.to_owned(), user_id.to_owned());
        let socket_id = self
            .inner
            .next_socket_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (first, declaring) = {
            let mut users = self.users();
            let entry = users.entry(key.clone()).or_insert_with(|| UserEntry {
                sockets: Vec::with_capacity(1),
                declaring: Some(watch::channel(None).0),
            });
            entry.sockets.push(UserSocket {
                socket_id,
                connection_id: connection_id.to_owned(),
                dialect,
                outbox,
            });
            (
                entry.sockets.len() == 1,
                entry.declaring.as_ref().map(watch::Sender::subscribe),
            )
        };
        let attached = UserAttached {
            hub: self.clone(),
            key: key.clone(),
            socket_id,
        };
        if first {
            let (done, outcome) = oneshot::channel();
            let change = InterestChange {
                users: vec![key.clone()],
                done: Some(done),
            };
            let outcome = if self.inner.changes.send(change).is_err() {
                Err(CoreError::unavailable("the bridge is stopping"))
            } else {
                outcome
                    .await
                    .unwrap_or_else(|_| Err(CoreError::unavailable("the bridge is stopping")))
            };
            let declaring = self
                .users()
                .get_mut(&key)
                .and_then(|entry| entry.declaring.take());
            if let Some(declaring) = declaring {
                declaring.send_replace(Some(outcome.clone()));
            }
            outcome?;
        } else if let Some(mut declared) = declaring {
            // Another socket of the user is declaring its interest: this one
            // is ready when that is done, like the first.
            let outcome = declared
                .wait_for(Option::is_some)
                .await
                .map(|outcome| outcome.clone().unwrap_or(Ok(())))
                .unwrap_or_else(|_| Err(CoreError::unavailable("the bridge is stopping")));
            outcome?;
        }
        Ok(attached)
    }

    fn detach(&self, key: &UserKey, socket_id: u64) {
        let last = {
            let mut users = self.users();
            let Some(entry) = users.get_mut(key) else {
                return;
            };
            entry.sockets.retain(|socket| socket.socket_id != socket_id);
            let last = entry.sockets.is_empty();
            if last {
                users.remove(key);
            }
            last
        };
        if last {
            let _ = self.inner.changes.send(InterestChange {
                users: vec![key.clone()],
                done: None,
            });
        }
        self.stop_if_drained();
    }

    /// The bridge drains: the channel stops once its last socket is gone,
    /// so the sockets still closing keep getting their users' events (and
    /// the core keeps counting this bridge live for them).
    pub fn begin_drain(&self) {
        self.inner
            .draining
            .store(true, std::sync::atomic::Ordering::Release);
        self.stop_if_drained();
    }

    fn stop_if_drained(&self) {
        if self
            .inner
            .draining
            .load(std::sync::atomic::Ordering::Acquire)
            && self.users().is_empty()
        {
            self.inner.stop.cancel();
        }
    }

    fn start(&self) {
        let pending = self
            .inner
            .pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(changes) = pending {
            self.inner.tracker.spawn(run(self.clone(), changes));
            let hub = self.clone();
            self.inner.tracker.spawn(crate::registry::touch_loop(
                Arc::clone(&self.inner.core),
                self.inner.registry_touch_interval,
                self.inner.stop.clone(),
                move || hub.live_connections(),
            ));
        }
    }

    /// The connection ids of every socket held now, by tenant.
    fn live_connections(&self) -> HashMap<String, Vec<String>> {
        let mut live: HashMap<String, Vec<String>> = HashMap::new();
        for ((tenant, _), entry) in self.users().iter() {
            live.entry(tenant.clone()).or_default().extend(
                entry
                    .sockets
                    .iter()
                    .map(|socket| socket.connection_id.clone()),
            );
        }
        live
    }

    /// Queues `event` to the sockets it is for: every local socket of its
    /// user, or its one connection; encoded once per dialect.
    fn deliver(&self, event: &UserEvent) {
        let Some(user) = &event.user else {
            return;
        };
        let key = (user.tenant.clone(), user.user_id.clone());
        let mut encoded: [Option<Option<Utf8Bytes>>; DIALECT_COUNT] = Default::default();
        let users = self.users();
        let Some(entry) = users.get(&key) else {
            return;
        };
        for socket in &entry.sockets {
            if !event.connection_id.is_empty() && event.connection_id != socket.connection_id {
                continue;
            }
            let frame = encoded[usize::from(socket.dialect.0)]
                .get_or_insert_with(|| socket.dialect.dialect().encode_user_event(event));
            if let Some(frame) = frame {
                if !socket.outbox.push(USER_CHANNEL, 0, frame.clone()) {
                    crate::metrics::QUEUE_DROPS.inc();
                }
            }
        }
    }

    /// The interest of `keys` as the sockets held now say: users with a
    /// socket are added, the others removed.
    fn interest(&self, keys: &[UserKey], replace: bool) -> SetInterestRequest {
        let users = self.users();
        let user_ref = |(tenant, user_id): &UserKey| UserRef {
            tenant: tenant.clone(),
            user_id: user_id.clone(),
        };
        let (add, remove) = if replace {
            (users.keys().map(user_ref).collect(), Vec::new())
        } else {
            let (held, gone): (Vec<&UserKey>, Vec<&UserKey>) =
                keys.iter().partition(|key| users.contains_key(*key));
            (
                held.into_iter().map(user_ref).collect(),
                gone.into_iter().map(user_ref).collect(),
            )
        };
        SetInterestRequest {
            bridge_id: self.inner.bridge_id.clone(),
            add,
            remove,
            replace,
        }
    }

    async fn set_interest(&self, request: SetInterestRequest) -> Result<(), CoreError> {
        let core = &self.inner.core;
        core.users
            .clone()
            .set_interest(core.request(request))
            .await
            .map(drop)
            .map_err(|status| CoreError::from_status(&status))
    }
}

/// The channel's task: keeps the stream subscribed, the interest declared,
/// and delivers what arrives.
async fn run(hub: UserHub, mut changes: mpsc::UnboundedReceiver<InterestChange>) {
    let stop = hub.inner.stop.clone();
    let mut backoff = Duration::from_millis(100);
    let max_backoff = Duration::from_secs(5);
    let mut users = hub.inner.core.users.clone();
    while !stop.is_cancelled() {
        // A stream has no deadline: not `core.request`, which sets one.
        let request = SubscribeUsersRequest {
            bridge_id: hub.inner.bridge_id.clone(),
        };
        let subscribed = tokio::select! {
            subscribed = Box::pin(users.subscribe_users(request)) => subscribed,
            () = stop.cancelled() => return,
        };
        let mut stream = match subscribed {
            Ok(response) => response.into_inner(),
            Err(status) => {
                tracing::warn!(error = %status, "cannot subscribe to user events");
                fail_waiting(&mut changes, &CoreError::from_status(&status));
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stop.cancelled() => return,
                }
                backoff = (backoff * 2).min(max_backoff);
                continue;
            }
        };
        let mut live = false;
        loop {
            tokio::select! {
                item = stream.message() => match item.map(|item| item.and_then(|item| item.item)) {
                    Ok(Some(user_stream_item::Item::Subscribed(_))) => {
                        let replace = hub.interest(&[], true);
                        match hub.set_interest(replace).await {
                            Ok(()) => {
                                live = true;
                                backoff = Duration::from_millis(100);
                            }
                            Err(err) => {
                                tracing::warn!(error = %err, "cannot declare user interest");
                                break;
                            }
                        }
                    }
                    Ok(Some(user_stream_item::Item::Event(event))) => hub.deliver(&event),
                    Ok(None) => break,
                    Err(status) => {
                        tracing::warn!(error = %status, "user event stream broke");
                        break;
                    }
                },
                change = changes.recv(), if live => {
                    let Some(change) = change else { return };
                    let mut batch = vec![change];
                    while let Ok(more) = changes.try_recv() {
                        batch.push(more);
                    }
                    let keys: Vec<UserKey> =
                        batch.iter().flat_map(|change| change.users.iter().cloned()).collect();
                    let result = hub.set_interest(hub.interest(&keys, false)).await;
                    let failed = result.is_err();
                    for change in batch {
                        if let Some(done) = change.done {
                            let _ = done.send(result.clone());
                        }
                    }
                    if failed {
                        break;
                    }
                }
                () = stop.cancelled() => return,
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(max_backoff);
    }
}

/// Sockets waiting for their interest while the stream is down give up
/// (their connect is refused as unavailable) instead of waiting on it.
fn fail_waiting(changes: &mut mpsc::UnboundedReceiver<InterestChange>, err: &CoreError) {
    while let Ok(change) = changes.try_recv() {
        if let Some(done) = change.done {
            let _ = done.send(Err(err.clone()));
        }
    }
}
