//! Keepalive: the bridge pings every `--ping-interval`; a socket from which
//! nothing (not even a pong) arrived for `--idle-timeout` is dead. Also the
//! token's expiry, the other timer a socket waits on.

use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

/// The ping timer and when the client was last heard from.
#[derive(Debug)]
pub(crate) struct Keepalive {
    pings: Interval,
    last_heard: Instant,
    idle_timeout: Duration,
}

/// What a ping tick asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tick {
    /// Send a ping.
    Ping,
    /// Nothing arrived for the idle timeout: the connection is dead.
    Dead,
}

impl Keepalive {
    pub(crate) fn new(ping_interval: Duration, idle_timeout: Duration) -> Self {
        let mut pings = tokio::time::interval_at(Instant::now() + ping_interval, ping_interval);
        pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            pings,
            last_heard: Instant::now(),
            idle_timeout,
        }
    }

    /// Waits for the next ping time and says what to do.
    pub(crate) async fn tick(&mut self) -> Tick {
        self.pings.tick().await;
        if self.last_heard.elapsed() >= self.idle_timeout {
            Tick::Dead
        } else {
            Tick::Ping
        }
    }

    /// Something arrived from the client.
    pub(crate) fn heard(&mut self) {
        self.last_heard = Instant::now();
    }
}

/// When a token expiring at `expires_at_ms` (Unix ms) runs out, on tokio's
/// clock; far in the future when there is no expiry.
pub(crate) fn expiry_instant(expires_at_ms: Option<i64>) -> Instant {
    let now = Instant::now();
    match expires_at_ms {
        Some(at) => {
            let left = u64::try_from(at.saturating_sub(crate::now_ms())).unwrap_or(0);
            now + Duration::from_millis(left)
        }
        None => now + Duration::from_secs(86_400 * 365),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_heard_client_is_pinged_and_a_silent_one_is_dead() {
        let mut keepalive = Keepalive::new(Duration::from_secs(20), Duration::from_secs(50));
        assert_eq!(keepalive.tick().await, Tick::Ping); // t = 20 s
        keepalive.heard();
        assert_eq!(keepalive.tick().await, Tick::Ping); // 40 s, heard at 20
        assert_eq!(keepalive.tick().await, Tick::Ping); // 60 s, 40 s of silence
        assert_eq!(keepalive.tick().await, Tick::Dead); // 80 s, 60 s of silence
    }

    #[tokio::test(start_paused = true)]
    async fn no_expiry_is_a_year_away() {
        let far = expiry_instant(None);
        assert!(far - Instant::now() >= Duration::from_secs(86_400 * 364));
        let past = expiry_instant(Some(0));
        assert!(past <= Instant::now());
    }
}
