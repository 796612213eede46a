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
//! domain's server whether a dialback key is genuine).

pub mod certs;
pub mod dialback;
mod incoming;
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
}

impl S2s {
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
            return None;
        }
        let (stanzas, stanza_rx) = mpsc::channel(self.config.max_queue);
        let generation = self
            .next_generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let handle = OutgoingHandle {
            stanzas,
            generation,
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
    ) -> bool {
        let max = server.config.limits.max_stanza_size;
        verify::ask(self, max, receiving, originating, stream_id, key).await
    }
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
