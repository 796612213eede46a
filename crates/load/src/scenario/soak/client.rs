//! One long-lived soak session: a desktop (RFC 6120 SASL and resource
//! binding, RFC 6121 presence) or a phone (XEP-0388 SASL2 with XEP-0386
//! Bind 2, XEP-0198 stream management with resumption, a XEP-0484 FAST
//! token), in one XEP-0045 room, chatting with a partner. A reader task
//! checks every message against the deliveries awaited, routes IQ answers
//! and XEP-0313 results to whoever asked, notes XEP-0359 stanza ids and
//! answers XEP-0198 ack requests; a writer task owns the socket's writing
//! half, so that sending never waits. A phone drops its connection now
//! and then (closed, or left open and silent as a phone that changed
//! networks) and resumes with its token and an inline `<resume/>`, resending
//! what the server did not acknowledge.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{anyhow, bail};
use minidom::Element;
use roost_stream::StreamEvent;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::tally::{parse_body, Kind, Op};
use super::{Rng, Shared};
use crate::xmpp::{error_condition, escape, Conn, ReadSide, WriteSide, NS_CLIENT, NS_SM};

pub const NS_MAM: &str = "urn:xmpp:mam:2";
const NS_SID: &str = "urn:xmpp:sid:0";
const NS_FAST: &str = "urn:xmpp:fast:0";
const NS_STREAMS: &str = "http://etherx.jabber.org/streams";
/// Longest a write may block before the connection counts as stuck.
const WRITE_TIMEOUT: Duration = Duration::from_secs(15);
/// How often a phone asks for an ack of what it sent (XEP-0198 `<r/>`).
const ACK_EVERY: Duration = Duration::from_secs(5);
/// Whitespace keepalives (RFC 6120 §4.6.1), so that a quiet session is
/// not taken for a dead one.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(60);
/// How long the server may take to close a connection a phone left
/// behind once the session was resumed elsewhere.
const OLD_CONN_GRACE: Duration = Duration::from_secs(10);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug, PartialEq, Eq)]
pub enum IqError {
    NotConnected,
    Timeout,
}

/// XEP-0198, our side: stanzas sent and not yet acknowledged.
struct SmOut {
    /// The server's `h` for us at the last ack.
    acked: u32,
    unacked: VecDeque<String>,
    /// An `<r/>` is out.
    asked: bool,
}

struct Out {
    /// To the writer task of the current connection.
    tx: Option<mpsc::UnboundedSender<String>>,
    sm: Option<SmOut>,
}

/// What a phone keeps between connections.
#[derive(Default)]
struct Keep {
    token: String,
    previd: String,
    /// The node the session was on: a phone resumes there, as a client
    /// that cached the server's address does (XEP-0198 sessions live on
    /// the node that had them).
    addr: Option<std::net::SocketAddr>,
}

/// The tasks of one connection.
pub struct Link {
    writer: JoinHandle<Option<WriteSide>>,
    detach: mpsc::Sender<oneshot::Sender<ReadSide>>,
}

pub struct Client {
    /// Position in the population; also the sender number in bodies.
    pub idx: usize,
    pub account: u64,
    pub bare: String,
    pub phone: bool,
    /// The room's JID.
    pub room: Option<String>,
    pub partner: usize,
    pub partner_bare: String,
    out: Mutex<Out>,
    pub connected: AtomicBool,
    /// Closing is ours: an end of stream is not an error.
    quiet: AtomicBool,
    /// XEP-0198: stanzas handled from the server.
    h_in: AtomicU32,
    iqs: Mutex<HashMap<String, oneshot::Sender<Element>>>,
    mam: Mutex<HashMap<String, Vec<Element>>>,
    /// XEP-0359 id (ours) and body of the last chat message received.
    archived: Mutex<Option<(String, String)>>,
    next_id: AtomicU64,
    /// Sequence numbers of the messages this session sends.
    pub seq: AtomicU64,
    lost: Notify,
    keep: Mutex<Keep>,
}

impl Client {
    pub fn new(
        idx: usize,
        account: u64,
        bare: String,
        phone: bool,
        room: Option<String>,
        partner: usize,
        partner_bare: String,
    ) -> Client {
        Client {
            idx,
            account,
            bare,
            phone,
            room,
            partner,
            partner_bare,
            out: Mutex::new(Out { tx: None, sm: None }),
            connected: AtomicBool::new(false),
            quiet: AtomicBool::new(true),
            h_in: AtomicU32::new(0),
            iqs: Mutex::new(HashMap::new()),
            mam: Mutex::new(HashMap::new()),
            archived: Mutex::new(None),
            next_id: AtomicU64::new(0),
            seq: AtomicU64::new(0),
            lost: Notify::new(),
            keep: Mutex::new(Keep::default()),
        }
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    pub fn new_id(&self, prefix: &str) -> String {
        format!(
            "{prefix}{}-{}",
            self.idx,
            self.next_id.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// The last chat message received, by its archive id.
    pub fn archived(&self) -> Option<(String, String)> {
        lock(&self.archived).clone()
    }

    /// Queue a stanza for the current connection (and, with stream
    /// management, keep it until acknowledged). `false`: not connected.
    pub fn send(&self, stanza: String) -> bool {
        let mut out = lock(&self.out);
        let Out { tx, sm } = &mut *out;
        let Some(tx) = tx else {
            return false;
        };
        if let Some(sm) = sm {
            sm.unacked.push_back(stanza.clone());
        }
        // A writer that is gone: the reader notices the closed connection,
        // and a phone resends what is unacknowledged after resuming.
        let _ = tx.send(stanza);
        true
    }

    /// Queue a nonza (not counted by stream management).
    fn nonza(&self, s: String) {
        if let Some(tx) = &lock(&self.out).tx {
            let _ = tx.send(s);
        }
    }

    /// XEP-0198 §4: ask for an ack when something is unacknowledged.
    pub fn ask_ack(&self) {
        let mut out = lock(&self.out);
        let Out { tx, sm } = &mut *out;
        if let (Some(tx), Some(sm)) = (tx, sm) {
            if !sm.unacked.is_empty() && !sm.asked {
                sm.asked = true;
                let _ = tx.send(format!("<r xmlns='{NS_SM}'/>"));
            }
        }
    }

    /// Forget what the server's `h` covers. `Err` when it covers more
    /// than was sent.
    fn acked(&self, h: u32) -> Result<(), String> {
        let mut out = lock(&self.out);
        let Some(sm) = out.sm.as_mut() else {
            return Ok(());
        };
        let n = h.wrapping_sub(sm.acked) as usize;
        sm.asked = false;
        if n > sm.unacked.len() {
            return Err(format!(
                "h={h} acknowledges {n} stanzas, {} were unacknowledged",
                sm.unacked.len()
            ));
        }
        sm.unacked.drain(..n);
        sm.acked = h;
        Ok(())
    }

    /// Send an IQ and wait for its answer.
    pub async fn iq(
        &self,
        kind: &str,
        to: Option<&str>,
        payload: &str,
        timeout: Duration,
    ) -> Result<Element, IqError> {
        let id = self.new_id("iq");
        let (tx, rx) = oneshot::channel();
        lock(&self.iqs).insert(id.clone(), tx);
        let to = to
            .map(|t| format!(" to='{}'", escape(t)))
            .unwrap_or_default();
        if !self.send(format!("<iq type='{kind}' id='{id}'{to}>{payload}</iq>")) {
            lock(&self.iqs).remove(&id);
            return Err(IqError::NotConnected);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(e)) => Ok(e),
            _ => {
                lock(&self.iqs).remove(&id);
                Err(IqError::Timeout)
            }
        }
    }

    /// Collect XEP-0313 results of `queryid` until `take_results`.
    pub fn expect_results(&self, queryid: &str) {
        lock(&self.mam).insert(queryid.to_string(), Vec::new());
    }

    pub fn take_results(&self, queryid: &str) -> Vec<Element> {
        lock(&self.mam).remove(queryid).unwrap_or_default()
    }

    // --- reading ----------------------------------------------------------

    fn element(&self, shared: &Shared, e: &Element) {
        if e.ns() == NS_SM {
            match e.name() {
                "r" => self.nonza(format!(
                    "<a xmlns='{NS_SM}' h='{}'/>",
                    self.h_in.load(Ordering::Relaxed)
                )),
                "a" => {
                    let h = e.attr("h").and_then(|h| h.parse().ok()).unwrap_or(0);
                    if let Err(why) = self.acked(h) {
                        shared
                            .tally
                            .error("sm:bad_ack", &format!("{}: {why}", self.bare));
                    }
                }
                _ => {}
            }
            return;
        }
        if e.name() == "error" && e.ns() == NS_STREAMS {
            if !self.quiet.load(Ordering::Relaxed) {
                let cond = e
                    .children()
                    .find(|c| c.name() != "text")
                    .map(|c| c.name().to_string())
                    .unwrap_or_default();
                shared.tally.error(
                    &format!("stream_error:{cond}"),
                    &format!("{}: {}", self.bare, String::from(e)),
                );
            }
            return;
        }
        if matches!(e.name(), "message" | "presence" | "iq") {
            self.h_in.fetch_add(1, Ordering::Relaxed);
        }
        match e.name() {
            "message" => self.message(shared, e),
            "iq" => self.iq_in(shared, e),
            _ => {}
        }
    }

    fn message(&self, shared: &Shared, e: &Element) {
        if let Some(r) = e.get_child("result", NS_MAM) {
            let qid = r.attr("queryid").unwrap_or_default();
            match lock(&self.mam).get_mut(qid) {
                Some(v) => v.push(r.clone()),
                None => shared.tally.error(
                    "mam:stray_result",
                    &format!("{}: result for query {qid:?} nobody waits for", self.bare),
                ),
            }
            return;
        }
        if e.attr("type") == Some("error") {
            shared.tally.error(
                &format!("message:error {}", error_condition(e)),
                &format!("{}: {}", self.bare, String::from(e)),
            );
            return;
        }
        let Some(text) = e.get_child("body", NS_CLIENT).map(|b| b.text()) else {
            return;
        };
        let Some((kind, sender, seq, _)) = parse_body(&text) else {
            return;
        };
        let now = shared.ctx.now_us();
        let want = match kind {
            Kind::Chat => "chat",
            Kind::Muc => "groupchat",
        };
        if e.attr("type") != Some(want) {
            shared.tally.error(
                &format!("{}:wrong_type", kind.name()),
                &format!("{}: {}", self.bare, String::from(e)),
            );
        }
        match shared.expect.remove(&(self.idx, sender, seq)) {
            Some(p) => {
                let via = shared.epoch(sender) != p.sender_epoch
                    || shared.epoch(self.idx) != p.receiver_epoch;
                let op = if via { Op::ViaResume } else { kind.op() };
                shared.tally.record(
                    op,
                    now.saturating_sub(p.sent_us),
                    &format!("{} from session {sender}", self.bare),
                );
            }
            None if shared.expect.was_lost(&(self.idx, sender, seq)) => shared.tally.error(
                &format!("{}:late", kind.name()),
                &format!(
                    "{} got message {seq} of session {sender} after it was counted lost",
                    self.bare
                ),
            ),
            None => shared.tally.error(
                &format!("{}:duplicate", kind.name()),
                &format!("{} got message {seq} of session {sender} again", self.bare),
            ),
        }
        if kind == Kind::Chat {
            let sid = e
                .children()
                .find(|c| c.is("stanza-id", NS_SID) && c.attr("by") == Some(self.bare.as_str()))
                .and_then(|c| c.attr("id"));
            match sid {
                Some(id) => *lock(&self.archived) = Some((id.to_string(), text)),
                None => shared.tally.error(
                    "chat:no_stanza_id",
                    &format!("{}: {}", self.bare, String::from(e)),
                ),
            }
        }
    }

    fn iq_in(&self, shared: &Shared, e: &Element) {
        let id = e.attr("id").unwrap_or_default();
        match e.attr("type") {
            Some("result") | Some("error") => match lock(&self.iqs).remove(id) {
                Some(tx) => {
                    let _ = tx.send(e.clone());
                }
                None => shared.tally.error(
                    "iq:unexpected_answer",
                    &format!("{}: {}", self.bare, String::from(e)),
                ),
            },
            _ => {
                // RFC 6120 §8.2.3: every request gets an answer.
                let to = e
                    .attr("from")
                    .map(|f| format!(" to='{}'", escape(f)))
                    .unwrap_or_default();
                let id = escape(id);
                let answer = if e.has_child("ping", "urn:xmpp:ping") {
                    format!("<iq type='result' id='{id}'{to}/>")
                } else {
                    format!("<iq type='error' id='{id}'{to}><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
                };
                self.send(answer);
            }
        }
    }

    /// The connection ended without us asking.
    fn closed(&self, shared: &Shared, why: &str) {
        self.connected.store(false, Ordering::Relaxed);
        if !self.quiet.load(Ordering::Relaxed) {
            let kind = if self.phone { "phone" } else { "desktop" };
            shared.tally.error(
                &format!("{kind}:closed_by_server"),
                &format!("{}: {why}", self.bare),
            );
            self.lost.notify_one();
        }
    }

    // --- connections --------------------------------------------------------

    /// Run a logged-in connection: writer and reader tasks. After a
    /// resumption (`resumed_h`), what the server did not handle goes again.
    pub fn attach(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        conn: Conn,
        resumed_h: Option<u32>,
    ) -> Link {
        let (rd, wr) = conn.split();
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = spawn_writer(shared.clone(), self.clone(), wr, rx);
        {
            let mut out = lock(&self.out);
            if let (Some(h), Some(sm)) = (resumed_h, out.sm.as_mut()) {
                let n = h.wrapping_sub(sm.acked) as usize;
                if n > sm.unacked.len() {
                    shared.tally.error(
                        "resume:bad_h",
                        &format!(
                            "{}: resumed h={h} covers {n}, {} were unacknowledged",
                            self.bare,
                            sm.unacked.len()
                        ),
                    );
                    sm.unacked.clear();
                } else {
                    sm.unacked.drain(..n);
                }
                sm.acked = h;
                sm.asked = false;
                for s in &sm.unacked {
                    let _ = tx.send(s.clone());
                }
            }
            out.tx = Some(tx);
        }
        self.quiet.store(false, Ordering::Relaxed);
        self.connected.store(true, Ordering::Relaxed);
        let (dtx, drx) = mpsc::channel(1);
        spawn_reader(shared.clone(), self.clone(), rd, drx);
        Link {
            writer,
            detach: dtx,
        }
    }

    /// Stop the connection's tasks and get its halves back; what was
    /// read and not yet handled is left unhandled.
    pub async fn detach(&self, link: Link) -> (Option<ReadSide>, Option<WriteSide>) {
        self.quiet.store(true, Ordering::Relaxed);
        self.connected.store(false, Ordering::Relaxed);
        lock(&self.out).tx = None;
        let (tx, rx) = oneshot::channel();
        let rd = match link.detach.send(tx).await {
            Ok(()) => rx.await.ok(),
            Err(_) => None,
        };
        let wr = link.writer.await.ok().flatten();
        (rd, wr)
    }

    /// Log in as a desktop client and join the room.
    pub async fn desktop_login(&self, shared: &Shared) -> anyhow::Result<Conn> {
        let ctx = &shared.ctx;
        let (mut c, _) = ctx.login(self.account, "desk").await?;
        self.join(&mut c, ctx.target.timeout).await?;
        self.h_in.store(0, Ordering::Relaxed);
        lock(&self.out).sm = None;
        Ok(c)
    }

    async fn join(&self, c: &mut Conn, timeout: Duration) -> anyhow::Result<()> {
        if let Some(room) = &self.room {
            let nick = self.bare.split('@').next().unwrap_or("soak");
            if let Err(cond) = c.join_room(room, nick, Instant::now() + timeout).await? {
                bail!("join {room}: {cond}");
            }
        }
        Ok(())
    }

    fn user_agent(&self) -> String {
        format!(
            "<user-agent id='50a60000-0000-4000-8000-{:012}'><software>roost-load soak</software><device>phone {}</device></user-agent>",
            self.account, self.idx
        )
    }

    /// Log in as a phone: SASL2, Bind 2 with stream management, a FAST
    /// token; presence, the room; then an ack tells how many of our
    /// stanzas the server counted so far.
    pub async fn phone_login(&self, shared: &Shared) -> anyhow::Result<Conn> {
        let ctx = &shared.ctx;
        let t0 = Instant::now();
        let deadline = t0 + ctx.target.timeout;
        let inline = format!(
            "{}<bind xmlns='urn:xmpp:bind:0'><tag>soak</tag><enable xmlns='{NS_SM}' resume='true'/></bind><request-token xmlns='{NS_FAST}' mechanism='HT-SHA-256-NONE'/>",
            self.user_agent()
        );
        let (mut c, ok) = Conn::sasl2_login(
            &ctx.target,
            &ctx.user(self.account),
            &ctx.password(self.account),
            &inline,
        )
        .await?;
        let token = ok
            .get_child("token", NS_FAST)
            .and_then(|t| t.attr("token"))
            .ok_or_else(|| anyhow!("no FAST token: {}", String::from(&ok)))?
            .to_string();
        let previd = ok
            .get_child("bound", "urn:xmpp:bind:0")
            .and_then(|b| b.get_child("enabled", NS_SM))
            .and_then(|e| e.attr("id"))
            .ok_or_else(|| anyhow!("stream management not enabled: {}", String::from(&ok)))?
            .to_string();
        c.available_and_ping(deadline).await?;
        self.join(&mut c, ctx.target.timeout).await?;
        c.send_str(&format!("<r xmlns='{NS_SM}'/>")).await?;
        let a = c
            .wait_for(deadline, |e| e.name() == "a" && e.ns() == NS_SM)
            .await?;
        let sent: u32 = a
            .attr("h")
            .and_then(|h| h.parse().ok())
            .ok_or_else(|| anyhow!("ack without h"))?;
        self.h_in.store(c.handled.unwrap_or(0), Ordering::Relaxed);
        lock(&self.out).sm = Some(SmOut {
            acked: sent,
            unacked: VecDeque::new(),
            asked: false,
        });
        *lock(&self.keep) = Keep {
            token,
            previd,
            addr: Some(c.addr),
        };
        Ok(c)
    }

    /// XEP-0484 token login with an inline XEP-0198 resumption; the
    /// connection and the server's `h` for us.
    async fn resume(&self, shared: &Shared) -> anyhow::Result<(Conn, u32)> {
        let ctx = &shared.ctx;
        let (token, previd, addr) = {
            let k = lock(&self.keep);
            (k.token.clone(), k.previd.clone(), k.addr)
        };
        let target = ctx.target.pinned(addr.unwrap_or(ctx.target.addr));
        let inline = format!(
            "{}<resume xmlns='{NS_SM}' previd='{}' h='{}'/>",
            self.user_agent(),
            escape(&previd),
            self.h_in.load(Ordering::Relaxed)
        );
        let (c, ok) = Conn::fast_login(&target, &ctx.user(self.account), &token, &inline).await?;
        if let Some(t) = ok.get_child("token", NS_FAST).and_then(|t| t.attr("token")) {
            lock(&self.keep).token = t.to_string();
        }
        let Some(r) = ok.get_child("resumed", NS_SM) else {
            bail!("not resumed: {}", String::from(&ok));
        };
        let h = r
            .attr("h")
            .and_then(|h| h.parse().ok())
            .ok_or_else(|| anyhow!("resumed without h"))?;
        Ok((c, h))
    }

    /// Close our stream and wait for the server's closing tag (a logout).
    pub async fn close(&self, shared: &Shared, link: Link) {
        let (rd, wr) = self.detach(link).await;
        let (Some(rd), Some(wr)) = (rd, wr) else {
            return;
        };
        logout(shared, rd, wr, &self.bare).await;
    }

    // --- lifecycles -----------------------------------------------------------

    /// A desktop stays until the end; if the server drops it (an error,
    /// counted by the reader), it logs in again.
    pub async fn run_desktop(
        self: Arc<Self>,
        shared: Arc<Shared>,
        mut link: Link,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut keepalive = tokio::time::interval(KEEPALIVE_EVERY);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let lost = tokio::select! {
                _ = stop.wait_for(|s| *s) => false,
                _ = self.lost.notified() => true,
                _ = keepalive.tick() => {
                    self.nonza(" ".to_string());
                    continue;
                }
            };
            if !lost {
                break;
            }
            drop(self.detach(link).await);
            match self.relogin(&shared, &stop).await {
                Some(l) => link = l,
                None => return,
            }
        }
        self.close(&shared, link).await;
    }

    async fn relogin(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        stop: &watch::Receiver<bool>,
    ) -> Option<Link> {
        loop {
            if *stop.borrow() {
                return None;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let r = if self.phone {
                self.phone_login(shared).await
            } else {
                self.desktop_login(shared).await
            };
            match r {
                Ok(c) => return Some(self.attach(shared, c, None)),
                Err(e) => shared
                    .tally
                    .error("relogin:failed", &format!("{}: {e:#}", self.bare)),
            }
        }
    }

    /// A phone drops its connection every `drop_every` seconds on average
    /// and comes back after up to `away_max` seconds with a resumption.
    pub async fn run_phone(
        self: Arc<Self>,
        shared: Arc<Shared>,
        mut link: Link,
        mut stop: watch::Receiver<bool>,
        drop_every: f64,
        away_max: f64,
        mut rng: Rng,
    ) {
        let mut tick = tokio::time::interval(ACK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut keepalive = tokio::time::interval(KEEPALIVE_EVERY);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let drop_in = Duration::from_secs_f64(rng.range(0.5, 1.5) * drop_every.max(1.0));
            let next_drop = tokio::time::sleep(drop_in);
            tokio::pin!(next_drop);
            let dropped = loop {
                tokio::select! {
                    biased;
                    _ = stop.wait_for(|s| *s) => break None,
                    _ = self.lost.notified() => break Some(false),
                    _ = &mut next_drop => break Some(true),
                    _ = tick.tick() => self.ask_ack(),
                    _ = keepalive.tick() => self.nonza(" ".to_string()),
                }
            };
            let Some(planned) = dropped else { break };
            let (rd, wr) = self.detach(link).await;
            shared.bump_epoch(self.idx);
            let (resumed_tx, resumed_rx) = oneshot::channel::<()>();
            if planned && rng.unit() < 0.5 {
                // Left open and silent, as after a switch of networks: the
                // server must close it once the session has moved.
                let (shared, bare) = (shared.clone(), self.bare.clone());
                tokio::spawn(async move { old_connection(shared, bare, rd, wr, resumed_rx).await });
            } else {
                drop((rd, wr));
            }
            if planned {
                let away = rng.range(1.0, away_max.max(1.0));
                tokio::time::sleep(Duration::from_secs_f64(away)).await;
            }
            let t = Instant::now();
            link = match self.resume(&shared).await {
                Ok((conn, h)) => {
                    shared
                        .tally
                        .record(Op::Resume, t.elapsed().as_micros() as u64, &self.bare);
                    shared.bump_epoch(self.idx);
                    self.attach(&shared, conn, Some(h))
                }
                Err(e) => {
                    shared
                        .tally
                        .error("resume:failed", &format!("{}: {e:#}", self.bare));
                    shared.bump_epoch(self.idx);
                    match self.relogin(&shared, &stop).await {
                        Some(l) => l,
                        None => return,
                    }
                }
            };
            let _ = resumed_tx.send(());
        }
        self.close(&shared, link).await;
    }
}

/// Send `</stream:stream>` and wait for the server's (RFC 6120 §4.4).
pub async fn logout(shared: &Shared, mut rd: ReadSide, mut wr: WriteSide, who: &str) {
    let t = Instant::now();
    let deadline = t + shared.ctx.target.timeout;
    if let Err(e) = tokio::time::timeout_at(deadline, wr.send_str("</stream:stream>")).await {
        shared.tally.error("logout:write", &format!("{who}: {e}"));
        return;
    }
    loop {
        while let Some(ev) = rd.pop_event() {
            if matches!(ev, StreamEvent::End) {
                shared
                    .tally
                    .record(Op::Logout, t.elapsed().as_micros() as u64, who);
                return;
            }
        }
        match tokio::time::timeout_at(deadline, rd.read_some()).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => {
                shared.tally.error(
                    "logout:no_stream_close",
                    &format!("{who}: connection closed without </stream:stream>"),
                );
                return;
            }
            Ok(Err(e)) => {
                shared.tally.error("logout:read", &format!("{who}: {e:#}"));
                return;
            }
            Err(_) => {
                shared
                    .tally
                    .error("logout:timeout", &format!("{who}: no </stream:stream>"));
                return;
            }
        }
    }
}

/// The connection a phone left open: once its session is resumed
/// elsewhere, the server must close it.
async fn old_connection(
    shared: Arc<Shared>,
    who: String,
    rd: Option<ReadSide>,
    wr: Option<WriteSide>,
    resumed: oneshot::Receiver<()>,
) {
    let _wr = wr;
    if resumed.await.is_err() {
        return;
    }
    let Some(mut rd) = rd else { return };
    let deadline = Instant::now() + OLD_CONN_GRACE;
    loop {
        while let Some(ev) = rd.pop_event() {
            if matches!(ev, StreamEvent::End) {
                return;
            }
        }
        match tokio::time::timeout_at(deadline, rd.read_some()).await {
            Ok(Ok(true)) => {}
            Ok(_) => return,
            Err(_) => {
                shared.tally.error(
                    "resume:old_connection_left_open",
                    &format!(
                        "{who}: still open {} s after the resumption",
                        OLD_CONN_GRACE.as_secs()
                    ),
                );
                return;
            }
        }
    }
}

fn spawn_writer(
    shared: Arc<Shared>,
    client: Arc<Client>,
    mut wr: WriteSide,
    mut rx: mpsc::UnboundedReceiver<String>,
) -> JoinHandle<Option<WriteSide>> {
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut buf = first;
            while buf.len() < 64 * 1024 {
                match rx.try_recv() {
                    Ok(more) => buf.push_str(&more),
                    Err(_) => break,
                }
            }
            let r = tokio::time::timeout(WRITE_TIMEOUT, wr.send_str(&buf)).await;
            let why = match r {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("a write blocked for {} s", WRITE_TIMEOUT.as_secs()),
            };
            if !client.quiet.load(Ordering::Relaxed) {
                shared
                    .tally
                    .error("write:failed", &format!("{}: {why}", client.bare));
            }
            return None;
        }
        Some(wr)
    })
}

fn spawn_reader(
    shared: Arc<Shared>,
    client: Arc<Client>,
    mut rd: ReadSide,
    mut detach: mpsc::Receiver<oneshot::Sender<ReadSide>>,
) {
    tokio::spawn(async move {
        loop {
            while let Some(ev) = rd.pop_event() {
                match ev {
                    StreamEvent::Element(e) => client.element(&shared, &e),
                    StreamEvent::End => {
                        client.closed(&shared, "the server closed the stream");
                        return;
                    }
                    StreamEvent::Header(_) => {}
                }
            }
            tokio::select! {
                biased;
                req = detach.recv() => {
                    if let Some(tx) = req {
                        let _ = tx.send(rd);
                    }
                    return;
                }
                r = rd.read_some() => match r {
                    Ok(true) => {}
                    Ok(false) => {
                        client.closed(&shared, "connection closed");
                        return;
                    }
                    Err(e) => {
                        client.closed(&shared, &format!("{e:#}"));
                        return;
                    }
                },
            }
        }
    });
}
