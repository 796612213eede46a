//! Server-to-server federation (RFC 6120, XEP-0178, XEP-0220, XEP-0368):
//! stanzas for other domains leave through one outgoing stream per
//! (our domain, their domain) pair, set up on demand (`outgoing.rs`:
//! DNS, TLS, SASL EXTERNAL or Server Dialback); other servers' streams
//! come in on `[listen] s2s` and `s2s_tls` (`incoming.rs`), where every
//! stanza's `from` must be a domain that stream proved.
//!
//! Files: `resolve.rs` (static routes, SRV), `certs.rs` (who a
//! certificate proves), `dialback.rs` (XEP-0185 keys), `stream.rs` (the
//! XML stream and the `jabber:server` namespace), `verify.rs` (asking a
//! domain's server whether a dialback key is genuine), `bidi.rs`
//! (XEP-0288: one connection for both directions).

mod bidi;
pub mod certs;
pub mod dialback;
mod incoming;
mod multiplex;
mod outgoing;
pub mod resolve;
pub mod stream;
mod verify;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use roost_proto::{Condition, Stanza, StanzaError, StanzaKind};
use tokio::sync::mpsc;

use crate::config::S2sConfig;
use crate::server::Server;

pub use incoming::serve_connection;

/// The way to one outgoing stream's task.
#[derive(Clone)]
struct OutgoingHandle {
    stanzas: mpsc::Sender<Stanza>,
    generation: u64,
    /// The peer's incoming stream, used both ways (XEP-0288).
    bidi: bool,
}

/// What `/metrics` shows of federation.
pub struct S2sStats {
    /// Connections other servers opened to us.
    pub incoming: usize,
    /// Domain pairs we send to over a stream we opened.
    pub routes_outgoing: usize,
    /// Domain pairs we send to over a stream the peer opened (XEP-0288).
    pub routes_bidi: usize,
    /// Domain pairs that joined another pair's outgoing stream (XEP-0220
    /// §2.4 multiplexing).
    pub routes_multiplexed: usize,
    /// Outgoing connections.
    pub outgoing_connections: usize,
}

/// Federation state shared by the server: outgoing streams by domain
/// pair, our TLS identity and trust, the dialback secret, DNS.
pub struct S2s {
    pub(crate) config: S2sConfig,
    pub(crate) tls: certs::S2sTls,
    pub(crate) secret: dialback::Secret,
    pub(crate) resolver: resolve::Resolver,
    outgoing: Mutex<HashMap<(String, String), OutgoingHandle>>,
    next_generation: std::sync::atomic::AtomicU64,
    /// One permit per incoming server connection (`max_incoming`).
    pub(crate) incoming: Arc<tokio::sync::Semaphore>,
    /// Outgoing streams other domains of ours may join, by remote domain.
    mux_hosts: Mutex<HashMap<String, multiplex::HostHandle>>,
    /// Domain pairs currently relayed over another pair's stream.
    multiplexed: std::sync::atomic::AtomicUsize,
}

impl S2s {
    /// With the dialback secret the nodes of a cluster share.
    pub fn with_secret(config: S2sConfig, tls: certs::S2sTls, secret: &[u8; 32]) -> S2s {
        let mut s = S2s::new(config, tls);
        s.secret = dialback::Secret::from_bytes(secret);
        s
    }

    pub fn new(config: S2sConfig, tls: certs::S2sTls) -> S2s {
        let resolver = resolve::Resolver::new(&config.hosts, config.dns_server.as_deref());
        S2s {
            incoming: Arc::new(tokio::sync::Semaphore::new(config.max_incoming)),
            config,
            tls,
            secret: dialback::Secret::random(),
            resolver,
            outgoing: Mutex::new(HashMap::new()),
            next_generation: std::sync::atomic::AtomicU64::new(1),
            mux_hosts: Mutex::new(HashMap::new()),
            multiplexed: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    pub(crate) fn dialback_allowed(&self) -> bool {
        self.config.authentication == crate::config::S2sAuthentication::CertificateOrDialback
    }

    /// The outgoing stream from `local` to `remote`, started if needed;
    /// `None` when `max_outgoing` streams exist already.
    fn handle(
        self: &Arc<Self>,
        server: &Arc<Server>,
        local: &str,
        remote: &str,
    ) -> Option<OutgoingHandle> {
        let key = (local.to_string(), remote.to_string());
        let mut map = self.outgoing.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = map.get(&key) {
            if !h.stanzas.is_closed() {
                return Some(h.clone());
            }
        }
        if map.len() >= self.config.max_outgoing && !map.contains_key(&key) {
            crate::limits::hit(crate::limits::Limit::S2s);
            return None;
        }
        let (stanzas, stanza_rx) = mpsc::channel(self.config.max_queue);
        let generation = self
            .next_generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let handle = OutgoingHandle {
            stanzas,
            generation,
            bidi: false,
        };
        map.insert(key.clone(), handle.clone());
        tokio::spawn(outgoing::run(
            server.clone(),
            self.clone(),
            key.0,
            key.1,
            generation,
            stanza_rx,
        ));
        Some(handle)
    }

    pub fn stats(&self) -> S2sStats {
        let map = self.outgoing.lock().unwrap_or_else(|p| p.into_inner());
        let live = || map.values().filter(|h| !h.stanzas.is_closed());
        let multiplexed = self.multiplexed.load(std::sync::atomic::Ordering::Relaxed);
        let outgoing = live().filter(|h| !h.bidi).count();
        S2sStats {
            incoming: self.config.max_incoming - self.incoming.available_permits(),
            routes_outgoing: outgoing,
            routes_bidi: live().filter(|h| h.bidi).count(),
            routes_multiplexed: multiplexed,
            outgoing_connections: outgoing.saturating_sub(multiplexed),
        }
    }

    /// A bidirectional incoming stream offers itself as the way from
    /// `local` to `remote` (XEP-0288); taken when no outgoing stream for
    /// the pair is alive. The generation to give back with [`S2s::retire`].
    fn adopt(&self, local: &str, remote: &str, stanzas: mpsc::Sender<Stanza>) -> Option<u64> {
        let key = (local.to_string(), remote.to_string());
        let mut map = self.outgoing.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(&key).is_some_and(|h| !h.stanzas.is_closed()) {
            return None;
        }
        let generation = self
            .next_generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        map.insert(
            key,
            OutgoingHandle {
                stanzas,
                generation,
                bidi: true,
            },
        );
        Some(generation)
    }

    /// Called by an outgoing task that ends; `false` if a newer one took over.
    fn retire(&self, local: &str, remote: &str, generation: u64) -> bool {
        let mut map = self.outgoing.lock().unwrap_or_else(|p| p.into_inner());
        let key = (local.to_string(), remote.to_string());
        match map.get(&key) {
            Some(h) if h.generation == generation => {
                map.remove(&key);
                true
            }
            _ => false,
        }
    }

    /// Send a stanza from one of our domains to another server.
    pub fn send(self: &Arc<Self>, server: &Arc<Server>, stanza: Stanza) {
        let (Some(from), Some(to)) = (stanza.from.clone(), stanza.to.clone()) else {
            return;
        };
        let local = from.domain().to_string();
        if !server.hosts(&local) {
            tracing::warn!(%from, "not sending a stanza from a domain we do not host");
            return;
        }
        let Some(handle) = self.handle(server, &local, to.domain().as_str()) else {
            tracing::warn!(remote = %to.domain(), "too many outgoing server streams");
            bounce(
                server,
                &stanza,
                StanzaError::new(Condition::ResourceConstraint)
                    .with_text("too many servers are being talked to"),
            );
            return;
        };
        if let Err(e) = handle.stanzas.try_send(stanza) {
            let stanza = match e {
                mpsc::error::TrySendError::Full(s) | mpsc::error::TrySendError::Closed(s) => s,
            };
            crate::limits::hit(crate::limits::Limit::S2s);
            bounce(
                server,
                &stanza,
                StanzaError::new(Condition::ResourceConstraint)
                    .with_text("too many stanzas are waiting for that server"),
            );
        }
    }

    /// Ask `originating`'s authoritative server whether `key` is its key for
    /// a stream to `receiving` with `stream_id` (XEP-0220 §2.1.3).
    pub(crate) async fn verify(
        self: &Arc<Self>,
        server: &Arc<Server>,
        receiving: &str,
        originating: &str,
        stream_id: &str,
        key: &str,
    ) -> verify::Verdict {
        let max = server.config.limits.max_stanza_size;
        verify::ask(self, max, receiving, originating, stream_id, key).await
    }
}

/// A stanza that arrived on a server stream, checked before it is
/// routed: its `from` must be a domain the stream proved (RFC 6120
/// §4.9.3.9, §8.1.2.2) and its `to` one we host; else the stream error.
pub(crate) fn admit(
    server: &Server,
    el: minidom::Element,
    proven: impl Fn(&str) -> bool,
    anything_proven: bool,
) -> Result<Stanza, roost_proto::StreamError> {
    use roost_proto::StreamError;
    let stanza = Stanza::parse(el).map_err(|_| StreamError::UnsupportedStanzaType)?;
    if !stanza
        .from
        .as_ref()
        .is_some_and(|f| proven(f.domain().as_str()))
    {
        return Err(if anything_proven {
            StreamError::InvalidFrom
        } else {
            StreamError::NotAuthorized
        });
    }
    if !stanza
        .to
        .as_ref()
        .is_some_and(|t| server.hosts(t.domain().as_str()))
    {
        return Err(StreamError::HostUnknown);
    }
    Ok(stanza)
}

/// A stanza that cannot reach its server: an error back to the sender
/// (RFC 6120 §10.4.3), except for errors themselves (§8.3.1) and presence
/// that expects no answer (unavailable, probes, subscription answers).
/// Available presence does bounce: it is how a join of a room on an
/// unreachable server learns that it failed (XEP-0045 §7.2).
pub(crate) fn bounce(server: &Arc<Server>, stanza: &Stanza, err: StanzaError) {
    if stanza.kind == StanzaKind::Presence && stanza.type_attr().is_some() {
        return;
    }
    server.bounce(stanza, err);
}
