//! README "Limits": each limit an operator sets is reached over real
//! sockets and answers as the specs say — RFC 6120 stream errors
//! (`policy-violation`, `connection-timeout`) and stanza errors
//! (`resource-constraint`, RFC 6120 §7.6.2.1 for binding), HTTP 429
//! (RFC 6585), XEP-0045 join errors, XEP-0313/XEP-0059 pages cut to the
//! limit — is counted in /metrics, and leaves other clients alone.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use roost_testkit::muc::{error_condition, room};
use roost_testkit::{Conn, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HEADER: &str = "<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";

/// Limits tests come from loopback, which is exempt by default.
fn not_exempt(c: &mut roost_server::Config) {
    c.limits.exempt.clear();
}

async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut raw))
        .await
        .expect("answered in time")
        .expect("read");
    String::from_utf8_lossy(&raw).into_owned()
}

/// `roost_limit_hits_total{limit="<name>"}` now.
async fn hits(s: &TestServer, limit: &str) -> u64 {
    let text = http_get(s.http(), "/metrics").await;
    let key = format!("roost_limit_hits_total{{limit=\"{limit}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .unwrap_or_else(|| panic!("no {key} in metrics: {text}"))
        .trim()
        .parse()
        .expect("a number")
}

/// A connection that has opened its stream (so the server holds it).
async fn opened(s: &TestServer) -> Conn {
    let mut c = Conn::connect(s.c2s(), false).await.expect("connect");
    c.open_stream().await;
    c
}

#[tokio::test]
async fn connections_per_address_are_limited_and_given_back() {
    let s = TestServer::start_with(|c| {
        not_exempt(c);
        c.limits.max_connections_per_ip = 3;
        c.limits.connections_per_second = 0;
    })
    .await;
    // Read in-process: the metrics endpoint shares the address's limit.
    let counted = || roost_core::limits::hits(roost_core::limits::Limit::ConnectionsPerAddress);
    let before = counted();
    let mut held = vec![opened(&s).await, opened(&s).await, opened(&s).await];
    // The fourth hears why before its header (RFC 6120 §4.9.1.1).
    let mut refused = Conn::connect(s.c2s(), false).await.unwrap();
    assert_eq!(refused.stream_error().await, "policy-violation");
    // The plain HTTP port counts the same address: 429.
    let answer = http_get(s.http(), "/.well-known/host-meta").await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(counted() >= before + 2);
    // One closes: its place comes back once the server has seen it go.
    held.pop().unwrap().send_stream_end().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = Conn::connect(s.c2s(), false).await.unwrap();
        c.send(HEADER).await;
        match c.next_event().await {
            Some(roost_stream::StreamEvent::Header(_)) => {
                // Accepted: a stream error would follow the header at once
                // if it had been refused; features follow instead.
                let next = c.next_element().await.expect("features or error");
                if next.name() == "features" {
                    break;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "the closed connection's place never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn new_connections_per_second_are_limited() {
    let s = TestServer::start_with(|c| {
        not_exempt(c);
        c.limits.max_connections_per_ip = 0;
        c.limits.connections_per_second = 1;
        c.limits.connection_burst = 2;
    })
    .await;
    let _a = opened(&s).await;
    let _b = opened(&s).await;
    let mut third = Conn::connect(s.c2s(), false).await.unwrap();
    assert_eq!(third.stream_error().await, "policy-violation");
}

#[tokio::test]
async fn exempt_addresses_are_not_counted() {
    let s = TestServer::start_with(|c| {
        c.limits.max_connections_per_ip = 1;
        c.limits.connections_per_second = 1;
        c.limits.connection_burst = 1;
    })
    .await;
    s.user("alice").await;
    // Loopback is exempt by default: five at once are fine.
    let mut all = Vec::new();
    for _ in 0..5 {
        all.push(opened(&s).await);
    }
    let mut c = s.login("alice", "r1").await;
    c.roster().await;
}

#[tokio::test]
async fn a_stream_that_does_not_start_in_time_is_closed() {
    let s = TestServer::start_with(|c| c.limits.handshake_timeout = 1).await;
    s.user("bob").await;
    let before = hits(&s, "handshake_timeout").await;
    let start = Instant::now();
    let mut silent = Conn::connect(s.c2s(), false).await.unwrap();
    assert_eq!(silent.stream_error().await, "connection-timeout");
    assert!(start.elapsed() < Duration::from_secs(10));
    // Direct TLS that never says hello: closed without a word.
    let mut tcp = tokio::net::TcpStream::connect(s.c2s_tls()).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(hits(&s, "handshake_timeout").await >= before + 2);
    // A client that starts at once is unaffected.
    let mut c = s.login("bob", "r1").await;
    c.roster().await;
}

#[tokio::test]
async fn a_flooding_stream_is_slowed_down_not_cut_and_others_go_on() {
    let s = TestServer::start_with(|c| {
        c.limits.stanzas_per_second = 20;
        c.limits.burst_seconds = 1;
    })
    .await;
    s.user("flood").await;
    s.user("calm").await;
    let mut flood = s.login("flood", "r").await;
    let mut calm = s.login("calm", "r").await;
    let before = hits(&s, "shaper").await;
    let start = Instant::now();
    // Large enough that the server takes several reads for them (a
    // read's stanzas are all handled; the wait comes before the next).
    let pad = "x".repeat(1024);
    let mut burst = String::new();
    for i in 0..80 {
        burst.push_str(&format!(
            "<iq type='get' id='p{i}' pad='{pad}'><ping xmlns='urn:xmpp:ping'/></iq>"
        ));
    }
    flood.send(&burst).await;
    // Meanwhile the calm client's pings are answered at once.
    let calm_start = Instant::now();
    let r = calm.iq("get", None, "<ping xmlns='urn:xmpp:ping'/>").await;
    assert_eq!(r.attr("type"), Some("result"));
    assert!(
        calm_start.elapsed() < Duration::from_secs(2),
        "{:?}",
        calm_start.elapsed()
    );
    // Every ping of the flood is answered, none dropped, at the rate:
    // 20 in the burst, 60 more at 20 per second.
    for i in 0..80 {
        let id = format!("p{i}");
        let r = flood
            .expect("pong", |e| {
                e.name() == "iq" && e.attr("id") == Some(id.as_str())
            })
            .await;
        assert_eq!(r.attr("type"), Some("result"));
    }
    assert!(
        start.elapsed() >= Duration::from_millis(2500),
        "{:?}",
        start.elapsed()
    );
    assert!(hits(&s, "shaper").await > before);
}

#[tokio::test]
async fn an_account_binds_at_most_max_resources() {
    let s = TestServer::start_with(|c| c.limits.max_resources = 2).await;
    s.user("many").await;
    let _one = s.login("many", "one").await;
    let _two = s.login("many", "two").await;
    let mut c = Conn::secured(s.c2s(), false).await;
    c.authenticate("many", "pw-many", roost_testkit::client::Mech::ScramSha1)
        .await
        .unwrap();
    c.open_stream().await;
    c.send("<iq type='set' id='b3'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>three</resource></bind></iq>").await;
    let r = c.next_element().await.expect("bind answer");
    assert_eq!(r.attr("type"), Some("error"));
    assert_eq!(error_condition(&r).as_deref(), Some("resource-constraint"));
    // Binding a resource already bound replaces it (RFC 6120 §7.7.2.2).
    c.send("<iq type='set' id='b4'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>two</resource></bind></iq>").await;
    let r = c.next_element().await.expect("bind answer");
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
}

#[tokio::test]
async fn a_full_roster_refuses_new_contacts_but_keeps_changing_old_ones() {
    let s = TestServer::start_with(|c| c.limits.max_roster_items = 2).await;
    s.user("rosie").await;
    let mut c = s.login("rosie", "r").await;
    for n in ["a", "b"] {
        let r = c
            .iq(
                "set",
                None,
                &format!("<query xmlns='jabber:iq:roster'><item jid='{n}@example.org'/></query>"),
            )
            .await;
        assert_eq!(r.attr("type"), Some("result"));
    }
    let r = c
        .iq(
            "set",
            None,
            "<query xmlns='jabber:iq:roster'><item jid='c@example.org'/></query>",
        )
        .await;
    assert_eq!(r.attr("type"), Some("error"));
    assert_eq!(error_condition(&r).as_deref(), Some("resource-constraint"));
    let r = c
        .iq(
            "set",
            None,
            "<query xmlns='jabber:iq:roster'><item jid='a@example.org' name='Anna'/></query>",
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"));
    // A subscription request to a new contact is refused the same way.
    c.send("<presence type='subscribe' to='d@example.org' id='s1'/>")
        .await;
    let e = c
        .expect("subscription error", |e| {
            e.name() == "presence" && e.attr("id") == Some("s1")
        })
        .await;
    assert_eq!(e.attr("type"), Some("error"));
    assert_eq!(error_condition(&e).as_deref(), Some("resource-constraint"));
    let roster = c.roster().await;
    assert_eq!(roster.children().next().unwrap().children().count(), 2);
}

#[tokio::test]
async fn a_user_joins_at_most_max_rooms_per_user() {
    let s = roost_testkit::muc::server_with(|c| c.muc.max_rooms_per_user = 2).await;
    s.user("joiner").await;
    let mut c = s.login("joiner", "r").await;
    let join = |name: &str| {
        format!(
            "<presence to='{}/joiner'><x xmlns='http://jabber.org/protocol/muc'/></presence>",
            room(name)
        )
    };
    let joined = |name: &'static str| {
        move |e: &minidom::Element| {
            e.name() == "presence"
                && e.attr("from") == Some(format!("{}/joiner", room(name)).as_str())
        }
    };
    for name in ["lim-one", "lim-two"] {
        c.send(&join(name)).await;
        let p = c.expect("join", joined(name)).await;
        assert_ne!(p.attr("type"), Some("error"), "{p:?}");
    }
    c.send(&join("lim-three")).await;
    let p = c.expect("refusal", joined("lim-three")).await;
    assert_eq!(p.attr("type"), Some("error"));
    assert_eq!(error_condition(&p).as_deref(), Some("resource-constraint"));
    // Leaving one makes room for another.
    c.send(&format!(
        "<presence type='unavailable' to='{}/joiner'/>",
        room("lim-one")
    ))
    .await;
    c.expect("left", |e| {
        joined("lim-one")(e) && e.attr("type") == Some("unavailable")
    })
    .await;
    c.send(&join("lim-three")).await;
    let p = c.expect("join", joined("lim-three")).await;
    assert_ne!(p.attr("type"), Some("error"), "{p:?}");
}

#[tokio::test]
async fn a_mam_page_is_cut_to_max_mam_page() {
    let s = TestServer::start_with(|c| c.limits.max_mam_page = 3).await;
    s.user("arch").await;
    s.user("peer").await;
    let mut a = s.login("arch", "r").await;
    let mut p = s.login("peer", "r").await;
    for i in 0..6 {
        p.send(&format!(
            "<message to='arch@localhost/r' type='chat' id='m{i}'><body>n{i}</body></message>"
        ))
        .await;
        a.expect("message", |e| {
            e.name() == "message" && e.attr("id") == Some(format!("m{i}").as_str())
        })
        .await;
    }
    a.send("<iq type='set' id='q1'><query xmlns='urn:xmpp:mam:2' queryid='qq'><set xmlns='http://jabber.org/protocol/rsm'><max>100</max></set></query></iq>").await;
    let mut results = 0;
    let fin = loop {
        let e = a.recv().await;
        if e.name() == "message" && e.get_child("result", "urn:xmpp:mam:2").is_some() {
            results += 1;
        } else if e.name() == "iq" && e.attr("id") == Some("q1") {
            break e;
        }
    };
    assert_eq!(results, 3);
    let fin = fin.get_child("fin", "urn:xmpp:mam:2").expect("fin");
    assert_ne!(fin.attr("complete"), Some("true"));
}

#[tokio::test]
async fn pep_nodes_per_account_are_limited() {
    let s = TestServer::start_with(|c| c.limits.max_pep_nodes = 1).await;
    s.user("pep").await;
    let mut c = s.login("pep", "r").await;
    let publish = |node: &str| {
        format!("<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='{node}'><item id='current'><x xmlns='{node}'/></item></publish></pubsub>")
    };
    let r = c.iq("set", None, &publish("urn:example:one")).await;
    assert_eq!(r.attr("type"), Some("result"));
    let r = c.iq("set", None, &publish("urn:example:two")).await;
    assert_eq!(r.attr("type"), Some("error"));
    assert_eq!(error_condition(&r).as_deref(), Some("policy-violation"));
}

#[tokio::test]
async fn a_session_that_does_not_read_is_closed_when_its_queue_bytes_are_full() {
    let s = TestServer::start_with(|c| {
        c.limits.session_queue_bytes = 64 * 1024;
        c.limits.bytes_per_second = 0;
        c.limits.stanzas_per_second = 0;
    })
    .await;
    s.user("sink").await;
    s.user("source").await;
    let sink = s.login("sink", "r").await;
    let mut source = s.login("source", "r").await;
    let before = hits(&s, "session_queue").await;
    // The sink never reads: socket buffers fill, then its queue.
    let body = "x".repeat(8 * 1024);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sent = 0;
    while hits(&s, "session_queue").await == before {
        let mut batch = String::new();
        for _ in 0..100 {
            batch.push_str(&format!(
                "<message to='sink@localhost/r' type='chat'><body>{body}</body></message>"
            ));
        }
        source.send(&batch).await;
        sent += 100;
        assert!(
            Instant::now() < deadline,
            "no overflow after {sent} messages"
        );
    }
    // The source is unaffected.
    let r = source
        .iq("get", None, "<ping xmlns='urn:xmpp:ping'/>")
        .await;
    assert_eq!(r.attr("type"), Some("result"));
    drop(sink);
}

#[tokio::test]
async fn an_oversized_stanza_and_a_full_room_are_counted() {
    use roost_core::limits::{hits, Limit};
    let s = roost_testkit::muc::server_with(|c| c.limits.max_stanza_size = 4096).await;
    s.user("big").await;
    s.user("owner").await;
    s.user("late").await;
    let before = hits(Limit::StanzaSize);
    let mut c = s.login("big", "r").await;
    let pad = "x".repeat(8192);
    c.send(&format!(
        "<message to='owner@localhost'><body>{pad}</body></message>"
    ))
    .await;
    assert_eq!(c.conn.stream_error().await, "policy-violation");
    assert!(hits(Limit::StanzaSize) > before);
    // A room of one: the second occupant is refused (XEP-0045 §7.2.9).
    let mut o = s.login("owner", "r").await;
    let r = room("full");
    o.send(&format!(
        "<presence to='{r}/owner'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
    ))
    .await;
    o.expect("join", |e| {
        e.name() == "presence" && e.attr("from") == Some(format!("{r}/owner").as_str())
    })
    .await;
    let form = "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field><field var='muc#roomconfig_maxusers'><value>1</value></field></x></query>";
    let res = o.iq("set", Some(&r), form).await;
    assert_eq!(res.attr("type"), Some("result"), "{res:?}");
    let full = hits(Limit::RoomOccupants);
    let mut l = s.login("late", "r").await;
    l.send(&format!(
        "<presence to='{r}/late'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
    ))
    .await;
    let p = l
        .expect("refusal", |e| {
            e.name() == "presence" && e.attr("from") == Some(format!("{r}/late").as_str())
        })
        .await;
    assert_eq!(error_condition(&p).as_deref(), Some("service-unavailable"));
    assert!(hits(Limit::RoomOccupants) > full);
}
