//! A token bucket (the shaper of ejabberd and Prosody's mod_limits works
//! the same way): `rate` tokens come back per second up to `burst`; taking
//! more than there are leaves a debt, and the debt says how long to wait.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket. `rate` is per second; `burst` at least one token.
    pub fn new(rate: f64, burst: f64) -> TokenBucket {
        let burst = burst.max(1.0);
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            updated: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.updated = now;
    }

    /// Take `n` tokens whatever is left (the bytes were already read) and
    /// say how long the taker must wait until the bucket is out of debt.
    pub fn take(&mut self, n: f64, now: Instant) -> Duration {
        self.refill(now);
        self.tokens -= n;
        self.debt_wait()
    }

    /// Take `n` tokens only if there are that many now.
    pub fn try_take(&mut self, n: f64, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }

    /// Full again: nothing taken that has not come back.
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }

    fn debt_wait(&self) -> Duration {
        if self.tokens >= 0.0 || self.rate <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_free_and_then_the_rate_applies() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 20.0);
        assert_eq!(b.take(20.0, t0), Duration::ZERO);
        // Ten tokens over the burst at ten per second: one second.
        let wait = b.take(10.0, t0);
        assert!((wait.as_secs_f64() - 1.0).abs() < 1e-6, "{wait:?}");
        // Half a second later half of the debt is paid.
        let wait = b.take(0.0, t0 + Duration::from_millis(500));
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
    }

    #[test]
    fn try_take_refuses_without_tokens_and_refills_up_to_the_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1.0, 2.0);
        assert!(b.try_take(1.0, t0));
        assert!(b.try_take(1.0, t0));
        assert!(!b.try_take(1.0, t0));
        assert!(b.try_take(1.0, t0 + Duration::from_secs(1)));
        assert!(b.is_full(t0 + Duration::from_secs(100)));
    }
}
