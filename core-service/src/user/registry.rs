//! Finds or starts the actor of a user and tells it things; holds the
//! bridges' user-event streams.
//!
//! The map below holds only channels to actors, never user state. Every send
//! to an actor happens with the map locked (an unbounded send never waits),
//! and an idle actor retires only with the map locked and its inbox empty:
//! so no message can slip into a retiring actor's inbox, and the messages
//! one sender sends a user arrive in order even across a retirement.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use meno_proto::{DirectMessage, SignalRequest, SignalResponse, UserStreamItem};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::bridges::{BridgeStreams, UserStream};
use super::{actor, UserCommand, UserKey};
use crate::clock::Clock;
use crate::config::SessionConfig;
use crate::error::CoreError;

/// Boxed commands: an actor's channel allocates slots in blocks of 32, and
/// every connected user has one.
type ActorMap = HashMap<UserKey, (u64, mpsc::UnboundedSender<Box<UserCommand>>)>;

/// The users of this core: routes each message to its user's actor, and
/// each user's events to the bridges interested in them.
#[derive(Debug, Clone)]
pub struct UserRegistry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    clock: Arc<dyn Clock>,
    config: Arc<SessionConfig>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    actors: Mutex<ActorMap>,
    next_actor_id: AtomicU64,
    bridges: BridgeStreams,
}

impl UserRegistry {
    /// A registry whose actors read time from `clock` and stop when
    /// `shutdown` is cancelled.
    pub fn new(
        clock: Arc<dyn Clock>,
        config: Arc<SessionConfig>,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                clock,
                config,
                shutdown,
                tracker,
                actors: Mutex::default(),
                next_actor_id: AtomicU64::default(),
                bridges: BridgeStreams::default(),
            }),
        }
    }

    fn actors(&self) -> MutexGuard<'_, ActorMap> {
        // A poisoned map only means a panic elsewhere while it was held; the
        // map itself (channels) is still consistent.
        self.inner
            .actors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Hands `command` to the user's actor, starting one if needed. Never
    /// waits. While the core drains, a command with a reply is answered
    /// `Unavailable` and the others are dropped.
    pub(crate) fn tell(&self, key: &UserKey, command: UserCommand) {
        if self.inner.shutdown.is_cancelled() {
            return command.fail(CoreError::unavailable("the core is shutting down"));
        }
        let command = Box::new(command);
        let mut actors = self.actors();
        let command = match actors.get(key) {
            Some((_, sender)) => match sender.send(command) {
                Ok(()) => return,
                // The actor stopped without retiring (a panic): replace it.
                Err(mpsc::error::SendError(back)) => back,
            },
            None => command,
        };
        let actor_id = self.inner.next_actor_id.fetch_add(1, Ordering::Relaxed);
        let sender = actor::spawn(key.clone(), actor_id, self.clone());
        if sender.send(command).is_err() {
            tracing::error!(user = %key, "a new user actor refused its first command");
        }
        if actors.insert(key.clone(), (actor_id, sender)).is_none() {
            crate::metrics::ACTIVE_USERS.inc();
        }
    }

    /// Tells a user a session actor registered or removed its connection.
    pub(crate) fn membership(
        &self,
        key: &UserKey,
        session_id: &str,
        connection_id: &str,
        connected: bool,
    ) {
        self.tell(
            key,
            UserCommand::Membership {
                session_id: session_id.to_owned(),
                connection_id: connection_id.to_owned(),
                connected,
            },
        );
    }

    /// Removes actor `actor_id` of `key` if its inbox is empty; the actor
    /// stops when this says true.
    pub(super) fn retire(
        &self,
        key: &UserKey,
        actor_id: u64,
        inbox: &mpsc::UnboundedReceiver<Box<UserCommand>>,
    ) -> bool {
        let mut actors = self.actors();
        if !inbox.is_empty() {
            return false;
        }
        self.remove(&mut actors, key, actor_id);
        true
    }

    /// Removes actor `actor_id` of `key` from the map (it is stopping).
    pub(super) fn forget(&self, key: &UserKey, actor_id: u64) {
        let mut actors = self.actors();
        self.remove(&mut actors, key, actor_id);
    }

    fn remove(&self, actors: &mut ActorMap, key: &UserKey, actor_id: u64) {
        if actors.get(key).is_some_and(|(id, _)| *id == actor_id) {
            actors.remove(key);
            crate::metrics::ACTIVE_USERS.dec();
        }
    }

    /// Relays a validated signal (see the module doc of `user`).
    pub(crate) async fn signal(&self, request: SignalRequest) -> Result<SignalResponse, CoreError> {
        let from = request.from.clone().unwrap_or_default();
        let key = UserKey::new(from.tenant, from.user_id);
        let (reply, answer) = oneshot::channel();
        self.tell(
            &key,
            UserCommand::Send {
                request: Box::new(request),
                reply,
            },
        );
        answer
            .await
            .unwrap_or_else(|_| Err(CoreError::unavailable("the user actor stopped")))
    }

    /// Hands a backend's message for the user (for one of its connections,
    /// or all with an empty `connection_id`) to the user's actor, which
    /// relays it to the bridges interested in the user. Never waits.
    pub(crate) fn direct(
        &self,
        key: &UserKey,
        connection_id: &str,
        trace_id: &str,
        message: DirectMessage,
    ) {
        crate::metrics::DIRECT_MESSAGES.inc();
        self.tell(
            key,
            UserCommand::Direct {
                connection_id: connection_id.to_owned(),
                trace_id: trace_id.to_owned(),
                message: Box::new(message),
            },
        );
    }

    /// Whether the bridge registered as `bridge_id` (its `--bridge-id`) has
    /// a live user-event stream: its `SubscribeUsers` id is `bridge_id`
    /// itself or `<bridge_id>#<instance>`.
    pub fn bridge_is_live(&self, bridge_id: &str) -> bool {
        self.inner.bridges.is_live(bridge_id)
    }

    pub(crate) fn tracker_handle(&self) -> &TaskTracker {
        &self.inner.tracker
    }

    pub(crate) fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// Opens `bridge_id`'s user-event stream, replacing its previous one.
    pub(crate) fn subscribe(&self, bridge_id: &str) -> UserStream {
        let opened = self.inner.bridges.open(
            bridge_id,
            self.inner.config.user_stream_buffer,
            &mut |user, interested| self.tell(user, interest(bridge_id, interested)),
        );
        let registry = self.clone();
        let bridge_id = bridge_id.to_owned();
        let generation = opened.generation;
        UserStream::new(opened, self.inner.shutdown.clone(), move || {
            registry
                .inner
                .bridges
                .close(&bridge_id, generation, &mut |user, interested| {
                    registry.tell(user, interest(&bridge_id, interested))
                });
        })
    }

    /// Changes the users whose events `bridge_id`'s stream gets.
    pub(crate) fn set_interest(
        &self,
        bridge_id: &str,
        add: Vec<UserKey>,
        remove: Vec<UserKey>,
        replace: bool,
    ) -> Result<(), CoreError> {
        self.inner
            .bridges
            .set_interest(bridge_id, add, remove, replace, &mut |user, interested| {
                self.tell(user, interest(bridge_id, interested))
            })
    }

    /// Hands a user's event to one interested bridge, without waiting.
    pub(super) fn deliver(&self, bridge_id: &str, item: UserStreamItem) -> bool {
        self.inner
            .bridges
            .deliver(bridge_id, item, &mut |user, interested| {
                self.tell(user, interest(bridge_id, interested))
            })
    }

    pub(super) fn clock(&self) -> &dyn Clock {
        self.inner.clock.as_ref()
    }

    pub(super) fn config(&self) -> &SessionConfig {
        &self.inner.config
    }

    pub(super) fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    pub(super) fn tracker(&self) -> &TaskTracker {
        &self.inner.tracker
    }

    /// How many user actors are running.
    pub fn active_users(&self) -> usize {
        self.actors().len()
    }

    /// How many bridges hold a live user-event stream.
    pub fn bridge_streams(&self) -> usize {
        self.inner.bridges.len()
    }
}

fn interest(bridge_id: &str, interested: bool) -> UserCommand {
    UserCommand::Interest {
        bridge_id: bridge_id.to_owned(),
        interested,
    }
}
