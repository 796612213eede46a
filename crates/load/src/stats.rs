//! Statistics of a run: a lock-free log-linear latency histogram (bounded
//! memory whatever the number of samples, relative error under 1 %),
//! percentiles from it, and rates.

use std::sync::atomic::{AtomicU64, Ordering};

/// Values below this are counted exactly; above it each power of two is
/// split into this many buckets, so a bucket is at most 1/64 of its value
/// wide and the midpoint we report is within 0.8 % of any sample in it.
const SUB: u64 = 64;
const SUB_BITS: u32 = 6;
/// 64 exact buckets, then 64 per power of two from 2^6 to 2^63.
const BUCKETS: usize = (SUB as usize) + (64 - SUB_BITS as usize) * SUB as usize;

/// Index of the bucket holding `v`.
fn bucket_of(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros(); // >= SUB_BITS
    let shift = msb - SUB_BITS;
    let sub = (v >> shift) - SUB; // in 0..SUB
    SUB as usize + (shift as usize) * SUB as usize + sub as usize
}

/// Smallest value and width of a bucket.
fn bucket_range(i: usize) -> (u64, u64) {
    if i < SUB as usize {
        return (i as u64, 1);
    }
    let k = (i - SUB as usize) as u64;
    let shift = k / SUB;
    let sub = k % SUB;
    ((SUB + sub) << shift, 1u64 << shift)
}

/// A histogram of non-negative integer samples (microseconds here) that
/// many tasks record into at once.
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
    min: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
            min: AtomicU64::new(u64::MAX),
        }
    }

    pub fn record(&self, v: u64) {
        self.buckets[bucket_of(v)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(v, Ordering::Relaxed);
        self.max.fetch_max(v, Ordering::Relaxed);
        self.min.fetch_min(v, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    pub fn min(&self) -> u64 {
        match self.min.load(Ordering::Relaxed) {
            u64::MAX => 0,
            m => m,
        }
    }

    pub fn mean(&self) -> f64 {
        match self.count() {
            0 => 0.0,
            n => self.sum.load(Ordering::Relaxed) as f64 / n as f64,
        }
    }

    /// The value at quantile `q` (0..=1): the smallest recorded value v such
    /// that at least `q` of the samples are <= v, to the bucket's precision
    /// (exact below 64, clamped to the true min and max). 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        let n = self.count();
        if n == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                let (lo, width) = bucket_range(i);
                let mid = lo + (width - 1) / 2;
                return mid.clamp(self.min(), self.max());
            }
        }
        self.max()
    }

    pub fn summary(&self) -> Summary {
        Summary {
            count: self.count(),
            min: self.min(),
            mean: self.mean(),
            p50: self.quantile(0.50),
            p90: self.quantile(0.90),
            p99: self.quantile(0.99),
            p999: self.quantile(0.999),
            max: self.max(),
        }
    }
}

/// Percentiles of a histogram, in its unit (microseconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// Events per second; 0 for an empty interval.
pub fn rate(count: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        0.0
    } else {
        count as f64 / secs
    }
}

/// Microseconds as milliseconds, for reports.
pub fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Messages still missing: expected minus received, never negative.
pub fn losses(expected: u64, received: u64) -> u64 {
    expected.saturating_sub(received)
}

/// How many sends are due at `elapsed` seconds at `rate` per second when
/// `sent` have gone out already; the sender catches up at most `burst` at
/// a time so that a stalled connection does not release a flood.
pub fn due(rate: f64, elapsed: f64, sent: u64, burst: u64) -> u64 {
    let target = (rate * elapsed).floor().max(0.0) as u64;
    target.saturating_sub(sent).min(burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_are_exact() {
        for v in 0..200u64 {
            let h = Histogram::new();
            h.record(v);
            assert_eq!(h.quantile(0.5), v);
            assert_eq!(h.quantile(1.0), v);
        }
    }

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for v in (0..1_000_000u64).step_by(7).chain([u64::MAX / 2, u64::MAX]) {
            let i = bucket_of(v);
            assert!(i < BUCKETS, "{v}");
            assert!(i >= last, "{v}");
            last = i;
            let (lo, width) = bucket_range(i);
            assert!(lo <= v && v - lo < width, "{v} in [{lo}, +{width})");
        }
    }

    #[test]
    fn relative_error_is_under_one_percent() {
        for v in [100u64, 1_234, 99_999, 1_000_001, 123_456_789, 1 << 40] {
            let h = Histogram::new();
            h.record(v);
            h.record(v + 1); // so min/max clamping does not hide the bucket error
            let got = h.quantile(0.5) as f64;
            let err = (got - v as f64).abs() / v as f64;
            assert!(err < 0.01, "{v}: {got} ({err})");
        }
    }

    #[test]
    fn percentiles_of_a_uniform_distribution() {
        let h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record(v);
        }
        let s = h.summary();
        assert_eq!(s.count, 10_000);
        assert_eq!(s.min, 1);
        assert_eq!(s.max, 10_000);
        assert!((s.mean - 5000.5).abs() < 1e-9);
        for (got, want) in [(s.p50, 5000.0), (s.p90, 9000.0), (s.p99, 9900.0)] {
            assert!(((got as f64) - want).abs() / want < 0.01, "{got} vs {want}");
        }
    }

    #[test]
    fn one_slow_sample_shows_in_p99_only_when_it_is_one_percent() {
        let h = Histogram::new();
        for _ in 0..999 {
            h.record(1_000);
        }
        h.record(1_000_000);
        let s = h.summary();
        assert!(s.p99 < 1_020, "{}", s.p99);
        assert_eq!(s.max, 1_000_000);
        assert!(s.p999 < 1_020);
        h.record(1_000_000);
        h.record(1_000_000);
        // 3 of 1002 slow: beyond p99.7, so p99 is still fast, p99.9 slow.
        assert!(h.quantile(0.999) > 990_000);
    }

    #[test]
    fn empty_histogram_reports_zeros() {
        let s = Histogram::new().summary();
        assert_eq!((s.count, s.min, s.p50, s.p99, s.max), (0, 0, 0, 0, 0));
        assert_eq!(s.mean, 0.0);
    }

    #[test]
    fn concurrent_recording_loses_nothing() {
        let h = std::sync::Arc::new(Histogram::new());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for v in 0..10_000u64 {
                        h.record(v * (t + 1));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(h.count(), 40_000);
        assert_eq!(h.max(), 9_999 * 4);
    }

    #[test]
    fn rates_losses_and_due_sends() {
        assert_eq!(rate(500, 2.0), 250.0);
        assert_eq!(rate(5, 0.0), 0.0);
        assert_eq!(ms(1_500), 1.5);
        assert_eq!(losses(10, 7), 3);
        assert_eq!(losses(10, 12), 0);
        assert_eq!(due(100.0, 0.5, 0, 1000), 50);
        assert_eq!(due(100.0, 0.5, 49, 1000), 1);
        assert_eq!(due(100.0, 0.5, 50, 1000), 0);
        assert_eq!(due(100.0, 0.5, 60, 1000), 0);
        assert_eq!(due(100.0, 10.0, 0, 20), 20);
        assert_eq!(due(100.0, -1.0, 0, 20), 0);
    }
}
