//! The per-stream shaper (README "Limits"; ejabberd's `shaper`, Prosody's
//! mod_limits): `limits.stanzas_per_second` and `limits.bytes_per_second`
//! with a burst of `limits.burst_seconds` of each. A stream that reads
//! faster is not cut off: its next read waits until it is within its rate
//! again, so TCP flow control slows the client down and the other streams
//! go on. Its bytes are counted as read, partial stanzas included, so a
//! stanza trickled in slowly is charged as it comes.
//!
//! Two token buckets kept small (every connection has one, idle ones
//! included): the rates are shared by all streams of a server, and a
//! stream keeps only its two fill levels and two times (32 bytes, one
//! allocation per connection).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::{hit, Limit};
use crate::config::LimitsConfig;

/// The server's rates, shared by its streams.
#[derive(Debug)]
pub struct Rates {
    stanzas: f32,
    stanza_burst: f32,
    bytes: f32,
    byte_burst: f32,
}

impl Rates {
    /// `None` when both rates are off.
    pub fn new(cfg: &LimitsConfig) -> Option<Arc<Rates>> {
        if cfg.stanzas_per_second == 0 && cfg.bytes_per_second == 0 {
            return None;
        }
        let burst = cfg.burst_seconds.max(1) as f32;
        let stanzas = cfg.stanzas_per_second as f32;
        let bytes = cfg.bytes_per_second as f32;
        Some(Arc::new(Rates {
            stanzas,
            stanza_burst: stanzas * burst,
            bytes,
            // The burst holds at least one stanza of the largest size.
            byte_burst: (bytes * burst).max(cfg.max_stanza_size as f32),
        }))
    }
}

/// Milliseconds since the first call in this process.
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

pub struct Shaper {
    rates: Arc<Rates>,
    stanza_tokens: f32,
    byte_tokens: f32,
    updated_ms: u64,
    /// No read before this (milliseconds of `now_ms`); 0: none.
    resume_ms: u64,
}

impl Shaper {
    /// A shaper with full buckets.
    pub fn new(rates: Arc<Rates>) -> Shaper {
        Shaper {
            stanza_tokens: rates.stanza_burst,
            byte_tokens: rates.byte_burst,
            rates,
            updated_ms: now_ms(),
            resume_ms: 0,
        }
    }

    /// Charge what one read brought in.
    pub fn charge(&mut self, bytes: usize, stanzas: usize) {
        let now = now_ms();
        let r = &self.rates;
        let elapsed = now.saturating_sub(self.updated_ms) as f32 / 1000.0;
        self.updated_ms = now;
        let mut wait_s: f32 = 0.0;
        if r.bytes > 0.0 {
            self.byte_tokens =
                (self.byte_tokens + elapsed * r.bytes).min(r.byte_burst) - bytes as f32;
            if self.byte_tokens < 0.0 {
                wait_s = wait_s.max(-self.byte_tokens / r.bytes);
            }
        }
        if r.stanzas > 0.0 {
            self.stanza_tokens =
                (self.stanza_tokens + elapsed * r.stanzas).min(r.stanza_burst) - stanzas as f32;
            if self.stanza_tokens < 0.0 {
                wait_s = wait_s.max(-self.stanza_tokens / r.stanzas);
            }
        }
        if wait_s > 0.0 {
            hit(Limit::Shaped);
            self.resume_ms = now + (wait_s * 1000.0).ceil() as u64;
        }
    }

    /// Wait until the next read is allowed (at once when within the rates).
    /// Cancel-safe: a cancelled wait is taken up again by the next call.
    pub async fn ready(&mut self) {
        if self.resume_ms > 0 {
            let now = now_ms();
            if self.resume_ms > now {
                tokio::time::sleep(Duration::from_millis(self.resume_ms - now)).await;
            }
            self.resume_ms = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(stanzas: u32, bytes: u32) -> Option<Arc<Rates>> {
        Rates::new(&LimitsConfig {
            stanzas_per_second: stanzas,
            bytes_per_second: bytes,
            burst_seconds: 1,
            max_stanza_size: 1024,
            ..LimitsConfig::default()
        })
    }

    #[test]
    fn no_rates_no_shaper_and_the_state_is_small() {
        assert!(rates(0, 0).is_none());
        assert!(std::mem::size_of::<Shaper>() <= 32);
    }

    #[tokio::test]
    async fn reading_past_the_rate_waits() {
        let mut s = Shaper::new(rates(10, 0).unwrap());
        s.charge(100, 10);
        assert_eq!(s.resume_ms, 0, "the burst is free");
        s.charge(100, 2);
        let start = std::time::Instant::now();
        s.ready().await;
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(150), "{waited:?}");
        assert_eq!(s.resume_ms, 0);
    }

    #[test]
    fn the_byte_burst_holds_one_largest_stanza() {
        let mut s = Shaper::new(rates(0, 10).unwrap());
        s.charge(1024, 1);
        assert_eq!(s.resume_ms, 0);
        s.charge(1, 0);
        assert!(s.resume_ms > 0);
    }
}
