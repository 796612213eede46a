//! Stream negotiation (RFC 6120 §4-§7): stream headers and features,
//! STARTTLS (§5), SASL (§6) with SCRAM-SHA-256, SCRAM-SHA-1 and PLAIN (over
//! TLS only), XEP-0077 registration before authentication, and resource
//! binding (§7). Everything before binding runs under `auth_timeout`.
//! Over WebSocket (RFC 7395) there is no STARTTLS: the connection is secure
//! when it is `wss`, or plain `ws` from a loopback address.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use jid::{BareJid, FullJid};
use minidom::Element;
use roost_proto::{ns, Condition, Elem, Stanza, StanzaError, StreamError};
use roost_sasl::{Hash, SaslError, ScramServer};
use roost_stream::StreamEvent;
use tokio::sync::{mpsc, oneshot};

use super::conn::Connection;
use super::sasl2;
use crate::account::{AccountMsg, SessionHandle, SessionMsg};
use crate::mailbox;
use crate::module::Scope;
use crate::server::{iq_reply, Server};

/// A bound session, ready to run.
pub struct Negotiated {
    pub conn: Connection,
    pub jid: FullJid,
    pub handle: SessionHandle,
    pub rx: mailbox::Receiver<SessionMsg>,
    pub kill: mailbox::Receiver<crate::account::KillReason>,
    /// Events read together with the bind request, processed first.
    pub pending: Vec<StreamEvent>,
    /// A Bind 2 session (XEP-0386): its `<success/>` is written by the
    /// session once stream management is set up.
    pub inline: Option<Box<super::sasl2::Inline>>,
}

/// Failed SASL attempts one stream may make before it is closed.
const MAX_AUTH_ATTEMPTS: u32 = 5;

enum Sasl {
    Scram(ScramServer, BareJid),
}

struct Negotiation<'a> {
    server: &'a Arc<Server>,
    peer: SocketAddr,
    conn: Connection,
    user: Option<BareJid>,
    sasl: Option<Sasl>,
    failures: u32,
    lang: String,
    /// Set by STARTTLS and SASL success: the stream starts over.
    restarted: bool,
    /// Our response header for the current stream went out.
    header_sent: bool,
    /// The exchange in progress is SASL2 (XEP-0388), with these requests.
    sasl2: Option<Box<sasl2::Request>>,
    /// Elements for the SASL2 `<success/>` (a FAST `<token/>`).
    sasl2_extra: Vec<Element>,
    /// The client's first stream header arrived; until then the
    /// connection has `limits.handshake_timeout` from `started`.
    seen_header: bool,
    started: tokio::time::Instant,
}

/// Why binding at the account did not happen.
enum BindFailure {
    /// `limits.max_resources` sessions are bound.
    TooManyResources,
    /// The account's task ended (shutdown).
    AccountGone,
}

enum Outcome {
    Continue,
    Bound(Box<Negotiated>),
    Close,
}

pub async fn negotiate(server: &Arc<Server>, conn: Connection) -> Option<Negotiated> {
    let mut n = Negotiation {
        server,
        peer: conn.peer(),
        conn,
        user: None,
        sasl: None,
        failures: 0,
        lang: "en".into(),
        restarted: false,
        header_sent: false,
        sasl2: None,
        sasl2_extra: Vec::new(),
        seen_header: false,
        started: tokio::time::Instant::now(),
    };
    let timeout = Duration::from_secs(server.config.limits.auth_timeout);
    let mut shutdown = server.shutdown_signal();
    let result = tokio::select! {
        r = tokio::time::timeout(timeout, n.run()) => r,
        _ = crate::server::until_shutdown(&mut shutdown) => {
            n.close(StreamError::SystemShutdown, None).await;
            return None;
        }
    };
    match result {
        Ok(r) => r,
        Err(_) => {
            crate::limits::hit(crate::limits::Limit::AuthTimeout);
            n.close(
                StreamError::ConnectionTimeout,
                Some("authentication took too long"),
            )
            .await;
            None
        }
    }
}

impl<'a> Negotiation<'a> {
    async fn run(&mut self) -> Option<Negotiated> {
        // The whole negotiation runs under `auth_timeout`, which answers
        // with `connection-timeout`; a read must not time out first.
        let idle = Duration::from_secs(self.server.config.limits.auth_timeout.saturating_mul(2));
        let header_by =
            self.started + Duration::from_secs(self.server.config.limits.handshake_timeout);
        let mut events = Vec::new();
        loop {
            let wait = if self.seen_header {
                idle
            } else {
                header_by.saturating_duration_since(tokio::time::Instant::now())
            };
            match self.conn.read(wait, &mut events).await {
                Ok(true) => {}
                Ok(false) if !self.seen_header && tokio::time::Instant::now() >= header_by => {
                    // Slow-read protection: a connection that does not
                    // start its stream in time ends here, not at auth_timeout.
                    crate::limits::hit(crate::limits::Limit::HandshakeTimeout);
                    self.close(
                        StreamError::ConnectionTimeout,
                        Some("no stream header in time"),
                    )
                    .await;
                    return None;
                }
                Ok(false) => return None,
                Err(e) => {
                    self.close(e, None).await;
                    return None;
                }
            }
            let mut drained = std::mem::take(&mut events).into_iter();
            while let Some(ev) = drained.next() {
                match self.event(ev).await {
                    Outcome::Continue => {}
                    Outcome::Close => return None,
                    Outcome::Bound(mut done) => {
                        done.pending = drained.collect();
                        return Some(*done);
                    }
                }
                // STARTTLS and SASL success restart the stream: bytes read
                // with the restarting element belong to the old one.
                if std::mem::take(&mut self.restarted) {
                    break;
                }
            }
        }
    }

    async fn write_el(&mut self, el: &Element) -> bool {
        self.conn.send_element(el).await.is_ok()
    }

    async fn close(&mut self, err: StreamError, text: Option<&str>) {
        tracing::debug!(error = %err, "closing stream during negotiation");
        // RFC 6120 §4.9.1.1: an error before our header still opens the stream.
        if !self.header_sent {
            self.conn.queue_header(
                &self.server.config.domain,
                &roost_proto::id::stream_id(),
                &self.lang,
            );
        }
        self.conn.queue_stream_error(err, text);
        self.conn.shutdown().await;
    }

    async fn event(&mut self, ev: StreamEvent) -> Outcome {
        match ev {
            StreamEvent::Header(h) => self.header(h).await,
            StreamEvent::End => {
                self.conn.queue_end();
                self.conn.shutdown().await;
                Outcome::Close
            }
            StreamEvent::Element(el) => self.element(el).await,
        }
    }

    /// RFC 6120 §4.7: answer the header, then advertise what may come next.
    async fn header(&mut self, h: roost_stream::StreamHeader) -> Outcome {
        self.seen_header = true;
        if let Some(lang) = h.lang.as_deref().filter(|l| l.len() <= 35) {
            self.lang = lang.to_string();
        }
        let id = roost_proto::id::stream_id();
        let domain = self.server.config.domain.clone();
        self.conn.queue_header(&domain, &id, &self.lang);
        self.header_sent = true;
        // RFC 6120 §4.8.2, §4.9.3.10: a client stream's content namespace.
        if h.content_ns.as_deref().is_some_and(|n| n != ns::CLIENT) {
            self.close(StreamError::InvalidNamespace, None).await;
            return Outcome::Close;
        }
        let to_ok =
            h.to.as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case(&domain));
        if !to_ok {
            self.close(StreamError::HostUnknown, None).await;
            return Outcome::Close;
        }
        // §4.7.5: we speak 1.0; a higher major version is unsupported.
        let major = h
            .version
            .as_deref()
            .and_then(|v| v.split('.').next())
            .and_then(|m| m.parse::<u32>().ok());
        if major != Some(1) {
            self.close(StreamError::UnsupportedVersion, None).await;
            return Outcome::Close;
        }
        let features = self.features();
        self.conn.queue_features(&features);
        if self.conn.flush().await.is_ok() {
            Outcome::Continue
        } else {
            Outcome::Close
        }
    }

    fn tls_required_and_missing(&self) -> bool {
        self.server.config.tls.required && !self.conn.is_secure()
    }

    fn features(&self) -> Vec<Element> {
        let mut f = Vec::new();
        if self.user.is_some() {
            f.push(Element::bare("bind", ns::BIND));
            // RFC 6121 legacy session establishment, announced as optional.
            f.push(
                Element::bare("session", ns::SESSION).child(Element::bare("optional", ns::SESSION)),
            );
            f.push(Element::bare("ver", ns::ROSTER_VER));
            f.push(Element::bare("sub", ns::PRE_APPROVAL));
            f.push(Element::bare("sm", ns::SM));
            f.push(Element::bare("csi", ns::CSI));
            f.push(self.server.stream_caps());
            return f;
        }
        if self.conn.can_starttls() {
            let mut starttls = Element::bare("starttls", ns::TLS);
            if self.server.config.tls.required {
                starttls.append_child(Element::bare("required", ns::TLS));
            }
            f.push(starttls);
        }
        // XEP-0115 §6.3: clients cache the server's features by this.
        f.push(self.server.stream_caps());
        if !self.tls_required_and_missing() {
            let mut mechs = Element::bare("mechanisms", ns::SASL);
            let names = self.mechanisms();
            for m in &names {
                mechs.append_child(Element::bare("mechanism", ns::SASL).text_node(*m));
            }
            f.push(mechs);
            f.push(sasl2::feature(
                &names,
                self.server.config.account_muc.enabled,
                &self.fast_mechanisms(),
            ));
            let types: Vec<&str> = self.bindings().into_iter().map(|(k, _)| k).collect();
            if !types.is_empty() {
                f.push(super::channel_binding::feature(&types));
            }
            if self.registration_allowed() {
                f.push(Element::bare("register", ns::REGISTER_FEATURE));
            }
        }
        f
    }

    /// The channel-binding types this stream offers, with their data
    /// (XEP-0440): `tls-exporter` (TLS 1.3 on a client TCP stream), then
    /// `tls-server-end-point` (our certificate's hash, over our TLS).
    fn bindings(&self) -> Vec<(&'static str, Vec<u8>)> {
        use super::channel_binding::{TLS_EXPORTER, TLS_SERVER_END_POINT};
        let mut b = Vec::new();
        if let Some(x) = self.conn.tls_exporter() {
            b.push((TLS_EXPORTER, x.to_vec()));
        }
        if self.conn.is_tls() {
            if let Some(ep) = self.server.tls_end_point.get() {
                b.push((TLS_SERVER_END_POINT, ep.clone()));
            }
        }
        b
    }

    fn binding_data(&self, kind: &str) -> Option<Vec<u8>> {
        self.bindings()
            .into_iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, d)| d)
    }

    /// The SASL mechanisms offered on this stream, strongest first.
    fn mechanisms(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if !self.bindings().is_empty() {
            names.extend(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"]);
        }
        names.extend(["SCRAM-SHA-256", "SCRAM-SHA-1"]);
        if self.conn.is_secure() {
            names.push("PLAIN");
        }
        names
    }

    /// FAST mechanisms (XEP-0484), when tokens are on.
    fn fast_mechanisms(&self) -> Vec<&'static str> {
        if self.server.fast_key.get().is_none() {
            return Vec::new();
        }
        let mut m = Vec::new();
        if self.conn.tls_exporter().is_some() {
            m.push(super::fast::MECHANISM_EXPR);
        }
        if self
            .binding_data(super::channel_binding::TLS_SERVER_END_POINT)
            .is_some()
        {
            m.push(super::fast::MECHANISM_ENDP);
        }
        m.push(super::fast::MECHANISM);
        m
    }

    fn registration_allowed(&self) -> bool {
        self.server
            .config
            .registration_allowed(self.peer.ip().is_loopback())
    }

    async fn element(&mut self, el: Element) -> Outcome {
        let name = el.name().to_string();
        match (el.ns().as_str(), name.as_str()) {
            (ns::TLS, "starttls") => self.starttls().await,
            (ns::SASL, "auth") => self.auth(&el).await,
            (ns::SASL, "response") => self.response(&el).await,
            (ns::SASL, "abort") => {
                self.sasl = None;
                self.sasl_failure(SaslError::Aborted).await
            }
            (sasl2::NS, "authenticate") => self.authenticate(&el).await,
            (sasl2::NS, "response") if self.sasl2.is_some() => self.response(&el).await,
            (sasl2::NS, "abort") if self.sasl2.is_some() => {
                self.sasl = None;
                self.sasl_failure(SaslError::Aborted).await
            }
            (ns::CLIENT, "iq") => self.iq(el).await,
            (ns::SM, "resume") => self.resume(&el).await,
            (ns::SM, _) => {
                // XEP-0198 §3: enabling before binding is refused.
                let f = super::stream_management::failed("unexpected-request", None);
                if self.write_el(&f).await {
                    Outcome::Continue
                } else {
                    Outcome::Close
                }
            }
            (ns::CLIENT, "message") | (ns::CLIENT, "presence") => {
                // §4.9.3.12: stanzas before authentication.
                self.close(StreamError::NotAuthorized, None).await;
                Outcome::Close
            }
            _ => {
                self.close(StreamError::UnsupportedStanzaType, None).await;
                Outcome::Close
            }
        }
    }

    async fn starttls(&mut self) -> Outcome {
        if self.conn.is_http() {
            // RFC 7395, XEP-0206: TLS comes from the HTTP listener (`wss`,
            // `https`); RFC 6120 §5.4.2.2: <failure/>
            // and the end of the stream.
            self.conn.queue_element(&Element::bare("failure", ns::TLS));
            self.conn.queue_end();
            self.conn.shutdown().await;
            return Outcome::Close;
        }
        if self.conn.is_tls() || self.user.is_some() {
            self.close(
                StreamError::PolicyViolation,
                Some("TLS is already negotiated"),
            )
            .await;
            return Outcome::Close;
        }
        if !self.write_el(&Element::bare("proceed", ns::TLS)).await {
            return Outcome::Close;
        }
        let limit = Duration::from_secs(self.server.config.limits.handshake_timeout);
        let handshake = tokio::time::timeout(limit, self.conn.starttls(self.server.tls.clone()));
        let Ok(done) = handshake.await else {
            crate::limits::hit(crate::limits::Limit::HandshakeTimeout);
            return Outcome::Close;
        };
        match done {
            Ok(()) => {
                self.restarted = true;
                self.header_sent = false;
                Outcome::Continue
            }
            Err(e) => {
                tracing::debug!(error = %e, "STARTTLS handshake failed");
                Outcome::Close
            }
        }
    }

    async fn auth(&mut self, el: &Element) -> Outcome {
        if self.user.is_some() {
            self.close(StreamError::PolicyViolation, Some("already authenticated"))
                .await;
            return Outcome::Close;
        }
        if self.tls_required_and_missing() {
            // RFC 6120 §6.4.5 / §6.5.4: TLS first.
            let f = Element::bare("failure", ns::SASL)
                .child(Element::bare("encryption-required", ns::SASL));
            self.write_el(&f).await;
            return Outcome::Continue;
        }
        self.sasl2 = None;
        self.start_mechanism(el.attr("mechanism"), &el.text()).await
    }

    /// XEP-0388 §2.3: `<authenticate/>`, with the initial response inside
    /// and the requests to carry out on success.
    async fn authenticate(&mut self, el: &Element) -> Outcome {
        if self.user.is_some() {
            self.close(StreamError::PolicyViolation, Some("already authenticated"))
                .await;
            return Outcome::Close;
        }
        if self.tls_required_and_missing() {
            // RFC 6120 §6.4.5: TLS first.
            self.sasl2 = None;
            return if self
                .write_el(&sasl2::failure("encryption-required", None))
                .await
            {
                Outcome::Continue
            } else {
                Outcome::Close
            };
        }
        self.sasl2 = Some(Box::new(sasl2::Request::parse(el)));
        let initial = el
            .get_child("initial-response", sasl2::NS)
            .map(|i| i.text())
            .unwrap_or_default();
        self.start_mechanism(el.attr("mechanism"), &initial).await
    }

    async fn start_mechanism(&mut self, mechanism: Option<&str>, initial: &str) -> Outcome {
        let data = match decode(initial) {
            Ok(d) => d,
            Err(e) => return self.sasl_failure(e).await,
        };
        let fast_login = self.sasl2.as_ref().is_some_and(|r| r.fast.is_some());
        let plus = !self.bindings().is_empty();
        match mechanism {
            Some(m) if fast_login => match self.fast_mechanisms().into_iter().find(|f| *f == m) {
                Some(f) => self.fast_login(f, &data).await,
                None => self.sasl_failure(SaslError::InvalidMechanism).await,
            },
            Some("SCRAM-SHA-256") => self.scram_first(Hash::Sha256, false, &data).await,
            Some("SCRAM-SHA-1") => self.scram_first(Hash::Sha1, false, &data).await,
            Some("SCRAM-SHA-256-PLUS") if plus => self.scram_first(Hash::Sha256, true, &data).await,
            Some("SCRAM-SHA-1-PLUS") if plus => self.scram_first(Hash::Sha1, true, &data).await,
            Some("PLAIN") if self.conn.is_secure() => self.plain(&data).await,
            _ => self.sasl_failure(SaslError::InvalidMechanism).await,
        }
    }

    fn account_of(&self, username: &str) -> Option<BareJid> {
        BareJid::new(&format!("{username}@{}", self.server.config.domain)).ok()
    }

    async fn credentials(
        &self,
        user: &BareJid,
    ) -> Result<Option<roost_sasl::StoredCredentials>, SaslError> {
        self.server
            .stores
            .accounts
            .credentials(user)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "credential lookup failed");
                SaslError::TemporaryAuthFailure
            })
    }

    async fn scram_first(&mut self, hash: Hash, plus: bool, data: &[u8]) -> Outcome {
        let bindings = self.bindings();
        let types: Vec<&str> = bindings.iter().map(|(k, _)| *k).collect();
        // XEP-0474: the list this stream advertised, signed into SCRAM.
        let cb_types = (!types.is_empty()).then_some(&types[..]);
        let mechanisms = self.mechanisms();
        let binding = roost_sasl::scram::Binding {
            offered: bindings
                .iter()
                .map(|(k, d)| (k.to_string(), d.clone()))
                .collect(),
            plus,
        };
        let mut scram = ScramServer::new(hash)
            .with_binding(binding)
            .with_downgrade_protection(&mechanisms, cb_types);
        let first = match scram.client_first(data) {
            Ok(f) => f,
            Err(e) => return self.sasl_failure(e).await,
        };
        let Some(user) = self.account_of(&first.username) else {
            return self.sasl_failure(SaslError::NotAuthorized).await;
        };
        if let Some(authzid) = &first.authzid {
            if BareJid::new(authzid).ok().as_ref() != Some(&user) {
                return self.sasl_failure(SaslError::InvalidAuthzid).await;
            }
        }
        let creds = match self.credentials(&user).await {
            Ok(c) => c,
            Err(e) => return self.sasl_failure(e).await,
        };
        let keys = creds.as_ref().map(|c| match hash {
            Hash::Sha1 => &c.sha1,
            Hash::Sha256 => &c.sha256,
        });
        let challenge = scram.server_first(keys);
        self.sasl = Some(Sasl::Scram(scram, user));
        let el = if self.sasl2.is_some() {
            sasl2::challenge(encode(&challenge))
        } else {
            Element::bare("challenge", ns::SASL).text_node(encode(&challenge))
        };
        if self.write_el(&el).await {
            Outcome::Continue
        } else {
            Outcome::Close
        }
    }

    async fn response(&mut self, el: &Element) -> Outcome {
        let Some(Sasl::Scram(mut scram, user)) = self.sasl.take() else {
            return self.sasl_failure(SaslError::MalformedRequest).await;
        };
        let data = match decode(&el.text()) {
            Ok(d) => d,
            Err(e) => return self.sasl_failure(e).await,
        };
        self.throttle(&user).await;
        match scram.client_final(&data) {
            Ok(server_final) => self.sasl_success(user, Some(server_final)).await,
            Err(e) => {
                self.server
                    .auth_throttle
                    .failed(self.peer.ip(), user.as_str());
                self.sasl_failure(e).await
            }
        }
    }

    async fn plain(&mut self, data: &[u8]) -> Outcome {
        let plain = match roost_sasl::parse_plain(data) {
            Ok(p) => p,
            Err(e) => return self.sasl_failure(e).await,
        };
        let Some(user) = self.account_of(&plain.username) else {
            return self.sasl_failure(SaslError::NotAuthorized).await;
        };
        if let Some(authzid) = &plain.authzid {
            if BareJid::new(authzid).ok().as_ref() != Some(&user) {
                return self.sasl_failure(SaslError::InvalidAuthzid).await;
            }
        }
        self.throttle(&user).await;
        let creds = match self.credentials(&user).await {
            Ok(c) => c,
            Err(e) => return self.sasl_failure(e).await,
        };
        let ok = creds
            .as_ref()
            .is_some_and(|c| roost_sasl::verify_password(&c.sha256, Hash::Sha256, &plain.password));
        if ok {
            self.sasl_success(user, None).await
        } else {
            self.server
                .auth_throttle
                .failed(self.peer.ip(), user.as_str());
            self.sasl_failure(SaslError::NotAuthorized).await
        }
    }

    fn fast_policy(&self) -> Option<super::fast::Policy<'_>> {
        Some(super::fast::Policy {
            key: self.server.fast_key.get()?,
            lifetime: self.server.config.fast.token_lifetime,
            max_clients: self.server.config.fast.max_clients,
        })
    }

    /// XEP-0484: a login with a token, in one round trip.
    async fn fast_login(&mut self, mechanism: &'static str, data: &[u8]) -> Outcome {
        let initial = match roost_sasl::ht::parse_initial(data) {
            Ok(i) => i,
            Err(e) => return self.sasl_failure(e).await,
        };
        let Some(user) = self.account_of(&initial.authcid) else {
            return self.sasl_failure(SaslError::NotAuthorized).await;
        };
        let (client, usage) = match self.sasl2.as_deref() {
            Some(sasl2::Request {
                user_agent: Some(ua),
                fast: Some(usage),
                ..
            }) => (ua.clone(), *usage),
            // Tokens belong to a client: no user-agent id, no token login.
            _ => return self.sasl_failure(SaslError::NotAuthorized).await,
        };
        self.throttle(&user).await;
        let Some(policy) = self.fast_policy() else {
            return self.sasl_failure(SaslError::InvalidMechanism).await;
        };
        let stores = self.server.stores.clone();
        let cb = match mechanism {
            super::fast::MECHANISM_EXPR => self.binding_data(super::channel_binding::TLS_EXPORTER),
            super::fast::MECHANISM_ENDP => {
                self.binding_data(super::channel_binding::TLS_SERVER_END_POINT)
            }
            _ => Some(Vec::new()),
        }
        .unwrap_or_default();
        let attempt = super::fast::Attempt {
            client: &client,
            mechanism,
            initial: &initial,
            cb: &cb,
            usage,
        };
        let verified = super::fast::verify(&stores, &policy, &user, attempt).await;
        let Some(v) = verified else {
            self.server
                .auth_throttle
                .failed(self.peer.ip(), user.as_str());
            return self.sasl_failure(SaslError::NotAuthorized).await;
        };
        if v.rotate {
            if let Ok(t) = super::fast::issue(&stores, &policy, &user, &client, mechanism).await {
                self.sasl2_extra.push(t);
            }
        }
        tracing::info!(account = %user, "authenticated with a FAST token");
        let final_message = roost_sasl::ht::responder(v.token.as_bytes(), &cb);
        self.sasl_success(user, Some(final_message)).await
    }

    /// Wait as long as earlier failures for this account or address demand.
    async fn throttle(&self, user: &BareJid) {
        let delay = self
            .server
            .auth_throttle
            .delay(self.peer.ip(), user.as_str());
        if !delay.is_zero() {
            tracing::info!(account = %user, ?delay, "slowing down authentication");
            tokio::time::sleep(delay).await;
        }
    }

    async fn sasl_success(&mut self, user: BareJid, data: Option<Vec<u8>>) -> Outcome {
        self.server
            .auth_throttle
            .succeeded(self.peer.ip(), user.as_str());
        // RFC 6120 §6.5.1, told only to whoever proved the credentials.
        if self.server.disabled.contains(&user) {
            tracing::info!(account = %user, "login refused: the account is disabled");
            return self.sasl_failure(SaslError::AccountDisabled).await;
        }
        tracing::info!(account = %user, "authenticated");
        if let Some(req) = self.sasl2.take() {
            return self.sasl2_success(user, data, *req).await;
        }
        let mut el = Element::bare("success", ns::SASL);
        if let Some(d) = data {
            el.append_text_node(encode(&d));
        }
        self.user = Some(user);
        self.conn.restart();
        self.restarted = true;
        self.header_sent = false;
        if self.write_el(&el).await {
            Outcome::Continue
        } else {
            Outcome::Close
        }
    }

    async fn sasl_failure(&mut self, e: SaslError) -> Outcome {
        self.sasl = None;
        self.failures += 1;
        let el = if self.sasl2.take().is_some() {
            sasl2::failure(e.condition(), None)
        } else {
            Element::bare("failure", ns::SASL).child(Element::bare(e.condition(), ns::SASL))
        };
        if !self.write_el(&el).await {
            return Outcome::Close;
        }
        if self.failures >= MAX_AUTH_ATTEMPTS {
            self.close(
                StreamError::PolicyViolation,
                Some("too many failed authentication attempts"),
            )
            .await;
            return Outcome::Close;
        }
        Outcome::Continue
    }

    async fn iq(&mut self, el: Element) -> Outcome {
        let stanza = match Stanza::parse(el) {
            Ok(s) => s,
            Err(_) => {
                self.close(StreamError::NotAuthorized, None).await;
                return Outcome::Close;
            }
        };
        let payload = stanza.el.children().next();
        match (&self.user, payload) {
            (None, Some(p)) if p.is("query", ns::REGISTER) && !self.tls_required_and_missing() => {
                // XEP-0077 §3: registration on the unauthenticated stream.
                let result = if self.registration_allowed() {
                    self.server
                        .dispatch_iq(
                            Scope::PreAuth,
                            None,
                            &stanza,
                            false,
                            self.peer.ip().is_loopback(),
                        )
                        .await
                } else {
                    Err(StanzaError::service_unavailable())
                };
                let reply = iq_reply(&stanza.el, result);
                if self.write_el(&reply).await {
                    Outcome::Continue
                } else {
                    Outcome::Close
                }
            }
            (Some(user), Some(p))
                if p.is("bind", ns::BIND) && stanza.type_attr() == Some("set") =>
            {
                let user = user.clone();
                let requested = p
                    .get_child("resource", ns::BIND)
                    .map(|c| c.text().trim().to_string());
                self.bind(user, requested, &stanza).await
            }
            (Some(_), Some(p)) if p.is("session", ns::SESSION) => {
                let reply = iq_reply(&stanza.el, Ok(None));
                if self.write_el(&reply).await {
                    Outcome::Continue
                } else {
                    Outcome::Close
                }
            }
            _ => {
                self.close(StreamError::NotAuthorized, None).await;
                Outcome::Close
            }
        }
    }

    /// XEP-0198 §5: hand this connection to the hibernating session.
    async fn resume(&mut self, el: &Element) -> Outcome {
        let found = match (
            &self.user,
            el.attr("previd"),
            el.attr("h").and_then(|h| h.parse::<u32>().ok()),
        ) {
            (Some(user), Some(previd), Some(h)) => {
                self.server.sm.find(previd, user).map(|tx| (tx, h))
            }
            _ => None,
        };
        if let Some((tx, h)) = found {
            let r = super::stream_management::Resumption {
                conn: std::mem::replace(&mut self.conn, Connection::detached(self.peer)),
                h,
                sasl2_success: None,
            };
            match tx.send(r).await {
                Ok(()) => return Outcome::Close,
                Err(mpsc::error::SendError(r)) => self.conn = r.conn,
            }
        }
        let f = super::stream_management::failed("item-not-found", None);
        if self.write_el(&f).await {
            Outcome::Continue
        } else {
            Outcome::Close
        }
    }

    /// RFC 6120 §7: bind the requested resource (prepared by the jid crate's
    /// resourceprep) or one we make up.
    async fn bind(&mut self, user: BareJid, requested: Option<String>, iq: &Stanza) -> Outcome {
        let resource = match requested.filter(|r| !r.is_empty()) {
            Some(r) => r,
            None => roost_proto::id::resource(),
        };
        let jid = match user.with_resource_str(&resource) {
            Ok(j) => j,
            Err(_) => {
                let reply = iq_reply(&iq.el, Err(StanzaError::bad_request("invalid resource")));
                return if self.write_el(&reply).await {
                    Outcome::Continue
                } else {
                    Outcome::Close
                };
            }
        };
        let (handle, rx, kill, _) = match self.bind_at_account(&user, &jid, None).await {
            Ok(bound) => bound,
            Err(BindFailure::TooManyResources) => {
                // RFC 6120 §7.6.2.1; the client may close another session
                // and try again on this stream.
                let reply = iq_reply(
                    &iq.el,
                    Err(StanzaError::new(Condition::ResourceConstraint)
                        .with_text("too many sessions of this account (limits.max_resources)")),
                );
                return if self.write_el(&reply).await {
                    Outcome::Continue
                } else {
                    Outcome::Close
                };
            }
            Err(BindFailure::AccountGone) => {
                let reply = iq_reply(&iq.el, Err(StanzaError::internal()));
                self.write_el(&reply).await;
                return Outcome::Close;
            }
        };
        let result = Element::bare("bind", ns::BIND)
            .child(Element::bare("jid", ns::BIND).text_node(jid.to_string()));
        let reply = iq_reply(&iq.el, Ok(Some(result)));
        if !self.write_el(&reply).await {
            // Bound but gone: the session task would unbind; do it here.
            self.server.send_to_account(
                &user,
                AccountMsg::Unbind {
                    resource: jid.resource().to_string(),
                    session_id: handle.id,
                },
            );
            return Outcome::Close;
        }
        tracing::info!(session = %jid, "bound");
        let conn = std::mem::replace(&mut self.conn, Connection::detached(self.peer));
        Outcome::Bound(Box::new(Negotiated {
            conn,
            jid,
            handle,
            rx,
            kill,
            pending: Vec::new(),
            inline: None,
        }))
    }

    /// Bind `jid` at the account's task; the session's handle, queues and
    /// the rooms a Bind 2 request joined it to.
    #[allow(clippy::type_complexity)]
    async fn bind_at_account(
        &self,
        user: &BareJid,
        jid: &FullJid,
        inline: Option<crate::account::BindInline>,
    ) -> Result<
        (
            SessionHandle,
            mailbox::Receiver<SessionMsg>,
            mailbox::Receiver<crate::account::KillReason>,
            Vec<(String, String)>,
        ),
        BindFailure,
    > {
        let (tx, rx) = crate::account::session_queue(&self.server.config.limits);
        let (kill_tx, kill) = mailbox::channel(1);
        let handle = SessionHandle::new(self.server.next_session_id(), jid.clone(), tx, kill_tx);
        let (done_tx, done_rx) = oneshot::channel();
        self.server.send_to_account(
            user,
            AccountMsg::Bind {
                resource: jid.resource().to_string(),
                handle: handle.clone(),
                inline: inline.map(Box::new),
                reply: done_tx,
            },
        );
        match done_rx.await {
            Ok(Some(rooms)) => Ok((handle, rx, kill, rooms)),
            Ok(None) => Err(BindFailure::TooManyResources),
            Err(_) => Err(BindFailure::AccountGone),
        }
    }

    /// XEP-0388 §2.6.1 success: resume inline (XEP-0198), or bind inline
    /// (XEP-0386), or stay on this stream, authenticated, without a
    /// restart; `<success/>` is followed by the stream's new features.
    async fn sasl2_success(
        &mut self,
        user: BareJid,
        data: Option<Vec<u8>>,
        req: sasl2::Request,
    ) -> Outcome {
        self.user = Some(user.clone());
        let additional = data.map(|d| encode(&d));
        let already = !self.sasl2_extra.is_empty();
        if let (Some(mech), Some(client), false) = (
            req.request_token.as_deref(),
            req.user_agent.as_deref(),
            already,
        ) {
            if let Some(mech) = self.fast_mechanisms().into_iter().find(|m| *m == mech) {
                if let Some(policy) = self.fast_policy() {
                    let stores = self.server.stores.clone();
                    match super::fast::issue(&stores, &policy, &user, client, mech).await {
                        Ok(t) => self.sasl2_extra.push(t),
                        Err(e) => {
                            tracing::error!(account = %user, error = %e, "FAST token not issued")
                        }
                    }
                }
            }
        }
        let extra = std::mem::take(&mut self.sasl2_extra);
        let success = sasl2::success(user.as_str(), additional.clone());
        let mut resume_failed = None;
        if let Some((previd, h)) = req.resume {
            if let Some(tx) = self.server.sm.find(&previd, &user) {
                let r = super::stream_management::Resumption {
                    conn: std::mem::replace(&mut self.conn, Connection::detached(self.peer)),
                    h,
                    sasl2_success: Some(
                        sasl2::success_for_resumption(additional.clone())
                            .children_from(extra.iter().cloned()),
                    ),
                };
                match tx.send(r).await {
                    Ok(()) => return Outcome::Close,
                    Err(mpsc::error::SendError(r)) => self.conn = r.conn,
                }
            }
            resume_failed = Some(super::stream_management::failed("item-not-found", None));
        }
        let Some(bind) = req.bind else {
            let mut success = success;
            if let Some(f) = resume_failed {
                success.append_child(f);
            }
            for e in extra {
                success.append_child(e);
            }
            let features = self.features();
            self.conn.queue_element(&success);
            self.conn.queue_features(&features);
            return match self.conn.flush().await {
                Ok(()) => Outcome::Continue,
                Err(_) => Outcome::Close,
            };
        };
        let resource = sasl2::resource(
            user.as_str(),
            bind.tag.as_deref(),
            req.user_agent.as_deref(),
        );
        let jid = match user.with_resource_str(&resource) {
            Ok(j) => j,
            // A tag that makes no resource: the generated part alone.
            Err(_) => match user.with_resource_str(&sasl2::resource(
                user.as_str(),
                None,
                req.user_agent.as_deref(),
            )) {
                Ok(j) => j,
                Err(_) => return Outcome::Close,
            },
        };
        let account_muc = self.server.config.account_muc.enabled;
        let inline = crate::account::BindInline {
            carbons: bind.carbons,
            rooms: bind.rooms && account_muc,
        };
        let Ok((handle, rx, kill, rooms)) = self.bind_at_account(&user, &jid, Some(inline)).await
        else {
            // Too many sessions (limits.max_resources) or the account's
            // task is gone: XEP-0388 has no better condition.
            self.write_el(&sasl2::failure("temporary-auth-failure", None))
                .await;
            return Outcome::Close;
        };
        tracing::info!(session = %jid, "bound (Bind 2)");
        let mut success = sasl2::success(jid.as_str(), additional);
        if let Some(f) = resume_failed {
            success.append_child(f);
        }
        for e in extra {
            success.append_child(e);
        }
        let conn = std::mem::replace(&mut self.conn, Connection::detached(self.peer));
        Outcome::Bound(Box::new(Negotiated {
            conn,
            jid,
            handle,
            rx,
            kill,
            pending: Vec::new(),
            inline: Some(Box::new(sasl2::Inline {
                success,
                bind,
                rooms,
            })),
        }))
    }
}

fn decode(text: &str) -> Result<Vec<u8>, SaslError> {
    let text = text.trim();
    // RFC 6120 §6.4.2: "=" stands for an empty response.
    if text.is_empty() || text == "=" {
        return Ok(Vec::new());
    }
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| SaslError::IncorrectEncoding)
}

fn encode(data: &[u8]) -> String {
    if data.is_empty() {
        "=".into()
    } else {
        base64::engine::general_purpose::STANDARD.encode(data)
    }
}
