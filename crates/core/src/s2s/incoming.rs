//! Incoming server streams (RFC 6120 §4–§6 as the receiving entity) on
//! `[listen] s2s` (STARTTLS) and `s2s_tls` (XEP-0368). The peer proves
//! a domain with a certificate (SASL EXTERNAL, XEP-0178) or with Server
//! Dialback (XEP-0220), several domains over one stream if it likes; every
//! stanza's `from` must then be one of the proven domains (else
//! `invalid-from`) and its `to` one we host (else `host-unknown`).
//! Dialback verification requests for keys we made are answered here too.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use minidom::Element;
use roost_proto::{ns, Condition, Elem, Stanza, StanzaError, StreamError};
use roost_stream::StreamEvent;
use tokio::net::TcpStream;

use super::stream::{S2sError, S2sStream};
use super::{bidi, dialback, S2s};
use crate::server::Server;

struct Incoming {
    server: Arc<Server>,
    s2s: Arc<S2s>,
    /// Domains this stream proved (SASL EXTERNAL or dialback).
    proven: HashSet<String>,
    /// SASL succeeded: no second authentication (RFC 6120 §6.4.6).
    sasl_done: bool,
    /// The peer asked for a bidirectional stream (XEP-0288).
    bidi: Option<bidi::Route>,
}

/// Serve one accepted server connection until it ends.
pub async fn serve_connection(
    server: Arc<Server>,
    tcp: TcpStream,
    peer: SocketAddr,
    direct_tls: bool,
) {
    let Some(s2s) = server.s2s.get().cloned() else {
        return;
    };
    let Ok(_permit) = s2s.incoming.clone().try_acquire_owned() else {
        tracing::warn!(%peer, "too many server connections; refusing");
        crate::limits::hit(crate::limits::Limit::S2s);
        return;
    };
    let mut st = S2sStream::new(tcp, peer, server.config.limits.max_stanza_size);
    if direct_tls {
        let handshake = st.server_tls(s2s.tls.acceptor());
        match tokio::time::timeout(Duration::from_secs(s2s.config.connect_timeout), handshake).await
        {
            Ok(Ok(())) => {}
            _ => {
                tracing::debug!(%peer, "server TLS handshake failed");
                return;
            }
        }
    }
    let mut incoming = Incoming {
        server,
        s2s,
        proven: HashSet::new(),
        sasl_done: false,
        bidi: None,
    };
    let result = incoming.run(&mut st).await;
    if let Some(route) = incoming.bidi.take() {
        route.end(&incoming.server, &incoming.s2s);
    }
    match result {
        Ok(()) => st.close().await,
        Err(S2sError::Refused(text)) => {
            tracing::info!(%peer, reason = %text, "server stream refused");
        }
        Err(e) => tracing::debug!(%peer, error = %e, "server stream ended"),
    }
}

/// What to do after an element.
enum Next {
    Continue,
    /// TLS or SASL succeeded: a new stream on the same connection.
    Restart,
}

impl Incoming {
    async fn run(&mut self, st: &mut S2sStream) -> Result<(), S2sError> {
        let idle = Duration::from_secs(self.s2s.config.idle_timeout);
        let first_wait = Duration::from_secs(self.s2s.config.connect_timeout);
        let mut shutdown = self.server.shutdown_signal();
        loop {
            // RFC 6120 §4.9.1.2: an error before or in the peer's header is
            // still told after a header of ours.
            let refuse = |e: StreamError| (e, format!("bad stream header: {e:?}"));
            let bad = match st.next(first_wait).await {
                Ok(StreamEvent::Header(h))
                    if h.content_ns.as_deref().is_some_and(|n| n != ns::SERVER) =>
                {
                    // §4.8.2, §4.9.3.10: not a server stream.
                    Err(refuse(StreamError::InvalidNamespace))
                }
                Ok(StreamEvent::Header(h)) => Ok(h),
                Ok(_) => Err(refuse(StreamError::NotWellFormed)),
                Err(S2sError::Stream(e)) => Err(refuse(e)),
                Err(e) => return Err(e),
            };
            let header = match bad {
                Ok(h) => h,
                Err((e, text)) => {
                    st.open(&self.server.config.domain, None, None).await?;
                    st.fail(e, None).await;
                    return Err(S2sError::Refused(text));
                }
            };
            let Some(to) = header.to.clone().filter(|t| self.server.hosts(t)) else {
                st.open(&self.server.config.domain, header.from.as_deref(), None)
                    .await?;
                st.fail(StreamError::HostUnknown, None).await;
                return Err(S2sError::Refused(format!(
                    "not our domain: {:?}",
                    header.to
                )));
            };
            let id = roost_proto::id::random_token(16);
            st.open(&to, header.from.as_deref(), Some(&id)).await?;
            let features = self.features(st, header.from.as_deref());
            st.send_bytes(&roost_stream::writer::features(&features))
                .await?;
            loop {
                // Until a domain is proven the peer gets the set-up time
                // only, so silent half-open streams cannot hold permits.
                let wait = if self.proven.is_empty() {
                    first_wait
                } else {
                    idle
                };
                let next = tokio::select! {
                    n = st.next(wait) => n,
                    Some(out) = outbound(&mut self.bidi) => {
                        if let Err(e) = st.send(&out.el).await {
                            super::bounce(&self.server, &out, StanzaError::new(Condition::RemoteServerNotFound));
                            return Err(e);
                        }
                        continue;
                    }
                    // RFC 6120 §4.9.3.17: the server is going down.
                    _ = crate::server::until_shutdown(&mut shutdown) => {
                        st.fail(StreamError::SystemShutdown, None).await;
                        return Ok(());
                    }
                };
                let el = match st.element_or_end(next).await {
                    Ok(Some(el)) => el,
                    Ok(None) | Err(S2sError::Timeout) => return Ok(()),
                    Err(e) => return Err(e),
                };
                match self
                    .element(st, el, &to, &id, header.from.as_deref())
                    .await?
                {
                    Next::Continue => {}
                    Next::Restart => break,
                }
            }
        }
    }

    /// `remote` proved itself for stanzas to `local`.
    fn proved(&mut self, local: &str, remote: &str) {
        self.proven.insert(remote.to_string());
        if let Some(route) = &mut self.bidi {
            route.offer(&self.s2s, local, remote);
        }
    }

    fn features(&self, st: &S2sStream, from: Option<&str>) -> Vec<Element> {
        let mut f = Vec::new();
        if !st.is_tls() {
            let mut starttls = Element::bare("starttls", ns::TLS);
            if self.s2s.config.require_encryption {
                starttls.append_child(Element::bare("required", ns::TLS));
            }
            f.push(starttls);
            if self.s2s.config.require_encryption {
                return f;
            }
        }
        let proves = !self.sasl_done
            && from.is_some_and(|d| self.s2s.tls.proves(&st.peer_certificates(), d));
        if st.is_tls() && proves {
            f.push(
                Element::bare("mechanisms", ns::SASL)
                    .child(Element::bare("mechanism", ns::SASL).text_node("EXTERNAL")),
            );
        }
        // Also after SASL: more domains may join this stream by dialback
        // (XEP-0220 §2.4).
        if self.s2s.dialback_allowed() {
            f.push(
                Element::bare("dialback", dialback::FEATURE_NS)
                    .child(Element::bare("errors", dialback::FEATURE_NS)),
            );
        }
        if self.s2s.config.bidi && self.proven.is_empty() {
            f.push(bidi::feature());
        }
        f
    }

    async fn element(
        &mut self,
        st: &mut S2sStream,
        el: Element,
        local: &str,
        stream_id: &str,
        header_from: Option<&str>,
    ) -> Result<Next, S2sError> {
        tracing::trace!(peer = %st.peer, name = el.name(), ns = %el.ns(), "server stream element");
        if el.is("starttls", ns::TLS) {
            if st.is_tls() {
                st.fail(StreamError::PolicyViolation, Some("TLS is already on"))
                    .await;
                return Err(S2sError::Refused("STARTTLS twice".into()));
            }
            st.send(&Element::bare("proceed", ns::TLS)).await?;
            st.server_tls(self.s2s.tls.acceptor()).await?;
            return Ok(Next::Restart);
        }
        if el.is("auth", ns::SASL) {
            return self.sasl_external(st, &el, local, header_from).await;
        }
        if el.is("result", dialback::NS) {
            self.dialback_result(st, &el, stream_id).await?;
            return Ok(Next::Continue);
        }
        if el.is("verify", dialback::NS) {
            self.dialback_verify(st, &el).await?;
            return Ok(Next::Continue);
        }
        if el.is("bidi", bidi::NS) {
            // XEP-0288 §2: after TLS, before authentication.
            let secure = st.is_tls() || !self.s2s.config.require_encryption;
            if self.s2s.config.bidi && secure && self.proven.is_empty() && self.bidi.is_none() {
                tracing::debug!(peer = %st.peer, "bidirectional stream requested");
                self.bidi = Some(bidi::Route::new(self.s2s.config.max_queue));
            }
            return Ok(Next::Continue);
        }
        if self.s2s.config.require_encryption && !st.is_tls() {
            st.fail(StreamError::PolicyViolation, Some("TLS is required"))
                .await;
            return Err(S2sError::Refused("stanza before TLS".into()));
        }
        let proven = &self.proven;
        let stanza =
            match super::admit(&self.server, el, |d| proven.contains(d), !proven.is_empty()) {
                Ok(s) => s,
                Err(e) => {
                    st.fail(e, None).await;
                    return Err(S2sError::Refused(format!("stanza refused: {e:?}")));
                }
            };
        self.server.route(stanza);
        Ok(Next::Continue)
    }

    /// XEP-0178: the certificate proves the stream's `from`; an
    /// authorization identity, if given, must name the same domain.
    async fn sasl_external(
        &mut self,
        st: &mut S2sStream,
        el: &Element,
        local: &str,
        header_from: Option<&str>,
    ) -> Result<Next, S2sError> {
        let failure =
            |cond: &str| Element::bare("failure", ns::SASL).child(Element::bare(cond, ns::SASL));
        if self.sasl_done || !st.is_tls() || el.attr("mechanism") != Some("EXTERNAL") {
            st.send(&failure("invalid-mechanism")).await?;
            return Ok(Next::Continue);
        }
        let Some(domain) = header_from else {
            st.send(&failure("not-authorized")).await?;
            return Ok(Next::Continue);
        };
        let text = el.text();
        let authzid = match text.trim() {
            "" | "=" => None,
            b64 => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .ok()
                .and_then(|b| String::from_utf8(b).ok()),
        };
        let authzid_ok = authzid.as_deref().is_none_or(|a| a == domain);
        if !authzid_ok || !self.s2s.tls.proves(&st.peer_certificates(), domain) {
            st.send(&failure("not-authorized")).await?;
            return Ok(Next::Continue);
        }
        st.send(&Element::bare("success", ns::SASL)).await?;
        self.proved(local, domain);
        self.sasl_done = true;
        tracing::info!(peer = %st.peer, %domain, "server authenticated (certificate)");
        st.restart();
        Ok(Next::Restart)
    }

    /// XEP-0220 §2.1.2–§2.1.4: the peer claims a domain with a key; we ask
    /// that domain's authoritative server, unless its certificate already
    /// proves the domain (XEP-0344 §2.4).
    async fn dialback_result(
        &mut self,
        st: &mut S2sStream,
        el: &Element,
        stream_id: &str,
    ) -> Result<(), S2sError> {
        let (Some(from), Some(to)) = (el.attr("from"), el.attr("to")) else {
            st.fail(StreamError::ImproperAddressing, None).await;
            return Err(S2sError::Refused("db:result without from or to".into()));
        };
        let (from, to) = (from.to_string(), to.to_string());
        if !self.server.hosts(&to) {
            let error = format!(
                "<error type='cancel'><item-not-found xmlns='{}'/></error>",
                ns::STANZAS
            );
            st.send_db(
                "result",
                &[("from", &to), ("to", &from), ("type", "error")],
                Some(&error),
            )
            .await?;
            return Ok(());
        }
        let allowed =
            self.s2s.dialback_allowed() && (st.is_tls() || !self.s2s.config.require_encryption);
        tracing::debug!(peer = %st.peer, %from, %to, "dialback key to verify");
        use super::verify::Verdict;
        let verdict = if !allowed {
            None
        } else if self.s2s.tls.proves(&st.peer_certificates(), &from) {
            Some(Verdict::Valid)
        } else {
            let key = el.text();
            let s2s = self.s2s.clone();
            Some(
                s2s.verify(&self.server, &to, &from, stream_id, key.trim())
                    .await,
            )
        };
        // XEP-0220 §2.5: what could not be checked is an error, not a
        // verdict: dialback not allowed here (no TLS yet, or certificates
        // only) is `policy-violation`; an authoritative server nobody
        // could reach is `remote-server-not-found`.
        let error = |condition: &str, kind: &str| {
            format!(
                "<error type='{kind}'><{condition} xmlns='{}'/></error>",
                ns::STANZAS
            )
        };
        let (kind, payload) = match verdict {
            Some(Verdict::Valid) => ("valid", None),
            Some(Verdict::Invalid) => ("invalid", None),
            Some(Verdict::Unreachable) => {
                ("error", Some(error("remote-server-not-found", "cancel")))
            }
            None => ("error", Some(error("policy-violation", "modify"))),
        };
        let valid = verdict == Some(Verdict::Valid);
        st.send_db(
            "result",
            &[("from", &to), ("to", &from), ("type", kind)],
            payload.as_deref(),
        )
        .await?;
        if valid {
            tracing::info!(peer = %st.peer, domain = %from, "server authenticated (dialback)");
            self.proved(&to, &from);
        }
        Ok(())
    }

    /// XEP-0220 §2.2: we are the authoritative server; was the key ours?
    async fn dialback_verify(&mut self, st: &mut S2sStream, el: &Element) -> Result<(), S2sError> {
        let (Some(receiving), Some(originating), Some(id)) =
            (el.attr("from"), el.attr("to"), el.attr("id"))
        else {
            st.fail(StreamError::ImproperAddressing, None).await;
            return Err(S2sError::Refused("db:verify without from, to or id".into()));
        };
        let valid = self.server.hosts(originating)
            && self
                .s2s
                .secret
                .verify(receiving, originating, id, el.text().trim());
        let kind = if valid { "valid" } else { "invalid" };
        st.send_db(
            "verify",
            &[
                ("from", originating),
                ("to", receiving),
                ("id", id),
                ("type", kind),
            ],
            None,
        )
        .await?;
        Ok(())
    }
}

/// The next stanza to write on a bidirectional stream; never, otherwise.
async fn outbound(bidi: &mut Option<bidi::Route>) -> Option<Stanza> {
    match bidi {
        Some(route) => route.rx.recv().await,
        None => std::future::pending().await,
    }
}
