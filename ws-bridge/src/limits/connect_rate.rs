//! The per-IP connect rate: a token bucket per client address for
//! WebSocket upgrades, so one client's reconnect churn (each upgrade costs a
//! join at the core) is bounded, not only its concurrent connections.
//! Decisions only: the caller answers a refusal (HTTP 429 with
//! `Retry-After`) before any call to the core.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::TokenBucket;

/// How often buckets that have refilled are forgotten: a full bucket is the
/// same as none, so the map holds only the addresses seen recently.
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Buckets {
    per_ip: HashMap<IpAddr, TokenBucket>,
    swept_at: Instant,
}

/// Upgrades per second per IP, shared by every connection of a bridge.
#[derive(Debug, Clone)]
pub struct ConnectRateLimiter {
    rate: f64,
    burst: u32,
    buckets: Option<Arc<Mutex<Buckets>>>,
}

impl ConnectRateLimiter {
    /// `rate` upgrades per second per IP with a burst of `burst`; a rate of
    /// 0 turns the limit off.
    pub fn new(rate: f64, burst: u32) -> Self {
        let buckets = (rate > 0.0).then(|| {
            Arc::new(Mutex::new(Buckets {
                per_ip: HashMap::new(),
                swept_at: Instant::now(),
            }))
        });
        Self {
            rate,
            burst,
            buckets,
        }
    }

    /// Takes one upgrade from `ip`'s bucket, or says how long until one is
    /// there.
    pub fn try_connect(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let Some(buckets) = &self.buckets else {
            return Ok(());
        };
        let mut buckets = buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if now.saturating_duration_since(buckets.swept_at) >= SWEEP_INTERVAL {
            buckets.per_ip.retain(|_, bucket| !bucket.is_full_at(now));
            buckets.swept_at = now;
        }
        let (rate, burst) = (self.rate, self.burst);
        buckets
            .per_ip
            .entry(ip)
            .or_insert_with(|| TokenBucket::new_at(rate, burst, now))
            .try_take(now)
    }

    /// Addresses with a bucket that has not refilled yet (at the last sweep).
    pub fn tracked_addresses(&self) -> usize {
        self.buckets.as_ref().map_or(0, |buckets| {
            buckets
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .per_ip
                .len()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_burst_then_the_rate_and_others_are_unaffected() {
        let limiter = ConnectRateLimiter::new(2.0, 3);
        let start = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.try_connect(ip, start).is_ok());
        }
        let wait = limiter.try_connect(ip, start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(limiter.try_connect(other, start).is_ok());
        assert!(limiter
            .try_connect(ip, start + Duration::from_millis(500))
            .is_ok());
    }

    #[test]
    fn a_rate_of_zero_is_no_limit() {
        let limiter = ConnectRateLimiter::new(0.0, 1);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let now = Instant::now();
        for _ in 0..1000 {
            assert!(limiter.try_connect(ip, now).is_ok());
        }
        assert_eq!(limiter.tracked_addresses(), 0);
    }

    #[test]
    fn refilled_buckets_are_forgotten_at_the_next_sweep() {
        let limiter = ConnectRateLimiter::new(10.0, 5);
        let start = Instant::now();
        for n in 0..100u8 {
            let ip = IpAddr::from([192, 0, 2, n]);
            assert!(limiter.try_connect(ip, start).is_ok());
        }
        assert_eq!(limiter.tracked_addresses(), 100);
        let busy: IpAddr = "198.51.100.1".parse().unwrap();
        let later = start + SWEEP_INTERVAL;
        assert!(limiter.try_connect(busy, later).is_ok());
        assert_eq!(
            limiter.tracked_addresses(),
            1,
            "only the address whose bucket is not full again"
        );
    }
}
