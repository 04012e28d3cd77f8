//! A token bucket per target whose rate halves when the target says 429 and
//! creeps back up after a quiet while (AIMD), so a shared quota is not
//! hammered. One throttling episode halves it once: the 429s that answer
//! probes during a `Retry-After` hold say nothing new about our rate, and
//! would otherwise leave it at the floor long after the target recovered.
//! Beside it, the buckets of a platform's documented limits (`Bucket`), and
//! the `Pacer` that takes a request's tokens from all of them at once.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A platform's documented limit on some endpoints: at most `limit` calls in
/// any `window_secs`. A token bucket of burst b and rate r lets through at
/// most b + r·w calls in a window of w, so its rate is (limit − burst) /
/// window: a full burst and a window's refill together make the limit, never
/// more.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    pub name: &'static str,
    pub limit: u32,
    pub window_secs: u32,
    pub burst: u32,
}

impl Bucket {
    /// Panics (at compile time, in a `const`) unless 1 ≤ burst < limit: a
    /// burst of the whole limit would leave nothing to refill in the window.
    pub const fn new(name: &'static str, limit: u32, window_secs: u32, burst: u32) -> Bucket {
        assert!(
            window_secs > 0 && burst >= 1 && burst < limit,
            "a bucket's burst must be 1 or more and below its limit"
        );
        Bucket { name, limit, window_secs, burst }
    }

    pub const fn rate_per_sec(&self) -> f64 {
        (self.limit - self.burst) as f64 / self.window_secs as f64
    }

    pub fn window(&self) -> Duration {
        Duration::from_secs(u64::from(self.window_secs))
    }

    /// Whether no window of the platform's holds more calls than its limit:
    /// the burst plus a window's refill, in whole calls.
    pub const fn keeps_within_limit(&self) -> bool {
        let refill = (self.rate_per_sec() * self.window_secs as f64) as u32;
        self.burst >= 1 && self.burst + refill <= self.limit
    }
}

/// Whether every bucket of a platform keeps within its limit (for the
/// adapters' `const` assertions).
pub const fn keep_within_limits(buckets: &[Bucket]) -> bool {
    let mut i = 0;
    while i < buckets.len() {
        if !buckets[i].keeps_within_limit() {
            return false;
        }
        i += 1;
    }
    true
}

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

    /// How long until a token is there (zero: now), taking none.
    pub fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 { Duration::ZERO } else { Duration::from_secs_f64((1.0 - self.tokens) / self.rate) }
    }

    /// Takes the token `wait` said is there.
    fn take(&mut self) {
        self.tokens -= 1.0;
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

/// The limiters a target's requests pass: the target's own (`delivery`), and
/// for some endpoints a bucket of the platform's documented limits. A
/// request takes a token from each it passes, all at once when all have one:
/// a token taken from one while waiting on the other would be spent at a
/// later time than its bucket counted, and calls so delayed could bunch up
/// in one window beyond the limit.
pub struct Pacer {
    target: Mutex<RateLimiter>,
    buckets: Vec<(&'static str, Mutex<RateLimiter>)>,
}

impl Pacer {
    pub fn new(target: RateLimiter, buckets: &[Bucket]) -> Pacer {
        let buckets =
            buckets.iter().map(|b| (b.name, Mutex::new(RateLimiter::new(b.rate_per_sec(), b.burst)))).collect();
        Pacer { target: Mutex::new(target), buckets }
    }

    /// Takes a token from the target's limiter and from `bucket`'s, or none
    /// and says how long until both have one.
    pub fn take(&self, bucket: Option<&str>, now: Instant) -> Result<(), Duration> {
        // Always locked in this order (target, then bucket): no deadlock.
        let mut target = self.target.lock().expect("rate limiter lock");
        let mut bucket = self.bucket(bucket).map(|b| b.lock().expect("rate limiter lock"));
        let wait = target.wait(now).max(bucket.as_mut().map_or(Duration::ZERO, |b| b.wait(now)));
        if wait > Duration::ZERO {
            return Err(wait);
        }
        target.take();
        if let Some(b) = bucket.as_mut() {
            b.take();
        }
        Ok(())
    }

    /// The target answered a request that went through `bucket`: a 429
    /// (`throttled`) slows both limiters down.
    pub fn answered(&self, bucket: Option<&str>, throttled: bool, now: Instant) {
        for limiter in std::iter::once(&self.target).chain(self.bucket(bucket)) {
            let mut l = limiter.lock().expect("rate limiter lock");
            if throttled { l.throttled(now) } else { l.answered() }
        }
    }

    fn bucket(&self, name: Option<&str>) -> Option<&Mutex<RateLimiter>> {
        let name = name?;
        self.buckets.iter().find(|(n, _)| *n == name).map(|(_, l)| l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_paces() {
        let t0 = Instant::now();
        let r = Pacer::new(RateLimiter::new(10.0, 3), &[]);
        for _ in 0..3 {
            assert_eq!(r.take(None, t0), Ok(()));
        }
        let wait = r.take(None, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        assert_eq!(r.take(None, t0 + Duration::from_secs(10)), Ok(()));
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
        r.wait(t0 + Duration::from_secs(30));
        assert_eq!(r.rate(), 2.0, "not quiet yet");
        r.wait(t0 + Duration::from_secs(61));
        assert!((r.rate() - 2.8).abs() < 1e-9, "{}", r.rate());
        for _ in 0..20 {
            r.answered();
            r.throttled(t0);
        }
        assert_eq!(r.rate(), 8.0 / 64.0);
    }
}
