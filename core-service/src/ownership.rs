//! Several core replicas (issue 17): which replica owns which session.
//!
//! - **Membership.** Each replica holds a liveness lease in the store (a row
//!   per `--replica-id`, LWT only), renewed every `ttl / 3` at most once a
//!   second. The live set is the replicas whose lease has not expired and that
//!   the configured peers name (`--peers`, or the A records of `--peers-dns`,
//!   re-resolved with every refresh), minus those draining.
//! - **Ownership.** A session is owned by the replica that rendezvous hashing
//!   over the live set picks. The owner records `(owner_id, replica_epoch,
//!   owner_epoch)` with an LWT; the record holds while that replica's lease
//!   has the same epoch and has not expired, and until it is released. A new
//!   owner takes over only after that, bumping `owner_epoch`.
//! - **Fencing.** Every seq-block reservation of an owner is conditional on
//!   its `owner_epoch` (see `SessionWrite::fence`), and an owner checks its
//!   own lease before every batch it writes: a replica that was paused or
//!   cut off past its lease writes nothing more (its lease lapsed locally
//!   first: it counts `ttl` minus a margin from before the renewal was sent).
//! - **Handoff.** A draining replica marks itself leaving (nobody routes new
//!   sessions to it), its actors flush and release their sessions, and it
//!   expires its lease; a replica that stops being a session's rendezvous
//!   pick (a replica joined) releases it the same way.
//!
//! Clocks: a lease's expiry is written in the owner's wall clock and judged in
//! the taker's; replicas' clocks must agree within the margin (`ttl / 5`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use meno_common::sync::lock;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::error::CoreError;
use crate::store::{OwnershipStore, ReplicaLease, SessionKey, SessionOwner};

/// How far below an owner's seq mark a takeover voids unstored chat seqs.
/// The batch an owner may still have in flight holds seqs from its first
/// unreserved one up: within one seq block (1,024 seqs) plus the batch's
/// own events of the mark. 200,000 covers any batch a replica can form (at
/// most `--max-batch` commands, each a few events, plus the expiry of every
/// connection a process can hold).
pub const VOID_SPAN: u64 = 200_000;

/// Longest time between two membership refreshes.
const REFRESH_MAX: Duration = Duration::from_secs(1);

/// Where the other replicas are listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peers {
    /// The replicas' gRPC URLs.
    Static(Vec<String>),
    /// A DNS name whose A/AAAA records are the replicas (a headless Service),
    /// each reached at `http://<ip>:<port>`.
    Dns {
        /// The name.
        host: String,
        /// The gRPC port.
        port: u16,
    },
}

/// This replica and its peers.
#[derive(Debug, Clone)]
pub struct OwnershipConfig {
    /// This replica's stable id (`--replica-id`).
    pub replica_id: String,
    /// How bridges and other replicas reach this replica (`--advertise-url`).
    pub advertise_url: String,
    /// The replicas.
    pub peers: Peers,
    /// How long a lease lasts without renewal (`--ownership-ttl`).
    pub ttl: Duration,
}

/// A live replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its id.
    pub id: String,
    /// Its URL.
    pub url: String,
}

/// A session this replica owns, as its actor holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owned {
    /// The replica lease epoch it was taken under.
    pub replica_epoch: u64,
    /// The ownership row's epoch: the fence of its seq-block reservations.
    pub owner_epoch: u64,
    /// The highest seq any owner reserved under the row.
    pub seq_mark: u64,
    /// An earlier owner (or an earlier actor of this replica) gave the
    /// session up without releasing it, so a write of it may still be in
    /// flight: the loader voids the seqs it did not store
    /// ([`Ownership::void_unstored`]).
    pub in_doubt: bool,
}

#[derive(Debug)]
struct Lease {
    epoch: u64,
    /// Local deadline: the lease is ours until then, on the monotonic clock.
    valid_until: Instant,
    leaving: bool,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn OwnershipStore>,
    clock: Arc<dyn Clock>,
    config: OwnershipConfig,
    lease: Mutex<Lease>,
    /// Live replicas, this one included unless leaving; bumped on change.
    members: watch::Sender<Vec<Member>>,
    stop: CancellationToken,
}

/// Ownership of sessions by this replica. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Ownership {
    inner: Arc<Inner>,
}

impl Ownership {
    /// Registers this replica (a new lease epoch: whatever an earlier run
    /// under the same id owned is free from now on), reads the members, and
    /// keeps both fresh until [`Ownership::expire`].
    pub async fn start(
        store: Arc<dyn OwnershipStore>,
        clock: Arc<dyn Clock>,
        config: OwnershipConfig,
    ) -> Result<Self, CoreError> {
        let ttl_ms = millis(config.ttl);
        let sent = Instant::now();
        let epoch = store
            .register_replica(
                &config.replica_id,
                &config.advertise_url,
                clock.now_ms() + ttl_ms,
            )
            .await?;
        tracing::info!(replica = %config.replica_id, epoch, url = %config.advertise_url, "replica registered");
        let ownership = Self {
            inner: Arc::new(Inner {
                store,
                clock,
                lease: Mutex::new(Lease {
                    epoch,
                    valid_until: sent + local_validity(config.ttl),
                    leaving: false,
                }),
                members: watch::Sender::new(Vec::new()),
                stop: CancellationToken::new(),
                config,
            }),
        };
        ownership.refresh_members().await;
        tokio::spawn(ownership.clone().keep_alive());
        Ok(ownership)
    }

    /// This replica's id.
    pub fn replica_id(&self) -> &str {
        &self.inner.config.replica_id
    }

    /// Whether an actor holding `owned` may still write: the lease it was
    /// taken under is this replica's current one and has not lapsed.
    pub fn holds(&self, owned: &Owned) -> bool {
        let lease = lock(&self.inner.lease);
        lease.epoch == owned.replica_epoch && Instant::now() < lease.valid_until
    }

    /// The live replicas, as of the last refresh.
    pub fn members(&self) -> watch::Receiver<Vec<Member>> {
        self.inner.members.subscribe()
    }

    /// The replica rendezvous hashing picks for `key` among the live ones.
    pub fn preferred(&self, key: &SessionKey) -> Option<Member> {
        pick(&self.inner.members.borrow(), key).cloned()
    }

    /// Whether this replica is the rendezvous pick for `key`.
    pub fn prefers_self(&self, key: &SessionKey) -> bool {
        self.preferred(key)
            .is_none_or(|member| member.id == self.inner.config.replica_id)
    }

    /// Takes (or confirms) ownership of `key`, or says who owns it: a
    /// `NotOwner`-style `Unavailable` carrying the owner's URL.
    pub async fn acquire(&self, key: &SessionKey) -> Result<Owned, CoreError> {
        let me = &self.inner.config;
        for _ in 0..3 {
            let (epoch, leaving) = {
                let lease = lock(&self.inner.lease);
                if Instant::now() >= lease.valid_until {
                    return Err(CoreError::unavailable(
                        "this replica's ownership lease lapsed; it is registering again",
                    ));
                }
                (lease.epoch, lease.leaving)
            };
            let row = self.inner.store.session_owner(key).await?;
            if let Some(row) = &row {
                let mine = row.owner_id == me.replica_id && row.replica_epoch == epoch;
                if mine && !row.released {
                    // An earlier actor of this replica stopped without
                    // releasing (a failed write): its write may land late.
                    return Ok(Owned {
                        replica_epoch: epoch,
                        owner_epoch: row.owner_epoch,
                        seq_mark: row.seq_mark,
                        in_doubt: true,
                    });
                }
                if !row.released && row.owner_id != me.replica_id && self.alive(row).await? {
                    return Err(redirect(key, &row.owner_id, &row.owner_url));
                }
            }
            if leaving {
                return Err(self.elsewhere(key));
            }
            if let Some(pick) = self.preferred(key).filter(|pick| pick.id != me.replica_id) {
                return Err(redirect(key, &pick.id, &pick.url));
            }
            let taken = SessionOwner {
                owner_id: me.replica_id.clone(),
                replica_epoch: epoch,
                owner_url: me.advertise_url.clone(),
                owner_epoch: row.as_ref().map_or(1, |row| row.owner_epoch + 1),
                released: false,
                seq_mark: row.as_ref().map_or(0, |row| row.seq_mark),
            };
            let expected = row.as_ref().map(|row| row.owner_epoch);
            if self.inner.store.take_session(key, expected, &taken).await? {
                tracing::debug!(session = %key, owner_epoch = taken.owner_epoch, "session taken");
                crate::metrics::SESSIONS_TAKEN.inc();
                let in_doubt = row.as_ref().is_some_and(|row| !row.released);
                let mut seq_mark = taken.seq_mark;
                if in_doubt {
                    // The old owner may have reserved a block between the
                    // read above and the take (its fence checks only the
                    // epoch, which the take just moved): read the mark
                    // again, now that no later reservation of its applies.
                    if let Some(now) = self.inner.store.session_owner(key).await? {
                        seq_mark = seq_mark.max(now.seq_mark);
                    }
                }
                return Ok(Owned {
                    replica_epoch: epoch,
                    owner_epoch: taken.owner_epoch,
                    seq_mark,
                    in_doubt,
                });
            }
        }
        Err(CoreError::unavailable(format!(
            "ownership of {key} is contended; retry"
        )))
    }

    /// Voids the chat seqs in `(stored_up_to, seq_mark]` (see
    /// [`OwnershipStore::void_chat`]), no further back than [`VOID_SPAN`]
    /// below the mark: an owner's unfinished batch starts within that span
    /// of the mark it reserved.
    ///
    /// The void is dated one TTL ahead: a late write carries a time at
    /// which its owner still saw its lease valid, so before that lease's
    /// expiry on the owner's clock; the owner may have registered again
    /// (a new epoch) right after, and clocks may differ, so "now" alone is
    /// not enough. Nothing is ever written to these seqs again (new seqs go
    /// above the mark), so a void dated ahead hides nothing else.
    pub async fn void_unstored(
        &self,
        key: &SessionKey,
        stored_up_to: u64,
        seq_mark: u64,
    ) -> Result<(), CoreError> {
        let after = stored_up_to.max(seq_mark.saturating_sub(VOID_SPAN));
        let ttl_us = i64::try_from(self.inner.config.ttl.as_micros()).unwrap_or(i64::MAX);
        let at_us = wall_clock_us().saturating_add(ttl_us);
        self.inner
            .store
            .void_chat(key, after, seq_mark, at_us)
            .await?;
        Ok(())
    }

    /// Gives `key` up (after its actor flushed): the next owner takes it at
    /// once. Failures only delay the takeover until the lease expires.
    pub async fn release(&self, key: &SessionKey, owned: &Owned) {
        match self
            .inner
            .store
            .release_session(key, owned.owner_epoch)
            .await
        {
            Ok(true) => tracing::debug!(session = %key, "session released"),
            Ok(false) => tracing::debug!(session = %key, "session already taken over"),
            Err(err) => {
                tracing::warn!(session = %key, error = %err, "release failed; the next owner waits for the lease to expire");
            }
        }
    }

    /// The answer for a session this replica will not own: where to go.
    pub fn elsewhere(&self, key: &SessionKey) -> CoreError {
        let me = &self.inner.config.replica_id;
        let others: Vec<Member> = self
            .inner
            .members
            .borrow()
            .iter()
            .filter(|member| &member.id != me)
            .cloned()
            .collect();
        match pick(&others, key) {
            Some(other) => redirect(key, &other.id, &other.url),
            None => CoreError::unavailable("no other core replica is live; retry"),
        }
    }

    /// Starts draining: the lease says `leaving`, so no replica routes new
    /// sessions here; what this replica owns stays valid until released.
    pub async fn leave(&self) {
        lock(&self.inner.lease).leaving = true;
        self.renew().await;
        self.refresh_members().await;
    }

    /// Ends the lease now (after every actor released its session) and stops
    /// renewing it.
    pub async fn expire(&self) {
        self.inner.stop.cancel();
        let epoch = lock(&self.inner.lease).epoch;
        let now = self.inner.clock.now_ms();
        let ended = self
            .inner
            .store
            .renew_replica(&self.inner.config.replica_id, epoch, now, true, now)
            .await;
        if let Err(err) = ended {
            tracing::warn!(error = %err, "ending the replica lease failed; it expires by itself");
        }
    }

    /// Whether the replica that `row` names still holds it.
    async fn alive(&self, row: &SessionOwner) -> Result<bool, CoreError> {
        let leases = self.inner.store.replicas().await?;
        let now = self.inner.clock.now_ms();
        Ok(leases.iter().any(|lease| {
            lease.replica_id == row.owner_id
                && lease.epoch == row.replica_epoch
                && lease.expires_at_ms > now
        }))
    }

    async fn keep_alive(self) {
        let interval = (self.inner.config.ttl / 3).min(REFRESH_MAX);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.inner.stop.cancelled() => return,
            }
            self.renew().await;
            self.refresh_members().await;
        }
    }

    /// Renews the lease; one that lapsed (this process was paused, or the
    /// store unreachable, for longer than the margin allows) is registered
    /// again under a new epoch, which voids every ownership taken under the
    /// old one: their actors stop at their next batch.
    async fn renew(&self) {
        let config = &self.inner.config;
        let (epoch, leaving, lapsed) = {
            let lease = lock(&self.inner.lease);
            (
                lease.epoch,
                lease.leaving,
                Instant::now() >= lease.valid_until,
            )
        };
        let sent = Instant::now();
        let now = self.inner.clock.now_ms();
        let expires = now + millis(config.ttl);
        let renewed = if lapsed {
            Ok(false)
        } else {
            self.inner
                .store
                .renew_replica(&config.replica_id, epoch, expires, leaving, now)
                .await
        };
        match renewed {
            Ok(true) => {
                lock(&self.inner.lease).valid_until = sent + local_validity(config.ttl);
            }
            Ok(false) => {
                tracing::warn!(replica = %config.replica_id, epoch, "ownership lease lapsed: every session owned under it is given up");
                crate::metrics::OWNERSHIP_LAPSES.inc();
                match self
                    .inner
                    .store
                    .register_replica(&config.replica_id, &config.advertise_url, expires)
                    .await
                {
                    Ok(epoch) => {
                        let leaving = {
                            let mut lease = lock(&self.inner.lease);
                            lease.epoch = epoch;
                            lease.valid_until = sent + local_validity(config.ttl);
                            lease.leaving
                        };
                        if leaving {
                            // Keep saying so under the new epoch.
                            Box::pin(self.renew()).await;
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "registering the replica again failed")
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "renewing the ownership lease failed"),
        }
    }

    /// Reads the leases and the peers, and publishes the live set.
    async fn refresh_members(&self) {
        let config = &self.inner.config;
        let leases = match self.inner.store.replicas().await {
            Ok(leases) => leases,
            Err(err) => {
                tracing::warn!(error = %err, "reading the replica leases failed");
                return;
            }
        };
        let named = match &config.peers {
            Peers::Static(urls) => Some(urls.clone()),
            Peers::Dns { host, port } => {
                match tokio::net::lookup_host((host.as_str(), *port)).await {
                    Ok(addrs) => Some(addrs.map(|addr| format!("http://{addr}")).collect()),
                    Err(err) => {
                        tracing::warn!(%host, error = %err, "resolving the peers failed; keeping every live lease");
                        None
                    }
                }
            }
        };
        let now = self.inner.clock.now_ms();
        let (epoch, leaving) = {
            let lease = lock(&self.inner.lease);
            (lease.epoch, lease.leaving)
        };
        let mut members = live_members(&leases, named.as_deref(), now);
        members.retain(|member| member.id != config.replica_id);
        if !leaving {
            members.push(Member {
                id: config.replica_id.clone(),
                url: config.advertise_url.clone(),
            });
        }
        members.sort_by(|a, b| a.id.cmp(&b.id));
        self.inner.members.send_if_modified(|current| {
            if *current == members {
                return false;
            }
            tracing::info!(replica = %config.replica_id, epoch, members = ?members.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), "core replicas changed");
            *current = members;
            true
        });
    }
}

/// The unexpired, not-leaving leases, among those `named` lists (by URL).
fn live_members(leases: &[ReplicaLease], named: Option<&[String]>, now_ms: i64) -> Vec<Member> {
    let mut by_id: HashMap<&str, &ReplicaLease> = HashMap::new();
    for lease in leases {
        by_id.insert(&lease.replica_id, lease);
    }
    by_id
        .into_values()
        .filter(|lease| lease.expires_at_ms > now_ms && !lease.leaving)
        .filter(|lease| named.is_none_or(|urls| urls.iter().any(|url| url == &lease.url)))
        .map(|lease| Member {
            id: lease.replica_id.clone(),
            url: lease.url.clone(),
        })
        .collect()
}

/// Rendezvous (highest random weight) hashing: the member with the highest
/// hash of (member id, session) wins; when a member leaves, only its
/// sessions move, and when one joins, only those it now wins.
fn pick<'m>(members: &'m [Member], key: &SessionKey) -> Option<&'m Member> {
    members
        .iter()
        .max_by_key(|member| (weight(&member.id, key), member.id.as_str()))
}

fn weight(member_id: &str, key: &SessionKey) -> u64 {
    let mut hasher = Sha256::new();
    for part in [member_id, &key.tenant, &key.session_id] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

fn redirect(key: &SessionKey, owner_id: &str, owner_url: &str) -> CoreError {
    let mut err = CoreError::unavailable(format!(
        "{key} is owned by core replica {owner_id} at {owner_url}"
    ));
    err.owner_url = Some(owner_url.to_owned());
    err
}

/// How long a lease is ours after its renewal was sent: the TTL less a
/// margin for the clocks of the replicas that judge it.
fn local_validity(ttl: Duration) -> Duration {
    ttl - ttl / 5
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Now, in microseconds since the Unix epoch: the unit of CQL write
/// timestamps. Not the replica's `Clock` (a test may drive that one): write
/// timestamps order writes of different processes.
pub fn wall_clock_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(ids: &[&str]) -> Vec<Member> {
        ids.iter()
            .map(|id| Member {
                id: (*id).to_owned(),
                url: format!("http://{id}"),
            })
            .collect()
    }

    fn keys(n: usize) -> Vec<SessionKey> {
        (0..n)
            .map(|i| SessionKey::new("default", format!("s{i}")))
            .collect()
    }

    #[test]
    fn rendezvous_spreads_sessions_and_moves_only_the_leavers() {
        let three = members(&["core-0", "core-1", "core-2"]);
        let two = members(&["core-0", "core-2"]);
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for key in keys(3000) {
            let before = pick(&three, &key).unwrap();
            *counts.entry(before.id.as_str()).or_default() += 1;
            let after = pick(&two, &key).unwrap();
            if before.id != "core-1" {
                assert_eq!(before, after, "{key} moved though its owner stayed");
            }
        }
        for id in ["core-0", "core-1", "core-2"] {
            let n = counts[id];
            assert!((800..1200).contains(&n), "{id} got {n} of 3000");
        }
        assert_eq!(pick(&[], &SessionKey::new("t", "s")), None);
    }

    #[test]
    fn live_members_are_unexpired_not_leaving_and_named() {
        let lease = |id: &str, expires_at_ms, leaving| ReplicaLease {
            replica_id: id.to_owned(),
            epoch: 1,
            url: format!("http://{id}"),
            expires_at_ms,
            leaving,
        };
        let leases = [
            lease("a", 2_000, false),
            lease("b", 500, false),
            lease("c", 2_000, true),
            lease("d", 2_000, false),
        ];
        let mut all = live_members(&leases, None, 1_000);
        all.sort_by(|x, y| x.id.cmp(&y.id));
        assert_eq!(all, members(&["a", "d"]));
        let named = ["http://d".to_owned()];
        assert_eq!(live_members(&leases, Some(&named), 1_000), members(&["d"]));
    }
}
