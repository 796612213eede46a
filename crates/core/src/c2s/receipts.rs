//! XEP-0198 §4: what `h` means. A client never resends a stanza the server
//! acknowledged, so `h` may count a stanza only once its effects are safe:
//! written to the recipient's connection, committed to offline storage or
//! the archive, or fully processed when it has no durable effect. Counting
//! on read (what we did before) lost acknowledged messages when the
//! process died with them in a queue.
//!
//! Every stanza read on a stream with stream management gets a
//! [`Receipt`]; it travels with the stanza (`Stanza::receipt`), and each
//! place that still has to make an effect durable keeps a clone. When the
//! last clone is dropped the stanza is done. `h` is the count of stanzas
//! done without a gap: stanzas finish out of order (a ping answered at once
//! behind a message waiting for its commit), but `h` is a prefix count.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use roost_proto::stanza::Receipt;
use tokio::sync::Notify;

#[derive(Default)]
struct Shared {
    /// Sequence numbers (1-based) issued and not yet done.
    outstanding: Mutex<BTreeSet<u64>>,
    /// Woken whenever a stanza is done.
    progress: Notify,
}

/// Dropped when its stanza's last effect is safe.
struct Token {
    shared: Arc<Shared>,
    seq: u64,
}

impl Drop for Token {
    fn drop(&mut self) {
        let mut set = self
            .shared
            .outstanding
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        set.remove(&self.seq);
        drop(set);
        self.shared.progress.notify_one();
    }
}

/// The receipts of one session's inbound stanzas.
#[derive(Default)]
pub struct Receipts {
    shared: Arc<Shared>,
    /// Stanzas read so far.
    issued: u64,
}

impl Receipts {
    /// A receipt for the next stanza read.
    pub fn issue(&mut self) -> Receipt {
        self.issued += 1;
        self.shared
            .outstanding
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(self.issued);
        Arc::new(Token {
            shared: self.shared.clone(),
            seq: self.issued,
        })
    }

    /// Stanzas done without a gap (the `h` to report, before wrapping).
    pub fn done(&self) -> u64 {
        let set = self
            .shared
            .outstanding
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match set.first() {
            Some(first) => first - 1,
            None => self.issued,
        }
    }

    /// `h` as XEP-0198 counts it: modulo 2^32.
    pub fn h(&self) -> u32 {
        self.done() as u32
    }

    /// Every stanza read so far is done.
    pub fn all_done(&self) -> bool {
        self.done() == self.issued
    }

    /// Resolves after some stanza is done (maybe before this call: a
    /// stored permit, so no progress is missed between checks).
    pub async fn progressed(&self) {
        self.shared.progress.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h_counts_a_prefix_of_done_stanzas() {
        let mut r = Receipts::default();
        let a = r.issue();
        let b = r.issue();
        let c = r.issue();
        assert_eq!(r.h(), 0);
        drop(b);
        assert_eq!(r.h(), 0, "the first is still in flight");
        drop(a);
        assert_eq!(r.h(), 2);
        assert!(!r.all_done());
        let kept = c.clone();
        drop(c);
        assert_eq!(r.h(), 2, "a clone still holds the third");
        drop(kept);
        assert_eq!(r.h(), 3);
        assert!(r.all_done());
    }

    #[tokio::test]
    async fn progress_wakes_a_waiter() {
        let mut r = Receipts::default();
        let a = r.issue();
        let t = std::thread::spawn(move || drop(a));
        r.progressed().await;
        t.join().unwrap();
        assert_eq!(r.h(), 1);
    }
}
