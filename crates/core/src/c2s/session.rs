//! A bound c2s session (RFC 6120 §8, §4.6): reads stanzas, stamps their
//! sender, answers IQs to the server and the own account through the module
//! registry, hands presence, messages and account IQs to the account task
//! and routes the rest; writes what the session's queue receives.
//!
//! With XEP-0198 resumption a session outlives its socket: it hibernates,
//! keeps queueing, and either a new connection resumes it or the window
//! ends. However it ends, the account is told (RFC 6121 §4.5.2) and what the
//! client never acknowledged is routed again, so messages reach another
//! session or offline storage instead of being lost.

use std::sync::Arc;
use std::time::Duration;

use jid::{BareJid, FullJid, Jid};
use minidom::Element;
use roost_proto::stanza::EnvelopeError;
use roost_proto::{ns, Elem, ElementExt, Stanza, StanzaError, StanzaKind, StreamError};
use roost_stream::StreamEvent;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::conn::Connection;
use super::csi::{self, Csi, Outgoing};
use super::negotiation::Negotiated;
use super::stream_management::{self as sm, Resumption, StreamManagement};
use crate::account::{AccountMsg, DeviceState, SessionMsg};
use crate::module::Scope;
use crate::server::{iq_reply, Server};

/// How long a closing session waits for input already on its way.
const SHUTDOWN_DRAIN: Duration = Duration::from_millis(50);
/// Stanzas written per wake-up before the socket is flushed.
const WRITE_BATCH: usize = 64;
/// `<r/>`s in a row without a stanza before the client counts as abusive.
const MAX_ACK_REQUESTS: u32 = 64;
/// The longest an `<r/>` waits for stanzas in flight to become safe; then
/// it is answered with what is done (the client asks again later). Longer
/// than the archive's gather window (250 ms) with room for a busy disk.
const ACK_WAIT: Duration = Duration::from_secs(10);

/// IQ namespaces the account task answers for its own sessions.
const ACCOUNT_IQS: &[&str] = &[
    ns::ROSTER,
    ns::CARBONS,
    ns::BLOCKING,
    ns::MAM,
    crate::account::PUSH_NS,
];

enum Next {
    Continue,
    /// End the session, with a stream error or a clean close.
    Close(Option<(StreamError, String)>),
}

struct Session {
    /// An application-specific condition for the stream error that ends
    /// the session (RFC 6120 §4.9.4), when there is one.
    error_detail: Option<Box<Element>>,
    server: Arc<Server>,
    jid: FullJid,
    bare: BareJid,
    /// `None` while hibernating (socket lost, resumption possible).
    conn: Option<Connection>,
    sm: Option<StreamManagement>,
    resume_rx: Option<mpsc::Receiver<Resumption>>,
    csi: Csi,
    /// Receipts of stanzas queued for this client by other sessions
    /// (receipts.rs): released once the stanzas are written to the socket.
    written: Vec<roost_proto::stanza::Receipt>,
    session_id: u64,
    /// The device registered for push notifications (XEP-0357): it
    /// hibernates for `resume_timeout_push`.
    push: bool,
}

pub async fn run(server: Arc<Server>, n: Negotiated) {
    let Negotiated {
        conn,
        jid,
        handle,
        mut rx,
        mut kill,
        pending,
        inline,
    } = n;
    server.counters.session_started();
    let mut s = Session {
        error_detail: None,
        bare: jid.to_bare(),
        jid,
        server: server.clone(),
        conn: Some(conn),
        sm: None,
        resume_rx: None,
        csi: Csi::default(),
        session_id: handle.id,
        push: false,
        written: Vec::new(),
    };
    let mut shutdown = server.shutdown_signal();
    let idle = Duration::from_secs(server.config.limits.idle_timeout.max(1));
    let max_unacked = server.config.stream_management.max_unacked;
    let mut events = pending;
    if let Some(inline) = inline {
        s.start_inline(*inline);
    }
    let mut hibernate_until: Option<Instant> = None;
    let reason: Option<(StreamError, String)> = 'session: loop {
        for ev in std::mem::take(&mut events) {
            // Boxed: handling a stanza may need a large state (IQ
            // handlers), which an idle session should not carry.
            match Box::pin(s.event(ev)).await {
                Next::Continue => {}
                Next::Close(r) => break 'session r,
            }
        }
        s.flush().await;
        if s.sm.as_ref().is_some_and(|m| m.unacked_len() > max_unacked) {
            break 'session Some((
                StreamError::ResourceConstraint,
                "too many unacknowledged stanzas".into(),
            ));
        }
        let connected = s.conn.is_some();
        tokio::select! {
            biased;
            k = kill.recv() => break 'session k.map(|k| *k),
            _ = crate::server::until_shutdown(&mut shutdown) => {
                // What the client sent before it could know is still taken:
                // read what is already on its way, then close. (Boxed, like
                // the other rare branches, so that an idle session's state
                // is not sized for them.)
                if let Some(r) = Box::pin(s.drain_before_shutdown()).await {
                    break 'session r;
                }
                break 'session Some((StreamError::SystemShutdown, "the server is shutting down".into()));
            }
            _ = ack_progress(&s.sm), if s.sm.as_ref().is_some_and(|m| m.ack_due.is_some()) => {
                s.answer_due_ack();
            }
            Some(r) = recv_resumption(&mut s.resume_rx) => {
                if Box::pin(s.resume(r)).await {
                    hibernate_until = None;
                    s.device(DeviceState::Live);
                }
            }
            msg = rx.recv() => {
                let Some(msg) = msg else { break 'session None };
                s.incoming_msg(msg);
                for _ in 0..WRITE_BATCH {
                    match rx.try_recv() {
                        Some(msg) => s.incoming_msg(msg),
                        None => break,
                    }
                }
                s.request_ack();
            }
            r = read_events(&mut s.conn, idle, &mut events), if connected => {
                match r {
                    Ok(true) => {}
                    Err(e) => break 'session Some((e, String::new())),
                    // Socket lost or silent: hibernate if the client can resume.
                    Ok(false) if s.resumable() => {
                        tracing::info!(session = %s.jid, "connection lost; waiting for resumption");
                        // Closed aside: a WebSocket may still owe its peer a close frame.
                        if let Some(mut lost) = s.conn.take() {
                            tokio::spawn(async move { lost.shutdown().await });
                        }
                        let sm = &server.config.stream_management;
                        let window = if s.push { sm.resume_timeout_push } else { sm.resume_timeout };
                        hibernate_until = Some(Instant::now() + Duration::from_secs(window));
                        s.device(DeviceState::Hibernated);
                    }
                    Ok(false) => break 'session None,
                }
            }
            _ = sleep_until(hibernate_until), if hibernate_until.is_some() => {
                tracing::info!(session = %s.jid, "resumption window ended");
                break 'session None;
            }
        }
    };
    Box::pin(s.close(reason)).await;
    if let Some(id) = s.sm.as_ref().and_then(|m| m.id.clone()) {
        server.sm.remove(&id);
    }
    tracing::info!(session = %s.jid, "session ended");
    server.send_to_account(
        &s.bare,
        AccountMsg::Unbind {
            resource: s.jid.resource().to_string(),
            session_id: handle.id,
        },
    );
    s.reroute_unacked();
    server.counters.session_ended();
}

async fn recv_resumption(rx: &mut Option<mpsc::Receiver<Resumption>>) -> Option<Resumption> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Some stanza of the client became safe, or the deadline of an owed ack
/// passed (either way `answer_due_ack` decides).
async fn ack_progress(sm: &Option<StreamManagement>) {
    let Some((m, due)) = sm.as_ref().and_then(|m| Some((m, m.ack_due?))) else {
        return std::future::pending().await;
    };
    // Boxed: a timer and a waiter would otherwise sit in every idle
    // session's state, while an ack is owed only for moments.
    Box::pin(async move {
        tokio::select! {
            _ = m.receipts.progressed() => {}
            _ = tokio::time::sleep_until(due) => {}
        }
    })
    .await
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Read once (see `Connection::read`); `Ok(false)` when the connection
/// closed, failed or stayed silent too long.
async fn read_events(
    conn: &mut Option<Connection>,
    idle: Duration,
    out: &mut Vec<StreamEvent>,
) -> Result<bool, StreamError> {
    match conn {
        Some(c) => c.read(idle, out).await,
        None => Ok(false),
    }
}

impl Session {
    /// Read and handle what the client had already sent when the server
    /// began to shut down; `Some` if that input itself ended the session.
    async fn drain_before_shutdown(&mut self) -> Option<Option<(StreamError, String)>> {
        let mut last = Vec::new();
        while let Ok(true) = read_events(&mut self.conn, SHUTDOWN_DRAIN, &mut last).await {}
        for ev in last {
            if let Next::Close(r) = Box::pin(self.event(ev)).await {
                return Some(r);
            }
        }
        None
    }

    fn resumable(&self) -> bool {
        self.sm.as_ref().is_some_and(|m| m.id.is_some())
    }

    /// A message from the account for the client.
    fn incoming_msg(&mut self, msg: SessionMsg) {
        match msg {
            SessionMsg::Stanza(el, _) => self.outgoing(*el),
            SessionMsg::Receipted(b, _) => {
                let (el, receipt) = *b;
                self.outgoing(el);
                self.written.push(receipt);
            }
            SessionMsg::Forked(el, _) => self.outgoing_forked(el),
            SessionMsg::PushRegistered(on) => self.push = on,
        }
    }

    /// Tell the account whether this device hears what it is sent.
    fn device(&self, state: DeviceState) {
        self.server.send_to_account(
            &self.bare,
            AccountMsg::DeviceState {
                resource: self.jid.resource().to_string(),
                session_id: self.session_id,
                state,
            },
        );
    }

    /// A tree shared with the account's other sessions: written straight
    /// from it with this session's JID as `to`, unless client state
    /// indication or stream management needs an element of its own.
    fn outgoing_forked(&mut self, el: Arc<Element>) {
        if self.csi.inactive || self.sm.is_some() || self.conn.is_none() {
            let mut own = Arc::unwrap_or_clone(el);
            own.set("to", self.jid.as_str());
            self.outgoing(own);
            return;
        }
        self.count_out(&el);
        if let Some(c) = self.conn.as_mut() {
            c.queue_element_to(&el, self.jid.as_str());
        }
    }

    /// Queue an element for the client: CSI may hold it; stream management
    /// counts it; it is written at the next flush (or kept while detached).
    fn outgoing(&mut self, el: Element) {
        match self.csi.outgoing(el) {
            Outgoing::Held => {}
            Outgoing::Send(els) => {
                for el in els {
                    self.write_counted(el);
                }
            }
        }
    }

    fn count_out(&self, el: &Element) {
        self.server
            .counters
            .stanzas_out
            .bump(crate::counters::Kind::of(el.name()));
    }

    fn write_counted(&mut self, el: Element) {
        self.count_out(&el);
        if let Some(c) = self.conn.as_mut() {
            c.queue_element(&el);
        }
        if let Some(m) = self.sm.as_mut() {
            m.sent(el);
        }
    }

    /// A nonza or reply that is not counted by stream management.
    fn write_uncounted(&mut self, el: &Element) {
        if let Some(c) = self.conn.as_mut() {
            c.queue_element(el);
        }
    }

    async fn flush(&mut self) {
        let Some(c) = self.conn.as_mut() else {
            self.written.clear();
            return;
        };
        if c.flush().await.is_err() {
            // The read side will notice and hibernate or end the session.
            tracing::debug!(session = %self.jid, "write failed");
        }
        // Written (or failed for good): the senders may count them.
        self.written.clear();
    }

    /// Answer an owed `<r/>` once every stanza read is safe, or at its
    /// deadline with what is safe by then.
    fn answer_due_ack(&mut self) {
        let Some(m) = self.sm.as_mut() else { return };
        let Some(due) = m.ack_due else { return };
        if m.receipts.all_done() || Instant::now() >= due {
            m.ack_due = None;
            let a = m.ack_element();
            self.write_uncounted(&a);
        }
    }

    /// Ask for an acknowledgement when something is outstanding.
    fn request_ack(&mut self) {
        let Some(c) = self.conn.as_mut() else {
            return;
        };
        if let Some(m) = self.sm.as_mut() {
            if !m.requested && m.unacked_len() > 0 {
                m.requested = true;
                c.queue_element(&sm::request());
            }
        }
    }

    async fn close(&mut self, reason: Option<(StreamError, String)>) {
        self.flush().await;
        let Some(c) = self.conn.as_mut() else {
            return;
        };
        match &reason {
            Some((err, text)) => c.queue_stream_error_with(
                *err,
                (!text.is_empty()).then_some(text.as_str()),
                self.error_detail.take().as_deref(),
            ),
            None => c.queue_end(),
        }
        c.shutdown().await;
    }

    /// Messages the client never acknowledged go back to the router: they
    /// reach another session of the account or offline storage.
    fn reroute_unacked(&mut self) {
        let Some(m) = self.sm.as_mut() else { return };
        for el in m.take_unacked() {
            let eligible = el.name() == "message"
                && matches!(el.attr("type"), None | Some("chat") | Some("normal"))
                && el.has_child("body", ns::CLIENT);
            if eligible {
                let mut el = el;
                // Addressed to the bare JID so that this ended resource is skipped.
                el.set("to", self.bare.as_str());
                if let Ok(stanza) = Stanza::parse(el) {
                    self.server
                        .send_to_account(&self.bare, AccountMsg::Deliver(stanza));
                }
            }
        }
    }

    /// Take over a new connection (XEP-0198 §5).
    async fn resume(&mut self, r: Resumption) -> bool {
        let Resumption {
            mut conn,
            h,
            sasl2_success,
        } = r;
        let Some(m) = self.sm.as_mut() else {
            return false;
        };
        // The `h` in <resumed/> tells the client what not to resend: let
        // what is in flight become safe first (bounded), so that it is
        // neither lost nor sent twice.
        let until = Instant::now() + ACK_WAIT;
        while !m.receipts.all_done() && Instant::now() < until {
            let _ = tokio::time::timeout_at(until, m.receipts.progressed()).await;
        }
        let previd = m.id.clone().unwrap_or_default();
        if m.ack(h).is_err() {
            conn.queue_element(&sm::failed("unexpected-request", Some(m.handled_in())));
            conn.queue_stream_error_with(
                StreamError::UndefinedCondition,
                Some("handled count too high"),
                Some(&m.too_high(h)),
            );
            tokio::spawn(async move { conn.shutdown().await });
            return false;
        }
        // The old connection, if the server had not noticed it die, is
        // closed aside: a dead WebSocket peer must not stall the session.
        if let Some(mut old) = self.conn.take() {
            tokio::spawn(async move { old.shutdown().await });
        }
        let resumed = Element::bare("resumed", sm::NS)
            .attr_set("previd", previd)
            .attr_set("h", m.handled_in().to_string());
        m.ack_due = None;
        match sasl2_success {
            Some(mut success) => {
                success.append_child(super::sasl2::authorization(self.jid.as_str()));
                success.append_child(resumed);
                conn.queue_element(&success);
                conn.queue_features(&bound_features(false));
            }
            None => conn.queue_element(&resumed),
        }
        for el in m.unacked() {
            conn.queue_element(el);
        }
        m.requested = false;
        self.conn = Some(conn);
        for el in self.csi.activate() {
            self.write_counted(el);
        }
        self.request_ack();
        self.flush().await;
        tracing::info!(session = %self.jid, "resumed");
        true
    }

    async fn event(&mut self, ev: StreamEvent) -> Next {
        match ev {
            StreamEvent::End => Next::Close(None),
            StreamEvent::Header(_) => Next::Close(Some((
                StreamError::NotWellFormed,
                "unexpected stream header".into(),
            ))),
            StreamEvent::Element(el) if el.ns() == sm::NS => self.sm_nonza(el),
            StreamEvent::Element(el) if el.ns() == csi::NS => {
                match el.name() {
                    "active" => {
                        for el in self.csi.activate() {
                            self.write_counted(el);
                        }
                        self.device(DeviceState::Live);
                    }
                    "inactive" => {
                        self.csi.inactive = true;
                        self.device(DeviceState::Inactive);
                    }
                    _ => {}
                }
                Next::Continue
            }
            StreamEvent::Element(el) => {
                let receipt = self.sm.as_mut().map(|m| {
                    m.requests_in_a_row = 0;
                    m.receipts.issue()
                });
                self.element(el, receipt).await
            }
        }
    }

    /// XEP-0198 §3: `<enabled/>` (with an id when resumable), or
    /// `<failed/>` when already on.
    fn enable_sm(&mut self, resume: bool) -> Element {
        if self.sm.is_some() {
            return sm::failed("unexpected-request", None);
        }
        let window = self.server.config.stream_management.resume_timeout;
        let id = resume.then(|| roost_proto::id::random_token(24));
        let mut enabled = Element::bare("enabled", sm::NS);
        if let Some(id) = &id {
            enabled = enabled
                .attr_set("id", id.clone())
                .attr_set("resume", "true")
                .attr_set("max", window.to_string());
            let (tx, rx) = mpsc::channel(1);
            self.server.sm.register(id.clone(), self.bare.clone(), tx);
            self.resume_rx = Some(rx);
        }
        self.sm = Some(StreamManagement::new(id));
        enabled
    }

    /// A Bind 2 session starts (XEP-0386): stream management and client
    /// state as asked, then `<success/>` and the stream's features, before
    /// anything queued for the session.
    fn start_inline(&mut self, inline: super::sasl2::Inline) {
        let sm_answer = inline.bind.sm.map(|resume| self.enable_sm(resume));
        let sm_on = self.sm.is_some();
        if inline.bind.csi_inactive == Some(true) {
            self.csi.inactive = true;
            self.device(DeviceState::Inactive);
        }
        let success = inline.finish(sm_answer);
        if let Some(c) = self.conn.as_mut() {
            c.queue_element(&success);
            c.queue_features(&bound_features(!sm_on));
        }
    }

    fn sm_nonza(&mut self, el: Element) -> Next {
        match el.name() {
            "enable" => {
                let resume = matches!(el.attr("resume"), Some("true") | Some("1"));
                let answer = self.enable_sm(resume);
                self.write_uncounted(&answer);
                Next::Continue
            }
            "r" => {
                let Some(m) = self.sm.as_mut() else {
                    return Next::Continue;
                };
                m.requests_in_a_row += 1;
                if m.requests_in_a_row > MAX_ACK_REQUESTS {
                    return Next::Close(Some((
                        StreamError::PolicyViolation,
                        "too many ack requests".into(),
                    )));
                }
                if m.receipts.all_done() {
                    let a = m.ack_element();
                    self.write_uncounted(&a);
                } else if m.ack_due.is_none() {
                    // Answered when what was read is safe (receipts.rs).
                    m.ack_due = Some(Instant::now() + ACK_WAIT);
                }
                Next::Continue
            }
            "a" => {
                let Some(m) = self.sm.as_mut() else {
                    return Next::Continue;
                };
                let Some(h) = el.attr("h").and_then(|h| h.parse::<u32>().ok()) else {
                    return Next::Close(Some((
                        StreamError::InvalidXml,
                        "ack without a valid h".into(),
                    )));
                };
                if m.ack(h).is_err() {
                    self.error_detail = Some(Box::new(m.too_high(h)));
                    return Next::Close(Some((
                        StreamError::UndefinedCondition,
                        "handled count too high".into(),
                    )));
                }
                Next::Continue
            }
            _ => Next::Close(Some((StreamError::UnsupportedStanzaType, String::new()))),
        }
    }

    async fn element(
        &mut self,
        mut el: Element,
        receipt: Option<roost_proto::stanza::Receipt>,
    ) -> Next {
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
            Ok(mut s) => {
                s.receipt = receipt;
                s
            }
            Err(EnvelopeError::UnsupportedStanzaType) => {
                return Next::Close(Some((StreamError::UnsupportedStanzaType, String::new())));
            }
            Err(EnvelopeError::JidMalformed) => {
                self.jid_malformed(envelope);
                return Next::Continue;
            }
        };
        self.server
            .counters
            .stanzas_in
            .bump(crate::counters::Kind::of(stanza.el.name()));
        match stanza.kind {
            StanzaKind::Presence => self.to_account(stanza),
            StanzaKind::Iq => self.iq(stanza).await,
            StanzaKind::Message => {
                let mut stanza = stanza;
                if stanza.to.is_none() {
                    // RFC 6120 §10.3: no `to` means the account itself.
                    stanza.el.set("to", self.bare.as_str());
                    stanza.to = Some(Jid::from(self.bare.clone()));
                }
                // Through the account, which keeps carbons and the archive.
                self.to_account(stanza);
            }
        }
        Next::Continue
    }

    /// RFC 6120 §8.3.3.8: a `to` that is not a JID gets `jid-malformed`,
    /// answered from the server since the address cannot be used.
    fn jid_malformed(&mut self, mut envelope: Element) {
        if envelope.attr("type") == Some("error") {
            return;
        }
        envelope.unset("to");
        let mut reply = StanzaError::new(roost_proto::Condition::JidMalformed).reply_to(&envelope);
        reply.set("from", self.server.config.domain.as_str());
        self.outgoing(reply);
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

    async fn iq(&mut self, stanza: Stanza) {
        // RFC 6120 §8.2.3: the four types only; §8.1.3: requests carry an
        // id. Anything else is a `bad-request` here, routed nowhere.
        let kind = stanza.type_attr();
        let typed = matches!(kind, Some("get" | "set" | "result" | "error"));
        let request = matches!(kind, Some("get" | "set"));
        if !typed || (request && stanza.el.attr("id").is_none()) {
            let why = if typed {
                "an IQ request needs an id"
            } else {
                "an IQ is of type get, set, result or error"
            };
            let reply = StanzaError::bad_request(why).reply_to(&stanza.el);
            self.outgoing(reply);
            return;
        }
        let to_server = match &stanza.to {
            None => true,
            Some(to) => to.node().is_none() && self.server.is_local_domain(to.domain().as_str()),
        };
        let to_self = stanza
            .to
            .as_ref()
            .is_some_and(|t| t.resource().is_none() && t.to_bare() == self.bare);
        if !(to_server || to_self) {
            // IQs to other domains (rooms) pass through the account, which
            // may be their occupant; IQs to local accounts go straight on.
            let local = stanza
                .to
                .as_ref()
                .is_some_and(|t| self.server.is_local_domain(t.domain().as_str()));
            if local {
                self.server.route(stanza);
            } else {
                self.to_account(stanza);
            }
            return;
        }
        if !stanza.is_iq_request() {
            // A response to one of the server's own requests (caps, pings).
            if to_server {
                self.server.iq_response(stanza.el);
            }
            return;
        }
        let payload_ns = stanza.el.children().next().map(|c| c.ns());
        if payload_ns
            .as_deref()
            .is_some_and(|n| ACCOUNT_IQS.contains(&n))
        {
            self.to_account(stanza);
            return;
        }
        // RFC 6120 §10.3.3: an IQ without `to` is handled on behalf of the
        // account's bare JID, so its account-level handler (disco, PEP,
        // vCard, private XML) answers; only payloads that exist solely at
        // the server level (ping, version, register, session) go there.
        let payload = stanza.el.children().next();
        let has_handler =
            |scope| payload.is_some_and(|p| self.server.registry.iq_handler(scope, p).is_some());
        let scope = if stanza.to.is_none() {
            if has_handler(Scope::Account) || !has_handler(Scope::Server) {
                Scope::Account
            } else {
                Scope::Server
            }
        } else if to_server && has_handler(Scope::Server) {
            Scope::Server
        } else {
            Scope::Account
        };
        let account = self.bare.clone();
        let reply = self
            .server
            .dispatch_iq(scope, Some(&account), &stanza, true, false)
            .await;
        self.outgoing(iq_reply(&stanza.el, reply));
    }
}

/// The features of a stream bound with Bind 2 or resumed inline (XEP-0388
/// §2.6.1: `<success/>` is followed by them): what may still be enabled.
fn bound_features(sm: bool) -> Vec<Element> {
    let mut f = vec![Element::bare("csi", "urn:xmpp:csi:0")];
    if sm {
        f.push(Element::bare("sm", sm::NS));
    }
    f
}
