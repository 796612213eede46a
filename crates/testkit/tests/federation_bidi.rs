//! XEP-0288 bidirectional server streams between two Roost servers and
//! with a raw peer: one connection carries both directions when both
//! sides want it, two when one does not, and stanzas waiting on a
//! bidirectional stream that ends go out through a stream of our own.

use std::time::Duration;

use minidom::Element;
use roost_core::s2s::S2sStats;
use roost_testkit::client::body;
use roost_testkit::federation::{online, pair, pair_with, TestCa};
use roost_testkit::{Client, TestServer};

fn stats(s: &TestServer) -> S2sStats {
    s.running.server.s2s.get().expect("federation on").stats()
}

/// alice@a.test writes first, bob@b.test answers.
async fn chat_both_ways(a: &mut Client, b: &mut Client, n: u32) {
    a.send(&format!(
        "<message to='bob@b.test' type='chat'><body>ping {n}</body></message>"
    ))
    .await;
    let ping = format!("ping {n}");
    b.expect("ping", |e| body(e).as_deref() == Some(ping.as_str()))
        .await;
    b.send(&format!(
        "<message to='alice@a.test/home' type='chat'><body>pong {n}</body></message>"
    ))
    .await;
    let pong = format!("pong {n}");
    let m = a
        .expect("pong", |e| body(e).as_deref() == Some(pong.as_str()))
        .await;
    assert_eq!(m.attr("from"), Some("bob@b.test/desk"));
}

#[tokio::test]
async fn one_connection_carries_both_directions() {
    let ca = TestCa::new();
    let (sa, sb) = pair(&ca).await;
    let mut a = online(&sa, "alice", "home").await;
    let mut b = online(&sb, "bob", "desk").await;
    chat_both_ways(&mut a, &mut b, 1).await;
    chat_both_ways(&mut a, &mut b, 2).await;
    let (sa_stats, sb_stats) = (stats(&sa), stats(&sb));
    // a opened the one connection; b answers over it.
    assert_eq!(
        (
            sa_stats.routes_outgoing,
            sa_stats.routes_bidi,
            sa_stats.incoming
        ),
        (1, 0, 0)
    );
    assert_eq!(
        (
            sb_stats.routes_outgoing,
            sb_stats.routes_bidi,
            sb_stats.incoming
        ),
        (0, 1, 1)
    );
}

#[tokio::test]
async fn dialback_streams_are_bidirectional_too() {
    let ca = TestCa::new();
    let (sa, sb) = pair_with(&ca, |_, c| c.s2s.ca_file = None).await;
    let mut a = online(&sa, "alice", "home").await;
    let mut b = online(&sb, "bob", "desk").await;
    chat_both_ways(&mut a, &mut b, 1).await;
    assert_eq!(stats(&sa).routes_outgoing, 1);
    let sb_stats = stats(&sb);
    assert_eq!((sb_stats.routes_outgoing, sb_stats.routes_bidi), (0, 1));
}

#[tokio::test]
async fn without_bidi_on_one_side_each_direction_has_its_own_stream() {
    let ca = TestCa::new();
    let (sa, sb) = pair_with(&ca, |side, c| {
        if side == "b" {
            c.s2s.bidi = false;
        }
    })
    .await;
    let mut a = online(&sa, "alice", "home").await;
    let mut b = online(&sb, "bob", "desk").await;
    chat_both_ways(&mut a, &mut b, 1).await;
    let (sa_stats, sb_stats) = (stats(&sa), stats(&sb));
    assert_eq!((sa_stats.routes_outgoing, sa_stats.routes_bidi), (1, 0));
    assert_eq!((sb_stats.routes_outgoing, sb_stats.routes_bidi), (1, 0));
}

#[tokio::test]
async fn when_the_bidirectional_stream_ends_the_answering_side_opens_its_own() {
    let ca = TestCa::new();
    // a closes idle streams after two seconds.
    let (sa, sb) = pair_with(&ca, |side, c| {
        if side == "a" {
            c.s2s.idle_timeout = 2;
        }
    })
    .await;
    let mut a = online(&sa, "alice", "home").await;
    let mut b = online(&sb, "bob", "desk").await;
    chat_both_ways(&mut a, &mut b, 1).await;
    assert_eq!(stats(&sb).routes_bidi, 1);
    // Wait until a's stream has idled out and b has noticed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stats(&sb).routes_bidi == 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a's stream never closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.send("<message to='alice@a.test/home' type='chat'><body>after</body></message>")
        .await;
    a.expect("message over b's own stream", |e| {
        body(e).as_deref() == Some("after")
    })
    .await;
    assert_eq!(stats(&sb).routes_outgoing, 1);
}

/// A raw peer for c.test, which b.test has no route to: with bidi, b's
/// stanzas for c.test come back over the peer's own stream.
#[tokio::test]
async fn a_raw_peer_that_asks_for_bidi_receives_over_its_stream() {
    let ca = TestCa::new();
    let (_sa, sb) = pair(&ca).await;
    let (cert, key) = ca.issue(&["c.test"], "c");
    let addr = sb.running.s2s.expect("s2s listener");
    let mut c = roost_testkit::Conn::connect(addr, false)
        .await
        .expect("connect");
    c.domain = "b.test".into();
    let f = c.open_server_stream("c.test").await;
    assert!(
        !f.has_child("bidi", "urn:xmpp:features:bidi"),
        "bidi is offered after TLS only (require_encryption): {}",
        String::from(&f)
    );
    c.starttls_with(roost_testkit::federation::peer_tls(Some((&cert, &key))))
        .await;
    let f = c.open_server_stream("c.test").await;
    assert!(
        f.has_child("bidi", "urn:xmpp:features:bidi"),
        "{}",
        String::from(&f)
    );
    c.send("<bidi xmlns='urn:xmpp:bidi'/>").await;
    c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>")
        .await;
    let ok = c.next_element().await.expect("sasl answer");
    assert_eq!(ok.name(), "success", "{}", String::from(&ok));
    let f = c.open_server_stream("c.test").await;
    assert!(!f.has_child("bidi", "urn:xmpp:features:bidi"));
    let mut bob = online(&sb, "bob", "desk").await;
    bob.send(
        "<message to='carol@c.test' type='chat' id='over-bidi'><body>hi carol</body></message>",
    )
    .await;
    let m: Element = loop {
        let el = c
            .next_element()
            .await
            .expect("a stanza over the peer's stream");
        if el.name() == "message" {
            break el;
        }
    };
    assert_eq!(m.attr("from"), Some("bob@b.test/desk"));
    assert_eq!(m.attr("to"), Some("carol@c.test"));
    assert_eq!(m.ns(), "jabber:server", "{}", String::from(&m));
    assert_eq!(stats(&sb).routes_bidi, 1);
    // And the other way, as usual.
    c.send(
        "<message from='carol@c.test/x' to='bob@b.test' type='chat'><body>hi bob</body></message>",
    )
    .await;
    bob.expect("carol's answer", |e| body(e).as_deref() == Some("hi bob"))
        .await;
    // The peer goes away: b no longer routes through it.
    drop(c);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while stats(&sb).routes_bidi == 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "route kept after the stream ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two of a.test's domains (a.test and its MUC service) talk to b.test:
/// the second joins the first's stream with dialback (XEP-0220 §2.4)
/// instead of opening a connection of its own.
#[tokio::test]
async fn a_second_domain_of_ours_joins_the_first_ones_stream() {
    let ca = TestCa::new();
    // No bidi: b answers over streams of its own, so a's connections are
    // a's alone.
    let (sa, sb) = pair_with(&ca, |_, c| c.s2s.bidi = false).await;
    let mut alice = online(&sa, "alice", "home").await;
    let mut bob = online(&sb, "bob", "desk").await;
    chat_both_ways(&mut alice, &mut bob, 1).await;
    // bob joins alice's room on conference.a.test: the room's stanzas to
    // b.test go from a second domain of a.test.
    let room = "hall@conference.a.test";
    alice.join_room(room, "Alice").await;
    alice.configure_room(room, &[]).await;
    bob.join_room(room, "Bob").await;
    alice
        .send(&format!(
            "<message to='{room}' type='groupchat'><body>welcome bob</body></message>"
        ))
        .await;
    bob.expect("the room's message", |e| {
        body(e).as_deref() == Some("welcome bob")
    })
    .await;
    let st = stats(&sa);
    assert_eq!(
        st.routes_multiplexed, 1,
        "conference.a.test joined a.test's stream"
    );
    assert_eq!(
        st.outgoing_connections, 1,
        "one connection for both domains"
    );
}
