//! External components (XEP-0114, Jabber Component Protocol): programs
//! such as push app servers and gateways connect to `[listen] component`,
//! prove themselves with a shared secret (`connection.rs`), and serve a
//! domain of their own. Each configured domain is a router service
//! ([`Component`]) whether or not its program is connected: stanzas to the
//! domain, or to JIDs of its subdomains, go to the connected stream, or
//! bounce with `service-unavailable` while nobody is connected.

mod connection;

use std::sync::{Arc, Mutex};

use roost_proto::{Stanza, StanzaError};
use tokio::sync::{mpsc, oneshot};

pub use connection::{serve_connection, Components};

use crate::config::ComponentConfig;
use crate::router::Service;
use crate::server::Server;

/// Stanzas queued for a component before it counts as too slow.
const QUEUE: usize = 1000;

/// The stream a component is connected with.
struct Attached {
    generation: u64,
    stanzas: mpsc::Sender<Stanza>,
    /// Fired when a newer stream of the same component takes over.
    replaced: oneshot::Sender<()>,
}

/// One configured component: its secret and, while connected, its stream.
pub struct Component {
    pub domain: String,
    secret: String,
    attached: Mutex<Option<Attached>>,
    next_generation: std::sync::atomic::AtomicU64,
}

impl Component {
    pub fn new(cfg: &ComponentConfig) -> Arc<Component> {
        Arc::new(Component {
            domain: cfg.domain.clone(),
            secret: cfg.secret.clone(),
            attached: Mutex::new(None),
            next_generation: std::sync::atomic::AtomicU64::new(1),
        })
    }

    /// XEP-0114 §3: hex(SHA-1(stream id + secret)).
    fn handshake_ok(&self, stream_id: &str, given: &str) -> bool {
        use sha1::Digest;
        let digest = sha1::Sha1::digest(format!("{stream_id}{}", self.secret).as_bytes());
        let expected = crate::s2s::dialback::hex(&digest);
        crate::s2s::dialback::same_secret(&expected, &given.trim().to_ascii_lowercase())
    }

    /// A newly authenticated stream takes over; the old one (if any) is
    /// told to close. Returns the new stream's generation, its stanzas and
    /// the signal that it has been replaced in turn.
    fn attach(&self) -> (u64, mpsc::Receiver<Stanza>, oneshot::Receiver<()>) {
        let generation = self
            .next_generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (stanzas, rx) = mpsc::channel(QUEUE);
        let (replaced, replaced_rx) = oneshot::channel();
        let old = self
            .attached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(Attached {
                generation,
                stanzas,
                replaced,
            });
        if let Some(old) = old {
            let _ = old.replaced.send(());
        }
        (generation, rx, replaced_rx)
    }

    /// The stream of `generation` ended (unless a newer one took over).
    fn detach(&self, generation: u64) {
        let mut slot = self.attached.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_some_and(|a| a.generation == generation) {
            *slot = None;
        }
    }

    pub fn is_connected(&self) -> bool {
        self.attached
            .lock()
            .map(|a| a.as_ref().is_some_and(|a| !a.stanzas.is_closed()))
            .unwrap_or(false)
    }

    /// Whether `domain` is this component's or one of its subdomains.
    pub fn serves(&self, domain: &str) -> bool {
        domain == self.domain
            || domain
                .strip_suffix(self.domain.as_str())
                .is_some_and(|head| head.ends_with('.') && head.len() > 1)
    }
}

impl Service for Component {
    fn is_component(&self) -> bool {
        true
    }

    fn available_here(&self) -> bool {
        self.attached.lock().is_ok_and(|a| a.is_some())
    }

    fn deliver(&self, server: &Arc<Server>, stanza: Stanza) {
        let sender = self
            .attached
            .lock()
            .ok()
            .and_then(|a| a.as_ref().map(|a| a.stanzas.clone()));
        let err = match sender {
            None => StanzaError::service_unavailable().with_text("the component is not connected"),
            Some(tx) => match tx.try_send(stanza) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(s)) => {
                    server.bounce(
                        &s,
                        StanzaError::new(roost_proto::Condition::ResourceConstraint)
                            .with_text("the component is not keeping up"),
                    );
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(s)) => {
                    server.bounce(
                        &s,
                        StanzaError::service_unavailable()
                            .with_text("the component is not connected"),
                    );
                    return;
                }
            },
        };
        server.bounce(&stanza, err);
    }

    fn covers_subdomains(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push() -> Arc<Component> {
        Component::new(&ComponentConfig {
            domain: "push.example.org".into(),
            secret: "s3cret".into(),
        })
    }

    #[test]
    fn the_handshake_is_the_sha1_of_stream_id_and_secret() {
        // The stream id of XEP-0114 §3's example with the secret "sesame";
        // the digest as `printf 3BF96D32sesame | sha1sum` prints it.
        let c = Component::new(&ComponentConfig {
            domain: "plays.shakespeare.lit".into(),
            secret: "sesame".into(),
        });
        assert!(c.handshake_ok("3BF96D32", "7a98dc4c9e92493d7fd66a25364c862637789c45"));
        assert!(c.handshake_ok("3BF96D32", "7A98DC4C9E92493D7FD66A25364C862637789C45"));
        assert!(!c.handshake_ok("3BF96D33", "7a98dc4c9e92493d7fd66a25364c862637789c45"));
        assert!(!c.handshake_ok("3BF96D32", ""));
    }

    #[test]
    fn a_component_serves_its_domain_and_subdomains_only() {
        let c = push();
        assert!(c.serves("push.example.org"));
        assert!(c.serves("eu.push.example.org"));
        assert!(!c.serves("xpush.example.org"));
        assert!(!c.serves("example.org"));
        assert!(!c.serves(".push.example.org"));
    }

    #[test]
    fn a_new_stream_replaces_the_old_one() {
        let c = push();
        let (g1, _rx1, mut replaced1) = c.attach();
        assert!(c.is_connected());
        let (g2, _rx2, _replaced2) = c.attach();
        assert!(
            replaced1.try_recv().is_ok(),
            "the first stream is told to go"
        );
        c.detach(g1);
        assert!(
            c.is_connected(),
            "the old stream's end does not detach the new one"
        );
        c.detach(g2);
        assert!(!c.is_connected());
    }
}
