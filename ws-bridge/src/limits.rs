//! Limits that keep one client from hurting the others: a token bucket per
//! connection for messages, and caps on connections per participant, per IP
//! and per bridge. Refusals become `RateLimited` error envelopes; repeated
//! violations close the socket (4029).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
        let burst = f64::from(burst.max(1));
        Self {
            tokens: burst,
            rate: rate.max(f64::MIN_POSITIVE),
            burst,
            refilled_at: Instant::now(),
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

/// One admitted connection's slot.
#[derive(Debug)]
pub struct ConnectionPermit {
    limiter: ConnectionLimiter,
    participant: (String, String),
    ip: IpAddr,
}

fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(count) = map.get_mut(key) {
        *count -= 1;
        if *count == 0 {
            map.remove(key);
        }
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

    /// Admits a connection of `participant_id` (in `tenant`) from `ip`.
    pub fn admit(
        &self,
        tenant: &str,
        participant_id: &str,
        ip: IpAddr,
    ) -> Result<ConnectionPermit, ConnectionLimitError> {
        let config = &self.config;
        let participant = (tenant.to_owned(), participant_id.to_owned());
        let mut counts = self.counts();
        if counts.total >= config.max_connections {
            return Err(ConnectionLimitError::Bridge(config.max_connections));
        }
        if counts.per_ip.get(&ip).copied().unwrap_or(0) >= config.max_connections_per_ip {
            return Err(ConnectionLimitError::Ip(config.max_connections_per_ip));
        }
        if counts
            .per_participant
            .get(&participant)
            .copied()
            .unwrap_or(0)
            >= config.max_connections_per_participant
        {
            return Err(ConnectionLimitError::Participant(
                config.max_connections_per_participant,
            ));
        }
        counts.total += 1;
        *counts.per_ip.entry(ip).or_default() += 1;
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

    /// Open connections on this bridge.
    pub fn open_connections(&self) -> usize {
        self.counts().total
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut counts = self.limiter.counts();
        counts.total = counts.total.saturating_sub(1);
        decrement(&mut counts.per_ip, &self.ip);
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
}
