//! Federation between two Roost servers on loopback (`a.test` on
//! 127.0.0.2, `b.test` on 127.0.0.3, certificates from a test CA, static
//! routes): chat, subscriptions and presence, rooms on the other server
//! with account-based joining, certificates or dialback, bounces.

use std::time::Duration;

use minidom::Element;
use roost_testkit::client::body;
use roost_testkit::federation::{online, pair, pair_with, subscribe, TestCa};
use roost_testkit::muc::{error_condition, has_status};
use roost_testkit::{Client, TestServer};

async fn chat_both_ways(a: &mut Client, b: &mut Client) {
    a.send("<message to='bob@b.test' type='chat' id='m1'><body>hello from a</body></message>")
        .await;
    let m = b
        .expect("message from a", |e| {
            body(e).as_deref() == Some("hello from a")
        })
        .await;
    assert_eq!(m.attr("from"), Some("alice@a.test/home"));
    b.send("<message to='alice@a.test/home' type='chat'><body>hello from b</body></message>")
        .await;
    let m = a
        .expect("message from b", |e| {
            body(e).as_deref() == Some("hello from b")
        })
        .await;
    assert_eq!(m.attr("from"), Some("bob@b.test/desk"));
}

#[tokio::test]
async fn messages_cross_between_two_servers_authenticated_by_certificates() {
    let ca = TestCa::new();
    let (sa, sb) = pair(&ca).await;
    let mut a = online(&sa, "alice", "home").await;
    let mut b = online(&sb, "bob", "desk").await;
    chat_both_ways(&mut a, &mut b).await;
}

#[tokio::test]
async fn dialback_stands_in_when_certificates_do_not_verify() {
    let ca = TestCa::new();
    // Neither side trusts the test CA: certificates prove nothing.
    let (sa, sb) = pair_with(&ca, |_, c| c.s2s.ca_file = None).await;
    let mut a = online(&sa, "alice", "home").await;
    let mut b = online(&sb, "bob", "desk").await;
    chat_both_ways(&mut a, &mut b).await;
}

#[tokio::test]
async fn certificate_only_refuses_a_peer_whose_certificate_does_not_verify() {
    let ca = TestCa::new();
    let (sa, _sb) = pair_with(&ca, |side, c| {
        c.s2s.authentication = roost_core::config::S2sAuthentication::Certificate;
        if side == "b" {
            // b trusts nobody, so a's certificate does not prove a.test.
            c.s2s.ca_file = None;
        }
    })
    .await;
    let mut a = online(&sa, "alice", "home").await;
    a.send("<message to='bob@b.test' type='chat' id='x1'><body>lost</body></message>")
        .await;
    let e = a
        .expect("bounce", |e| {
            e.attr("id") == Some("x1") && e.attr("type") == Some("error")
        })
        .await;
    assert_eq!(
        error_condition(&e).as_deref(),
        Some("remote-server-not-found")
    );
}

#[tokio::test]
async fn subscriptions_and_presence_cross_servers() {
    let ca = TestCa::new();
    let (sa, sb) = pair(&ca).await;
    let mut a = online(&sa, "alice", "home").await;
    let mut b = online(&sb, "bob", "desk").await;
    a.roster().await;
    b.roster().await;
    a.send("<presence to='bob@b.test' type='subscribe'/>").await;
    b.expect("subscription request", |e| {
        e.name() == "presence" && e.attr("type") == Some("subscribe")
    })
    .await;
    b.send("<presence to='alice@a.test' type='subscribed'/>")
        .await;
    // Approved: alice sees bob's presence (the server probes for it).
    let p = a
        .expect("bob's presence", |e| {
            e.name() == "presence"
                && e.attr("from") == Some("bob@b.test/desk")
                && e.attr("type").is_none()
        })
        .await;
    assert_eq!(
        p.attr("to").map(|t| t.starts_with("alice@a.test")),
        Some(true)
    );
    let r = a.roster().await;
    let item = r
        .get_child("query", "jabber:iq:roster")
        .and_then(|q| q.children().find(|i| i.attr("jid") == Some("bob@b.test")))
        .expect("bob in alice's roster")
        .clone();
    assert_eq!(item.attr("subscription"), Some("to"));
    // bob goes away: alice hears it.
    b.send("<presence><show>away</show></presence>").await;
    a.expect("bob away", |e: &Element| {
        e.name() == "presence"
            && e.attr("from") == Some("bob@b.test/desk")
            && e.get_child("show", "jabber:client")
                .map(|s| s.text())
                .as_deref()
                == Some("away")
    })
    .await;
}

#[tokio::test]
async fn an_account_joins_a_room_on_the_other_server_once_for_all_its_sessions() {
    let ca = TestCa::new();
    let (sa, sb) = pair(&ca).await;
    let room = "lounge@conference.b.test";
    let mut bob = online(&sb, "bob", "desk").await;
    bob.create_room(room, "Bob").await;
    let mut phone = online(&sa, "alice", "phone").await;
    let mut laptop = sa.login("alice", "laptop").await;
    laptop.available().await;
    let own = phone.join_room(room, "Al").await;
    assert!(has_status(&own, 110));
    let own = laptop.join_room(room, "Al").await;
    assert!(has_status(&own, 110));
    // bob sees one occupant, the account.
    let p = bob
        .expect("Al enters", |e| {
            e.name() == "presence" && e.attr("from") == Some(&*format!("{room}/Al"))
        })
        .await;
    let jid = p
        .get_child("x", "http://jabber.org/protocol/muc#user")
        .and_then(|x| x.get_child("item", "http://jabber.org/protocol/muc#user"))
        .and_then(|i| i.attr("jid"))
        .map(str::to_string);
    assert_eq!(jid.as_deref(), Some("alice@a.test"));
    assert!(bob
        .gets_within(Duration::from_millis(600), |e| {
            e.name() == "presence" && e.attr("from") == Some(&*format!("{room}/Al"))
        })
        .await
        .is_none());
    // Room traffic reaches both sessions, and crosses to a.test once.
    let counters = &sa.running.server.counters;
    let count = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let (received, forked) = (
        count(&counters.account_muc_received),
        count(&counters.account_muc_forked),
    );
    bob.say(room, "welcome").await;
    phone.expect_groupchat("welcome").await;
    laptop.expect_groupchat("welcome").await;
    assert_eq!(
        count(&counters.account_muc_received) - received,
        1,
        "one stanza from the room for the account"
    );
    assert_eq!(
        count(&counters.account_muc_forked) - forked,
        2,
        "forked to its two sessions"
    );
    laptop.say(room, "thanks").await;
    bob.expect_groupchat("thanks").await;
    phone.expect_groupchat("thanks").await;
}

#[tokio::test]
async fn a_peer_that_is_gone_makes_messages_bounce() {
    let ca = TestCa::new();
    let (sa, sb) = pair(&ca).await;
    sb.running.stop().await;
    drop(sb);
    let mut a = online(&sa, "alice", "home").await;
    a.send("<message to='bob@b.test' type='chat' id='gone'><body>anyone?</body></message>")
        .await;
    let e = a
        .expect("bounce", |e| {
            e.attr("id") == Some("gone") && e.attr("type") == Some("error")
        })
        .await;
    let cond = error_condition(&e);
    assert!(
        matches!(
            cond.as_deref(),
            Some("remote-server-not-found") | Some("remote-server-timeout")
        ),
        "{cond:?}"
    );
}

/// A raw peer connection to `s`'s s2s port, after STARTTLS, claiming `from`.
async fn raw_peer(
    s: &TestServer,
    from: &str,
    identity: Option<(&std::path::Path, &std::path::Path)>,
) -> (roost_testkit::Conn, Element) {
    let addr = s.running.s2s.expect("s2s listener");
    let mut c = roost_testkit::Conn::connect(addr, false)
        .await
        .expect("connect");
    c.domain = s.domain().to_string();
    let f = c.open_server_stream(from).await;
    assert!(
        f.get_child("starttls", "urn:ietf:params:xml:ns:xmpp-tls")
            .is_some_and(|t| t.has_child("required", "urn:ietf:params:xml:ns:xmpp-tls")),
        "{}",
        String::from(&f)
    );
    c.starttls_with(roost_testkit::federation::peer_tls(identity))
        .await;
    let f = c.open_server_stream(from).await;
    (c, f)
}

fn offers_external(features: &Element) -> bool {
    features
        .get_child("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl")
        .is_some_and(|m| m.children().any(|c| c.text() == "EXTERNAL"))
}

#[tokio::test]
async fn a_stanza_on_an_unauthenticated_server_stream_ends_it() {
    let ca = TestCa::new();
    let (_sa, sb) = pair(&ca).await;
    let (mut c, f) = raw_peer(&sb, "a.test", None).await;
    assert!(!offers_external(&f), "no certificate, no EXTERNAL");
    assert!(f.has_child("dialback", "urn:xmpp:features:dialback"));
    c.send(
        "<message from='alice@a.test' to='bob@b.test' type='chat'><body>sneaky</body></message>",
    )
    .await;
    assert_eq!(c.stream_error().await, "not-authorized");
}

#[tokio::test]
async fn a_wrong_dialback_key_is_invalid() {
    let ca = TestCa::new();
    let (_sa, sb) = pair(&ca).await;
    let (mut c, _) = raw_peer(&sb, "a.test", None).await;
    c.send("<db:result xmlns:db='jabber:server:dialback' from='a.test' to='b.test'>00112233</db:result>")
        .await;
    let r = c.next_element().await.expect("dialback answer");
    assert_eq!(r.name(), "result");
    assert_eq!(r.attr("type"), Some("invalid"), "{}", String::from(&r));
    c.send("<message from='alice@a.test' to='bob@b.test' type='chat'><body>x</body></message>")
        .await;
    assert_eq!(c.stream_error().await, "not-authorized");
}

#[tokio::test]
async fn a_certificate_proves_only_its_domain_and_a_forged_from_ends_the_stream() {
    let ca = TestCa::new();
    let (_sa, sb) = pair(&ca).await;
    let (cert, key) = ca.issue(&["c.test"], "c");
    // Claiming a.test with c.test's certificate: no EXTERNAL.
    let (_, f) = raw_peer(&sb, "a.test", Some((&cert, &key))).await;
    assert!(!offers_external(&f));
    // As c.test: EXTERNAL, then stanzas from c.test only.
    let (mut c, f) = raw_peer(&sb, "c.test", Some((&cert, &key))).await;
    assert!(offers_external(&f), "{}", String::from(&f));
    c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>")
        .await;
    let ok = c.next_element().await.expect("sasl answer");
    assert_eq!(ok.name(), "success", "{}", String::from(&ok));
    c.open_server_stream("c.test").await;
    sb.user("bob").await;
    let mut bob = sb.login("bob", "desk").await;
    bob.available().await;
    c.send(
        "<message from='carol@c.test/x' to='bob@b.test' type='chat'><body>from c</body></message>",
    )
    .await;
    bob.expect("message from c.test", |e| {
        body(e).as_deref() == Some("from c")
    })
    .await;
    c.send(
        "<message from='alice@a.test/x' to='bob@b.test' type='chat'><body>forged</body></message>",
    )
    .await;
    assert_eq!(c.stream_error().await, "invalid-from");
    assert!(bob
        .gets_within(Duration::from_millis(400), |e| body(e).as_deref()
            == Some("forged"))
        .await
        .is_none());
}

async fn befriend(a: &mut Client, b: &mut Client) {
    a.roster().await;
    b.roster().await;
    subscribe(a, b, "bob@b.test").await;
    subscribe(b, a, "alice@a.test").await;
}

#[tokio::test]
async fn iqs_reach_remote_accounts_and_servers() {
    let ca = TestCa::new();
    let (sa, sb) = pair(&ca).await;
    let mut a = online(&sa, "alice", "home").await;
    let _b = online(&sb, "bob", "desk").await;
    // The other server answers for itself and for its accounts.
    let r = a
        .iq("get", Some("b.test"), "<ping xmlns='urn:xmpp:ping'/>")
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    assert_eq!(r.attr("from"), Some("b.test"));
    let r = a
        .iq(
            "get",
            Some("bob@b.test"),
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        )
        .await;
    let q = r
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .expect("disco answer");
    assert!(q.children().any(|i| i.attr("category") == Some("account")));
    let r = a
        .iq("get", Some("nobody@b.test"), "<vCard xmlns='vcard-temp'/>")
        .await;
    assert_eq!(r.attr("type"), Some("error"));
}

#[tokio::test]
async fn remote_messages_are_archived_and_stored_offline() {
    let ca = TestCa::new();
    let (sa, sb) = pair(&ca).await;
    let mut a = online(&sa, "alice", "home").await;
    sb.user("bob").await;
    // bob is offline: stored on b.test, delivered at his next login.
    a.send(
        "<message to='bob@b.test' type='chat' id='off'><body>while you were out</body></message>",
    )
    .await;
    // The query passes through alice's account after the message, so it
    // sees the message's (queued) archive row.
    let r = a
        .iq(
            "set",
            None,
            "<query xmlns='urn:xmpp:mam:2' queryid='f'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field><field var='with'><value>bob@b.test</value></field></x></query>",
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"));
    let mut archived = Vec::new();
    while let Some(m) = a
        .gets_within(Duration::from_millis(100), |e| {
            e.get_child("result", "urn:xmpp:mam:2").is_some()
        })
        .await
    {
        archived.push(m);
    }
    assert_eq!(archived.len(), 1, "alice's archive has what she sent");
    let mut b = sb.login("bob", "desk").await;
    b.available().await;
    let m = b
        .expect("offline message", |e| {
            body(e).as_deref() == Some("while you were out")
        })
        .await;
    assert!(m.has_child("delay", "urn:xmpp:delay"));
}

#[tokio::test]
async fn pep_items_and_blocking_cross_servers() {
    let ca = TestCa::new();
    let (sa, sb) = pair(&ca).await;
    let mut a = online(&sa, "alice", "home").await;
    let mut b = online(&sb, "bob", "desk").await;
    befriend(&mut a, &mut b).await;
    // alice publishes; bob, a contact on the other server, reads the node.
    let r = a
        .iq(
            "set",
            None,
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:microblog:0'><item id='p1'><entry xmlns='http://www.w3.org/2005/Atom'><title>hi</title></entry></item></publish></pubsub>",
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    let items = b
        .iq(
            "get",
            Some("alice@a.test"),
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:microblog:0'/></pubsub>",
        )
        .await;
    assert_eq!(
        items.attr("type"),
        Some("result"),
        "{}",
        String::from(&items)
    );
    assert!(String::from(&items).contains("p1"));
    // alice blocks bob: his messages bounce at a.test, hers are refused.
    a.iq(
        "set",
        None,
        "<block xmlns='urn:xmpp:blocking'><item jid='bob@b.test'/></block>",
    )
    .await;
    b.expect("alice goes offline for bob", |e| {
        e.name() == "presence"
            && e.attr("from") == Some("alice@a.test/home")
            && e.attr("type") == Some("unavailable")
    })
    .await;
    b.send("<message to='alice@a.test' type='chat' id='blk'><body>hello?</body></message>")
        .await;
    let e = b
        .expect("bounce from a.test", |e| {
            e.attr("id") == Some("blk") && e.attr("type") == Some("error")
        })
        .await;
    assert_eq!(error_condition(&e).as_deref(), Some("service-unavailable"));
}

#[tokio::test]
async fn past_max_outgoing_another_domain_bounces_with_resource_constraint() {
    let ca = TestCa::new();
    let (sa, _sb) = pair_with(&ca, |side, c| {
        if side == "a" {
            c.s2s.max_outgoing = 1;
        }
    })
    .await;
    let mut a = online(&sa, "alice", "home").await;
    a.send("<message to='bob@b.test' type='chat' id='one'><body>first</body></message>")
        .await;
    a.send("<message to='carol@c.test' type='chat' id='two'><body>second</body></message>")
        .await;
    let e = a
        .expect("bounce", |e| {
            e.attr("id") == Some("two") && e.attr("type") == Some("error")
        })
        .await;
    assert_eq!(error_condition(&e).as_deref(), Some("resource-constraint"));
}

#[tokio::test]
async fn a_silent_unauthenticated_server_stream_is_closed_after_the_set_up_time() {
    let ca = TestCa::new();
    let (_sa, sb) = pair_with(&ca, |side, c| {
        if side == "b" {
            c.s2s.connect_timeout = 1;
        }
    })
    .await;
    let (mut c, _) = raw_peer(&sb, "a.test", None).await;
    // Nothing more from us: b ends the stream after its set-up time.
    assert_eq!(c.stream_error().await, "connection-timeout");
}

#[tokio::test]
async fn a_bookmarked_remote_room_is_rejoined_after_its_server_restarts() {
    let ca = TestCa::new();
    let (sa, sb) = pair_with(&ca, |side, c| {
        if side == "a" {
            c.account_muc.self_ping_interval = 1;
        }
    })
    .await;
    let room = "hall@conference.b.test";
    let mut bob = online(&sb, "bob", "desk").await;
    let own = bob.join_room(room, "Bob").await;
    assert!(has_status(&own, 201));
    let r = bob
        .configure_room(room, &[("muc#roomconfig_persistentroom", "1")])
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    // alice bookmarks it with autojoin: her account joins with no session.
    let mut a = online(&sa, "alice", "home").await;
    let r = a
        .iq(
            "set",
            None,
            &format!(
                "<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:bookmarks:1'><item id='{room}'>\
                 <conference xmlns='urn:xmpp:bookmarks:1' autojoin='true'><nick>Al</nick></conference></item></publish>\
                 <publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
                 <field var='pubsub#persist_items'><value>true</value></field><field var='pubsub#access_model'><value>whitelist</value></field></x></publish-options></pubsub>"
            ),
        )
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", String::from(&r));
    bob.expect("Al enters", |e| {
        e.name() == "presence"
            && e.attr("from") == Some(&*format!("{room}/Al"))
            && e.attr("type").is_none()
    })
    .await;
    // b.test restarts (occupants hear 332); the account comes back by itself.
    drop(bob);
    let sb = sb.restart().await;
    let mut bob = sb.login("bob", "desk2").await;
    bob.available().await;
    bob.join_room(room, "Bob").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut back = false;
    while tokio::time::Instant::now() < deadline {
        if bob
            .gets_within(Duration::from_millis(500), |e| {
                e.name() == "presence"
                    && e.attr("from") == Some(&*format!("{room}/Al"))
                    && e.attr("type").is_none()
            })
            .await
            .is_some()
        {
            back = true;
            break;
        }
    }
    assert!(back, "alice's account did not rejoin within 30 s");
}
