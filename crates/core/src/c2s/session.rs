//! A bound c2s session (RFC 6120 §8, §4.6): reads stanzas, stamps their
//! sender, answers IQs to the server and the own account through the module
//! registry, hands presence and roster IQs to the account task and routes
//! the rest; writes what the session's queue receives. However it ends, the
//! account is told, so that unavailable presence goes out (RFC 6121 §4.5.2).

use std::sync::Arc;
use std::time::Duration;

use jid::{BareJid, FullJid, Jid};
use minidom::Element;
use roost_proto::stanza::EnvelopeError;
use roost_proto::{ns, ElementExt, Stanza, StanzaError, StanzaKind, StreamError};
use roost_stream::{writer, StreamEvent};
use tokio::io::AsyncReadExt;

use super::conn::Transport;
use super::negotiation::Negotiated;
use crate::account::{AccountMsg, SessionMsg};
use crate::module::Scope;
use crate::server::{iq_reply, Server};

/// Stanzas written per wake-up before the socket is flushed.
const WRITE_BATCH: usize = 64;

enum Next {
    Continue,
    Close(Option<(StreamError, String)>),
}

struct Session {
    server: Arc<Server>,
    jid: FullJid,
    bare: BareJid,
    transport: Transport,
}

pub async fn run(server: Arc<Server>, n: Negotiated) {
    let Negotiated {
        transport,
        mut reader,
        jid,
        handle,
        mut rx,
        mut kill,
        pending,
    } = n;
    let mut s = Session {
        bare: jid.to_bare(),
        jid,
        server: server.clone(),
        transport,
    };
    let mut shutdown = server.shutdown_signal();
    let idle = Duration::from_secs(server.config.limits.idle_timeout.max(1));
    let mut buf = vec![0u8; 16 * 1024];
    let mut events = pending;
    let mut out = Vec::with_capacity(4096);
    let reason: Option<(StreamError, String)> = 'session: loop {
        for ev in events.drain(..) {
            match s.event(ev).await {
                Next::Continue => {}
                Next::Close(r) => break 'session r,
            }
        }
        tokio::select! {
            biased;
            k = kill.recv() => break 'session k,
            _ = crate::server::until_shutdown(&mut shutdown) => {
                break 'session Some((StreamError::SystemShutdown, "the server is shutting down".into()));
            }
            msg = rx.recv() => {
                let Some(SessionMsg::Stanza(el)) = msg else { break 'session None };
                out.clear();
                out.extend(writer::element(&el));
                // Batch what is already queued into one write.
                for _ in 0..WRITE_BATCH {
                    match rx.try_recv() {
                        Ok(SessionMsg::Stanza(el)) => out.extend(writer::element(&el)),
                        Err(_) => break,
                    }
                }
                if s.transport.send(&out).await.is_err() {
                    break 'session None;
                }
            }
            r = tokio::time::timeout(idle, s.transport.read(&mut buf)) => {
                match r {
                    Err(_) => break 'session Some((StreamError::ConnectionTimeout, "idle for too long".into())),
                    Ok(Ok(0)) | Ok(Err(_)) => break 'session None,
                    Ok(Ok(n)) => {
                        if let Err(e) = reader.feed(&buf[..n], &mut events) {
                            break 'session Some((e, String::new()));
                        }
                    }
                }
            }
        }
    };
    match reason {
        Some((err, text)) => {
            let text = (!text.is_empty()).then_some(text.as_str());
            let _ = s.transport.send(&writer::stream_error(err, text)).await;
        }
        None => {
            let _ = s.transport.send(writer::STREAM_END).await;
        }
    }
    let _ = tokio::io::AsyncWriteExt::shutdown(&mut s.transport).await;
    tracing::info!(session = %s.jid, "session ended");
    server.send_to_account(
        &s.bare,
        AccountMsg::Unbind {
            resource: s.jid.resource().to_string(),
            session_id: handle.id,
        },
    );
}

impl Session {
    async fn write(&mut self, el: &Element) -> Next {
        if self.transport.send(&writer::element(el)).await.is_err() {
            Next::Close(None)
        } else {
            Next::Continue
        }
    }

    async fn event(&mut self, ev: StreamEvent) -> Next {
        match ev {
            StreamEvent::End => Next::Close(None),
            StreamEvent::Header(_) => Next::Close(Some((
                StreamError::NotWellFormed,
                "unexpected stream header".into(),
            ))),
            StreamEvent::Element(el) => self.element(el).await,
        }
    }

    async fn element(&mut self, mut el: Element) -> Next {
        // RFC 6120 §8.1.2.1: a `from` must be ours; we stamp the full JID.
        if let Some(from) = el.attr("from") {
            let ok = Jid::new(from)
                .is_ok_and(|f| f.as_str() == self.jid.as_str() || f.as_str() == self.bare.as_str());
            if !ok {
                return Next::Close(Some((StreamError::InvalidFrom, String::new())));
            }
        }
        el.set("from", self.jid.as_str());
        let envelope = el.shallow_clone();
        let stanza = match Stanza::parse(el) {
            Ok(s) => s,
            Err(EnvelopeError::UnsupportedStanzaType) => {
                return Next::Close(Some((StreamError::UnsupportedStanzaType, String::new())));
            }
            Err(EnvelopeError::JidMalformed) => return self.jid_malformed(envelope).await,
        };
        match stanza.kind {
            StanzaKind::Presence => {
                self.to_account(stanza);
                Next::Continue
            }
            StanzaKind::Iq => self.iq(stanza).await,
            StanzaKind::Message => {
                let mut stanza = stanza;
                if stanza.to.is_none() {
                    // RFC 6120 §10.3: no `to` means the account itself.
                    stanza.el.set("to", self.bare.as_str());
                    stanza.to = Some(Jid::from(self.bare.clone()));
                }
                self.server.route(stanza);
                Next::Continue
            }
        }
    }

    /// RFC 6120 §8.3.3.8: a `to` that is not a JID gets `jid-malformed`,
    /// answered from the server since the address cannot be used.
    async fn jid_malformed(&mut self, mut envelope: Element) -> Next {
        if envelope.attr("type") == Some("error") {
            return Next::Continue;
        }
        envelope.unset("to");
        let mut reply = StanzaError::new(roost_proto::Condition::JidMalformed).reply_to(&envelope);
        reply.set("from", self.server.config.domain.as_str());
        self.write(&reply).await
    }

    fn to_account(&self, stanza: Stanza) {
        self.server.send_to_account(
            &self.bare,
            AccountMsg::FromSession {
                resource: self.jid.resource().to_string(),
                stanza,
            },
        );
    }

    async fn iq(&mut self, stanza: Stanza) -> Next {
        let to_server = match &stanza.to {
            None => true,
            Some(to) => to.node().is_none() && self.server.is_local_domain(to.domain().as_str()),
        };
        let to_self = stanza
            .to
            .as_ref()
            .is_some_and(|t| t.resource().is_none() && t.to_bare() == self.bare);
        if !(to_server || to_self) {
            self.server.route(stanza);
            return Next::Continue;
        }
        if !stanza.is_iq_request() {
            // Responses to the server's own requests: nothing waits for them yet.
            return Next::Continue;
        }
        let payload_ns = stanza.el.children().next().map(|c| c.ns());
        if payload_ns.as_deref() == Some(ns::ROSTER) {
            self.to_account(stanza);
            return Next::Continue;
        }
        // An IQ without `to` for which the server has no handler is meant
        // for the account itself (XEP-0054 §3.1: own vCard).
        let server_handles = stanza
            .el
            .children()
            .next()
            .is_some_and(|p| self.server.registry.iq_handler(Scope::Server, p).is_some());
        let scope = if to_server && server_handles {
            Scope::Server
        } else {
            Scope::Account
        };
        let account = self.bare.clone();
        let reply = self
            .server
            .dispatch_iq(scope, Some(&account), &stanza, true, false)
            .await;
        let reply = iq_reply(&stanza.el, reply);
        self.write(&reply).await
    }
}
