//! The per-stream shaper (README "Limits"; ejabberd's `shaper`, Prosody's
//! mod_limits): `limits.stanzas_per_second` and `limits.bytes_per_second`
//! with a burst of `limits.burst_seconds` of each. A stream that reads
//! faster is not cut off: its next read waits until it is within its rate
//! again, so TCP flow control slows the client down and the other streams
//! go on. Its bytes are counted as read, partial stanzas included, so a
//! stanza trickled in slowly is charged as it comes.

use std::time::{Duration, Instant};

use super::token_bucket::TokenBucket;
use super::{hit, Limit};
use crate::config::LimitsConfig;

pub struct Shaper {
    stanzas: Option<TokenBucket>,
    bytes: Option<TokenBucket>,
    /// No read before this instant.
    resume_at: Option<Instant>,
}

impl Shaper {
    /// The shaper for one client stream; `None` when both rates are off.
    pub fn new(cfg: &LimitsConfig) -> Option<Box<Shaper>> {
        let burst = f64::from(cfg.burst_seconds.max(1));
        let stanzas = (cfg.stanzas_per_second > 0).then(|| {
            let rate = f64::from(cfg.stanzas_per_second);
            TokenBucket::new(rate, rate * burst)
        });
        let bytes = (cfg.bytes_per_second > 0).then(|| {
            let rate = f64::from(cfg.bytes_per_second);
            // The burst holds at least one stanza of the largest size.
            TokenBucket::new(rate, (rate * burst).max(cfg.max_stanza_size as f64))
        });
        if stanzas.is_none() && bytes.is_none() {
            return None;
        }
        Some(Box::new(Shaper {
            stanzas,
            bytes,
            resume_at: None,
        }))
    }

    /// Charge what one read brought in.
    pub fn charge(&mut self, bytes: usize, stanzas: usize) {
        let now = Instant::now();
        let mut wait = Duration::ZERO;
        if let Some(b) = &mut self.bytes {
            wait = wait.max(b.take(bytes as f64, now));
        }
        if let Some(s) = &mut self.stanzas {
            if stanzas > 0 {
                wait = wait.max(s.take(stanzas as f64, now));
            }
        }
        if !wait.is_zero() {
            hit(Limit::Shaped);
            self.resume_at = Some(now + wait);
        }
    }

    /// Wait until the next read is allowed (at once when within the rates).
    /// Cancel-safe: a cancelled wait is taken up again by the next call.
    pub async fn ready(&mut self) {
        if let Some(at) = self.resume_at {
            tokio::time::sleep_until(at.into()).await;
            self.resume_at = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(stanzas: u32, bytes: u32) -> LimitsConfig {
        LimitsConfig {
            stanzas_per_second: stanzas,
            bytes_per_second: bytes,
            burst_seconds: 1,
            max_stanza_size: 1024,
            ..LimitsConfig::default()
        }
    }

    #[test]
    fn no_rates_no_shaper() {
        assert!(Shaper::new(&cfg(0, 0)).is_none());
    }

    #[tokio::test]
    async fn reading_past_the_rate_waits() {
        let mut s = Shaper::new(&cfg(10, 0)).unwrap();
        s.charge(100, 10);
        assert!(s.resume_at.is_none(), "the burst is free");
        s.charge(100, 2);
        let start = std::time::Instant::now();
        s.ready().await;
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(180), "{waited:?}");
        assert!(s.resume_at.is_none());
    }

    #[test]
    fn the_byte_burst_holds_one_largest_stanza() {
        let mut s = Shaper::new(&cfg(0, 10)).unwrap();
        s.charge(1024, 1);
        assert!(s.resume_at.is_none());
        s.charge(1, 0);
        assert!(s.resume_at.is_some());
    }
}
