//! `[listen]` addresses: every listener key takes one address or a list
//! (`c2s = ["0.0.0.0:5222", "[::]:5222"]`), and binding them. IPv6
//! wildcard sockets are made IPv6-only so that they can sit beside an IPv4
//! wildcard on the same port, as operators write them.

use std::io;
use std::net::SocketAddr;

use anyhow::Context;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::net::TcpListener;

/// The addresses of one listener key; empty disables the listener.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Addresses(pub Vec<String>);

impl Addresses {
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first address that is not `address:port`, if any.
    pub fn invalid(&self) -> Option<&str> {
        self.iter().find(|a| a.parse::<SocketAddr>().is_err())
    }
}

/// `""` is the historic way to disable a listener: no address at all.
impl From<&str> for Addresses {
    fn from(s: &str) -> Self {
        if s.is_empty() {
            Addresses(Vec::new())
        } else {
            Addresses(vec![s.to_string()])
        }
    }
}

impl<const N: usize> From<[&str; N]> for Addresses {
    fn from(list: [&str; N]) -> Self {
        Addresses(list.iter().map(|s| s.to_string()).collect())
    }
}

impl PartialEq<&str> for Addresses {
    fn eq(&self, other: &&str) -> bool {
        match self.0.as_slice() {
            [] => other.is_empty(),
            [one] => one == other,
            _ => false,
        }
    }
}

impl Serialize for Addresses {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [] => s.serialize_str(""),
            [one] => s.serialize_str(one),
            many => many.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Addresses {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, expecting = "an address:port string or a list of them")]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(s) => Addresses::from(s.as_str()),
            OneOrMany::Many(list) => {
                Addresses(list.into_iter().filter(|a| !a.is_empty()).collect())
            }
        })
    }
}

/// Bind every address of a key. An address whose family this host lacks
/// (no IPv6, say) is skipped with a warning as long as another address of
/// the key was bound; anything else (a port in use) stops the start.
pub async fn bind_all(key: &str, addrs: &Addresses) -> anyhow::Result<Vec<TcpListener>> {
    let mut bound = Vec::new();
    let mut skipped = Vec::new();
    for text in addrs.iter() {
        let addr: SocketAddr = text
            .parse()
            .with_context(|| format!("listen.{key}: {text:?} is not an address:port"))?;
        match bind_one(addr) {
            Ok(l) => bound.push(l),
            Err(e) if family_unavailable(&e) => skipped.push((text, e)),
            Err(e) => {
                return Err(e).with_context(|| format!("listen.{key}: cannot listen on {text}"))
            }
        }
    }
    if bound.is_empty() {
        if let Some((text, e)) = skipped.into_iter().next() {
            return Err(e).with_context(|| format!("listen.{key}: cannot listen on {text}"));
        }
    } else {
        for (text, e) in skipped {
            tracing::warn!(key, addr = text, error = %e, "address not available on this host; skipped");
        }
    }
    Ok(bound)
}

fn bind_one(addr: SocketAddr) -> io::Result<TcpListener> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    if addr.is_ipv6() {
        // "[::]:5222" beside "0.0.0.0:5222": each family its own socket.
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

fn family_unavailable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc_codes::EAFNOSUPPORT) | Some(libc_codes::EADDRNOTAVAIL)
    )
}

/// The two errno values meaning "this host has no such address family or
/// address" (Linux and the BSDs agree on neither, so take them per OS).
mod libc_codes {
    #[cfg(target_os = "linux")]
    pub const EAFNOSUPPORT: i32 = 97;
    #[cfg(target_os = "linux")]
    pub const EADDRNOTAVAIL: i32 = 99;
    #[cfg(not(target_os = "linux"))]
    pub const EAFNOSUPPORT: i32 = 47;
    #[cfg(not(target_os = "linux"))]
    pub const EADDRNOTAVAIL: i32 = 49;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Serialize)]
    struct T {
        a: Addresses,
    }

    #[test]
    fn a_string_or_a_list_is_accepted_and_printed_back() {
        let t: T = toml::from_str("a = \"127.0.0.1:1\"").unwrap();
        assert_eq!(t.a, Addresses::from("127.0.0.1:1"));
        let t: T = toml::from_str("a = [\"127.0.0.1:1\", \"[::1]:1\"]").unwrap();
        assert_eq!(t.a, Addresses::from(["127.0.0.1:1", "[::1]:1"]));
        let back: T = toml::from_str(&toml::to_string(&t).unwrap()).unwrap();
        assert_eq!(back.a, t.a);
        let t: T = toml::from_str("a = \"\"").unwrap();
        assert!(t.a.is_empty());
        let t: T = toml::from_str("a = []").unwrap();
        assert!(t.a.is_empty());
        assert!(toml::from_str::<T>("a = 5").is_err());
    }

    #[tokio::test]
    async fn an_ipv4_and_an_ipv6_wildcard_share_a_port() {
        let first = bind_all("c2s", &Addresses::from("127.0.0.1:0"))
            .await
            .unwrap();
        let port = first[0].local_addr().unwrap().port();
        drop(first);
        let both = format!("0.0.0.0:{port}");
        let v6 = format!("[::]:{port}");
        let list = Addresses(vec![both, v6]);
        // Hosts without IPv6 keep the IPv4 socket and skip the other.
        let bound = bind_all("c2s", &list).await.unwrap();
        assert!(!bound.is_empty());
    }

    #[tokio::test]
    async fn a_port_in_use_is_an_error_naming_the_key() {
        let first = bind_all("c2s", &Addresses::from("127.0.0.1:0"))
            .await
            .unwrap();
        let addr = first[0].local_addr().unwrap().to_string();
        let err = bind_all("c2s_tls", &Addresses::from(addr.as_str()))
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("listen.c2s_tls"), "{err:#}");
    }
}
