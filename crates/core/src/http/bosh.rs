//! XEP-0124/XEP-0206: BOSH — `POST /http-bind` on the HTTP listeners.
//! Each request carries one `<body/>` wrapper: without `sid` it creates a
//! session (a c2s stream with the same negotiation and session as TCP and
//! WebSocket, see `crate::c2s::bosh`), with `sid` it is routed to its
//! session, sorted by `rid`, its payload forwarded and the request held
//! until there is something to answer or `wait` passes.
//!
//! Not offered: `pause` (§10; no `maxpause` is advertised and a `pause`
//! attribute is ignored, so the inactivity timeout still applies),
//! multiple streams (§16), `key` sequencing (§15), GET requests (§18).
//! Browsers on other origins get CORS headers by the WebSocket's origin
//! rules (`origin.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use minidom::{Element, Node};
use roost_proto::ns;
use roost_proto::serialize::attr_escaped;
use roost_stream::{Limits, StreamEvent, StreamHeader, XmlReader};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{host_meta, origin, Body, ConnInfo};
use crate::c2s::bosh::{body, terminate_attrs, Admit, BoshStream, Exchange, Params};
use crate::c2s::bosh::{NS_HTTPBIND, NS_XBOSH};
use crate::c2s::conn::Connection;

/// The BOSH endpoint's path.
pub const PATH: &str = "/http-bind";

/// The protocol version we speak (XEP-0124 §7.1 `ver`).
const VERSION: &str = "1.11";
/// The shortest polling interval we allow, in seconds (§7.2 `polling`).
const POLLING: u64 = 2;
/// Batches of events waiting for the stream, per session.
const INPUT_QUEUE: usize = 16;
/// Room for the `<body/>` wrapper beyond the stanza size limit.
const WRAPPER_BYTES: usize = 4096;

/// `[http.bosh]`: XEP-0124 sessions at `/http-bind`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BoshConfig {
    /// Serve BOSH at `/http-bind` and advertise it in host-meta.
    pub enabled: bool,
    /// Longest a request is held, in seconds (a client asking more gets this).
    pub max_wait: u64,
    /// Seconds without any request held after which a session is lost.
    pub max_inactivity: u64,
    /// Requests held at once (a client asking more gets this).
    pub max_hold: usize,
    /// Requests in flight at once (the rid window).
    pub max_requests: u64,
}

impl Default for BoshConfig {
    fn default() -> Self {
        BoshConfig {
            enabled: true,
            max_wait: 60,
            max_inactivity: 60,
            max_hold: 1,
            max_requests: 2,
        }
    }
}

impl BoshConfig {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.max_wait < 1 {
            return Err(("http.bosh.max_wait", "value too small".into()));
        }
        if self.max_inactivity < 1 {
            return Err(("http.bosh.max_inactivity", "value too small".into()));
        }
        if self.max_hold < 1 {
            return Err(("http.bosh.max_hold", "value too small".into()));
        }
        if self.max_requests < 2 || self.max_requests <= self.max_hold as u64 {
            return Err((
                "http.bosh.max_requests",
                "must be at least 2 and more than max_hold".into(),
            ));
        }
        Ok(())
    }
}

/// The live sessions of one listener, by sid.
#[derive(Default)]
pub(crate) struct Sessions {
    by_sid: Mutex<HashMap<String, Arc<Exchange>>>,
}

impl Sessions {
    fn get(&self, sid: &str) -> Option<Arc<Exchange>> {
        self.map().get(sid).cloned()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Exchange>>> {
        self.by_sid.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A parsed request `<body/>`.
struct BodyRequest {
    el: Element,
    rid: u64,
}

pub(crate) async fn handle(info: &Arc<ConnInfo>, req: Request<Incoming>) -> Response<Body> {
    let cors = match cors_origin(info, &req) {
        Ok(c) => c,
        Err(()) => {
            tracing::info!(peer = %info.peer, "BOSH origin refused");
            return super::plain(StatusCode::FORBIDDEN, "origin not allowed");
        }
    };
    let mut r = match *req.method() {
        Method::OPTIONS => preflight(),
        Method::POST => post(info, req).await,
        _ => {
            let mut r = super::plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "BOSH (XEP-0124) requests use POST",
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
            r
        }
    };
    if let Some(o) = cors.and_then(|o| HeaderValue::from_str(&o).ok()) {
        let h = r.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    r
}

/// The Origin to echo in CORS headers, `None` without one; `Err` for an
/// origin the WebSocket would refuse too (`origin.rs`).
fn cors_origin(info: &ConnInfo, req: &Request<Incoming>) -> Result<Option<String>, ()> {
    let Some(value) = req.headers().get(header::ORIGIN) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ())?;
    let authority = host_meta::request_authority(info, req);
    let own = origin::Origin::parse(&format!(
        "{}://{authority}",
        if info.endpoint.is_tls() {
            "https"
        } else {
            "http"
        }
    ));
    if origin::allowed(
        Some(value),
        &info.endpoint.config.allowed_origins,
        own.as_ref(),
    ) {
        Ok(Some(value.to_string()))
    } else {
        Err(())
    }
}

/// CORS preflight: browsers ask before a POST with `text/xml`.
fn preflight() -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    r
}

/// An XML answer (`Content-Type: text/xml; charset=utf-8`, §7.2).
fn xml(status: StatusCode, text: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(text)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A terminal binding condition (§17.2); legacy clients (no `ver`) get
/// the HTTP status it supersedes as well (§17.1). Unknown sessions get
/// that status too, since we cannot know which kind of client asks.
fn terminal(condition: &str, http_status: bool) -> Response<Body> {
    let status = match (http_status, condition) {
        (false, _) => StatusCode::OK,
        (true, "bad-request") => StatusCode::BAD_REQUEST,
        (true, "policy-violation") => StatusCode::FORBIDDEN,
        (true, "item-not-found") => StatusCode::NOT_FOUND,
        (true, _) => StatusCode::OK,
    };
    xml(status, body(&terminate_attrs(Some(condition)), ""))
}

async fn post(info: &Arc<ConnInfo>, req: Request<Incoming>) -> Response<Body> {
    let Some(sessions) = info.endpoint.bosh.as_ref() else {
        return super::plain(StatusCode::NOT_FOUND, "not found");
    };
    let request = match read_body(info, req).await {
        Ok(r) => r,
        Err(condition) => return terminal(condition, true),
    };
    match request.el.attr("sid") {
        None => create(info, sessions, request).await,
        Some(sid) => match sessions.get(sid) {
            Some(exchange) => continue_session(info, exchange, request).await,
            // §17.2: an unknown sid.
            None => terminal("item-not-found", true),
        },
    }
}

/// Read and parse the request `<body/>`; `Err` is its terminal condition.
async fn read_body(info: &ConnInfo, req: Request<Incoming>) -> Result<BodyRequest, &'static str> {
    let limits = crate::c2s::limits(&info.server);
    let max = limits.max_stanza_bytes + WRAPPER_BYTES;
    let bytes = match Limited::new(req.into_body(), max).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            tracing::debug!(peer = %info.peer, error = %e, "BOSH request body refused");
            return Err("policy-violation");
        }
    };
    let limits = Limits {
        max_stanza_bytes: max,
        // One level more for the wrapper.
        max_depth: limits.max_depth + 1,
    };
    let (el, rid) = parse_body(&bytes, limits)?;
    Ok(BodyRequest { el, rid })
}

/// A request body: the `<body/>` wrapper and its rid, or the terminate
/// condition to answer with. Pure, so that it can be fuzzed.
pub fn parse_body(bytes: &[u8], limits: Limits) -> Result<(Element, u64), &'static str> {
    let el = match XmlReader::read_document(bytes, limits) {
        Ok(Some(el)) if el.is("body", NS_HTTPBIND) => el,
        _ => return Err("bad-request"),
    };
    // §14.1: rids stay below 2^53.
    let rid = el
        .attr("rid")
        .and_then(|r| r.parse::<u64>().ok())
        .filter(|&r| r < 1 << 53)
        .ok_or("bad-request")?;
    Ok((el, rid))
}

/// §7.1-7.2, XEP-0206 §4: a new session and its c2s stream.
async fn create(
    info: &Arc<ConnInfo>,
    sessions: &Arc<Sessions>,
    request: BodyRequest,
) -> Response<Body> {
    let cfg = &info.endpoint.config.bosh;
    let el = &request.el;
    let legacy = el.attr("ver").is_none();
    let Some(to) = el.attr("to").map(str::to_string) else {
        return terminal("bad-request", legacy);
    };
    let wait = el
        .attr("wait")
        .and_then(|w| w.parse::<u64>().ok())
        .unwrap_or(cfg.max_wait)
        .clamp(1, cfg.max_wait);
    let hold = el
        .attr("hold")
        .and_then(|h| h.parse::<usize>().ok())
        .unwrap_or(1)
        .min(cfg.max_hold);
    let params = Params {
        wait: Duration::from_secs(wait),
        hold,
        requests: (hold as u64 + 1).clamp(2, cfg.max_requests),
        inactivity: Duration::from_secs(cfg.max_inactivity),
    };
    // Every session holds a connection permit, like a socket does.
    let Ok(permit) = info.server.connections.clone().try_acquire_owned() else {
        tracing::info!(peer = %info.peer, "BOSH session refused: too many connections");
        return terminal("remote-connection-failed", legacy);
    };
    let sid = roost_proto::id::random_token(24);
    let domain = &info.server.config.domain;
    let creation_attrs = format!(
        " xmlns:xmpp='{NS_XBOSH}' xmlns:stream='{}' sid='{sid}' wait='{wait}' \
         polling='{POLLING}' inactivity='{}' requests='{}' hold='{hold}' \
         ver='{VERSION}' from='{}' secure='{}' xmpp:version='1.0' \
         xmpp:restartlogic='true'",
        ns::STREAM,
        cfg.max_inactivity,
        params.requests,
        attr_escaped(domain),
        info.endpoint.is_tls(),
    );
    let (tx, rx) = mpsc::channel(INPUT_QUEUE);
    let exchange = Exchange::new(sid.clone(), params, legacy, request.rid, creation_attrs, tx);
    sessions.map().insert(sid.clone(), exchange.clone());
    let forget = {
        let sessions = sessions.clone();
        let sid = sid.clone();
        Box::new(move || {
            sessions.map().remove(&sid);
        })
    };
    let stream = BoshStream::new(exchange.clone(), rx, info.endpoint.is_tls(), permit, forget);
    let server = info.server.clone();
    let peer = info.peer;
    tokio::spawn(crate::c2s::run(server, Connection::bosh(stream, peer)));
    tracing::debug!(peer = %info.peer, %sid, "BOSH session created");
    // XEP-0206 §4: the creation request opens the stream.
    exchange.forward(vec![header_event(el, Some(to))]).await;
    answer(info, &exchange, request.rid).await
}

/// A request on an existing session.
async fn continue_session(
    info: &Arc<ConnInfo>,
    exchange: Arc<Exchange>,
    request: BodyRequest,
) -> Response<Body> {
    if let Some(ended) = exchange.ended_body() {
        return xml(StatusCode::OK, ended);
    }
    let rid = request.rid;
    match exchange.admit(rid).await {
        Admit::Resend(text) => xml(StatusCode::OK, text),
        Admit::OutOfWindow => {
            // §14.2: a rid out of the window ends the session.
            tracing::debug!(sid = %exchange.sid, rid, "BOSH rid out of window");
            exchange.terminate("item-not-found");
            terminal("item-not-found", exchange.legacy)
        }
        Admit::Rehold => answer(info, &exchange, rid).await,
        Admit::Next(turn) => {
            let events = events(&request.el);
            if !events.is_empty() {
                exchange.forward(events).await;
            }
            exchange.advance(rid);
            drop(turn);
            answer(info, &exchange, rid).await
        }
    }
}

/// The stream events a request carries: a restart (XEP-0206 §5), its
/// payloads, the end of the stream for `type='terminate'` (§13).
pub fn events(el: &Element) -> Vec<StreamEvent> {
    let mut out = Vec::new();
    if el.attr_ns(NS_XBOSH, "restart") == Some("true") {
        out.push(header_event(el, el.attr("to").map(str::to_string)));
    }
    out.extend(
        el.children()
            .map(|c| StreamEvent::Element(requalify(c.clone()))),
    );
    if el.attr("type") == Some("terminate") {
        out.push(StreamEvent::End);
    }
    out
}

/// The stream header a creation or restart request stands for.
fn header_event(el: &Element, to: Option<String>) -> StreamEvent {
    StreamEvent::Header(StreamHeader {
        to,
        from: el.attr("from").map(str::to_string),
        // XEP-0206 §4: `xmpp:version` is the stream's version; BOSH
        // without it still carries XMPP here.
        version: Some(el.attr_ns(NS_XBOSH, "version").unwrap_or("1.0").to_string()),
        lang: el.attr_ns(ns::XML, "lang").map(str::to_string),
        id: None,
        content_ns: None,
    })
}

/// XEP-0206 §6 note: many clients leave stanzas in the wrapper's default
/// namespace, meaning `jabber:client`.
fn requalify(mut el: Element) -> Element {
    if el.ns() != NS_HTTPBIND {
        return el;
    }
    let mut out = Element::bare(el.name(), ns::CLIENT);
    *out.attrs_mut() = el.attrs().clone();
    for node in el.take_nodes() {
        match node {
            Node::Element(child) => {
                out.append_child(requalify(child));
            }
            other => out.append_node(other),
        }
    }
    out
}

/// Hold the request until the stream has something for it, at most
/// `wait` (§7 long polling).
async fn answer(info: &ConnInfo, exchange: &Exchange, rid: u64) -> Response<Body> {
    let wait = exchange.params.wait;
    // The HTTP connection stays open while the request is held.
    info.keep_open_for(wait);
    let mut reply = exchange.hold(rid);
    let text = match tokio::time::timeout(wait, &mut reply).await {
        Ok(Ok(text)) => text,
        Ok(Err(_)) => body("", ""),
        Err(_) => {
            exchange.expire(rid);
            reply.await.unwrap_or_else(|_| body("", ""))
        }
    };
    info.keep_open_for(Duration::ZERO);
    xml(StatusCode::OK, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Element {
        XmlReader::read_document(s.as_bytes(), Limits::default())
            .unwrap()
            .unwrap()
    }

    #[test]
    fn unqualified_stanzas_become_jabber_client() {
        let el = parse(
            "<body xmlns='http://jabber.org/protocol/httpbind' rid='1' sid='s'>\
             <message to='a@b'><body>hi</body></message>\
             <auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'/></body>",
        );
        let evs = events(&el);
        match &evs[..] {
            [StreamEvent::Element(m), StreamEvent::Element(a)] => {
                assert!(m.is("message", ns::CLIENT));
                assert_eq!(m.attr("to"), Some("a@b"));
                assert!(m.has_child("body", ns::CLIENT));
                assert!(a.is("auth", ns::SASL));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn restart_and_terminate_become_header_and_end() {
        let el = parse(
            "<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' \
             rid='2' sid='s' to='localhost' xmpp:restart='true' xml:lang='de'/>",
        );
        match &events(&el)[..] {
            [StreamEvent::Header(h)] => {
                assert_eq!(h.to.as_deref(), Some("localhost"));
                assert_eq!(h.version.as_deref(), Some("1.0"));
                assert_eq!(h.lang.as_deref(), Some("de"));
            }
            other => panic!("{other:?}"),
        }
        let el = parse(
            "<body xmlns='http://jabber.org/protocol/httpbind' rid='3' sid='s' type='terminate'>\
             <presence type='unavailable' xmlns='jabber:client'/></body>",
        );
        assert!(matches!(
            &events(&el)[..],
            [StreamEvent::Element(_), StreamEvent::End]
        ));
    }

    #[test]
    fn config_validation_names_the_key() {
        BoshConfig::default().validate().unwrap();
        let c = BoshConfig {
            max_requests: 1,
            ..BoshConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().0, "http.bosh.max_requests");
    }
}
