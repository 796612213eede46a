//! Bidirectional server streams (XEP-0288): one connection carries
//! stanzas both ways. The receiving side offers `<bidi/>` in its stream
//! features; the connecting side asks with `<bidi/>` after TLS and before
//! authentication. From then on the receiving side may send stanzas from
//! the domain the peer addressed to the domains the peer proved, and the
//! connecting side accepts stanzas from the domain it connected to.
//!
//! On our incoming streams the stream's task takes the place of an
//! outgoing task for each proven pair ([`Route`]); on our outgoing
//! streams the pump admits what the peer sends with [`super::admit`].

use minidom::Element;
use roost_proto::Stanza;
use tokio::sync::mpsc;

use super::S2s;

/// The stream feature a receiving server offers.
pub const FEATURE_NS: &str = "urn:xmpp:features:bidi";
/// The element a connecting server sends to ask for it.
pub const NS: &str = "urn:xmpp:bidi";

pub fn feature() -> Element {
    Element::bare("bidi", FEATURE_NS)
}

pub fn request() -> Element {
    Element::bare("bidi", NS)
}

/// Whether the peer's stream features offer bidirectional streams.
pub fn offered(features: &Element) -> bool {
    features.has_child("bidi", FEATURE_NS)
}

/// An incoming stream used as our way out to the domains it proved.
pub(super) struct Route {
    tx: mpsc::Sender<Stanza>,
    pub(super) rx: mpsc::Receiver<Stanza>,
    /// (our domain, their domain, generation) registered with [`S2s`].
    pairs: Vec<(String, String, u64)>,
}

impl Route {
    pub(super) fn new(queue: usize) -> Route {
        let (tx, rx) = mpsc::channel(queue);
        Route {
            tx,
            rx,
            pairs: Vec::new(),
        }
    }

    /// Stanzas from `local` to `remote` may now leave through this stream,
    /// unless an outgoing stream for that pair exists already.
    pub(super) fn offer(&mut self, s2s: &S2s, local: &str, remote: &str) {
        if self.pairs.iter().any(|(l, r, _)| l == local && r == remote) {
            return;
        }
        if let Some(generation) = s2s.adopt(local, remote, self.tx.clone()) {
            tracing::info!(%local, %remote, "bidirectional stream: stanzas to the peer use it too");
            self.pairs
                .push((local.to_string(), remote.to_string(), generation));
        }
    }

    /// The stream ends: give the pairs back and send what was waiting
    /// through fresh outgoing streams.
    pub(super) fn end(
        mut self,
        server: &std::sync::Arc<crate::server::Server>,
        s2s: &std::sync::Arc<S2s>,
    ) {
        for (local, remote, generation) in &self.pairs {
            s2s.retire(local, remote, *generation);
        }
        drop(self.tx);
        self.rx.close();
        while let Ok(s) = self.rx.try_recv() {
            s2s.send(server, s);
        }
    }
}
