//! XEP-0124/XEP-0206 BOSH at `/http-bind` over real sockets, with raw
//! HTTP/1.1 requests: session creation, SASL, restart and bind, stanzas
//! both ways with TCP sessions, long polling, repeated and bad rids,
//! unknown sids, termination, the inactivity timeout, malformed and
//! oversized bodies, CORS, host-meta, and account-based room joining.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine;
use minidom::Element;
use roost_testkit::client::body;
use roost_testkit::muc::room;
use roost_testkit::web::{self, HttpResponse};
use roost_testkit::TestServer;

const HTTPBIND: &str = "http://jabber.org/protocol/httpbind";
const XBOSH: &str = "urn:xmpp:xbosh";
const PATH: &str = "/http-bind";
/// Longest a test waits for something to arrive.
const PATIENCE: Duration = Duration::from_secs(15);

fn wrap(attrs: &str, payload: &str) -> String {
    format!("<body xmlns='{HTTPBIND}' xmlns:xmpp='{XBOSH}'{attrs}>{payload}</body>")
}

async fn post(addr: SocketAddr, text: &str, headers: &[(&str, &str)]) -> HttpResponse {
    let mut all = vec![("Content-Type", "text/xml; charset=utf-8")];
    all.extend_from_slice(headers);
    web::post(addr, false, PATH, &all, text.as_bytes()).await
}

fn parse(r: &HttpResponse) -> Element {
    r.body
        .parse()
        .unwrap_or_else(|e| panic!("not XML ({e}): {:?}", r.body))
}

fn is_terminate(b: &Element, condition: Option<&str>) -> bool {
    b.is("body", HTTPBIND)
        && b.attr("type") == Some("terminate")
        && b.attr("condition") == condition
}

/// A BOSH client that sends one request at a time.
struct Bosh {
    addr: SocketAddr,
    sid: String,
    rid: u64,
    /// Payloads received and not yet looked at.
    got: VecDeque<Element>,
    jid: String,
}

impl Bosh {
    /// Create a session asking for `wait` seconds; returns the answer.
    async fn create(addr: SocketAddr, wait: u64) -> (Bosh, Element) {
        let rid = 4_000_000_000;
        let r = post(
            addr,
            &wrap(
                &format!(
                    " rid='{rid}' to='localhost' xml:lang='en' wait='{wait}' hold='1' \
                     ver='1.11' xmpp:version='1.0'"
                ),
                "",
            ),
            &[],
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("content-type"), Some("text/xml; charset=utf-8"));
        let b = parse(&r);
        let sid = b.attr("sid").expect("sid").to_string();
        let mut c = Bosh {
            addr,
            sid,
            rid,
            got: VecDeque::new(),
            jid: String::new(),
        };
        c.got.extend(b.children().cloned());
        (c, b)
    }

    /// The text of the next request (a fresh rid).
    fn next(&mut self, attrs: &str, payload: &str) -> (u64, String) {
        self.rid += 1;
        let text = wrap(
            &format!(" rid='{}' sid='{}'{attrs}", self.rid, self.sid),
            payload,
        );
        (self.rid, text)
    }

    async fn request(&mut self, attrs: &str, payload: &str) -> Element {
        let (_, text) = self.next(attrs, payload);
        let r = post(self.addr, &text, &[]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let b = parse(&r);
        self.got.extend(b.children().cloned());
        b
    }

    async fn send(&mut self, payload: &str) -> Element {
        self.request("", payload).await
    }

    /// The first payload matching `pred`, polling with empty requests.
    async fn expect(&mut self, what: &str, pred: impl Fn(&Element) -> bool) -> Element {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(i) = self.got.iter().position(&pred) {
                return self.got.remove(i).expect("got");
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; got {:?}",
                self.got.iter().map(String::from).collect::<Vec<_>>()
            );
            let b = self.request("", "").await;
            assert!(
                b.attr("type") != Some("terminate"),
                "terminated while waiting for {what}: {}",
                String::from(&b)
            );
        }
    }

    /// SASL PLAIN, restart, bind (XEP-0206 §5-6).
    async fn login(addr: SocketAddr, user: &str, resource: &str, wait: u64) -> Bosh {
        let (mut c, first) = Bosh::create(addr, wait).await;
        if first
            .get_child("features", "http://etherx.jabber.org/streams")
            .is_none()
        {
            c.expect("features", |e| e.name() == "features").await;
        } else {
            c.got.clear();
        }
        let creds =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0pw-{user}"));
        c.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{creds}</auth>"
        ))
        .await;
        c.expect("success", |e| e.name() == "success").await;
        let restarted = c
            .request(" to='localhost' xml:lang='en' xmpp:restart='true'", "")
            .await;
        assert!(
            restarted.attr("type").is_none(),
            "{}",
            String::from(&restarted)
        );
        let f = c.expect("features", |e| e.name() == "features").await;
        assert!(f.has_child("bind", "urn:ietf:params:xml:ns:xmpp-bind"));
        c.send(&format!(
            "<iq type='set' id='bind' xmlns='jabber:client'>\
             <bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource></bind></iq>"
        ))
        .await;
        let iq = c
            .expect("bind result", |e| e.attr("id") == Some("bind"))
            .await;
        assert_eq!(iq.attr("type"), Some("result"), "{}", String::from(&iq));
        c.jid = iq
            .get_child("bind", "urn:ietf:params:xml:ns:xmpp-bind")
            .and_then(|b| b.get_child("jid", "urn:ietf:params:xml:ns:xmpp-bind"))
            .map(|j| j.text())
            .expect("jid");
        c
    }

    /// Initial presence, and its reflection.
    async fn available(&mut self) {
        self.send("<presence xmlns='jabber:client'/>").await;
        let me = self.jid.clone();
        self.expect("own presence", |e| {
            e.name() == "presence" && e.attr("from") == Some(me.as_str())
        })
        .await;
    }
}

fn presence_of<'a>(jid: &'a str, kind: Option<&'static str>) -> impl Fn(&Element) -> bool + 'a {
    move |e| e.name() == "presence" && e.attr("from") == Some(jid) && e.attr("type") == kind
}

#[tokio::test]
async fn session_creation_answers_with_the_session_attributes_and_stream_features() {
    let s = TestServer::start().await;
    let (_c, b) = Bosh::create(s.http(), 90).await;
    assert!(b.is("body", HTTPBIND));
    assert_eq!(b.attr("sid").map(str::len), Some(24));
    assert_eq!(b.attr("wait"), Some("60"), "capped at max_wait");
    assert_eq!(b.attr("hold"), Some("1"));
    assert_eq!(b.attr("requests"), Some("2"));
    assert_eq!(b.attr("inactivity"), Some("60"));
    assert!(b.attr("polling").is_some());
    assert_eq!(b.attr("ver"), Some("1.11"));
    assert_eq!(b.attr("from"), Some("localhost"));
    assert_eq!(b.attr_ns(XBOSH, "version"), Some("1.0"));
    assert_eq!(b.attr_ns(XBOSH, "restartlogic"), Some("true"));
    assert!(b.attr("maxpause").is_none(), "pause is not offered");
    let f = b
        .get_child("features", "http://etherx.jabber.org/streams")
        .expect("features in the creation answer");
    assert!(f
        .get_child("starttls", "urn:ietf:params:xml:ns:xmpp-tls")
        .is_none());
    let mechs: Vec<String> = f
        .get_child("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl")
        .expect("plain http from loopback may authenticate")
        .children()
        .map(|m| m.text())
        .collect();
    assert!(mechs.iter().any(|m| m == "PLAIN"), "{mechs:?}");
}

#[tokio::test]
async fn a_bosh_session_and_a_tcp_session_exchange_messages() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut alice = Bosh::login(s.http(), "alice", "web", 2).await;
    assert_eq!(alice.jid, "alice@localhost/web");
    let mut bob = s.login("bob", "desk").await;
    alice
        .send(
            "<message xmlns='jabber:client' to='bob@localhost/desk' type='chat'>\
             <body>hello over BOSH</body></message>",
        )
        .await;
    let m = bob
        .expect("alice's message", |e| {
            body(e).as_deref() == Some("hello over BOSH")
        })
        .await;
    assert_eq!(m.attr("from"), Some("alice@localhost/web"));
    bob.send("<message to='alice@localhost/web' type='chat'><body>hi back</body></message>")
        .await;
    let m = alice
        .expect("bob's answer", |e| body(e).as_deref() == Some("hi back"))
        .await;
    assert_eq!(m.attr("from"), Some("bob@localhost/desk"));
    // Stanzas left in the wrapper's namespace count as jabber:client.
    alice
        .send("<message to='bob@localhost/desk' type='chat'><body>unqualified</body></message>")
        .await;
    bob.expect("unqualified message", |e| {
        body(e).as_deref() == Some("unqualified")
    })
    .await;
}

#[tokio::test]
async fn a_held_request_returns_as_soon_as_a_message_arrives() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut alice = Bosh::login(s.http(), "alice", "web", 8).await;
    let mut bob = s.login("bob", "desk").await;
    let (_, text) = alice.next("", "");
    let addr = alice.addr;
    let started = Instant::now();
    let poll = tokio::spawn(async move { post(addr, &text, &[]).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    bob.send("<message to='alice@localhost/web' type='chat'><body>wake up</body></message>")
        .await;
    let r = poll.await.expect("poll");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "held for {took:?}");
    let b = parse(&r);
    assert!(
        b.children().any(|e| body(e).as_deref() == Some("wake up")),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn an_empty_body_comes_back_after_wait() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut alice = Bosh::login(s.http(), "alice", "web", 1).await;
    let started = Instant::now();
    let b = alice.request("", "").await;
    let took = started.elapsed();
    assert!(
        b.is("body", HTTPBIND) && b.children().count() == 0,
        "{}",
        String::from(&b)
    );
    assert!(b.attr("type").is_none());
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_repeated_rid_gets_the_same_answer() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut alice = Bosh::login(s.http(), "alice", "web", 2).await;
    let (_, text) = alice.next(
        "",
        "<iq xmlns='jabber:client' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>",
    );
    let first = post(alice.addr, &text, &[]).await;
    assert!(first.body.contains("p1"), "{}", first.body);
    // XEP-0124 §14.3: the response was lost; the client sends it again.
    let again = post(alice.addr, &text, &[]).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, first.body);
    // The session goes on.
    let b = alice
        .send("<iq xmlns='jabber:client' type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert!(b.attr("type").is_none());
    alice.expect("pong", |e| e.attr("id") == Some("p2")).await;
}

#[tokio::test]
async fn a_rid_out_of_the_window_terminates_the_session() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut alice = Bosh::login(s.http(), "alice", "web", 2).await;
    alice.rid += 5;
    let b = alice.request("", "").await;
    assert!(
        is_terminate(&b, Some("item-not-found")),
        "{}",
        String::from(&b)
    );
    // The session is gone.
    let (_, text) = alice.next("", "");
    let r = post(alice.addr, &text, &[]).await;
    assert_eq!(r.status, 404);
    assert!(
        is_terminate(&parse(&r), Some("item-not-found")),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn an_unknown_sid_is_item_not_found() {
    let s = TestServer::start().await;
    let r = post(s.http(), &wrap(" rid='10' sid='nonesuch'", ""), &[]).await;
    assert_eq!(r.status, 404);
    assert!(
        is_terminate(&parse(&r), Some("item-not-found")),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn terminate_ends_the_session_and_other_sessions_see_it_leave() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut desk = s.login("alice", "desk").await;
    desk.available().await;
    let mut web = Bosh::login(s.http(), "alice", "web", 2).await;
    web.available().await;
    desk.expect("web online", presence_of("alice@localhost/web", None))
        .await;
    let b = web
        .request(
            " type='terminate'",
            "<presence xmlns='jabber:client' type='unavailable'/>",
        )
        .await;
    assert!(is_terminate(&b, None), "{}", String::from(&b));
    desk.expect(
        "web offline",
        presence_of("alice@localhost/web", Some("unavailable")),
    )
    .await;
    let (_, text) = web.next("", "");
    let r = post(web.addr, &text, &[]).await;
    assert!(
        is_terminate(&parse(&r), Some("item-not-found")),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn an_inactive_session_ends_like_a_lost_connection() {
    let s = TestServer::start_with(|c| c.http.bosh.max_inactivity = 1).await;
    s.user("alice").await;
    let mut desk = s.login("alice", "desk").await;
    desk.available().await;
    let mut web = Bosh::login(s.http(), "alice", "web", 1).await;
    assert_eq!(web.sid.len(), 24);
    web.available().await;
    desk.expect("web online", presence_of("alice@localhost/web", None))
        .await;
    // No more requests: after `inactivity` the session is lost.
    let started = Instant::now();
    desk.expect(
        "web offline",
        presence_of("alice@localhost/web", Some("unavailable")),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let (_, text) = web.next("", "");
    let r = post(web.addr, &text, &[]).await;
    assert_eq!(r.status, 404, "{}", r.body);
}

#[tokio::test]
async fn malformed_and_oversized_bodies_are_refused_without_harm() {
    let s = TestServer::start_with(|c| c.limits.max_stanza_size = 1024).await;
    for bad in [
        "<body xmlns='http://jabber.org/protocol/httpbind' rid='1'",
        "not xml at all",
        "<notbody xmlns='urn:example' rid='1'/>",
        "<body xmlns='http://jabber.org/protocol/httpbind' to='localhost'/>",
        "",
    ] {
        let r = post(s.http(), bad, &[]).await;
        assert_eq!(r.status, 400, "{bad:?}: {}", r.body);
        assert!(is_terminate(&parse(&r), Some("bad-request")), "{}", r.body);
    }
    let big = wrap(
        " rid='1' to='localhost'",
        &format!(
            "<message xmlns='jabber:client'><body>{}</body></message>",
            "x".repeat(8000)
        ),
    );
    let r = post(s.http(), &big, &[]).await;
    assert!(
        is_terminate(&parse(&r), Some("policy-violation")),
        "{}",
        r.body
    );
    // The endpoint still works.
    let (_, b) = Bosh::create(s.http(), 1).await;
    assert!(b.attr("sid").is_some());
}

#[tokio::test]
async fn browsers_get_cors_headers_for_allowed_origins_only() {
    let s = TestServer::start().await;
    let r = web::request(
        s.http(),
        false,
        "OPTIONS",
        PATH,
        &[
            ("Origin", "http://localhost:8080"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://localhost:8080")
    );
    assert!(r
        .header("access-control-allow-methods")
        .is_some_and(|m| m.contains("POST")));
    assert!(r
        .header("access-control-allow-headers")
        .is_some_and(|h| h.to_ascii_lowercase().contains("content-type")));
    let creation = wrap(" rid='1' to='localhost' wait='1' hold='1' ver='1.11'", "");
    let r = post(s.http(), &creation, &[("Origin", "http://localhost:8080")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://localhost:8080")
    );
    // A foreign page may not use a visitor's browser as a client.
    let r = post(s.http(), &creation, &[("Origin", "https://evil.example")]).await;
    assert_eq!(r.status, 403);
    assert!(r.header("access-control-allow-origin").is_none());
    // GET is not served.
    let r = web::get(s.http(), false, PATH, &[]).await;
    assert_eq!(r.status, 405);
}

#[tokio::test]
async fn host_meta_advertises_bosh_next_to_websocket() {
    let s = TestServer::start().await;
    let r = web::get(
        s.http(),
        false,
        "/.well-known/host-meta",
        &[("Host", "chat.example.org:5280")],
    )
    .await;
    let xrd: Element = r
        .body
        .trim_start_matches("<?xml version='1.0' encoding='utf-8'?>")
        .trim()
        .parse()
        .expect("XRD");
    let links: Vec<(String, String)> = xrd
        .children()
        .map(|l| {
            (
                l.attr("rel").unwrap_or_default().to_string(),
                l.attr("href").unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(links.contains(&(
        "urn:xmpp:alt-connections:xbosh".into(),
        "http://chat.example.org:5280/http-bind".into()
    )));
    assert!(links
        .iter()
        .any(|(rel, _)| rel == "urn:xmpp:alt-connections:websocket"));
    // Off: neither served nor advertised.
    let s = TestServer::start_with(|c| c.http.bosh.enabled = false).await;
    let r = web::get(s.http(), false, "/.well-known/host-meta.json", &[]).await;
    assert!(!r.body.contains("xbosh"), "{}", r.body);
    let r = post(s.http(), &wrap(" rid='1' to='localhost'", ""), &[]).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn a_bosh_session_joins_a_room_beside_a_tcp_session_of_the_same_account() {
    let s = TestServer::start().await;
    for u in ["alice", "bob"] {
        s.user(u).await;
    }
    let lobby = room("lobby");
    let mut bob = s.login("bob", "desk").await;
    bob.available().await;
    bob.create_room(&lobby, "Bob").await;
    let mut phone = s.login("alice", "phone").await;
    phone.available().await;
    phone.join_room(&lobby, "Al").await;
    let mut web = Bosh::login(s.http(), "alice", "web", 2).await;
    web.available().await;
    web.send(&format!(
        "<presence xmlns='jabber:client' to='{lobby}/Al'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
    ))
    .await;
    let occupant = format!("{lobby}/Al");
    web.expect("own room presence", |e| {
        e.name() == "presence" && e.attr("from") == Some(occupant.as_str())
    })
    .await;
    web.expect("subject", |e| {
        e.name() == "message" && e.has_child("subject", "jabber:client")
    })
    .await;
    bob.say(&lobby, "hello both").await;
    phone.expect_groupchat("hello both").await;
    let m = web
        .expect("room message", |e| body(e).as_deref() == Some("hello both"))
        .await;
    assert_eq!(m.attr("type"), Some("groupchat"));
    assert_eq!(m.attr("to"), Some("alice@localhost/web"));
    // What the BOSH session says reaches the room as Al.
    web.send(&format!(
        "<message xmlns='jabber:client' to='{lobby}' type='groupchat'><body>from the browser</body></message>"
    ))
    .await;
    let m = bob.expect_groupchat("from the browser").await;
    assert_eq!(m.attr("from"), Some(occupant.as_str()));
}

#[tokio::test]
async fn shutdown_ends_bosh_sessions_without_waiting_for_inactivity() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut alice = Bosh::login(s.http(), "alice", "web", 8).await;
    let (_, text) = alice.next("", "");
    let addr = alice.addr;
    let poll = tokio::spawn(async move { post(addr, &text, &[]).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    s.running.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The listener closes its connections at shutdown, so the held
    // request is either answered with the stream error or cut.
    if let Ok(r) = poll.await {
        let b = parse(&r);
        assert!(is_terminate(&b, Some("remote-stream-error")), "{}", r.body);
    }
}
