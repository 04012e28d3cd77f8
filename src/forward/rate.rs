//! A token bucket per target whose rate halves when the target says 429 and
//! creeps back up after a quiet while (AIMD), so a shared quota is not
//! hammered. One throttling episode halves it once: the 429s that answer
//! probes during a `Retry-After` hold say nothing new about our rate, and
//! would otherwise leave it at the floor long after the target recovered.

use std::time::{Duration, Instant};

pub struct RateLimiter {
    configured: f64,
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    last_throttled: Option<Instant>,
    /// A request went through since the last halving.
    answered_since_throttled: bool,
}

/// How long after the last 429 the rate starts to recover.
const QUIET: Duration = Duration::from_secs(60);

impl RateLimiter {
    pub fn new(rate_per_sec: f64, burst: u32) -> RateLimiter {
        let burst = f64::from(burst.max(1));
        RateLimiter {
            configured: rate_per_sec,
            rate: rate_per_sec,
            burst,
            tokens: burst,
            last: Instant::now(),
            last_throttled: None,
            answered_since_throttled: true,
        }
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// How long to wait before one more request may go, taking its token.
    pub fn reserve(&mut self, now: Instant) -> Duration {
        self.refill(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-self.tokens / self.rate) }
    }

    /// The target answered 429: halve the rate (down to 1/64 of the
    /// setting), once per episode.
    pub fn throttled(&mut self, now: Instant) {
        self.refill(now);
        if self.answered_since_throttled {
            self.rate = (self.rate / 2.0).max(self.configured / 64.0);
            self.answered_since_throttled = false;
        }
        self.tokens = self.tokens.min(0.0);
        self.last_throttled = Some(now);
    }

    /// The target answered something other than 429.
    pub fn answered(&mut self) {
        self.answered_since_throttled = true;
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        if self.last_throttled.is_some_and(|t| now.saturating_duration_since(t) >= QUIET) && self.rate < self.configured
        {
            // Additive increase: a tenth of the setting per quiet period.
            self.rate = (self.rate + self.configured / 10.0).min(self.configured);
            self.last_throttled = Some(now);
        }
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_paces() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(10.0, 3);
        for _ in 0..3 {
            assert_eq!(r.reserve(t0), Duration::ZERO);
        }
        let wait = r.reserve(t0);
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        assert_eq!(r.reserve(t0 + Duration::from_secs(10)), Duration::ZERO);
    }

    #[test]
    fn halves_on_429_and_recovers_when_quiet() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(8.0, 1);
        r.throttled(t0);
        r.throttled(t0);
        assert_eq!(r.rate(), 4.0, "one episode, one halving");
        r.answered();
        r.throttled(t0);
        assert_eq!(r.rate(), 2.0);
        r.reserve(t0 + Duration::from_secs(30));
        assert_eq!(r.rate(), 2.0, "not quiet yet");
        r.reserve(t0 + Duration::from_secs(61));
        assert!((r.rate() - 2.8).abs() < 1e-9, "{}", r.rate());
        for _ in 0..20 {
            r.answered();
            r.throttled(t0);
        }
        assert_eq!(r.rate(), 8.0 / 64.0);
    }
}
