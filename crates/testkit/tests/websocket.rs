//! RFC 7395 XMPP over WebSocket and XEP-0156 host-meta over real sockets:
//! framing (`<open/>`, features, `<close/>`), SASL and binding over `ws`
//! and `wss`, sessions that talk to TCP sessions, stream management
//! across framings, carbons, the subprotocol and origin checks, limits,
//! and the discovery documents.

use std::time::Duration;

use minidom::Element;
use roost_testkit::web::{self, Handshake};
use roost_testkit::{client::body, Client, Conn, Login, Mech, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";
const OPEN: &str =
    "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";

fn parse(text: &str) -> Element {
    text.parse()
        .unwrap_or_else(|e| panic!("not a standalone element ({e}): {text}"))
}

fn is_chat(e: &Element) -> bool {
    e.name() == "message" && body(e).is_some()
}

#[tokio::test]
async fn open_is_answered_with_open_and_features_that_declare_their_prefix() {
    let s = TestServer::start().await;
    let mut c = Conn::websocket(s.http(), false).await;
    c.send(OPEN).await;
    let open = c.next_message().await.expect("open");
    let el = parse(&open);
    assert!(el.is("open", FRAMING), "{open}");
    assert_eq!(el.attr("from"), Some("localhost"));
    assert_eq!(el.attr("version"), Some("1.0"));
    assert!(el.attr("id").is_some_and(|id| !id.is_empty()));
    let features = c.next_message().await.expect("features");
    assert!(
        features.starts_with("<stream:features xmlns:stream='http://etherx.jabber.org/streams'>"),
        "{features}"
    );
    let f = parse(&features);
    assert!(
        f.get_child("starttls", "urn:ietf:params:xml:ns:xmpp-tls")
            .is_none(),
        "no STARTTLS over WebSocket"
    );
    let mechs: Vec<String> = f
        .get_child("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl")
        .expect("plain ws from loopback may authenticate")
        .children()
        .map(|m| m.text())
        .collect();
    assert_eq!(mechs, ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]);
}

#[tokio::test]
async fn login_with_each_mechanism_over_ws_and_wss() {
    let s = TestServer::start().await;
    s.add_user("alice", "wonderland").await;
    for (addr, tls) in [(s.http(), false), (s.https(), true)] {
        for mech in [Mech::ScramSha256, Mech::ScramSha1, Mech::Plain] {
            let c = Client::login_ws(addr, tls, Login::new("alice", "wonderland").mech(mech))
                .await
                .unwrap_or_else(|e| panic!("tls={tls} {mech:?}: {e}"));
            assert!(c.jid.starts_with("alice@localhost/"), "{}", c.jid);
            c.close().await;
        }
    }
}

#[tokio::test]
async fn wrong_password_over_websocket_is_not_authorized() {
    let s = TestServer::start().await;
    s.add_user("alice", "wonderland").await;
    let err = Client::login_ws(s.http(), false, Login::new("alice", "nope"))
        .await
        .err()
        .expect("refused");
    assert_eq!(err, "not-authorized");
}

#[tokio::test]
async fn stream_restarts_with_a_new_open_after_authentication() {
    let s = TestServer::start().await;
    s.add_user("alice", "wonderland").await;
    let mut c = Conn::websocket(s.http(), false).await;
    c.send(OPEN).await;
    let first = parse(&c.next_message().await.unwrap());
    c.next_message().await.unwrap();
    c.authenticate("alice", "wonderland", Mech::ScramSha256)
        .await
        .unwrap();
    c.send(OPEN).await;
    let second = parse(&c.next_message().await.unwrap());
    assert!(second.is("open", FRAMING));
    assert_ne!(first.attr("id"), second.attr("id"), "a new stream id");
    let f = parse(&c.next_message().await.unwrap());
    assert!(f.has_child("bind", "urn:ietf:params:xml:ns:xmpp-bind"));
    assert!(f.has_child("sm", "urn:xmpp:sm:3"));
    let jid = c.bind(Some("web")).await;
    assert_eq!(jid, "alice@localhost/web");
}

#[tokio::test]
async fn close_is_answered_with_close_and_the_websocket_closes() {
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut a = s.login_ws("alice", "web").await;
    a.conn
        .send("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
        .await;
    let reply = a.conn.next_message().await.expect("close");
    assert!(parse(&reply).is("close", FRAMING), "{reply}");
    assert!(a.conn.next_message().await.is_none(), "WebSocket closed");
}

#[tokio::test]
async fn a_websocket_session_and_a_tcp_session_exchange_messages() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut a = s.login_ws("alice", "web").await;
    let mut b = s.login("bob", "desk").await;
    a.available().await;
    b.available().await;
    a.send("<message xmlns='jabber:client' to='bob@localhost/desk' type='chat'><body>hi from the web</body></message>")
        .await;
    let m = b.expect("message from alice", is_chat).await;
    assert_eq!(m.attr("from"), Some("alice@localhost/web"));
    assert_eq!(body(&m).as_deref(), Some("hi from the web"));
    b.send("<message to='alice@localhost/web' type='chat'><body>hi from tcp</body></message>")
        .await;
    let m = a.expect("message from bob", is_chat).await;
    assert_eq!(m.attr("from"), Some("bob@localhost/desk"));
    assert_eq!(body(&m).as_deref(), Some("hi from tcp"));
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn carbons_reach_a_websocket_session() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut phone = s.login("alice", "phone").await;
    let mut web = s.login_ws("alice", "web").await;
    phone.available().await;
    web.available().await;
    let r = web
        .iq("set", None, "<enable xmlns='urn:xmpp:carbons:2'/>")
        .await;
    assert_eq!(r.attr("type"), Some("result"));
    let mut b = s.login("bob", "desk").await;
    b.send("<message to='alice@localhost/phone' type='chat'><body>to the phone</body></message>")
        .await;
    phone.expect("direct", is_chat).await;
    let c = web
        .expect("received carbon", |e| {
            e.name() == "message" && e.has_child("received", "urn:xmpp:carbons:2")
        })
        .await;
    assert!(String::from(&c).contains("to the phone"));
}

#[tokio::test]
async fn sessions_resume_across_framings() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    let mut b = s.login("bob", "desk").await;
    // (resource, started over WebSocket, resumed over WebSocket)
    for (resource, started_ws, resumed_ws) in [
        ("web", true, true),
        ("phone", false, true),
        ("tab", true, false),
    ] {
        let mut a = if started_ws {
            s.login_ws("alice", resource).await
        } else {
            s.login("alice", resource).await
        };
        let previd = a.enable_sm().await;
        a.drop_connection();
        tokio::time::sleep(Duration::from_millis(200)).await;
        b.send(&format!(
            "<message to='alice@localhost/{resource}' type='chat'><body>missed {resource}</body></message>"
        ))
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut c = if resumed_ws {
            let mut c = Conn::websocket(s.http(), false).await;
            c.open_stream().await;
            c
        } else {
            Conn::secured(s.c2s(), false).await
        };
        c.authenticate("alice", "pw-alice", Mech::ScramSha256)
            .await
            .unwrap();
        c.open_stream().await;
        let answer = c.resume(&previd, 0).await;
        assert_eq!(answer.name(), "resumed", "{}", String::from(&answer));
        let missed = loop {
            let e = c.next_element().await.expect("the missed message");
            if is_chat(&e) {
                break e;
            }
        };
        assert_eq!(
            body(&missed).as_deref(),
            Some(format!("missed {resource}").as_str())
        );
        // The resumed session is live: it answers a ping over the new socket.
        c.send("<iq xmlns='jabber:client' type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
            .await;
        loop {
            let e = c.next_element().await.expect("ping reply");
            if e.name() == "iq" && e.attr("id") == Some("p1") {
                assert_eq!(e.attr("type"), Some("result"));
                break;
            }
        }
        c.send_stream_end().await;
    }
}

#[tokio::test]
async fn starttls_over_websocket_fails_and_closes() {
    let s = TestServer::start().await;
    let mut c = Conn::websocket(s.http(), false).await;
    c.open_stream().await;
    c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .await;
    let f = c.next_element().await.expect("failure");
    assert!(f.is("failure", "urn:ietf:params:xml:ns:xmpp-tls"));
    assert!(c.next_element().await.is_none());
}

#[tokio::test]
async fn upgrades_without_the_xmpp_subprotocol_are_refused() {
    let s = TestServer::start().await;
    for protocol in [None, Some("chat")] {
        let hs = Handshake {
            protocol: protocol.map(str::to_string),
            ..Handshake::default()
        };
        let status = web::websocket(s.http(), false, &hs).await.err();
        assert_eq!(status, Some(400), "{protocol:?}");
    }
    // Several offered, xmpp among them: accepted with xmpp.
    let hs = Handshake {
        protocol: Some("chat, xmpp".into()),
        ..Handshake::default()
    };
    assert!(
        web::websocket(s.http(), false, &hs).await.is_ok(),
        "xmpp among others is accepted"
    );
}

#[tokio::test]
async fn an_oversized_message_is_a_policy_violation() {
    let s = TestServer::start_with(|c| c.limits.max_stanza_size = 4096).await;
    s.user("alice").await;
    let mut a = s.login_ws("alice", "web").await;
    let big = format!(
        "<message xmlns='jabber:client' to='alice@localhost'><body>{}</body></message>",
        "x".repeat(8192)
    );
    a.conn.send(&big).await;
    assert_eq!(a.conn.stream_error().await, "policy-violation");
}

#[tokio::test]
async fn a_message_that_is_not_xml_is_not_well_formed() {
    let s = TestServer::start().await;
    let mut c = Conn::websocket(s.http(), false).await;
    c.open_stream().await;
    c.send("this is not XML").await;
    assert_eq!(c.stream_error().await, "not-well-formed");
    // Half an element is not a message either.
    let mut c = Conn::websocket(s.http(), false).await;
    c.open_stream().await;
    c.send("<iq xmlns='jabber:client' type='get'>").await;
    assert_eq!(c.stream_error().await, "not-well-formed");
}

#[tokio::test]
async fn stanzas_before_authentication_are_not_authorized() {
    let s = TestServer::start().await;
    let mut c = Conn::websocket(s.http(), false).await;
    c.open_stream().await;
    c.send("<message xmlns='jabber:client' to='bob@localhost'><body>x</body></message>")
        .await;
    assert_eq!(c.stream_error().await, "not-authorized");
}

#[tokio::test]
async fn host_meta_advertises_the_websocket_url_in_xml_and_json() {
    let s = TestServer::start().await;
    let r = web::get(
        s.http(),
        false,
        "/.well-known/host-meta",
        &[("Host", "chat.example.org:5280")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/xrd+xml")));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let xrd = parse(
        r.body
            .trim_start_matches("<?xml version='1.0' encoding='utf-8'?>")
            .trim(),
    );
    let link = xrd
        .get_child("Link", "http://docs.oasis-open.org/ns/xri/xrd-1.0")
        .expect("Link");
    assert_eq!(link.attr("rel"), Some("urn:xmpp:alt-connections:websocket"));
    assert_eq!(
        link.attr("href"),
        Some("ws://chat.example.org:5280/xmpp-websocket")
    );

    let r = web::get(
        s.https(),
        true,
        "/.well-known/host-meta.json",
        &[("Host", "localhost")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.body.trim(),
        "{\"links\":[{\"rel\":\"urn:xmpp:alt-connections:websocket\",\"href\":\"wss://localhost/xmpp-websocket\"},\
         {\"rel\":\"urn:xmpp:alt-connections:xbosh\",\"href\":\"https://localhost/http-bind\"}]}"
    );

    // A Host that is not host[:port] is not echoed: the listener's address is.
    let r = web::get(
        s.http(),
        false,
        "/.well-known/host-meta.json",
        &[("Host", "evil\"><script>")],
    )
    .await;
    assert!(
        r.body
            .contains(&format!("\"ws://{}/xmpp-websocket\"", s.http())),
        "{}",
        r.body
    );
    assert!(!r.body.contains("script"));
}

#[tokio::test]
async fn unknown_paths_and_plain_gets_of_the_endpoint_are_answered() {
    let s = TestServer::start().await;
    assert_eq!(web::get(s.http(), false, "/nope", &[]).await.status, 404);
    assert_eq!(
        web::get(s.http(), false, "/xmpp-websocket", &[])
            .await
            .status,
        426
    );
    let r = web::request(
        s.http(),
        false,
        "OPTIONS",
        "/.well-known/host-meta",
        &[("Origin", "https://elsewhere.example")],
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
}

#[tokio::test]
async fn oversized_request_headers_are_refused() {
    let s = TestServer::start().await;
    let big = "x".repeat(20_000);
    let r = web::get(
        s.http(),
        false,
        "/.well-known/host-meta",
        &[("X-Big", big.as_str())],
    )
    .await;
    assert_eq!(r.status, 431);
}

#[tokio::test]
async fn foreign_origins_are_refused_and_loopback_or_listed_ones_allowed() {
    let s = TestServer::start().await;
    let with_origin = |o: &str| Handshake {
        origin: Some(o.into()),
        ..Handshake::default()
    };
    let refused = web::websocket(s.http(), false, &with_origin("https://evil.example"))
        .await
        .err();
    assert_eq!(refused, Some(403));
    assert!(
        web::websocket(s.http(), false, &with_origin("http://localhost:8080"))
            .await
            .is_ok(),
        "loopback pages are allowed when no origins are configured"
    );
    // Same origin as the endpoint.
    let own = Handshake {
        origin: Some("https://chat.example.org".into()),
        host: Some("chat.example.org".into()),
        ..Handshake::default()
    };
    assert!(web::websocket(s.https(), true, &own).await.is_ok());

    let s = TestServer::start_with(|c| {
        c.http.allowed_origins = vec!["https://web.example.org".into()];
    })
    .await;
    assert!(
        web::websocket(s.http(), false, &with_origin("https://web.example.org"))
            .await
            .is_ok()
    );
    for o in ["http://localhost:8080", "https://evil.example"] {
        assert_eq!(
            web::websocket(s.http(), false, &with_origin(o)).await.err(),
            Some(403),
            "{o}"
        );
    }
}

#[tokio::test]
async fn wss_may_authenticate_while_tcp_must_start_tls_first() {
    // Tests connect from loopback only, where plain ws counts as secure
    // (above); wss always does, and plain TCP still needs STARTTLS.
    let s = TestServer::start().await;
    s.user("alice").await;
    let mut c = Conn::websocket(s.https(), true).await;
    let f = c.open_stream().await;
    assert!(f.has_child("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl"));
    let mut t = Conn::connect(s.c2s(), false).await.unwrap();
    let f = t.open_stream().await;
    assert!(!f.has_child("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl"));
}

#[tokio::test]
async fn the_connection_limit_is_shared_with_c2s() {
    let s = TestServer::start_with(|c| c.limits.max_connections = 1).await;
    let mut held = Conn::connect(s.c2s(), false).await.unwrap();
    held.open_stream().await;
    // The only permit is taken: the HTTP connection gets 503 and is closed.
    let mut tcp = tokio::net::TcpStream::connect(s.http()).await.unwrap();
    let _ = tcp
        .write_all(b"GET /.well-known/host-meta HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf))
        .await
        .expect("closed promptly")
        .unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
}
