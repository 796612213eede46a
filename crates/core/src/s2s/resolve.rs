//! Where a remote domain's XMPP server listens (RFC 6120 §3.2): static
//! routes from `[s2s] hosts` first; otherwise DNS SRV records for
//! `_xmpps-server._tcp` (direct TLS, XEP-0368) and `_xmpp-server._tcp`
//! (STARTTLS), ordered by priority and weight (RFC 2782); otherwise the
//! domain's own addresses on port 5269. DNS is asked through
//! hickory-resolver, from the system's configuration or `[s2s] dns_server`.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::TokioResolver;
use rand::Rng;

/// The default server-to-server port (RFC 6120 §3.2.1).
pub const DEFAULT_PORT: u16 = 5269;

/// One place to try, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    /// XEP-0368: TLS from the first byte, ALPN `xmpp-server`.
    pub direct_tls: bool,
}

/// One SRV record, as RFC 2782 orders them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
    pub direct_tls: bool,
}

/// RFC 2782: lowest priority first; within a priority, a weighted random
/// order (a record's chance of coming next is its share of the weight
/// left; weight 0 records come last unless all are 0).
pub fn order_srv(mut records: Vec<Srv>, rng: &mut impl Rng) -> Vec<Srv> {
    records.sort_by_key(|r| r.priority);
    let mut out = Vec::with_capacity(records.len());
    let mut i = 0;
    while i < records.len() {
        let p = records[i].priority;
        let mut group: Vec<Srv> = records[i..]
            .iter()
            .take_while(|r| r.priority == p)
            .cloned()
            .collect();
        i += group.len();
        // Zero-weight records first in the list (RFC 2782's arrangement).
        group.sort_by_key(|r| r.weight != 0);
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let pick = if total == 0 {
                0
            } else {
                let roll = rng.random_range(0..=total);
                let mut running = 0u32;
                group
                    .iter()
                    .position(|r| {
                        running += u32::from(r.weight);
                        running >= roll
                    })
                    .unwrap_or(0)
            };
            out.push(group.remove(pick));
        }
    }
    out
}

pub struct Resolver {
    hosts: BTreeMap<String, SocketAddr>,
    dns: Option<TokioResolver>,
}

impl Resolver {
    /// Static routes, and DNS from `dns_server` or the system's settings.
    pub fn new(hosts: &BTreeMap<String, String>, dns_server: Option<&str>) -> Resolver {
        let hosts = hosts
            .iter()
            .filter_map(|(d, a)| Some((d.to_ascii_lowercase(), a.parse().ok()?)))
            .collect();
        let dns = match dns_server.and_then(|s| s.parse::<SocketAddr>().ok()) {
            Some(server) => {
                let group =
                    NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true);
                let config = ResolverConfig::from_parts(None, vec![], group);
                Some(
                    TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
                        .build(),
                )
            }
            None => match TokioResolver::builder_tokio() {
                Ok(b) => Some(b.build()),
                Err(e) => {
                    tracing::warn!(error = %e, "no system DNS configuration; only [s2s] hosts are reachable");
                    None
                }
            },
        };
        Resolver { hosts, dns }
    }

    /// Where to connect for `domain`, in the order to try.
    pub async fn targets(&self, domain: &str) -> Vec<Target> {
        if let Some(addr) = self.hosts.get(&domain.to_ascii_lowercase()) {
            return vec![Target {
                addr: *addr,
                direct_tls: false,
            }];
        }
        let Some(dns) = &self.dns else {
            return Vec::new();
        };
        let mut records = Vec::new();
        for (service, direct_tls) in [("_xmpps-server._tcp", true), ("_xmpp-server._tcp", false)] {
            let name = format!("{service}.{domain}.");
            if let Ok(found) = dns.srv_lookup(name.as_str()).await {
                for srv in found.iter() {
                    records.push(Srv {
                        priority: srv.priority(),
                        weight: srv.weight(),
                        port: srv.port(),
                        target: srv.target().to_utf8(),
                        direct_tls,
                    });
                }
            }
        }
        // RFC 6120 §3.2.1: a single "." target means no service at all.
        if records.len() == 1 && records[0].target.trim_end_matches('.').is_empty() {
            return Vec::new();
        }
        let ordered = if records.is_empty() {
            vec![Srv {
                priority: 0,
                weight: 0,
                port: DEFAULT_PORT,
                target: format!("{domain}."),
                direct_tls: false,
            }]
        } else {
            order_srv(records, &mut rand::rng())
        };
        let mut targets = Vec::new();
        for srv in ordered {
            if srv.target.trim_end_matches('.').is_empty() {
                continue;
            }
            if let Ok(ips) = dns.lookup_ip(srv.target.as_str()).await {
                for ip in ips.iter() {
                    targets.push(Target {
                        addr: SocketAddr::new(ip, srv.port),
                        direct_tls: srv.direct_tls,
                    });
                }
            }
        }
        targets
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn srv(priority: u16, weight: u16, target: &str) -> Srv {
        Srv {
            priority,
            weight,
            port: 5269,
            target: target.into(),
            direct_tls: false,
        }
    }

    #[test]
    fn lower_priority_always_comes_first() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..50 {
            let out = order_srv(
                vec![
                    srv(20, 100, "c"),
                    srv(10, 0, "a"),
                    srv(10, 5, "b"),
                    srv(30, 1, "d"),
                ],
                &mut rng,
            );
            let prios: Vec<u16> = out.iter().map(|r| r.priority).collect();
            assert_eq!(prios, [10, 10, 20, 30]);
        }
    }

    #[test]
    fn weights_decide_how_often_a_record_comes_first() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut heavy_first = 0;
        for _ in 0..2000 {
            let out = order_srv(vec![srv(1, 90, "heavy"), srv(1, 10, "light")], &mut rng);
            if out[0].target == "heavy" {
                heavy_first += 1;
            }
        }
        // About 90 %: far from 50 %, and the light one still gets turns.
        assert!((1650..1950).contains(&heavy_first), "{heavy_first}");
    }

    #[test]
    fn zero_weights_are_all_kept() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let out = order_srv(vec![srv(1, 0, "a"), srv(1, 0, "b")], &mut rng);
        assert_eq!(out.len(), 2);
    }

    #[tokio::test]
    async fn static_hosts_skip_dns() {
        let mut hosts = BTreeMap::new();
        hosts.insert("Peer.Test".to_string(), "127.0.0.3:5269".to_string());
        let r = Resolver {
            hosts: hosts
                .iter()
                .map(|(d, a)| (d.to_ascii_lowercase(), a.parse().unwrap()))
                .collect(),
            dns: None,
        };
        assert_eq!(
            r.targets("peer.test").await,
            vec![Target {
                addr: "127.0.0.3:5269".parse().unwrap(),
                direct_tls: false
            }]
        );
        assert!(r.targets("other.test").await.is_empty());
    }
}
