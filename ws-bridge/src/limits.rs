//! Limits that keep one client from hurting the others: a token bucket per
//! connection for messages, caps on connections per participant, per IP and
//! per bridge, and a token bucket per IP for connects. Refusals become
//! `RateLimited` error envelopes; repeated violations close the socket
//! (4029).
//!
//! The per-IP and per-bridge caps count a TCP connection from its accept
//! on, not from its upgrade: a client that opens connections and never
//! finishes their handshakes holds places under the caps like one whose
//! sockets are open, instead of bypassing them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod connect_rate;

pub use connect_rate::ConnectRateLimiter;

/// Limit settings, with the defaults a user would expect.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitsConfig {
    /// Sustained client messages per second per connection.
    pub messages_per_second: f64,
    /// Messages a connection may send in a burst above the rate.
    pub message_burst: u32,
    /// Rate-limited messages in a row before the socket is closed with 4029.
    pub max_rate_violations: u32,
    /// Invalid envelopes in a row before the socket is closed with 1008.
    pub max_protocol_violations: u32,
    /// Open connections per participant (per tenant).
    pub max_connections_per_participant: usize,
    /// Open connections per client IP.
    pub max_connections_per_ip: usize,
    /// Open connections on this bridge.
    pub max_connections: usize,
    /// Sustained WebSocket upgrades per second per client IP; 0: no limit.
    pub connects_per_second_per_ip: f64,
    /// Upgrades one IP may make in a burst above that rate.
    pub connect_burst_per_ip: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            messages_per_second: 20.0,
            message_burst: 40,
            max_rate_violations: 20,
            max_protocol_violations: 20,
            max_connections_per_participant: 10,
            max_connections_per_ip: 1000,
            max_connections: 18_000,
            connects_per_second_per_ip: 20.0,
            connect_burst_per_ip: 100,
        }
    }
}

/// A token bucket: `rate` tokens per second, at most `burst` saved up.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: f64, burst: u32) -> Self {
        Self::new_at(rate, burst, Instant::now())
    }

    /// A bucket full at `now`.
    pub fn new_at(rate: f64, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            tokens: burst,
            rate: rate.max(f64::MIN_POSITIVE),
            burst,
            refilled_at: now,
        }
    }

    /// Takes one token, or says how long until one is there.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.refilled_at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }

    /// Whether the bucket has refilled to its burst by `now`: taking from a
    /// fresh bucket then would be the same.
    pub fn is_full_at(&self, now: Instant) -> bool {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens + elapsed * self.rate >= self.burst
    }
}

/// Which connection cap refused a connect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionLimitError {
    /// Too many connections of one participant.
    #[error("too many connections for this participant (at most {0})")]
    Participant(usize),
    /// Too many connections from one IP.
    #[error("too many connections from this address (at most {0})")]
    Ip(usize),
    /// The bridge is full.
    #[error("this server is full (at most {0} connections); try another or retry later")]
    Bridge(usize),
}

#[derive(Debug, Default)]
struct Counts {
    per_participant: HashMap<(String, String), usize>,
    per_ip: HashMap<IpAddr, usize>,
    total: usize,
}

/// Counts open connections; hands out permits that give their slot back on drop.
#[derive(Debug, Clone)]
pub struct ConnectionLimiter {
    config: Arc<LimitsConfig>,
    counts: Arc<Mutex<Counts>>,
}

/// One WebSocket's place under the connection caps, given back on drop.
#[derive(Debug)]
pub struct ConnectionPermit {
    limiter: ConnectionLimiter,
    participant: (String, String),
    ip: IpAddr,
}

/// A TCP connection's place under the per-IP and per-bridge caps, from its
/// accept until it ends (on drop) or is upgraded: then the socket's
/// [`ConnectionPermit`] takes the place over, so it is never counted twice.
#[derive(Debug)]
pub struct ConnectionSlot {
    limiter: ConnectionLimiter,
    ip: IpAddr,
    /// Whether the place is still this slot's: cleared when it passes to a
    /// permit or is given back, under the counts' lock.
    held: AtomicBool,
}

fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(count) = map.get_mut(key) {
        *count -= 1;
        if *count == 0 {
            map.remove(key);
        }
    }
}

impl Counts {
    fn release_connection(&mut self, ip: &IpAddr) {
        self.total = self.total.saturating_sub(1);
        decrement(&mut self.per_ip, ip);
    }
}

impl ConnectionLimiter {
    /// A limiter enforcing `config`.
    pub fn new(config: Arc<LimitsConfig>) -> Self {
        Self {
            config,
            counts: Arc::default(),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts a TCP connection from `ip` as soon as it is accepted. Never
    /// refused: a connection over a cap is still served plain HTTP (health,
    /// metrics), only its upgrade is refused.
    pub fn accept(&self, ip: IpAddr) -> ConnectionSlot {
        let mut counts = self.counts();
        counts.total += 1;
        *counts.per_ip.entry(ip).or_default() += 1;
        ConnectionSlot {
            limiter: self.clone(),
            ip,
            held: AtomicBool::new(true),
        }
    }

    /// Admits a socket of `participant_id` (in `tenant`) from `ip` that had
    /// no [`ConnectionSlot`].
    pub fn admit(
        &self,
        tenant: &str,
        participant_id: &str,
        ip: IpAddr,
    ) -> Result<ConnectionPermit, ConnectionLimitError> {
        let mut counts = self.counts();
        self.admit_locked(&mut counts, tenant, participant_id, ip, false)
    }

    /// The caps' decision; `counted`: the connection's own place is in
    /// `counts` already (its slot), so only the others are weighed against
    /// the caps. A refused connection's place is given back.
    fn admit_locked(
        &self,
        counts: &mut Counts,
        tenant: &str,
        participant_id: &str,
        ip: IpAddr,
        counted: bool,
    ) -> Result<ConnectionPermit, ConnectionLimitError> {
        let config = &self.config;
        let own = usize::from(counted);
        let participant = (tenant.to_owned(), participant_id.to_owned());
        let refusal = if counts.total.saturating_sub(own) >= config.max_connections {
            Some(ConnectionLimitError::Bridge(config.max_connections))
        } else if counts
            .per_ip
            .get(&ip)
            .copied()
            .unwrap_or(0)
            .saturating_sub(own)
            >= config.max_connections_per_ip
        {
            Some(ConnectionLimitError::Ip(config.max_connections_per_ip))
        } else if counts
            .per_participant
            .get(&participant)
            .copied()
            .unwrap_or(0)
            >= config.max_connections_per_participant
        {
            Some(ConnectionLimitError::Participant(
                config.max_connections_per_participant,
            ))
        } else {
            None
        };
        if let Some(refusal) = refusal {
            if counted {
                counts.release_connection(&ip);
            }
            return Err(refusal);
        }
        if !counted {
            counts.total += 1;
            *counts.per_ip.entry(ip).or_default() += 1;
        }
        *counts
            .per_participant
            .entry(participant.clone())
            .or_default() += 1;
        Ok(ConnectionPermit {
            limiter: self.clone(),
            participant,
            ip,
        })
    }

    /// Open connections on this bridge, upgraded or not.
    pub fn open_connections(&self) -> usize {
        self.counts().total
    }
}

impl ConnectionSlot {
    /// Upgrades the connection to a socket of `participant_id` (in
    /// `tenant`): its place passes to the permit, or, when a cap refuses
    /// it, is given back.
    pub fn upgrade(
        &self,
        tenant: &str,
        participant_id: &str,
    ) -> Result<ConnectionPermit, ConnectionLimitError> {
        let mut counts = self.limiter.counts();
        let counted = self.held.swap(false, Ordering::AcqRel);
        self.limiter
            .admit_locked(&mut counts, tenant, participant_id, self.ip, counted)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if self.held.swap(false, Ordering::AcqRel) {
            self.limiter.counts().release_connection(&self.ip);
        }
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut counts = self.limiter.counts();
        counts.release_connection(&self.ip);
        decrement(&mut counts.per_participant, &self.participant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 3);
        for _ in 0..3 {
            assert!(bucket.try_take(start).is_ok());
        }
        let wait = bucket.try_take(start).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(100));
        assert!(bucket.try_take(start + Duration::from_millis(100)).is_ok());
        assert!(bucket.try_take(start + Duration::from_millis(100)).is_err());
    }

    #[test]
    fn permits_count_and_give_back_their_slots() {
        let limiter = ConnectionLimiter::new(Arc::new(LimitsConfig {
            max_connections_per_participant: 2,
            max_connections_per_ip: 3,
            max_connections: 4,
            ..LimitsConfig::default()
        }));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        let a1 = limiter.admit("t", "a", ip).unwrap();
        let _a2 = limiter.admit("t", "a", ip).unwrap();
        assert_eq!(
            limiter.admit("t", "a", other).unwrap_err(),
            ConnectionLimitError::Participant(2)
        );
        let _b = limiter.admit("u", "a", ip).unwrap();
        assert_eq!(
            limiter.admit("t", "c", ip).unwrap_err(),
            ConnectionLimitError::Ip(3)
        );
        let _c = limiter.admit("t", "c", other).unwrap();
        assert_eq!(
            limiter.admit("t", "d", other).unwrap_err(),
            ConnectionLimitError::Bridge(4)
        );
        drop(a1);
        // Held, not dropped at the end of the statement, so it still counts.
        let _a3 = limiter.admit("t", "a", other).unwrap();
        assert_eq!(limiter.open_connections(), 4);
    }

    #[test]
    fn connections_count_from_their_accept_and_an_upgrade_takes_their_place_over() {
        let limiter = ConnectionLimiter::new(Arc::new(LimitsConfig {
            max_connections_per_ip: 2,
            max_connections: 3,
            ..LimitsConfig::default()
        }));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        let half_open = limiter.accept(ip);
        let upgrading = limiter.accept(ip);
        assert_eq!(limiter.open_connections(), 2);
        let socket = upgrading.upgrade("t", "a").unwrap();
        assert_eq!(limiter.open_connections(), 2, "not counted twice");
        drop(upgrading);
        assert_eq!(limiter.open_connections(), 2, "the permit holds the place");

        // A third connection from the same IP is served, but not upgraded.
        let third = limiter.accept(ip);
        assert_eq!(
            third.upgrade("t", "b").unwrap_err(),
            ConnectionLimitError::Ip(2)
        );
        assert_eq!(
            limiter.open_connections(),
            2,
            "a refused upgrade gives its place back"
        );
        drop(third);
        assert_eq!(limiter.open_connections(), 2);

        // The bridge cap counts connections not yet upgraded, too.
        let elsewhere = limiter.accept(other);
        let over = limiter.accept(other);
        assert_eq!(
            over.upgrade("t", "c").unwrap_err(),
            ConnectionLimitError::Bridge(3)
        );
        drop(elsewhere);
        drop(half_open);
        let again = limiter.accept(ip);
        let _b = again.upgrade("t", "b").unwrap();
        drop(socket);
        assert_eq!(limiter.open_connections(), 1);
    }
}
