//! Bytes of stanzas waiting in session queues (README "Limits"): each
//! session may hold `limits.session_queue_bytes`, and all of them together
//! `limits.queued_bytes_total`. Past three quarters of the total, client
//! readers pause (`paused`) so that producers wait for the queues to drain
//! instead of the process running out of memory; a session whose own queue
//! is full is closed with `policy-violation`, as one over
//! `limits.session_queue` stanzas is.
//!
//! Process-wide, like the counters: the queues know no server. One server
//! runs per process outside tests, and tests keep the defaults.
//!
//! Sizes are estimates (`roost_proto::serialize::estimated_len`): close to
//! the serialised size, without serialising.

use std::sync::atomic::{AtomicUsize, Ordering};

static USED: AtomicUsize = AtomicUsize::new(0);
static MAX: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Set the server-wide budget (at start).
pub fn set_total(max: usize) {
    MAX.store(max.max(1), Ordering::Relaxed);
}

/// Bytes queued now, over all sessions.
pub fn used() -> usize {
    USED.load(Ordering::Relaxed)
}

/// Take `n` bytes of the budget unless it is spent.
pub fn take(n: usize) -> bool {
    let max = MAX.load(Ordering::Relaxed);
    let mut cur = USED.load(Ordering::Relaxed);
    loop {
        let next = cur.saturating_add(n);
        // One message always fits an empty budget, however large.
        if next > max && cur > 0 {
            return false;
        }
        match USED.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(seen) => cur = seen,
        }
    }
}

/// Give `n` bytes back.
pub fn give(n: usize) {
    let mut cur = USED.load(Ordering::Relaxed);
    loop {
        let next = cur.saturating_sub(n);
        match USED.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(seen) => cur = seen,
        }
    }
}

/// Readers should wait: the queues hold three quarters of the budget.
pub fn paused() -> bool {
    let max = MAX.load(Ordering::Relaxed);
    used() > max / 4 * 3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_taken_and_given_back() {
        // The only test touching the process-wide budget.
        set_total(1000);
        assert!(take(700));
        assert!(!paused());
        assert!(take(100));
        assert!(paused());
        assert!(!take(300), "over the total");
        give(800);
        assert!(take(5000), "one message always fits an empty budget");
        give(5000);
        assert_eq!(used(), 0);
        set_total(usize::MAX);
    }
}
