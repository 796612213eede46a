//! Which web pages may open a WebSocket to us (RFC 6455 §10.2): browsers
//! send the page's Origin, other clients send none. A foreign page must
//! not use a visitor's browser as a client of this server — most of all
//! one on the server's own machine, where a loopback peer may register
//! accounts in-band and plain `ws` counts as secure.
//!
//! Rules: no Origin is allowed (not a browser); the endpoint's own origin
//! is allowed; `"*"` in `http.allowed_origins` allows every origin; a
//! non-empty list allows exactly its entries; an empty list allows pages
//! on loopback hosts (`localhost`, 127.0.0.0/8, `[::1]`).

use std::net::IpAddr;

/// A parsed `scheme://host[:port]`, lower-cased, default port made explicit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// Parse an origin as browsers serialise it; `None` for anything else
    /// (paths, user info, `null`, unknown schemes).
    pub fn parse(s: &str) -> Option<Origin> {
        let s = s.trim().trim_end_matches('/');
        let (scheme, authority) = s.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" | "ws" => 80,
            "https" | "wss" => 443,
            _ => return None,
        };
        let (host, port) = split_authority(authority)?;
        Some(Origin {
            scheme,
            host,
            port: port.unwrap_or(default_port),
        })
    }

    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.host)
    }
}

/// Split `host[:port]` into a lower-cased host and its port; `None` when it
/// is not a DNS name, an IPv4 address or a bracketed IPv6 address with an
/// optional decimal port.
pub fn split_authority(s: &str) -> Option<(String, Option<u16>)> {
    if s.is_empty() || s.len() > 255 {
        return None;
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        v6.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{}]", v6.to_ascii_lowercase()), port)
    } else {
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        let name_ok = !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !name_ok {
            return None;
        }
        (host.to_ascii_lowercase(), port)
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().ok()?)
        }
        Some(_) => return None,
    };
    Some((host, port))
}

/// `host[:port]` as given, if it looks like one (for URLs we hand out).
pub fn valid_authority(s: &str) -> bool {
    split_authority(s).is_some()
}

pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host.ends_with(".localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether a WebSocket upgrade with this Origin header may proceed.
/// `own`: the endpoint's own origin (scheme of the listener, request Host).
pub fn allowed(origin: Option<&str>, allowed: &[String], own: Option<&Origin>) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    if allowed.iter().any(|a| a == "*") {
        return true;
    }
    let Some(origin) = Origin::parse(origin) else {
        return false;
    };
    if own.is_some_and(|o| *o == origin) {
        return true;
    }
    if allowed.is_empty() {
        return origin.is_loopback();
    }
    allowed
        .iter()
        .filter_map(|a| Origin::parse(a))
        .any(|a| a == origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_are_hosts_with_optional_ports() {
        for ok in [
            "localhost",
            "localhost:5280",
            "chat.example.org",
            "127.0.0.1:80",
            "[::1]:5281",
            "[::1]",
            "xn--bcher-kva.example",
        ] {
            assert!(valid_authority(ok), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "evil.com/x",
            "user@host",
            "host:",
            "host:99999",
            "host:80:80",
            "<script>",
            "[::1",
            "[nope]:1",
            "a..b",
            "host\"",
        ] {
            assert!(!valid_authority(bad), "{bad}");
        }
    }

    #[test]
    fn origins_parse_with_default_ports() {
        let o = Origin::parse("HTTPS://Chat.Example.org").unwrap();
        assert_eq!(
            o,
            Origin {
                scheme: "https".into(),
                host: "chat.example.org".into(),
                port: 443
            }
        );
        assert_eq!(Origin::parse("http://localhost:8080/").unwrap().port, 8080);
        assert!(Origin::parse("null").is_none());
        assert!(Origin::parse("file://").is_none());
        assert!(Origin::parse("https://a.example/path").is_none());
    }

    #[test]
    fn the_empty_list_allows_no_origin_loopback_and_same_origin() {
        let own = Origin::parse("http://chat.example.org:5280");
        let none: Vec<String> = Vec::new();
        assert!(allowed(None, &none, own.as_ref()));
        assert!(allowed(Some("http://localhost:8080"), &none, own.as_ref()));
        assert!(allowed(Some("http://127.0.0.1"), &none, own.as_ref()));
        assert!(allowed(Some("http://[::1]:3000"), &none, own.as_ref()));
        assert!(allowed(
            Some("http://chat.example.org:5280"),
            &none,
            own.as_ref()
        ));
        assert!(!allowed(Some("https://evil.example"), &none, own.as_ref()));
        assert!(!allowed(Some("null"), &none, own.as_ref()));
        assert!(!allowed(
            Some("http://localhost.evil.example"),
            &none,
            own.as_ref()
        ));
    }

    #[test]
    fn a_list_allows_exactly_its_entries() {
        let list = vec!["https://web.example.org".to_string()];
        assert!(allowed(Some("https://web.example.org"), &list, None));
        assert!(allowed(Some("https://web.example.org:443"), &list, None));
        assert!(!allowed(Some("http://web.example.org"), &list, None));
        assert!(!allowed(Some("http://localhost:8080"), &list, None));
        assert!(allowed(Some("https://anything"), &["*".to_string()], None));
    }
}
