//! XEP-0124/XEP-0206: BOSH — the c2s side of an HTTP binding session. The
//! HTTP requests of one session (`crate::http::bosh`) meet the c2s stream
//! here: their payloads become stream events read by the negotiation and
//! the session, and what those queue is answered on the requests held
//! open (long polling, XEP-0124 §7). `Exchange` is that meeting point,
//! shared by both sides; `BoshStream` is the framing `conn.rs` plugs in.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use roost_proto::serialize::attr_escaped;
use roost_proto::StreamError;
use roost_stream::StreamEvent;
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit};
use tokio::time::Instant;

/// `http://jabber.org/protocol/httpbind` (XEP-0124 §4).
pub const NS_HTTPBIND: &str = "http://jabber.org/protocol/httpbind";
/// `urn:xmpp:xbosh` (XEP-0206 §4), the prefix of `xmpp:version` and friends.
pub const NS_XBOSH: &str = "urn:xmpp:xbosh";

/// What was agreed at session creation (XEP-0124 §7.1-7.2).
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Longest a request is held before an empty answer.
    pub wait: Duration,
    /// Requests held at once; a further one releases the oldest.
    pub hold: usize,
    /// The window of rids in flight (§14.2), and of answers kept (§14.3).
    pub requests: u64,
    /// Longest time without any held request before the session is lost.
    pub inactivity: Duration,
}

/// A request waiting for an answer.
struct Held {
    rid: u64,
    reply: oneshot::Sender<String>,
}

struct State {
    /// The rid the next new request must carry (XEP-0124 §14.2).
    next_rid: u64,
    /// Held requests, oldest first.
    held: VecDeque<Held>,
    /// Payloads queued by the stream and not answered yet.
    pending: String,
    /// The last answers by rid, resent for a repeated rid (§14.3).
    answers: VecDeque<(u64, String)>,
    /// The creation request's rid and the attributes of its answer (§7.2).
    creation: Option<(u64, String)>,
    /// When a request last arrived or was answered (inactivity, §7.2).
    last_request: Instant,
    /// Events for the stream; `None` once the stream is to end as if its
    /// connection was lost.
    input: Option<mpsc::Sender<Vec<StreamEvent>>>,
    /// Set once the session ended: the terminate attributes, and the
    /// payload the stream wrote last.
    ended: Option<(String, String)>,
}

/// What to do with a request, by its rid.
pub enum Admit<'a> {
    /// Its turn: forward its payload, then `advance`, then hold it. The
    /// guard keeps later rids waiting until the payload is forwarded.
    Next(tokio::sync::MutexGuard<'a, ()>),
    /// A repeated rid already answered: the same answer again (§14.3).
    Resend(String),
    /// A repeated rid not yet answered: the old request gets an empty
    /// answer, this one is held instead (§14.3).
    Rehold,
    /// Out of the window, or no longer answerable (§14.2).
    OutOfWindow,
}

/// One BOSH session, shared by its HTTP requests and its c2s stream.
pub struct Exchange {
    pub sid: String,
    pub params: Params,
    /// Answers with HTTP error codes (no `ver` at creation, §17).
    pub legacy: bool,
    state: Mutex<State>,
    /// The rid the next new request must carry, for requests that came
    /// early and wait for their turn (§14.2 in-order forwarding).
    progress: watch::Sender<u64>,
    turn: tokio::sync::Mutex<()>,
}

/// An empty or payload-carrying `<body/>` with extra attributes.
pub fn body(attrs: &str, payload: &str) -> String {
    if payload.is_empty() {
        format!("<body xmlns='{NS_HTTPBIND}'{attrs}/>")
    } else {
        format!("<body xmlns='{NS_HTTPBIND}'{attrs}>{payload}</body>")
    }
}

/// The attributes of a terminating body (§17.2).
pub fn terminate_attrs(condition: Option<&str>) -> String {
    match condition {
        Some(c) => format!(" type='terminate' condition='{}'", attr_escaped(c)),
        None => " type='terminate'".into(),
    }
}

impl Exchange {
    /// A session whose creation request carried `rid`; `creation_attrs`
    /// go on the answer to it.
    pub fn new(
        sid: String,
        params: Params,
        legacy: bool,
        rid: u64,
        creation_attrs: String,
        input: mpsc::Sender<Vec<StreamEvent>>,
    ) -> Arc<Exchange> {
        let next = rid.saturating_add(1);
        Arc::new(Exchange {
            sid,
            params,
            legacy,
            state: Mutex::new(State {
                next_rid: next,
                held: VecDeque::new(),
                pending: String::new(),
                answers: VecDeque::new(),
                creation: Some((rid, creation_attrs)),
                last_request: Instant::now(),
                input: Some(input),
                ended: None,
            }),
            progress: watch::Sender::new(next),
            turn: tokio::sync::Mutex::new(()),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sort a request by its rid; a request ahead of its turn waits for
    /// the ones before it, at most `wait` (§14.2).
    pub async fn admit(&self, rid: u64) -> Admit<'_> {
        let mut progress = self.progress.subscribe();
        loop {
            {
                let mut st = self.state();
                st.last_request = Instant::now();
                if rid < st.next_rid {
                    if let Some((_, a)) = st.answers.iter().find(|(r, _)| *r == rid) {
                        return Admit::Resend(a.clone());
                    }
                    if st.held.iter().any(|h| h.rid == rid) {
                        return Admit::Rehold;
                    }
                    return Admit::OutOfWindow;
                }
                if rid - st.next_rid >= self.params.requests {
                    return Admit::OutOfWindow;
                }
            }
            let turn = self.turn.lock().await;
            if self.state().next_rid == rid {
                return Admit::Next(turn);
            }
            drop(turn);
            let waited =
                tokio::time::timeout(self.params.wait, progress.wait_for(|&n| n >= rid)).await;
            if !matches!(waited, Ok(Ok(_))) {
                return Admit::OutOfWindow;
            }
        }
    }

    /// The request with `rid` was forwarded: the next one may go.
    pub fn advance(&self, rid: u64) {
        let next = rid.saturating_add(1);
        self.state().next_rid = next;
        self.progress.send_replace(next);
    }

    /// Hand events to the stream, in the order of their requests.
    pub async fn forward(&self, events: Vec<StreamEvent>) {
        let input = self.state().input.clone();
        if let Some(input) = input {
            let _ = input.send(events).await;
        }
    }

    /// Hold a request until there is something to say (§7). The receiver
    /// may already hold the answer; `expire` answers it after `wait`.
    pub fn hold(&self, rid: u64) -> oneshot::Receiver<String> {
        let (tx, rx) = oneshot::channel();
        let mut st = self.state();
        st.last_request = Instant::now();
        // §14.3: a repeated rid replaces the request still held for it.
        if let Some(i) = st.held.iter().position(|h| h.rid == rid) {
            if let Some(old) = st.held.remove(i) {
                let _ = old.reply.send(body("", ""));
            }
        }
        st.held.push_back(Held { rid, reply: tx });
        if st.ended.is_some() {
            self.answer_ended(&mut st);
            return rx;
        }
        // Something waits already, or more requests than `hold` are open:
        // the oldest goes back now (§7 "hold").
        while !st.pending.is_empty() || st.held.len() > self.params.hold {
            if !self.answer_oldest(&mut st) {
                break;
            }
        }
        rx
    }

    /// `wait` passed: an empty answer, unless one was given meanwhile.
    pub fn expire(&self, rid: u64) {
        let mut st = self.state();
        if let Some(i) = st.held.iter().position(|h| h.rid == rid) {
            if let Some(h) = st.held.remove(i) {
                self.answer(&mut st, h, "", "");
            }
        }
    }

    /// End the session from the HTTP side (a protocol violation): held
    /// requests get the terminate answer, the stream ends as if its
    /// connection was lost.
    pub fn terminate(&self, condition: &str) {
        let mut st = self.state();
        st.input = None;
        if st.ended.is_none() {
            st.ended = Some((terminate_attrs(Some(condition)), String::new()));
        }
        self.answer_ended(&mut st);
    }

    /// The terminate answer for a request arriving after the end.
    pub fn ended_body(&self) -> Option<String> {
        self.state()
            .ended
            .as_ref()
            .map(|(attrs, _)| body(attrs, ""))
    }

    /// What the stream wrote: to the oldest held request, or kept for
    /// the next one.
    fn deliver(&self, payload: &str) {
        let mut st = self.state();
        st.pending.push_str(payload);
        if st.ended.is_none() {
            self.answer_oldest(&mut st);
        }
    }

    /// The stream ended: the oldest held request gets the terminate body
    /// with the last payload, the others an empty one (XEP-0124 §13).
    fn end(&self, attrs: String) {
        let mut st = self.state();
        st.input = None;
        if st.ended.is_none() {
            let payload = std::mem::take(&mut st.pending);
            st.ended = Some((attrs, payload));
        }
        self.answer_ended(&mut st);
    }

    /// When the session last had no request held, or `None` while one is
    /// (a request whose client went away does not count).
    fn idle_since(&self) -> Option<Instant> {
        let mut st = self.state();
        st.held.retain(|h| !h.reply.is_closed());
        st.held.is_empty().then_some(st.last_request)
    }

    fn last_request(&self) -> Instant {
        self.state().last_request
    }

    fn answer_oldest(&self, st: &mut State) -> bool {
        match st.held.pop_front() {
            Some(h) => {
                let payload = std::mem::take(&mut st.pending);
                self.answer(st, h, "", &payload);
                true
            }
            None => false,
        }
    }

    fn answer_ended(&self, st: &mut State) {
        let Some((attrs, payload)) = st.ended.clone() else {
            return;
        };
        let mut first = true;
        while let Some(h) = st.held.pop_front() {
            if first {
                self.answer(st, h, &attrs, &payload);
                first = false;
            } else {
                self.answer(st, h, "", "");
            }
        }
        if let Some((_, p)) = st.ended.as_mut() {
            // Said once; a later request gets the bare terminate body.
            if !first {
                p.clear();
            }
        }
    }

    fn answer(&self, st: &mut State, held: Held, attrs: &str, payload: &str) {
        let mut all = String::new();
        let mut with_creation = false;
        if let Some((rid, creation)) = &st.creation {
            if *rid == held.rid {
                all.push_str(creation);
                with_creation = true;
            }
        }
        if with_creation {
            // The creation answer declares the `stream` prefix already; a
            // stream error in it must not declare it twice (not XML).
            let again = format!(" xmlns:stream='{}'", roost_proto::ns::STREAM);
            all.push_str(&attrs.replace(&again, ""));
        } else {
            all.push_str(attrs);
        }
        let text = body(&all, payload);
        st.answers.push_back((held.rid, text.clone()));
        while st.answers.len() as u64 > self.params.requests {
            st.answers.pop_front();
        }
        st.last_request = Instant::now();
        // A request whose client went away keeps its answer in `answers`
        // for a repeat (§14.3).
        let _ = held.reply.send(text);
    }
}

/// The framing of a BOSH session under a c2s stream (`conn.rs`).
pub struct BoshStream {
    exchange: Arc<Exchange>,
    input: mpsc::Receiver<Vec<StreamEvent>>,
    out: String,
    tls: bool,
    /// The terminate attributes once the stream's end was queued.
    ending: Option<String>,
    /// Forgets the sid (the HTTP side's routing); run once.
    on_close: Option<Box<dyn FnOnce() + Send + Sync>>,
    /// The connection permit the session holds while it lives.
    _permit: OwnedSemaphorePermit,
}

impl BoshStream {
    pub fn new(
        exchange: Arc<Exchange>,
        input: mpsc::Receiver<Vec<StreamEvent>>,
        tls: bool,
        permit: OwnedSemaphorePermit,
        on_close: Box<dyn FnOnce() + Send + Sync>,
    ) -> BoshStream {
        BoshStream {
            exchange,
            input,
            out: String::new(),
            tls,
            ending: None,
            on_close: Some(on_close),
            _permit: permit,
        }
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    pub fn sid(&self) -> &str {
        &self.exchange.sid
    }

    /// See `Connection::read`. `Ok(false)` when the session was
    /// terminated from the HTTP side, no request was held for
    /// `inactivity` (XEP-0124 §7.2), or no request at all came for
    /// `idle` (requests count as input, like whitespace keepalives).
    pub async fn read(
        &mut self,
        idle: Duration,
        out: &mut Vec<StreamEvent>,
    ) -> Result<bool, StreamError> {
        let inactivity = self.exchange.params.inactivity;
        let started = Instant::now();
        loop {
            let heard = self.exchange.last_request().max(started);
            if heard + idle <= Instant::now() {
                return Ok(false);
            }
            let check_at = match self.exchange.idle_since() {
                Some(since) => since + inactivity,
                None => Instant::now() + inactivity,
            }
            .min(heard + idle);
            tokio::select! {
                events = self.input.recv() => {
                    return match events {
                        Some(events) => {
                            out.extend(events);
                            Ok(true)
                        }
                        None => Ok(false),
                    };
                }
                _ = tokio::time::sleep_until(check_at) => {
                    if self
                        .exchange
                        .idle_since()
                        .is_some_and(|since| since + inactivity <= Instant::now())
                    {
                        tracing::debug!(sid = %self.exchange.sid, "BOSH session inactive");
                        return Ok(false);
                    }
                }
            }
        }
    }

    pub fn queue(&mut self, xml: &str) {
        self.out.push_str(xml);
    }

    /// XEP-0206 §7: a stream error travels in a terminating body with the
    /// `remote-stream-error` condition.
    pub fn queue_stream_error(&mut self, xml: &str) {
        self.out.push_str(xml);
        self.ending = Some(format!(
            "{} xmlns:stream='{}'",
            terminate_attrs(Some("remote-stream-error")),
            roost_proto::ns::STREAM
        ));
    }

    pub fn queue_end(&mut self) {
        if self.ending.is_none() {
            self.ending = Some(terminate_attrs(None));
        }
    }

    pub fn flush(&mut self) {
        if self.ending.is_some() || self.out.is_empty() {
            // The end goes out with the terminating body (`shutdown`).
            return;
        }
        let out = std::mem::take(&mut self.out);
        self.exchange.deliver(&out);
    }

    /// End the session: what is queued goes out in the terminating body.
    pub fn shutdown(&mut self) {
        let out = std::mem::take(&mut self.out);
        self.exchange.deliver_without_answer(&out);
        let attrs = self.ending.take().unwrap_or_else(|| terminate_attrs(None));
        self.exchange.end(attrs);
        if let Some(forget) = self.on_close.take() {
            forget();
        }
    }
}

impl Exchange {
    fn deliver_without_answer(&self, payload: &str) {
        self.state().pending.push_str(payload);
    }
}

impl Drop for BoshStream {
    fn drop(&mut self) {
        if self.on_close.is_some() {
            self.shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(hold: usize) -> (Arc<Exchange>, mpsc::Receiver<Vec<StreamEvent>>) {
        let (tx, rx) = mpsc::channel(4);
        let params = Params {
            wait: Duration::from_secs(5),
            hold,
            requests: hold as u64 + 1,
            inactivity: Duration::from_secs(30),
        };
        (
            Exchange::new("s".into(), params, false, 10, " sid='s'".into(), tx),
            rx,
        )
    }

    #[tokio::test]
    async fn the_creation_answer_carries_its_attributes_and_the_payload() {
        let (x, _rx) = exchange(1);
        let mut rx = x.hold(10);
        x.deliver("<a/>");
        assert_eq!(
            rx.try_recv().unwrap(),
            format!("<body xmlns='{NS_HTTPBIND}' sid='s'><a/></body>")
        );
    }

    #[tokio::test]
    async fn a_new_request_releases_the_oldest_held_one() {
        let (x, _rx) = exchange(1);
        let mut first = x.hold(10);
        assert!(matches!(x.admit(11).await, Admit::Next(_)));
        x.advance(11);
        let mut second = x.hold(11);
        assert!(first.try_recv().is_ok());
        assert!(second.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_repeated_rid_gets_the_same_answer_and_a_far_one_is_refused() {
        let (x, _rx) = exchange(1);
        let mut first = x.hold(10);
        x.deliver("<a/>");
        let answer = first.try_recv().unwrap();
        match x.admit(10).await {
            Admit::Resend(a) => assert_eq!(a, answer),
            _ => panic!("expected a resend"),
        }
        assert!(matches!(x.admit(13).await, Admit::OutOfWindow));
        assert!(matches!(x.admit(5).await, Admit::OutOfWindow));
    }

    #[tokio::test]
    async fn the_end_terminates_the_oldest_and_empties_the_others() {
        let (x, _rx) = exchange(2);
        let mut a = x.hold(10);
        x.advance(11);
        let mut b = x.hold(11);
        x.deliver_without_answer("<bye/>");
        x.end(terminate_attrs(None));
        assert_eq!(
            a.try_recv().unwrap(),
            format!("<body xmlns='{NS_HTTPBIND}' sid='s' type='terminate'><bye/></body>")
        );
        assert_eq!(b.try_recv().unwrap(), body("", ""));
        assert!(x.ended_body().unwrap().contains("terminate"));
    }
}
