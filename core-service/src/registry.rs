//! Finds or starts the actor of a session and hands it commands.
//!
//! The map below holds only channels to actors, never session state: each
//! actor owns its session's state alone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use meno_common::sync::lock;

use crate::clock::Clock;
use crate::config::SessionConfig;
use crate::error::CoreError;
use crate::ownership::Ownership;
use crate::session::{spawn_actor, Command, Envelope, Reply};
use crate::store::{SessionKey, Store};
use crate::user::{UserKey, UserRegistry};

/// Each session's actor: its id, its command channel, and its handoff switch.
type ActorMap = HashMap<SessionKey, (u64, mpsc::Sender<Envelope>, CancellationToken)>;

/// What every actor shares: store, clock, policy, shutdown, and the map.
#[derive(Debug, Clone)]
pub(crate) struct ActorContext {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: Arc<SessionConfig>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tracker: TaskTracker,
    /// Where sessions tell users which connections came and went.
    pub(crate) users: UserRegistry,
    /// With several core replicas: who owns which session.
    pub(crate) ownership: Option<Ownership>,
    actors: Arc<Mutex<ActorMap>>,
    next_actor_id: Arc<AtomicU64>,
}

impl ActorContext {
    /// Removes actor `actor_id` of `key` from the map, if it is still there.
    pub(crate) fn forget(&self, key: &SessionKey, actor_id: u64) {
        let mut actors = lock(&self.actors);
        if actors.get(key).is_some_and(|(id, _, _)| *id == actor_id) {
            actors.remove(key);
            crate::metrics::ACTIVE_SESSIONS.dec();
        }
    }

    fn sender_for(&self, key: &SessionKey) -> Result<mpsc::Sender<Envelope>, CoreError> {
        let mut actors = lock(&self.actors);
        if let Some((_, sender, _)) = actors.get(key) {
            if !sender.is_closed() {
                return Ok(sender.clone());
            }
        }
        let limit = self.config.max_sessions_per_tenant;
        let active = actors
            .keys()
            .filter(|other| other.tenant == key.tenant)
            .count();
        if active >= limit {
            let mut err = CoreError::new(
                crate::error::ErrorCode::RateLimited,
                format!(
                    "tenant {:?} has {limit} active sessions, the most allowed",
                    key.tenant
                ),
            );
            err.retry_after = Some(std::time::Duration::from_secs(30));
            return Err(err);
        }
        let actor_id = self.next_actor_id.fetch_add(1, Ordering::Relaxed);
        let handoff = CancellationToken::new();
        let sender = spawn_actor(key.clone(), actor_id, self.clone(), handoff.clone());
        if actors
            .insert(key.clone(), (actor_id, sender.clone(), handoff))
            .is_none()
        {
            crate::metrics::ACTIVE_SESSIONS.inc();
        }
        Ok(sender)
    }

    /// Tells the users' actors about connections of session `key` that came
    /// or went (never waits).
    pub(crate) fn tell_users<'a>(
        &self,
        key: &SessionKey,
        changes: impl IntoIterator<Item = (&'a str, &'a str, bool)>,
    ) {
        for (user_id, connection_id, connected) in changes {
            let user = UserKey::new(key.tenant.clone(), user_id);
            self.users
                .membership(&user, &key.session_id, connection_id, connected);
        }
    }

    /// Delivers a command to the session's current actor, starting one if
    /// needed. A command that cannot be delivered is answered `Unavailable`.
    pub(crate) async fn forward(&self, key: SessionKey, mut envelope: Envelope) {
        for _ in 0..3 {
            if self.shutdown.is_cancelled() {
                if let Some(ownership) = &self.ownership {
                    return (*envelope.command).fail(ownership.elsewhere(&key));
                }
                break;
            }
            let sender = match self.sender_for(&key) {
                Ok(sender) => sender,
                Err(err) => return (*envelope.command).fail(err),
            };
            match sender.send(envelope).await {
                Ok(()) => return,
                Err(mpsc::error::SendError(back)) => envelope = back,
            }
        }
        (*envelope.command).fail(CoreError::unavailable("the core is shutting down"));
    }
}

/// Whenever the live replicas change, hands off every session whose
/// rendezvous pick is now another replica.
async fn rebalance(context: ActorContext, ownership: Ownership) {
    let mut members = ownership.members();
    loop {
        tokio::select! {
            changed = members.changed() => if changed.is_err() { return },
            _ = context.shutdown.cancelled() => return,
        }
        let moving: Vec<CancellationToken> = lock(&context.actors)
            .iter()
            .filter(|(key, _)| !ownership.prefers_self(key))
            .map(|(_, (_, _, handoff))| handoff.clone())
            .collect();
        if !moving.is_empty() {
            tracing::info!(
                sessions = moving.len(),
                "replicas changed: handing sessions off"
            );
        }
        for handoff in moving {
            handoff.cancel();
        }
    }
}

/// The sessions of this core: routes each command to its session's actor.
#[derive(Debug, Clone)]
pub struct SessionRegistry {
    context: ActorContext,
}

impl SessionRegistry {
    /// A registry whose actors use `store` and `clock`, tell `users` about
    /// the connections that come and go, and stop when `shutdown` is
    /// cancelled (after finishing queued commands).
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        config: Arc<SessionConfig>,
        users: UserRegistry,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Self {
        Self {
            context: ActorContext {
                store,
                clock,
                config,
                shutdown,
                tracker,
                users,
                ownership: None,
                actors: Arc::default(),
                next_actor_id: Arc::default(),
            },
        }
    }

    /// Shares sessions with other core replicas through `ownership`: each
    /// actor first takes its session (or answers with its owner's URL), and
    /// sessions this replica stops being the rendezvous pick for (a replica
    /// joined) are handed off.
    pub fn with_ownership(mut self, ownership: Ownership) -> Self {
        self.context
            .tracker
            .spawn(rebalance(self.context.clone(), ownership.clone()));
        self.context.ownership = Some(ownership);
        self
    }

    /// The ownership of sessions among replicas, when several share them.
    pub fn ownership(&self) -> Option<&Ownership> {
        self.context.ownership.as_ref()
    }

    /// Sends a command built around a reply channel and awaits the answer.
    pub(crate) async fn call<T>(
        &self,
        key: SessionKey,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, CoreError> {
        if self.context.shutdown.is_cancelled() {
            if let Some(ownership) = &self.context.ownership {
                return Err(ownership.elsewhere(&key));
            }
            return Err(CoreError::unavailable("the core is shutting down"));
        }
        let (reply, answer) = oneshot::channel();
        let command = make(reply);
        let timer = crate::metrics::COMMAND_SECONDS
            .with_label_values(&[command.name()])
            .start_timer();
        let envelope = Envelope {
            command: Box::new(command),
            span: tracing::Span::current(),
        };
        self.context.forward(key, envelope).await;
        let answer = answer
            .await
            .unwrap_or_else(|_| Err(CoreError::unavailable("the session actor stopped")));
        timer.observe_duration();
        answer
    }

    /// The store behind the sessions (for reads that need no actor).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.context.store
    }

    /// The clock every actor reads.
    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.context.clock
    }

    /// The session policy.
    pub fn config(&self) -> &SessionConfig {
        &self.context.config
    }

    /// The users of this core.
    pub fn users(&self) -> &UserRegistry {
        &self.context.users
    }

    /// How many session actors are running.
    pub fn active_sessions(&self) -> usize {
        lock(&self.context.actors).len()
    }
}
