//! Slowing down password guessing (RFC 6120 §13.9 hints, issue "server
//! core"): failures are counted per account and per peer address, and each
//! further attempt waits longer. Only the guessing connection waits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures older than this are forgotten.
const WINDOW: Duration = Duration::from_secs(300);
/// Failures allowed before delays start.
const FREE: u32 = 3;
const MAX_DELAY: Duration = Duration::from_secs(8);
/// Bound on remembered keys, so that a flood of names cannot grow the map.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Addr(IpAddr),
    Account(String),
}

#[derive(Default)]
pub struct AuthThrottle {
    failures: Mutex<HashMap<Key, (u32, Instant)>>,
}

impl AuthThrottle {
    /// How long to wait before answering an attempt for this account from
    /// this address.
    pub fn delay(&self, addr: IpAddr, account: &str) -> Duration {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let count = |k: &Key| match map.get(k) {
            Some((n, at)) if at.elapsed() < WINDOW => *n,
            _ => 0,
        };
        let n = count(&Key::Addr(addr)).max(count(&Key::Account(account.to_string())));
        if n <= FREE {
            return Duration::ZERO;
        }
        let exp = (n - FREE).min(6);
        (Duration::from_millis(125) * 2u32.pow(exp)).min(MAX_DELAY)
    }

    pub fn failed(&self, addr: IpAddr, account: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_KEYS {
            map.retain(|_, (_, at)| at.elapsed() < WINDOW);
        }
        for k in [Key::Addr(addr), Key::Account(account.to_string())] {
            let e = map.entry(k).or_insert((0, Instant::now()));
            if e.1.elapsed() >= WINDOW {
                e.0 = 0;
            }
            e.0 += 1;
            e.1 = Instant::now();
        }
    }

    pub fn succeeded(&self, addr: IpAddr, account: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&Key::Account(account.to_string()));
        map.remove(&Key::Addr(addr));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_after_free_attempts_and_reset_on_success() {
        let t = AuthThrottle::default();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..FREE {
            t.failed(a, "u");
        }
        assert_eq!(t.delay(a, "u"), Duration::ZERO);
        t.failed(a, "u");
        let d1 = t.delay(a, "u");
        t.failed(a, "u");
        let d2 = t.delay(a, "u");
        assert!(d1 > Duration::ZERO && d2 > d1);
        // The account is throttled from any address, and the address for any account.
        assert!(t.delay("127.0.0.2".parse().unwrap(), "u") > Duration::ZERO);
        assert!(t.delay(a, "other") > Duration::ZERO);
        t.succeeded(a, "u");
        assert_eq!(t.delay(a, "u"), Duration::ZERO);
    }
}
