//! Connections per client address (README "Limits"): how many may be open
//! at once (`limits.max_connections_per_ip`) and how many may be opened per
//! second (`limits.connections_per_second`, `limits.connection_burst`).
//! IPv6 addresses count by prefix (`limits.ipv6_prefix`, a /64 by default),
//! since one host usually holds a whole /64. Addresses in `limits.exempt`
//! (loopback by default: a local reverse proxy, benchmarks) are not counted.
//! Checked at accept, before any byte is read or any TLS is done.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ipnet::IpNet;

use super::token_bucket::TokenBucket;
use super::{hit, Limit};
use crate::config::LimitsConfig;

/// Remembered addresses at most; beyond it, those with nothing open and
/// a full bucket are forgotten, so a scan of many addresses cannot grow it.
const MAX_KEYS: usize = 100_000;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_connections_per_ip` are open from this address.
    TooMany,
    /// More than `connections_per_second` (after the burst).
    TooFast,
}

struct Entry {
    open: usize,
    bucket: TokenBucket,
}

pub struct AddressLimits {
    max_open: usize,
    rate: f64,
    burst: f64,
    ipv6_prefix: u8,
    exempt: Vec<IpNet>,
    table: Mutex<HashMap<IpAddr, Entry>>,
}

/// Held by a connection while it is open; gives its place back on drop.
/// One pointer: it lives in every connection task's state, exempt ones
/// included.
pub struct AddressGuard {
    slot: Option<Box<(Arc<AddressLimits>, IpAddr)>>,
}

impl AddressGuard {
    /// For connections that are not counted.
    pub fn exempt() -> AddressGuard {
        AddressGuard { slot: None }
    }
}

impl Drop for AddressGuard {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            let (limits, key) = *slot;
            let mut table = limits.lock();
            if let Some(e) = table.get_mut(&key) {
                e.open = e.open.saturating_sub(1);
            }
        }
    }
}

impl AddressLimits {
    pub fn new(cfg: &LimitsConfig) -> AddressLimits {
        AddressLimits {
            max_open: cfg.max_connections_per_ip,
            rate: f64::from(cfg.connections_per_second),
            burst: f64::from(cfg.connection_burst.max(1)),
            ipv6_prefix: cfg.ipv6_prefix.min(128),
            exempt: cfg.exempt.iter().filter_map(|s| parse_net(s)).collect(),
            table: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Entry>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key an address counts under: itself (IPv4, IPv4-mapped IPv6),
    /// or its IPv6 prefix.
    fn key(&self, ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                let mask = match self.ipv6_prefix {
                    0 => 0,
                    p => u128::MAX << (128 - u32::from(p)),
                };
                IpAddr::V6((bits & mask).into())
            }
            v4 => v4,
        }
    }

    fn is_exempt(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.exempt.iter().any(|n| n.contains(&ip))
    }

    /// Admit a new connection from `ip`, or say why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<AddressGuard, Refusal> {
        let unlimited = self.max_open == 0 && self.rate <= 0.0;
        if unlimited || self.is_exempt(ip) {
            return Ok(AddressGuard::exempt());
        }
        let key = self.key(ip);
        let now = Instant::now();
        let mut table = self.lock();
        if table.len() >= MAX_KEYS && !table.contains_key(&key) {
            table.retain(|_, e| e.open > 0 || !e.bucket.is_full(now));
        }
        let (rate, burst) = (self.rate, self.burst);
        let e = table.entry(key).or_insert_with(|| Entry {
            open: 0,
            bucket: TokenBucket::new(rate, burst),
        });
        if self.max_open > 0 && e.open >= self.max_open {
            hit(Limit::ConnectionsPerAddress);
            return Err(Refusal::TooMany);
        }
        if self.rate > 0.0 && !e.bucket.try_take(1.0, now) {
            hit(Limit::ConnectionRate);
            return Err(Refusal::TooFast);
        }
        e.open += 1;
        Ok(AddressGuard {
            slot: Some(Box::new((self.clone(), key))),
        })
    }

    /// Connections open from the address's key now (for tests and status).
    pub fn open(&self, ip: IpAddr) -> usize {
        let key = self.key(ip);
        self.lock().get(&key).map_or(0, |e| e.open)
    }
}

/// "192.0.2.0/24", "2001:db8::/32", or a single address.
pub fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, rate: u32, burst: u32, exempt: &[&str]) -> Arc<AddressLimits> {
        let cfg = LimitsConfig {
            max_connections_per_ip: max,
            connections_per_second: rate,
            connection_burst: burst,
            exempt: exempt.iter().map(|s| s.to_string()).collect(),
            ..LimitsConfig::default()
        };
        Arc::new(AddressLimits::new(&cfg))
    }

    #[test]
    fn open_connections_are_counted_per_address_and_released() {
        let l = limits(2, 0, 1, &[]);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let g1 = l.admit(a).unwrap();
        let _g2 = l.admit(a).unwrap();
        assert_eq!(l.admit(a).err(), Some(Refusal::TooMany));
        assert!(l.admit(b).is_ok(), "another address has its own count");
        drop(g1);
        assert_eq!(l.open(a), 1);
        assert!(l.admit(a).is_ok());
    }

    #[test]
    fn ipv6_addresses_of_one_prefix_share_a_count() {
        let l = limits(1, 0, 1, &[]);
        let _g = l.admit("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert_eq!(
            l.admit("2001:db8:1:2:ffff::9".parse().unwrap()).err(),
            Some(Refusal::TooMany)
        );
        assert!(l.admit("2001:db8:1:3::1".parse().unwrap()).is_ok());
    }

    #[test]
    fn new_connections_beyond_the_burst_are_refused() {
        let l = limits(0, 1, 3, &[]);
        let a: IpAddr = "198.51.100.7".parse().unwrap();
        let guards: Vec<_> = (0..3).map(|_| l.admit(a).unwrap()).collect();
        assert_eq!(l.admit(a).err(), Some(Refusal::TooFast));
        drop(guards);
        assert_eq!(
            l.admit(a).err(),
            Some(Refusal::TooFast),
            "closing gives no new tokens"
        );
    }

    #[test]
    fn exempt_ranges_and_mapped_addresses() {
        let l = limits(1, 0, 1, &["127.0.0.0/8", "::1"]);
        let _a = l.admit("127.0.0.1".parse().unwrap()).unwrap();
        let _b = l.admit("127.0.0.1".parse().unwrap()).unwrap();
        let _c = l.admit("::ffff:127.0.0.2".parse().unwrap()).unwrap();
        let _d = l.admit("::1".parse().unwrap()).unwrap();
        let _e = l.admit("::1".parse().unwrap()).unwrap();
        let _f = l.admit("192.0.2.9".parse().unwrap()).unwrap();
        assert!(l.admit("::ffff:192.0.2.9".parse().unwrap()).is_err());
        assert!(parse_net("not an address").is_none());
    }
}
