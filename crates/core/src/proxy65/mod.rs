//! XEP-0065: SOCKS5 Bytestreams — the proxy on `proxy.<domain>` (§4,
//! §6): it tells local users its network address (streamhost), accepts
//! SOCKS5 connections on `[listen] proxy65` (`socks5.rs`), pairs the
//! target's and the requester's connections by stream address
//! (`streams.rs`) and, when the requester activates the stream, relays
//! bytes between them (`relay.rs`).
//!
//! Who may use it: accounts of this server (the `from` domain is the
//! server's own and has a local part). Others get `forbidden` (§4) for
//! both the streamhost query and activation. The SOCKS5 side needs no
//! login: whoever knows a stream address is the stream's party, and only
//! the requester, whose full JID is hashed into the address, can activate.

pub mod relay;
pub mod socks5;
pub mod streams;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jid::{BareJid, Jid};
use minidom::Element;
use roost_proto::{ns, Condition, Elem, Stanza, StanzaError, StanzaKind};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::router::Service;
use crate::server::Server;
use socks5::{HandshakeError, Reply};
use streams::{ActivationError, Parked, StreamLimits, Streams};

pub const NS: &str = "http://jabber.org/protocol/bytestreams";

/// Open SOCKS5 connections at most (handshaking, waiting or relaying),
/// against floods of streams never activated (XEP-0065 §11.3).
const MAX_CONNECTIONS: usize = 4096;
/// The longest a client may take over its SOCKS5 handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// `[proxy65]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Proxy65Config {
    pub enabled: bool,
    /// The service's domain; default `proxy.<domain>`.
    pub domain: Option<String>,
    /// The address announced to clients in `<streamhost host=…>`; default
    /// the IP of the first `[listen] proxy65` address, or the server's
    /// domain when that address is a wildcard (0.0.0.0, ::).
    pub host: Option<String>,
    /// The port announced; default the first listener's.
    pub port: Option<u16>,
    /// Streams a user may have active at once.
    pub max_streams_per_user: usize,
    /// Seconds without a byte either way before a stream is closed.
    pub idle_timeout: u64,
    /// Seconds a stream may wait for its second connection and activation.
    pub pending_timeout: u64,
    /// Bytes per second per stream, both directions together; 0 is
    /// unlimited.
    pub max_rate: u64,
}

impl Default for Proxy65Config {
    fn default() -> Self {
        Proxy65Config {
            enabled: true,
            domain: None,
            host: None,
            port: None,
            max_streams_per_user: 8,
            idle_timeout: 300,
            pending_timeout: 60,
            max_rate: 0,
        }
    }
}

impl Proxy65Config {
    pub fn service_domain(&self, domain: &str) -> String {
        self.domain
            .clone()
            .unwrap_or_else(|| format!("proxy.{domain}"))
    }

    /// XEP-0065 §4: the host and port announced, given the address the
    /// first listener is bound to.
    pub fn streamhost(&self, domain: &str, bound: SocketAddr) -> (String, u16) {
        let host = match &self.host {
            Some(h) => h.clone(),
            None if bound.ip().is_unspecified() => domain.to_string(),
            // IpAddr's text form of IPv6 is RFC 5952's, as §4 asks.
            None => bound.ip().to_string(),
        };
        (host, self.port.unwrap_or(bound.port()))
    }

    /// The keys whose values cannot work, with the reason.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        for (key, ok) in [
            (
                "proxy65.max_streams_per_user",
                self.max_streams_per_user >= 1,
            ),
            ("proxy65.idle_timeout", self.idle_timeout >= 1),
            ("proxy65.pending_timeout", self.pending_timeout >= 1),
        ] {
            if !ok {
                return Err((key, "value too small".into()));
            }
        }
        if let Some(d) = &self.domain {
            if BareJid::new(d).ok().is_none_or(|j| j.node().is_some()) {
                return Err(("proxy65.domain", format!("{d:?} is not a valid domain")));
            }
        }
        if self.host.as_deref().is_some_and(|h| h.trim().is_empty()) {
            return Err(("proxy65.host", "empty".into()));
        }
        if self.port == Some(0) {
            return Err(("proxy65.port", "port 0 cannot be announced".into()));
        }
        Ok(())
    }
}

/// The proxy: its service on `proxy.<domain>` and its streams.
pub struct Proxy65 {
    pub config: Proxy65Config,
    pub domain: String,
    /// What `<streamhost/>` announces.
    host: String,
    port: u16,
    pub streams: Arc<Streams>,
    connections: Arc<Semaphore>,
}

impl Proxy65 {
    /// The proxy whose SOCKS5 listener is bound at `bound`.
    pub fn new(config: Proxy65Config, server: &Server, bound: SocketAddr) -> Arc<Proxy65> {
        let domain = config.service_domain(&server.config.domain);
        let (host, port) = config.streamhost(&server.config.domain, bound);
        let limits = StreamLimits {
            pending_timeout: Duration::from_secs(config.pending_timeout),
            max_streams_per_user: config.max_streams_per_user,
            relay: relay::RelayLimits {
                idle: Duration::from_secs(config.idle_timeout),
                max_rate: config.max_rate,
            },
        };
        Arc::new(Proxy65 {
            streams: Streams::new(limits, server.shutdown_signal()),
            config,
            domain,
            host,
            port,
            connections: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        })
    }

    /// One SOCKS5 connection: handshake, then a place in its stream.
    pub async fn serve_connection(self: Arc<Self>, mut tcp: TcpStream, peer: SocketAddr) {
        let Ok(permit) = self.connections.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "bytestreams proxy full; refusing a connection");
            return;
        };
        let limit = HANDSHAKE_TIMEOUT.min(Duration::from_secs(self.config.pending_timeout));
        let request = match socks5::accept(&mut tcp, limit).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "SOCKS5 handshake failed");
                if !matches!(e, HandshakeError::Io(_) | HandshakeError::Timeout) {
                    close_gently(tcp).await;
                }
                return;
            }
        };
        let reservation = match self.streams.reserve(&request.address) {
            Ok(r) => r,
            Err(refusal) => {
                tracing::debug!(%peer, address = %request.address, "third connection refused");
                let reply = request.reply(refusal);
                if let Ok(Ok(())) = tokio::time::timeout(limit, tcp.write_all(&reply)).await {
                    close_gently(tcp).await;
                }
                return;
            }
        };
        let reply = request.reply(Reply::Succeeded);
        match tokio::time::timeout(limit, tcp.write_all(&reply)).await {
            Ok(Ok(())) => reservation.park(Parked {
                stream: tcp,
                permit,
            }),
            _ => tracing::debug!(%peer, "SOCKS5 reply not written"),
        }
    }

    /// XEP-0065 §4: the network address of the proxy.
    fn streamhost(&self) -> Element {
        Element::bare("query", NS).child(
            Element::bare("streamhost", NS)
                .attr_set("jid", self.domain.clone())
                .attr_set("host", self.host.clone())
                .attr_set("port", self.port.to_string()),
        )
    }

    /// XEP-0065 §6.3.5: the requester (the IQ's `from`) activates the
    /// stream of `sid` with the target named in `<activate/>`.
    fn activate(&self, requester: &Jid, query: &Element) -> Result<(), StanzaError> {
        let sid = query
            .attr("sid")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| StanzaError::bad_request("the query needs a sid"))?;
        let target = query
            .get_child("activate", NS)
            .map(|a| a.text())
            .ok_or_else(|| StanzaError::bad_request("the query needs <activate/>"))?;
        let target = Jid::new(target.trim())
            .map_err(|_| StanzaError::bad_request("<activate/> holds no valid JID"))?;
        // §5.3.2: the JIDs are hashed in their normalised form.
        let address =
            socks5::StreamAddress::compute(sid, &requester.to_string(), &target.to_string());
        self.streams
            .activate(&address, &requester.to_bare())
            .map_err(|e| match e {
                // §6.3.5: the from address is not the requester of any
                // stream with this sid and target.
                ActivationError::Unknown => StanzaError::new(Condition::ItemNotFound)
                    .with_text("no connection for this stream"),
                // §6.3.5: only one party is connected.
                ActivationError::OnlyOneParty => {
                    StanzaError::new(Condition::NotAllowed).with_text("only one party is connected")
                }
                ActivationError::AlreadyActive => StanzaError::new(Condition::NotAllowed)
                    .with_text("the stream is already active"),
                ActivationError::TooManyStreams => {
                    crate::limits::hit(crate::limits::Limit::Proxy65);
                    StanzaError::new(Condition::ResourceConstraint).with_text(format!(
                        "at most {} streams at once",
                        self.config.max_streams_per_user
                    ))
                }
            })
    }

    fn answer(&self, server: &Server, stanza: &Stanza) -> Result<Option<Element>, StanzaError> {
        let payload = stanza
            .el
            .children()
            .next()
            .ok_or_else(StanzaError::service_unavailable)?;
        let get = stanza.type_attr() == Some("get");
        if payload.is("query", ns::DISCO_INFO) && get && payload.attr("node").is_none() {
            return Ok(Some(crate::caps::disco_info(
                vec![crate::caps::disco_identity(
                    "proxy",
                    "bytestreams",
                    Some("SOCKS5 Bytestreams Service"),
                )],
                vec![NS],
                None,
            )));
        }
        if payload.is("query", ns::DISCO_ITEMS) && get {
            return Ok(Some(Element::bare("query", ns::DISCO_ITEMS)));
        }
        if payload.is("query", NS) {
            let requester = stanza
                .from
                .as_ref()
                .filter(|f| f.domain().as_str() == server.config.domain && f.node().is_some())
                .ok_or_else(|| {
                    // §4: a requester not allowed to use the proxy.
                    StanzaError::new(Condition::Forbidden)
                        .with_text("the proxy is for this server's users")
                })?;
            if get {
                return Ok(Some(self.streamhost()));
            }
            return self.activate(requester, payload).map(|()| None);
        }
        Err(StanzaError::service_unavailable())
    }
}

/// Close after a refusal so that the client reads it: send FIN, then drop
/// what the client still sends for a moment. Closing with unread input
/// would reset the connection, and a reset can discard the refusal.
async fn close_gently(mut tcp: TcpStream) {
    if tcp.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 1024];
    let drain = async {
        let mut left = 64 * 1024usize;
        while left > 0 {
            match tcp.read(&mut sink).await {
                Ok(n) if n > 0 => left = left.saturating_sub(n),
                _ => return,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

impl Service for Proxy65 {
    fn deliver(&self, server: &Arc<Server>, stanza: Stanza) {
        if stanza.kind != StanzaKind::Iq || !stanza.is_iq_request() {
            if stanza.kind == StanzaKind::Message && !stanza.is_error() {
                server.bounce(&stanza, StanzaError::service_unavailable());
            }
            return;
        }
        let reply = crate::server::iq_reply(&stanza.el, self.answer(server, &stanza));
        server.route_element(reply);
    }
    fn name(&self) -> Option<String> {
        Some("SOCKS5 Bytestreams Proxy".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_announced_host_is_the_bound_ip_or_the_domain_for_a_wildcard() {
        let c = Proxy65Config::default();
        let at = |a: &str| c.streamhost("example.org", a.parse().unwrap());
        assert_eq!(at("127.0.0.1:5000"), ("127.0.0.1".into(), 5000));
        assert_eq!(at("0.0.0.0:5000"), ("example.org".into(), 5000));
        assert_eq!(at("[::]:5000"), ("example.org".into(), 5000));
        assert_eq!(at("[2001:db8::1]:7625"), ("2001:db8::1".into(), 7625));
        let c = Proxy65Config {
            host: Some("proxy.example.org".into()),
            port: Some(7625),
            ..Proxy65Config::default()
        };
        assert_eq!(
            c.streamhost("example.org", "0.0.0.0:5000".parse().unwrap()),
            ("proxy.example.org".into(), 7625)
        );
    }

    #[test]
    fn unworkable_values_name_their_key() {
        let bad = |c: Proxy65Config| c.validate().unwrap_err().0;
        assert!(Proxy65Config::default().validate().is_ok());
        assert_eq!(
            bad(Proxy65Config {
                idle_timeout: 0,
                ..Default::default()
            }),
            "proxy65.idle_timeout"
        );
        assert_eq!(
            bad(Proxy65Config {
                max_streams_per_user: 0,
                ..Default::default()
            }),
            "proxy65.max_streams_per_user"
        );
        assert_eq!(
            bad(Proxy65Config {
                domain: Some("a@b".into()),
                ..Default::default()
            }),
            "proxy65.domain"
        );
        assert_eq!(
            bad(Proxy65Config {
                port: Some(0),
                ..Default::default()
            }),
            "proxy65.port"
        );
    }
}
