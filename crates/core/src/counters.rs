//! Server-wide counters, cheap to bump from any task; logged now and to be
//! exported as metrics.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Counters {
    /// Stanzas account-based MUC received from rooms (one per account).
    pub account_muc_received: AtomicU64,
    /// Copies of them forked to joined sessions.
    pub account_muc_forked: AtomicU64,
}

impl Counters {
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        vec![
            (
                "account_muc_received",
                self.account_muc_received.load(Ordering::Relaxed),
            ),
            (
                "account_muc_forked",
                self.account_muc_forked.load(Ordering::Relaxed),
            ),
        ]
    }
}
